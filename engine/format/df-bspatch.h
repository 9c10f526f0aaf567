/* The "diff" entry encoding (FORMAT.md, encoding 2), spread over four
 * sections of the part: controls (add, copy, seek), the runs that say
 * which add bytes are zero, the non-zero add bytes, and the copy bytes.
 * Add bytes are new-minus-old byte differences at the current old
 * position, so code that moved and had its addresses shifted becomes long
 * zero runs (plain copies from old) and a few small values. */
#pragma once

#include "df-part.h"

/* Reconstructs exactly @out_len bytes against @old (@old_len bytes) from
 * the next diff in @r. Every length and position is checked before use; a
 * diff that does not produce exactly @out_len bytes is refused. */
gboolean dfi_diff_decode (DfPartReader *r, const guint8 *old, gsize old_len, guint8 *out, gsize out_len,
                          GError **error);

/* Moves @r past the next diff (of an entry producing @out_len bytes)
 * without decoding it, for an entry that is already applied. */
gboolean dfi_diff_skip (DfPartReader *r, gsize out_len, GError **error);
