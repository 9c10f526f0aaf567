/* A fetch through a remote of the repository's configuration
 * (df-fetch-remote.c), for df_fetch(). */
#pragma once

#include "df-fetch-options.h"

/* @o (whose remote is set) completed from the remote's config: what the
 * options leave unset (mirrors from contenturl or url and their mirror
 * lists, TLS, proxy), the ref made the remote's (REMOTE:REF), the commit
 * looked up in the remote's summary when @o has none (its signature
 * checked as the remote asks; *@res's summary_verified and bytes count
 * it), and the apply told to check the commit's signature as the remote
 * asks. Writes nothing. */
gboolean dfi_fetch_remote_resolve (OstreeRepo *repo, const DfFetchOptions *o, DfFetchResult *res, GCancellable *c,
                                   DfFetchOptions **out, GError **error);
