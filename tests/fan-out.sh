#!/bin/bash
# Generation fanned out as a scheduler runs it (docs/fan-out.md): 4
# generate jobs at once, each into its own output root, then one
# `deltafetch index` merge: byte for byte what one sequential run makes,
# idempotent, a rerun job keeps its output; a damaged output or two
# different deltas of one id are refused with nothing merged.
. "$(dirname "$0")/lib.sh"

make_releases 6 --no-owner --no-xattrs
keypair k1 || { not_ok "openssl cannot make ed25519 keys"; finish; exit 1; }
tree_sums () { (cd "$1" && find . -type f -exec sha256sum {} + | sort -k2); }
seq=$T/seq
cp -a "$src" "$seq"
expect_exit 0 "one sequential run: --from-last=4 --empty" "$DF" generate -q --repo="$seq" --to=os --from-last=4 \
  --empty --sign="$T/k1.secret"

# Four jobs at once, as a CI matrix or a Job array runs them.
job () { "$DF" generate -q --repo="$src" --to=os --out-root="$T/out/job$1" --sign="$T/k1.secret" --jobs=1 "${@:2}"; }
job 1 --from="${rel[5]}" --empty >"$T/job1.out" 2>&1 &
p1=$!
job 2 --from="${rel[4]}" >"$T/job2.out" 2>&1 &
p2=$!
job 3 --from="${rel[3]}" >"$T/job3.out" 2>&1 &
p3=$!
job 4 --from="${rel[2]}" >"$T/job4.out" 2>&1 &
p4=$!
rcs=""
for p in $p1 $p2 $p3 $p4; do wait "$p"; rcs="$rcs $?"; done
check "4 concurrent jobs all succeed" test "$rcs" = " 0 0 0 0"
check "each job wrote its deltas into its own output root, nothing into the repository" bash -c "
  test \$(ls '$T/out/job1' | wc -l) = 2 && test \$(ls -d '$T'/out/job[234]/*-* | wc -l) = 3 &&
  test ! -e '$src/deltafetch'"
expect_exit 0 "index merges the 4 outputs" "$DF" index --repo="$src" --sign="$T/k1.secret" "$T"/out/job{1,2,3,4}
check "index: 5 deltas merged" test "$(grep -c '^indexed ' "$T/ee.out")" = 5
check "byte-identical to the sequential run (deltas, index, stats and its signature)" \
  test "$(tree_sums "$src/deltafetch")" = "$(tree_sums "$seq/deltafetch")"
before=$(tree_sums "$src/deltafetch")
expect_exit 0 "index again" "$DF" index --repo="$src" --sign="$T/k1.secret" "$T"/out/job{1,2,3,4}
check "index again changes nothing" test "$(tree_sums "$src/deltafetch")" = "$before"
expect_exit 0 "a job run again" job 2 --from="${rel[4]}"
check "the job run again keeps its output" bash -c "'$DF' generate --repo='$src' --to=os --out-root='$T/out/job2' \
  --sign='$T/k1.secret' --from='${rel[4]}' | grep -q '^kept: '"
expect_exit 0 "verify --all on the merged repository" "$DF" verify --repo="$src" --all --keys="$T/k1.pub"
check "verify: 5 deltas applied in trial repositories" grep -q '^5 deltas verified, 0 failed' "$T/ee.out"

# Refused, nothing merged: a damaged output, two different deltas of one id.
cp -a "$T/out/job3" "$T/out/bad"
printf '\001' | dd of="$(ls -d "$T/out/bad"/*-*)/0" bs=1 seek=30 conv=notrunc status=none
rm -rf "$src/deltafetch"
expect_exit 4 "index refuses a damaged part" "$DF" index --repo="$src" --sign="$T/k1.secret" "$T/out/job1" "$T/out/bad"
check "nothing was merged" test ! -e "$src/deltafetch"
"$DF" generate -q --repo="$src" --to=os --out-root="$T/out/other" --from="${rel[3]}" --level=12 \
  --sign="$T/k1.secret" >/dev/null
expect_exit 2 "index refuses two different deltas of one id" "$DF" index --repo="$src" --sign="$T/k1.secret" \
  "$T/out/job3" "$T/out/other"
check "nothing was merged" test ! -e "$src/deltafetch"
expect_exit 2 "--out-root with --format=ostree" "$DF" generate --repo="$src" --to=os --from-last=1 \
  --out-root="$T/out/x" --format=ostree
finish
