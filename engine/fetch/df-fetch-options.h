/* df_fetch()'s options: the public setters are in deltafetch.h; here is
 * what the fetcher's files read, and the checks made before a fetch. */
#pragma once

#include "deltafetch.h"
#include "df-transfer.h"

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

/* Checks the mirror list: one to 32 http:// or https:// URLs
 * (DF_ERROR_INVALID_ARGUMENT). */
gboolean df_fetch_validate_urls (GPtrArray *urls, GError **error);
/* Checks @o before a fetch: the commit, URLs, ref, range size,
 * connections, certificate and key (DF_ERROR_INVALID_ARGUMENT). */
gboolean df_fetch_options_validate (const DfFetchOptions *o, GError **error);
/* The network settings of @o for a transfer; its strings stay @o's. */
void df_fetch_options_get_net (const DfFetchOptions *o, DfNetConfig *net);
