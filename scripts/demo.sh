#!/usr/bin/env bash
# make demo: a throwaway realm, then negio over every mechanism path, then cleanup.
set -euo pipefail
build=${BUILD:-build}
here=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d /tmp/negio-demo-XXXXXX)
cleanup() { bash "$here/scripts/realm.sh" stop "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT
bash "$here/scripts/realm.sh" start "$dir"
. "$dir/env"
"$here/$build/example_inprocess"
