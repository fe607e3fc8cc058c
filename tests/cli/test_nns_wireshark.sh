#!/usr/bin/env bash
# The [MS-NNS] profile on the wire as Wireshark's own dissector for it reads it (Debian's tshark,
# its "ms-nns" dissector bound to the server's port): negio client and echo server on every
# mechanism path (kerberos, negotiate->kerberos, negotiate->ntlm, ntlm) at every stream level,
# captured on loopback by dumpcap. Every segment the dissector is given must be one [MS-NNS]
# message: a handshake message (its GSS-API, SPNEGO, Kerberos or NTLMSSP sub-dissector parsing the
# token) or a data message whose PayloadSize is the rest of the segment, with nothing malformed,
# no unknown MessageId and no dissector error. At level none the spec frames nothing after the
# handshake (2.2.2): those segments must hold the application's bytes as they are.
#
# Two limits of that dissector shape the test: tshark 4.0 registers it for .NET Message Framing
# only, not for "Decode As" (a two-line Lua script adds it to the tcp.port table, which is what
# Decode As does); and it reads one message per segment, so the messages are small enough for one
# segment each (the echo exchange sends one at a time). Large writes, split into several data
# messages, are proved in tests/conformance/test_nns.c.
#
# Capturing needs root or dumpcap's capabilities (CI runs as root); without tshark, dumpcap or the
# right to capture, the test says so and is skipped (status 77).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

skip() {
  echo "SKIP: $*"
  exit 77
}
command -v tshark >/dev/null || skip "tshark is not installed (scripts/deps.sh installs it)"
command -v dumpcap >/dev/null || skip "dumpcap is not installed (package wireshark-common)"

start_realm
# a server that requires seal, to refuse a signed stream with a HandshakeError
start_server strict --profile nns --echo --min-protect seal
strict=$server_pid
strict_port=$port
start_server nns --profile nns --echo --min-protect none
server=$server_pid

dumpcap -i lo -f "tcp port $port or tcp port $strict_port" -w "$tmp/nns.pcapng" -q \
  2>"$tmp/dumpcap.err" &
capture=$!
servers+=("$capture")
for _ in $(seq 1 100); do
  grep -q "Capturing on" "$tmp/dumpcap.err" 2>/dev/null && break
  kill -0 "$capture" 2>/dev/null || skip "no capture on loopback: $(cat "$tmp/dumpcap.err")"
  sleep 0.05
done
grep -q "Capturing on" "$tmp/dumpcap.err" || skip "dumpcap did not start: $(cat "$tmp/dumpcap.err")"

# the cases, in the order of their TCP streams: path, level, client options
medium=$(head -c 1000 /dev/zero | tr '\0' 'm')
large=$(head -c 8000 /dev/zero | tr '\0' 'L')
cases=()
for level in seal sign none; do
  for path in kerberos neg-kerberos neg-ntlm ntlm; do
    case $path in
      kerberos) opts=(--mech kerberos) ;;
      neg-kerberos) opts=(--mech negotiate) ;;
      neg-ntlm) opts=(--mech negotiate) ;;
      ntlm) opts=(--mech ntlm) ;;
    esac
    env=()
    [ "$path" = neg-ntlm ] && env=(KRB5CCNAME=FILE:/nonexistent)
    run_status 0 env "${env[@]}" "$negio" client --profile nns --connect "127.0.0.1:$port" \
      --json --timeout 20 --protect "$level" --min-protect "$level" "${opts[@]}" \
      hello "$medium" "$large"
    check_json "$tmp/last.out" "
assert j['ok'], j
assert [m['reply'] for m in j['messages']] == ['hello', '$medium', '$large'], j
"
    cases+=("$path/$level")
  done
done
# refused: ERROR_TRUST_FAILURE in a HandshakeError (the last stream). SPNEGO over NTLM: after a
# raw NTLM client's HandshakeDone the dissector takes every later segment for data, a server's
# HandshakeError too
KRB5CCNAME=FILE:/nonexistent run_status 1 "$negio" client --profile nns \
  --connect "127.0.0.1:$strict_port" --json --timeout 20 --protect sign --min-protect sign hello
check_json "$tmp/last.out" "assert j['error'] == 'NEGIO_ERR_POLICY' and 'ERROR_TRUST_FAILURE' in j['detail'], j"
cases+=("neg-ntlm/refused")

# the kernel hands packets to dumpcap in blocks: wait until every session's end is in the file
for _ in $(seq 1 200); do
  # the file is still being written: tshark exits 2 on its cut last packet, which is no error here
  ended=$({ tshark -r "$tmp/nns.pcapng" -Y "tcp.flags.fin == 1" -T fields -e tcp.stream 2>/dev/null ||
            true; } | sort -u | wc -l)
  [ "$ended" -ge "${#cases[@]}" ] && break
  sleep 0.05
done
kill -INT "$capture"
status=0; wait "$capture" || status=$?
[ "$status" -eq 0 ] || fail "dumpcap exited $status: $(cat "$tmp/dumpcap.err")"
stop_server "$server"
stop_server "$strict"

cat >"$tmp/nns-port.lua" <<'EOF'
for port in string.gmatch(os.getenv("NNS_PORTS"), "%d+") do
  DissectorTable.get("tcp.port"):add(tonumber(port), Dissector.get("ms-nns"))
end
EOF
NNS_PORTS="$port $strict_port" tshark -X "lua_script:$tmp/nns-port.lua" -r "$tmp/nns.pcapng" -T fields \
  -E separator=/t -E occurrence=a -E aggregator=, \
  -e tcp.stream -e tcp.srcport -e tcp.len -e frame.protocols -e _ws.col.Info \
  -e ms-nns.message_id -e ms-nns.major_version -e ms-nns.minor_version \
  -e ms-nns.auth_payload_size -e ms-nns.payload_size -e _ws.malformed -e _ws.expert.severity \
  -e tcp.payload >"$tmp/frames.tsv" 2>"$tmp/tshark.err" || fail "tshark: $(cat "$tmp/tshark.err")"

python3 - "$tmp/frames.tsv" "$port $strict_port" "${cases[*]}" "$(printf hello | od -An -tx1 | tr -d ' \n')" <<'PY' ||
import sys
frames_file, cases, hello_hex = sys.argv[1], sys.argv[3].split(), sys.argv[4]
ports = [int(p) for p in sys.argv[2].split()]
PI_ERROR = 0x00800000
streams = {}
for line in open(frames_file):
    f = line.rstrip("\n").split("\t")
    stream, sport, tlen, protos, info, mid, major, minor, asize, psize, malformed, sev, payload = f
    if int(tlen or 0) == 0:
        continue
    streams.setdefault(int(stream), []).append(dict(
        from_server=int(sport) in ports, len=int(tlen), protos=protos.split(":"), info=info,
        mid=mid, major=major, minor=minor, asize=asize, psize=psize, malformed=malformed,
        sev=[int(s) for s in sev.split(",") if s], payload=payload))
problems = []
assert sorted(streams) == list(range(len(cases))), (sorted(streams), cases)
for n, case in enumerate(cases):
    path, level = case.split("/")
    frames = streams[n]
    def bad(i, why):
        problems.append(f"{case} segment {i} ({frames[i]['info']!r}): {why}")
    if level == "refused":
        # the client's NEGOTIATE and AUTHENTICATE, the server's CHALLENGE, then its refusal
        want = ["22", "22", "22", "21"]
        if [fr["mid"] for fr in frames] != want:
            problems.append(f"{case}: MessageIds {[fr['mid'] for fr in frames]}, expected {want}")
        elif frames[-1]["asize"] != "8" or frames[-1]["payload"][-16:] != "fe060000000006fe":
            bad(len(frames) - 1, "not ERROR_TRUST_FAILURE in 8 bytes")
        for j, fr in enumerate(frames):
            if fr["malformed"] or any(s >= PI_ERROR for s in fr["sev"]):
                bad(j, "malformed")
        continue
    # the handshake: every segment up to the last HandshakeDone of each side
    done = {True: False, False: False}
    i = 0
    while i < len(frames) and not (done[True] and (done[False] or path in ("kerberos", "neg-kerberos", "neg-ntlm"))):
        fr = frames[i]
        if "ms-nns" not in fr["protos"] or fr["mid"] not in ("20", "21", "22"):
            bad(i, "not a handshake message")
        elif fr["major"] != "1" or fr["minor"] != "0":
            bad(i, "version not 1.0")
        elif int(fr["asize"] or 0) != fr["len"] - 5:
            bad(i, f"AuthPayload size {fr['asize']} for {fr['len']} bytes")
        elif fr["asize"] not in ("", "0") and not (
                "gss-api" in fr["protos"] and
                {"spnego", "spnego-krb5", "kerberos", "ntlmssp"} & set(fr["protos"])):
            bad(i, f"token not parsed by a GSS-API sub-dissector: {fr['protos']}")
        if fr["mid"] == "20":
            done[fr["from_server"]] = True
        i += 1
    if not done[True]:
        problems.append(f"{case}: no HandshakeDone from the server")
    # SPNEGO asks NTLM for integrity whatever the client asks: at none that stream is signed
    stream_level = "sign" if (path, level) == ("neg-ntlm", "none") else level
    for j, fr in enumerate(frames):
        if stream_level == "none" and j >= i:
            continue  # unframed bytes, which the dissector reads as data messages all the same
        if fr["malformed"]:
            bad(j, "malformed")
        if any(s >= PI_ERROR for s in fr["sev"]) or "Dissector bug" in fr["info"]:
            bad(j, f"expert error {fr['sev']}")
        if "Unknown Record" in fr["info"]:
            bad(j, "unknown MessageId")
    data = frames[i:]
    if len(data) != 6:
        problems.append(f"{case}: {len(data)} data segments, expected 6 (3 messages and 3 echoes)")
    for j, fr in enumerate(data, i):
        if stream_level == "none":
            # unframed: the application's bytes themselves (the dissector reads them as data
            # messages anyway, which [MS-NNS] 2.2.2 says they are not)
            if j in (i, i + 1) and fr["payload"].replace(":", "") != hello_hex:
                bad(j, "at level none the bytes are not the application's own")
            continue
        if "ms-nns" not in fr["protos"] or fr["info"] != "Data":
            bad(j, "not a data message")
        elif int(fr["psize"] or -1) != fr["len"] - 4:
            bad(j, f"PayloadSize {fr['psize']} for {fr['len']} bytes")
        elif not 16 <= int(fr["psize"]) <= 0xFC30:
            bad(j, f"PayloadSize {fr['psize']} out of range")
if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
print(f"ok: {sum(len(s) for s in streams.values())} segments of {len(cases)} sessions decoded")
PY
  fail "Wireshark's MS-NNS dissector disagrees (above); frames in $tmp/frames.tsv"
