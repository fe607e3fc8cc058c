#!/usr/bin/env bash
# negio realm start/stop: the files, modes and environment a realm provides, a working KDC and
# ticket, options, refusal to reuse a directory, and a stop that really ends the KDC.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

start_realm
d=$realm_dir
grep -q "^realm NEGIO.TEST in $d, KDC on 127.0.0.1:$NEGIO_KDC_PORT\$" "$tmp/realm.out" ||
  fail "first line of realm start: $(cat "$tmp/realm.out")"
grep -qF ". $d/env" "$tmp/realm.out" || fail "no '. DIR/env' hint"

# every variable points into the realm
[ "$KRB5_CONFIG" = "$d/krb5.conf" ] && [ "$KRB5_KDC_PROFILE" = "$d/kdc.conf" ] &&
  [ "$KRB5CCNAME" = "FILE:$d/cc" ] && [ "$KRB5_KTNAME" = "FILE:$d/service.keytab" ] &&
  [ "$KRB5_CLIENT_KTNAME" = "FILE:$d/client.keytab" ] && [ "$KRB5RCACHEDIR" = "$d" ] &&
  [ "$GSS_MECH_CONFIG" = "$d/mech.conf" ] && [ "$NTLM_USER_FILE" = "$d/ntlm_users" ] &&
  [ "$NEGIO_REALM" = NEGIO.TEST ] && [ "$NEGIO_REALM_DIR" = "$d" ] &&
  [ -n "$NEGIO_KDC_PORT" ] || fail "env file: $(cat "$d/env")"

# secrets are the user's alone
for f in alice.password bob.password root.password ntlm_users service.keytab other.keytab cc env; do
  [ "$(stat -c %a "$d/$f")" = 600 ] || fail "$f has mode $(stat -c %a "$d/$f")"
done
alice_pw=$(cat "$d/alice.password"); bob_pw=$(cat "$d/bob.password")
[ ${#alice_pw} -ge 16 ] && [ "$alice_pw" != "$bob_pw" ] || fail "weak or equal passwords"
[ "$(cat "$d/ntlm_users")" = "NEGIO:alice:$alice_pw
NEGIO:bob:$bob_pw" ] || fail "ntlm_users: $(cat "$d/ntlm_users")"
[ "$(cat "$d/mech.conf")" = "gssntlmssp_v1 1.3.6.1.4.1.311.2.2.10 /usr/lib/x86_64-linux-gnu/gssntlmssp/gssntlmssp.so" ] ||
  fail "mech.conf: $(cat "$d/mech.conf")"
for line in "forwardable = true" "rdns = false" "dns_lookup_kdc = false" \
            "udp_preference_limit = 1" "localhost = NEGIO.TEST" "kdc = 127.0.0.1:$NEGIO_KDC_PORT"; do
  grep -qF "$line" "$d/krb5.conf" || fail "krb5.conf lacks '$line'"
done

# alice already has a ticket; the KDC answers for the service; the keytab holds its key
klist -s || fail "no ticket for alice in $KRB5CCNAME"
klist | grep -q "Default principal: alice@NEGIO.TEST" || fail "ticket is not alice's"
kvno negio/localhost@NEGIO.TEST >/dev/null || fail "no service ticket for negio/localhost"
klist -k "$d/service.keytab" | grep -q "negio/localhost@NEGIO.TEST" || fail "keytab lacks the service"
# bob's password is the one in his file
kinit -c "FILE:$tmp/bob.cc" bob <"$d/bob.password" >/dev/null || fail "kinit bob"
# root@REALM (for tests that it is never impersonated) and a second service for double hops
kinit -c "FILE:$tmp/root.cc" root <"$d/root.password" >/dev/null || fail "kinit root"
kvno other/localhost@NEGIO.TEST >/dev/null || fail "no service ticket for other/localhost"
klist -k "$d/other.keytab" | grep -q "other/localhost@NEGIO.TEST" || fail "other.keytab lacks the service"
! grep -q auth_to_local "$d/krb5.conf" || fail "auth_to_local rules without --map"

# a directory that holds a realm is not reused
run_status 1 "$negio" realm start "$d"
grep -q "already holds a realm" "$tmp/last.err" || fail "reuse message: $(cat "$tmp/last.err")"

# stop: the KDC is gone and the port is closed; stopping again is harmless
kdc=$(cat "$d/kdc.pid")
run_status 0 "$negio" realm stop "$d"
realm_dir=
! kill -0 "$kdc" 2>/dev/null || [ "$(awk '{print $3}' "/proc/$kdc/stat" 2>/dev/null)" = Z ] ||
  fail "KDC $kdc still running after stop"
[ ! -e "$d/kdc.pid" ] || fail "pid file left behind"
! (exec 3<>"/dev/tcp/127.0.0.1/$NEGIO_KDC_PORT") 2>/dev/null || fail "KDC port still accepts"
run_status 0 "$negio" realm stop "$d"
grep -q "not running" "$tmp/last.out" || fail "second stop: $(cat "$tmp/last.out")"

# --realm and --port, in a directory that does not exist yet
free_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
d2=$tmp/deeper/realm2
run_status 0 "$negio" realm start "$d2" --map carol/admin@EXAMPLE.ORG=nobody --map alice=bob \
  --realm EXAMPLE.ORG --port "$free_port"
realm_dir=$d2
grep -qF 'auth_to_local = RULE:[2:$1/$2@$0](^carol/admin@EXAMPLE\.ORG$)s/^.*$/nobody/' "$d2/krb5.conf" &&
  grep -qF 'auth_to_local = RULE:[1:$1@$0](^alice@EXAMPLE\.ORG$)s/^.*$/bob/' "$d2/krb5.conf" &&
  [ "$(grep -c 'auth_to_local = DEFAULT' "$d2/krb5.conf")" = 1 ] || fail "--map rules: $(cat "$d2/krb5.conf")"
grep -q "^realm EXAMPLE.ORG in $d2, KDC on 127.0.0.1:$free_port\$" "$tmp/last.out" ||
  fail "custom realm line: $(cat "$tmp/last.out")"
(. "$d2/env"
 [ "$NEGIO_REALM" = EXAMPLE.ORG ] && [ "$NEGIO_KDC_PORT" = "$free_port" ] || exit 1
 klist | grep -q "alice@EXAMPLE.ORG") || fail "custom realm env or ticket"
# the port is now taken: a third realm on it is refused before anything starts
run_status 1 "$negio" realm start "$tmp/realm3" --port "$free_port"
grep -q "in use" "$tmp/last.err" || fail "port in use message: $(cat "$tmp/last.err")"
run_status 0 "$negio" realm stop "$d2"
realm_dir=

# usage errors
run_status 2 "$negio" realm
run_status 2 "$negio" realm start
run_status 2 "$negio" realm frob "$tmp/x"
run_status 2 "$negio" realm start "$tmp/x" --bogus
grep -q "usage: negio realm" "$tmp/last.err" || fail "no usage on stderr"
run_status 2 "$negio" realm start "$tmp/x" --port 70000
run_status 2 "$negio" realm start "$tmp/x" --realm 'BAD NAME'
run_status 2 "$negio" realm stop "$tmp/x" --port 5
run_status 1 "$negio" realm stop "$tmp/no-such-dir"
# --map: PRINCIPAL of this realm, LOCALUSER a plain account name; refused before anything starts
for bad in alice alice= =nobody alice=-x 'alice=a b' 'alice=x}' 'alice={x' 'alice=a/b' alice=a:b \
           alice=.. 'a b=x' 'al{ice=x' 'alice@OTHER.REALM=x' 'negio//localhost=x' '/x=y' \
           "alice=$(printf 'u%.0s' $(seq 1 256))" 'a=b=c' 'alice\x=y'; do
  run_status 2 "$negio" realm start "$tmp/x" --map "$bad"
  grep -q "usage: negio realm" "$tmp/last.err" || fail "--map '$bad': no usage on stderr"
done
run_status 2 "$negio" realm start "$tmp/x" --map alice=x --map alice@NEGIO.TEST=y
grep -q "mapped twice" "$tmp/last.err" || fail "duplicate --map: $(cat "$tmp/last.err")"
run_status 2 "$negio" realm stop "$tmp/x" --map alice=x
[ ! -e "$tmp/x" ] || fail "a refused start created its directory"
run_status 1 "$negio" realm start "$tmp/with space"
[ ! -e "$tmp/with space" ] || fail "a refused directory was created"
run_status 0 "$negio" realm --help
grep -q "usage: negio realm" "$tmp/last.out" || fail "--help on stdout"
echo "test_realm: ok"
