/* The fetch room's entry (df-fetch.c), for the public df_fetch() and
 * df_apply() above it (engine/api/df-api.c). */
#pragma once

#include "df-fetch-options.h"

/* Brings the commit @o asks for into @repo, whose lock the caller holds:
 * from a delta directory (o->delta_dir, only a stock delta's missing
 * fallback objects downloaded), else through discovery on the mirrors and
 * the native or stock path, else libostree's pull. @o was validated
 * (dfi_fetch_options_validate()); @res was zeroed. Errors: see df_fetch(). */
gboolean dfi_fetch_locked (OstreeRepo *repo, const DfFetchOptions *o, DfFetchResult *res, GCancellable *cancellable,
                           GError **error);
/* What dfi_fetch_locked() would do (df_fetch_plan()): the same discovery,
 * the checks before any part, in @plan; writes nothing. */
gboolean dfi_fetch_plan (OstreeRepo *repo, const DfFetchOptions *o, DfFetchPlan *plan, DfFetchResult *res,
                         GCancellable *cancellable, GError **error);
