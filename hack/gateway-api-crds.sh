#!/usr/bin/env bash
# The Gateway API's standard-channel CRDs in crds/gateway-api/, from the Go module of the
# release named in crds/gateway-api/VERSION (served by the Go module proxy).
#
#   hack/gateway-api-crds.sh update   copy the release's files over the committed ones
#   hack/gateway-api-crds.sh check    exit 1 when a committed file differs from the release
#
# Needs Go. The module is downloaded into Go's module cache.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=$repo/crds/gateway-api
version=$(cat "$dir/VERSION")

die() {
	echo "gateway-api-crds: $*" >&2
	exit 1
}

command -v go >/dev/null 2>&1 || die "Go is needed to download sigs.k8s.io/gateway-api@${version}"
module=$(cd "$repo" && GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/gateway-api@${version}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[[ -d $module ]] || die "could not download sigs.k8s.io/gateway-api@${version}"

# The files the release's kustomization installs, in its order.
mapfile -t files < <(awk '$1 == "-" && $2 ~ /^standard\// { sub("standard/", "", $2); print $2 }' "$module/config/crd/kustomization.yaml")
[[ ${#files[@]} -gt 0 ]] || die "no standard CRDs listed in $module/config/crd/kustomization.yaml"

case "${1:-}" in
update)
	rm -f "$dir"/gateway.networking.k8s.io_*.yaml
	for f in "${files[@]}"; do install -m 0644 "$module/config/crd/standard/$f" "$dir/$f"; done
	install -m 0644 "$module/LICENSE" "$dir/LICENSE"
	echo "gateway-api-crds: ${#files[@]} CRD files of ${version} in crds/gateway-api/"
	;;
check)
	stale=0
	for f in "${files[@]}" ; do
		cmp -s "$module/config/crd/standard/$f" "$dir/$f" || { echo "crds/gateway-api/$f differs from ${version}" >&2; stale=1; }
	done
	for f in "$dir"/gateway.networking.k8s.io_*.yaml; do
		[[ " ${files[*]} " == *" $(basename "$f") "* ]] || { echo "crds/gateway-api/$(basename "$f") is not part of ${version}" >&2; stale=1; }
	done
	cmp -s "$module/LICENSE" "$dir/LICENSE" || { echo "crds/gateway-api/LICENSE differs from ${version}" >&2; stale=1; }
	exit "$stale"
	;;
*)
	echo "usage: hack/gateway-api-crds.sh update|check" >&2
	exit 2
	;;
esac
