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
# one version everywhere: include/negio/version.h, negio.pc, the SONAME, the CMake package
ver=$(sed -nE 's/^#define NEGIO_VERSION_(MAJOR|MINOR|PATCH) ([0-9]+)$/\2/p' "$src/include/negio/version.h" |
      paste -sd.)
[[ $ver =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "no version in version.h" >&2; exit 1; }
minor=${ver%.*}
test "$(pkg-config --modversion negio)" = "$ver"
test "$(pkg-config --modversion negio-uv)" = "$ver"
# pkg-config, shared libraries
cc -std=c11 -Wall -Werror -o "$tmp/inprocess" "$src/examples/inprocess.c" $(pkg-config --cflags --libs negio)
cc -std=c11 -D_GNU_SOURCE -Wall -Werror -o "$tmp/echo_server" "$src/examples/echo_server.c" \
   $(pkg-config --cflags --libs negio-uv)
# CMake package
mkdir -p "$tmp/consumer"
cat > "$tmp/consumer/CMakeLists.txt" <<CM
cmake_minimum_required(VERSION 3.25)
project(consumer C)
find_package(negio $minor REQUIRED)
add_executable(inprocess $src/examples/inprocess.c)
target_link_libraries(inprocess PRIVATE negio::negio)
add_executable(echo_server $src/examples/echo_server.c)
target_link_libraries(echo_server PRIVATE negio::negio_uv)
CM
cmake -S "$tmp/consumer" -B "$tmp/consumer/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/consumer/build" >/dev/null
# while the major is 0, each minor is its own ABI: the package for 0.2 does not stand in for 0.1
if [ "${ver%%.*}" = 0 ] && [ "${minor#*.}" -gt 0 ]; then
  older=0.$((${minor#*.} - 1))
  mkdir -p "$tmp/older"
  printf 'cmake_minimum_required(VERSION 3.25)\nproject(older C)\nfind_package(negio %s REQUIRED)\n' \
    "$older" > "$tmp/older/CMakeLists.txt"
  if cmake -S "$tmp/older" -B "$tmp/older/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null 2>&1; then
    echo "find_package(negio $older) accepted negio $ver" >&2
    exit 1
  fi
fi
# the version an application is compiled against is the one the library reports
cat > "$tmp/version.c" <<'C'
#include <negio/negio.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
    printf("%s\n", negio_version_string());
    return negio_version() == NEGIO_VERSION_NUMBER &&
                   strcmp(negio_version_string(), NEGIO_VERSION_STRING) == 0
               ? 0
               : 1;
}
C
cc -std=c11 -Wall -Werror -o "$tmp/version" "$tmp/version.c" $(pkg-config --cflags --libs negio)
# the installed copy works
bash "$src/scripts/realm.sh" start "$tmp/realm" >/dev/null
. "$tmp/realm/env"
libdir=$(dirname "$(find "$tmp/prefix" -name "libnegio.so.$minor" | head -n1)")
# SONAME libnegio.so.0.MINOR (and libnegio_uv.so.0.MINOR): docs/ARCHITECTURE.md section 17
readelf -d "$libdir/libnegio.so" | grep -q "Library soname: \[libnegio.so.$minor\]"
readelf -d "$libdir/libnegio_uv.so" | grep -q "Library soname: \[libnegio_uv.so.$minor\]"
test "$(LD_LIBRARY_PATH="$libdir" "$tmp/version")" = "$ver"
LD_LIBRARY_PATH="$libdir" "$tmp/inprocess" >/dev/null
LD_LIBRARY_PATH="$libdir" "$tmp/consumer/build/inprocess" >/dev/null
# the command and its man page, usable without the build tree
test -x "$tmp/prefix/bin/negio"
test -f "$tmp/prefix/share/man/man1/negio.1"
"$tmp/prefix/bin/negio" --version | grep -q '^negio '
"$tmp/prefix/bin/negio" client --help | grep -q -- '--connect'
echo "install test: negio $ver (SONAME libnegio.so.$minor); pkg-config and CMake consumers built and ran; negio and its man page installed"
