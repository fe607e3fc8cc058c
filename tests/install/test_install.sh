#!/usr/bin/env bash
# make install works: the installed headers, libraries, negio.pc / negio-uv.pc and CMake package
# build the examples, and the in-process example runs against a throwaway realm.
set -euo pipefail
src=${1:?source dir}; build=${2:?build dir}
tmp=$(mktemp -d /tmp/negio-install-XXXXXX)
trap 'bash "$src/scripts/realm.sh" stop "$tmp/realm" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig:$tmp/prefix/lib/x86_64-linux-gnu/pkgconfig"
pkg-config --exists negio negio-uv
# pkg-config, shared libraries
cc -std=c11 -Wall -Werror -o "$tmp/inprocess" "$src/examples/inprocess.c" $(pkg-config --cflags --libs negio)
cc -std=c11 -D_GNU_SOURCE -Wall -Werror -o "$tmp/echo_server" "$src/examples/echo_server.c" \
   $(pkg-config --cflags --libs negio-uv)
# CMake package
mkdir -p "$tmp/consumer"
cat > "$tmp/consumer/CMakeLists.txt" <<CM
cmake_minimum_required(VERSION 3.25)
project(consumer C)
find_package(negio 0.1 REQUIRED)
add_executable(inprocess $src/examples/inprocess.c)
target_link_libraries(inprocess PRIVATE negio::negio)
add_executable(echo_server $src/examples/echo_server.c)
target_link_libraries(echo_server PRIVATE negio::negio_uv)
CM
cmake -S "$tmp/consumer" -B "$tmp/consumer/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/consumer/build" >/dev/null
# the installed copy works
bash "$src/scripts/realm.sh" start "$tmp/realm" >/dev/null
. "$tmp/realm/env"
libdir=$(dirname "$(find "$tmp/prefix" -name 'libnegio.so.0' | head -n1)")
LD_LIBRARY_PATH="$libdir" "$tmp/inprocess" >/dev/null
LD_LIBRARY_PATH="$libdir" "$tmp/consumer/build/inprocess" >/dev/null
# the command and its man page, usable without the build tree
test -x "$tmp/prefix/bin/negio"
test -f "$tmp/prefix/share/man/man1/negio.1"
"$tmp/prefix/bin/negio" --version | grep -q '^negio '
"$tmp/prefix/bin/negio" client --help | grep -q -- '--connect'
echo "install test: pkg-config and CMake consumers built and ran; negio and its man page installed"
