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
# The kill loops are about crash consistency, which the plain build's 50
# kills (and 20 restarts at once) judge; here fewer kills still run every
# path under the sanitizers, and keep CI within its time.
export DF_KILLS=${DF_KILLS:-20} DF_KILLS_AT_ONCE=${DF_KILLS_AT_ONCE:-8}
# The sanitizers run the suite about twice as slowly: twice the timeouts.
# The benchmarks' smoke test (suite bench) checks scripts and reports, which
# the plain build does; it is left out here.
[ $# -gt 0 ] || set -- --no-suite bench
meson test -C build-asan --print-errorlogs --timeout-multiplier 2 "$@"
