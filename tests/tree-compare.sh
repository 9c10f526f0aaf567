#!/bin/bash
# tree-compare.sh [--no-owner] [--no-xattrs] A B
#
# Exits 0 when directory trees A and B are identical in: the set of paths,
# file types, regular-file content, permission bits (incl. setuid/setgid/
# sticky), uid/gid, symlink targets and xattrs (security.selinux ignored).
# Otherwise prints one line per differing path to stderr and exits 1.
# Usage errors (and trees that cannot be read) exit 2.
#
# Not compared: timestamps, hard-link counts (an OSTree checkout hardlinks
# identical objects) and directory sizes (filesystem-specific). The top-level
# directories themselves are not compared either: their metadata belongs to
# wherever the tree was put (e.g. a checkout target), not to the tree.
#
# The listing is one find and one getfattr per tree; only regular files
# whose type and size already match are cmp'd, in parallel batches.
# Paths containing newlines are not supported.

set -euo pipefail

prog=tree-compare.sh

usage ()
{
  echo "usage: $prog [--no-owner] [--no-xattrs] A B" >&2
  exit 2
}

compare_owner=1
compare_xattrs=1
args=()
while (($#)); do
  case $1 in
    --no-owner) compare_owner=0 ;;
    --no-xattrs) compare_xattrs=0 ;;
    -h|--help) usage ;;
    --) shift; args+=("$@"); break ;;
    -*) echo "$prog: unknown option $1" >&2; usage ;;
    *) args+=("$1") ;;
  esac
  shift
done
((${#args[@]} == 2)) || usage
A=${args[0]}
B=${args[1]}
for d in "$A" "$B"; do
  if [[ ! -d $d ]]; then
    echo "$prog: $d: not a directory" >&2
    exit 2
  fi
done
if ((compare_xattrs)) && ! command -v getfattr >/dev/null; then
  echo "$prog: getfattr not found (install the attr package, or use --no-xattrs)" >&2
  exit 2
fi

export LC_ALL=C
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail ()
{
  echo "$prog: $*" >&2
  exit 2
}

# One NUL-terminated record per path below the top: path, type, mode, uid,
# gid, size, symlink target (last, so a target with tabs survives).
list_tree ()
{
  (cd "$1" && find . -mindepth 1 -printf '%P\t%y\t%#m\t%U\t%G\t%s\t%l\0') > "$2" \
    || fail "cannot list $1"
}
list_tree "$A" "$tmp/a.list"
list_tree "$B" "$tmp/b.list"

# Metadata comparison. Writes "path<TAB>message" lines to diffs and the
# NUL-terminated paths of same-size regular files present in both to cmp.
awk -v fa="$tmp/a.list" -v owner="$compare_owner" -v na="$A" -v nb="$B" \
    -v cmplist="$tmp/cmp" '
  BEGIN { RS = "\0"; FS = "\t"; printf "" > cmplist }
  {
    path = $1; type = $2; mode = $3; uid = $4; gid = $5; size = $6; target = $7
    for (i = 8; i <= NF; i++)
      target = target "\t" $i
    # Symlink permissions are meaningless on Linux; other sizes are fs noise.
    if (type == "l")
      mode = "-"
    if (type != "f")
      size = "-"
    if (FILENAME == fa) {
      T[path] = type; M[path] = mode; U[path] = uid; G[path] = gid
      S[path] = size; L[path] = target
      next
    }
    if (!(path in T)) {
      print path "\tonly in " nb
      next
    }
    seen[path] = 1
    if (T[path] != type) {
      print path "\ttype " T[path] " != " type
      next
    }
    msg = ""
    if (M[path] != mode)
      msg = msg "; mode " M[path] " != " mode
    if (owner && U[path] != uid)
      msg = msg "; uid " U[path] " != " uid
    if (owner && G[path] != gid)
      msg = msg "; gid " G[path] " != " gid
    if (type == "l" && L[path] != target)
      msg = msg "; target \"" L[path] "\" != \"" target "\""
    if (type == "f" && S[path] != size)
      msg = msg "; size " S[path] " != " size
    else if (type == "f")
      printf "%s%c", path, 0 > cmplist
    if (msg != "")
      print path "\t" substr(msg, 3)
  }
  END {
    for (p in T)
      if (!(p in seen))
        print p "\tonly in " na
  }
' "$tmp/a.list" "$tmp/b.list" > "$tmp/diffs"

# Content of same-size regular files. cmp exits 1 on a difference, >1 on
# trouble (e.g. unreadable), which we report as a difference too.
jobs=$(nproc 2>/dev/null || echo 4)
export TC_A="$A" TC_B="$B"
# shellcheck disable=SC2016 # expanded by the inner bash, not here
xargs -0 -r -P "$jobs" -n 64 bash -c '
  for p; do
    rc=0
    cmp -s -- "$TC_A/$p" "$TC_B/$p" || rc=$?
    if ((rc == 1)); then
      printf "%s\tcontent differs\n" "$p"
    elif ((rc > 1)); then
      printf "%s\tcannot compare content\n" "$p"
    fi
  done
' _ < "$tmp/cmp" >> "$tmp/diffs"

# Xattrs: getfattr -R prints "# file: ./path" followed by name=0xhex lines.
# The order of names is filesystem-specific, hence the sort.
if ((compare_xattrs)); then
  list_xattrs ()
  {
    (cd "$1" && getfattr -R -P -h -d -m - -e hex . 2>"$tmp/getfattr.err") > "$tmp/x.raw" \
      || fail "getfattr failed on $1: $(head -n1 "$tmp/getfattr.err")"
    awk '
      /^# file: / { path = substr($0, 9); sub(/^\.\//, "", path); next }
      /^$/ { next }
      path == "." { next }
      /^security\.selinux=/ { next }
      { print path "\t" $0 }
    ' "$tmp/x.raw" | sort > "$2"
  }
  list_xattrs "$A" "$tmp/a.xattrs"
  list_xattrs "$B" "$tmp/b.xattrs"
  awk -v fa="$tmp/a.xattrs" '
    BEGIN { FS = "\t" }
    {
      eq = index($2, "=")
      name = substr($2, 1, eq - 1)
      if (FILENAME == fa) XA[$1 SUBSEP name] = $2
      else XB[$1 SUBSEP name] = $2
    }
    END {
      for (k in XA)
        if (!(k in XB) || XA[k] != XB[k]) bad[k] = 1
      for (k in XB)
        if (!(k in XA)) bad[k] = 1
      for (k in bad) {
        split(k, parts, SUBSEP)
        print parts[1] "\txattr " parts[2] " differs"
      }
    }
  ' "$tmp/a.xattrs" "$tmp/b.xattrs" >> "$tmp/diffs"
fi

# One line per path. A path missing from one side is reported only as such.
sort -t "$(printf '\t')" -k1,1 -k2 "$tmp/diffs" | awk -F '\t' '
  function flush() {
    if (cur != "")
      print cur ": " (only != "" ? only : substr(msg, 3))
  }
  $1 != cur { flush(); cur = $1; msg = ""; only = "" }
  { if ($2 ~ /^only in /) only = $2; else msg = msg "; " $2 }
  END { flush() }
' > "$tmp/report"

if [[ -s $tmp/report ]]; then
  cat "$tmp/report" >&2
  exit 1
fi
exit 0
