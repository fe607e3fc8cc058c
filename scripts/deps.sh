#!/usr/bin/env bash
# Install the Debian 12 packages needed to build and test negio (idempotent).
# make check needs all of them: clang-14 and libclang-rt-14-dev (libFuzzer and the sanitizer
# runtimes) build the fuzz targets of check-fuzz; llvm-14 brings llvm-symbolizer-14, which clang's
# sanitizers use to name the functions in a report (scripts/fuzz.sh --self-test looks for
# negio_config_new in a leak report; clang-14 only recommends it, through llvm-14-dev); valgrind
# (which pulls in libc6-dbg) runs check-valgrind; python3 reads CTest's test list there;
# abigail-tools (abidw, abidiff) runs check-abi. Outside make check, make coverage uses clang-14's
# profile runtime (libclang-rt-14-dev) and llvm-14's llvm-profdata-14 and llvm-cov-14, and python3
# for its tables and tests/fuzz/hand_seeds.py. tshark (with dumpcap, from wireshark-common) reads the
# [MS-NNS] profile's captures with Wireshark's own dissector (tests/cli/test_nns_wireshark.sh).
# negio tunnel reads its config file with libinih (libinih-dev); its tests run real software
# behind and in front of it (redis-server and redis-tools, nginx, haproxy), and negio bench
# compares it with stunnel (stunnel4). Installing redis-server and nginx tries to start their
# system services; that is harmless (refused in containers), and the tests start their own on
# loopback. gdb forces a thread order in tests/cli/test_tunnel_connect_race.sh (it holds one thread
# while another runs).
set -euo pipefail

pkgs=(
  build-essential cmake pkg-config clang-format
  libkrb5-dev krb5-kdc krb5-admin-server krb5-user krb5-gss-samples
  gss-ntlmssp gss-ntlmssp-dev
  libuv1-dev libssl-dev openssl libcmocka-dev
  clang-14 libclang-rt-14-dev llvm-14 valgrind python3 abigail-tools
  libuid-wrapper libnss-wrapper
  openjdk-17-jdk-headless
  gnuplot-nox
  tshark
  libinih-dev
  redis-server redis-tools nginx haproxy stunnel4
  gdb
)

missing=()
for p in "${pkgs[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  case "$status" in
    *"install ok installed"*) ;;
    *) missing+=("$p") ;;
  esac
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#pkgs[@]} packages present"
  exit 0
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
fi

echo "deps: installing ${missing[*]}"
$SUDO apt-get update
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" </dev/null
