#!/bin/bash
# deltafetch fetch against hostile servers: tests/fault-server.py cuts,
# resets, stalls and trickles transfers, ignores or misstates ranges, lies
# about lengths and encodings, flips bytes, redirects forever and changes
# files between ranges; nginx serves as the good mirror. Every case runs in
# a fresh copy of a device repo holding v1 (so the v1 -> v2 delta is used),
# under `timeout 60` with short limits, and checks the exit code, the JSON
# result, and that the repo ends either identical to v2 or exactly as it was.
# A kill -9 in the middle of a trickled fetch is resumed with bounded
# re-download.
. "$(dirname "$0")/lib.sh"

# DF_HOSTILE_DELTA=stock (tests/fetch-hostile-stock.sh): the server holds
# only stock deltas (from scratch to v1, v1 -> v2) and their indexes, so the
# same faults hit the stock path (xz parts, delta-indexes/).
KIND=${DF_HOSTILE_DELTA:-native}
if [ "$KIND" = stock ]; then
  serve_pair
  ostree static-delta generate --repo="$src" --empty --to=os^ >/dev/null
  ostree static-delta generate --repo="$src" --from=os^ --to=os >/dev/null
  ostree summary -u --repo="$src"
  ddir=$src/$(cd "$src" && find deltas -mindepth 2 -maxdepth 2 -type d -name '*-*')
  # delta-indexes/ names a commit in OSTree's modified base64, as deltas/ does
  IDX_REL=$(python3 -c 'import base64, sys
b = base64.b64encode(bytes.fromhex(sys.argv[1])).decode().rstrip("=").replace("/", "_")
print("delta-indexes/%s/%s.index" % (b[:2], b[2:]))' "$c2")
else
  publish_pair
  ddir=$src/deltafetch/v1/deltas/$c1-$c2
  IDX_REL=deltafetch/v1/indexes/$c2.index
fi
idx_size=$(stat -c %s "$src/$IDX_REL")
DREL=${ddir#"$src"/}
sb_size=$(stat -c %s "$ddir/superblock")
# The largest part of the v1 -> v2 delta: size and number.
read -r big_size big_part < <(for f in "$ddir"/[0-9]*; do echo "$(stat -c %s "$f") ${f##*/}"; done | sort -n | tail -1)
diag "v1 -> v2 delta: $(find "$ddir" -type f -name '[0-9]*' | wc -l) parts, largest is part $big_part ($big_size bytes)"
# fnmatch globs (on the URL path) for the fault server's rules.
PARTS="*/$DREL/[0-9]*" # every part of the v1 -> v2 delta
BIG="*/$DREL/$big_part"

# ---------------------------------------------------------------- servers

start_nginx "$T/www" || { not_ok "nginx did not start"; finish; exit 1; }
good=http://127.0.0.1:$NGINX_PORT/repo
NG_LOG=$NGINX_LOG

FS_LOG=$T/fault-server.log
: >"$FS_LOG"
python3 "$DF_SRCDIR/tests/fault-server.py" --root "$T/www" --port 0 --port-file "$T/fs.port" \
  --log "$FS_LOG" --seed 7 2>"$T/fs.err" &
FS_PID=$!
cleanup_hooks+=("kill $FS_PID 2>/dev/null")
for _ in $(seq 200); do
  [ -s "$T/fs.port" ] && break
  kill -0 "$FS_PID" 2>/dev/null || break
  sleep 0.05
done
FS_PORT=$(cat "$T/fs.port" 2>/dev/null || true)
[ -n "$FS_PORT" ] || { not_ok "fault server did not start"; sed 's/^/# /' "$T/fs.err"; finish; exit 1; }
ok "nginx on 127.0.0.1:$NGINX_PORT, fault server on 127.0.0.1:$FS_PORT"
bad=http://127.0.0.1:$FS_PORT/repo
ctl=http://127.0.0.1:$FS_PORT/__control

# rules JSON: replace the fault server's rules
rules () {
  local code
  code=$(curl -s -o "$T/rules.out" -w '%{http_code}' -X POST --data-binary "$1" "$ctl/rules")
  [ "$code" = 200 ] || { not_ok "setting fault rules ($code): $(cat "$T/rules.out")"; return 1; }
}
fs_json () { curl -s "$ctl/$1" | python3 -c "import json,sys; d=json.load(sys.stdin); print($2)"; }
fs_bytes () { fs_json stats 'd["bytes_sent"]'; }
# fs_settled: the fault server's byte count once it stops changing
fs_settled () {
  local a b
  b=$(fs_bytes)
  for _ in $(seq 40); do
    sleep 0.25
    a=$b b=$(fs_bytes)
    [ "$a" = "$b" ] && break
  done
  echo "$b"
}
# fslog FROM EXPR: a Python expression over L, the fault server's log
# entries (dicts: path, range, status, bytes_sent, fault, ...) from line FROM
fslog () {
  python3 - "$FS_LOG" "$1" "$2" <<'PY'
import json, sys
lines = open(sys.argv[1]).read().splitlines()[int(sys.argv[2]) - 1:]
L = [json.loads(l) for l in lines if l.strip()]
print(eval(sys.argv[3]))
PY
}
# jget FILE FIELD: FIELD of the final "done" or "error" JSON line
jget () {
  python3 - "$1" "$2" <<'PY'
import json, sys
v = None
for l in open(sys.argv[1]):
    try:
        e = json.loads(l)
    except ValueError:
        continue
    if e.get("event") in ("done", "error"):
        v = e.get(sys.argv[2])
print("" if v is None else v)
PY
}
count_lines () { [ -f "$1" ] && wc -l <"$1" || echo 0; }

# ---------------------------------------------------------------- cases

# The device: v1 brought in by a clean from-scratch fetch from nginx.
base=$T/base
ostree init --repo="$base" --mode=bare
check "device: v1 fetched from scratch from nginx" \
  "$DF" fetch --repo="$base" --url="$good" --commit="$c1" --ref=os --json
cp "$T/check.out" "$T/base.json"
want_path=scratch
[ "$KIND" = stock ] && want_path=stock-scratch
check "device: the from-scratch path ($want_path) was taken" test "$(jget "$T/base.json" path)" = "$want_path"
check "device: v1 fsck-clean and identical" checkout_matches "$base" "$c1" "$T/v1"

# run_fetch NAME [options...]: fetches v2 into $DEV under `timeout 60` with
# short limits (later options override them). Sets RC, MS (elapsed ms),
# OUT (JSON lines) and ERR (stderr), and LOG_FROM/NG_FROM (first log line of
# this run in the fault server's and nginx's logs).
run_fetch () {
  local name=$1 t0
  shift
  OUT=$T/$name.json ERR=$T/$name.err
  LOG_FROM=$(($(count_lines "$FS_LOG") + 1))
  NG_FROM=$(($(count_lines "$NG_LOG") + 1))
  t0=$(date +%s%N)
  RC=0
  timeout 60 "$DF" fetch --repo="$DEV" --commit="$c2" --ref=os --range-size=64K --low-speed-time=2 \
    --connect-timeout=3 --retries=2 --json "$@" >"$OUT" 2>"$ERR" || RC=$?
  MS=$((($(date +%s%N) - t0) / 1000000))
}
# fetch_case NAME [options...]: run_fetch into a fresh copy of the device
fetch_case () {
  DEV=$T/dev-$1
  rm -rf "$DEV"
  cp -a "$base" "$DEV"
  BEFORE=$(objects_list "$DEV")
  run_fetch "$@"
}
# rc_is "CODES" DESCRIPTION: the last fetch exited with one of CODES and,
# when it failed, printed exactly one line on stderr and a JSON error line
# with that exit code.
rc_is () {
  local want=$1 d=$2 lines c hit=0
  lines=$(wc -l <"$ERR")
  for c in $want; do [ "$RC" = "$c" ] && hit=1; done
  if [ "$hit" = 1 ] && { [ "$RC" = 0 ] || { [ "$lines" = 1 ] && [ "$(jget "$OUT" exit_code)" = "$RC" ]; }; }; then
    ok "$d (exit $RC, $MS ms)"
    [ "$RC" = 0 ] || diag "stderr: $(cut -c1-300 "$ERR")"
  else
    not_ok "$d: exit $RC (want $want) after $MS ms, $lines stderr lines"
    sed 's/^/# /' "$ERR" | head -5
    grep -v '"progress"' "$OUT" | tail -5 | sed 's/^/# /'
  fi
}
# done_ge FIELD N DESC: the JSON result's FIELD >= N
done_ge () {
  local v
  v=$(jget "$OUT" "$1")
  check "$3: $1 = $v >= $2" test "${v:-x}" -ge "$2"
}
# completed DESC: v2 in the repo, identical to its tree, ref moved, JSON done
completed () {
  check "$1: JSON result is done" test "$(jget "$OUT" event)" = "done"
  check "$1: v2 fsck-clean and identical" checkout_matches "$DEV" "$c2" "$T/v2"
  check "$1: ref moved to v2" test "$(rev "$DEV" os)" = "$c2"
}
# untouched DESC: objects/ and the ref exactly as before, fsck-clean
untouched () {
  check "$1: objects/ unchanged" test "$BEFORE" = "$(objects_list "$DEV")"
  check "$1: ref still at v1" test "$(rev "$DEV" os)" = "$c1"
  check "$1: repo fsck-clean" ostree fsck --repo="$DEV"
}
# within MS-LIMIT DESC: the last fetch took less than MS-LIMIT ms
within () { check "$2: took $MS ms < $1 ms" test "$MS" -lt "$1"; }

# A clean fetch from nginx: what the v1 -> v2 fetch downloads.
fetch_case clean --url="$good"
rc_is 0 "clean fetch from nginx"
clean_dl=$(jget "$OUT" bytes_downloaded)

# no_redownload DESC: the last fetch downloaded no byte twice: the retry of
# a cut range asked only for the bytes after the cut.
no_redownload () {
  local dl
  dl=$(jget "$OUT" bytes_downloaded)
  check "$1: downloaded $dl = $clean_dl of a clean fetch (the rest of a cut range only)" \
    test "${dl:-x}" = "${clean_dl:-y}"
  check "$1: a retry asked for the rest of a range" \
    test "$(fslog "$LOG_FROM" 'sum(1 for e in L if e["range"] and int(e["range"].split("=")[1].split("-")[0]) % 65536 != 0)')" -ge 1
}

# 1. The connection is cut (FIN) 1000 bytes into a part, twice: retried.
rules '[{"match": "'"$PARTS"'", "fault": "truncate", "after": 1000, "count": 2}]'
fetch_case truncate --url="$bad"
rc_is 0 "truncate: connection cut mid-part twice"
completed "truncate"
done_ge retries 1 "truncate"
no_redownload "truncate"

# 2. TCP reset mid-part, twice: retried (case 22 of HOSTILE-CASES.md).
rules '[{"match": "'"$PARTS"'", "fault": "reset", "after": 1000, "count": 2}]'
fetch_case reset --url="$bad"
rc_is 0 "reset: TCP RST mid-part twice"
completed "reset"
done_ge retries 1 "reset"
no_redownload "reset"

# 3. The server ignores Range and answers 200 with the whole part: the whole
# part is taken (the mirror stays in use). Every range in flight gets the
# whole file; only the first reply is read, the others are dropped at their
# headers, so each part comes down once: exactly what a clean fetch takes.
rules '[{"match": "'"$PARTS"'", "fault": "ignore_range"}]'
fetch_case ignore-range --url="$bad"
rc_is 0 "ignore_range: whole-file 200 replies to ranged requests"
completed "ignore_range"
check "ignore_range: ranged requests were answered 200" \
  test "$(fslog "$LOG_FROM" 'sum(1 for e in L if e["fault"] == "ignore_range" and e["range"] and e["status"] == 200)')" -ge 1
check "ignore_range: the mirror was not demoted" test "$(jget "$OUT" mirror_switches)" = 0
dl=$(jget "$OUT" bytes_downloaded)
check "ignore_range: downloaded $dl = $clean_dl of a clean fetch" test "${dl:-x}" = "${clean_dl:-y}"

# 4. A 206 whose Content-Range is not what was asked: a wrong start, then a
# 20-digit total. One mirror: refused (exit 9), nothing written. With nginx
# as a second mirror: the bad one is demoted and the fetch completes.
rules '[{"match": "'"$PARTS"'", "fault": "bad_content_range", "header": "bytes 1-65536/'"$big_size"'"}]'
fetch_case bad-cr-start --url="$bad" --retries=1
rc_is 9 "bad Content-Range (wrong start), one mirror"
untouched "bad Content-Range (wrong start)"
rules '[{"match": "'"$PARTS"'", "fault": "bad_content_range", "header": "bytes 0-65535/12345678901234567890"}]'
fetch_case bad-cr-total --url="$bad" --retries=1
rc_is 9 "bad Content-Range (20-digit total), one mirror"
untouched "bad Content-Range (20-digit total)"
rules '[{"match": "'"$PARTS"'", "fault": "bad_content_range", "header": "bytes 1-65536/'"$big_size"'"}]'
fetch_case bad-cr-mirror --url="$bad" --url="$good" --retries=1
rc_is 0 "bad Content-Range, then nginx as a second mirror"
completed "bad Content-Range + good mirror"
done_ge mirror_switches 1 "bad Content-Range + good mirror"
check "bad Content-Range + good mirror: nginx served parts" \
  bash -c "tail -n +$NG_FROM '$NG_LOG' | grep -q '/$DREL/[0-9]'"

# 5. A single range answered as multipart/byteranges: either understood or
# refused; refused means nothing written.
rules '[{"match": "'"$PARTS"'", "fault": "multipart"}]'
fetch_case multipart --url="$bad"
rc_is "0 9" "multipart/byteranges reply"
if [ "$RC" = 0 ]; then completed "multipart"; else untouched "multipart"; fi

# 6. One mirror flips a byte of the largest part. Second mirror nginx:
# completes, the flipping mirror demoted. Alone: exit 4, nothing written.
flip='[{"match": "'"$BIG"'", "fault": "flip", "offset": '"$((big_size / 2))"'}]'
rules "$flip"
fetch_case flip-mirror --url="$bad" --url="$good"
rc_is 0 "flipped byte in part $big_part, then nginx as a second mirror"
completed "flip + good mirror"
done_ge mirror_switches 1 "flip + good mirror"
rules "$flip"
fetch_case flip-alone --url="$bad"
rc_is 4 "flipped byte in part $big_part, one mirror"
untouched "flip alone"

# 7. Endless garbage for the largest part, without and with a declared
# length. Without: more bytes than the part has -> exit 9. With a
# Content-Length equal to the part's size the declared bytes arrive in full
# and are garbage: refused as corrupt (4) or network (9). Either way the
# fault server stops streaming once the fetch is gone: every endless reply it
# started has ended and been logged. Its per-request byte counts include what
# the loopback socket buffers absorbed (several MiB with autotuning), so the
# bound is twice the part plus 8 MiB of kernel buffers.
for variant in no-length length; do
  [ "$variant" = length ] && len=', "length": true' || len=''
  rules '[{"match": "'"$BIG"'", "fault": "endless", "count": 1000'"$len"'}]'
  fetch_case "endless-$variant" --url="$bad"
  [ "$variant" = length ] && want="4 9" || want=9
  rc_is "$want" "endless body ($variant) on part $big_part"
  within 60000 "endless ($variant)"
  untouched "endless ($variant)"
  started=$(fs_json rules '1000 - d[0]["remaining"]')
  for _ in $(seq 40); do
    ended=$(fslog "$LOG_FROM" 'sum(1 for e in L if e["fault"] == "endless")')
    [ "$ended" = "$started" ] && break
    sleep 0.25
  done
  check "endless ($variant): all $started endless replies ended ($ended logged)" test "$ended" = "$started"
  most=$(fslog "$LOG_FROM" 'max([e["bytes_sent"] for e in L if e["fault"] == "endless"] or [0])')
  diag "endless ($variant): at most $most bytes sent in one reply, part is $big_size bytes"
  check "endless ($variant): bytes sent per reply $most < 2 x part + 8 MiB" \
    test "${most:-x}" -lt "$((2 * big_size + 8 * 1024 * 1024))"
done

# 8. A Content-Length of 10^15: refused on the headers, quickly.
rules '[{"match": "'"$BIG"'", "fault": "oversized_length", "count": 1000}]'
fetch_case oversized --url="$bad"
rc_is 9 "oversized Content-Length on part $big_part"
within 10000 "oversized Content-Length"
check "oversized Content-Length: refused for its Content-Length" grep -q "Content-Length" "$ERR"
untouched "oversized Content-Length"
most=$(fslog "$LOG_FROM" 'max([e["bytes_sent"] for e in L if e["fault"] == "oversized_length"] or [0])')
# The client reads no body byte; what the server could push is what the
# kernel's socket buffers took before the client closed (more when the
# client is slow, as under a sanitizer), far below the declared 10^15.
check "oversized Content-Length: at most $most bytes sent per reply (< 16 MiB)" test "${most:-x}" -lt 16777216

# 9. A trickle below the low-speed limit: slow retrieval (exit 10).
rules '[{"match": "'"$PARTS"'", "fault": "trickle", "rate": 200}]'
fetch_case trickle-slow --url="$bad" --low-speed-limit=1000 --low-speed-time=2 --retries=1
rc_is 10 "trickle at 200 B/s under a 1000 B/s limit"
within 30000 "trickle at 200 B/s"
untouched "trickle at 200 B/s"

# 10. A trickle just above the low-speed limit on the largest part, fetched
# as one range: the transfer's deadline (size / min-rate + connect timeout +
# low-speed time) ends it long before the trickle would.
rules '[{"match": "'"$BIG"'", "fault": "trickle", "rate": 3000}]'
fetch_case trickle-deadline --url="$bad" --low-speed-limit=1000 --low-speed-time=2 --min-rate=50000 \
  --retries=1 --range-size=4M
trickle_ms=$((big_size * 1000 / 3000))
deadline_ms=$((big_size * 1000 / 50000 + 5000))
rc_is 10 "trickle at 3000 B/s above a 1000 B/s limit, min rate 50000 B/s"
check "trickle at 3000 B/s: $MS ms < a third of the trickle's $trickle_ms ms" test "$MS" -lt "$((trickle_ms / 3))"
within 30000 "trickle at 3000 B/s"
check "trickle at 3000 B/s: ended by the $deadline_ms ms deadline (not earlier)" test "$MS" -ge "$((deadline_ms - 500))"
untouched "trickle at 3000 B/s"

# 11. 503 and 408 with an overall probability of 0.5 (seeded). The counts cap
# the faults at 5, below --retries=6, so no range can run out of attempts.
rules '[{"match": "'"$PARTS"'", "fault": "status", "code": 503, "probability": 0.25, "count": 3},
        {"match": "'"$PARTS"'", "fault": "status", "code": 408, "probability": 0.3334, "count": 2}]'
fetch_case status --url="$bad" --retries=6
rc_is 0 "random 503/408 replies"
completed "503/408"
injected=$(fslog "$LOG_FROM" 'sum(1 for e in L if e["fault"] == "status")')
done_ge retries 1 "503/408 ($injected injected)"
check "503/408: retries $(jget "$OUT" retries) <= $injected injected" test "$(jget "$OUT" retries)" -le "$injected"

# 12. A redirect loop, on the parts and on the index: exit 9.
rules '[{"match": "'"$PARTS"'", "fault": "redirect_loop"}]'
fetch_case redirect-loop --url="$bad"
rc_is 9 "redirect loop on the parts"
within 30000 "redirect loop on the parts"
untouched "redirect loop on the parts"
rules '[{"match": "*.index", "fault": "redirect_loop"}]'
fetch_case redirect-loop-index --url="$bad" --no-pull-fallback
rc_is 9 "redirect loop on the index"
untouched "redirect loop on the index"

# 13. A gzip bomb (Content-Encoding: gzip inflating to 1 GiB) for the parts.
rules '[{"match": "'"$PARTS"'", "fault": "gzip_bomb"}]'
fetch_case gzip-bomb --url="$bad"
rc_is "9 4" "gzip bomb on the parts"
within 30000 "gzip bomb"
untouched "gzip bomb"

# 14. The file changes between ranges. On every request (If-Range never
# matches, every reply carries a new ETag): a part restarts at most a few
# times; it either fails with exit 9 ("keeps changing") or completes, once a
# 200 reply to an If-Range request has made the engine take whole files, each
# from a single reply (which one depends on timing). Either way it ends
# quickly and the repo is consistent. On the first two requests only: the
# part restarts and the fetch completes.
rules '[{"match": "'"$PARTS"'", "fault": "change_etag"}]'
fetch_case change-etag --url="$bad"
rc_is "9 0" "ETag changes on every request"
within 30000 "ETag changes"
if [ "$RC" = 0 ]; then
  diag "ETag changes on every request: completed from whole-file replies"
  completed "ETag changes"
  done_ge retries 1 "ETag changes"
else
  diag "ETag changes on every request: refused"
  check "ETag changes: the error says the file changed" grep -q "chang" "$ERR"
  untouched "ETag changes"
fi
rules '[{"match": "'"$PARTS"'", "fault": "change_etag", "count": 2}]'
fetch_case change-etag-twice --url="$bad"
rc_is 0 "ETag changes on two requests"
completed "ETag changes twice"
done_ge retries 1 "ETag changes twice"

# 15. Lying lengths (case 3 of HOSTILE-CASES.md). A chunked reply carrying
# 64 KiB more than the range: the write callback refuses the first byte past
# the range, and the mirror is demoted at once, as for every reply that
# breaks the protocol. One mirror: exit 9 naming the excess, nothing written.
# With nginx as a second mirror: completed through nginx.
rules '[{"match": "'"$PARTS"'", "fault": "chunked_more", "extra": 65536}]'
fetch_case chunked-more --url="$bad" --retries=1
rc_is 9 "chunked reply longer than the range, one mirror"
check "chunked longer: the error names the excess" grep -q "more than the" "$ERR"
within 30000 "chunked longer"
untouched "chunked longer"
fetch_case chunked-more-mirror --url="$bad" --url="$good"
rc_is 0 "chunked reply longer than the range, nginx second"
completed "chunked longer + good mirror"
done_ge mirror_switches 1 "chunked longer + good mirror"
check "chunked longer + good mirror: nginx served parts" \
  bash -c "tail -n +$NG_FROM '$NG_LOG' | grep -q '/$DREL/[0-9]'"
# A correct Content-Length followed by 1 MiB more before the close: libcurl
# stops at the declared length, the excess never reaches the part store, the
# downloaded bytes are exactly the delta's.
rules '[{"match": "'"$PARTS"'", "fault": "lying_length", "extra": 1048576}]'
fetch_case lying-length --url="$bad"
rc_is 0 "Content-Length then 1 MiB more, close-delimited"
completed "Content-Length then more"
dl=$(jget "$OUT" bytes_downloaded) db=$(jget "$OUT" delta_bytes)
check "Content-Length then more: downloaded $dl <= delta $db + index + superblock" \
  test "${dl:-x}" -le "$((db + idx_size + sb_size))"
# A Content-Length larger than the range asked for: refused on the headers.
rules '[{"match": "'"$PARTS"'", "fault": "lying_length", "declared": 999999999}]'
fetch_case lying-declared --url="$bad" --retries=1
rc_is 9 "Content-Length larger than the range"
check "Content-Length larger than the range: refused for its Content-Length" grep -q "Content-Length" "$ERR"
untouched "Content-Length larger than the range"

# 16. Headers and 1000 body bytes, then silence (case 5). Always, one mirror:
# slow retrieval (exit 10) within the low-speed window per attempt. On the
# first two requests: retried and completed.
rules '[{"match": "'"$PARTS"'", "fault": "stall", "after": 1000, "seconds": 60}]'
fetch_case stall-body --url="$bad" --retries=1
rc_is 10 "stall after the headers, one mirror"
within 20000 "stall after the headers"
untouched "stall after the headers"
rules '[{"match": "'"$PARTS"'", "fault": "stall", "after": 1000, "seconds": 60, "count": 2}]'
fetch_case stall-body-twice --url="$bad"
rc_is 0 "stall after the headers, twice"
completed "stall after the headers twice"
done_ge retries 1 "stall after the headers twice"

# 17. kill -9 in the middle of a trickled fetch, then a rerun: the ref is
# still v1 after the kill, the rerun reuses what was downloaded, and both
# runs together download at most the delta plus one range per connection
# (plus the index and superblock twice).
rules '[{"match": "'"$PARTS"'", "fault": "trickle", "rate": 30000}]'
DEV=$T/dev-kill
rm -rf "$DEV"
cp -a "$base" "$DEV"
curl -s -o /dev/null -X POST "$ctl/reset"
LOG_FROM=$(($(count_lines "$FS_LOG") + 1))
"$DF" fetch --repo="$DEV" --url="$bad" --commit="$c2" --ref=os --range-size=64K --connections=4 --json \
  >"$T/kill-first.json" 2>"$T/kill-first.err" &
pid=$!
# Kill once two whole 64 KiB ranges went out (about 2 s in, of about 6 s).
for _ in $(seq 300); do
  n=$(fslog "$LOG_FROM" 'sum(1 for e in L if e["fault"] == "trickle" and e["bytes_sent"] >= 65536)')
  [ "$n" -ge 2 ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
sleep 0.5
if kill -9 "$pid" 2>/dev/null; then
  wait "$pid" 2>/dev/null
  ok "kill -9: fetch killed mid-download"
else
  wait "$pid" 2>/dev/null
  not_ok "kill -9: the first run ended before it could be killed"
fi
check "kill -9: the first run reported no result" bash -c "! grep -q '\"event\":\"done\"' '$T/kill-first.json'"
check "kill -9: ref still at v1" test "$(rev "$DEV" os)" = "$c1"
check "kill -9: repo fsck-clean" ostree fsck --repo="$DEV"
first=$(fs_settled)
diag "kill -9: the first run was sent $first bytes"
rules '[]'
run_fetch kill-rerun --url="$bad" --range-size=64K --connections=4
rc_is 0 "kill -9: rerun"
completed "kill -9 rerun"
done_ge bytes_reused 1 "kill -9 rerun"
dl=$(jget "$OUT" bytes_downloaded) db=$(jget "$OUT" delta_bytes)
bound=$((db + 4 * 65536 + idx_size + sb_size))
check "kill -9: first run $first + rerun $dl bytes <= $bound" test "$((first + ${dl:-999999999}))" -le "$bound"

# 18. A first mirror that answers 404 for the parts (a stale or partial
# mirror), nginx second: demoted at once, completed through nginx.
rules '[{"match": "'"$PARTS"'", "fault": "status", "code": 404}]'
fetch_case mirror-404 --url="$bad" --url="$good"
rc_is 0 "first mirror 404 for the parts, nginx second"
completed "404 mirror"
done_ge mirror_switches 1 "404 mirror"
check "404 mirror: no part byte from the first mirror" \
  test "$(fslog "$LOG_FROM" 'sum(e["bytes_sent"] for e in L if e["fault"] != "status" and "/'"$DREL"'/" in e["path"] and e["path"].rsplit("/", 1)[1].isdigit())')" = 0

# 19. A server that accepts connections and never answers, with nginx as a
# second mirror: completes through nginx.
rules '[{"match": "*", "fault": "stall_before_headers", "seconds": 60}]'
fetch_case stall --url="$bad" --url="$good"
rc_is 0 "stalled first mirror, nginx second"
completed "stalled mirror"
done_ge mirror_switches 1 "stalled mirror"
check "stalled mirror: nginx served parts" bash -c "tail -n +$NG_FROM '$NG_LOG' | grep -q '/$DREL/[0-9]'"
# Failing over takes the index and superblock attempts on the stalled
# mirror (2 x 2 s each at most), then nginx serves every part.
check "stalled mirror: failed over in $MS ms < 12000 ms" test "$MS" -lt 12000
rules '[]'

# switched_from URL DESC: the last fetch emitted a mirror-switch event for URL
switched_from () {
  check "$2: a mirror-switch event names $1" python3 - "$OUT" "$1" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
assert any(e["event"] == "mirror-switch" and e.get("url") == sys.argv[2] for e in ev), ev[-3:]
PY
}
# flip_at FILE DIGEST-OF: an offset inside FILE where the SHA-256 of
# DIGEST-OF is written (the index's or delta table's entry for that
# superblock), so that flipping it breaks the link between the two
flip_at () {
  python3 - "$1" "$2" <<'PY'
import hashlib, sys
data = open(sys.argv[1], "rb").read()
at = data.find(hashlib.sha256(open(sys.argv[2], "rb").read()).digest())
assert at >= 0, "digest not found"
print(at + 7)
PY
}
# small_flip NAME PATH OFFSET WHAT [second-mirror]: the fault server flips
# byte OFFSET of the file at PATH (under the repo) and nothing else. With a
# good second mirror (nginx, unless the fault server's repo2 is given) the
# fetch completes with that mirror's copy of the file, the fault server
# demoted with a mirror-switch event; alone, the files still disagree when
# asked for fresh copies (a cache may hold an old index: not corruption), so
# it fails with exit 9, retryable, and leaves the repo untouched.
small_flip () {
  local name=$1 path=$2 off=$3 what=$4 second=${5:-$good} rule
  rule='[{"match": "*/repo/'"$path"'", "fault": "flip", "offset": '"$off"'}'${EXTRA_RULES:-}']'
  rules "$rule"
  fetch_case "$name-mirror" --url="$bad" --url="$second"
  rc_is 0 "$what flipped by the first mirror, a good second mirror"
  completed "$what flipped + good mirror"
  switched_from "$bad" "$what flipped + good mirror"
  check "$what flipped + good mirror: the fault server flipped it" \
    test "$(fslog "$LOG_FROM" 'sum(1 for e in L if e["fault"] == "flip")')" -ge 1
  if [ "$second" = "$good" ]; then
    check "$what flipped + good mirror: nginx served it" bash -c "tail -n +$NG_FROM '$NG_LOG' | grep -q ' /repo/$path[ ?]'"
  else
    check "$what flipped + good mirror: the second mirror served it" \
      test "$(fslog "$LOG_FROM" 'sum(1 for e in L if e["path"] == "/repo2/'"$path"'" and e["status"] == 200)')" -ge 1
  fi
  rules "$rule"
  fetch_case "$name-alone" --url="$bad"
  rc_is 9 "$what flipped by the only mirror"
  check "$what flipped, alone: every mirror failed, also asked for fresh copies" \
    grep -q "also when asked for fresh copies (every mirror failed)" "$ERR"
  check "$what flipped, alone: the JSON error is network, retryable" \
    test "$(jget "$OUT" error) $(jget "$OUT" retryable)" = "network True"
  check "$what flipped, alone: the second try asked for fresh copies" \
    test "$(fslog "$LOG_FROM" 'sum(1 for e in L if "fresh=" in (e.get("query") or ""))')" -ge 1
  untouched "$what flipped, alone"
}

# stale_once NAME WHAT: the first request for the index is redirected to an
# old copy of it (its superblock digest changed, as after the delta was made
# again), as a cache in front of the server might serve: the superblock does
# not match it, the fetch asks again for fresh copies (no-cache, a new query)
# on the same mirror, gets the current index and completes.
stale_once () {
  local name=$1 what=$2
  mkdir -p "$(dirname "$T/www/stale/$IDX_REL")"
  python3 - "$src/$IDX_REL" "$T/www/stale/$IDX_REL" "$(flip_at "$src/$IDX_REL" "$ddir/superblock")" <<'PY'
import sys
data = bytearray(open(sys.argv[1], "rb").read())
data[int(sys.argv[3])] ^= 0xff
open(sys.argv[2], "wb").write(data)
PY
  rules '[{"match": "*/repo/'"$IDX_REL"'", "fault": "redirect", "to": "/stale/'"$IDX_REL"'", "count": 1}]'
  fetch_case "$name" --url="$bad"
  rc_is 0 "$what stale in a cache once"
  completed "$what stale once"
  check "$what stale once: a retry event says it asked for fresh copies" \
    grep -q '"event":"retry".*asking again for fresh copies' "$OUT"
  check "$what stale once: no mirror was demoted" bash -c "! grep -q '\"event\":\"mirror-switch\"' '$OUT'"
  check "$what stale once: the index asked for fresh had a new query" \
    test "$(fslog "$LOG_FROM" 'sum(1 for e in L if e["path"] == "/repo/'"$IDX_REL"'" and "fresh=" in (e.get("query") or ""))')" -ge 1
}

# 20. A mirror that damages one small file the fetcher reads before any part
# (case 16 for the index, the superblock and the stock delta table): the
# file fails its check (the superblock against the index or digest from the
# same mirror), that mirror is demoted, and discovery starts over on the
# next, index included.
if [ "$KIND" = native ]; then
  small_flip index "$IDX_REL" "$(flip_at "$src/$IDX_REL" "$ddir/superblock")" "native index"
  small_flip superblock "$DREL/superblock" "$((sb_size / 2))" "native superblock"
else
  small_flip delta-index "$IDX_REL" "$(flip_at "$src/$IDX_REL" "$ddir/superblock")" "stock delta-indexes/ entry"
  small_flip stock-superblock "$DREL/superblock" "$((sb_size / 2))" "stock superblock"
  # The summary is read when no mirror has a delta-indexes/ entry: the
  # second mirror is the fault server again, under another name, without a
  # fault on what it serves there.
  ln -s repo "$T/www/repo2"
  EXTRA_RULES=', {"match": "*/delta-indexes/*", "fault": "status", "code": 404}' \
    small_flip summary summary "$(flip_at "$src/summary" "$ddir/superblock")" "stock summary" \
    "http://127.0.0.1:$FS_PORT/repo2"
fi
stale_once stale-index "the index"
rules '[]'

# 21. Header floods (case 3 for headers): one header line over libcurl's
# 100 KiB cap on a line, and 400 lines of 1 kB, over its 300 KiB in all.
# Refused (exit 9) saying what happened, not "Out of memory".
rules '[{"match": "'"$PARTS"'", "fault": "header_flood", "size": 200000}]'
fetch_case header-line --url="$bad" --retries=1
rc_is 9 "a 200 kB header line on the parts"
check "200 kB header line: the error says a header line exceeded 102400 bytes" \
  grep -q "a reply header line exceeded 102400 bytes" "$ERR"
within 30000 "200 kB header line"
untouched "200 kB header line"
rules '[{"match": "'"$PARTS"'", "fault": "header_flood", "size": 1024, "lines": 400}]'
fetch_case header-lines --url="$bad" --retries=1
rc_is 9 "400 header lines of 1 kB on the parts"
check "400 header lines: the error names the headers' size" grep -qi "response headers" "$ERR"
within 30000 "400 header lines"
untouched "400 header lines"
rules '[]'

# 22. No delta at all on the server: fetch hands over to libostree's pull,
# which has no slow-retrieval defence of its own (cases 5, 6 and 7 through
# the fallback). A repository with both commits and nothing else, on both
# servers; the faults hit its objects, the v2 commit object included, so a
# refused pull has written nothing.
plain=$T/www/plain
ostree init --repo="$plain" --mode=archive
ostree pull-local --repo="$plain" "$src" "$c1" "$c2" >/dev/null
pbad=http://127.0.0.1:$FS_PORT/plain
POBJ="*/plain/objects/*"
# pulled DESC: the fetch took libostree's pull; no remote of it is left
pulled () {
  check "$1: the path was libostree's pull" grep -q '"event":"start",.*"path":"pull"' "$OUT"
  check "$1: no fallback remote left in the repo config" bash -c "! grep -q deltafetch-fallback '$DEV/config'"
}
# Headers, then silence: the low-speed limit ends it after its 2 s.
rules '[{"match": "'"$POBJ"'", "fault": "stall", "seconds": 60}]'
fetch_case pull-stall --url="$pbad" --min-rate=0
rc_is 10 "fallback pull: stall after the headers"
within 15000 "fallback pull: stall after the headers"
check "fallback pull stall: the error says what was too slow" grep -q "too slow: .*below the low-speed limit" "$ERR"
untouched "fallback pull stall"
pulled "fallback pull stall"
# Bursts of 30 bytes 1.5 s apart: never silent for long, 20 B/s on average,
# 50 times below the 1000 B/s limit.
rules '[{"match": "'"$POBJ"'", "fault": "burst", "bytes": 30, "seconds": 1.5}]'
fetch_case pull-burst --url="$pbad" --low-speed-limit=1000 --min-rate=0
rc_is 10 "fallback pull: bursts of 30 bytes every 1.5 s"
within 15000 "fallback pull: bursts"
check "fallback pull bursts: the error says what was too slow" grep -q "too slow: .*below the low-speed limit" "$ERR"
untouched "fallback pull bursts"
pulled "fallback pull bursts"
# File objects in bursts well above the low-speed limit, together below the
# minimum rate: the deadline ends it once the grace (connect timeout + low-
# speed time, 5 s) is over, not before. What the pull wrote are objects of v2.
rules '[{"match": "*/plain/objects/*.filez", "fault": "burst", "bytes": 500, "seconds": 0.25}]'
fetch_case pull-deadline --url="$pbad" --low-speed-limit=1000 --min-rate=50000
rc_is 10 "fallback pull: 2000 B/s per object, 50000 B/s minimum rate"
within 20000 "fallback pull: below the minimum rate"
check "fallback pull below the minimum rate: not before the 5 s grace" test "$MS" -ge 5000
check "fallback pull below the minimum rate: the error says what was too slow" \
  grep -q "too slow: .*below the minimum average rate of 50000" "$ERR"
check "fallback pull below the minimum rate: ref still at v1" test "$(rev "$DEV" os)" = "$c1"
check "fallback pull below the minimum rate: repo fsck-clean" ostree fsck --repo="$DEV"
check "fallback pull below the minimum rate: new objects are all objects of v2" \
  test -z "$(comm -13 <(objects_list "$T/dev-clean") <(objects_list "$DEV"))"
pulled "fallback pull below the minimum rate"
# Slow but acceptable: every object in bursts of 4 kB every 0.1 s, above a
# 10000 B/s low-speed limit and a 20000 B/s minimum rate: completes.
rules '[{"match": "'"$POBJ"'", "fault": "burst", "bytes": 4096, "seconds": 0.1}]'
fetch_case pull-slow --url="$pbad" --low-speed-limit=10000 --min-rate=20000
rc_is 0 "fallback pull through a slow but acceptable server"
completed "fallback pull, slow but acceptable"
pulled "fallback pull, slow but acceptable"
check "fallback pull, slow but acceptable: the objects came in bursts" \
  test "$(fslog "$LOG_FROM" 'sum(1 for e in L if e["fault"] == "burst")')" -ge 1
# kill -9 while the pull stalls: the config stays byte-identical (the
# pull's remote lives in a file under tmp/); the next fetch of any kind
# removes that file.
rules '[{"match": "'"$POBJ"'", "fault": "stall", "seconds": 60}]'
DEV=$T/dev-pull-kill
rm -rf "$DEV"
cp -a "$base" "$DEV"
conf=$(sha256sum <"$DEV/config")
LOG_FROM=$(($(count_lines "$FS_LOG") + 1))
"$DF" fetch --repo="$DEV" --url="$pbad" --commit="$c2" --ref=os --json >"$T/pull-kill.json" 2>&1 &
pid=$!
for _ in $(seq 200); do
  [ -e "$DEV/tmp/deltafetch-remote/deltafetch-fallback.conf" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
sleep 0.5
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
check "fallback pull kill -9: the pull's remote was in its own file" \
  test -e "$DEV/tmp/deltafetch-remote/deltafetch-fallback.conf"
check "fallback pull kill -9: the config is byte-identical" test "$(sha256sum <"$DEV/config")" = "$conf"
rules '[]'
run_fetch pull-kill-rerun --url="$good"
rc_is 0 "fallback pull kill -9: a fetch from nginx afterwards"
completed "fallback pull kill -9, then a fetch"
check "fallback pull kill -9, then a fetch: the remote file is gone, the config unchanged" \
  bash -c "[ ! -e '$DEV/tmp/deltafetch-remote' ] && [ '$(sha256sum <"$DEV/config")' = '$conf' ]"

finish
