#!/bin/bash
# deltafetch pull REMOTE[:REF]: everything from the repository's remote
# config as `ostree remote add` writes it, against nginx over mutual TLS (a
# CA, server and client certificates made here with the openssl CLI): the
# ref looked up in the remote's summary, whose ed25519 signature
# (sign-verify-summary) is checked first; the commit's ed25519 signature
# (sign-verify) checked before any part is downloaded; the ref written as
# the remote's (refs/remotes/REMOTE/REF) as `ostree pull` does, and used as
# the from-commit of the next pull. Side by side with the stock `ostree
# pull` through the same remote config (GPG-signed summary and commits:
# Debian's libostree has no ed25519), and a server with only stock deltas.
# Every refusal: a forged summary, a
# summary without summary.sig, an unsigned commit, a commit signed by
# another key, an unknown ref or remote; mirror lists (file://) and
# contenturl; $OSTREE_REPO; command-line overrides.
. "$(dirname "$0")/lib.sh"

keypair good && keypair other || { not_ok "openssl made no ed25519 keys"; finish; exit 1; }
serve_pair
# The server publishes v1 first: os points at v1 in its summary.
for c in "$c1" "$c2"; do "$DF_TEST_TOOL" sign-commit "$src" "$c" "$T/good.secret"; done
"$DF" generate -q --repo="$src" --empty --to="$c1" >/dev/null
"$DF" generate -q --repo="$src" --from="$c1" --to="$c2" >/dev/null
publish () { # publish COMMIT: os -> COMMIT in a summary signed by the good key
  ostree refs --repo="$src" --delete os && ostree refs --repo="$src" --create=os "$1"
  ostree summary --repo="$src" -u && "$DF_TEST_TOOL" sign-summary "$src" "$T/good.secret"
}
check "the server publishes v1 in a summary signed with ed25519" publish "$c1"

certs=$T/certs
start_nginx_mtls "$T/www" "$certs" http2 || { not_ok "nginx with TLS did not start"; finish; exit 1; }
ok "nginx serving HTTPS (client certificates required) on 127.0.0.1:$NGINX_PORT"
url=https://localhost:$NGINX_PORT/repo
log=$NGINX_LOG
tls_opts=(--set=tls-ca-path="$certs/ca.pem" --set=tls-client-cert-path="$certs/client.pem"
  --set=tls-client-key-path="$certs/client.key")
# add_remote REPO NAME URL [options...]: as an integrator sets a device up
add_remote () {
  local repo=$1 name=$2 u=$3; shift 3
  ostree remote add --repo="$repo" "${tls_opts[@]}" --no-gpg-verify --set=sign-verify=true \
    --set=sign-verify-summary=true --set=verification-ed25519-key="$(cat "$T/good.pub")" "$@" "$name" "$u"
}
json_field () { sed -n '$p' "$1" | python3 -c "import json,sys; v=json.load(sys.stdin)['$2']; print(str(v).lower() if isinstance(v,bool) else v)"; }

dev=$T/dev
ostree init --repo="$dev" --mode=bare
add_remote "$dev" origin "$url"
config_sha=$(sha256sum <"$dev/config")
expect_exit 0 "pull origin:os (nothing but the remote's config)" "$DF" pull --repo="$dev" origin:os --json
cp "$T/ee.out" "$T/p1.json"
check "v1 fsck-clean and identical to its tree" checkout_matches "$dev" "$c1" "$T/v1"
check "the ref is the remote's: origin:os -> v1 (refs/remotes/origin/os), no local ref" \
  bash -c "[ \"\$(ostree rev-parse --repo='$dev' origin:os)\" = '$c1' ] && [ ! -e '$dev/refs/heads/os' ]"
check "JSON: the summary's signature verified, ref origin:os, from scratch" test "$(sed -n '$p' "$T/p1.json" |
  python3 -c 'import json,sys; e=json.load(sys.stdin); print(e["summary_verified"], e["ref"], e["path"])')" = "True origin:os scratch"
check "JSON: seconds to the millisecond" grep -qE '"seconds":[0-9]+\.[0-9]{3}}$' "$T/p1.json"
check "the commit's detached metadata (its signature) was written" test -s "$dev/objects/${c1:0:2}/${c1:2}.commitmeta"
check "the summary and its signature were fetched over TLS with the client certificate" \
  grep -q 'GET /repo/summary.sig HTTP/2.0" 200' "$log"
check "the repository's config is unchanged" test "$(sha256sum <"$dev/config")" = "$config_sha"

# v2: the ref in the repository is the from-commit of the next pull.
publish "$c2"
start=$(($(wc -l <"$log") + 1))
expect_exit 0 "pull origin os (two arguments) after v2 is published" "$DF" pull --repo="$dev" origin os --json
check "v2 fsck-clean and identical to its tree" checkout_matches "$dev" "$c2" "$T/v2"
check "the v1 -> v2 delta was used, v1 found through origin:os" \
  test "$(sed -n '$p' "$T/ee.out" | python3 -c 'import json,sys; e=json.load(sys.stdin); print(e["path"], e["from"], e["from_found"])')" = "delta $c1 ref"
check "only the delta's parts came, not the from-scratch delta's" \
  bash -c "! tail -n +$start '$log' | grep -q 'deltas/$c1/'"
expect_exit 0 "pull again: already there" "$DF" pull --repo="$dev" origin:os --json
check "JSON: path present" test "$(json_field "$T/ee.out" path)" = present

# The same remote config on a server with only stock deltas (`ostree
# static-delta generate`, their superblocks carrying the commits' detached
# signatures): v1 from the stock from-scratch delta, then v2 through the
# stock v1 -> v2 delta, `deltafetch pull REMOTE REF` alone.
stockrepo=$T/www/stockrepo
ostree init --repo="$stockrepo" --mode=archive
ostree pull-local --repo="$stockrepo" "$src" "$c1" "$c2" >/dev/null
ostree static-delta generate --repo="$stockrepo" --empty --to="$c1" >/dev/null
ostree static-delta generate --repo="$stockrepo" --from="$c1" --to="$c2" >/dev/null
stock_publish () {
  ostree refs --repo="$stockrepo" --delete os 2>/dev/null; ostree refs --repo="$stockrepo" --create=os "$1" &&
    ostree summary --repo="$stockrepo" -u && "$DF_TEST_TOOL" sign-summary "$stockrepo" "$T/good.secret"
}
stock_publish "$c1"
sdev=$T/sdev
ostree init --repo="$sdev" --mode=bare
add_remote "$sdev" stockorigin "${url%/repo}/stockrepo"
expect_exit 0 "stock server: pull stockorigin os" "$DF" pull --repo="$sdev" stockorigin os --json
check "stock server: v1 by the stock from-scratch delta" test "$(json_field "$T/ee.out" path)" = stock-scratch
check "stock server: v1 fsck-clean and identical" checkout_matches "$sdev" "$c1" "$T/v1"
stock_publish "$c2"
expect_exit 0 "stock server: pull stockorigin os after v2 is published" "$DF" pull --repo="$sdev" stockorigin os --json
check "stock server: v2 by the stock v1 -> v2 delta, v1 found through the remote's ref" \
  test "$(sed -n '$p' "$T/ee.out" | python3 -c 'import json,sys; e=json.load(sys.stdin); print(e["path"], e["from"], e["from_found"])')" = "stock-delta $c1 ref"
check "stock server: v2 fsck-clean and identical" checkout_matches "$sdev" "$c2" "$T/v2"
# Stock ostree with this very config, side by side: a libostree built with
# ed25519 (its --version lists sign-ed25519) pulls through it too; Debian
# 12's is built without, and refuses the config for that reason alone.
srepo=$T/stock-side
ostree init --repo="$srepo" --mode=bare
add_remote "$srepo" stockorigin "${url%/repo}/stockrepo"
if ostree --version | grep -q -- '- sign-ed25519'; then
  check "stock: ostree pull through the same sign-verify ed25519 config" ostree pull --repo="$srepo" stockorigin os
  check "stock: the same commit as deltafetch's" test "$(rev "$srepo" stockorigin:os)" = "$(rev "$sdev" stockorigin:os)"
else
  ostree pull --repo="$srepo" stockorigin os >"$T/stock-pull.out" 2>&1 && rc=0 || rc=$?
  diag "stock ostree pull, the same config: $(tail -1 "$T/stock-pull.out")"
  # Its only signer is "dummy": the ed25519 signatures deltafetch checked
  # are none it knows.
  check "stock: this libostree (no sign-ed25519) finds no signature it knows in the same publication" \
    sh -c "[ $rc -ne 0 ] && grep -q 'No signatures found' '$T/stock-pull.out'"
fi

# $OSTREE_REPO, and --commit instead of the summary (an agent that has the
# commit from its own signed metadata).
dev2=$T/dev2
ostree init --repo="$dev2" --mode=bare-user
add_remote "$dev2" origin "$url"
start=$(($(wc -l <"$log") + 1))
expect_exit 0 "OSTREE_REPO=... pull origin:os --commit=v1" env OSTREE_REPO="$dev2" "$DF" pull origin:os --commit="$c1"
check "v1 in \$OSTREE_REPO, fsck-clean and identical" checkout_matches "$dev2" "$c1" "$T/v1"
check "with --commit the summary was not asked for" bash -c "! tail -n +$start '$log' | grep -q 'GET /repo/summary'"
check "with --commit the ref is still written as origin:os" test "$(rev "$dev2" origin:os)" = "$c1"

# Refusals: nothing may reach the repository.
dev3=$T/dev3
ostree init --repo="$dev3" --mode=bare
add_remote "$dev3" origin "$url"
before=$(objects_list "$dev3")
cp "$src/summary.sig" "$T/summary.sig.good"
"$DF_TEST_TOOL" sign-summary "$src" "$T/other.secret"
expect_exit 5 "a summary signed by another key is refused" "$DF" pull --repo="$dev3" origin:os
check "the error names the summary's signature" grep -q "summary: no ed25519 signature verifies" "$T/ee.err"
rm "$src/summary.sig"
expect_exit 5 "a summary without summary.sig is refused" "$DF" pull --repo="$dev3" origin:os
printf 'forged' >>"$src/summary"
cp "$T/summary.sig.good" "$src/summary.sig"
expect_exit 5 "a summary changed under its signature is refused" "$DF" pull --repo="$dev3" origin:os
publish "$c2"
expect_exit 14 "a ref the summary lacks: not found (exit 14)" "$DF" pull --repo="$dev3" origin:nosuch
expect_exit 2 "an unknown remote" "$DF" pull --repo="$dev3" nosuch:os
dev6=$T/dev6
ostree init --repo="$dev6" --mode=bare
add_remote "$dev6" origin "$url" --set=deltafetch-revoked-keys="$T/good.pub"
expect_exit 5 "a remote whose config revokes its only key refuses the summary" "$DF" pull --repo="$dev6" origin:os
check "... saying no key is left that is not revoked" grep -q "that is not revoked" "$T/ee.err"
check "... and nothing reached the repository" test -z "$(objects_list "$dev6")"
expect_exit 2 "the ref given twice" "$DF" pull --repo="$dev3" origin:os os
expect_exit 2 "a remote without a ref or --commit" "$DF" pull --repo="$dev3" origin
# A commit not signed, or signed by another key: refused once its
# superblock is in, before any part is downloaded.
cp -a "$T/v2" "$T/v3" && echo v3 >"$T/v3/release-v3" && ostree commit --repo="$src" -b os --tree=dir="$T/v3" -s v3 --timestamp="2024-03-01T00:00:00Z" >/dev/null
c3=$(rev "$src" os)
"$DF" generate -q --repo="$src" --from="$c2" --to="$c3" >/dev/null
"$DF" generate -q --repo="$src" --empty --to="$c3" >/dev/null
publish "$c3"
start=$(($(wc -l <"$log") + 1))
expect_exit 5 "an unsigned commit is refused (sign-verify)" "$DF" pull --repo="$dev3" origin:os --no-pull-fallback
check "the error says the commit carries no signature" grep -q "commit $c3 (remote origin asks for signed commits) carries no ed25519 signature" "$T/ee.err"
check "no part of the refused update was downloaded" bash -c "! tail -n +$start '$log' | grep -q 'deltas/[^ ]*/[0-9]'"
"$DF_TEST_TOOL" sign-commit "$src" "$c3" "$T/other.secret"
"$DF" generate -q --repo="$src" --empty --to="$c3" >/dev/null
expect_exit 5 "a commit signed by another key is refused" "$DF" pull --repo="$dev3" origin:os --no-pull-fallback
check "nothing of the refused pulls reached the repository" test "$(objects_list "$dev3")" = "$before"
check "no ref was written by the refused pulls" test -z "$(ostree refs --repo="$dev3")"
"$DF_TEST_TOOL" sign-commit "$src" "$c3" "$T/good.secret"
"$DF" generate -q --repo="$src" --empty --to="$c3" >/dev/null
"$DF" generate -q --repo="$src" --from="$c2" --to="$c3" >/dev/null
expect_exit 0 "signed by the good key, v3 comes in" "$DF" pull --repo="$dev3" origin:os
check "v3 fsck-clean and identical" checkout_matches "$dev3" "$c3" "$T/v3"

# Mirror lists and contenturl: the summary from url, the parts from the
# contenturl's mirror list (a dead mirror first), read from a file.
dev4=$T/dev4
ostree init --repo="$dev4" --mode=bare
printf '# mirrors\n\nhttps://localhost:1/dead\n%s\nftp://ignored/\n' "$url" >"$T/mirrors"
add_remote "$dev4" mirrored "mirrorlist=file://$T/mirrors" --set=contenturl="mirrorlist=file://$T/mirrors"
expect_exit 0 "pull through a file:// mirror list (first mirror dead)" "$DF" pull --repo="$dev4" mirrored:os \
  --retries=1 --connect-timeout=2 --json
check "v3 fsck-clean and identical" checkout_matches "$dev4" "$c3" "$T/v3"
check "the dead mirror was demoted" grep -q '"event":"mirror-switch"' "$T/ee.out"
printf '# nothing\n' >"$T/mirrors-empty"
dev5=$T/dev5
ostree init --repo="$dev5" --mode=bare
add_remote "$dev5" empty "mirrorlist=file://$T/mirrors-empty"
expect_exit 2 "a mirror list without a mirror" "$DF" pull --repo="$dev5" empty:os
# Command-line options win: a wrong CA in the config, the right one given.
ostree remote add --repo="$dev5" --no-gpg-verify --set=tls-ca-path="$certs/other-ca.pem" \
  --set=tls-client-cert-path="$certs/client.pem" --set=tls-client-key-path="$certs/client.key" wrongca "$url"
expect_exit 9 "the config's CA is used (another CA: refused)" "$DF" pull --repo="$dev5" wrongca:os --retries=1 \
  --no-pull-fallback
expect_exit 0 "--cacert overrides the config's tls-ca-path" "$DF" pull --repo="$dev5" wrongca:os \
  --cacert="$certs/ca.pem" --no-pull-fallback
check "summary unsigned and not asked to be: the JSON-less output says so" grep -q "which is not signed" "$T/ee.out"
expect_exit 2 "a malformed --http-header" "$DF" pull --repo="$dev5" wrongca:os --http-header=novalue

# A server that wants a token: --http-header sends it, to deltafetch's
# requests and to libostree's pull fallback through the remote (a served
# repository without deltas).
make_src_repo "$T/www/plain" archive
ostree summary --repo="$T/www/plain" -u
start_nginx "$T/www" "" 'if ($http_x_token != "s3cret") { return 403; }' || not_ok "nginx (token) did not start"
ostree remote add --repo="$dev5" --no-gpg-verify token "http://127.0.0.1:$NGINX_PORT/plain"
expect_exit 9 "without the token header: refused by the server" "$DF" pull --repo="$dev5" token:os --retries=1
expect_exit 0 "--http-header=X-Token=s3cret: libostree's pull through the remote, with the header" "$DF" pull \
  --repo="$dev5" token:os --http-header=X-Token=s3cret --json
check "the path was libostree's pull" test "$(json_field "$T/ee.out" path)" = pull
check "v2 by libostree's pull: fsck-clean and identical" checkout_matches "$dev5" "$c2" "$T/v2"
check "the pull fallback's ref is the remote's" test "$(rev "$dev5" token:os)" = "$c2"
NGINX_LOG=$log

# Side by side with the stock pull, both through the remote's config: GPG
# here, which Debian's libostree verifies (it has no ed25519).
if command -v gpg >/dev/null; then
  export GNUPGHOME=$T/gnupg
  mkdir -m 700 "$GNUPGHOME"
  gpg --batch --passphrase '' --quick-gen-key "deltafetch test <test@example.invalid>" ed25519 sign never 2>/dev/null
  keyid=$(gpg --list-keys --with-colons | awk -F: '/^pub/ { print $5; exit }')
  gpg --export >"$T/gpg.pub"
  for c in "$c1" "$c2" "$c3"; do ostree gpg-sign --repo="$src" --gpg-homedir="$GNUPGHOME" "$c" "$keyid"; done
  for c in "$c1" "$c3"; do "$DF" generate -q --repo="$src" --empty --to="$c" >/dev/null; done
  "$DF" generate -q --repo="$src" --from="$c2" --to="$c3" >/dev/null
  ostree summary --repo="$src" -u --gpg-sign="$keyid" --gpg-homedir="$GNUPGHOME"
  check "the server's summary is GPG-signed" test -s "$src/summary.sig"
  gdev=$T/gdev sdev=$T/sdev
  for r in "$gdev" "$sdev"; do
    ostree init --repo="$r" --mode=bare
    ostree remote add --repo="$r" "${tls_opts[@]}" --gpg-import="$T/gpg.pub" --set=gpg-verify-summary=true gorigin "$url" >&2
  done
  expect_exit 0 "deltafetch pull: GPG-verified summary and commit" "$DF" pull --repo="$gdev" gorigin:os --json
  check "JSON: summary_verified" test "$(json_field "$T/ee.out" summary_verified)" = true
  check "stock: ostree pull through the same remote config" ostree pull --repo="$sdev" gorigin os
  check "both refs name v3" test "$(rev "$gdev" gorigin:os) $(rev "$sdev" gorigin:os)" = "$c3 $c3"
  check "deltafetch's repository fsck-clean and identical to v3" checkout_matches "$gdev" "$c3" "$T/v3"
  check "stock's repository fsck-clean" ostree fsck --repo="$sdev" -q
  # A commit whose GPG signature is not of the remote's keyring.
  gdev2=$T/gdev2
  ostree init --repo="$gdev2" --mode=bare
  mkdir -m 700 "$T/gnupg2"
  GNUPGHOME=$T/gnupg2 gpg --batch --passphrase '' --quick-gen-key "other <o@example.invalid>" ed25519 sign never 2>/dev/null
  GNUPGHOME=$T/gnupg2 gpg --export >"$T/gpg-other.pub"
  ostree remote add --repo="$gdev2" "${tls_opts[@]}" --gpg-import="$T/gpg-other.pub" --set=gpg-verify-summary=false \
    gother "$url" >&2
  expect_exit 5 "a commit GPG-signed by a key not in the remote's keyring is refused" "$DF" pull --repo="$gdev2" \
    gother:os --no-pull-fallback
  check "nothing written" test -z "$(objects_list "$gdev2")"
else
  not_ok "gpg is not installed (tests/install-deps.sh installs gnupg)"
fi

finish
