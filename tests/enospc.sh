#!/bin/bash
# Disk full mid-apply (case 21 of HOSTILE-CASES.md), for the native apply,
# the stock-delta apply and the fetch from nginx: each runs on a 24 MiB tmpfs
# holding v1, where v2's 40 MB file cannot fit. Each must stop with a clean
# "no space" error (exit 7, one line), leave objects/, the ref and fsck as
# they were, and succeed once the filesystem is grown.
. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" != 0 ]; then echo "1..0 # SKIP needs root to mount a tmpfs"; exit 0; fi
make_tree v1 1 --no-owner && make_tree v2 2 --no-owner --large-file=40000000 || { not_ok "trees"; finish; exit 1; }
src=$T/www/repo
mkdir -p "$T/www"
make_src_repo "$src" archive
c1=$(rev "$src" os^) c2=$(rev "$src" os)
"$DF" generate -q --repo="$src" --empty --to=os^ --out="$T/scratch" >/dev/null
"$DF" generate -q --repo="$src" --from=os^ --to=os --out="$T/delta" >/dev/null
"$DF" generate -q --repo="$src" --from=os^ --to=os >/dev/null # served by nginx
mkdir -p "$T/stock"
ostree static-delta generate --repo="$src" --from="$c1" --to="$c2" --filename="$T/stock/superblock" >/dev/null
start_nginx "$T/www" || { not_ok "nginx did not start"; finish; exit 1; }
url=http://127.0.0.1:$NGINX_PORT/repo

# full_case NAME CMD...: CMD (with REPO in its arguments replaced by the
# device repo) on a fresh 24 MiB tmpfs holding v1 must fail for space and
# leave the repo as it was; after the tmpfs grows to 256 MiB it succeeds.
full_case () {
  local name=$1 mnt=$T/small-$1 repo before a args=()
  shift
  mkdir -p "$mnt"
  mount -t tmpfs -o size=24m tmpfs "$mnt" || { not_ok "$name: mount tmpfs"; return; }
  cleanup_hooks+=("umount -l '$mnt'")
  repo=$mnt/repo
  for a in "$@"; do args+=("${a//REPO/$repo}"); done
  ostree init --repo="$repo" --mode=bare-user
  "$DF" apply -q --repo="$repo" --commit="$c1" --ref=os "$T/scratch"
  check "$name: v1 fits on the small filesystem" test "$(rev "$repo" os)" = "$c1"
  before=$(objects_list "$repo")
  expect_exit 7 "$name: on a full filesystem" "${args[@]}"
  check "$name: the error says no space" grep -qi "space" "$T/ee.err"
  check "$name: ref unchanged" test "$(rev "$repo" os)" = "$c1"
  check "$name: objects/ unchanged" test "$before" = "$(objects_list "$repo")"
  check "$name: repo fsck-clean" ostree fsck --repo="$repo"
  mount -o remount,size=256m "$mnt"
  expect_exit 0 "$name: after space is freed" "${args[@]}"
  check "$name: fsck + checkout identical to v2" checkout_matches "$repo" "$c2" "$T/v2"
  umount -l "$mnt"
}

full_case native "$DF" apply --repo=REPO --commit="$c2" --ref=os "$T/delta"
# The stock delta leaves v2's large file out as a fallback object: --url.
full_case stock "$DF" apply --repo=REPO --commit="$c2" --ref=os --url="$url" "$T/stock"
# fetch refuses before downloading when the declared sizes do not fit.
full_case fetch "$DF" fetch --repo=REPO --commit="$c2" --ref=os --url="$url"

# A stock delta is decoded into temporary files before its objects are
# made, and the free-space check counts that too: a filesystem with room for
# the parts and the objects, but not for the decoded payload as well, is
# refused before anything is downloaded. The server holds only a stock delta
# that carries the large file in a part (no fallback objects).
ssrc=$T/www/stockonly
ostree init --repo="$ssrc" --mode=archive
ostree pull-local --repo="$ssrc" --depth=1 "$src" os >/dev/null
ostree static-delta generate --repo="$ssrc" --from="$c1" --to="$c2" --min-fallback-size=1000 >/dev/null
ostree summary -u --repo="$ssrc"
read -r parts_bytes objects_bytes < <("$DF" show --json "$(dirname "$(find "$ssrc/deltas" -name superblock | head -1)")" | python3 -c '
import json, sys; d = json.load(sys.stdin)
print(sum(p["compressed-size"] for p in d["parts"]), sum(p["uncompressed-size"] for p in d["parts"]))') || true
mnt=$T/small-stockcheck
mkdir -p "$mnt"
mount -t tmpfs -o size=256m tmpfs "$mnt" && cleanup_hooks+=("umount -l '$mnt'")
repo=$mnt/repo
ostree init --repo="$repo" --mode=bare-user
ostree config --repo="$repo" set core.min-free-space-percent 0
"$DF" apply -q --repo="$repo" --commit="$c1" --ref=os "$T/scratch"
used=$(($(stat -f -c '(%b - %f) * %S' "$mnt")))
# Room for parts + objects and 4 MiB more; the decoded payload is about as
# large as the objects again.
size_kib=$(( (used + parts_bytes + objects_bytes + 4 * 1048576) / 1024 ))
mount -o remount,size=${size_kib}k "$mnt"
diag "stock delta: $parts_bytes bytes of parts making $objects_bytes bytes of objects; tmpfs ${size_kib} KiB"
before=$(objects_list "$repo")
expect_exit 7 "stock fetch: refused when the decoded payload would not fit" \
  "$DF" fetch --repo="$repo" --commit="$c2" --ref=os --url="http://127.0.0.1:$NGINX_PORT/stockonly"
check "stock fetch: by the check before the download" grep -q "not enough free space" "$T/ee.err"
check "stock fetch: it was the stock delta" test -n "$objects_bytes" -a "$objects_bytes" -gt 30000000
check "stock fetch: ref unchanged" test "$(rev "$repo" os)" = "$c1"
check "stock fetch: objects/ unchanged" test "$before" = "$(objects_list "$repo")"
mount -o remount,size=256m "$mnt"
expect_exit 0 "stock fetch: with room for the payload too" \
  "$DF" fetch --repo="$repo" --commit="$c2" --ref=os --url="http://127.0.0.1:$NGINX_PORT/stockonly"
check "stock fetch: fsck + checkout identical to v2" checkout_matches "$repo" "$c2" "$T/v2"
umount -l "$mnt"

# The disk fills while a fetch downloads (another writer takes the space the
# free-space check saw): exit 7 mid-transfer, the repo as it was; once the
# other file is gone, a rerun completes and reuses what was downloaded. The
# server is slowed to 64 KiB/s per connection so the fetch is still running
# when the filler arrives.
start_nginx "$T/www" "" "limit_rate 64k;" || { not_ok "rate-limited nginx did not start"; finish; exit 1; }
slow=http://127.0.0.1:$NGINX_PORT/repo
mnt=$T/small-mid
mkdir -p "$mnt"
mount -t tmpfs -o size=160m tmpfs "$mnt" && cleanup_hooks+=("umount -l '$mnt'")
repo=$mnt/repo
ostree init --repo="$repo" --mode=bare-user
"$DF" apply -q --repo="$repo" --commit="$c1" --ref=os "$T/scratch"
before=$(objects_list "$repo")
"$DF" fetch --repo="$repo" --commit="$c2" --ref=os --url="$slow" --json >"$T/mid.json" 2>"$T/mid.err" &
pid=$!
# Once 64 KiB of parts is on disk, take all but 256 KiB of what is free.
for _ in $(seq 200); do
  [ "$(du -sb "$repo"/tmp/deltafetch-fetch-* 2>/dev/null | awk '{s += $1} END {print s + 0}')" -gt 65536 ] && break
  sleep 0.05
done
# The fetch keeps writing while fallocate takes its pages one by one, so a
# first try may lose the race: retry, leaving a little more each time.
filled=
for margin in 262144 524288 1048576 2097152 4194304; do
  free=$(($(stat -f -c '%a * %S' "$mnt")))
  if [ "$free" -gt "$margin" ] && fallocate -l $((free - margin)) "$mnt/filler" 2>/dev/null; then
    filled=$margin; break
  fi
  rm -f "$mnt/filler"
done
check "fetch mid-transfer: the filler took the free space (left ${filled:-?} bytes)" test -n "$filled"
rc=0; wait "$pid" || rc=$?
check "fetch mid-transfer: exit 7 once the disk filled (exit $rc)" test "$rc" = 7
check "fetch mid-transfer: one stderr line, about space" \
  bash -c "[ \$(wc -l <'$T/mid.err') = 1 ] && grep -qi 'space' '$T/mid.err'"
check "fetch mid-transfer: not the check before the download" bash -c "! grep -q 'not enough free space' '$T/mid.err'"
diag "stderr: $(cat "$T/mid.err")"
check "fetch mid-transfer: ref unchanged" test "$(rev "$repo" os)" = "$c1"
check "fetch mid-transfer: objects/ unchanged" test "$before" = "$(objects_list "$repo")"
check "fetch mid-transfer: repo fsck-clean" ostree fsck --repo="$repo"
rm -f "$mnt/filler"
expect_exit 0 "fetch mid-transfer: rerun after space is freed" \
  "$DF" fetch --repo="$repo" --commit="$c2" --ref=os --url="$url" --json
check "fetch mid-transfer: the rerun reused downloaded bytes" \
  bash -c "grep '\"event\":\"done\"' '$T/ee.out' | grep -qv '\"bytes_reused\":0,'"
check "fetch mid-transfer: fsck + checkout identical to v2" checkout_matches "$repo" "$c2" "$T/v2"
finish
