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
df_fetch_plan (OstreeRepo *repo, const DfFetchOptions *o, DfFetchPlan *plan, GCancellable *cancellable, GError **error)
{
  memset (plan, 0, sizeof *plan);
  DfFetchResult res = { 0 };
  g_autoptr (DfFetchOptions) resolved = NULL;
  if (o->remote)
    {
      if (!dfi_fetch_remote_resolve (repo, o, &res, cancellable, &resolved, error))
        return FALSE;
      o = resolved;
    }
  if (!dfi_fetch_options_validate (o, error))
    return FALSE;
  guint64 summary_bytes = res.bytes_downloaded;
  res.bytes_downloaded = 0;
  if (!dfi_fetch_plan (repo, o, plan, &res, cancellable, error))
    return FALSE;
  g_strlcpy (plan->commit, res.commit, sizeof plan->commit);
  g_strlcpy (plan->from, res.from, sizeof plan->from);
  plan->path = res.path;
  plan->from_found = res.from_found;
  plan->delta_bytes = res.delta_bytes;
  plan->summary_verified = res.summary_verified;
  plan->download_bytes += summary_bytes;
  return TRUE;
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

/* df_fetch_async(): df_fetch() in a GTask's worker thread, its events and
 * progress handed to the caller's main context as copies. */
typedef struct
{
  OstreeRepo *repo;
  DfFetchOptions *opts; /* a copy whose callbacks forward */
  GMainContext *context;
  DfFetchEventFunc event_func;
  gpointer event_data;
  DfProgressFunc progress_func;
  gpointer progress_data;
  DfFetchResult result;
} AsyncFetch;

static void
async_fetch_free (gpointer p)
{
  AsyncFetch *af = p;
  g_object_unref (af->repo);
  df_fetch_options_free (af->opts);
  g_main_context_unref (af->context);
  g_free (af);
}

/* One event or progress snapshot on its way to the caller's context; it
 * holds the task, so the callbacks' data outlive it. */
typedef struct
{
  GTask *task;
  gboolean is_progress;
  DfFetchEvent ev;
  DfProgress progress;
  char *url, *message;
} Delivery;

static gboolean
deliver (gpointer p)
{
  Delivery *d = p;
  AsyncFetch *af = g_task_get_task_data (d->task);
  if (d->is_progress)
    af->progress_func (&d->progress, af->progress_data);
  else
    {
      d->ev.url = d->url;
      d->ev.message = d->message;
      af->event_func (&d->ev, af->event_data);
    }
  return G_SOURCE_REMOVE;
}

static void
delivery_free (gpointer p)
{
  Delivery *d = p;
  g_object_unref (d->task);
  g_free (d->url);
  g_free (d->message);
  g_free (d);
}

static void
post (GTask *task, Delivery *d)
{
  AsyncFetch *af = g_task_get_task_data (task);
  d->task = g_object_ref (task);
  /* Same priority as the task's completion, so every event comes before it. */
  g_main_context_invoke_full (af->context, G_PRIORITY_DEFAULT, deliver, d, delivery_free);
}

static void
forward_event (const DfFetchEvent *ev, gpointer task)
{
  Delivery *d = g_new0 (Delivery, 1);
  d->ev = *ev;
  d->url = g_strdup (ev->url);
  d->message = g_strdup (ev->message);
  post (task, d);
}

static void
forward_progress (const DfProgress *p, gpointer task)
{
  Delivery *d = g_new0 (Delivery, 1);
  d->is_progress = TRUE;
  d->progress = *p;
  post (task, d);
}

static void
fetch_thread (GTask *task, gpointer source, gpointer data, GCancellable *cancellable)
{
  AsyncFetch *af = data;
  GError *error = NULL;
  if (df_fetch (af->repo, af->opts, &af->result, cancellable, &error))
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
}

void
df_fetch_async (OstreeRepo *repo, const DfFetchOptions *opts, GCancellable *cancellable, GAsyncReadyCallback callback,
                gpointer user_data)
{
  GTask *task = g_task_new (NULL, cancellable, callback, user_data);
  g_task_set_source_tag (task, df_fetch_async);
  g_task_set_name (task, "deltafetch fetch");
  AsyncFetch *af = g_new0 (AsyncFetch, 1);
  af->repo = g_object_ref (repo);
  af->opts = dfi_fetch_options_copy (opts);
  af->context = g_main_context_ref_thread_default ();
  af->event_func = opts->event_func;
  af->event_data = opts->event_data;
  af->progress_func = opts->apply->progress;
  af->progress_data = opts->apply->progress_data;
  /* The task is its callbacks' data: the worker runs while it lives. */
  if (af->event_func)
    df_fetch_options_set_event_func (af->opts, forward_event, task);
  if (af->progress_func)
    df_fetch_options_set_progress (af->opts, forward_progress, task);
  g_task_set_task_data (task, af, async_fetch_free);
  g_task_run_in_thread (task, fetch_thread);
  g_object_unref (task);
}

gboolean
df_fetch_finish (GAsyncResult *res, DfFetchResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (res, NULL), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (res, df_fetch_async), FALSE);
  AsyncFetch *af = g_task_get_task_data (G_TASK (res));
  if (result)
    *result = af->result;
  return g_task_propagate_boolean (G_TASK (res), error);
}
