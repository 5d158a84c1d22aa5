#!/usr/bin/env bash
# The container images of the single-node cluster (hack/cluster.sh), built on this machine
# with buildah: no registry and no Docker engine is needed, only Debian's packages, the npm
# registry and the Go module proxy. Each image is rebuilt only when its inputs change (a
# hash of them is kept beside it), and saved as a docker-archive that containerd imports.
#
#   hack/images.sh build    build the images whose inputs changed (cached)
#   hack/images.sh list     print NAME REF ARCHIVE STAMP, one line per image to import
#
# The images:
#   node        Debian bookworm from Debian's packages (mmdebstrap) plus Node.js from the
#               npm `node` package this repository installs and npm from the npm registry;
#               the Dockerfile's NODE_IMAGE, in place of node:24-bookworm-slim
#   dataplane, operator, examples
#               the project's Dockerfile, unchanged, one target each (buildah build)
#   pause       the pod sandbox (hack/control-plane/cmd/pause)
#   coredns     the cluster's DNS (hack/coredns)
#
# Environment:
#   SWITCHYARD_CACHE   cache root (default: ~/.cache/switchyard); images go to
#                      $SWITCHYARD_CACHE/images/
#   IMAGES_CONTEXT     the directory whose sources the project's images are built from, e.g.
#                      an export of one commit (git archive HEAD | tar -x -C DIR); default:
#                      this checkout, uncommitted changes included
#   BUILD_CA_BUNDLE    the CA bundle mounted into the Dockerfile's RUN steps, so that `npm ci`
#                      trusts what the host trusts, a TLS-inspecting proxy included
#                      (default: /etc/ssl/certs/ca-certificates.crt; empty: mount none)
#
# Needs root, buildah and mmdebstrap (hack/install-node-deps.sh), Go, and `npm ci` done.
# See docs/testing.md ("The node tier").
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache="${SWITCHYARD_CACHE:-${HOME}/.cache/switchyard}/images"
ca_bundle=${BUILD_CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}
context=${IMAGES_CONTEXT:-$repo}

# The npm that Node.js 24.21.0 bundles (its changelog: "upgrade npm to 11.19.0"); the npm
# `node` package carries the node binary alone. Move both together.
npm_version=11.19.0
node_version=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$repo/node_modules/node/package.json" 2>/dev/null || true)
node_binary=$repo/node_modules/node/bin/node

# The references pods and the Dockerfile use. The project's images carry the tag
# hack/kind-up.sh uses too; examples/kubernetes/services/ names switchyard/examples:dev.
node_ref="localhost/switchyard/node:${node_version}-bookworm"
pause_ref=localhost/switchyard/pause:v1
coredns_ref=localhost/switchyard/coredns:v1.13.1
targets=(dataplane operator examples)

die() {
	echo "images: $*" >&2
	exit 1
}
say() { echo "images: $*" >&2; }

sha() { sha256sum | cut -d' ' -f1; }

# recipe hashes the code of the functions that build an image: changing how an image is
# made rebuilds it.
recipe() { declare -f "$@" | sha; }

built() { # built NAME STAMP
	[[ -f $cache/$1.tar && -f $cache/$1.stamp && $(cat "$cache/$1.stamp") == "$2" ]]
}

# save REF NAME STAMP: the docker-archive containerd imports (an OCI archive without a
# reference name would import nothing), then the stamp that marks it current.
save() {
	rm -f "$cache/$2.tar.tmp"
	buildah push --quiet "$1" "docker-archive:$cache/$2.tar.tmp:$1" >/dev/null
	mv -f "$cache/$2.tar.tmp" "$cache/$2.tar"
	echo "$3" >"$cache/$2.stamp"
}

go_static() { # go_static MODULE_DIR PACKAGE OUTPUT
	(cd "$1" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$3" "$2")
}

# --- node: the Dockerfile's base ------------------------------------------------------

build_node() {
	local work=$cache/work/node
	rm -rf "$work"
	mkdir -p "$work"
	say "node: Debian bookworm root filesystem (mmdebstrap)"
	mmdebstrap --quiet --variant=minbase --include=ca-certificates bookworm "$work/rootfs.tar"
	say "node: npm ${npm_version} from the npm registry"
	(cd "$work" && npm pack --silent "npm@${npm_version}" >/dev/null)
	local ctr
	ctr=$(buildah from --quiet scratch)
	buildah add --quiet "$ctr" "$work/rootfs.tar" / >/dev/null
	buildah copy --quiet --chmod 0755 "$ctr" "$node_binary" /usr/local/bin/node >/dev/null
	mkdir -p "$work/npm"
	tar -xzf "$work/npm-${npm_version}.tgz" -C "$work/npm"
	buildah copy --quiet "$ctr" "$work/npm/package" /usr/local/lib/node_modules/npm >/dev/null
	# As the official image: npm and npx on PATH, and a `node` user with uid and gid 1000.
	# No network: buildah's default one (CNI) would leave a bridge, iptables chains and
	# ip_forward=1 on the host.
	buildah run --network none "$ctr" -- sh -ec '
		ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm
		ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx
		groupadd --gid 1000 node
		useradd --uid 1000 --gid node --shell /bin/bash --create-home node
		rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
		node --version >/dev/null && npm --version >/dev/null'
	buildah config --env NODE_VERSION="$node_version" --cmd '["node"]' "$ctr"
	buildah commit --quiet --rm "$ctr" "$node_ref" >/dev/null
	rm -rf "$work"
}

node_stamp() {
	{
		recipe build_node
		echo "$node_ref $npm_version"
		sha256sum <"$node_binary"
	} | sha
}

ensure_node() {
	local s
	s=$(node_stamp)
	if [[ -f $cache/node.stamp && $(cat "$cache/node.stamp") == "$s" ]] && buildah inspect --type image "$node_ref" >/dev/null 2>&1; then
		return 0
	fi
	local start=$SECONDS
	build_node
	echo "$s" >"$cache/node.stamp"
	say "node: built ${node_ref} in $((SECONDS - start))s"
}

# --- the project's Dockerfile ---------------------------------------------------------

# context_stamp hashes what the Dockerfile's build context holds (.dockerignore lets in
# these paths only) and the base it builds on.
context_stamp() {
	{
		recipe build_targets
		cat "$cache/node.stamp"
		cd "$context"
		find Dockerfile .dockerignore package.json package-lock.json dataplane operator \
			examples/services.ts examples/kubernetes/services/serve.ts -type f -print0 |
			sort -z | xargs -0 sha256sum
	} | sha
}

build_targets() {
	local mounts=()
	if [[ -n $ca_bundle ]]; then
		[[ -r $ca_bundle ]] || die "BUILD_CA_BUNDLE=$ca_bundle is not readable"
		# Build-time mounts: npm in the RUN steps trusts the host's CAs, and nothing of
		# the host ends up in a layer.
		printf 'cafile=/etc/ssl/certs/ca-certificates.crt\n' >"$cache/npmrc"
		mounts=(-v "$ca_bundle:/etc/ssl/certs/ca-certificates.crt:ro" -v "$cache/npmrc:/root/.npmrc:ro")
	fi
	local target
	for target in "${targets[@]}"; do
		say "${target}: buildah build --target ${target} (the project's Dockerfile)"
		# --network host: npm ci reaches the registry as the host does. --layers: the
		# dependency layer is reused while package-lock.json stays the same.
		buildah build --quiet --layers --network host --pull=never \
			--build-arg NODE_IMAGE="$node_ref" "${mounts[@]}" \
			--target "$target" -t "switchyard/${target}:dev" -f "$context/Dockerfile" "$context" >/dev/null
	done
}

ensure_targets() {
	local s target missing=false
	s=$(context_stamp)
	for target in "${targets[@]}"; do
		built "$target" "$s" || missing=true
	done
	$missing || return 0
	local start=$SECONDS
	build_targets
	for target in "${targets[@]}"; do
		save "switchyard/${target}:dev" "$target" "$s"
	done
	# Earlier builds of the same tags are left untagged: drop them.
	buildah rmi --prune >/dev/null 2>&1 || true
	say "dataplane, operator, examples: built in $((SECONDS - start))s"
}

# --- pause and coredns: static Go binaries in images from scratch ----------------------

build_pause() {
	local work=$cache/work/pause
	mkdir -p "$work"
	go_static "$repo/hack/control-plane" ./cmd/pause "$work/pause"
	local ctr
	ctr=$(buildah from --quiet scratch)
	buildah copy --quiet --chmod 0755 "$ctr" "$work/pause" /pause >/dev/null
	buildah config --entrypoint '["/pause"]' --user 65535:65535 "$ctr"
	buildah commit --quiet --rm "$ctr" "$pause_ref" >/dev/null
	rm -rf "$work"
}

pause_stamp() {
	{
		recipe build_pause go_static
		echo "$pause_ref"
		go version
		cat "$repo/hack/control-plane/cmd/pause/"*.go
	} | sha
}

build_coredns() {
	local work=$cache/work/coredns
	mkdir -p "$work"
	go_static "$repo/hack/coredns" . "$work/coredns"
	local ctr
	ctr=$(buildah from --quiet scratch)
	buildah copy --quiet --chmod 0755 "$ctr" "$work/coredns" /coredns >/dev/null
	buildah config --entrypoint '["/coredns"]' --port 53/udp --port 53/tcp "$ctr"
	buildah commit --quiet --rm "$ctr" "$coredns_ref" >/dev/null
	rm -rf "$work"
}

coredns_stamp() {
	{
		recipe build_coredns go_static
		echo "$coredns_ref"
		go version
		cd "$repo/hack/coredns"
		cat go.mod go.sum ./*.go
	} | sha
}

ensure_go_image() { # ensure_go_image NAME REF
	local s
	s=$("${1}_stamp")
	built "$1" "$s" && return 0
	local start=$SECONDS
	say "$1: building"
	"build_$1"
	save "$2" "$1" "$s"
	say "$1: built $2 in $((SECONDS - start))s"
}

# --------------------------------------------------------------------------------------

preflight() {
	[[ $(id -u) -eq 0 ]] || die "building the images needs root (buildah's storage and mmdebstrap)"
	local tool missing=()
	for tool in buildah mmdebstrap; do
		command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
	done
	((${#missing[@]} == 0)) || die "missing ${missing[*]}: run hack/install-node-deps.sh (as root)"
	command -v go >/dev/null 2>&1 || die "Go is not installed; the pause and CoreDNS images are built with it (Go $(awk '$1 == "go" { print $2; exit }' "$repo/hack/coredns/go.mod") or newer)"
	command -v npm >/dev/null 2>&1 || die "npm is not installed; it fetches npm itself for the Node.js base image"
	[[ -n $node_version && -x $node_binary ]] || die "node_modules/node is missing: run npm ci first"
	[[ -f $context/Dockerfile ]] || die "IMAGES_CONTEXT=$context holds no Dockerfile"
}

cmd_build() {
	preflight
	mkdir -p "$cache"
	# buildah sets up its CNI configuration on first use, in /etc/cni unless told
	# otherwise: keep it in the cache, so that building leaves nothing on the host.
	printf '[network]\nnetwork_config_dir = "%s"\n' "$cache/buildah-cni" >"$cache/containers.conf"
	export CONTAINERS_CONF=$cache/containers.conf
	exec 9>"$cache/.lock"
	flock 9
	ensure_node
	ensure_targets
	ensure_go_image pause "$pause_ref"
	ensure_go_image coredns "$coredns_ref"
	flock -u 9
}

cmd_list() {
	local name
	for name in pause coredns "${targets[@]}"; do
		[[ -f $cache/$name.tar && -f $cache/$name.stamp ]] || die "$name is not built: run hack/images.sh build"
	done
	echo "pause $pause_ref $cache/pause.tar $(cat "$cache/pause.stamp")"
	echo "coredns $coredns_ref $cache/coredns.tar $(cat "$cache/coredns.stamp")"
	for name in "${targets[@]}"; do
		echo "$name switchyard/${name}:dev $cache/$name.tar $(cat "$cache/$name.stamp")"
	done
}

case "${1:-}" in
build) cmd_build ;;
list) cmd_list ;;
*)
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac
