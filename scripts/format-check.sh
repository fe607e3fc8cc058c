#!/usr/bin/env bash
# The house style (.clang-format, clang-format 14) on every C file of the project: make
# format-check, part of make check. `make format` rewrites the files instead.
#
#   scripts/format-check.sh BUILD_DIR
#
# First proves that the check fails on a file written against the style (the self-test), then
# checks every .c and .h under src, include, tests, tools and examples (not the fuzz corpora).
# Writes "NAME ok" / "NAME FAILED" lines to BUILD_DIR/format/results*.txt (make check counts them).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=${1:?usage: scripts/format-check.sh BUILD_DIR}
mkdir -p "$build/format"
out=$build/format
status=0

# the same function written in the style and against it: only the second may fail
good=$(mktemp --suffix=.c) bad_probe=$(mktemp --suffix=.c)
printf 'int f(int x)\n{\n    return x + 1;\n}\n' >"$good"
printf 'int  f( int x ){return x+1;}\n' >"$bad_probe"
check() { clang-format --style=file:"$PWD/.clang-format" --dry-run --Werror "$1" >/dev/null 2>&1; }
if check "$good" && ! check "$bad_probe"; then
  echo "format-self-test ok" >"$out/results-self-test.txt"
else
  echo "format-self-test FAILED" >"$out/results-self-test.txt"
  echo "format-check: clang-format does not tell a file in the style from one against it" >&2
  status=1
fi
rm -f "$good" "$bad_probe"

bad=$(find src include tests tools examples -type f \( -name '*.c' -o -name '*.h' \) \
        -not -path '*/corpus/*' -print0 | sort -z |
      xargs -0 -n 20 sh -c 'for f; do clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || echo "$f"; done' sh)
if [ -n "$bad" ]; then
  echo "format-check: not in the house style (make format rewrites them):" >&2
  echo "$bad" >&2
  echo "format FAILED" >"$out/results.txt"
  status=1
else
  echo "format ok" >"$out/results.txt"
fi
exit $status
