/* The "diff" entry encoding (FORMAT.md, encoding 2): a control list of
 * (add, copy, seek) triples, the add bytes, then the copy bytes. Add bytes
 * are new-minus-old byte differences at the current old position, so code
 * that moved and had its addresses shifted turns into long runs of zeros and
 * small values that the part's zstd frame compresses well. */
#pragma once

#include "df-common.h"

#define DF_DIFF_CONTROL_SIZE 16

/* Reconstructs exactly @out_len bytes from @diff (@diff_len bytes) against
 * @old (@old_len bytes). Every length and position is checked before use;
 * a body that does not decode to exactly @out_len bytes using all of its add
 * and copy bytes is refused. */
gboolean df_bspatch (const guint8 *old, gsize old_len, const guint8 *diff, gsize diff_len, guint8 *out, gsize out_len,
                     GError **error);
