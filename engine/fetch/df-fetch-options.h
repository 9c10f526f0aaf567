/* df_fetch()'s options: the public setters are in deltafetch.h; here is
 * what the fetcher's files read, and the checks made before a fetch. */
#pragma once

#include "df-apply-options.h"
#include "df-transfer.h"

/* Where and how bytes come over the network: the mirrors, the transfers'
 * limits, TLS. */
typedef struct
{
  GPtrArray *urls;
  guint connections;
  guint64 range_size;
  guint retries;
  guint low_speed_limit, low_speed_time;
  guint min_rate;
  guint connect_timeout;
  guint64 max_rate; /* over all connections; 0: none */
  char *ca_file, *cert, *key, *pin;
  char *proxy;        /* NULL: libcurl's environment variables */
  gboolean insecure;  /* no check of the server's certificate (a remote's tls-permissive) */
  GPtrArray *headers; /* extra request headers: name, value, name, value... */
} DfFetchNet;

struct _DfFetchOptions
{
  /* What the apply of what is fetched takes: the trusted commit, the ref,
   * memory, workers, signatures, rollback, the lock. */
  DfApplyOptions *apply;
  DfFetchNet net;
  char *from;
  char *remote;    /* df_fetch_options_set_remote(): resolved by dfi_fetch_remote_resolve() */
  char *delta_dir; /* a local delta directory: no discovery */
  gboolean allow_pull;
  guint64 max_bytes;     /* 0: no limit */
  guint64 expected_size; /* the delta's published size the update's metadata gives; 0: none */
  gboolean allow_scratch;
  DfFetchEventFunc event_func;
  gpointer event_data;
};

/* Checks the mirror list: one to 32 http:// or https:// URLs
 * (DF_ERROR_INVALID_ARGUMENT). */
gboolean dfi_fetch_validate_urls (GPtrArray *urls, GError **error);
/* Checks @o before a fetch: the commit, URLs (both optional with a delta
 * directory), ref, range size, connections, certificate and key, the
 * signature options (DF_ERROR_INVALID_ARGUMENT). */
gboolean dfi_fetch_options_validate (const DfFetchOptions *o, GError **error);
/* Options for a fetch with @apply's settings (copied) and no URL yet. */
DfFetchOptions *dfi_fetch_options_new_for_apply (const DfApplyOptions *apply);
/* A deep copy of @o. */
DfFetchOptions *dfi_fetch_options_copy (const DfFetchOptions *o);
/* The network settings of @o for a transfer; its strings stay @o's. */
void dfi_fetch_options_get_net (const DfFetchOptions *o, DfNetConfig *net);
