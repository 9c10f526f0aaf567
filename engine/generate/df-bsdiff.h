/* Suffix-array diff in the manner of bsdiff: find long approximate matches
 * of the new bytes in the old ones and emit the "diff" encoding that
 * df_bspatch() reverses. Suffix sorting is libdivsufsort's. */
#pragma once

#include "df-common.h"

/* Returns the diff body turning @old into @new_; memory is about
 * 5 × @old_len + 2 × @new_len. NULL only on allocation failure of the
 * suffix sort. */
GBytes *df_bsdiff (const guint8 *old, gsize old_len, const guint8 *new_, gsize new_len);
