#!/bin/bash
# The shared library exports exactly the functions the public header
# declares DF_PUBLIC, nothing internal.
. "$(dirname "$0")/lib.sh"
lib=$1
nm -D --defined-only "$lib" | awk '{print $3}' | grep -v '^_' | sort >"$T/exports"
grep -oE '^DF_PUBLIC [^(]*\(' "$DF_SRCDIR/engine/include/deltafetch.h" | grep -oE 'df_[a-z_0-9]+ *\($' | tr -d ' (' | sort >"$T/declared"
check "exported symbols equal the header's DF_PUBLIC functions ($(wc -l <"$T/declared"))" diff "$T/exports" "$T/declared"
# The header's version is the project's (meson.build); header-alone checks
# that the library says the same at run time (a program linked to it, which
# also works under the sanitizers, where loading the library from python
# does not).
hv=$(awk '/^#define DF_VERSION_(MAJOR|MINOR|MICRO) / { printf "%s%s", sep, $3; sep = "." }' "$DF_SRCDIR/engine/include/deltafetch.h")
check "the header's DF_VERSION_* ($hv) are the project's version ($2)" test "$hv" = "$2"
check "DF_VERSION_STRING is the project's version" grep -q "^#define DF_VERSION_STRING \"$2\"$" \
  "$DF_SRCDIR/engine/include/deltafetch.h"
finish
