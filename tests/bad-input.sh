#!/bin/bash
# Bad input: every case gets a one-line error, its documented exit code, and
# leaves objects/ and the ref exactly as they were.
. "$(dirname "$0")/lib.sh"

make_tree v1 1 --no-owner && make_tree v2 2 --no-owner || { not_ok "generate trees"; finish; exit 1; }
src=$T/src
make_src_repo "$src" archive
c1=$(rev "$src" os^) c2=$(rev "$src" os)
"$DF" generate -q --repo="$src" --empty --to=os^ --out="$T/scratch" >/dev/null
"$DF" generate -q --repo="$src" --from=os^ --to=os --out="$T/delta" >/dev/null
nparts=$(ls "$T/delta" | grep -c '^[0-9]*$')
diag "delta has $nparts parts"

# A device repo holding v1 on ref os.
base=$T/base
ostree init --repo="$base" --mode=bare-user
"$DF" apply -q --repo="$base" --commit="$c1" --ref=os "$T/scratch"

# mutate NAME: a fresh copy of the delta at $T/m-NAME
mutate () { rm -rf "$T/m-$1"; cp -a "$T/delta" "$T/m-$1"; echo "$T/m-$1"; }
# tool CMD DELTA [N]: run the fault-making tool; a failing tool is a failing test
tool () { "$DF_TEST_TOOL" "$@" || { not_ok "df-test-tool $1 failed"; return 1; }; }

last=$((nparts - 1))
d=$(mutate truncated); truncate -s -7 "$d/$last"
try_refused truncated-part 3 "$d" --commit="$c2"

d=$(mutate flipped); printf '\xff' | dd of="$d/$last" bs=1 seek=100 conv=notrunc status=none
try_refused flipped-byte-in-part 4 "$d" --commit="$c2"

d=$(mutate parthash); tool part-sha "$d" "$last"
try_refused wrong-part-hash-in-superblock 4 "$d" --commit="$c2"

d=$(mutate objhash); tool corrupt-object "$d" >/dev/null
try_refused object-hashes-wrong 4 "$d" --commit="$c2"

d=$(mutate extra); extra=$(tool extra-object "$d")
try_refused extra-unreferenced-object 5 "$d" --commit="$c2"
check "extra object never reached the repo" test ! -e "$T/repo-extra-unreferenced-object/objects/${extra:0:2}/${extra:2}.file"
grep -q "not referenced" "$T/ee.err" && ok "error names the unreferenced object" || not_ok "error names the unreferenced object"

# Path traversal in a dirtree of the trusted commit itself (a commit that
# hashes right but names a file ".." or "a/b"): refused by the walk before
# anything is written.
for name in .. a/b; do
  tag=name-${name//\//-}
  d=$(mutate "$tag"); bad=$(tool bad-name "$d" "$name") || continue
  try_refused "dirtree-entry-$tag" 3 "$d" --commit="$bad"
  check "dirtree entry named $name: the error says the dirtree is invalid" grep -qiE "invalid|malformed" "$T/ee.err"
done

d=$(mutate unsized); tool unsized-part "$d" "$last"
try_refused part-without-declared-size 3 "$d" --commit="$c2"

d=$(mutate grown); tool grown-part "$d" "$last"
try_refused declared-uncompressed-size-exceeded 3 "$d" --commit="$c2"

try_refused wrong-trusted-commit 5 "$T/delta" --commit="$c1"

# The delta needs v1; a repo without it refuses before writing anything.
empty=$T/empty
ostree init --repo="$empty" --mode=bare-user
before=$(objects_list "$empty")
expect_exit 6 "from-commit missing in repo" "$DF" apply --repo="$empty" --commit="$c2" "$T/delta"
check "from-commit missing: nothing written" test "$before" = "$(objects_list "$empty")"

# A delta for a different from-commit: made from v2 to v1 and applied to v1-only repo.
"$DF" generate -q --repo="$src" --from=os --to=os^ --out="$T/reverse" >/dev/null
try_refused superblock-for-other-from-commit 6 "$T/reverse" --commit="$c1"

d=$(mutate nosb); rm "$d/superblock"
try_refused missing-superblock 3 "$d"
d=$(mutate badmagic); printf 'XX' | dd of="$d/superblock" bs=1 seek=0 conv=notrunc status=none
try_refused bad-magic 3 "$d"
d=$(mutate sbtrunc); truncate -s -1 "$d/superblock"
try_refused truncated-superblock 3 "$d"
d=$(mutate sbflip); sz=$(stat -c %s "$d/superblock"); printf '\x01' | dd of="$d/superblock" bs=1 seek=$((sz / 2)) conv=notrunc status=none
try_refused flipped-byte-in-superblock-body 3 "$d" --commit="$c2"
d=$(mutate missingpart); rm "$d/0"
try_refused missing-part 3 "$d" --commit="$c2"

# A chunk of an object split across parts: its part verifies, the object
# does not. Nothing is written, and the good delta still applies afterwards.
make_tree v3 2 --no-owner --large-file=5000000 >/dev/null
ostree commit --repo="$src" -b big --tree=dir="$T/v3" >/dev/null
c3=$(rev "$src" big)
"$DF" generate -q --repo="$src" --from=os^ --to=big --out="$T/bigdelta" >/dev/null
rm -rf "$T/m-chunk"; cp -a "$T/bigdelta" "$T/m-chunk"
if tool corrupt-chunk "$T/m-chunk" >/dev/null; then
  repo=$T/repo-chunk
  rm -rf "$repo"; cp -a "$base" "$repo"
  before=$(objects_list "$repo")
  expect_exit 4 "split object whose chunk hashes wrong" "$DF" apply --repo="$repo" --commit="$c3" --ref=os "$T/m-chunk"
  check "split chunk: objects/ unchanged" test "$before" = "$(objects_list "$repo")"
  check "split chunk: ref unchanged" test "$(rev "$repo" os)" = "$c1"
  expect_exit 0 "the good delta applies after the bad one" "$DF" apply --repo="$repo" --commit="$c3" --ref=os "$T/bigdelta"
  check "good delta after bad: fsck + checkout identical" checkout_matches "$repo" "$c3" "$T/v3"
fi

# An object the commit needs, which the delta does not carry (it expects it
# from v1), is missing from the repository: refused before the commit lands.
holey=$T/repo-holey
cp -a "$base" "$holey"
find "$holey/objects" -name '*.dirmeta' -delete
expect_exit 6 "an object neither in the delta nor in the repository" "$DF" apply --repo="$holey" --commit="$c2" \
  --ref=os "$T/delta"
check "missing object: the error names it" grep -q "neither in the delta nor in the repository" "$T/ee.err"
check "missing object: ref still on v1" test "$(rev "$holey" os)" = "$c1"
check "missing object: no commit object for v2" test ! -e "$holey/objects/${c2:0:2}/${c2:2}.commit"

# Files v2 keeps unchanged from v1 (so the delta does not carry them) are
# missing: the final presence check catches them, whether it lists their
# objects/XX directory (several missing there) or asks for one alone.
ostree ls --repo="$src" -R -C "$c2" | awk '$1 ~ /^-/ { print $5 }' | sort -u >"$T/c2-files"
unchanged=$(while read -r f; do [ -e "$base/objects/${f:0:2}/${f:2}.file" ] && echo "$f"; done <"$T/c2-files")
busiest=$(echo "$unchanged" | cut -c1-2 | sort | uniq -c | sort -rn | awk 'NR == 1 { print $2 }')
diag "unchanged files: $(echo "$unchanged" | wc -l); busiest objects/ directory $busiest holds $(echo "$unchanged" | grep -c "^$busiest")"
lone=$(echo "$unchanged" | grep -v "^$busiest" | head -1)
for kind in many one; do
  holey=$T/repo-holey-$kind
  rm -rf "$holey"; cp -a "$base" "$holey"
  if [ $kind = many ]; then gone=$(echo "$unchanged" | grep "^$busiest"); else gone=$lone; fi
  for f in $gone; do rm "$holey/objects/${f:0:2}/${f:2}.file"; done
  expect_exit 6 "unchanged files missing ($kind)" "$DF" apply --repo="$holey" --commit="$c2" --ref=os "$T/delta"
  check "unchanged files missing ($kind): the error names a missing file" \
    grep -qE "file ($(echo $gone | tr ' ' '|')) of commit $c2 is neither in the delta nor in the repository" "$T/ee.err"
  check "unchanged files missing ($kind): ref still on v1" test "$(rev "$holey" os)" = "$c1"
  check "unchanged files missing ($kind): no commit object for v2" test ! -e "$holey/objects/${c2:0:2}/${c2:2}.commit"
done

# Rollback protection: a device on v2 refuses the older v1 on the same ref.
newer=$T/repo-newer
cp -a "$base" "$newer"
"$DF" apply -q --repo="$newer" --commit="$c2" --ref=os "$T/delta"
before=$(objects_list "$newer")
expect_exit 11 "downgrade refused" "$DF" apply --repo="$newer" --commit="$c1" --ref=os "$T/scratch"
check "downgrade: objects/ unchanged" test "$before" = "$(objects_list "$newer")"
check "downgrade: ref still on v2" test "$(rev "$newer" os)" = "$c2"
expect_exit 0 "downgrade with --allow-downgrade" "$DF" apply --repo="$newer" --commit="$c1" --ref=os \
  --allow-downgrade "$T/scratch"
check "allowed downgrade: ref on v1" test "$(rev "$newer" os)" = "$c1"
expect_exit 0 "no ref given: no downgrade check" "$DF" apply --repo="$newer" --commit="$c1" "$T/scratch"

# The source repository lacks an object the to-commit needs, or holds it
# cut short: generate fails with an I/O error naming it and leaves nothing
# in --out. A missing root dirmeta fails it while packing metadata; a file
# only v2 has, cut in half, while encoding content. A directory that
# existed keeps what it held.
gholey=$T/src-holey
cp -a "$src" "$gholey"
gone=$(ostree ls --repo="$src" -d -C os / | awk '{ print $6 }')
rm "$gholey/objects/${gone:0:2}/${gone:2}.dirmeta"
expect_exit 8 "generate: a dirmeta missing from the source" "$DF" generate --repo="$gholey" --empty --to=os \
  --out="$T/gen-holey"
check "generate, missing dirmeta: the error names it" grep -q "$gone" "$T/ee.err"
check "generate, missing dirmeta: no delta directory left" test ! -e "$T/gen-holey"
rm -rf "$gholey" && cp -a "$src" "$gholey"
files_of () { ostree ls --repo="$src" -R -C "$1" / | awk '/^-/ { print $5 }' | sort -u; }
gone=$(comm -13 <(files_of os^) <(files_of os) | head -1)
gz=$gholey/objects/${gone:0:2}/${gone:2}.filez
truncate -s $(($(stat -c %s "$gz") / 2)) "$gz"
mkdir -p "$T/gen-holey2" && echo keep >"$T/gen-holey2/notes"
expect_exit 8 "generate: a file cut short in the source" "$DF" generate --repo="$gholey" --from=os^ --to=os \
  --out="$T/gen-holey2"
check "generate, file cut short: the error names it" grep -q "$gone" "$T/ee.err"
check "generate, file cut short: the directory holds only what it held" test "$(ls "$T/gen-holey2")" = notes

expect_exit 2 "malformed --commit" "$DF" apply --repo="$base" --commit=xyz "$T/delta"
expect_exit 2 "memory budget too small" "$DF" apply --repo="$base" --memory=1M "$T/delta"
expect_exit 2 "not a repository" "$DF" apply --repo="$T/nowhere" "$T/delta"
expect_exit 2 "unknown option" "$DF" apply --bogus
finish
