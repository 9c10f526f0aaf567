#!/bin/bash
# Self-test of tests/fault-server.py and tests/make-certs.sh, driven by the
# curl CLI. Prints TAP; exits non-zero if any check fails.
# check() evals its single-quoted expressions, which use variables set here:
# shellcheck disable=SC2016,SC2034
set -u
here=$(cd "$(dirname "$0")" && pwd)
SERVER=$here/fault-server.py

T=$(mktemp -d "${TMPDIR:-/tmp}/fault-server-selftest.XXXXXX")
ROOT=$T/root
N=0
FAILED=0
PIDS=()
cleanup () {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ "$FAILED" = 0 ]; then rm -rf "$T"; else echo "# kept $T" >&2; fi
}
trap cleanup EXIT

ok () { N=$((N + 1)); echo "ok $N - $*"; }
not_ok () { N=$((N + 1)); FAILED=$((FAILED + 1)); echo "not ok $N - $*"; }
# check DESCRIPTION EXPRESSION: ok when the bash EXPRESSION (eval'ed) succeeds
check () {
  if eval "$2" >"$T/check.out" 2>&1; then ok "$1"; else
    not_ok "$1"
    echo "#   failed: $2"
    echo "#   curl exit=${RC:-} code=${CODE:-} size=${SIZE:-}"
    sed 's/^/#   /' "$T/check.out" | head -20
  fi
}

# fetch NAME CURL-ARGS...: body -> $T/NAME.body, headers -> $T/NAME.hdr;
# sets RC (curl exit), CODE (HTTP status), SIZE (body bytes).
fetch () {
  local name=$1 out; shift
  RC=0
  out=$(curl -s --max-time "${MAXT:-10}" -D "$T/$name.hdr" -o "$T/$name.body" \
    -w '%{http_code} %{size_download}\n' "$@") || RC=$?
  read -r CODE SIZE <<<"$(echo "$out" | tail -n1)"
}
# hdr NAME HEADER: value of HEADER in the last response of $T/NAME.hdr
hdr () {
  tr -d '\r' <"$T/$1.hdr" | awk -v h="${2,,}" '
    /^HTTP\// {delete v} { i = index($0, ":"); if (i) v[tolower(substr($0, 1, i - 1))] = substr($0, i + 2) }
    END {print v[h]}'
}
# slice START LEN: those bytes of the test file
slice () { tail -c +$(($1 + 1)) "$ROOT/big" | head -c "$2"; }
same () { cmp -s "$1" "$2"; } # same FILE1 FILE2
# rules JSON: replace the server's rules through the control endpoint
rules () {
  local code
  code=$(curl -s -o "$T/rules.out" -w '%{http_code}' -X POST --data-binary "$1" "$URL/__control/rules")
  [ "$code" = 200 ] || { echo "# POST rules failed ($code): $(cat "$T/rules.out")"; return 1; }
}
# start_server NAME ARGS...: starts fault-server.py, sets PORT and SPID
start_server () {
  local name=$1 i; shift
  rm -f "$T/$name.port"
  python3 "$SERVER" --root "$ROOT" --port 0 --port-file "$T/$name.port" "$@" 2>"$T/$name.err" &
  SPID=$!
  PIDS+=("$SPID")
  for i in $(seq 100); do
    [ -s "$T/$name.port" ] && break
    kill -0 "$SPID" 2>/dev/null || break
    sleep 0.05
  done
  PORT=$(cat "$T/$name.port" 2>/dev/null || echo 0)
  [ "$PORT" != 0 ] || { sed 's/^/# /' "$T/$name.err"; echo "Bail out! $name did not start"; exit 1; }
}
now () { date +%s.%N; }
elapsed_ge () { awk -v a="$1" -v b="$2" -v m="$3" 'BEGIN {exit !(b - a >= m)}'; } # START END SECONDS
loglines () { python3 -c 'import json,sys
n=0
for l in open(sys.argv[1]):
    e=json.loads(l)
    if all(str(e.get(k))==v for k,v in (a.split("=",1) for a in sys.argv[2:])): n+=1
print(n)' "$T/server.log" "$@"; } # loglines KEY=VALUE...: matching log lines

mkdir -p "$ROOT/dir"
head -c $((3 * 1024 * 1024)) /dev/urandom >"$ROOT/big"
SIZE_BIG=$(stat -c %s "$ROOT/big")
echo "hello, world" >"$ROOT/small.txt"
echo '[{"match": "/small.txt", "fault": "status", "code": 418}]' >"$T/rules.json"

start_server server --rules "$T/rules.json" --seed 7 --log "$T/server.log"
MAIN_PID=$SPID
URL=http://127.0.0.1:$PORT
echo "# server on port $PORT"

# ------------------------------------------------------------ plain serving
fetch small "$URL/small.txt"
check "rules file is read at start (418)" '[ "$CODE" = 418 ]'
echo '[]' >"$T/rules.json.tmp" && mv "$T/rules.json.tmp" "$T/rules.json"
fetch small "$URL/small.txt"
check "rules file is re-read when it changes" '[ "$CODE" = 200 ] && same "$T/small.body" "$ROOT/small.txt"'

fetch full "$URL/big"
check "GET: 200 and the right bytes" '[ "$RC" = 0 ] && [ "$CODE" = 200 ] && same "$T/full.body" "$ROOT/big"'
check "GET: Content-Length, Accept-Ranges, ETag, Last-Modified" \
  '[ "$(hdr full content-length)" = "$SIZE_BIG" ] && [ "$(hdr full accept-ranges)" = bytes ] &&
   [[ "$(hdr full etag)" == \"*\" ]] && [ -n "$(hdr full last-modified)" ]'
ETAG=$(hdr full etag)
LASTMOD=$(hdr full last-modified)

fetch head -I "$URL/big"
check "HEAD: headers only" '[ "$CODE" = 200 ] && [ "$SIZE" = 0 ] && [ "$(hdr head content-length)" = "$SIZE_BIG" ]'

fetch r1 -r 1000-1999 "$URL/big"
check "Range a-b: 206, Content-Range, bytes" \
  '[ "$CODE" = 206 ] && [ "$(hdr r1 content-range)" = "bytes 1000-1999/$SIZE_BIG" ] &&
   [ "$(hdr r1 content-length)" = 1000 ] && same "$T/r1.body" <(slice 1000 1000)'
fetch r2 -r 3000000- "$URL/big"
check "Range a-: 206 and the tail" \
  '[ "$CODE" = 206 ] && [ "$(hdr r2 content-range)" = "bytes 3000000-$((SIZE_BIG - 1))/$SIZE_BIG" ] &&
   same "$T/r2.body" <(slice 3000000 $((SIZE_BIG - 3000000)))'
fetch r3 -r -777 "$URL/big"
check "Range -n: 206 and the last n bytes" \
  '[ "$CODE" = 206 ] && [ "$(hdr r3 content-range)" = "bytes $((SIZE_BIG - 777))-$((SIZE_BIG - 1))/$SIZE_BIG" ] &&
   same "$T/r3.body" <(slice $((SIZE_BIG - 777)) 777)'
fetch r4 -r 100-99999999 "$URL/big"
check "Range past the end is clamped" \
  '[ "$CODE" = 206 ] && [ "$(hdr r4 content-range)" = "bytes 100-$((SIZE_BIG - 1))/$SIZE_BIG" ]'
fetch r5 -r "$SIZE_BIG-" "$URL/big"
check "unsatisfiable Range: 416 with bytes */size" \
  '[ "$CODE" = 416 ] && [ "$(hdr r5 content-range)" = "bytes */$SIZE_BIG" ]'
fetch ir1 -r 10-19 -H "If-Range: $ETAG" "$URL/big"
check "If-Range with the current ETag: 206" '[ "$CODE" = 206 ] && same "$T/ir1.body" <(slice 10 10)'
fetch ir2 -r 10-19 -H "If-Range: $LASTMOD" "$URL/big"
check "If-Range with the Last-Modified date: 206" '[ "$CODE" = 206 ] && [ "$SIZE" = 10 ]'
fetch ir3 -r 10-19 -H 'If-Range: "stale"' "$URL/big"
check "If-Range mismatch: 200 with the full body" '[ "$CODE" = 200 ] && same "$T/ir3.body" "$ROOT/big"'

RC=0
out=$(curl -s -o /dev/null -o /dev/null -w '%{num_connects}\n' "$URL/small.txt" "$URL/small.txt") || RC=$?
check "keep-alive: the second request reuses the connection" '[ "$RC" = 0 ] && [ "$(echo $out)" = "1 0" ]'

fetch nf "$URL/nope"
check "missing file: 404" '[ "$CODE" = 404 ]'
fetch dir "$URL/dir/"
check "directory: 404, no listing" '[ "$CODE" = 404 ]'
fetch trav --path-as-is "$URL/../../../etc/passwd"
check "path traversal: 404" '[ "$CODE" = 404 ]'
fetch trav2 "$URL/%2e%2e/%2e%2e/etc/passwd"
check "encoded path traversal: 404" '[ "$CODE" = 404 ]'

# ------------------------------------------------------------ control, log
curl -s -X POST "$URL/__control/reset" >/dev/null
fetch a "$URL/small.txt"
fetch b -r 0-99 "$URL/big"
curl -s "$URL/__control/stats" >"$T/stats.json"
check "stats: requests and bytes per path" \
  'python3 -c "import json,sys; s=json.load(open(sys.argv[1])); assert s[\"requests\"]==2, s;
assert s[\"paths\"][\"/big\"]==dict(requests=1, bytes_sent=100), s; assert s[\"bytes_sent\"]==113, s" "$T/stats.json"'
check "log: one JSON line per request with the documented fields" \
  'tail -n1 "$T/server.log" | python3 -c "import json,sys; e=json.loads(sys.stdin.read());
assert (e[\"method\"], e[\"path\"], e[\"range\"]) == (\"GET\", \"/big\", \"bytes=0-99\"), e
assert (e[\"status\"], e[\"bytes_sent\"], e[\"fault\"]) == (206, 100, None), e"'
fetch bad -X POST --data-binary '[{"match":"*","fault":"nonsense"}]' "$URL/__control/rules"
check "control: an unknown fault is refused with 400" '[ "$CODE" = 400 ]'

# ------------------------------------------------------------ faults
rules '[{"match":"/big","fault":"status","code":503,"count":2,"retry_after":1}]'
fetch s1 "$URL/big"; c1=$CODE
fetch s2 "$URL/big"; c2=$CODE
fetch s3 "$URL/big"; c3=$CODE
check "status with count: 503, 503, then 200" '[ "$c1 $c2 $c3" = "503 503 200" ] && [ "$(hdr s1 retry-after)" = 1 ]'
curl -s "$URL/__control/rules" >"$T/rules-now.json"
check "control: GET rules shows the remaining count" 'grep -q "\"remaining\": 0" "$T/rules-now.json"'

rules '[{"match":"/small.*","fault":"status","code":500,"probability":0.5}]'
codes=""
for _ in $(seq 20); do fetch p "$URL/small.txt"; codes="$codes $CODE"; done
check "status with probability: some fail, some succeed" '[[ "$codes" == *500* ]] && [[ "$codes" == *200* ]]'

rules '[{"match":"/big","fault":"stall","seconds":30}]'
MAXT=1 fetch stall "$URL/big"
check "stall: headers, then the client times out" '[ "$RC" = 28 ] && [ "$SIZE" = 0 ] && grep -q "^HTTP/1.1 200" "$T/stall.hdr"'
rules '[{"match":"/big","fault":"stall","seconds":30,"after":5000}]'
MAXT=1 fetch stall2 "$URL/big"
check "stall after 5000 bytes" '[ "$RC" = 28 ] && [ "$SIZE" = 5000 ] && same "$T/stall2.body" <(slice 0 5000)'
rules '[{"match":"/big","fault":"stall_before_headers","seconds":30}]'
MAXT=1 fetch stallh "$URL/big"
check "stall_before_headers: nothing at all, client times out" '[ "$RC" = 28 ] && [ ! -s "$T/stallh.hdr" ]'

rules '[{"match":"/big","fault":"trickle","rate":20000}]'
t0=$(now); fetch trickle -r 0-29999 "$URL/big"; t1=$(now)
check "trickle: right bytes, at about the rate (30 kB at 20 kB/s)" \
  '[ "$RC" = 0 ] && same "$T/trickle.body" <(slice 0 30000) && elapsed_ge $t0 $t1 1.2'
MAXT=1 fetch trickle2 "$URL/big"
check "trickle: a whole file times out" '[ "$RC" = 28 ] && [ "$SIZE" -lt 100000 ]'

# 5000 bytes in bursts of 2000 with 0.6 s of silence after each: the right
# bytes, after the two pauses (1.2 s). With 2 s pauses, a client that gives
# up after 1 s has exactly the first burst.
rules '[{"match":"/big","fault":"burst","bytes":2000,"seconds":0.6}]'
t0=$(now); fetch burst -r 0-4999 "$URL/big"; t1=$(now)
check "burst: right bytes, after the pauses (5000 bytes in bursts of 2000, 0.6 s apart)" \
  '[ "$RC" = 0 ] && [ "$CODE" = 206 ] && same "$T/burst.body" <(slice 0 5000) && elapsed_ge $t0 $t1 1.2'
rules '[{"match":"/big","fault":"burst","bytes":2000,"seconds":2}]'
MAXT=1 fetch burst2 "$URL/big"
check "burst: silence after each burst" '[ "$RC" = 28 ] && [ "$SIZE" = 2000 ] && same "$T/burst2.body" <(slice 0 2000)'

# Header floods against libcurl's caps: one line of 200 kB (over its
# 100 KiB per line), 400 lines of 1 kB (over its 300 KiB in all, where that
# cap exists), and 20 lines that pass.
rules '[{"match":"/big","fault":"header_flood","size":200000}]'
fetch hf1 -r 0-99 "$URL/big"
check "header_flood: one 200 kB header line (curl: out of memory, its per-line cap)" '[ "$RC" = 27 ]'
rules '[{"match":"/big","fault":"header_flood","size":1024,"lines":400}]'
fetch hf2 -r 0-99 "$URL/big"
for _ in $(seq 20); do [ "$(loglines path=/big fault=header_flood)" = 2 ] && break; sleep 0.1; done
check "header_flood: 400 lines of 1 kB, over 409600 header bytes logged" \
  'tail -n1 "$T/server.log" | python3 -c "import json,sys; e=json.loads(sys.stdin.read());
assert e[\"fault\"] == \"header_flood\" and e[\"header_bytes\"] > 409600, e"'
rules '[{"match":"/big","fault":"header_flood","size":100,"lines":20}]'
fetch hf3 -r 0-99 "$URL/big"
check "header_flood: 20 lines of 100 bytes, then the right answer" \
  '[ "$RC" = 0 ] && [ "$CODE" = 206 ] && [ "$(grep -ac "^X-Flood-" "$T/hf3.hdr")" = 20 ] &&
   [ "$(grep -a "^X-Flood-19:" "$T/hf3.hdr" | wc -c)" = 100 ] && same "$T/hf3.body" <(slice 0 100)'

rules '[{"match":"/big","fault":"truncate","after":1000}]'
fetch trunc "$URL/big"
check "truncate: close after 1000 bytes (curl: partial file)" \
  '[ "$RC" = 18 ] && [ "$SIZE" = 1000 ] && same "$T/trunc.body" <(slice 0 1000)'
rules '[{"match":"/big","fault":"reset","after":1000}]'
fetch reset -r 0-99999 "$URL/big"
check "reset: RST after 1000 bytes (curl: recv failure)" '[ "$RC" = 56 ] && [ "$SIZE" -le 1000 ]'

rules '[{"match":"/big","fault":"endless"}]'
MAXT=1 fetch endless "$URL/big"
check "endless without length: close-delimited garbage beyond the file size" \
  '[ "$RC" = 28 ] && [ "$CODE" = 200 ] && [ -z "$(hdr endless content-length)" ] && [ "$SIZE" -gt "$SIZE_BIG" ]'
rules '[{"match":"/big","fault":"endless","length":true}]'
MAXT=5 fetch endless2 -r 0-99 "$URL/big"
check "endless with length: 200, real size declared, garbage body" \
  '[ "$RC" = 0 ] && [ "$CODE" = 200 ] && [ "$SIZE" = "$SIZE_BIG" ] && ! same "$T/endless2.body" "$ROOT/big"'

rules '[{"match":"/big","fault":"lying_length","declared":500}]'
fetch lying -r 0-999 "$URL/big"
check "lying_length: Content-Length 500 on a 1000-byte answer" \
  '[ "$(hdr lying content-length)" = 500 ] && [ "$SIZE" = 500 ] && same "$T/lying.body" <(slice 0 500)'
rules '[{"match":"/big","fault":"lying_length","declared":2000,"extra":200}]'
fetch lying2 -r 0-999 "$URL/big"
check "lying_length: body plus extra bytes, then close" \
  '[ "$RC" = 18 ] && [ "$SIZE" = 1200 ] && same <(head -c 1000 "$T/lying2.body") <(slice 0 1000)'
rules '[{"match":"/big","fault":"oversized_length"}]'
MAXT=1 fetch over "$URL/big"
check "oversized_length: Content-Length 10^15, streams until the client gives up" \
  '[ "$RC" = 28 ] && [ "$(hdr over content-length)" = 1000000000000000 ] && [ "$SIZE" -gt "$SIZE_BIG" ]'
rules '[{"match":"/big","fault":"chunked_more","extra":4096}]'
fetch chunked -r 0-9999 "$URL/big"
check "chunked_more: chunked body 4096 bytes longer than the range" \
  '[ "$RC" = 0 ] && [ "$(hdr chunked transfer-encoding)" = chunked ] && [ "$SIZE" = 14096 ] &&
   same <(head -c 10000 "$T/chunked.body") <(slice 0 10000)'

rules '[{"match":"/big","fault":"ignore_range"}]'
fetch ign -r 0-99 "$URL/big"
check "ignore_range: 200 and the whole file" '[ "$CODE" = 200 ] && same "$T/ign.body" "$ROOT/big"'
rules '[{"match":"/big","fault":"bad_content_range","header":"bytes 0-10/20"}]'
fetch bcr -r 100-199 "$URL/big"
check "bad_content_range: literal header, requested bytes" \
  '[ "$CODE" = 206 ] && [ "$(hdr bcr content-range)" = "bytes 0-10/20" ] && same "$T/bcr.body" <(slice 100 100)'
rules '[{"match":"/big","fault":"bad_content_range","header":"bytes 100-199/99999999999999999999"}]'
fetch bcr2 -r 100-199 "$URL/big"
check "bad_content_range: 20-digit total" '[ "$(hdr bcr2 content-range)" = "bytes 100-199/99999999999999999999" ]'
rules '[{"match":"/big","fault":"multipart"}]'
fetch mp -r 100-199 "$URL/big"
check "multipart: 206 multipart/byteranges holding the range" \
  '[ "$CODE" = 206 ] && [[ "$(hdr mp content-type)" == multipart/byteranges\;\ boundary=* ]] &&
   grep -aq "Content-Range: bytes 100-199/$SIZE_BIG" "$T/mp.body" && [ "$SIZE" -gt 100 ]'

rules '[{"match":"/big","fault":"change_etag"}]'
fetch ce1 -I "$URL/big"
fetch ce2 -I "$URL/big"
fetch ce3 -r 0-99 -H "If-Range: $(hdr ce2 etag)" "$URL/big"
check "change_etag: new ETag each time, If-Range gets the full body" \
  '[ "$(hdr ce1 etag)" != "$(hdr ce2 etag)" ] && [ "$CODE" = 200 ] && [ "$SIZE" = "$SIZE_BIG" ]'
fetch ce4 -r 0-99 "$URL/big"
check "change_etag: a plain Range still works" '[ "$CODE" = 206 ] && [ "$SIZE" = 100 ]'

rules '[{"match":"/big","fault":"redirect_loop"}]'
fetch loop -L --max-redirs 5 "$URL/big"
check "redirect_loop: curl gives up (too many redirects)" \
  '[ "$RC" = 47 ] && [ "$(hdr loop location)" = "/big?loop=6" ]'
rules "[{\"match\":\"/mirror/*\",\"fault\":\"redirect\",\"to\":\"http://127.0.0.1:$PORT/real{path}\"},
        {\"match\":\"/real/mirror/*\",\"fault\":\"redirect\",\"to\":\"/big\"}]"
fetch redir -L "$URL/mirror/x"
check "redirect: to another URL, {path} substituted" \
  '[ "$CODE" = 200 ] && same "$T/redir.body" "$ROOT/big" && [ "$(loglines path=/real/mirror/x status=302)" -ge 1 ]'

rules '[{"match":"/big","fault":"flip","offset":1000}]'
fetch flip "$URL/big"
check "flip: exactly byte 1000 differs" '[ "$(cmp -l "$T/flip.body" "$ROOT/big" | awk "{print \$1}" | tr "\n" " ")" = "1001 " ]'
fetch flip2 -r 900-1099 "$URL/big"
check "flip: also inside a range" '[ "$(cmp -l "$T/flip2.body" <(slice 900 200) | awk "{print \$1}" | tr "\n" " ")" = "101 " ]'
fetch flip3 -r 0-999 "$URL/big"
check "flip: ranges without the offset are intact" 'same "$T/flip3.body" <(slice 0 1000)'

rules '[{"match":"/big","fault":"gzip_bomb"}]'
fetch bomb "$URL/big"
check "gzip_bomb: Content-Encoding gzip, about 1 MB on the wire" \
  '[ "$(hdr bomb content-encoding)" = gzip ] && [ "$SIZE" -gt 500000 ] && [ "$SIZE" -lt 2000000 ]'
rules '[{"match":"/big","fault":"gzip_bomb","inflated":134217728}]'
n=$(curl -s --max-time 20 --compressed "$URL/big" | wc -c)
check "gzip_bomb: inflates to the size asked for (128 MiB)" '[ "$n" = 134217728 ]'

rules '[]'
check "log: faults are recorded" '[ "$(loglines fault=truncate bytes_sent=1000)" = 1 ]'

# ------------------------------------------------------------ TLS
t0=$(now)
if bash "$here/make-certs.sh" "$T/certs" >"$T/certs.out" 2>&1; then t1=$(now)
  ok "make-certs.sh ($(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f s", b - a}'))"
else not_ok "make-certs.sh"; sed 's/^/# /' "$T/certs.out"; fi
C=$T/certs
check "certs: all files present" \
  'missing=; for f in ca.pem ca.key server.pem server.key client.pem client.key other-ca.pem other-ca.key \
     bad-client.pem bad-client.key expired.pem expired.key server.pin; do [ -s "$C/$f" ] || missing+=" $f"; done
   [ -z "$missing" ] || { echo "missing:$missing"; false; }'
check "certs: chain, SAN, clientAuth, expiry" \
  'openssl verify -CAfile "$C/ca.pem" "$C/server.pem" "$C/client.pem" &&
   openssl x509 -in "$C/server.pem" -noout -ext subjectAltName | grep -q "DNS:localhost, IP Address:127.0.0.1" &&
   openssl x509 -in "$C/client.pem" -noout -ext extendedKeyUsage | grep -q "Client Authentication" &&
   ! openssl verify -CAfile "$C/ca.pem" "$C/bad-client.pem" && ! openssl x509 -in "$C/expired.pem" -noout -checkend 0 &&
   grep -q "^sha256//[A-Za-z0-9+/]\{43\}=$" "$C/server.pin"'

start_server tls --tls-cert "$C/server.pem" --tls-key "$C/server.key" --tls-ca "$C/ca.pem" --require-client-cert
TLS=https://localhost:$PORT
TLSR=(--resolve "localhost:$PORT:127.0.0.1")
CLIENT=(--cacert "$C/ca.pem" --cert "$C/client.pem" --key "$C/client.key")
fetch tls1 "${TLSR[@]}" "${CLIENT[@]}" -r 0-99 "$TLS/big"
check "TLS: client cert accepted, ranged GET works" '[ "$RC" = 0 ] && [ "$CODE" = 206 ] && same "$T/tls1.body" <(slice 0 100)'
fetch tls2 "${CLIENT[@]}" "https://127.0.0.1:$PORT/big"
check "TLS: IP SAN 127.0.0.1 verifies" '[ "$RC" = 0 ] && same "$T/tls2.body" "$ROOT/big"'
fetch tls3 "${TLSR[@]}" --cacert "$C/ca.pem" "$TLS/big"
check "TLS: no client cert is refused" '[ "$RC" != 0 ] && [ "$CODE" != 200 ]'
fetch tls4 "${TLSR[@]}" --cacert "$C/ca.pem" --cert "$C/bad-client.pem" --key "$C/bad-client.key" "$TLS/big"
check "TLS: client cert from another CA is refused" '[ "$RC" != 0 ] && [ "$CODE" != 200 ]'
fetch tls5 "${TLSR[@]}" --cacert "$C/other-ca.pem" --cert "$C/client.pem" --key "$C/client.key" "$TLS/big"
check "TLS: wrong CA on the client side fails verification" '[ "$RC" = 60 ]'
fetch tls6 "${TLSR[@]}" "${CLIENT[@]}" --pinnedpubkey "$(cat "$C/server.pin")" -r 0-9 "$TLS/big"
check "TLS: server.pin matches (--pinnedpubkey)" '[ "$RC" = 0 ] && [ "$CODE" = 206 ]'
fetch tls7 "${TLSR[@]}" "${CLIENT[@]}" --pinnedpubkey "sha256//$(printf "%043d=" 0)" "$TLS/big"
check "TLS: a wrong pin fails" '[ "$RC" = 90 ]'
check "TLS: failed handshakes do not stop the server" \
  'curl -s "${CLIENT[@]}" "https://127.0.0.1:$PORT/__control/stats" | grep -q "\"tls_failures\": [1-9]"'
TLS_PID=$SPID

start_server expired --tls-cert "$C/expired.pem" --tls-key "$C/expired.key"
fetch exp --resolve "localhost:$PORT:127.0.0.1" --cacert "$C/ca.pem" "https://localhost:$PORT/small.txt"
check "TLS: expired server cert is rejected" '[ "$RC" = 60 ]'
fetch exp2 -k "https://127.0.0.1:$PORT/small.txt"
check "TLS: expired cert server still serves with -k" '[ "$RC" = 0 ] && [ "$CODE" = 200 ]'
EXP_PID=$SPID

# ------------------------------------------------------------ shutdown
rules '[{"match":"/big","fault":"stall"}]'
curl -s --max-time 20 -o /dev/null "$URL/big" &
CURL_PID=$!
sleep 0.3
t0=$(now)
kill -TERM "$MAIN_PID" "$TLS_PID" "$EXP_PID"
rc=0; wait "$MAIN_PID" || rc=$?
t1=$(now)
wait "$CURL_PID" 2>/dev/null
check "SIGTERM: clean exit (0) within 2 s despite a stalled client" '[ "$rc" = 0 ] && ! elapsed_ge $t0 $t1 2'
check "SIGTERM: TLS servers exit too" 'wait "$TLS_PID" && wait "$EXP_PID"'
check "servers wrote nothing on stderr" '! grep -q . "$T/server.err" "$T/tls.err" "$T/expired.err" || { cat "$T"/*.err; false; }'

echo "1..$N"
[ "$FAILED" = 0 ]
