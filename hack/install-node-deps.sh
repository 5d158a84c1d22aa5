#!/usr/bin/env bash
# Installs the Debian packages the single-node cluster (hack/cluster.sh) uses, when
# missing: containerd and runc (the container runtime the kubelet drives),
# containernetworking-plugins (bridge, host-local, loopback and portmap for pod
# networking), iptables (kube-proxy's Service rules) and nftables (to remove the tables
# iptables-nft leaves behind), buildah and mmdebstrap (the
# images, built without a registry or a Docker engine). Needs root; says what to run
# otherwise.
set -euo pipefail
need=()
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/loopback && -x /usr/lib/cni/portmap ]] ||
	need+=(containernetworking-plugins)
command -v iptables >/dev/null || need+=(iptables)
command -v nft >/dev/null || need+=(nftables)
command -v buildah >/dev/null || need+=(buildah)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
if [[ ${#need[@]} -eq 0 ]]; then
	echo "node dependencies present"
	exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
	echo "missing: ${need[*]}; install them with: sudo apt-get install ${need[*]}" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}"
# hack/cluster.sh runs a containerd of its own (own socket, state and config): the
# packaged service must not keep running beside it.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now containerd >/dev/null 2>&1 || true; fi
if command -v service >/dev/null 2>&1; then service containerd stop >/dev/null 2>&1 || true; fi
