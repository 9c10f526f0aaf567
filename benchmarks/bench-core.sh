#!/bin/bash
# Side-by-side benchmark of delta generation and offline apply: deltafetch
# against the stock ostree CLI, in one run, on the same repository, alternating
# the tools, with repetitions; reports medians (and min/max), ratios, delta
# bytes and peak RSS as JSON and a Markdown table. Apply also runs deltafetch
# on the stock delta ("apply-stock"), against the same stock runs.
#
# Usage: benchmarks/bench-core.sh [--build=DIR] [--repo=REPO | --synthetic=SCALE]
#          [--reps=N] [--stock-generate-reps=N] [--level=N] [--out=DIR]
#          [--fs-image=SIZE]
#   --stock-generate-reps=0 reuses the stock delta REPO already holds
#   --repo       an archive repo whose ref "os" is the new commit and os^ the old
#                (benchmarks/os-pair.sh makes the real Debian pair)
#   --synthetic  build a synthetic pair with df-gen-tree at this scale instead
#   --fs-image   (root) run the applies in a fresh journaled ext4 of SIZE on a
#                loop device, as on a device (benchmarks/lib-fs.sh says why)
# Needs only bash, awk, the ostree CLI and the built deltafetch + df-measure.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$here/../build repo= synthetic= reps=3 stock_gen_reps= level= out= fs_image=
for a in "$@"; do
  case $a in
    --build=*) build=${a#*=} ;;
    --repo=*) repo=${a#*=} ;;
    --synthetic=*) synthetic=${a#*=} ;;
    --reps=*) reps=${a#*=} ;;
    --stock-generate-reps=*) stock_gen_reps=${a#*=} ;;
    --level=*) level=${a#*=} ;;
    --out=*) out=${a#*=} ;;
    --fs-image=*) fs_image=${a#*=} ;;
    *) echo "unknown argument $a" >&2; exit 2 ;;
  esac
done
stock_gen_reps=${stock_gen_reps:-$reps}
DF=${DF:-$build/cli/deltafetch}
MEASURE=${MEASURE:-$build/benchmarks/df-measure}
out=${out:-$here/results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
w=$(mktemp -d "${TMPDIR:-/var/tmp}/df-bench.XXXXXX")
trap 'rm -rf "$w"' EXIT
. "$here/lib-fs.sh"
trap 'bench_fs_cleanup "$w"; rm -rf "$w"' EXIT
bench_fs "$w" "$fs_image"

if [ -z "$repo" ]; then
  synthetic=${synthetic:-4}
  "$build/testdata/df-gen-tree" --seed=3 --version=1 --scale="$synthetic" "$w/t1"
  "$build/testdata/df-gen-tree" --seed=3 --version=2 --scale="$synthetic" "$w/t2"
  repo=$w/repo
  ostree init --repo="$repo" --mode=archive
  ostree commit --repo="$repo" -b os --tree=dir="$w/t1" >/dev/null
  ostree commit --repo="$repo" -b os --tree=dir="$w/t2" >/dev/null
  corpus="synthetic scale $synthetic"
else
  corpus="repo $repo"
  [ -f "$repo/../os-pair.txt" ] && corpus="Debian 12 OS update: $(tr '\n' ';' <"$repo/../os-pair.txt")"
fi
from=$(ostree rev-parse --repo="$repo" os^)
to=$(ostree rev-parse --repo="$repo" os)
lvl=()
[ -n "$level" ] && lvl=(--level="$level")

runs=$out/runs.jsonl
: >"$runs"
# record SCENARIO TOOL REP JSON [EXTRA-JSON-FIELDS]
record () { printf '{"scenario": "%s", "tool": "%s", "rep": %s, %s%s}\n' "$1" "$2" "$3" "${4#\{}" "" | sed 's/}}$/}/' >>"$runs"; }
measure () { "$MEASURE" "$@" 2>>"$w/stderr.log" | tail -1; }
dir_bytes () { find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'; }

echo "corpus: $corpus" >&2
echo "from $from to $to, $reps repetitions" >&2

# --- generate -------------------------------------------------------------
stock_dir= native_dir=
for rep in $(seq 1 "$reps"); do
  if [ "$rep" -le "$stock_gen_reps" ]; then
    rm -rf "$repo/deltas"
    j=$(measure ostree static-delta generate --repo="$repo" --from="$from" --to="$to")
    stock_sb=$(find "$repo/deltas" -name superblock | head -1)
    stock_dir=$w/stock-delta
    rm -rf "$stock_dir"; cp -a "$(dirname "$stock_sb")" "$stock_dir"
    record generate stock "$rep" "${j%\}}, \"delta_bytes\": $(dir_bytes "$stock_dir")}"
    echo "generate stock #$rep: $j" >&2
  fi
  native_dir=$w/native-$rep
  rm -rf "$native_dir"
  j=$(measure "$DF" generate -q --repo="$repo" --from="$from" --to="$to" --out="$native_dir" "${lvl[@]}")
  record generate deltafetch "$rep" "${j%\}}, \"delta_bytes\": $(dir_bytes "$native_dir")}"
  echo "generate deltafetch #$rep: $j" >&2
done
# A regenerated stock delta has a new superblock: keep the summary and the
# delta index, which stock clients (and bench-fetch.sh) go by, in step.
if [ -n "$stock_dir" ] && [ -e "$repo/summary" ]; then ostree summary -u --repo="$repo"; fi
if [ -z "$stock_dir" ]; then
  # No stock generate run (--stock-generate-reps=0): use the stock delta the
  # repository already holds.
  stock_sb=$(find "$repo/deltas" -name superblock 2>/dev/null | head -1)
  [ -n "$stock_sb" ] || { echo "no stock delta in $repo; run with --stock-generate-reps=1" >&2; exit 1; }
  stock_dir=$w/stock-delta
  cp -a "$(dirname "$stock_sb")" "$stock_dir"
fi
"$DF" show "$native_dir" >"$out/native-delta.txt"
ostree static-delta show --repo="$repo" "$from-$to" >"$out/stock-delta.txt" 2>&1 || true

# --- apply offline ----------------------------------------------------------
base=$dev_dir/device-base
ostree init --repo="$base" --mode=bare
ostree pull-local --repo="$base" "$repo" "$from" >/dev/null
names=()
for rep in $(seq 1 "$reps"); do for tool in stock deltafetch deltafetch-stock; do names+=("device-$tool-$rep"); done; done
bench_devices "$base" "${names[@]}"
# Each apply adds about the update's new content, at most a base's size.
# Without an image every copy exists already; with one, the kept copies
# (-1) and the current one are still to be made.
need=$((3 * reps * $(du -sb "$base" | cut -f1)))
[ -n "$fs_image" ] && need=$((4 * 2 * $(du -sb "$base" | cut -f1)))
avail=$(df --output=avail -B1 "$dev_dir" | tail -1)
if [ "$avail" -lt "$need" ]; then
  echo "$((need >> 30)) GiB needed for the applies, $((avail >> 30)) GiB free in $dev_dir (a larger --fs-image?)" >&2
  exit 1
fi
for rep in $(seq 1 "$reps"); do
  for tool in stock deltafetch deltafetch-stock; do
    dst=$(bench_device "$base" "device-$tool-$rep")
    sync; sleep 2
    scenario=apply
    case $tool in
      stock) j=$(measure ostree static-delta apply-offline --repo="$dst" "$stock_dir") ;;
      deltafetch) j=$(measure "$DF" apply -q --repo="$dst" --commit="$to" "$native_dir") ;;
      # deltafetch applying the stock delta (issue 4), against the same stock runs
      deltafetch-stock) j=$(measure "$DF" apply -q --repo="$dst" --commit="$to" "$stock_dir"); scenario=apply-stock ;;
    esac
    ok=$(ostree rev-parse --repo="$dst" "$to" >/dev/null 2>&1 && echo true || echo false)
    record $scenario "${tool%-stock}" "$rep" "${j%\}}, \"commit_present\": $ok}"
    echo "apply $tool #$rep: $j" >&2
    bench_device_done "device-$tool-$rep"
  done
done
ostree fsck --repo="$dev_dir/device-deltafetch-1" >"$out/fsck-deltafetch.txt" 2>&1 && echo "deltafetch result fsck-clean" >&2
ostree fsck --repo="$dev_dir/device-deltafetch-stock-1" >"$out/fsck-deltafetch-stock.txt" 2>&1 &&
  echo "deltafetch result of the stock delta fsck-clean" >&2

# --- summary ------------------------------------------------------------------
summary=$out/summary.json
awk -v corpus="$corpus" -v fs="$fs_desc" -v host="$(uname -m) $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" '
function field(line, name,   m) { if (match(line, "\"" name "\": [-0-9.a-z]+")) { m = substr(line, RSTART, RLENGTH); sub(/.*: /, "", m); return m } return "" }
function median(arr, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (arr[j] < arr[i]) { t = arr[i]; arr[i] = arr[j]; arr[j] = t } return (n % 2) ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2 }
{
  s = field($0, "scenario"); gsub(/"/, "", s); t = field($0, "tool"); gsub(/"/, "", t)
  if (s == "") { match($0, /"scenario": "[a-z-]+"/); s = substr($0, RSTART + 13, RLENGTH - 14) }
  if (t == "") { match($0, /"tool": "[a-z]+"/); t = substr($0, RSTART + 9, RLENGTH - 10) }
  k = s SUBSEP t; n[k]++
  wall[k, n[k]] = field($0, "wall_s") + 0; cpu[k, n[k]] = field($0, "user_s") + field($0, "sys_s")
  rss[k, n[k]] = field($0, "maxrss_kib") + 0; b = field($0, "delta_bytes"); if (b != "") bytes[k] = b
  keys[k] = 1
}
END {
  printf "{\n  \"corpus\": \"%s\",\n  \"machine\": \"%s\",\n  \"apply_filesystem\": \"%s\",\n  \"results\": [\n", corpus, host, fs
  first = 1
  for (k in keys) {
    split(k, p, SUBSEP); c = n[k]
    for (i = 1; i <= c; i++) { w[i] = wall[k, i]; u[i] = cpu[k, i]; r[i] = rss[k, i] }
    mw = median(w, c); mc = median(u, c); mr = median(r, c)
    med[p[1], p[2]] = mw; mrss[p[1], p[2]] = mr
    printf "%s    {\"scenario\": \"%s\", \"tool\": \"%s\", \"reps\": %d, \"wall_median_s\": %.3f, \"wall_min_s\": %.3f, \"wall_max_s\": %.3f, \"cpu_median_s\": %.3f, \"maxrss_median_kib\": %d%s}", first ? "" : ",\n", p[1], p[2], c, mw, w[1], w[c], mc, mr, (k in bytes) ? ", \"delta_bytes\": " bytes[k] : ""
    first = 0
  }
  printf "\n  ]\n}\n"
}' "$runs" >"$summary"

# Markdown table with ratios (stock ÷ deltafetch for time: > 1 means faster).
{
  echo "Corpus: $corpus"
  echo
  echo "| scenario | stock ostree (median s) | deltafetch (median s) | speed-up | stock peak RSS | deltafetch peak RSS | stock bytes | deltafetch bytes | size ratio |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for s in generate apply apply-stock; do
    # deltafetch applying the stock delta is compared with stock's apply.
    ss=${s%-stock}
    sw=$(grep "\"scenario\": \"$ss\", \"tool\": \"stock\"" "$summary" | grep -o '"wall_median_s": [0-9.]*' | cut -d' ' -f2 || true)
    dw=$(grep "\"scenario\": \"$s\", \"tool\": \"deltafetch\"" "$summary" | grep -o '"wall_median_s": [0-9.]*' | cut -d' ' -f2 || true)
    sr=$(grep "\"scenario\": \"$ss\", \"tool\": \"stock\"" "$summary" | grep -o '"maxrss_median_kib": [0-9]*' | cut -d' ' -f2 || true)
    dr=$(grep "\"scenario\": \"$s\", \"tool\": \"deltafetch\"" "$summary" | grep -o '"maxrss_median_kib": [0-9]*' | cut -d' ' -f2 || true)
    sb=$(grep "\"scenario\": \"$s\", \"tool\": \"stock\"" "$summary" | grep -o '"delta_bytes": [0-9]*' | cut -d' ' -f2 || true)
    db=$(grep "\"scenario\": \"$s\", \"tool\": \"deltafetch\"" "$summary" | grep -o '"delta_bytes": [0-9]*' | cut -d' ' -f2 || true)
    [ -n "$sw" ] && [ -n "$dw" ] || continue  # a scenario run by one tool only
    awk -v s="$s" -v sw="$sw" -v dw="$dw" -v sr="$sr" -v dr="$dr" -v sb="$sb" -v db="$db" 'BEGIN {
      printf "| %s | %.2f | %.2f | %.2f× | %.0f MiB | %.0f MiB | %s | %s | %s |\n", s, sw, dw, (dw > 0 ? sw / dw : 0), sr / 1024, dr / 1024,
        (sb == "" ? "" : sprintf("%.1f MB", sb / 1e6)), (db == "" ? "" : sprintf("%.1f MB", db / 1e6)), (sb == "" ? "" : sprintf("%.3f", db / sb)) }'
  done
} >"$out/summary.md"
cat "$out/summary.md"
echo "results: $out" >&2
