#!/bin/bash
# The example agent (examples/agent/deltafetch-agent.c, on df_fetch_async())
# against nginx, through the remote's config: an update comes in; SIGTERM
# mid-download stops it within a second (the agent measures the time from
# the signal to the fetch's end) and the next run resumes; and each failure
# an agent meets falls in its category: a busy repository, a dead mirror, a
# stale index (a superblock replaced under its index), a bad signature, a
# full disk. And the systemd unit's command, run as the unit runs it.
. "$(dirname "$0")/lib.sh"

keypair good && keypair other || { not_ok "openssl made no ed25519 keys"; finish; exit 1; }
serve_pair
"$DF" generate -q --repo="$src" --empty --to="$c1" >/dev/null
"$DF" generate -q --repo="$src" --from="$c1" --to="$c2" >/dev/null
publish () { # publish COMMIT: os -> COMMIT in a summary signed by the good key
  ostree refs --repo="$src" --delete os && ostree refs --repo="$src" --create=os "$1" &&
    ostree summary --repo="$src" -u && "$DF_TEST_TOOL" sign-summary "$src" "$T/good.secret"
}
publish "$c1"
start_nginx "$T/www" || { not_ok "nginx did not start"; finish; exit 1; }
url=http://127.0.0.1:$NGINX_PORT/repo
# A slow server for the cancellation: 48 KiB/s per connection.
start_nginx "$T/www" "" "limit_rate 48k;" || { not_ok "nginx (slow) did not start"; finish; exit 1; }
slow_url=http://127.0.0.1:$NGINX_PORT/repo
export G_MESSAGES_DEBUG=

# agent EXPECTED-EXIT DESCRIPTION REPO ARGS...: runs the agent, its log in $T/agent.log
agent () {
  local want=$1 d=$2 repo=$3; shift 3
  local rc=0
  "$DF_AGENT" --repo="$repo" "$@" >"$T/agent.log" 2>&1 || rc=$?
  if [ "$rc" = "$want" ]; then ok "$d (exit $rc)"; else
    not_ok "$d: exit $rc (want $want)"
    sed 's/^/# /' "$T/agent.log" | tail -15
  fi
}
new_device () { # new_device DIR URL [remote options]: a repository with remote origin
  local dir=$1 u=$2; shift 2
  ostree init --repo="$dir" --mode=bare
  ostree remote add --repo="$dir" --no-gpg-verify --set=sign-verify-summary=true \
    --set=verification-ed25519-key="$(cat "$T/good.pub")" "$@" origin "$u"
}

dev=$T/dev
new_device "$dev" "$url"
agent 0 "the agent brings v1 in through the remote" "$dev" origin:os
check "its log says the commit is ready to deploy" grep -q "commit $c1 is in the repository" "$T/agent.log"
check "its log names the phases" grep -q "phase download" "$T/agent.log"
check "v1 fsck-clean and identical" checkout_matches "$dev" "$c1" "$T/v1"

# Cancellation: SIGTERM two seconds into a slow download.
publish "$c2"
sdev=$T/sdev
new_device "$sdev" "$slow_url"
ostree pull-local --repo="$sdev" "$src" "$c1" >/dev/null && ostree refs --repo="$sdev" --create=origin:os "$c1"
"$DF_AGENT" --repo="$sdev" origin:os >"$T/cancel.log" 2>&1 &
pid=$!
sleep 2
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
check "SIGTERM: the agent exits 130" test "$rc" = 130
ms=$(sed -n 's/.*the fetch stopped \([0-9]*\) ms after the signal.*/\1/p' "$T/cancel.log")
diag "the fetch stopped $ms ms after SIGTERM"
check "the fetch stopped within a second of the signal ($ms ms)" test -n "$ms" -a "${ms:-9999}" -lt 1000
check "the cancelled run counted its bytes" grep -q "stopped (cancelled)" "$T/cancel.log"
bytes1=$(sed -n 's/.*stopped (cancelled) after \([0-9]*\) bytes downloaded.*/\1/p' "$T/cancel.log")
agent 0 "the next run resumes and completes" "$sdev" origin:os
check "v2 fsck-clean and identical" checkout_matches "$sdev" "$c2" "$T/v2"
bytes2=$(sed -n 's/.*(\([0-9]*\) bytes downloaded).*/\1/p' "$T/agent.log")
delta=$(find "$src/deltafetch/v1/deltas/$c1-$c2" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
diag "cancel and resume: $bytes1 + $bytes2 bytes downloaded for a $delta-byte delta (index and superblock twice)"
# What a cancel costs (df_fetch_async()'s documentation): at most the
# ranges in flight, a range (2 MiB) a connection (8); the resumed run alone
# no more than the delta.
check "the resumed run downloaded no more than the delta and its small files" test "$bytes2" -le "$((delta + 65536))"
check "cancel and resume cost at most the ranges in flight ($((bytes1 + bytes2 - delta)) bytes over the delta)" \
  test "$((bytes1 + bytes2))" -le "$((delta + 8 * 2097152 + 65536))"

# Failures, each in its category.
busy=$T/busy
new_device "$busy" "$url"
flock "$busy/tmp" sleep 20 &
holder=$!
sleep 0.3
agent 75 "a busy repository: retry later" "$busy" --lock-timeout=1 origin:os
check "its log says busy" grep -q "retry later (busy)" "$T/agent.log"
kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null

printf 'http://127.0.0.1:1/dead\n%s\n' "$url" >"$T/mirrors"
mdev=$T/mdev
new_device "$mdev" "mirrorlist=file://$T/mirrors"
agent 0 "a dead mirror: demoted, the next one serves" "$mdev" origin:os
check "its log says the mirror was demoted" grep -q "mirror http://127.0.0.1:1/dead demoted" "$T/agent.log"

bdev=$T/bdev
ostree init --repo="$bdev" --mode=bare
ostree remote add --repo="$bdev" --no-gpg-verify --set=sign-verify-summary=true \
  --set=verification-ed25519-key="$(cat "$T/other.pub")" origin "$url"
agent 65 "a summary signed by another key: update refused" "$bdev" origin:os
check "its log says untrusted" grep -q "update refused (untrusted)" "$T/agent.log"

# A stale index: the superblock replaced (made again) under the index.
cp -a "$T/www/repo" "$T/www/stale"
"$DF" generate -q --repo="$T/www/stale" --from="$c1" --to="$c2" --level=3 --out="$T/again" >/dev/null
cp "$T/again/superblock" "$T/www/stale/deltafetch/v1/deltas/$c1-$c2/superblock"
idev=$T/idev
ostree init --repo="$idev" --mode=bare
ostree remote add --repo="$idev" --no-gpg-verify origin "${url%/repo}/stale"
ostree pull-local --repo="$idev" "$src" "$c1" >/dev/null && ostree refs --repo="$idev" --create=origin:os "$c1"
agent 75 "a stale index (superblock and index disagree): retry later" "$idev" origin:os
check "its log says network" grep -q "retry later (network)" "$T/agent.log"

if [ "$(id -u)" = 0 ]; then
  mnt=$T/small
  mkdir -p "$mnt"
  if mount -t tmpfs -o size=1m tmpfs "$mnt"; then
    cleanup_hooks+=("umount '$mnt'")
    new_device "$mnt/repo" "$url"
    agent 75 "a full disk: retry later" "$mnt/repo" origin:os
    check "its log says no-space" grep -q "retry later (no-space)" "$T/agent.log"
  else
    not_ok "mount a tmpfs"
  fi
else
  diag "not root: the full-disk case is skipped"
fi

# The systemd unit's command, as the unit runs it for instance origin:os.
unit=$DF_SRCDIR/dist/systemd/deltafetch-pull@.service
check "the unit and its timer exist" test -s "$unit" -a -s "${unit%.service}.timer"
cmd=$(sed -n 's/^ExecStart=//p' "$unit" | sed "s|/usr/bin/deltafetch|$DF|; s|%I|origin:os|g")
udev=$T/udev
new_device "$udev" "$url"
check "ExecStart for origin:os brings v2 in (\$OSTREE_REPO)" env OSTREE_REPO="$udev" $cmd
check "v2 fsck-clean and identical" checkout_matches "$udev" "$c2" "$T/v2"
if command -v systemd-analyze >/dev/null; then
  mkdir -p "$T/units"
  cp "$unit" "${unit%.service}.timer" "$T/units/"
  sed -i "s|/usr/bin/deltafetch|$DF|" "$T/units/deltafetch-pull@.service"
  check "systemd-analyze verify accepts the unit and its timer" bash -c "cd '$T/units' &&
    systemd-analyze verify --man=no ./deltafetch-pull@.service ./deltafetch-pull@.timer"
fi

finish
