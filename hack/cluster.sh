#!/usr/bin/env bash
# A real single-node Kubernetes cluster on this machine, without Docker or a registry:
# the test control plane (etcd, kube-apiserver, kube-controller-manager) plus a
# kube-scheduler, Debian's containerd and runc, a kubelet, kube-proxy (iptables) and
# CoreDNS, all built from their Go modules or taken from Debian, running Switchyard's own
# images built from the project's Dockerfile. hack/kind-up.sh does the same with kind for
# those who have Docker.
#
#   hack/cluster.sh up       start the cluster, build and import the images when their
#                            inputs changed, install the chart (release switchyard in
#                            switchyard-system) with the example services and routes;
#                            prints `export KUBECONFIG=...` and the gateway's address
#   hack/cluster.sh start    the cluster and its images only, without the chart (the node
#                            tests install it themselves, as README says)
#   hack/cluster.sh down     stop everything and remove every process, mount, network
#                            namespace, interface, iptables chain and sysctl change that
#                            `up` made; fails if anything is left
#   hack/cluster.sh status   whether it runs, the node and the pods
#   hack/cluster.sh build    build the binaries and images (cached; what `up` does first)
#
# Needs root (network interfaces, iptables, mounts), the Debian packages of
# hack/install-node-deps.sh (installed when run as root), Go, and `npm ci` done.
# Addresses are all inside 198.18.0.0/15, the benchmarking range (RFC 2544): the node
# 198.18.255.1, pods 198.18.0.0/24 on bridge sy-cni0, Services 198.19.0.0/24, cluster DNS
# 198.19.0.10. Pods can reach nothing outside that range. See docs/testing.md and
# docs/control-plane.md.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
hack=$repo/hack
state=$repo/.cache/cluster
cache_root=${SWITCHYARD_CACHE:-${HOME}/.cache/switchyard}
# Machine-wide runtime state: one cluster per machine, whatever the checkout.
run_dir=/run/switchyard-node
containerd_root=$cache_root/node/containerd
containerd_sock=$run_dir/containerd.sock
pidfile=$run_dir/launcher.pid

node_name=switchyard-node
node_ip=198.18.255.1
node_if=sy-node0
pod_cidr=198.18.0.0/24
pod_gateway=198.18.0.1
pod_bridge=sy-cni0
service_cidr=198.19.0.0/24
cluster_dns=198.19.0.10
# Addresses for Services of type LoadBalancer, as a cloud would give them.
lb_pool=198.19.255.0/24
# Every address the cluster uses; nothing outside it is reachable from a pod.
cluster_range=198.18.0.0/15

release=switchyard
release_ns=switchyard-system

# Paths outside the cluster's directories that the kubelet, containerd and libcni create
# with fixed names; `down` removes those that did not exist before `up`.
fixed_paths=(/var/lib/kubelet /var/lib/cni /etc/cni /run/containerd /var/log/containers)

# What the kubelet and the bridge plugin change on the host, restored by `down`.
sysctls=(net.ipv4.ip_forward vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
	kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.conf.all.route_localnet
	net.bridge.bridge-nf-call-iptables)

say() { printf 'cluster: %s\n' "$*" >&2; }

# lock serializes start and down machine-wide: two checkouts setting up and taking down
# the one node at the same time would remove each other's interfaces.
lock() {
	exec 8>/run/lock/switchyard-node.lock
	flock 8
}
die() {
	printf 'cluster: %s\n' "$*" >&2
	exit 1
}

paths_json() { "$hack/control-plane.sh" paths; }
json_field() { sed -n "s/.*\"$1\":\"\\{0,1\\}\\([^\",}]*\\).*/\\1/p"; }

kubectl_bin() { paths_json | json_field kubectl; }
kc() { "$(kubectl_bin)" --kubeconfig "$state/kubeconfig" "$@"; }
ctr_() { ctr --address "$containerd_sock" --namespace k8s.io "$@"; }

preflight() {
	[[ $(id -u) -eq 0 ]] || die "the node needs root (network interfaces, iptables, mounts, containerd); run as root"
	"$hack/install-node-deps.sh" >/dev/null || die "missing Debian packages; see above (hack/install-node-deps.sh)"
	command -v go >/dev/null 2>&1 || die "Go is not installed; the node's programs are built from the Kubernetes Go modules (see hack/control-plane/go.mod)"
	[[ -x $repo/node_modules/.bin/node ]] || die "node_modules is missing: run npm ci first"
}

cmd_build() {
	preflight
	"$hack/control-plane.sh" build node
	"$hack/helm.sh" build
	"$hack/images.sh" build
}

# owner prints the state directory of the running cluster, which may belong to another
# checkout: there is one cluster per machine, whichever checkout started it.
owner() {
	local pid
	if pid=$(launcher_pid); then
		tr '\0' '\n' <"/proc/$pid/cmdline" | awk 'previous == "--dir" { print; exit } { previous = $0 }'
	else
		echo "$state"
	fi
}

launcher_pid() {
	[[ -f $pidfile ]] || return 1
	local pid
	pid=$(cat "$pidfile")
	[[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
	grep -q control-plane "/proc/$pid/cmdline" 2>/dev/null || return 1
	echo "$pid"
}

# --- the host's side: address, bridge, guard, CNI and containerd configuration ---------

save_sysctls() {
	# A saved file means an earlier run was not taken down: its values are the originals.
	[[ -f $run_dir/sysctl.saved ]] && return 0
	local key value
	for key in "${sysctls[@]}"; do
		value=$(sysctl -n "$key" 2>/dev/null) || continue
		printf '%s=%s\n' "$key" "$value"
	done >"$run_dir/sysctl.saved.tmp"
	mv "$run_dir/sysctl.saved.tmp" "$run_dir/sysctl.saved"
}

# note_host_state records what `down` must restore or remove: paths that do not exist yet
# and the nftables tables that exist already (iptables-nft creates a table on first use).
note_host_state() {
	[[ -f $run_dir/created ]] && return 0
	local path
	for path in "${fixed_paths[@]}"; do
		[[ -e $path ]] || echo "$path"
	done >"$run_dir/created"
	nft list tables >"$run_dir/nft-tables" 2>/dev/null || true
}

# remove_created removes what note_host_state found missing before `up`, and the
# kubelet's links to this cluster's container logs wherever the directory came from.
remove_created() {
	find /var/log/containers -maxdepth 1 -type l -lname "$state/*" -delete 2>/dev/null || true
	[[ -f $run_dir/created ]] || return 0
	local path
	while IFS= read -r path; do
		case $path in
		/var/lib/kubelet | /var/lib/cni | /etc/cni | /run/containerd | /var/log/containers) rm -rf "$path" ;;
		esac
	done <"$run_dir/created"
}

# remove_empty_tables deletes the nftables tables that appeared while the cluster ran and
# hold no rule any more: the chains in them are gone, the tables iptables-nft made are not.
remove_empty_tables() {
	command -v nft >/dev/null 2>&1 || return 0
	[[ -f $run_dir/nft-tables ]] || return 0
	local family name
	while read -r _ family name; do
		grep -qx "table $family $name" "$run_dir/nft-tables" && continue
		# A table whose lines are all chain headers, policies and braces holds no rule.
		if ! nft list table "$family" "$name" | grep -v -E '^\s*(table |chain |type |\}|$)' | grep -q .; then
			nft delete table "$family" "$name"
		fi
	done < <(nft list tables 2>/dev/null)
}

restore_sysctls() {
	[[ -f $run_dir/sysctl.saved ]] || return 0
	local line
	while IFS= read -r line; do
		sysctl -q -w "$line" >/dev/null || say "could not restore $line"
	done <"$run_dir/sysctl.saved"
	rm -f "$run_dir/sysctl.saved"
}

# The guard keeps pods inside the cluster's range: forwarding is on while the node runs
# (pods reach Services through the host), and it must carry nothing else, in either
# direction. The raw table sees packets before kube-proxy's NAT and is never touched by
# it.
add_guard() {
	iptables -t raw -N SWITCHYARD-GUARD
	iptables -t raw -A SWITCHYARD-GUARD -s "$pod_cidr" ! -d "$cluster_range" -j DROP
	iptables -t raw -I PREROUTING 1 -j SWITCHYARD-GUARD
	iptables -t filter -N SWITCHYARD-FORWARD
	iptables -t filter -A SWITCHYARD-FORWARD -s "$cluster_range" -d "$cluster_range" -j RETURN
	iptables -t filter -A SWITCHYARD-FORWARD -j DROP
	iptables -t filter -I FORWARD 1 -j SWITCHYARD-FORWARD
}

write_configs() {
	mkdir -p "$run_dir/cni" "$run_dir/cni-ipam" "$containerd_root"
	cat >"$run_dir/cni/10-switchyard.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "switchyard",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "${pod_bridge}",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "${pod_cidr}", "gateway": "${pod_gateway}" }]],
        "routes": [{ "dst": "0.0.0.0/0" }],
        "dataDir": "${run_dir}/cni-ipam"
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
JSON
	# A containerd of the cluster's own: its socket, state and configuration, so that the
	# packaged one (if any) is neither used nor changed. The root (images) lives in the
	# cache and survives `down`: imported images stay imported.
	cat >"$run_dir/containerd.toml" <<TOML
version = 2
root = "${containerd_root}"
state = "${run_dir}/containerd"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.grpc.v1.introspection.tracing"]

[grpc]
  address = "${containerd_sock}"

[ttrpc]
  address = "${run_dir}/containerd.sock.ttrpc"

[plugins."io.containerd.grpc.v1.cri"]
  # Built locally by hack/images.sh; nothing can be pulled.
  sandbox_image = "localhost/switchyard/pause:v1"
  # These machines refuse a negative oom_score_adj even to root; without this every pod
  # sandbox fails with "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${run_dir}/cni"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "${run_dir}/runc"
TOML
}

host_up() {
	mkdir -p "$run_dir"
	note_host_state
	save_sysctls
	# The node's address lives on a bridge of its own with no ports (this kernel has no
	# dummy interfaces): a local address the kubelet accepts and pods reach.
	ip link add "$node_if" type bridge
	ip addr add "$node_ip/32" dev "$node_if"
	ip link set "$node_if" up
	# Everything in the cluster's range is routed to that bridge, which has no ports: an
	# address that no rule of kube-proxy's or the pods' bridge claims goes nowhere, instead
	# of out through the machine's default route.
	ip route add "$cluster_range" dev "$node_if"
	add_guard
	# Pods reach Services (DNAT to another pod) through the host.
	sysctl -q -w net.ipv4.ip_forward=1 >/dev/null
	sysctl -q -w net.bridge.bridge-nf-call-iptables=1 >/dev/null
	write_configs
}

# --- images ---------------------------------------------------------------------------

# import_images loads each image whose archive changed since it was last imported.
# containerd's root is in the cache, so this is a no-op on most runs.
import_images() {
	local imported=$cache_root/node/imported
	mkdir -p "$imported"
	local have name ref archive stamp
	have=$(ctr_ images ls -q)
	while read -r name ref archive stamp; do
		local full=$ref
		[[ $ref == localhost/* ]] || full=docker.io/$ref
		if grep -qx "$full" <<<"$have" && [[ -f $imported/$name && $(cat "$imported/$name") == "$stamp" ]]; then
			continue
		fi
		say "importing $ref"
		ctr_ images import "$archive" >/dev/null
		echo "$stamp" >"$imported/$name"
	done < <("$hack/images.sh" list)
}

# --- cluster DNS ----------------------------------------------------------------------

# CoreDNS from hack/coredns as the cluster's DNS, at the address the kubelet's
# clusterDNS names. It answers for cluster.local only: it has no forward plugin.
deploy_dns() {
	kc apply -f - >/dev/null <<YAML
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
  - apiGroups: [""]
    resources: [endpoints, services, pods, namespaces]
    verbs: [list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:53 {
        errors
        health {
            lameduck 5s
        }
        ready
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
            ttl 30
        }
        prometheus :9153
        cache 30
        reload
        loadbalance
    }
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: coredns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
spec:
  replicas: 1
  selector:
    matchLabels: {k8s-app: kube-dns}
  template:
    metadata:
      labels: {k8s-app: kube-dns}
    spec:
      serviceAccountName: coredns
      priorityClassName: system-cluster-critical
      dnsPolicy: Default
      containers:
        - name: coredns
          image: localhost/switchyard/coredns:v1.13.1
          imagePullPolicy: Never
          args: [-conf, /etc/coredns/Corefile]
          ports:
            - {name: dns, containerPort: 53, protocol: UDP}
            - {name: dns-tcp, containerPort: 53, protocol: TCP}
            - {name: metrics, containerPort: 9153, protocol: TCP}
          livenessProbe:
            httpGet: {path: /health, port: 8080}
            initialDelaySeconds: 10
            periodSeconds: 10
          readinessProbe:
            httpGet: {path: /ready, port: 8181}
            periodSeconds: 2
          resources:
            requests: {cpu: 50m, memory: 70Mi}
            limits: {memory: 170Mi}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {add: [NET_BIND_SERVICE], drop: [ALL]}
          volumeMounts:
            - {name: config, mountPath: /etc/coredns, readOnly: true}
      volumes:
        - name: config
          configMap: {name: coredns}
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
spec:
  clusterIP: ${cluster_dns}
  selector: {k8s-app: kube-dns}
  ports:
    - {name: dns, port: 53, protocol: UDP}
    - {name: dns-tcp, port: 53, protocol: TCP}
    - {name: metrics, port: 9153, protocol: TCP}
YAML
	kc -n kube-system rollout status deployment/coredns --timeout=180s >/dev/null ||
		die "CoreDNS did not become ready; see kubectl -n kube-system describe pod -l k8s-app=kube-dns"
}

# --- up / start -------------------------------------------------------------------------

cmd_start() {
	local pid
	if pid=$(launcher_pid); then
		say "already running (pid $pid), started from $(dirname "$(dirname "$(owner)")")"
		echo "export KUBECONFIG=$(owner)/kubeconfig"
		return 0
	fi
	cmd_build
	lock
	if pid=$(launcher_pid); then
		die "a cluster started from $(dirname "$(dirname "$(owner)")") runs on this machine; there is one per machine"
	fi
	# Whatever an earlier run left behind (a killed launcher, say) goes first.
	teardown quiet
	local start=$EPOCHREALTIME
	host_up
	mkdir -p "$state"
	rm -f "$state/ready.json"
	local paths bin_dir node_bin_dir
	paths=$(paths_json)
	bin_dir=$(json_field binDir <<<"$paths")
	node_bin_dir=$(json_field nodeBinDir <<<"$paths")
	# setsid: the launcher leads a process group of its own, so `down` ends it and
	# everything it started without touching anything else. It must not inherit the
	# lock (fd 8), which `down` takes.
	setsid "$(json_field controlPlane <<<"$paths")" run --dir "$state" --bin-dir "$bin_dir" \
		--node-bin-dir "$node_bin_dir" --node-name "$node_name" --node-ip "$node_ip" \
		--service-cluster-ip-range "$service_cidr" --cluster-cidr "$pod_cidr" --cluster-dns "$cluster_dns" \
		--containerd-config "$run_dir/containerd.toml" --containerd-socket "$containerd_sock" \
		--load-balancer-pool "$lb_pool" \
		--timeout 5m </dev/null >"$state/control-plane.log" 2>&1 8>&- &
	pid=$!
	echo "$pid" >"$pidfile"
	local deadline=$((SECONDS + 330))
	until [[ -f $state/ready.json ]]; do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 40 "$state/control-plane.log" >&2
			teardown quiet
			die "the cluster failed to start; logs in $state/logs/"
		fi
		if ((SECONDS > deadline)); then
			teardown quiet
			die "not ready after 330s; logs in $state/logs/"
		fi
		sleep 0.2
	done
	import_images
	deploy_dns
	say "ready in $(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')s: node ${node_name} at ${node_ip} (launcher pid $pid, logs in $state/logs/)"
	echo "export KUBECONFIG=$state/kubeconfig"
}

cmd_up() {
	local exports
	exports=$(cmd_start)
	local secret
	say "the JWT secret shared by the gateway and the example auth service"
	kc apply -f "$repo/examples/kubernetes/00-namespace.yaml" >/dev/null
	kc create namespace "$release_ns" --dry-run=client -o yaml | kc apply -f - >/dev/null
	if ! kc -n "$release_ns" get secret jwt-secret >/dev/null 2>&1; then
		secret=$(head -c 48 /dev/urandom | base64 | tr -d '/+=\n')
		kc -n "$release_ns" create secret generic jwt-secret --from-literal=secret="$secret" >/dev/null
	fi
	secret=$(kc -n "$release_ns" get secret jwt-secret -o jsonpath='{.data.secret}' | base64 -d)
	kc -n shop create secret generic jwt-secret --from-literal=secret="$secret" --dry-run=client -o yaml | kc apply -f - >/dev/null

	say "installing the chart"
	KUBECONFIG=$state/kubeconfig "$hack/helm.sh" upgrade --install "$release" "$repo/charts/switchyard" \
		--namespace "$release_ns" \
		--set operator.image.tag=dev --set dataplane.image.tag=dev \
		--set jwt.existingSecret=jwt-secret \
		--wait --timeout 5m >/dev/null

	say "deploying the example services and applying the example routes"
	kc apply -f "$repo/examples/kubernetes/services/" >/dev/null
	kc apply -f "$repo/examples/kubernetes/" >/dev/null
	kc -n shop rollout status deployment --timeout=180s >/dev/null
	kc -n shop wait --for=condition=Programmed --timeout=120s gatewayroute --all >/dev/null
	kc get gwr -A >&2

	local gateway="" deadline=$((SECONDS + 60))
	until [[ -n $gateway ]] || ((SECONDS > deadline)); do
		gateway=$(kc -n "$release_ns" get service "$release-dataplane" -o jsonpath='{.status.loadBalancer.ingress[0].ip}')
		[[ -n $gateway ]] || sleep 1
	done
	[[ -n $gateway ]] || die "the gateway's Service got no LoadBalancer address"
	cat >&2 <<TEXT

Switchyard runs on node ${node_name}. The gateway's Service: http://${gateway} (its
LoadBalancer address, which kube-proxy routes on this machine).

  ${exports}
  curl -i http://${gateway}/health
  hack/kubectl.sh get pods -A
  hack/cluster.sh down                  # stop it and remove everything it made
TEXT
	echo "$exports"
	echo "export GATEWAY=http://${gateway}"
}

# --- down -------------------------------------------------------------------------------

# our_shims lists the containerd shims of this cluster's containerd; they run in sessions
# of their own, outside the launcher's process group.
our_shims() { pgrep -f -- "-address ${containerd_sock}( |$)" || true; }

stop_launcher() {
	local pid
	pid=$(launcher_pid) || {
		rm -f "$pidfile"
		return 0
	}
	# The launcher stops kube-proxy and the kubelet, removes every pod sandbox through
	# containerd (cri-reset), then stops containerd and the control plane.
	kill -TERM "$pid" 2>/dev/null || true
	local deadline=$((SECONDS + 150))
	while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
	if kill -0 "$pid" 2>/dev/null; then
		say "launcher still running after 150s; killing its process group $pid"
		kill -KILL -- "-$pid" 2>/dev/null || true
	fi
	rm -f "$pidfile"
}

# reset_leftover_pods removes pod sandboxes that outlived a launcher killed before it could,
# with a containerd started for that alone.
reset_leftover_pods() {
	[[ -n $(our_shims) ]] || return 0
	[[ -f $run_dir/containerd.toml ]] || return 0
	say "pods outlived their cluster; removing them"
	containerd --config "$run_dir/containerd.toml" >"$run_dir/containerd-cleanup.log" 2>&1 8>&- &
	local cpid=$! deadline=$((SECONDS + 10))
	until [[ -S $containerd_sock ]] || ((SECONDS > deadline)); do sleep 0.1; done
	"$(paths_json | json_field nodeBinDir)/cri-reset" "unix://$containerd_sock" || true
	kill -TERM "$cpid" 2>/dev/null || true
	wait "$cpid" 2>/dev/null || true
	local shim
	for shim in $(our_shims); do kill -KILL "$shim" 2>/dev/null || true; done
}

# our_mounts lists mount points under the cluster's directories, deepest first.
our_mounts() {
	findmnt -rn -o TARGET | awk -v a="$state/" -v b="$run_dir/" -v c="$containerd_root/" \
		'index($0, a) == 1 || index($0, b) == 1 || index($0, c) == 1' | sort -r
}

# remove_chains deletes, in both address families, every rule that jumps to a chain of
# kube-proxy, the kubelet or the guard, then those chains. (The bridge plugin makes none
# with ipMasq off, nor portmap without hostPorts.)
remove_chains() {
	local tool table rule chain
	for tool in iptables ip6tables; do
		command -v "$tool" >/dev/null 2>&1 || continue
		# Only tables that exist: listing one makes iptables-nft create it.
		for table in $("$tool"-save 2>/dev/null | sed -n 's/^\*//p'); do
			for chain in $("$tool" -t "$table" -S | sed -n -E 's/^-P ([A-Z]+) .*/\1/p'); do
				# By number, last first: rules carry quoted comments that do not survive
				# being split back into arguments. Line 1 of -S CHAIN is its policy.
				for rule in $("$tool" -t "$table" -S "$chain" | awk '/ -j (KUBE-|SWITCHYARD-)/ { print NR - 1 }' | sort -rn); do
					"$tool" -t "$table" -D "$chain" "$rule" 2>/dev/null || true
				done
			done
			for chain in $("$tool" -t "$table" -S | sed -n -E 's/^-N ((KUBE-|SWITCHYARD-)[^ ]*)$/\1/p'); do
				"$tool" -t "$table" -F "$chain" 2>/dev/null || true
			done
			for chain in $("$tool" -t "$table" -S | sed -n -E 's/^-N ((KUBE-|SWITCHYARD-)[^ ]*)$/\1/p'); do
				"$tool" -t "$table" -X "$chain" 2>/dev/null || true
			done
		done
	done
}

# remove_cgroups removes the kubelet's pod cgroups (cgroupfs driver), now empty.
remove_cgroups() {
	local dir
	for dir in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
		[[ -d $dir ]] || continue
		find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true
	done
}

teardown() {
	local quiet=${1:-}
	stop_launcher
	reset_leftover_pods
	local target
	while IFS= read -r target; do
		[[ -n $target ]] || continue
		umount "$target" 2>/dev/null || umount -l "$target" 2>/dev/null || say "could not unmount $target"
	done < <(our_mounts)
	# Network namespaces of pods whose sandboxes were never removed: no process is in them.
	local ns
	for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^cni-/ { print $1 }'); do
		if [[ -z $(ip netns pids "$ns" 2>/dev/null) ]]; then ip netns delete "$ns" 2>/dev/null || true; fi
	done
	local kube_proxy
	kube_proxy="$(paths_json | json_field nodeBinDir)/kube-proxy"
	if [[ -x $kube_proxy ]] && command -v iptables >/dev/null 2>&1; then
		"$kube_proxy" --cleanup >/dev/null 2>&1 || true
	fi
	command -v iptables >/dev/null 2>&1 && remove_chains
	local link
	for link in "$pod_bridge" "$node_if"; do
		ip link show "$link" >/dev/null 2>&1 && ip link delete "$link"
	done
	remove_cgroups
	restore_sysctls
	remove_empty_tables
	remove_created
	rm -rf "$run_dir"
	[[ $quiet == quiet ]] || say "stopped"
}

# leftovers prints whatever of the cluster is still on the machine.
leftovers() {
	local pid
	pid=$(launcher_pid) && echo "launcher pid $pid"
	local shims
	shims=$(our_shims)
	[[ -z $shims ]] || echo "containerd shims: $shims"
	pgrep -f -- "--containerd-socket ${containerd_sock}" >/dev/null && echo "launcher processes"
	pgrep -f -- "containerd --config=${run_dir}/" >/dev/null && echo "containerd"
	our_mounts | sed 's/^/mount: /'
	ip netns list 2>/dev/null | awk '$1 ~ /^cni-/ { print "network namespace: " $1 }'
	local link
	for link in "$pod_bridge" "$node_if"; do
		ip link show "$link" >/dev/null 2>&1 && echo "interface: $link"
	done
	ip -o link show type veth 2>/dev/null | grep -q "master $pod_bridge" && echo "veth on $pod_bridge"
	local tool
	for tool in iptables ip6tables; do
		command -v "$tool" >/dev/null 2>&1 || continue
		"$tool"-save 2>/dev/null | grep -E '(KUBE-|SWITCHYARD-)' | sed "s/^/$tool: /" | head -5
	done
	[[ -d $run_dir ]] && echo "directory: $run_dir"
	find /var/log/containers -maxdepth 1 -type l -lname "$state/*" 2>/dev/null | sed 's/^/log link: /' | head -3
	local dir
	for dir in /sys/fs/cgroup/*/kubepods; do
		[[ -d $dir ]] && echo "cgroup: $dir"
	done
	return 0
}

cmd_down() {
	[[ $(id -u) -eq 0 ]] || die "run as root"
	lock
	if [[ -z ${CLUSTER_OWNER_ANY:-} ]] && launcher_pid >/dev/null && [[ $(owner) != "$state" ]]; then
		die "the cluster on this machine was started from $(dirname "$(dirname "$(owner)")"); take it down from there (or set CLUSTER_OWNER_ANY=1)"
	fi
	teardown
	local left
	left=$(leftovers)
	if [[ -n $left ]]; then
		printf '%s\n' "$left" | sed 's/^/cluster: left behind: /' >&2
		exit 1
	fi
}

cmd_status() {
	local pid
	if ! pid=$(launcher_pid); then
		echo "cluster: not running"
		local left
		left=$(leftovers)
		[[ -z $left ]] || printf '%s\n' "$left" | sed 's/^/cluster: left behind (hack\/cluster.sh down removes it): /'
		return 3
	fi
	local dir
	dir=$(owner)
	echo "cluster: running (launcher pid $pid), started from $(dirname "$(dirname "$dir")"); logs in $dir/logs/"
	echo "export KUBECONFIG=$dir/kubeconfig"
	"$(kubectl_bin)" --kubeconfig "$dir/kubeconfig" get nodes -o wide
	"$(kubectl_bin)" --kubeconfig "$dir/kubeconfig" get pods -A -o wide
}

case "${1:-}" in
up) cmd_up ;;
start) cmd_start ;;
down) cmd_down ;;
status) cmd_status ;;
build) cmd_build ;;
*)
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac
