#!/bin/bash
# The shared library exports exactly the functions the public header
# declares DF_PUBLIC, nothing internal.
. "$(dirname "$0")/lib.sh"
lib=$1
nm -D --defined-only "$lib" | awk '{print $3}' | grep -v '^_' | sort >"$T/exports"
grep -oE '^DF_PUBLIC [^(]*\(' "$DF_SRCDIR/engine/include/deltafetch.h" | grep -oE 'df_[a-z_0-9]+ *\($' | tr -d ' (' | sort >"$T/declared"
check "exported symbols equal the header's DF_PUBLIC functions ($(wc -l <"$T/declared"))" diff "$T/exports" "$T/declared"
finish
