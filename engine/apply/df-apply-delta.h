/* A delta, native or stock, read from its superblock file and applied
 * from a part source (df-apply-delta.c): what df_apply() does with a delta
 * directory, and what a fetch does with one whose stock fallback objects
 * come from the network. */
#pragma once

#include "df-apply-options.h"
#include "df-part-source.h"
#include "df-stock.h"
#include "df-superblock.h"

/* One of the two, parsed and its signature checked by policy. */
typedef struct
{
  DfSuperblock *native;
  DfStockSuperblock *stock;
} DfDelta;

/* Reads and parses the superblock file of the delta directory @dfd within
 * @opts' memory budget, its signature envelope checked once against @opts'
 * signature policy. Errors: the policy's, the parser's. */
gboolean dfi_delta_open (int dfd, const DfApplyOptions *opts, DfDelta *out, GError **error);
void dfi_delta_clear (DfDelta *d);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (DfDelta, dfi_delta_clear)

/* The delta's identity: its superblock file (size, SHA-256, signature). */
const DfSignedFile *dfi_delta_file (const DfDelta *d);
/* Its from-commit (hex), or NULL from scratch; its to-commit. */
const char *dfi_delta_from (const DfDelta *d);
const char *dfi_delta_to (const DfDelta *d);

/* Applies @d (a native superblock moves into the apply: @d no longer
 * holds it) with its parts from @src, checking free space first for what
 * the delta declares it writes. */
gboolean dfi_apply_delta (OstreeRepo *repo, DfDelta *d, const DfPartSource *src, const DfApplyOptions *opts,
                          DfApplyResult *result, GCancellable *cancellable, GError **error);
