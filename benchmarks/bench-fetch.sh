#!/bin/bash
# Side-by-side benchmark of fetching an update over HTTP: `deltafetch fetch`
# (native delta) against stock `ostree pull` (stock static delta), from nginx
# on loopback, plain and with a per-connection rate limit (limit_rate), into
# copies of a bare device repository holding the old commit; deltafetch also
# fetches the stock delta from a view of the same repository without its
# deltafetch/ directory (a stock server: "deltafetch-stock"); plus deltafetch
# killed with SIGKILL at about half the download and run again. Reports wall
# time, CPU, peak RSS and bytes on the wire (from nginx's access log) as
# JSON lines and a Markdown table with medians.
#
# Usage: benchmarks/bench-fetch.sh --repo=REPO [--build=DIR] [--reps=N] [--rate=4m] [--out=DIR]
#          [--fs-image=SIZE]
#   --fs-image: (root) device repositories on a fresh journaled ext4 of SIZE
#   on a loop device (benchmarks/lib-fs.sh says why; 32G for 3 repetitions
#   of the Debian pair)
#   REPO: an archive repo whose ref "os" is the new commit and os^ the old
#   (benchmarks/os-pair.sh makes the real Debian pair). A native delta and a
#   stock delta os^ -> os are generated into it when missing (the stock one
#   takes minutes), and its summary is updated so stock pull finds its delta.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$here/../build repo= reps=3 rate=4m out= fs_image=
for a in "$@"; do
  case $a in
    --build=*) build=${a#*=} ;;
    --repo=*) repo=${a#*=} ;;
    --reps=*) reps=${a#*=} ;;
    --rate=*) rate=${a#*=} ;;
    --out=*) out=${a#*=} ;;
    --fs-image=*) fs_image=${a#*=} ;;
    *) echo "unknown argument $a" >&2; exit 2 ;;
  esac
done
[ -n "$repo" ] || { echo "--repo is required" >&2; exit 2; }
repo=$(cd "$repo" && pwd)
DF=${DF:-$build/cli/deltafetch}
MEASURE=${MEASURE:-$build/benchmarks/df-measure}
export PATH="$PATH:/usr/sbin:/sbin"
out=${out:-$here/results/fetch-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
w=$(mktemp -d "${TMPDIR:-/var/tmp}/df-bench-fetch.XXXXXX")
chmod 755 "$w"
. "$here/lib-fs.sh"
cleanup () {
  [ -f "$w/nginx/pid" ] && kill "$(cat "$w/nginx/pid")" 2>/dev/null
  bench_fs_cleanup "$w"
  rm -rf "$w"
}
trap cleanup EXIT
bench_fs "$w" "$fs_image"

from=$(ostree rev-parse --repo="$repo" os^)
to=$(ostree rev-parse --repo="$repo" os)
if [ ! -f "$repo/deltafetch/v1/indexes/$to.index" ]; then
  echo "generating the native delta" >&2
  "$DF" generate -q --repo="$repo" --from="$from" --to="$to"
fi
if ! ostree static-delta list --repo="$repo" 2>/dev/null | grep -q "$from-$to"; then
  echo "generating the stock delta (minutes)" >&2
  ostree static-delta generate --repo="$repo" --from="$from" --to="$to"
fi
ostree summary --repo="$repo" -u
native_bytes=$(find "$repo/deltafetch/v1/deltas/$from-$to" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
stock_bytes=$(ostree static-delta show --repo="$repo" "$from-$to" 2>/dev/null | awk '/^Total Size:/ { print $3 }' || true)

# nginx: one port plain, one with the per-connection rate limit (and the
# same for the stock view). A port taken meanwhile (another server, or a
# client's ephemeral port) means another try with other ports.
mkdir -p "$w/nginx"
# The stock server: the same repository without deltafetch/.
mkdir -p "$w/stock-view/$(basename "$repo")"
for x in config delta-indexes deltas objects refs summary; do
  [ -e "$repo/$x" ] && ln -s "$repo/$x" "$w/stock-view/$(basename "$repo")/$x"
done
started=
for _try in 1 2 3 4 5 6 7 8; do
  port=$((20000 + RANDOM % 20000))
  cat >"$w/nginx.conf" <<CONF
daemon on;
worker_processes 2;
pid $w/nginx/pid;
error_log $w/nginx/error.log;
events { worker_connections 256; }
http {
  log_format bytes '\$server_port \$request_uri \$status \$body_bytes_sent';
  access_log $w/nginx/access.log bytes;
  client_body_temp_path $w/nginx/body; proxy_temp_path $w/nginx/proxy; fastcgi_temp_path $w/nginx/fastcgi;
  uwsgi_temp_path $w/nginx/uwsgi; scgi_temp_path $w/nginx/scgi;
  types { }
  default_type application/octet-stream;
  server { listen 127.0.0.1:$port; root $(dirname "$repo"); }
  server { listen 127.0.0.1:$((port + 1)); root $(dirname "$repo"); limit_rate $rate; }
  server { listen 127.0.0.1:$((port + 2)); root $w/stock-view; }
  server { listen 127.0.0.1:$((port + 3)); root $w/stock-view; limit_rate $rate; }
}
CONF
  if nginx -c "$w/nginx.conf" -p "$w/nginx" 2>"$w/nginx/start.err"; then started=1; break; fi
done
[ -n "$started" ] || { cat "$w/nginx/start.err" >&2; echo "bench-fetch: nginx did not start" >&2; exit 1; }
log=$w/nginx/access.log
rname=$(basename "$repo")

base=$dev_dir/device-base
ostree init --repo="$base" --mode=bare
ostree pull-local --repo="$base" "$repo" "$from" >/dev/null
ostree refs --repo="$base" --create=os "$from"

names=()
for rep in $(seq 1 "$reps"); do
  for d in loopback-stock loopback-deltafetch loopback-deltafetch-stock ratelimit-stock ratelimit-deltafetch \
    ratelimit-deltafetch-stock kill; do names+=("dev-$d-$rep"); done
done
bench_devices "$base" "${names[@]}"

runs=$out/runs.jsonl
: >"$runs"
wire_since () { tail -n +"$1" "$log" | awk '{ s += $4 } END { print s + 0 }'; }
measure () { "$MEASURE" "$@" 2>>"$w/stderr.log" | tail -1 || true; }  # a failed run is recorded, not fatal
record () { # SCENARIO TOOL REP JSON BYTES OK
  printf '{"scenario": "%s", "tool": "%s", "rep": %s, %s, "wire_bytes": %s, "ok": %s}\n' \
    "$1" "$2" "$3" "$(echo "$4" | sed 's/^{//; s/}$//')" "$5" "$6" >>"$runs"
}

for rep in $(seq 1 "$reps"); do
  for scenario in loopback ratelimit; do
    p=$port
    [ $scenario = ratelimit ] && p=$((port + 1))
    url=http://127.0.0.1:$p/$rname
    for tool in stock deltafetch deltafetch-stock; do
      dev=$(bench_device "$base" "dev-$scenario-$tool-$rep")
      sync; sleep 1
      mark=$(($(wc -l <"$log") + 1))
      if [ $tool = stock ]; then
        ostree remote add --repo="$dev" --no-gpg-verify origin "$url"
        j=$(measure ostree pull --repo="$dev" origin os)
        got=$(ostree rev-parse --repo="$dev" origin:os 2>/dev/null || true)
      else
        u=$url
        [ $tool = deltafetch-stock ] && u=http://127.0.0.1:$((p + 2))/$rname
        j=$(measure "$DF" fetch -q --repo="$dev" --url="$u" --commit="$to" --ref=os)
        got=$(ostree rev-parse --repo="$dev" os 2>/dev/null || true)
      fi
      bytes=$(wire_since "$mark")
      okv=false; [ "$got" = "$to" ] && okv=true
      record "fetch-$scenario" $tool "$rep" "$j" "$bytes" $okv
      echo "fetch-$scenario $tool #$rep: $j, $bytes bytes on the wire, ok=$okv" >&2
      bench_device_done "dev-$scenario-$tool-$rep"
    done
  done
  # SIGKILL at about half the native delta's bytes (rate-limited, so the
  # moment is controllable), then run again.
  dev=$(bench_device "$base" "dev-kill-$rep")
  sync; sleep 1
  url=http://127.0.0.1:$((port + 1))/$rname
  mark=$(($(wc -l <"$log") + 1))
  "$DF" fetch -q --repo="$dev" --url="$url" --commit="$to" --ref=os &
  pid=$!
  while kill -0 $pid 2>/dev/null; do
    store=$(find "$dev/tmp" -maxdepth 1 -name 'deltafetch-fetch-*' 2>/dev/null | head -1)
    have=0
    [ -n "$store" ] && have=$(du -s --block-size=1 "$store" | cut -f1)
    [ "$have" -ge $((native_bytes / 2)) ] && break
    sleep 0.05
  done
  kill -9 $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
  sleep 1  # nginx writes the log line of a cut connection when it notices
  first=$(wire_since "$mark")
  mark=$(($(wc -l <"$log") + 1))
  j=$(measure "$DF" fetch -q --repo="$dev" --url="$url" --commit="$to" --ref=os)
  second=$(wire_since "$mark")
  got=$(ostree rev-parse --repo="$dev" os 2>/dev/null || true)
  okv=false; [ "$got" = "$to" ] && okv=true
  record kill-resume deltafetch "$rep" "$j" "$((first + second))" $okv
  echo "kill-resume #$rep: first run $first bytes, rerun $second bytes ($j), delta $native_bytes, ok=$okv" >&2
  bench_device_done "dev-kill-$rep"
done
for d in "$dev_dir"/dev-*-deltafetch-1 "$dev_dir"/dev-*-deltafetch-stock-1 "$dev_dir/dev-kill-1"; do
  ostree fsck --repo="$d" >"$out/fsck-$(basename "$d").txt" 2>&1 && echo "$(basename "$d"): fsck-clean" >&2
done

# Summary: medians per scenario and tool.
awk -v native="$native_bytes" -v stock="${stock_bytes:-}" -v rate="$rate" '
function field(line, name,   m) { if (match(line, "\"" name "\": [-0-9.a-z]+")) { m = substr(line, RSTART, RLENGTH); sub(/.*: /, "", m); return m } return "" }
function str(line, name,   m) { match(line, "\"" name "\": \"[^\"]*\""); m = substr(line, RSTART, RLENGTH); sub(/.*: "/, "", m); sub(/"$/, "", m); return m }
function median(arr, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (arr[j] < arr[i]) { t = arr[i]; arr[i] = arr[j]; arr[j] = t } return (n % 2) ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2 }
{ k = str($0, "scenario") SUBSEP str($0, "tool"); c = ++n[k]; wall[k, c] = field($0, "wall_s"); rss[k, c] = field($0, "maxrss_kib"); by[k, c] = field($0, "wire_bytes"); keys[k] = 1 }
END {
  printf "| scenario | tool | median wall s | min–max s | median peak RSS | median bytes on the wire | bytes ÷ native delta |\n|---|---|---|---|---|---|---|\n"
  split("fetch-loopback fetch-ratelimit kill-resume", order, " ")
  for (o = 1; o <= 3; o++) for (t = 1; t <= 3; t++) {
    tool = (t == 1) ? "stock" : (t == 2) ? "deltafetch" : "deltafetch-stock"; k = order[o] SUBSEP tool
    if (!(k in keys)) continue
    m = n[k]; lo = 1e18; hi = 0
    for (i = 1; i <= m; i++) { w1[i] = wall[k, i] + 0; r1[i] = rss[k, i] + 0; b1[i] = by[k, i] + 0; if (w1[i] < lo) lo = w1[i]; if (w1[i] > hi) hi = w1[i] }
    mw = median(w1, m); mr = median(r1, m); mb = median(b1, m); med[k] = mw
    printf "| %s%s | %s | %.2f | %.2f–%.2f | %.0f MiB | %.1f MB | %.3f |\n", order[o], (order[o] == "fetch-ratelimit") ? " (" rate "/conn)" : "", tool, mw, lo, hi, mr / 1024, mb / 1e6, mb / native
  }
  printf "\n"
  for (o = 1; o <= 2; o++) { ks = order[o] SUBSEP "stock"; kd = order[o] SUBSEP "deltafetch"; if ((ks in med) && (kd in med) && med[kd] > 0) printf "%s: deltafetch %.2f× faster than stock ostree pull (median wall)\n", order[o], med[ks] / med[kd] }
  for (o = 1; o <= 2; o++) { ks = order[o] SUBSEP "stock"; kd = order[o] SUBSEP "deltafetch-stock"; if ((ks in med) && (kd in med) && med[kd] > 0) printf "%s: deltafetch on the stock delta %.2f× faster than stock ostree pull (median wall)\n", order[o], med[ks] / med[kd] }
  printf "native delta: %.1f MB; stock delta: %s\n", native / 1e6, stock
}' "$runs" | tee "$out/summary.md"
echo "results: $out" >&2
echo "device repositories on: $fs_desc" | tee -a "$out/summary.md"
