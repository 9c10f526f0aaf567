#!/bin/bash
# Round trips: from-scratch and from-commit deltas, generated from archive and
# bare repos, applied into bare, bare-user and archive repos; each ends with
# ostree fsck clean and a checkout identical to the source tree.
. "$(dirname "$0")/lib.sh"

make_tree v1 1 && make_tree v2 2 || { not_ok "generate trees"; finish; exit 1; }

for src_mode in archive bare; do
  src=$T/src-$src_mode
  make_src_repo "$src" $src_mode
  c1=$(rev "$src" os^) c2=$(rev "$src" os)
  expect_exit 0 "generate from-scratch in $src_mode repo" "$DF" generate --repo="$src" --empty --to=os^
  expect_exit 0 "generate from-commit in $src_mode repo" "$DF" generate --repo="$src" --from=os^ --to=os
  scratch=$src/deltafetch/v1/deltas/$c1
  delta=$src/deltafetch/v1/deltas/$c1-$c2
  check "index for $c2 lists the delta" test -s "$src/deltafetch/v1/indexes/$c2.index"
  for dst_mode in bare bare-user archive; do
    dst=$T/dst-$src_mode-$dst_mode
    ostree init --repo="$dst" --mode=$dst_mode
    expect_exit 0 "apply scratch $src_mode→$dst_mode" "$DF" apply --repo="$dst" --commit="$c1" --ref=os "$scratch"
    check "scratch $src_mode→$dst_mode: ref set" test "$(rev "$dst" os)" = "$c1"
    if [ $dst_mode = archive ]; then opts=--no-owner; else opts=; fi
    check "scratch $src_mode→$dst_mode: fsck + checkout identical to v1" checkout_matches "$dst" "$c1" "$T/v1"
    expect_exit 0 "apply delta $src_mode→$dst_mode" "$DF" apply --repo="$dst" --commit="$c2" --ref=os "$delta"
    check "delta $src_mode→$dst_mode: ref moved" test "$(rev "$dst" os)" = "$c2"
    check "delta $src_mode→$dst_mode: fsck + checkout identical to v2" checkout_matches "$dst" "$c2" "$T/v2"
    check "delta $src_mode→$dst_mode: no state left in tmp" test -z "$(ls "$dst/tmp" | grep deltafetch || true)"
  done
done

# Without --commit the delta's own to-commit is trusted, and the output says so.
dst=$T/dst-untrusted
ostree init --repo="$dst" --mode=bare-user
"$DF" apply --repo="$dst" "$T/src-archive/deltafetch/v1/deltas/$(rev "$T/src-archive" os^)" >"$T/out" 2>&1
check "apply without --commit says where trust came from" grep -q "trusted from the delta itself" "$T/out"
check "apply without --ref sets no ref" test -z "$(ostree refs --repo="$dst")"

# Applying the same delta twice is harmless and quick.
expect_exit 0 "re-apply an applied delta" "$DF" apply --repo="$T/dst-archive-bare" --ref=os "$T/src-archive/deltafetch/v1/deltas/$(rev "$T/src-archive" os^)-$(rev "$T/src-archive" os)"

# A modified file is patched against its renamed or re-versioned ancestor.
"$DF" show --json "$T/src-archive/deltafetch/v1/deltas/$(rev "$T/src-archive" os^)-$(rev "$T/src-archive" os)" >"$T/show.json"
patched=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["counts"]["content-patch"])' "$T/show.json" 2>/dev/null || grep -o '"content-patch" : [0-9]*' "$T/show.json" | grep -o '[0-9]*$')
check "from-commit delta holds patched objects ($patched)" test "${patched:-0}" -gt 10
finish
