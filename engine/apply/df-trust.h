/* What a trusted commit references. Starting at the commit's root, every
 * dirtree and dirmeta is taken from the delta (its bytes must hash to the
 * checksum that references it, and it must be well formed) or from the
 * repository; metadata the delta carries that the walk does not reach is
 * refused. Shared by the native and the stock apply. */
#pragma once

#include "df-common.h"

typedef struct _DfTrust DfTrust;

typedef struct
{
  OstreeObjectType type;
  guint8 checksum[DF_SHA256_LEN];
  GBytes *data;
} DfTrustMeta;

DfTrust *df_trust_new (OstreeRepo *repo);
void df_trust_free (DfTrust *t);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (DfTrust, df_trust_free)

/* "hex.type", the key of an object in the tables below, and a hash
 * function for tables of such keys. */
#define DF_TRUST_KEY_LEN 66
char *df_trust_key (const char *hex, OstreeObjectType type);
guint df_trust_key_hash (gconstpointer key);

/* A dirtree or dirmeta the delta carries, not yet verified. Not
 * thread-safe: the caller serializes. */
void df_trust_add_delta_metadata (DfTrust *t, OstreeObjectType type, const guint8 csum[DF_SHA256_LEN], GBytes *data);

/* Walks commit @commit (serialized; its checksum is @to_hex). Refuses
 * (DF_ERROR_UNTRUSTED) delta metadata the walk does not reach; the delta's
 * metadata is released afterwards. */
gboolean df_trust_walk (DfTrust *t, GBytes *commit, const char *to_hex, GError **error);

/* After the walk: does the commit reference this object? */
gboolean df_trust_reaches (DfTrust *t, OstreeObjectType type, const guint8 csum[DF_SHA256_LEN]);

/* After the walk: the delta's verified, referenced metadata (DfTrustMeta*),
 * to be written, and every object the commit references (keys). */
GPtrArray *df_trust_metadata (DfTrust *t);
GHashTable *df_trust_reached (DfTrust *t);

/* After every part is applied: each object the commit references, other
 * than those in @carried (keys of what the delta makes), must already be in
 * the repository, so a commit never lands half-populated. A missing one is
 * DF_ERROR_MISSING_BASE for a delta from a commit, DF_ERROR_INVALID_DELTA
 * for one from scratch. */
gboolean df_trust_check_present (DfTrust *t, GHashTable *carried, gboolean has_from, const char *to_hex,
                                 GCancellable *c, GError **error);
