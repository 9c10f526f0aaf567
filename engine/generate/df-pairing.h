/* Choosing, for each new content object, an old object to encode it against.
 * Candidates are tried in this order: the same path; the same path with
 * every run of digits masked (a renamed versioned directory such as
 * lib/modules/6.1.0-50-amd64 → 6.1.0-56-amd64) and in the file name's
 * version suffix (libfoo.so.1.2.3 → libfoo.so.1.2.4), see
 * dfi_pairing_version_key(); the same file name elsewhere; the same file name
 * with its version suffix masked. */
#pragma once

#include "df-common.h"

typedef struct _DfPairing DfPairing;

DfPairing *dfi_pairing_new (void);
void dfi_pairing_free (DfPairing *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (DfPairing, dfi_pairing_free)

/* Records an old regular file at @path (absolute within the commit). The
 * first path recorded for a key wins, so the result depends only on the
 * order of calls. */
void dfi_pairing_add_old (DfPairing *p, const char *path, const char *checksum);

/* Candidates for @path, best first, without duplicates; NULL-terminated,
 * free with g_free (the strings belong to @p). */
const char **dfi_pairing_candidates (DfPairing *p, const char *path);

/* Digits masked in directories and after the file name's first '.'. */
char *dfi_pairing_version_key (const char *path);

/* Masks every run of ASCII digits with '#'. */
char *dfi_pairing_mask_digits (const char *s);
