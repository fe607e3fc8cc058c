#!/usr/bin/env bash
# The Kerberos fast path between two negio processes: a server with it (the default) and one
# without (--no-kerberos-fast-path), each met by clients with it, without it, and without it
# through NEGIO_KRB5_FAST_PATH=0, on kerberos, negotiate->kerberos and negotiate->ntlm (where it
# never applies), with messages at every level and sizes around the AES block and far past a
# frame; every reply comes back at the level it went.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

start_realm
big=$(python3 -c 'print("x" * 70000)')
for server_opts in "" "--no-kerberos-fast-path"; do
  # shellcheck disable=SC2086 # the options are words
  start_server "echo$server_opts" --echo --min-protect none $server_opts
  server=$server_pid
  for client_opts in "" "--no-kerberos-fast-path" "env"; do
    for mech in kerberos negotiate ntlm-fallback; do
      opts=()
      envs=()
      case $mech in
        kerberos) opts+=(--mech kerberos) ;;
        ntlm-fallback) envs+=(KRB5CCNAME=FILE:/nonexistent) ;;
      esac
      case $client_opts in
        env) envs+=(NEGIO_KRB5_FAST_PATH=0) ;;
        ?*) opts+=("$client_opts") ;;
      esac
      run_status 0 env "${envs[@]}" "$negio" client --connect "127.0.0.1:$port" --json \
        --timeout 20 "${opts[@]}" "" sign:1 seal:15-bytes-long!! seal:16-bytes-long!!! \
        sign:seventeen-bytes!! "seal:$big" "sign:$big"
      check_json "$tmp/last.out" "
assert j['ok'] is True, j
assert j['mech'] == ('ntlm' if '$mech' == 'ntlm-fallback' else 'kerberos'), j
m = j['messages']
assert [x['sent_level'] for x in m] == ['seal', 'sign', 'seal', 'seal', 'sign', 'seal', 'sign'], m
for x in m:
    assert x['ok'] is True and x['reply'] == x['sent'] and x['reply_level'] == x['sent_level'], x
"
    done
  done
  stop_server "$server"
done
echo "test_fast_path: ok"
