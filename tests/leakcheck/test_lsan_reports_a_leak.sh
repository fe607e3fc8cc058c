#!/usr/bin/env bash
# A LeakSanitizer configuration of the ASan build reports leaks of negio's own: this test passes
# when each leak tests/leakcheck/leaky makes on purpose is reported. It checks the configuration
# it is run under (ASAN_OPTIONS and LSAN_OPTIONS in the environment); tests/CMakeLists.txt
# registers it twice, for the two configurations `make check-asan` uses:
#   test_lsan_reports_a_leak              the make rule's (LeakSanitizer's fast unwinder,
#                                         tests/lsan.supp with tests/lsan-fast-unwind.supp)
#   test_lsan_reports_a_leak_slow_unwind  test_tls's (the slow unwinder, tests/lsan.supp alone)
# The leaks:
#   leaky memory  a negio_config lost: the report must name negio_config_new;
#   leaky ntlm    the six buffers gss-ntlmssp returned during a raw NTLM exchange lost (tokens,
#                 MIC, wrap token, unwrapped plaintext): each must be reported as a direct leak
#                 allocated inside gss-ntlmssp, i.e. no suppression of gss-ntlmssp's own leaks
#                 covers the buffers negio must release.
set -uo pipefail
leaky=$1
case ${LSAN_OPTIONS:-} in
  *suppressions=*) ;;
  *) echo "FAIL: LSAN_OPTIONS names no suppressions: nothing to prove (run it through make check-asan)"
     exit 1 ;;
esac
config="ASAN_OPTIONS=${ASAN_OPTIONS:-} LSAN_OPTIONS=$LSAN_OPTIONS"
status=0

out=$(NEGIO_LEAKY=1 "$leaky" memory 2>&1)
rc=$?
if [ $rc -eq 0 ] || ! grep -q 'ERROR: LeakSanitizer: detected memory leaks' <<<"$out" ||
   ! grep -q 'negio_config_new' <<<"$out"; then
  echo "FAIL: leaky memory exited $rc without a leak report naming negio_config_new ($config):"
  echo "$out"
  status=1
else
  echo "ok: the lost negio_config was reported (exit $rc)"
fi

out=$(NEGIO_LEAKY=1 "$leaky" ntlm 2>&1)
rc=$?
leaked=$(grep -E '^leaked [a-z]+ [0-9]+$' <<<"$out")
if [ $rc -eq 0 ] || [ "$(wc -l <<<"$leaked")" -ne 6 ]; then
  echo "FAIL: leaky ntlm exited $rc, having lost $(grep -c . <<<"$leaked") buffers of 6 ($config):"
  echo "$out"
  status=1
else
  while read -r _ name size; do
    # "Direct leak of SIZE byte(s) in 1 object(s) allocated from:" and its frames, up to the
    # blank line; one of them must be in gss-ntlmssp
    if awk -v size="$size" '
         $0 ~ "^Direct leak of " size " byte\\(s\\) in 1 object\\(s\\)" { rec = 1; next }
         rec && /^$/ { rec = 0 }
         rec && /gssntlmssp\.so/ { found = 1 }
         END { exit found ? 0 : 1 }' <<<"$out"; then
      echo "ok: the lost NTLM $name buffer ($size bytes, allocated in gss-ntlmssp) was reported"
    else
      echo "FAIL: the lost NTLM $name buffer ($size bytes) was not reported ($config)"
      status=1
    fi
  done <<<"$leaked"
  [ $status -eq 0 ] || echo "$out"
fi
exit $status
