/* What a trusted commit references. Starting at the commit's root, every
 * dirtree and dirmeta is taken from the delta (its bytes must hash to the
 * checksum that references it, and it must be well formed) or from the
 * repository; metadata the delta carries that the walk does not reach is
 * refused. Shared by the native and the stock apply. */
#pragma once

#include "df-objset.h"

typedef struct _DfTrust DfTrust;

typedef struct
{
  OstreeObjectType type;
  guint8 checksum[DF_SHA256_LEN];
  GBytes *data;
} DfTrustMeta;

DfTrust *dfi_trust_new (OstreeRepo *repo);
void dfi_trust_free (DfTrust *t);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (DfTrust, dfi_trust_free)

/* What each dirtree or dirmeta a delta carries costs in the tables, beside
 * its bytes. */
#define DF_TRUST_DELTA_META_COST (DF_OBJSET_ENTRY_COST + 48)

/* The walk fails (DF_ERROR_INVALID_ARGUMENT, "memory budget") once the
 * tables take more than @bytes (dfi_trust_memory()); default: no limit. */
void dfi_trust_set_memory_limit (DfTrust *t, guint64 bytes);

/* A dirtree or dirmeta the delta carries, not yet verified. Not
 * thread-safe: the caller serializes. */
void dfi_trust_add_delta_metadata (DfTrust *t, OstreeObjectType type, const guint8 csum[DF_SHA256_LEN], GBytes *data);

/* Walks commit @commit (serialized; its checksum is @to_hex). Refuses
 * (DF_ERROR_UNTRUSTED) delta metadata the walk does not reach; the delta's
 * metadata is released afterwards. */
gboolean dfi_trust_walk (DfTrust *t, GBytes *commit, const char *to_hex, GError **error);

/* After the walk: does the commit reference this object? */
gboolean dfi_trust_reaches (DfTrust *t, OstreeObjectType type, const guint8 csum[DF_SHA256_LEN]);

/* After the walk: the delta's verified, referenced metadata (DfTrustMeta*),
 * to be written. */
GPtrArray *dfi_trust_metadata (DfTrust *t);

/* Bytes the trust's tables and the delta metadata it holds take now. */
guint64 dfi_trust_memory (const DfTrust *t);

/* After every part is applied: each object the commit references, other
 * than those in @carried (what the delta makes), must already be in
 * the repository, so a commit never lands half-populated. A missing one is
 * DF_ERROR_MISSING_BASE for a delta from a commit, DF_ERROR_INVALID_DELTA
 * for one from scratch. */
gboolean dfi_trust_check_present (DfTrust *t, const DfObjSet *carried, gboolean has_from, const char *to_hex,
                                  GCancellable *c, GError **error);
