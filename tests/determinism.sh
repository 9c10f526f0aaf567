#!/bin/bash
# The same repository, commits and options give byte-identical deltas,
# whatever the number of jobs and whether written inside the repo or out.
. "$(dirname "$0")/lib.sh"

make_tree v1 1 --no-owner && make_tree v2 2 --no-owner || { not_ok "generate trees"; finish; exit 1; }
make_src_repo "$T/src" archive
make_src_repo "$T/src2" bare
for kind in "--empty --to=os" "--from=os^ --to=os"; do
  name=$(echo "$kind" | tr -dc 'a-z')
  "$DF" generate -q --repo="$T/src" $kind --jobs=1 --out="$T/$name-j1" >/dev/null
  "$DF" generate -q --repo="$T/src" $kind --jobs=2 --out="$T/$name-j2" >/dev/null
  "$DF" generate -q --repo="$T/src" $kind --jobs=7 --part-size=1M --out="$T/$name-small" >/dev/null
  "$DF" generate -q --repo="$T/src2" $kind --jobs=3 --out="$T/$name-bare" >/dev/null
  check "$kind: jobs=1 and jobs=2 identical" diff -r "$T/$name-j1" "$T/$name-j2"
  check "$kind: archive and bare source repos identical" diff -r "$T/$name-j1" "$T/$name-bare"
  [ "$name" = emptytoos ] && check "$kind: smaller parts give more parts" test "$(ls "$T/$name-small" | wc -l)" -gt "$(ls "$T/$name-j1" | wc -l)"
done
out=$("$DF" generate -q --repo="$T/src" --from=os^ --to=os)
sum1=$(cat "$out"/* | sha256sum)
"$DF" generate -q --repo="$T/src" --from=os^ --to=os --force >/dev/null
check "regenerating inside the repo gives the same bytes" test "$sum1" = "$(cat "$out"/* | sha256sum)"
check "inside-repo delta equals --out delta" diff -r "$out" "$T/fromostoos-j1"

# A large file (ten 2 MiB chunks): its chunks are encoded by every worker,
# with the same bytes as one worker makes.
rm -rf "$T/v1" "$T/v2"
make_tree v1 1 --no-owner --large-file=20000000 && make_tree v2 2 --no-owner --large-file=20000000
make_src_repo "$T/large" archive
for j in 1 2 5; do
  "$DF" generate -q --repo="$T/large" --from=os^ --to=os --jobs=$j --out="$T/large-j$j" >/dev/null
done
check "large file: jobs=1 and jobs=2 identical" diff -r "$T/large-j1" "$T/large-j2"
check "large file: jobs=1 and jobs=5 identical" diff -r "$T/large-j1" "$T/large-j5"
check "large file: it is split into chunks" \
  bash -c "'$DF' show --json '$T/large-j2' | grep -q '\"content-split\" : [1-9]'"
finish
