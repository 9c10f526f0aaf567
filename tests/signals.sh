#!/bin/bash
# SIGINT and SIGTERM cancel fetch, apply and generate cleanly: exit 130
# with one line saying so, a fetch's JSON stream ending with an error event
# named "cancelled", nothing half-done left (fsck-clean, ref unchanged, no
# delta directory), and the next run resumes: a fetch reuses the parts it
# had. Each cancellation's latency (signal to exit) is reported and held
# to a generous bound; the target is under a second.
. "$(dirname "$0")/lib.sh"
# Latency bound (ms): three times the 1 s target, for a loaded machine.
BOUND_MS=3000

serve_pair --scale=4 --large-file=24000000
"$DF" generate -q --repo="$src" --from=os^ --to=os >/dev/null
# A from-scratch delta (the large file included) for the apply, made fast.
"$DF" generate -q --repo="$src" --empty --to=os --level=3 --out="$T/scratch" >/dev/null
start_nginx "$T/www" "" "limit_rate 256k;" || { not_ok "nginx did not start"; finish; exit 1; }
url=http://127.0.0.1:$NGINX_PORT/repo
base=$T/base
ostree init --repo="$base" --mode=bare
ostree pull-local --repo="$base" "$src" "$c1" >/dev/null
ostree refs --repo="$base" --create=os "$c1"

# wait_for FILE PATTERN: until a line of FILE matches (at most 60 s).
wait_for () {
  local i
  for i in $(seq 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}
# cancelled_as WHAT SIGNAL STDERR: the run that signal_and_time ended
# exited 130 ($rc) with one line naming SIGNAL, within the bound ($ms).
cancelled_as () {
  check "$1: SIG$2 gives exit 130 (got $rc), one line naming it" \
    bash -c "[ '$rc' = 130 ] && [ \$(wc -l <'$3') = 1 ] && grep -q 'cancelled by SIG$2' '$3'"
  check "$1: within ${BOUND_MS} ms (${ms} ms)" test "$ms" -le "$BOUND_MS"
}
# signal_and_time PID SIGNAL: sends it, waits for PID, sets rc and ms.
signal_and_time () {
  local t0
  t0=$(date +%s%N)
  kill -s "$2" "$1"
  rc=0; wait "$1" || rc=$?
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
}

# fetch, SIGTERM, JSON. A script's background job ignores SIGINT, which
# deltafetch honours as shells expect; env --default-signal restores it
# where a test sends SIGINT.
repo=$T/dev
cp -a "$base" "$repo"
"$DF" fetch --json --repo="$repo" --url="$url" --commit="$c2" --ref=os --connections=2 \
  >"$T/f.json" 2>"$T/f.err" &
pid=$!
check "fetch: downloading" wait_for "$T/f.json" '"event":"progress".*"bytes_downloaded":[1-9][0-9]\{5\}'
signal_and_time "$pid" TERM
diag "fetch: SIGTERM to exit ${ms} ms"
cancelled_as fetch TERM "$T/f.err"
check "fetch: the JSON stream ends with an error event, cancelled, exit code 130" \
  bash -c "tail -n 1 '$T/f.json' | grep -q '\"event\":\"error\".*\"exit_code\":130,\"error\":\"cancelled\"'"
check "fetch: the ref still names v1" test "$(rev "$repo" os)" = "$c1"
check "fetch: fsck-clean" ostree fsck --repo="$repo"
"$DF" fetch --json --repo="$repo" --url="$url" --commit="$c2" --ref=os >"$T/f2.json" 2>&1
reused=$(tail -n 1 "$T/f2.json" | python3 -c "import json,sys; print(json.load(sys.stdin).get('bytes_reused', 0))")
check "fetch: the rerun completes, reusing ${reused} bytes of the cancelled run" test "$reused" -gt 0
check "fetch: result identical to v2" checkout_matches "$repo" "$c2" "$T/v2"

# fetch, SIGINT, text output.
repo=$T/dev-int
cp -a "$base" "$repo"
env --default-signal=INT "$DF" fetch --repo="$repo" --url="$url" --commit="$c2" --ref=os \
  --connections=1 >"$T/i.out" 2>"$T/i.err" &
pid=$!
sleep 1.5
signal_and_time "$pid" INT
diag "fetch: SIGINT to exit ${ms} ms"
cancelled_as fetch INT "$T/i.err"
check "fetch after SIGINT: ref on v1, fsck-clean" \
  bash -c "[ \$(ostree rev-parse --repo='$repo' os) = '$c1' ] && ostree fsck --repo='$repo' >/dev/null"

# apply, SIGINT in the middle of the large file's parts.
delta=$T/scratch
repo=$T/dev-apply
cp -a "$base" "$repo"
cp -a "$base" "$T/probe"
start=$(date +%s%N)
"$DF" apply -q --repo="$T/probe" --commit="$c2" --jobs=1 "$delta"
dur_ms=$(( ($(date +%s%N) - start) / 1000000 ))
rm -rf "$T/probe"
diag "uninterrupted apply: about ${dur_ms} ms"
env --default-signal=INT "$DF" apply --repo="$repo" --commit="$c2" --ref=os --jobs=1 "$delta" \
  >"$T/a.out" 2>"$T/a.err" &
pid=$!
sleep "$(printf '%d.%03d' $((dur_ms / 3000)) $((dur_ms / 3 % 1000)))"
signal_and_time "$pid" INT
diag "apply: SIGINT to exit ${ms} ms"
if [ "$rc" = 0 ]; then
  ok "# SKIP apply finished before the signal"
else
  cancelled_as apply INT "$T/a.err"
  check "apply: the ref still names v1, fsck-clean" \
    bash -c "[ \$(ostree rev-parse --repo='$repo' os) = '$c1' ] && ostree fsck --repo='$repo' >/dev/null"
fi
expect_exit 0 "apply: the rerun completes" "$DF" apply -q --repo="$repo" --commit="$c2" --ref=os "$delta"
check "apply: result identical to v2" checkout_matches "$repo" "$c2" "$T/v2"

# generate, SIGTERM: no delta directory, no index left.
out=$T/gen-out
"$DF" generate -q --repo="$src" --empty --to=os --out="$out" --jobs=1 >"$T/g.out" 2>"$T/g.err" &
pid=$!
sleep 1
signal_and_time "$pid" TERM
diag "generate: SIGTERM to exit ${ms} ms"
if [ "$rc" = 0 ]; then
  ok "# SKIP generate finished before the signal"
else
  cancelled_as generate TERM "$T/g.err"
  check "generate: no output directory left" test ! -e "$out"
fi

# A second signal while the first one's cancellation runs exits at once.
repo=$T/dev-twice
cp -a "$base" "$repo"
"$DF" fetch -q --repo="$repo" --url="$url" --commit="$c2" >/dev/null 2>&1 &
pid=$!
sleep 1
kill -TERM "$pid"; kill -TERM "$pid" 2>/dev/null
rc=0; wait "$pid" || rc=$?
check "two signals: exit 130 (got $rc)" test "$rc" = 130
check "two signals: fsck-clean" ostree fsck --repo="$repo"
finish
