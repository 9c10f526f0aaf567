#!/bin/sh
# Installs what deltafetch needs on Debian 12, skipping what is already there.
# Run as root (apt-get); a no-op when all is present.
#
# Usage: tests/install-deps.sh [--tests]
#   without --tests: what building deltafetch and running the built-in
#     example (testdata/example.sh) need: compiler, meson, the libraries'
#     -dev packages, the ostree CLI, nginx (any flavour already installed
#     will do) and attr;
#   --tests: also what only the test suite needs: clang and its fuzzer
#     runtime, the compressor CLIs, gnupg, curl, openssl, e2fsprogs and
#     python3-matplotlib (benchmarks/plots.py, checked by bench-smoke).
#     tests/cross-run.sh adds its own (the cross compiler, qemu-user, the
#     arm64 libraries).
#
# It never stops, disables or restarts a service. A machine that already
# runs nginx (a build server serving its repository) keeps it running; when
# this script installs nginx itself, the package's own start of the system
# nginx (port 80) is held back for that install with a policy-rc.d, so a
# busy port 80 cannot fail the install, and nothing else is touched. The
# tests start nginx on their own loopback ports.
#
# For the tests: DF_DPKG_QUERY, DF_APT_GET and DF_POLICY_RC_D replace
# dpkg-query, apt-get and /usr/sbin/policy-rc.d (tests/install-deps-check.sh).
set -eu
tests=no
for a in "$@"; do
  case $a in
  --tests) tests=yes ;;
  *) echo "install-deps: unknown argument '$a' (usage: tests/install-deps.sh [--tests])" >&2; exit 2 ;;
  esac
done
dpkg_query=${DF_DPKG_QUERY:-dpkg-query}
apt_get=${DF_APT_GET:-apt-get}
policy=${DF_POLICY_RC_D:-/usr/sbin/policy-rc.d}

pkgs="meson ninja-build pkg-config gcc libc6-dev libostree-dev libglib2.0-dev libzstd-dev
libcurl4-openssl-dev libssl-dev liblzma-dev zlib1g-dev libjson-glib-dev libdivsufsort-dev ostree attr"
if [ "$tests" = yes ]; then
  pkgs="$pkgs clang libclang-rt-14-dev zstd xz-utils gzip python3 python3-matplotlib gnupg curl openssl e2fsprogs"
fi
# Installed for this machine's architecture (or for all): an arm64 twin
# that tests/cross-run.sh installed does not count.
arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
installed () {
  $dpkg_query -W -f='${Status} ${Architecture}\n' "$1" 2>/dev/null | grep -qE "^install ok installed ($arch|all)\$"
}
missing=""
for p in $pkgs; do
  installed "$p" || missing="$missing $p"
done
# Any nginx flavour will do (nginx, nginx-light, -full, -extras): asking
# for nginx-light where nginx-full serves a repository would replace it.
nginx_new=yes
for p in nginx-light nginx-full nginx-extras nginx-core nginx; do
  installed "$p" && nginx_new=no
done
[ "$nginx_new" = yes ] && missing="$missing nginx-light"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing packages:$missing (run as root to install them)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Only when this install brings nginx and no policy-rc.d exists: deny the
# start of "nginx" (exit 101, invoke-rc.d's "action forbidden") and allow
# everything else; removed again however the install ends.
if [ "$nginx_new" = yes ] && [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# written by deltafetch tests/install-deps.sh for one apt-get install\ncase $1 in nginx | nginx.service) exit 101 ;; esac\nexit 0\n' >"$policy"
  chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT INT TERM
fi
$apt_get update -qq
# shellcheck disable=SC2086
$apt_get install -y -qq --no-install-recommends $missing >/dev/null
