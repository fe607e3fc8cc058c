# Shared by tests/cli/test_*.sh (sourced, never run): a throwaway realm, servers, assertions.
# NEGIO_BIN names the negio binary under test (ctest sets it).
: "${NEGIO_BIN:?NEGIO_BIN must name the negio binary (run through ctest)}"
negio=$NEGIO_BIN

tmp=$(mktemp -d /tmp/negio-cli-XXXXXX)
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
      [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
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

# start_server NAME [OPTIONS...]: runs "negio server --listen 127.0.0.1:0 --json OPTIONS" with
# output in $tmp/NAME.out, waits for its "listening" line and sets $port to the bound port.
start_server() {
  local name=$1; shift
  "$negio" server --listen 127.0.0.1:0 --json "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  servers+=("$!")
  server_pid=$!
  for _ in $(seq 1 200); do
    if [ -s "$tmp/$name.out" ]; then
      port=$(head -n 1 "$tmp/$name.out" | python3 -c '
import json, sys
ev = json.load(sys.stdin)
assert ev["event"] == "listening" and ev["address"] == "127.0.0.1", ev
print(ev["port"])') || fail "server $name: bad first line"
      return 0
    fi
    kill -0 "$server_pid" 2>/dev/null || fail "server $name exited: $(cat "$tmp/$name.err")"
    sleep 0.05
  done
  fail "server $name did not report listening"
}

# stop_server PID: SIGTERM, and the server must exit 0
stop_server() {
  kill -TERM "$1"
  local status=0
  wait "$1" || status=$?
  [ "$status" -eq 0 ] || fail "server $1 exited with status $status after SIGTERM"
}

# run_status EXPECTED CMD...: runs CMD (stdout to $tmp/last.out, stderr to $tmp/last.err) and
# checks its exit status
run_status() {
  local want=$1; shift
  local got=0
  "$@" >"$tmp/last.out" 2>"$tmp/last.err" || got=$?
  [ "$got" -eq "$want" ] ||
    fail "'$*' exited $got, expected $want; stdout: $(cat "$tmp/last.out"); stderr: $(cat "$tmp/last.err")"
}

# check_json FILE PYTHON: FILE holds one JSON value (or, with check_json_lines, one per line)
# bound to `j` (a list `lines`); PYTHON is a sequence of assert statements
check_json() {
  python3 - "$1" "$2" <<'PY' || fail "JSON check failed on $1: $2"
import json, sys
with open(sys.argv[1], encoding="utf-8") as f:
    j = json.load(f)
try:
    exec(sys.argv[2], {"j": j})
except AssertionError as e:
    print("assertion failed:", sys.argv[2], "\non:", json.dumps(j), "\n", e, file=sys.stderr)
    sys.exit(1)
PY
}

check_json_lines() {
  python3 - "$1" "$2" <<'PY' || fail "JSON lines check failed on $1: $2"
import json, sys
with open(sys.argv[1], encoding="utf-8") as f:
    lines = [json.loads(l) for l in f if l.strip()]
try:
    exec(sys.argv[2], {"lines": lines})
except AssertionError as e:
    print("assertion failed:", sys.argv[2], "\non:", *map(json.dumps, lines), sep="\n", file=sys.stderr)
    sys.exit(1)
PY
}

# client ARGS...: negio client against $port with --json and a timeout
client() {
  "$negio" client --connect "127.0.0.1:$port" --json --timeout 20 "$@"
}
