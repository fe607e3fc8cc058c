# Shared by tests/cli/test_tunnel*.sh (sourced, never run): real programs (redis-server, nginx,
# haproxy) started on loopback on free ports in $tmp, and negio tunnel ends started with
# --listen 127.0.0.1:0 --log json. Everything is stopped at exit by tests/harness.sh (servers).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# free_port: a port nobody listens on now
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# need PROGRAM...: fails clearly when scripts/deps.sh has not installed one
need() {
  for p in "$@"; do
    command -v "$p" >/dev/null || fail "$p is not installed (scripts/deps.sh installs it)"
  done
}

# wait_until SECONDS CMD...: retries CMD every 50 ms; fails after SECONDS
wait_until() {
  local limit=$1; shift
  local i
  for i in $(seq 1 $((limit * 20))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  fail "timed out waiting for: $*"
}

# start_redis: redis-server on a free loopback port ($redis_port), no persistence
start_redis() {
  need redis-server redis-cli
  redis_port=$(free_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$tmp" >"$tmp/redis.out" 2>&1 &
  servers+=("$!")
  wait_until 10 redis-cli -p "$redis_port" PING
}

# start_tunnel NAME SIDE [OPTIONS...]: negio tunnel SIDE --listen 127.0.0.1:0 --log json
# OPTIONS, output in $tmp/NAME.out; waits for its "listening" line and sets $tport and $tpid
start_tunnel() {
  local name=$1 side=$2; shift 2
  "$negio" tunnel "$side" --listen 127.0.0.1:0 --log json --name "$name" "$@" \
    >"$tmp/$name.out" 2>"$tmp/$name.err" &
  tpid=$!
  servers+=("$tpid")
  local i
  for i in $(seq 1 200); do
    if grep -q '"listening"' "$tmp/$name.out" 2>/dev/null; then
      tport=$(python3 -c '
import json, sys
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e["event"] == "listening":
        print(e["port"]); break' "$tmp/$name.out")
      return 0
    fi
    kill -0 "$tpid" 2>/dev/null || fail "tunnel $name exited: $(cat "$tmp/$name.err")"
    sleep 0.05
  done
  fail "tunnel $name did not report listening"
}

# stop_tunnel PID: SIGTERM, and it must exit 0
stop_tunnel() {
  kill -TERM "$1"
  local status=0
  wait "$1" || status=$?
  [ "$status" -eq 0 ] || fail "tunnel $1 exited with status $status after SIGTERM"
}

# connection_lines FILE N: waits until FILE holds N "connection" lines
connection_lines() {
  local file=$1 n=$2 i
  for i in $(seq 1 200); do
    [ "$(grep -c '"event":"connection"' "$file" 2>/dev/null || true)" -ge "$n" ] && return 0
    sleep 0.05
  done
  fail "$file: fewer than $n connection lines: $(cat "$file")"
}
