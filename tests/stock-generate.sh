#!/bin/bash
# generate --format=ostree: stock static deltas that the stock ostree CLI
# reads (pull over HTTP through the delta index and summary, apply-offline),
# and their signed form, which libostree's own reader unwraps: the envelope
# checked against libostree itself, not only against its source.
. "$(dirname "$0")/lib.sh"

serve_pair --no-owner
check "generate --format=ostree into the repo (v1 -> v2)" "$DF" generate --repo="$src" --from=os^ --to=os --format=ostree
check "stock ostree lists the delta" bash -c "ostree static-delta list --repo='$src' | grep -qx '$c1-$c2'"
check "the summary indexes it for stock clients" bash -c "ostree summary --repo='$src' --view | grep -q '$c1-$c2'"
check "generate --format=ostree --out (from scratch)" "$DF" generate -q --repo="$src" --empty --to=os^ --format=ostree \
  --out="$T/stock-scratch"
expect_exit 2 "an unknown --format" "$DF" generate --repo="$src" --empty --to=os --format=zip --out="$T/never"

dev=$T/dev
ostree init --repo="$dev" --mode=bare
check "stock apply-offline of the from-scratch stock delta" ostree static-delta apply-offline --repo="$dev" \
  "$T/stock-scratch"
check "apply-offline result: fsck-clean and identical to v1" checkout_matches "$dev" "$c1" "$T/v1"
ostree refs --repo="$dev" --create=os "$c1"

if start_nginx "$T/www"; then
  ostree remote add --repo="$dev" --no-gpg-verify origin "http://127.0.0.1:$NGINX_PORT/repo"
  check "stock ostree pull of v2" ostree pull --repo="$dev" origin os
  check "stock pull fetched the generated delta's superblock" grep -q "/deltas/.*/superblock HTTP/1.1\" 200" "$NGINX_LOG"
  check "stock pull result: fsck-clean and identical to v2" checkout_matches "$dev" "$c2" "$T/v2"
else
  not_ok "nginx did not start"
fi

# Signed: libostree's apply-offline unwraps deltafetch's envelope.
openssl genpkey -algorithm ed25519 -out "$T/k.pem" 2>/dev/null
openssl pkey -in "$T/k.pem" -outform DER | tail -c 32 >"$T/seed"
openssl pkey -in "$T/k.pem" -pubout -outform DER | tail -c 32 >"$T/raw"
cat "$T/seed" "$T/raw" | base64 -w0 >"$T/k.secret"
check "generate --format=ostree --sign" "$DF" generate -q --repo="$src" --empty --to=os --format=ostree \
  --sign="$T/k.secret" --out="$T/stock-signed"
check "the signed stock superblock starts with OSTSGNDT" test "$(head -c 8 "$T/stock-signed/superblock")" = OSTSGNDT
dev2=$T/dev2
ostree init --repo="$dev2" --mode=bare
check "libostree's apply-offline reads the signed envelope" ostree static-delta apply-offline --repo="$dev2" \
  "$T/stock-signed"
check "signed stock delta: fsck-clean and identical to v2" checkout_matches "$dev2" "$c2" "$T/v2"
finish
