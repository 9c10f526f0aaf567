#!/bin/sh
# Installs what deltafetch needs to build and test on Debian 12, skipping
# what is already there. Run as root (apt-get); a no-op when all is present.
# python3-matplotlib draws the benchmark report's plots (benchmarks/plots.py),
# which the bench-smoke test checks.
set -eu
pkgs="meson ninja-build pkg-config gcc libc6-dev libostree-dev libglib2.0-dev libzstd-dev
libcurl4-openssl-dev libssl-dev liblzma-dev zlib1g-dev libjson-glib-dev libdivsufsort-dev ostree nginx-light attr python3 e2fsprogs curl openssl
clang libclang-rt-14-dev zstd xz-utils gzip python3-matplotlib gnupg"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing packages:$missing (run as root to install them)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
# nginx-light's package starts a system nginx on port 80; the tests run their own.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now nginx >/dev/null 2>&1 || true; fi
