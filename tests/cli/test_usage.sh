#!/usr/bin/env bash
# --help and --version on stdout with status 0; unknown commands, unknown options and bad
# option values give the usage on stderr and status 2. Needs no realm.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

run_status 0 "$negio" --help
grep -q "usage: negio COMMAND" "$tmp/last.out" || fail "negio --help"
run_status 0 "$negio" --version
grep -Eq '^negio [0-9]+\.[0-9]+\.[0-9]+' "$tmp/last.out" || fail "negio --version: $(cat "$tmp/last.out")"
for cmd in realm server client; do
  run_status 0 "$negio" "$cmd" --help
  grep -q "usage: negio $cmd" "$tmp/last.out" || fail "negio $cmd --help"
  [ ! -s "$tmp/last.err" ] || fail "negio $cmd --help wrote to stderr"
  run_status 2 "$negio" "$cmd" --no-such-option
  grep -q "usage: negio $cmd" "$tmp/last.err" || fail "negio $cmd: no usage on stderr"
  [ ! -s "$tmp/last.out" ] || fail "negio $cmd: usage error wrote to stdout"
done
run_status 2 "$negio"
run_status 2 "$negio" frobnicate
grep -q "unknown command" "$tmp/last.err" || fail "unknown command message"

# server: bad values
run_status 2 "$negio" server --mech foo
run_status 2 "$negio" server --protect strong
run_status 2 "$negio" server --min-protect ""
run_status 2 "$negio" server --listen 127.0.0.1
run_status 2 "$negio" server --listen 127.0.0.1:99999
run_status 2 "$negio" server --spn negio
run_status 2 "$negio" server extra-argument

# client: missing or bad values
run_status 2 "$negio" client
grep -q -- "--connect" "$tmp/last.err" || fail "client without --connect"
run_status 2 "$negio" client --connect localhost
run_status 2 "$negio" client --connect localhost:0
run_status 2 "$negio" client --connect :7000
run_status 2 "$negio" client --connect localhost:7000 --mech foo
run_status 2 "$negio" client --connect localhost:7000 --protect foo
run_status 2 "$negio" client --connect localhost:7000 --spn negio
run_status 2 "$negio" client --connect localhost:7000 --timeout -1
run_status 2 "$negio" client --connect localhost:7000 --timeout soon
run_status 2 "$negio" client --connect localhost:7000 --user alice
run_status 2 "$negio" client --connect localhost:7000 --password-file /dev/null
run_status 2 "$negio" client --connect localhost:7000 --user alice --password-file "$tmp/missing"
grep -q "missing" "$tmp/last.err" || fail "unreadable password file not named"
echo "test_usage: ok"
