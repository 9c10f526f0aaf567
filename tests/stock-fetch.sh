#!/bin/bash
# deltafetch fetch from a repository that holds only stock deltas (made by
# `ostree static-delta generate`, indexed by `ostree summary -u`), served by
# nginx: found through delta-indexes/, parts downloaded as verified ranges,
# applied by the stock interpreter; fsck-clean and identical results, bytes
# on the wire close to the delta's, no loose objects; a part changed on the
# server is refused with nothing written.
. "$(dirname "$0")/lib.sh"

serve_pair --no-owner
ostree static-delta generate --repo="$src" --from=os^ --to=os >/dev/null
ostree static-delta generate --repo="$src" --empty --to=os >/dev/null
ostree summary -u --repo="$src"
check "the server has stock delta indexes and no native deltas" bash -c "ls '$src'/delta-indexes/*/*.index &&
  test ! -e '$src/deltafetch'"
# The v1 -> v2 delta: the directory whose name has a "-" (from-to).
delta_rel=$(cd "$src" && find deltas -mindepth 2 -maxdepth 2 -type d -name '*-*')
delta_bytes=$(find "$src/$delta_rel" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')

start_nginx "$T/www" || { not_ok "nginx did not start"; finish; exit 1; }
url=http://127.0.0.1:$NGINX_PORT/repo

base=$T/base
ostree init --repo="$base" --mode=bare
ostree pull-local --repo="$base" "$src" "$c1" >/dev/null
ostree refs --repo="$base" --create=os "$c1"

dev=$T/dev
cp -a "$base" "$dev"
: >"$NGINX_LOG"
expect_exit 0 "fetch v2 through the stock delta from v1" "$DF" fetch --repo="$dev" --url="$url" --commit="$c2" --ref=os
check "the path taken is the stock delta" grep -q "stock delta from $c1" "$T/ee.out"
check "ref os on v2" test "$(rev "$dev" os)" = "$c2"
check "fsck-clean and identical to v2" checkout_matches "$dev" "$c2" "$T/v2"
wire=$(awk '{ s += $10 } END { print s + 0 }' "$NGINX_LOG")
diag "bytes on the wire $wire, stock delta $delta_bytes"
check "bytes on the wire within 1.02 x the delta (plus index)" test "$wire" -le $((delta_bytes * 102 / 100 + 4096))
check "no loose objects fetched" bash -c "! grep -q '/objects/' '$NGINX_LOG'"
check "the part store is gone" bash -c "! ls -d '$dev'/tmp/deltafetch-fetch-* 2>/dev/null"
expect_exit 0 "a second fetch finds the commit present" "$DF" fetch --repo="$dev" --url="$url" --commit="$c2"

scratch=$T/scratch
ostree init --repo="$scratch" --mode=bare-user
expect_exit 0 "fetch into an empty repository: the stock from-scratch delta" "$DF" fetch --repo="$scratch" \
  --url="$url" --commit="$c2" --ref=os
check "the path taken is the stock from-scratch delta" grep -q "stock from-scratch delta" "$T/ee.out"
check "from scratch: fsck-clean and identical to v2" checkout_matches "$scratch" "$c2" "$T/v2"

# A part changed on the server: its SHA-256 no longer matches the superblock.
cp -a "$T/www/repo" "$T/www/bad"
part=$T/www/bad/$delta_rel/0
printf '\x55' | dd of="$part" bs=1 seek=50 conv=notrunc 2>/dev/null
bad=$T/bad-dev
cp -a "$base" "$bad"
before=$(objects_list "$bad")
expect_exit 4 "a part changed on the server is refused" "$DF" fetch --repo="$bad" \
  --url="http://127.0.0.1:$NGINX_PORT/bad" --commit="$c2" --ref=os --retries=1
check "changed part: objects/ unchanged" test "$before" = "$(objects_list "$bad")"
check "changed part: ref unchanged" test "$(rev "$bad" os)" = "$c1"

# A superblock changed on the server no longer matches the index.
cp -a "$T/www/repo" "$T/www/badsb"
sbf=$T/www/badsb/$delta_rel/superblock
printf '\x55' | dd of="$sbf" bs=1 seek=100 conv=notrunc 2>/dev/null
bad2=$T/bad-dev2
cp -a "$base" "$bad2"
expect_exit 4 "a superblock that does not match the delta index is refused" "$DF" fetch --repo="$bad2" \
  --url="http://127.0.0.1:$NGINX_PORT/badsb" --commit="$c2" --ref=os
check "changed superblock: objects/ unchanged" test "$before" = "$(objects_list "$bad2")"

# kill -9 mid-download from a slow server (nginx limit_rate), then a rerun:
# the ref stays on v1 after the kill, the rerun reuses the ranges already
# in, and both runs together move at most the delta plus one range per
# connection (plus the index and superblock twice).
start_nginx "$T/www" "" "limit_rate 50k;" || { not_ok "slow nginx did not start"; finish; exit 1; }
slow=http://127.0.0.1:$NGINX_PORT/repo
slow_log=$NGINX_LOG
kdev=$T/kill-dev
cp -a "$base" "$kdev"
"$DF" fetch --repo="$kdev" --url="$slow" --commit="$c2" --ref=os --range-size=64K --connections=2 --json \
  >"$T/kill-first.json" 2>&1 &
pid=$!
# Kill once about a third of the part is in.
for _ in $(seq 200); do
  got=$(awk '/deltas\// { s += $10 } END { print s + 0 }' "$slow_log")
  [ "$got" -ge $((delta_bytes / 3)) ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if kill -9 "$pid" 2>/dev/null; then wait "$pid" 2>/dev/null; ok "kill -9: stock fetch killed mid-download"; else
  wait "$pid" 2>/dev/null; not_ok "kill -9: the first run ended before it could be killed"; fi
check "kill -9: ref still at v1" test "$(rev "$kdev" os)" = "$c1"
check "kill -9: repo fsck-clean" ostree fsck --repo="$kdev"
first=$(awk '{ s += $10 } END { print s + 0 }' "$slow_log")
: >"$slow_log"
expect_exit 0 "kill -9: the rerun completes" "$DF" fetch --repo="$kdev" --url="$slow" --commit="$c2" --ref=os \
  --range-size=64K --connections=2 --json
check "kill -9: the rerun reused bytes from the first run" \
  bash -c "grep '\"event\":\"done\"' '$T/ee.out' | grep -q '\"bytes_reused\":[1-9]'"
rerun=$(awk '{ s += $10 } END { print s + 0 }' "$slow_log")
index_sb=$(( $(find "$src/delta-indexes" -name '*.index' -printf '%s\n' | head -1) + $(stat -c %s "$src/$delta_rel/superblock") ))
bound=$((delta_bytes + 2 * 65536 + 2 * index_sb + 8192))
diag "kill -9: first run $first bytes, rerun $rerun, bound $bound"
check "kill -9: both runs moved at most the delta plus a range per connection" test $((first + rerun)) -le "$bound"
check "kill -9: fsck-clean and identical to v2" checkout_matches "$kdev" "$c2" "$T/v2"
finish
