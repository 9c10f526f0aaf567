# Sourced by the bench scripts: where the device repositories live, and the
# run's description (meta.json) and report.
#
# bench_fs W SIZE: sets dev_dir (W itself, or with SIZE a fresh journaled
# ext4 of SIZE on a loop device mounted under W; root only) and fs_desc,
# which the reports carry. Where the work directory's filesystem is ext4
# without a journal (this project's CI VM), ext4 scans recently deleted
# inodes on every file it creates, which measures the benchmark's own
# clean-up rather than the tools; devices' filesystems have journals.
# The loop device uses direct I/O, so the image's pages are not cached a
# second time under the filesystem's own.
# bench_fs_cleanup W: unmounts what bench_fs mounted.
# obj_stats, disk_write_rate: see below.
# bench_devices BASE NAME...: the device copies NAME of BASE the runs use.
# On the rotating root filesystem they are all made up front and kept (no
# deletions near a measurement); on a journaled image each is made just
# before its run (bench_device) and removed after it (bench_device_done),
# so memory holds one copy, not all.
bench_fs () {
  local w=$1 size=$2 src  # size: also read as $fs_image by bench_devices
  dev_dir=$w
  if [ -n "$size" ]; then
    truncate -s "$size" "$w/fs.img"
    mkfs.ext4 -q -F "$w/fs.img"
    mkdir "$w/fs"
    losetup -f --show --direct-io=on "$w/fs.img" >"$w/fs.loop"
    mount "$(cat "$w/fs.loop")" "$w/fs"
    dev_dir=$w/fs
  fi
  fs_desc=$(df -T "$dev_dir" | awk 'NR == 2 { print $2 }')
  if [ "$fs_desc" = ext4 ]; then
    src=$(df "$dev_dir" | awk 'NR == 2 { print $1 }')
    if dumpe2fs -h "$src" 2>/dev/null | grep -q has_journal; then fs_desc="ext4 with journal"; else
      fs_desc="ext4 (journal: $(dumpe2fs -h "$src" >/dev/null 2>&1 && echo none || echo unknown))"; fi
  fi
  if [ -n "$size" ]; then fs_desc="$fs_desc, fresh $size loop image"; fi
  echo "device repositories on: $fs_desc" >&2
}
bench_fs_cleanup () {
  if mountpoint -q "$1/fs" 2>/dev/null; then umount "$1/fs"; fi
  if [ -s "$1/fs.loop" ]; then losetup -d "$(cat "$1/fs.loop")" 2>/dev/null || true; fi
}
bench_devices () {
  local base=$1 d; shift
  if [ -z "$fs_image" ]; then
    for d in "$@"; do cp -a "$base" "$dev_dir/$d"; done
    sync
  fi
}
# bench_device BASE NAME: prints the copy's path, made now if it is not yet.
bench_device () {
  [ -d "$dev_dir/$2" ] || { cp -a "$1" "$dev_dir/$2"; sync; }
  echo "$dev_dir/$2"
}
# bench_device_done NAME: with an image, the copy goes unless it is kept
# (names ending in -1 are checked with fsck at the end).
bench_device_done () {
  if [ -n "$fs_image" ] && [ "${1%-1}" = "$1" ]; then rm -rf "${dev_dir:?}/$1"; fi
}
# obj_stats REPO: "COUNT BYTES" of the files in REPO/objects (what a run
# wrote is the difference from its base copy).
obj_stats () { find "$1/objects" -type f -printf '%s\n' | awk '{ n++; s += $1 } END { printf "%.0f %.0f\n", n, s }'; }
# dir_bytes DIR: bytes of the files under DIR, as an integer (awk's default
# print turns 2.16 GB into 2.15682e+09)
dir_bytes () { find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%.0f\n", s }'; }
# disk_write_rate DIR: bytes per second of a 256 MiB sequential write to DIR
# ending in fsync: the disk's side of the physical floor.
disk_write_rate () {
  local t0 t1
  sync
  t0=$(date +%s%N)
  dd if=/dev/zero of="$1/.df-disk-rate" bs=1M count=256 conv=fsync status=none
  t1=$(date +%s%N)
  rm -f "$1/.df-disk-rate"
  echo $((268435456 * 1000000000 / (t1 - t0 + 1)))
}
# bench_meta FILE CORPUS COMMAND DISK-RATE [EXTRA-FIELDS]: the run's
# meta.json for report.py: corpus, machine, filesystem, command, date, the
# disk rate, plus EXTRA-FIELDS (", \"key\": value" ...).
json_str () { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g' | tr '\n\t' '  ')"; }
bench_machine () {
  printf '%s, %s cores, %s, %s' "$(uname -m)" "$(nproc)" \
    "$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)" \
    "$(grep -m1 -E 'model name|^Model' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
}
bench_meta () {
  printf '{"corpus": %s, "machine": %s, "filesystem": %s, "command": %s, "date": %s, "disk_write_Bps": %s%s}\n' \
    "$(json_str "$2")" "$(json_str "$(bench_machine)")" "$(json_str "$fs_desc")" "$(json_str "$3")" \
    "$(json_str "$(date -u +%Y-%m-%dT%H:%M:%SZ)")" "${4:-null}" "${5:-}" >"$1"
}
# bench_report OUT: summary.json, summary.md and the plots from report.py
# (Python 3; the plots with matplotlib); where there is no Python (a
# board), says how to make them elsewhere from OUT.
bench_report () {
  # The first python3 that has matplotlib (a python3 of its own on PATH,
  # pyenv's say, does not see Debian's python3-matplotlib), else any.
  local py=
  for p in python3 /usr/bin/python3; do
    command -v "$p" >/dev/null || continue
    [ -n "$py" ] || py=$p
    if "$p" -c 'import matplotlib' 2>/dev/null; then py=$p; break; fi
  done
  if [ -n "$py" ]; then
    "$py" "$(dirname "${BASH_SOURCE[0]}")/report.py" "$1"
  else
    echo "no python3 here: copy $1 to a machine with it and run benchmarks/report.py $1" >&2
  fi
}
