#!/bin/bash
# The device build: `meson setup -Dgenerate=false` builds the library and
# the CLI without the generate room and without libdivsufsort, and keeps
# the whole public API (df_generate() says the generator was left out).
# Built unoptimized (-Dbuildtype=plain) in a directory of its own: only
# whether it compiles, links and exports is judged here.
. "$(dirname "$0")/lib.sh"
b=$T/device
if meson setup "$b" "$DF_SRCDIR" -Dgenerate=false -Dbuildtype=plain >"$T/setup.log" 2>&1 &&
  meson compile -C "$b" >"$T/compile.log" 2>&1; then
  ok "meson setup -Dgenerate=false and compile"
else
  not_ok "meson setup -Dgenerate=false and compile"
  tail -20 "$T/setup.log" "$T/compile.log" | sed 's/^/# /'
  finish
  exit 1
fi
lib=$b/engine/libdeltafetch.so
check "the device library does not link libdivsufsort" bash -c "! ldd '$lib' | grep -q divsufsort"
check "the device library has no generate room" bash -c "! nm '$lib' | grep -q 'dfi_bsdiff\\|dfi_gen_'"
check_exports "$lib"
ostree init --repo="$T/repo" --mode=archive
expect_exit 2 "deltafetch generate says the generator was left out" "$b/cli/deltafetch" generate --repo="$T/repo" \
  --empty --to=x
check "the message says -Dgenerate=false" grep -q "without the generator (meson -Dgenerate=false)" "$T/ee.err"
check "the device CLI runs (--version)" bash -c "'$b/cli/deltafetch' --version | grep -q '^deltafetch '"
finish
