#!/bin/bash
# fetch --dry-run and pull --dry-run (df_fetch_plan()) against nginx: for
# each path (a native delta from the device's commit, a native from-scratch
# delta, a stock delta, libostree's pull, nothing to do) the plan names the
# path the fetch then takes, its bytes to download are within 1 % of what
# the fetch then downloads, and it writes nothing: every file of the
# repository (config, refs, objects, tmp/) is as it was. After an
# interrupted fetch the plan counts what is already there. A plan fails as
# the fetch would: over --max-bytes, from scratch under --no-from-scratch.
. "$(dirname "$0")/lib.sh"

publish_pair
"$DF" generate -q --repo="$src" --empty --to=os >/dev/null
stock=$T/www/stock
make_src_repo "$stock" archive
ostree static-delta generate --repo="$stock" --from=os^ --to=os >/dev/null
ostree summary -u --repo="$stock"
plain=$T/www/plain
make_src_repo "$plain" archive
ostree summary -u --repo="$plain"
start_nginx "$T/www" || { not_ok "nginx did not start"; finish; exit 1; }
base=http://127.0.0.1:$NGINX_PORT
log=$NGINX_LOG

# snapshot REPO: every file and directory with size, mode and mtime
snapshot () { (cd "$1" && find . -printf '%p %s %m %T@ %y\n' | sort); }
field () { python3 -c "import json,sys; e=json.loads(open(sys.argv[1]).read().splitlines()[-1]); v=e[sys.argv[2]]; print(str(v).lower() if isinstance(v,bool) else v)" "$@"; }
# within1 A B: A and B differ by at most 1 % of B
within1 () { python3 -c "import sys; a,b=int(sys.argv[1]),int(sys.argv[2]); sys.exit(0 if abs(a-b) <= b/100 else 1)" "$1" "$2"; }

# plan_then_fetch NAME REPO URL EXPECTED-PATH [fetch options...]
plan_then_fetch () {
  local name=$1 repo=$2 u=$3 want=$4; shift 4
  local before
  before=$(snapshot "$repo")
  expect_exit 0 "$name: --dry-run" "$DF" fetch --repo="$repo" --url="$u" --commit="$c2" --ref=os --dry-run --json "$@"
  cp "$T/ee.out" "$T/plan.json"
  cp "$T/ee.out" "$T/$name.plan"
  check "$name: the plan wrote nothing" test "$(snapshot "$repo")" = "$before"
  check "$name: the plan's path is $want" test "$(field "$T/plan.json" path)" = "$want"
  expect_exit 0 "$name: the fetch" "$DF" fetch --repo="$repo" --url="$u" --commit="$c2" --ref=os --json "$@"
  cp "$T/ee.out" "$T/done.json"
  check "$name: the fetch took the planned path and from-commit" \
    test "$(field "$T/done.json" path) $(field "$T/done.json" from)" = "$want $(field "$T/plan.json" from)"
  local planned got
  planned=$(field "$T/plan.json" download_bytes) got=$(field "$T/done.json" bytes_downloaded)
  diag "$name: planned $planned bytes, downloaded $got"
  check "$name: the size is known beforehand" test "$(field "$T/plan.json" size_known)" = true
  check "$name: planned bytes within 1 % of those downloaded ($planned, $got)" within1 "$planned" "$got"
  check "$name: v2 fsck-clean and identical" checkout_matches "$repo" "$c2" "$T/v2"
}

# libostree's pull of a commit without ostree.sizes: the plan walks the
# commit's trees (those the device lacks from the server, checked against
# their checksums) and asks the server the size of each object the device
# lacks; from scratch, and from v1 (whose trees the device has).
for kind in delta scratch stock-delta pull pull-from-v1; do
  dev=$T/dev-$kind
  ostree init --repo="$dev" --mode=bare
  case $kind in
    delta) ostree pull-local --repo="$dev" "$src" "$c1" >/dev/null && ostree refs --repo="$dev" --create=os "$c1" ;;
    stock-delta) ostree pull-local --repo="$dev" "$stock" "$c1" >/dev/null && ostree refs --repo="$dev" --create=os "$c1" ;;
    pull-from-v1) ostree pull-local --repo="$dev" "$plain" "$c1" >/dev/null && ostree refs --repo="$dev" --create=os "$c1" ;;
  esac
  case $kind in
    delta | scratch) u=$base/repo ;;
    stock-delta) u=$base/stock ;;
    pull*) u=$base/plain ;;
  esac
  start=$(($(wc -l <"$log") + 1))
  plan_then_fetch "$kind" "$dev" "$u" "${kind%-from-v1}"
  case $kind in
    pull*)
      served=$(tail -n +"$start" "$log" | awk '$9 == 200 && $6 == "\"GET" { n += $10 } END { print n + 0 }')
      heads=$(tail -n +"$start" "$log" | grep -c '"HEAD ' || true)
      diag "$kind: nginx served $served body bytes to GET requests; the plan asked $heads HEADs"
      check "$kind: the plan asked the sizes with HEAD requests" test "$heads" -gt 0
      ;;
  esac
done

# The walk's files from mirrors: a first mirror with the config and the
# commit but no other object (404) leaves them to the second, and the
# plan is the same.
mkdir -p "$T/www/thin/objects/${c2:0:2}"
cp "$plain/config" "$T/www/thin/"
cp "$plain/objects/${c2:0:2}/${c2:2}.commit" "$T/www/thin/objects/${c2:0:2}/"
ostree init --repo="$T/dev-thin" --mode=bare
expect_exit 0 "pull, two mirrors: --dry-run" "$DF" fetch --repo="$T/dev-thin" --url="$base/thin" --url="$base/plain" \
  --commit="$c2" --dry-run --json
check "pull, two mirrors: the same bytes as from one" \
  test "$(field "$T/ee.out" download_bytes) $(field "$T/ee.out" size_known)" = "$(field "$T/pull.plan" download_bytes) true"
expect_exit 0 "pull, text: --dry-run" "$DF" fetch --repo="$T/dev-thin" --url="$base/plain" --commit="$c2" --dry-run
check "... says the bytes libostree's pull would download" grep -q "^download: .* by libostree's pull, [0-9]* objects" "$T/ee.out"
# A dirtree that is not what its name says: the plan refuses the server.
cp -a "$plain" "$T/www/forged-tree"
root=$(ostree ls --repo="$plain" -C -d "$c2" / | awk '{ print $5 }')
other=$(find "$T/www/forged-tree/objects" -name '*.dirtree' ! -name "${root:2}.dirtree" | head -1)
cp --remove-destination "$other" "$T/www/forged-tree/objects/${root:0:2}/${root:2}.dirtree"
ostree init --repo="$T/dev-forged-tree" --mode=bare
expect_exit 5 "pull: a dirtree that does not hash to its name" "$DF" fetch --repo="$T/dev-forged-tree" \
  --url="$base/forged-tree" --commit="$c2" --dry-run
check "... said so" grep -q "does not hash to its name" "$T/ee.err"
# A dirtree larger than any a plan takes (4 MiB): refused as it arrives.
head -c 5000000 /dev/urandom >"$T/www/forged-tree/objects/${root:0:2}/${root:2}.dirtree"
expect_exit 9 "pull: a 5 MB dirtree: the mirror refused" "$DF" fetch --repo="$T/dev-forged-tree" \
  --url="$base/forged-tree" --commit="$c2" --dry-run
check "... for its size" grep -q "at most 4194304 are acceptable" "$T/ee.err"

# libostree's pull for a commit that carries its object sizes (ostree
# commit --generate-sizes): the plan reads them from the commit object
# (checked against the trusted checksum) and counts what the device lacks.
sized=$T/www/sized
ostree init --repo="$sized" --mode=archive
ostree commit --repo="$sized" -b os --tree=dir="$T/v1" --generate-sizes --timestamp="2024-01-01T00:00:00Z" >/dev/null
ostree commit --repo="$sized" -b os --tree=dir="$T/v2" --generate-sizes --timestamp="2024-02-01T00:00:00Z" >/dev/null
s1=$(rev "$sized" os^) s2=$(rev "$sized" os)
sdev=$T/dev-sized
ostree init --repo="$sdev" --mode=bare
ostree pull-local --repo="$sdev" "$sized" "$s1" >/dev/null
before=$(snapshot "$sdev")
expect_exit 0 "pull with ostree.sizes: --dry-run" "$DF" fetch --repo="$sdev" --url="$base/sized" --commit="$s2" \
  --dry-run --json
cp "$T/ee.out" "$T/plan.json"
check "pull with ostree.sizes: the plan wrote nothing" test "$(snapshot "$sdev")" = "$before"
check "pull with ostree.sizes: libostree's pull, its size known" \
  test "$(field "$T/plan.json" path) $(field "$T/plan.json" size_known)" = "pull true"
expect_exit 0 "pull with ostree.sizes: the fetch" "$DF" fetch --repo="$sdev" --url="$base/sized" --commit="$s2" --json
planned=$(field "$T/plan.json" download_bytes) got=$(field "$T/ee.out" bytes_downloaded)
diag "pull with ostree.sizes: planned $planned bytes, downloaded $got"
check "pull with ostree.sizes: planned bytes within 1 % of those downloaded ($planned, $got)" within1 "$planned" "$got"
check "pull with ostree.sizes: v2 fsck-clean and identical" checkout_matches "$sdev" "$s2" "$T/v2"
# A server whose v2 commit object is another commit's: the plan refuses it.
cp -a "$sized" "$T/www/forged"
ostree init --repo="$T/dev-sized2" --mode=bare
obj=$T/www/forged/objects/${s2:0:2}/${s2:2}.commit
cp --remove-destination "$T/www/forged/objects/${s1:0:2}/${s1:2}.commit" "$obj"
expect_exit 5 "pull: a commit object that is not the trusted commit" "$DF" fetch --repo="$T/dev-sized2" \
  --url="$base/forged" --commit="$s2" --dry-run
check "... said so" grep -q "not to the trusted commit" "$T/ee.err"

expect_exit 0 "present: --dry-run" "$DF" fetch --repo="$T/dev-delta" --url="$base/repo" --commit="$c2" --dry-run --json
check "present: nothing to do" test "$(field "$T/ee.out" path) $(field "$T/ee.out" download_bytes)" = "present 0"

# Refused as the fetch would be, before any part: the plan's exit codes.
fresh=$T/fresh
ostree init --repo="$fresh" --mode=bare
before=$(snapshot "$fresh")
expect_exit 13 "--dry-run over --max-bytes" "$DF" fetch --repo="$fresh" --url="$base/repo" --commit="$c2" --dry-run \
  --max-bytes=100K
expect_exit 13 "--dry-run from scratch under --no-from-scratch" "$DF" fetch --repo="$fresh" --url="$base/repo" \
  --commit="$c2" --dry-run --no-from-scratch
before_dg=$(snapshot "$T/dev-scratch")
expect_exit 11 "--dry-run of a downgrade (v1 where the ref has v2)" "$DF" fetch --repo="$T/dev-scratch" \
  --url="$base/repo" --commit="$c1" --ref=os --dry-run
check "the refused downgrade plan wrote nothing" test "$(snapshot "$T/dev-scratch")" = "$before_dg"
check "the refused plans wrote nothing" test "$(snapshot "$fresh")" = "$before"

# After an interrupted fetch (64 KiB ranges, a slow server, SIGTERM) the
# plan counts what is already there and plans the rest.
start_nginx "$T/www" "" "limit_rate 96k;" || not_ok "nginx (slow) did not start"
slow=http://127.0.0.1:$NGINX_PORT/repo
"$DF" fetch --repo="$fresh" --url="$slow" --commit="$c1" --range-size=64K --connections=2 >/dev/null 2>&1 &
pid=$!
sleep 3
kill -TERM "$pid"
wait "$pid"
before=$(snapshot "$fresh")
expect_exit 0 "after an interrupted fetch: --dry-run" "$DF" fetch --repo="$fresh" --url="$base/repo" --commit="$c1" \
  --range-size=64K --dry-run --json
cp "$T/ee.out" "$T/plan.json"
check "the plan wrote nothing" test "$(snapshot "$fresh")" = "$before"
reused=$(field "$T/plan.json" reused_bytes)
check "the plan counts what the interrupted run left ($reused bytes)" test "$reused" -gt 0
expect_exit 0 "the fetch resumes" "$DF" fetch --repo="$fresh" --url="$base/repo" --commit="$c1" --range-size=64K --json
planned=$(field "$T/plan.json" download_bytes) got=$(field "$T/ee.out" bytes_downloaded)
check "resumed: planned bytes within 1 % of those downloaded ($planned, $got)" within1 "$planned" "$got"
check "resumed: the plan's reused bytes are the fetch's ($reused)" test "$(field "$T/ee.out" bytes_reused)" = "$reused"
check "v1 fsck-clean and identical" checkout_matches "$fresh" "$c1" "$T/v1"

# The stats file generate keeps beside the index, signed with --sign, and
# fetch --expected-size with its figure.
keypair good || not_ok "openssl made no ed25519 key"
"$DF" generate -q --repo="$src" --from="$c1" --to="$c2" --sign="$T/good.secret" >/dev/null
stats=$src/deltafetch/v1/stats/$c2.json
check "generate wrote the stats file of v2 and its signature" test -s "$stats" -a -s "$stats.sig"
check "the stats file lists both deltas to v2 with their sizes as published" python3 - "$stats" "$src" "$c1" "$c2" <<'PY'
import json, os, sys
st, src, c1, c2 = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3], sys.argv[4]
assert st["to"] == c2
got = {d["from"]: d for d in st["deltas"]}
assert set(got) == {None, c1}, got
for frm, d in got.items():
    path = os.path.join(src, "deltafetch/v1/deltas", (frm + "-" if frm else "") + c2)
    files = os.listdir(path)
    assert d["size"] == sum(os.path.getsize(os.path.join(path, f)) for f in files), d
    assert d["parts"] == len(files) - 1 and d["superblock_size"] == os.path.getsize(os.path.join(path, "superblock"))
PY
openssl pkey -in "$T/good.pem" -pubout -out "$T/good.pub.pem" 2>/dev/null
check "its signature verifies with the openssl CLI" openssl pkeyutl -verify -pubin -inkey "$T/good.pub.pem" -rawin \
  -in "$stats" -sigfile "$stats.sig"
size=$(python3 -c "import json,sys; print([d['size'] for d in json.load(open(sys.argv[1]))['deltas'] if d['from']][0])" "$stats")
edev=$T/edev
ostree init --repo="$edev" --mode=bare
ostree pull-local --repo="$edev" "$src" "$c1" >/dev/null
expect_exit 0 "--expected-size with the stats file's size: the plan agrees" "$DF" fetch --repo="$edev" \
  --url="$base/repo" --commit="$c2" --from="$c1" --expected-size="$size" --dry-run
before=$(objects_list "$edev")
start=$(($(wc -l <"$log") + 1))
expect_exit 5 "--expected-size one byte off: refused" "$DF" fetch --repo="$edev" --url="$base/repo" --commit="$c2" \
  --from="$c1" --expected-size="$((size + 1))"
check "refused before any part was downloaded" bash -c "! tail -n +$start '$log' | grep -q 'deltas/[^ ]*/[0-9]'"
check "refused: no object written" test "$(objects_list "$edev")" = "$before"
expect_exit 0 "--expected-size with the stats file's size: the fetch" "$DF" fetch --repo="$edev" --url="$base/repo" \
  --commit="$c2" --from="$c1" --expected-size="$size"
check "v2 fsck-clean and identical" checkout_matches "$edev" "$c2" "$T/v2"

# pull --dry-run: through a remote, the summary read, nothing written.
rdev=$T/rdev
ostree init --repo="$rdev" --mode=bare
ostree remote add --repo="$rdev" --no-gpg-verify origin "$base/repo"
ostree summary -u --repo="$src"
before=$(snapshot "$rdev")
expect_exit 0 "pull --dry-run origin:os" "$DF" pull --repo="$rdev" origin:os --dry-run --json
check "pull --dry-run wrote nothing (no ref, no object)" test "$(snapshot "$rdev")" = "$before"
check "pull --dry-run: the summary's commit, from scratch" \
  test "$(field "$T/ee.out" commit) $(field "$T/ee.out" path)" = "$c2 scratch"
expect_exit 0 "pull --dry-run, text" "$DF" pull --repo="$rdev" origin:os --dry-run
check "the text says nothing was written" grep -q "nothing was written" "$T/ee.out"

finish
