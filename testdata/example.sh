#!/bin/bash
# The built-in example: two commits made from the seeded test-data generator,
# a delta generated between them, applied into a fresh device repository,
# verified; then the same update fetched over HTTP from nginx on loopback
# into a second device; and a one-screen summary.
# Usage: testdata/example.sh [BUILDDIR]
set -euo pipefail
build=${1:-build}
DF=$build/cli/deltafetch
GEN=$build/testdata/df-gen-tree
w=$(mktemp -d "${TMPDIR:-/tmp}/deltafetch-example.XXXXXX")
export PATH="$PATH:/usr/sbin:/sbin"
trap '[ -f "$w/nginx/pid" ] && kill "$(cat "$w/nginx/pid")" 2>/dev/null; rm -rf "$w"' EXIT

"$GEN" --seed=1 --version=1 --scale=4 "$w/v1"
"$GEN" --seed=1 --version=2 --scale=4 "$w/v2"
ostree init --repo="$w/server" --mode=archive
ostree commit --repo="$w/server" -b os --tree=dir="$w/v1" -s v1 >/dev/null
ostree commit --repo="$w/server" -b os --tree=dir="$w/v2" -s v2 >/dev/null
v1=$(ostree rev-parse --repo="$w/server" os^)
v2=$(ostree rev-parse --repo="$w/server" os)

echo "== build server: generate (v1 from scratch, and v1 -> v2)"
"$DF" generate -q --repo="$w/server" --empty --to="$v1" --out="$w/full" >/dev/null
t0=$(date +%s%N)
"$DF" generate -q --repo="$w/server" --from="$v1" --to="$v2" --out="$w/update" >/dev/null
gen_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
"$DF" show "$w/update" | head -7

echo; echo "== device: apply (bare-user repo, trusted commit from 'signed metadata')"
ostree init --repo="$w/device" --mode=bare-user
"$DF" apply -q --repo="$w/device" --commit="$v1" --ref=os "$w/full"
t0=$(date +%s%N)
"$DF" apply --repo="$w/device" --commit="$v2" --ref=os "$w/update"
apply_ms=$(( ($(date +%s%N) - t0) / 1000000 ))

echo; echo "== verify"
ostree fsck --repo="$w/device" 2>&1 | tail -1
ostree checkout --repo="$w/device" os "$w/checkout"
bash "$(dirname "$0")/../tests/tree-compare.sh" "$w/v2" "$w/checkout" && echo "checkout of os is identical to the v2 source tree (content, modes, owners, xattrs, links)"

echo; echo "== device: fetch the same update from nginx on loopback"
# The server publishes the native deltas inside its repository.
"$DF" generate -q --repo="$w/server" --empty --to="$v1" >/dev/null
"$DF" generate -q --repo="$w/server" --from="$v1" --to="$v2" >/dev/null
chmod 755 "$w"
mkdir -p "$w/nginx"
fetched=""
for try in 1 2 3 4 5; do
  port=$((20000 + RANDOM % 30000))
  cat >"$w/nginx.conf" <<CONF
daemon on; worker_processes 1; pid $w/nginx/pid; error_log $w/nginx/error.log;
events { worker_connections 64; }
http { access_log $w/nginx/access.log; types { } default_type application/octet-stream;
  client_body_temp_path $w/nginx/b; proxy_temp_path $w/nginx/p; fastcgi_temp_path $w/nginx/f;
  uwsgi_temp_path $w/nginx/u; scgi_temp_path $w/nginx/s;
  server { listen 127.0.0.1:$port; root $w; } }
CONF
  nginx -c "$w/nginx.conf" -p "$w/nginx" 2>/dev/null && break
done
ostree init --repo="$w/device2" --mode=bare-user
"$DF" fetch -q --repo="$w/device2" --url="http://127.0.0.1:$port/server" --commit="$v1" --ref=os
mark=$(($(wc -l <"$w/nginx/access.log") + 1))
t0=$(date +%s%N)
"$DF" fetch --repo="$w/device2" --url="http://127.0.0.1:$port/server" --commit="$v2" --ref=os
fetch_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
wire=$(tail -n +"$mark" "$w/nginx/access.log" | awk '{ s += $10 } END { print s + 0 }')
ostree fsck --repo="$w/device2" 2>&1 | tail -1
ostree checkout --repo="$w/device2" os "$w/checkout2"
bash "$(dirname "$0")/../tests/tree-compare.sh" "$w/v2" "$w/checkout2" && fetched=yes &&
  echo "checkout of the fetched os is identical to the v2 source tree"

new=$(du -sb "$w/v2" | cut -f1)
delta=$(find "$w/update" -type f -printf "%s\n" | awk "{ s += \$1 } END { print s }")
echo; echo "== summary"
printf '  tree v2:        %s bytes, %s files\n' "$new" "$(find "$w/v2" -type f | wc -l)"
printf '  update delta:   %s bytes (%s%% of the tree)\n' "$delta" "$(awk -v d="$delta" -v n="$new" 'BEGIN { printf "%.1f", d * 100 / n }')"
printf '  generate:       %s ms    apply: %s ms    fetch: %s ms, %s bytes on the wire\n' "$gen_ms" "$apply_ms" \
  "$fetch_ms" "$wire"
printf '  ref os -> %s (applied), %s (fetched)\n' "$(ostree rev-parse --repo="$w/device" os)" \
  "$(ostree rev-parse --repo="$w/device2" os)"
[ "$fetched" = yes ]
