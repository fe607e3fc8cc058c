#!/usr/bin/env bash
# The documents describe the tree as it is:
#  - docs/ARCHITECTURE.md numbers its sections 1, 2, 3, ... once each, and every "section N" it
#    or a source comment cites ("ARCHITECTURE.md section N") exists;
#  - its layer diagram (section 1) names every folder and every source file under src/;
#  - no comment in a header under src/ says that a function declared void returns something.
#
#   test_docs_match_the_tree.sh SOURCE_DIR
set -uo pipefail
root=$1
arch=$root/docs/ARCHITECTURE.md
status=0
fail() {
  echo "FAIL: $*"
  status=1
}

# section numbers: 1..N, each once
numbers=$(sed -nE 's/^## ([0-9]+)\. .*/\1/p' "$arch")
expect=1
for n in $numbers; do
  [ "$n" -eq "$expect" ] || fail "ARCHITECTURE.md: section $n where section $expect was due"
  expect=$((n + 1))
done
last=$((expect - 1))
[ "$last" -gt 10 ] || fail "ARCHITECTURE.md: only $last numbered sections found"

# citations of sections that do not exist
for n in $(grep -ohE 'section [0-9]+' "$arch" | awk '{print $2}' | sort -un); do
  [ "$n" -le "$last" ] || fail "ARCHITECTURE.md cites section $n; the last is $last"
done
for n in $(grep -rhoE 'ARCHITECTURE\.md,?[[:space:]*]+section [0-9]+' "$root/src" "$root/include" |
           grep -oE '[0-9]+$' | sort -un); do
  [ "$n" -le "$last" ] || fail "a source comment cites ARCHITECTURE.md section $n; the last is $last"
done

# the layer diagram of section 1
layers=$(awk '/^## 1\. /{on=1; next} /^## 2\. /{on=0} on' "$arch")
for d in "$root"/src/*/; do
  d=$(basename "$d")
  grep -q "src/$d/" <<<"$layers" || fail "ARCHITECTURE.md section 1 does not show src/$d/"
done
for f in $(cd "$root/src" && find . -name '*.[ch]' | sort); do
  b=$(basename "$f")
  grep -qE "(^|[^A-Za-z0-9_])$b([^A-Za-z0-9_]|$)" <<<"$layers" ||
    fail "ARCHITECTURE.md section 1 does not name src/${f#./}"
done

# a void function whose comment says it returns something
while IFS= read -r hit; do
  fail "$hit"
done < <(find "$root/src" -name '*.h' -print0 | xargs -0 awk '
  FNR == 1 { comment = ""; incomment = 0 }
  /^[ \t]*\/\*/ { comment = ""; incomment = 1 }
  incomment { comment = comment " " $0; if ($0 ~ /\*\//) incomment = 0; next }
  /^[ \t]*$/ { comment = ""; next }
  /^void [a-z_0-9]+\(/ {
    if (comment ~ /[Rr]eturns? (a |an |the |NEGIO_|0|1|-|negative|non-zero)/) {
      name = $2; sub(/\(.*/, "", name)
      print FILENAME ": the comment of " name " says it returns a value; it is void"
    }
    comment = ""
    next
  }
  { comment = "" }')

[ $status -eq 0 ] && echo "ok: the documents match the tree (sections 1 to $last)"
exit $status
