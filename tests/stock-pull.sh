#!/bin/bash
# A repository that holds native deltas keeps serving stock ostree clients:
# `ostree pull` over HTTP from nginx, and `ostree pull-local`, still work, and
# nothing under deltafetch/ is fetched by them.
. "$(dirname "$0")/lib.sh"

publish_pair
ostree summary --repo="$src" -u
check "stock static delta still generates beside native ones" ostree static-delta generate --repo="$src" --from=os^ --to=os
ostree summary --repo="$src" -u
check "stock fsck of the server repo" ostree fsck --repo="$src"

if start_nginx "$T/www"; then
  ok "nginx serving on 127.0.0.1:$NGINX_PORT"
  dev=$T/dev
  ostree init --repo="$dev" --mode=bare
  ostree remote add --repo="$dev" --no-gpg-verify origin "http://127.0.0.1:$NGINX_PORT/repo"
  check "stock ostree pull of v1" ostree pull --repo="$dev" origin os@"$c1"
  check "pulled v1: fsck + checkout identical" checkout_matches "$dev" "$c1" "$T/v1"
  check "stock ostree pull of v2 (uses the stock delta)" ostree pull --repo="$dev" origin os
  check "pulled v2: fsck + checkout identical" checkout_matches "$dev" "$c2" "$T/v2"
  check "stock pull never asked for deltafetch/ paths" bash -c "! grep -q deltafetch '$T/nginx/access.log'"
  check "stock pull fetched the stock delta" grep -q "/deltas/" "$T/nginx/access.log"
else
  not_ok "nginx did not start"
fi
local_repo=$T/local
ostree init --repo="$local_repo" --mode=bare-user
check "stock pull-local from a repo with native deltas" ostree pull-local --repo="$local_repo" "$src" os
check "pull-local: fsck + checkout identical" checkout_matches "$local_repo" "$c2" "$T/v2"
finish
