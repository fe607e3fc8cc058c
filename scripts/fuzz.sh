#!/usr/bin/env bash
# Runs the libFuzzer targets of a NEGIO_FUZZ build (docs/FUZZING.md).
#
#   scripts/fuzz.sh BUILD_DIR SECONDS [TARGET ...]
#   scripts/fuzz.sh --self-test BUILD_DIR
#
# The self-test proves that each target, run with the flags and sanitizer options used here,
# fails when negio leaks: with NEGIO_FUZZ_LEAK_ON_PURPOSE=1 every input loses a negio_config
# (tests/fuzz/fuzz_support.c), and each run must end in a leak report naming negio_config_new.
#
# Each target starts from its committed seeds (tests/fuzz/corpus/TARGET, read only) and from the
# inputs it found before (BUILD_DIR/fuzz/corpus/TARGET, where new ones go), runs for SECONDS, and
# reports executions, exec/s, coverage and peak memory. Two targets run at a time (FUZZ_JOBS).
# Crashes, leaks and timeouts are kept in BUILD_DIR/fuzz/artifacts; any of them fails the run.
# Extra libFuzzer flags can be given in FUZZ_FLAGS.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
src=$PWD

self_test=0
if [ "${1:-}" = "--self-test" ]; then
  self_test=1
  shift
  set -- "${1:-}" 0
fi
if [ $# -lt 2 ]; then
  echo "usage: scripts/fuzz.sh BUILD_DIR SECONDS [TARGET ...]" >&2
  exit 2
fi
build=$(cd "$1" && pwd)
seconds=$2
shift 2
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(fuzz_frame fuzz_config fuzz_server_handshake fuzz_client_handshake fuzz_established
    fuzz_sample fuzz_nns)
fi
jobs=${FUZZ_JOBS:-2}

work=$build/fuzz
mkdir -p "$work/corpus" "$work/artifacts" "$work/logs"
# one line per target, "NAME ok" or "NAME FAILED" (make check counts them)
results=$work/results.txt
[ $self_test -eq 1 ] && results=$work/results-self-test.txt
rm -f "$results"

# the sanitizers as in `make check-asan`: leaks fatal, known system-library leaks suppressed
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
cat "$src/tests/lsan.supp" "$src/tests/lsan-fast-unwind.supp" > "$work/lsan.supp"
export LSAN_OPTIONS=suppressions=$work/lsan.supp
export NEGIO_TEST_REALM_SCRIPT=$src/scripts/realm.sh

# Leak checks. libFuzzer scans for leaks after every input that allocated more than it freed; on
# the targets that authenticate with NTLM for each input that is every such input, because
# gss-ntlmssp 1.2.0 leaks an OpenSSL context per authentication (tests/lsan.supp), and the scan
# makes them ten times slower. Those targets therefore check for leaks once, when the process ends
# (LeakSanitizer, same suppressions): a leak still fails the run, but is not tied to the input
# that caused it. fuzz_established authenticates only at start-up and copies the contexts for
# each input, so it is checked after every input like the targets without GSS-API.
leak_flags() {
  case $1 in
    fuzz_frame|fuzz_config|fuzz_established) echo "-detect_leaks=1" ;;
    *) echo "-detect_leaks=0" ;;
  esac
}

run_one() {
  local t=$1 bin=$build/tests/fuzz/$1
  local log=$work/logs/$t.log
  mkdir -p "$work/corpus/$t"
  # -timeout: one input may wait for the KDC; -rss_limit_mb: gss-ntlmssp 1.2.0 leaks an OpenSSL
  # context per NTLM credential (tests/lsan.supp), which a long run accumulates
  "$bin" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/$t-" $(leak_flags "$t") ${FUZZ_FLAGS:-} \
    "$work/corpus/$t" "$src/tests/fuzz/corpus/$t" >"$log" 2>&1
  local rc=$?
  local execs rate units cov rss
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
  units=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -n1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n1)
  # -fork=N (FUZZ_FLAGS) prints "#EXECS: cov: ... corp: N ... time: Ss job: J" per job; stat::
  # lines there come from a crashing job only and count that job alone
  local forked
  forked=$(grep -E '^#[0-9]+: cov:' "$log" | tail -n1)
  if [ -n "$forked" ]; then
    execs=$(sed -E 's/^#([0-9]+):.*/\1/' <<<"$forked")
    local secs
    secs=$(sed -nE 's/.* time: ([0-9]+)s.*/\1/p' <<<"$forked")
    rate=$((${secs:-0} > 0 ? execs / secs : 0))
    units=$(sed -nE 's/.* corp: ([0-9]+) .*/\1 (corpus)/p' <<<"$forked")
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' <<<"$forked")
    rss=?
  fi
  printf '%-22s %s  executions %s, %s exec/s, %s new inputs, %s, peak RSS %s MB\n' \
    "$t" "$([ $rc -eq 0 ] && echo ok || echo FAILED)" "${execs:-?}" "${rate:-?}" \
    "${units:-?}" "${cov:-cov ?}" "${rss:-?}"
  echo "$t $([ $rc -eq 0 ] && echo ok || echo FAILED)" >>"$results"
  if [ $rc -ne 0 ]; then
    echo "---- $t (exit $rc), log $log:" >&2
    grep -E -A30 'ERROR: |==ERROR|Test unit written|deadly signal|SUMMARY' "$log" | head -60 >&2
  fi
  return $rc
}

for t in "${targets[@]}"; do
  [ -x "$build/tests/fuzz/$t" ] || { echo "fuzz: no $build/tests/fuzz/$t (make fuzz-build)" >&2; exit 1; }
done

if [ $self_test -eq 1 ]; then
  status=0
  for t in "${targets[@]}"; do
    log=$work/logs/$t-self-test.log
    seed=$(ls "$src/tests/fuzz/corpus/$t" | head -n1)
    NEGIO_FUZZ_LEAK_ON_PURPOSE=1 "$build/tests/fuzz/$t" -runs=3 $(leak_flags "$t") \
      "$src/tests/fuzz/corpus/$t/$seed" >"$log" 2>&1
    rc=$?
    if [ $rc -ne 0 ] && grep -q 'LeakSanitizer: detected memory leaks' "$log" &&
       grep -q 'negio_config_new' "$log"; then
      echo "fuzz self-test: $t reported the leak (exit $rc), as it must"
      echo "$t-self-test ok" >>"$results"
    else
      echo "fuzz self-test: $t did NOT report the leak (exit $rc); see $log" >&2
      echo "$t-self-test FAILED" >>"$results"
      status=1
    fi
  done
  exit $status
fi

echo "fuzz: ${#targets[@]} targets, ${seconds}s each, $jobs at a time"
status=0
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
    wait -n || status=1
  done
  run_one "$t" &
done
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do
  wait -n || status=1
done
wait || status=1
if [ $status -ne 0 ]; then
  echo "fuzz: FAILED (artifacts in $work/artifacts)" >&2
fi
exit $status
