#!/bin/bash
# Disk full mid-apply: a clean "no space" error (exit 7), the repo intact and
# fsck-clean with the ref unchanged, and success once space is freed.
. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" != 0 ]; then echo "1..0 # SKIP needs root to mount a tmpfs"; exit 0; fi
make_tree v1 1 --no-owner && make_tree v2 2 --no-owner --large-file=40000000 || { not_ok "trees"; finish; exit 1; }
src=$T/src
make_src_repo "$src" archive
c1=$(rev "$src" os^) c2=$(rev "$src" os)
"$DF" generate -q --repo="$src" --empty --to=os^ --out="$T/scratch" >/dev/null
"$DF" generate -q --repo="$src" --from=os^ --to=os --out="$T/delta" >/dev/null

mnt=$T/small
mkdir -p "$mnt"
mount -t tmpfs -o size=24m tmpfs "$mnt" || { not_ok "mount tmpfs"; finish; exit 1; }
cleanup_hooks+=("umount -l '$mnt'")
repo=$mnt/repo
ostree init --repo="$repo" --mode=bare-user
"$DF" apply -q --repo="$repo" --commit="$c1" --ref=os "$T/scratch"
check "v1 fits on the small filesystem" test "$(rev "$repo" os)" = "$c1"
before=$(objects_list "$repo")
expect_exit 7 "apply on a full filesystem" "$DF" apply --repo="$repo" --commit="$c2" --ref=os "$T/delta"
check "ref unchanged" test "$(rev "$repo" os)" = "$c1"
check "objects/ unchanged" test "$before" = "$(objects_list "$repo")"
check "repo fsck-clean" ostree fsck --repo="$repo"
mount -o remount,size=256m "$mnt"
expect_exit 0 "apply after space is freed" "$DF" apply --repo="$repo" --commit="$c2" --ref=os "$T/delta"
check "fsck + checkout identical to v2" checkout_matches "$repo" "$c2" "$T/v2"
finish
