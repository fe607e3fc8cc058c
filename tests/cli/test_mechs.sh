#!/usr/bin/env bash
# Every mechanism path through the echo server: kerberos, negotiate->kerberos (alice's ticket),
# negotiate->ntlm (no ticket), ntlm, and a user with a password for kerberos and ntlm; each
# sends messages at every level (and an empty one) and gets them back at the level they went.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

start_realm
start_server echo --echo --min-protect none
server=$server_pid

# all four paths, the same messages; $1 = name, $2 = expected mech, $3 = negotiated,
# $4 = server authenticated, rest: client options
path() {
  local name=$1 mech=$2 negotiated=$3 sauth=$4; shift 4
  run_status 0 client "$@" default-level none:plain sign:signed seal:sealed seal: 'with "quotes"'
  cp "$tmp/last.out" "$tmp/$name.json"
  check_json "$tmp/$name.json" "
assert j['ok'] is True, j
assert j['mech'] == '$mech' and j['negotiated'] is $negotiated, j
assert j['server_authenticated'] is $sauth, j
assert j['peer'].startswith('negio/localhost'), j
m = j['messages']
assert [x['sent_level'] for x in m] == ['seal', 'none', 'sign', 'seal', 'seal', 'seal'], m
assert [x['sent'] for x in m] == ['default-level', 'plain', 'signed', 'sealed', '', 'with \"quotes\"'], m
for x in m:
    assert x['ok'] is True and x['reply'] == x['sent'] and x['reply_level'] == x['sent_level'], x
"
}
path kerberos kerberos False True --mech kerberos
path neg-kerberos kerberos True True
KRB5CCNAME=FILE:/nonexistent path neg-ntlm ntlm True False
path ntlm ntlm False False --mech ntlm
path kerberos-bob kerberos False True --mech kerberos --user bob --password-file "$NEGIO_REALM_DIR/bob.password"
path ntlm-bob ntlm False False --mech ntlm --user 'NEGIO\bob' --password-file "$NEGIO_REALM_DIR/bob.password"

# --require-mutual is satisfied by Kerberos
run_status 0 client --mech kerberos --require-mutual hi
check_json "$tmp/last.out" "assert j['ok'] and j['server_authenticated'] is True, j"

# no messages at all (stdin empty): authenticate and close cleanly
run_status 0 client --mech kerberos </dev/null
check_json "$tmp/last.out" "assert j['ok'] and j['messages'] == [], j"

stop_server "$server"
check_json_lines "$tmp/echo.out" "
auth = [e for e in lines if e['event'] == 'authenticated']
assert [(e['peer'], e['mech'], e['negotiated']) for e in auth] == [
    ('alice@NEGIO.TEST', 'kerberos', False), ('alice@NEGIO.TEST', 'kerberos', True),
    ('NEGIO\\\\alice', 'ntlm', True), ('NEGIO\\\\alice', 'ntlm', False),
    ('bob@NEGIO.TEST', 'kerberos', False), ('NEGIO\\\\bob', 'ntlm', False),
    ('alice@NEGIO.TEST', 'kerberos', False), ('alice@NEGIO.TEST', 'kerberos', False)], auth
# NTLM names map within the NTLM domain, by default NETBIOS_DOMAIN_NAME (NEGIO in the realm)
assert auth[0]['local_name'] == 'alice' and auth[2]['local_name'] == 'alice', auth
assert auth[5]['local_name'] == 'bob', auth
msgs = [e for e in lines if e['event'] == 'message']
assert len(msgs) == 6 * 6 + 1, msgs
assert [(e['level'], e['bytes']) for e in msgs[:6]] == [
    ('seal', 13), ('none', 5), ('sign', 6), ('seal', 6), ('seal', 0), ('seal', 13)], msgs
closed = [e for e in lines if e['event'] == 'closed']
assert len(closed) == 8 and all(e['reason'] == 'clean' and e['error'] is None for e in closed), closed
"
echo "test_mechs: ok"
