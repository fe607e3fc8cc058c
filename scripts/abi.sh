#!/usr/bin/env bash
# The ABI check (docs/ARCHITECTURE.md section 17.7): the shared libraries of a build compared with
# the baseline committed in abi/, so that a change to what programs linked against libnegio or
# libnegio_uv rely on fails `make check` unless it is made on purpose.
#
#   scripts/abi.sh BUILD_DIR              compare BUILD_DIR's libnegio.so and libnegio_uv.so with
#                                         abi/libnegio.abi and abi/libnegio_uv.abi (abidiff)
#   scripts/abi.sh --self-test BUILD_DIR  prove that this comparison fails when a public struct's
#                                         layout changes or a function disappears
#   scripts/abi.sh --baseline BUILD_DIR   write abi/*.abi from BUILD_DIR's libraries (abidw): the
#                                         deliberate step, `make abi-baseline`
#
# The tools are Debian's abigail-tools (libabigail 2.2). They read the types from the DWARF debug
# information, so the build must have it (RelWithDebInfo, the default of `make`). Only what the
# public headers (include/negio) define counts: the layouts of negio_limits, negio_auth_info,
# negio_engine_options and the others, enums, function signatures, the exported symbols and
# their version nodes, the SONAME. Private types (struct negio_config, the connector, ...) are
# opaque to programs and are left out of the baseline, so internal changes pass.
#
# Results go to BUILD_DIR/abi: one "NAME ok" or "NAME FAILED" line per comparison in results.txt
# (results-self-test.txt for the self-test), which `make check` counts, and abidiff's report per
# library in NAME.report.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
src=$PWD

mode=check
case "${1:-}" in
  --self-test) mode=self-test; shift ;;
  --baseline) mode=baseline; shift ;;
esac
if [ $# -ne 1 ] || [ ! -d "$1" ]; then
  echo "usage: scripts/abi.sh [--self-test | --baseline] BUILD_DIR" >&2
  exit 2
fi
build=$(cd "$1" && pwd)
libs=(libnegio libnegio_uv)

for tool in abidw abidiff readelf; do
  command -v $tool >/dev/null || {
    echo "abi: $tool is missing (abigail-tools, binutils: scripts/deps.sh installs them)" >&2
    exit 1
  }
done
for lib in "${libs[@]}"; do
  so=$build/$lib.so
  [ -e "$so" ] || { echo "abi: no $so (build first: make)" >&2; exit 1; }
  readelf -S "$so" | grep '\.debug_info' >/dev/null || { # not -q: no SIGPIPE under pipefail
    echo "abi: $so has no debug information: configure the build with" \
      "-DCMAKE_BUILD_TYPE=RelWithDebInfo (or Debug)" >&2
    exit 1
  }
done

# Written without absolute paths (file names only) and with type ids hashed from the types, so
# that a baseline does not depend on where the tree was built and changes little when rewritten.
abidw_flags=(--headers-dir "$src/include/negio" --drop-private-types --no-corpus-path
  --no-comp-dir-path --short-locs --type-id-style hash)
abidiff_flags=(--headers-dir2 "$src/include/negio" --drop-private-types)

dump() { # dump SO OUT
  abidw "${abidw_flags[@]}" --out-file "$2" "$1"
}

# compare BASELINE SO REPORT: 0 when abidiff finds no change at all. Any change fails, also one
# libabigail calls compatible (a function added): the baseline must describe the ABI exactly,
# or a later break of what was added would go unnoticed.
compare() {
  abidiff "${abidiff_flags[@]}" "$1" "$2" >"$3" 2>&1
}

out=$build/abi
mkdir -p "$out"

if [ $mode = baseline ]; then
  for lib in "${libs[@]}"; do
    dump "$build/$lib.so" "$src/abi/$lib.abi" || { echo "abi: abidw failed on $lib.so" >&2; exit 1; }
    echo "abi: wrote abi/$lib.abi ($(readelf -d "$build/$lib.so" | sed -nE 's/.*soname: \[(.*)\]/\1/p'))"
  done
  echo "abi: review 'git diff abi/' and commit it with the change that made it necessary"
  exit 0
fi

if [ $mode = check ]; then
  results=$out/results.txt
  rm -f "$results"
  status=0
  for lib in "${libs[@]}"; do
    report=$out/$lib.report
    if [ ! -f "$src/abi/$lib.abi" ]; then
      echo "abi: no baseline abi/$lib.abi (make abi-baseline writes it)" >"$report"
      rc=1
    else
      compare "$src/abi/$lib.abi" "$build/$lib.so" "$report"
      rc=$?
    fi
    if [ $rc -eq 0 ]; then
      echo "$lib.so ok" >>"$results"
      echo "abi: $lib.so matches abi/$lib.abi"
    else
      echo "$lib.so FAILED" >>"$results"
      status=1
      echo "abi: $lib.so differs from abi/$lib.abi (abidiff status $rc):"
      sed 's/^/    /' "$report"
    fi
  done
  if [ $status -ne 0 ]; then
    echo "abi: if the change is deliberate (a new release: docs/ARCHITECTURE.md section 17.7)," \
      "run 'make abi-baseline' and commit abi/"
  fi
  exit $status
fi

# --self-test: the comparison of a library with its own fresh dump must pass, and with that
# dump altered as a break would alter it must fail and name what changed. Made from the build's
# own dump, so it holds whatever the committed baseline says.
results=$out/results-self-test.txt
rm -f "$results"
tmp=$(mktemp -d /tmp/negio-abi-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
status=0

# swap_members FILE STRUCT A B: the dump with members A and B of STRUCT at each other's offset
swap_members() {
  python3 - "$@" <<'EOF'
import re, sys
path, struct, a, b = sys.argv[1:]
s = open(path).read()
i = s.index("<class-decl name='%s'" % struct)
j = s.index("</class-decl>", i)
block = s[i:j]
off = {}
for m in re.finditer(r"layout-offset-in-bits='(\d+)'>\s*<var-decl name='(\w+)'", block):
    off[m.group(2)] = m.group(1)
def move(text, name, to):
    return re.sub(r"layout-offset-in-bits='\d+'(>\s*<var-decl name='%s')" % name,
                  r"layout-offset-in-bits='%s'\1" % to, text)
block = move(move(block, a, off[b]), b, off[a])
open(path, "w").write(s[:i] + block + s[j:])
EOF
}

# case NAME SO EXPECT MUTATION...: record NAME ok when the comparison of SO with its dump after
# MUTATION fails and its report mentions EXPECT (with no mutation: when it passes)
case_() {
  local name=$1 so=$2 expect=$3
  shift 3
  local base=$tmp/$name.abi report=$out/self-test-$name.report
  if ! dump "$so" "$base"; then
    echo "$name FAILED" >>"$results"
    status=1
    return
  fi
  [ $# -gt 0 ] && "$@" "$base"
  compare "$base" "$so" "$report"
  local rc=$?
  local ok=0
  if [ -z "$expect" ]; then
    [ $rc -eq 0 ] && ok=1
  else
    [ $rc -ne 0 ] && grep -q -- "$expect" "$report" && ok=1
  fi
  if [ $ok -eq 1 ]; then
    echo "$name ok" >>"$results"
  else
    echo "$name FAILED" >>"$results"
    status=1
    echo "abi self-test: $name: abidiff status $rc, expected ${expect:-no change}; report:"
    sed 's/^/    /' "$report"
  fi
}

limits_swapped() { swap_members "$1" negio_limits max_token max_rounds; }
options_swapped() { swap_members "$1" negio_engine_options loops workers; }
function_gone() { sed -i "s/negio_version_string/negio_version_strinx/g" "$1"; }
case_ unchanged-libnegio "$build/libnegio.so" ""
case_ unchanged-libnegio_uv "$build/libnegio_uv.so" ""
case_ struct-layout-libnegio "$build/libnegio.so" "max_token' offset changed" limits_swapped
case_ struct-layout-libnegio_uv "$build/libnegio_uv.so" "loops' offset changed" options_swapped
case_ removed-function "$build/libnegio.so" "1 Removed function" function_gone
cat "$results"
exit $status
