#!/bin/bash
# The whole test suite again, built with AddressSanitizer (leaks checked)
# and UndefinedBehaviorSanitizer (any report fails) in build-asan/. Peak-RSS
# bounds are not judged there (DF_SANITIZED): ASan's shadow memory inflates
# them; the plain build judges them.
#
# Usage: tests/sanitize-run.sh [meson test arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f build-asan/build.ninja ]; then
  meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false >"${TMPDIR:-/tmp}/deltafetch-asan-setup.log" 2>&1 ||
    { cat "${TMPDIR:-/tmp}/deltafetch-asan-setup.log"; exit 1; }
fi
meson compile -C build-asan >/dev/null
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export DF_SANITIZED=1
# The kill loops are about crash consistency, which the plain build's 30
# kills (and 20 restarts at once) judge; here fewer kills still run every
# path under the sanitizers, and keep CI within its time.
export DF_KILLS=${DF_KILLS:-8} DF_KILLS_AT_ONCE=${DF_KILLS_AT_ONCE:-4} DF_PULL_KILLS=${DF_PULL_KILLS:-4}
# Likewise the big file, when big-file is run here by name (the default
# list leaves it out, below): its memory bound is judged by the plain
# build (not here, DF_SANITIZED); a 256 MiB file still spans several
# parts and every streaming path, in a quarter of the time.
export DF_BIG_FILE_SIZE=${DF_BIG_FILE_SIZE:-268435456}
# forged.sh's declared-size attack, for the same reason, declares 512 MiB
# here instead of 2 GiB (it reads DF_SANITIZED).
# The sanitizers run the suite about twice as slowly: twice the timeouts.
# Left out here: the benchmarks' smoke test (suite bench: scripts and
# reports, which the plain build checks), and the tests whose time goes
# into the compressors' own loops at high levels (recipe, deflate's
# streams, transform's kinds): their parsers and our code in them run
# under the sanitizers in their fuzz targets and in rebuild-cross;
# device-build, a build of its own that runs nothing; and
# fetch-hostile-stock, fetch-hostile's HTTP faults again against a stock
# server (4.5 minutes here): the stock parsers run under the sanitizers in
# stock-apply, stock-fetch, forged and their fuzz targets, the fault
# handling in fetch-hostile; generate-many (many deltas in one run,
# kept when current: the same C paths run here in fan-out and
# key-rotation, with fewer trees); and, to keep CI within its time, three
# that repeat plain-run judgements with paths other tests run here:
# big-file (its memory bound is the plain build's; the streaming of large
# objects runs in forged and stock-apply), determinism (byte comparisons
# of generator runs; the generator runs here in roundtrip, sign and
# fan-out) and kill-fetch-stock (crash consistency, judged by the plain
# run's 30 kills; kill-fetch runs the kill paths here).
if [ $# -eq 0 ]; then
  mapfile -t tests < <(meson test -C build-asan --no-rebuild --list --no-suite bench 2>/dev/null | grep ' / ' |
    sed 's|.* / ||' | grep -vxe recipe -e deflate -e transform -e device-build -e fetch-hostile-stock -e generate-many \
      -e big-file -e determinism -e kill-fetch-stock)
  set -- "${tests[@]}"
fi
meson test -C build-asan --print-errorlogs --timeout-multiplier 2 "$@"
