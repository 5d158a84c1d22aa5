#!/usr/bin/env bash
# Switchyard on this machine, without a cluster: the test control plane (etcd,
# kube-apiserver, kube-controller-manager), the CRDs, the operator, two data
# planes (traffic on :8080 and :8090) and the example services, with the
# example routes applied.
#
#   hack/dev-cluster.sh up      start everything (builds the control plane the first time)
#   hack/dev-cluster.sh down    stop everything that `up` started
#   hack/dev-cluster.sh status  what runs
#
# Logs and pid files: .cache/dev-cluster/. See README "Try the operator without a cluster".
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state="$repo/.cache/dev-cluster"
node="$repo/node_modules/.bin/node"
kubectl="$repo/hack/kubectl.sh"
export KUBECONFIG="$repo/.cache/control-plane/kubeconfig"

die() {
	echo "dev-cluster: $*" >&2
	exit 1
}

start() { # start NAME COMMAND...: run in the background, remember the pid
	local name=$1
	shift
	setsid "$@" </dev/null >"$state/$name.log" 2>&1 &
	echo $! >"$state/$name.pid"
}

wait_for_log() { # wait_for_log NAME TEXT
	local deadline=$((SECONDS + 60))
	until grep -q "$2" "$state/$1.log" 2>/dev/null; do
		((SECONDS < deadline)) || die "$1 did not start; see $state/$1.log"
		sleep 0.2
	done
}

cmd_up() {
	[[ -x $node ]] || die "run 'npm ci' first"
	mkdir -p "$state"
	"$repo/hack/control-plane.sh" up >/dev/null
	"$kubectl" apply -f "$repo/crds/" >/dev/null
	"$kubectl" wait --for=condition=Established --timeout=60s crd/gatewayroutes.switchyard.dev crd/upstreams.switchyard.dev >/dev/null

	local token jwt
	token=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
	jwt=$(head -c 48 /dev/urandom | base64 | tr -d '/+=')
	printf '%s\n' "$token" >"$state/token"
	chmod 600 "$state/token"
	# The data planes run with the chart's own bootstrap config: the same auth, default rate limit and CORS as `helm install`.
	"$node" "$repo/hack/chart-bootstrap.ts" >"$state/gateway.yaml"

	# kubectl switchyard asks the operator's aggregated API through the API server, which
	# checks this certificate against the APIService's caBundle for the Service's name.
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 -subj /CN=switchyard-observe \
		-addext subjectAltName=DNS:switchyard-observe.default.svc -addext basicConstraints=critical,CA:TRUE \
		-keyout "$state/observe.key" -out "$state/observe.crt" 2>/dev/null

	JWT_SECRET=$jwt start services "$node" "$repo/examples/dev-cluster/services.ts"
	wait_for_log services 'example services'
	start operator "$node" "$repo/operator/bin/switchyard-operator.ts" --kubeconfig "$KUBECONFIG" \
		--listen 127.0.0.1:18000 --metrics 127.0.0.1:9091 --token-file "$state/token" \
		--lease-namespace default --identity dev-operator \
		--api-listen 127.0.0.1:18443 --api-cert-file "$state/observe.crt" --api-key-file "$state/observe.key"
	wait_for_log operator '"event":"listening"'
	# The API server refuses to proxy to loopback endpoints; an ExternalName Service for
	# localhost is how it reaches an operator on this machine (a cluster uses the chart's Service).
	"$kubectl" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Service
metadata: { name: switchyard-observe, namespace: default }
spec: { type: ExternalName, externalName: localhost }
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: { name: v1alpha1.observe.switchyard.dev }
spec:
  group: observe.switchyard.dev
  version: v1alpha1
  service: { name: switchyard-observe, namespace: default, port: 18443 }
  caBundle: $(base64 -w0 "$state/observe.crt")
  groupPriorityMinimum: 1000
  versionPriority: 15
YAML
	local i=0 port
	for port in 8080 8090; do
		i=$((i + 1))
		JWT_SECRET=$jwt GATEWAY_SERVER_HTTP_PORT=$port GATEWAY_SERVER_ADMIN_PORT=$((port + 1)) GATEWAY_SERVER_METRICS_PORT=$((9090 + i * 10)) \
			start "dataplane-$i" "$node" "$repo/dataplane/bin/switchyard-dataplane.ts" --config "$state/gateway.yaml" \
			--operator http://127.0.0.1:18000 --token-file "$state/token" --dataplane-id "dev-dataplane-$i" --state-dir "$state/dataplane-$i"
		wait_for_log "dataplane-$i" '"event":"listening"'
	done

	"$kubectl" apply -f "$repo/examples/kubernetes/00-namespace.yaml" >/dev/null
	"$kubectl" apply -f "$repo/examples/dev-cluster/upstreams.yaml" >/dev/null
	"$kubectl" apply -f "$repo/examples/kubernetes/20-routes.yaml" >/dev/null
	"$kubectl" wait --for=condition=Programmed --timeout=60s gatewayroute --all -n shop >/dev/null 2>&1 || true

	cat <<TEXT
dev-cluster: up
  data planes   http://127.0.0.1:8080 and http://127.0.0.1:8090 (admin :8081 and :8091)
  operator      config server 127.0.0.1:18000, metrics http://127.0.0.1:9091/metrics
  logs          $state/

Try:
  export KUBECONFIG=$KUBECONFIG
  hack/kubectl.sh get gwr,ups -n shop
  curl -s -XPOST localhost:8080/auth/register -H 'content-type: application/json' -d '{"username":"alice","password":"password123"}'
  TOKEN=\$(curl -s -XPOST localhost:8080/auth/login -H 'content-type: application/json' -d '{"username":"alice","password":"password123"}' | sed -E 's/.*"token":"([^"]+)".*/\\1/')
  curl -s localhost:8090/api/v1/users/me -H "authorization: Bearer \$TOKEN"
  hack/kubectl.sh apply -f examples/kubernetes/30-canary.yaml   # then: hack/kubectl.sh describe gwr orders -n shop
  node_modules/.bin/node kubectl/bin/kubectl-switchyard.ts status   # or, with the plugin on PATH: kubectl switchyard status
  node_modules/.bin/node kubectl/bin/kubectl-switchyard.ts explain -n shop GET /api/v1/users/me
  dashboards    http://127.0.0.1:8081/dashboard and http://127.0.0.1:8091/dashboard
Stop with: hack/dev-cluster.sh down
TEXT
}

cmd_down() {
	local f pid
	for f in "$state"/*.pid; do
		[[ -e $f ]] || continue
		pid=$(cat "$f")
		kill -TERM -- "-$pid" 2>/dev/null || true
		rm -f "$f"
	done
	"$repo/hack/control-plane.sh" down >/dev/null 2>&1 || true
	echo "dev-cluster: down"
}

cmd_status() {
	local f pid
	for f in "$state"/*.pid; do
		[[ -e $f ]] || continue
		pid=$(cat "$f")
		if kill -0 "$pid" 2>/dev/null; then echo "$(basename "$f" .pid): running (pid $pid)"; else echo "$(basename "$f" .pid): stopped"; fi
	done
	"$repo/hack/control-plane.sh" status || true
}

case ${1:-} in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
*)
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac
