#!/usr/bin/env bash
# The negio command with --profile gss-sample against MIT's gss-server and gss-client
# (krb5-gss-samples): Kerberos, SPNEGO and NTLM, each direction, with the sample programs' options.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
start_realm

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# negio client -> gss-server
gport=$(free_port)
gss-server -port "$gport" -keytab "$NEGIO_REALM_DIR/service.keytab" negio@localhost \
  >"$tmp/gss-server.out" 2>&1 &
servers+=("$!")
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$gport") 2>/dev/null && break; sleep 0.05; done
for mech in kerberos negotiate ntlm; do
  run_status 0 "$negio" client --profile gss-sample --connect "127.0.0.1:$gport" --json \
    --timeout 20 --mech "$mech" --min-protect none "seal:sealed one" "sign:signed one" "none:plain one"
  cp "$tmp/last.out" "$tmp/to-gss-server-$mech.out"
  check_json "$tmp/to-gss-server-$mech.out" "
assert j['ok'], j
assert [m['reply'] for m in j['messages']] == ['sealed one', 'signed one', 'plain one'], j
assert all(m['reply_level'] == 'sign' for m in j['messages']), j  # the server's verified MICs
assert j['mech'] == ('ntlm' if '$mech' == 'ntlm' else 'kerberos'), j
"
done
grep -q 'Accepted connection: "alice@' "$tmp/gss-server.out" || fail "gss-server did not see alice"
grep -qF 'Accepted connection: "NEGIO\alice"' "$tmp/gss-server.out" || fail "gss-server did not see NEGIO\\alice"
grep -q 'Warning' "$tmp/gss-server.out" && fail "gss-server warned: $(grep Warning "$tmp/gss-server.out")"

# gss-client -> negio server
start_server sample --profile gss-sample --min-protect none
gss() { gss-client -port "$port" "$@" 127.0.0.1 negio@localhost "hello from gss-client" >>"$tmp/gss-client.out" 2>&1; }
gss
gss -spnego
gss -nx
gss -nw
gss -nm
gss -mcount 3
gss -ccount 3 -spnego
gss -mech '{1 3 6 1 4 1 311 2 2 10}' -user alice -pass "$(cat "$NEGIO_REALM_DIR/alice.password")" -q
grep -q "Signature verified." "$tmp/gss-client.out" || fail "gss-client verified no signature"
wait_events "$tmp/sample.out" closed 10 # one per connection: -ccount 3 makes three
check_json_lines "$tmp/sample.out" "
ev = lambda t: [l for l in lines if l['event'] == t]
msgs = ev('message')
assert len(msgs) == 12, len(msgs)
assert sorted(set(m['level'] for m in msgs)) == ['none', 'seal', 'sign'], msgs
assert all(c['reason'] == 'clean' for c in ev('closed')), ev('closed')
peers = set(a['peer'] for a in ev('authenticated'))
assert any(p.startswith('alice@') for p in peers) and 'alice' in peers, peers  # NTLM: gss-client -user alice names no domain
"
stop_server "$server_pid"

# negio's own minimum holds: an unwrapped message against the default sign minimum
start_server strict --profile gss-sample
if gss -nw; then fail "gss-client -nw was served against a sign minimum"; fi
wait_events "$tmp/strict.out" closed 1
check_json_lines "$tmp/strict.out" "
c = [l for l in lines if l['event'] == 'closed']
assert c and c[-1]['error'] == 'NEGIO_ERR_DOWNGRADE', c
"
echo "test_gss_sample: ok"
