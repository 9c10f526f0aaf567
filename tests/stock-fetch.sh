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
delta_bytes=$(find "$src/$delta_rel" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%.0f\n", s }')

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
wire=$(awk '{ s += $10 } END { printf "%.0f\n", s }' "$NGINX_LOG")
diag "bytes on the wire $wire, stock delta $delta_bytes"
check "bytes on the wire within 1.02 x the delta (plus index)" test "$wire" -le $((delta_bytes * 102 / 100 + 4096))
check "no loose objects fetched" bash -c "! grep -q '/objects/' '$NGINX_LOG'"
check "the part store is gone" bash -c "! ls -d '$dev'/tmp/deltafetch-fetch-* 2>/dev/null"
expect_exit 0 "a second fetch finds the commit present" "$DF" fetch --repo="$dev" --url="$url" --commit="$c2"

# A device that holds v1 under no ref (nor --from) takes the stock delta
# from v1 all the same, found in its repository.
noref=$T/dev-noref
ostree init --repo="$noref" --mode=bare
ostree pull-local --repo="$noref" "$src" "$c1" >/dev/null
: >"$NGINX_LOG"
expect_exit 0 "no ref: fetch v2" "$DF" fetch --json --repo="$noref" --url="$url" --commit="$c2"
check "no ref: the stock delta from v1, found in the repository" \
  test "$(sed -n '$p' "$T/ee.out" | python3 -c 'import json,sys; e=json.load(sys.stdin); print(e["path"], e["commit"], e["from"], e["from_found"])')" = "stock-delta $c2 $c1 repository"
check "no ref: no loose objects fetched" bash -c "! grep -q '/objects/' '$NGINX_LOG'"
check "no ref: fsck-clean and identical to v2" checkout_matches "$noref" "$c2" "$T/v2"

# Three xz decoders (--jobs=3 and a budget with room for them) on a stock
# delta of many parts, fed as the parts arrive.
cp -a "$src" "$T/www/multi"
rm -rf "$T/www/multi/deltas" "$T/www/multi/delta-indexes"
ostree static-delta generate --repo="$T/www/multi" --from="$c1" --to="$c2" --max-chunk-size=1 >/dev/null
ostree summary -u --repo="$T/www/multi"
nmulti=$(find "$T/www/multi/deltas" -mindepth 3 -type f -name '[0-9]*' | wc -l)
diag "many-part stock delta: $nmulti parts"
check "the many-part stock delta has several parts" test "$nmulti" -ge 4
dev3=$T/dev-3
cp -a "$base" "$dev3"
expect_exit 0 "fetch with three decoders" "$DF" fetch --repo="$dev3" --url="http://127.0.0.1:$NGINX_PORT/multi" \
  --commit="$c2" --ref=os --jobs=3 --memory=160M --json
check "three decoders: 3 decoders and the rebuilding thread" grep -q '"workers":4' "$T/ee.out"
check "three decoders: fsck-clean and identical to v2" checkout_matches "$dev3" "$c2" "$T/v2"

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

# A superblock changed on the server no longer matches what lists it.
# bad_superblock SERVED-DIR NAME WHAT: a copy of SERVED-DIR as NAME with the
# delta's superblock damaged; the fetch must refuse it with nothing written,
# after asking once more for fresh copies (a stale cache looks the same):
# exit 9, the server's files disagree.
bad_superblock () {
  cp -a "$T/www/$1" "$T/www/$2"
  printf '\x55' | dd of="$T/www/$2/$delta_rel/superblock" bs=1 seek=100 conv=notrunc 2>/dev/null
  local dev=$T/dev-$2
  cp -a "$base" "$dev"
  expect_exit 9 "a superblock that does not match the $3 is refused" "$DF" fetch --repo="$dev" \
    --url="http://127.0.0.1:$NGINX_PORT/$2" --commit="$c2" --ref=os
  check "changed superblock ($3): the server's files disagree, also fresh" \
    grep -q "also when asked for fresh copies" "$T/ee.err"
  check "changed superblock ($3): objects/ unchanged" test "$before" = "$(objects_list "$dev")"
}
bad_superblock repo badsb "delta index"

# Discovery through the summary when the server has no delta indexes
# (older servers): the delta is found and used all the same.
cp -a "$T/www/repo" "$T/www/sum"
rm -rf "$T/www/sum/delta-indexes"
sdev=$T/sum-dev
cp -a "$base" "$sdev"
: >"$NGINX_LOG"
expect_exit 0 "no delta indexes: the stock delta is found through the summary" "$DF" fetch --repo="$sdev" \
  --url="http://127.0.0.1:$NGINX_PORT/sum" --commit="$c2" --ref=os --no-pull-fallback
check "summary: the path taken is the stock delta" grep -q "stock delta from $c1" "$T/ee.out"
check "summary: the summary file was read" grep -q "GET /sum/summary " "$NGINX_LOG"
check "summary: fsck-clean and identical to v2" checkout_matches "$sdev" "$c2" "$T/v2"
bad_superblock sum sumbad summary

# Fallback objects: a from-scratch delta that leaves every object over 1 MB
# to be fetched one by one. deltafetch downloads each as a loose .filez
# through the same ranged machinery, inflates and hashes it before it is
# accepted, and writes it like the objects of a part.
cp -a "$T/www/repo" "$T/www/fb"
fbsrc=$T/www/fb
rm -rf "$fbsrc/deltas" "$fbsrc/delta-indexes"
ostree static-delta generate --repo="$fbsrc" --empty --to=os --min-fallback-size=1 >/dev/null
ostree summary -u --repo="$fbsrc"
fb_rel=$(cd "$fbsrc" && find deltas -mindepth 2 -maxdepth 2 -type d)
"$DF_TEST_TOOL" stock-verify "$fbsrc" "$fbsrc/$fb_rel" >"$T/fb.verify" 2>&1
n_fb=$(awk '$1 == "fallbacks" { print $2 }' "$T/fb.verify")
check "fallback delta: fallback objects declared" test "${n_fb:-0}" -gt 0
fresh () { rm -rf "$1"; ostree init --repo="$1" --mode=bare; }
fdev=$T/fb-dev
fresh "$fdev"
: >"$NGINX_LOG"
expect_exit 0 "fallback delta: fetch" "$DF" fetch --repo="$fdev" --url="http://127.0.0.1:$NGINX_PORT/fb" \
  --commit="$c2" --ref=os --no-pull-fallback --json --range-size=64K
check "fallback delta: the path taken is the stock delta, not libostree's pull" \
  bash -c "sed -n '\$p' '$T/ee.out' | grep -q '\"path\" *: *\"stock-scratch\"'"
n_get=$(grep -c 'GET /fb/objects/.*\.filez ' "$NGINX_LOG")
diag "fallback delta: $n_fb fallback objects declared, $n_get .filez requests"
check "fallback delta: every fallback object was downloaded as .filez" test "$n_get" -ge "$n_fb"
check "fallback delta: .filez objects came as byte ranges" bash -c "grep '\.filez ' '$NGINX_LOG' | awk '\$9 == 206' | grep -q ."
check "fallback delta: no other loose objects" bash -c "! grep '/objects/' '$NGINX_LOG' | grep -qv '\.filez '"
check "fallback delta: ref os on v2" test "$(rev "$fdev" os)" = "$c2"
check "fallback delta: fsck-clean and identical to v2" checkout_matches "$fdev" "$c2" "$T/v2"

# The same delta applied offline, its fallback objects from --url.
adev=$T/fb-apply
fresh "$adev"
expect_exit 6 "fallback delta offline without --url: refused" "$DF" apply --repo="$adev" --commit="$c2" "$fbsrc/$fb_rel"
: >"$NGINX_LOG"
expect_exit 0 "fallback delta offline with --url" "$DF" apply --repo="$adev" --commit="$c2" --ref=os \
  --url="http://127.0.0.1:$NGINX_PORT/fb" "$fbsrc/$fb_rel"
check "apply --url: only fallback objects came from the server" bash -c "grep -q '\.filez ' '$NGINX_LOG' &&
  ! grep -qv '\.filez ' '$NGINX_LOG'"
check "apply --url: fsck-clean and identical to v2" checkout_matches "$adev" "$c2" "$T/v2"

# A fallback object changed on the server: refused, by fetch and by apply,
# with nothing written.
cp -a "$fbsrc" "$T/www/fbbad"
victim=$(grep -o 'GET /fb/objects/[^ ]*\.filez' "$NGINX_LOG" | head -1 | sed 's|GET /fb/||')
size=$(stat -c %s "$T/www/fbbad/$victim")
printf '\x55\xaa\x55\xaa' | dd of="$T/www/fbbad/$victim" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
for how in fetch apply; do
  fbad=$T/fb-bad-$how
  fresh "$fbad"
  if [ $how = fetch ]; then
    expect_exit 4 "a fallback object changed on the server: $how refuses it" "$DF" fetch --repo="$fbad" \
      --url="http://127.0.0.1:$NGINX_PORT/fbbad" --commit="$c2" --ref=os --no-pull-fallback --retries=1
  else
    expect_exit 4 "a fallback object changed on the server: $how refuses it" "$DF" apply --repo="$fbad" \
      --commit="$c2" --ref=os --url="http://127.0.0.1:$NGINX_PORT/fbbad" "$T/www/fbbad/$fb_rel"
  fi
  check "changed fallback ($how): the error names the fallback object" grep -q "fallback" "$T/ee.err"
  check "changed fallback ($how): nothing in objects/" test -z "$(objects_list "$fbad")"
  check "changed fallback ($how): no ref" bash -c "! ostree rev-parse --repo='$fbad' os 2>/dev/null"
done

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
  got=$(awk '/deltas\// { s += $10 } END { printf "%.0f\n", s }' "$slow_log")
  [ "$got" -ge $((delta_bytes / 3)) ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if kill -9 "$pid" 2>/dev/null; then wait "$pid" 2>/dev/null; ok "kill -9: stock fetch killed mid-download"; else
  wait "$pid" 2>/dev/null; not_ok "kill -9: the first run ended before it could be killed"; fi
check "kill -9: ref still at v1" test "$(rev "$kdev" os)" = "$c1"
check "kill -9: repo fsck-clean" ostree fsck --repo="$kdev"
first=$(awk '{ s += $10 } END { printf "%.0f\n", s }' "$slow_log")
: >"$slow_log"
expect_exit 0 "kill -9: the rerun completes" "$DF" fetch --repo="$kdev" --url="$slow" --commit="$c2" --ref=os \
  --range-size=64K --connections=2 --json
check "kill -9: the rerun reused bytes from the first run" \
  bash -c "grep '\"event\":\"done\"' '$T/ee.out' | grep -q '\"bytes_reused\":[1-9]'"
rerun=$(awk '{ s += $10 } END { printf "%.0f\n", s }' "$slow_log")
index_sb=$(( $(find "$src/delta-indexes" -name '*.index' -printf '%s\n' | head -1) + $(stat -c %s "$src/$delta_rel/superblock") ))
bound=$((delta_bytes + 2 * 65536 + 2 * index_sb + 8192))
diag "kill -9: first run $first bytes, rerun $rerun, bound $bound"
check "kill -9: both runs moved at most the delta plus a range per connection" test $((first + rerun)) -le "$bound"
check "kill -9: fsck-clean and identical to v2" checkout_matches "$kdev" "$c2" "$T/v2"

# apply --url over HTTPS with mutual TLS and a pinned key: the fallback
# objects download with the same network options as fetch.
certs=$T/certs
if start_nginx_mtls "$T/www" "$certs"; then
  ok "nginx with TLS (client certificates required) on 127.0.0.1:$NGINX_PORT"
  turl=https://localhost:$NGINX_PORT/fb
  tdev=$T/fb-apply-tls
  fresh "$tdev"
  expect_exit 9 "apply --url https: without a client certificate, refused" "$DF" apply --repo="$tdev" \
    --commit="$c2" --cacert="$certs/ca.pem" --retries=1 --url="$turl" "$fbsrc/$fb_rel"
  check "apply --url https: the refusal names the object on the server" grep -q "$turl/objects/.*\.filez" "$T/ee.err"
  expect_exit 9 "apply --url https: a wrong pin, refused" "$DF" apply --repo="$tdev" --commit="$c2" \
    --cacert="$certs/ca.pem" --cert="$certs/client.pem" --key="$certs/client.key" \
    --pin="sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" --retries=1 --url="$turl" "$fbsrc/$fb_rel"
  check "apply --url https: no ref after the refusals" bash -c "! ostree rev-parse --repo='$tdev' os >/dev/null 2>&1"
  : >"$NGINX_LOG"
  expect_exit 0 "apply --url https: mutual TLS with the right pin" "$DF" apply --repo="$tdev" --commit="$c2" \
    --ref=os --cacert="$certs/ca.pem" --cert="$certs/client.pem" --key="$certs/client.key" \
    --pin="$(cat "$certs/server.pin")" --range-size=64K --url="$turl" "$fbsrc/$fb_rel"
  check "apply --url https: it says how much was downloaded" grep -q "of fallback objects downloaded" "$T/ee.out"
  check "apply --url https: only .filez objects came from the server" bash -c "grep -q '\.filez ' '$NGINX_LOG' &&
    ! grep -qv '\.filez ' '$NGINX_LOG'"
  check "apply --url https: fsck-clean and identical to v2" checkout_matches "$tdev" "$c2" "$T/v2"
else
  not_ok "nginx with TLS did not start"
fi
finish
