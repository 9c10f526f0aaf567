#!/bin/bash
# Side-by-side benchmark of delta generation and offline apply: deltafetch
# against the stock ostree CLI, in one run, on the same repository, alternating
# the tools, with repetitions; reports medians (and min/max), ratios, delta
# bytes and peak RSS, objects and content bytes written, as JSON lines
# (runs.jsonl, meta.json) and, through report.py, summary.json, summary.md
# and SVG plots. Apply also runs deltafetch on the stock delta
# ("apply-stock"), against the same stock runs, and, when the native delta
# rebuilds compressed objects, deltafetch with --rebuild=always
# ("apply-rebuild": the default takes the plain parts a delta directory
# carries); generate also makes a stock
# delta with `deltafetch generate --format=ostree` ("generate-ostree") and,
# with --levels, native deltas at each zstd level ("generate-level": delta
# size against generate time).
#
# Usage: benchmarks/bench-core.sh [--build=DIR] [--repo=REPO | --synthetic=SCALE
#          [--large-file=BYTES] [--small-files=N]] [--reps=N] [--stock-generate-reps=N]
#          [--level=N] [--levels=L,...] [--out=DIR] [--fs-image=SIZE]
#   --stock-generate-reps=0 reuses the stock delta REPO already holds
#   --repo       an archive repo whose ref "os" is the new commit and os^ the old
#                (benchmarks/os-pair.sh makes the real Debian pair)
#   --synthetic  build a synthetic pair with df-gen-tree at this scale instead;
#                --large-file adds one image file of BYTES (1073741824: the
#                1 GiB corpus), --small-files N small text files (50000: the
#                many-small-files corpus)
#   --levels     also generate at each of these zstd levels (one run each)
#   --fs-image   (root) run the applies in a fresh journaled ext4 of SIZE on a
#                loop device, as on a device (benchmarks/lib-fs.sh says why)
# Needs only bash, awk, the ostree CLI and the built deltafetch + df-measure.
set -euo pipefail
cmdline="$0 $*"
here=$(cd "$(dirname "$0")" && pwd)
build=$here/../build repo= synthetic= reps=3 stock_gen_reps= level= out= fs_image= large= small= levels=
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
    --large-file=*) large=${a#*=} ;;
    --small-files=*) small=${a#*=} ;;
    --levels=*) levels=${a#*=} ;;
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
  gen=(--scale="$synthetic")
  [ -n "$large" ] && gen+=(--large-file="$large")
  [ -n "$small" ] && gen+=(--small-files="$small")
  "$build/testdata/df-gen-tree" --seed=3 --version=1 "${gen[@]}" "$w/t1"
  "$build/testdata/df-gen-tree" --seed=3 --version=2 "${gen[@]}" "$w/t2"
  repo=$w/repo
  ostree init --repo="$repo" --mode=archive
  ostree commit --repo="$repo" -b os --tree=dir="$w/t1" >/dev/null
  ostree commit --repo="$repo" -b os --tree=dir="$w/t2" >/dev/null
  corpus="synthetic scale $synthetic${large:+, one $large-byte image}${small:+, $small small files}"
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
  # A stock-format delta by deltafetch (libostree's generator behind it, as
  # slow as stock's: run as often as stock's generate).
  [ "$rep" -le "$stock_gen_reps" ] || continue
  rm -rf "$w/ostree-format"
  j=$(measure "$DF" generate -q --format=ostree --repo="$repo" --from="$from" --to="$to" --out="$w/ostree-format")
  record generate-ostree deltafetch "$rep" "${j%\}}, \"delta_bytes\": $(dir_bytes "$w/ostree-format")}"
  echo "generate --format=ostree #$rep: $j" >&2
done
# Delta size against generate time across zstd levels (one run each).
for l in ${levels//,/ }; do
  rm -rf "$w/level-$l"
  j=$(measure "$DF" generate -q --repo="$repo" --from="$from" --to="$to" --out="$w/level-$l" --level="$l")
  record generate-level deltafetch 1 "${j%\}}, \"level\": $l, \"delta_bytes\": $(dir_bytes "$w/level-$l")}"
  echo "generate --level=$l: $j, $(dir_bytes "$w/level-$l") bytes" >&2
  rm -rf "$w/level-$l"
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
# A native delta that rebuilds compressed objects is also applied with
# --rebuild=always: what a fetch, which downloads only the rebuild parts,
# spends on the device.
apply_tools="stock deltafetch deltafetch-stock"
# (Through a file: grep -q would end the pipe early, and pipefail fail it.)
"$DF" show --json "$native_dir" >"$w/native-show.json"
if grep -Eq '"content-rebuilt" *: *[1-9]' "$w/native-show.json"; then
  apply_tools="$apply_tools deltafetch-rebuild"
fi
names=()
for rep in $(seq 1 "$reps"); do for tool in $apply_tools; do names+=("device-$tool-$rep"); done; done
bench_devices "$base" "${names[@]}"
# Each apply adds about the update's new content, at most a base's size.
# Without an image every copy exists already; with one, the kept copies
# (-1) and the current one are still to be made.
ntools=$(echo $apply_tools | wc -w)
need=$((ntools * reps * $(du -sb "$base" | cut -f1)))
[ -n "$fs_image" ] && need=$(((ntools + 1) * 2 * $(du -sb "$base" | cut -f1)))
avail=$(df --output=avail -B1 "$dev_dir" | tail -1)
if [ "$avail" -lt "$need" ]; then
  echo "$((need >> 30)) GiB needed for the applies, $((avail >> 30)) GiB free in $dev_dir (a larger --fs-image?)" >&2
  exit 1
fi
read -r base_objects base_bytes < <(obj_stats "$base")
disk_rate=$(disk_write_rate "$dev_dir")
echo "disk write rate with fsync on the device filesystem: $((disk_rate / 1000000)) MB/s" >&2
for rep in $(seq 1 "$reps"); do
  for tool in $apply_tools; do
    dst=$(bench_device "$base" "device-$tool-$rep")
    sync; sleep 2
    scenario=apply
    case $tool in
      stock) j=$(measure ostree static-delta apply-offline --repo="$dst" "$stock_dir") ;;
      deltafetch) j=$(measure "$DF" apply -q --repo="$dst" --commit="$to" "$native_dir") ;;
      # deltafetch applying the stock delta (issue 4), against the same stock runs
      deltafetch-stock) j=$(measure "$DF" apply -q --repo="$dst" --commit="$to" "$stock_dir"); scenario=apply-stock ;;
      deltafetch-rebuild)
        j=$(measure "$DF" apply -q --rebuild=always --repo="$dst" --commit="$to" "$native_dir")
        scenario=apply-rebuild ;;
    esac
    ok=$(ostree rev-parse --repo="$dst" "$to" >/dev/null 2>&1 && echo true || echo false)
    read -r n b < <(obj_stats "$dst")
    record $scenario "$(echo "$tool" | sed 's/-stock$//; s/-rebuild$//')" "$rep" \
      "${j%\}}, \"commit_present\": $ok, \"objects_written\": $((n - base_objects)), \"content_bytes\": $((b - base_bytes))}"
    echo "apply $tool #$rep: $j" >&2
    bench_device_done "device-$tool-$rep"
  done
done
ostree fsck --repo="$dev_dir/device-deltafetch-1" >"$out/fsck-deltafetch.txt" 2>&1 && echo "deltafetch result fsck-clean" >&2
ostree fsck --repo="$dev_dir/device-deltafetch-stock-1" >"$out/fsck-deltafetch-stock.txt" 2>&1 &&
  echo "deltafetch result of the stock delta fsck-clean" >&2

# --- summary ------------------------------------------------------------------
bench_meta "$out/meta.json" "$corpus" "$cmdline" "$disk_rate" \
  ", \"native_delta_bytes\": $(dir_bytes "$native_dir"), \"stock_delta_bytes\": $(dir_bytes "$stock_dir")"
bench_report "$out"
echo "results: $out" >&2
