#!/bin/bash
# The deltas a build server publishes, over their life: list (native and
# stock, sizes, signatures, problems), show by id, verify (parts, keys, a
# trial apply), delete (index first, the signed stats file and the
# GPG-signed summary signed again, or nothing changed when the key is
# missing), prune after `ostree prune --depth=2` and by --keep-last; a
# GPG-signed summary stays valid for stock `ostree pull` with
# gpg-verify-summary through stock deltas made and removed; devices still
# fetch from what is left.
. "$(dirname "$0")/lib.sh"

command -v gpg >/dev/null || { not_ok "gpg is not installed (tests/install-deps.sh --tests installs gnupg)"; finish; exit 1; }
make_releases 5 --no-owner --no-xattrs
keypair k1 && keypair other || { not_ok "openssl cannot make ed25519 keys"; finish; exit 1; }
export GNUPGHOME=$T/gnupg
mkdir -m 700 "$GNUPGHOME"
gpg --batch --passphrase '' --quick-gen-key "deltafetch test <test@example.invalid>" ed25519 sign never 2>/dev/null
keyid=$(gpg --list-keys --with-colons 2>/dev/null | awk -F: '/^pub/ { print $5; exit }')
gpg --export >"$T/gpg.pub" 2>/dev/null
gpgopts=(--gpg-sign="$keyid" --gpg-homedir="$GNUPGHOME")
ostree summary --repo="$src" -u "${gpgopts[@]}"
check "the repository's summary is GPG-signed" test -s "$src/summary.sig"
start_nginx "$T/www" || { not_ok "nginx did not start"; finish; exit 1; }
url=http://127.0.0.1:$NGINX_PORT/repo
list_json () { "$DF" list --repo="$src" --json >"$T/list.json" && python3 -c "$1" "$T/list.json"; }
id_of () { echo "$1-${rel[5]}"; }

"$DF" generate -q --repo="$src" --to=os --from-last=4 --empty --sign="$T/k1.secret" >/dev/null

# --- Stock deltas keep the summary's GPG signature -----------------------------
sig_before=$(sha256sum <"$src/summary.sig")
expect_exit 2 "--format=ostree without the summary's GPG key is refused" "$DF" generate --repo="$src" --to=os \
  --from-last=1 --format=ostree
check "refused: summary.sig untouched, no stock delta made" \
  test "$(sha256sum <"$src/summary.sig")|$(ostree static-delta list --repo="$src")" = "$sig_before|(No static deltas)"
expect_exit 0 "--format=ostree with --gpg-sign" "$DF" generate --repo="$src" --to=os --from-last=1 --format=ostree \
  "${gpgopts[@]}"
check "the new summary lists the stock delta" bash -c "ostree summary --repo='$src' --view | grep -q '${rel[4]}-${rel[5]}'"
stock_pull () { # stock_pull NAME FROM: a stock device on FROM pulls os with gpg-verify-summary
  local dev=$T/$1
  ostree init --repo="$dev" --mode=bare-user
  ostree remote add --repo="$dev" --gpg-import="$T/gpg.pub" --no-gpg-verify --set=gpg-verify-summary=true o "$url" >&2
  ostree pull --repo="$dev" o "$2" >/dev/null 2>&1 && ostree pull --repo="$dev" o os >"$T/$1.pull" 2>&1 &&
    checkout_matches "$dev" "${rel[5]}" "$T/r5"
}
mark=$(wc -l <"$T/nginx/access.log")
check "stock ostree pull verifies the re-signed summary and takes the 4 -> 5 stock delta" stock_pull s1 "${rel[4]}"
check "... through the stock delta (nginx served its superblock)" \
  bash -c "tail -n +$((mark + 1)) '$T/nginx/access.log' | grep -q 'GET /repo/deltas/.*/superblock'"

# --- list and show --------------------------------------------------------------
check "list: 5 native deltas signed once, 1 stock, none with a problem" list_json '
import json, sys
ds = json.load(open(sys.argv[1]))
native = [d for d in ds if d["format"] == "native"]
stock = [d for d in ds if d["format"] == "ostree"]
assert len(native) == 5 and len(stock) == 1, ds
assert all(d["signatures"] == 1 and d["indexed"] and d["parts"] > 0 and d["size"] > 0 for d in native), native
assert all(d["problem"] is None and d["from_present"] and d["to_present"] for d in ds), ds
assert sum(d["from"] is None for d in native) == 1'
expect_exit 0 "list as text" "$DF" list --repo="$src"
check "list as text: one line per delta" test "$(wc -l <"$T/ee.out")" = 6
expect_exit 0 "show --repo takes a delta id" "$DF" show --repo="$src" --json "$(id_of "${rel[3]}")"
check "show --repo: that delta" python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["from"] == sys.argv[2] and d["signed"]' \
  "$T/ee.out" "${rel[3]}"
expect_exit 14 "show --repo: an id the repository does not have" "$DF" show --repo="$src" "$(id_of "${rel[5]}")"

# --- verify ------------------------------------------------------------------------
expect_exit 0 "verify --all" "$DF" verify --repo="$src" --all
check "verify --all: 6 verified, each applied in a trial repository" \
  bash -c "grep -q '^6 deltas verified, 0 failed' '$T/ee.out' && test \$(grep -c '^ok .*applied in a trial repository' '$T/ee.out') = 6"
expect_exit 0 "verify with the signing key" "$DF" verify --repo="$src" --keys="$T/k1.pub" "$(id_of "${rel[2]}")" "${rel[5]}"
check "verify with the key: the signatures verified" test "$(grep -c 'signature verified' "$T/ee.out")" = 2
expect_exit 5 "verify with another key" "$DF" verify --repo="$src" --keys="$T/other.pub" "$(id_of "${rel[2]}")"
victim=$src/deltafetch/v1/deltas/$(id_of "${rel[1]}")
printf '\001' | dd of="$victim/0" bs=1 seek=20 conv=notrunc status=none
expect_exit 4 "verify --all finds the damaged part" "$DF" verify --repo="$src" --all
check "... and names that delta, the others ok" \
  bash -c "grep -q '^FAILED native *${rel[1]:0:12} -> ' '$T/ee.out' && grep -q '^6 deltas verified, 1 failed' '$T/ee.out'"
check "no trial repository left under tmp/" test -z "$(ls "$src/tmp" | grep deltafetch-verify)"
"$DF" generate -q --repo="$src" --to=os --from-last=4 --empty --sign="$T/k1.secret" >/dev/null
expect_exit 0 "generate remade it: verify passes again" "$DF" verify --repo="$src" "$(id_of "${rel[1]}")"
expect_exit 14 "verify: an id the repository does not have" "$DF" verify --repo="$src" "$(id_of "${rel[5]}")"

# --- delete ------------------------------------------------------------------------
"$DF" list --repo="$src" >"$T/list.before"
expect_exit 2 "delete without the key of the signed stats file" "$DF" delete --repo="$src" "$(id_of "${rel[1]}")"
check "... removed nothing" bash -c "'$DF' list --repo='$src' | cmp -s - '$T/list.before'"
expect_exit 0 "delete with --sign" "$DF" delete --repo="$src" --sign="$T/k1.secret" "$(id_of "${rel[1]}")"
check "its directory is gone" test ! -e "$victim"
check "its index no longer lists it" bash -c "! '$DF_TEST_TOOL' index-froms '$src/deltafetch/v1/indexes/${rel[5]}.index' | grep -qx '${rel[1]}'"
check "the stats file lists 4 deltas, its signature verifies with k1" bash -c "
  test \$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))[\"deltas\"]))' '$src/deltafetch/v1/stats/${rel[5]}.json') = 4 &&
  openssl pkey -in '$T/k1.pem' -pubout -out '$T/k1.pub.pem' &&
  openssl pkeyutl -verify -pubin -inkey '$T/k1.pub.pem' -rawin -in '$src/deltafetch/v1/stats/${rel[5]}.json' \
    -sigfile '$src/deltafetch/v1/stats/${rel[5]}.json.sig' >/dev/null"
expect_exit 14 "delete: an id the repository does not have" "$DF" delete --repo="$src" "$(id_of "${rel[1]}")"
expect_exit 2 "delete: not an id" "$DF" delete --repo="$src" os
sig_before=$(sha256sum <"$src/summary.sig")
expect_exit 2 "delete of the stock delta without the summary's GPG key" "$DF" delete --repo="$src" \
  --sign="$T/k1.secret" "$(id_of "${rel[4]}")"
check "... says the summary is GPG-signed" grep -q "summary is GPG-signed" "$T/ee.err"
check "... removed nothing (native 4 -> 5 and stock 4 -> 5 still there, summary.sig untouched)" \
  bash -c "'$DF' list --repo='$src' | grep -c '${rel[4]:0:12} -> ' | grep -qx 2 && test \"\$(sha256sum <'$src/summary.sig')\" = '$sig_before'"
expect_exit 0 "delete of the id 4 -> 5 with both keys" "$DF" delete --repo="$src" --sign="$T/k1.secret" \
  "${gpgopts[@]}" "$(id_of "${rel[4]}")"
check "both 4 -> 5 deltas (native and stock) removed" test "$(grep -c '^removed ' "$T/ee.out")" = 2
check "stock: no static delta left, and the summary no longer lists it" \
  bash -c "ostree static-delta list --repo='$src' | grep -q 'No static deltas' && ! ostree summary --repo='$src' --view | grep -q '${rel[4]}-'"
check "stock ostree pull still verifies the summary signed again" stock_pull s2 "${rel[3]}"

# --- prune -------------------------------------------------------------------------
"$DF" generate -q --repo="$src" --to=os^ --from="${rel[3]}" --sign="$T/k1.secret" >/dev/null  # 3 -> 4
ostree prune --repo="$src" --refs-only --depth=2 >/dev/null
check "ostree prune --depth=2 removed releases 1 and 2" \
  bash -c "! ostree show --repo='$src' '${rel[1]}' >/dev/null 2>&1 && ! ostree show --repo='$src' '${rel[2]}' >/dev/null 2>&1"
check "list flags the deltas whose from-commit is gone" list_json '
import json, sys
bad = [d for d in json.load(open(sys.argv[1])) if d["problem"]]
assert len(bad) == 1 and not bad[0]["from_present"], bad'
expect_exit 0 "prune" "$DF" prune --repo="$src" --sign="$T/k1.secret" --json
check "prune removed the 2 -> 5 delta only (1 -> 5 was deleted before)" python3 -c '
import json, sys
gone = json.load(open(sys.argv[1]))
assert [d["from"] for d in gone] == [sys.argv[2]], gone' "$T/ee.out" "${rel[2]}"
check "no delta left whose commits are gone" list_json '
import json, sys
ds = json.load(open(sys.argv[1]))
assert ds and all(d["from_present"] and d["to_present"] and d["problem"] is None for d in ds), ds'
expect_exit 0 "prune again: nothing to do" "$DF" prune --repo="$src" --sign="$T/k1.secret"
check "prune again removed nothing" grep -qx '0 deltas removed' "$T/ee.out"
for k in 3; do
  dev=$T/dev$k
  ostree init --repo="$dev" --mode=bare-user
  ostree pull-local --repo="$dev" "$src" "${rel[k]}" >/dev/null
  expect_exit 0 "a device on release $k still fetches release 5 from nginx" "$DF" fetch --repo="$dev" --url="$url" \
    --commit="${rel[5]}" --ref=os --keys="$T/k1.pub" --no-pull-fallback --json
  check "... through the $k -> 5 delta, fsck-clean and identical" bash -c "
    python3 -c 'import json,sys; e=[json.loads(l) for l in open(sys.argv[1])][-1]; assert e[\"path\"] == \"delta\" and e[\"from\"] == sys.argv[2], e' \
      '$T/ee.out' '${rel[k]}'"
  check "release $k -> 5: fsck-clean and identical" checkout_matches "$dev" "${rel[5]}" "$T/r5"
done
expect_exit 0 "prune --ref=os --keep-last=1" "$DF" prune --repo="$src" --sign="$T/k1.secret" --ref=os --keep-last=1 --json
check "--keep-last=1 removed the delta to release 4 and kept those to release 5" python3 -c '
import json, sys
gone = json.load(open(sys.argv[1]))
assert [(d["from"], d["to"]) for d in gone] == [(sys.argv[2], sys.argv[3])], gone' "$T/ee.out" "${rel[3]}" "${rel[4]}"
check "deltas to release 5 remain" bash -c "'$DF' list --repo='$src' | grep -q ' -> ${rel[5]:0:12}'"
expect_exit 2 "prune: --keep-last without --ref" "$DF" prune --repo="$src" --keep-last=1
expect_exit 2 "prune: --keep-last=0" "$DF" prune --repo="$src" --ref=os --keep-last=0
finish
