#!/usr/bin/env bash
# A kind cluster running Switchyard with the example services and routes, for
# trying it on a laptop. Needs Docker, kind and kubectl; Helm comes from
# hack/helm.sh. Not run in CI (the test machines have no Docker).
#
#   hack/kind-up.sh            create (or reuse) the cluster, build and load the
#                              images, install the chart, deploy the examples
#   hack/kind-up.sh delete     delete the cluster
#
# Environment:
#   CLUSTER        kind cluster name (default: switchyard)
#   GATEWAY_PORT   host port mapped to the gateway (default: 8080)
#   TAG            image tag (default: dev)
#
# Afterwards the gateway answers on http://127.0.0.1:$GATEWAY_PORT; hack/kind-e2e.sh
# sends requests through it.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cluster=${CLUSTER:-switchyard}
gateway_port=${GATEWAY_PORT:-8080}
tag=${TAG:-dev}
ns=switchyard-system
# The gateway's NodePort inside the cluster, mapped to $GATEWAY_PORT on the host.
node_port=30080

say() { printf '\n==> %s\n' "$*" >&2; }
die() {
	echo "kind-up: $*" >&2
	exit 1
}

for tool in docker kind kubectl; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (see https://kind.sigs.k8s.io/docs/user/quick-start/)"
done
docker info >/dev/null 2>&1 || die "Docker is not running"

if [[ ${1:-} == delete ]]; then
	kind delete cluster --name "$cluster"
	exit 0
fi

context="kind-${cluster}"
kc() { kubectl --context "$context" "$@"; }

if kind get clusters | grep -qx "$cluster"; then
	say "reusing kind cluster ${cluster}"
else
	say "creating kind cluster ${cluster} (gateway on host port ${gateway_port})"
	kind create cluster --name "$cluster" --wait 120s --config - <<YAML
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
    extraPortMappings:
      - containerPort: ${node_port}
        hostPort: ${gateway_port}
        listenAddress: 127.0.0.1
        protocol: TCP
YAML
fi

say "building the images (tag ${tag})"
for target in dataplane operator examples; do
	docker build --target "$target" -t "switchyard/${target}:${tag}" "$repo"
	kind load docker-image --name "$cluster" "switchyard/${target}:${tag}"
done

say "the JWT secret shared by the gateway and the example auth service"
kc apply -f "$repo/examples/kubernetes/00-namespace.yaml"
kc create namespace "$ns" --dry-run=client -o yaml | kc apply -f -
if ! kc -n "$ns" get secret jwt-secret >/dev/null 2>&1; then
	secret=$(head -c 48 /dev/urandom | base64 | tr -d '/+=\n')
	kc -n "$ns" create secret generic jwt-secret --from-literal=secret="$secret"
fi
secret=$(kc -n "$ns" get secret jwt-secret -o jsonpath='{.data.secret}' | base64 -d)
kc -n shop create secret generic jwt-secret --from-literal=secret="$secret" --dry-run=client -o yaml | kc apply -f -

say "installing the chart"
"$repo/hack/helm.sh" upgrade --install switchyard "$repo/charts/switchyard" \
	--kube-context "$context" --namespace "$ns" \
	--set operator.image.tag="$tag" --set dataplane.image.tag="$tag" \
	--set dataplane.replicas=2 \
	--set dataplane.service.type=NodePort --set dataplane.service.nodePorts.http="$node_port" \
	--set jwt.existingSecret=jwt-secret \
	--wait --timeout 5m

say "deploying the example services and applying the example routes"
kc apply -f "$repo/examples/kubernetes/services/"
kc apply -f "$repo/examples/kubernetes/"
kc -n shop rollout status deployment --timeout=180s
kc -n shop wait --for=condition=Programmed --timeout=120s gatewayroute --all

kc get gwr -A
cat >&2 <<TEXT

Switchyard runs in kind cluster ${cluster}. The gateway: http://127.0.0.1:${gateway_port}

  curl -i http://127.0.0.1:${gateway_port}/health
  hack/kind-e2e.sh                      # register, log in, call the protected routes
  kubectl --context ${context} get gwr -A
  hack/kind-up.sh delete                # remove the cluster
TEXT
