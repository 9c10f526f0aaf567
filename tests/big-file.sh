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
repo=$T/dev
ostree init --repo="$repo" --mode=bare
for d in scratch delta; do
  c=$c1; [ $d = delta ] && c=$c2
  "$DF_TEST_TOOL" maxrss "$DF" apply --repo="$repo" --commit="$c" --ref=os "$T/$d" >"$T/$d.out" 2>"$T/$d.rss"
  rc=$?
  kib=$(sed -n 's/^maxrss-kib //p' "$T/$d.rss")
  sed 's/^/# /' "$T/$d.out"
  diag "apply $d: peak RSS $((kib / 1024)) MiB ($kib KiB)"
  check "apply $d succeeded" test "$rc" = 0
  check "apply $d peak RSS $((kib / 1024)) MiB < 64 MiB" test "$kib" -lt 65536
done
check "fsck + checkout identical to v2" checkout_matches "$repo" "$c2" "$T/v2"

if start_nginx "$T"; then
  repo=$T/dev-fetch
  ostree init --repo="$repo" --mode=bare
  for c in "$c1" "$c2"; do
    "$DF_TEST_TOOL" maxrss "$DF" fetch --repo="$repo" --url="http://127.0.0.1:$NGINX_PORT/src" --commit="$c" --ref=os \
      >"$T/fetch.out" 2>"$T/fetch.rss"
    rc=$?
    kib=$(sed -n 's/^maxrss-kib //p' "$T/fetch.rss")
    sed 's/^/# /' "$T/fetch.out"
    diag "fetch $c: peak RSS $((kib / 1024)) MiB ($kib KiB)"
    check "fetch $c succeeded" test "$rc" = 0
    check "fetch $c peak RSS $((kib / 1024)) MiB < 64 MiB" test "$kib" -lt 65536
  done
  check "fetched: fsck + checkout identical to v2" checkout_matches "$repo" "$c2" "$T/v2"
else
  not_ok "nginx did not start"
fi
finish
