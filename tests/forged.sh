#!/bin/bash
# Hand-forged hostile deltas (issue 14, attacks 1-8), rebuilt at full size
# by tests/df-forge and applied (and once fetched from nginx) by the real
# CLI into real repositories. Every run is wrapped in `timeout`, so an
# engine that hangs or floods fails the test instead of stalling it. Each
# case asserts its exit code and its bounds: wall time, peak RSS within the
# memory budget plus L (the mapped libraries: the peak RSS of `deltafetch
# show` on a small delta, measured here), what is left in REPO/tmp; every
# refused case also leaves objects/, the ref and fsck as they were and a
# following apply of the genuine delta into the same repository succeeds.
#
# Scaled down: attack 2's 640,000-entry flood cannot be written within the
# 32 MiB superblock body (an entry takes 100 bytes of body), so the large
# flood is 320,000 entries, the most that fit; 640,000 entries are case 1's
# superblock, refused at parse.
. "$(dirname "$0")/lib.sh"

# Each run is killed DF_FORGED_GRACE seconds (default 10) past its bound;
# a large value lets a vulnerable engine run to its end, for figures.
grace=${DF_FORGED_GRACE:-10}
# Under the sanitizers (tests/sanitize-run.sh) runs are several times
# slower and ASan's shadow memory inflates RSS: time bounds are four times
# as long there, and RSS is judged by the plain build only.
slow=1
[ -z "${DF_SANITIZED:-}" ] || slow=4
MiB=$((1024 * 1024))
GiB=$((1024 * MiB))
DEFAULT_BUDGET_KIB=$((64 * 1024))

# forge CMD ARGS...: runs df-forge; what it prints is in $T/forge.out and a diag line.
forge () {
  "$DF_FORGE" "$@" >"$T/forge.out" || { not_ok "df-forge $1 failed"; return 1; }
  [ ! -s "$T/forge.out" ] || diag "df-forge $1: $(tr '\n' ' ' <"$T/forge.out")"
}

# Trees: df-gen-tree's v1 and v2, plus forge/: old.img (32 MiB, the same in
# both: the large old object sources name), and in v2 spam.bin (100,000
# bytes: attack 6), mib.bin (1 MiB: attack 7) and ones/ (1000 one-byte
# files, each its own object: attack 5's windows).
make_tree v1 1 --no-owner && make_tree v2 2 --no-owner || { not_ok "generate trees"; finish; exit 1; }
mkdir -p "$T/v1/forge" "$T/v2/forge"
forge bytes "$T/v1/forge/old.img" $((32 * MiB)) 1 && cp "$T/v1/forge/old.img" "$T/v2/forge/old.img" \
  && forge bytes "$T/v2/forge/spam.bin" 100000 2 && forge bytes "$T/v2/forge/mib.bin" $MiB 3 \
  && forge ones "$T/v2/forge/ones" 1000 || { finish; exit 1; }
mkdir -p "$T/www"
src=$T/www/repo
make_src_repo "$src" archive
c1=$(rev "$src" os^) c2=$(rev "$src" os)
csum () { ostree ls --repo="$src" -C "$1" "$2" | awk '{ print $5 }'; }
old_img=$(csum os^ /forge/old.img) spam=$(csum os /forge/spam.bin) mib=$(csum os /forge/mib.bin)

# The genuine deltas every forgery starts from.
"$DF" generate -q --repo="$src" --from=os^ --to=os --out="$T/delta" >/dev/null
mkdir -p "$T/stock"
ostree static-delta generate --repo="$src" --from=os^ --to=os --filename="$T/stock/superblock" >/dev/null 2>&1
check "the genuine native delta is consistent" "$DF" show "$T/delta"
check "the genuine stock delta rebuilds every object" "$DF_TEST_TOOL" stock-verify "$src" "$T/stock"

# Device repositories on v1: bare-user (most cases) and archive (where
# sources must be inflated to be read).
for mode in bare-user archive; do
  ostree init --repo="$T/base-$mode" --mode=$mode
  ostree pull-local --repo="$T/base-$mode" "$src" "$c1" >/dev/null
  ostree refs --repo="$T/base-$mode" --create=os "$c1"
done
base=$T/base-bare-user abase=$T/base-archive

# L: the peak RSS of the mapped libraries, measured as `show` on a small
# delta (the largest of three runs).
L=0
for _ in 1 2 3; do
  k=$("$DF_TEST_TOOL" maxrss "$DF" show "$T/delta" 2>&1 >/dev/null | awk '$1 == "maxrss-kib" { print $2 }')
  [ "${k:-0}" -gt "$L" ] && L=$k
done
diag "L (peak RSS of deltafetch show on a small delta) = $L KiB"
check "L measured" test "$L" -gt 0

# G: what the genuine update writes into a bare-user repository's
# objects/; libostree's transaction staging (verified objects a rerun
# reuses) may hold up to that after a failure.
g=$T/g
cp -a "$base" "$g"
before=$(du -sB1 "$g/objects" | cut -f1)
expect_exit 0 "the genuine native delta applies" "$DF" apply --repo="$g" --commit="$c2" --ref=os "$T/delta"
check "the genuine native delta: v2 fsck-clean and identical" checkout_matches "$g" "$c2" "$T/v2"
G=$(($(du -sB1 "$g/objects" | cut -f1) - before))
rm -rf "$g"
diag "G (bytes the genuine update adds to objects/) = $G"

attack_ms=0 # time spent in measured runs, for the summary
# measure LIMIT CMD...: runs CMD under `timeout LIMIT` (SIGKILL 5 s later)
# and df-test-tool maxrss; sets rc, ms (wall time), kib (peak RSS, 0 when
# killed) and leaves CMD's stderr in $T/m.err.
measure () {
  local limit=$1; shift
  local t0
  t0=$(date +%s%N)
  rc=0
  timeout -k 5 $((limit * slow)) "$DF_TEST_TOOL" maxrss "$@" >"$T/m.out" 2>"$T/m.raw" || rc=$?
  ms=$((($(date +%s%N) - t0) / 1000000))
  attack_ms=$((attack_ms + ms))
  kib=$(awk '$1 == "maxrss-kib" { k = $2 } END { print k + 0 }' "$T/m.raw")
  grep -v '^maxrss-kib ' "$T/m.raw" >"$T/m.err" || true
}

# verdict NAME CODE SECONDS [BUDGET-KIB]: after measure: exit CODE (a
# failure with exactly one line on stderr), at most SECONDS of wall time,
# and with a budget, peak RSS within it plus L.
verdict () {
  local name=$1 want=$2 secs=$3 budget=${4:-}
  local lines
  lines=$(wc -l <"$T/m.err")
  diag "$name: exit $rc, $ms ms, peak RSS $kib KiB; $(head -1 "$T/m.err" | cut -c1-240)"
  local killed=
  [ "$rc" != 124 ] && [ "$rc" != 137 ] || killed=" (killed by the timeout)"
  if [ "$rc" = "$want" ] && { [ "$want" = 0 ] || [ "$lines" = 1 ]; }; then
    ok "$name: exit $want"
  else
    not_ok "$name: exit $rc$killed, want $want; $lines stderr lines"
    sed 's/^/# /' "$T/m.err" | head -5
  fi
  secs=$((secs * slow))
  if [ "$ms" -le $((secs * 1000)) ]; then ok "$name: within $secs s"; else not_ok "$name: $ms ms, over $secs s"; fi
  if [ -z "$budget" ]; then
    :
  elif [ -n "${DF_SANITIZED:-}" ]; then
    ok "$name: peak RSS not judged under the sanitizers"
  elif [ "$kib" = 0 ]; then
    not_ok "$name: peak RSS not measured$killed"
  elif [ "$kib" -le $((budget + L)) ]; then
    ok "$name: peak RSS within the budget plus L"
  else
    not_ok "$name: peak RSS $kib KiB, over the budget plus L ($budget + $L KiB)"
  fi
}

# tmp_left NAME REPO [ALLOWANCE]: what a failed run left in REPO/tmp,
# counted on disk (100,000 marker files of 32 bytes take 400 MiB): no
# deltafetch-apply-* staging, at most 1 MiB (plus ALLOWANCE) outside
# libostree's transaction staging, and in that (verified objects a rerun
# reuses) at most G plus 2 MiB for its objects/XX directories.
tmp_left () {
  local name=$1 repo=$2 allowance=${3:-0}
  local total apparent staging files dirs
  total=$(du -sB1 "$repo/tmp" | cut -f1)
  apparent=$(du -sb "$repo/tmp" | cut -f1)
  staging=$(du -csB1 "$repo"/tmp/staging-* 2>/dev/null | awk 'END { print $1 + 0 }')
  files=$(find "$repo/tmp" -type f | wc -l)
  dirs=$(cd "$repo/tmp" && ls -d deltafetch-apply-* deltafetch-fetch-* 2>/dev/null | tr '\n' ' ')
  diag "$name: REPO/tmp holds $total bytes on disk ($apparent apparent) in $files files, $staging of them" \
    "libostree's staging; deltafetch directories: ${dirs:-none}"
  check "$name: no deltafetch-apply-* staging left in REPO/tmp" bash -c "! ls -d '$repo'/tmp/deltafetch-apply-* 2>/dev/null"
  check "$name: REPO/tmp outside libostree's staging within 1 MiB" test $((total - staging)) -le $((MiB + allowance))
  check "$name: libostree's staging within what the genuine update writes" test "$staging" -le $((G + 2 * MiB))
}

# refused NAME CODE SECONDS BUDGET-KIB BASE DELTA GENUINE [apply args...]:
# apply DELTA into a fresh copy of BASE: verdict, then objects/, the ref and
# fsck as they were, REPO/tmp bounded, and GENUINE applies next into the
# same repository.
refused () {
  local name=$1 code=$2 secs=$3 budget=$4 from=$5 delta=$6 genuine=$7
  shift 7
  local repo=$T/repo-$name before
  rm -rf "$repo"
  cp -a "$from" "$repo"
  before=$(objects_list "$repo")
  measure $((secs + grace)) "$DF" apply --repo="$repo" --ref=os "$@" "$delta"
  verdict "$name" "$code" "$secs" "$budget"
  check "$name: objects/ unchanged" test "$before" = "$(objects_list "$repo")"
  check "$name: ref unchanged" test "$(rev "$repo" os)" = "$c1"
  check "$name: repository still fsck-clean" ostree fsck --repo="$repo"
  tmp_left "$name" "$repo"
  genuine_next "$name" "$repo" "$genuine"
}

# genuine_next NAME REPO GENUINE: the genuine delta applies into REPO next
# (not locked, not stuck): the ref on v2 and fsck clean, which covers every
# object of v2 (the trees themselves are compared where an attack's own
# run is meant to succeed).
genuine_next () {
  expect_exit 0 "$1: the genuine delta applies next into the same repository" timeout -k 5 120 \
    "$DF" apply --repo="$2" --commit="$c2" --ref=os "$3"
  check "$1: then the ref is on v2" test "$(rev "$2" os)" = "$c2"
  check "$1: then the repository is fsck-clean" ostree fsck --repo="$2"
  rm -rf "$2"
}

variant () { rm -rf "$T/${1:?}"; cp -a "$T/$2" "$T/$1"; }
# last_part DELTA: the number of DELTA's last part file
last_part () { echo $(($(find "$1" -maxdepth 1 -regextype egrep -regex '.*/[0-9]+' | wc -l) - 1)); }

# --- 1. The superblock outside the memory budget ---------------------------
diag "attack 1, $SECONDS s into the test"
# (a) 640,000 dirmeta entries whose checksums differ only in a leading
# counter: a 3 MB file whose 64 MB body is over the format's limits (exit
# 3; a superblock within them but over the budget would be exit 2).
variant big delta
forge meta "$T/big" 640000 distinct 1
read -r _ sbytes _ bbytes _ entries _ <"$T/forge.out"
want=2
[ "$bbytes" -gt $((32 * MiB)) ] || [ "$sbytes" -gt $((16 * MiB)) ] || [ "$entries" -gt 1048576 ] && want=3
refused huge-superblock $want 5 "$DEFAULT_BUDGET_KIB" "$base" "$T/big" "$T/delta" --commit="$c2"
refused huge-superblock-32M $want 5 $((32 * 1024)) "$base" "$T/big" "$T/delta" --commit="$c2" --memory=32M
# (b) 200,000 entries with random checksums: within every format limit,
# over the default budget; with 256M the apply proceeds to the trust walk.
variant over delta
forge meta "$T/over" 200000 random 2
refused over-budget 2 5 "$DEFAULT_BUDGET_KIB" "$base" "$T/over" "$T/delta" --commit="$c2"
check "over-budget: the error names the memory budget" grep -q "memory budget" "$T/m.err"
refused over-budget-32M 2 5 $((32 * 1024)) "$base" "$T/over" "$T/delta" --commit="$c2" --memory=32M
check "over-budget-32M: the error names the memory budget" grep -q "memory budget" "$T/m.err"
refused "over-budget-256M" 5 20 $((256 * 1024)) "$base" "$T/over" "$T/delta" --commit="$c2" --memory=256M
check "over-budget-256M: refused as not referenced" grep -q "not referenced" "$T/m.err"

# --- 2. Hash flooding of the trust tables -----------------------------------
diag "attack 2, $SECONDS s into the test"
variant flood delta
forge meta "$T/flood" 80000 prefix 3
refused flood-80k 5 5 "$DEFAULT_BUDGET_KIB" "$base" "$T/flood" "$T/delta" --commit="$c2"
check "flood-80k: refused as not referenced" grep -q "not referenced" "$T/m.err"
variant bigflood delta
forge meta "$T/bigflood" 320000 prefix 4
refused flood-320k 5 30 $((1024 * 1024)) "$base" "$T/bigflood" "$T/delta" --commit="$c2" --memory=1G
check "flood-320k: refused as not referenced" grep -q "not referenced" "$T/m.err"
variant stockflood stock
forge stock-flood "$T/stockflood" 80000 5
# At the default budget the forged objects alone outgrow what the xz
# decoder leaves for the trust tables: refused there, at once. With room
# for them, the walk refuses them as not referenced, as quickly.
refused stock-flood-80k 2 5 "$DEFAULT_BUDGET_KIB" "$base" "$T/stockflood" "$T/stock" --commit="$c2"
check "stock-flood-80k: the error names the memory budget" grep -q "memory budget" "$T/m.err"
refused stock-flood-80k-256M 5 5 $((256 * 1024)) "$base" "$T/stockflood" "$T/stock" --commit="$c2" --memory=256M
check "stock-flood-80k-256M: refused as not referenced" grep -q "not referenced" "$T/m.err"

# --- 3. A stock part not held to its declared size -------------------------
diag "attack 3, $SECONDS s into the test"
# Part 0 of the genuine stock delta (about 1.8 MB of xz declaring about
# 5.3 MB) with 2 GiB of zeros after its data: 2 MB of xz.
variant bloat stock
forge stock-bloat "$T/bloat" 0 $((2 * GiB))
refused stock-bloat 3 10 "$DEFAULT_BUDGET_KIB" "$base" "$T/bloat" "$T/stock" --commit="$c2"

# The same part through `fetch`, from nginx serving the stock delta (found
# through delta-indexes/, which `ostree summary -u` rewrites for the forged
# superblock). What a fetch keeps of the delta it downloaded is allowed in
# REPO/tmp besides the 1 MiB.
ostree static-delta generate --repo="$src" --from=os^ --to=os >/dev/null 2>&1
served=$src/$(cd "$src" && find deltas -mindepth 2 -maxdepth 2 -type d -name '*-*')
forge stock-bloat "$served" 0 $((2 * GiB))
ostree summary -u --repo="$src"
if start_nginx "$T/www"; then
  repo=$T/repo-stock-bloat-fetch
  cp -a "$base" "$repo"
  before=$(objects_list "$repo")
  measure $((20 + grace)) "$DF" fetch --repo="$repo" --url="http://127.0.0.1:$NGINX_PORT/repo" --commit="$c2" --ref=os
  verdict stock-bloat-fetch 3 20 "$DEFAULT_BUDGET_KIB"
  check "stock-bloat-fetch: the stock delta was the path taken" grep -q "/deltas/" "$NGINX_LOG"
  check "stock-bloat-fetch: objects/ unchanged" test "$before" = "$(objects_list "$repo")"
  check "stock-bloat-fetch: ref unchanged" test "$(rev "$repo" os)" = "$c1"
  check "stock-bloat-fetch: repository still fsck-clean" ostree fsck --repo="$repo"
  tmp_left stock-bloat-fetch "$repo" "$(du -sb "$served" | cut -f1)"
  genuine_next stock-bloat-fetch "$repo" "$T/stock"
else
  not_ok "nginx did not start"
fi

# --- 4. FIFOs and symlinks in place of delta files -------------------------
diag "attack 4, $SECONDS s into the test"
# blocked NAME DELTA GENUINE: apply DELTA in the background (at most 30 s);
# it must end with exit 3 and one line within 5 s. Then, whether or not it
# is still blocked, the genuine delta is applied into the same repository:
# it must not find the repository locked.
blocked () {
  local name=$1 delta=$2 genuine=$3
  local repo=$T/repo-$name before pid t0 waited rc=running
  rm -rf "$repo"
  cp -a "$base" "$repo"
  before=$(objects_list "$repo")
  t0=$(date +%s%N)
  timeout -k 2 30 "$DF" apply --repo="$repo" --commit="$c2" --ref=os "$delta" >"$T/b.out" 2>"$T/b.err" &
  pid=$!
  for _ in $(seq $((50 * slow))); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if ! kill -0 "$pid" 2>/dev/null; then
    rc=0
    wait "$pid" || rc=$?
  fi
  waited=$((($(date +%s%N) - t0) / 1000000))
  attack_ms=$((attack_ms + waited))
  diag "$name: exit $rc after $waited ms; $(head -1 "$T/b.err" | cut -c1-240)"
  if [ "$rc" = 3 ] && [ "$(wc -l <"$T/b.err")" = 1 ]; then ok "$name: exit 3 within $((5 * slow)) s"; else
    not_ok "$name: $rc after $waited ms (want exit 3 and one line within $((5 * slow)) s)"
  fi
  if [ "$rc" != running ]; then
    check "$name: objects/ unchanged" test "$before" = "$(objects_list "$repo")"
    check "$name: ref unchanged" test "$(rev "$repo" os)" = "$c1"
    check "$name: repository still fsck-clean" ostree fsck --repo="$repo"
    tmp_left "$name" "$repo"
  fi
  expect_exit 0 "$name: the genuine delta applies next, the repository not locked" timeout -k 5 120 \
    "$DF" apply --repo="$repo" --commit="$c2" --ref=os "$genuine"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    wait "$pid"
  fi
  check "$name: then the ref is on v2" test "$(rev "$repo" os)" = "$c2"
  check "$name: then the repository is fsck-clean" ostree fsck --repo="$repo"
  rm -rf "$repo"
}
variant fifo-sb delta
rm "$T/fifo-sb/superblock" && mkfifo "$T/fifo-sb/superblock"
blocked fifo-superblock "$T/fifo-sb" "$T/delta"
variant fifo-part delta
last=$(last_part "$T/delta")
rm "$T/fifo-part/$last" && mkfifo "$T/fifo-part/$last"
blocked fifo-native-part "$T/fifo-part" "$T/delta"
variant fifo-stock stock
rm "$T/fifo-stock/0" && mkfifo "$T/fifo-stock/0"
blocked fifo-stock-part "$T/fifo-stock" "$T/stock"
# A symlink to the genuine part itself: only the link is wrong.
variant link-part delta
mv "$T/link-part/$last" "$T/linked-part"
ln -s "$T/linked-part" "$T/link-part/$last"
blocked symlink-native-part "$T/link-part" "$T/delta"

# --- 5. Work per opcode byte: stock 'r', native source windows --------------
diag "attack 5, $SECONDS s into the test"
# In an archive repository (sources must be inflated to be read): the
# genuine stock delta's part rewritten uncompressed (the control), then with
# 1000 and 4000 'r' opcodes naming old.img inserted before an existing 'r'
# (so nothing changes). Each must complete within 3 x the control + 5 s.
archive_apply () { # archive_apply NAME DELTA LIMIT: into a fresh copy of the archive base
  local repo=$T/repo-$1
  rm -rf "$repo"
  cp -a "$abase" "$repo"
  measure "$3" "$DF" apply --repo="$repo" --commit="$c2" --ref=os "$2"
}
archive_apply stock-genuine "$T/stock" 120
diag "5: the genuine stock delta into an archive repository: exit $rc, $ms ms"
check "the genuine stock delta applies into an archive repository" test "$rc" = 0
rm -rf "$T/repo-stock-genuine"
variant ropen-0 stock
forge stock-ropen "$T/ropen-0" 0 "$old_img"
archive_apply ropen-0 "$T/ropen-0" 120
clean=$ms
verdict ropen-control 0 120
check "ropen-control: v2 fsck-clean and identical" checkout_matches "$T/repo-ropen-0" "$c2" "$T/v2"
rm -rf "$T/repo-ropen-0"
bound=$((3 * clean / 1000 + 5))
for n in 1000 4000; do
  variant ropen-$n stock
  forge stock-ropen "$T/ropen-$n" $n "$old_img"
  archive_apply ropen-$n "$T/ropen-$n" $((bound + grace))
  verdict "ropen-$n" 0 "$bound"
  check "ropen-$n: v2 fsck-clean and identical" checkout_matches "$T/repo-ropen-$n" "$c2" "$T/v2"
  rm -rf "$T/repo-ropen-$n"
done
# 1000 one-byte diff entries, each declaring a 32 MiB window of old.img.
variant window delta
forge window "$T/window" "$old_img" $((32 * MiB)) 1
check "window: the 1000 one-byte files became diff entries" grep -q "diff-entries 1000" "$T/forge.out"
refused window-32M 3 5 "$DEFAULT_BUDGET_KIB" "$abase" "$T/window" "$T/delta" --commit="$c2"

# --- 6. Chunk spam ------------------------------------------------------------
diag "attack 6, $SECONDS s into the test"
# spam.bin as 100,000 one-byte chunks; the part of the last one fails its
# SHA-256. One worker, as on a single-core device.
variant spam delta
forge chunk-spam "$T/spam" "$spam" 100000
flip () { printf '\x01' | dd of="$1" bs=1 seek=$(($(stat -c %s "$1") / 2)) conv=notrunc status=none; }
flip "$T/spam/$(last_part "$T/spam")"
refused chunk-spam 3 5 "$DEFAULT_BUDGET_KIB" "$base" "$T/spam" "$T/delta" --commit="$c2" --jobs=1

# --- 7. Declared size ------------------------------------------------------------
diag "attack 7, $SECONDS s into the test"
# mib.bin declared as 2 GiB, tiled by 16 MiB raw chunks of its content and
# then zeros. On the normal disk the assembled object does not hash (exit
# 4); with the last chunk's part failing its SHA-256 instead, the object is
# never assembled (exit 4 too). Either way nothing unverified stays behind.
# Under the sanitizers 512 MiB (still 8 budgets, twice the small tmpfs
# below): the same paths, a quarter of the bytes through instrumented code.
declared=$((2 * GiB))
[ -n "${DF_SANITIZED:-}" ] && declared=$((512 * MiB))
variant declared delta
forge declare-size "$T/declared" "$mib" "$declared" $((16 * MiB))
free=$(df -B1 --output=avail "$T" | tail -1)
if [ "$free" -gt $((6 * GiB)) ]; then
  refused declared-size 4 120 "$DEFAULT_BUDGET_KIB" "$base" "$T/declared" "$T/delta" --commit="$c2"
  variant declared-corrupt declared
  flip "$T/declared-corrupt/$(last_part "$T/declared")"
  refused declared-size-corrupt-part 4 120 "$DEFAULT_BUDGET_KIB" "$base" "$T/declared-corrupt" "$T/delta" --commit="$c2"
  rm -rf "$T/declared-corrupt"
else
  diag "7: skipped on the normal disk: $free bytes free, 6 GiB wanted"
fi
# The device repository on a 256 MiB tmpfs: refused up front (exit 7),
# nothing written, and the genuine delta still fits afterwards.
small=$T/small
mkdir -p "$small"
if mount -t tmpfs -o size=256M tmpfs "$small" 2>/dev/null; then
  cleanup_hooks+=("umount '$small'")
  repo=$small/repo
  cp -a "$base" "$repo"
  before=$(objects_list "$repo")
  used=$(df -B1 --output=used "$small" | tail -1)
  measure $((10 + grace)) "$DF" apply --repo="$repo" --commit="$c2" --ref=os "$T/declared"
  verdict declared-size-small-fs 7 10 "$DEFAULT_BUDGET_KIB"
  now=$(df -B1 --output=used "$small" | tail -1)
  diag "declared-size-small-fs: the tmpfs went from $used to $now bytes used"
  check "declared-size-small-fs: nothing written (within 1 MiB)" test $((now - used)) -le $MiB
  check "declared-size-small-fs: objects/ unchanged" test "$before" = "$(objects_list "$repo")"
  check "declared-size-small-fs: ref unchanged" test "$(rev "$repo" os)" = "$c1"
  check "declared-size-small-fs: repository still fsck-clean" ostree fsck --repo="$repo"
  tmp_left declared-size-small-fs "$repo"
  genuine_next declared-size-small-fs "$repo" "$T/delta"
else
  diag "7: skipped the small filesystem: cannot mount a tmpfs (not root?)"
fi
rm -rf "$T/declared"

# --- 8. Signature flooding ---------------------------------------------------
diag "attack 8, $SECONDS s into the test"
openssl genpkey -algorithm ed25519 -out "$T/k.pem" 2>/dev/null
openssl pkey -in "$T/k.pem" -outform DER | tail -c 32 >"$T/k.seed"
openssl pkey -in "$T/k.pem" -pubout -outform DER | tail -c 32 >"$T/k.raw"
base64 -w0 "$T/k.raw" >"$T/k.pub"
cat "$T/k.seed" "$T/k.raw" | base64 -w0 >"$T/k.secret"
# 400 crafted signatures over 8 MiB that are no superblock.
mkdir -p "$T/sigflood"
forge sig-flood "$T/sigflood/superblock" 400 $((8 * MiB)) 6
refused sig-flood-400 3 2 "$DEFAULT_BUDGET_KIB" "$base" "$T/sigflood" "$T/delta" --keys="$T/k.pub"
for n in 8 9; do
  variant sig-$n delta
  forge sig-nth "$T/sig-$n" "$T/k.secret" $n
done
repo=$T/repo-sig-8
cp -a "$base" "$repo"
expect_exit 0 "8 signatures, the 8th valid: applies" timeout -k 5 120 "$DF" apply --repo="$repo" --commit="$c2" \
  --ref=os --keys="$T/k.pub" --require-signatures "$T/sig-8"
check "8 signatures: v2 fsck-clean and identical" checkout_matches "$repo" "$c2" "$T/v2"
rm -rf "$repo"
refused sig-9 3 5 "$DEFAULT_BUDGET_KIB" "$base" "$T/sig-9" "$T/delta" --commit="$c2" --keys="$T/k.pub"

diag "done, $SECONDS s into the test, $((attack_ms / 1000)) s of them in the attacks' own runs"
finish
