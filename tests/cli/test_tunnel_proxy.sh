#!/usr/bin/env bash
# Identity to the backend and scale-out, with software nobody here wrote:
#  - a backend that reads the PROXY v2 header itself: the client's address, the address the tunnel
#    server accepted it on (also on a dual-stack listener: both as IPv4), and its principal,
#    mechanism, level and local name in TLVs 0xE0..0xE3 (docs/TUNNEL.md);
#  - nginx behind a tunnel server with proxy_protocol on: its access log shows the address of the
#    client that came through the tunnel, as the tunnel server saw it;
#  - HAProxy in TCP mode balancing two tunnel servers that share one keytab and accept its PROXY
#    v2 headers: clients authenticate through either, the servers log the real client address;
#    killing one server sends new connections to the other, and a tunnel established on the
#    survivor goes on undisturbed.
set -euo pipefail
. "$(dirname "$0")/tunnel_lib.sh"
need nginx haproxy redis-server

start_realm

# ---- the PROXY v2 header as a backend reads it -------------------------------------------------
# one connection through a tunnel server on 127.0.0.1, one through a dual-stack one (":0", which
# sees an IPv4 client as ::ffff:127.0.0.1): both headers are TCP over IPv4, from the client to the
# address the tunnel server accepted it on
pp_port=$(free_port)
python3 - "$pp_port" "$tmp/pp.json" "$tmp/pp-dual.json" <<'PY' &
import json, socket, struct, sys
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1]))); srv.listen(2)
open(sys.argv[2] + ".ready", "w").close()
for path in sys.argv[2:]:
    c, _ = srv.accept()
    def need(n):
        b = b""
        while len(b) < n:
            x = c.recv(n - len(b))
            if not x: raise SystemExit("short header")
            b += x
        return b
    h = need(16)
    assert h[:12] == b"\r\n\r\n\x00\r\nQUIT\n", h
    body = need(struct.unpack(">H", h[14:16])[0])
    out = {"ver_cmd": h[12], "family": h[13]}
    fam, n = (socket.AF_INET, 4) if h[13] == 0x11 else (socket.AF_INET6, 16)
    a = 2 * n  # the two ports follow the two addresses
    out["src"] = "%s:%d" % (socket.inet_ntop(fam, body[0:n]), struct.unpack(">H", body[a:a+2])[0])
    out["dst"] = "%s:%d" % (socket.inet_ntop(fam, body[n:a]), struct.unpack(">H", body[a+2:a+4])[0])
    tlv, i = {}, 2 * n + 4
    while i < len(body):
        t, n = body[i], struct.unpack(">H", body[i+1:i+3])[0]
        tlv["0x%02X" % t] = body[i+3:i+3+n].decode(); i += 3 + n
    out["tlv"] = tlv
    c.sendall(b"ok\n")
    json.dump(out, open(path, "w"))
    c.close()
PY
servers+=("$!")
wait_until 10 test -f "$tmp/pp.json.ready"
# proxy_through NAME [SERVER-OPTIONS...]: a tunnel server NAME with --proxy-protocol v2 to the
# backend above and a client to it, one connection through them; sets $ppsrv and $from (as the
# tunnel server logged the client)
proxy_through() {
  local name=$1; shift
  start_tunnel "$name" server --backend "127.0.0.1:$pp_port" --proxy-protocol v2 "$@"
  ppsrv=$tport
  start_tunnel "$name-c" client --connect "127.0.0.1:$ppsrv" --mech kerberos
  python3 - "$tport" <<'PY' >"$tmp/$name-reply.txt"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
print(s.recv(100).decode().strip())
PY
  grep -q '^ok$' "$tmp/$name-reply.txt" || fail "$name: the PROXY backend did not answer: $(cat "$tmp/$name-reply.txt")"
  connection_lines "$tmp/$name.out" 1
  from=$(python3 -c 'import json,sys; print([json.loads(l) for l in open(sys.argv[1]) if "connection" in l][0]["from"])' "$tmp/$name.out")
}
proxy_through pp --map alice@NEGIO.TEST=alice
check_json "$tmp/pp.json" "
assert j['ver_cmd'] == 0x21 and j['family'] == 0x11, j
assert j['src'] == '$from' and j['dst'] == '127.0.0.1:$ppsrv', j
assert j['tlv'] == {'0xE0': 'alice@NEGIO.TEST', '0xE1': 'kerberos', '0xE2': 'seal', '0xE3': 'alice'}, j
"
proxy_through pp-dual --listen :0
check_json "$tmp/pp-dual.json" "
assert j['family'] == 0x11, j  # not TCP6 with ::ffff: addresses
assert '$from' == '[::ffff:' + j['src'].replace(':', ']:'), j
assert j['dst'] == '127.0.0.1:$ppsrv', j
"

# ---- nginx with proxy_protocol behind a tunnel server --------------------------------------------
nginx_port=$(free_port)
mkdir -p "$tmp/nginx"
cat >"$tmp/nginx.conf" <<CONF
daemon off;
master_process off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log;
events { worker_connections 64; }
http {
  log_format tunnel '\$proxy_protocol_addr:\$proxy_protocol_port via \$remote_addr "\$request" \$status';
  access_log $tmp/nginx/access.log tunnel;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  server {
    listen 127.0.0.1:$nginx_port proxy_protocol;
    location / { return 200 "hello through the tunnel\n"; }
  }
}
CONF
nginx -c "$tmp/nginx.conf" -p "$tmp/nginx" >"$tmp/nginx.out" 2>&1 &
servers+=("$!")
wait_until 10 python3 -c "import socket; socket.create_connection(('127.0.0.1', $nginx_port)).close()"
start_tunnel web server --backend "127.0.0.1:$nginx_port" --proxy-protocol v2
websrv=$tport
start_tunnel web-c client --connect "127.0.0.1:$websrv" --mech kerberos
python3 - "$tport" <<'PY' >"$tmp/http.txt"
import sys, urllib.request
print(urllib.request.urlopen("http://127.0.0.1:%s/hello" % sys.argv[1], timeout=20).read().decode().strip())
PY
grep -q '^hello through the tunnel$' "$tmp/http.txt" || fail "nginx: $(cat "$tmp/http.txt")"
connection_lines "$tmp/web.out" 1
from=$(python3 -c 'import json,sys; print([json.loads(l) for l in open(sys.argv[1]) if "connection" in l][0]["from"])' "$tmp/web.out")
wait_until 10 grep -q "GET /hello" "$tmp/nginx/access.log"
grep -q "^$from via 127.0.0.1 \"GET /hello HTTP/1.1\" 200$" "$tmp/nginx/access.log" ||
  fail "nginx logged $(cat "$tmp/nginx/access.log"), the tunnel server saw $from"

# ---- HAProxy balancing two tunnel servers --------------------------------------------------------
start_redis
start_tunnel a server --backend "127.0.0.1:$redis_port" --accept-proxy-from 127.0.0.1
apid=$tpid aport=$tport
start_tunnel b server --backend "127.0.0.1:$redis_port" --accept-proxy-from 127.0.0.1
bport=$tport
hport=$(free_port)
cat >"$tmp/haproxy.cfg" <<CONF
global
  log stderr format short local0
defaults
  mode tcp
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  retries 3
  option redispatch
frontend tunnels
  bind 127.0.0.1:$hport
  default_backend servers
backend servers
  balance roundrobin
  server a 127.0.0.1:$aport send-proxy-v2
  server b 127.0.0.1:$bport send-proxy-v2
CONF
haproxy -f "$tmp/haproxy.cfg" -db >"$tmp/haproxy.out" 2>&1 &
servers+=("$!")
wait_until 10 python3 -c "import socket; socket.create_connection(('127.0.0.1', $hport)).close()"
start_tunnel lb-c client --connect "127.0.0.1:$hport" --mech kerberos
p=$tport
for i in 1 2 3 4; do
  [ "$(redis-cli -p "$p" SET "k$i" "v$i")" = OK ] || fail "SET through HAProxy"
done
connection_lines "$tmp/a.out" 2
connection_lines "$tmp/b.out" 2
# both servers saw the real client (the tunnel client's address, from the PROXY header) and
# HAProxy as the connection's own source
client_from=$(python3 -c '
import json, sys
print(sorted(json.loads(l)["from"] for l in open(sys.argv[1]) if "\"connection\"" in l)[0])' "$tmp/lb-c.out")
for s in a b; do
  check_json_lines "$tmp/$s.out" "
# (the probe that waited for HAProxy to listen reached a server too, without a handshake)
auth = [c for c in ev('connection') if c['who'] is not None]
assert len(auth) >= 2, lines
for c in auth:
    assert c['who'] == 'alice@NEGIO.TEST' and c['close'] == 'clean', c
    assert c['via'].startswith('127.0.0.1:') and c['from'] != c['via'], c
"
done
# a subscriber on each server
redis-cli -p "$p" SUBSCRIBE ch >"$tmp/sub1.out" 2>&1 &
s1=$!; servers+=("$s1")
wait_until 10 grep -q ch "$tmp/sub1.out"
redis-cli -p "$p" SUBSCRIBE ch >"$tmp/sub2.out" 2>&1 &
s2=$!; servers+=("$s2")
wait_until 10 grep -q ch "$tmp/sub2.out"
wait_until 10 test "$(redis-cli -p "$p" PUBSUB NUMSUB ch | tail -n 1)" = 2
# server a dies mid-run
kill -KILL "$apid"
wait "$apid" 2>/dev/null || true
# new connections all go to b, and the subscriber there still gets what is published
for i in $(seq 1 6); do
  [ "$(redis-cli -p "$p" GET "k$((i % 4 + 1))")" = "v$((i % 4 + 1))" ] || fail "GET after a server died"
done
wait_until 10 test "$(redis-cli -p "$p" PUBSUB NUMSUB ch | tail -n 1)" = 1
[ "$(redis-cli -p "$p" PUBLISH ch after-the-kill)" = 1 ] || fail "PUBLISH after the kill"
survivors=0
for s in 1 2; do
  if grep -q after-the-kill "$tmp/sub$s.out" 2>/dev/null || { sleep 0.5; grep -q after-the-kill "$tmp/sub$s.out"; }; then
    survivors=$((survivors + 1))
    kill -0 "$(eval echo \$s$s)" || fail "the subscriber on the survivor was disconnected"
  fi
done
[ "$survivors" = 1 ] || fail "expected the one subscriber on the surviving server to go on, got $survivors"
echo "test_tunnel_proxy: ok"
