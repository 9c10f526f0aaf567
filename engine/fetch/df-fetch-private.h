/* The fetcher's internals shared between its files. */
#pragma once

#include "deltafetch.h"

struct _DfFetchOptions
{
  char *commit;
  GPtrArray *urls;
  char *from;
  char *ref;
  guint connections;
  guint64 range_size;
  guint64 memory;
  gboolean memory_explicit; /* set by the caller: rebuilds keep to it */
  guint jobs;
  guint low_speed_limit, low_speed_time;
  guint min_rate;
  guint connect_timeout;
  guint retries;
  char *ca_file, *cert, *key, *pin;
  gboolean allow_pull;
  gboolean allow_downgrade;
  char *trusted_keys;
  gboolean require_signatures;
  gboolean allow_unsigned;
  guint lock_timeout;
  DfFetchEventFunc event_func;
  gpointer event_data;
};

/* Brings @commit in with libostree's pull from the first URL that works,
 * held to the low-speed limit and the minimum rate (DF_ERROR_TIMEOUT). */
gboolean df_fetch_pull_fallback (OstreeRepo *repo, const DfFetchOptions *o, GCancellable *c, GError **error);
/* Removes the temporary remote the fallback pull adds to @repo's config,
 * if a run killed during its pull left it there. */
void df_fetch_pull_forget_remote (OstreeRepo *repo);
