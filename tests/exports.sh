#!/bin/bash
# The shared library exports exactly the functions the public header
# declares DF_PUBLIC, nothing internal.
. "$(dirname "$0")/lib.sh"
lib=$1
check_exports "$lib"
# The header's version is the project's (meson.build); header-alone checks
# that the library says the same at run time (a program linked to it, which
# also works under the sanitizers, where loading the library from python
# does not).
hv=$(awk '/^#define DF_VERSION_(MAJOR|MINOR|MICRO) / { printf "%s%s", sep, $3; sep = "." }' "$DF_SRCDIR/engine/include/deltafetch.h")
check "the header's DF_VERSION_* ($hv) are the project's version ($2)" test "$hv" = "$2"
check "DF_VERSION_STRING is the project's version" grep -q "^#define DF_VERSION_STRING \"$2\"$" \
  "$DF_SRCDIR/engine/include/deltafetch.h"
finish
