#!/usr/bin/env bash
# kubectl built from the same Kubernetes release as the test control plane.
# Talks to the one `hack/control-plane.sh up` started unless KUBECONFIG says otherwise.
set -euo pipefail
hack=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
paths=$("$hack/control-plane.sh" paths)
if [[ $paths != *'"built":true'* ]]; then
	"$hack/control-plane.sh" build
	paths=$("$hack/control-plane.sh" paths)
fi
kubectl=$(sed -n 's/.*"kubectl":"\([^"]*\)".*/\1/p' <<<"$paths")
if [[ -z ${KUBECONFIG:-} && -f $hack/../.cache/control-plane/kubeconfig ]]; then
	export KUBECONFIG="$hack/../.cache/control-plane/kubeconfig"
fi
exec "$kubectl" "$@"
