#!/bin/bash
# The benchmark scripts must not rot: each runs once at the smallest size
# (a synthetic pair with an image file and small files, one repetition),
# every scenario included (the WAN one needs root for its network
# namespace), and must produce its report with every scenario, every run
# succeeding, fsck-clean results and its plots as well-formed SVG and as PNG
# (report.py draws them with matplotlib: tests/install-deps.sh installs it).
# No figure here is judged; speed belongs to benchmarks/, not to tests.
. "$(dirname "$0")/lib.sh"
B=$DF_SRCDIR/benchmarks
svg_ok () { python3 -c 'import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); sys.exit(0 if r.tag.endswith("svg") else 1)' "$1"; }
png_ok () { [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]; }

check "bench-core.sh runs on a synthetic pair, with levels, an image and small files" bash "$B/bench-core.sh" \
  --build="$DF_BUILDDIR" --synthetic=1 --large-file=2000000 --small-files=200 --levels=1,3 --reps=1 --out="$T/core"
for s in generate generate-ostree generate-level apply apply-stock; do
  check "bench-core: report has a '$s' row" grep -q "^| $s |" "$T/core/summary.md"
done
check "bench-core: every run exited 0" bash -c "! grep -v '\"exit\": 0' '$T/core/runs.jsonl' | grep -q ."
check "bench-core: no run flagged as failed" bash -c "! grep -q '⚠' '$T/core/summary.md'"
check "bench-core: runs record objects and content written" grep -q '"scenario": "apply".*"content_bytes": [1-9]' "$T/core/runs.jsonl"
# A pair whose initrd the native delta rebuilds (tests/transform-tree.py):
# apply-rebuild runs beside apply, which takes the plain parts.
tt=$T/rebuild-pair
python3 "$DF_SRCDIR/tests/transform-tree.py" "$tt/v1" 1 zlib-gzip-6 &&
  python3 "$DF_SRCDIR/tests/transform-tree.py" "$tt/v2" 2 zlib-gzip-6 || not_ok "transform-tree.py"
ostree init --repo="$tt/repo" --mode=archive
ostree commit --repo="$tt/repo" -b os --tree=dir="$tt/v1" --owner-uid=0 --owner-gid=0 >/dev/null
ostree commit --repo="$tt/repo" -b os --tree=dir="$tt/v2" --owner-uid=0 --owner-gid=0 >/dev/null
check "bench-core.sh runs on a pair with a rebuilt initrd" bash "$B/bench-core.sh" \
  --build="$DF_BUILDDIR" --repo="$tt/repo" --reps=1 --out="$T/core-rebuild"
check "bench-core: report has an 'apply-rebuild' row" grep -q "^| apply-rebuild | deltafetch |" "$T/core-rebuild/summary.md"
check "bench-core, rebuild pair: every run exited 0" bash -c "! grep -v '\"exit\": 0' '$T/core-rebuild/runs.jsonl' | grep -q ."
check "bench-core, rebuild pair: no run flagged as failed" bash -c "! grep -q '⚠' '$T/core-rebuild/summary.md'"
check "bench-core: summary.json parses" python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$T/core/summary.json"
for p in overview generate-levels; do
  check "bench-core: $p.svg is well-formed SVG" svg_ok "$T/core/$p.svg"
  check "bench-core: $p.png is a PNG" png_ok "$T/core/$p.png"
done
check "bench-core: the apply result was fsck-clean" grep -q "successfully" "$T/core/fsck-deltafetch.txt"
check "bench-core: the stock delta applied by deltafetch was fsck-clean" grep -q "successfully" \
  "$T/core/fsck-deltafetch-stock.txt"

make_tree v1 1 && make_tree v2 2 || { not_ok "trees"; finish; exit 1; }
mkdir -p "$T/srv"
chmod 755 "$T" # nginx workers run unprivileged
make_src_repo "$T/srv/repo" archive
wan=()
scen="fetch-loopback fetch-ratelimit kill-resume"
if [ "$(id -u)" = 0 ] && command -v tc >/dev/null; then wan=(--wan=16mbit --rtt=20); scen="$scen fetch-wan"; fi
check "bench-fetch.sh runs on a synthetic pair${wan:+ (with a WAN link)}" bash "$B/bench-fetch.sh" \
  --build="$DF_BUILDDIR" --repo="$T/srv/repo" --reps=1 --out="$T/fetch" "${wan[@]}"
for s in $scen; do
  check "bench-fetch: report has '$s' rows" grep -q "^| $s |" "$T/fetch/summary.md"
done
check "bench-fetch: every run brought in the commit" bash -c "! grep -q '\"ok\": false' '$T/fetch/runs.jsonl'"
check "bench-fetch: every run recorded" test "$(wc -l <"$T/fetch/runs.jsonl")" = "$(( ${#wan[@]} ? 11 : 8 ))"
check "bench-fetch: deltafetch fetched the stock delta from the stock view" \
  grep -q '"tool": "deltafetch-stock".*"ok": true' "$T/fetch/runs.jsonl"
if [ ${#wan[@]} -gt 0 ]; then
  check "bench-fetch: fetch-wan.svg is well-formed SVG" svg_ok "$T/fetch/fetch-wan.svg"
  check "bench-fetch: fetch-wan.png is a PNG" png_ok "$T/fetch/fetch-wan.png"
  check "bench-fetch: the WAN runs carry the link rate" grep -q '"scenario": "fetch-wan".*"link_bps": 16000000' \
    "$T/fetch/runs.jsonl"
  check "bench-fetch: the WAN namespace is gone" bash -c "! ip netns list | grep -q dfwan"
fi
finish
