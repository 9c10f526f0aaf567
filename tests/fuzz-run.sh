#!/bin/bash
# A bounded libFuzzer run of every fuzz target (tests/fuzz/), built with
# clang, AddressSanitizer (leaks checked) and UndefinedBehaviorSanitizer in
# build-fuzz/, each starting from its seed corpus in testdata/fuzz/ (copied:
# what the run finds stays in build-fuzz/). Fails on the first crash,
# sanitizer report or leak, naming the input that caused it; prints the
# executions per target.
#
# Usage: tests/fuzz-run.sh [SECONDS-PER-TARGET]   (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
targets=(superblock superblock-body part stock-superblock signed diff stock-part filez http objset)
if [ ! -f build-fuzz/build.ninja ]; then
  CC=clang meson setup build-fuzz -Dfuzzing=true -Db_sanitize=address,undefined -Db_lundef=false \
    -Dc_args=-fsanitize=fuzzer-no-link -Dwerror_strict=false >"${TMPDIR:-/tmp}/deltafetch-fuzz-setup.log" 2>&1 ||
    { cat "${TMPDIR:-/tmp}/deltafetch-fuzz-setup.log"; exit 1; }
fi
ninja -C build-fuzz "${targets[@]/#/tests/fuzz-}" >/dev/null
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
work=build-fuzz/fuzz-run
rm -rf "$work"
failed=0
for t in "${targets[@]}"; do
  mkdir -p "$work/$t/corpus" "$work/$t/crashes"
  cp testdata/fuzz/"$t"/* "$work/$t/corpus/"
  if build-fuzz/tests/fuzz-"$t" -max_total_time="$secs" -rss_limit_mb=2048 -max_len=262144 -timeout=10 \
    -artifact_prefix="$work/$t/crashes/" -print_final_stats=1 "$work/$t/corpus" >"$work/$t/log" 2>&1; then
    runs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$work/$t/log")
    echo "fuzz $t: ${runs:-?} executions in ${secs} s, no crash"
  else
    failed=1
    echo "fuzz $t: FAILED; input: $(ls "$work/$t/crashes"/* 2>/dev/null | head -1)"
    grep -E "ERROR|SUMMARY|runtime error|#0 |#1 |#2 |#3 " "$work/$t/log" | head -20
  fi
done
exit "$failed"
