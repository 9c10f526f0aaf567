/* df_fetch()'s options (see deltafetch.h) and their checks. */
#include "df-fetch-options.h"

#include "df-common.h"

DfFetchOptions *
df_fetch_options_new (void)
{
  DfFetchOptions *o = g_new0 (DfFetchOptions, 1);
  o->urls = g_ptr_array_new_with_free_func (g_free);
  o->connections = DF_DEFAULT_CONNECTIONS;
  o->range_size = DF_DEFAULT_RANGE_SIZE;
  o->memory = DF_DEFAULT_MEMORY_BUDGET;
  o->low_speed_limit = DF_DEFAULT_LOW_SPEED_LIMIT;
  o->low_speed_time = DF_DEFAULT_LOW_SPEED_TIME;
  o->min_rate = DF_DEFAULT_MIN_RATE;
  o->connect_timeout = DF_DEFAULT_CONNECT_TIMEOUT;
  o->retries = DF_DEFAULT_RETRIES;
  o->allow_pull = TRUE;
  o->lock_timeout = DF_DEFAULT_LOCK_TIMEOUT;
  return o;
}

void
df_fetch_options_free (DfFetchOptions *o)
{
  if (o == NULL)
    return;
  g_free (o->commit);
  g_ptr_array_unref (o->urls);
  g_free (o->from);
  g_free (o->ref);
  g_free (o->ca_file);
  g_free (o->cert);
  g_free (o->key);
  g_free (o->pin);
  g_free (o->trusted_keys);
  g_free (o);
}

#define SET_STR(field, value)                                                                                          \
  do                                                                                                                   \
    {                                                                                                                  \
      g_free (field);                                                                                                  \
      field = g_strdup (value);                                                                                        \
    }                                                                                                                  \
  while (0)

void
df_fetch_options_set_commit (DfFetchOptions *o, const char *checksum)
{
  SET_STR (o->commit, checksum);
}

void
df_fetch_options_add_url (DfFetchOptions *o, const char *url)
{
  g_autofree char *u = g_strdup (url);
  gsize n = strlen (u);
  while (n > 0 && u[n - 1] == '/')
    u[--n] = '\0';
  g_ptr_array_add (o->urls, g_steal_pointer (&u));
}

void
df_fetch_options_set_from (DfFetchOptions *o, const char *rev)
{
  SET_STR (o->from, rev);
}

void
df_fetch_options_set_ref (DfFetchOptions *o, const char *ref)
{
  SET_STR (o->ref, ref);
}

void
df_fetch_options_set_connections (DfFetchOptions *o, guint n)
{
  o->connections = n;
}

void
df_fetch_options_set_range_size (DfFetchOptions *o, guint64 bytes)
{
  o->range_size = bytes;
}

void
df_fetch_options_set_memory_budget (DfFetchOptions *o, guint64 bytes)
{
  o->memory = bytes;
  o->memory_explicit = TRUE;
}

void
df_fetch_options_set_jobs (DfFetchOptions *o, guint jobs)
{
  o->jobs = jobs;
}

void
df_fetch_options_set_low_speed (DfFetchOptions *o, guint bytes_per_second, guint seconds)
{
  o->low_speed_limit = bytes_per_second;
  o->low_speed_time = seconds;
}

void
df_fetch_options_set_min_rate (DfFetchOptions *o, guint bytes_per_second)
{
  o->min_rate = bytes_per_second;
}

void
df_fetch_options_set_connect_timeout (DfFetchOptions *o, guint seconds)
{
  o->connect_timeout = seconds;
}

void
df_fetch_options_set_retries (DfFetchOptions *o, guint attempts)
{
  o->retries = attempts;
}

void
df_fetch_options_set_ca_file (DfFetchOptions *o, const char *path)
{
  SET_STR (o->ca_file, path);
}

void
df_fetch_options_set_client_cert (DfFetchOptions *o, const char *cert, const char *key)
{
  SET_STR (o->cert, cert);
  SET_STR (o->key, key);
}

void
df_fetch_options_set_pinned_public_key (DfFetchOptions *o, const char *pin)
{
  SET_STR (o->pin, pin);
}

void
df_fetch_options_set_allow_pull_fallback (DfFetchOptions *o, gboolean allow)
{
  o->allow_pull = allow;
}

void
df_fetch_options_set_trusted_keys (DfFetchOptions *o, const char *path)
{
  SET_STR (o->trusted_keys, path);
}

void
df_fetch_options_set_require_signatures (DfFetchOptions *o, gboolean require)
{
  o->require_signatures = require;
}

void
df_fetch_options_set_allow_unsigned (DfFetchOptions *o, gboolean allow)
{
  o->allow_unsigned = allow;
}

void
df_fetch_options_set_lock_timeout (DfFetchOptions *o, guint seconds)
{
  o->lock_timeout = seconds;
}

void
df_fetch_options_set_allow_downgrade (DfFetchOptions *o, gboolean allow)
{
  o->allow_downgrade = allow;
}

void
df_fetch_options_set_event_func (DfFetchOptions *o, DfFetchEventFunc func, gpointer user_data)
{
  o->event_func = func;
  o->event_data = user_data;
}

gboolean
df_fetch_validate_urls (GPtrArray *urls, GError **error)
{
  if (urls->len == 0)
    return df_throw (error, DF_ERROR_INVALID_ARGUMENT, "at least one URL is required");
  if (urls->len > 32)
    return df_throw (error, DF_ERROR_INVALID_ARGUMENT, "at most 32 mirrors are supported");
  for (guint i = 0; i < urls->len; i++)
    {
      const char *u = urls->pdata[i];
      if (!g_str_has_prefix (u, "http://") && !g_str_has_prefix (u, "https://"))
        return df_throw (error, DF_ERROR_INVALID_ARGUMENT, "URL '%s' is not http:// or https://", u);
    }
  return TRUE;
}

gboolean
df_fetch_options_validate (const DfFetchOptions *o, GError **error)
{
  guint8 csum[DF_SHA256_LEN];
  if (o->commit == NULL)
    return df_throw (error, DF_ERROR_INVALID_ARGUMENT, "the trusted commit checksum is required");
  if (!df_parse_checksum (o->commit, csum, error))
    return FALSE;
  if (!df_fetch_validate_urls (o->urls, error))
    return FALSE;
  if (o->ref && !ostree_validate_rev (o->ref, NULL))
    return df_throw (error, DF_ERROR_INVALID_ARGUMENT, "invalid ref name '%s'", o->ref);
  if (o->range_size < 64 * 1024 || o->range_size > DF_PART_SIZE_MAX)
    return df_throw (error, DF_ERROR_INVALID_ARGUMENT, "the range size must be between 64 KiB and %u MiB",
                     (guint)(DF_PART_SIZE_MAX / DF_MIB));
  if (o->connections == 0 || o->connections > 64)
    return df_throw (error, DF_ERROR_INVALID_ARGUMENT, "connections must be between 1 and 64");
  if ((o->cert == NULL) != (o->key == NULL))
    return df_throw (error, DF_ERROR_INVALID_ARGUMENT, "a client certificate needs its key, and the other way round");
  return TRUE;
}

void
df_fetch_options_get_net (const DfFetchOptions *o, DfNetConfig *net)
{
  net->connect_timeout = o->connect_timeout;
  net->low_speed_limit = o->low_speed_limit;
  net->low_speed_time = o->low_speed_time;
  net->min_rate = o->min_rate;
  net->ca_file = o->ca_file;
  net->cert = o->cert;
  net->key = o->key;
  net->pin = o->pin;
}
