#!/usr/bin/env bash
# Each subcommand's options are written down in four places that must agree: the option list of
# its --help and the synopsis above it (both printed from the same option tables,
# tools/negio/opt.h), its synopsis in negio(1), whose sections must also describe every option,
# and the command's part of README.md. --help of every subcommand exits 0, so no option table
# collides (the command aborts on a collision). Needs no realm.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
src=$(cd "$(dirname "$0")/../.." && pwd)

for cmd in realm server client bench; do
  run_status 0 "$negio" "$cmd" --help
  cp "$tmp/last.out" "$tmp/$cmd.help"
done
python3 - "$tmp" "$src/tools/negio/negio.1" "$src/README.md" <<'EOF' || fail "the options disagree (above)"
import re, sys

tmp, man_path, readme_path = sys.argv[1:]

def options(text):
    return set(re.findall(r'--([a-z][a-z-]*[a-z])', text))

def roff(text):
    return re.sub(r'\\f[BIPR]', '', text.replace('\\-', '-'))

man = open(man_path).read()
synopsis, body = man.split('.SH SYNOPSIS\n', 1)[1].split('\n.SH ', 1)
man_forms = {}  # subcommand -> options in its synopsis forms (one form per .br)
for form in roff(synopsis).split('\n.br'):
    m = re.search(r'^\.B negio (\w+)', form, re.M)
    if m:
        man_forms.setdefault(m.group(1), set()).update(options(form))
body = roff(body)
readme = open(readme_path).read()
readme = readme.split('## The `negio` command', 1)[1].split('\n## ', 1)[0]

bad = []
for cmd in ('realm', 'server', 'client', 'bench'):
    head, rest = open(f'{tmp}/{cmd}.help').read().split('\n\n', 1)
    listed = set(re.findall(r'^  (?:-h, )?--([a-z][a-z-]*)', rest, re.M)) - {'help'}
    for where, got in (('its --help synopsis', options(head)),
                       ('its negio(1) synopsis', man_forms.get(cmd, set()))):
        if got != listed:
            bad.append(f'negio {cmd}: --help lists {sorted(listed - got)} missing from {where}, '
                       f'which has {sorted(got - listed)} that --help does not list')
    for where, text in (('negio(1) past its synopsis', body), ('README.md', readme)):
        missing = sorted(o for o in listed if not re.search(f'--{o}(?![a-z-])', text))
        if missing:
            bad.append(f'negio {cmd}: {where} never names {missing}')
for b in bad:
    print(b, file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
echo "test_help: ok"
