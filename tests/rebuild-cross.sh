#!/bin/bash
# Rebuilt objects across architectures: deltas made by $DF_GENERATOR (the
# build machine's deltafetch: tests/cross-run.sh points it at the native
# x86-64 build) are applied by $DF (under tests/cross-run.sh, the aarch64
# build running in qemu-user). Every recipe and deflate reconstruction the
# generator proved on its machine must rebuild the same bytes here: one
# gzip initrd (deflate reconstruction), one xz (liblzma recipe), one zstd
# (libzstd recipe, multi-threaded mode, with a budget that allows it).
# Without DF_GENERATOR both sides are $DF.
. "$(dirname "$0")/lib.sh"

GEN=${DF_GENERATOR:-$DF}
TREE=$DF_SRCDIR/tests/transform-tree.py
diag "generator: $GEN ($(od -An -tx1 -j18 -N2 "$GEN" | tr -d ' ')), device: $DF ($(od -An -tx1 -j18 -N2 "$DF" | tr -d ' '))"

for kind in gnu-gzip-6n xz-6 zstd-9-mt; do
  w=$T/$kind
  mkdir -p "$w"
  python3 "$TREE" "$w/v1" 1 "$kind" && python3 "$TREE" "$w/v2" 2 "$kind" || { not_ok "$kind: make trees"; continue; }
  ostree init --repo="$w/src" --mode=archive
  ostree commit --repo="$w/src" -b os --tree=dir="$w/v1" --owner-uid=0 --owner-gid=0 >/dev/null
  ostree commit --repo="$w/src" -b os --tree=dir="$w/v2" --owner-uid=0 --owner-gid=0 >/dev/null
  c1=$(rev "$w/src" os^) c2=$(rev "$w/src" os)
  expect_exit 0 "$kind: generate from scratch" "$GEN" generate -q --level=3 --repo="$w/src" --empty --to=os^ --out="$w/d1"
  expect_exit 0 "$kind: generate v1 -> v2" "$GEN" generate --level=3 --repo="$w/src" --from=os^ --to=os --out="$w/d2"
  check "$kind: the generator rebuilds the initrd" grep -q "Compressed: .* 1 rebuilt" "$T/ee.out"
  ostree init --repo="$w/dst" --mode=bare-user
  expect_exit 0 "$kind: apply v1" "$DF" apply -q --repo="$w/dst" --commit="$c1" "$w/d1"
  # zstd -9 in multi-threaded mode declares more than the default budget
  # may rise to: give it room, as a device that wants the rebuild does.
  mem=; [ "$kind" = zstd-9-mt ] && mem=--memory=256M
  expect_exit 0 "$kind: apply v1 -> v2" "$DF" apply --rebuild=always $mem --repo="$w/dst" --commit="$c2" --ref=os "$w/d2"
  check "$kind: the initrd was rebuilt here, not taken plain" grep -q "^1 compressed objects rebuilt" "$T/ee.out"
  check "$kind: no fallback" bash -c "! grep -q 'rebuilds failed\|not used' '$T/ee.out'"
  check "$kind: fsck clean, checkout identical to v2" checkout_matches "$w/dst" "$c2" "$w/v2"
done
finish
