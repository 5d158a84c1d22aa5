#!/usr/bin/env bash
# Helm, built from its Go module (hack/helm/go.mod pins the release) and cached outside
# the repository, like the test control plane.
#
#   hack/helm.sh ARGS...     run helm with ARGS, building it first if needed
#   hack/helm.sh build       build it once per Helm version (cached)
#   hack/helm.sh path        print the binary's path, building it first if needed
#
# Environment:
#   SWITCHYARD_CACHE   cache root (default: ~/.cache/switchyard); the binary goes to
#                      $SWITCHYARD_CACHE/helm/<helm version>/helm
#
# Helm has no `build` or `path` command of its own, so these names shadow nothing.
set -euo pipefail

module="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/helm"
helm_version=$(awk '$1 == "helm.sh/helm/v4" { print $2; exit }' "$module/go.mod")
[[ -n $helm_version ]] || {
	echo "helm: no helm.sh/helm/v4 requirement in $module/go.mod" >&2
	exit 1
}
cache="${SWITCHYARD_CACHE:-${HOME}/.cache/switchyard}/helm/${helm_version}"
binary="$cache/helm"

stamp() { (cd "$module" && cat go.mod go.sum | sha256sum | cut -d' ' -f1); }

built() { [[ -x $binary && -f $binary.stamp && $(cat "$binary.stamp") == "$(stamp)" ]]; }

cmd_build() {
	if ! command -v go >/dev/null 2>&1; then
		echo "helm: Go is not installed. Building Helm needs Go $(awk '$1 == "go" { print $2; exit }' "$module/go.mod") or newer (https://go.dev/dl/)." >&2
		exit 1
	fi
	mkdir -p "$cache"
	# Parallel test workers may all ask for a build: one builds, the others wait for it.
	exec 9>"$cache/.lock"
	flock 9
	if ! built; then
		echo "helm: building Helm ${helm_version} into ${cache}" >&2
		local start=$SECONDS
		# The same variables Helm's own Makefile sets for a tagged release, so that
		# `helm version` names the release. The module proxy serves no commit hash.
		local pkg=helm.sh/helm/v4/internal/version
		local ldflags="-s -w -X ${pkg}.version=${helm_version} -X ${pkg}.metadata= -X ${pkg}.gitTreeState=clean"
		(cd "$module" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod \
			go build -trimpath -ldflags "$ldflags" -o "$binary.tmp" helm.sh/helm/v4/cmd/helm)
		mv -f "$binary.tmp" "$binary"
		stamp >"$binary.stamp"
		echo "helm: built in $((SECONDS - start))s" >&2
	fi
	flock -u 9
}

case "${1:-}" in
build) cmd_build ;;
path)
	built || cmd_build
	echo "$binary"
	;;
*)
	built || cmd_build
	exec "$binary" "$@"
	;;
esac
