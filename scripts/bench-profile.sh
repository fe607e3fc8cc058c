#!/usr/bin/env bash
# Profiles one end-to-end point of `negio bench` with perf: a negio server process and a client
# process streaming one message size at one level, each recorded separately, then the flat
# profile (self time per symbol) and the callers of the hottest symbols for each side.
#
#   scripts/bench-profile.sh [-b BUILD] [-o OUT] PATH LEVEL SIZE [SECONDS]
#     PATH   kerberos | ntlm | tcp (the plain libuv baseline; LEVEL is then ignored)
#     LEVEL  none | sign | seal
#     SIZE   message size in bytes
#   scripts/bench-profile.sh [-b BUILD] [-o OUT] handshake PATH [SECONDS]   (kerberos|negotiate-ntlm)
#
# Needs perf (Debian: linux-perf) and a realm in the environment (negio realm start DIR;
# . DIR/env). Reports go to OUT (default build/profile/...); perf.data files stay there too.
set -euo pipefail
build=build
out=
while getopts b:o: opt; do
  case $opt in
    b) build=$OPTARG ;;
    o) out=$OPTARG ;;
    *) exit 2 ;;
  esac
done
shift $((OPTIND - 1))
negio=$(cd "$build" && pwd)/negio
[ -x "$negio" ] || { echo "bench-profile: no $negio (build first)" >&2; exit 1; }
command -v perf >/dev/null || { echo "bench-profile: perf is missing (apt-get install linux-perf)" >&2; exit 1; }
[ -n "${NEGIO_REALM_DIR:-}" ] || { echo "bench-profile: no realm: negio realm start DIR; . DIR/env" >&2; exit 1; }

kind=${1:?usage: bench-profile.sh PATH LEVEL SIZE [SECONDS] | handshake PATH [SECONDS]}
if [ "$kind" = handshake ]; then
  path=${2:?path}; seconds=${3:-5}; name=handshake-$path
else
  path=$kind; level=${2:?level}; size=${3:?size}; seconds=${4:-5}; name=$path-$level-$size
fi
case ${level:-seal} in none) lv=0 ;; sign) lv=1 ;; seal) lv=2 ;; *) echo "bad level" >&2; exit 2 ;; esac
out=${out:-$build/profile/$name}
mkdir -p "$out"
out=$(cd "$out" && pwd)

# the children of `negio bench` are the same binary: "negio bench --child ROLE key=value ..."
srole=server; crole=stream
cargs=(path="$path" levels=$lv sizes="${size:-0}" seconds="$seconds")
if [ "$path" = tcp ]; then srole=tcpserver; crole=tcpstream; cargs=(sizes="$size" seconds="$seconds"); fi
if [ "$kind" = handshake ]; then crole=handshakes; cargs=(path="$path" parallel=32 seconds="$seconds"); fi

fifo=$out/server.stdin
rm -f "$fifo"; mkfifo "$fifo"
perf record -q -F 499 --call-graph dwarf,16384 -o "$out/server.data" -- "$negio" bench --child $srole \
  <"$fifo" >"$out/server.out" 2>"$out/server.err" &
rec=$!
exec 3>"$fifo"
port=
for _ in $(seq 1 100); do
  port=$(sed -n 's/^port port=\([0-9]*\).*/\1/p' "$out/server.out" 2>/dev/null | head -1)
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { echo "bench-profile: the server did not start (see $out/server.err)" >&2; exit 1; }
perf record -q -F 499 --call-graph dwarf,16384 -o "$out/client.data" -- "$negio" bench --child $crole port="$port" \
  "${cargs[@]}" </dev/null >"$out/client.out" 2>"$out/client.err"
exec 3>&-
wait $rec || true
rm -f "$fifo"

for side in client server; do
  # self time per symbol
  perf report -i "$out/$side.data" --no-children -g none --sort dso,sym --percent-limit 0.5 \
    --stdio 2>/dev/null | grep -v '^$' >"$out/$side.flat.txt" || true
  # where the self time of the hottest symbols comes from (callers, folded)
  perf report -i "$out/$side.data" --no-children --sort sym --percent-limit 2 --stdio \
    -g caller,0.5,callee,function,percent 2>/dev/null >"$out/$side.callers.txt" || true
  # inclusive time per symbol (children included)
  perf report -i "$out/$side.data" --children -g none --sort sym --percent-limit 1 --stdio \
    2>/dev/null | grep -v '^$' >"$out/$side.inclusive.txt" || true
done
echo "== client: $(grep -E '^(point|handshakes)' "$out/client.out" | head -3)"
echo "== client, self time (top)"; grep -E '^ +[0-9]' "$out/client.flat.txt" | head -25
echo "== server, self time (top)"; grep -E '^ +[0-9]' "$out/server.flat.txt" | head -25
echo "reports in $out"
