# Sourced by the bench scripts: where the device repositories live.
# bench_fs W SIZE: sets dev_dir (W itself, or with SIZE a fresh journaled
# ext4 of SIZE on a loop device mounted under W; root only) and fs_desc,
# which the reports carry. Where the work directory's filesystem is ext4
# without a journal (this project's CI VM), ext4 scans recently deleted
# inodes on every file it creates, which measures the benchmark's own
# clean-up rather than the tools; devices' filesystems have journals.
# bench_fs_cleanup W: unmounts what bench_fs mounted.
bench_fs () {
  local w=$1 size=$2 src
  dev_dir=$w
  if [ -n "$size" ]; then
    truncate -s "$size" "$w/fs.img"
    mkfs.ext4 -q -F "$w/fs.img"
    mkdir "$w/fs"
    mount -o loop "$w/fs.img" "$w/fs"
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
bench_fs_cleanup () { if mountpoint -q "$1/fs" 2>/dev/null; then umount "$1/fs"; fi; }
