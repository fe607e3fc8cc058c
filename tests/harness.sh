# Shared by the shell tests (sourced, never run): tests/cli/lib.sh, and through it every
# tests/cli/test_*.sh, and tests/interop/test_java.sh. It sets up
#   $negio    the negio binary under test (NEGIO_BIN, which ctest sets);
#   $tmp      a scratch directory, removed at exit when the test passed, kept when it failed, with
#             the last lines of each non-empty $tmp/*.out and $tmp/*.err shown;
#   servers   an array: append the pid of each background process, stopped at exit;
# and gives fail, start_realm (stopped at exit too), check_json and check_json_lines.
: "${NEGIO_BIN:?NEGIO_BIN must name the negio binary (run through ctest)}"
negio=$NEGIO_BIN

tmp=$(mktemp -d "/tmp/negio-$(basename "$0" .sh)-XXXXXX")
servers=()
realm_dir=

cleanup() {
  local status=$?
  for pid in "${servers[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "$realm_dir" ]; then "$negio" realm stop "$realm_dir" >/dev/null 2>&1 || true; fi
  if [ "$status" -ne 0 ]; then
    echo "FAILED (status $status); files kept in $tmp" >&2
    for f in "$tmp"/*.out "$tmp"/*.err; do
      [ -s "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
    done
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

# start_realm [OPTIONS...]: a realm in $tmp/realm (negio realm start OPTIONS), its environment
# loaded into this shell
start_realm() {
  realm_dir=$tmp/realm
  "$negio" realm start "$realm_dir" "$@" >"$tmp/realm.out" || fail "negio realm start $*"
  . "$realm_dir/env"
}

# check_json FILE PYTHON: FILE holds one JSON value, bound to `j`; PYTHON is a sequence of assert
# statements
check_json() {
  python3 - "$1" "$2" <<'PY' || fail "JSON check failed on $1: $2"
import json, sys
with open(sys.argv[1], encoding="utf-8") as f:
    j = json.load(f)
try:
    exec(sys.argv[2], {"j": j})
except AssertionError as e:
    print("assertion failed:", sys.argv[2], "\non:", json.dumps(j)[:4000], "\n", e, file=sys.stderr)
    sys.exit(1)
PY
}

# check_json_lines FILE PYTHON: FILE holds one JSON object per line, bound to `lines`, and
# ev(name[, lines]) lists the objects whose "event" is name; PYTHON is a sequence of asserts
check_json_lines() {
  python3 - "$1" "$2" <<'PY' || fail "JSON lines check failed on $1: $2"
import json, sys
with open(sys.argv[1], encoding="utf-8") as f:
    lines = [json.loads(l) for l in f if l.strip()]
def ev(name, src=None):
    return [e for e in (lines if src is None else src) if e.get("event") == name]
try:
    exec(sys.argv[2], {"lines": lines, "ev": ev})
except AssertionError as e:
    print("assertion failed:", sys.argv[2], "\non:", *map(json.dumps, lines), sep="\n", file=sys.stderr)
    sys.exit(1)
PY
}
