#!/usr/bin/env bash
# make demo: a throwaway realm, a negio server, and negio clients over every mechanism path,
# then the refused cases; everything started here is stopped at the end.
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
serve() {
  LOG=$(mktemp "$dir/server-XXXX.log")
  "$negio" server --listen 127.0.0.1:0 --echo "$@" >"$LOG" 2>&1 &
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

say "done: everything started here is stopped"
