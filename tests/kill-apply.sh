#!/bin/bash
# kill -9 at seeded random moments of an apply: after every kill the repo is
# fsck-clean and the ref still names the old commit; a rerun resumes, skipping
# parts already applied, and the result is identical to the source tree.
. "$(dirname "$0")/lib.sh"
KILLS=${DF_KILLS:-12}
RANDOM=${SEED:-7}

make_tree v1 1 --scale=6 && make_tree v2 2 --scale=6 --large-file=48000000 || { not_ok "trees"; finish; exit 1; }
src=$T/src
make_src_repo "$src" archive
c1=$(rev "$src" os^) c2=$(rev "$src" os)
"$DF" generate -q --repo="$src" --empty --to=os^ --out="$T/scratch" --part-size=1M >/dev/null
"$DF" generate -q --repo="$src" --from=os^ --to=os --out="$T/delta" --part-size=1M >/dev/null
diag "delta: $(ls "$T/delta" | wc -l) files, $(du -sh "$T/delta" | cut -f1)"

repo=$T/dev
ostree init --repo="$repo" --mode=bare
"$DF" apply -q --repo="$repo" --commit="$c1" --ref=os "$T/scratch"

# How long an uninterrupted apply takes, to spread the kills over it.
cp -a "$repo" "$T/probe"
start=$(date +%s%N)
"$DF" apply -q --repo="$T/probe" --commit="$c2" "$T/delta"
dur_ms=$(( ($(date +%s%N) - start) / 1000000 ))
rm -rf "$T/probe"
diag "uninterrupted apply: ${dur_ms} ms"

killed=0 finished=0
for i in $(seq 1 "$KILLS"); do
  delay=$(( RANDOM % (dur_ms + 1) ))
  "$DF" apply -q --repo="$repo" --commit="$c2" --ref=os "$T/delta" &
  pid=$!
  sleep "$(printf '0.%03d' "$delay")"
  if kill -9 "$pid" 2>/dev/null; then killed=$((killed + 1)); fi
  wait "$pid" 2>/dev/null
  if [ "$(rev "$repo" os)" = "$c2" ]; then
    finished=$((finished + 1))
    diag "kill $i after ${delay} ms: apply had finished"
    break
  fi
  ostree fsck --repo="$repo" >"$T/fsck.out" 2>&1 || { not_ok "kill $i after ${delay} ms: fsck failed"; sed 's/^/# /' "$T/fsck.out"; continue; }
  check "kill $i after ${delay} ms: fsck clean, ref still on the old commit" test "$(rev "$repo" os)" = "$c1"
done
diag "$killed kills landed"
"$DF" apply --repo="$repo" --commit="$c2" --ref=os "$T/delta" >"$T/final.out" 2>&1
rc=$?
cat "$T/final.out" | sed 's/^/# /'
check "rerun completes" test "$rc" = 0
check "ref moved to the new commit" test "$(rev "$repo" os)" = "$c2"
check "fsck + checkout identical to v2" checkout_matches "$repo" "$c2" "$T/v2"
if [ "$finished" = 0 ] && [ "$killed" -gt 2 ]; then
  check "the rerun reused parts applied before the kills" grep -qE ' [1-9][0-9]* already present' "$T/final.out"
fi
finish
