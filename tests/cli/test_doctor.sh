#!/usr/bin/env bash
# negio doctor: in a healthy realm every check passes (client and server, text and JSON, exit
# status 0); then one thing at a time is broken, and the right check fails with the right
# advice (exit status 1) while the others still pass.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

start_realm
printf 'not-the-password\n' >"$tmp/wrong.password"

# doctor_json EXPECTED_STATUS ARGS...: runs negio doctor ARGS --json into $tmp/last.out
doctor_json() {
  local want=$1; shift
  run_status "$want" "$negio" doctor "$@" --json
}

# expect CHECK STATUS TEXT [ADVICE]: in the last JSON report, CHECK has STATUS, its summary holds
# TEXT and its advice ADVICE
expect() {
  check_json "$tmp/last.out" "
c = {x['check']: x for x in j['checks']}['$1']
assert c['status'] == '$2', c
assert '''$3''' in c['summary'], c
assert '''${4:-}''' == '' or '''${4:-}''' in (c['advice'] or ''), c
"
}

# ---- healthy ---------------------------------------------------------------------------------
run_status 0 "$negio" doctor client
for check in config host kdc credentials service ntlm; do
  grep -Eq "^OK +$check " "$tmp/last.out" || fail "client check $check not OK: $(cat "$tmp/last.out")"
done
grep -q '^all 6 checks passed$' "$tmp/last.out" || fail "$(cat "$tmp/last.out")"
grep -q 'krbtgt/NEGIO.TEST@NEGIO.TEST' "$tmp/last.out" || fail "no TGT listed: $(cat "$tmp/last.out")"
doctor_json 0 client
check_json "$tmp/last.out" "
assert j['mode'] == 'client' and j['service'] == 'negio@localhost' and j['ok'] is True, j
assert [c['check'] for c in j['checks']] == ['config', 'host', 'kdc', 'credentials', 'service', 'ntlm'], j
assert all(c['status'] == 'ok' for c in j['checks']), j
c = {x['check']: x for x in j['checks']}
assert 'Kerberos asks for negio/localhost@NEGIO.TEST' in c['host']['details'], c['host']
assert abs(c['kdc']['kdc_offset']) <= 2 and c['kdc']['allowed_skew'] == 300, c['kdc']
t = c['service']['ticket']
assert t['server'] == 'negio/localhost@NEGIO.TEST' and t['kvno'] >= 1, t
assert t['enctype'] == 'aes256-cts-hmac-sha1-96', t
assert 'NEGIO\\\\alice' in c['ntlm']['summary'], c['ntlm']
"
kvno=$(python3 -c "import json; print([c for c in json.load(open('$tmp/last.out'))['checks'] if c['check'] == 'service'][0]['ticket']['kvno'])")

run_status 0 "$negio" doctor server
grep -q '^all 6 checks passed$' "$tmp/last.out" || fail "$(cat "$tmp/last.out")"
doctor_json 0 server
check_json "$tmp/last.out" "
assert j['mode'] == 'server' and j['ok'] is True, j
assert [c['check'] for c in j['checks']] == ['config', 'host', 'kdc', 'keytab', 'kdc_key', 'ntlm'], j
c = {x['check']: x for x in j['checks']}
assert all(x['status'] == 'ok' for x in j['checks']), j
assert any('key version $kvno  aes256-cts-hmac-sha1-96' in d for d in c['keytab']['details']), c['keytab']
assert c['kdc_key']['ticket']['kvno'] == $kvno, c['kdc_key']
assert '2 accounts' in c['ntlm']['summary'], c['ntlm']
"
doctor_json 0 client --user alice --password-file "$NEGIO_REALM_DIR/alice.password"
expect credentials ok "the KDC gives alice a ticket-granting ticket"
doctor_json 0 client --mech ntlm
expect kdc skipped "--mech ntlm"

# ---- broken, one thing at a time ---------------------------------------------------------------
# a service name the KDC does not know
doctor_json 1 client --spn nosuch@localhost
expect service fail "kerberos: server not found in Kerberos database (nosuch/localhost@NEGIO.TEST)" "check the service name"
expect credentials ok "alice@NEGIO.TEST"
doctor_json 1 server --spn nosuch@localhost
expect keytab fail "holds no key for nosuch/localhost@NEGIO.TEST (it holds negio/localhost@NEGIO.TEST" "give the service name the keytab is for"
expect kdc_key skipped "needs a keytab"

# a host name that does not resolve
doctor_json 1 client --spn negio@no-such-host.invalid
expect host fail "the host name no-such-host.invalid does not resolve" "check the name in --spn"

# no credential cache; an expired ticket; a wrong password
KRB5CCNAME=FILE:$tmp/no-cache doctor_json 1 client
expect credentials fail "kerberos: no ticket: the credential cache FILE:$tmp/no-cache does not exist" "run kinit"
expect service skipped "needs Kerberos credentials"
kinit -l 2s -c "FILE:$tmp/short" alice <"$NEGIO_REALM_DIR/alice.password" >/dev/null
wait_expired "FILE:$tmp/short"
KRB5CCNAME=FILE:$tmp/short doctor_json 1 client
expect credentials fail "the ticket-granting ticket of alice@NEGIO.TEST in FILE:$tmp/short expired at" "run kinit again"
doctor_json 1 client --user alice --password-file "$tmp/wrong.password"
expect credentials fail "kerberos: wrong password for alice@NEGIO.TEST" "check the password"

# no NTLM accounts
env -u NTLM_USER_FILE "$negio" doctor client --json >"$tmp/last.out" || true
expect ntlm fail "no NTLM credentials for the current user (NTLM_USER_FILE is not set)" "give --user and --password-file"
env -u NTLM_USER_FILE "$negio" doctor server --json >"$tmp/last.out" || true
expect ntlm fail "no NTLM account file (NTLM_USER_FILE is not set)" "--mech kerberos"

# a missing keytab
doctor_json 1 server --keytab "$tmp/none.keytab"
expect keytab fail "kerberos: the keytab FILE:$tmp/none.keytab does not exist" "export the service's key"

# the service's key changed at the KDC after the keytab was written
kadmin.local -r NEGIO.TEST -q "cpw -randkey negio/localhost" >/dev/null 2>&1
doctor_json 1 server
expect kdc_key fail "the KDC encrypts tickets for negio/localhost@NEGIO.TEST with key version $((kvno + 1)) (aes256-cts-hmac-sha1-96), which the keytab FILE:$NEGIO_REALM_DIR/service.keytab does not hold" "export it again"
expect keytab ok "keys for negio/localhost@NEGIO.TEST"
# without a ticket-granting ticket the keytab's own key is tried against the KDC
KRB5CCNAME=FILE:$tmp/no-cache doctor_json 1 server
expect kdc_key fail "the keytab's key for negio/localhost@NEGIO.TEST is not the one the KDC has" "export it again"
# doing what it says mends it
kadmin.local -r NEGIO.TEST -q "ktadd -k $NEGIO_REALM_DIR/service.keytab negio/localhost" >/dev/null 2>&1
doctor_json 0 server
KRB5CCNAME=FILE:$tmp/no-cache doctor_json 0 server
expect kdc_key ok "the keytab holds it"

# the KDC down
kdc_stop
doctor_json 1 client
expect kdc fail "kerberos: no KDC of realm NEGIO.TEST answered (tried tcp 127.0.0.1:$NEGIO_KDC_PORT" "check that the KDC runs"
run_status 1 "$negio" doctor server
grep -Eq '^FAIL +kdc +kerberos: no KDC of realm NEGIO.TEST answered' "$tmp/last.out" || fail "$(cat "$tmp/last.out")"
grep -q 'to do: check that the KDC runs' "$tmp/last.out" || fail "$(cat "$tmp/last.out")"
# the key version is asked of the KDC too, not read from a ticket in the cache
grep -Eq '^FAIL +kdc_key +kerberos: no KDC of realm NEGIO.TEST answered' "$tmp/last.out" || fail "$(cat "$tmp/last.out")"
grep -q '^2 of 6 checks failed$' "$tmp/last.out" || fail "$(cat "$tmp/last.out")"

# the KDC's clock an hour ahead
kdc_start 3600
doctor_json 1 client
expect kdc fail "kerberos: clock skew: the KDC's clock of NEGIO.TEST is 3600 s ahead of this host's (at most 300 s are allowed)" "set the clocks right (NTP)"
check_json "$tmp/last.out" "
c = {x['check']: x for x in j['checks']}['kdc']
assert 3590 <= c['kdc_offset'] <= 3610, c
"
kdc_stop
kdc_start 0
doctor_json 0 client

# a krb5.conf that is not there
KRB5_CONFIG=$tmp/none.conf doctor_json 1 client
expect config fail "" "KRB5_CONFIG"

# usage
run_status 2 "$negio" doctor
run_status 2 "$negio" doctor nurse
run_status 0 "$negio" doctor client --help
grep -q -- '--password-file' "$tmp/last.out" || fail "$(cat "$tmp/last.out")"
run_status 0 "$negio" doctor server --help
grep -q -- '--keytab' "$tmp/last.out" || fail "$(cat "$tmp/last.out")"
run_status 2 "$negio" doctor client --keytab x

echo "ok"
