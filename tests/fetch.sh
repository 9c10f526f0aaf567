#!/bin/bash
# deltafetch fetch against real servers: nginx over HTTP and over HTTPS
# (HTTP/2, a CA, server and client certificates made here with the openssl
# CLI), native from-scratch and from-commit deltas into bare and bare-user
# repositories, bytes on the wire, the libostree pull fallback, trust and
# TLS refusals, and the README's C example built against the installed
# pkg-config file.
. "$(dirname "$0")/lib.sh"

publish_pair
# A second published repo without native deltas, for the fallback.
plain=$T/www/plain
make_src_repo "$plain" archive
ostree summary --repo="$plain" -u

dir_bytes () { find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%.0f\n", s }'; }
scratch_bytes=$(dir_bytes "$src/deltafetch/v1/deltas/$c1")
delta_bytes=$(dir_bytes "$src/deltafetch/v1/deltas/$c1-$c2")
# Body bytes nginx sent for requests matching $2 since line $3 of log $1.
wire_bytes () { tail -n +"$3" "$1" | awk -v pat="$2" '$7 ~ pat { s += $10 } END { printf "%.0f\n", s }'; }
json_field () { sed -n '$p' "$1" | python3 -c "import json,sys; print(json.load(sys.stdin)['$2'])"; }

start_nginx "$T/www" || { not_ok "nginx did not start"; finish; exit 1; }
ok "nginx serving on 127.0.0.1:$NGINX_PORT"
url=http://127.0.0.1:$NGINX_PORT/repo
log=$NGINX_LOG

bogus_hex=$(echo stale | sha256sum | cut -c1-64)
for mode in bare bare-user; do
  dev=$T/dev-$mode
  ostree init --repo="$dev" --mode="$mode"
  start=$(($(wc -l <"$log") + 1))
  check "$mode: fetch v1 (from scratch, 64K ranges, 3 connections)" \
    "$DF" fetch --repo="$dev" --url="$url" --commit="$c1" --ref=os --range-size=64K --connections=3 --json
  cp "$T/check.out" "$T/f1.json"
  check "$mode: v1 fsck-clean and identical to the source tree" checkout_matches "$dev" "$c1" "$T/v1"
  for ev in start progress done; do
    check "$mode: --json emitted a '$ev' event" grep -q "^{\"event\":\"$ev\"" "$T/f1.json"
  done
  check "$mode: JSON lines: schema, time, integer rates, documented keys; phases in order, progress only on change" \
    python3 - "$T/f1.json" "$DF_SRCDIR/docs/json-events.md" <<'PY'
import json, re, sys
doc = open(sys.argv[2]).read()
known = set(re.findall(r"^\| `([a-z_]+)`", doc, re.M))
for k in re.findall(r"^\| `([a-z_]+)`, `([a-z_]+)`(?:, `([a-z_]+)`)?", doc, re.M):
    known.update(x for x in k if x)
order = ["discover", "download", "apply", "commit"]
seen, last, times = [], None, []
for line in open(sys.argv[1]):
    e = json.loads(line)
    assert list(e)[:3] == ["event", "schema", "time"], list(e)[:3]
    assert e["schema"] == 2 and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["time"]), e
    times.append(e["time"])
    if "rate" in e:
        assert isinstance(e["rate"], int), e["rate"]
    unknown = set(e) - known
    assert not unknown, "keys not in docs/json-events.md: %s" % unknown
    if e["event"] in ("done", "error"):
        continue
    assert e["phase"] in order, e
    assert not seen or order.index(e["phase"]) >= order.index(seen[-1]), (seen, e)
    if not seen or seen[-1] != e["phase"]:
        seen.append(e["phase"])
    assert e["bytes_done"] == e["bytes_reused"] + e["bytes_downloaded"], e
    assert e["bytes_total"] == 0 or e["bytes_done"] <= e["bytes_total"], e
    if e["event"] == "progress":
        now = (e["phase"], e["bytes_downloaded"], e["bytes_total"], e["parts_applied"])
        assert now != last, "a progress event without a change: %s" % line
        last, last_e = now, e
assert times == sorted(times), "times out of order"
assert seen[-2:] == ["apply", "commit"] and "download" in seen, seen
assert last_e["bytes_done"] == last_e["bytes_total"] > 0, last_e
PY
  check "$mode: the path taken was the from-scratch delta" test "$(json_field "$T/f1.json" path)" = scratch
  check "$mode: ranged requests were answered 206" grep -q '" 206 ' "$log"
  wire=$(wire_bytes "$log" "/deltafetch/v1/deltas/$c1/" "$start")
  check "$mode: scratch delta bytes on the wire $wire = delta $scratch_bytes" test "$wire" = "$scratch_bytes"
  # Stale state of another delta is cleaned up when a fetch starts.
  mkdir -p "$dev/tmp/deltafetch-fetch-$bogus_hex" "$dev/tmp/deltafetch-apply-$bogus_hex"
  start=$(($(wc -l <"$log") + 1))
  check "$mode: fetch v2 (delta from the ref's commit)" \
    "$DF" fetch --repo="$dev" --url="$url" --commit="$c2" --ref=os --json
  cp "$T/check.out" "$T/f2.json"
  check "$mode: v2 fsck-clean and identical to the source tree" checkout_matches "$dev" "$c2" "$T/v2"
  check "$mode: ref os moved to v2" test "$(rev "$dev" os)" = "$c2"
  check "$mode: the path taken was the delta from v1" test "$(json_field "$T/f2.json" from)" = "$c1"
  wire=$(wire_bytes "$log" "/repo/" "$start")
  diag "$mode: v2 fetch moved $wire bytes for a $delta_bytes-byte delta (plus index and superblock)"
  check "$mode: bytes on the wire <= 1.02 x delta bytes" test "$((wire * 100))" -le "$((delta_bytes * 102))"
  check "$mode: no loose objects were fetched" bash -c "! tail -n +$start '$log' | grep -q '/objects/'"
  check "$mode: no fetch state left in tmp/, stale state removed" bash -c "! ls '$dev/tmp' | grep -q deltafetch"
done

dev=$T/dev-bare
expect_exit 0 "fetching a commit already present" "$DF" fetch --repo="$dev" --url="$url" --commit="$c2" --json
check "already present: path reported" test "$(json_field "$T/ee.out" path)" = present

# Rollback protection: the ref points at v2; v1 is older.
mark=$(($(wc -l <"$log") + 1))
ref_before=$(rev "$dev" os)
expect_exit 11 "downgrade to a commit already present is refused" \
  "$DF" fetch --repo="$dev" --url="$url" --commit="$c1" --ref=os
check "refused downgrade left the ref on v2" test "$(rev "$dev" os)" = "$ref_before"
dev8=$T/dev-rollback
ostree init --repo="$dev8" --mode=bare
ostree pull-local --repo="$dev8" "$src" "$c2" >/dev/null
ostree refs --repo="$dev8" --create=os "$c2"
before=$(objects_list "$dev8")
expect_exit 11 "downgrade through a native delta is refused" \
  "$DF" fetch --repo="$dev8" --url="$url" --commit="$c1" --ref=os --no-pull-fallback
check "downgrade refused before any part was downloaded" \
  bash -c "! tail -n +$mark '$log' | grep -q 'deltas/$c1/[0-9]'"
check "refused downgrade wrote nothing" test "$before" = "$(objects_list "$dev8")"
check "allowed downgrade fetches v1" "$DF" fetch --repo="$dev8" --url="$url" --commit="$c1" --ref=os --allow-downgrade
check "allowed downgrade: fsck-clean, identical, ref on v1" \
  bash -c "$(declare -f checkout_matches); T='$T' DF_SRCDIR='$DF_SRCDIR' checkout_matches '$dev8' '$c1' '$T/v1' && [ \"\$(ostree rev-parse --repo='$dev8' os)\" = '$c1' ]"

# The library: one OstreeRepo survives failed and cancelled fetches.
dev10=$T/dev-twice
ostree init --repo="$dev10" --mode=bare
partless=$T/www/partless/deltafetch/v1
mkdir -p "$partless/indexes" "$partless/deltas/$c1"
cp "$src/deltafetch/v1/indexes/$c1.index" "$partless/indexes/"
cp "$src/deltafetch/v1/deltas/$c1/superblock" "$partless/deltas/$c1/"
"$DF_FETCH_TWICE" "$dev10" "http://127.0.0.1:$NGINX_PORT/partless" "$url" "$c1" os >"$T/twice.out" 2>&1
while read -r line; do
  case $line in
    "ok "*) ok "library: ${line#ok * - }" ;;
    "not ok "*) not_ok "library: ${line#not ok * - }" ;;
    "# "*) echo "$line" ;;
  esac
done <"$T/twice.out"
check "library: fsck-clean and identical after the retries" checkout_matches "$dev10" "$c1" "$T/v1"

# Trust: a commit nobody publishes is not made up.
bogus=$(echo bogus | sha256sum | cut -c1-64)
before=$(objects_list "$dev")
expect_exit 9 "unknown commit, no native delta and no fallback" \
  "$DF" fetch --repo="$dev" --url="$url" --commit="$bogus" --no-pull-fallback
expect_exit 9 "unknown commit through the libostree fallback" "$DF" fetch --repo="$dev" --url="$url" --commit="$bogus"
check "nothing was written for the unknown commit" test "$before" = "$(objects_list "$dev")"
expect_exit 2 "bad URL scheme" "$DF" fetch --repo="$dev" --url=ftp://example.org/repo --commit="$c2"
expect_exit 2 "missing --commit" "$DF" fetch --repo="$dev" --url="$url"

# A delta published for another commit is refused before anything is written:
# the server's index for v1 points at the from-scratch delta of v2.
cp -a "$src" "$T/src2"
"$DF" generate -q --repo="$T/src2" --empty --to=os >/dev/null
fake=$T/www/fake
mkdir -p "$fake/deltafetch/v1/indexes" "$fake/deltafetch/v1/deltas"
cp "$T/src2/deltafetch/v1/indexes/$c2.index" "$fake/deltafetch/v1/indexes/$c1.index"
cp -r "$T/src2/deltafetch/v1/deltas/$c2" "$fake/deltafetch/v1/deltas/$c1"
dev3=$T/dev-wrong
ostree init --repo="$dev3" --mode=bare
expect_exit 5 "a delta leading to another commit is untrusted" \
  "$DF" fetch --repo="$dev3" --url="http://127.0.0.1:$NGINX_PORT/fake" --commit="$c1" --no-pull-fallback
check "nothing written by the untrusted delta" bash -c "[ -z \"\$(find '$dev3/objects' -type f)\" ]"

# Free space is checked against the delta's declared sizes before the
# download starts: on a filesystem too small for the update, the fetch fails
# at once with exit 7, having downloaded no part.
if [ "$(id -u)" = 0 ]; then
  small=$T/small
  mkdir -p "$small"
  if mount -t tmpfs -o size=3m tmpfs "$small"; then
    cleanup_hooks+=("umount -l '$small'")
    ostree init --repo="$small/repo" --mode=bare
    mark=$(($(wc -l <"$log") + 1))
    expect_exit 7 "too little free space: refused before downloading" \
      "$DF" fetch --repo="$small/repo" --url="$url" --commit="$c1" --no-pull-fallback
    check "no part was requested" bash -c "! tail -n +$mark '$log' | grep -q 'deltas/$c1/[0-9]'"
  else
    not_ok "mount a small tmpfs"
  fi
fi

# Fallback: a server without native deltas is pulled with libostree.
# It writes nothing into the repository's config, and counts the bytes it
# moves as nginx does.
dev4=$T/dev-pull
ostree init --repo="$dev4" --mode=bare
conf_before=$(sha256sum <"$dev4/config")
sleep 1; mark=$(($(wc -l <"$log") + 1))
check "fallback: libostree pull of v2" \
  "$DF" fetch --repo="$dev4" --url="http://127.0.0.1:$NGINX_PORT/plain" --commit="$(rev "$plain" os)" --ref=os --json
cp "$T/check.out" "$T/pull.json"
check "fallback: path reported as pull" test "$(json_field "$T/pull.json" path)" = pull
check "fallback: the config is byte-identical, no remote file left in tmp" \
  bash -c "[ '$(sha256sum <"$dev4/config")' = '$conf_before' ] && [ ! -e '$dev4/tmp/deltafetch-remote' ]"
sleep 1
wire=$(tail -n +"$mark" "$log" | awk '{ s += $10 } END { printf "%.0f\n", s }')
counted=$(json_field "$T/pull.json" bytes_downloaded)
diag "fallback: $counted bytes counted, nginx sent $wire"
check "fallback: bytes_downloaded within 1 % of what nginx sent" \
  test $((counted * 100)) -ge $((wire * 99)) -a $((counted * 100)) -le $((wire * 101))
check "fallback: progress events carried the pull's bytes" \
  grep -q '"event":"progress".*"bytes_downloaded":[1-9][0-9][0-9][0-9]' "$T/pull.json"
check "fallback: fsck-clean and identical" checkout_matches "$dev4" "$(rev "$plain" os)" "$T/v2"
check "fallback: ref set" test "$(rev "$dev4" os)" = "$(rev "$plain" os)"
check "fallback: no remote left behind" bash -c "! ostree remote list --repo='$dev4' | grep -q ."
expect_exit 11 "fallback: a downgrade is refused after fetching only the commit object" \
  "$DF" fetch --repo="$dev4" --url="http://127.0.0.1:$NGINX_PORT/plain" --commit="$(rev "$plain" os^)" --ref=os
check "fallback: the refused downgrade kept the ref" test "$(rev "$dev4" os)" = "$(rev "$plain" os)"
check "fallback: no remote left behind after the refusal" bash -c "! ostree remote list --repo='$dev4' | grep -q ."

# The from-commit found by itself: a device that holds v1 under no ref (nor
# --from) gets the delta from v1, not the from-scratch delta.
dev11=$T/dev-noref
ostree init --repo="$dev11" --mode=bare
ostree pull-local --repo="$dev11" "$src" "$c1" >/dev/null
mark=$(($(wc -l <"$log") + 1))
check "no ref, no --from: fetch v2" "$DF" fetch --json --repo="$dev11" --url="$url" --commit="$c2"
cp "$T/check.out" "$T/noref.json"
check "no ref: the delta from v1, found in the repository" \
  bash -c "[ \"\$(sed -n '\$p' '$T/noref.json' | python3 -c 'import json,sys; e = json.load(sys.stdin); print(e[\"path\"], e[\"from\"], e[\"from_found\"])')\" = 'delta $c1 repository' ]"
check "no ref: no loose object was requested (the server has no from-scratch delta to v2: the pull)" \
  bash -c "! tail -n +$mark '$log' | grep -q '/objects/'"
check "no ref: fsck-clean and identical to v2" checkout_matches "$dev11" "$c2" "$T/v2"
# Of several commits the server has deltas from, the one whose delta its
# stats file says is the smallest: p2 (newer) replaced a large file that
# p3 has as p1 had it, so p1 -> p3 is small and p2 -> p3 large.
pick=$T/www/pick
mkdir -p "$T/pick/a"
head -c 400000 /dev/urandom >"$T/pick/a/big" && echo one >"$T/pick/a/small"
cp -a "$T/pick/a" "$T/pick/b" && head -c 400000 /dev/urandom >"$T/pick/b/big"
cp -a "$T/pick/a" "$T/pick/c" && echo three >"$T/pick/c/small"
ostree init --repo="$pick" --mode=archive
p1=$(ostree commit --repo="$pick" -b os --tree=dir="$T/pick/a" --timestamp=2024-01-01T00:00:00Z)
p2=$(ostree commit --repo="$pick" -b os --tree=dir="$T/pick/b" --timestamp=2024-02-01T00:00:00Z)
p3=$(ostree commit --repo="$pick" -b os --tree=dir="$T/pick/c" --timestamp=2024-03-01T00:00:00Z)
"$DF" generate -q --repo="$pick" --from="$p1" --from="$p2" --to="$p3" >/dev/null
size_of () { python3 -c "import json,sys; print([d['size'] for d in json.load(open(sys.argv[1]))['deltas'] if d['from'] == sys.argv[2]][0])" "$pick/deltafetch/v1/stats/$p3.json" "$1"; }
diag "published: $p1 -> $p3 $(size_of "$p1") bytes, $p2 -> $p3 $(size_of "$p2") bytes"
check "the stats file says p1 -> p3 is the smaller" test "$(size_of "$p1")" -lt "$(size_of "$p2")"
devp=$T/dev-pick
ostree init --repo="$devp" --mode=bare
ostree pull-local --repo="$devp" "$pick" "$p1" "$p2" >/dev/null
check "two commits under no ref: fetch p3" "$DF" fetch --json --repo="$devp" --url="http://127.0.0.1:$NGINX_PORT/pick" --commit="$p3"
check "the delta from p1 (the smaller by the stats file), not from the newer p2" \
  test "$(sed -n '$p' "$T/check.out" | python3 -c 'import json,sys; e=json.load(sys.stdin); print(e["from"], e["from_found"])')" = "$p1 repository"
check "p3: fsck-clean and identical" checkout_matches "$devp" "$p3" "$T/pick/c"
# The stats file is only a hint: nested 100,000 deep (json-glib's parser
# recurses a level at a time), it is set aside and the newest commit's
# delta taken.
python3 -c "print('[' * 100000)" >"$pick/deltafetch/v1/stats/$p3.json"
ostree init --repo="$devp.2" --mode=bare
ostree pull-local --repo="$devp.2" "$pick" "$p1" "$p2" >/dev/null
check "a stats file nested 100,000 deep: fetch p3 all the same" \
  "$DF" fetch --json --repo="$devp.2" --url="http://127.0.0.1:$NGINX_PORT/pick" --commit="$p3"
check "... from the newest, p2" test "$(sed -n '$p' "$T/check.out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["from"])')" = "$p2"

# Limits for metered and shared links. --max-bytes and --no-from-scratch
# refuse (exit 13) once the superblock says how big the update is, before
# any part is requested; --max-rate caps the rate over all connections.
dev9=$T/dev-limits
ostree init --repo="$dev9" --mode=bare
ostree pull-local --repo="$dev9" "$src" "$c1" >/dev/null
ostree refs --repo="$dev9" --create=os "$c1"
cp -a "$dev9" "$T/dev-limits-v1"
mark=$(($(wc -l <"$log") + 1))
expect_exit 13 "--max-bytes below the delta's size: refused (too large)" \
  "$DF" fetch --json --repo="$dev9" --url="$url" --commit="$c2" --ref=os --max-bytes=$((delta_bytes / 2))
check "--max-bytes: the JSON error names it too-large, not retryable" \
  grep -q '"event":"error".*"exit_code":13,"error":"too-large","retryable":false' "$T/ee.out"
check "--max-bytes: no part was requested, the ref still on v1" \
  bash -c "! tail -n +$mark '$log' | grep -q 'deltas/$c1-$c2/[0-9]' && [ \$(ostree rev-parse --repo='$dev9' os) = '$c1' ]"
check "--max-bytes above the delta's size (index and superblock included): fetched" \
  "$DF" fetch -q --repo="$dev9" --url="$url" --commit="$c2" --ref=os --max-bytes=$((delta_bytes + 65536))
check "--max-bytes: fsck-clean and identical to v2" checkout_matches "$dev9" "$c2" "$T/v2"
dev10=$T/dev-noscratch
ostree init --repo="$dev10" --mode=bare
mark=$(($(wc -l <"$log") + 1))
expect_exit 13 "--no-from-scratch with nothing to start from: refused" \
  "$DF" fetch --repo="$dev10" --url="$url" --commit="$c1" --no-from-scratch
check "--no-from-scratch: no part was requested" bash -c "! tail -n +$mark '$log' | grep -q 'deltas/$c1/[0-9]'"
check "--no-from-scratch with a delta from the device's commit: fetched" \
  "$DF" fetch -q --repo="$T/dev-limits-v1" --url="$url" --commit="$c2" --ref=os --no-from-scratch
expect_exit 13 "--no-from-scratch: the pull fallback into an empty repository is refused" \
  "$DF" fetch --repo="$dev10" --url="http://127.0.0.1:$NGINX_PORT/plain" --commit="$(rev "$plain" os)" \
  --no-from-scratch
# The pull fallback under --max-bytes: sized first (its trees walked, its
# objects' sizes asked), refused when over, before any object is fetched;
# held to the limit as it runs.
mark=$(($(wc -l <"$log") + 1))
expect_exit 13 "--max-bytes below the pull fallback's size: refused" \
  "$DF" fetch --repo="$dev10" --url="http://127.0.0.1:$NGINX_PORT/plain" --commit="$(rev "$plain" os)" \
  --max-bytes=100K
check "... saying what it needs" grep -q "libostree's pull of .* needs [0-9]* bytes downloaded, more than the limit" "$T/ee.err"
check "... before any content object was fetched" bash -c "! tail -n +$mark '$log' | grep -q 'GET [^ ]*\.filez'"
ostree init --repo="$T/dev-pull-limit" --mode=bare
check "--max-bytes above the pull fallback's size: fetched" \
  "$DF" fetch -q --repo="$T/dev-pull-limit" --url="http://127.0.0.1:$NGINX_PORT/plain" --commit="$(rev "$plain" os)" \
  --max-bytes=1G
check "--max-bytes, pull: fsck-clean and identical" checkout_matches "$T/dev-pull-limit" "$(rev "$plain" os)" "$T/v2"
expect_exit 9 "--max-rate: the pull fallback (no rate cap in libostree) is refused" \
  "$DF" fetch --repo="$dev10" --url="http://127.0.0.1:$NGINX_PORT/plain" --commit="$(rev "$plain" os)" \
  --max-rate=1M
# The cap: the from-scratch delta at a quarter of its size a second, over 8
# connections; a share (cap / 8) below --min-rate lowers the deadline's rate
# instead of timing transfers out. Only the upper bound is asserted: a
# loaded machine may be slower, never faster.
rate=$((scratch_bytes / 4))
rm -rf "$dev10"; ostree init --repo="$dev10" --mode=bare
t0=$(date +%s%N)
check "--max-rate=$rate: the from-scratch delta completes" \
  "$DF" fetch -q --repo="$dev10" --url="$url" --commit="$c1" --max-rate="$rate" --connections=8 --min-rate=1000000
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
got=$(( scratch_bytes * 1000 / (ms + 1) ))
diag "--max-rate=$rate: $scratch_bytes bytes in $ms ms, $got bytes/s"
check "--max-rate: the average rate $got stays within 10 % of the cap $rate" test $((got * 10)) -le $((rate * 11))
check "--max-rate: fsck-clean and identical to v1" checkout_matches "$dev10" "$c1" "$T/v1"

# Proxies come from libcurl's environment variables: through an nginx
# forward proxy, every request shows up in the proxy's log.
origin_port=$NGINX_PORT
if start_nginx "$T/www" "" "location / { proxy_pass http://127.0.0.1:$origin_port; }"; then
  dev7=$T/dev-proxy
  ostree init --repo="$dev7" --mode=bare
  check "through http_proxy: fetch v1" env http_proxy="http://127.0.0.1:$NGINX_PORT" no_proxy= \
    "$DF" fetch --repo="$dev7" --url="$url" --commit="$c1" --ref=os --range-size=64K
  check "through http_proxy: fsck-clean and identical" checkout_matches "$dev7" "$c1" "$T/v1"
  check "through http_proxy: the proxy carried the part requests" grep -q "/deltas/$c1/[0-9]" "$NGINX_LOG"
else
  not_ok "nginx forward proxy did not start"
fi

# A server that declares its objects smaller than it serves them (HEAD
# answered from a 1-byte file) passes the pull's plan under --max-bytes;
# the pull is then held to the limit as it runs (slowed, so the watchdog
# sees it past the limit).
printf x >"$T/www/tiny"
if start_nginx "$T/www" "" 'limit_rate 100k; if ($request_method = HEAD) { rewrite \.filez$ /tiny last; }'; then
  dev11=$T/dev-lying
  ostree init --repo="$dev11" --mode=bare
  expect_exit 13 "--max-bytes: a pull whose server understated its sizes is stopped at the limit" \
    "$DF" fetch --repo="$dev11" --url="http://127.0.0.1:$NGINX_PORT/plain" --commit="$(rev "$plain" os)" \
    --max-bytes=300K
  check "... saying so" grep -q "libostree's pull went past the limit of 307200 bytes" "$T/ee.err"
  check "... the commit left marked partial, no ref" \
    bash -c "test -e '$dev11/state/$(rev "$plain" os).commitpartial' && test -z \"\$(ostree refs --repo='$dev11')\""
else
  not_ok "nginx (understating sizes) did not start"
fi

# HTTPS with HTTP/2 and mutual TLS.
certs=$T/certs
if start_nginx_mtls "$T/www" "$certs" http2; then
  ok "nginx with TLS (client certificates required) on 127.0.0.1:$NGINX_PORT"
  surl=https://localhost:$NGINX_PORT/repo
  tls=(--cacert="$certs/ca.pem" --cert="$certs/client.pem" --key="$certs/client.key")
  dev5=$T/dev-tls
  ostree init --repo="$dev5" --mode=bare
  expect_exit 9 "https: no client certificate is refused" "$DF" fetch --repo="$dev5" --url="$surl" --commit="$c1" \
    --cacert="$certs/ca.pem" --retries=1 --no-pull-fallback
  expect_exit 9 "https: a client certificate from another CA is refused" "$DF" fetch --repo="$dev5" --url="$surl" \
    --commit="$c1" --cacert="$certs/ca.pem" --cert="$certs/bad-client.pem" --key="$certs/bad-client.key" \
    --retries=1 --no-pull-fallback
  expect_exit 9 "https: a server certificate from an unknown CA is refused" "$DF" fetch --repo="$dev5" \
    --url="$surl" --commit="$c1" --cacert="$certs/other-ca.pem" --cert="$certs/client.pem" \
    --key="$certs/client.key" --retries=1 --no-pull-fallback
  expect_exit 9 "https: a wrong public-key pin is refused" "$DF" fetch --repo="$dev5" --url="$surl" --commit="$c1" \
    "${tls[@]}" --pin="sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" --retries=1 --no-pull-fallback
  tls_port=$NGINX_PORT tls_log=$NGINX_LOG
  if start_nginx "$T/www" "ssl" "ssl_certificate $certs/expired.pem; ssl_certificate_key $certs/expired.key;"; then
    expect_exit 9 "https: an expired server certificate is refused" "$DF" fetch --repo="$dev5" \
      --url="https://localhost:$NGINX_PORT/repo" --commit="$c1" --cacert="$certs/ca.pem" --retries=1 --no-pull-fallback
    check "https: the expired certificate's error says so" grep -qi "expired" "$T/ee.err"
  else
    not_ok "nginx with an expired certificate did not start"
  fi
  NGINX_PORT=$tls_port NGINX_LOG=$tls_log
  check "https: nothing written by refused fetches" bash -c "[ -z \"\$(find '$dev5/objects' -type f)\" ]"
  expect_exit 0 "https: mutual TLS with the right pin fetches v1" "$DF" fetch --repo="$dev5" --url="$surl" \
    --commit="$c1" --ref=os "${tls[@]}" --pin="$(cat "$certs/server.pin")" --range-size=64K --json
  check "https: v1 fsck-clean and identical" checkout_matches "$dev5" "$c1" "$T/v1"
  check "https: requests went over HTTP/2" grep -q 'HTTP/2.0" 206' "$NGINX_LOG"
  check "https: fetch v2" "$DF" fetch --repo="$dev5" --url="$surl" --commit="$c2" --ref=os "${tls[@]}"
  check "https: v2 fsck-clean and identical" checkout_matches "$dev5" "$c2" "$T/v2"
  # HTTPS through a CONNECT proxy (https_proxy): the proxy's own "200
  # Connection established" must not be taken for the server's reply.
  python3 "$DF_SRCDIR/tests/connect-proxy.py" "$T/cp.port" "$T/cp.log" &
  cleanup_hooks+=("kill $! 2>/dev/null")
  for _ in $(seq 100); do [ -s "$T/cp.port" ] && break; sleep 0.05; done
  dev9=$T/dev-tls-proxy
  ostree init --repo="$dev9" --mode=bare
  check "https through a CONNECT proxy: fetch v1 in 64K ranges" env https_proxy="http://127.0.0.1:$(cat "$T/cp.port")" \
    no_proxy= "$DF" fetch --repo="$dev9" --url="$surl" --commit="$c1" --ref=os "${tls[@]}" --range-size=64K
  check "https through a CONNECT proxy: fsck-clean and identical" checkout_matches "$dev9" "$c1" "$T/v1"
  check "https through a CONNECT proxy: the tunnel was used" grep -q "CONNECT localhost:$NGINX_PORT" "$T/cp.log"
else
  not_ok "TLS set-up failed"
  cat "$T"/nginx*/start.err 2>/dev/null | sed 's/^/# /'
fi

# The README's example agent, built against the installed pkg-config file.
inst=$T/inst
if meson install -C "$DF_BUILDDIR" --no-rebuild --quiet --destdir "$inst" >"$T/install.log" 2>&1; then
  # Relocate the installed .pc file (its prefix is /usr/local under DESTDIR).
  pc=$(find "$inst" -name deltafetch-1.pc | head -1)
  mkdir -p "$T/pc"
  sed "s|^prefix=.*|prefix=$inst/usr/local|" "$pc" >"$T/pc/deltafetch-1.pc"
  export PKG_CONFIG_PATH=$T/pc
  check "README example is examples/update-agent.c verbatim" python3 - "$DF_SRCDIR" <<'PY'
import sys
root = sys.argv[1]
readme = open(root + "/README.md").read()
code = open(root + "/examples/update-agent.c").read()
sys.exit(0 if code in readme else 1)
PY
  libdir=$(dirname "$(find "$inst" -name 'libdeltafetch.so.1' | head -1)")
  # A sanitizer build of the library needs the program built the same way.
  san=()
  readelf -d "$libdir/libdeltafetch.so.1" | grep -q 'NEEDED.*libasan' && san=(-fsanitize=address,undefined)
  # shellcheck disable=SC2046
  check "example agent builds with pkg-config deltafetch-1" "${CC:-cc}" -Wall -Werror "${san[@]}" -o "$T/agent" \
    "$DF_SRCDIR/examples/update-agent.c" $(pkg-config --cflags --libs deltafetch-1)
  dev6=$T/dev-agent
  ostree init --repo="$dev6" --mode=bare
  check "example agent fetches v1" env LD_LIBRARY_PATH="$libdir" "$T/agent" "$dev6" "$url" "$c1" os
  check "example agent fetches v2" env LD_LIBRARY_PATH="$libdir" "$T/agent" "$dev6" "$url" "$c2" os
  check "example agent: fsck-clean and identical" checkout_matches "$dev6" "$c2" "$T/v2"
  check "example agent: ref set" test "$(rev "$dev6" os)" = "$c2"
else
  not_ok "meson install --destdir failed"
  sed 's/^/# /' "$T/install.log"
fi
finish
