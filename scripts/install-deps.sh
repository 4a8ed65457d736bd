#!/usr/bin/env bash
# Install what spatc needs to build and test, on Debian 12, with apt-get.
# Installs only what is missing; safe to run again. Needs root (or sudo).
set -euo pipefail

pkgs=(make gcc pkg-config flex bison llvm-19-dev clang-19 libclang-rt-19-dev libffi-dev
      libcmocka-dev libopenblas-dev python3 python3-numpy python3-pytest python3-venv libzstd-dev
      zlib1g-dev libxml2-dev libedit-dev time groff-base)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
    missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
