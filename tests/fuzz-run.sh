#!/bin/bash
# A bounded libFuzzer run of every fuzz target (tests/fuzz/), built with
# clang, AddressSanitizer (leaks checked) and UndefinedBehaviorSanitizer in
# build-fuzz/, each starting from its seed corpus in testdata/fuzz/ (copied:
# what the run finds stays in build-fuzz/). Fails on the first crash,
# sanitizer report or leak, naming the input that caused it; prints the
# executions per target.
#
# Each target runs under its own limits from tests/fuzz/limits (measured
# there): libFuzzer's -rss_limit_mb (peak RSS, and the largest single
# allocation) and -timeout (seconds per input), so that work quadratic in
# an input's entries or memory unbounded by them fails the run as a
# timeout or out-of-memory on the attack seeds. ASan's quarantine of freed
# memory is held to QUARANTINE_MB so that the peak RSS measures what the
# target holds, not what it freed.
#
# Usage: tests/fuzz-run.sh [SECONDS-PER-TARGET]   (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
QUARANTINE_MB=32
echo "fuzz run: ${secs} s per target, -max_len=262144, ASan quarantine ${QUARANTINE_MB} MB, limits from tests/fuzz/limits"
targets=(superblock superblock-body part stock-superblock signed diff stock-part filez http objset detect recipe deflate rebuild)
declare -A rss_limit timeout
while read -r name rss secs_per_input _; do
  case "$name" in '' | '#'*) continue ;; esac
  rss_limit[$name]=$rss
  timeout[$name]=$secs_per_input
done <tests/fuzz/limits
for t in "${targets[@]}"; do
  [ -n "${rss_limit[$t]:-}" ] || { echo "tests/fuzz/limits has no line for $t"; exit 1; }
done
if [ ! -f build-fuzz/build.ninja ]; then
  CC=clang meson setup build-fuzz -Dfuzzing=true -Db_sanitize=address,undefined -Db_lundef=false \
    -Dc_args=-fsanitize=fuzzer-no-link -Dwerror_strict=false >"${TMPDIR:-/tmp}/deltafetch-fuzz-setup.log" 2>&1 ||
    { cat "${TMPDIR:-/tmp}/deltafetch-fuzz-setup.log"; exit 1; }
fi
ninja -C build-fuzz "${targets[@]/#/tests/fuzz-}" >/dev/null
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:quarantine_size_mb=$QUARANTINE_MB
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
work=build-fuzz/fuzz-run
rm -rf "$work"
# Each target is one process on one core: run as many at once as there are
# cores (each still gets its full SECONDS), and report in the targets' order.
par=$(nproc 2>/dev/null || echo 1)
run_target() {
  local t=$1 limits
  mkdir -p "$work/$t/corpus" "$work/$t/crashes"
  cp testdata/fuzz/"$t"/* "$work/$t/corpus/"
  limits="-rss_limit_mb=${rss_limit[$t]} -timeout=${timeout[$t]}"
  # shellcheck disable=SC2086 # $limits is two options
  if build-fuzz/tests/fuzz-"$t" -max_total_time="$secs" $limits -max_len=262144 \
    -artifact_prefix="$work/$t/crashes/" -print_final_stats=1 "$work/$t/corpus" >"$work/$t/log" 2>&1; then
    runs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$work/$t/log")
    peak=$(awk '/stat::peak_rss_mb/ { print $2 }' "$work/$t/log")
    echo "fuzz $t: ${runs:-?} executions in ${secs} s, no crash; peak RSS ${peak:-?} MB ($limits)" >"$work/$t/result"
    return 0
  fi
  {
    echo "fuzz $t: FAILED ($limits); input: $(ls "$work/$t/crashes"/* 2>/dev/null | head -1)"
    grep -E "ERROR|SUMMARY|runtime error|#0 |#1 |#2 |#3 " "$work/$t/log" | head -20
  } >"$work/$t/result"
  return 1
}
failed=0
for ((i = 0; i < ${#targets[@]}; i += par)); do
  pids=()
  for t in "${targets[@]:i:par}"; do
    run_target "$t" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
done
for t in "${targets[@]}"; do cat "$work/$t/result"; done
exit "$failed"
