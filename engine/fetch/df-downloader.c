/* The downloader (see df-downloader.h). */
#include "df-downloader.h"

typedef struct
{
  const char *base;
  gboolean demoted;
  gboolean ignores_ranges; /* answered a ranged request with the whole file */
} Mirror;

struct _DfDownloader
{
  const DfFetchOptions *o;
  DfNetConfig net;
  GCancellable *cancellable;
  DfFetchResult *res;
  Mirror *mirrors;
  guint n_mirrors;
  CURLM *multi;
  guint active;
  /* The parts */
  DfPartStore *store;
  char delta_rel[200];
  DfPartConsumer consumer;
  guint parts_left;
  GQueue pending;  /* DfStoreRange* */
  GPtrArray *jobs; /* Job* in flight */
  /* Accounting */
  guint64 bytes_total, bytes_downloaded;
  gint64 last_event, last_checkpoint;
  guint64 rate_bytes;
  gint64 rate_since;
  double rate;
  DfRateBucket bucket; /* the rate cap (net.bucket points here), when set */
  guint pace_next;     /* the transfer dfi_transfer_pace() starts with */
  DfFetchPhase phase;
  /* What the last PROGRESS event carried: none is sent without a change. */
  guint64 shown_bytes, shown_total;
  guint shown_parts;
  DfFetchPhase shown_phase;
  GError *fatal;
  gboolean consumer_failed;
  gboolean fresh; /* small files: ask caches for fresh copies */
};

/* One transfer as the downloader sees it: the sink of a small file or of
 * a range of a part. */
typedef struct
{
  DfDownloader *d;
  DfTransfer *t;
  guint mirror;
  gboolean ranged;
  DfStoreRange *range; /* or NULL: a small file into buf */
  GByteArray *buf;
  guint generation;    /* of the part when the transfer started */
  gboolean whole;      /* the reply is the whole file */
  gboolean moot;       /* a second whole-file reply for a part: dropped, its range waits */
  gboolean superseded; /* the part started over meanwhile */
  guint item;          /* a batch's file (dfi_downloader_fetch_many()) */
} Job;

static void
job_free (Job *j)
{
  dfi_transfer_free (j->t);
  if (j->buf)
    g_byte_array_unref (j->buf);
  g_free (j);
}

DfDownloader *
dfi_downloader_new (const DfFetchOptions *o, DfFetchResult *res, GCancellable *cancellable)
{
  static gsize curl_ready = 0;
  if (g_once_init_enter (&curl_ready))
    {
      curl_global_init (CURL_GLOBAL_DEFAULT);
      g_once_init_leave (&curl_ready, 1);
    }
  DfDownloader *d = g_new0 (DfDownloader, 1);
  d->phase = DF_FETCH_PHASE_DISCOVER;
  d->o = o;
  d->res = res;
  d->cancellable = cancellable;
  dfi_fetch_options_get_net (o, &d->net);
  if (o->net.max_rate > 0)
    {
      d->bucket.rate = o->net.max_rate;
      d->net.bucket = &d->bucket;
    }
  d->n_mirrors = o->net.urls->len;
  d->mirrors = g_new0 (Mirror, d->n_mirrors);
  for (guint i = 0; i < d->n_mirrors; i++)
    d->mirrors[i].base = o->net.urls->pdata[i];
  d->jobs = g_ptr_array_new ();
  d->multi = curl_multi_init ();
  curl_multi_setopt (d->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)o->net.connections);
  curl_multi_setopt (d->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)o->net.connections);
  curl_multi_setopt (d->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  return d;
}

void
dfi_downloader_free (DfDownloader *d)
{
  if (d == NULL)
    return;
  for (guint i = 0; i < d->jobs->len; i++)
    {
      Job *j = d->jobs->pdata[i];
      curl_multi_remove_handle (d->multi, dfi_transfer_get_easy (j->t));
      job_free (j);
    }
  g_ptr_array_unref (d->jobs);
  g_queue_clear (&d->pending);
  curl_multi_cleanup (d->multi);
  g_free (d->mirrors);
  g_clear_error (&d->fatal);
  g_free (d);
}

guint
dfi_downloader_n_mirrors (DfDownloader *d)
{
  return d->n_mirrors;
}

const char *
dfi_downloader_mirror (DfDownloader *d, guint m)
{
  return d->mirrors[m].base;
}

guint64
dfi_downloader_bytes (DfDownloader *d)
{
  return d->bytes_downloaded;
}

guint64
dfi_downloader_bytes_planned (DfDownloader *d)
{
  return d->bytes_total;
}

const GError *
dfi_downloader_get_error (DfDownloader *d)
{
  return d->fatal;
}

GError *
dfi_downloader_steal_error (DfDownloader *d)
{
  return g_steal_pointer (&d->fatal);
}

gboolean
dfi_downloader_consumer_failed (DfDownloader *d)
{
  return d->consumer_failed;
}

void
dfi_downloader_emit (DfDownloader *d, DfFetchEventType type, const char *url, const char *message)
{
  if (d->o->event_func == NULL)
    return;
  DfFetchEvent ev = { 0 };
  ev.type = type;
  ev.path = d->res->path;
  ev.url = url;
  ev.message = message;
  ev.bytes_downloaded = d->bytes_downloaded;
  ev.bytes_reused = d->res->bytes_reused;
  ev.bytes_total = d->bytes_total ? d->bytes_total + ev.bytes_reused : 0;
  ev.bytes_done = d->bytes_downloaded + ev.bytes_reused;
  ev.parts_total = d->store ? d->store->n_parts : 0;
  if (d->consumer.parts_applied)
    ev.parts_applied = d->consumer.parts_applied (d->consumer.data);
  ev.rate = d->rate;
  ev.phase = d->phase;
  ev.time = g_get_real_time ();
  if (type == DF_FETCH_EVENT_PROGRESS)
    {
      if (ev.bytes_downloaded == d->shown_bytes && ev.bytes_total == d->shown_total
          && ev.parts_applied == d->shown_parts && ev.phase == d->shown_phase)
        return;
      d->shown_bytes = ev.bytes_downloaded, d->shown_total = ev.bytes_total;
      d->shown_parts = ev.parts_applied, d->shown_phase = ev.phase;
    }
  d->o->event_func (&ev, d->o->event_data);
}

static void
set_fatal (DfDownloader *d, GError *e)
{
  if (d->fatal == NULL)
    d->fatal = e;
  else
    g_error_free (e);
}

int
dfi_downloader_current_mirror (DfDownloader *d)
{
  for (guint i = 0; i < d->n_mirrors; i++)
    if (!d->mirrors[i].demoted)
      return i;
  return -1;
}

void
dfi_downloader_demote (DfDownloader *d, guint m, const char *why)
{
  if (d->mirrors[m].demoted)
    return;
  d->mirrors[m].demoted = TRUE;
  d->res->mirror_switches++;
  dfi_downloader_emit (d, DF_FETCH_EVENT_MIRROR_SWITCH, d->mirrors[m].base, why);
}

/* ---------------------------------------------------------------------- */
/* The sink of a job                                                        */

static const char *
job_validator (gpointer data)
{
  Job *j = data;
  if (j->range == NULL)
    return NULL;
  DfStorePart *p = j->range->part;
  return !p->ignore_etag && p->etag[0] && p->etag_mirror == j->mirror ? p->etag : NULL;
}

static DfSinkAnswer
job_reply (gpointer data, gboolean whole, const char *etag)
{
  Job *j = data;
  if (j->range == NULL)
    return DF_SINK_OK;
  DfStorePart *p = j->range->part;
  if (j->generation != p->generation)
    {
      j->superseded = TRUE; /* the part started over meanwhile */
      return DF_SINK_STALE;
    }
  if (whole)
    {
      if (p->full_active > 0 || p->remaining == 0)
        {
          /* Another reply brings (or brought) the whole file: a mirror that
           * ignores Range answers every range in flight with all of it.
           * Take nothing from this one; its range waits for that one. */
          j->moot = TRUE;
          return DF_SINK_MOOT;
        }
      j->whole = TRUE;
      p->full_active++;
      if (j->ranged)
        j->d->mirrors[j->mirror].ignores_ranges = TRUE;
    }
  /* ETags are only comparable between replies of one mirror. */
  if (etag[0] && (p->etag[0] == '\0' || p->etag_mirror != j->mirror))
    {
      g_strlcpy (p->etag, etag, sizeof p->etag);
      p->etag_mirror = j->mirror;
    }
  return DF_SINK_OK;
}

static DfSinkAnswer
job_write (gpointer data, guint64 at, const void *buf, gsize len, GError **error)
{
  Job *j = data;
  if (j->range == NULL)
    g_byte_array_append (j->buf, buf, len);
  else
    {
      DfStorePart *p = j->range->part;
      if (j->generation != p->generation)
        {
          /* The part started over (the file changed): these bytes are stale. */
          j->superseded = TRUE;
          return DF_SINK_STALE;
        }
      if (!dfi_pwrite_all (p->fd, buf, len, at, "part", NULL))
        {
          dfi_throw_errno (error, errno, "writing downloaded bytes");
          return DF_SINK_FAILED;
        }
    }
  j->d->bytes_downloaded += len;
  return DF_SINK_OK;
}

/* Where part @p is on a mirror, relative to its base URL: a fallback
 * object's own path, else the delta's directory and the part's index. */
static char *
part_rel (DfDownloader *d, const DfStorePart *p)
{
  if (p->rel)
    return g_strdup (p->rel);
  return g_strdup_printf ("%s%s%u", d->delta_rel, d->delta_rel[0] ? "/" : "", p->index);
}

static Job *
job_new_full (DfDownloader *d, guint mirror, const char *rel, const char *name, guint64 off, guint64 len,
              guint64 file_size, gboolean ranged, const char *if_range, gboolean fresh, gboolean head)
{
  Job *j = g_new0 (Job, 1);
  j->d = d;
  j->mirror = mirror;
  j->ranged = ranged;
  g_autofree char *url = fresh ? g_strdup_printf ("%s/%s?fresh=%" G_GINT64_FORMAT, d->mirrors[mirror].base, rel,
                                                  g_get_real_time ())
                               : g_strconcat (d->mirrors[mirror].base, "/", rel, NULL);
  DfTransferRequest req = { .url = url,
                            .name = name,
                            .ranged = ranged,
                            .off = off,
                            .len = len,
                            .file_size = file_size,
                            .if_range = if_range,
                            .fresh = fresh,
                            .head = head };
  DfTransferSink sink = { .validator = job_validator, .reply = job_reply, .write = job_write, .data = j };
  j->t = dfi_transfer_new (&d->net, &req, &sink, d->cancellable);
  return j;
}

static Job *
job_new (DfDownloader *d, guint mirror, const char *rel, const char *name, guint64 off, guint64 len, guint64 file_size,
         gboolean ranged, const char *if_range)
{
  return job_new_full (d, mirror, rel, name, off, len, file_size, ranged, if_range, FALSE, FALSE);
}

void
dfi_downloader_set_fresh (DfDownloader *d)
{
  d->fresh = TRUE;
}

/* ---------------------------------------------------------------------- */
/* Small files                                                              */

GBytes *
dfi_downloader_fetch_small (DfDownloader *d, const char *rel, guint64 cap, gboolean *not_found, guint *served_by,
                            GError **error)
{
  guint n404 = 0;
  DfError kind = DF_ERROR_NETWORK;
  g_autofree char *last = NULL;
  *not_found = FALSE;
  for (guint m = 0; m < d->n_mirrors; m++)
    {
      if (d->mirrors[m].demoted)
        continue;
      for (guint attempt = 1; attempt <= MAX (1, d->o->net.retries); attempt++)
        {
          Job *j = job_new_full (d, m, rel, rel, 0, cap, G_MAXUINT64, FALSE, NULL, d->fresh, FALSE);
          j->buf = g_byte_array_new ();
          CURLcode rc = dfi_transfer_perform (j->t, d->multi);
          g_autofree char *msg = NULL;
          DfTransferOutcome out = dfi_transfer_judge (j->t, rc, &kind, &msg);
          if (out == DF_TRANSFER_OK)
            {
              GBytes *b = g_byte_array_free_to_bytes (g_steal_pointer (&j->buf));
              job_free (j);
              *served_by = m;
              return b;
            }
          int status = dfi_transfer_get_status (j->t);
          job_free (j);
          if (g_cancellable_set_error_if_cancelled (d->cancellable, error))
            return NULL;
          if (out == DF_TRANSFER_FATAL)
            {
              dfi_throw (error, kind, "%s: %s", rel, msg);
              return NULL;
            }
          g_free (last);
          last = g_strdup_printf ("%s%s%s: %s", d->mirrors[m].base, rel[0] ? "/" : "", rel, msg);
          if (status == 404 || status == 410)
            {
              n404++;
              break; /* not there; no point asking again */
            }
          d->res->retries++;
          dfi_downloader_emit (d, DF_FETCH_EVENT_RETRY, d->mirrors[m].base, last);
          if (out == DF_TRANSFER_DEMOTE || attempt >= d->o->net.retries)
            {
              /* Failed the small files: no use asking it for parts. */
              dfi_downloader_demote (d, m, last);
              break;
            }
          if (attempt < d->o->net.retries)
            g_usleep (dfi_transfer_backoff_us (attempt));
        }
    }
  /* Not found when every mirror still in use says so: a mirror demoted for
   * failing (now or earlier) serves nothing more in this fetch. */
  guint usable = 0;
  for (guint m = 0; m < d->n_mirrors; m++)
    usable += !d->mirrors[m].demoted;
  if (n404 > 0 && n404 == usable)
    {
      *not_found = TRUE;
      dfi_throw (error, DF_ERROR_NETWORK, "%s: not found on any mirror", rel);
      return NULL;
    }
  dfi_throw (error, kind, "%s (every mirror failed)", last ? last : rel);
  return NULL;
}

/* The first mirror in use after @m (G_MAXUINT for the first of all), or
 * G_MAXUINT when none is left. */
static guint
next_mirror (DfDownloader *d, guint m)
{
  for (guint i = m == G_MAXUINT ? 0 : m + 1; i < d->n_mirrors; i++)
    if (!d->mirrors[i].demoted)
      return i;
  return G_MAXUINT;
}

/* No mirror is left to ask for batch file @f: not found when every mirror
 * still in use answered 404 or 410, else the last failure (@kind, @what). */
static gboolean
many_exhausted (DfDownloader *d, DfSmallFile *f, DfError kind, const char *what, GError **error)
{
  guint usable = 0;
  for (guint m = 0; m < d->n_mirrors; m++)
    usable += !d->mirrors[m].demoted;
  if (f->n404 > 0 && usable > 0 && f->n404 >= usable)
    return dfi_throw (error, DF_ERROR_NOT_FOUND, "%s: not found on any mirror", f->rel);
  return dfi_throw (error, kind, "%s (every mirror failed)", what ? what : f->rel);
}

/* Batch file @f goes to the next mirror in use after its own, its tries
 * counted afresh there. FALSE when there is none. */
static gboolean
many_next_mirror (DfDownloader *d, DfSmallFile *f)
{
  f->attempts = 0;
  f->ready_at = 0;
  f->mirror = next_mirror (d, f->mirror);
  return f->mirror != G_MAXUINT;
}

/* A batch's file failed on its mirror (@out, @status, @msg): retried there
 * after a pause, or asked of the next mirror; an optional file is given up
 * at once. FALSE with @error when no mirror is left to ask. */
static gboolean
many_failed (DfDownloader *d, DfSmallFile *f, DfTransferOutcome out, int status, DfError kind, const char *msg,
             GError **error)
{
  g_autofree char *what = g_strdup_printf ("%s/%s: %s", d->mirrors[f->mirror].base, f->rel, msg);
  if (out == DF_TRANSFER_FATAL)
    return dfi_throw (error, kind, "%s: %s", f->rel, msg);
  if (f->optional)
    {
      f->done = TRUE; /* a hint: no retry, no mirror blamed */
      return TRUE;
    }
  if (status == 404 || status == 410)
    f->n404++; /* not there: the next mirror may have it */
  else if (!d->mirrors[f->mirror].demoted)
    {
      d->res->retries++;
      dfi_downloader_emit (d, DF_FETCH_EVENT_RETRY, d->mirrors[f->mirror].base, what);
      if (out != DF_TRANSFER_DEMOTE && ++f->attempts < MAX (1, d->o->net.retries))
        {
          f->ready_at = g_get_monotonic_time () + dfi_transfer_backoff_us (f->attempts);
          return TRUE;
        }
      dfi_downloader_demote (d, f->mirror, what);
    }
  if (many_next_mirror (d, f))
    return TRUE;
  return many_exhausted (d, f, kind, what, error);
}

/* A batch's transfer ended: the file is in (and passed @check), or waits
 * for another try. */
static gboolean
many_done (DfDownloader *d, DfSmallFile *files, Job *j, CURLcode rc, DfSmallFileCheck check, gpointer data,
           GError **error)
{
  DfSmallFile *f = &files[j->item];
  DfError kind = DF_ERROR_NETWORK;
  g_autofree char *msg = NULL;
  DfTransferOutcome out = dfi_transfer_judge (j->t, rc, &kind, &msg);
  if (out == DF_TRANSFER_OK)
    {
      if (f->head)
        f->size = dfi_transfer_get_declared_size (j->t);
      else
        f->bytes = g_byte_array_free_to_bytes (g_steal_pointer (&j->buf));
      f->done = TRUE;
      return f->head || check == NULL || check (f, data, error);
    }
  if (g_cancellable_set_error_if_cancelled (d->cancellable, error))
    return FALSE;
  return many_failed (d, f, out, dfi_transfer_get_status (j->t), kind, msg, error);
}

gboolean
dfi_downloader_fetch_many (DfDownloader *d, DfSmallFile *files, guint n, guint64 held_max, DfSmallFileCheck check,
                           gpointer data, GError **error)
{
  g_return_val_if_fail (d->jobs->len == 0, FALSE);
  if (n == 0)
    return TRUE;
  guint first = next_mirror (d, G_MAXUINT);
  if (first == G_MAXUINT)
    return dfi_throw (error, DF_ERROR_NETWORK, "no mirror left to ask");
  for (guint i = 0; i < n; i++)
    {
      files[i].bytes = NULL, files[i].size = G_MAXUINT64, files[i].done = files[i].in_flight = FALSE;
      files[i].mirror = first, files[i].attempts = files[i].n404 = 0, files[i].ready_at = 0;
    }
  /* More requests than connections: HTTP/2 multiplexes them, and libcurl
   * queues the rest for a free connection. */
  guint limit = MIN (4 * MAX (1u, d->o->net.connections), 64u);
  guint next = 0, left = n;
  guint64 held = 0; /* the caps of the bodies in flight */
  GError *local = NULL;
  while (left > 0 && local == NULL)
    {
      if (g_cancellable_set_error_if_cancelled (d->cancellable, &local))
        break;
      gint64 now = g_get_monotonic_time (), wait_until = now + 200 * 1000;
      /* Start what may start: files not yet done, not in flight, past their
       * pause, in order from where the last round stopped; bodies in
       * flight held to @held_max together (one at least). */
      for (guint k = 0; k < n && d->jobs->len < limit; k++)
        {
          guint i = (next + k) % n;
          DfSmallFile *f = &files[i];
          if (f->done || f->in_flight)
            continue;
          if (f->ready_at > now)
            {
              wait_until = MIN (wait_until, f->ready_at);
              continue;
            }
          guint64 cap = f->head ? 0 : f->cap;
          if (held_max > 0 && d->jobs->len > 0 && (cap > held_max || held > held_max - cap))
            break;
          if (d->mirrors[f->mirror].demoted && !many_next_mirror (d, f))
            {
              many_exhausted (d, f, DF_ERROR_NETWORK, NULL, &local);
              break;
            }
          Job *j = job_new_full (d, f->mirror, f->rel, f->rel, 0, f->head ? G_MAXUINT64 - 1 : f->cap, G_MAXUINT64,
                                 FALSE, NULL, d->fresh, f->head);
          j->item = i;
          if (!f->head)
            j->buf = g_byte_array_new ();
          f->in_flight = TRUE;
          held += cap;
          g_ptr_array_add (d->jobs, j);
          curl_multi_add_handle (d->multi, dfi_transfer_get_easy (j->t));
          next = i + 1;
        }
      if (local)
        break;
      /* Under a rate cap, transfers the bucket paused resume here. */
      for (guint i = 0; i < d->jobs->len; i++)
        dfi_transfer_pace (((Job *)d->jobs->pdata[(d->pace_next + i) % d->jobs->len])->t);
      d->pace_next++;
      int running;
      if (curl_multi_perform (d->multi, &running) != CURLM_OK)
        {
          dfi_throw (&local, DF_ERROR_NETWORK, "libcurl failed to drive the transfers");
          break;
        }
      CURLMsg *m;
      int queued;
      while (local == NULL && (m = curl_multi_info_read (d->multi, &queued)))
        {
          if (m->msg != CURLMSG_DONE)
            continue;
          DfTransfer *t = dfi_transfer_from_easy (m->easy_handle);
          Job *j = dfi_transfer_get_sink_data (t);
          CURLcode rc = m->data.result;
          curl_multi_remove_handle (d->multi, m->easy_handle);
          g_ptr_array_remove_fast (d->jobs, j);
          DfSmallFile *f = &files[j->item];
          f->in_flight = FALSE;
          held -= f->head ? 0 : f->cap;
          if (many_done (d, files, j, rc, check, data, &local) && f->done)
            left--;
          job_free (j);
        }
      dfi_downloader_progress (d, FALSE);
      if (local == NULL && left > 0)
        {
          gint64 ms = MAX ((wait_until - g_get_monotonic_time ()) / 1000, 1);
          curl_multi_poll (d->multi, NULL, 0, (int)MIN (ms, 200), NULL);
        }
    }
  /* Stopped early: what is in flight goes. */
  for (guint i = 0; i < d->jobs->len; i++)
    {
      Job *j = d->jobs->pdata[i];
      curl_multi_remove_handle (d->multi, dfi_transfer_get_easy (j->t));
      files[j->item].in_flight = FALSE;
      job_free (j);
    }
  g_ptr_array_set_size (d->jobs, 0);
  if (local)
    {
      g_propagate_error (error, local);
      return FALSE;
    }
  return TRUE;
}

/* ---------------------------------------------------------------------- */
/* Parts                                                                    */

void
dfi_downloader_attach (DfDownloader *d, DfPartStore *store, const char *delta_rel, const DfPartConsumer *consumer)
{
  d->store = store;
  g_strlcpy (d->delta_rel, delta_rel ? delta_rel : "", sizeof d->delta_rel);
  d->consumer = *consumer;
}

static void
requeue (DfDownloader *d, DfStoreRange *r)
{
  if (!r->queued)
    {
      r->queued = TRUE;
      g_queue_push_tail (&d->pending, r);
    }
}

/* @p starts over: every range is fetched again. */
static void
restart_part (DfDownloader *d, DfStorePart *p)
{
  dfi_part_store_restart (d->store, p);
  for (guint r = 0; r < p->n_ranges; r++)
    requeue (d, &p->ranges[r]);
}

static gboolean
hand_over (DfDownloader *d, DfStorePart *p, GError **error)
{
  return d->consumer.part_ready == NULL || d->consumer.part_ready (d->consumer.data, p, error);
}

/* @p failed its check: whom to blame, and whether to try again. */
static void
part_bad (DfDownloader *d, DfStorePart *p, guint32 served_by, const GError *why_bad)
{
  guint used = 0;
  for (guint m = 0; m < d->n_mirrors && m < 32; m++)
    used += (served_by >> m) & 1;
  if (++p->corrupt > d->n_mirrors + 2)
    {
      dfi_part_store_set_state (d->store, p, DF_PART_STATE_FAILED);
      if (p->fallback)
        set_fatal (d, g_error_new (DF_ERROR, DF_ERROR_CORRUPT, "%s, from every mirror (nothing written)",
                                   why_bad ? why_bad->message : "a bad fallback object"));
      else
        set_fatal (d, g_error_new (DF_ERROR, DF_ERROR_CORRUPT,
                                   "part %u does not match its SHA-256 from any mirror (bytes never decompressed)",
                                   p->index));
      return;
    }
  /* Bytes from before a crash may not have reached the disk, and a part
   * assembled from several mirrors cannot say which one lied: start over
   * without blame; the next attempt comes from one mirror. Only a part
   * that one mirror served alone convicts it. */
  if (!p->resumed && used == 1)
    {
      g_autofree char *why
          = p->fallback ? g_strdup_printf ("%s (discarded)", why_bad ? why_bad->message : p->name)
                        : g_strdup_printf ("part %u does not match its SHA-256 (bytes never decompressed, discarded)",
                                           p->index);
      for (guint m = 0; m < d->n_mirrors && m < 32; m++)
        if (served_by & (1u << m))
          dfi_downloader_demote (d, m, why);
      if (dfi_downloader_current_mirror (d) < 0)
        {
          dfi_part_store_set_state (d->store, p, DF_PART_STATE_FAILED);
          set_fatal (d, g_error_new (DF_ERROR, DF_ERROR_CORRUPT, "%s, from every mirror", why));
          return;
        }
    }
  restart_part (d, p);
}

/* Every range of @p is in and nothing writes to it: check it and hand it
 * over, or start over. */
static void
part_finish (DfDownloader *d, DfStorePart *p)
{
  guint32 served_by = 0;
  g_autoptr (GError) error = NULL;
  switch (dfi_part_store_finish (d->store, p, &served_by, &error))
    {
    case DF_PART_IO_ERROR:
      set_fatal (d, g_steal_pointer (&error));
      return;
    case DF_PART_BAD:
      part_bad (d, p, served_by, error);
      return;
    case DF_PART_VERIFIED:
      break;
    }
  d->parts_left--;
  if (p->downloaded > 0)
    d->res->parts_downloaded++;
  else
    d->res->parts_present++;
  if (!hand_over (d, p, &error))
    set_fatal (d, g_steal_pointer (&error));
}

gboolean
dfi_downloader_add_part (DfDownloader *d, DfStorePart *p, gboolean needed, GError **error)
{
  d->res->delta_bytes += p->size;
  if (!needed)
    {
      dfi_part_store_set_state (d->store, p, DF_PART_STATE_UNNEEDED);
      d->res->parts_present++;
      return TRUE;
    }
  guint64 reused = d->store->bytes_reused;
  dfi_part_store_lookup (d->store, p);
  d->res->bytes_reused += d->store->bytes_reused - reused;
  if (p->state == DF_PART_STATE_DONE)
    {
      d->res->parts_present++;
      return hand_over (d, p, error);
    }
  d->parts_left++;
  for (guint r = 0; r < p->n_ranges; r++)
    if (!p->done[r])
      {
        d->bytes_total += p->ranges[r].len;
        p->ranges[r].queued = TRUE;
        g_queue_push_tail (&d->pending, &p->ranges[r]);
      }
  if (p->remaining == 0)
    part_finish (d, p); /* every range was in before the interruption */
  return TRUE;
}

gboolean
dfi_downloader_want_part (DfDownloader *d, DfStorePart *p, GError **error)
{
  g_return_val_if_fail (p->state == DF_PART_STATE_UNNEEDED, FALSE);
  dfi_part_store_set_state (d->store, p, DF_PART_STATE_NEW);
  d->res->parts_present--;
  d->res->delta_bytes -= p->size;
  return dfi_downloader_add_part (d, p, TRUE, error);
}

/* Starts transfers while there are free connections and ready ranges. */
void
dfi_downloader_schedule (DfDownloader *d)
{
  gint64 now = g_get_monotonic_time ();
  guint n = g_queue_get_length (&d->pending);
  for (guint k = 0; k < n && d->active < MAX (1, d->o->net.connections); k++)
    {
      DfStoreRange *r = g_queue_pop_head (&d->pending);
      DfStorePart *p = r->part;
      if (p->state != DF_PART_STATE_WANTED || p->done[r->slot])
        {
          r->queued = FALSE;
          continue;
        }
      int m = dfi_downloader_current_mirror (d);
      gboolean whole = m >= 0 && d->mirrors[m].ignores_ranges;
      if (r->not_before > now || m < 0 || (whole && p->active > 0))
        {
          g_queue_push_tail (&d->pending, r);
          continue;
        }
      if (dfi_part_store_fd (d->store, p) < 0)
        {
          GError *e = NULL;
          dfi_throw_errno (&e, errno, "opening the part store");
          set_fatal (d, e);
          g_queue_push_tail (&d->pending, r);
          return;
        }
      r->queued = FALSE;
      g_autofree char *rel = part_rel (d, p);
      g_autofree char *name = g_strdup_printf ("part %u", p->index);
      const char *if_range = p->etag[0] && p->etag_mirror == (guint)m && !p->ignore_etag && !whole ? p->etag : NULL;
      Job *j = whole ? job_new (d, m, rel, name, 0, p->size, p->size, FALSE, NULL)
                     : job_new (d, m, rel, name, r->off + r->got, r->len - r->got, p->size, TRUE, if_range);
      j->range = r;
      j->generation = p->generation;
      p->active++;
      d->active++;
      g_ptr_array_add (d->jobs, j);
      curl_multi_add_handle (d->multi, dfi_transfer_get_easy (j->t));
    }
}

guint
dfi_downloader_n_in_flight (DfDownloader *d)
{
  return d->jobs->len;
}

const DfStoreRange *
dfi_downloader_in_flight (DfDownloader *d, guint i, guint *mirror)
{
  Job *j = d->jobs->pdata[i];
  *mirror = j->mirror;
  return j->range;
}

/* Range @j->range failed with @out: retry it, here or on the next mirror,
 * or give up. */
static void
range_failed (DfDownloader *d, Job *j, DfTransferOutcome out, DfError kind, const char *msg)
{
  DfStoreRange *r = j->range;
  DfStorePart *p = r->part;
  g_autofree char *rel = part_rel (d, p);
  g_autofree char *what = g_strdup_printf ("%s/%s bytes %" G_GUINT64_FORMAT "-%" G_GUINT64_FORMAT ": %s",
                                           d->mirrors[j->mirror].base, rel, r->off, r->off + r->len - 1, msg);
  if (out == DF_TRANSFER_FATAL)
    {
      if (g_cancellable_is_cancelled (d->cancellable))
        set_fatal (d, g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED, "cancelled"));
      else
        set_fatal (d, g_error_new (DF_ERROR, kind, "%s", what));
      return;
    }
  if (out == DF_TRANSFER_CHANGED)
    {
      d->res->retries++;
      dfi_downloader_emit (d, DF_FETCH_EVENT_RETRY, d->mirrors[j->mirror].base, what);
      /* A file that keeps changing (or load-balanced origins that disagree
       * on ETags) is left to the part's SHA-256. */
      if (++p->changes >= DF_FETCH_MAX_CHANGES)
        p->ignore_etag = TRUE;
      restart_part (d, p);
      return;
    }
  if (d->mirrors[j->mirror].demoted)
    {
      /* Another range convicted this mirror already: try the next one. */
      requeue (d, r);
      return;
    }
  /* A cut transfer's bytes stay: the retry (on any mirror) asks for the rest
   * of the range, and the part's SHA-256 judges the whole. A mirror that
   * answered wrongly gets nothing kept. */
  if (out == DF_TRANSFER_RETRY && !j->whole)
    r->got += dfi_transfer_get_received (j->t);
  else
    r->got = 0;
  if (r->got >= r->len)
    {
      /* Every byte arrived before the failure. */
      r->got = 0;
      dfi_part_range_done (p, r->slot);
      return;
    }
  if (r->attempts_mirror != j->mirror)
    {
      r->attempts = 0;
      r->attempts_mirror = j->mirror;
    }
  r->attempts++;
  if (out == DF_TRANSFER_DEMOTE || r->attempts >= MAX (1, d->o->net.retries))
    {
      r->attempts = 0;
      r->mirrors_failed++;
      dfi_downloader_demote (d, j->mirror, what);
      if (dfi_downloader_current_mirror (d) < 0 || r->mirrors_failed >= d->n_mirrors)
        {
          set_fatal (d, g_error_new (DF_ERROR, kind, "%s (every mirror failed)", what));
          return;
        }
    }
  else
    {
      d->res->retries++;
      dfi_downloader_emit (d, DF_FETCH_EVENT_RETRY, d->mirrors[j->mirror].base, what);
      r->not_before = g_get_monotonic_time () + dfi_transfer_backoff_us (r->attempts);
    }
  requeue (d, r);
}

/* After one of @p's transfers ended, whichever: the part is finished once
 * every range is in and no transfer still writes to it; otherwise its
 * finished ranges are noted and its file released. */
void
dfi_downloader_settle_part (DfDownloader *d, DfStorePart *p)
{
  if (p->remaining == 0 && p->active == 0 && p->state == DF_PART_STATE_WANTED)
    part_finish (d, p);
  else
    {
      dfi_part_store_record (d->store, p);
      dfi_part_store_release_fd (p);
    }
}

/* A whole-file reply delivered every range of @p. */
static void
part_all_done (DfStorePart *p)
{
  for (guint k = 0; k < p->n_ranges; k++)
    dfi_part_range_done (p, k);
}

static void
job_done (DfDownloader *d, Job *j, CURLcode rc)
{
  DfStoreRange *r = j->range;
  DfStorePart *p = r->part;
  p->active--;
  d->active--;
  if (j->whole)
    p->full_active--;
  g_ptr_array_remove_fast (d->jobs, j);
  guint64 received = dfi_transfer_get_received (j->t);
  p->downloaded += received;
  if (j->moot)
    {
      /* The whole-file reply may have finished the part meanwhile. */
      requeue (d, r);
      dfi_downloader_settle_part (d, p);
      return;
    }
  if (j->superseded || j->generation != p->generation)
    {
      /* Its range was queued again when the part started over; the new
       * ranges may all have finished while this one still ran. */
      dfi_downloader_settle_part (d, p);
      return;
    }
  if (received > 0 && j->mirror < 32)
    p->mirrors_used |= 1u << j->mirror;
  DfError kind;
  g_autofree char *msg = NULL;
  DfTransferOutcome out = dfi_transfer_judge (j->t, rc, &kind, &msg);
  if (out == DF_TRANSFER_OK)
    {
      if (j->whole)
        part_all_done (p);
      else
        dfi_part_range_done (p, r->slot);
    }
  else if (!p->done[r->slot] || out == DF_TRANSFER_FATAL)
    range_failed (d, j, out, kind, msg);
  /* (A failure of a range that a whole-file reply delivered meanwhile is moot.) */
  if (d->fatal)
    return;
  dfi_downloader_settle_part (d, p);
}

void
dfi_downloader_progress (DfDownloader *d, gboolean force)
{
  gint64 now = g_get_monotonic_time ();
  if (now - d->rate_since >= G_USEC_PER_SEC)
    {
      double inst = (d->bytes_downloaded - d->rate_bytes) * 1e6 / (double)(now - d->rate_since);
      d->rate = d->rate == 0 ? inst : 0.6 * d->rate + 0.4 * inst;
      d->rate_bytes = d->bytes_downloaded;
      d->rate_since = now;
    }
  if (force || now - d->last_event >= G_USEC_PER_SEC / 10)
    {
      d->last_event = now;
      dfi_downloader_emit (d, DF_FETCH_EVENT_PROGRESS, NULL, NULL);
    }
}

void
dfi_downloader_count_external (DfDownloader *d, guint64 n)
{
  d->bytes_downloaded += n;
  if (n > 0)
    dfi_downloader_progress (d, FALSE);
}

void
dfi_downloader_set_phase (DfDownloader *d, DfFetchPhase phase)
{
  if (d->phase == phase)
    return;
  d->phase = phase;
  dfi_downloader_progress (d, TRUE);
}

void
dfi_downloader_start (DfDownloader *d)
{
  d->phase = DF_FETCH_PHASE_DOWNLOAD;
  d->bytes_total += d->bytes_downloaded;
  dfi_downloader_emit (d, DF_FETCH_EVENT_START, d->mirrors[MAX (0, dfi_downloader_current_mirror (d))].base, NULL);
}

/* Takes the transfers that ended; TRUE if any did. */
static gboolean
collect (DfDownloader *d)
{
  int left;
  CURLMsg *m;
  gboolean finished_any = FALSE;
  while ((m = curl_multi_info_read (d->multi, &left)))
    {
      if (m->msg != CURLMSG_DONE)
        continue;
      finished_any = TRUE;
      CURL *e = m->easy_handle;
      CURLcode rc = m->data.result;
      Job *j = dfi_transfer_get_sink_data (dfi_transfer_from_easy (e));
      curl_multi_remove_handle (d->multi, e);
      job_done (d, j, rc);
      job_free (j);
    }
  return finished_any;
}

void
dfi_downloader_run (DfDownloader *d)
{
  d->rate_since = d->last_checkpoint = g_get_monotonic_time ();
  while (d->fatal == NULL && d->parts_left > 0)
    {
      if (g_cancellable_is_cancelled (d->cancellable))
        {
          set_fatal (d, g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED, "cancelled"));
          break;
        }
      if (d->consumer.failed && d->consumer.failed (d->consumer.data))
        {
          /* No use downloading more: the consumer reports its error. */
          d->consumer_failed = TRUE;
          break;
        }
      dfi_downloader_schedule (d);
      if (d->active == 0 && g_queue_is_empty (&d->pending) && d->parts_left > 0)
        {
          set_fatal (d, g_error_new (DF_ERROR, DF_ERROR_FAILED, "internal error: %u parts left, nothing to fetch",
                                     d->parts_left));
          break;
        }
      guint n_jobs = d->jobs->len;
      d->pace_next++;
      for (guint i = 0; i < n_jobs; i++)
        dfi_transfer_pace (((Job *)d->jobs->pdata[(d->pace_next + i) % n_jobs])->t);
      int running;
      curl_multi_perform (d->multi, &running);
      gboolean finished_any = collect (d);
      gint64 now = g_get_monotonic_time ();
      if (now - d->last_checkpoint >= DF_FETCH_CHECKPOINT_US)
        {
          dfi_part_store_checkpoint (d->store);
          d->last_checkpoint = g_get_monotonic_time ();
        }
      dfi_downloader_progress (d, FALSE);
      /* A finished transfer frees a connection: fill it before waiting. */
      if (d->fatal == NULL && d->parts_left > 0 && !finished_any)
        curl_multi_poll (d->multi, NULL, 0, 100, NULL);
    }
  /* Stop whatever is still in flight; its bytes stay for a resume. */
  for (guint i = 0; i < d->jobs->len; i++)
    {
      Job *j = d->jobs->pdata[i];
      curl_multi_remove_handle (d->multi, dfi_transfer_get_easy (j->t));
      job_free (j);
    }
  g_ptr_array_set_size (d->jobs, 0);
  dfi_part_store_checkpoint (d->store);
  d->last_checkpoint = g_get_monotonic_time ();
}
