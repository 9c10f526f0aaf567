#!/bin/bash
# Rebuilt objects (format 3) end to end: synthetic OS trees whose initrd
# (and, for bzimage-xz, kernel) is compressed in various ways
# (tests/transform-tree.py), committed into archive repos; for each kind a
# from-scratch delta to v1 and a v1 -> v2 delta are generated and applied
# into a bare-user repo (the first kind also into an archive repo): fsck
# clean, checkout identical to the tree, and the rebuild the CLI reports
# (rebuilt, rebuild parts not used, nothing to rebuild). Then the sizes
# against a --variants=plain delta, the fallbacks (a rebuild whose hash
# fails, a library identity that differs, a budget too small or large
# enough), --variants=transformed (no plain parts: a failed rebuild is
# corrupt, a device that cannot rebuild refuses before reading a part)
# and fetch over nginx (the plain alternative parts are not downloaded,
# unless a rebuild fails: then the same run downloads them).
. "$(dirname "$0")/lib.sh"

TT=$DF_SRCDIR/tests/transform-tree.py

# kind, then what is expected of it: compressed objects found, rebuilt by
# the generator, the apply's outcome at the default budget (rebuilt,
# unused: the plain alternative is used, none: no rebuild part), and a
# pattern of the generator's note.
KINDS=(zlib-gzip-6 gnu-gzip-6n gnu-gzip-9 no-early-zlib-gzip-9 zstd-3 zstd-9-mt xz-6 bzimage-xz garbled plain)
declare -A FOUND=([zlib-gzip-6]=1 [gnu-gzip-6n]=1 [gnu-gzip-9]=1 [no-early-zlib-gzip-9]=1 [zstd-3]=1
  [zstd-9-mt]=1 [xz-6]=1 [bzimage-xz]=2 [garbled]=0 [plain]=0)
declare -A REBUILT=([zlib-gzip-6]=1 [gnu-gzip-6n]=1 [gnu-gzip-9]=1 [no-early-zlib-gzip-9]=1 [zstd-3]=1
  [zstd-9-mt]=1 [xz-6]=1 [bzimage-xz]=1 [garbled]=0 [plain]=0)
declare -A OUTCOME=([zlib-gzip-6]=rebuilt [gnu-gzip-6n]=rebuilt [gnu-gzip-9]=rebuilt [no-early-zlib-gzip-9]=rebuilt
  [zstd-3]=rebuilt [zstd-9-mt]=rebuilt [xz-6]=rebuilt [bzimage-xz]=rebuilt [garbled]=none [plain]=none)
declare -A NOTE=([zlib-gzip-6]='rebuilt: gzip frame by recipe' [gnu-gzip-6n]='rebuilt: gzip frame by deflate reconstruction'
  [gnu-gzip-9]='rebuilt: gzip frame by deflate reconstruction' [no-early-zlib-gzip-9]='rebuilt: gzip frame by recipe'
  [zstd-3]='rebuilt: zstd frame by recipe' [zstd-9-mt]='rebuilt: zstd frame by recipe' [xz-6]='rebuilt: xz frame by recipe'
  [bzimage-xz]='plain: 1 compressed frame(s): xz frame: .*more than 128 MiB to run, kept plain' [garbled]='' [plain]='')
# Kinds that also get a --variants=transformed delta.
TRANSFORMED=" zlib-gzip-6 xz-6 "
# Kinds whose from-scratch delta carries rebuilds too (the others' is
# --variants=plain: the recipe searches of xz and zstd -9 cost seconds).
SCRATCH_REBUILT=" zlib-gzip-6 gnu-gzip-6n "

json () { # json FILE EXPR: EXPR over the JSON document d of FILE
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2" 2>/dev/null
}
done_event () { grep '^{"event":"done"' "$1" | tail -n 1 >"$1.done"; }
field () { json "$1.done" "d['$2']"; }

commit_pair () { # commit_pair REPO DIR: archive REPO with DIR/v1 and DIR/v2 on ref os
  ostree init --repo="$1" --mode=archive &&
    ostree commit --repo="$1" -b os --tree=dir="$2/v1" -s v1 --timestamp="2024-01-01T00:00:00Z" >/dev/null &&
    ostree commit --repo="$1" -b os --tree=dir="$2/v2" -s v2 --timestamp="2024-02-01T00:00:00Z" >/dev/null
}

# prep KIND: trees $T/KIND/v1 and v2, the archive repo $T/www/KIND with the
# from-scratch and the v1 -> v2 delta inside it, and the --variants=plain
# (and for some kinds --variants=transformed) delta in $T/KIND/. Records
# each step's exit code in $T/KIND/STEP.rc and its output in STEP.out.
prep () {
  local k=$1 d=$T/$1 src=$T/www/$1 step
  mkdir -p "$d"
  run () {
    local TIMEFORMAT="%U %S %R"
    step=$1; shift
    { time { "$@" >"$d/$step.out" 2>&1; echo $? >"$d/$step.rc"; }; } 2>"$d/$step.time"
  }
  run tree1 "$TT" "$d/v1" 1 "$k"
  run tree2 "$TT" "$d/v2" 2 "$k"
  run commit commit_pair "$src" "$d"
  local variants=plain
  case $SCRATCH_REBUILT in *" $k "*) variants=both ;; esac
  run gen-scratch "$DF" generate --repo="$src" --empty --to=os^ --level=3 --variants=$variants
  run gen "$DF" generate --repo="$src" --from=os^ --to=os
  [ "${REBUILT[$k]}" = 0 ] ||
    run gen-plain "$DF" generate --repo="$src" --from=os^ --to=os --variants=plain --out="$d/plain"
  case $TRANSFORMED in *" $k "*)
    run gen-transformed "$DF" generate --repo="$src" --from=os^ --to=os --variants=transformed --out="$d/transformed" ;;
  esac
}

# Everything is made two kinds at a time (the tree generator and ostree
# commit run on one core).
start_s=$SECONDS
mkdir -p "$T/www"
for k in "${KINDS[@]}"; do
  prep "$k" &
  [ "$(jobs -rp | wc -l)" -lt 2 ] || wait -n
done
wait
diag "trees, commits and deltas of ${#KINDS[@]} kinds made in $((SECONDS - start_s)) s; the slowest steps (user, sys, real s):"
for f in "$T"/*/*.time; do s=${f#"$T"/}; echo "${s%.time} $(cat "$f")"; done | sort -k4 -g -r | head -6 | sed 's/^/#   /'

for k in "${KINDS[@]}"; do
  d=$T/$k src=$T/www/$k
  failed=
  for step in tree1 tree2 commit gen-scratch gen gen-plain gen-transformed; do
    [ -e "$d/$step.rc" ] || continue
    if [ "$(cat "$d/$step.rc")" = 0 ]; then continue; fi
    not_ok "$k: $step exited $(cat "$d/$step.rc")"; sed 's/^/# /' "$d/$step.out" | head -20; failed=1
  done
  [ -z "$failed" ] || continue
  ok "$k: trees, commits and deltas made"
  c1=$(rev "$src" os^) c2=$(rev "$src" os)
  scratch=$src/deltafetch/v1/deltas/$c1
  delta=$src/deltafetch/v1/deltas/$c1-$c2
  echo "$c1 $c2" >"$d/commits"

  # What the generator says and what the delta holds.
  found=${FOUND[$k]} rebuilt=${REBUILT[$k]}
  if [ "$found" -gt 0 ]; then
    check "$k: generate reports $found found, $rebuilt rebuilt" \
      grep -q "^Compressed: *$found objects found, $rebuilt rebuilt, $((found - rebuilt)) plain" "$d/gen.out"
  else
    check "$k: generate reports nothing rebuilt" bash -c "! grep -q '^Compressed:.*[1-9][0-9]* rebuilt' '$d/gen.out'"
  fi
  [ -z "${NOTE[$k]}" ] || check "$k: the note says '${NOTE[$k]}'" grep -q -- "${NOTE[$k]}" "$d/gen.out"
  "$DF" show --json "$delta" >"$d/show.json"
  v=$(json "$d/show.json" "d['version']")
  kinds=$(json "$d/show.json" "' '.join(sorted(set(p['kind'] for p in d['parts'])))")
  cf=$(json "$d/show.json" "d['counts'].get('compressed-found', 0)")
  cr=$(json "$d/show.json" "d['counts'].get('content-rebuilt', 0)")
  if [ "$rebuilt" -gt 0 ]; then
    check "$k: version 3 (got $v)" test "$v" = 3
    check "$k: compressed-found $cf, content-rebuilt $cr" test "$cf/$cr" = "$found/$rebuilt"
    check "$k: rebuild and alternative parts ($kinds)" test "$kinds" = "alternative normal rebuild"
    rb=$(json "$d/show.json" "d['counts']['rebuild-bytes']")
    alt=$(json "$d/show.json" "d['counts']['alternative-bytes']")
    total=$(json "$d/show.json" "d['compressed-size']")
    "$DF" show --json "$d/plain" >"$d/show-plain.json"
    plain_total=$(json "$d/show-plain.json" "d['compressed-size']")
    device=$((total - alt))
    diag "$k: rebuild $rb B, alternative $alt B; device downloads $device B, plain delta $plain_total B"
    check "$k: rebuild-bytes $rb < 1/5 of alternative-bytes $alt" test $((rb * 5)) -lt "$alt"
    # The device saves the initrd's plain cost minus what its rebuild costs
    # (5 % slack: the plain delta may pack the initrd with other objects).
    check "$k: device bytes $device <= plain delta $plain_total - 0.95 x ($alt - $rb)" \
      test $((device * 100)) -le $((plain_total * 100 - (alt - rb) * 95))
  else
    check "$k: version 2 (got $v)" test "$v" = 2
    check "$k: content-rebuilt $cr" test "$cr" = 0
    check "$k: no rebuild or alternative parts ($kinds)" test "$kinds" = normal
  fi
  if [ "$rebuilt" -gt 0 ]; then
    check "$k: --variants=plain is version 2" test "$(json "$d/show-plain.json" "d['version']")" = 2
    check "$k: --variants=plain has only normal parts" \
      test "$(json "$d/show-plain.json" "' '.join(sorted(set(p['kind'] for p in d['parts'])))")" = normal
  fi

  # Apply the from-scratch delta, then the v1 -> v2 one.
  modes=bare-user
  [ "$k" != "${KINDS[0]}" ] || modes="bare-user archive"
  for mode in $modes; do
    dev=$d/dev-$mode
    ostree init --repo="$dev" --mode="$mode"
    expect_exit 0 "$k→$mode: apply from scratch" "$DF" apply --rebuild=always --repo="$dev" --commit="$c1" --ref=os "$scratch"
    check "$k→$mode: ref on v1" test "$(rev "$dev" os)" = "$c1"
    case $SCRATCH_REBUILT in *" $k "*)
      check "$k→$mode: from scratch, '1 compressed objects rebuilt'" \
        grep -q "^1 compressed objects rebuilt from their content" "$T/ee.out" ;;
    esac
    [ "$mode" != bare-user ] || cp -a "$dev" "$d/dev-v1"
    # --rebuild=always: the directory carries the plain parts too, which
    # the default would use.
    expect_exit 0 "$k→$mode: apply v1→v2" "$DF" apply --rebuild=always --repo="$dev" --commit="$c2" --ref=os "$delta"
    cp "$T/ee.out" "$d/apply-$mode.out"
    check "$k→$mode: ref on v2" test "$(rev "$dev" os)" = "$c2"
    check "$k→$mode: fsck clean, checkout identical to v2" checkout_matches "$dev" "$c2" "$d/v2"
    out=$d/apply-$mode.out
    case ${OUTCOME[$k]} in
      rebuilt)
        check "$k→$mode: '$rebuilt compressed objects rebuilt'" grep -q "^$rebuilt compressed objects rebuilt from their content" "$out"
        check "$k→$mode: no rebuild unused or failed" bash -c "! grep -Eq 'not used|rebuilds failed' '$out'" ;;
      unused)
        check "$k→$mode: '1 rebuild parts not used'" grep -q "^1 rebuild parts not used (.*): their objects came from the plain parts" "$out"
        check "$k→$mode: nothing rebuilt" bash -c "! grep -q 'rebuilt from their content' '$out'" ;;
      none)
        check "$k→$mode: nothing about rebuilding" bash -c "! grep -Eq 'rebuil|not used' '$out'" ;;
    esac
    [ "$k" != xz-6 ] || check "$k→$mode: the budget was raised" grep -q "^memory budget raised to 12[0-8] MiB" "$out"
    [ "$k" != zstd-9-mt ] || check "$k→$mode: the budget was raised" grep -Eq "^memory budget raised to 1[0-2][0-9] MiB" "$out"
  done
done

# apply_v2 NAME KIND DELTA [apply args...]: applies DELTA into a copy of
# KIND's device repo at v1 (rebuilding where it can, unless the args say
# otherwise); sets out (its output file) and dev.
apply_v2 () {
  local name=$1 k=$2 delta=$3; shift 3
  read -r c1 c2 <"$T/$k/commits"
  dev=$T/repo-$name
  rm -rf "$dev"; cp -a "$T/$k/dev-v1" "$dev"
  expect_exit 0 "$name: apply" "$DF" apply --rebuild=always --repo="$dev" --commit="$c2" --ref=os "$@" "$delta"
  out=$T/$name.out
  cp "$T/ee.out" "$out"
  check "$name: fsck clean, checkout identical to v2" checkout_matches "$dev" "$c2" "$T/$k/v2"
}
delta_of () { read -r c1 c2 <"$T/$1/commits"; echo "$T/www/$1/deltafetch/v1/deltas/$c1-$c2"; }

# Fallbacks: the result is the same commit either way.
DF_TEST_REBUILD_CORRUPT=1 apply_v2 corrupt-zlib-gzip-6 zlib-gzip-6 "$(delta_of zlib-gzip-6)"
check "corrupt-zlib-gzip-6: '1 rebuilds failed'" grep -q "^1 rebuilds failed and their objects came from the plain parts (.*: .*)" "$out"
check "corrupt-zlib-gzip-6: nothing counted as rebuilt" bash -c "! grep -q 'rebuilt from their content' '$out'"
DF_TEST_REBUILD_CORRUPT=1 apply_v2 corrupt-gnu-gzip-6n gnu-gzip-6n "$(delta_of gnu-gzip-6n)"
check "corrupt-gnu-gzip-6n: '1 rebuilds failed'" grep -q "^1 rebuilds failed and their objects came from the plain parts" "$out"
DF_TEST_REBUILD_LIBRARY=mismatch apply_v2 mismatch-xz-6 xz-6 "$(delta_of xz-6)"
check "mismatch-xz-6: '1 rebuild parts not used'" grep -q "^1 rebuild parts not used (.*library.*differs.*): their objects came from the plain parts" "$out"
check "mismatch-xz-6: nothing rebuilt" bash -c "! grep -q 'rebuilt from their content' '$out'"
check "mismatch-xz-6: budget not raised" bash -c "! grep -q 'budget raised' '$out'"
apply_v2 memory64-xz-6 xz-6 "$(delta_of xz-6)" --memory=64M
check "memory64-xz-6: '1 rebuild parts not used'" grep -q "^1 rebuild parts not used (.*memory.*): their objects came from the plain parts" "$out"
check "memory64-xz-6: budget kept" bash -c "! grep -q 'budget raised' '$out'"
apply_v2 memory256-zstd-9-mt zstd-9-mt "$(delta_of zstd-9-mt)" --memory=256M
check "memory256-zstd-9-mt: '1 compressed objects rebuilt'" grep -q "^1 compressed objects rebuilt from their content" "$out"
check "memory256-zstd-9-mt: no rebuild unused" bash -c "! grep -q 'not used' '$out'"
check "memory256-zstd-9-mt: rebuilt beside the workers" bash -c "! grep -q '(alone:' '$out'"
# Parts as large as the Debian pair's (a worker needs 40 MiB for them): zstd
# -9 -T0 (95 MiB) fits the raised default only alone, and runs so.
DF_TEST_APPLY_PART_MEMORY=$((40 << 20)) apply_v2 alone-zstd-9-mt zstd-9-mt "$(delta_of zstd-9-mt)"
check "alone-zstd-9-mt: rebuilt alone" \
  grep -q "^1 compressed objects rebuilt from their content (alone: no part applied beside them" "$out"
check "alone-zstd-9-mt: the budget was raised" grep -Eq "^memory budget raised to 1[0-2][0-9] MiB" "$out"
DF_TEST_APPLY_PART_MEMORY=$((40 << 20)) apply_v2 alone256-zstd-9-mt zstd-9-mt "$(delta_of zstd-9-mt)" --memory=256M
check "alone256-zstd-9-mt: rebuilt beside the workers" bash -c "! grep -q '(alone:' '$out'"
check "alone256-zstd-9-mt: '1 compressed objects rebuilt'" grep -q "^1 compressed objects rebuilt from their content" "$out"
apply_v2 memory96-zstd-9-mt zstd-9-mt "$(delta_of zstd-9-mt)" --memory=96M
check "memory96-zstd-9-mt: '1 rebuild parts not used'" grep -q "^1 rebuild parts not used (.*memory.*): their objects came from the plain parts" "$out"
check "memory96-zstd-9-mt: budget kept" bash -c "! grep -q 'budget raised' '$out'"

# The default, --rebuild=auto: a delta directory that carries the plain
# parts is applied from them (the rebuild would save no bytes); one that
# lacks any of them rebuilds; --rebuild=never takes the plain parts, and
# refuses a delta that has none.
k=zlib-gzip-6
apply_v2 auto-$k $k "$(delta_of $k)" --rebuild=auto
check "auto-$k: '1 rebuild parts not used (the delta directory carries ...)'" \
  grep -q "^1 rebuild parts not used (the delta directory carries their plain encoding): their objects came" "$out"
check "auto-$k: '1 of the other variant not needed'" grep -q " already present, 1 of the other variant not needed," "$out"
check "auto-$k: nothing rebuilt, budget kept" bash -c "! grep -Eq 'rebuilt from their content|budget raised' '$out'"
apply_v2 always-$k $k "$(delta_of $k)"
na=$(json "$T/$k/show.json" "sum(1 for p in d['parts'] if p['kind'] == 'alternative')")
check "always-$k: '$na of the other variant not needed'" grep -q " already present, $na of the other variant not needed," "$out"
cp -a "$(delta_of $k)" "$T/auto-partial"
rm "$T/auto-partial/$(json "$T/$k/show.json" "[i for i, p in enumerate(d['parts']) if p['kind'] == 'alternative'][0]")"
apply_v2 auto-partial-$k $k "$T/auto-partial" --rebuild=auto
check "auto-partial-$k: a plain part missing: rebuilt" grep -q "^1 compressed objects rebuilt from their content" "$out"
apply_v2 never-$k $k "$(delta_of $k)" --rebuild=never
check "never-$k: '1 rebuild parts not used (rebuilding is turned off)'" \
  grep -q "^1 rebuild parts not used (rebuilding is turned off): their objects came" "$out"
read -r c1 c2 <"$T/$k/commits"
cp -a "$T/$k/dev-v1" "$T/repo-never-transformed"
expect_exit 2 "never, --variants=transformed: refused" \
  "$DF" apply --rebuild=never --repo="$T/repo-never-transformed" --commit="$c2" --ref=os "$T/$k/transformed"
check "never, --variants=transformed: one line naming the object" \
  grep -q "^deltafetch: cannot rebuild object [0-9a-f]\{64\} (rebuilding is turned off) and the delta carries no plain encoding of it$" "$T/ee.err"
check "never, --variants=transformed: ref unchanged, nothing staged" \
  bash -c "test '$(rev "$T/$k/dev-v1" os)' = \"\$(ostree rev-parse --repo='$T/repo-never-transformed' os)\" && ! ls '$T/repo-never-transformed/tmp' | grep -q deltafetch"
expect_exit 2 "--rebuild=sometimes: usage error" "$DF" apply --rebuild=sometimes --repo="$T/repo-never-transformed" "$T/$k/transformed"

# --variants=transformed: no plain alternative.
for k in zlib-gzip-6 xz-6; do
  [ -d "$T/$k/transformed" ] || { not_ok "$k: no --variants=transformed delta"; continue; }
  "$DF" show --json "$T/$k/transformed" >"$T/$k/show-t.json"
  check "$k transformed: version 3, no alternative parts" \
    test "$(json "$T/$k/show-t.json" "(d['version'], sorted(set(p['kind'] for p in d['parts'])), d['counts']['alternative-bytes'])")" \
    = "(3, ['normal', 'rebuild'], 0)"
done
apply_v2 transformed-zlib-gzip-6 zlib-gzip-6 "$T/zlib-gzip-6/transformed"
check "transformed-zlib-gzip-6: rebuilt" grep -q "^1 compressed objects rebuilt from their content" "$out"
read -r c1 c2 <"$T/zlib-gzip-6/commits"
repo=$T/repo-transformed-corrupt
cp -a "$T/zlib-gzip-6/dev-v1" "$repo"
DF_TEST_REBUILD_CORRUPT=1 expect_exit 4 "transformed, rebuild corrupt: apply fails as corrupt" \
  "$DF" apply --repo="$repo" --commit="$c2" --ref=os "$T/zlib-gzip-6/transformed"
check "transformed, rebuild corrupt: ref unchanged" test "$(rev "$repo" os)" = "$c1"
check "transformed, rebuild corrupt: fsck clean" ostree fsck --repo="$repo"
# A device whose library differs refuses before reading a part: the same
# answer with only the superblock there.
read -r c1 c2 <"$T/xz-6/commits"
base=$T/xz-6/dev-v1
mkdir -p "$T/sb-only"
cp "$T/xz-6/transformed/superblock" "$T/sb-only/"
export DF_TEST_REBUILD_LIBRARY=mismatch
try_refused "transformed-xz-6-mismatch" 6 "$T/xz-6/transformed" --commit="$c2"
try_refused "transformed-xz-6-mismatch-superblock-only" 6 "$T/sb-only" --commit="$c2"
unset DF_TEST_REBUILD_LIBRARY
check "transformed-xz-6-mismatch: no apply state left" \
  bash -c "! ls '$T/repo-transformed-xz-6-mismatch/tmp' | grep -q deltafetch"

# Patches in the decompressed domain: a gzip -9n changelog (as Debian's
# dh_compress makes it) whose new version adds entries at its top is
# carried as a patch against the old version's decompressed content.
cl=$T/changelog
mkdir -p "$cl"
python3 - "$cl" <<'PY'
import os, random, subprocess, sys
out = sys.argv[1]
r = random.Random(15)
words = ["".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(2, 9))) for _ in range(3000)]
def entry(v):
    e = random.Random(v)
    body = "".join("  * " + " ".join(e.choice(words) for _ in range(e.randint(6, 14))) + "\n"
                   for _ in range(e.randint(20, 60)))
    return "pkg (1.%d-1) bookworm; urgency=medium\n\n%s\n -- M <m@example.org>  Mon, 01 Jan 2024 00:00:00 +0000\n\n" % (v, body)
for tree, last in (("v1", 300), ("v2", 303)):
    d = os.path.join(out, tree, "usr/share/doc/pkg")
    os.makedirs(d)
    with open(os.path.join(d, "changelog"), "w") as f:
        f.write("".join(entry(v) for v in range(last, 0, -1)))
    subprocess.check_call(["gzip", "-9n", os.path.join(d, "changelog")])
    with open(os.path.join(out, tree, "version"), "w") as f:
        f.write(tree + "\n")
PY
commit_pair "$cl/repo" "$cl" >/dev/null
c1=$(rev "$cl/repo" os^) c2=$(rev "$cl/repo" os)
expect_exit 0 "changelog: generate" "$DF" generate --repo="$cl/repo" --from=os^ --to=os --out="$cl/delta"
check "changelog: rebuilt by a patch against the old version's content" \
  grep -q "rebuilt: gzip frame by .*bytes of content as a [0-9]*-byte patch against the old version's" "$T/ee.out"
"$DF" show --json "$cl/delta" >"$cl/show.json"
rb=$(json "$cl/show.json" "d['counts']['rebuild-bytes']")
alt=$(json "$cl/show.json" "d['counts']['alternative-bytes']")
diag "changelog: rebuild part $rb B, its plain alternative $alt B"
check "changelog: rebuild part $rb B < 1/20 of the plain $alt B" test $((rb * 20)) -lt "$alt"
ostree init --repo="$cl/dev" --mode=bare-user
ostree pull-local --repo="$cl/dev" "$cl/repo" "$c1" >/dev/null
cp -a "$cl/dev" "$cl/dev-v1"
expect_exit 0 "changelog: apply" "$DF" apply --rebuild=always --repo="$cl/dev" --commit="$c2" --ref=os "$cl/delta"
check "changelog: '1 compressed objects rebuilt'" grep -q "^1 compressed objects rebuilt from their content" "$T/ee.out"
check "changelog: fsck clean, checkout identical to v2" checkout_matches "$cl/dev" "$c2" "$cl/v2"
# A rebuilt changelog that does not hash: the plain parts give the same
# commit.
rm -rf "$cl/dev"; cp -a "$cl/dev-v1" "$cl/dev"
DF_TEST_REBUILD_CORRUPT=1 expect_exit 0 "changelog, rebuild corrupt: apply" \
  "$DF" apply --rebuild=always --repo="$cl/dev" --commit="$c2" --ref=os "$cl/delta"
check "changelog, rebuild corrupt: '1 rebuilds failed'" \
  grep -q "^1 rebuilds failed and their objects came from the plain parts" "$T/ee.out"
check "changelog, rebuild corrupt: fsck clean, checkout identical to v2" checkout_matches "$cl/dev" "$c2" "$cl/v2"

# fetch over nginx: the alternative parts are not downloaded.
if start_nginx "$T/www"; then
  log=$NGINX_LOG
  # fetch_v2 NAME KIND [env...]: fetch v2 into a copy of KIND's device at v1.
  fetch_v2 () {
    local name=$1 k=$2; shift 2
    read -r c1 c2 <"$T/$k/commits"
    dev=$T/fetch-$name
    cp -a "$T/$k/dev-v1" "$dev"
    mark=$(($(wc -l <"$log") + 1))
    out=$T/fetch-$name.json
    env "$@" "$DF" fetch --repo="$dev" --url="http://127.0.0.1:$NGINX_PORT/$k" --commit="$c2" --ref=os --json ${FETCH_ARGS:-} >"$out" 2>"$out.err"
    rc=$?
    check "fetch $name: exit $rc" test "$rc" = 0
    [ "$rc" = 0 ] || sed 's/^/# /' "$out.err"
    done_event "$out"
    check "fetch $name: fsck clean, checkout identical to v2" checkout_matches "$dev" "$c2" "$T/$k/v2"
    check "fetch $name: ref on v2" test "$(rev "$dev" os)" = "$c2"
  }
  # part_index KIND KIND_OF_PART: the part numbers of that kind in the delta
  part_index () { json "$T/$1/show.json" "' '.join(str(i) for i, p in enumerate(d['parts']) if p['kind'] == '$2')"; }
  requested () { tail -n +"$mark" "$log" | grep -q "deltas/$c1-$c2/$1 "; }

  k=zlib-gzip-6
  total=$(json "$T/$k/show.json" "d['compressed-size']")
  alt=$(json "$T/$k/show.json" "d['counts']['alternative-bytes']")
  sb=$(json "$T/$k/show.json" "d['superblock-size']")
  fetch_v2 "$k" "$k"
  bytes=$(field "$out" bytes_downloaded); bytes=${bytes:-0}
  diag "fetch $k: $bytes bytes downloaded; delta $total B, of which alternative $alt B, superblock $sb B"
  check "fetch $k: objects_rebuilt 1, no fallback, no part unused" \
    test "$(field "$out" objects_rebuilt)/$(field "$out" rebuild_fallbacks)/$(field "$out" rebuild_parts_unused)" = 1/0/0
  check "fetch $k: bytes_downloaded $bytes < delta - alternative + superblock + 16 KiB" \
    test "$bytes" -lt $((total - alt + sb + 16384))
  ai=$(part_index "$k" alternative)
  check "fetch $k: alternative part $ai not requested" bash -c "! tail -n +$mark '$log' | grep -q 'deltas/$c1-$c2/$ai '"

  # A rebuild that fails during a fetch that skipped the plain parts: once
  # every part downloaded is applied, the same run downloads the plain
  # encoding, says so in a rebuild-fallback event, and lands the same
  # commit.
  fetch_v2 "corrupt-$k" "$k" DF_TEST_REBUILD_CORRUPT=1
  bytes=$(field "$out" bytes_downloaded); bytes=${bytes:-0}
  check "fetch corrupt-$k: rebuild_fallbacks 1, objects_rebuilt 0" \
    test "$(field "$out" rebuild_fallbacks)/$(field "$out" objects_rebuilt)" = 1/0
  reason=$(field "$out" rebuild_fallback_reason)
  check "fetch corrupt-$k: a fallback reason ($reason)" test -n "$reason" -a "$reason" != None
  check "fetch corrupt-$k: one rebuild-fallback event, with the reason" \
    test "$(grep -c '"event":"rebuild-fallback".*"message":"[0-9a-f]\{64\}: ' "$out")" = 1
  check "fetch corrupt-$k: the alternative part $ai was requested" requested "$ai"
  check "fetch corrupt-$k: bytes_downloaded $bytes > alternative $alt" test "$bytes" -gt "$alt"
  check "fetch corrupt-$k: no staging left" bash -c "! ls -d '$dev'/tmp/deltafetch-* 2>/dev/null | grep -q ."

  # Download order: the parts a rebuild reads, then the rebuild part, then
  # the rest, so that the rebuild runs while the rest downloads. One
  # connection: nginx logs the parts in the order they were asked for.
  ri=$(part_index "$k" rebuild)
  deps=$(json "$T/$k/show.json" "' '.join(str(x) for x in d['parts'][$ri].get('depends-on', []))")
  check "$k: show --json lists the rebuild part's dependencies ($deps)" test -n "$deps"
  FETCH_ARGS=--connections=1 fetch_v2 "order-$k" "$k"
  order=$(tail -n +"$mark" "$log" | grep -o "deltas/$c1-$c2/[0-9]* " | sed 's|.*/||' | awk '!seen[$1]++' | tr '\n' ' ')
  check "fetch order-$k: [$order] has $deps before $ri, then only other parts" python3 -c '
import sys
order, deps, r = sys.argv[1].split(), sys.argv[2].split(), sys.argv[3]
pos = order.index(r)
after = order[pos + 1:]
sys.exit(0 if all(order.index(d) < pos for d in deps) and after and not set(after) & set(deps) else 1)' "$order" "$deps" "$ri"

  k=xz-6
  fetch_v2 "mismatch-$k" "$k" DF_TEST_REBUILD_LIBRARY=mismatch
  check "fetch mismatch-$k: rebuild_parts_unused 1, objects_rebuilt 0" \
    test "$(field "$out" rebuild_parts_unused)/$(field "$out" objects_rebuilt)" = 1/0
  reason=$(field "$out" rebuild_unused_reason)
  check "fetch mismatch-$k: a reason ($reason)" test -n "$reason" -a "$reason" != None
  ri=$(part_index "$k" rebuild)
  check "fetch mismatch-$k: rebuild part $ri not requested" bash -c "! tail -n +$mark '$log' | grep -q 'deltas/$c1-$c2/$ri '"
  FETCH_ARGS=--rebuild=never fetch_v2 "never-$k" "$k"
  check "fetch never-$k: rebuild_parts_unused 1, objects_rebuilt 0, reason" \
    test "$(field "$out" rebuild_parts_unused)/$(field "$out" objects_rebuilt)/$(field "$out" rebuild_unused_reason)" = "1/0/rebuilding is turned off"
  check "fetch never-$k: rebuild part $ri not requested" bash -c "! tail -n +$mark '$log' | grep -q 'deltas/$c1-$c2/$ri '"
  check "fetch never-$k: the alternative parts requested" requested "$(part_index "$k" alternative | cut -d' ' -f1)"
else
  not_ok "nginx did not start"
fi
diag "run time $SECONDS s"
finish
