#!/bin/bash
# Many deltas to one release in one generate run, as a build server makes
# them for a fleet: --from-last=N, repeated --from, --empty, two signing
# keys; a second run keeps what is already published whole; a damaged
# part, other options or other keys make exactly the affected deltas again;
# devices on each earlier release apply theirs with either key alone. The
# same deltas as separate runs make, byte for byte.
. "$(dirname "$0")/lib.sh"

make_releases 6 --no-owner --no-xattrs
keypair k1 && keypair k2 && keypair other || { not_ok "openssl cannot make ed25519 keys"; finish; exit 1; }
deltas=$src/deltafetch/v1/deltas
gen () { "$DF" generate --repo="$src" --to=os "$@"; }
# tree_sums DIR: a listing of every file under DIR with its SHA-256.
tree_sums () { (cd "$1" && find . -type f -exec sha256sum {} + | sort -k2); }
summary_line () { tail -1 "$T/ee.out"; }

expect_exit 0 "--from-last=5 with two keys" gen --from-last=5 --sign="$T/k1.secret" --sign="$T/k2.secret"
check "5 deltas made in one run" grep -qE '^5 deltas to [0-9a-f]{12}: 5 made, 0 kept, ' "$T/ee.out"
want=""
for k in 1 2 3 4 5; do want="$want${rel[k]}-${rel[6]}"$'\n'; done
check "one delta from each of the 5 earlier releases, nothing else" \
  test "$(ls "$deltas" | sort)" = "$(printf %s "$want" | sort)"
check "the index lists the 5" test "$("$DF_TEST_TOOL" index-froms "$src/deltafetch/v1/indexes/${rel[6]}.index" | sort)" = \
  "$(for k in 1 2 3 4 5; do echo "${rel[k]}"; done | sort)"
check "the stats file lists the 5" test "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["deltas"]))' \
  "$src/deltafetch/v1/stats/${rel[6]}.json")" = 5
check "the stats file carries one signature per key (2 x 64 bytes)" \
  test "$(stat -c %s "$src/deltafetch/v1/stats/${rel[6]}.json.sig")" = 128
before=$(tree_sums "$src/deltafetch")

expect_exit 0 "the same run again" gen --from-last=5 --sign="$T/k1.secret" --sign="$T/k2.secret"
check "the second run makes nothing" grep -qE '^5 deltas to [0-9a-f]{12}: 0 made, 5 kept, ' "$T/ee.out"
check "and every kept delta says so" test "$(grep -c '^kept: ' "$T/ee.out")" = 5
check "nothing under deltafetch/ changed" test "$(tree_sums "$src/deltafetch")" = "$before"

# Devices on each earlier release, each trusting one of the two keys.
for k in 1 2 3 4 5; do
  dev=$T/dev$k
  ostree init --repo="$dev" --mode=bare-user
  ostree pull-local --repo="$dev" "$src" "${rel[k]}" >/dev/null
  ostree refs --repo="$dev" --create=os "${rel[k]}"
  key=$T/k$((k % 2 + 1)).pub
  expect_exit 0 "release $k -> 6 applies, trusting only $(basename "$key")" "$DF" apply --repo="$dev" --ref=os \
    --commit="${rel[6]}" --keys="$key" "$deltas/${rel[k]}-${rel[6]}"
  check "release $k -> 6: fsck-clean and identical to release 6" checkout_matches "$dev" "${rel[6]}" "$T/r6"
done
expect_exit 5 "a device trusting neither key refuses" "$DF" apply --repo="$T/dev1" --ref=os --commit="${rel[6]}" \
  --keys="$T/other.pub" "$deltas/${rel[5]}-${rel[6]}"

# A damaged part: exactly that delta is made again.
victim=$deltas/${rel[3]}-${rel[6]}
printf '\001' | dd of="$victim/0" bs=1 seek=10 conv=notrunc status=none
expect_exit 0 "after a part of release 3's delta was damaged" gen --from-last=5 --sign="$T/k1.secret" \
  --sign="$T/k2.secret"
check "only that one is made again" grep -qE '^5 deltas to [0-9a-f]{12}: 1 made, 4 kept, ' "$T/ee.out"
check "and it is the damaged one" grep -q "^delta: $victim\$" "$T/ee.out"
check "the remade delta is what the first run made" test "$(tree_sums "$src/deltafetch")" = "$before"

# Other keys or options: all made again; --force: all made again.
expect_exit 0 "one key fewer" gen --from-last=5 --sign="$T/k2.secret"
check "one key fewer: all 5 made again" grep -qE ': 5 made, 0 kept, ' "$T/ee.out"
expect_exit 5 "a device trusting only the dropped key now refuses" "$DF" apply --repo="$T/dev1" --ref=os \
  --commit="${rel[6]}" --keys="$T/k1.pub" "$deltas/${rel[5]}-${rel[6]}"
expect_exit 0 "another level" gen --from-last=2 --sign="$T/k2.secret" --level=12
check "another level: both made again" grep -qE '^2 deltas to [0-9a-f]{12}: 2 made, 0 kept, ' "$T/ee.out"
expect_exit 0 "--force" gen --from-last=2 --sign="$T/k2.secret" --level=12 --force
check "--force: both made again" grep -qE ': 2 made, 0 kept, ' "$T/ee.out"

# --from repeated (a revision twice counts once), with --empty, and -q.
expect_exit 0 "--from twice, --from-last=1 and --empty, quiet" gen -q --from="${rel[5]}" --from=os^ \
  --from-last=1 --from="${rel[2]}" --empty --sign="$T/k2.secret" --level=12
check "-q prints one directory per delta: 5^, release 2, from scratch" test "$(cat "$T/ee.out")" = \
  "$deltas/${rel[5]}-${rel[6]}"$'\n'"$deltas/${rel[2]}-${rel[6]}"$'\n'"$deltas/${rel[6]}"

# Longer than the history: as many as there are.
expect_exit 0 "--from-last=50 on a history of 6" gen --from-last=50 --level=12 -q
check "--from-last=50: 5 deltas" test "$(wc -l <"$T/ee.out")" = 5

# One run makes what separate runs make.
sep=$T/sep
cp -a "$src" "$sep"
rm -rf "$sep/deltafetch" "$src/deltafetch"
expect_exit 0 "one run, --from-last=5 --empty" gen -q --from-last=5 --empty --sign="$T/k1.secret"
for k in 1 2 3 4 5; do "$DF" generate -q --repo="$sep" --to=os --from="${rel[k]}" --sign="$T/k1.secret" >/dev/null; done
"$DF" generate -q --repo="$sep" --to=os --empty --sign="$T/k1.secret" >/dev/null
check "byte-identical to six separate runs (deltas, index, stats)" \
  test "$(tree_sums "$src/deltafetch")" = "$(tree_sums "$sep/deltafetch")"

# A commit signed after its delta was made: the delta carries the
# commit's detached metadata, so it is made again.
expect_exit 0 "the same run before the commit is signed" gen --from-last=1 --sign="$T/k1.secret"
check "... keeps it" grep -qE '^kept: ' "$T/ee.out"
"$DF_TEST_TOOL" sign-commit "$src" "${rel[6]}" "$T/k2.secret"
expect_exit 0 "the same run after the commit was signed" gen --from-last=1 --sign="$T/k1.secret"
check "... makes it again, with the commit's signature" bash -c "grep -q '^delta: ' '$T/ee.out' &&
  '$DF' show --json '$deltas/${rel[5]}-${rel[6]}' >/dev/null"

# Stock deltas too: made once, kept the second time.
expect_exit 0 "--format=ostree --from-last=2" gen --format=ostree --from-last=2
check "--format=ostree: 2 made" grep -qE ': 2 made, 0 kept, ' "$T/ee.out"
expect_exit 0 "--format=ostree again" gen --format=ostree --from-last=2
check "--format=ostree again: both kept" grep -qE ': 0 made, 2 kept, ' "$T/ee.out"
check "stock ostree lists both" test "$(ostree static-delta list --repo="$src" | grep -c -- "-")" -ge 2

# A new initrd in every release (gzip made by GNU gzip: rebuilt on the
# device from deflate reconstruction data): each delta of a run carries the
# new one, analysed once for all of them.
b=$T/boot
ostree init --repo="$b" --mode=archive
for v in 1 2 3 4; do
  python3 "$DF_SRCDIR/tests/transform-tree.py" "$T/bt$v" "$v" gnu-gzip-6n || { not_ok "make release $v with an initrd"; break; }
  ostree commit --repo="$b" -b os --tree=dir="$T/bt$v" --owner-uid=0 --owner-gid=0 \
    --timestamp="2024-0$v-01T00:00:00Z" >/dev/null
  brel[v]=$(rev "$b" os)
done
cp -a "$b" "$T/boot-sep"
expect_exit 0 "a new initrd in each of 4 releases: --from-last=3" "$DF" generate --repo="$b" --to=os --from-last=3 --level=3
check "each of the 3 deltas rebuilds it" test "$(grep -c '^Compressed: .* 1 rebuilt' "$T/ee.out")" = 3
check "the second and the third reuse the first one's analysis" \
  test "$(grep -c '^Reused: .* analysis of 1 compressed object' "$T/ee.out")" = 2
for v in 3 2 1; do
  "$DF" generate -q --repo="$T/boot-sep" --to=os --from="${brel[v]}" --level=3 >/dev/null
done
check "byte-identical to three separate runs, which analyse it each" \
  test "$(tree_sums "$b/deltafetch")" = "$(tree_sums "$T/boot-sep/deltafetch")"
ostree init --repo="$T/bdev" --mode=bare-user
ostree pull-local --repo="$T/bdev" "$b" "${brel[1]}" >/dev/null
ostree refs --repo="$T/bdev" --create=os "${brel[1]}"
expect_exit 0 "a device on release 1 applies the third (made with the reused analysis)" "$DF" apply --rebuild=always \
  --repo="$T/bdev" --ref=os --commit="${brel[4]}" "$b/deltafetch/v1/deltas/${brel[1]}-${brel[4]}"
check "... rebuilding the initrd" grep -q '^1 compressed objects rebuilt' "$T/ee.out"
check "... fsck-clean and identical to release 4" checkout_matches "$T/bdev" "${brel[4]}" "$T/bt4"

# Bad requests: one line, exit 2, nothing made.
expect_exit 2 "--from the to-commit itself" gen --from=os
expect_exit 2 "--out with several deltas" gen --from-last=2 --out="$T/out"
check "--out with several deltas wrote nothing" test ! -e "$T/out"
expect_exit 2 "--from-last=-1" gen --from-last=-1
expect_exit 2 "neither --from, --from-last nor --empty" gen
expect_exit 2 "the same key twice" gen --from-last=1 --sign="$T/k1.secret" --sign="$T/k1.secret"
finish
