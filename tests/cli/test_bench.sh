#!/usr/bin/env bash
# negio bench, small: every section runs and reports what docs/PERFORMANCE.md describes (the
# table; --json with its "ratios" and "connections" members; --csv), usage errors give status 2,
# the replay cache is left on. No figure is compared with a threshold: this tests the tool, not
# the machine.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

run_status 0 "$negio" bench --help
grep -q "usage: negio bench" "$tmp/last.out" || fail "negio bench --help"
[ ! -s "$tmp/last.err" ] || fail "negio bench --help wrote to stderr"
for args in "--no-such-option" "--only nothing" "--only gss,nothing" "--seconds 0" \
            "--seconds x" "--repeat 0" "--repeat 10" "--connections 10" "--json --csv" \
            "extra-argument"; do
  # shellcheck disable=SC2086  # word splitting is the point
  run_status 2 "$negio" bench $args
  grep -q "usage: negio bench" "$tmp/last.err" || fail "negio bench $args: no usage on stderr"
done

start_realm
# every section, as short as it goes; --repeat 2 exercises the medians
run_status 0 "$negio" bench --seconds 0.05 --repeat 2 --connections 200 --no-progress \
  --json="$tmp/bench.json" --csv="$tmp/bench.csv"
for text in "negio bench, quick mode" "1. In-process GSS limit" "2. negio end to end" \
            "3. Plain TCP" "4. TLS and Kerberos inside TLS" \
            "tls-neg. / seal" "5. Handshakes" "6. Concurrent idle connections" "7. Latency" "Targets"; do
  grep -qF "$text" "$tmp/last.out" || fail "the table has no '$text'"
done
check_json "$tmp/bench.json" '
r = j["ratios"]
for k in ("seal_vs_gss", "sign_vs_gss", "none_vs_tcp", "handshake_vs_inprocess",
          "tls_negotiate_vs_seal", "tls_negotiate_vs_seal_cpu"):
    assert isinstance(r[k], (int, float)) and r[k] > 0, k
assert j["connections"]["count"] == 200 and j["connections"]["rss_per_connection_bytes"] > 0
assert j["replay_cache"] is True
assert j["repeats_per_point"] == 2
sizes = {64, 1024, 16384, 65536, 1048576}
e2e = [(e["mech"], e["level"], e["size"]) for e in j["end_to_end"] if e["mb_s"] is not None]
assert sorted(e2e) == sorted((m, l, s) for m in ("kerberos", "ntlm")
                             for l in ("none", "sign", "seal") for s in sizes), e2e
tls = [(e["transport"], e["mech"], e["level"], e["size"]) for e in j["tls"] if e["mb_s"] is not None]
assert sorted(tls, key=str) == sorted([("tls", None, "none", s) for s in sizes] +
                                      [("tls-negotiate", "kerberos", "none", s) for s in sizes],
                                      key=str), tls
assert all(e["session"].startswith("TLSv1.") for e in j["tls"]), j["tls"]
assert all(e["ratio_vs_seal"] > 0 for e in j["tls"] if e["transport"] == "tls-negotiate")
assert all(e["repeats"] == 2 for e in j["end_to_end"] + j["gss_limit"] + j["plain_tcp"])
assert {(h["path"], h["over_tcp"]["failed"]) for h in j["handshakes"]} == \
       {("kerberos", 0), ("negotiate-ntlm", 0)}
assert all(h["over_tcp"]["handshakes"] > 0 and h["gss_creds_once"]["handshakes"] > 0
           for h in j["handshakes"])
assert j["latency_us"]["idle"]["n"] > 0 and j["latency_us"]["under_load"]["n"] > 0
assert len(j["targets"]) == 12
assert j["targets"][11]["name"].startswith("Kerberos inside TLS") and j["targets"][11]["measured"] > 0
# issue 18: the fast path against the MIT path and against OpenSSL alone, in the same run
assert j["kerberos_fast_path"] is True
assert [t["name"][:24] for t in j["targets"][7:11]] == [
    "Kerberos seal, fast path", "Kerberos seal vs the Ope", "Kerberos sign, fast path",
    "sealed 64-byte Kerberos "], j["targets"][7:11]
assert all(t["measured"] > 0 for t in j["targets"][7:11]), j["targets"][7:11]
# what bounds the wall-clock ratios: how busy each side was, on both paths
import re
for t in (j["targets"][7], j["targets"][9]):
    assert re.search(r"cores busy, sender/receiver: fast path [0-9.]+/[0-9.]+, MIT.s [0-9.]+/[0-9.]+$",
                     t["detail"]), t
for k in ("kerberos_fast_vs_mit_seal", "kerberos_fast_vs_mit_sign", "kerberos_mit_seal_vs_gss"):
    assert r[k] > 0, k
assert sorted((e["level"], e["size"]) for e in j["kerberos_mit"] if e["mb_s"] is not None) == \
       sorted((l, s) for l in ("sign", "seal") for s in sizes), j["kerberos_mit"]
assert sorted((e["level"], e["size"]) for e in j["openssl_limit"] if e["mb_s"] is not None) == \
       sorted((l, s) for l in ("sign", "seal") for s in sizes), j["openssl_limit"]
assert j["openssl_limit_enctype"] == 18
'
head -n 1 "$tmp/bench.csv" | grep -qx "section,mech,level,size_bytes,metric,value,unit,limit,ratio" ||
  fail "CSV header"
grep -q "^e2e,ntlm,seal,16384,cpu_per_gb," "$tmp/bench.csv" || fail "CSV: no ntlm seal row"
grep -q "^connections,kerberos,seal,,rss_per_connection," "$tmp/bench.csv" || fail "CSV: no RSS row"
grep -q "^tls,-,none,16384,throughput," "$tmp/bench.csv" || fail "CSV: no plain TLS row"
grep -q "^gss,kerberos-openssl,seal,16384,cpu_per_gb," "$tmp/bench.csv" || fail "CSV: no OpenSSL row"
grep -q "^e2e,kerberos-mit,seal,16384,cpu_per_gb," "$tmp/bench.csv" || fail "CSV: no MIT path row"
grep -Eq "^tls-negotiate,kerberos,none,16384,throughput,[0-9.e+]+,MB/s,[0-9.e+]+,[0-9.e+]+$" \
  "$tmp/bench.csv" || fail "CSV: no Kerberos-inside-TLS row with its ratio to seal"

# the JSON alone on stdout
run_status 0 "$negio" bench --only gss,tls --seconds 0.05 --json
check_json "$tmp/last.out" '
assert j["mode"] == "quick" and "ratios" in j
assert j["ratios"]["tls_negotiate_vs_seal"] is None   # no e2e section: nothing to divide by
assert len(j["tls"]) == 10 and all(e["mb_s"] > 0 for e in j["tls"]), j["tls"]'
echo "ok"
