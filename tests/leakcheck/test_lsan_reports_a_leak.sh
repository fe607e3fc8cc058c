#!/usr/bin/env bash
# The LeakSanitizer configuration of `make check-asan` (ASAN_OPTIONS, LSAN_OPTIONS with
# tests/lsan.supp, inherited from the make rule) reports a leak of negio's own: this test passes
# when running tests/leakcheck/leaky fails with a leak report that names negio_config_new.
set -uo pipefail
leaky=$1
out=$(NEGIO_LEAKY=1 "$leaky" memory 2>&1)
rc=$?
if [ $rc -eq 0 ]; then
  echo "FAIL: leaky exited 0: LeakSanitizer did not report the leak"
  echo "ASAN_OPTIONS=${ASAN_OPTIONS:-} LSAN_OPTIONS=${LSAN_OPTIONS:-}"
  echo "$out"
  exit 1
fi
if ! grep -q 'ERROR: LeakSanitizer: detected memory leaks' <<<"$out" ||
   ! grep -q 'negio_config_new' <<<"$out"; then
  echo "FAIL: leaky exited $rc but without a leak report naming negio_config_new:"
  echo "$out"
  exit 1
fi
echo "ok: LeakSanitizer reported the leak (exit $rc), with suppressions ${LSAN_OPTIONS:-none}"
