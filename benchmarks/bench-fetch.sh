#!/bin/bash
# Side-by-side benchmark of fetching an update over HTTP: `deltafetch fetch`
# (native delta) against stock `ostree pull` (stock static delta), from nginx
# on loopback, plain and with a per-connection rate limit (limit_rate), into
# copies of a bare device repository holding the old commit; deltafetch also
# fetches the stock delta from a view of the same repository without its
# deltafetch/ directory (a stock server: "deltafetch-stock"); plus each tool
# killed with SIGKILL at about half the download and run again; and, with
# --wan, all three over an emulated WAN link (benchmarks/lib-wan.sh: a
# network namespace, a veth pair shaped by tc tbf, a delay proxy for the
# round-trip time) at each rate given. Reports wall time, CPU, peak RSS,
# bytes on the wire (from nginx's access log), objects and content bytes
# written as JSON lines (runs.jsonl, meta.json) and, through report.py,
# summary.json, summary.md and SVG plots.
#
# Usage: benchmarks/bench-fetch.sh --repo=REPO [--build=DIR] [--reps=N] [--rate=4m] [--out=DIR]
#          [--fs-image=SIZE] [--wan=RATE,...] [--rtt=MS] [--scenarios=LIST]
#   --wan: link rates as tc writes them (e.g. 2mbit,8mbit,32mbit; root)
#   --rtt: the WAN link's round-trip time in ms (default 50)
#   --scenarios: any of loopback,ratelimit,kill,wan (default: the first
#   three, and wan when --wan is given)
#   --url=URL instead of --repo (on a target board: no nginx, no repository
#   to serve): fetch from this remote repository, which must carry a native
#   delta and a stock one from os^ to os; scenarios remote (stock pull and
#   deltafetch from URL; deltafetch from --stock-url=URL too when given, a
#   server with only the stock delta) and kill (SIGKILL at half of
#   deltafetch's remote time, then a rerun). Bytes on the wire are not known
#   there (no access log) and left out. The device base repository holding
#   os^ is pulled from URL first.
#   --fs-image: (root) device repositories on a fresh journaled ext4 of SIZE
#   on a loop device (benchmarks/lib-fs.sh says why; 32G for 3 repetitions
#   of the Debian pair)
#   REPO: an archive repo whose ref "os" is the new commit and os^ the old
#   (benchmarks/os-pair.sh makes the real Debian pair). A native delta and a
#   stock delta os^ -> os are generated into it when missing (the stock one
#   takes minutes), and its summary is updated so stock pull finds its delta.
set -euo pipefail
cmdline="$0 $*"
here=$(cd "$(dirname "$0")" && pwd)
build=$here/../build repo= reps=3 rate=4m out= fs_image= wan= rtt=50 scenarios= remote= stock_url=
for a in "$@"; do
  case $a in
    --build=*) build=${a#*=} ;;
    --repo=*) repo=${a#*=} ;;
    --reps=*) reps=${a#*=} ;;
    --rate=*) rate=${a#*=} ;;
    --out=*) out=${a#*=} ;;
    --fs-image=*) fs_image=${a#*=} ;;
    --wan=*) wan=${a#*=} ;;
    --rtt=*) rtt=${a#*=} ;;
    --scenarios=*) scenarios=${a#*=} ;;
    --url=*) remote=${a#*=} ;;
    --stock-url=*) stock_url=${a#*=} ;;
    *) echo "unknown argument $a" >&2; exit 2 ;;
  esac
done
[ -n "$repo" ] || [ -n "$remote" ] || { echo "--repo or --url is required" >&2; exit 2; }
if [ -n "$remote" ]; then
  scenarios=${scenarios:-remote,kill}
  for sc in ${scenarios//,/ }; do
    case $sc in remote | kill) ;; *) echo "with --url only the remote and kill scenarios run, not $sc" >&2; exit 2 ;; esac
  done
else
  scenarios=${scenarios:-loopback,ratelimit,kill${wan:+,wan}}
fi
has () { [[ ",$scenarios," == *",$1,"* ]]; }
if has wan && [ -z "$wan" ]; then echo "the wan scenario needs --wan=RATE,..." >&2; exit 2; fi
[ -n "$repo" ] && repo=$(cd "$repo" && pwd)
DF=${DF:-$build/cli/deltafetch}
MEASURE=${MEASURE:-$build/benchmarks/df-measure}
export PATH="$PATH:/usr/sbin:/sbin"
out=${out:-$here/results/fetch-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
w=$(mktemp -d "${TMPDIR:-/var/tmp}/df-bench-fetch.XXXXXX")
chmod 755 "$w"
. "$here/lib-fs.sh"
. "$here/lib-wan.sh"
cleanup () {
  [ -f "$w/nginx/pid" ] && kill "$(cat "$w/nginx/pid")" 2>/dev/null
  wan_down
  bench_fs_cleanup "$w"
  rm -rf "$w"
}
trap cleanup EXIT
bench_fs "$w" "$fs_image"

if [ -n "$remote" ]; then
  # A remote server: learn os and its parent from the commit objects, then
  # pull the parent (once) into the device base.
  probe=$w/probe
  ostree init --repo="$probe" --mode=bare-user
  ostree remote add --repo="$probe" --no-gpg-verify origin "$remote"
  ostree pull --repo="$probe" --commit-metadata-only --depth=1 origin os >/dev/null
  to=$(ostree rev-parse --repo="$probe" origin:os)
  from=$(ostree rev-parse --repo="$probe" "$to^")
  rm -rf "$probe"
  native_bytes=null stock_bytes=null log=/dev/null rname=
  base=$dev_dir/device-base
  ostree init --repo="$base" --mode=bare
  ostree remote add --repo="$base" --no-gpg-verify origin "$remote"
  echo "pulling $from (os^) from $remote into the device base" >&2
  ostree pull --repo="$base" origin "$from" >/dev/null
  ostree remote delete --repo="$base" origin
  ostree refs --repo="$base" --create=os "$from"
else
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
  native_bytes=$(dir_bytes "$repo/deltafetch/v1/deltas/$from-$to")
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
fi

read -r base_objects base_bytes < <(obj_stats "$base")
tools=(stock deltafetch deltafetch-stock)
[ -n "$remote" ] && [ -z "$stock_url" ] && tools=(stock deltafetch)
names=()
for rep in $(seq 1 "$reps"); do
  for scenario in loopback ratelimit remote; do
    has $scenario && for tool in "${tools[@]}"; do names+=("dev-$scenario-$tool-$rep"); done
  done
  has kill && names+=("dev-kill-stock-$rep" "dev-kill-$rep")
  if has wan; then
    for r in ${wan//,/ }; do for tool in "${tools[@]}"; do names+=("dev-wan$r-$tool-$rep"); done; done
  fi
done
bench_devices "$base" "${names[@]}"
disk_rate=$(disk_write_rate "$dev_dir")
echo "disk write rate with fsync on the device filesystem: $((disk_rate / 1000000)) MB/s" >&2

runs=$out/runs.jsonl
: >"$runs"
# wire_since LINE [LOG]: body bytes nginx logged from LINE on ("null" for
# a remote server, whose log is not ours)
wire_since () {
  if [ -n "$remote" ] && [ -z "${2:-}" ]; then echo null; return; fi
  tail -n +"$1" "${2:-$log}" | awk '{ s += $4 } END { printf "%.0f\n", s }'
}
measure () { "$MEASURE" "$@" 2>>"$w/stderr.log" | tail -1 || true; }  # a failed run is recorded, not fatal
record () { # SCENARIO TOOL REP JSON BYTES OK DEV [EXTRA-FIELDS]
  local n b
  read -r n b < <(obj_stats "$7")
  printf '{"scenario": "%s", "tool": "%s", "rep": %s, %s, "wire_bytes": %s, "ok": %s, "objects_written": %s, "content_bytes": %s%s}\n' \
    "$1" "$2" "$3" "$(echo "$4" | sed 's/^{//; s/}$//')" "$5" "$6" $((n - base_objects)) $((b - base_bytes)) "${8:-}" >>"$runs"
}
# fetch_one SCENARIO TOOL REP URL DEV: one fetch by TOOL from URL into
# DEV (again, after a kill); prints the measurement JSON.
fetch_one () {
  local tool=$2 url=$4 dev=$5
  if [ "$tool" = stock ]; then
    ostree remote add --repo="$dev" --no-gpg-verify --if-not-exists origin "$url"
    measure ostree pull --repo="$dev" origin os
  else
    measure "$DF" fetch -q --repo="$dev" --url="$url" --commit="$to" --ref=os
  fi
}
# got_commit TOOL DEV: the commit the device's ref names after TOOL's run
got_commit () {
  if [ "$1" = stock ]; then ostree rev-parse --repo="$2" origin:os; else ostree rev-parse --repo="$2" os; fi 2>/dev/null || true
}

# half_ms JSON: half the wall time of a measurement, in ms
half_ms () { echo "$1" | awk '{ if (match($0, /"wall_s": [0-9.]+/)) printf "%d", substr($0, RSTART + 10, RLENGTH - 10) * 500 }'; }
kill_after_ms= stock_kill_after_ms=
for rep in $(seq 1 "$reps"); do
  for scenario in loopback ratelimit remote; do
    has $scenario || continue
    if [ $scenario = remote ]; then
      url=$remote stock_view=$stock_url
    else
      p=$port
      [ $scenario = ratelimit ] && p=$((port + 1))
      url=http://127.0.0.1:$p/$rname stock_view=http://127.0.0.1:$((p + 2))/$rname
    fi
    for tool in "${tools[@]}"; do
      dev=$(bench_device "$base" "dev-$scenario-$tool-$rep")
      sync; sleep 1
      mark=$(($(wc -l <"$log") + 1))
      u=$url
      [ $tool = deltafetch-stock ] && u=$stock_view
      j=$(fetch_one "fetch-$scenario" $tool "$rep" "$u" "$dev")
      # A kill by time lands at half of the tool's first run over the same
      # link (rate-limited or remote): stock's always, deltafetch's remote.
      if [ $scenario = remote ] && [ $tool = deltafetch ] && [ -z "$kill_after_ms" ]; then kill_after_ms=$(half_ms "$j"); fi
      if [ $scenario = "${remote:+remote}${remote:-ratelimit}" ] && [ $tool = stock ] && [ -z "$stock_kill_after_ms" ]; then
        stock_kill_after_ms=$(half_ms "$j")
      fi
      got=$(got_commit $tool "$dev")
      bytes=$(wire_since "$mark")
      okv=false; [ "$got" = "$to" ] && okv=true
      record "fetch-$scenario" $tool "$rep" "$j" "$bytes" $okv "$dev"
      echo "fetch-$scenario $tool #$rep: $j, $bytes bytes on the wire, ok=$okv" >&2
      bench_device_done "dev-$scenario-$tool-$rep"
    done
  done
  # SIGKILL at about half the download, then run again: deltafetch when half
  # the native delta's bytes are in its part store (rate-limited, so the
  # moment is controllable; from a remote server: at half the time of its
  # first remote run), stock pull at half the time of its first run over
  # the same link. Bytes on the wire count both runs.
  has kill || continue
  url=${remote:-http://127.0.0.1:$((port + 1))/$rname}
  for tool in stock deltafetch; do
    name=dev-kill-$rep
    [ $tool = stock ] && name=dev-kill-stock-$rep
    dev=$(bench_device "$base" "$name")
    sync; sleep 1
    mark=$(($(wc -l <"$log") + 1))
    if [ $tool = stock ]; then
      ostree remote add --repo="$dev" --no-gpg-verify origin "$url"
      ostree pull --repo="$dev" origin os >/dev/null 2>&1 &
    else
      "$DF" fetch -q --repo="$dev" --url="$url" --commit="$to" --ref=os &
    fi
    pid=$!
    t0=$(date +%s%N)
    while kill -0 $pid 2>/dev/null; do
      if [ $tool = stock ]; then
        [ $((($(date +%s%N) - t0) / 1000000)) -ge "${stock_kill_after_ms:-2000}" ] && break
      elif [ -n "$remote" ]; then
        [ $((($(date +%s%N) - t0) / 1000000)) -ge "${kill_after_ms:-1000}" ] && break
      else
        store=$(find "$dev/tmp" -maxdepth 1 -name 'deltafetch-fetch-*' 2>/dev/null | head -1)
        have=0
        [ -n "$store" ] && have=$(du -s --block-size=1 "$store" | cut -f1)
        [ "$have" -ge $((native_bytes / 2)) ] && break
      fi
      sleep 0.05
    done
    kill -9 $pid 2>/dev/null || true
    wait $pid 2>/dev/null || true
    sleep 1  # nginx writes the log line of a cut connection when it notices
    first=$(wire_since "$mark")
    mark=$(($(wc -l <"$log") + 1))
    j=$(fetch_one kill-resume $tool "$rep" "$url" "$dev")
    second=$(wire_since "$mark")
    got=$(got_commit $tool "$dev")
    okv=false; [ "$got" = "$to" ] && okv=true
    both=null
    [ "$first" != null ] && both=$((first + second))
    record kill-resume $tool "$rep" "$j" "$both" $okv "$dev"
    echo "kill-resume $tool #$rep: first run $first bytes, rerun $second bytes ($j), ok=$okv" >&2
    bench_device_done "$name"
  done
done

# The emulated WAN: one link, reshaped for each rate; the server root holds
# the repository (native deltas) and the stock view.
if has wan; then
  mkdir -p "$w/wanroot"
  ln -s "$repo" "$w/wanroot/native"
  ln -s "$w/stock-view/$rname" "$w/wanroot/stock"
  wan_up "$w" "$w/wanroot"
  for r in ${wan//,/ }; do
    wan_link "$r" "$rtt"
    bps=$(rate_bps "$r")
    for rep in $(seq 1 "$reps"); do
      for tool in "${tools[@]}"; do
        dev=$(bench_device "$base" "dev-wan$r-$tool-$rep")
        sync; sleep 1
        mark=$(($(wc -l <"$WAN_LOG") + 1))
        u=$WAN_URL/native
        [ $tool = deltafetch-stock ] && u=$WAN_URL/stock
        j=$(fetch_one fetch-wan $tool "$rep" "$u" "$dev")
        got=$(got_commit $tool "$dev")
        bytes=$(wire_since "$mark" "$WAN_LOG")
        okv=false; [ "$got" = "$to" ] && okv=true
        record fetch-wan $tool "$rep" "$j" "$bytes" $okv "$dev" ", \"link_bps\": $bps, \"rtt_ms\": $rtt"
        echo "fetch-wan $r rtt ${rtt}ms $tool #$rep: $j, $bytes bytes on the wire, ok=$okv" >&2
        bench_device_done "dev-wan$r-$tool-$rep"
      done
    done
  done
  wan_down
fi
for d in "$dev_dir"/dev-*-deltafetch-1 "$dev_dir"/dev-*-deltafetch-stock-1 "$dev_dir/dev-kill-1"; do
  ostree fsck --repo="$d" >"$out/fsck-$(basename "$d").txt" 2>&1 && echo "$(basename "$d"): fsck-clean" >&2
done

corpus="repo ${repo:-at $remote}"
[ -n "$repo" ] && [ -f "$repo/../os-pair.txt" ] && corpus="Debian 12 OS update: $(tr '\n' ';' <"$repo/../os-pair.txt")"
bench_meta "$out/meta.json" "$corpus" "$cmdline" "$disk_rate" \
  ", \"native_delta_bytes\": $native_bytes, \"stock_delta_bytes\": ${stock_bytes:-null}, \"rate_per_conn\": $(json_str "$rate"), \"rtt_ms\": $rtt"
bench_report "$out"
echo "results: $out" >&2
