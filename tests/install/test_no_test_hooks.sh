#!/usr/bin/env bash
# Test-only switches never ship: every hook src/ declares for the test build is present in that
# build (so the list below is real) and absent from every library that is installed and from the
# negio command.
#
#   test_no_test_hooks.sh SRC_DIR HOOK_LIBRARY[:HOOK_LIBRARY...] INSTALLED_FILE...
#
# A hook is a negio__ name declared in a header under src/ inside "#ifdef NEGIO_ALLOC_HOOK" or
# "#ifdef NEGIO_TEST_HOOKS" and not also in that block's #else branch (src/base/alloc.h gives the
# allocation wrappers to both builds: inline in the installed one, so they are not hooks), and
# each of the hooks named below, which must stay hooks even if their #ifdef were lost.
set -uo pipefail
src=$1
IFS=: read -r -a hook_libs <<<"$2"
shift 2

hooks=$(find "$src" -name '*.h' -print0 | xargs -0 awk '
  FNR == 1 { depth = 0; inhook = 0 }
  /^#[ \t]*if/ {
    depth++
    if ($0 ~ /^#[ \t]*ifdef[ \t]+NEGIO_(ALLOC_HOOK|TEST_HOOKS)[ \t]*$/) { inhook = depth; branch = "hook" }
    next
  }
  /^#[ \t]*else/ { if (inhook == depth) branch = "else"; next }
  /^#[ \t]*endif/ { if (inhook == depth) inhook = 0; depth--; next }
  inhook {
    line = $0
    while (match(line, /negio__[a-z0-9_]+[ \t]*[(;]/)) {
      name = substr(line, RSTART, RLENGTH)
      sub(/[ \t]*[(;]$/, "", name)
      if (branch == "hook") declared[name] = 1; else both[name] = 1
      line = substr(line, RSTART + RLENGTH)
    }
  }
  END { for (n in declared) if (!(n in both)) print n }'
  printf '%s\n' negio__alloc_fail_after negio__alloc_injected negio__alloc_count \
    negio__gss_no_iov negio__identity_set_fail_hook negio__engine_advance_clock)
hooks=$(sort -u <<<"$hooks")
if [ -z "$hooks" ]; then
  echo "FAIL: no test hooks found under $src (has the convention changed?)"
  exit 1
fi
echo "test hooks: $(echo $hooks)"

# every defined symbol of FILE, one name per line (the full symbol table when there is one: in
# the shared libraries hidden symbols appear only there)
symbols() {
  { nm --defined-only "$1" 2>/dev/null || nm -D --defined-only "$1" 2>/dev/null; } |
    awk 'NF >= 2 { print $NF }' | sort -u
}

status=0
in_hook_lib=$(for lib in "${hook_libs[@]}"; do symbols "$lib"; done)
for h in $hooks; do
  if ! grep -qx "$h" <<<"$in_hook_lib"; then
    echo "FAIL: $h is not in the test builds ${hook_libs[*]}"
    status=1
  fi
done
for f in "$@"; do
  [ -e "$f" ] || { echo "FAIL: no $f"; status=1; continue; }
  found=$(symbols "$f" | grep -Fx -f <(tr ' ' '\n' <<<"$hooks") || true)
  if [ -n "$found" ]; then
    echo "FAIL: $(basename "$f") contains test hooks: $(echo $found)"
    status=1
  else
    echo "ok: $(basename "$f") has none"
  fi
done
exit $status
