#!/bin/bash
# Pairing end to end: in a delta between the generated v1 and v2, modified
# kernel modules under the renamed lib/modules/6.1.0-50-amd64 →
# 6.1.0-56-amd64 and re-versioned libraries (libfoo.so.X.Y.Z → X.Y.Z+1) are
# encoded as diffs against exactly their own old versions.
. "$(dirname "$0")/lib.sh"

make_tree v1 1 --no-owner --no-xattrs && make_tree v2 2 --no-owner --no-xattrs || { not_ok "trees"; finish; exit 1; }
make_src_repo "$T/src" archive
"$DF" generate -q --repo="$T/src" --from=os^ --to=os --out="$T/delta" >/dev/null
# checksum → path in each commit
ostree ls --repo="$T/src" -R -C os^ | awk '$1 ~ /^-/ { print $5, $6 }' >"$T/old"
ostree ls --repo="$T/src" -R -C os | awk '$1 ~ /^-/ { print $5, $6 }' >"$T/new"
DF_STATS_DIFFS=1 "$DF_TEST_TOOL" stats "$T/delta" | awk '/^diff / { print $2, $3 }' | sort -u >"$T/pairs"
join <(sort "$T/pairs") <(sort "$T/new") | awk '{ print $2, $3 }' | sort >"$T/src-newpath"
join <(cat "$T/src-newpath") <(sort "$T/old") | awk '{ print $2, $3 }' >"$T/paired"
diag "$(wc -l <"$T/paired") diff entries mapped to (new path, old path)"

mods=$(awk '$1 ~ /lib\/modules\/6\.1\.0-56-amd64\/.*\.ko$/' "$T/paired")
nmods=$(printf '%s\n' "$mods" | grep -c . || true)
wrong=$(printf '%s\n' "$mods" | awk 'NF { a = $1; b = $2; sub(/6\.1\.0-56-amd64/, "6.1.0-50-amd64", a); if (a != b) print }')
check "modules in the renamed directory are diffed ($nmods)" test "$nmods" -gt 5
check "each module is diffed against its own old version" test -z "$wrong"
libs=$(awk '$1 ~ /\/lib[a-z0-9_-]+\.so\.[0-9.]+$/ && $1 != $2' "$T/paired")
nlibs=$(printf '%s\n' "$libs" | grep -c . || true)
wronglib=$(printf '%s\n' "$libs" | awk 'NF { a = $1; b = $2; sub(/\.so\..*/, "", a); sub(/\.so\..*/, "", b); if (a != b) print }')
check "re-versioned libraries are diffed against their previous version ($nlibs)" test "$nlibs" -gt 0
check "no library is paired with another library" test -z "$wronglib"
printf '%s\n' "$libs" | head -3 | sed 's/^/# /'
finish
