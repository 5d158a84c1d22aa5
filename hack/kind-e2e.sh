#!/usr/bin/env bash
# Sends requests through the gateway of the kind cluster that hack/kind-up.sh
# made (it runs kind-up.sh first unless SKIP_UP=1): the integration guide's flow,
# register → log in → call protected routes, and checks each answer. Needs
# Docker, kind, kubectl and curl; not run in CI.
#
# Environment: CLUSTER, GATEWAY_PORT (as kind-up.sh), SKIP_UP=1 to reuse a
# running cluster as is, DELETE=1 to delete the cluster at the end.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
gateway="http://127.0.0.1:${GATEWAY_PORT:-8080}"
failures=0
body=$(mktemp)

cleanup() {
	rm -f "$body"
	if [[ ${DELETE:-} == 1 ]]; then "$repo/hack/kind-up.sh" delete; fi
}
trap cleanup EXIT

[[ ${SKIP_UP:-} == 1 ]] || "$repo/hack/kind-up.sh"

# expect STATUS DESCRIPTION CURL_ARGS...: one request, its status checked.
expect() {
	local want=$1 what=$2
	shift 2
	local got
	got=$(curl -s -o "$body" -w '%{http_code}' "$@") || got=000
	if [[ $got == "$want" ]]; then
		printf 'ok    %s %s\n' "$got" "$what"
	else
		printf 'FAIL  %s %s (want %s): %s\n' "$got" "$what" "$want" "$(head -c 300 "$body")"
		failures=$((failures + 1))
	fi
}

# The routes are programmed before kind-up.sh returns; give the data planes a moment anyway.
for _ in $(seq 1 30); do
	[[ $(curl -s -o /dev/null -w '%{http_code}' "$gateway/ready") == 200 ]] && break
	sleep 1
done

user="kind-$RANDOM"
expect 200 "readiness" "$gateway/ready"
expect 201 "register $user" -XPOST "$gateway/auth/register" -H 'content-type: application/json' \
	-d "{\"username\":\"$user\",\"password\":\"password123\",\"email\":\"$user@example.com\"}"
token=$(curl -s -XPOST "$gateway/auth/login" -H 'content-type: application/json' \
	-d "{\"username\":\"$user\",\"password\":\"password123\"}" | sed -E 's/.*"token":"([^"]+)".*/\1/')
[[ -n $token && $token != *'{'* ]] || {
	echo "FAIL  no token from /auth/login"
	failures=$((failures + 1))
}
expect 200 "GET /api/v1/users/me with a token" "$gateway/api/v1/users/me" -H "authorization: Bearer $token"
if grep -q '"x-user-id"' "$body"; then
	echo "ok    the user service saw X-User-ID"
else
	echo "FAIL  the user service did not see X-User-ID"
	failures=$((failures + 1))
fi
expect 401 "GET /api/v1/users/me without a token" "$gateway/api/v1/users/me"
expect 403 "GET /api/v1/admin/users as a plain user" "$gateway/api/v1/admin/users" -H "authorization: Bearer $token"
expect 200 "GET /api/v1/metrics" "$gateway/api/v1/metrics" -H "authorization: Bearer $token"
expect 404 "GET /nowhere" "$gateway/nowhere"
expect 405 "DELETE /auth/login" -XDELETE "$gateway/auth/login"

if ((failures > 0)); then
	echo "kind-e2e: ${failures} check(s) failed"
	exit 1
fi
echo "kind-e2e: every check passed"
