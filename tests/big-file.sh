#!/bin/bash
# A commit holding a 1 GiB file: apply stays within the default 64 MiB memory
# budget (peak RSS measured with getrusage and printed), and the result is
# identical to the source tree.
. "$(dirname "$0")/lib.sh"
SIZE=${DF_BIG_FILE_SIZE:-1073741824}

make_tree v1 1 --no-owner --large-file="$SIZE" && make_tree v2 2 --no-owner --large-file="$SIZE" || { not_ok "trees"; finish; exit 1; }
src=$T/src
make_src_repo "$src" bare
c1=$(rev "$src" os^) c2=$(rev "$src" os)
"$DF" generate -q --repo="$src" --empty --to=os^ --out="$T/scratch" --level=3 >/dev/null
"$DF" generate -q --repo="$src" --from=os^ --to=os --out="$T/delta" --level=3 >/dev/null
diag "scratch delta $(du -sh "$T/scratch" | cut -f1), update delta $(du -sh "$T/delta" | cut -f1)"
repo=$T/dev
ostree init --repo="$repo" --mode=bare
for d in scratch delta; do
  c=$c1; [ $d = delta ] && c=$c2
  "$DF_TEST_TOOL" maxrss "$DF" apply --repo="$repo" --commit="$c" --ref=os "$T/$d" >"$T/$d.out" 2>"$T/$d.rss"
  rc=$?
  kib=$(sed -n 's/^maxrss-kib //p' "$T/$d.rss")
  sed 's/^/# /' "$T/$d.out"
  diag "apply $d: peak RSS $((kib / 1024)) MiB ($kib KiB)"
  check "apply $d succeeded" test "$rc" = 0
  check "apply $d peak RSS $((kib / 1024)) MiB < 64 MiB" test "$kib" -lt 65536
done
check "fsck + checkout identical to v2" checkout_matches "$repo" "$c2" "$T/v2"
finish
