#!/usr/bin/env bash
# The shared libraries export exactly the public API (docs/ARCHITECTURE.md section 17):
#  - every defined dynamic symbol of libnegio.so is a function that a public header other than
#    engine.h declares NEGIO_API, and every such function is exported; the same for
#    libnegio_uv.so and engine.h;
#  - each carries its library's version node (NEGIO_0.* or NEGIO_UV_0.*, from abi/*.map);
#  - no negio__ internal and nothing else leaks out.
#
#   test_exported_symbols.sh INCLUDE_DIR LIBNEGIO_SO LIBNEGIO_UV_SO
set -uo pipefail
inc=$1
lib=$2
uvlib=$3
status=0
fail() {
  echo "FAIL: $*"
  status=1
}

# The functions FILES declare: "NEGIO_API <type> name(" starts a line (the #define of NEGIO_API
# does not).
declared() {
  sed -nE 's/^NEGIO_API[[:space:]].*[[:space:]*]([a-z_0-9]+)\(.*/\1/p' "$@" | sort -u
}

# "name node" for every defined dynamic symbol of SO but the version nodes themselves.
exported() {
  nm -D --defined-only "$1" | awk '$2 != "A" { n = $3; v = ""; if (i = index(n, "@")) {
    v = substr(n, i); sub(/^@+/, "", v); n = substr(n, 1, i - 1) } print n, v }' | sort -u
}

# check LIB NODE_PREFIX HEADER...
check() {
  local so=$1 prefix=$2
  shift 2
  [ -f "$so" ] || { fail "no $so"; return; }
  local want have
  want=$(declared "$@")
  [ -n "$want" ] || { fail "no NEGIO_API declarations in $*"; return; }
  have=$(exported "$so")
  local name=${so##*/}
  while read -r sym node; do
    case $sym in
      negio__*) fail "$name exports the internal $sym" ;;
    esac
    grep -qx "$sym" <<<"$want" || fail "$name exports $sym, which no public header of it declares"
    [[ $node == "$prefix"* ]] || fail "$name exports $sym with version node '$node', not $prefix*"
  done <<<"$have"
  local names
  names=$(awk '{ print $1 }' <<<"$have")
  for sym in $want; do
    grep -qx "$sym" <<<"$names" || fail "$name does not export $sym (declared NEGIO_API in $*)"
  done
  echo "$name: $(wc -l <<<"$have") symbols, versioned $(awk '{ print $2 }' <<<"$have" | sort -u |
    tr '\n' ' ')"
}

core_headers=()
for h in "$inc"/negio/*.h; do
  [ "${h##*/}" = engine.h ] || core_headers+=("$h")
done
check "$lib" NEGIO_0. "${core_headers[@]}"
check "$uvlib" NEGIO_UV_0. "$inc/negio/engine.h"

[ $status -eq 0 ] && echo "ok: the libraries export exactly the public API, versioned"
exit $status
