/* df_fetch()'s options (see deltafetch.h) and their checks. */
#include "df-fetch-options.h"

#include "df-apply-policy.h"
#include "df-common.h"

DfFetchOptions *
df_fetch_options_new (void)
{
  DfFetchOptions *o = g_new0 (DfFetchOptions, 1);
  o->apply = df_apply_options_new ();
  o->net.urls = g_ptr_array_new_with_free_func (g_free);
  o->net.headers = g_ptr_array_new_with_free_func (g_free);
  o->net.connections = DF_DEFAULT_CONNECTIONS;
  o->net.range_size = DF_DEFAULT_RANGE_SIZE;
  o->net.low_speed_limit = DF_DEFAULT_LOW_SPEED_LIMIT;
  o->net.low_speed_time = DF_DEFAULT_LOW_SPEED_TIME;
  o->net.min_rate = DF_DEFAULT_MIN_RATE;
  o->net.connect_timeout = DF_DEFAULT_CONNECT_TIMEOUT;
  o->net.retries = DF_DEFAULT_RETRIES;
  o->allow_pull = TRUE;
  o->allow_scratch = TRUE;
  return o;
}

DfFetchOptions *
dfi_fetch_options_new_for_apply (const DfApplyOptions *apply)
{
  DfFetchOptions *o = df_fetch_options_new ();
  df_apply_options_free (o->apply);
  o->apply = dfi_apply_options_copy (apply);
  return o;
}

static GPtrArray *
copy_strings (GPtrArray *a)
{
  GPtrArray *c = g_ptr_array_new_full (a->len, g_free);
  for (guint i = 0; i < a->len; i++)
    g_ptr_array_add (c, g_strdup (a->pdata[i]));
  return c;
}

DfFetchOptions *
dfi_fetch_options_copy (const DfFetchOptions *o)
{
  DfFetchOptions *c = g_memdup2 (o, sizeof *o);
  c->apply = dfi_apply_options_copy (o->apply);
  c->net.urls = copy_strings (o->net.urls);
  c->net.headers = copy_strings (o->net.headers);
  c->net.ca_file = g_strdup (o->net.ca_file);
  c->net.cert = g_strdup (o->net.cert);
  c->net.key = g_strdup (o->net.key);
  c->net.pin = g_strdup (o->net.pin);
  c->net.proxy = g_strdup (o->net.proxy);
  c->from = g_strdup (o->from);
  c->remote = g_strdup (o->remote);
  c->delta_dir = g_strdup (o->delta_dir);
  return c;
}

void
df_fetch_options_free (DfFetchOptions *o)
{
  if (o == NULL)
    return;
  df_apply_options_free (o->apply);
  g_ptr_array_unref (o->net.urls);
  g_ptr_array_unref (o->net.headers);
  g_free (o->net.proxy);
  g_free (o->remote);
  g_free (o->net.ca_file);
  g_free (o->net.cert);
  g_free (o->net.key);
  g_free (o->net.pin);
  g_free (o->from);
  g_free (o->delta_dir);
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
  df_apply_options_set_commit (o->apply, checksum);
}

void
df_fetch_options_add_url (DfFetchOptions *o, const char *url)
{
  g_autofree char *u = g_strdup (url);
  gsize n = strlen (u);
  while (n > 0 && u[n - 1] == '/')
    u[--n] = '\0';
  g_ptr_array_add (o->net.urls, g_steal_pointer (&u));
}

void
df_fetch_options_set_from (DfFetchOptions *o, const char *rev)
{
  SET_STR (o->from, rev);
}

void
df_fetch_options_set_ref (DfFetchOptions *o, const char *ref)
{
  df_apply_options_set_ref (o->apply, ref);
}

void
df_fetch_options_set_connections (DfFetchOptions *o, guint n)
{
  o->net.connections = n;
}

void
df_fetch_options_set_range_size (DfFetchOptions *o, guint64 bytes)
{
  o->net.range_size = bytes;
}

void
df_fetch_options_set_memory_budget (DfFetchOptions *o, guint64 bytes)
{
  df_apply_options_set_memory_budget (o->apply, bytes);
}

void
df_fetch_options_set_jobs (DfFetchOptions *o, guint jobs)
{
  df_apply_options_set_jobs (o->apply, jobs);
}

void
df_fetch_options_set_rebuild (DfFetchOptions *o, DfRebuildPolicy policy)
{
  df_apply_options_set_rebuild (o->apply, policy);
}

void
df_fetch_options_set_low_speed (DfFetchOptions *o, guint bytes_per_second, guint seconds)
{
  o->net.low_speed_limit = bytes_per_second;
  o->net.low_speed_time = seconds;
}

void
df_fetch_options_set_min_rate (DfFetchOptions *o, guint bytes_per_second)
{
  o->net.min_rate = bytes_per_second;
}

void
df_fetch_options_set_connect_timeout (DfFetchOptions *o, guint seconds)
{
  o->net.connect_timeout = seconds;
}

void
df_fetch_options_set_retries (DfFetchOptions *o, guint attempts)
{
  o->net.retries = attempts;
}

void
df_fetch_options_set_ca_file (DfFetchOptions *o, const char *path)
{
  SET_STR (o->net.ca_file, path);
}

void
df_fetch_options_set_client_cert (DfFetchOptions *o, const char *cert, const char *key)
{
  SET_STR (o->net.cert, cert);
  SET_STR (o->net.key, key);
}

void
df_fetch_options_set_pinned_public_key (DfFetchOptions *o, const char *pin)
{
  SET_STR (o->net.pin, pin);
}

void
df_fetch_options_set_remote (DfFetchOptions *o, const char *remote)
{
  SET_STR (o->remote, remote);
}

void
df_fetch_options_set_proxy (DfFetchOptions *o, const char *proxy)
{
  SET_STR (o->net.proxy, proxy);
}

void
df_fetch_options_set_tls_permissive (DfFetchOptions *o, gboolean permissive)
{
  o->net.insecure = permissive;
}

void
df_fetch_options_add_http_header (DfFetchOptions *o, const char *name, const char *value)
{
  g_ptr_array_add (o->net.headers, g_strdup (name));
  g_ptr_array_add (o->net.headers, g_strdup (value));
}

void
df_fetch_options_set_allow_pull_fallback (DfFetchOptions *o, gboolean allow)
{
  o->allow_pull = allow;
}

void
df_fetch_options_set_trusted_keys (DfFetchOptions *o, const char *path)
{
  df_apply_options_set_trusted_keys (o->apply, path);
}

void
df_fetch_options_set_revoked_keys (DfFetchOptions *o, const char *path)
{
  df_apply_options_set_revoked_keys (o->apply, path);
}

void
df_fetch_options_set_require_signatures (DfFetchOptions *o, gboolean require)
{
  df_apply_options_set_require_signatures (o->apply, require);
}

void
df_fetch_options_set_allow_unsigned (DfFetchOptions *o, gboolean allow)
{
  df_apply_options_set_allow_unsigned (o->apply, allow);
}

void
df_fetch_options_set_lock_timeout (DfFetchOptions *o, guint seconds)
{
  df_apply_options_set_lock_timeout (o->apply, seconds);
}

void
df_fetch_options_set_allow_downgrade (DfFetchOptions *o, gboolean allow)
{
  df_apply_options_set_allow_downgrade (o->apply, allow);
}

void
df_fetch_options_set_delta_dir (DfFetchOptions *o, const char *dir)
{
  SET_STR (o->delta_dir, dir);
}

void
df_fetch_options_set_progress (DfFetchOptions *o, DfProgressFunc func, gpointer user_data)
{
  df_apply_options_set_progress (o->apply, func, user_data);
}

void
df_fetch_options_set_event_func (DfFetchOptions *o, DfFetchEventFunc func, gpointer user_data)
{
  o->event_func = func;
  o->event_data = user_data;
}

gboolean
dfi_fetch_validate_urls (GPtrArray *urls, GError **error)
{
  if (urls->len == 0)
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "at least one URL is required");
  if (urls->len > DF_FETCH_MIRRORS)
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "at most %u mirrors are supported", DF_FETCH_MIRRORS);
  for (guint i = 0; i < urls->len; i++)
    {
      const char *u = urls->pdata[i];
      if (!g_str_has_prefix (u, "http://") && !g_str_has_prefix (u, "https://"))
        return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "URL '%s' is not http:// or https://", u);
    }
  return TRUE;
}

gboolean
dfi_fetch_options_validate (const DfFetchOptions *o, GError **error)
{
  const DfApplyOptions *a = o->apply;
  guint8 csum[DF_SHA256_LEN];
  /* From a delta directory, the commit may come from the delta itself, as
   * for df_apply(), and the mirrors are needed only for what it lacks. */
  if (a->commit == NULL && o->delta_dir == NULL)
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "the trusted commit checksum is required");
  if (a->commit && !dfi_parse_checksum (a->commit, csum, error))
    return FALSE;
  if ((o->delta_dir == NULL || o->net.urls->len > 0) && !dfi_fetch_validate_urls (o->net.urls, error))
    return FALSE;
  if (a->ref && !dfi_valid_refspec (a->ref))
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "invalid ref name '%s'", a->ref);
  if (a->allow_unsigned && a->require_signatures)
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "signatures cannot be both required and optional");
  if (o->net.range_size < 64 * 1024 || o->net.range_size > DF_PART_SIZE_MAX)
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "the range size must be between 64 KiB and %u MiB",
                      (guint)(DF_PART_SIZE_MAX / DF_MIB));
  if (o->net.connections == 0 || o->net.connections > 64)
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "connections must be between 1 and 64");
  for (guint i = 0; i + 1 < o->net.headers->len; i += 2)
    {
      const char *name = o->net.headers->pdata[i], *value = o->net.headers->pdata[i + 1];
      if (!name[0] || strpbrk (name, ": \t\r\n") || strpbrk (value, "\r\n"))
        return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "invalid HTTP header '%s'", name);
    }
  if ((o->net.cert == NULL) != (o->net.key == NULL))
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "a client certificate needs its key, and the other way round");
  return TRUE;
}

void
dfi_fetch_options_get_net (const DfFetchOptions *o, DfNetConfig *net)
{
  net->connect_timeout = o->net.connect_timeout;
  net->low_speed_limit = o->net.low_speed_limit;
  net->low_speed_time = o->net.low_speed_time;
  net->min_rate = o->net.min_rate;
  net->bucket = NULL; /* the downloader's, when there is a cap */
  if (o->net.max_rate > 0)
    {
      /* The limits that would cut a transfer stay below half of what each
       * gets when every connection shares the cap. */
      guint64 share = MAX (o->net.max_rate / o->net.connections, 2);
      guint half = (guint)MIN (share / 2, (guint64)G_MAXUINT);
      net->low_speed_limit = MIN (net->low_speed_limit, half);
      if (net->min_rate > 0)
        net->min_rate = MIN (net->min_rate, half);
    }
  net->ca_file = o->net.ca_file;
  net->cert = o->net.cert;
  net->key = o->net.key;
  net->pin = o->net.pin;
  net->proxy = o->net.proxy;
  net->insecure = o->net.insecure;
  net->headers = o->net.headers;
}

void
df_fetch_options_set_max_rate (DfFetchOptions *o, guint64 bytes_per_second)
{
  o->net.max_rate = bytes_per_second;
}

void
df_fetch_options_set_expected_size (DfFetchOptions *o, guint64 bytes)
{
  o->expected_size = bytes;
}

void
df_fetch_options_set_max_bytes (DfFetchOptions *o, guint64 bytes)
{
  o->max_bytes = bytes;
}

void
df_fetch_options_set_allow_from_scratch (DfFetchOptions *o, gboolean allow)
{
  o->allow_scratch = allow;
}
