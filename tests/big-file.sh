#!/bin/bash
# A commit holding a 1 GiB file: apply, and fetch from nginx, stay within
# the default 64 MiB memory budget (peak RSS measured with getrusage and
# printed), and the results are identical to the source tree.
. "$(dirname "$0")/lib.sh"
SIZE=${DF_BIG_FILE_SIZE:-1073741824}

make_tree v1 1 --no-owner --large-file="$SIZE" && make_tree v2 2 --no-owner --large-file="$SIZE" || { not_ok "trees"; finish; exit 1; }
src=$T/src
make_src_repo "$src" bare
c1=$(rev "$src" os^) c2=$(rev "$src" os)
# Into the repository itself (with its index), which nginx serves below.
"$DF" generate -q --repo="$src" --empty --to=os^ --level=3 >/dev/null
"$DF" generate -q --repo="$src" --from=os^ --to=os --level=3 >/dev/null
ln -s "$src/deltafetch/v1/deltas/$c1" "$T/scratch"
ln -s "$src/deltafetch/v1/deltas/$c1-$c2" "$T/delta"
diag "scratch delta $(du -shL "$T/scratch" | cut -f1), update delta $(du -shL "$T/delta" | cut -f1)"
# The update's parts each make at most 64 MiB of objects, so the file is
# rebuilt by several parts (and workers), not one.
check "update delta: parts of at most 64 MiB of output, so several" bash -c "'$DF' show --json '$T/delta' | python3 -c '
import json, sys; d = json.load(sys.stdin)
content = [p for p in d[\"parts\"][1:]]
assert len(content) >= $SIZE // (64 << 20), len(content)'"
repo=$T/dev
ostree init --repo="$repo" --mode=bare
# within_budget NAME CMD...: CMD succeeds with a peak RSS under 64 MiB
within_budget () {
  local name=$1 rc kib
  shift
  "$DF_TEST_TOOL" maxrss "$@" >"$T/run.out" 2>"$T/run.rss"
  rc=$?
  kib=$(sed -n 's/^maxrss-kib //p' "$T/run.rss")
  sed 's/^/# /' "$T/run.out"
  diag "$name: peak RSS $((kib / 1024)) MiB ($kib KiB)"
  check "$name succeeded" test "$rc" = 0
  # Under AddressSanitizer (tests/sanitize-run.sh) shadow memory and
  # quarantine inflate RSS several times: the bound is the plain build's.
  if [ -n "${DF_SANITIZED:-}" ]; then ok "$name peak RSS: not judged under sanitizers"; else
    check "$name peak RSS $((kib / 1024)) MiB < 64 MiB" test "${kib:-999999}" -lt 65536; fi
}

for d in scratch delta; do
  c=$c1; [ $d = delta ] && c=$c2
  within_budget "apply $d" "$DF" apply --repo="$repo" --commit="$c" --ref=os "$T/$d"
done
check "fsck + checkout identical to v2" checkout_matches "$repo" "$c2" "$T/v2"

if start_nginx "$T"; then
  repo=$T/dev-fetch
  ostree init --repo="$repo" --mode=bare
  for c in "$c1" "$c2"; do
    within_budget "fetch $c" "$DF" fetch --repo="$repo" --url="http://127.0.0.1:$NGINX_PORT/src" --commit="$c" --ref=os
  done
  check "fetched: fsck + checkout identical to v2" checkout_matches "$repo" "$c2" "$T/v2"
else
  not_ok "nginx did not start"
fi
finish
