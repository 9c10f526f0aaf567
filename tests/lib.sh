# Shared helpers for deltafetch's shell tests. Each test script sources this,
# prints TAP (one "ok"/"not ok" line per check) and ends with `finish`.
# Environment (set by tests/meson.build): DF (the CLI), DF_GEN_TREE,
# DF_TEST_TOOL, DF_SRCDIR (the source tree).
set -u
export PATH="$PATH:/usr/sbin:/sbin"

T=$(mktemp -d "${TMPDIR:-/tmp}/deltafetch-test.XXXXXX")
TAP_N=0
TAP_FAILED=0
cleanup_hooks=()
cleanup () {
  local h
  for h in "${cleanup_hooks[@]}"; do eval "$h" || true; done
  if [ "$TAP_FAILED" = 0 ] && [ -z "${DF_KEEP_TMP:-}" ]; then rm -rf "$T"; else echo "# kept $T" >&2; fi
}
trap cleanup EXIT

ok () { TAP_N=$((TAP_N + 1)); echo "ok $TAP_N - $*"; }
not_ok () { TAP_N=$((TAP_N + 1)); TAP_FAILED=$((TAP_FAILED + 1)); echo "not ok $TAP_N - $*"; }
check () { # check DESCRIPTION CMD...: ok when CMD succeeds
  local d=$1; shift
  if "$@" >"$T/check.out" 2>&1; then ok "$d"; else not_ok "$d"; sed 's/^/# /' "$T/check.out"; fi
}
finish () { echo "1..$TAP_N"; [ "$TAP_FAILED" = 0 ]; }
diag () { echo "# $*"; }

# expect_exit CODE DESCRIPTION CMD...: ok when CMD exits with CODE and, for
# a failure, prints exactly one line on stderr.
expect_exit () {
  local want=$1 d=$2; shift 2
  local rc=0
  "$@" >"$T/ee.out" 2>"$T/ee.err" || rc=$?
  local lines
  lines=$(wc -l <"$T/ee.err")
  if [ "$rc" = "$want" ] && { [ "$want" = 0 ] || [ "$lines" = 1 ]; }; then
    ok "$d (exit $rc)"
    [ "$want" = 0 ] || diag "stderr: $(cat "$T/ee.err")"
  else
    not_ok "$d: exit $rc (want $want), $lines stderr lines"
    sed 's/^/# /' "$T/ee.err" "$T/ee.out" | head -20
  fi
}

# make_tree NAME VERSION [gen-tree options...]: tree at $T/NAME
make_tree () {
  local name=$1 version=$2; shift 2
  "$DF_GEN_TREE" --seed="${SEED:-42}" --version="$version" "$@" "$T/$name"
}

# make_src_repo REPO MODE: commits trees v1 and v2 (already made) on ref "os"
make_src_repo () {
  local repo=$1 mode=$2
  ostree init --repo="$repo" --mode="$mode"
  ostree commit --repo="$repo" -b os --tree=dir="$T/v1" -s v1 --timestamp="2024-01-01T00:00:00Z" >/dev/null
  ostree commit --repo="$repo" -b os --tree=dir="$T/v2" -s v2 --timestamp="2024-02-01T00:00:00Z" >/dev/null
}

rev () { ostree rev-parse --repo="$1" "$2"; }

# keypair NAME: an ed25519 key pair made with openssl in the format of
# `ostree sign`: $T/NAME.secret (base64 seed + public key), $T/NAME.pub
keypair () {
  openssl genpkey -algorithm ed25519 -out "$T/$1.pem" 2>/dev/null || return 1
  openssl pkey -in "$T/$1.pem" -outform DER | tail -c 32 >"$T/$1.seed"
  openssl pkey -in "$T/$1.pem" -pubout -outform DER | tail -c 32 >"$T/$1.raw"
  base64 -w0 "$T/$1.raw" >"$T/$1.pub"
  cat "$T/$1.seed" "$T/$1.raw" | base64 -w0 >"$T/$1.secret"
}

# serve_pair [make_tree options...]: trees v1 and v2 and the archive repo
# $T/www/repo (sets src, c1, c2) holding both commits on ref os, no delta
# yet. Exits the test when the trees cannot be made.
serve_pair () {
  make_tree v1 1 "$@" && make_tree v2 2 "$@" || { not_ok "generate trees"; finish; exit 1; }
  mkdir -p "$T/www"
  src=$T/www/repo
  make_src_repo "$src" archive
  c1=$(rev "$src" os^) c2=$(rev "$src" os)
}

# publish_pair: serve_pair, plus the native from-scratch delta to v1 and
# the v1 -> v2 delta inside the repo.
publish_pair () {
  serve_pair
  "$DF" generate -q --repo="$src" --empty --to=os^ >/dev/null
  "$DF" generate -q --repo="$src" --from=os^ --to=os >/dev/null
}

# make_releases N [make_tree options...]: N releases of an OS tree, as a
# fleet keeps them: r1 is tree v1, r2 tree v2, and each later one the one
# before with a dozen files patched and etc/release changed. Committed in
# order on ref os of the archive repo $T/www/repo (sets src; rel[K] is
# release K's commit). Exits the test when the trees cannot be made.
make_releases () {
  local n=$1 k f; shift
  make_tree r1 1 "$@" && make_tree r2 2 "$@" || { not_ok "generate trees"; finish; exit 1; }
  for ((k = 3; k <= n; k++)); do
    cp -a "$T/r$((k - 1))" "$T/r$k"
    find "$T/r$k" -type f -size +20k | sort | awk -v k="$k" 'NR % 9 == k % 9' | while read -r f; do
      printf 'release %s patch' "$k" | dd of="$f" bs=1 seek=4096 conv=notrunc status=none
    done
    mkdir -p "$T/r$k/etc" && echo "release $k" >"$T/r$k/etc/release"
  done
  mkdir -p "$T/www"
  src=$T/www/repo
  ostree init --repo="$src" --mode=archive
  rel=()
  for ((k = 1; k <= n; k++)); do
    ostree commit --repo="$src" -b os --tree=dir="$T/r$k" -s "release $k" \
      --timestamp="2024-$(printf %02d "$k")-01T00:00:00Z" >/dev/null
    rel[k]=$(rev "$src" os)
  done
}

# objects_list REPO: sorted list of objects/ files, for "nothing written" checks
objects_list () { (cd "$1/objects" && find . -type f | sort); }

# try_refused NAME CODE DELTA [apply args...]: apply DELTA into a fresh copy
# of $base (a repo whose ref os is $c1): it must fail with CODE and one line,
# and leave objects/, the ref and fsck exactly as they were.
try_refused () {
  local name=$1 code=$2 delta=$3; shift 3
  local repo=$T/repo-$name
  rm -rf "$repo"; cp -a "$base" "$repo"
  local before
  before=$(objects_list "$repo")
  expect_exit "$code" "$name" "$DF" apply --repo="$repo" --ref=os "$@" "$delta"
  check "$name: objects/ unchanged" test "$before" = "$(objects_list "$repo")"
  check "$name: ref unchanged" test "$(rev "$repo" os)" = "$c1"
  check "$name: repo still fsck-clean" ostree fsck --repo="$repo"
}

# kill_restart_at_once N MAX_MS REPO PRISTINE NEW CMD...: runs CMD (an apply
# or fetch into REPO, which must exec deltafetch) in the background, kills it
# with SIGKILL after 50 ms plus a random part of MAX_MS and starts it again
# at once, as an agent or systemd restarts it, until N kills have landed. A
# run that ends on its own must succeed: exit 0, never 8 (the repository
# busy); once REPO's ref os is on NEW the update starts over from PRISTINE.
# Sets AT_KILLS, AT_RUNS and AT_BUSY; failures are reported as they happen.
kill_restart_at_once () {
  local n=$1 max=$2 repo=$3 pristine=$4 new=$5; shift 5
  local pid delay rc
  AT_KILLS=0 AT_RUNS=0 AT_BUSY=0
  while [ "$AT_KILLS" -lt "$n" ] && [ "$AT_RUNS" -lt $((n * 8)) ]; do
    AT_RUNS=$((AT_RUNS + 1))
    "$@" >"$T/at.out" 2>&1 &
    pid=$!
    delay=$(( 50 + RANDOM % (max + 1) ))
    sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
    if kill -9 "$pid" 2>/dev/null; then
      wait "$pid" 2>/dev/null
      AT_KILLS=$((AT_KILLS + 1))
    else
      wait "$pid"; rc=$?
      [ "$rc" = 12 ] && AT_BUSY=$((AT_BUSY + 1))
      [ "$rc" = 0 ] || { not_ok "a restarted run exited $rc"; sed 's/^/# /' "$T/at.out"; }
      [ "$(rev "$repo" os)" = "$new" ] && { rm -rf "$repo"; cp -a "$pristine" "$repo"; }
    fi
  done
}

# checkout_matches REPO COMMIT TREE: fsck clean and checkout identical to TREE
checkout_matches () {
  local repo=$1 commit=$2 tree=$3 co
  co=$(mktemp -d "$T/co.XXXXXX")
  rmdir "$co"
  ostree fsck --repo="$repo" >"$T/fsck.out" 2>&1 || { cat "$T/fsck.out"; return 1; }
  ostree checkout --repo="$repo" "$commit" "$co" || return 1
  bash "$DF_SRCDIR/tests/tree-compare.sh" "$tree" "$co" || return 1
  rm -rf "$co"
}

# check_exports LIB: LIB's exported symbols are exactly the public
# header's DF_PUBLIC functions.
check_exports () {
  nm -D --defined-only "$1" | awk '{print $3}' | grep -v '^_' | sort >"$T/exports"
  grep -oE '^DF_PUBLIC [^(]*\(' "$DF_SRCDIR/engine/include/deltafetch.h" | grep -oE 'df_[a-z_0-9]+ *\($' |
    tr -d ' (' | sort >"$T/declared"
  check "exported symbols equal the header's DF_PUBLIC functions ($(wc -l <"$T/declared"))" diff "$T/exports" "$T/declared"
}

# start_nginx_mtls ROOT CERTS [LISTEN-OPTIONS]: makes a CA, server and
# client certificates in CERTS (tests/make-certs.sh), then serves ROOT over
# HTTPS that requires a client certificate of that CA (start_nginx).
start_nginx_mtls () {
  bash "$DF_SRCDIR/tests/make-certs.sh" "$2" >/dev/null 2>&1 &&
    start_nginx "$1" "ssl ${3:-}" "ssl_certificate $2/server.pem; ssl_certificate_key $2/server.key;
      ssl_client_certificate $2/ca.pem; ssl_verify_client on;"
}

# start_nginx ROOT [LISTEN-OPTIONS [SERVER-DIRECTIVES]]: serves ROOT on
# 127.0.0.1:$NGINX_PORT until the test ends, e.g.
#   start_nginx "$T/www" "ssl http2" "ssl_certificate ...; ssl_certificate_key ...;"
# Several servers may run at once; each call sets NGINX_PORT and NGINX_LOG.
start_nginx () {
  local root=$1 listen_opts=${2:-} extra=${3:-} try
  NGINX_N=$(( ${NGINX_N:-0} + 1 ))
  local d=$T/nginx$([ "$NGINX_N" = 1 ] || echo "$NGINX_N")
  local conf=$d.conf
  command -v nginx >/dev/null || { echo "nginx is not installed" >&2; return 1; }
  mkdir -p "$d"
  chmod 755 "$T"  # nginx workers run unprivileged
  for try in 1 2 3 4 5 6 7 8; do
    NGINX_PORT=$((20000 + RANDOM % 30000))
    cat >"$conf" <<CONF
daemon on;
worker_processes 1;
pid $d/pid;
error_log $d/error.log;
events { worker_connections 64; }
http {
  access_log $d/access.log;
  client_body_temp_path $d/body;
  proxy_temp_path $d/proxy;
  fastcgi_temp_path $d/fastcgi;
  uwsgi_temp_path $d/uwsgi;
  scgi_temp_path $d/scgi;
  types { }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:$NGINX_PORT $listen_opts;
    root $root;
    $extra
  }
}
CONF
    if nginx -c "$conf" -p "$d" 2>"$d/start.err"; then
      cleanup_hooks+=("kill \$(cat '$d/pid') 2>/dev/null")
      NGINX_LOG=$d/access.log
      return 0
    fi
  done
  cat "$d/start.err" >&2
  return 1
}
