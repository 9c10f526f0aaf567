/* The fallback to libostree's pull (df-fetch-pull.c), for df_fetch(). */
#pragma once

#include "df-fetch-run.h"

/* Brings the commit of @f in with libostree's pull from the first URL that
 * works, held to the low-speed limit and the minimum rate
 * (DF_ERROR_TIMEOUT); the bytes it receives count in @f->dl, with
 * progress events. Writes nothing into the repository's config. */
gboolean dfi_fetch_pull_fallback (DfFetchRun *f, GError **error);
/* The plan of that pull (@f->plan): the bytes it would download, from the
 * commit's ostree.sizes, else from a walk of the commit's trees and the
 * server's sizes of the objects the repository lacks (an archive's). */
gboolean dfi_fetch_plan_pull (DfFetchRun *f, GError **error);
/* The plan of that pull (into @f->plan when planning), held to the
 * caller's byte limit (DF_ERROR_TOO_LARGE when over, or when the size
 * cannot be known); the pull's watchdog then holds it to the limit as it
 * runs. */
gboolean dfi_fetch_pull_within_limit (DfFetchRun *f, GError **error);
/* Removes the fallback pull's remote file, if a run killed during its pull
 * left it there (and the remote older versions wrote into the config). */
void dfi_fetch_pull_forget_remote (OstreeRepo *repo);
/* Points @ref (NULL: none), a ref or a refspec REMOTE:REF, at @commit. */
gboolean dfi_set_ref (OstreeRepo *repo, const char *ref, const char *commit, GCancellable *c, GError **error);
