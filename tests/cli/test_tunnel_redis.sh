#!/usr/bin/env bash
# Redis through negio tunnel: redis-cli -> tunnel client -> tunnel server -> redis-server, at
# none, sign, seal and inside TLS (--tls-negotiate), with a Kerberos client and a Negotiate
# client that ends on NTLM (no ticket); and over .NET's NegotiateStream (--profile nns) at none,
# sign and seal with a Kerberos client, a raw NTLM client (--mech ntlm) and a Negotiate client
# that ends on NTLM. Each run: SET and GET, a pipelined run of 1000 commands, and a pub/sub
# subscriber that stays connected while messages are published to it. The server's log names
# the client, its mechanism and level, and the bytes each way.
set -euo pipefail
. "$(dirname "$0")/tunnel_lib.sh"

start_realm
start_redis

# run NAME SERVER_OPTIONS -- CLIENT_OPTIONS: a pair of tunnels and the three checks through them
run() {
  local name=$1; shift
  local sopts=() copts=()
  while [ "$1" != "--" ]; do sopts+=("$1"); shift; done
  shift
  copts=("$@")
  start_tunnel "$name-s" server --backend "127.0.0.1:$redis_port" "${sopts[@]}"
  local spid=$tpid sport=$tport
  start_tunnel "$name-c" client --connect "127.0.0.1:$sport" "${copts[@]}"
  local cpid=$tpid p=$tport

  # SET and GET
  [ "$(redis-cli -p "$p" SET "key-$name" "value-$name")" = OK ] || fail "$name: SET"
  [ "$(redis-cli -p "$p" GET "key-$name")" = "value-$name" ] || fail "$name: GET"
  # a pipelined run: 1000 commands in one write, every reply back
  for i in $(seq 1 1000); do printf 'RPUSH list-%s %s\r\n' "$name" "$i"; done >"$tmp/pipe.txt"
  redis-cli -p "$p" --pipe <"$tmp/pipe.txt" >"$tmp/$name-pipe.out" 2>&1 || fail "$name: --pipe"
  grep -q "errors: 0, replies: 1000" "$tmp/$name-pipe.out" || fail "$name: $(cat "$tmp/$name-pipe.out")"
  [ "$(redis-cli -p "$p" LLEN "list-$name")" = 1000 ] || fail "$name: LLEN"
  # a subscriber that stays connected: three messages published one after the other reach it
  redis-cli -p "$p" SUBSCRIBE "ch-$name" >"$tmp/$name-sub.out" 2>&1 &
  local sub=$!
  servers+=("$sub")
  wait_until 10 grep -q "ch-$name" "$tmp/$name-sub.out"
  local n
  for m in one two three; do
    # wait until the subscription is counted before publishing (PUBLISH returns receivers)
    wait_until 10 test "$(redis-cli -p "$p" PUBSUB NUMSUB "ch-$name" | tail -n 1)" = 1
    n=$(redis-cli -p "$p" PUBLISH "ch-$name" "$m")
    [ "$n" = 1 ] || fail "$name: PUBLISH $m reached $n subscribers"
  done
  wait_until 10 grep -q three "$tmp/$name-sub.out"
  kill -0 "$sub" || fail "$name: the subscriber did not stay connected"
  grep -q '^one$' "$tmp/$name-sub.out" && grep -q '^two$' "$tmp/$name-sub.out" ||
    fail "$name: subscriber got $(cat "$tmp/$name-sub.out")"
  kill "$sub"; wait "$sub" 2>/dev/null || true

  stop_tunnel "$cpid"
  stop_tunnel "$spid"
}

for level in none sign seal; do
  run "krb-$level" --protect "$level" --min-protect "$level" -- \
    --spn negio@localhost --mech kerberos --protect "$level" --min-protect "$level"
  KRB5CCNAME=FILE:/nonexistent run "ntlm-$level" --protect "$level" --min-protect "$level" -- \
    --spn negio@localhost --protect "$level" --min-protect "$level"
done
run krb-tls --tls-negotiate -- --tls-negotiate --mech kerberos
KRB5CCNAME=FILE:/nonexistent run ntlm-tls --tls-negotiate --tls-allow-ntlm -- --tls-negotiate --tls-allow-ntlm
# [MS-NNS]: one level per stream, asked for by the client; SPNEGO over NTLM is never below sign
for level in none sign seal; do
  run "nns-krb-$level" --profile nns --protect "$level" --min-protect "$level" -- \
    --profile nns --spn negio@localhost --mech kerberos --protect "$level" --min-protect "$level"
  KRB5CCNAME=FILE:/nonexistent run "nns-ntlm-$level" --profile nns --protect "$level" \
    --min-protect "$level" -- \
    --profile nns --spn negio@localhost --mech ntlm --protect "$level" --min-protect "$level"
done
KRB5CCNAME=FILE:/nonexistent run nns-negntlm-none --profile nns --protect none --min-protect none -- \
  --profile nns --spn negio@localhost --protect none --min-protect none
grep -q 'over \[MS-NNS\]' "$tmp/nns-krb-seal-s.out" || fail "the server's start-up line: $(cat "$tmp/nns-krb-seal-s.out")"

# what the servers logged: who, how, and the bytes each way, for every connection
for name in krb-none krb-sign krb-seal ntlm-none ntlm-sign ntlm-seal krb-tls ntlm-tls \
  nns-krb-none nns-krb-sign nns-krb-seal nns-ntlm-none nns-ntlm-sign nns-ntlm-seal nns-negntlm-none; do
  case $name in
    krb-* | nns-krb-*) who=alice@NEGIO.TEST mech=kerberos ;;
    *) who='NEGIO\\alice' mech=ntlm ;;
  esac
  case $name in
    *-tls) level=none ;;
    nns-negntlm-none) level=sign ;; # SPNEGO asks NTLM for integrity whatever it is asked
    *) level=${name##*-} ;;
  esac
  check_json_lines "$tmp/$name-s.out" "
conns = ev('connection')
assert len(conns) >= 8, conns
for c in conns:
    assert c['side'] == 'server' and c['who'] == '$who' and c['mech'] == '$mech', c
    assert c['level_in'] == '$level' and c['close'] == 'clean' and c['error'] is None, c
    assert not '$name'.startswith('nns-') or c['level_out'] == '$level', c
    assert c['from'].startswith('127.0.0.1:') and c['duration_ms'] >= 0, c
pipe = [c for c in conns if c['bytes_in'] > 20000]
assert len(pipe) == 1 and pipe[0]['bytes_out'] >= 1000 * 4, pipe
"
  check_json_lines "$tmp/$name-c.out" "
conns = ev('connection')
assert len(conns) >= 8 and all(c['close'] == 'clean' for c in conns), conns
assert all(c['who'].startswith('negio/localhost') or c['who'].startswith('negio@localhost') for c in conns), conns
"
done
echo "test_tunnel_redis: ok"
