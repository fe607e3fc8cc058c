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
# server: what to do with messages, and the identity options
for args in "--echo --files $tmp" "--files $tmp --forward 127.0.0.1:1 --forward-spn a@b" \
            "--echo --forward 127.0.0.1:1 --forward-spn a@b" "--impersonate" "--allow-root" \
            "--files $tmp --allow-system" "--forward 127.0.0.1:1" "--forward-spn a@b" \
            "--forward 127.0.0.1 --forward-spn a@b" "--forward :1 --forward-spn a@b" \
            "--forward 127.0.0.1:0 --forward-spn a@b" "--forward 127.0.0.1:1 --forward-spn ab" \
            "--map alice" "--map alice=" "--map =alice" "--map alice=a/b" "--map alice=-x" \
            "--map alice={x}"; do
  # shellcheck disable=SC2086  # word splitting is the point
  run_status 2 "$negio" server $args
  grep -q "usage: negio server" "$tmp/last.err" || fail "server $args: no usage on stderr"
done
run_status 2 "$negio" server --map 'a b=x'
run_status 2 "$negio" server --ntlm-domain ''
# a --files directory that cannot be opened: a failure to start, not a usage error
run_status 1 "$negio" server --listen 127.0.0.1:0 --files "$tmp/missing"
grep -q -- "--files $tmp/missing: No such file or directory" "$tmp/last.err" ||
  fail "--files missing: $(cat "$tmp/last.err")"
run_status 0 "$negio" server --help
grep -q "own identity" "$tmp/last.out" || fail "server --help does not say whose identity --files uses"
run_status 0 "$negio" client --help
grep -q -- "--delegate" "$tmp/last.out" || fail "client --help lacks --delegate"

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
