#!/usr/bin/env bash
# The Gateway API conformance suite (sigs.k8s.io/gateway-api/conformance, the release of
# crds/gateway-api/VERSION) against the single-node cluster of hack/cluster.sh, with the
# GATEWAY-HTTP profile. The suite reads the features to test from the GatewayClass's
# status (operator/src/compile/gateway-api/gateway-classes.ts, SUPPORTED_FEATURES).
#
#   hack/conformance.sh        build what is missing, start the cluster if it is not running
#                              (and stop it again afterwards), install the chart with the
#                              Gateway API on, run the suite, write docs/conformance/report.yaml
#   hack/conformance.sh build  build the suite and its backend images only (cached)
#
# Built from the Go module proxy, cached by the hash of their inputs:
#   - the suite, as a test binary (hack/conformance/, go test -c)
#   - the backends its manifests run, as images under the names they use (nothing can be
#     pulled here): registry.k8s.io/gateway-api/echo-basic:{v1.5.1,v1.6.0-dev.2,v1.6.0-dev.3},
#     one static echo-basic of the suite's module tagged three times, and
#     registry.k8s.io/coredns/coredns:v1.12.2 (hack/conformance/coredns: CoreDNS v1.12.2 with
#     the plugins the suite's Corefile names)
#
# Environment:
#   SWITCHYARD_CACHE     cache root (default: ~/.cache/switchyard); builds go to conformance/
#   CONFORMANCE_RUN      run one test (the suite's -run-test), e.g. HTTPRouteSimpleSameNamespace
#   CONFORMANCE_REPORT   where the report goes (default: docs/conformance/report.yaml)
#   CONFORMANCE_KEEP     1: leave the cluster running when this script started it
#
# Needs root (buildah, containerd, the node), Go, buildah and `npm ci` done; see
# docs/conformance/README.md.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
hack=$repo/hack
module=$hack/conformance
cache=${SWITCHYARD_CACHE:-${HOME}/.cache/switchyard}/conformance
version=$(cat "$repo/crds/gateway-api/VERSION")
# Absolute: the suite runs in another directory, and a relative path would be its own.
report=$(realpath -m "${CONFORMANCE_REPORT:-$repo/docs/conformance/report.yaml}")
logs=$repo/.cache/conformance
kubeconfig=$repo/.cache/cluster/kubeconfig
# hack/cluster.sh's containerd: one per machine, at a fixed socket.
containerd_sock=/run/switchyard-node/containerd.sock
# A release of its own beside whatever else the node runs (the node tier installs release
# switchyard in switchyard-system), with the class the suite is pointed at.
release=switchyard
release_ns=switchyard-conformance
gateway_class=switchyard

echo_images=(registry.k8s.io/gateway-api/echo-basic:v1.5.1 registry.k8s.io/gateway-api/echo-basic:v1.6.0-dev.2 registry.k8s.io/gateway-api/echo-basic:v1.6.0-dev.3)
coredns_image=registry.k8s.io/coredns/coredns:v1.12.2

say() { printf 'conformance: %s\n' "$*" >&2; }
die() {
	printf 'conformance: %s\n' "$*" >&2
	exit 1
}

sha() { sha256sum | cut -d' ' -f1; }
kc() { "$hack/kubectl.sh" --kubeconfig "$kubeconfig" "$@"; }
ctr_() { ctr --address "$containerd_sock" --namespace k8s.io "$@"; }

go_build() { # go_build DIR OUTPUT COMMAND [ARGS...]: a static binary, built with this machine's Go only
	(cd "$1" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod go "$3" -trimpath -ldflags "-s -w" -o "$2" "${@:4}")
}

# --- build -----------------------------------------------------------------------------

suite_stamp() { { go version; cat "$module/go.mod" "$module/go.sum" "$module"/*.go; } | sha; }
images_stamp() { { go version; declare -f build_images go_build; printf '%s\n' "${echo_images[@]}" "$coredns_image"; cat "$module/go.mod" "$module/go.sum" "$module/coredns/go.mod" "$module/coredns/go.sum" "$module/coredns"/*.go; } | sha; }

build_suite() {
	local stamp dir
	stamp=$(suite_stamp)
	dir=$cache/suite/$stamp
	if [[ ! -x $dir/conformance.test ]]; then
		say "building the suite (sigs.k8s.io/gateway-api/conformance@${version}); a few minutes the first time"
		local start=$SECONDS
		mkdir -p "$dir.tmp"
		go_build "$module" "$dir.tmp/conformance.test" test -c .
		rm -rf "$dir" && mv "$dir.tmp" "$dir"
		say "suite built in $((SECONDS - start))s"
	fi
	suite_binary=$dir/conformance.test
}

build_images() {
	local work=$1
	go_build "$module" "$work/echo-basic" build sigs.k8s.io/gateway-api/conformance/echo-basic
	go_build "$module/coredns" "$work/coredns" build .
	local c
	# As the release's Dockerfile.echo-basic: the binary alone, as the distroless nonroot user.
	c=$(buildah from --quiet scratch)
	buildah copy --quiet --chmod 0755 "$c" "$work/echo-basic" /echo-basic >/dev/null
	buildah config --entrypoint '["/echo-basic"]' --user 65532:65532 --port 3000 "$c"
	buildah commit --quiet --rm "$c" "${echo_images[0]}" >/dev/null
	rm -f "$work/echo.tar"
	buildah push --quiet "${echo_images[0]}" "docker-archive:$work/echo.tar:${echo_images[0]}" >/dev/null
	c=$(buildah from --quiet scratch)
	buildah copy --quiet --chmod 0755 "$c" "$work/coredns" /coredns >/dev/null
	buildah config --entrypoint '["/coredns"]' --port 53/udp --port 53/tcp "$c"
	buildah commit --quiet --rm "$c" "$coredns_image" >/dev/null
	rm -f "$work/coredns.tar"
	buildah push --quiet "$coredns_image" "docker-archive:$work/coredns.tar:$coredns_image" >/dev/null
	rm -f "$work/echo-basic" "$work/coredns"
}

ensure_images() {
	local stamp
	stamp=$(images_stamp)
	images_dir=$cache/images/$stamp
	[[ -f $images_dir/echo.tar && -f $images_dir/coredns.tar ]] && return 0
	command -v buildah >/dev/null 2>&1 || die "buildah is missing: run hack/install-node-deps.sh (as root)"
	say "building the suite's backend images"
	local start=$SECONDS
	rm -rf "$images_dir.tmp"
	mkdir -p "$images_dir.tmp"
	build_images "$images_dir.tmp"
	rm -rf "$images_dir" && mv "$images_dir.tmp" "$images_dir"
	say "images built in $((SECONDS - start))s"
}

cmd_build() {
	[[ $(id -u) -eq 0 ]] || die "building images needs root (buildah's storage)"
	command -v go >/dev/null 2>&1 || die "Go is not installed; the suite is built from its Go module (see hack/conformance/go.mod)"
	mkdir -p "$cache"
	build_suite
	ensure_images
}

# --- run -------------------------------------------------------------------------------

import_images() {
	[[ -S $containerd_sock ]] || die "no containerd at $containerd_sock: is hack/cluster.sh running?"
	ctr_ images import "$images_dir/echo.tar" >/dev/null
	ctr_ images import "$images_dir/coredns.tar" >/dev/null
	local tag
	for tag in "${echo_images[@]:1}"; do
		ctr_ images rm "$tag" >/dev/null 2>&1 || true
		ctr_ images tag "${echo_images[0]}" "$tag" >/dev/null
	done
}

install_chart() {
	say "installing the chart with the Gateway API (release ${release} in ${release_ns})"
	KUBECONFIG=$kubeconfig "$hack/helm.sh" upgrade --install "$release" "$repo/charts/switchyard" \
		--namespace "$release_ns" --create-namespace \
		--set operator.image.tag=dev --set dataplane.image.tag=dev \
		--set gatewayAPI.enabled=true --set gatewayAPI.installCRDs=true \
		--set "gatewayAPI.gatewayClass.name=${gateway_class}" \
		--set dataplane.replicas=2 \
		--set dataplane.config.middleware.rate_limiting.enabled=false \
		--wait --timeout 5m >/dev/null
	kc wait --for=condition=Accepted --timeout=120s "gatewayclass/${gateway_class}" >/dev/null ||
		die "GatewayClass ${gateway_class} was not accepted; see kubectl -n ${release_ns} logs statefulset/${release}-operator"
}

summary() { # summary REPORT: one line per profile and part (core, extended)
	awk '
		/^- / { delete p; delete f; delete s; delete r }
		/^[- ] core:/ { part = "core" } /^[- ] extended:/ { part = "extended" }
		/^    result:/ { r[part] = $2 }
		/^      Passed:/ { p[part] = $2 } /^      Failed:/ { f[part] = $2 } /^      Skipped:/ { s[part] = $2 }
		/^  name: / { for (k in r) printf "conformance: %s %s: %s (passed %d, failed %d, skipped %d)\n", $2, k, r[k], p[k], f[k], s[k] }
	' "$1" | sort >&2
}

# verdict REPORT: fails unless every part of every profile succeeded.
verdict() {
	local bad
	bad=$(awk '/^    result:/ && $2 != "success" { n++ } END { print n + 0 }' "$1")
	[[ $bad -eq 0 ]] || die "the report has ${bad} part(s) that did not succeed (see above and ${logs#"$repo"/}/run.log)"
}

# skipped LOG: the tests the suite skipped for a feature the class does not claim (the mesh
# profile's are not ours), as "Test: reason".
skipped() { grep -oE 'Skipping [A-Za-z0-9]+: .*' "$1" | sed 's/^Skipping //' | grep -v '^Mesh' | sort -u; }

# check_skipped_documented LOG: docs/conformance/README.md lists every skipped test, and only those.
check_skipped_documented() {
	local doc=$repo/docs/conformance/README.md diff
	# shellcheck disable=SC2016 # backquotes of Markdown, not a command substitution
	diff=$(diff <(skipped "$1" | cut -d: -f1) <(sed -n 's/^| `\([A-Za-z0-9]*\)` |.*/\1/p' "$doc" | sort -u)) || {
		printf '%s\n' "$diff" >&2
		die "docs/conformance/README.md does not list exactly the skipped tests (< skipped but not listed, > listed but not skipped)"
	}
}

cmd_run() {
	cmd_build
	local started=0
	if ! "$hack/cluster.sh" status >/dev/null 2>&1; then
		say "starting the cluster (hack/cluster.sh start)"
		"$hack/cluster.sh" start >/dev/null
		started=1
	fi
	if [[ $started -eq 1 && ${CONFORMANCE_KEEP:-0} != 1 ]]; then
		trap '"$hack/cluster.sh" down >&2 || true' EXIT
	fi
	import_images
	install_chart
	mkdir -p "$logs" "$(dirname "$report")"
	local args=(
		-test.v -test.timeout 90m -test.run TestConformance
		-gateway-class "$gateway_class"
		-conformance-profiles GATEWAY-HTTP
		-report-output "$report.tmp"
		-organization switchyard.dev -project switchyard -url https://switchyard.dev
		-version "$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$repo/charts/switchyard/Chart.yaml")"
		-contact "https://switchyard.dev"
		-cleanup-base-resources=true
	)
	[[ -n ${CONFORMANCE_RUN:-} ]] && args+=(-run-test "$CONFORMANCE_RUN")
	say "running the suite (log: ${logs#"$repo"/}/run.log)"
	local start=$SECONDS status=0
	(cd "$logs" && KUBECONFIG=$kubeconfig "$suite_binary" "${args[@]}") >"$logs/run.log" 2>&1 || status=$?
	say "the suite ran for $((SECONDS - start))s (exit ${status})"
	if [[ ! -s $report.tmp ]]; then
		tail -n 60 "$logs/run.log" >&2
		die "the suite wrote no report"
	fi
	# Only a whole run is the project's report; a single test's goes next to the log.
	if [[ -n ${CONFORMANCE_RUN:-} ]]; then
		mv -f "$report.tmp" "$logs/report-${CONFORMANCE_RUN}.yaml"
		summary "$logs/report-${CONFORMANCE_RUN}.yaml"
	else
		mv -f "$report.tmp" "$report"
		summary "$report"
	fi
	grep -E '^\s*--- FAIL' "$logs/run.log" >&2 || true
	[[ $status -eq 0 ]] || die "the suite failed (exit ${status})"
	if [[ -z ${CONFORMANCE_RUN:-} ]]; then
		verdict "$report"
		check_skipped_documented "$logs/run.log"
	fi
}

case "${1:-run}" in
run) cmd_run ;;
build) cmd_build ;;
*)
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac
