#!/bin/bash
# ed25519-signed superblocks in libostree's signed-delta envelope: keys made
# here with the openssl CLI in `ostree sign`'s format, `generate --sign`,
# the envelope checked with GLib independently of deltafetch's parser,
# verification on apply and fetch with key files and key directories, and
# every refusal: wrong key, forged contents under a valid signature,
# unsigned delta under --keys (unless --allow-unsigned) or
# --require-signatures, no keys under --require-signatures.
. "$(dirname "$0")/lib.sh"

keypair good && keypair other || { not_ok "openssl made no ed25519 keys"; finish; exit 1; }
ok "ed25519 key pairs made with openssl"

make_tree v1 1 --no-owner && make_tree v2 2 --no-owner || { not_ok "generate trees"; finish; exit 1; }
mkdir -p "$T/www"
src=$T/www/repo
make_src_repo "$src" archive
c1=$(rev "$src" os^) c2=$(rev "$src" os)
check "generate --sign (from scratch, into the repo)" "$DF" generate -q --repo="$src" --empty --to=os^ --sign="$T/good.secret"
check "generate --sign (v1 -> v2, into the repo)" "$DF" generate -q --repo="$src" --from=os^ --to=os --sign="$T/good.secret"
check "generate --sign --out" "$DF" generate -q --repo="$src" --empty --to=os^ --out="$T/signed" --sign="$T/good.secret"
"$DF" generate -q --repo="$src" --empty --to=os^ --out="$T/unsigned" >/dev/null
expect_exit 2 "generate with a malformed secret key" "$DF" generate -q --repo="$src" --empty --to=os^ \
  --out="$T/never" --sign="$T/good.pub"
check "the malformed key stopped generate before it wrote anything" test ! -e "$T/never/superblock"

check "the envelope starts with the magic OSTSGNDT" test "$(head -c 8 "$T/signed/superblock")" = OSTSGNDT
check "envelope: (taya{sv}) in normal form, one 64-byte ostree.sign.ed25519 signature, a deltafetch superblock inside" \
  "$DF_TEST_TOOL" check-envelope "$T/signed/superblock" "$T/unsigned/superblock"
check "show reads a signed delta" "$DF" show "$T/signed"

# Apply
dev=$T/dev
ostree init --repo="$dev" --mode=bare
before=$(objects_list "$dev")
expect_exit 5 "apply: signed by another key is refused" "$DF" apply --repo="$dev" --commit="$c1" \
  --keys="$T/other.pub" "$T/signed"
cp -a "$T/signed" "$T/forged"
"$DF" generate -q --repo="$src" --empty --to=os --out="$T/unsigned-v2" >/dev/null
"$DF_TEST_TOOL" swap-signed "$T/forged" "$T/unsigned-v2"
expect_exit 5 "apply: another superblock under a valid signature is refused" "$DF" apply --repo="$dev" \
  --keys="$T/good.pub" "$T/forged"
expect_exit 5 "apply: unsigned delta under --require-signatures" "$DF" apply --repo="$dev" --commit="$c1" \
  --keys="$T/good.pub" --require-signatures "$T/unsigned"
expect_exit 5 "apply: --require-signatures without keys" "$DF" apply --repo="$dev" --commit="$c1" \
  --require-signatures "$T/signed"
expect_exit 2 "apply: a key file that holds no key" "$DF" apply --repo="$dev" --commit="$c1" \
  --keys="$T/good.seed" "$T/signed"
# Trusted keys alone require a signature: an unsigned delta is refused
# unless --allow-unsigned says a fleet is still moving to signed deltas.
expect_exit 5 "apply: --keys alone refuses an unsigned delta" "$DF" apply --repo="$dev" --commit="$c1" \
  --keys="$T/good.pub" "$T/unsigned"
check "the refusal says the superblock is not signed" grep -q "not signed" "$T/ee.err"
expect_exit 2 "apply: --require-signatures contradicts --allow-unsigned" "$DF" apply --repo="$dev" --commit="$c1" \
  --keys="$T/good.pub" --require-signatures --allow-unsigned "$T/unsigned"
expect_exit 5 "apply: --allow-unsigned still refuses a signature by another key" "$DF" apply --repo="$dev" \
  --commit="$c1" --keys="$T/other.pub" --allow-unsigned "$T/signed"
check "refused deltas wrote nothing" test "$before" = "$(objects_list "$dev")"
ulet=$T/dev-unsigned
ostree init --repo="$ulet" --mode=bare
expect_exit 0 "apply: --keys --allow-unsigned accepts an unsigned delta" "$DF" apply --repo="$ulet" --commit="$c1" \
  --keys="$T/good.pub" --allow-unsigned "$T/unsigned"
check "apply --allow-unsigned: fsck-clean and identical" checkout_matches "$ulet" "$c1" "$T/v1"
mkdir -p "$T/keys.d"
cp "$T/other.pub" "$T/keys.d/a"
cp "$T/good.pub" "$T/keys.d/b"
expect_exit 0 "apply: verified with a key directory, signatures required" "$DF" apply --repo="$dev" \
  --commit="$c1" --ref=os --keys="$T/keys.d" --require-signatures "$T/signed"
check "apply: says the signature verified" grep -q "signature verified" "$T/ee.out"
check "apply: fsck-clean and identical" checkout_matches "$dev" "$c1" "$T/v1"

# Fetch
if start_nginx "$T/www"; then
  url=http://127.0.0.1:$NGINX_PORT/repo
  dev2=$T/dev2
  ostree init --repo="$dev2" --mode=bare
  mark=$(($(wc -l <"$NGINX_LOG") + 1))
  expect_exit 5 "fetch: signed by another key is refused" "$DF" fetch --repo="$dev2" --url="$url" --commit="$c1" \
    --keys="$T/other.pub" --require-signatures
  check "fetch: refused before any part was downloaded" \
    bash -c "! tail -n +$mark '$NGINX_LOG' | grep -q 'deltas/$c1/[0-9]'"
  check "fetch: v1 verified with the right key" "$DF" fetch --repo="$dev2" --url="$url" --commit="$c1" --ref=os \
    --keys="$T/good.pub" --require-signatures --json
  cp "$T/check.out" "$T/fetch.json"
  check "fetch: the JSON result says verified" grep -q '"signature_verified":true' "$T/fetch.json"
  check "fetch: v2 verified with the right key" "$DF" fetch --repo="$dev2" --url="$url" --commit="$c2" --ref=os \
    --keys="$T/good.pub" --require-signatures
  check "fetch: fsck-clean and identical" checkout_matches "$dev2" "$c2" "$T/v2"
  mkdir -p "$T/www/unsigned-repo"
  usrc=$T/www/unsigned-repo
  make_src_repo "$usrc" archive
  "$DF" generate -q --repo="$usrc" --empty --to=os^ >/dev/null
  udev=$T/udev
  ostree init --repo="$udev" --mode=bare
  expect_exit 5 "fetch: --keys alone refuses an unsigned delta" "$DF" fetch --repo="$udev" \
    --url="http://127.0.0.1:$NGINX_PORT/unsigned-repo" --commit="$(rev "$usrc" os^)" --keys="$T/good.pub" --no-pull-fallback
  expect_exit 0 "fetch: --keys --allow-unsigned accepts it" "$DF" fetch --repo="$udev" \
    --url="http://127.0.0.1:$NGINX_PORT/unsigned-repo" --commit="$(rev "$usrc" os^)" --keys="$T/good.pub" \
    --allow-unsigned --no-pull-fallback
  plain=$T/www/plain
  make_src_repo "$plain" archive
  dev3=$T/dev3
  ostree init --repo="$dev3" --mode=bare
  expect_exit 5 "fetch: no libostree fallback under --require-signatures" "$DF" fetch --repo="$dev3" \
    --url="http://127.0.0.1:$NGINX_PORT/plain" --commit="$(rev "$plain" os)" --keys="$T/good.pub" --require-signatures
else
  not_ok "nginx did not start"
fi

# The golden signed stock delta in testdata/ (fixed bytes, made once).
golden=$DF_SRCDIR/testdata/golden-signed-stock
gdev=$T/golden-dev
ostree init --repo="$gdev" --mode=bare
expect_exit 5 "golden: signed by another key is refused" "$DF" apply --repo="$gdev" --keys="$T/good.pub" "$golden"
cp -a "$golden" "$T/golden-tampered"
printf '\x00' | dd of="$T/golden-tampered/superblock" bs=1 seek=200 conv=notrunc 2>/dev/null
expect_exit 5 "golden: a byte changed under the signature is refused" "$DF" apply --repo="$gdev" \
  --keys="$golden/key.pub" "$T/golden-tampered"
check "golden: nothing written by the refused ones" test -z "$(objects_list "$gdev")"
expect_exit 0 "golden: verified with its key, signatures required" "$DF" apply --repo="$gdev" --ref=golden \
  --keys="$golden/key.pub" --require-signatures \
  --commit=5a4da14939489b5f5678dd9696dd41e454f9879ac61a976ddc29bbf1a81abb00 "$golden"
check "golden: the signature is reported verified" grep -qi "signature.*verified" "$T/ee.out"
check "golden: fsck-clean, the file as made" bash -c "ostree fsck --repo='$gdev' >/dev/null &&
  test \"\$(ostree cat --repo='$gdev' golden /etc/motd)\" = 'deltafetch golden signed stock superblock'"
finish
