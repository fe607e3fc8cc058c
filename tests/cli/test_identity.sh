#!/usr/bin/env bash
# Identity through the command: a realm started with --map maps alice to nobody (and everyone
# else by the default rule); a --files --impersonate server writes and reads as the mapped local
# account, refuses names that leave its directory, peers without a local account and root; and
# the double hop: a --forward server reaches a backend with the client's delegated credentials,
# and says so when there are none (no --delegate, NTLM, a ticket that is not forwardable).
# Impersonation needs root: without it, that part is skipped with a message.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

start_realm --map alice@NEGIO.TEST=nobody
d=$realm_dir
grep -qF 'auth_to_local = RULE:[1:$1@$0](^alice@NEGIO\.TEST$)s/^.*$/nobody/' "$d/krb5.conf" &&
  grep -q 'auth_to_local = DEFAULT' "$d/krb5.conf" || fail "krb5.conf: $(cat "$d/krb5.conf")"
kvno other/localhost@NEGIO.TEST >/dev/null || fail "no service ticket for other/localhost"
klist -k "$d/other.keytab" | grep -q "other/localhost@NEGIO.TEST" || fail "other.keytab"
[ "$(stat -c %a "$d/root.password")" = 600 ] || fail "root.password mode"

# ---- mapping: what the server reports as local_name -------------------------------------------
start_server map --echo --map 'NEGIO\bob=ntlm-bob'
map=$server_pid
run_status 0 client --mech kerberos hi                  # alice: the --map rule
run_status 0 client --mech kerberos --user bob --password-file "$d/bob.password" hi   # default
run_status 0 client --mech kerberos --user root --password-file "$d/root.password" hi
run_status 0 client --mech ntlm hi                      # NEGIO\alice: NETBIOS_DOMAIN_NAME
run_status 0 client --mech ntlm --user 'NEGIO\bob' --password-file "$d/bob.password" hi
stop_server "$map"
check_json_lines "$tmp/map.out" "
auth = [(e['peer'], e['local_name']) for e in lines if e['event'] == 'authenticated']
assert auth == [('alice@NEGIO.TEST', 'nobody'), ('bob@NEGIO.TEST', 'bob'),
                ('root@NEGIO.TEST', 'root'), ('NEGIO\\\\alice', 'alice'),
                ('NEGIO\\\\bob', 'ntlm-bob')], auth
"
# another NTLM domain: NEGIO\alice maps to nothing
start_server otherdomain --echo --ntlm-domain OTHER
run_status 0 client --mech ntlm hi
stop_server "$server_pid"
check_json_lines "$tmp/otherdomain.out" "
auth = [e for e in lines if e['event'] == 'authenticated']
assert len(auth) == 1 and auth[0]['local_name'] is None, auth
"

# ---- impersonation ------------------------------------------------------------------------------
files=$tmp/files
mkdir "$files"
if [ "$(id -u)" -ne 0 ]; then
  echo "test_identity: impersonation SKIPPED: it needs root (or CAP_SETUID and CAP_SETGID)" >&2
  run_status 1 "$negio" server --listen 127.0.0.1:0 --files "$files" --impersonate
  grep -q "needs root or the capabilities CAP_SETUID and CAP_SETGID" "$tmp/last.err" ||
    fail "no clear startup error without privileges: $(cat "$tmp/last.err")"
else
  nobody_uid=$(id -u nobody) || fail "no account nobody"
  # nobody is 65534 on Debian, above UID_MIN; where it is lower it counts as a system account
  uid_min=$(awk '$1 == "UID_MIN" {print $2}' /etc/login.defs 2>/dev/null)
  system=()
  [ "$nobody_uid" -ge "${uid_min:-1000}" ] || system=(--allow-system)
  # nobody must reach and write the directory; the rest of $tmp stays unreadable to it
  chmod 711 "$tmp"
  chmod 777 "$files"
  printf 'for root only\n' >"$files/secret"
  chmod 600 "$files/secret"
  # root without CAP_SETUID/CAP_SETGID is refused at startup, before anything listens
  if setpriv --bounding-set=-setuid,-setgid true 2>/dev/null; then
    run_status 1 setpriv --bounding-set=-setuid,-setgid --inh-caps=-setuid,-setgid \
      "$negio" server --listen 127.0.0.1:0 --files "$files" --impersonate
    grep -q "needs root or the capabilities CAP_SETUID and CAP_SETGID" "$tmp/last.err" ||
      fail "startup without the capabilities: $(cat "$tmp/last.err")"
  fi

  start_server files --files "$files" --impersonate "${system[@]}"
  files_server=$server_pid
  run_status 0 client --mech kerberos "write note hello from alice" "read note" "read secret" \
    "write ../escaped x" "read .." "sign:read note" "frobnicate"
  check_json "$tmp/last.out" "
r = [(x['reply'], x['reply_level']) for x in j['messages']]
assert r[0] == ('ok wrote 16 bytes to note', 'seal'), r
assert r[1] == ('ok hello from alice', 'seal'), r
assert r[2] == ('error: read secret: Permission denied', 'seal'), r
assert r[3][0].startswith('error: write ../escaped: not a plain file name'), r
assert r[4][0].startswith('error: read ..: not a plain file name'), r
assert r[5] == ('ok hello from alice', 'sign'), r
assert r[6][0].startswith('error: unknown request'), r
"
  [ "$(stat -c %u "$files/note")" = "$nobody_uid" ] ||
    fail "note is owned by uid $(stat -c %u "$files/note"), not nobody ($nobody_uid)"
  [ ! -e "$tmp/escaped" ] || fail "a write left the directory"
  [ "$(cat "$files/secret")" = "for root only" ] || fail "secret changed"

  # bob maps to the account bob, which does not exist here: every request is refused
  if getent passwd bob >/dev/null; then
    echo "test_identity: a local account bob exists; its refusal is not checked" >&2
  else
    run_status 0 client --mech kerberos --user bob --password-file "$d/bob.password" \
      "write by-bob x" "read note"
    check_json "$tmp/last.out" "
r = [x['reply'] for x in j['messages']]
assert all(x.startswith('error: no local account for bob@NEGIO.TEST: ') for x in r), r
assert 'bob' in r[0].split(': ', 2)[2], r
"
    [ ! -e "$files/by-bob" ] || fail "bob wrote a file"
  fi
  # root@REALM maps to root, and uid 0 is never acted as without --allow-root
  run_status 0 client --mech kerberos --user root --password-file "$d/root.password" \
    "read secret" "write by-root x"
  check_json "$tmp/last.out" "
r = [x['reply'] for x in j['messages']]
assert all(x.startswith('error: no local account for root@NEGIO.TEST: ') and 'uid 0' in x
           for x in r), r
"
  [ ! -e "$files/by-root" ] || fail "root@NEGIO.TEST wrote a file"
  stop_server "$files_server"
  check_json_lines "$tmp/files.out" "
auth = [e for e in lines if e['event'] == 'authenticated']
assert auth[0]['acts_as'] == 'nobody' and auth[0]['uid'] == $nobody_uid, auth
assert auth[-1]['acts_as'] is None and 'uid 0' in auth[-1]['refused'], auth
req = [e for e in lines if e['event'] == 'request']
assert req[0] == {'event': 'request', 'remote': req[0]['remote'], 'op': 'write', 'name': 'note',
                  'as': 'nobody', 'uid': $nobody_uid, 'ok': True, 'error': None}, req[0]
assert req[2]['ok'] is False and req[2]['error'] == 'Permission denied', req[2]
"

  # --allow-root: root@NEGIO.TEST may act as root
  start_server files-root --files "$files" --impersonate --allow-root "${system[@]}"
  run_status 0 client --mech kerberos --user root --password-file "$d/root.password" \
    "write by-root x" "read secret"
  check_json "$tmp/last.out" "
r = [x['reply'] for x in j['messages']]
assert r == ['ok wrote 1 bytes to by-root', 'ok for root only\n'], r
"
  [ "$(stat -c %u "$files/by-root")" = 0 ] || fail "by-root not owned by root"
  stop_server "$server_pid"

  # without --impersonate, the server's own identity (root here)
  start_server files-own --files "$files"
  run_status 0 client --mech kerberos "write own x"
  [ "$(stat -c %u "$files/own")" = 0 ] || fail "own not written as the server"
  stop_server "$server_pid"
fi

# ---- delegation: client -> middle (--forward) -> backend ---------------------------------------
no_delegation='error: no delegated credentials (the client did not delegate, its ticket is not forwardable, or the mechanism was ntlm)'
start_server backend --spn other@localhost --keytab "$d/other.keytab" --mech kerberos --echo
backend=$server_pid
backend_port=$port
start_server middle --forward "127.0.0.1:$backend_port" --forward-spn other@localhost
middle=$server_pid

run_status 0 client --delegate --mech kerberos "through two hops" "sign:signed"
check_json "$tmp/last.out" "
assert j['ok'] and j['delegate'] is True and j['delegated'] is True, j
m = j['messages']
assert [(x['reply'], x['reply_level']) for x in m] == [
    ('through two hops', 'seal'), ('signed', 'sign')], m
"
run_status 0 client --delegate "negotiate too"             # negotiate -> kerberos
check_json "$tmp/last.out" "assert j['messages'][0]['reply'] == 'negotiate too', j"

# nothing delegated: an error reply for each message, and the connection stays open
run_status 0 client --mech kerberos one two
check_json "$tmp/last.out" "
assert j['delegate'] is False and j['delegated'] is False, j
assert [x['reply'] for x in j['messages']] == ['''$no_delegation''', '''$no_delegation'''], j
"
run_status 0 client --delegate --mech ntlm one
check_json "$tmp/last.out" "
assert j['delegate'] is True and j['delegated'] is False and j['mech'] == 'ntlm', j
assert j['messages'][0]['reply'] == '''$no_delegation''', j
"
kinit -F -c "FILE:$tmp/not-forwardable" alice <"$d/alice.password" >/dev/null
KRB5CCNAME=FILE:$tmp/not-forwardable run_status 0 client --delegate --mech kerberos one
check_json "$tmp/last.out" "
assert j['delegated'] is False and j['messages'][0]['reply'] == '''$no_delegation''', j
"

stop_server "$backend"
# the backend is gone: the error comes back, nothing hangs
run_status 0 client --delegate --mech kerberos "nobody home"
check_json "$tmp/last.out" "
r = j['messages'][0]['reply']
assert r.startswith('error: backend 127.0.0.1:$backend_port: connection closed (error): NEGIO_ERR_ADDRESS'), r
"
stop_server "$middle"

check_json_lines "$tmp/backend.out" "
auth = [e for e in lines if e['event'] == 'authenticated']
assert [e['peer'] for e in auth] == ['alice@NEGIO.TEST'] * 2, auth
msgs = [e for e in lines if e['event'] == 'message']
assert len(msgs) == 3, msgs
closed = [e for e in lines if e['event'] == 'closed']
assert all(e['reason'] == 'clean' for e in closed), closed
"
check_json_lines "$tmp/middle.out" "
auth = [(e['peer'], e['mech'], e['delegated']) for e in lines if e['event'] == 'authenticated']
assert auth == [('alice@NEGIO.TEST', 'kerberos', True), ('alice@NEGIO.TEST', 'kerberos', True),
                ('alice@NEGIO.TEST', 'kerberos', False), ('NEGIO\\\\alice', 'ntlm', False),
                ('alice@NEGIO.TEST', 'kerberos', False), ('alice@NEGIO.TEST', 'kerberos', True)], auth
fwd = [e for e in lines if e['event'] == 'forwarded']
assert len(fwd) == 2 and all(e['principal'] == 'alice@NEGIO.TEST' and
                             e['backend_peer'] == 'other/localhost@NEGIO.TEST' and
                             e['backend'] == '127.0.0.1:$backend_port' for e in fwd), fwd
fc = [e for e in lines if e['event'] == 'forward_closed']
assert [e['reason'] for e in fc] == ['clean', 'clean', 'error'], fc
assert fc[2]['error'] == 'NEGIO_ERR_ADDRESS', fc
closed = [e for e in lines if e['event'] == 'closed']
assert len(closed) == 6 and all(e['reason'] == 'clean' for e in closed), closed
"
echo "test_identity: ok"
