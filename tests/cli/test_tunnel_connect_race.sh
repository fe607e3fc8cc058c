#!/usr/bin/env bash
# The tunnel client's connection record against its own loop (commit fd1ef7b): on_plain_ready
# posts a connection with negio_engine_connect, and the engine's loop may fail it and run
# on_closed, which frees the record, before the call has returned on the main thread. The fix
# completes the record (counted, the open gauge raised) before the call. Here gdb forces that
# order instead of waiting for the scheduler to find it: in non-stop mode it holds the main
# thread just after negio_engine_connect returns, while the loop thread connects to a closed
# port and runs on_closed, and lets it go only once the connection's log line is out. By then
# on_closed has read the record, so the open gauge is decided: 0 with the fix, 1 without it (the
# main thread counts the connection after on_closed has looked). Under ASan the main thread's
# write into the freed record is reported as well, on the same run. Needs gdb and ptrace (skips
# with 77 otherwise); no realm: the connection fails before any authentication.
set -euo pipefail
. "$(dirname "$0")/tunnel_lib.sh"

command -v gdb >/dev/null || { echo "SKIP: gdb is not installed"; exit 77; }
src=$(dirname "$0")/../../tools/negio/tunnel_run.c
# the line after the call and its unlock: the main thread stops there, the connection posted
at=$(awk '/negio_engine_connect(_with)?\(t->engine/ {found = 1} found && /if \(rc < 0\)/ {print NR; exit}' "$src")
[ -n "$at" ] || fail "tunnel_run.c: no negio_engine_connect call followed by 'if (rc < 0)'"

closed=$(free_port)
mkfifo "$tmp/gdb.in"
gdb -q -nx "$negio" <"$tmp/gdb.in" >"$tmp/gdb.out" 2>&1 &
gdb_pid=$!
exec 4>"$tmp/gdb.in"
servers+=("$gdb_pid")
gdb_cmd() { printf '%s\n' "$@" >&4; }
# gdb_sync TAG: returns once gdb has run every command sent before
gdb_sync() {
  gdb_cmd "echo SYNC-$1\\n"
  wait_until 20 grep -q "SYNC-$1" "$tmp/gdb.out"
}
gdb_cmd "set pagination off" "set confirm off" "set non-stop on" \
  "handle SIGPIPE nostop noprint pass" "break tunnel_run.c:$at" "disable 1" \
  "run tunnel client --listen 127.0.0.1:0 --connect 127.0.0.1:$closed --metrics 127.0.0.1:0 --log json --name race >$tmp/race.out 2>$tmp/race.err &"
for i in $(seq 1 400); do
  grep -q '"metrics"' "$tmp/race.out" 2>/dev/null && break
  if [ "$i" -eq 400 ] || grep -q "exited\|ptrace\|Operation not permitted" "$tmp/gdb.out"; then
    grep -q "ptrace\|Operation not permitted" "$tmp/gdb.out" &&
      { echo "SKIP: gdb cannot trace here: $(cat "$tmp/gdb.out")"; exit 77; }
    fail "the tunnel did not start under gdb: $(cat "$tmp/gdb.out" "$tmp/race.err")"
  fi
  sleep 0.05
done
# the tunnel itself is gdb's child: killed at exit even when stopped, before the harness's cleanup
inferior=$(pgrep -P "$gdb_pid" | head -n 1)
trap 'st=$?; [ -n "$inferior" ] && { kill -KILL "$inferior" 2>/dev/null || true; }; (exit $st); cleanup' EXIT
eval "$(python3 -c '
import json, sys
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e["event"] in ("listening", "metrics"):
        print("%s_port=%d" % (e["event"], e["port"]))' "$tmp/race.out")"

# connect_once: a plain client whose connection the tunnel resets (its backend is down)
connect_once() {
  python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
try:
    s.recv(1)
except OSError:
    pass' "$listening_port"
}
lines() { grep -c '"event":"connection"' "$tmp/race.out" || true; }
metric() {
  python3 -c '
import sys, urllib.request
print(urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=10).read().decode())' \
    "$metrics_port" | sed -n "s/^negio_tunnel_connections_$1{tunnel=\"race\",side=\"client\"} //p"
}

# a first connection, not held: the engine's resolver threads exist before the main thread is
# stopped (a thread created while gdb waits on this script would wait too)
connect_once
connection_lines "$tmp/race.out" 1
[ "$(metric open)" = 0 ] || fail "open gauge after an unheld failed connection: $(metric open)"

gdb_cmd "enable 1"
gdb_sync enabled
connect_once &
client=$!
wait_until 20 grep -q "hit Breakpoint 1" "$tmp/gdb.out"
# the main thread is held after negio_engine_connect; the loop fails the connection meanwhile
for i in $(seq 1 400); do
  [ "$(lines)" -ge 2 ] && break
  [ "$i" -lt 400 ] || fail "on_closed did not run while the main thread was held: $(cat "$tmp/race.out")"
  sleep 0.05
done
sleep 0.2 # on_closed frees the record just after its log line: the ASan check needs the free
gdb_cmd "delete 1" "continue -a &"
gdb_sync released
wait "$client" || true
for i in $(seq 1 400); do
  grep -q "AddressSanitizer" "$tmp/race.err" && fail "ASan: $(cat "$tmp/race.err")"
  [ "$(metric total 2>/dev/null)" = 2 ] && break
  [ "$i" -lt 400 ] || fail "the metrics do not show two connections: $(metric total)"
  sleep 0.05
done
open=$(metric open)
[ "$open" = 0 ] || fail "open gauge $open after both connections ended: the record was completed" \
  "after negio_engine_connect posted it"

gdb_cmd "kill" "quit"
exec 4>&-
wait "$gdb_pid" || true
echo "ok: a connection that fails before negio_engine_connect returns leaves the open gauge at 0"
