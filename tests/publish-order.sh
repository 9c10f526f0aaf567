#!/bin/bash
# Publishing to static hosting while devices fetch: `deltafetch publish`
# copies a repository into nginx's root in an order where no client reads
# a file that names one not there yet. A client loop fetches the next
# release over and over while an uploader follows `publish --print-order`
# one file at a time (paused between files, as a slow upload to an object
# store): every fetch either completes or finds no delta yet, never a hard
# failure. The same uploader in the wrong order (indexes first) trips the
# clients: the test can fail. Then `publish --to` finds nothing left to
# copy, and removes what the repository no longer has, last stages first.
. "$(dirname "$0")/lib.sh"

make_releases 4 --no-owner --no-xattrs
pub=$T/www/pub
"$DF" generate -q --repo="$src" --to=os^ --from-last=2 --empty >/dev/null
ostree summary --repo="$src" -u
expect_exit 0 "publish the repository with the deltas to release 3" "$DF" publish --repo="$src" --to="$pub"
check "publish: what a server needs, byte for byte" bash -c "
  for d in objects deltafetch refs/heads; do diff -r '$src/'\$d '$pub/'\$d || exit 1; done
  cmp '$src/summary' '$pub/summary' 2>/dev/null || ! test -e '$src/summary'"
check "publish: no tmp/ or state/ of the build repository" test ! -e "$pub/tmp" -a ! -e "$pub/state"
expect_exit 0 "publish again" "$DF" publish --repo="$src" --to="$pub"
check "publish again copies nothing" grep -q ": 0 files copied (0 bytes), 0 removed" "$T/ee.out"
start_nginx "$T/www" || { not_ok "nginx did not start"; finish; exit 1; }
url=http://127.0.0.1:$NGINX_PORT/pub

# The next release and its deltas, in the build repository only.
"$DF" generate -q --repo="$src" --to=os --from-last=2 --empty >/dev/null
ostree summary --repo="$src" -u
expect_exit 0 "publish --print-order" "$DF" publish --repo="$src" --print-order
cp "$T/ee.out" "$T/order"
check "the order: objects, parts, superblocks, indexes, refs, summary" python3 -c '
import sys
lines = [l.split(" ", 1) for l in open(sys.argv[1]).read().splitlines()]
def stage(p):
    if p.startswith("objects/"): return 0
    if p.startswith(("deltafetch/v1/deltas/", "deltas/")): return 2 if p.endswith("/superblock") else 1
    if p.startswith(("deltafetch/v1/indexes/", "deltafetch/v1/stats/", "delta-indexes/")): return 3
    if p.startswith("refs/") or p == "config": return 4
    if p in ("summary", "summary.sig"): return 5
    raise SystemExit("unexpected file " + p)
stages = [stage(p) for _, p in lines]
assert stages == sorted(stages), "out of order"
cls = {0: "immutable", 1: "long", 2: "revalidate", 3: "short", 4: "short", 5: "short"}
assert all(c == cls[stage(p)] for c, p in lines), "cache classes"
assert 5 in stages and 3 in stages and 2 in stages' "$T/order"

# A device on release 3, copied afresh for each fetch.
tmpl=$T/dev-tmpl
ostree init --repo="$tmpl" --mode=bare-user
ostree pull-local --repo="$tmpl" "$src" "${rel[3]}" >/dev/null
# clients LOG: fetch release 4 again and again until $T/stop appears; one
# line per fetch: ok, nodelta (exit 9, no delta to it yet) or FAIL.
clients () {
  local log=$1 n=0 rc
  rm -f "$T/stop"
  : >"$log"
  while [ ! -e "$T/stop" ] || [ "$n" -lt 2 ]; do
    [ -e "$T/stop" ] && n=$((n + 1))
    rm -rf "$T/dev" && cp -a "$tmpl" "$T/dev"
    rc=0
    "$DF" fetch -q --repo="$T/dev" --url="$url" --commit="${rel[4]}" --no-pull-fallback 2>"$T/client.err" || rc=$?
    if [ "$rc" = 0 ]; then echo ok
    elif [ "$rc" = 9 ] && grep -q "the server offers no .*delta to" "$T/client.err"; then echo nodelta
    else echo "FAIL exit $rc: $(cat "$T/client.err")"; fi >>"$log"
  done
}
# upload ORDER-FILE PAUSE: copies each listed file of the build repository
# into nginx's root (temporary name, then rename), PAUSE seconds apart but
# for objects.
upload () {
  local cls p
  while read -r cls p; do
    [ -e "$pub/$p" ] && cmp -s "$src/$p" "$pub/$p" && continue
    mkdir -p "$(dirname "$pub/$p")"
    cp "$src/$p" "$pub/$p.part" && mv "$pub/$p.part" "$pub/$p"
    [ "$cls" = immutable ] || sleep "$2"
  done <"$1"
}

clients "$T/good.log" &
cpid=$!
sleep 1
upload "$T/order" 0.2
touch "$T/stop"
wait "$cpid"
diag "in order: $(sort "$T/good.log" | uniq -c | tr '\n' ' ')"
check "in order: no client ever failed" bash -c "! grep -q '^FAIL' '$T/good.log'"
check "in order: some found no delta yet, the last ones fetched release 4" \
  bash -c "grep -q '^nodelta' '$T/good.log' && test \"\$(tail -1 '$T/good.log')\" = ok"
check "the device that fetched last is fsck-clean and identical to release 4" checkout_matches "$T/dev" "${rel[4]}" "$T/r4"
expect_exit 0 "publish --to after that upload" "$DF" publish --repo="$src" --to="$pub"
check "publish --to finds nothing left to copy" grep -q ": 0 files copied (0 bytes), 0 removed" "$T/ee.out"

# The wrong order, as a naive upload of the changed files would do it:
# indexes first, parts and superblocks after, with a pause in between.
"$DF" delete --repo="$src" "${rel[3]}-${rel[4]}" >/dev/null
"$DF" publish --repo="$src" --to="$pub" >/dev/null
"$DF" generate -q --repo="$src" --to=os --from="${rel[3]}" >/dev/null
"$DF" publish --repo="$src" --print-order | awk '$2 ~ /indexes|stats/' >"$T/bad-order"
"$DF" publish --repo="$src" --print-order | awk '$2 ~ /^deltafetch\/v1\/deltas\//' >>"$T/bad-order"
clients "$T/bad.log" &
cpid=$!
sleep 1
upload <(head -2 "$T/bad-order") 0 && sleep 3 && upload <(tail -n +3 "$T/bad-order") 0.2
touch "$T/stop"
wait "$cpid"
diag "indexes first: $(sort "$T/bad.log" | uniq -c | tr '\n' ' ' | cut -c1-300)"
check "indexes first: clients failed hard (the test can tell)" grep -q '^FAIL' "$T/bad.log"

# Removals: last stages first, and objects stay.
"$DF" delete --repo="$src" "${rel[2]}-${rel[4]}" >/dev/null
expect_exit 0 "publish after a delete" "$DF" publish --repo="$src" --to="$pub"
check "the deleted delta's files are gone from the server, its directory too" \
  bash -c "grep -q ', [1-9][0-9]* removed' '$T/ee.out' && test ! -e '$pub/deltafetch/v1/deltas/${rel[2]}-${rel[4]}'"
check "the server's index no longer lists it" \
  bash -c "! '$DF_TEST_TOOL' index-froms '$pub/deltafetch/v1/indexes/${rel[4]}.index' | grep -qx '${rel[2]}'"
expect_exit 2 "publish: --to and --print-order together" "$DF" publish --repo="$src" --to="$pub" --print-order
finish
