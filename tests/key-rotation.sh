#!/bin/bash
# The key rotation of docs/key-rotation.md, step by step, with devices
# fetching from nginx at each step: keygen; deltas signed by the old key;
# `sign --all` adds the new key (devices trusting either accept); devices
# move to the new key, the old one revoked (--revoked-keys refuses what
# only the old key signed); `sign --remove-key` takes the old signatures
# out; new releases signed by the new key alone.
. "$(dirname "$0")/lib.sh"

make_releases 4 --no-owner --no-xattrs
start_nginx "$T/www" || { not_ok "nginx did not start"; finish; exit 1; }
url=http://127.0.0.1:$NGINX_PORT/repo
deltas=$src/deltafetch/v1/deltas

# Step 0: keys.
expect_exit 0 "keygen: the old key" "$DF" keygen --out="$T/old"
expect_exit 0 "keygen: the new key" "$DF" keygen --out="$T/new"
check "keygen: secret 0600, public 0644, base64 of 64 and 32 bytes" bash -c "
  test \$(stat -c %a '$T/old.secret') = 600 && test \$(stat -c %a '$T/old.pub') = 644 &&
  test \$(base64 -d '$T/old.secret' | wc -c) = 64 && test \$(base64 -d '$T/old.pub' | wc -c) = 32 &&
  test \"\$(base64 -d '$T/old.secret' | tail -c 32 | base64 -w0)\" = \"\$(cat '$T/old.pub')\""
check "keygen: two runs make two different keys" test "$(cat "$T/old.pub")" != "$(cat "$T/new.pub")"
expect_exit 2 "keygen never overwrites a key" "$DF" keygen --out="$T/old"
mkdir -p "$T/both" && cp "$T/old.pub" "$T/both/old" && cp "$T/new.pub" "$T/both/new"

# fetch_to NAME FROM-RELEASE TO-RELEASE [options...]: a device on FROM fetches TO.
fetch_to () {
  local dev=$T/$1 from=$2 to=$3; shift 3
  rm -rf "$dev"
  ostree init --repo="$dev" --mode=bare-user
  ostree pull-local --repo="$dev" "$src" "${rel[from]}" >/dev/null
  "$DF" fetch --repo="$dev" --url="$url" --commit="${rel[to]}" --no-pull-fallback "$@"
}
# pull_to NAME FROM-RELEASE TO-RELEASE REVOKED [options...]: the same
# through a remote of the device's config, whose deltafetch-revoked-keys
# names REVOKED (empty: none).
pull_to () {
  local dev=$T/$1 from=$2 to=$3 revoked=$4; shift 4
  rm -rf "$dev"
  ostree init --repo="$dev" --mode=bare-user
  ostree pull-local --repo="$dev" "$src" "${rel[from]}" >/dev/null
  ostree remote add --repo="$dev" --no-gpg-verify ${revoked:+--set=deltafetch-revoked-keys="$revoked"} origin "$url"
  "$DF" pull --repo="$dev" --commit="${rel[to]}" --no-pull-fallback "$@" origin:os
}
sigs_of () { "$DF" list --repo="$src" --json | python3 -c '
import json, sys
print(" ".join(str(d["signatures"]) for d in json.load(sys.stdin) if d["format"] == "native"))'; }

# Step 1: the fleet trusts the old key.
"$DF" generate -q --repo="$src" --to=os --from-last=2 --empty --sign="$T/old.secret" >/dev/null
check "step 1: 3 deltas, each signed once" test "$(sigs_of)" = "1 1 1"
expect_exit 0 "step 1: a device trusting the old key fetches" fetch_to d1 2 4 --keys="$T/old.pub"
expect_exit 5 "step 1: a device trusting the new key only refuses" fetch_to d2 2 4 --keys="$T/new.pub"
expect_exit 5 "step 1: with the old key revoked, a delta only it signed is refused" fetch_to d3 2 4 \
  --keys="$T/both" --revoked-keys="$T/old.pub"
check "... and the message says revoked" grep -q "signed only by revoked keys" "$T/ee.err"
expect_exit 5 "step 1: pull through a remote whose config revokes the old key: refused" pull_to p1 2 4 \
  "$T/old.pub" --keys="$T/both"
check "... and the message says revoked" grep -q "signed only by revoked keys" "$T/ee.err"
check "... and nothing of release 4 was written" test "$(ostree rev-parse --repo="$T/p1" origin:os 2>/dev/null)" = ""
expect_exit 0 "step 1: the same pull through a remote that revokes nothing" pull_to p2 2 4 "" --keys="$T/both"

# Step 2: the new key signs beside the old one.
expect_exit 2 "sign with neither a key nor a key to remove" "$DF" sign --repo="$src" --all
expect_exit 14 "sign: an id the repository does not have" "$DF" sign --repo="$src" --sign="$T/new.secret" \
  "${rel[1]}-${rel[1]}"
expect_exit 0 "step 2: sign --all --sign=new" "$DF" sign --repo="$src" --all --sign="$T/new.secret"
check "step 2: 3 deltas, each signed twice" test "$(sigs_of)" = "2 2 2"
check "step 2: every index entry matches its new superblock" bash -c "! '$DF' list --repo='$src' | grep -q PROBLEM"
expect_exit 0 "step 2: signing again is idempotent" "$DF" sign --repo="$src" --all --sign="$T/new.secret"
check "step 2: still twice each" test "$(sigs_of)" = "2 2 2"
expect_exit 0 "step 2: a device trusting only the old key still fetches" fetch_to d4 2 4 --keys="$T/old.pub"
expect_exit 0 "step 2: a device trusting only the new key fetches" fetch_to d5 3 4 --keys="$T/new.pub"
check "step 2: fsck-clean and identical" checkout_matches "$T/d5" "${rel[4]}" "$T/r4"

# Step 3: devices trust the new key, the old one revoked.
expect_exit 0 "step 3: trusting both, the old one revoked: the new signature counts" fetch_to d6 2 4 \
  --keys="$T/both" --revoked-keys="$T/old.pub"
expect_exit 0 "step 3: the same through a remote whose config revokes the old key" pull_to p3 2 4 "$T/old.pub" \
  --keys="$T/both"
check "step 3: fsck-clean and identical" checkout_matches "$T/p3" "${rel[4]}" "$T/r4"

# Step 4: the old signatures go.
expect_exit 0 "step 4: sign --all --remove-key=old --sign=new" "$DF" sign --repo="$src" --all \
  --remove-key="$T/old.pub" --sign="$T/new.secret"
check "step 4: 3 deltas, each signed once" test "$(sigs_of)" = "1 1 1"
expect_exit 5 "step 4: a device still trusting only the old key refuses" fetch_to d7 2 4 --keys="$T/old.pub"
expect_exit 0 "step 4: a device trusting the new key fetches" fetch_to d8 2 4 --keys="$T/new.pub"
expect_exit 0 "step 4: verify --all with the new key" "$DF" verify --repo="$src" --all --keys="$T/new.pub"

# Step 5: the next release, signed by the new key alone.
cp -a "$T/r4" "$T/r5" && echo "release 5" >"$T/r5/etc/release"
ostree commit --repo="$src" -b os --tree=dir="$T/r5" -s "release 5" --timestamp="2024-05-01T00:00:00Z" >/dev/null
rel[5]=$(rev "$src" os)
"$DF" generate -q --repo="$src" --to=os --from-last=2 --sign="$T/new.secret" >/dev/null
expect_exit 0 "step 5: a device on release 4 fetches release 5 trusting the new key" fetch_to d9 4 5 \
  --keys="$T/new.pub" --revoked-keys="$T/old.pub"
check "step 5: fsck-clean and identical" checkout_matches "$T/d9" "${rel[5]}" "$T/r5"
finish
