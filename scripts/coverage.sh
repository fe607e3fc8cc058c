#!/usr/bin/env bash
# Source coverage of src/ (llvm-cov, lines and branches per file), twice: for the test suite and
# for the fuzz corpora replayed (make coverage, docs/FUZZING.md section 5).
#
#   scripts/coverage.sh BUILD_DIR          (a build configured with CC=clang-14 -DNEGIO_COVERAGE=ON)
#
# 1. The test suite: every ctest test of BUILD_DIR, COVERAGE_JOBS (2) at a time, each process
#    (the tests, the negio command they start, the children they fork) writing its own raw
#    profile (LLVM_PROFILE_FILE=.../%p-%m.profraw); merged into suite.profdata.
# 2. The fuzz corpora: each fuzz target of BUILD_DIR/tests/fuzz (linked with tests/fuzz/replay.c,
#    not libFuzzer) runs every file of tests/fuzz/corpus/TARGET, of FUZZ_BUILD/fuzz/corpus/TARGET
#    if that exists (what `make fuzz` found; FUZZ_BUILD defaults to build-fuzz) and of
#    COVERAGE_EXTRA_CORPUS/TARGET if that is set; merged, separately, into fuzz.profdata.
#    COVERAGE_SEEDS replaces tests/fuzz/corpus (to measure a candidate set of seeds).
# 3. Reports in BUILD_DIR/coverage/: suite.txt and fuzz.txt (llvm-cov report: regions, functions,
#    lines, branches per file of src/), summary.txt (lines and branches of both, per file, also
#    printed), fuzz-unreached.txt (the lines of the layers peer bytes cross, src/base,
#    src/wire, src/conn and src/gss, that no fuzz input reaches, by function: what
#    docs/FUZZING.md section 5 accounts for), suite-unreached.txt (the same for the test suite),
#    and html-suite/, html-fuzz/.
#
# A process that dies by a signal or _exit()s writes no profile (a child killed on purpose by a
# test, for example): what it ran is not counted. Exits 1 if a test or a replay failed, after
# writing the reports. COVERAGE_PARTS="fuzz" skips the test suite (a minute instead of several).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
src=$PWD

if [ $# -ne 1 ]; then
  echo "usage: scripts/coverage.sh BUILD_DIR" >&2
  exit 2
fi
build=$(cd "$1" && pwd)
grep -q '^NEGIO_COVERAGE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null || {
  echo "coverage: $build is not a -DNEGIO_COVERAGE=ON build" >&2
  exit 2
}
profdata=${LLVM_PROFDATA:-llvm-profdata-14}
cov=${LLVM_COV:-llvm-cov-14}
fuzz_build=${FUZZ_BUILD:-$src/build-fuzz}
seeds=${COVERAGE_SEEDS:-$src/tests/fuzz/corpus}
parts=${COVERAGE_PARTS:-suite fuzz}
targets=(fuzz_frame fuzz_config fuzz_server_handshake fuzz_client_handshake fuzz_established
  fuzz_sample fuzz_nns fuzz_cfx)

out=$build/coverage
rm -rf "$out"
mkdir -p "$out/profraw/suite" "$out/profraw/fuzz"
status=0

# ---- 1. the test suite --------------------------------------------------------------------------
if [[ " $parts " == *" suite "* ]]; then
echo "coverage: the test suite (ctest -j${COVERAGE_JOBS:-2}), log in $out/suite-ctest.log"
start=$SECONDS
(cd "$build" && LLVM_PROFILE_FILE="$out/profraw/suite/%p-%m.profraw" \
  ctest -j"${COVERAGE_JOBS:-2}" --output-on-failure) >"$out/suite-ctest.log" 2>&1
if [ $? -ne 0 ]; then
  status=1
  echo "coverage: tests FAILED (their coverage is counted as far as they ran):" >&2
  sed -n '/The following tests FAILED/,$p' "$out/suite-ctest.log" >&2
fi
grep -E '^[0-9]+% tests passed' "$out/suite-ctest.log" || true
echo "coverage: the suite took $((SECONDS - start)) s"
fi

# ---- 2. the fuzz corpora ------------------------------------------------------------------------
echo "coverage: the fuzz corpora replayed, log in $out/fuzz-replay.log"
: >"$out/fuzz-replay.log"
for t in "${targets[@]}"; do
  dirs=()
  for d in "$seeds/$t" "$fuzz_build/fuzz/corpus/$t" \
    ${COVERAGE_EXTRA_CORPUS:+"$COVERAGE_EXTRA_CORPUS/$t"}; do
    [ -d "$d" ] && dirs+=("$d")
  done
  echo "== $t: ${dirs[*]}" >>"$out/fuzz-replay.log"
  LLVM_PROFILE_FILE="$out/profraw/fuzz/$t-%p-%m.profraw" \
    NEGIO_TEST_REALM_SCRIPT="$src/scripts/realm.sh" \
    "$build/tests/fuzz/$t" "${dirs[@]}" >>"$out/fuzz-replay.log" 2>&1
  rc=$?
  line=$(grep -E "^$t: [0-9]+ inputs replayed" "$out/fuzz-replay.log" | tail -n1)
  printf '  %-22s %s (%d corpus director%s)\n' "$t" "${line#*: }" ${#dirs[@]} \
    "$([ ${#dirs[@]} -eq 1 ] && echo y || echo ies)"
  if [ $rc -ne 0 ]; then
    status=1
    echo "coverage: $t FAILED (exit $rc), see $out/fuzz-replay.log" >&2
  fi
done

# ---- 3. merge and report ------------------------------------------------------------------------
# the binaries that hold coverage mappings: the tests, the negio command and the shared libraries
# for the suite; the fuzz targets for the fuzz corpora
has_map() { readelf -S "$1" 2>/dev/null | grep -q __llvm_covmap; }
suite_objs=()
while IFS= read -r f; do
  has_map "$f" && suite_objs+=("$f")
done < <(find "$build" -path "$build/tests/fuzz" -prune -o -path "$build/coverage" -prune -o \
  -type f \( -perm -u+x -o -name '*.so*' \) -print | sort)
fuzz_objs=()
for t in "${targets[@]}"; do fuzz_objs+=("$build/tests/fuzz/$t"); done

# cov_args OBJ...: the first object, then -object for the others
cov_args() {
  local first=1
  for o in "$@"; do
    if [ $first -eq 1 ]; then echo "$o"; first=0; else printf '%s\n%s\n' -object "$o"; fi
  done
}

for kind in $parts; do
  find "$out/profraw/$kind" -name '*.profraw' >"$out/$kind-profraw.list"
  n=$(wc -l <"$out/$kind-profraw.list")
  if [ "$n" -eq 0 ]; then
    echo "coverage: no raw profile for $kind" >&2
    exit 1
  fi
  "$profdata" merge -sparse -f "$out/$kind-profraw.list" -o "$out/$kind.profdata" || exit 1
  if [ $kind = suite ]; then objs=("${suite_objs[@]}"); else objs=("${fuzz_objs[@]}"); fi
  mapfile -t args < <(cov_args "${objs[@]}")
  "$cov" report -instr-profile="$out/$kind.profdata" "${args[@]}" "$src/src" >"$out/$kind.txt" \
    2>"$out/$kind-llvm-cov.log" || exit 1
  "$cov" export -summary-only -instr-profile="$out/$kind.profdata" "${args[@]}" "$src/src" \
    >"$out/$kind.json" 2>>"$out/$kind-llvm-cov.log" || exit 1
  "$cov" show -format=html -show-branches=count -output-dir="$out/html-$kind" \
    -instr-profile="$out/$kind.profdata" "${args[@]}" "$src/src" 2>>"$out/$kind-llvm-cov.log" ||
    exit 1
  "$cov" export -format=lcov -instr-profile="$out/$kind.profdata" "${args[@]}" "$src/src/base" \
    "$src/src/wire" "$src/src/conn" "$src/src/gss" >"$out/$kind-peer.lcov" \
    2>>"$out/$kind-llvm-cov.log" || exit 1
  echo "coverage: $kind: $n raw profiles from ${#objs[@]} binaries"
done

python3 - "$src" "$out" <<'EOF'
import json, os, re, sys

src, out = sys.argv[1], sys.argv[2]

def load(kind):
    files = {}
    if not os.path.exists(f"{out}/{kind}.json"):
        return files
    for data in json.load(open(f"{out}/{kind}.json"))["data"]:
        for f in data["files"]:
            files[os.path.relpath(f["filename"], src)] = f["summary"]
    return files

suite, fuzz = load("suite"), load("fuzz")
names = sorted(set(suite) | set(fuzz))
for d, _, fs in os.walk(f"{src}/src"):
    for f in fs:
        if f.endswith(".c"):
            names.append(os.path.relpath(f"{d}/{f}", src))
names = sorted(set(names))

def cell(s, what):
    if s is None:
        return "not linked"
    c = s[what]
    if c["count"] == 0:
        return "-"
    return f"{100.0 * c['covered'] / c['count']:5.1f}% {c['covered']:>4}/{c['count']:<4}"

def total(files, what):
    covered = sum(files[n][what]["covered"] for n in files)
    count = sum(files[n][what]["count"] for n in files)
    return {what: {"covered": covered, "count": count}}

lines = []
hdr = (f"{'file':<26} {'suite lines':>18} {'suite branches':>18} {'fuzz lines':>18} "
       f"{'fuzz branches':>18}")
lines.append(hdr)
lines.append("-" * len(hdr))
for n in names:
    s, z = suite.get(n), fuzz.get(n)
    lines.append(f"{n:<26} {cell(s, 'lines'):>18} {cell(s, 'branches'):>18} "
                 f"{cell(z, 'lines'):>18} {cell(z, 'branches'):>18}")
lines.append("-" * len(hdr))
ts = {**total(suite, "lines"), **total(suite, "branches")}
tz = {**total(fuzz, "lines"), **total(fuzz, "branches")}
lines.append(f"{'total (files linked)':<26} {cell(ts, 'lines'):>18} {cell(ts, 'branches'):>18} "
             f"{cell(tz, 'lines'):>18} {cell(tz, 'branches'):>18}")
text = "\n".join(lines) + "\n"
open(f"{out}/summary.txt", "w").write(text)
print(text, end="")

# The lines of src/base, src/wire, src/conn and src/gss that no fuzz input (no test) reached,
# grouped by the function that holds them (the last function starting at or before the line).
def flush(report, cur, funcs, missed):
    if cur is None or not missed:
        return
    report.append(os.path.relpath(cur, src))
    by_fn = {}
    for ln in missed:
        owner = max((f for f in funcs if f[0] <= ln), default=(0, "(file scope)"))
        by_fn.setdefault(owner, []).append(ln)
    for (start, name), lns in sorted(by_fn.items()):
        ranges, a = [], lns[0]
        for i in range(1, len(lns) + 1):
            if i == len(lns) or lns[i] != lns[i - 1] + 1:
                ranges.append(str(a) if a == lns[i - 1] else f"{a}-{lns[i - 1]}")
                if i < len(lns):
                    a = lns[i]
        report.append(f"  {name} (line {start}): {len(lns)} lines: {', '.join(ranges)}")
for kind in ("suite", "fuzz"):
    if not os.path.exists(f"{out}/{kind}-peer.lcov"):
        continue
    report, cur, funcs, missed = [], None, [], []
    for raw in open(f"{out}/{kind}-peer.lcov"):
        raw = raw.strip()
        if raw.startswith("SF:"):
            cur, funcs, missed = raw[3:], [], []
        elif raw.startswith("FN:"):
            ln, name = raw[3:].split(",", 1)
            funcs.append((int(ln), re.sub(r"^.*\.c:", "", name)))
        elif raw.startswith("DA:"):
            ln, count = raw[3:].split(",")[:2]
            if int(count) == 0:
                missed.append(int(ln))
        elif raw == "end_of_record":
            flush(report, cur, funcs, missed)
            cur = None
    open(f"{out}/{kind}-unreached.txt", "w").write("\n".join(report) + "\n")
    who = "no test" if kind == "suite" else "no fuzz input"
    print(f"coverage: lines of src/base, src/wire, src/conn and src/gss that {who} reaches, "
          f"by function: "
          f"{out}/{kind}-unreached.txt")
EOF
echo "coverage: reports in $out (suite.txt, fuzz.txt, summary.txt, suite-unreached.txt," \
  "fuzz-unreached.txt, html-suite/, html-fuzz/)"
exit $status
