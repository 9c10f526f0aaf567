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
#include "df-objset.h"
#include "df-part.h"

#include <sys/socket.h>

#define FALLBACK_REMOTE "deltafetch-fallback"
/* Dirtrees and dirmetas a plan's walk fetches at a time (a batch of HEAD
 * requests is 16 times as many: they hold no body). */
#define DF_PLAN_WALK_BATCH 256
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
  guint64 byte_cap;          /* the caller's limit on all bytes downloaded, or 0 */
  char *verdict;             /* why the pull was cancelled */
  DfError verdict_code;
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
  /* The plan's sizes are the server's word: the limit holds as it runs. */
  if (w->byte_cap > 0 && dfi_downloader_bytes (w->dl) > w->byte_cap)
    {
      w->verdict = g_strdup_printf ("libostree's pull went past the limit of %" G_GUINT64_FORMAT
                                    " bytes downloaded (%" G_GUINT64_FORMAT ")",
                                    w->byte_cap, dfi_downloader_bytes (w->dl));
      w->verdict_code = DF_ERROR_TOO_LARGE;
      g_cancellable_cancel (w->cancellable);
      return G_SOURCE_CONTINUE;
    }

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
  Watchdog w = { .o = o,
                 .dl = f->dl,
                 .cancellable = pc,
                 .last_tick = g_get_monotonic_time (),
                 .byte_cap = o->max_bytes,
                 .verdict_code = DF_ERROR_TIMEOUT };
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
    return dfi_throw (error, w.verdict_code, "%s", verdict);
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
      /* Past the byte limit, no other mirror can help either. */
      if (g_error_matches (e, G_IO_ERROR, G_IO_ERROR_CANCELLED) || final
          || g_error_matches (e, DF_ERROR, DF_ERROR_TOO_LARGE))
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

/* ---------------------------------------------------------------------- */
/* The plan of a pull                                                       */

/* What a plan of libostree's pull finds out: the bytes it would download
 * beyond what the plan itself fetched, and the disk it needs at least. */
typedef struct
{
  guint64 download, disk;
  guint objects;
} PullSize;

static gboolean
add_size (PullSize *sz, guint64 archived, guint64 unpacked)
{
  if (archived > G_MAXUINT64 - sz->download || unpacked > G_MAXUINT64 - sz->disk)
    return FALSE;
  sz->download += archived, sz->disk += unpacked, sz->objects++;
  return TRUE;
}

/* The commit's ostree.sizes (`ostree commit --generate-sizes`: per object
 * its checksum, archived and unpacked size, and type): the objects the
 * repository lacks, without asking the server. */
static gboolean
size_from_commit (DfFetchRun *f, GVariant *sizes, PullSize *sz, GError **error)
{
  const char *commit = f->o->apply->commit;
  gsize n = g_variant_n_children (sizes);
  for (gsize i = 0; i < n; i++)
    {
      g_autoptr (GVariant) e = g_variant_get_child_value (sizes, i);
      gsize len;
      const guint8 *p = g_variant_get_fixed_array (e, &len, 1), *end = p + len;
      guint64 archived, unpacked;
      if (len < DF_SHA256_LEN + 2)
        return dfi_throw (error, DF_ERROR_INVALID_DELTA, "commit %s: ostree.sizes entry %zu is malformed", commit, i);
      char hex[65];
      ostree_checksum_inplace_from_bytes (p, hex);
      p += DF_SHA256_LEN;
      if (!dfi_varint_read (&p, end, &archived) || !dfi_varint_read (&p, end, &unpacked))
        return dfi_throw (error, DF_ERROR_INVALID_DELTA, "commit %s: ostree.sizes entry %zu is malformed", commit, i);
      OstreeObjectType type = p < end ? (OstreeObjectType)*p : OSTREE_OBJECT_TYPE_FILE;
      if (!ostree_validate_structureof_objtype (type, NULL))
        return dfi_throw (error, DF_ERROR_INVALID_DELTA, "commit %s: ostree.sizes entry %zu names object type %u",
                          commit, i, (guint)type);
      gboolean have = FALSE;
      if (!ostree_repo_has_object (f->repo, type, hex, &have, f->cancellable, error))
        return FALSE;
      if (!have && !add_size (sz, archived, unpacked))
        return dfi_throw (error, DF_ERROR_INVALID_DELTA, "commit %s: ostree.sizes add up past 2^64 bytes", commit);
    }
  return TRUE;
}

/* The walk of a commit without ostree.sizes, the way libostree's pull
 * walks it: the dirtrees and dirmetas the repository lacks come from the
 * server (checked against their checksums; their bytes are the pull's
 * too), and for each content object it lacks the server says its size
 * (HEAD). Sets and queues stay within the memory budget. */
typedef struct
{
  DfFetchRun *f;
  DfObjSet *seen;    /* every object met */
  GByteArray *trees; /* checksums of dirtrees to read next */
  GByteArray *metas; /* checksums of dirmetas the repository lacks */
  GByteArray *files; /* checksums of content objects the repository lacks */
  guint64 memory;    /* what its sets and queues may hold */
  guint64 held_max;  /* what the trees in flight may hold, by their caps */
  PullSize *sz;
} PullWalk;

static gboolean
walk_meet (PullWalk *w, OstreeObjectType type, GVariant *csum_v, GByteArray *queue, gboolean local_too, GError **error)
{
  if (g_variant_n_children (csum_v) != DF_SHA256_LEN)
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "a dirtree of commit %s names a malformed checksum",
                      w->f->o->apply->commit);
  const guint8 *csum = ostree_checksum_bytes_peek (csum_v);
  if (!dfi_objset_add (w->seen, type, csum, NULL))
    return TRUE;
  if (dfi_objset_memory (w->seen) + w->trees->len + w->metas->len + w->files->len > w->memory)
    return dfi_throw (error, DF_ERROR_TOO_LARGE,
                      "commit %s has more objects than a plan may hold within the memory budget (%u met)",
                      w->f->o->apply->commit, dfi_objset_size (w->seen));
  if (!local_too)
    {
      char hex[65];
      dfi_hex (csum, hex);
      gboolean have = FALSE;
      if (!ostree_repo_has_object (w->f->repo, type, hex, &have, w->f->cancellable, error))
        return FALSE;
      if (have)
        return TRUE;
    }
  g_byte_array_append (queue, csum, DF_SHA256_LEN);
  return TRUE;
}

/* A dirtree's entries: its files and subdirectories met. */
static gboolean
walk_tree (PullWalk *w, GVariant *tree, GError **error)
{
  g_autoptr (GVariant) files = g_variant_get_child_value (tree, 0);
  g_autoptr (GVariant) dirs = g_variant_get_child_value (tree, 1);
  gsize nf = g_variant_n_children (files), nd = g_variant_n_children (dirs);
  for (gsize i = 0; i < nf; i++)
    {
      g_autoptr (GVariant) csum = NULL;
      g_variant_get_child (files, i, "(&s@ay)", NULL, &csum);
      if (!walk_meet (w, OSTREE_OBJECT_TYPE_FILE, csum, w->files, FALSE, error))
        return FALSE;
    }
  for (gsize i = 0; i < nd; i++)
    {
      g_autoptr (GVariant) tcsum = NULL, mcsum = NULL;
      g_variant_get_child (dirs, i, "(&s@ay@ay)", NULL, &tcsum, &mcsum);
      /* A subtree the repository has is read there: the pull walks it too. */
      if (!walk_meet (w, OSTREE_OBJECT_TYPE_DIR_TREE, tcsum, w->trees, TRUE, error)
          || !walk_meet (w, OSTREE_OBJECT_TYPE_DIR_META, mcsum, w->metas, FALSE, error))
        return FALSE;
    }
  return TRUE;
}

static char *
object_rel (const guint8 *csum, const char *ext)
{
  char hex[65];
  dfi_hex (csum, hex);
  return g_strdup_printf ("objects/%.2s/%s.%s", hex, hex + 2, ext);
}

/* Takes up to @max checksums off the front of @queue. */
static GByteArray *
take_front (GByteArray *queue, guint max)
{
  guint n = MIN (queue->len / DF_SHA256_LEN, max);
  GByteArray *out = g_byte_array_sized_new (n * DF_SHA256_LEN);
  g_byte_array_append (out, queue->data, n * DF_SHA256_LEN);
  g_byte_array_remove_range (queue, 0, n * DF_SHA256_LEN);
  return out;
}

/* A dirtree or dirmeta of the walk, in from the server: kept only when it
 * hashes to its name (the file's user data); a dirtree is walked at once
 * and let go. */
static gboolean
walk_check (DfSmallFile *f, gpointer data, GError **error)
{
  PullWalk *w = data;
  const guint8 *csum = f->user;
  guint8 got[DF_SHA256_LEN];
  dfi_sha256 (g_bytes_get_data (f->bytes, NULL), g_bytes_get_size (f->bytes), got);
  if (memcmp (got, csum, DF_SHA256_LEN) != 0)
    return dfi_throw (error, DF_ERROR_UNTRUSTED, "the server's %s does not hash to its name", f->rel);
  gboolean ok = TRUE;
  if (g_str_has_suffix (f->rel, ".dirtree"))
    {
      g_autoptr (GVariant) v
          = g_variant_ref_sink (g_variant_new_from_bytes (OSTREE_TREE_GVARIANT_FORMAT, f->bytes, FALSE));
      ok = walk_tree (w, v, error);
    }
  g_clear_pointer (&f->bytes, g_bytes_unref);
  return ok;
}

/* A step of the walk: queued dirtrees (from the repository when it has
 * them, else from the server) and dirmetas, fetched side by side with
 * what is in flight held to the walk's memory; each is checked and walked
 * as it comes in. Under a byte limit, the walk stops once past it. */
static gboolean
walk_step (PullWalk *w, GError **error)
{
  g_autoptr (GByteArray) trees = take_front (w->trees, DF_PLAN_WALK_BATCH);
  g_autoptr (GByteArray) metas = take_front (w->metas, DF_PLAN_WALK_BATCH);
  guint nt = trees->len / DF_SHA256_LEN, nm = metas->len / DF_SHA256_LEN;
  g_autoptr (GPtrArray) rels = g_ptr_array_new_with_free_func (g_free);
  g_autofree DfSmallFile *batch = g_new0 (DfSmallFile, nt + nm);
  guint n = 0;
  for (guint i = 0; i < nt + nm; i++)
    {
      guint8 *csum = i < nt ? trees->data + i * DF_SHA256_LEN : metas->data + (i - nt) * DF_SHA256_LEN;
      if (i < nt)
        {
          char hex[65];
          dfi_hex (csum, hex);
          g_autoptr (GVariant) v = NULL;
          if (!ostree_repo_load_variant_if_exists (w->f->repo, OSTREE_OBJECT_TYPE_DIR_TREE, hex, &v, error))
            return FALSE;
          if (v)
            {
              if (!walk_tree (w, v, error))
                return FALSE;
              continue;
            }
        }
      char *rel = object_rel (csum, i < nt ? "dirtree" : "dirmeta");
      g_ptr_array_add (rels, rel);
      batch[n++]
          = (DfSmallFile){ .rel = rel, .cap = i < nt ? DF_FETCH_DIRTREE_MAX : DF_FETCH_DIRMETA_MAX, .user = csum };
    }
  gboolean ok = dfi_downloader_fetch_many (w->f->dl, batch, n, w->held_max, walk_check, w, error);
  for (guint k = 0; k < n; k++)
    g_clear_pointer (&batch[k].bytes, g_bytes_unref);
  guint64 max = w->f->o->max_bytes;
  if (ok && max > 0 && dfi_downloader_bytes (w->f->dl) > max)
    return dfi_throw (error, DF_ERROR_TOO_LARGE,
                      "libostree's pull of %s needs more than the limit of %" G_GUINT64_FORMAT
                      " bytes downloaded (its trees alone passed it)",
                      w->f->o->apply->commit, max);
  return ok;
}

/* The sizes of the content objects the walk found missing, asked with
 * HEAD requests in batches. FALSE in *@known when the server declares
 * none for one of them. */
static gboolean
walk_sizes (PullWalk *w, gboolean *known, GError **error)
{
  guint n = w->files->len / DF_SHA256_LEN;
  const guint per_batch = 16 * DF_PLAN_WALK_BATCH;
  *known = TRUE;
  for (guint first = 0; first < n; first += per_batch)
    {
      guint m = MIN (per_batch, n - first);
      g_autoptr (GPtrArray) rels = g_ptr_array_new_with_free_func (g_free);
      g_autofree DfSmallFile *batch = g_new0 (DfSmallFile, m);
      for (guint k = 0; k < m; k++)
        {
          char *rel = object_rel (w->files->data + (first + k) * DF_SHA256_LEN, "filez");
          g_ptr_array_add (rels, rel);
          batch[k] = (DfSmallFile){ .rel = rel, .head = TRUE };
        }
      if (!dfi_downloader_fetch_many (w->f->dl, batch, m, 0, NULL, NULL, error))
        return FALSE;
      for (guint k = 0; k < m; k++)
        if (batch[k].size == G_MAXUINT64)
          *known = FALSE;
        /* Archived objects are compressed: at least this much on disk. */
        else if (!add_size (w->sz, batch[k].size, batch[k].size))
          return dfi_throw (error, DF_ERROR_INVALID_DELTA, "the server's object sizes add up past 2^64 bytes");
    }
  return TRUE;
}

/* The remote's mode, from its config (which libostree's pull reads
 * first): only an archive's objects have sizes a plan can ask for. */
static gboolean
remote_is_archive (DfFetchRun *f, gboolean *archive, GError **error)
{
  gboolean not_found = FALSE;
  guint served_by = 0;
  g_autoptr (GBytes) bytes
      = dfi_downloader_fetch_small (f->dl, "config", DF_FETCH_CONFIG_MAX, &not_found, &served_by, error);
  if (bytes == NULL)
    return not_found ? dfi_throw (error, DF_ERROR_NOT_FOUND, "the server has no repository config") : FALSE;
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  gsize len;
  const char *data = g_bytes_get_data (bytes, &len);
  g_autofree char *mode = NULL;
  if (g_key_file_load_from_data (kf, data, len, G_KEY_FILE_NONE, NULL))
    mode = g_key_file_get_string (kf, "core", "mode", NULL);
  *archive = mode && (strcmp (mode, "archive-z2") == 0 || strcmp (mode, "archive") == 0);
  return TRUE;
}

gboolean
dfi_fetch_plan_pull (DfFetchRun *f, GError **error)
{
  DfFetchPlan *plan = f->plan;
  const char *commit = f->o->apply->commit;
  gboolean archive = FALSE;
  if (!remote_is_archive (f, &archive, error))
    return FALSE;
  g_autofree char *rel = g_strdup_printf ("objects/%.2s/%s.commit", commit, commit + 2);
  gboolean not_found = FALSE;
  guint served_by = 0;
  g_autoptr (GBytes) bytes
      = dfi_downloader_fetch_small (f->dl, rel, DF_FETCH_COMMIT_MAX, &not_found, &served_by, error);
  if (bytes == NULL)
    return not_found ? dfi_throw (error, DF_ERROR_NOT_FOUND, "commit %s: not on any mirror", commit) : FALSE;
  guint8 sha[DF_SHA256_LEN];
  dfi_sha256 (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes), sha);
  g_autofree char *got = ostree_checksum_from_bytes (sha);
  if (strcmp (got, commit) != 0)
    return dfi_throw (error, DF_ERROR_UNTRUSTED,
                      "the server's commit object hashes to %s, not to the trusted commit %s", got, commit);
  g_autoptr (GVariant) cv = g_variant_ref_sink (g_variant_new_from_bytes (OSTREE_COMMIT_GVARIANT_FORMAT, bytes, FALSE));
  g_autoptr (GVariant) meta = g_variant_get_child_value (cv, 0);
  g_autoptr (GVariant) sizes = g_variant_lookup_value (meta, "ostree.sizes", G_VARIANT_TYPE ("aay"));
  PullSize sz = { 0 };
  gboolean known = TRUE;
  if (sizes)
    {
      if (!size_from_commit (f, sizes, &sz, error))
        return FALSE;
    }
  else if (!archive)
    known = FALSE; /* a server's bare objects: libostree's pull reads no sizes there either */
  else
    {
      PullWalk w = { .f = f,
                     .seen = dfi_objset_new (NULL),
                     .trees = g_byte_array_new (),
                     .metas = g_byte_array_new (),
                     .files = g_byte_array_new (),
                     .memory = f->o->apply->memory / 2,
                     .held_max = f->o->apply->memory / 2,
                     .sz = &sz };
      g_autoptr (GVariant) root_tree = g_variant_get_child_value (cv, 6);
      g_autoptr (GVariant) root_meta = g_variant_get_child_value (cv, 7);
      gboolean ok = walk_meet (&w, OSTREE_OBJECT_TYPE_DIR_TREE, root_tree, w.trees, TRUE, error)
                    && walk_meet (&w, OSTREE_OBJECT_TYPE_DIR_META, root_meta, w.metas, FALSE, error);
      while (ok && (w.trees->len > 0 || w.metas->len > 0))
        ok = walk_step (&w, error);
      ok = ok && walk_sizes (&w, &known, error);
      dfi_objset_free (w.seen);
      g_byte_array_unref (w.trees), g_byte_array_unref (w.metas), g_byte_array_unref (w.files);
      if (!ok)
        return FALSE;
    }
  /* What the plan fetched (the config, the commit object, dirtrees and
   * dirmetas) stands for the pull's own fetches of them. */
  guint64 fetched = dfi_downloader_bytes (f->dl);
  plan->download_bytes = sz.download > G_MAXUINT64 - fetched ? G_MAXUINT64 : fetched + sz.download;
  plan->parts_to_fetch = sz.objects;
  plan->disk_bytes = sz.disk;
  plan->size_known = known;
  return !known || dfi_check_free_space (f->repo, ostree_repo_get_dfd (f->repo), plan->disk_bytes, error);
}

gboolean
dfi_fetch_pull_within_limit (DfFetchRun *f, GError **error)
{
  const DfFetchOptions *o = f->o;
  DfFetchPlan own = { 0 };
  gboolean planning = f->plan != NULL;
  guint64 before = dfi_downloader_bytes (f->dl);
  if (!planning)
    f->plan = &own;
  DfFetchPlan *plan = f->plan;
  gboolean ok = dfi_fetch_plan_pull (f, error);
  if (!planning)
    f->plan = NULL;
  if (!ok || o->max_bytes == 0)
    return ok;
  if (!plan->size_known)
    return dfi_throw (error, DF_ERROR_TOO_LARGE,
                      "the server offers no delta to %s, and libostree's pull cannot be held to a byte limit (the "
                      "server declares no sizes of its objects)",
                      o->apply->commit);
  /* Under a limit the fetch sizes the pull first, which then fetches the
   * config, commit and trees again: a plan says as much. */
  guint64 again = dfi_downloader_bytes (f->dl) - before;
  guint64 need = again > G_MAXUINT64 - plan->download_bytes ? G_MAXUINT64 : plan->download_bytes + again;
  if (planning)
    plan->download_bytes = need;
  if (need > o->max_bytes)
    return dfi_throw (error, DF_ERROR_TOO_LARGE,
                      "libostree's pull of %s needs %" G_GUINT64_FORMAT
                      " bytes downloaded, more than the limit of %" G_GUINT64_FORMAT
                      " (nothing of it was downloaded but the commit and its trees)",
                      o->apply->commit, need, o->max_bytes);
  return TRUE;
}
