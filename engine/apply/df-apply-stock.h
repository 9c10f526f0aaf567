/* The stock applier (df-apply-stock.c): a delta written by `ostree
 * static-delta generate`, run through our own interpreter with the trust
 * rules of native deltas; and the facts about a stock delta a fetcher
 * plans its downloads by. */
#pragma once

#include "df-apply-options.h"
#include "df-part-source.h"
#include "df-stock.h"

/* Applies the stock OSTree delta whose superblock @sb was parsed (with the
 * signature policy), its parts from @src: waited for before they are read
 * when @src has a wait function, so the apply runs while they arrive.
 * Fallback objects the repository lacks come from @src's fallback function
 * (without one: DF_ERROR_MISSING_BASE). */
gboolean dfi_apply_stock (OstreeRepo *repo, const DfStockSuperblock *sb, const DfPartSource *src,
                          const DfApplyOptions *opts, DfApplyResult *result, GCancellable *cancellable, GError **error);

/* *@out: every object part @p of a stock delta makes is in @repo already
 * (resume), so the part need not be read, nor downloaded. */
gboolean dfi_stock_part_present (OstreeRepo *repo, const DfStockPart *p, GCancellable *c, gboolean *out,
                                 GError **error);

/* Stock parts holding dirtree/dirmeta objects run first (for those alone,
 * before the trust walk). The content parts @parts (@n part indices) are
 * sorted into the order @decoders xz decoders take them. */
gboolean dfi_stock_part_has_metadata (const DfStockPart *p);
void dfi_stock_content_order (const DfStockSuperblock *sb, guint *parts, guint n, guint decoders);
/* How many xz decoders a stock apply of @sb runs within a memory budget of
 * @memory bytes (each needs 33 MiB, after the reserve, the rebuilding
 * thread and the parsed superblock): at least one, at most @jobs (0: one
 * per processor but one). */
guint dfi_stock_decoders (const DfStockSuperblock *sb, guint64 memory, guint jobs);
/* FALSE (DF_ERROR_INVALID_ARGUMENT) when not even one decoder fits. */
gboolean dfi_stock_check_memory (const DfStockSuperblock *sb, guint64 memory, GError **error);
/* Most disk space the decoded payloads of @sb take at once in the
 * repository's tmp/ while @decoders decoders run ahead of the rebuilding
 * (estimated from the parts' declared sizes), for free-space checks. */
guint64 dfi_stock_payload_staging (const DfStockSuperblock *sb, guint decoders);

/* The fallback objects of @sb that @repo lacks, as indices into
 * sb->fallbacks; their .filez bytes in *@bytes when not NULL. */
GArray *dfi_stock_missing_fallbacks (OstreeRepo *repo, const DfStockSuperblock *sb, guint64 *bytes, GCancellable *c,
                                     GError **error);
