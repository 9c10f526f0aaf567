#!/bin/bash
# The built-in example: two commits made from the seeded test-data generator,
# a delta generated between them, applied into a fresh device repository,
# verified, and a one-screen summary. Usage: testdata/example.sh [BUILDDIR]
set -euo pipefail
build=${1:-build}
DF=$build/cli/deltafetch
GEN=$build/testdata/df-gen-tree
w=$(mktemp -d "${TMPDIR:-/tmp}/deltafetch-example.XXXXXX")
trap 'rm -rf "$w"' EXIT

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

new=$(du -sb "$w/v2" | cut -f1)
delta=$(du -sb "$w/update" | cut -f1)
echo; echo "== summary"
printf '  tree v2:        %s bytes, %s files\n' "$new" "$(find "$w/v2" -type f | wc -l)"
printf '  update delta:   %s bytes (%s%% of the tree)\n' "$delta" "$(awk -v d="$delta" -v n="$new" 'BEGIN { printf "%.1f", d * 100 / n }')"
printf '  generate:       %s ms    apply: %s ms\n' "$gen_ms" "$apply_ms"
printf '  ref os -> %s\n' "$(ostree rev-parse --repo="$w/device" os)"
