/* The fallback to libostree's pull (df-fetch-pull.c), for df_fetch(). */
#pragma once

#include "df-fetch-options.h"

/* Brings @commit in with libostree's pull from the first URL that works,
 * held to the low-speed limit and the minimum rate (DF_ERROR_TIMEOUT). */
gboolean dfi_fetch_pull_fallback (OstreeRepo *repo, const DfFetchOptions *o, GCancellable *c, GError **error);
/* Removes the temporary remote the fallback pull adds to @repo's config,
 * if a run killed during its pull left it there. */
void dfi_fetch_pull_forget_remote (OstreeRepo *repo);
