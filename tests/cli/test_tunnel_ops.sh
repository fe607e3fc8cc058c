#!/usr/bin/env bash
# negio tunnel in operation, with Redis behind it: the access list (a refused client gets a
# protected close of status 121, over [MS-NNS] a HandshakeError with ERROR_ACCESS_DENIED, and the
# server logs who and why), SIGHUP re-reading the access list without disturbing an established
# tunnel, a backend that is down (a prompt close with the reason), a tunnel server that never
# answers the SYN (--connect-timeout on the client side), half-close both ways in
# either profile (a client that shuts down its sending half still gets the whole reply), several
# tunnels from one config file (one pair of them over [MS-NNS]), a config file's errors with their
# line numbers (and a reload that meets them keeps the running configuration), a reload that
# changes [global] refused, one whose new sections cannot start naming each, SIGTERM closing
# every tunnel of a process at once within one deadline, the metrics endpoint, and bad input that
# leaves the process up.
set -euo pipefail
. "$(dirname "$0")/tunnel_lib.sh"

start_realm
start_redis

# no_answer_through NAME SERVER-OPTIONS -- CLIENT-OPTIONS: a tunnel server NAME (its backend among
# its options) and a tunnel client NAME-c to it, through which redis-cli PING gets no answer;
# waits for the connection line of each side, and leaves their pids in $spid_na and $cpid_na
no_answer_through() {
  local name=$1; shift
  local sopts=()
  while [ "$1" != "--" ]; do sopts+=("$1"); shift; done
  shift
  start_tunnel "$name" server "${sopts[@]}"
  spid_na=$tpid
  start_tunnel "$name-c" client --connect "127.0.0.1:$tport" "$@"
  cpid_na=$tpid
  redis-cli -p "$tport" PING >"$tmp/$name-cli.txt" 2>&1 || true
  grep -q PONG "$tmp/$name-cli.txt" && fail "$name: an answer through the tunnel"
  connection_lines "$tmp/$name.out" 1
  connection_lines "$tmp/$name-c.out" 1
}

# ---- the access list, and SIGHUP --------------------------------------------------------------
echo 'bob@NEGIO.TEST   # only bob at first' >"$tmp/allow"
start_tunnel acl server --backend "127.0.0.1:$redis_port" --allow-file "$tmp/allow" \
  --metrics 127.0.0.1:0
spid=$tpid sport=$tport
metrics_port=$(python3 -c '
import json, sys
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e["event"] == "metrics":
        # the message names the address really bound, the port chosen for :0 included
        assert e["message"] == "metrics on http://127.0.0.1:%d/metrics" % e["port"], e
        print(e["port"])' "$tmp/acl.out")
[ -n "$metrics_port" ] || fail "no metrics line naming its port: $(cat "$tmp/acl.out")"
start_tunnel acl-c client --connect "127.0.0.1:$sport" --mech kerberos
cpid=$tpid p=$tport
# alice is not allowed: her connection is cut, and both sides say why
redis-cli -p "$p" PING >"$tmp/refused.out" 2>&1 || true
grep -q PONG "$tmp/refused.out" && fail "a refused client got an answer"
connection_lines "$tmp/acl.out" 1
check_json_lines "$tmp/acl.out" "
c = ev('connection')[0]
assert c['close'] == 'refused' and c['who'] == 'alice@NEGIO.TEST', c
assert 'alice@NEGIO.TEST: not in the access list' in c['detail'] and '$tmp/allow (1)' in c['detail'], c
"
connection_lines "$tmp/acl-c.out" 1
check_json_lines "$tmp/acl-c.out" "
c = ev('connection')[0]
assert c['error'] == 'NEGIO_ERR_REJECTED' and 'status 121: not allowed' in c['detail'], c
"
# bob is: his tunnel stays open across the reload below
# bob's tunnel client runs with bob's ticket
KRB5CCNAME=FILE:$tmp/bob.cc kinit bob <"$NEGIO_REALM_DIR/bob.password" >/dev/null
KRB5CCNAME=FILE:$tmp/bob.cc start_tunnel bob-c client --connect "127.0.0.1:$sport" --mech kerberos
bobp=$tport
redis-cli -p "$bobp" SUBSCRIBE news >"$tmp/bob-sub.out" 2>&1 &
sub=$!; servers+=("$sub")
wait_until 10 grep -q news "$tmp/bob-sub.out"
# alice added to the file; SIGHUP reads it again
echo 'alice@NEGIO.TEST' >>"$tmp/allow"
kill -HUP "$spid"
wait_until 10 grep -q '"event":"reload"' "$tmp/acl.out"
[ "$(redis-cli -p "$p" PING)" = PONG ] || fail "alice refused after the reload"
[ "$(redis-cli -p "$p" PUBLISH news after-reload)" = 1 ] || fail "bob's tunnel did not survive the reload"
wait_until 10 grep -q after-reload "$tmp/bob-sub.out"
kill -0 "$sub" || fail "bob's subscriber was disconnected by the reload"
kill "$sub"; wait "$sub" 2>/dev/null || true
# the metrics: connections, handshakes by result and mechanism, bytes, the latency histogram
python3 - "$metrics_port" <<'PY' >"$tmp/metrics.txt" || fail "metrics: $(cat "$tmp/metrics.txt")"
import sys, urllib.request
print(urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=10).read().decode())
PY
grep -q '^negio_tunnel_handshakes_total{tunnel="acl",side="server",result="refused",mech="any"} 1$' "$tmp/metrics.txt" ||
  fail "metrics: $(cat "$tmp/metrics.txt")"
grep -q '^negio_tunnel_handshakes_total{tunnel="acl",side="server",result="ok",mech="kerberos"} [1-9]' "$tmp/metrics.txt" ||
  fail "metrics: $(cat "$tmp/metrics.txt")"
grep -q '^# TYPE negio_tunnel_handshake_seconds histogram$' "$tmp/metrics.txt" || fail "no histogram"
grep -q '^negio_tunnel_bytes_total{tunnel="acl",side="server",direction="from_peer"} [1-9]' "$tmp/metrics.txt" ||
  fail "metrics: bytes"
stop_tunnel "$cpid"

# ---- the access list over [MS-NNS]: the refusal takes the place of the server's HandshakeDone --
no_answer_through nacl --backend "127.0.0.1:$redis_port" --allow bob@NEGIO.TEST --profile nns -- \
  --mech kerberos --profile nns
check_json_lines "$tmp/nacl.out" "
c = ev('connection')[0]
assert c['close'] == 'refused' and c['who'] == 'alice@NEGIO.TEST', c
assert 'alice@NEGIO.TEST: not in the access list' in c['detail'] and c['bytes_in'] == 0, c
"
check_json_lines "$tmp/nacl-c.out" "
c = ev('connection')[0]
assert c['error'] == 'NEGIO_ERR_REJECTED' and '0x00000005 ERROR_ACCESS_DENIED' in c['detail'], c
assert c['who'] is None and c['bytes_out'] == 0, c  # never established, nothing relayed
"

# ---- half-close both ways: a client that sends, shuts down its sending half, reads the reply ----
# The backend answers only once it has read the client's FIN (so the FIN must cross the tunnel
# after the request), then sends 600 KB and closes; the client must get all of it, then EOF.
hc_port=$(free_port)
python3 - "$hc_port" "$tmp/hc.ready" <<'PY' &
import socket, sys, threading
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1]))); srv.listen(8)
open(sys.argv[2], "w").close()
def serve(c):
    got = b""
    while True:
        x = c.recv(65536)
        if not x: break
        got += x
    c.sendall(got * 20 + b"END %d\n" % len(got))
    c.close()
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
servers+=("$!")
wait_until 10 test -f "$tmp/hc.ready"
half_close_through() { # NAME SERVER-OPTIONS -- CLIENT-OPTIONS
  local name=$1; shift
  local sopts=()
  while [ "$1" != "--" ]; do sopts+=("$1"); shift; done
  shift
  start_tunnel "$name" server --backend "127.0.0.1:$hc_port" "${sopts[@]}"
  local spid=$tpid
  start_tunnel "$name-c" client --connect "127.0.0.1:$tport" "$@"
  local cpid=$tpid
  python3 - "$tport" <<'PY' || fail "$name: half-close through the tunnel"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
req = bytes(range(256)) * 120  # 30 KB
s.sendall(req)
s.shutdown(socket.SHUT_WR)
got = b""
while True:
    x = s.recv(65536)
    if not x: break
    got += x
want = req * 20 + b"END %d\n" % len(req)
assert got == want, "got %d bytes, expected %d" % (len(got), len(want))
PY
  connection_lines "$tmp/$name.out" 1
  check_json_lines "$tmp/$name.out" "
c = ev('connection')[0]
assert c['close'] == 'clean' and c['bytes_in'] == 30720 and c['bytes_out'] == 30720 * 20 + 10, c
"
  connection_lines "$tmp/$name-c.out" 1
  check_json_lines "$tmp/$name-c.out" "
c = ev('connection')[0]
assert c['close'] == 'clean' and c['bytes_out'] == 30720 and c['bytes_in'] == 30720 * 20 + 10, c
"
  stop_tunnel "$cpid"
  stop_tunnel "$spid"
}
half_close_through hc-native -- --mech kerberos
half_close_through hc-nns-seal --profile nns -- --profile nns --mech kerberos
half_close_through hc-nns-none --profile nns --protect none --min-protect none -- \
  --profile nns --mech kerberos --protect none --min-protect none
KRB5CCNAME=FILE:/nonexistent half_close_through hc-nns-ntlm --profile nns -- --profile nns

# ---- a backend that is down -------------------------------------------------------------------
down=$(free_port)
no_answer_through down --backend "127.0.0.1:$down" -- --mech kerberos
dpid=$spid_na dcpid=$cpid_na
check_json_lines "$tmp/down.out" "
c = ev('connection')[0]
assert c['close'] == 'error' and c['error'] == 'NEGIO_ERR_ADDRESS', c
assert 'relay: connect to 127.0.0.1:$down: connection refused' in c['detail'], c
"
check_json_lines "$tmp/down-c.out" "
c = ev('connection')[0]
assert c['error'] == 'NEGIO_ERR_REJECTED' and 'status 122' in c['detail'] and 'connection refused' in c['detail'], c
"
kill -0 "$dpid" && kill -0 "$dcpid" || fail "a tunnel process exited"
# over [MS-NNS] the server's HandshakeDone has left when the backend refuses: the server can only
# end the stream, and the client says what that may have been
no_answer_through ndown --backend "127.0.0.1:$down" --profile nns -- --mech kerberos --profile nns
check_json_lines "$tmp/ndown.out" "
c = ev('connection')[0]
assert c['close'] == 'error' and c['error'] == 'NEGIO_ERR_ADDRESS', c
"
check_json_lines "$tmp/ndown-c.out" "
c = ev('connection')[0]
assert 'the server ended the stream without sending a byte' in c['detail'], c
"

# ---- a tunnel server that never answers the client's SYN: --connect-timeout ends the wait ------
# A listener whose accept queue is full (backlog 0, one connection queued, never accepted) drops
# further SYNs, as a host behind a silent firewall does; the client's local connection is closed
# once --connect-timeout has passed, not after the kernel's two minutes of SYN retries.
python3 - "$tmp/silent.port" <<'PY' &
import socket, sys, time
l = socket.socket()
l.bind(("127.0.0.1", 0))
l.listen(0)
queued = socket.create_connection(l.getsockname(), timeout=5)  # the queue is full with it
open(sys.argv[1] + ".tmp", "w").write(str(l.getsockname()[1]))
__import__("os").rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(120)
PY
silentpid=$!; servers+=("$silentpid")
wait_until 10 test -s "$tmp/silent.port"
start_tunnel silent-c client --connect "127.0.0.1:$(cat "$tmp/silent.port")" --mech kerberos \
  --connect-timeout 500ms
python3 - "$tport" <<'PY' || fail "--connect-timeout on the client side"
import socket, sys, time
t0 = time.monotonic()
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
try:
    got = s.recv(1)
except OSError:
    got = b""
took = time.monotonic() - t0
print("the local connection ended %.2f s after it was made" % took)
assert got == b"" and 0.4 <= took < 5, (got, took)
PY
check_json_lines "$tmp/silent-c.out" "
c = ev('connection')[0]
assert c['close'] == 'timeout' and 'did not complete within 500 ms' in c['detail'], c
"
kill "$silentpid" 2>/dev/null || true

# ---- a PROXY header from a source that is not a listed balancer ----------------------------------
start_tunnel lb server --backend "127.0.0.1:$redis_port" --accept-proxy-from 10.0.0.0/8
lbpid=$tpid
python3 - "$tport" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"PROXY TCP4 192.0.2.1 127.0.0.1 1111 7000\r\n")
s.settimeout(10)
try:
    s.recv(100)
except OSError:
    pass
PY
connection_lines "$tmp/lb.out" 1
check_json_lines "$tmp/lb.out" "
c = ev('connection')[0]
assert c['error'] == 'NEGIO_ERR_PROTOCOL' and 'a PROXY protocol header from 127.0.0.1' in c['detail'], c
"
kill -0 "$lbpid" || fail "the tunnel exited on a PROXY header"

# ---- several tunnels from one config file ------------------------------------------------------
sp=$(free_port) cp=$(free_port) nsp=$(free_port) ncp=$(free_port)
cat >"$tmp/tunnels.conf" <<CONF
; two ends of one tunnel in one process
[global]
log = json

[redis-server]
mode = server
listen = 127.0.0.1:$sp
backend = 127.0.0.1:$redis_port
min-protect = seal
allow = @NEGIO.TEST

[redis-client]
mode = client
listen = 127.0.0.1:$cp
connect = 127.0.0.1:$sp
spn = negio@localhost
mech = kerberos
protect = seal

[nns-server]
mode = server
listen = 127.0.0.1:$nsp
backend = 127.0.0.1:$redis_port
profile = nns
min-protect = sign

[nns-client]
mode = client
listen = 127.0.0.1:$ncp
connect = 127.0.0.1:$nsp
spn = negio@localhost
profile = nns
protect = sign
CONF
run_status 0 "$negio" tunnel --config "$tmp/tunnels.conf" --check
grep -q "4 tunnels, ok" "$tmp/last.out" || fail "--check: $(cat "$tmp/last.out")"
"$negio" tunnel --config "$tmp/tunnels.conf" >"$tmp/conf.out" 2>"$tmp/conf.err" &
confpid=$!; servers+=("$confpid")
wait_until 10 redis-cli -p "$cp" PING
[ "$(redis-cli -p "$cp" SET conf yes)" = OK ] || fail "SET through the config file's tunnels"
[ "$(redis-cli -p "$ncp" GET conf)" = yes ] || fail "GET through the config file's [MS-NNS] tunnels"
connection_lines "$tmp/conf.out" 6
check_json_lines "$tmp/conf.out" "
s = [c for c in ev('connection') if c['tunnel'] == 'redis-server']
assert s and s[0]['who'] == 'alice@NEGIO.TEST' and s[0]['level_in'] == 'seal', s
n = [c for c in ev('connection') if c['tunnel'] == 'nns-server']
assert n and n[-1]['who'] == 'alice@NEGIO.TEST' and n[-1]['level_in'] == 'sign', n
assert n[-1]['level_out'] == 'sign' and n[-1]['close'] == 'clean', n
l = [e for e in ev('listening') if e['tunnel'] == 'nns-server']
assert l and 'over [MS-NNS]' in l[0]['message'], l
"
# a reload that meets a broken file keeps what runs
cp "$tmp/tunnels.conf" "$tmp/good.conf"
echo "bogus line" >>"$tmp/tunnels.conf"
kill -HUP "$confpid"
wait_until 10 grep -q "has errors" "$tmp/conf.out"
grep -q "tunnels.conf:$(wc -l <"$tmp/tunnels.conf"): expected \[section\], NAME = VALUE" "$tmp/conf.err" ||
  fail "reload error: $(cat "$tmp/conf.err")"
[ "$(redis-cli -p "$cp" GET conf)" = yes ] || fail "the tunnels stopped after a failed reload"
# the good file again: every tunnel of it reloads (in file order), and an established tunnel
# (a subscriber) stays up
cp "$tmp/good.conf" "$tmp/tunnels.conf"
redis-cli -p "$cp" SUBSCRIBE confnews >"$tmp/conf-sub.out" 2>&1 &
csub=$!; servers+=("$csub")
wait_until 10 grep -q confnews "$tmp/conf-sub.out"
kill -HUP "$confpid"
wait_until 10 python3 -c '
import json, sys
names = {e.get("tunnel") for e in map(json.loads, open(sys.argv[1])) if e["event"] == "reload" and e["message"].startswith("reloaded")}
sys.exit(0 if {"redis-server", "redis-client"} <= names else 1)' "$tmp/conf.out"
kill -0 "$confpid" || fail "the process died reloading two tunnels"
[ "$(redis-cli -p "$cp" PUBLISH confnews after-reload)" = 1 ] || fail "the subscriber's tunnel did not survive the reload"
# a change only a restart applies refuses the whole reload, and says what it was
sed -i 's/^allow = @NEGIO.TEST$/allow = @NEGIO.TEST\naccept-proxy-from = 10.0.0.0\/8/' "$tmp/tunnels.conf"
kill -HUP "$confpid"
wait_until 10 grep -q "reload refused" "$tmp/conf.out"
grep -q '"tunnel":"redis-server","message":"--accept-proxy-from changed, which only a restart applies"' "$tmp/conf.out" ||
  fail "the refused reload does not say why: $(cat "$tmp/conf.out")"
# a tunnel dropped from the file stops, one added starts, the others go on
ap=$(free_port)
sed "s/^\[redis-client\]$/[redis-client2]/; s/^listen = 127.0.0.1:$cp$/listen = 127.0.0.1:$ap/" \
  "$tmp/good.conf" >"$tmp/tunnels.conf"
kill -HUP "$confpid"
wait_until 10 grep -q '"tunnel":"redis-client","message":"removed from the configuration' "$tmp/conf.out"
wait_until 10 redis-cli -p "$ap" PING
[ "$(redis-cli -p "$ap" GET conf)" = yes ] || fail "the tunnel a reload added does not relay"
kill -0 "$confpid" || fail "the process died reloading"
kill "$csub" 2>/dev/null || true; wait "$csub" 2>/dev/null || true
stop_tunnel "$confpid"

# ---- [global] is the process's: a reload that changes it is refused, naming what changed -------
gp=$(free_port)
printf '[global]\nlog = json\n\n[g]\nmode = server\nlisten = 127.0.0.1:%s\nbackend = 127.0.0.1:%s\n' \
  "$gp" "$redis_port" >"$tmp/global.good"
cp "$tmp/global.good" "$tmp/global.conf"
"$negio" tunnel --config "$tmp/global.conf" >"$tmp/global.out" 2>"$tmp/global.err" &
gpid=$!; servers+=("$gpid")
wait_until 10 grep -q '"event":"listening"' "$tmp/global.out"
refusals_over() { [ "$(grep -c "reload refused" "$tmp/global.out")" -gt "$1" ]; }
global_refused() { # SED-EXPRESSION WHAT: the file changed so, SIGHUP refuses it naming WHAT
  local before
  before=$(grep -c "reload refused" "$tmp/global.out" || true)
  sed "$1" "$tmp/global.good" >"$tmp/global.conf"
  kill -HUP "$gpid"
  wait_until 10 refusals_over "$before"
  grep -qF "\"message\":\"$2 changed, which only a restart applies\"" "$tmp/global.out" ||
    fail "the refused reload does not name $2: $(cat "$tmp/global.out")"
}
global_refused 's/^log = json$/log = text/' "[global] log"
global_refused 's/^log = json$/log = json\nmetrics = 127.0.0.1:0/' "[global] metrics"
# a reload that adds two sections neither of which can start (both on [g]'s port) says so for
# each, and is refused
cp "$tmp/global.good" "$tmp/global.conf"
for s in n1 n2; do
  printf '\n[%s]\nmode = server\nlisten = 127.0.0.1:%s\nbackend = 127.0.0.1:1\n' "$s" "$gp" \
    >>"$tmp/global.conf"
done
before=$(grep -c "reload refused" "$tmp/global.out" || true)
kill -HUP "$gpid"
wait_until 10 refusals_over "$before"
for s in n1 n2; do
  grep -qF "\"tunnel\":\"$s\",\"message\":\"could not start" "$tmp/global.out" ||
    fail "the reload does not say that [$s] could not start: $(cat "$tmp/global.out")"
done
cp "$tmp/global.good" "$tmp/global.conf"
kill -HUP "$gpid"
wait_until 10 grep -q '"tunnel":"g","message":"reloaded' "$tmp/global.out"
stop_tunnel "$gpid"

# ---- SIGTERM: every tunnel stops accepting at once, and all share one deadline -----------------
# Two server tunnels in one process, each carrying a tunnel whose local program never closes, so
# that its tunnel client never answers the server's protected close: both ports must refuse new
# connections at once, and the process must exit 0 within about 5 seconds (the close's deadline),
# not 5 seconds per tunnel one after the other.
ta=$(free_port) tb=$(free_port)
cat >"$tmp/term.conf" <<CONF
[global]
log = json

[term-a]
mode = server
listen = 127.0.0.1:$ta
backend = 127.0.0.1:$redis_port

[term-b]
mode = server
listen = 127.0.0.1:$tb
backend = 127.0.0.1:$redis_port
CONF
"$negio" tunnel --config "$tmp/term.conf" >"$tmp/term.out" 2>"$tmp/term.err" &
termpid=$!; servers+=("$termpid")
wait_until 10 grep -q '"event":"listening","tunnel":"term-b"' "$tmp/term.out"
start_tunnel term-a-c client --connect "127.0.0.1:$ta" --mech kerberos
tac=$tport
start_tunnel term-b-c client --connect "127.0.0.1:$tb" --mech kerberos
tbc=$tport
python3 - "$tac" "$tbc" "$ta" "$tb" "$termpid" <<'PY' || fail "SIGTERM with two tunnels"
import os, signal, socket, sys, time
tac, tbc, ta, tb, pid = map(int, sys.argv[1:])
held = []
for p in (tac, tbc):
    s = socket.create_connection(("127.0.0.1", p), timeout=20)
    s.sendall(b"PING\r\n")
    assert s.recv(100) == b"+PONG\r\n", "no PONG through a tunnel"
    held.append(s)  # open to the end: its tunnel lingers
def accepts(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False
def exited():
    try:
        return open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[0] in "ZX"
    except FileNotFoundError:
        return True
t0 = time.monotonic()
os.kill(pid, signal.SIGTERM)
time.sleep(0.5)
for port in (ta, tb):
    if accepts(port):
        sys.exit("port %d still accepts %.1f s after SIGTERM" % (port, time.monotonic() - t0))
while not exited():
    if time.monotonic() - t0 > 30:
        sys.exit("still running 30 s after SIGTERM")
    time.sleep(0.05)
took = time.monotonic() - t0
print("exited %.1f s after SIGTERM" % took)
# each lingering tunnel is given 5 s to answer its close, all of them at once
if took > 7.5:
    sys.exit("exited %.1f s after SIGTERM: the tunnels were drained one after the other" % took)
PY
status=0
wait "$termpid" || status=$?
[ "$status" -eq 0 ] || fail "exit status $status after SIGTERM"
check_json_lines "$tmp/term.out" "
c = ev('connection')
assert sorted(x['tunnel'] for x in c) == ['term-a', 'term-b'], c
for x in c:  # each waited for its client's answer until the deadline, then was closed
    assert x['who'] == 'alice@NEGIO.TEST' and x['duration_ms'] >= 4500, x
"

# ---- SIGTERM while a tunnel a reload removed is still stopping -----------------------------------
# A removed tunnel stops on a thread of its own (the main loop goes on meanwhile); the process must
# wait for it at the end: term-b's lingering connection keeps it stopping for the close's deadline
# while SIGTERM finds nothing else to wait for. Ending earlier would cut that stop short (its
# connection never logged) or free what it still uses.
"$negio" tunnel --config "$tmp/term.conf" >"$tmp/retire.out" 2>"$tmp/retire.err" &
retirepid=$!; servers+=("$retirepid")
wait_until 10 grep -q '"event":"listening","tunnel":"term-b"' "$tmp/retire.out"
start_tunnel retire-b-c client --connect "127.0.0.1:$tb" --mech kerberos
rbc=$tport
exec 5<>"/dev/tcp/127.0.0.1/$rbc"
printf 'PING\r\n' >&5
read -r -t 20 pong <&5 || fail "no PONG through term-b"
[ "${pong%$'\r'}" = "+PONG" ] || fail "term-b answered '$pong'"
sed -i '/^\[term-b\]$/,$d' "$tmp/term.conf"
kill -HUP "$retirepid"
wait_until 10 grep -q '"tunnel":"term-b","message":"removed from the configuration' "$tmp/retire.out"
t0=$(date +%s%N)
kill -TERM "$retirepid"
status=0
wait "$retirepid" || status=$?
took=$((($(date +%s%N) - t0) / 1000000))
exec 5>&-
[ "$status" -eq 0 ] || fail "exit status $status after SIGTERM with a removed tunnel stopping: $(cat "$tmp/retire.err")"
grep -q '"event":"connection","tunnel":"term-b"' "$tmp/retire.out" ||
  fail "exited ${took} ms after SIGTERM without waiting for the removed tunnel to stop: $(cat "$tmp/retire.out")"

# ---- out of descriptors: the client's listener pauses instead of spinning ----------------------
# the tunnel's own descriptors (loops, signals, workers, listener: more with more CPUs) and room
# for three connections: its limit lowered while it runs
ep=$(free_port)
"$negio" tunnel client --listen "127.0.0.1:$ep" --connect "127.0.0.1:$sport" \
  --mech kerberos --log json >"$tmp/emfile.out" 2>"$tmp/emfile.err" &
epid=$!; servers+=("$epid")
wait_until 10 grep -q '"event":"listening"' "$tmp/emfile.out"
base=$(ls /proc/"$epid"/fd | wc -l)
prlimit --pid "$epid" --nofile=$((base + 6)):$((base + 6))
python3 - "$ep" "$epid" "$tmp/emfile.out" <<'PY' || fail "out of descriptors: $(cat "$tmp/emfile.out")"
import socket, sys, time
port, pid, log = int(sys.argv[1]), sys.argv[2], sys.argv[3]
held = []
def cpu():
    f = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / 100.0  # utime + stime, in seconds
# more connections than it has descriptors for: the rest wait in the backlog
for _ in range(30):
    s = socket.create_connection(("127.0.0.1", port))
    held.append(s)
deadline = time.monotonic() + 10
while b"pausing the listener" not in open(log, "rb").read():
    if time.monotonic() > deadline:
        sys.exit("no pause was logged")
    time.sleep(0.05)
before, t0 = cpu(), time.monotonic()
time.sleep(2)
used = cpu() - before
print("CPU while out of descriptors: %.2f s in %.2f s" % (used, time.monotonic() - t0))
# a spinning loop uses the whole 2 s; the paused one wakes a few times a second
if used > 0.5:
    sys.exit("the listener spins: %.2f s of CPU in 2 s" % used)
if open(log, "rb").read().count(b"pausing the listener") != 1:
    sys.exit("the pause was logged more than once in one episode")
for s in held:
    s.close()
PY
wait_until 20 grep -q "accepting connections again" "$tmp/emfile.out"
[ "$(redis-cli -p "$ep" PING)" = PONG ] || fail "no tunnel after the descriptors came back"
stop_tunnel "$epid"

# ---- the metrics endpoint holds at most 16 requests, each for at most 5 s -----------------------
python3 - "$metrics_port" <<'PY' || fail "metrics under idle clients"
import socket, sys, time, urllib.request
port = int(sys.argv[1])
idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(16)]
for s in idle:
    s.sendall(b"GET /metrics HTTP/1.0\r\n")  # and never the end of the request
time.sleep(0.2)
extra = socket.create_connection(("127.0.0.1", port))
extra.settimeout(5)
try:
    if extra.recv(1) != b"":
        sys.exit("a 17th request was served")
except ConnectionResetError:
    pass
# each idle one is closed by its deadline
for s in idle:
    s.settimeout(10)
    try:
        if s.recv(1) != b"":
            sys.exit("an idle request got an answer")
    except ConnectionResetError:
        pass
print(urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10).read()[:40])
PY

# ---- a config file's errors, each with its line --------------------------------------------------
bad() { # LINE-TEXT EXPECTED-MESSAGE: the file with LINE-TEXT as line 4 of a good tunnel
  printf '[t]\nmode = server\nlisten = 127.0.0.1:0\n%s\nbackend = 127.0.0.1:1\n' "$1" >"$tmp/bad.conf"
  run_status 2 "$negio" tunnel --config "$tmp/bad.conf" --check
  grep -qF "$2" "$tmp/last.err" || fail "expected '$2', got: $(cat "$tmp/last.err")"
}
bad 'colour = blue' "bad.conf:4: [t] unknown option 'colour' for a server tunnel"
bad 'mech = krb' "bad.conf:4: [t]: --mech: expected negotiate, kerberos or ntlm, got 'krb'"
bad 'min-protect = high' "bad.conf:4: [t]: --min-protect: expected none, sign or seal, got 'high'"
bad 'allow = alice' "bad.conf:4: [t]: --allow: expected a principal (alice@REALM), @REALM"
bad 'idle-timeout = soon' "bad.conf:4: [t]: --idle-timeout: expected a duration"
bad 'handshake-timeout = 0s' "bad.conf:4: [t]: --handshake-timeout: must be more than 0, got '0s'"
bad 'connect-timeout = 0' "bad.conf:4: [t]: --connect-timeout: must be more than 0, got '0'"
bad 'accept-proxy-from = 10.0.0.0/40' "bad.conf:4: [t]: --accept-proxy-from: expected addresses or CIDR blocks"
bad 'just words' "bad.conf:4: expected [section], NAME = VALUE, or a comment"
bad 'tls-negotiate = maybe' "bad.conf:4: [t] tls-negotiate: expected yes or no, got 'maybe'"
bad 'profile = dotnet' "bad.conf:4: [t]: --profile must be native, gss-sample or nns"
bad 'profile = gss-sample' "bad.conf:1: [t]: --profile gss-sample cannot carry a tunnel"
printf '[t]\nmode = server\nlisten = 127.0.0.1:0\nbackend = 127.0.0.1:1\nprofile = nns\ntls-negotiate = yes\n' >"$tmp/bad.conf"
run_status 2 "$negio" tunnel --config "$tmp/bad.conf" --check
grep -qF "bad.conf:1: [t]: --profile nns has no TLS form" "$tmp/last.err" || fail "$(cat "$tmp/last.err")"
printf '[t]\nlisten = 127.0.0.1:0\n' >"$tmp/bad.conf"
run_status 2 "$negio" tunnel --config "$tmp/bad.conf" --check
grep -qF "bad.conf:1: [t] has no 'mode = client' or 'mode = server'" "$tmp/last.err" || fail "$(cat "$tmp/last.err")"
printf '[t]\nmode = client\nlisten = 127.0.0.1:0\nconnect = h:1\n[t]\nmode = server\n' >"$tmp/bad.conf"
run_status 2 "$negio" tunnel --config "$tmp/bad.conf" --check
grep -qF "bad.conf:5: [t] again (first on line 1)" "$tmp/last.err" || fail "$(cat "$tmp/last.err")"
# a section's name is the tunnel's, as --name: into log lines and metrics labels as it is
section_name() { # NAME STATUS: a good server tunnel in section [NAME], --check exits STATUS
  printf '[%s]\nmode = server\nlisten = 127.0.0.1:0\nbackend = 127.0.0.1:1\n' "$1" >"$tmp/bad.conf"
  run_status "$2" "$negio" tunnel --config "$tmp/bad.conf" --check
}
long63=$(printf 'n%.0s' $(seq 1 63))
section_name "$long63" 0 # past libinih's own 49 bytes
for name in 'a"b' 'a b' 'x=1' "${long63}n"; do
  section_name "$name" 2
  grep -qF "bad.conf:1: [${name:0:63}" "$tmp/last.err" ||
    fail "[$name]: $(cat "$tmp/last.err")"
  grep -qF "a tunnel's name (its section's) is 1..63 letters, digits, '.', '_' or '-'" "$tmp/last.err" ||
    fail "[$name]: $(cat "$tmp/last.err")"
done
run_status 2 "$negio" tunnel --config "$tmp/nonexistent.conf"
grep -qF "nonexistent.conf: No such file or directory" "$tmp/last.err" || fail "$(cat "$tmp/last.err")"

# ---- the command line's errors -----------------------------------------------------------------
run_status 2 "$negio" tunnel server --listen 127.0.0.1:0 --backend 127.0.0.1:1 --colour blue
grep -q "unrecognized option '--colour'" "$tmp/last.err" || fail "$(cat "$tmp/last.err")"
run_status 2 "$negio" tunnel server --listen 127.0.0.1:0
grep -q -- "--backend HOST:PORT is required" "$tmp/last.err" || fail "$(cat "$tmp/last.err")"
run_status 2 "$negio" tunnel client --listen 127.0.0.1:0 --connect 127.0.0.1:1 --handshake-timeout 0
grep -q -- "--handshake-timeout: must be more than 0" "$tmp/last.err" || fail "$(cat "$tmp/last.err")"
run_status 2 "$negio" tunnel client --listen 127.0.0.1:0 --connect 127.0.0.1:1 --profile gss-sample
grep -q "cannot carry a tunnel" "$tmp/last.err" || fail "$(cat "$tmp/last.err")"
run_status 2 "$negio" tunnel server --listen 127.0.0.1:0 --backend 127.0.0.1:1 --profile nns --tls-negotiate
grep -q -- "--profile nns has no TLS form" "$tmp/last.err" || fail "$(cat "$tmp/last.err")"
run_status 2 "$negio" tunnel client --listen 127.0.0.1:0 --connect 127.0.0.1:1 --profile nns --tls --ca /dev/null
grep -q -- "--profile nns has no TLS form" "$tmp/last.err" || fail "$(cat "$tmp/last.err")"
run_status 1 "$negio" tunnel server --listen "127.0.0.1:$sport" --backend 127.0.0.1:1
grep -q "cannot listen on 127.0.0.1:$sport" "$tmp/last.err" || fail "$(cat "$tmp/last.err")"
run_status 0 "$negio" tunnel server --help
grep -q -- "--accept-proxy-from" "$tmp/last.out" || fail "help"
grep -qF -- "[--profile native|nns]" "$tmp/last.out" || fail "help: $(cat "$tmp/last.out")"

stop_tunnel "$spid"
check_json_lines "$tmp/acl.out" "
assert ev('stopping'), lines
"
echo "test_tunnel_ops: ok"
