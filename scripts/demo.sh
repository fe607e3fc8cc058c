#!/usr/bin/env bash
# make demo: a throwaway realm, a negio server, and negio clients over every mechanism path,
# then the refused cases, impersonation (as root), a delegation double hop and Kerberos inside
# TLS, and redis through a sealed negio tunnel; everything started here is stopped at the end.
set -euo pipefail
build=${BUILD:-build}
here=$(cd "$(dirname "$0")/.." && pwd)
negio="$here/$build/negio"
dir=$(mktemp -d /tmp/negio-demo-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "$negio" realm stop "$dir" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# start a server in the background; sets PORT and LOG
serve() { serve_plain --echo "$@"; }
serve_plain() {
  LOG=$(mktemp "$dir/server-XXXX.log")
  "$negio" server --listen 127.0.0.1:0 "$@" >"$LOG" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$LOG")
    [ -n "$PORT" ] && return 0
    sleep 0.05
  done
  echo "demo: the server did not start:" >&2; cat "$LOG" >&2; exit 1
}

# what the server saw since the last call
server_saw() {
  local n; n=$(wc -l <"$LOG")
  sed -n "$((SEEN + 1)),${n}p" "$LOG" | sed 's/^/    server: /'
  SEEN=$n
}

client() { "$negio" client --connect "127.0.0.1:$PORT" --spn negio@localhost "$@" 2>&1 | sed 's/^/    client: /'; }

say "a throwaway realm: KDC on loopback, service negio/localhost, users alice and bob"
"$negio" realm start "$dir"
. "$dir/env"

say "a negio server (negotiate: Kerberos or NTLM; minimum level none so that every level shows)"
serve --min-protect none
cat "$LOG" | sed 's/^/    server: /'
SEEN=$(wc -l <"$LOG")

messages=("none:in the clear" "sign:signed, not encrypted" "seal:sealed" "the default level (seal)")
say "kerberos (alice's ticket)"
client --mech kerberos "${messages[@]}"; sleep 0.2; server_saw
say "negotiate -> kerberos"
client --mech negotiate "${messages[@]}"; sleep 0.2; server_saw
say "negotiate -> ntlm (a client without a Kerberos ticket)"
KRB5CCNAME=FILE:/nonexistent client --mech negotiate "${messages[@]}"; sleep 0.2; server_saw
say "ntlm"
client --mech ntlm "${messages[@]}"; sleep 0.2; server_saw

say "refused: a server with the default minimum (sign) and a 'none' message"
serve
SEEN=1
if client --mech kerberos "sign:this one is fine" "none:this one is not"; then
  echo "demo: the none message was not refused" >&2; exit 1
fi
sleep 0.2; server_saw

say "refused: an NTLM client that requires server authentication"
if client --mech ntlm --require-mutual "hello"; then
  echo "demo: the NTLM client was not refused" >&2; exit 1
fi

if [ "$(id -u)" = 0 ]; then
  say "impersonation: a file service acting as each client's local account (alice -> nobody)"
  files=$dir/files
  chmod 711 "$dir"   # nobody may pass through to the files directory, and no further
  mkdir -m 777 "$files"
  echo "for root's eyes only" >"$files/secret"
  chmod 600 "$files/secret"
  serve_plain --files "$files" --impersonate --map alice@NEGIO.TEST=nobody
  SEEN=1
  client --mech kerberos "write hello.txt written as alice's local account" "read hello.txt" \
    "read secret" "write ../escape nope"
  sleep 0.2; server_saw
  echo "    \$ ls -l $files"
  ls -l "$files" | sed 's/^/    /'
else
  say "impersonation: skipped (it needs root; run make demo as root to see it)"
fi

say "delegation: client -> middle server -> backend (other/localhost), with alice's credentials"
serve --spn other@localhost --keytab "$dir/other.keytab" --mech kerberos
BACKEND_PORT=$PORT BACKEND_LOG=$LOG
serve_plain --forward "127.0.0.1:$BACKEND_PORT" --forward-spn other@localhost
SEEN=1
client --mech kerberos --delegate "hello through two hops" "sign:signed, both ways"
sleep 0.2; server_saw | sed 's/server:/middle:/'
sed -n '2,$p' "$BACKEND_LOG" | sed 's/^/    backend: /'
say "delegation refused: a client that did not delegate gets an error reply, not a crash"
client --mech kerberos "hello without --delegate"

say "Kerberos inside TLS, certificate-free (--tls-negotiate on both sides, no certificates)"
echo "    (the server's certificate is ephemeral and unchecked: Kerberos mutual authentication,"
echo "     bound to that TLS channel, proves the server instead)"
serve --tls-negotiate
SEEN=1
client --tls-negotiate "inside TLS (level none: TLS protects it)" "seal:sealed inside TLS as well"
"$negio" client --connect "127.0.0.1:$PORT" --tls-negotiate --json "once more, as JSON" |
  python3 -c '
import json, sys
j = json.load(sys.stdin)
for k in ("transport", "tls_version", "mech", "channel_bound", "server_authenticated",
          "tls_peer_verified"):
    print("    client --json: %s: %s" % (k, json.dumps(j[k])))
if not (j["ok"] and j["channel_bound"] and j["server_authenticated"]):
    sys.exit("demo: not bound to the channel, or the server not authenticated")'
sleep 0.2; server_saw
say "refused: NTLM inside certificate-free TLS (it cannot authenticate the server)"
if client --tls-negotiate --mech ntlm "hello"; then
  echo "demo: NTLM was not refused in certificate-free TLS" >&2; exit 1
fi

say "negio tunnel: redis through a sealed tunnel, alice's identity in the server's log"
if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
  rport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
    >"$dir/redis-server.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do redis-cli -p "$rport" PING >/dev/null 2>&1 && break; sleep 0.05; done
  tunnel() { # NAME SIDE OPTIONS...: starts it, sets TPORT
    local name=$1; shift
    "$negio" tunnel "$@" --listen 127.0.0.1:0 --name "$name" >"$dir/tunnel-$name.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 100); do
      TPORT=$(sed -n 's/.* listening on 127\.0\.0\.1:\([0-9]*\),.*/\1/p' "$dir/tunnel-$name.log")
      [ -n "$TPORT" ] && return 0
      sleep 0.05
    done
    echo "demo: tunnel $name did not start:" >&2; cat "$dir/tunnel-$name.log" >&2; exit 1
  }
  tunnel redis server --backend "127.0.0.1:$rport" --allow @NEGIO.TEST --min-protect seal
  tunnel local client --connect "127.0.0.1:$TPORT" --spn negio@localhost --mech kerberos
  echo "    \$ redis-cli -p $TPORT SET greeting 'hello through a sealed tunnel'"
  redis-cli -p "$TPORT" SET greeting "hello through a sealed tunnel" | sed 's/^/    /'
  echo "    \$ redis-cli -p $TPORT GET greeting"
  redis-cli -p "$TPORT" GET greeting | sed 's/^/    /'
  sleep 0.2
  sed 's/^/    /' "$dir/tunnel-redis.log"
  grep -q "who=alice@NEGIO.TEST mech=kerberos level=seal/seal" "$dir/tunnel-redis.log" ||
    { echo "demo: the tunnel server did not log alice" >&2; exit 1; }
else
  echo "    (redis-server is not installed: scripts/deps.sh installs it)"
fi

say "done: everything started here is stopped"
