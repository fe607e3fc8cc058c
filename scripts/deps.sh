#!/usr/bin/env bash
# Install the Debian 12 packages needed to build and test negio (idempotent).
set -euo pipefail

pkgs=(
  build-essential cmake pkg-config
  libkrb5-dev krb5-kdc krb5-admin-server krb5-user krb5-gss-samples
  gss-ntlmssp gss-ntlmssp-dev
  libuv1-dev libssl-dev libcmocka-dev
  clang-14 libclang-rt-14-dev valgrind python3
  libuid-wrapper libnss-wrapper
  openjdk-17-jdk-headless
  gnuplot-nox
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
