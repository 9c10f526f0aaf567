#!/bin/bash
# kill -9 of `deltafetch fetch` (and of `deltafetch pull` through a remote,
# in the libostree pull fallback) at seeded random moments, DF_KILLS times
# (30 by default), from nginx with a per-connection rate limit: after every
# kill the repository is fsck-clean and its ref names the old commit (or
# the new one when the kill came after the commit); a run that slips
# through to the end is checked and started over. Then the fetch finishes.
# What the kills cost is reported and bounded: each interrupted run may
# lose at most one range per connection plus the index and superblock it
# fetches again.
. "$(dirname "$0")/lib.sh"
KILLS=${DF_KILLS:-30}
RANDOM=${SEED:-11}
CONNS=4 RANGE=65536

serve_pair --no-owner
# DF_KILL_DELTA=stock (tests/kill-fetch-stock.sh): the server holds only a
# stock delta, found through its delta index.
if [ "${DF_KILL_DELTA:-native}" = stock ]; then
  ostree static-delta generate --repo="$src" --from=os^ --to=os >/dev/null
  ostree summary -u --repo="$src"
  delta_dir=$src/$(cd "$src" && find deltas -mindepth 2 -maxdepth 2 -type d -name '*-*')
  index=$(find "$src/delta-indexes" -name '*.index' | head -1)
else
  "$DF" generate -q --repo="$src" --from=os^ --to=os >/dev/null
  delta_dir=$src/deltafetch/v1/deltas/$c1-$c2
  index=$src/deltafetch/v1/indexes/$c2.index
fi
delta_bytes=$(find "$delta_dir" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%.0f\n", s }')
small=$(( $(stat -c %s "$index") + $(stat -c %s "$delta_dir/superblock") ))
diag "${DF_KILL_DELTA:-native} delta: $(ls "$delta_dir" | wc -l) files, $delta_bytes bytes; index + superblock $small bytes"
start_nginx "$T/www" "" "limit_rate 64k;" || { not_ok "nginx did not start"; finish; exit 1; }
url=http://127.0.0.1:$NGINX_PORT/repo
log=$NGINX_LOG

base=$T/base
ostree init --repo="$base" --mode=bare
ostree pull-local --repo="$base" "$src" "$c1" >/dev/null
ostree refs --repo="$base" --create=os "$c1"
# exec: a background "fetch" is then deltafetch itself, which kill -9 must hit.
fetch () { exec "$DF" fetch -q --repo="$1" --url="$url" --commit="$c2" --ref=os --connections=$CONNS --range-size=64K; }
wire () { awk '{ s += $10 } END { printf "%.0f\n", s }' "$log"; }

# How long an uninterrupted fetch takes, to spread the kills over it.
cp -a "$base" "$T/probe"
start=$(date +%s%N)
(fetch "$T/probe") || not_ok "probe fetch failed"
dur_ms=$(( ($(date +%s%N) - start) / 1000000 ))
rm -rf "$T/probe"
diag "uninterrupted fetch: ${dur_ms} ms"

# One apply or fetch per repository at a time: a second one waits for the
# first (--lock-timeout, default 30 s) and is refused with exit 12 when the
# wait runs out while the first still works; the first completes.
lockrepo=$T/lock-dev
cp -a "$base" "$lockrepo"
# The first fetch takes one connection, at 64 KiB/s: several seconds, so it
# surely still runs while the others wait their timeout out.
"$DF" fetch -q --repo="$lockrepo" --url="$url" --commit="$c2" --ref=os --connections=1 >"$T/first.out" 2>&1 &
first=$!
sleep 0.3
# With the default timeout, a second fetch waits for the first to finish,
# says so in its JSON events, and then has nothing left to do.
"$DF" fetch --json --repo="$lockrepo" --url="$url" --commit="$c2" --ref=os >"$T/second.json" 2>"$T/second.err" &
second=$!
# Meanwhile an apply with a 1 s timeout is refused too.
"$DF" apply -q --repo="$lockrepo" --commit="$c2" --lock-timeout=1 "$delta_dir" >"$T/apply.out" 2>"$T/apply.err" &
apply=$!
t0=$(date +%s%N)
expect_exit 12 "a second fetch into the same repository waits 1 s, then is refused while the first runs (busy)" \
  "$DF" fetch --json --repo="$lockrepo" --url="$url" --commit="$c2" --ref=os --lock-timeout=1
waited_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "the refusal says why" grep -q "another deltafetch.*waited 1 s" "$T/ee.err"
check "its JSON error event names it busy, retryable" \
  grep -q '"event":"error".*"exit_code":12,"error":"busy","retryable":true' "$T/ee.out"
check "it waited the timeout out (${waited_ms} ms)" test "$waited_ms" -ge 1000
rc=0; wait "$apply" || rc=$?
check "so is an apply (exit $rc, want 12)" test "$rc" = 12
check "the first fetch completes" wait "$first"
check "the waiting fetch completes once the first is done" wait "$second"
check "the waiting fetch reported its wait" grep -q '"event":"waiting"' "$T/second.json"
check "the first fetch's result is fsck-clean and identical to v2" checkout_matches "$lockrepo" "$c2" "$T/v2"

# A fetch killed with SIGKILL and started again at once (no pause, as an
# agent or systemd restarts it) never finds the repository busy: the dying
# process's lock is waited out. Every run that ends on its own succeeds.
AT_ONCE=${DF_KILLS_AT_ONCE:-20}
atrepo=$T/at-once
cp -a "$base" "$atrepo"
kill_restart_at_once "$AT_ONCE" $((dur_ms / 4)) "$atrepo" "$base" "$c2" fetch "$atrepo"
check "$AT_ONCE kills each followed at once by a restart ($AT_KILLS in $AT_RUNS runs)" test "$AT_KILLS" -ge "$AT_ONCE"
check "no restart found the repository busy (exit 12)" test "$AT_BUSY" = 0
expect_exit 0 "the last restart completes" "$DF" fetch -q --repo="$atrepo" --url="$url" --commit="$c2" --ref=os
check "after the restarts: fsck-clean and identical to v2" checkout_matches "$atrepo" "$c2" "$T/v2"

# The fallback to libostree's pull (a server without deltas) killed at
# random moments: the repository's config stays byte-identical every time
# (the pull's remote is never written there), the repository fsck-clean.
if [ "${DF_KILL_DELTA:-native}" = native ]; then
  PULL_KILLS=${DF_PULL_KILLS:-10}
  plain=$T/www/plain
  ostree init --repo="$plain" --mode=archive
  ostree pull-local --repo="$plain" "$src" "$c2" >/dev/null
  ostree refs --repo="$plain" --create=os "$c2"
  ostree summary -u --repo="$plain"
  # Half the runs are `deltafetch pull origin:os` through a remote of the
  # config (the commit from the summary; libostree pulls through that
  # remote), half `fetch` (the fallback's own remote file in tmp/).
  ostree remote add --repo="$base" --no-gpg-verify origin "http://127.0.0.1:$NGINX_PORT/plain"
  prepo=$T/pull-dev
  cp -a "$base" "$prepo"
  conf=$(sha256sum <"$prepo/config")
  pfetch () {
    if [ $((RANDOM % 2)) = 0 ]; then exec "$DF" pull -q --repo="$prepo" origin:os; fi
    exec "$DF" fetch -q --repo="$prepo" --url="http://127.0.0.1:$NGINX_PORT/plain" --commit="$c2" --ref=os
  }
  start=$(date +%s%N)
  (pfetch) || not_ok "probe pull failed"
  pull_ms=$(( ($(date +%s%N) - start) / 1000000 ))
  rm -rf "$prepo"; cp -a "$base" "$prepo"
  diag "uninterrupted fallback pull: ${pull_ms} ms"
  pkilled=0 pbad=0
  for i in $(seq 1 $((PULL_KILLS * 3))); do
    [ "$pkilled" -ge "$PULL_KILLS" ] && break
    delay=$(( RANDOM % (pull_ms * 3 / 4 + 1) ))
    pfetch >"$T/prun.out" 2>&1 &
    pid=$!
    sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
    if kill -9 "$pid" 2>/dev/null; then
      wait "$pid" 2>/dev/null
      pkilled=$((pkilled + 1))
    else
      wait "$pid" || { pbad=$((pbad + 1)); not_ok "a pull that finished after $delay ms failed"; }
      rm -rf "$prepo"; cp -a "$base" "$prepo"
    fi
    if [ "$(sha256sum <"$prepo/config")" != "$conf" ] || ! ostree fsck --repo="$prepo" >"$T/fsck.out" 2>&1; then
      pbad=$((pbad + 1)); not_ok "pull kill $pkilled after $delay ms: config changed or fsck failed"
      sed 's/^/# /' "$T/fsck.out"; diff <(echo) "$prepo/config" | sed 's/^/# /'
    fi
  done
  check "$PULL_KILLS kills of the fallback pull landed ($pkilled)" test "$pkilled" -ge "$PULL_KILLS"
  check "after every kill of the pull: config byte-identical, fsck-clean" test "$pbad" = 0
  expect_exit 0 "the last fallback pull completes (deltafetch pull origin:os)" "$DF" pull -q --repo="$prepo" origin:os
  check "after it: origin:os on v2" test "$(rev "$prepo" origin:os)" = "$c2"
  check "after it: fsck-clean and identical to v2" checkout_matches "$prepo" "$c2" "$T/v2"
  check "after it: config byte-identical, no remote file in tmp" \
    bash -c "[ '$(sha256sum <"$prepo/config")' = '$conf' ] && [ ! -e '$prepo/tmp/deltafetch-remote' ]"
fi

repo=$T/dev
cp -a "$base" "$repo"
sleep 1; : >"$log"
killed=0 attempts=0 bad=0 campaigns=0 runs=0 lost=0 kills_in_campaign=0 redl_total=0 finished_early=0
end_campaign () { # the fetch of this campaign completed: account for its bytes
  sleep 1  # nginx logs a cut connection when it notices
  local got
  got=$(wire)
  redl_total=$((redl_total + got - delta_bytes - small))
  lost=$((lost + kills_in_campaign))
  campaigns=$((campaigns + 1))
  kills_in_campaign=0
  : >"$log"
}
while [ "$killed" -lt "$KILLS" ] && [ "$attempts" -lt $((KILLS * 4)) ]; do
  attempts=$((attempts + 1))
  # Within the first half of a whole fetch: a resumed run has less to do,
  # so its kills still land anywhere in the update, the commit included.
  delay=$(( RANDOM % (dur_ms / 2 + 1) ))
  fetch "$repo" >"$T/run.out" 2>&1 &
  pid=$!
  sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
  if kill -9 "$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null
    killed=$((killed + 1)) kills_in_campaign=$((kills_in_campaign + 1))
    now=$(rev "$repo" os)
    if ! ostree fsck --repo="$repo" >"$T/fsck.out" 2>&1 || { [ "$now" != "$c1" ] && [ "$now" != "$c2" ]; }; then
      bad=$((bad + 1)); not_ok "kill $killed after $delay ms: fsck or ref wrong (ref $now)"; sed 's/^/# /' "$T/fsck.out"
    fi
    if [ "$now" = "$c2" ]; then  # killed after the commit: this campaign is over
      end_campaign; rm -rf "$repo"; cp -a "$base" "$repo"
    fi
  else
    wait "$pid"; rc=$?
    finished_early=$((finished_early + 1))
    if [ "$rc" = 0 ] && checkout_matches "$repo" "$c2" "$T/v2"; then :; else
      bad=$((bad + 1)); not_ok "a fetch that finished after $delay ms: exit $rc or wrong result"
      sed 's/^/# /' "$T/run.out"; fi
    end_campaign; rm -rf "$repo"; cp -a "$base" "$repo"
  fi
done
check "$KILLS kills landed mid-fetch ($killed in $attempts attempts, $finished_early runs finished first)" \
  test "$killed" -ge "$KILLS"
check "after every kill: fsck-clean, ref on the old or the new commit" test "$bad" = 0
expect_exit 0 "the last fetch completes" "$DF" fetch -q --repo="$repo" --url="$url" --commit="$c2" --ref=os \
  --connections=$CONNS --range-size=64K
check "fsck-clean and identical to v2" checkout_matches "$repo" "$c2" "$T/v2"
end_campaign
bound=$(( lost * (CONNS * RANGE + small) ))
diag "re-downloaded over $campaigns complete fetches and $lost kills: $redl_total bytes (bound $bound)"
check "re-downloaded bytes within one range per connection plus index and superblock per kill" \
  test "$redl_total" -le "$bound"
finish
