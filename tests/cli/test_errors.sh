#!/usr/bin/env bash
# The failures of issue 19's table, through the command, in the words a person reads: the
# library's detail (in the client's JSON and on stderr, in the server's JSON events) names what
# is wrong and what to do, with the GSS status after it; a server that cannot serve its name
# does not start.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

start_realm
start_server errors --echo
printf 'not-the-password\n' >"$tmp/wrong.password"

# 1. a service principal the KDC does not know: what each mechanism did
run_status 1 client --spn nosuch@localhost hi
check_json "$tmp/last.out" "
d = j['detail']
assert j['ok'] is False and j['error'] == 'NEGIO_ERR_HANDSHAKE', j
assert 'kerberos: server not found in Kerberos database (nosuch/localhost@NEGIO.TEST)' in d, d
assert 'ntlm: the server is negio/localhost, not nosuch/localhost as asked' in d, d
assert d.index('ntlm: the server is') < d.index('gss_init_sec_context') < d.index('(major 0x'), d
"
# the same on stderr without --json
run_status 1 "$negio" client --connect "127.0.0.1:$port" --timeout 20 --spn nosuch@localhost hi
grep -q 'kerberos: server not found in Kerberos database (nosuch/localhost@NEGIO.TEST): check the service name' "$tmp/last.err" ||
  fail "stderr does not name the service: $(cat "$tmp/last.err")"

# 2. a wrong NTLM password (no ticket): the server knows it was the password and logs it; the
# client is told its logon was refused
KRB5CCNAME=FILE:/nonexistent run_status 1 client --user bob --password-file "$tmp/wrong.password" hi
check_json "$tmp/last.out" "
d = j['detail']
assert j['error'] == 'NEGIO_ERR_PEER', j
assert 'ntlm: the server refused the logon as bob: wrong password or unknown user' in d, d
"
for _ in $(seq 1 100); do
  grep -q 'logon failure' "$tmp/errors.out" && break
  sleep 0.05
done
check_json_lines "$tmp/errors.out" "
c = [e for e in ev('closed') if 'ntlm:' in e['detail']]
assert c and 'ntlm: logon failure for bob: wrong password' in c[-1]['detail'], c
assert c[-1]['detail'].index('ntlm: logon failure') < c[-1]['detail'].index('gss_accept_sec_context'), c
"

# 3. the KDC down, a password given: the realm and the addresses tried, not "No credentials"
kdc_stop
run_status 1 client --mech kerberos --user alice --password-file "$NEGIO_REALM_DIR/alice.password" hi
kdc_start
check_json "$tmp/last.out" "
d = j['detail']
assert j['error'] == 'NEGIO_ERR_CREDENTIALS', j
assert 'kerberos: no KDC of realm NEGIO.TEST answered (tried tcp 127.0.0.1:$NEGIO_KDC_PORT' in d, d
assert 'check that the KDC runs' in d, d
assert d.index('no KDC') < d.index('gss_acquire_cred_with_password'), d
"

# 4. a server that cannot serve its name does not start, and says why
run_status 1 "$negio" server --listen 127.0.0.1:0 --keytab /nonexistent.keytab
grep -q "negio server: cannot serve negio@localhost: NEGIO_ERR_CREDENTIALS: kerberos: the keytab FILE:/nonexistent.keytab does not exist" "$tmp/last.err" ||
  fail "no start-up error: $(cat "$tmp/last.err")"
! grep -q listening "$tmp/last.out" || fail "the server listened: $(cat "$tmp/last.out")"
run_status 1 "$negio" server --listen 127.0.0.1:0 --keytab "$NEGIO_REALM_DIR/other.keytab"
grep -q "holds no key for negio/localhost@NEGIO.TEST (it holds other/localhost@NEGIO.TEST)" "$tmp/last.err" ||
  fail "no start-up error: $(cat "$tmp/last.err")"
# with Kerberos not allowed, the keytab does not matter
start_server ntlm-only --mech ntlm --keytab /nonexistent.keytab
stop_server "$server_pid"

# 5. a client with a ticket, a server that takes NTLM only: the downgrade refusal says its usual
# cause
start_server ntlm-only-2 --echo --mech ntlm --keytab "$NEGIO_REALM_DIR/service.keytab"
run_status 1 client hi
check_json "$tmp/last.out" "
d = j['detail']
assert j['error'] == 'NEGIO_ERR_POLICY' and 'refused as a downgrade' in d, j
assert 'a server that does not accept kerberos or has no key for the service in its keytab' in d, d
"

echo "ok"
