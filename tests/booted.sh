#!/bin/bash
# The from-commit of a booted device: the deployment the system booted. A
# sysroot made with `ostree admin init-fs/os-init/deploy` holds v1 deployed;
# in a private mount namespace its deployment becomes "/" (chroot, with the
# host's /usr bound in for the programs, /sysroot the sysroot, a
# /run/ostree-booted), as on a booted device. deltafetch fetch then takes
# the v1 -> v2 delta with v1 found as the booted deployment's commit, with
# no --from and no ref naming v1; outside the chroot (not booted) the same
# repository does not claim it. Needs root (mount namespaces, chroot).
. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" != 0 ]; then echo "1..0 # SKIP needs root for mount namespaces and chroot"; exit 0; fi

# os_tree N: a tree an `ostree admin deploy` accepts: a kernel, os-release,
# and the generated payload under usr/share.
os_tree () {
  local t=$T/os$1
  mkdir -p "$t/usr/lib/modules/6.1.0" "$t/usr/etc" "$t/usr/share"
  printf 'ID=deltafetch-test\nPRETTY_NAME="deltafetch test v%s"\n' "$1" >"$t/usr/lib/os-release"
  cp "$t/usr/lib/os-release" "$t/usr/etc/os-release"
  head -c 65536 /dev/zero | tr '\0' "$1" >"$t/usr/lib/modules/6.1.0/vmlinuz"
  cp -a "$T/v$1" "$t/usr/share/payload"
}
make_tree v1 1 --no-owner --no-xattrs && make_tree v2 2 --no-owner --no-xattrs || { not_ok "generate trees"; finish; exit 1; }
os_tree 1 && os_tree 2
mkdir -p "$T/www"
src=$T/www/repo
ostree init --repo="$src" --mode=archive
ostree commit --repo="$src" -b os --tree=dir="$T/os1" --timestamp="2024-01-01T00:00:00Z" >/dev/null
ostree commit --repo="$src" -b os --tree=dir="$T/os2" --timestamp="2024-02-01T00:00:00Z" >/dev/null
c1=$(rev "$src" os^) c2=$(rev "$src" os)
"$DF" generate -q --repo="$src" --from="$c1" --to="$c2" >/dev/null
"$DF" generate -q --repo="$src" --empty --to="$c2" >/dev/null
start_nginx "$T/www" || { not_ok "nginx did not start"; finish; exit 1; }
url=http://127.0.0.1:$NGINX_PORT/repo

sysroot=$T/sysroot
mkdir -p "$sysroot"
ostree admin init-fs "$sysroot" >/dev/null 2>&1
ostree admin os-init --sysroot="$sysroot" test >/dev/null
ostree pull-local --repo="$sysroot/ostree/repo" "$src" "$c1" >/dev/null
check "v1 deployed in a test sysroot" ostree admin deploy --sysroot="$sysroot" --os=test "$c1"
deploy=$sysroot/ostree/deploy/test/deploy/$c1.0
# The deployment is immutable (chattr +i): let the cleanup remove it.
cleanup_hooks+=("chattr -R -i '$sysroot' 2>/dev/null")
# No ref names v1 (deploy writes its own ostree/0/1/0): remove them all.
for r in $(ostree refs --repo="$sysroot/ostree/repo"); do ostree refs --repo="$sysroot/ostree/repo" --delete "$r"; done
check "no ref is left in the sysroot's repository" test -z "$(ostree refs --repo="$sysroot/ostree/repo")"

# booted CMD...: runs CMD in a private mount namespace whose root is the
# deployment, as on a device booted from it.
booted () {
  # The build tree, the sources and $T keep their paths inside: their top
  # directories (/work, /tmp, /check, wherever the clone is) are bound in.
  local tops top
  tops=$(for p in "$DF_BUILDDIR" "$DF_SRCDIR" "$T"; do top=$(realpath "$p"); top=${top#/}; echo "/${top%%/*}"; done | sort -u | grep -vx '/usr')
  unshare --mount --propagation private bash -c '
    set -e
    d=$1 sysroot=$2 tops=$3; shift 3
    chattr -i "$d"
    mkdir -p "$d/sysroot" "$d/run" "$d/proc" "$d/dev" "$d/etc" "$d/boot"
    for t in $tops; do mkdir -p "$d$t"; done
    for l in bin sbin lib lib64; do [ -e "$d/$l" ] || [ -L "$d/$l" ] || [ ! -e "/$l" ] || ln -s "usr/$l" "$d/$l"; done
    [ -L "$d/ostree" ] || ln -s sysroot/ostree "$d/ostree"
    chattr +i "$d"
    mount --bind "$d" "$d"
    mount --bind /usr "$d/usr"
    mount --bind "$sysroot" "$d/sysroot"
    mount --bind "$sysroot/boot" "$d/boot"
    mount -t tmpfs tmpfs "$d/run" && touch "$d/run/ostree-booted"
    mount --bind /proc "$d/proc"
    mount --bind /dev "$d/dev"
    for t in $tops; do mount --bind "$t" "$d$t"; done
    exec chroot "$d" "$@"
  ' booted "$deploy" "$sysroot" "$tops" "$@"
}

check "in the namespace, ostree admin status sees v1 booted" \
  bash -c "$(declare -f booted); T='$T' deploy='$deploy' sysroot='$sysroot' booted ostree admin status 2>&1 | grep -q '^\* test $c1'"
expect_exit 0 "booted: fetch v2 (no --from, no ref naming v1)" booted "$DF" fetch --repo=/sysroot/ostree/repo \
  --url="$url" --commit="$c2" --json --no-pull-fallback
check "the v1 -> v2 delta, v1 found as the booted deployment's commit" \
  test "$(sed -n '$p' "$T/ee.out" | python3 -c 'import json,sys; e=json.load(sys.stdin); print(e["path"], e["from"], e["from_found"])')" = "delta $c1 booted"
check "v2 fsck-clean and identical" checkout_matches "$sysroot/ostree/repo" "$c2" "$T/os2"

# Not booted: the same kind of repository finds v1 only by searching it.
plain=$T/plain
ostree init --repo="$plain" --mode=bare
ostree pull-local --repo="$plain" "$src" "$c1" >/dev/null
expect_exit 0 "not booted: fetch v2 into a repository holding v1" "$DF" fetch --repo="$plain" --url="$url" \
  --commit="$c2" --json --no-pull-fallback
check "there v1 was found by searching the repository, not as booted" \
  test "$(sed -n '$p' "$T/ee.out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["from_found"])')" = repository

finish
