# Shared by tests/cli/test_*.sh (sourced, never run): servers and assertions for the command, on
# top of tests/harness.sh ($negio from NEGIO_BIN, the scratch directory $tmp, start_realm, fail,
# the JSON checks, and everything stopped at exit).
. "$(dirname "${BASH_SOURCE[0]}")/../harness.sh"

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

# wait_events FILE EVENT N: waits (10 s at most) until a server's JSON log FILE holds N events
# of type EVENT: its last lines may come after the client that caused them has exited
wait_events() {
  for _ in $(seq 1 200); do
    [ "$(grep -c "\"event\":\"$2\"" "$1")" -ge "$3" ] && return 0
    sleep 0.05
  done
  fail "$1: $(grep -c "\"event\":\"$2\"" "$1") $2 events, expected $3"
}

# wait_expired CCACHE: waits (10 s at most) until the tickets in CCACHE have expired as MIT judges
# them, in real time: until klist -s finds none valid, then for the clock's next second (MIT's
# own check is strict, in whole seconds)
wait_expired() {
  for _ in $(seq 1 200); do
    klist -s -c "$1" || break
    sleep 0.05
  done
  klist -s -c "$1" && fail "the tickets in $1 did not expire"
  local second
  second=$(date +%s)
  while [ "$(date +%s)" = "$second" ]; do sleep 0.05; done
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

# client ARGS...: negio client against $port with --json and a timeout
client() {
  "$negio" client --connect "127.0.0.1:$port" --json --timeout 20 "$@"
}

# kdc_stop: stops the realm's KDC (its port then refuses connections)
kdc_stop() {
  local pid
  pid=$(cat "$realm_dir/kdc.pid")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.05
  done
  fail "the KDC (pid $pid) did not stop"
}

# kdc_start [OFFSET]: starts the realm's KDC again, its clock OFFSET seconds off (krb5kdc -T),
# and waits until it listens; "negio realm stop" (at exit) finds it by its pid file
kdc_start() {
  krb5kdc -n -T "${1:-0}" -P "$realm_dir/kdc.pid" >>"$realm_dir/kdc.log" 2>&1 &
  servers+=("$!")
  for _ in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$NEGIO_KDC_PORT") 2>/dev/null; then
      return 0
    fi
    sleep 0.05
  done
  fail "the KDC did not start listening on port $NEGIO_KDC_PORT"
}
