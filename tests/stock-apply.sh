#!/bin/bash
# deltafetch apply of deltas made by the stock `ostree static-delta
# generate`: the default (bsdiff and rollsum), --disable-bsdiff, --inline,
# --swap-endianness, from scratch, into bare, bare-user and archive
# repositories (stock apply-offline cannot write archive), and
# deltafetch's own signed stock-format deltas; each result fsck-clean and
# identical to the source tree. Then what must be refused: fallbacks offline,
# a wrong commit, bad signatures, and malformed parts (hash, opcode, offset,
# bspatch controls, object count), each with nothing written.
. "$(dirname "$0")/lib.sh"

make_tree v1 1 --no-owner && make_tree v2 2 --no-owner || { not_ok "generate trees"; finish; exit 1; }
src=$T/src
make_src_repo "$src" archive
c1=$(rev "$src" os^) c2=$(rev "$src" os)

gen () { # gen NAME [ostree static-delta generate options...]: the delta in $T/NAME/
  local name=$1; shift
  # ostree 2022.7 writes the superblock at --filename and the parts beside it.
  mkdir -p "$T/$name"
  ostree static-delta generate --repo="$src" --filename="$T/$name/superblock" "$@" >/dev/null
}
gen default --from=os^ --to=os
gen nobsdiff --from=os^ --to=os --disable-bsdiff
gen inline --from=os^ --to=os --inline
gen swapped --from=os^ --to=os --swap-endianness
gen scratch --empty --to=os^
gen fallback --empty --to=os --min-fallback-size=1
gen multipart --from=os^ --to=os --max-chunk-size=1

verify () { "$DF_TEST_TOOL" stock-verify "$src" "$T/$1" >"$T/$1.verify" 2>&1; }
field () { awk -v k="$2" '$1 == k { print $2 }' "$T/$1.verify"; }
op () { grep '^ops' "$T/$1.verify" | tr ' ' '\n' | awk -v k="$2" 'p { print; exit } $0 == k { p = 1 }'; }
for d in default nobsdiff inline swapped scratch; do
  check "stock-verify $d: every object the parts make hashes to its checksum" verify "$d"
done
check "default: has bspatch opcodes" test "$(op default bspatch)" -gt 0
check "--disable-bsdiff: no bspatch opcodes" test "$(op nobsdiff bspatch)" = 0
check "--inline: the parts are inside the superblock" test "$(ls "$T/inline")" = superblock
check "--inline: parsed as inline" grep -q "inline [1-9]" "$T/inline.verify"
check "--swap-endianness: read as big-endian" grep -q "^endianness big" "$T/swapped.verify"
check "--min-fallback-size=1: fallback objects declared" bash -c "'$DF_TEST_TOOL' stock-verify '$src' '$T/fallback' | grep -q '^fallbacks [1-9]'"
diag "default: $(tr '\n' ' ' <"$T/default.verify")"
check "show: a stock delta" bash -c "'$DF' show '$T/swapped' | grep -q '^Format: *stock OSTree static delta'"
check "show --json: format ostree, parts and objects" bash -c "'$DF' show --json '$T/inline' | python3 -c '
import json, sys; d = json.load(sys.stdin)
assert d[\"format\"] == \"ostree\" and len(d[\"parts\"]) >= 1 and d[\"counts\"][\"metadata-objects\"] > 0, d'"
check "show: fallbacks counted" bash -c "'$DF' show --json '$T/fallback' | grep -q '\"fallback-objects\" : [1-9]'"

base=$T/base
ostree init --repo="$base" --mode=bare
ostree pull-local --repo="$base" "$src" "$c1" >/dev/null
ostree refs --repo="$base" --create=os "$c1"

apply_ok () { # apply_ok NAME DELTA MODE [apply args...]
  local name=$1 delta=$2 mode=$3; shift 3
  local repo=$T/dev-$name
  if [ "$mode" = bare ]; then cp -a "$base" "$repo"; else
    ostree init --repo="$repo" --mode="$mode"
    ostree pull-local --repo="$repo" "$src" "$c1" >/dev/null
    ostree refs --repo="$repo" --create=os "$c1"
  fi
  expect_exit 0 "$name: deltafetch apply" "$DF" apply --repo="$repo" --commit="$c2" --ref=os "$@" "$delta"
  check "$name: ref os on v2" test "$(rev "$repo" os)" = "$c2"
  check "$name: fsck-clean and identical to v2" checkout_matches "$repo" "$c2" "$T/v2"
}
apply_ok default "$T/default" bare
apply_ok bare-user "$T/default" bare-user
apply_ok archive "$T/default" archive
apply_ok nobsdiff "$T/nobsdiff" bare
apply_ok inline "$T/inline" bare
apply_ok swapped "$T/swapped" bare
check "a second apply finds everything present" "$DF" apply -q --repo="$T/dev-default" --commit="$c2" "$T/default"

# Several xz decoders (a budget with room for three dictionaries) on a
# delta of many small parts, consumed in whatever order they finish.
nmulti=$(ls "$T/multipart" | grep -c '^[0-9]*$')
diag "multipart: $nmulti parts"
check "--max-chunk-size=1: several parts" test "$nmulti" -ge 4
apply_ok three-decoders "$T/multipart" bare --jobs=3 --memory=160M
check "three decoders: 3 decoders and the rebuilding thread" grep -q " 4 workers," "$T/ee.out"
apply_ok one-decoder "$T/multipart" bare --memory=64M
check "default budget: one decoder and the rebuilding thread" grep -q " 2 workers," "$T/ee.out"

scratch=$T/dev-scratch
ostree init --repo="$scratch" --mode=bare
expect_exit 0 "from scratch: deltafetch apply" "$DF" apply --repo="$scratch" --commit="$c1" --ref=os "$T/scratch"
check "from scratch: fsck-clean and identical to v1" checkout_matches "$scratch" "$c1" "$T/v1"

# Signed stock-format deltas, made by deltafetch (Debian's ostree cannot
# sign with ed25519).
openssl genpkey -algorithm ed25519 -out "$T/k.pem" 2>/dev/null
openssl pkey -in "$T/k.pem" -outform DER | tail -c 32 >"$T/seed"
openssl pkey -in "$T/k.pem" -pubout -outform DER | tail -c 32 >"$T/raw"
cat "$T/seed" "$T/raw" | base64 -w0 >"$T/k.secret"
base64 -w0 "$T/raw" >"$T/k.pub"
openssl genpkey -algorithm ed25519 -out "$T/o.pem" 2>/dev/null
openssl pkey -in "$T/o.pem" -pubout -outform DER | tail -c 32 | base64 -w0 >"$T/other.pub"
"$DF" generate -q --repo="$src" --from=os^ --to=os --format=ostree --sign="$T/k.secret" --out="$T/signed" >/dev/null
apply_ok signed "$T/signed" bare --keys="$T/k.pub" --require-signatures
check "signed: the signature is reported verified" grep -q "signature" "$T/ee.out"

try_refused fallbacks-offline 6 "$T/fallback" --commit="$c2"
empty=$T/empty-bare
ostree init --repo="$empty" --mode=bare
expect_exit 6 "fallbacks offline into an empty repository" "$DF" apply --repo="$empty" --commit="$c2" "$T/fallback"
check "fallbacks offline: nothing in objects/" test -z "$(objects_list "$empty")"
try_refused wrong-commit 5 "$T/default" --commit="$c1"
try_refused signed-wrong-key 5 "$T/signed" --keys="$T/other.pub"
try_refused unsigned-required 5 "$T/default" --keys="$T/k.pub" --require-signatures

mutate () { rm -rf "$T/m-$1"; cp -a "$T/default" "$T/m-$1"; echo "$T/m-$1"; }
d=$(mutate flipped); printf '\x55' | dd of="$d/0" bs=1 seek=100 conv=notrunc 2>/dev/null
try_refused flipped-byte-in-part 4 "$d" --commit="$c2"
# With three decoders, a bad part (the last) fails its decoder while the
# others run: the same refusal, nothing written.
rm -rf "$T/m-multi"; cp -a "$T/multipart" "$T/m-multi"
lastpart=$(ls "$T/m-multi" | grep -x '[0-9]*' | sort -n | tail -1)
printf '\x55' | dd of="$T/m-multi/$lastpart" bs=1 seek=100 conv=notrunc 2>/dev/null
try_refused flipped-byte-three-decoders 4 "$T/m-multi" --commit="$c2" --jobs=3 --memory=160M
d=$(mutate truncated); truncate -s -5 "$d/0"
try_refused truncated-part 3 "$d" --commit="$c2"
d=$(mutate missing); rm "$d/0"
try_refused missing-part 3 "$d" --commit="$c2"
# Malformed parts, rewritten uncompressed with their hash fixed: the first
# part whose program has what the fault needs.
for what in opcode offset objects bspatch-negative bspatch-long zero-size; do
  d=$T/m-$what made=
  for i in $(ls "$T/default" | grep -x '[0-9]*' | sort -n); do
    rm -rf "$d"; cp -a "$T/default" "$d"
    if "$DF_TEST_TOOL" stock-mangle "$d" "$i" "$what" >/dev/null 2>&1; then made=$i; break; fi
  done
  if [ -n "$made" ]; then
    diag "$what: part $made"
    try_refused "malformed-part-$what" 3 "$d" --commit="$c2"
  else
    not_ok "could not make a part with fault $what"
  fi
done
# Seeded random damage to the superblock and to a decoded payload (past its
# hash): each refused or harmless, never a crash (ASan builds run the same).
check "500 damaged superblocks and payloads: no crash" "$DF_TEST_TOOL" stock-fuzz "$src" "$T/default" 500
diag "$(tr '\n' ' ' <"$T/check.out")"
finish
