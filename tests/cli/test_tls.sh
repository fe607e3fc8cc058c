#!/usr/bin/env bash
# --tls and --tls-negotiate on server and client: Kerberos inside certificate-free TLS is bound
# to the channel and authenticates the server, and NTLM is refused there; plain TLS with a
# self-signed certificate made here by the openssl command verifies with --ca and fails
# without it (a certificate verification error, status 1), as with a wrong host name; client
# certificates; explicit levels still apply after a TLS transport; a transport mismatch fails
# fast; bad TLS options are usage errors and bad TLS files stop the command at start-up.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

command -v openssl >/dev/null || fail "the openssl command is needed to make the test certificates"
# make_cert STEM CN [SAN]: an EC P-256 key and a self-signed certificate, $tmp/STEM{.pem,-key.pem}
make_cert() {
  local san=()
  [ -z "${3:-}" ] || san=(-addext "subjectAltName=$3")
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=$2" \
    "${san[@]}" -keyout "$tmp/$1-key.pem" -out "$tmp/$1.pem" 2>"$tmp/openssl.err" ||
    fail "openssl req for $1: $(cat "$tmp/openssl.err")"
}
make_cert server localhost "DNS:localhost,IP:127.0.0.1"
make_cert alice alice

start_realm

# ---- Kerberos inside certificate-free TLS ---------------------------------------------------
start_server free --echo --tls-negotiate
free=$server_pid
check_json_lines "$tmp/free.out" "
assert lines[0]['transport'] == 'tls-negotiate' and lines[0]['certificate_free'] is True, lines[0]"
run_status 0 client --tls-negotiate --mech kerberos hello seal:sealed
check_json "$tmp/last.out" "
assert j['ok'] and j['mech'] == 'kerberos', j
assert j['transport'] == 'tls-negotiate' and j['tls_version'] in ('TLSv1.3', 'TLSv1.2'), j
assert j['tls_cipher'], j
assert j['channel_bound'] is True and j['server_authenticated'] is True, j
assert j['tls_peer_verified'] is False and j['tls_peer'] is None, j   # nobody checked the cert
assert j['client_authenticated'] is True, j
m = j['messages']
assert [(x['sent_level'], x['reply_level'], x['reply']) for x in m] == \
       [('none', 'none', 'hello'), ('seal', 'seal', 'sealed')], m   # none by default inside TLS
"
# without --json: the TLS facts in words
run_status 0 "$negio" client --connect "127.0.0.1:$port" --timeout 20 --tls-negotiate hi
grep -q "server authenticated" "$tmp/last.out" || fail "human output: $(cat "$tmp/last.out")"
grep -q "over TLSv1\.[23] (.*), server certificate not verified, channel bound" "$tmp/last.out" ||
  fail "human output: $(cat "$tmp/last.out")"
# NTLM cannot authenticate the server: refused in certificate-free TLS, by the client ...
run_status 1 client --tls-negotiate --mech ntlm hi
check_json "$tmp/last.out" "
assert j['ok'] is False and j['error'] == 'NEGIO_ERR_POLICY' and 'NTLM' in j['detail'], j"
# ... and by the server even when the client allows it
run_status 1 client --tls-negotiate --mech ntlm --tls-allow-ntlm hi
check_json "$tmp/last.out" "assert j['ok'] is False and j['error'] == 'NEGIO_ERR_PEER', j"
# --tls-allow-ntlm on both sides: NTLM, bound to the channel, with the server authenticated by
# nothing at all
start_server ntlmok --echo --tls-negotiate --tls-allow-ntlm
run_status 0 client --tls-negotiate --tls-allow-ntlm --mech ntlm hi
check_json "$tmp/last.out" "
assert j['ok'] and j['mech'] == 'ntlm' and j['channel_bound'] is True, j
assert j['server_authenticated'] is False and j['tls_peer_verified'] is False, j"
port=$(head -n 1 "$tmp/free.out" | python3 -c 'import json, sys; print(json.load(sys.stdin)["port"])')
# a transport mismatch fails at once, on either side
run_status 1 client hi
check_json "$tmp/last.out" "assert j['ok'] is False, j"
start_server bare --echo
run_status 1 client --tls-negotiate hi
check_json "$tmp/last.out" "
assert j['ok'] is False and j['error'] == 'NEGIO_ERR_HANDSHAKE' and 'TLS' in j['detail'], j"
any_port=$port   # for the usage errors below: never reached
stop_server "$free"
check_json_lines "$tmp/free.out" "
auth = [e for e in lines if e['event'] == 'authenticated']
assert len(auth) == 2, auth
for a in auth:
    assert a['peer'] == 'alice@NEGIO.TEST' and a['mech'] == 'kerberos', a
    assert a['transport'] == 'tls-negotiate' and a['channel_bound'] is True, a
    assert a['client_authenticated'] is True and a['tls_peer'] is None, a
    assert a['tls_peer_verified'] is False and a['server_authenticated'] is True, a
"

# explicit levels apply after the transport's default of none
start_server strict --echo --tls-negotiate --min-protect sign
run_status 1 client --tls-negotiate hi
check_json "$tmp/last.out" "
assert j['ok'] is False and j['error'] == 'NEGIO_ERR_POLICY', j
assert 'requires at least sign' in j['detail'], j"
run_status 0 client --tls-negotiate --protect sign hi
check_json "$tmp/last.out" "assert j['ok'] and j['messages'][0]['reply_level'] == 'sign', j"

# ---- --tls-negotiate with a certificate: verified, and NTLM allowed ---------------------------
start_server certneg --echo --tls-negotiate --cert "$tmp/server.pem" --key "$tmp/server-key.pem"
check_json_lines "$tmp/certneg.out" "assert lines[0]['certificate_free'] is False, lines[0]"
run_status 0 client --tls-negotiate --ca "$tmp/server.pem" --mech kerberos hi
check_json "$tmp/last.out" "
assert j['ok'] and j['channel_bound'] and j['tls_peer_verified'] and j['tls_peer'] == 'CN=localhost', j"
run_status 0 client --tls-negotiate --ca "$tmp/server.pem" --mech ntlm hi
check_json "$tmp/last.out" "assert j['ok'] and j['mech'] == 'ntlm' and j['channel_bound'], j"

# ---- plain TLS with the self-signed certificate ------------------------------------------------
start_server tls --echo --tls --cert "$tmp/server.pem" --key "$tmp/server-key.pem"
tls=$server_pid
check_json_lines "$tmp/tls.out" "
assert lines[0]['transport'] == 'tls' and lines[0]['certificate_free'] is False, lines[0]"
run_status 0 client --tls --ca "$tmp/server.pem" hello
check_json "$tmp/last.out" "
assert j['ok'] and j['mech'] is None and j['transport'] == 'tls', j
assert j['tls_peer'] == 'CN=localhost' and j['tls_peer_verified'] is True, j
assert j['server_authenticated'] is True and j['channel_bound'] is False, j
assert j['client_authenticated'] is False, j
assert j['messages'][0]['reply'] == 'hello' and j['messages'][0]['reply_level'] == 'none', j
"
# without --ca the system's CAs do not know it: a verification error, status 1
run_status 1 client --tls hello
check_json "$tmp/last.out" "
assert j['ok'] is False and j['error'] == 'NEGIO_ERR_HANDSHAKE', j
assert 'certificate failed verification' in j['detail'] and 'self-signed' in j['detail'], j"
grep -q "^negio client: NEGIO_ERR_HANDSHAKE: .*certificate failed verification" "$tmp/last.err" ||
  fail "stderr: $(cat "$tmp/last.err")"
# the name the certificate must hold
run_status 1 client --tls --ca "$tmp/server.pem" --tls-host wrong.example hello
check_json "$tmp/last.out" "
assert j['ok'] is False and j['error'] == 'NEGIO_ERR_HANDSHAKE' and 'hostname mismatch' in j['detail'], j"
# no GSS-API inside plain TLS: sign and seal are refused before sending, without a hang
run_status 1 client --tls --ca "$tmp/server.pem" first seal:never-sent
check_json "$tmp/last.out" "
assert j['ok'] is False and j['error'] == 'NEGIO_ERR_INVALID' and 'plain TLS' in j['detail'], j
assert j['messages'][0]['ok'] and j['messages'][1]['ok'] is False, j"
stop_server "$tls"
check_json_lines "$tmp/tls.out" "
auth = [e for e in lines if e['event'] == 'authenticated']
assert len(auth) == 2, auth
assert all(a['mech'] is None and a['peer'] is None and a['client_authenticated'] is False and
           a['transport'] == 'tls' and a['channel_bound'] is False for a in auth), auth
refused = [e for e in lines if e['event'] == 'closed' and e['error'] is not None]
assert len(refused) == 2, refused   # the client without --ca and the wrong host name
"

# client certificates: asked for with --ca, required with --require-client-cert
start_server mutual --echo --tls --cert "$tmp/server.pem" --key "$tmp/server-key.pem" \
  --ca "$tmp/alice.pem" --require-client-cert
mutual=$server_pid
run_status 0 client --tls --ca "$tmp/server.pem" --cert "$tmp/alice.pem" --key "$tmp/alice-key.pem" hi
check_json "$tmp/last.out" "assert j['ok'], j"
run_status 1 client --tls --ca "$tmp/server.pem" hi
check_json "$tmp/last.out" "assert j['ok'] is False, j"
stop_server "$mutual"
check_json_lines "$tmp/mutual.out" "
auth = [e for e in lines if e['event'] == 'authenticated']
assert len(auth) == 1 and auth[0]['peer'] == 'CN=alice' and auth[0]['tls_peer'] == 'CN=alice', auth
assert auth[0]['client_authenticated'] is True and auth[0]['tls_peer_verified'] is True, auth
"

# ---- usage errors (status 2) and bad files (status 1) -----------------------------------------
cert=$tmp/server.pem key=$tmp/server-key.pem
for args in "--cert $cert" "--ca $cert" "--tls-allow-ntlm" "--require-client-cert" \
            "--tls --tls-negotiate --cert $cert" "--tls" "--tls --key $key" \
            "--tls-negotiate --key $key" "--tls-negotiate --require-client-cert" \
            "--tls --cert $cert --tls-allow-ntlm" "--tls --cert $cert --protect seal" \
            "--tls --cert $cert --min-protect sign" "--tls --cert $cert --mech kerberos" \
            "--tls-negotiate --profile gss-sample" "--tls-negotiate --cert ''" \
            "--tls-negotiate --mech ntlm"; do
  eval "run_status 2 \"\$negio\" server --listen 127.0.0.1:0 $args"
  grep -q "usage: negio server" "$tmp/last.err" || fail "server $args: no usage on stderr"
done
for args in "--cert $cert" "--tls-host localhost" "--tls --tls-negotiate" "--tls --protect sign" \
            "--tls --mech ntlm" "--tls --require-mutual" "--tls --delegate" \
            "--tls-negotiate --key $key" "--tls --require-client-cert"; do
  # shellcheck disable=SC2086  # word splitting is the point
  run_status 2 "$negio" client --connect "127.0.0.1:$any_port" $args hi
  grep -q "usage: negio client" "$tmp/last.err" || fail "client $args: no usage on stderr"
done
run_status 1 "$negio" server --listen 127.0.0.1:0 --tls --cert "$tmp/missing.pem"
grep -q -- "--cert $tmp/missing.pem: No such file or directory" "$tmp/last.err" ||
  fail "missing --cert: $(cat "$tmp/last.err")"
run_status 1 "$negio" server --listen 127.0.0.1:0 --tls --cert "$tmp/openssl.err" --key "$key"
grep -q "cannot set up TLS (NEGIO_ERR_CREDENTIALS): TLS: cannot load the certificate" \
  "$tmp/last.err" || fail "a --cert that is no certificate: $(cat "$tmp/last.err")"
run_status 1 "$negio" server --listen 127.0.0.1:0 --tls --cert "$cert" --key "$tmp/alice-key.pem"
grep -q "cannot load the private key" "$tmp/last.err" || fail "mismatched key: $(cat "$tmp/last.err")"
run_status 1 client --tls-negotiate --ca "$tmp/missing.pem" hi
grep -q -- "--ca $tmp/missing.pem: No such file or directory" "$tmp/last.err" ||
  fail "missing --ca: $(cat "$tmp/last.err")"
[ ! -s "$tmp/last.out" ] || fail "a client that never connected printed: $(cat "$tmp/last.out")"
echo "test_tls: ok"
