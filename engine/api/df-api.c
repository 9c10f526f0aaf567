/* The public entry points that span rooms: df_apply() and df_fetch(). They
 * take the repository's lock and hand the work to the apply room (a delta
 * directory) or the fetch room (anything that needs the network), so that
 * apply never calls fetch: an offline apply whose stock delta leaves
 * objects to be fetched, given URLs, is a fetch from a delta directory. */
#include <fcntl.h>

#include "df-apply-delta.h"
#include "df-fetch-remote.h"
#include "df-fetch.h"

const char *
df_version (void)
{
  return DF_VERSION_STRING;
}

/* The repository lock is taken: say so through the progress callback and
 * the event function. */
static void
lock_waiting (gpointer timeout, gpointer data)
{
  const DfFetchOptions *o = data;
  DfProgress p = { .phase = DF_PHASE_WAIT };
  if (o->apply->progress)
    o->apply->progress (&p, o->apply->progress_data);
  if (o->event_func == NULL)
    return;
  g_autofree char *msg
      = g_strdup_printf ("another deltafetch apply or fetch is working in this repository: waiting up to %u s",
                         GPOINTER_TO_UINT (timeout));
  DfFetchEvent ev = {
    .type = DF_FETCH_EVENT_WAITING, .message = msg, .phase = DF_FETCH_PHASE_DISCOVER, .time = g_get_real_time ()
  };
  o->event_func (&ev, o->event_data);
}

gboolean
df_fetch (OstreeRepo *repo, const DfFetchOptions *o, DfFetchResult *result, GCancellable *cancellable, GError **error)
{
  DfFetchResult local_res;
  DfFetchResult *res = result ? result : &local_res;
  memset (res, 0, sizeof *res);
  g_autoptr (DfFetchOptions) resolved = NULL;
  if (o->remote)
    {
      if (!dfi_fetch_remote_resolve (repo, o, res, cancellable, &resolved, error))
        return FALSE;
      o = resolved;
    }
  if (!dfi_fetch_options_validate (o, error))
    return FALSE;
  dfi_autofd lock = dfi_repo_lock (repo, o->apply->lock_timeout, lock_waiting, (gpointer)o, cancellable, error);
  if (lock < 0)
    return FALSE;
  /* What the summary cost counts with the rest. */
  guint64 summary_bytes = res->bytes_downloaded;
  res->bytes_downloaded = 0;
  gboolean ok = dfi_fetch_locked (repo, o, res, cancellable, error);
  res->bytes_downloaded += summary_bytes;
  return ok;
}

gboolean
df_apply (OstreeRepo *repo, const char *delta_dir, const DfApplyOptions *opts_in, DfApplyResult *result_out,
          GCancellable *cancellable, GError **error)
{
  g_autoptr (DfApplyOptions) defaults = opts_in ? NULL : df_apply_options_new ();
  const DfApplyOptions *opts = opts_in ? opts_in : defaults;
  DfApplyResult local_result;
  DfApplyResult *result = result_out ? result_out : &local_result;
  memset (result, 0, sizeof *result);
  /* With URLs, the stock delta's fallback objects download while the
   * parts apply: a fetch from the directory. */
  g_autoptr (DfFetchOptions) fo = dfi_fetch_options_new_for_apply (opts);
  for (guint i = 0; i < opts->urls->len; i++)
    df_fetch_options_add_url (fo, opts->urls->pdata[i]);
  df_fetch_options_set_delta_dir (fo, delta_dir);
  DfFetchResult res = { 0 };
  gboolean ok = df_fetch (repo, fo, &res, cancellable, error);
  *result = res.apply;
  return ok;
}
