#!/bin/bash
# The benchmark scripts must not rot: each runs once at the smallest size
# (a synthetic pair, one repetition) and must produce its summary with every
# scenario, every run succeeding, and fsck-clean results. No figure here is
# judged; speed belongs to benchmarks/, not to tests.
. "$(dirname "$0")/lib.sh"
B=$DF_SRCDIR/benchmarks

check "bench-core.sh runs on a synthetic pair" bash "$B/bench-core.sh" --build="$DF_BUILDDIR" --synthetic=1 --reps=1 \
  --out="$T/core"
for s in generate apply apply-stock; do
  check "bench-core: summary has a '$s' row" grep -q "^| $s |" "$T/core/summary.md"
done
check "bench-core: every run exited 0" bash -c "! grep -v '\"exit\": 0' '$T/core/runs.jsonl' | grep -q ."
check "bench-core: the apply result was fsck-clean" grep -q "successfully" "$T/core/fsck-deltafetch.txt"
check "bench-core: the stock delta applied by deltafetch was fsck-clean" grep -q "successfully" \
  "$T/core/fsck-deltafetch-stock.txt"

make_tree v1 1 && make_tree v2 2 || { not_ok "trees"; finish; exit 1; }
mkdir -p "$T/srv"
chmod 755 "$T" # nginx workers run unprivileged
make_src_repo "$T/srv/repo" archive
check "bench-fetch.sh runs on a synthetic pair" bash "$B/bench-fetch.sh" --build="$DF_BUILDDIR" --repo="$T/srv/repo" \
  --reps=1 --out="$T/fetch"
for s in fetch-loopback fetch-ratelimit kill-resume; do
  check "bench-fetch: summary has '$s' rows" grep -q "^| $s" "$T/fetch/summary.md"
done
check "bench-fetch: every run brought in the commit" bash -c "! grep -q '\"ok\": false' '$T/fetch/runs.jsonl'"
check "bench-fetch: seven runs recorded" test "$(wc -l <"$T/fetch/runs.jsonl")" = 7
check "bench-fetch: deltafetch fetched the stock delta from the stock view" \
  grep -q '"tool": "deltafetch-stock".*"ok": true' "$T/fetch/runs.jsonl"
finish
