#!/bin/bash
# The aarch64 build and its fast test suite under qemu-user: installs Debian's
# cross compiler, qemu-user and the arm64 -dev packages (multiarch, next to
# the amd64 ones), cross-builds in build-aarch64/ (cross/aarch64-linux-gnu.ini)
# and runs `meson test --suite fast` there. The programs under test (the CLI,
# df-gen-tree, the test tools, the C tests) are the aarch64 ones, run by
# qemu-aarch64: meson starts the C tests through the cross file's
# exe_wrapper, and the shell tests exec "$DF" directly, which binfmt_misc
# hands to qemu (registered here when it is not already). Their peers, the
# ostree CLI, nginx, curl and python3, stay native.
#
# Usage: tests/cross-run.sh [meson test arguments...]
#   (default: --suite fast --timeout-multiplier 2)
# Run as root when packages are missing or binfmt_misc needs registering.
set -euo pipefail
cd "$(dirname "$0")/.."
build="build-aarch64"
cross=cross/aarch64-linux-gnu.ini
log=${TMPDIR:-/tmp}/deltafetch-cross
mkdir -p "$log"
die () { echo "cross-run: $*" >&2; exit 1; }
phase_start=$SECONDS
phase () { echo "cross-run: $1 in $((SECONDS - phase_start)) s"; phase_start=$SECONDS; }

# --- packages ---------------------------------------------------------------
# The native tools the tests use (ostree, nginx, python3...) come from the
# project's own list; the arm64 list mirrors meson.build's dependencies.
tests/install-deps.sh --tests
host_pkgs="gcc-aarch64-linux-gnu qemu-user"
arm64_pkgs="libc6-dev libglib2.0-dev libostree-dev libzstd-dev libcurl4-openssl-dev libssl-dev liblzma-dev zlib1g-dev
libjson-glib-dev libdivsufsort-dev"
installed () { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=""
for p in $host_pkgs; do installed "$p" || missing="$missing $p"; done
for p in $arm64_pkgs; do installed "$p:arm64" || missing="$missing $p:arm64"; done
if [ -n "$missing" ]; then
  [ "$(id -u)" = 0 ] || die "missing packages:$missing (run as root to install them)"
  dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq -o DPkg::Lock::Timeout=600 </dev/null
  # Multi-Arch: same libraries must carry one version on both architectures,
  # so apt may upgrade an amd64 library along with its arm64 twin.
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 $missing </dev/null >"$log/apt.log" 2>&1 ||
    { tail -20 "$log/apt.log" >&2; die "apt-get install failed (full log: $log/apt.log)"; }
fi
phase "packages"

# --- can this host run aarch64 programs? -------------------------------------
# A shell test runs "$DF ..." as a command, so the kernel itself must hand
# aarch64 ELF files to qemu: binfmt_misc. The probe is a real program linked
# against the arm64 libc, so it also checks the multiarch loader.
cat >"$log/probe.c" <<'EOF'
int main (void) { return 0; }
EOF
aarch64-linux-gnu-gcc -o "$log/probe" "$log/probe.c" || die "aarch64-linux-gnu-gcc cannot link a program"
qemu-aarch64 -L / "$log/probe" || die "qemu-aarch64 cannot run an aarch64 program (libc6:arm64 missing?)"
if ! "$log/probe" 2>/dev/null; then
  bm=/proc/sys/fs/binfmt_misc
  [ "$(id -u)" = 0 ] || die "this host does not run aarch64 programs directly and only root can register binfmt_misc"
  [ -e "$bm/register" ] || mount -t binfmt_misc binfmt_misc "$bm" 2>/dev/null ||
    die "binfmt_misc cannot be mounted at $bm, so the shell tests cannot run aarch64 programs"
  echo 1 2>/dev/null >"$bm/status" || die "binfmt_misc cannot be enabled ($bm/status), so the shell tests cannot run aarch64 programs"
  # An entry of that name (binfmt-support, qemu-user-static) may be disabled
  # or point at an interpreter that is gone: enable it, else replace it.
  if [ -e "$bm/qemu-aarch64" ]; then
    echo 1 >"$bm/qemu-aarch64" 2>/dev/null || true
    "$log/probe" 2>/dev/null || echo -1 >"$bm/qemu-aarch64" 2>/dev/null || true
  fi
  if [ ! -e "$bm/qemu-aarch64" ]; then
    # ELF64, little-endian, version 1, any OS ABI, ET_EXEC or ET_DYN, EM_AARCH64 (0xb7).
    magic='\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
    mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
    printf '%s' ":qemu-aarch64:M::$magic:$mask:$(command -v qemu-aarch64):" >"$bm/register" 2>/dev/null ||
      die "binfmt_misc refused the qemu-aarch64 registration, so the shell tests cannot run aarch64 programs"
  fi
  "$log/probe" 2>/dev/null || die "aarch64 programs still do not run through binfmt_misc ($bm/qemu-aarch64)"
fi
phase "binfmt_misc check"

# --- build ----------------------------------------------------------------------
# A build-aarch64/ that is not a cross build (or is broken) is made anew.
if [ -f "$build/build.ninja" ] && grep -q '"cpu_family": "aarch64"' "$build/meson-info/intro-machines.json" 2>/dev/null; then
  meson setup --reconfigure "$build" >"$log/setup.log" 2>&1 || { cat "$log/setup.log" >&2; die "meson setup --reconfigure failed"; }
else
  rm -rf "$build"
  meson setup --cross-file "$cross" "$build" >"$log/setup.log" 2>&1 || { cat "$log/setup.log" >&2; die "meson setup failed"; }
fi
meson compile -C "$build" >"$log/compile.log" 2>&1 || { tail -40 "$log/compile.log" >&2; die "cross compile failed (full log: $log/compile.log)"; }
# The binary under test must be the aarch64 one (e_machine at offset 18 is 0xb7).
[ "$(od -An -tx1 -j18 -N2 "$build/cli/deltafetch" | tr -d ' ')" = b700 ] || die "$build/cli/deltafetch is not an aarch64 program"
phase "configure and compile"

# --- tests ------------------------------------------------------------------------
# tests/fetch.sh builds examples/update-agent.c with $CC and pkg-config
# against the installed library and runs it: here that library is the
# aarch64 one, so $CC is the cross compiler and pkg-config reads the arm64
# .pc files.
export CC=aarch64-linux-gnu-gcc PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig
# Emulated, the suite takes 1.3 to 2 times as long as natively (much of it
# is the native ostree CLI): twice the native timeouts leaves room.
# fetch-hostile-stock runs fetch-hostile's HTTP faults again against a
# stock server: nothing architecture-dependent that fetch-hostile and
# stock-fetch do not cover, and 5 minutes under emulation; left out here.
# recipe, deflate and transform run compressors and the deflate model
# over several MiB (45 s, 33 s and more of CPU natively, several minutes
# each emulated); what matters across machines, that what the build
# server found rebuilds the same bytes on the device, is rebuild-cross's
# test: deltas made by the native build, applied here.
# pull, plan, agent and booted drive the same fetch and apply paths the
# other fast tests run here through remotes, plans and an agent (about 3
# minutes natively, twice that emulated; booted chroots into a deployment
# with the host's /usr): their code is C that the native and the
# sanitizer runs check; left out here to keep CI within its time.
# fetch-hostile (3 minutes emulated) and signals (1.5) are about timeouts,
# slow servers and signal delivery, which here would judge qemu's timing
# and signal emulation more than the aarch64 code; their HTTP parsing runs
# here in the http, downloader and fuzz-http tests, the fetch paths in
# fetch and stock-fetch.
# generate-many, repo-manage, key-rotation, publish-order and fan-out
# drive the build server's side (generating many deltas, listing,
# pruning, signing, merging, publishing), which runs natively on build
# servers and is checked there and under the sanitizers; what crosses
# machines, the deltas themselves, is rebuild-cross's. determinism (165 s
# emulated) compares generator runs with other job counts and part sizes
# on one machine: the same C on every architecture, checked natively.
# stock-generate (50 s emulated) times libostree's own generator, whose
# deltas stock-apply, stock-fetch and stock-pull read here. sign (97 s
# emulated) is mostly the build server's signing and re-signing; a
# device's side of it, checking an envelope's ed25519 signatures with
# OpenSSL, runs here in stock-apply and fuzz-signed.
if [ $# -eq 0 ]; then
  mapfile -t fast < <(meson test -C "$build" --no-rebuild --list --suite fast 2>/dev/null | grep ' / ' | sed 's|.* / ||' |
    grep -vxe fetch-hostile-stock -e recipe -e deflate -e transform -e pull -e plan -e agent -e booted \
      -e fetch-hostile -e signals -e generate-many -e repo-manage -e key-rotation -e publish-order -e fan-out \
      -e stock-generate -e sign -e determinism)
  set -- --timeout-multiplier 2 "${fast[@]}"
fi
# rebuild-cross applies here what the build machine's generator made.
[ -x build/cli/deltafetch ] && export DF_GENERATOR=$PWD/build/cli/deltafetch
rc=0
meson test -C "$build" --no-rebuild --print-errorlogs "$@" || rc=$?
phase "meson test"
results=$(grep -o '"result": "[A-Z]*"' "$build/meson-logs/testlog.json" | cut -d'"' -f4 || true)
count () { printf '%s\n' "$results" | grep -cxE "$1" || true; }
echo "cross-run: aarch64 under qemu-user, elapsed $SECONDS s"
echo "aarch64: $(count 'OK|EXPECTEDFAIL') passed, $(count 'FAIL|UNEXPECTEDPASS|TIMEOUT|ERROR') failed, $(count SKIP) skipped"
exit "$rc"
