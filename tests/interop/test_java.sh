#!/usr/bin/env bash
# Interoperability with an independent peer: tests/interop/java/, written from docs/PROTOCOL.md
# alone on the JDK's own Kerberos and SPNEGO (org.ietf.jgss), against the negio command in both
# roles: a Java client against `negio server`, `negio client` against a Java server, for
# Kerberos and SPNEGO, every level and per-message overrides, fragmented messages both ways,
# POLICY and CLOSE sealed, policy mismatches and handshake errors in both directions, and a Java
# client that tampers with its frames (the negio server must fail with NEGIO_ERR_INTEGRITY and
# never report the message).
#
# What JGSS cannot do, and is therefore not tested here: NTLM (the JDK has no NTLM GSS
# mechanism, and its SPNEGO negotiates Kerberos only), and a GSS error token inside
# HANDSHAKE_ERROR from the Java side (JGSS throws a GSSException and returns no output token
# with it, so the Java peer always sends token_length 0).
#
# NEGIO_BIN names the negio binary under test (ctest sets it). Needs java and javac (JDK 17).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

command -v javac >/dev/null && command -v java >/dev/null ||
  { echo "FAIL: java and javac are needed (Debian: openjdk-17-jdk-headless, see scripts/deps.sh)" >&2; exit 1; }

# $negio, $tmp, servers, fail, start_realm, check_json, check_json_lines
. "$here/../harness.sh"

step() { echo "== $*"; }

# run_status EXPECTED OUT CMD...: runs CMD with stdout to $tmp/OUT.out, stderr to $tmp/OUT.err
run_status() {
  local want=$1 out=$2; shift 2
  local got=0
  "$@" >"$tmp/$out.out" 2>"$tmp/$out.err" || got=$?
  [ "$got" -eq "$want" ] ||
    fail "'$*' exited $got, expected $want; stdout: $(head -c 3000 "$tmp/$out.out"); stderr: $(head -c 3000 "$tmp/$out.err")"
}

# wait_port FILE PID: waits for the first line of FILE ({"event":"listening",...,"port":N}) and
# prints N
wait_port() {
  local file=$1 pid=$2
  for _ in $(seq 1 300); do
    if [ -s "$file" ]; then
      head -n 1 "$file" | python3 -c '
import json, sys
ev = json.load(sys.stdin)
assert ev["event"] == "listening", ev
print(ev["port"])' && return 0
      fail "bad first line in $file"
    fi
    kill -0 "$pid" 2>/dev/null || fail "server for $file exited: $(cat "${file%.out}.err")"
    sleep 0.05
  done
  fail "server for $file did not report listening"
}

# negio_server NAME OPTIONS...: a negio server with its events in $tmp/NAME.out; sets $port, $pid
negio_server() {
  local name=$1; shift
  "$negio" server --listen 127.0.0.1:0 --json "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pid=$!
  servers+=("$pid")
  port=$(wait_port "$tmp/$name.out" "$pid")
}

# java_server NAME OPTIONS...: a Java server with its events in $tmp/NAME.out; sets $port, $pid
java_server() {
  local name=$1; shift
  java_peer server --listen 127.0.0.1:0 "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pid=$!
  servers+=("$pid")
  port=$(wait_port "$tmp/$name.out" "$pid")
}

# wait_status PID EXPECTED: the process must exit with EXPECTED
wait_status() {
  local status=0
  wait "$1" || status=$?
  [ "$status" -eq "$2" ] || fail "process $1 exited $status, expected $2"
}

# wait_closed FILE REMOTE: waits until the server's log has a "closed" event for REMOTE
wait_closed() {
  for _ in $(seq 1 200); do
    grep -q "\"event\":\"closed\",\"remote\":\"$2\"" "$1" && return 0
    sleep 0.05
  done
  fail "no closed event for $2 in $1"
}

# ---------------------------------------------------------------- the realm and the Java peer

start_realm

mkdir "$tmp/classes"
javac -Xlint:all -Werror -d "$tmp/classes" "$here"/java/*.java || fail "javac"

# JAAS: the client from alice's credential cache (Java wants the path without FILE:), the
# service from the realm's keytab
cat >"$tmp/jaas.conf" <<EOF
negio-client {
  com.sun.security.auth.module.Krb5LoginModule required
    useTicketCache=true ticketCache="${KRB5CCNAME#FILE:}" doNotPrompt=true;
};
negio-client-password {
  com.sun.security.auth.module.Krb5LoginModule required
    useTicketCache=false storeKey=false;
};
negio-server {
  com.sun.security.auth.module.Krb5LoginModule required
    useKeyTab=true keyTab="${KRB5_KTNAME#FILE:}" principal="negio/localhost@$NEGIO_REALM"
    storeKey=true isInitiator=false doNotPrompt=true;
};
EOF

java_peer() {
  java -cp "$tmp/classes" \
    -Djava.security.krb5.conf="$KRB5_CONFIG" \
    -Djava.security.auth.login.config="$tmp/jaas.conf" \
    -Djavax.security.auth.useSubjectCredsOnly=true \
    -Dsun.security.krb5.debug=false \
    NegioPeer "$@"
}

nclient() {
  "$negio" client --connect "127.0.0.1:$port" --json --timeout 20 "$@"
}

# ===================================================== Java client -> negio server

negio_server echo --echo --min-protect none
echo_port=$port echo_pid=$pid

# java_client NAME EXPECTED-STATUS OPTIONS... MESSAGES...: against $port; output in NAME.out
java_client() {
  local name=$1 want=$2; shift 2
  run_status "$want" "$name" java_peer client --connect "127.0.0.1:$port" "$@"
  if [ "$want" -eq 0 ]; then
    local local_addr
    local_addr=$(python3 -c '
import json, sys
print([json.loads(l) for l in open(sys.argv[1])][0]["local"])' "$tmp/$name.out")
    wait_closed "$tmp/$server_name.out" "$local_addr"
    echo "$local_addr"
  fi
}

# the same messages each time: the default (seal), then every level after another, an empty
# one, and a 2.5 MB sealed message (three frames each way at the reference fragment size)
msgs=(hello none:plain sign:signed seal:sealed sign:again none: seal: seal:@2500000 'with "quotes"')
msgs_check="
m = ev('echo')
assert [(e['sent_level'], e['bytes']) for e in m] == [('seal', 5), ('none', 5), ('sign', 6),
    ('seal', 6), ('sign', 5), ('none', 0), ('seal', 0), ('seal', 2500000), ('seal', 13)], m
assert all(e['ok'] and e['reply_level'] == e['sent_level'] and e['reply_bytes'] == e['bytes'] for e in m), m
c = ev('closed')
assert len(c) == 1 and c[0]['reason'] == 'clean', c
"
server_msgs_check="
assert [(e['level'], e['bytes']) for e in mine if e['event'] == 'message'] == [('seal', 5), ('none', 5),
    ('sign', 6), ('seal', 6), ('sign', 5), ('none', 0), ('seal', 0), ('seal', 2500000), ('seal', 13)], mine
"

server_name=echo port=$echo_port
for mech in kerberos negotiate; do
  for mutual in "" --no-mutual; do
    step "Java client -> negio server: $mech ${mutual:-(mutual)}, every level"
    addr=$(java_client "jc-$mech$mutual" 0 --mech "$mech" --min none $mutual "${msgs[@]}")
    check_json_lines "$tmp/jc-$mech$mutual.out" "
a = ev('authenticated')[0]
assert a['mech'] == 'kerberos' and a['negotiated'] is ('$mech' == 'negotiate'), a
assert a['mutual'] is ('$mutual' == ''), a
assert (a['peer_min'], a['peer_default'], a['peer_max_frame'], a['peer_max_message']) == (
    'none', 'seal', 1048576, 16777216), a
$msgs_check"
    check_json_lines "$tmp/echo.out" "
mine = [e for e in lines if e.get('remote') == '$addr']
a = ev('authenticated', mine)
assert len(a) == 1 and a[0]['peer'] == 'alice@$NEGIO_REALM' and a[0]['mech'] == 'kerberos', a
assert a[0]['negotiated'] is ('$mech' == 'negotiate'), a
assert a[0]['server_authenticated'] is ('$mutual' == ''), a
$server_msgs_check
c = ev('closed', mine)
assert len(c) == 1 and c[0]['reason'] == 'clean' and c[0]['error'] is None, c
"
  done
done

step "Java client -> negio server: bob with a password (JAAS login, no credential cache), SPNEGO"
addr=$(java_client jc-bob 0 --mech negotiate --jaas negio-client-password --user bob \
  --password-file "$NEGIO_REALM_DIR/bob.password" hello sign:signed)
check_json_lines "$tmp/jc-bob.out" "assert len(ev('echo')) == 2 and all(e['ok'] for e in ev('echo')), lines"
check_json_lines "$tmp/echo.out" "
mine = [e for e in lines if e.get('remote') == '$addr']
a = ev('authenticated', mine)[0]
assert a['peer'] == 'bob@$NEGIO_REALM' and a['negotiated'] is True, a
assert ev('closed', mine)[0]['reason'] == 'clean', mine
"

step "Java client -> negio server: POLICY and CLOSE sealed, 7-byte fragments"
addr=$(java_client jc-sealed 0 --mech kerberos --min none --policy-level seal --close-level seal \
  --fragment 7 seal:@50 sign:@50 none:@50 seal: sign:x)
check_json_lines "$tmp/jc-sealed.out" "assert all(e['ok'] for e in ev('echo')) and len(ev('echo')) == 5, lines"
check_json_lines "$tmp/echo.out" "
mine = [e for e in lines if e.get('remote') == '$addr']
assert [(e['level'], e['bytes']) for e in ev('message', mine)] == [
    ('seal', 50), ('sign', 50), ('none', 50), ('seal', 0), ('sign', 1)], mine
assert ev('closed', mine)[0]['reason'] == 'clean', mine
"

step "Java client -> negio server: the Java side announces max_frame 4096, negio fragments to fit"
run_status 0 jc-small java_peer client --connect "127.0.0.1:$port" --mech negotiate --min none \
  --max-frame 4096 --trace seal:@20000 sign:@9000 none:@5000
check_json_lines "$tmp/jc-small.out" "assert all(e['ok'] for e in ev('echo')) and len(ev('echo')) == 3, lines"
python3 - "$tmp/jc-small.err" <<'PY' || fail "negio did not fragment to the announced max_frame"
import re, sys
got = [l for l in open(sys.argv[1]) if l.startswith("<- type 4")]
lens = [int(re.search(r"length (\d+)", l).group(1)) for l in got]
assert len(got) > 3 and max(lens) <= 4096, got
PY

step "Java client -> negio server: the Java side's POLICY sends none by default, the server requires sign"
negio_server strict --echo
strict_port=$port strict_pid=$pid
run_status 1 jc-mismatch java_peer client --connect "127.0.0.1:$port" --mech kerberos --min none --default none hi
check_json_lines "$tmp/jc-mismatch.out" "
c = ev('closed')[0]
assert c['error'] == 'NEGIO_ERR_POLICY' and 'peer requires at least sign' in c['detail'], c
"

step "Java client -> negio server: the Java client fails its first Init and says so in HANDSHAKE_ERROR"
run_status 1 jc-nospn java_peer client --connect "127.0.0.1:$port" --mech kerberos --spn nosuch@localhost hi
check_json_lines "$tmp/jc-nospn.out" "assert ev('closed')[0]['error'] == 'NEGIO_ERR_HANDSHAKE', lines"

step "Java client -> negio NTLM-only server: the server's HANDSHAKE_ERROR"
negio_server ntlmonly --echo --mech ntlm --keytab "$NEGIO_REALM_DIR/service.keytab"
ntlm_pid=$pid
for mech in kerberos negotiate; do
  run_status 1 "jc-ntlmonly-$mech" java_peer client --connect "127.0.0.1:$port" --mech "$mech" hi
  check_json_lines "$tmp/jc-ntlmonly-$mech.out" "
c = ev('closed')[0]
assert c['error'] == 'NEGIO_ERR_PEER' and 'the peer failed the handshake' in c['detail'], c
"
done

# =============================================== Java client tampering -> negio server

# tamper NAME CASE MECH ERROR: one good signed message, then a modified frame; the server must
# close with ERROR and never report the modified message
tamper() {
  local name=$1 kase=$2 mech=$3 error=$4 log=$5
  run_status 0 "$name" java_peer tamper --connect "127.0.0.1:$port" --mech "$mech" --case "$kase"
  local local_addr
  local_addr=$(python3 -c '
import json, sys
print([json.loads(l) for l in open(sys.argv[1])][0]["local"])' "$tmp/$name.out")
  wait_closed "$tmp/$log.out" "$local_addr"
  check_json_lines "$tmp/$name.out" "
t = ev('tamper')[0]
# the negio server tells the established Java client why, in a protected CLOSE carrying its
# error code negated (PROTOCOL.md 6.7), which the Java side verified
want = {'NEGIO_ERR_INTEGRITY': 'close 109', 'NEGIO_ERR_DOWNGRADE': 'close 108'}['$error']
assert t['ok'] and t['end'] == want, t
"
  local bytes
  bytes=$(python3 -c '
import json, sys
print(next(json.loads(l) for l in open(sys.argv[1]) if "\"tamper\"" in l)["payload_bytes"])' "$tmp/$name.out")
  check_json_lines "$tmp/$log.out" "
mine = [e for e in lines if e.get('remote') == '$local_addr']
msgs = [(e['level'], e['bytes']) for e in ev('message', mine)]
want = [('sign', 13)] + ([('sign', $bytes)] if '$kase' == 'replay' else [])
assert msgs == want, ('the modified message was reported', mine)
c = ev('closed', mine)
assert len(c) == 1 and c[0]['reason'] == 'error' and c[0]['error'] == '$error', c
"
}

port=$echo_port
for mech in kerberos negotiate; do
  for kase in sign-payload seal-token sign-level seal-ph seal-noconf replay close-as-data; do
    step "tamper ($mech): $kase -> NEGIO_ERR_INTEGRITY"
    tamper "tamper-$mech-$kase" "$kase" "$mech" NEGIO_ERR_INTEGRITY echo
  done
done
port=$strict_port
step "tamper (kerberos): a level-none frame to a server whose minimum is sign -> NEGIO_ERR_DOWNGRADE"
tamper tamper-downgrade none-downgrade kerberos NEGIO_ERR_DOWNGRADE strict

# ===================================================== negio client -> Java server

step "negio client -> Java server: kerberos, negotiate, --require-mutual; every level"
java_server jsrv --min none --count 3
jsrv_pid=$pid
for mech in kerberos negotiate; do
  run_status 0 "nc-$mech" nclient --mech "$mech" hello none:plain sign:signed seal:sealed sign:again none: seal: 'with "quotes"'
  check_json "$tmp/nc-$mech.out" "
assert j['ok'] is True and j['mech'] == 'kerberos' and j['negotiated'] is ('$mech' == 'negotiate'), j
assert j['server_authenticated'] is True and j['peer'] == 'negio/localhost@$NEGIO_REALM', j
m = j['messages']
assert [(x['sent_level'], x['sent']) for x in m] == [('seal', 'hello'), ('none', 'plain'), ('sign', 'signed'),
    ('seal', 'sealed'), ('sign', 'again'), ('none', ''), ('seal', ''), ('seal', 'with \"quotes\"')], m
assert all(x['ok'] and x['reply'] == x['sent'] and x['reply_level'] == x['sent_level'] for x in m), m
"
done
run_status 0 nc-mutual nclient --mech kerberos --require-mutual hi
check_json "$tmp/nc-mutual.out" "assert j['ok'] and j['server_authenticated'] is True, j"
wait_status "$jsrv_pid" 0
check_json_lines "$tmp/jsrv.out" "
a = ev('authenticated')
assert [(e['peer'], e['mech'], e['negotiated']) for e in a] == [('alice@$NEGIO_REALM', 'kerberos', False),
    ('alice@$NEGIO_REALM', 'kerberos', True), ('alice@$NEGIO_REALM', 'kerberos', False)], a
assert a[0]['peer_min'] == 'none' and a[0]['peer_default'] == 'seal', a
msgs = [(e['level'], e['text']) for e in ev('message')]
assert msgs[:8] == [('seal', 'hello'), ('none', 'plain'), ('sign', 'signed'), ('seal', 'sealed'),
    ('sign', 'again'), ('none', ''), ('seal', ''), ('seal', 'with \"quotes\"')], msgs
assert msgs[8:16] == msgs[:8] and msgs[16:] == [('seal', 'hi')], msgs
c = ev('closed')
assert len(c) == 3 and all(e['reason'] == 'clean' and e['status'] == 0 for e in c), c
"

step "negio client -> Java server: max_frame 4096, 1000-byte Java fragments, POLICY and CLOSE sealed, large messages"
java_server jsmall --min none --count 1 --max-frame 4096 --fragment 1000 --policy-level seal --close-level seal
jsmall_pid=$pid
python3 -c '
import sys
sys.stdout.write("y" * 20000 + "\nsign:" + "z" * 9000 + "\nnone:" + "w" * 5000 + "\nseal:" + "v" * 2500000 + "\n")' |
  run_status 0 nc-small nclient --mech negotiate --min-protect none
check_json "$tmp/nc-small.out" "
m = j['messages']
assert [(x['sent_level'], len(x['sent'])) for x in m] == [('seal', 20000), ('sign', 9000), ('none', 5000),
    ('seal', 2500000)], [(x['sent_level'], len(x['sent'])) for x in m]
assert all(x['ok'] and x['reply'] == x['sent'] and x['reply_level'] == x['sent_level'] for x in m), 'echo'
"
wait_status "$jsmall_pid" 0
check_json_lines "$tmp/jsmall.out" "
assert [(e['level'], e['bytes']) for e in ev('message')] == [
    ('seal', 20000), ('sign', 9000), ('none', 5000), ('seal', 2500000)], lines
assert ev('closed')[0]['reason'] == 'clean', lines
"

step "negio client -> Java server: failures in both directions"
java_server jfail --count 2
jfail_pid=$pid
# the client sends none by default, the Java server requires sign: both sides refuse
run_status 1 nc-mismatch nclient --mech kerberos --protect none hi
check_json "$tmp/nc-mismatch.out" "
assert j['ok'] is False and j['error'] == 'NEGIO_ERR_POLICY' and 'requires at least sign' in j['detail'], j
"
# NTLM: the Java server refuses the mechanism of the first token with a HANDSHAKE_ERROR
run_status 1 nc-ntlm nclient --mech ntlm hi
check_json "$tmp/nc-ntlm.out" "
assert j['ok'] is False and j['error'] == 'NEGIO_ERR_PEER' and '1.3.6.1.4.1.311.2.2.10 not allowed' in j['detail'], j
"
wait_status "$jfail_pid" 1
check_json_lines "$tmp/jfail.out" "
c = ev('closed')
assert [e['error'] for e in c] == ['NEGIO_ERR_POLICY', 'NEGIO_ERR_HANDSHAKE'], c
assert 'the peer sends at none by default' in c[0]['detail'], c
"

step "negio client -> Java server: a rejection after authentication (CLOSE with status 7)"
java_server jreject --count 1 --reject 7
jreject_pid=$pid
run_status 1 nc-rejected nclient --mech kerberos hi
check_json "$tmp/nc-rejected.out" "
assert j['ok'] is False and j['error'] == 'NEGIO_ERR_REJECTED', j
assert 'status 7' in j['detail'] and 'not welcome' in j['detail'], j
"
wait_status "$jreject_pid" 0

# ===================================================== Java <-> Java

# the independent peer against itself: both roles of the same reading of the document, and the
# receiving side's checks on JGSS (section 11.2: supplementary statuses through MessageProp)
step "Java client -> Java server: kerberos and negotiate, with and without mutual authentication"
java_server jj --min none --count 11
jj_pid=$pid
for mech in kerberos negotiate; do
  for mutual in "" --no-mutual; do
    run_status 0 "jj-$mech$mutual" java_peer client --connect "127.0.0.1:$port" --mech "$mech" --min none \
      $mutual hello none:plain sign:signed seal: seal:@2500000
    check_json_lines "$tmp/jj-$mech$mutual.out" "
assert len(ev('echo')) == 5 and all(e['ok'] for e in ev('echo')), lines
c = ev('closed')[0]
assert c['reason'] == 'clean' and c['peer_close'] is True and c['status'] == 0, c
"
  done
done
step "Java tamper client -> Java server: every case"
for kase in sign-payload seal-token sign-level seal-ph seal-noconf replay close-as-data; do
  run_status 0 "jj-tamper-$kase" java_peer tamper --connect "127.0.0.1:$port" --mech kerberos --case "$kase"
done
wait_status "$jj_pid" 1
check_json_lines "$tmp/jj.out" "
c = ev('closed')
assert [e['reason'] for e in c[:4]] == ['clean'] * 4, c
assert [e['error'] for e in c[4:]] == ['NEGIO_ERR_INTEGRITY'] * 7, c
assert 'supplementary' in c[9]['detail'] and 'duplicate true' in c[9]['detail'], c
"
java_server jjstrict --count 1
jjstrict_pid=$pid
run_status 0 jj-tamper-none java_peer tamper --connect "127.0.0.1:$port" --mech negotiate --case none-downgrade
wait_status "$jjstrict_pid" 1
check_json_lines "$tmp/jjstrict.out" "assert ev('closed')[0]['error'] == 'NEGIO_ERR_DOWNGRADE', lines"

# ===================================================== the negio servers' own view

kill -TERM "$echo_pid"; wait_status "$echo_pid" 0
kill -TERM "$strict_pid"; wait_status "$strict_pid" 0
kill -TERM "$ntlm_pid"; wait_status "$ntlm_pid" 0
check_json_lines "$tmp/strict.out" "
c = ev('closed')
assert [e['error'] for e in c] == ['NEGIO_ERR_POLICY', 'NEGIO_ERR_PEER', 'NEGIO_ERR_DOWNGRADE'], c
assert 'first Init failed' in c[1]['detail'], c   # the Java client's HANDSHAKE_ERROR reason
"
check_json_lines "$tmp/ntlmonly.out" "
c = ev('closed')
assert len(c) == 2 and all(e['reason'] == 'error' for e in c), c
"
echo "test_java: ok"
