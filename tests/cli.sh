#!/bin/bash
# The CLI against itself: every verb has --help, every exit code is
# documented in --help and the man page, usage errors exit 2 with one line.
. "$(dirname "$0")/lib.sh"

for verb in generate apply fetch pull show; do
  expect_exit 0 "$verb --help" "$DF" $verb --help
  for code in 0 1 2 3 4 5 6 7 8 130; do
    grep -qE "^ +$code +" "$T/ee.out" || { not_ok "$verb --help documents exit code $code"; continue 2; }
  done
  ok "$verb --help documents every exit code"
done
expect_exit 0 "deltafetch --help" "$DF" --help
expect_exit 0 "deltafetch --version" "$DF" --version
expect_exit 2 "no verb" "$DF"
expect_exit 2 "unknown verb" "$DF" frobnicate
expect_exit 2 "generate without --to" "$DF" generate --repo=/nonexistent --empty
expect_exit 2 "generate with both --from and --empty" "$DF" generate --repo=/x --from=a --empty --to=b
expect_exit 2 "generate with a bad --part-size" "$DF" generate --repo=/x --empty --to=b --part-size=lots
expect_exit 2 "apply without DELTA" "$DF" apply --repo=/x
expect_exit 2 "show two deltas" "$DF" show a b
expect_exit 3 "show a directory without a superblock" "$DF" show "$T"

man=$DF_SRCDIR/cli/deltafetch.1
check "man page exists" test -s "$man"
codes=$("$DF" --help | sed -n '/^Exit codes:/,$p' | awk '$1 ~ /^[0-9]+$/ { print $1 }')
check "--help lists exit codes 0 to 14 and 130" test "$(echo $codes)" = "0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 130"
for code in $codes; do
  grep -qE "^\\.IP \"?$code\"?|^$code\b|\\.B $code\b|^\\\\fB$code" "$man" || { not_ok "man page documents exit code $code"; break; }
done && ok "man page documents every exit code --help lists"
# Every long option of every verb's --help is in the man page.
missing=
for verb in generate apply fetch pull show; do
  for opt in $("$DF" "$verb" --help-all | grep -oE -- '^ +(-[a-z], )?--[a-z][a-z0-9-]*' | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u); do
    case $opt in --help*) continue ;; esac
    grep -q -- "${opt//-/\\\\-}" "$man" || grep -q -- "$opt" "$man" || missing="$missing $verb$opt"
  done
done
check "man page documents every verb's options (missing:${missing:- none})" test -z "$missing"

# show --json is valid JSON with the documented fields.
make_tree v1 1 --no-owner --no-xattrs
ostree init --repo="$T/r" --mode=archive
ostree commit --repo="$T/r" -b os --tree=dir="$T/v1" >/dev/null
"$DF" generate -q --repo="$T/r" --empty --to=os --out="$T/d" >/dev/null
"$DF" show --json "$T/d" >"$T/show.json"
check "show --json parses and names from/to/parts" python3 -c '
import json,sys
d=json.load(open(sys.argv[1]))
assert d["from"] is None and len(d["to"])==64 and d["parts"] and d["counts"]["content-raw"]>0
' "$T/show.json"
finish
