#!/usr/bin/env bash
# Failures end the client with status 1, the error name and its detail (JSON and stderr), and
# never hang: a message below the server's minimum, server authentication required with NTLM,
# mechanisms the server does not allow, a wrong password, a wrong service, nobody listening,
# and a server that never answers.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

start_realm
start_server strict --echo   # the default minimum: sign
strict=$server_pid
strict_port=$port

# none: below the server's minimum is refused before it is sent; what came before succeeded
run_status 1 client first none:refused never-sent
check_json "$tmp/last.out" "
assert j['ok'] is False and j['error'] == 'NEGIO_ERR_LEVEL', j
assert 'minimum is sign' in j['detail'], j
assert j['mech'] == 'kerberos', j
m = j['messages']
assert len(m) == 2 and m[0]['ok'] and m[0]['reply'] == 'first', m
assert m[1]['ok'] is False and m[1]['sent_level'] == 'none' and m[1]['error'] == 'NEGIO_ERR_LEVEL', m
"
grep -q "NEGIO_ERR_LEVEL" "$tmp/last.err" || fail "error not on stderr"

# without --json: the same status, the error on stderr
run_status 1 "$negio" client --connect "127.0.0.1:$port" --timeout 20 none:refused
grep -q "^negio client: NEGIO_ERR_LEVEL: " "$tmp/last.err" || fail "stderr: $(cat "$tmp/last.err")"

# a message the client's own minimum forbids the server to echo back: the server ends the
# connection with status 1, and the client hears it instead of waiting for its deadline
start_server lax --echo --min-protect none
run_status 1 client --min-protect sign none:echo-me
check_json "$tmp/last.out" "assert j['ok'] is False and j['error'] == 'NEGIO_ERR_REJECTED' and 'status 1' in j['detail'], j"
port=$strict_port

# NTLM cannot authenticate the server
run_status 1 client --mech ntlm --require-mutual hi
check_json "$tmp/last.out" "assert j['ok'] is False and j['error'] == 'NEGIO_ERR_POLICY' and 'server' in j['detail'], j"

# a wrong password
echo not-the-password >"$tmp/wrong.pw"
run_status 1 client --mech kerberos --user alice --password-file "$tmp/wrong.pw" hi
check_json "$tmp/last.out" "assert j['ok'] is False and j['error'] == 'NEGIO_ERR_CREDENTIALS' and 'major' in j['detail'], j"

# a service the KDC does not know
run_status 1 client --mech kerberos --spn nosuch@localhost hi
check_json "$tmp/last.out" "assert j['ok'] is False and j['error'] == 'NEGIO_ERR_HANDSHAKE', j"

# the server's mechanism policy
start_server krbonly --mech kerberos
run_status 1 client --mech ntlm hi
check_json "$tmp/last.out" "assert j['ok'] is False and j['error'] == 'NEGIO_ERR_PEER', j"
KRB5CCNAME=FILE:/nonexistent run_status 1 client hi   # negotiate would fall back to NTLM
run_status 0 client --mech kerberos
start_server ntlmonly --echo --mech ntlm --keytab "$NEGIO_REALM_DIR/service.keytab"
run_status 1 client --mech kerberos hi
check_json "$tmp/last.out" "assert j['ok'] is False, j"
# alice holds a ticket for the service, so SPNEGO moving her to NTLM is refused as a downgrade
run_status 1 client hi
check_json "$tmp/last.out" "assert j['ok'] is False and j['error'] == 'NEGIO_ERR_POLICY' and 'downgrade' in j['detail'], j"
run_status 0 client --allow-ntlm-fallback hi   # negotiate picks NTLM when allowed to
check_json "$tmp/last.out" "assert j['ok'] and j['mech'] == 'ntlm' and j['negotiated'], j"

# nobody listening
free_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
run_status 1 "$negio" client --connect "127.0.0.1:$free_port" --json --timeout 20 hi
check_json "$tmp/last.out" "assert j['ok'] is False and 'refused' in j['detail'], j"

# a server that accepts TCP and never answers: --timeout ends the client
python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
print(s.getsockname()[1], flush=True)
c, _ = s.accept(); time.sleep(30)' >"$tmp/mute.port" &
servers+=("$!")
for _ in $(seq 1 100); do [ -s "$tmp/mute.port" ] && break; sleep 0.05; done
start=$(date +%s)
run_status 1 "$negio" client --connect "127.0.0.1:$(cat "$tmp/mute.port")" --json --timeout 2 hi
[ $(($(date +%s) - start)) -le 10 ] || fail "--timeout 2 took $(($(date +%s) - start)) s"
check_json "$tmp/last.out" "assert j['ok'] is False and j['error'] == 'timeout', j"

stop_server "$strict"
check_json_lines "$tmp/strict.out" "
closed = [e for e in lines if e['event'] == 'closed']
assert all(set(e) == {'event', 'remote', 'reason', 'error', 'detail'} for e in closed), closed
assert closed[0]['reason'] == 'clean', closed   # the refused message never left the client
"
echo "test_policy: ok"
