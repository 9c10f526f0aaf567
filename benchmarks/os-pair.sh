#!/bin/bash
# Builds the real OS-update pair the benchmarks use, once, and caches it:
#   v1 = Debian 12 from the point-release suite (with a kernel),
#   v2 = the same system after the security and stable updates (kernel upgrade).
# Both are committed into CACHE/repo (archive mode) on ref "os" (os^ = v1).
# Needs root and the Debian mirror apt is configured with; the only benchmark
# step that uses the network. Usage: benchmarks/os-pair.sh [--zstd] [CACHE]
#
# --zstd makes the pair's other variant in CACHE/zstd (after the gzip pair):
# both trees with Debian's zstd package installed, so that mkinitramfs
# compresses the initrds with its default `zstd -q -9 -T0` instead of falling
# back to gzip. The repository is CACHE/zstd/repo.
set -euo pipefail
variant=gzip
[ "${1:-}" = --zstd ] && { variant=zstd; shift; }
cache=$(realpath -m "${1:-$(dirname "$0")/cache}")
if [ "$variant" = zstd ]; then
  "$0" "$cache" >/dev/null
  out=$cache/zstd
  [ -f "$out/os-pair.done" ] && { echo "$out/repo"; exit 0; }
  rm -rf "$out"; mkdir -p "$out"
  for v in v1 v2; do
    r=$out/rootfs-$v
    cp -a "$cache/rootfs-$v" "$r"
    printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"; chmod +x "$r/usr/sbin/policy-rc.d"
    cp /etc/resolv.conf "$r/etc/resolv.conf" 2>/dev/null || true
    mount -t proc proc "$r/proc"
    mount --bind /dev "$r/dev" # the trees hold no device nodes; apt wants /dev/null
    trap 'umount "$r/proc" "$r/dev" 2>/dev/null || true' EXIT
    # v1 takes zstd from its own suite, v2 from the updated ones; the
    # version is the same (1.5.4) in both.
    { chroot "$r" apt-get update -qq && DEBIAN_FRONTEND=noninteractive chroot "$r" apt-get install -y -qq zstd \
        && chroot "$r" update-initramfs -u -k all; } >>"$out/zstd.log" 2>&1 || { tail -20 "$out/zstd.log" >&2; exit 1; }
    umount "$r/proc" "$r/dev"; trap - EXIT
    rm -rf "$r"/var/cache/apt/* "$r"/var/lib/apt/lists/* "$r"/var/log/* "$r/etc/resolv.conf" "$r/usr/sbin/policy-rc.d"
    find "$r/proc" "$r/tmp" "$r/run" -mindepth 1 -delete 2>/dev/null || true
    head -c 4 "$r"/boot/initrd.img-* | od -An -tx1 | grep -q '28 b5 2f fd' \
      || { echo "os-pair.sh: the $v initrd is not zstd" >&2; exit 1; }
  done
  ostree init --repo="$out/repo" --mode=archive
  ostree commit --repo="$out/repo" -b os --tree=dir="$out/rootfs-v1" -s "Debian 12 point release (zstd initrd)" \
    --timestamp=2025-01-01T00:00:00Z >/dev/null
  ostree commit --repo="$out/repo" -b os --tree=dir="$out/rootfs-v2" -s "with security updates (zstd initrd)" \
    --timestamp=2025-02-01T00:00:00Z >/dev/null
  {
    echo "v1: $(du -sh "$out/rootfs-v1" | cut -f1), $(find "$out/rootfs-v1" -type f | wc -l) files, zstd initrd"
    echo "v2: $(du -sh "$out/rootfs-v2" | cut -f1), $(find "$out/rootfs-v2" -type f | wc -l) files, zstd initrd"
    echo "changed objects: $(ostree diff --repo="$out/repo" os^ os | grep -c '^M')"
  } >"$out/os-pair.txt"
  touch "$out/os-pair.done"
  echo "$out/repo"
  exit 0
fi
[ -f "$cache/os-pair.done" ] && { echo "$cache/repo"; exit 0; }
[ "$(id -u)" = 0 ] || { echo "os-pair.sh: needs root (debootstrap)" >&2; exit 1; }
command -v debootstrap >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }

# The mirror and security mirror this machine's apt uses.
srcs=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null || true)
mirror=$(printf '%s\n' "$srcs" | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -1 | tr -d ' ')
security=$(printf '%s\n' "$srcs" | grep -oE 'https?://[^ ]+/debian-security/?( |$)' | head -1 | tr -d ' ')
[ -n "$mirror" ] && [ -n "$security" ] || { echo "os-pair.sh: cannot find the Debian mirrors in apt's sources" >&2; exit 1; }

mkdir -p "$cache"
v1=$cache/rootfs-v1 v2=$cache/rootfs-v2
rm -rf "$v1" "$v2" "$cache/repo"
pkgs=linux-image-amd64,initramfs-tools,systemd-sysv,udev,openssh-server,curl,ca-certificates,iproute2,iputils-ping,less,vim-tiny,kmod,procps,dbus
debootstrap --variant=minbase --include="$pkgs" bookworm "$v1" "$mirror" >"$cache/debootstrap.log" 2>&1 \
  || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }

cp -a "$v1" "$v2"
cat >"$v2/etc/apt/sources.list" <<SRC
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
SRC
printf '#!/bin/sh\nexit 101\n' >"$v2/usr/sbin/policy-rc.d"; chmod +x "$v2/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$v2/etc/resolv.conf" 2>/dev/null || true
mount -t proc proc "$v2/proc"
trap 'umount "$v2/proc" 2>/dev/null || true' EXIT
chroot "$v2" apt-get update -qq >"$cache/upgrade.log" 2>&1
DEBIAN_FRONTEND=noninteractive chroot "$v2" apt-get -y -qq dist-upgrade >>"$cache/upgrade.log" 2>&1
# An update replaces the kernel: drop v1's once v2 has a newer one.
for k in "$v1"/boot/vmlinuz-*; do
  old=${k##*/vmlinuz-}
  if [ "$(ls "$v2"/boot/vmlinuz-* | wc -l)" -gt 1 ]; then
    DEBIAN_FRONTEND=noninteractive chroot "$v2" apt-get -y -qq purge "linux-image-$old" >>"$cache/upgrade.log" 2>&1
  fi
done
umount "$v2/proc"; trap - EXIT
rm -f "$v2/usr/sbin/policy-rc.d"

for r in "$v1" "$v2"; do
  # What an OSTree commit of a rootfs never holds.
  find "$r/dev" "$r/proc" "$r/sys" "$r/run" "$r/tmp" -mindepth 1 -delete 2>/dev/null || true
  rm -rf "$r"/var/cache/apt/* "$r"/var/lib/apt/lists/* "$r"/var/log/* "$r/etc/resolv.conf"
  find "$r" \( -type b -o -type c -o -type p -o -type s \) -delete
done
ostree init --repo="$cache/repo" --mode=archive
ostree commit --repo="$cache/repo" -b os --tree=dir="$v1" -s "Debian 12 point release" --timestamp=2025-01-01T00:00:00Z >/dev/null
ostree commit --repo="$cache/repo" -b os --tree=dir="$v2" -s "with security updates" --timestamp=2025-02-01T00:00:00Z >/dev/null
{
  echo "v1: $(du -sh "$v1" | cut -f1), $(find "$v1" -type f | wc -l) files, kernel $(ls "$v1/boot" | grep vmlinuz)"
  echo "v2: $(du -sh "$v2" | cut -f1), $(find "$v2" -type f | wc -l) files, kernel $(ls "$v2/boot" | grep vmlinuz | tr '\n' ' ')"
  echo "changed objects: $(ostree diff --repo="$cache/repo" os^ os | grep -c '^M')"
} >"$cache/os-pair.txt"
touch "$cache/os-pair.done"
echo "$cache/repo"
