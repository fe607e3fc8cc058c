#!/usr/bin/env bash
# The command's input and output: messages from stdin, human-readable lines, valid JSON for any
# bytes, the server stopping on SIGINT and SIGTERM with status 0, and a listen failure.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

start_realm
start_server echo --echo --min-protect none
server=$server_pid

# messages from stdin, one per line, prefixes honoured; a last line without a newline counts
printf 'one\nsign:two\n\nnone:four\r\nlast' |
  run_status 0 client --min-protect none
check_json "$tmp/last.out" "
m = j['messages']
assert [(x['sent'], x['sent_level']) for x in m] == [
    ('one', 'seal'), ('two', 'sign'), ('', 'seal'), ('four', 'none'), ('last', 'seal')], m
assert all(x['ok'] and x['reply'] == x['sent'] and x['reply_level'] == x['sent_level'] for x in m), m
"

# any bytes come back as valid JSON: quotes, backslashes, control characters and UTF-8 as
# themselves, bytes that are not UTF-8 as \u00XX
run_status 0 client $'q"b\\s\x01\x1f\x7f\ttab' 'héllo ✓' $'bad\xff\xc3(\xed\xa0\x80end'
check_json "$tmp/last.out" "
r = [x['reply'] for x in j['messages']]
assert r[0] == 'q\"b\\\\s\x01\x1f\x7f\ttab', r
assert r[1] == 'héllo ✓', r
assert r[2] == 'bad\u00ff\u00c3(\u00ed\u00a0\u0080end', r
"
grep -q '\\u00ff' "$tmp/last.out" || fail "invalid UTF-8 not escaped as \\u00XX"

# human-readable client output
run_status 0 "$negio" client --connect "127.0.0.1:$port" --mech kerberos --timeout 20 hello none:x
grep -q "^authenticated to negio/localhost@NEGIO.TEST with kerberos, server authenticated$" "$tmp/last.out" ||
  fail "client text: $(cat "$tmp/last.out")"
grep -q '^seal "hello" -> seal "hello"$' "$tmp/last.out" || fail "client text: $(cat "$tmp/last.out")"
grep -q '^none "x" -> none "x"$' "$tmp/last.out" || fail "client text: $(cat "$tmp/last.out")"
grep -q '^closed$' "$tmp/last.out" || fail "client text: $(cat "$tmp/last.out")"

# the JSON server stops on SIGINT with status 0, closing an open connection with a protected
# close: the client waiting for its next line on stdin learns that the server closed it
mkfifo "$tmp/stdin"
exec 3<>"$tmp/stdin"   # held open: the client sees no end of input
before=$(grep -c '"authenticated"' "$tmp/echo.out")
"$negio" client --connect "127.0.0.1:$port" --json --timeout 20 <"$tmp/stdin" >"$tmp/open.out" 2>&1 &
open_client=$!
for i in $(seq 1 200); do
  [ "$(grep -c '"authenticated"' "$tmp/echo.out")" -gt "$before" ] && break
  [ "$i" -lt 200 ] || fail "the client on stdin did not authenticate"
  sleep 0.05
done
kill -INT "$server"
status=0; wait "$server" || status=$?
[ "$status" -eq 0 ] || fail "server exited $status after SIGINT"
status=0; wait "$open_client" || status=$?
exec 3>&-
[ "$status" -eq 1 ] || fail "client of a stopped server exited $status: $(cat "$tmp/open.out")"
head -n 1 "$tmp/open.out" >"$tmp/open.json"
check_json "$tmp/open.json" "
assert j['ok'] is False and j['error'] == 'NEGIO_ERR_CLOSED' and '(clean)' in j['detail'], j
assert j['messages'] == [], j
"
check_json_lines "$tmp/echo.out" "
assert lines[0]['event'] == 'listening' and isinstance(lines[0]['port'], int), lines[0]
assert {e['event'] for e in lines} == {'listening', 'authenticated', 'message', 'closed'}, lines
"

# a human-readable server on a port of its own, then another on the same port fails with 1
"$negio" server --listen 127.0.0.1:0 --echo >"$tmp/text.out" 2>"$tmp/text.err" &
text=$!; servers+=("$text")
for _ in $(seq 1 200); do grep -q "^listening on" "$tmp/text.out" 2>/dev/null && break; sleep 0.05; done
port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$tmp/text.out")
[ -n "$port" ] || fail "text server: $(cat "$tmp/text.out")"
run_status 0 client --mech ntlm hi
run_status 1 "$negio" server --listen "127.0.0.1:$port"
grep -q "cannot listen on 127.0.0.1:$port" "$tmp/last.err" || fail "listen failure: $(cat "$tmp/last.err")"
stop_server "$text"
# NTLM NEGIO\alice maps to alice: --ntlm-domain defaults to NETBIOS_DOMAIN_NAME (NEGIO)
grep -q '^127\.0\.0\.1:[0-9]*: authenticated "NEGIO\\\\alice" with ntlm, local user "alice"$' "$tmp/text.out" ||
  fail "server text: $(cat "$tmp/text.out")"
grep -q '^127\.0\.0\.1:[0-9]*: message, seal, 2 bytes: "hi"$' "$tmp/text.out" ||
  fail "server text: $(cat "$tmp/text.out")"
grep -q '^127\.0\.0\.1:[0-9]*: closed, clean' "$tmp/text.out" || fail "server text: $(cat "$tmp/text.out")"
echo "test_io: ok"
