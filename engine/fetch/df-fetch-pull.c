/* The last resort of df_fetch(): libostree's own pull, when the server
 * offers no delta for the update. Pulling by checksum keeps the trust
 * model: libostree checks every object, the commit included, against the
 * checksum asked for.
 *
 * libostree 2022.7 has no low-speed limit or deadline of its own (its curl
 * fetcher sets only a 30 s connect timeout), so a watchdog holds the pull to
 * the same slow-retrieval rules as the native downloads and cancels it
 * through its GCancellable. It watches the pull's OstreeAsyncProgress:
 * "bytes-transferred" is the fetcher's count of body bytes, raised in
 * libcurl's write callback and published by the pull every
 * "update-frequency" ms from a timer on the pull's main context. The
 * watchdog's own timer runs on that same context (pushed as the thread's
 * default around the pull), so it ticks exactly while the pull's loop is
 * free to receive; time the loop spends blocked in local work (the final
 * commit's fsync) is nobody's stall and is not counted.
 *
 * Static deltas are turned off for the pull: with them, libostree first
 * reads the remote's config, summary.sig and summary synchronously on private
 * main contexts, before it publishes any progress, where no watchdog could
 * see a stall. deltafetch's own discovery has looked for the deltas it
 * takes (native, and stock from the device's commit or from scratch)
 * before handing over.
 *
 * libostree pulls only from a named remote, and ostree_repo_remote_change()
 * writes one into REPO/config, where a process killed mid-pull would leave
 * it (with gpg-verify=false). Instead the remote lives in a file of its own
 * under REPO/tmp, and the pull runs through a second OstreeRepo on the same
 * directory whose "remotes-config-dir" names that file's directory: it
 * reads its remotes from config and from there, and the config is never
 * written. The file goes when the pull ends, and the next run removes what
 * a killed one left (under the deltafetch lock, which the caller holds). */
#include "df-fetch-private.h"

#include "df-apply-policy.h"
#include "df-common.h"

#include <sys/socket.h>

#define FALLBACK_REMOTE "deltafetch-fallback"
/* The directory of the remote's file, relative to the repository. */
#define REMOTE_DIR "tmp/deltafetch-remote"

/* How often the pull publishes its progress and the watchdog looks at it. */
#define WATCHDOG_TICK_MS 100
/* A tick that comes later than this after the last one (a loop blocked in
 * local work, a loaded machine) counts as this long: the pull could not
 * receive meanwhile, so that time is not the server's. */
#define WATCHDOG_STEP_MAX_US (5 * WATCHDOG_TICK_MS * 1000)

typedef struct
{
  gint64 at; /* Watchdog.waited when taken */
  guint64 bytes;
} Sample;

typedef struct
{
  const DfFetchOptions *o;
  DfDownloader *dl; /* counts the pull's bytes, reports progress */
  guint64 counted;  /* of "bytes-transferred", what dl has been told */
  OstreeAsyncProgress *progress;
  GCancellable *cancellable; /* the pull's own: cancelled on a verdict */
  gint64 last_tick;          /* monotonic µs */
  gint64 waited;             /* µs with fetches outstanding and the loop free to receive */
  GArray *window;            /* Sample, spanning the last low-speed time of waiting */
  char *verdict;             /* why the pull was cancelled */
} Watchdog;

static void
count_bytes (Watchdog *w, guint64 bytes)
{
  if (bytes > w->counted)
    dfi_downloader_count_external (w->dl, bytes - w->counted);
  w->counted = MAX (w->counted, bytes);
}

/* The same rules as a native transfer's (libcurl's low-speed limit, and the
 * deadline of deadline_ms() in df-fetch.c), for a pull whose size nobody
 * knows up front and whose transfers are libostree's: over the time spent
 * waiting on the network, (1) at least low_speed_limit × low_speed_time
 * bytes in every low_speed_time seconds; (2) after a grace of the connect
 * timeout plus the low-speed time, on average at least min_rate bytes per
 * second beyond that grace, which is what a transfer of that many bytes
 * would have had as its deadline. */
static gboolean
watchdog_tick (gpointer data)
{
  Watchdog *w = data;
  const DfFetchOptions *o = w->o;
  gint64 now = g_get_monotonic_time ();
  gint64 step = MIN (now - w->last_tick, WATCHDOG_STEP_MAX_US);
  w->last_tick = now;
  if (w->verdict)
    return G_SOURCE_CONTINUE;
  /* Until the pull's first report, and while nothing is asked of the
   * network (scanning, writing), there is nothing to wait for. */
  g_autoptr (GVariant) fetches = ostree_async_progress_get_variant (w->progress, "outstanding-fetches");
  if (fetches == NULL || g_variant_get_uint32 (fetches) == 0)
    return G_SOURCE_CONTINUE;
  guint64 bytes = ostree_async_progress_get_uint64 (w->progress, "bytes-transferred");
  count_bytes (w, bytes);
  w->waited += step;

  if (o->net.low_speed_limit > 0 && o->net.low_speed_time > 0)
    {
      gint64 span = (gint64)o->net.low_speed_time * G_USEC_PER_SEC;
      Sample s = { w->waited, bytes };
      g_array_append_val (w->window, s);
      /* Keep one sample at or before the window's start. */
      guint drop = 0;
      while (drop + 1 < w->window->len && g_array_index (w->window, Sample, drop + 1).at <= w->waited - span)
        drop++;
      g_array_remove_range (w->window, 0, drop);
      const Sample *first = &g_array_index (w->window, Sample, 0);
      guint64 need = (guint64)o->net.low_speed_limit * o->net.low_speed_time;
      if (first->at <= w->waited - span && bytes - first->bytes < need)
        w->verdict = g_strdup_printf ("too slow: %" G_GUINT64_FORMAT " bytes in the last %u s, below the low-speed "
                                      "limit of %u bytes/s",
                                      bytes - first->bytes, o->net.low_speed_time, o->net.low_speed_limit);
    }
  gint64 grace = ((gint64)o->net.connect_timeout + o->net.low_speed_time) * G_USEC_PER_SEC;
  if (w->verdict == NULL && o->net.min_rate > 0 && w->waited > grace)
    {
      guint64 need = (guint64)((w->waited - grace) / 1000) * o->net.min_rate / 1000;
      if (bytes < need)
        w->verdict = g_strdup_printf ("too slow: %" G_GUINT64_FORMAT " bytes in %" G_GINT64_FORMAT
                                      " s, below the minimum average rate of %u bytes/s (after %u s allowed for "
                                      "connecting and stalls)",
                                      bytes, w->waited / G_USEC_PER_SEC, o->net.min_rate,
                                      o->net.connect_timeout + o->net.low_speed_time);
    }
  if (w->verdict)
    g_cancellable_cancel (w->cancellable);
  return G_SOURCE_CONTINUE;
}

/* The watchdog of the pull running on this thread, for watched_poll(). */
static GPrivate current_watchdog = G_PRIVATE_INIT (NULL);

/* The poll of the pull's main context. libostree 2022.7's curl fetcher
 * does not abort a transfer when the pull is cancelled: the pull stops
 * starting new ones and waits for those in flight to end, which a stalled
 * server's never do. So once the pull is cancelled, every TCP socket this
 * context polls is shut down, and libcurl ends its transfer with an error.
 * Those sockets can only be that fetcher's (nothing else watches a socket
 * on this private context), and this thread is the one that drives them,
 * so none is closed or reused under us. */
static gint
watched_poll (GPollFD *fds, guint n, gint timeout)
{
  Watchdog *w = g_private_get (&current_watchdog);
  if (w && g_cancellable_is_cancelled (w->cancellable))
    for (guint i = 0; i < n; i++)
      {
        int domain = 0, type = 0;
        socklen_t len = sizeof domain;
        if (getsockopt (fds[i].fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0
            || (domain != AF_INET && domain != AF_INET6))
          continue;
        len = sizeof type;
        if (getsockopt (fds[i].fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM)
          shutdown (fds[i].fd, SHUT_RDWR);
      }
  return g_poll (fds, n, timeout);
}

/* ostree_repo_pull_with_options() from the fallback remote under the
 * watchdog, with @c (the caller's, may be NULL) still cancelling it. When
 * the watchdog stopped it, fails with DF_ERROR_TIMEOUT saying what was too
 * slow; when @c did, with G_IO_ERROR_CANCELLED. */
static gboolean
watched_pull (OstreeRepo *repo, DfFetchRun *f, GVariant *popts, GError **error)
{
  const DfFetchOptions *o = f->o;
  GCancellable *c = f->cancellable;
  g_autoptr (GMainContext) ctx = g_main_context_new ();
  g_main_context_set_poll_func (ctx, watched_poll);
  g_main_context_push_thread_default (ctx);
  g_autoptr (GCancellable) pc = g_cancellable_new ();
  gulong forward = dfi_cancellable_forward (c, pc);
  Watchdog w = { .o = o, .dl = f->dl, .cancellable = pc, .last_tick = g_get_monotonic_time () };
  /* Made here, so that its change notifications go to the pull's context. */
  w.progress = ostree_async_progress_new ();
  w.window = g_array_new (FALSE, FALSE, sizeof (Sample));
  Sample start = { 0, 0 };
  g_array_append_val (w.window, start);
  GSource *tick = g_timeout_source_new (WATCHDOG_TICK_MS);
  g_source_set_priority (tick, G_PRIORITY_HIGH);
  g_source_set_callback (tick, watchdog_tick, &w, NULL);
  g_source_attach (tick, ctx);
  g_private_set (&current_watchdog, &w);

  g_autoptr (GError) local = NULL;
  const char *remote = f->o->apply->remote ? f->o->apply->remote : FALLBACK_REMOTE;
  gboolean ok = ostree_repo_pull_with_options (repo, remote, popts, w.progress, pc, &local);

  g_private_set (&current_watchdog, NULL);
  count_bytes (&w, ostree_async_progress_get_uint64 (w.progress, "bytes-transferred"));
  g_source_destroy (tick);
  g_source_unref (tick);
  ostree_async_progress_finish (w.progress);
  g_object_unref (w.progress);
  g_array_unref (w.window);
  if (forward)
    g_cancellable_disconnect (c, forward);
  g_main_context_pop_thread_default (ctx);
  g_autofree char *verdict = w.verdict;
  if (ok)
    return TRUE;
  if (g_cancellable_set_error_if_cancelled (c, error))
    return FALSE;
  if (verdict)
    return dfi_throw (error, DF_ERROR_TIMEOUT, "%s", verdict);
  g_propagate_error (error, g_steal_pointer (&local));
  return FALSE;
}

/* A second OstreeRepo on @repo's directory that knows the fallback remote,
 * at @url, from its own file. */
static OstreeRepo *
repo_with_remote (OstreeRepo *repo, const DfFetchOptions *o, const char *url, GError **error)
{
  int dfd = ostree_repo_get_dfd (repo);
  if (!dfi_rm_rf_at (dfd, REMOTE_DIR, error))
    return NULL;
  if (mkdirat (dfd, REMOTE_DIR, 0700) < 0)
    {
      dfi_throw_errno (error, errno, "creating %s", REMOTE_DIR);
      return NULL;
    }
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  const char *group = "remote \"" FALLBACK_REMOTE "\"";
  g_key_file_set_string (kf, group, "url", url);
  /* Trust comes from the commit checksum, not from GPG. */
  g_key_file_set_boolean (kf, group, "gpg-verify", FALSE);
  g_key_file_set_boolean (kf, group, "gpg-verify-summary", FALSE);
  if (o->net.ca_file)
    g_key_file_set_string (kf, group, "tls-ca-path", o->net.ca_file);
  if (o->net.cert)
    g_key_file_set_string (kf, group, "tls-client-cert-path", o->net.cert);
  if (o->net.key)
    g_key_file_set_string (kf, group, "tls-client-key-path", o->net.key);
  if (o->net.proxy)
    g_key_file_set_string (kf, group, "proxy", o->net.proxy);
  if (o->net.insecure)
    g_key_file_set_boolean (kf, group, "tls-permissive", TRUE);
  g_autofree char *dir = g_build_filename (g_file_peek_path (ostree_repo_get_path (repo)), REMOTE_DIR, NULL);
  g_autofree char *file = g_build_filename (dir, FALLBACK_REMOTE ".conf", NULL);
  g_autoptr (OstreeRepo) r
      = g_object_new (OSTREE_TYPE_REPO, "path", ostree_repo_get_path (repo), "remotes-config-dir", dir, NULL);
  if (!g_key_file_save_to_file (kf, file, error) || !ostree_repo_open (r, NULL, error))
    {
      dfi_error_normalize (error, "configuring the fallback pull");
      return NULL;
    }
  return g_steal_pointer (&r);
}

static GVariant *
pull_options (const DfFetchOptions *o, const char *url, OstreeRepoPullFlags flags)
{
  GVariantBuilder b;
  g_variant_builder_init (&b, G_VARIANT_TYPE ("a{sv}"));
  /* Through a remote of the config, its TLS and signature settings hold
   * (libostree checks the commit's signature as it asks); only the mirror
   * is ours. */
  if (o->apply->remote)
    g_variant_builder_add (&b, "{sv}", "override-url", g_variant_new_string (url));
  if (o->net.headers->len > 0)
    {
      GVariantBuilder h;
      g_variant_builder_init (&h, G_VARIANT_TYPE ("a(ss)"));
      for (guint i = 0; i + 1 < o->net.headers->len; i += 2)
        g_variant_builder_add (&h, "(ss)", o->net.headers->pdata[i], o->net.headers->pdata[i + 1]);
      g_variant_builder_add (&b, "{sv}", "http-headers", g_variant_builder_end (&h));
    }
  const char *refs[] = { o->apply->commit, NULL };
  g_variant_builder_add (&b, "{sv}", "refs", g_variant_new_strv (refs, -1));
  g_variant_builder_add (&b, "{sv}", "n-network-retries", g_variant_new_uint32 (o->net.retries));
  g_variant_builder_add (&b, "{sv}", "disable-static-deltas", g_variant_new_boolean (TRUE));
  g_variant_builder_add (&b, "{sv}", "update-frequency", g_variant_new_uint32 (WATCHDOG_TICK_MS));
  if (flags)
    g_variant_builder_add (&b, "{sv}", "flags", g_variant_new_int32 (flags));
  return g_variant_ref_sink (g_variant_builder_end (&b));
}

void
dfi_fetch_pull_forget_remote (OstreeRepo *repo)
{
  dfi_rm_rf_at (ostree_repo_get_dfd (repo), REMOTE_DIR, NULL);
  /* Earlier versions wrote the remote into the config. */
  ostree_repo_remote_change (repo, NULL, OSTREE_REPO_REMOTE_CHANGE_DELETE_IF_EXISTS, FALLBACK_REMOTE, NULL, NULL, NULL,
                             NULL);
}

/* Brings the commit in from @url: the commit object first, for the
 * downgrade check (whose refusal is final: *@final), then the rest. */
static gboolean
pull_mirror (DfFetchRun *f, const char *url, gboolean *final, GError **error)
{
  const DfFetchOptions *o = f->o;
  *final = FALSE;
  g_autoptr (OstreeRepo) pr = o->apply->remote ? g_object_ref (f->repo) : repo_with_remote (f->repo, o, url, error);
  if (pr == NULL)
    {
      *final = TRUE;
      return FALSE;
    }
  g_autoptr (GVariant) copts = pull_options (o, url, OSTREE_REPO_PULL_FLAGS_COMMIT_ONLY);
  g_autoptr (GVariant) popts = pull_options (o, url, 0);
  g_autoptr (GVariant) commit = NULL;
  if (!watched_pull (pr, f, copts, error) || !ostree_repo_load_commit (f->repo, o->apply->commit, &commit, NULL, error))
    return FALSE;
  if (!dfi_check_downgrade (f->repo, o->apply->ref, o->apply->commit, commit, o->apply->allow_downgrade, error))
    {
      *final = TRUE;
      return FALSE;
    }
  return watched_pull (pr, f, popts, error);
}

gboolean
dfi_fetch_pull_fallback (DfFetchRun *f, GError **error)
{
  const DfFetchOptions *o = f->o;
  if (o->net.pin)
    return dfi_throw (error, DF_ERROR_NETWORK,
                      "the server offers no native delta, and libostree's pull cannot honour the pinned public key");
  g_autofree char *last = NULL;
  DfError kind = DF_ERROR_NETWORK;
  for (guint i = 0; i < o->net.urls->len; i++)
    {
      const char *url = o->net.urls->pdata[i];
      g_autoptr (GError) e = NULL;
      gboolean final;
      gboolean ok = pull_mirror (f, url, &final, &e);
      /* The remote exists only while its pull runs, whatever the outcome. */
      dfi_rm_rf_at (ostree_repo_get_dfd (f->repo), REMOTE_DIR, NULL);
      if (ok)
        return dfi_set_ref (f->repo, o->apply->ref, o->apply->commit, f->cancellable, error);
      if (g_error_matches (e, G_IO_ERROR, G_IO_ERROR_CANCELLED) || final)
        {
          g_propagate_error (error, g_steal_pointer (&e));
          return FALSE;
        }
      /* A full disk is not the mirror's fault: no other mirror can help. */
      if (!g_error_matches (e, DF_ERROR, DF_ERROR_TIMEOUT))
        dfi_error_normalize (&e, "libostree's pull");
      if (g_error_matches (e, DF_ERROR, DF_ERROR_NO_SPACE))
        {
          g_propagate_error (error, g_steal_pointer (&e));
          return FALSE;
        }
      kind = g_error_matches (e, DF_ERROR, DF_ERROR_TIMEOUT) ? DF_ERROR_TIMEOUT : DF_ERROR_NETWORK;
      g_free (last);
      last = g_strdup_printf ("%s: %s", url, e->message);
    }
  return dfi_throw (error, kind, "libostree's pull failed on every mirror; last: %s", last);
}
