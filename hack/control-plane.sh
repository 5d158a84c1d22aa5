#!/usr/bin/env bash
# A real Kubernetes control plane for tests and for poking at by hand: etcd,
# kube-apiserver and kube-controller-manager on 127.0.0.1, built from the Kubernetes Go
# modules (hack/control-plane/) and cached outside the repository.
#
#   hack/control-plane.sh build    build the binaries once per Kubernetes version (cached)
#   hack/control-plane.sh build node   also kubelet, kube-proxy and kube-scheduler, for the
#                                  single-node cluster of hack/cluster.sh (cached the same way)
#   hack/control-plane.sh up       start one in the background; prints `export KUBECONFIG=...`
#   hack/control-plane.sh down     stop what `up` started
#   hack/control-plane.sh status   say whether it runs and whether it is ready
#   hack/control-plane.sh paths    print, as JSON, where the binaries are and whether they are built
#   hack/control-plane.sh restart COMPONENT [--kill] [--down SECONDS]
#                                  stop one program of the running control plane and start it
#                                  again on the same ports (etcd keeps its data); waits until
#                                  it serves again. COMPONENT: etcd, kube-apiserver or
#                                  kube-controller-manager. --kill stops it with SIGKILL instead
#                                  of SIGTERM; --down keeps it stopped that long first
#   hack/control-plane.sh pause COMPONENT    freeze it (SIGSTOP): its sockets stay open and
#                                  nothing answers, as with a hung process
#   hack/control-plane.sh resume COMPONENT   let it run again (SIGCONT)
#
# Environment:
#   SWITCHYARD_CACHE     cache root (default: ~/.cache/switchyard); binaries go to
#                        $SWITCHYARD_CACHE/control-plane/<kubernetes version>/builds/<binary>/<hash>/,
#                        the hash being that of the binary's inputs
#   KUBEBUILDER_ASSETS   a directory with etcd, kube-apiserver and kube-controller-manager
#                        (and optionally kubectl): used instead of building those
#
# See docs/control-plane.md.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
module="$repo/hack/control-plane"
state="$repo/.cache/control-plane"
pidfile="$state/control-plane.pid"

k8s_version=$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' "$module/go.mod")
cache="${SWITCHYARD_CACHE:-${HOME}/.cache/switchyard}/control-plane/${k8s_version}"
server_programs=(etcd kube-apiserver kube-controller-manager)

die() {
	echo "control-plane: $*" >&2
	exit 1
}

# assets_usable tells whether KUBEBUILDER_ASSETS holds the server programs.
assets_usable() {
	[[ -n ${KUBEBUILDER_ASSETS:-} ]] || return 1
	local name
	for name in "${server_programs[@]}"; do
		[[ -x "$KUBEBUILDER_ASSETS/$name" ]] || return 1
	done
}

# stamp hashes what a binary is built from, so that a change to the sources rebuilds it.
stamp() { # stamp DIR: the Go module's requirements and the command's sources
	(cd "$module" && cat go.mod go.sum "$1"/*.go | sha256sum | cut -d' ' -f1)
}
supervisor_stamp() { stamp cmd/control-plane; }
kube_stamp() { stamp cmd/kube; }
node_stamp() { stamp cmd/kube-node; }
node_programs=(kubelet kube-proxy kube-scheduler cri-reset loadbalancer)

# Each binary lives in a directory named after the hash of its inputs, so that checkouts
# with different sources on one machine (a CI clone beside a working tree) each keep their
# own build instead of replacing each other's.
dir_of() { echo "$cache/builds/$1/$2"; } # dir_of BINARY STAMP
launcher_dir() { dir_of control-plane "$(supervisor_stamp)"; }
kube_dir() { dir_of kube "$(kube_stamp)"; }
node_dir() { dir_of kube-node "$(node_stamp)"; }

built() { [[ -x $1/$2 ]]; } # built DIR BINARY

# need_kube tells whether the big multi-call binary is needed: always, unless
# KUBEBUILDER_ASSETS provides every program including kubectl.
need_kube() {
	! { assets_usable && [[ -x "$KUBEBUILDER_ASSETS/kubectl" ]]; }
}

bin_dir() {
	if assets_usable; then echo "$KUBEBUILDER_ASSETS"; else kube_dir; fi
}

kubectl_path() {
	if assets_usable && [[ -x "$KUBEBUILDER_ASSETS/kubectl" ]]; then
		echo "$KUBEBUILDER_ASSETS/kubectl"
	else
		echo "$(kube_dir)/kubectl"
	fi
}

is_built() {
	built "$(launcher_dir)" control-plane || return 1
	if need_kube; then
		built "$(kube_dir)" kube || return 1
	fi
}

go_build() { # go_build PACKAGE OUTPUT
	local minor=${k8s_version#v1.}
	minor=${minor%%.*}
	# The version variables make /version, kubectl version and helm see a real release.
	local ldflags="-s -w"
	local pkg
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ldflags+=" -X ${pkg}.gitVersion=${k8s_version} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
		ldflags+=" -X ${pkg}.gitTreeState=clean"
	done
	(cd "$module" && GOTOOLCHAIN=local GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$2" "$1")
}

# build_into BINARY STAMP PACKAGE LINK...: builds into a fresh directory with links to the
# binary under each program's name, and moves it into place whole, so that no reader sees
# half of it. Caller holds the lock.
build_into() {
	local name=$1 dir
	dir=$(dir_of "$1" "$2")
	rm -rf "$dir.tmp"
	mkdir -p "$dir.tmp"
	go_build "$3" "$dir.tmp/$name"
	shift 3
	local link
	for link in "$@"; do
		ln -sfn "$name" "$dir.tmp/$link"
	done
	rm -rf "$dir"
	mv "$dir.tmp" "$dir"
	# Keep the three most recent builds of each binary: enough for a few checkouts.
	find "$cache/builds/$name" -mindepth 1 -maxdepth 1 -type d ! -name '*.tmp' -printf '%T@ %p\n' |
		sort -rn | tail -n +4 | cut -d' ' -f2- | xargs -r rm -rf
}

cmd_build() {
	if ! command -v go >/dev/null 2>&1; then
		die "Go is not installed. Building the test control plane needs Go $(awk '$1 == "go" { print $2; exit }' "$module/go.mod") or newer (https://go.dev/dl/), or KUBEBUILDER_ASSETS pointing at etcd, kube-apiserver, kube-controller-manager and kubectl binaries (the small launcher is still built with Go)."
	fi
	mkdir -p "$cache"
	# Parallel test workers may all ask for a build: one builds, the others wait for it.
	exec 9>"$cache/.lock"
	flock 9
	if ! built "$(launcher_dir)" control-plane; then
		echo "control-plane: building the launcher" >&2
		build_into control-plane "$(supervisor_stamp)" ./cmd/control-plane
	fi
	local start
	if need_kube && ! built "$(kube_dir)" kube; then
		echo "control-plane: building etcd, kube-apiserver, kube-controller-manager and kubectl ${k8s_version} into $(kube_dir)" >&2
		echo "control-plane: the first build takes a long time (see docs/control-plane.md); later ones reuse the cache" >&2
		start=$SECONDS
		build_into kube "$(kube_stamp)" ./cmd/kube "${server_programs[@]}" kubectl
		echo "control-plane: built in $((SECONDS - start))s" >&2
	fi
	# The node's programs, for hack/cluster.sh: a binary of its own, since the
	# control-plane tests need none of it.
	if [[ ${1:-} == node ]] && ! built "$(node_dir)" kube-node; then
		echo "control-plane: building kubelet, kube-proxy and kube-scheduler ${k8s_version} into $(node_dir)" >&2
		start=$SECONDS
		build_into kube-node "$(node_stamp)" ./cmd/kube-node "${node_programs[@]}"
		echo "control-plane: built kube-node in $((SECONDS - start))s" >&2
	fi
	flock -u 9
}

cmd_paths() {
	local ok=false node=false
	if is_built; then ok=true; fi
	if built "$(node_dir)" kube-node; then node=true; fi
	printf '{"built":%s,"version":"%s","controlPlane":"%s","binDir":"%s","kubectl":"%s","nodeBuilt":%s,"nodeBinDir":"%s"}\n' \
		"$ok" "$k8s_version" "$(launcher_dir)/control-plane" "$(bin_dir)" "$(kubectl_path)" "$node" "$(node_dir)"
}

running_pid() {
	[[ -f $pidfile ]] || return 1
	local pid
	pid=$(cat "$pidfile")
	[[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
	# A stale pid file may name a process that reused the number.
	grep -q control-plane "/proc/$pid/cmdline" 2>/dev/null || return 1
	echo "$pid"
}

cmd_up() {
	if pid=$(running_pid); then
		echo "control-plane: already running (pid $pid)" >&2
		echo "export KUBECONFIG=$state/kubeconfig"
		return 0
	fi
	is_built || cmd_build
	mkdir -p "$state"
	rm -f "$state/ready.json"
	local start=$EPOCHREALTIME
	# setsid makes the launcher lead a process group of its own, so `down` can end the
	# launcher and everything it started without touching anything else.
	setsid "$(launcher_dir)/control-plane" run --dir "$state" --bin-dir "$(bin_dir)" \
		</dev/null >"$state/control-plane.log" 2>&1 &
	local pid=$!
	echo "$pid" >"$pidfile"
	local deadline=$((SECONDS + 180))
	until [[ -f $state/ready.json ]]; do
		if ! kill -0 "$pid" 2>/dev/null; then
			rm -f "$pidfile"
			tail -n 40 "$state/control-plane.log" >&2
			die "failed to start; logs in $state/logs/"
		fi
		((SECONDS < deadline)) || {
			cmd_down
			die "not ready after 180s; logs in $state/logs/"
		}
		sleep 0.1
	done
	local elapsed
	elapsed=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
	echo "control-plane: ready in ${elapsed}s at $(sed -n 's/.*"server":"\([^"]*\)".*/\1/p' "$state/ready.json") (pid $pid, logs in $state/logs/)" >&2
	echo "export KUBECONFIG=$state/kubeconfig"
}

# group_running tells whether a process group still has a live member. A member that has
# exited but is not yet reaped by its new parent (a zombie) no longer counts.
group_running() {
	local member state
	for member in $(pgrep -g "$1"); do
		state=$(awk '{ print $3 }' "/proc/$member/stat" 2>/dev/null) || continue
		[[ $state == Z ]] || return 0
	done
	return 1
}

cmd_down() {
	local pid
	if ! pid=$(running_pid); then
		rm -f "$pidfile"
		echo "control-plane: not running" >&2
		return 0
	fi
	# The launcher stops its programs in order on SIGTERM; the group kill afterwards only
	# matters if it could not.
	kill -TERM "$pid" 2>/dev/null || true
	local deadline=$((SECONDS + 30))
	while group_running "$pid" && ((SECONDS < deadline)); do
		sleep 0.1
	done
	if group_running "$pid"; then
		echo "control-plane: still running after 30s, killing process group $pid" >&2
		kill -KILL -- "-$pid" 2>/dev/null || true
	fi
	rm -f "$pidfile"
	echo "control-plane: stopped" >&2
}

cmd_status() {
	local pid
	if ! pid=$(running_pid); then
		echo "control-plane: not running"
		return 3
	fi
	if [[ -f $state/ready.json ]] && "$(kubectl_path)" --kubeconfig "$state/kubeconfig" get --raw /readyz >/dev/null 2>&1; then
		echo "control-plane: ready (pid $pid), $(cat "$state/ready.json")"
		echo "export KUBECONFIG=$state/kubeconfig"
	else
		echo "control-plane: running (pid $pid) but not ready; logs in $state/logs/"
		return 1
	fi
}

# cmd_fault ACTION COMPONENT [--kill] [--down SECONDS]: asks the running launcher, through
# its control socket, to restart, pause or resume one of its programs.
cmd_fault() {
	local action=$1
	shift
	[[ $# -ge 1 ]] || die "usage: $0 $action COMPONENT"
	local component=$1
	shift
	case "$component" in
	etcd | kube-apiserver | kube-controller-manager) ;;
	*) die "$action: COMPONENT is etcd, kube-apiserver or kube-controller-manager, not \"$component\"" ;;
	esac
	local flags=()
	while [[ $# -gt 0 ]]; do
		case "$1" in
		--kill) flags+=(--signal KILL) ;;
		--down)
			[[ $# -ge 2 && $2 =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--down takes a number of seconds"
			flags+=(--down "${2}s")
			shift
			;;
		*) die "$action: unknown option $1" ;;
		esac
		shift
	done
	[[ $action == restart || ${#flags[@]} -eq 0 ]] || die "$action takes no options"
	local pid
	pid=$(running_pid) || die "not running; start it with: $0 up"
	# The running launcher's own binary: the sources may have changed since it started.
	"$(readlink "/proc/$pid/exe")" ctl --dir "$state" "${flags[@]}" "$action" "$component" >/dev/null
	echo "control-plane: $action $component: done" >&2
}

case "${1:-}" in
build) cmd_build "${2:-}" ;;
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
paths) cmd_paths ;;
restart | pause | resume) cmd_fault "$@" ;;
*)
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac
