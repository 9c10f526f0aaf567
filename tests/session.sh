#!/bin/bash
# The apply path a fetcher will drive: parts handed over one by one from
# another thread, content before metadata, in random orders; the result is
# fsck-clean and identical to the source tree. A part that never arrives
# fails the apply with nothing written.
. "$(dirname "$0")/lib.sh"

make_tree v1 1 --scale=2 && make_tree v2 2 --scale=2 --large-file=9000000 || { not_ok "trees"; finish; exit 1; }
src=$T/src
make_src_repo "$src" archive
c1=$(rev "$src" os^) c2=$(rev "$src" os)
"$DF" generate -q --repo="$src" --empty --to=os^ --out="$T/scratch" >/dev/null
"$DF" generate -q --repo="$src" --from=os^ --to=os --out="$T/delta" --part-size=1M >/dev/null
diag "delta: $(ls "$T/delta" | wc -l) files"
base=$T/base
ostree init --repo="$base" --mode=bare-user
"$DF" apply -q --repo="$base" --commit="$c1" --ref=os "$T/scratch"

for seed in 1 2 3; do
  repo=$T/r$seed
  cp -a "$base" "$repo"
  if "$DF_SESSION" "$repo" "$T/delta" "$c2" "$seed" >"$T/out" 2>&1; then
    ok "seed $seed: $(cat "$T/out")"
  else
    not_ok "seed $seed failed: $(cat "$T/out")"
  fi
  check "seed $seed: ref moved" test "$(rev "$repo" os)" = "$c2"
  check "seed $seed: fsck + checkout identical to v2" checkout_matches "$repo" "$c2" "$T/v2"
done

repo=$T/missing
cp -a "$base" "$repo"
before=$(objects_list "$repo")
rc=0
"$DF_SESSION" "$repo" "$T/delta" "$c2" 4 --skip-part=$(( $(ls "$T/delta" | wc -l) - 2 )) >"$T/out" 2>&1 || rc=$?
check "a part that never arrives fails the apply (exit $rc: $(cat "$T/out"))" test "$rc" = 3
check "missing part: objects/ unchanged" test "$before" = "$(objects_list "$repo")"
check "missing part: ref unchanged" test "$(rev "$repo" os)" = "$c1"
finish
