/* Suffix-array diff in the manner of bsdiff: find long approximate matches
 * of the new bytes in the old ones and emit the "diff" encoding that
 * dfi_bspatch() reverses. Suffix sorting is libdivsufsort's. */
#pragma once

#include "df-part.h"

/* Appends the diff turning @old into @new_ to the control, runs, add and
 * copy sections of @sections; memory is about 5 × @old_len + 2 × @new_len.
 * FALSE, with nothing appended, only when the suffix sort cannot allocate. */
gboolean dfi_bsdiff (const guint8 *old, gsize old_len, const guint8 *new_, gsize new_len,
                     GByteArray *sections[DF_SECTION_COUNT]);
