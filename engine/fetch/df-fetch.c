/* df_fetch(): discovery, the download loop and the part store.
 *
 * One thread (the caller's) runs libcurl's multi interface and only moves
 * bytes: ranges of part files into the part store, a directory in the
 * repository's tmp/ named after the superblock's SHA-256. A part whose
 * ranges are all in is hashed; only a part that matches the superblock is
 * handed to the apply session, whose workers decode and write it while
 * further parts download. Nothing a server says is trusted: status,
 * Content-Range, Content-Length and ETag are checked against what was asked,
 * and no response may deliver more bytes than the delta declares. */
#include "df-fetch-private.h"

#include "df-apply-private.h"
#include "df-http.h"
#include "df-stock.h"

#include <curl/curl.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* ---------------------------------------------------------------------- */
/* Options                                                                  */

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

/* ---------------------------------------------------------------------- */
/* State                                                                    */

typedef struct
{
  const char *base;
  gboolean demoted;
  gboolean ignores_ranges; /* answered a ranged request with the whole file */
} Mirror;

typedef struct _Part Part;

typedef struct
{
  Part *part;
  guint slot; /* range number within the part */
  guint64 off, len;
  guint64 got;    /* bytes from off already in the part file (a cut transfer): the retry asks for the rest */
  guint attempts; /* failures on attempts_mirror */
  guint attempts_mirror;
  guint mirrors_failed; /* mirrors demoted while this range was failing */
  gint64 not_before;    /* monotonic µs: backoff */
  gboolean queued;
} Range;

struct _Part
{
  guint index;
  char name[80];       /* in the store: "<index>", or "<checksum>.<kind>" for a fallback object */
  char *rel;           /* on the server, when not "<delta>/<index>" */
  const DfStockFallback *fallback; /* a stock fallback object: checked by its object checksum */
  guint64 size;
  guint8 sha256[DF_SHA256_LEN]; /* of the part file, from the superblock */
  guint64 unpacked;             /* what it decodes to (free-space check) */
  guint n_ranges;
  Range *ranges;
  guint8 *done;     /* per range: bytes are in the .partial file */
  guint8 *recorded; /* per range: done and noted durably in the .ranges file */
  guint remaining;
  guint active; /* transfers writing into this part */
  guint full_active; /* of which whole-file replies */
  int fd;
  char etag[256]; /* of the file on etag_mirror, when consistent so far */
  guint etag_mirror;
  gboolean ignore_etag; /* the file changed too often: rely on the SHA-256 alone */
  gboolean dirty;       /* ranges finished since the last checkpoint */
  guint64 downloaded;   /* bytes received in this run */
  guint32 mirrors_used; /* bit per mirror that delivered bytes */
  guint corrupt, changes;
  guint generation;  /* bumped when the part starts over */
  gboolean resumed;  /* holds ranges downloaded by an earlier run */
  gboolean complete; /* verified and handed to the session */
};

typedef struct
{
  OstreeRepo *repo;
  const DfFetchOptions *o;
  GCancellable *cancellable;
  GCancellable *own_cancellable;
  DfFetchResult *res;

  Mirror *mirrors;
  guint n_mirrors;

  CURLM *multi;
  guint active;

  /* Delta */
  DfSuperblock *sb; /* owned by the session once it exists */
  DfStockSuperblock *stock; /* or a stock delta, applied in a thread as parts arrive */
  gboolean stock_borrowed;  /* the caller's (df_fetch_stock_fallbacks()) */
  DfSignaturePolicy policy;
  GMutex part_lock;         /* stock: guards the parts' complete flags against ... */
  GCond part_cond;          /* ... the apply thread waiting on them */
  gboolean parts_stop;      /* stock: no more parts will come */
  gint stock_failed;        /* stock: the apply thread failed (atomic) */
  char delta_rel[200];
  int store_dfd;
  char store_rel[128];
  Part *parts;
  guint n_parts;
  guint *fallback_part; /* stock: per fallback object, its entry in @parts or G_MAXUINT */
  guint parts_left;
  GQueue pending;   /* Range* */
  GPtrArray *xfers; /* Xfer* in flight */
  DfApplySession *session;
  DfApplyOptions *aopts; /* outlives the session */

  /* Accounting */
  guint64 bytes_total, bytes_downloaded;
  gint64 last_event, last_checkpoint;
  guint64 rate_bytes;
  gint64 rate_since;
  double rate;

  GError *fatal;
  gboolean apply_failed;
  /* The mirror whose small files failed their check (a malformed index, a
   * superblock that does not match the index or digest that mirror served):
   * discovery starts over without it. -1: none. */
  int suspect;
} Fetch;

static void
emit (Fetch *f, DfFetchEventType type, const char *url, const char *message)
{
  if (f->o->event_func == NULL)
    return;
  DfFetchEvent ev = { 0 };
  ev.type = type;
  ev.path = f->res->path;
  ev.url = url;
  ev.message = message;
  ev.bytes_downloaded = f->bytes_downloaded;
  ev.bytes_total = f->bytes_total;
  ev.bytes_reused = f->res->bytes_reused;
  ev.parts_total = f->n_parts;
  if (f->session)
    {
      DfProgress p;
      df_apply_session_get_progress (f->session, &p);
      ev.parts_applied = p.parts_done;
    }
  ev.rate = f->rate;
  f->o->event_func (&ev, f->o->event_data);
}

static void
set_fatal (Fetch *f, GError *e)
{
  if (f->fatal == NULL)
    f->fatal = e;
  else
    g_error_free (e);
}

static int
current_mirror (Fetch *f)
{
  for (guint i = 0; i < f->n_mirrors; i++)
    if (!f->mirrors[i].demoted)
      return i;
  return -1;
}

static void
demote (Fetch *f, guint m, const char *why)
{
  if (f->mirrors[m].demoted)
    return;
  f->mirrors[m].demoted = TRUE;
  f->res->mirror_switches++;
  emit (f, DF_FETCH_EVENT_MIRROR_SWITCH, f->mirrors[m].base, why);
}

/* ---------------------------------------------------------------------- */
/* One HTTP transfer                                                        */

typedef enum
{
  SINK_MEMORY,
  SINK_PART,
} SinkKind;

typedef struct
{
  Fetch *f;
  CURL *easy;
  guint mirror;
  char *url;
  SinkKind sink;
  /* What was asked: bytes [off, off + len) of a file of file_size bytes
   * (G_MAXUINT64 when unknown); ranged when a Range header was sent. */
  gboolean ranged;
  guint64 off, len, file_size;
  GByteArray *buf; /* SINK_MEMORY */
  Range *range;    /* SINK_PART */
  struct curl_slist *headers;
  /* The response */
  int status;
  char content_range[128], etag[256], content_length[32], content_encoding[64];
  gboolean headers_checked;
  gboolean full;    /* the response is the whole file (asked for, or Range ignored) */
  guint64 expect;   /* body bytes the response must deliver */
  guint64 received; /* body bytes taken */
  /* A verdict of the callbacks, which abort the transfer */
  DfError verdict;
  char *verdict_msg;
  gboolean file_changed;
  guint generation;    /* of the part when the transfer started */
  gboolean superseded; /* the part started over meanwhile */
  gboolean moot;       /* a second whole-file reply for a part: dropped, its range waits */
  char errbuf[CURL_ERROR_SIZE];
} Xfer;

static void
xfer_free (Xfer *x)
{
  if (x->easy)
    curl_easy_cleanup (x->easy);
  curl_slist_free_all (x->headers);
  if (x->buf)
    g_byte_array_unref (x->buf);
  g_free (x->url);
  g_free (x->verdict_msg);
  g_free (x);
}

static gboolean refuse (Xfer *x, DfError code, const char *fmt, ...) G_GNUC_PRINTF (3, 4);

static gboolean
refuse (Xfer *x, DfError code, const char *fmt, ...)
{
  if (x->verdict == 0)
    {
      va_list ap;
      va_start (ap, fmt);
      x->verdict = code;
      x->verdict_msg = g_strdup_vprintf (fmt, ap);
      va_end (ap);
    }
  return FALSE;
}

/* The final response's headers are in: is it the answer to what was asked? */
static gboolean
check_response (Xfer *x)
{
  if (x->status != 200 && x->status != 206)
    return FALSE; /* reported from the status */
  if (x->content_encoding[0] && g_ascii_strcasecmp (x->content_encoding, "identity") != 0)
    return refuse (x, DF_ERROR_NETWORK, "server applied Content-Encoding '%s' to a delta file", x->content_encoding);
  guint64 cl = G_MAXUINT64;
  if (x->content_length[0] && !df_http_parse_u63 (x->content_length, strlen (x->content_length), &cl))
    return refuse (x, DF_ERROR_NETWORK, "unparsable Content-Length '%s'", x->content_length);
  Part *part = x->range ? x->range->part : NULL;
  if (part && x->generation != part->generation)
    return refuse (x, DF_ERROR_NETWORK, "superseded"); /* the part started over meanwhile */
  gboolean compare = part && !part->ignore_etag && part->etag[0] && part->etag_mirror == x->mirror;
  if (compare && x->etag[0] && strcmp (part->etag, x->etag) != 0)
    {
      x->file_changed = TRUE;
      return refuse (x, DF_ERROR_NETWORK, "part %u changed on the server (ETag %s, was %s)", part->index, x->etag,
                     part->etag);
    }
  if (x->status == 206)
    {
      if (!x->ranged)
        return refuse (x, DF_ERROR_NETWORK, "206 reply to a request without Range");
      guint64 a, b, t;
      if (!df_http_parse_content_range (x->content_range, &a, &b, &t))
        return refuse (x, DF_ERROR_NETWORK, "206 reply with a missing or invalid Content-Range '%s'", x->content_range);
      if (a != x->off || b != x->off + x->len - 1 || t != x->file_size)
        return refuse (x, DF_ERROR_NETWORK,
                       "asked for bytes %" G_GUINT64_FORMAT "-%" G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT
                       ", got Content-Range '%s'",
                       x->off, x->off + x->len - 1, x->file_size, x->content_range);
      if (cl != G_MAXUINT64 && cl != x->len)
        return refuse (x, DF_ERROR_NETWORK,
                       "Content-Length %" G_GUINT64_FORMAT " for a %" G_GUINT64_FORMAT "-byte range", cl, x->len);
      x->expect = x->len;
    }
  else
    {
      /* 200: the whole file, asked for or not (a server may ignore Range). */
      if (x->file_size != G_MAXUINT64)
        {
          if (cl != G_MAXUINT64 && cl != x->file_size)
            return refuse (x, DF_ERROR_NETWORK,
                           "server declares %" G_GUINT64_FORMAT " bytes, the delta declares %" G_GUINT64_FORMAT, cl,
                           x->file_size);
          x->expect = x->file_size;
        }
      else
        {
          if (cl != G_MAXUINT64 && cl > x->len)
            return refuse (x, DF_ERROR_NETWORK,
                           "server declares %" G_GUINT64_FORMAT " bytes, at most %" G_GUINT64_FORMAT " are acceptable",
                           cl, x->len);
          x->expect = x->len; /* an upper bound for small files */
        }
      if (part && (part->full_active > 0 || part->remaining == 0))
        {
          /* Another reply brings (or brought) the whole file: a mirror that
           * ignores Range answers every range in flight with all of it.
           * Take nothing from this one; its range waits for that one. */
          x->moot = TRUE;
          return FALSE;
        }
      if (part)
        {
          x->full = TRUE;
          part->full_active++;
        }
      if (part && x->ranged)
        x->f->mirrors[x->mirror].ignores_ranges = TRUE;
    }
  /* ETags are only comparable between replies of one mirror. */
  if (part && x->etag[0] && (part->etag[0] == '\0' || part->etag_mirror != x->mirror))
    {
      g_strlcpy (part->etag, x->etag, sizeof part->etag);
      part->etag_mirror = x->mirror;
    }
  return TRUE;
}

/* Header values reach error messages: no control characters from a server. */
static void
sanitize (char *s)
{
  for (; *s; s++)
    if ((guchar)*s < 0x20 || (guchar)*s == 0x7f)
      *s = '?';
}

static size_t
on_header (char *line, size_t size, size_t n, void *data)
{
  Xfer *x = data;
  gsize len = size * n;
  int status = df_http_parse_status_line (line, len);
  if (status >= 0)
    {
      /* A new response (after a redirect or 100-continue): forget the last. */
      x->status = status;
      x->content_range[0] = x->etag[0] = x->content_length[0] = x->content_encoding[0] = '\0';
      x->headers_checked = FALSE;
      x->full = FALSE;
      x->expect = 0;
      return len;
    }
  if (len <= 2 && (line[0] == '\r' || line[0] == '\n'))
    {
      if (x->status < 200 || (x->status >= 300 && x->status < 400))
        return len; /* interim or redirect: libcurl goes on */
      x->headers_checked = TRUE;
      sanitize (x->content_range);
      sanitize (x->etag);
      sanitize (x->content_length);
      sanitize (x->content_encoding);
      return check_response (x) ? len : 0;
    }
  if (!df_http_header_value (line, len, "Content-Range", x->content_range, sizeof x->content_range)
      && !df_http_header_value (line, len, "ETag", x->etag, sizeof x->etag)
      && !df_http_header_value (line, len, "Content-Length", x->content_length, sizeof x->content_length))
    df_http_header_value (line, len, "Content-Encoding", x->content_encoding, sizeof x->content_encoding);
  return len;
}

static size_t
on_write (char *data, size_t size, size_t n, void *user)
{
  Xfer *x = user;
  gsize len = size * n;
  if (!x->headers_checked)
    return refuse (x, DF_ERROR_NETWORK, "body without a checked response"), 0;
  /* Endless data stops here, whatever the headers said. */
  if (len > x->expect - x->received)
    return refuse (x, DF_ERROR_NETWORK, "server sent more than the %" G_GUINT64_FORMAT " bytes expected", x->expect), 0;
  if (x->sink == SINK_MEMORY)
    g_byte_array_append (x->buf, (const guint8 *)data, len);
  else
    {
      guint64 at = (x->full ? 0 : x->off) + x->received;
      if (x->generation != x->range->part->generation)
        {
          /* The part started over (the file changed): these bytes are stale. */
          x->superseded = TRUE;
          return 0;
        }
      if (!df_pwrite_all (x->range->part->fd, data, len, at, "part", NULL))
        {
          int errsv = errno;
          x->verdict = (errsv == ENOSPC || errsv == EDQUOT) ? DF_ERROR_NO_SPACE : DF_ERROR_IO;
          x->verdict_msg = g_strdup_printf ("writing downloaded bytes: %s", g_strerror (errsv));
          return 0;
        }
    }
  x->received += len;
  x->f->bytes_downloaded += len;
  return len;
}

static int
on_progress (void *data, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
  Xfer *x = data;
  return g_cancellable_is_cancelled (x->f->cancellable) ? 1 : 0;
}

/* Deadline of a transfer of @len bytes: at the minimum average rate, plus
 * the time a connection and a stall may take. */
static long
deadline_ms (const DfFetchOptions *o, guint64 len)
{
  if (o->min_rate == 0)
    return 0; /* no deadline: the low-speed limit alone */
  guint64 ms = (guint64)(o->connect_timeout + o->low_speed_time) * 1000;
  ms += len / o->min_rate * 1000 + (len % o->min_rate) * 1000 / o->min_rate;
  return (long)MIN (ms, (guint64)G_MAXINT32);
}

static Xfer *
xfer_new (Fetch *f, guint mirror, const char *rel, guint64 off, guint64 len, guint64 file_size, gboolean ranged)
{
  const DfFetchOptions *o = f->o;
  Xfer *x = g_new0 (Xfer, 1);
  x->f = f;
  x->mirror = mirror;
  x->url = g_strconcat (f->mirrors[mirror].base, "/", rel, NULL);
  x->off = off;
  x->len = len;
  x->file_size = file_size;
  x->ranged = ranged;
  CURL *e = x->easy = curl_easy_init ();
  if (e == NULL)
    g_error ("out of memory creating a transfer");
  curl_easy_setopt (e, CURLOPT_URL, x->url);
  curl_easy_setopt (e, CURLOPT_PRIVATE, x);
  curl_easy_setopt (e, CURLOPT_PROTOCOLS_STR, "http,https");
  /* An https mirror never redirects to plain http (its CA and pin would not
   * apply there). */
  curl_easy_setopt (e, CURLOPT_REDIR_PROTOCOLS_STR, g_str_has_prefix (x->url, "https:") ? "https" : "http,https");
  /* A proxy's "200 Connection established" is not the server's answer. */
  curl_easy_setopt (e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
  curl_easy_setopt (e, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt (e, CURLOPT_MAXREDIRS, (long)DF_FETCH_MAX_REDIRECTS);
  curl_easy_setopt (e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (e, CURLOPT_CONNECTTIMEOUT, (long)o->connect_timeout);
  curl_easy_setopt (e, CURLOPT_LOW_SPEED_LIMIT, (long)o->low_speed_limit);
  curl_easy_setopt (e, CURLOPT_LOW_SPEED_TIME, (long)o->low_speed_time);
  curl_easy_setopt (e, CURLOPT_TIMEOUT_MS, deadline_ms (o, len));
  curl_easy_setopt (e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  /* No CURLOPT_PIPEWAIT: it would hold every transfer to a host until its
   * first response, so a mirror that stalls before its headers would be
   * probed one request at a time. HTTP/2 multiplexes anyway once the first
   * connection is up. */
  curl_easy_setopt (e, CURLOPT_USERAGENT, "deltafetch/1");
  curl_easy_setopt (e, CURLOPT_ERRORBUFFER, x->errbuf);
  curl_easy_setopt (e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt (e, CURLOPT_HEADERDATA, x);
  curl_easy_setopt (e, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt (e, CURLOPT_WRITEDATA, x);
  curl_easy_setopt (e, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt (e, CURLOPT_XFERINFODATA, x);
  curl_easy_setopt (e, CURLOPT_NOPROGRESS, 0L);
  if (o->ca_file)
    curl_easy_setopt (e, CURLOPT_CAINFO, o->ca_file);
  if (o->cert)
    curl_easy_setopt (e, CURLOPT_SSLCERT, o->cert);
  if (o->key)
    curl_easy_setopt (e, CURLOPT_SSLKEY, o->key);
  if (o->pin)
    curl_easy_setopt (e, CURLOPT_PINNEDPUBLICKEY, o->pin);
  if (ranged)
    {
      char r[64];
      g_snprintf (r, sizeof r, "%" G_GUINT64_FORMAT "-%" G_GUINT64_FORMAT, off, off + len - 1);
      curl_easy_setopt (e, CURLOPT_RANGE, r);
    }
  return x;
}

typedef enum
{
  OUTCOME_OK,
  OUTCOME_RETRY,   /* worth another attempt on the same mirror */
  OUTCOME_DEMOTE,  /* this mirror cannot serve it */
  OUTCOME_FATAL,   /* nothing to retry (local disk, cancelled) */
  OUTCOME_CHANGED, /* the file changed on the server */
} Outcome;

/* What a finished transfer means; *kind and *msg describe a failure. */
static Outcome
judge (Xfer *x, CURLcode rc, DfError *kind, char **msg)
{
  *kind = DF_ERROR_NETWORK;
  if (g_cancellable_is_cancelled (x->f->cancellable))
    return OUTCOME_FATAL;
  if (x->verdict == DF_ERROR_NO_SPACE || x->verdict == DF_ERROR_IO)
    {
      *kind = x->verdict;
      *msg = g_strdup (x->verdict_msg);
      return OUTCOME_FATAL;
    }
  if (x->file_changed)
    {
      *msg = g_strdup (x->verdict_msg);
      return OUTCOME_CHANGED;
    }
  if (x->verdict)
    {
      *msg = g_strdup (x->verdict_msg);
      return OUTCOME_DEMOTE; /* a server that answers wrongly once will again */
    }
  if (rc == CURLE_OK && x->status != 200 && x->status != 206)
    rc = CURLE_HTTP_RETURNED_ERROR;
  if (rc == CURLE_WRITE_ERROR && x->status != 200 && x->status != 206 && x->status > 0)
    rc = CURLE_HTTP_RETURNED_ERROR;
  switch (rc)
    {
    case CURLE_OK:
      if (x->sink == SINK_PART && x->received != x->expect)
        {
          *msg = g_strdup_printf ("body ended after %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT " bytes", x->received,
                                  x->expect);
          return OUTCOME_RETRY;
        }
      return OUTCOME_OK;
    case CURLE_HTTP_RETURNED_ERROR:
      *msg = g_strdup_printf ("HTTP status %d", x->status);
      if (x->status == 404 || x->status == 410 || x->status == 403 || x->status == 401)
        return OUTCOME_DEMOTE;
      return OUTCOME_RETRY;
    case CURLE_OPERATION_TIMEDOUT:
      *kind = DF_ERROR_TIMEOUT;
      *msg = g_strdup_printf ("too slow: %s", x->errbuf[0] ? x->errbuf : curl_easy_strerror (rc));
      return OUTCOME_RETRY;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_TOO_MANY_REDIRECTS:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
      *msg = g_strdup_printf ("%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror (rc));
      return OUTCOME_DEMOTE;
    case CURLE_OUT_OF_MEMORY:
      /* libcurl 7.88 refuses a header line longer than its cap this way,
       * with nothing in the error buffer, before on_header() sees it. (Its
       * cap on all headers together, 300 KiB, gives CURLE_RECV_ERROR and
       * says so in the error buffer.) */
      if (!x->headers_checked && !x->errbuf[0])
        {
          *msg = g_strdup_printf ("a reply header line exceeded %d bytes", CURL_MAX_HTTP_HEADER);
          return OUTCOME_DEMOTE;
        }
      *msg = g_strdup_printf ("%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror (rc));
      return OUTCOME_RETRY;
    default:
      *msg = g_strdup_printf ("%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror (rc));
      return OUTCOME_RETRY;
    }
}

static gint64
backoff_us (guint attempts)
{
  gint64 us = 250 * 1000;
  for (guint i = 1; i < attempts && us < 8 * G_USEC_PER_SEC; i++)
    us *= 2;
  return MIN (us, 8 * G_USEC_PER_SEC);
}

/* ---------------------------------------------------------------------- */
/* Small files: the index and the superblock                                */

/* Runs @x to completion on its own (the multi loop is not running yet). */
static CURLcode
perform (Fetch *f, Xfer *x)
{
  curl_multi_add_handle (f->multi, x->easy);
  int running = 1;
  CURLcode rc = CURLE_OK;
  while (running)
    {
      if (curl_multi_perform (f->multi, &running) != CURLM_OK)
        break;
      int left;
      CURLMsg *m;
      while ((m = curl_multi_info_read (f->multi, &left)))
        if (m->msg == CURLMSG_DONE)
          rc = m->data.result;
      if (running)
        curl_multi_poll (f->multi, NULL, 0, 200, NULL);
    }
  curl_multi_remove_handle (f->multi, x->easy);
  return rc;
}

/* Fetches @rel (at most @cap bytes) from the first mirror that has it, and
 * says which in *@served_by. Returns NULL with *not_found when every mirror
 * answered 404. */
static GBytes *
fetch_small (Fetch *f, const char *rel, guint64 cap, gboolean *not_found, guint *served_by, GError **error)
{
  guint n404 = 0;
  DfError kind = DF_ERROR_NETWORK;
  g_autofree char *last = NULL;
  *not_found = FALSE;
  for (guint m = 0; m < f->n_mirrors; m++)
    {
      if (f->mirrors[m].demoted)
        continue;
      for (guint attempt = 1; attempt <= MAX (1, f->o->retries); attempt++)
        {
          Xfer *x = xfer_new (f, m, rel, 0, cap, G_MAXUINT64, FALSE);
          x->sink = SINK_MEMORY;
          x->buf = g_byte_array_new ();
          CURLcode rc = perform (f, x);
          g_autofree char *msg = NULL;
          Outcome out = judge (x, rc, &kind, &msg);
          if (out == OUTCOME_OK)
            {
              GBytes *b = g_byte_array_free_to_bytes (g_steal_pointer (&x->buf));
              xfer_free (x);
              *served_by = m;
              return b;
            }
          int status = x->status;
          xfer_free (x);
          if (g_cancellable_set_error_if_cancelled (f->cancellable, error))
            return NULL;
          if (out == OUTCOME_FATAL)
            {
              df_throw (error, kind, "%s: %s", rel, msg);
              return NULL;
            }
          g_free (last);
          last = g_strdup_printf ("%s%s%s: %s", f->mirrors[m].base, rel[0] ? "/" : "", rel, msg);
          if (status == 404 || status == 410)
            {
              n404++;
              break; /* not there; no point asking again */
            }
          f->res->retries++;
          emit (f, DF_FETCH_EVENT_RETRY, f->mirrors[m].base, last);
          if (out == OUTCOME_DEMOTE || attempt >= f->o->retries)
            {
              /* Failed the small files: no use asking it for parts. */
              demote (f, m, last);
              break;
            }
          if (attempt < f->o->retries)
            g_usleep (backoff_us (attempt));
        }
    }
  /* Not found when every mirror still in use says so: a mirror demoted for
   * failing (now or earlier) serves nothing more in this fetch. */
  guint usable = 0;
  for (guint m = 0; m < f->n_mirrors; m++)
    usable += !f->mirrors[m].demoted;
  if (n404 > 0 && n404 == usable)
    {
      *not_found = TRUE;
      df_throw (error, DF_ERROR_NETWORK, "%s: not found on any mirror", rel);
      return NULL;
    }
  df_throw (error, kind, "%s (every mirror failed)", last ? last : rel);
  return NULL;
}

/* ---------------------------------------------------------------------- */
/* The part store                                                           */

/* Part i lives in the store as "i.partial" while ranges arrive, with
 * "i.ranges" noting (range size, then one byte per range) which ranges are
 * durably in; it is renamed to "i" once it matches its SHA-256. */

static gboolean
hash_file_matches (int fd, guint64 size, const guint8 want[DF_SHA256_LEN])
{
  DfSha256 h;
  df_sha256_init (&h);
  g_autofree guint8 *buf = g_malloc (DF_COPY_BUFFER);
  for (guint64 off = 0; off < size;)
    {
      ssize_t n = pread (fd, buf, MIN ((guint64)DF_COPY_BUFFER, size - off), off);
      if (n <= 0)
        {
          df_sha256_clear (&h);
          return FALSE;
        }
      df_sha256_update (&h, buf, n);
      off += n;
    }
  guint8 got[DF_SHA256_LEN];
  df_sha256_final (&h, got);
  df_sha256_clear (&h);
  return memcmp (got, want, DF_SHA256_LEN) == 0;
}

/* A downloaded file is what it should be: a part matches its SHA-256; a
 * stock fallback object (no file checksum is published) is inflated and
 * hashed as the object it claims to be. */
static gboolean
part_matches (Fetch *f, Part *p, int fd, GError **error)
{
  if (p->fallback)
    return df_stock_fallback_verify (fd, p->size, p->fallback, f->cancellable, error);
  return hash_file_matches (fd, p->size, p->sha256);
}

/* A part's .partial file is open only while transfers write into it (or it
 * is being checked), so a delta of thousands of parts needs few fds. */
static int
part_fd (Fetch *f, Part *p)
{
  if (p->fd < 0)
    {
      char name[96];
      g_snprintf (name, sizeof name, "%s.partial", p->name);
      p->fd = openat (f->store_dfd, name, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    }
  return p->fd;
}

static void
part_fd_release (Part *p)
{
  if (p->fd >= 0 && p->active == 0)
    {
      close (p->fd);
      p->fd = -1;
    }
}

static void
part_reset (Fetch *f, Part *p)
{
  char name[96];
  g_snprintf (name, sizeof name, "%s.partial", p->name);
  unlinkat (f->store_dfd, name, 0); /* writers still active keep their inode */
  if (p->fd >= 0)
    close (p->fd);
  p->fd = -1;
  p->generation++;
  memset (p->done, 0, p->n_ranges);
  memset (p->recorded, 0, p->n_ranges);
  for (guint r = 0; r < p->n_ranges; r++)
    p->ranges[r].got = 0;
  p->remaining = p->n_ranges;
  p->etag[0] = '\0';
  p->mirrors_used = 0;
  p->resumed = FALSE;
  g_snprintf (name, sizeof name, "%s.ranges", p->name);
  unlinkat (f->store_dfd, name, 0);
  for (guint r = 0; r < p->n_ranges; r++)
    if (!p->ranges[r].queued)
      {
        p->ranges[r].queued = TRUE;
        g_queue_push_tail (&f->pending, &p->ranges[r]);
      }
}

/* Notes finished ranges in the part's record as soon as they are in, so a
 * killed process loses no finished range (the page cache survives it). */
static void
record_ranges (Fetch *f, Part *p)
{
  if (memcmp (p->done, p->recorded, p->n_ranges) == 0)
    return;
  char name[96];
  g_snprintf (name, sizeof name, "%s.ranges", p->name);
  df_autofd fd = openat (f->store_dfd, name, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  guint64 rs = GUINT64_TO_LE (f->o->range_size);
  if (fd >= 0 && df_pwrite_all (fd, &rs, sizeof rs, 0, "ranges", NULL)
      && df_pwrite_all (fd, p->done, p->n_ranges, sizeof rs, "ranges", NULL))
    {
      memcpy (p->recorded, p->done, p->n_ranges);
      p->dirty = TRUE;
    }
}

/* Against power loss: every second, the downloaded bytes and then their
 * records are made durable. A record can still reach the disk before the
 * bytes it describes; a resumed part that fails its hash therefore starts
 * over without blaming the mirror (see part_finish()). */
static void
checkpoint (Fetch *f)
{
  for (guint i = 0; i < f->n_parts; i++)
    {
      Part *p = &f->parts[i];
      if (p->complete || !p->dirty)
        continue;
      char name[96];
      g_snprintf (name, sizeof name, "%s.partial", p->name);
      df_autofd data = df_open_regular (f->store_dfd, name, name, NULL, NULL);
      g_snprintf (name, sizeof name, "%s.ranges", p->name);
      df_autofd rec = df_open_regular (f->store_dfd, name, name, NULL, NULL);
      if (data >= 0 && rec >= 0 && fdatasync (data) == 0 && fdatasync (rec) == 0)
        p->dirty = FALSE;
    }
  f->last_checkpoint = g_get_monotonic_time ();
}

/* Every range of @p is in: check it and hand it over, or start over. */
static void
part_finish (Fetch *f, Part *p)
{
  char name[96];
  const char *final = p->name;
  g_snprintf (name, sizeof name, "%s.partial", p->name);
  int fd = part_fd (f, p);
  if (fd < 0)
    {
      set_fatal (f, g_error_new (DF_ERROR, DF_ERROR_IO, "opening %s: %s", p->name, g_strerror (errno)));
      return;
    }
  g_autoptr (GError) why_bad = NULL;
  if (!part_matches (f, p, fd, &why_bad))
    {
      guint used = 0;
      for (guint m = 0; m < f->n_mirrors && m < 32; m++)
        used += (p->mirrors_used >> m) & 1;
      if (++p->corrupt > f->n_mirrors + 2)
        {
          if (p->fallback)
            set_fatal (f, g_error_new (DF_ERROR, DF_ERROR_CORRUPT, "%s, from every mirror (nothing written)",
                                       why_bad ? why_bad->message : "a bad fallback object"));
          else
            set_fatal (f, g_error_new (DF_ERROR, DF_ERROR_CORRUPT,
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
          for (guint m = 0; m < f->n_mirrors && m < 32; m++)
            if (p->mirrors_used & (1u << m))
              demote (f, m, why);
          if (current_mirror (f) < 0)
            {
              set_fatal (f, g_error_new (DF_ERROR, DF_ERROR_CORRUPT, "%s, from every mirror", why));
              return;
            }
        }
      part_reset (f, p);
      return;
    }
  close (p->fd);
  p->fd = -1;
  if (renameat (f->store_dfd, name, f->store_dfd, final) < 0)
    {
      set_fatal (f, g_error_new (DF_ERROR, DF_ERROR_IO, "storing %s: %s", p->name, g_strerror (errno)));
      return;
    }
  g_snprintf (name, sizeof name, "%s.ranges", p->name);
  unlinkat (f->store_dfd, name, 0);
  g_mutex_lock (&f->part_lock);
  p->complete = TRUE;
  g_cond_broadcast (&f->part_cond);
  g_mutex_unlock (&f->part_lock);
  f->parts_left--;
  if (p->downloaded > 0)
    f->res->parts_downloaded++;
  else
    f->res->parts_present++;
  GError *e = NULL;
  if (f->session && !df_apply_session_add_part (f->session, p->index, f->store_dfd, final, &e))
    set_fatal (f, e);
}

/* Reads the store's state for part @p: a verified file to reuse, or the
 * recorded ranges of an interrupted download. */
static void
part_open (Fetch *f, Part *p)
{
  char name[96];
  struct stat st;
  df_autofd done_fd = df_open_regular (f->store_dfd, p->name, p->name, &st, NULL);
  if (done_fd >= 0 && (guint64)st.st_size == p->size
      && part_matches (f, p, done_fd, NULL))
    {
      p->complete = TRUE;
      f->res->bytes_reused += p->size;
      return;
    }
  unlinkat (f->store_dfd, p->name, 0);
  g_snprintf (name, sizeof name, "%s.ranges", p->name);
  g_autoptr (GError) ignored = NULL;
  g_autoptr (GBytes) rec = df_read_file_bounded (f->store_dfd, name, 8 + p->n_ranges, G_MAXUINT64, "ranges", &ignored);
  gsize rlen = 0;
  const guint8 *rb = rec ? g_bytes_get_data (rec, &rlen) : NULL;
  guint64 rs = 0;
  if (rb && rlen == 8 + p->n_ranges)
    memcpy (&rs, rb, 8);
  /* A record made with another range size does not describe these ranges. */
  if (rb && GUINT64_FROM_LE (rs) == f->o->range_size)
    for (guint r = 0; r < p->n_ranges; r++)
      if (rb[8 + r] == 1)
        {
          p->done[r] = p->recorded[r] = 1;
          p->remaining--;
          p->resumed = TRUE;
          f->res->bytes_reused += p->ranges[r].len;
        }
}

/* Starts transfers while there are free connections and ready ranges. */
static void
schedule (Fetch *f)
{
  gint64 now = g_get_monotonic_time ();
  guint n = g_queue_get_length (&f->pending);
  for (guint k = 0; k < n && f->active < MAX (1, f->o->connections); k++)
    {
      Range *r = g_queue_pop_head (&f->pending);
      Part *p = r->part;
      if (p->done[r->slot] || p->complete)
        {
          r->queued = FALSE;
          continue;
        }
      int m = current_mirror (f);
      gboolean whole = m >= 0 && f->mirrors[m].ignores_ranges;
      if (r->not_before > now || m < 0 || (whole && p->active > 0))
        {
          g_queue_push_tail (&f->pending, r);
          continue;
        }
      if (part_fd (f, p) < 0)
        {
          set_fatal (f, g_error_new (DF_ERROR, errno == ENOSPC ? DF_ERROR_NO_SPACE : DF_ERROR_IO,
                                     "opening the part store: %s", g_strerror (errno)));
          g_queue_push_tail (&f->pending, r);
          return;
        }
      r->queued = FALSE;
      g_autofree char *rel = p->rel ? g_strdup (p->rel) : g_strdup_printf ("%s/%u", f->delta_rel, p->index);
      Xfer *x = whole ? xfer_new (f, m, rel, 0, p->size, p->size, FALSE)
                      : xfer_new (f, m, rel, r->off + r->got, r->len - r->got, p->size, TRUE);
      if (p->etag[0] && p->etag_mirror == (guint)m && !p->ignore_etag && !whole)
        {
          g_autofree char *h = g_strdup_printf ("If-Range: %s", p->etag);
          x->headers = curl_slist_append (x->headers, h);
          curl_easy_setopt (x->easy, CURLOPT_HTTPHEADER, x->headers);
        }
      x->sink = SINK_PART;
      x->range = r;
      x->generation = p->generation;
      p->active++;
      f->active++;
      g_ptr_array_add (f->xfers, x);
      curl_multi_add_handle (f->multi, x->easy);
    }
}

static void
requeue (Fetch *f, Range *r)
{
  if (!r->queued)
    {
      r->queued = TRUE;
      g_queue_push_tail (&f->pending, r);
    }
}

static void
range_failed (Fetch *f, Xfer *x, Outcome out, DfError kind, const char *msg)
{
  Range *r = x->range;
  Part *p = r->part;
  g_autofree char *what
      = g_strdup_printf ("%s/%s/%u bytes %" G_GUINT64_FORMAT "-%" G_GUINT64_FORMAT ": %s", f->mirrors[x->mirror].base,
                         f->delta_rel, p->index, r->off, r->off + r->len - 1, msg);
  if (out == OUTCOME_FATAL)
    {
      if (g_cancellable_is_cancelled (f->cancellable))
        set_fatal (f, g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED, "cancelled"));
      else
        set_fatal (f, g_error_new (DF_ERROR, kind, "%s", what));
      return;
    }
  if (out == OUTCOME_CHANGED)
    {
      f->res->retries++;
      emit (f, DF_FETCH_EVENT_RETRY, f->mirrors[x->mirror].base, what);
      /* A file that keeps changing (or load-balanced origins that disagree
       * on ETags) is left to the part's SHA-256. */
      if (++p->changes >= DF_FETCH_MAX_CHANGES)
        p->ignore_etag = TRUE;
      part_reset (f, p);
      return;
    }
  if (f->mirrors[x->mirror].demoted)
    {
      /* Another range convicted this mirror already: try the next one. */
      requeue (f, r);
      return;
    }
  /* A cut transfer's bytes stay: the retry (on any mirror) asks for the rest
   * of the range, and the part's SHA-256 judges the whole. A mirror that
   * answered wrongly gets nothing kept. */
  if (out == OUTCOME_RETRY && !x->full)
    r->got += x->received;
  else
    r->got = 0;
  if (r->got >= r->len)
    {
      /* Every byte arrived before the failure. */
      r->got = 0;
      if (!p->done[r->slot])
        {
          p->done[r->slot] = 1;
          p->remaining--;
        }
      return;
    }
  if (r->attempts_mirror != x->mirror)
    {
      r->attempts = 0;
      r->attempts_mirror = x->mirror;
    }
  r->attempts++;
  if (out == OUTCOME_DEMOTE || r->attempts >= MAX (1, f->o->retries))
    {
      r->attempts = 0;
      r->mirrors_failed++;
      demote (f, x->mirror, what);
      if (current_mirror (f) < 0 || r->mirrors_failed >= f->n_mirrors)
        {
          set_fatal (f, g_error_new (DF_ERROR, kind, "%s (every mirror failed)", what));
          return;
        }
    }
  else
    {
      f->res->retries++;
      emit (f, DF_FETCH_EVENT_RETRY, f->mirrors[x->mirror].base, what);
      r->not_before = g_get_monotonic_time () + backoff_us (r->attempts);
    }
  requeue (f, r);
}

/* After one of @p's transfers ended, whichever: the part is finished once
 * every range is in and no transfer still writes to it; otherwise its
 * finished ranges are noted and its file released. */
static void
part_settle (Fetch *f, Part *p)
{
  if (p->remaining == 0 && p->active == 0 && !p->complete)
    part_finish (f, p);
  else
    {
      record_ranges (f, p);
      part_fd_release (p);
    }
}

static void
transfer_done (Fetch *f, Xfer *x, CURLcode rc)
{
  Range *r = x->range;
  Part *p = r->part;
  p->active--;
  f->active--;
  if (x->full)
    p->full_active--;
  g_ptr_array_remove_fast (f->xfers, x);
  p->downloaded += x->received;
  if (x->moot)
    {
      /* The whole-file reply may have finished the part meanwhile. */
      requeue (f, r);
      part_settle (f, p);
      return;
    }
  if (x->superseded || x->generation != p->generation)
    {
      /* Its range was queued again when the part started over; the new
       * ranges may all have finished while this one still ran. */
      part_settle (f, p);
      return;
    }
  if (x->received > 0 && x->mirror < 32)
    p->mirrors_used |= 1u << x->mirror;
  DfError kind;
  g_autofree char *msg = NULL;
  Outcome out = judge (x, rc, &kind, &msg);
  if (out == OUTCOME_OK)
    {
      if (x->full)
        for (guint k = 0; k < p->n_ranges; k++)
          {
            if (!p->done[k])
              p->remaining--;
            p->done[k] = 1;
          }
      else if (!p->done[r->slot])
        {
          p->done[r->slot] = 1;
          p->remaining--;
        }
    }
  else if (!p->done[r->slot] || out == OUTCOME_FATAL)
    range_failed (f, x, out, kind, msg);
  /* (A failure of a range that a whole-file reply delivered meanwhile is moot.) */
  if (f->fatal)
    return;
  part_settle (f, p);
}

static void
maybe_progress (Fetch *f, gboolean force)
{
  gint64 now = g_get_monotonic_time ();
  if (now - f->rate_since >= G_USEC_PER_SEC)
    {
      double inst = (f->bytes_downloaded - f->rate_bytes) * 1e6 / (double)(now - f->rate_since);
      f->rate = f->rate == 0 ? inst : 0.6 * f->rate + 0.4 * inst;
      f->rate_bytes = f->bytes_downloaded;
      f->rate_since = now;
    }
  if (force || now - f->last_event >= G_USEC_PER_SEC / 10)
    {
      f->last_event = now;
      emit (f, DF_FETCH_EVENT_PROGRESS, NULL, NULL);
    }
}

/* The download loop: until every needed part is verified and handed over. */
static void
run_loop (Fetch *f)
{
  f->rate_since = f->last_checkpoint = g_get_monotonic_time ();
  while (f->fatal == NULL && f->parts_left > 0)
    {
      if (g_cancellable_is_cancelled (f->cancellable))
        {
          set_fatal (f, g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED, "cancelled"));
          break;
        }
      if ((f->session && df_apply_session_failed (f->session)) || g_atomic_int_get (&f->stock_failed))
        {
          /* No use downloading more: finish reports the apply's error. */
          f->apply_failed = TRUE;
          break;
        }
      schedule (f);
      if (f->active == 0 && g_queue_is_empty (&f->pending) && f->parts_left > 0)
        {
          set_fatal (f, g_error_new (DF_ERROR, DF_ERROR_FAILED, "internal error: %u parts left, nothing to fetch",
                                     f->parts_left));
          break;
        }
      int running;
      curl_multi_perform (f->multi, &running);
      int left;
      CURLMsg *m;
      gboolean finished_any = FALSE;
      while ((m = curl_multi_info_read (f->multi, &left)))
        {
          if (m->msg != CURLMSG_DONE)
            continue;
          finished_any = TRUE;
          Xfer *x = NULL;
          CURL *e = m->easy_handle;
          CURLcode rc = m->data.result;
          curl_easy_getinfo (e, CURLINFO_PRIVATE, (char **)&x);
          curl_multi_remove_handle (f->multi, e);
          transfer_done (f, x, rc);
          xfer_free (x);
        }
      gint64 now = g_get_monotonic_time ();
      if (now - f->last_checkpoint >= DF_FETCH_CHECKPOINT_US)
        checkpoint (f);
      maybe_progress (f, FALSE);
      /* A finished transfer frees a connection: fill it before waiting. */
      if (f->fatal == NULL && f->parts_left > 0 && !finished_any)
        curl_multi_poll (f->multi, NULL, 0, 100, NULL);
    }
  /* Stop whatever is still in flight; its bytes stay for a resume. */
  for (guint i = 0; i < f->xfers->len; i++)
    {
      Xfer *x = f->xfers->pdata[i];
      curl_multi_remove_handle (f->multi, x->easy);
      xfer_free (x);
    }
  g_ptr_array_set_size (f->xfers, 0);
  checkpoint (f);
}

/* ---------------------------------------------------------------------- */
/* Discovery and the whole fetch                                            */

static void
remove_stale_state (Fetch *f, const char *keep_hex)
{
  DIR *d = df_opendir_at (ostree_repo_get_dfd (f->repo), "tmp");
  if (d == NULL)
    return;
  g_autoptr (GPtrArray) stale = g_ptr_array_new_with_free_func (g_free);
  struct dirent *de;
  while ((de = readdir (d)))
    {
      const char *n = de->d_name;
      const char *hex = g_str_has_prefix (n, "deltafetch-fetch-")   ? n + 17
                        : g_str_has_prefix (n, "deltafetch-apply-") ? n + 17
                                                                    : NULL;
      if (hex && (keep_hex == NULL || strcmp (hex, keep_hex) != 0))
        g_ptr_array_add (stale, g_strdup (n));
    }
  for (guint i = 0; i < stale->len; i++)
    df_rm_rf_at (dirfd (d), stale->pdata[i], NULL);
  closedir (d);
}

/* Looks up the delta to @to for a device at @from (NULL: none) in the
 * server's index. Returns the from-key used ("" for scratch) or NULL when
 * the index offers nothing usable. */
static char *
pick_delta (Fetch *f, GBytes *index, const char *from, guint8 sb_sha[DF_SHA256_LEN], guint64 *sb_size, GError **error)
{
  g_autoptr (GVariant) v = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE ("a{s(ayt)}"), index, FALSE));
  if (!g_variant_is_normal_form (v))
    {
      df_throw (error, DF_ERROR_INVALID_DELTA, "the server's delta index is malformed");
      return NULL;
    }
  const char *keys[2] = { from ? from : NULL, "" };
  for (guint k = 0; k < 2; k++)
    {
      if (keys[k] == NULL)
        continue;
      g_autoptr (GVariant) sha = NULL;
      guint64 size;
      if (!g_variant_lookup (v, keys[k], "(@ayt)", &sha, &size))
        continue;
      if (g_variant_get_size (sha) != DF_SHA256_LEN || size > DF_SUPERBLOCK_MAX || size < DF_SUPERBLOCK_HEADER_LEN)
        {
          df_throw (error, DF_ERROR_INVALID_DELTA, "the server's delta index has a bad entry for '%s'", keys[k]);
          return NULL;
        }
      memcpy (sb_sha, g_variant_get_data (sha), DF_SHA256_LEN);
      *sb_size = size;
      return g_strdup (keys[k]);
    }
  return NULL;
}

static gboolean
check_space (Fetch *f, GError **error)
{
  guint64 need = 0;
  for (guint i = 0; i < f->n_parts; i++)
    {
      Part *p = &f->parts[i];
      if (p->complete)
        continue;
      for (guint r = 0; r < p->n_ranges; r++)
        if (!p->done[r])
          need += p->ranges[r].len;
      need += p->unpacked;
    }
  /* A stock delta's parts are also decoded into temporary files first. */
  if (f->stock)
    need += df_stock_payload_staging (f->stock, df_stock_decoders (f->stock, f->o->memory, f->o->jobs));
  return df_check_free_space (f->repo, f->store_dfd, need, error);
}

static gboolean
commit_present (OstreeRepo *repo, const char *commit)
{
  g_autoptr (GVariant) v = NULL;
  OstreeRepoCommitState state = 0;
  if (!ostree_repo_load_commit (repo, commit, &v, &state, NULL))
    return FALSE;
  return (state & OSTREE_REPO_COMMIT_STATE_PARTIAL) == 0;
}

static gboolean
set_ref (OstreeRepo *repo, const char *ref, const char *commit, GCancellable *c, GError **error)
{
  if (ref == NULL)
    return TRUE;
  return ostree_repo_set_ref_immediate (repo, NULL, ref, commit, c, error);
}

static gboolean
validate_urls (GPtrArray *urls, GError **error)
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

static gboolean
validate_options (const DfFetchOptions *o, GError **error)
{
  guint8 csum[DF_SHA256_LEN];
  if (o->commit == NULL)
    return df_throw (error, DF_ERROR_INVALID_ARGUMENT, "the trusted commit checksum is required");
  if (!df_parse_checksum (o->commit, csum, error))
    return FALSE;
  if (!validate_urls (o->urls, error))
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

static void
fetch_init (Fetch *f, OstreeRepo *repo, const DfFetchOptions *o, DfFetchResult *res, GCancellable *cancellable)
{
  static gsize curl_ready = 0;
  if (g_once_init_enter (&curl_ready))
    {
      curl_global_init (CURL_GLOBAL_DEFAULT);
      g_once_init_leave (&curl_ready, 1);
    }
  f->repo = repo;
  f->o = o;
  f->res = res;
  f->store_dfd = -1;
  f->own_cancellable = cancellable ? NULL : g_cancellable_new ();
  f->cancellable = cancellable ? cancellable : f->own_cancellable;
  f->n_mirrors = o->urls->len;
  f->mirrors = g_new0 (Mirror, f->n_mirrors);
  for (guint i = 0; i < f->n_mirrors; i++)
    f->mirrors[i].base = o->urls->pdata[i];
  f->xfers = g_ptr_array_new ();
  g_mutex_init (&f->part_lock);
  g_cond_init (&f->part_cond);
  f->multi = curl_multi_init ();
  curl_multi_setopt (f->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)o->connections);
  curl_multi_setopt (f->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)o->connections);
  curl_multi_setopt (f->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
}

static void
fetch_clear (Fetch *f)
{
  for (guint i = 0; i < f->n_parts; i++)
    {
      Part *p = &f->parts[i];
      if (p->fd >= 0)
        close (p->fd);
      g_free (p->rel);
      g_free (p->ranges);
      g_free (p->done);
      g_free (p->recorded);
    }
  g_free (f->parts);
  g_free (f->fallback_part);
  g_queue_clear (&f->pending);
  if (f->xfers)
    g_ptr_array_unref (f->xfers);
  if (f->multi)
    curl_multi_cleanup (f->multi);
  if (f->store_dfd >= 0)
    close (f->store_dfd);
  g_free (f->mirrors);
  if (f->session)
    df_apply_session_free (f->session);
  else if (f->sb)
    df_superblock_free (f->sb);
  if (!f->stock_borrowed)
    df_stock_superblock_free (f->stock);
  df_signature_policy_clear (&f->policy);
  g_mutex_clear (&f->part_lock);
  g_cond_clear (&f->part_cond);
  df_apply_options_free (f->aopts);
  g_clear_error (&f->fatal);
  g_clear_object (&f->own_cancellable);
}

/* Sets up part @i (@size bytes, SHA-256 @sha, decoding to @unpacked
 * bytes): already present (not @needed, or verified in the store), resumed
 * from recorded ranges, or queued for download. */
static gboolean
part_plan (Fetch *f, guint i, guint64 size, const guint8 sha[DF_SHA256_LEN], guint64 unpacked, gboolean needed,
           GError **error)
{
  Part *p = &f->parts[i];
  f->res->delta_bytes += size;
  p->index = i;
  if (p->name[0] == '\0')
    g_snprintf (p->name, sizeof p->name, "%u", i);
  p->fd = -1;
  p->size = size;
  memcpy (p->sha256, sha, DF_SHA256_LEN);
  p->unpacked = unpacked;
  guint64 rs = f->o->range_size;
  p->n_ranges = p->size == 0 ? 1 : (guint)((p->size + rs - 1) / rs);
  p->ranges = g_new0 (Range, p->n_ranges);
  p->done = g_new0 (guint8, p->n_ranges);
  p->recorded = g_new0 (guint8, p->n_ranges);
  p->remaining = p->n_ranges;
  for (guint r = 0; r < p->n_ranges; r++)
    {
      p->ranges[r].part = p;
      p->ranges[r].slot = r;
      p->ranges[r].off = r * rs;
      p->ranges[r].len = MIN (rs, p->size - r * rs);
    }
  if (!needed)
    {
      p->complete = TRUE;
      f->res->parts_present++;
      return TRUE;
    }
  part_open (f, p);
  if (p->complete)
    {
      f->res->parts_present++;
      return f->session == NULL || df_apply_session_add_part (f->session, i, f->store_dfd, p->name, error);
    }
  f->parts_left++;
  for (guint r = 0; r < p->n_ranges; r++)
    if (!p->done[r])
      {
        f->bytes_total += p->ranges[r].len;
        p->ranges[r].queued = TRUE;
        g_queue_push_tail (&f->pending, &p->ranges[r]);
      }
  if (p->remaining == 0)
    {
      /* Every range was in before the interruption. */
      for (guint r = 0; r < p->n_ranges; r++)
        p->ranges[r].queued = FALSE;
      part_finish (f, p);
    }
  return TRUE;
}

/* The part store of the delta whose superblock has SHA-256 @sb_hex, under
 * the repository's tmp/. */
static gboolean
open_store (Fetch *f, const char *sb_hex, GError **error)
{
  /* This delta is the one to finish: state left by others is stale. */
  remove_stale_state (f, sb_hex);
  g_snprintf (f->store_rel, sizeof f->store_rel, "tmp/deltafetch-fetch-%s", sb_hex);
  int repo_dfd = ostree_repo_get_dfd (f->repo);
  if (!df_mkdir_p_at (repo_dfd, f->store_rel, error))
    return FALSE;
  f->store_dfd = openat (repo_dfd, f->store_rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (f->store_dfd < 0)
    return df_throw_errno (error, errno, "opening %s", f->store_rel);
  return TRUE;
}

static DfApplyOptions *
apply_options (Fetch *f)
{
  DfApplyOptions *aopts = df_apply_options_new ();
  df_apply_options_set_commit (aopts, f->o->commit);
  df_apply_options_set_ref (aopts, f->o->ref);
  /* Only a budget the caller chose binds rebuilds (the default may rise
   * for them, engine/FORMAT.md). */
  if (f->o->memory_explicit)
    df_apply_options_set_memory_budget (aopts, f->o->memory);
  df_apply_options_set_jobs (aopts, f->o->jobs);
  df_apply_options_set_allow_downgrade (aopts, f->o->allow_downgrade);
  df_apply_options_set_trusted_keys (aopts, f->o->trusted_keys);
  df_apply_options_set_require_signatures (aopts, f->o->require_signatures);
  df_apply_options_set_allow_unsigned (aopts, f->o->allow_unsigned);
  return aopts;
}

/* Downloads and applies the native delta whose superblock @sb_bytes
 * (verified against the index) describes. */
static gboolean
fetch_delta (Fetch *f, GBytes *sb_bytes, const char *sb_hex, GError **error)
{
  DfApplyOptions *aopts = f->aopts = apply_options (f);
  f->sb = df_superblock_parse_full (sb_bytes, &f->policy, df_apply_usable_memory (aopts), error);
  if (f->sb == NULL)
    return FALSE;
  if (strcmp (f->sb->to_hex, f->o->commit) != 0)
    return df_throw (error, DF_ERROR_UNTRUSTED, "the server's delta leads to %s, not to the trusted commit %s",
                     f->sb->to_hex, f->o->commit);
  if (!open_store (f, sb_hex, error))
    return FALSE;
  int repo_dfd = ostree_repo_get_dfd (f->repo);
  DfSuperblock *sb = f->sb;
  f->session = df_apply_session_new (f->repo, g_steal_pointer (&f->sb), aopts, f->cancellable, error);
  if (f->session == NULL)
    return FALSE;
  f->sb = (DfSuperblock *)df_apply_session_get_superblock (f->session);
  g_assert (f->sb == sb);

  f->n_parts = f->sb->n_parts;
  f->parts = g_new0 (Part, f->n_parts);
  f->res->parts_total = f->n_parts;
  f->res->delta_bytes = f->sb->file.size;
  /* Metadata parts first: content parts wait for the trust walk. */
  for (int pass = 0; pass < 2; pass++)
    for (guint i = 0; i < f->n_parts; i++)
      {
        const DfPart *dp = &f->sb->parts[i];
        if ((pass == 0) != (dp->kind == DF_PART_KIND_METADATA))
          continue;
        if (!part_plan (f, i, dp->compressed_size, dp->sha256, df_part_output (dp),
                        df_apply_session_part_needed (f->session, i), error))
          return FALSE;
        if (f->fatal)
          break;
      }
  if (f->fatal == NULL && !check_space (f, error))
    return FALSE;
  /* The index and the superblock count as part of this run's download. */
  f->bytes_total += f->bytes_downloaded;
  emit (f, DF_FETCH_EVENT_START, f->mirrors[MAX (0, current_mirror (f))].base, NULL);
  if (f->fatal == NULL)
    run_loop (f);
  if (f->fatal || f->apply_failed)
    {
      if (f->apply_failed)
        {
          /* The apply's own error says what went wrong. */
          g_clear_error (&f->fatal);
          if (!df_apply_session_finish (f->session, NULL, &f->fatal) && f->fatal)
            {
              g_propagate_error (error, g_steal_pointer (&f->fatal));
              return FALSE;
            }
          g_clear_error (&f->fatal);
          return df_throw (error, DF_ERROR_FAILED, "the apply failed");
        }
      GError *ignored = NULL;
      g_cancellable_cancel (df_apply_session_get_cancellable (f->session));
      df_apply_session_finish (f->session, NULL, &ignored);
      g_clear_error (&ignored);
      g_propagate_error (error, g_steal_pointer (&f->fatal));
      return FALSE;
    }
  maybe_progress (f, TRUE);
  if (!df_apply_session_finish (f->session, &f->res->apply, error))
    return FALSE;
  maybe_progress (f, TRUE);
  close (f->store_dfd);
  f->store_dfd = -1;
  df_rm_rf_at (repo_dfd, f->store_rel, NULL);
  return TRUE;
}

/* The native delta the index from mirror @index_mirror offers under @key
 * ("" for scratch), whose superblock has SHA-256 @sb_sha and @sb_size
 * bytes. */
static gboolean
fetch_native (Fetch *f, guint index_mirror, const char *key, const guint8 sb_sha[DF_SHA256_LEN], guint64 sb_size,
              GError **error)
{
  const DfFetchOptions *o = f->o;
  OstreeRepo *repo = f->repo;
  DfFetchResult *res = f->res;
  gboolean not_found;
  res->path = key[0] ? DF_FETCH_PATH_DELTA : DF_FETCH_PATH_SCRATCH;
  if (key[0])
    g_strlcpy (res->from, key, sizeof res->from);
  g_snprintf (f->delta_rel, sizeof f->delta_rel, "deltafetch/v1/deltas/%s%s%s", key, key[0] ? "-" : "", o->commit);
  char sb_hex[65];
  df_hex (sb_sha, sb_hex);

  /* The superblock: from the store of an interrupted run, or the server;
   * either way it must match the index. */
  g_autofree char *sb_store = g_strdup_printf ("tmp/deltafetch-fetch-%s/superblock", sb_hex);
  g_autoptr (GError) ignored = NULL;
  g_autoptr (GBytes) sb_bytes
      = df_read_file_bounded (ostree_repo_get_dfd (repo), sb_store, sb_size, sb_size, "superblock", &ignored);
  guint8 got[DF_SHA256_LEN];
  if (sb_bytes)
    {
      df_sha256 (g_bytes_get_data (sb_bytes, NULL), g_bytes_get_size (sb_bytes), got);
      if (memcmp (got, sb_sha, DF_SHA256_LEN) != 0)
        g_clear_pointer (&sb_bytes, g_bytes_unref);
    }
  if (sb_bytes == NULL)
    {
      g_autofree char *rel = g_strdup_printf ("%s/superblock", f->delta_rel);
      guint sb_mirror;
      sb_bytes = fetch_small (f, rel, sb_size, &not_found, &sb_mirror, error);
      if (sb_bytes == NULL)
        return FALSE;
      df_sha256 (g_bytes_get_data (sb_bytes, NULL), g_bytes_get_size (sb_bytes), got);
      if (g_bytes_get_size (sb_bytes) != sb_size || memcmp (got, sb_sha, DF_SHA256_LEN) != 0)
        {
          /* Either file may be the damaged one: the mirror whose index
           * promised this superblock is trusted for neither. (The
           * superblock comes from another mirror only when that one did not
           * have it.) */
          f->suspect = index_mirror;
          return df_throw (error, DF_ERROR_CORRUPT, "%s/%s does not match the server's index",
                           f->mirrors[sb_mirror].base, rel);
        }
      g_autofree char *dir = g_path_get_dirname (sb_store);
      if (df_mkdir_p_at (ostree_repo_get_dfd (repo), dir, NULL))
        df_write_file_atomic (ostree_repo_get_dfd (repo), sb_store, sb_bytes, NULL);
    }
  return fetch_delta (f, sb_bytes, sb_hex, error);
}

/* The stock apply's threads wait here for each part and fallback object. */
static gboolean
stock_wait (Fetch *f, Part *p, GError **error)
{
  g_mutex_lock (&f->part_lock);
  while (!p->complete && !f->parts_stop)
    g_cond_wait (&f->part_cond, &f->part_lock);
  gboolean ok = p->complete;
  g_mutex_unlock (&f->part_lock);
  return ok || df_throw (error, DF_ERROR_NETWORK, "%s%s did not arrive", p->fallback ? "fallback object " : "part ",
                         p->name);
}

static gboolean
stock_wait_part (guint i, gpointer data, GError **error)
{
  Fetch *f = data;
  return stock_wait (f, &f->parts[i], error);
}

static gboolean
stock_fallback (guint i, int *out_fd, guint64 *out_size, gpointer data, GError **error)
{
  Fetch *f = data;
  guint k = f->fallback_part ? f->fallback_part[i] : G_MAXUINT;
  if (k == G_MAXUINT)
    return df_throw (error, DF_ERROR_MISSING_BASE, "fallback object %u was not asked for", i);
  Part *p = &f->parts[k];
  if (!stock_wait (f, p, error))
    return FALSE;
  *out_fd = df_open_regular (f->store_dfd, p->name, p->name, NULL, error);
  if (*out_fd < 0)
    return FALSE;
  *out_size = p->size;
  return TRUE;
}

typedef struct
{
  Fetch *f;
  int parts_dfd;
  const DfApplyOptions *aopts;
  gboolean ok;
  GError *error;
} StockApply;

static gpointer
stock_apply_thread (gpointer data)
{
  StockApply *sa = data;
  Fetch *f = sa->f;
  gboolean store = sa->parts_dfd == f->store_dfd;
  DfStockFeed feed
      = { .wait = store ? stock_wait_part : NULL, .fallback = stock_fallback, .data = f, .private_parts = store };
  sa->ok = df_apply_stock (f->repo, sa->parts_dfd, f->stock, sa->aopts, &feed, &f->res->apply, f->cancellable,
                           &sa->error);
  if (!sa->ok)
    g_atomic_int_set (&f->stock_failed, 1);
  return NULL;
}

/* The loose-object path of fallback @fb in an archive repository. */
static char *
fallback_rel (const DfStockFallback *fb)
{
  char hex[65];
  df_hex (fb->checksum, hex);
  const char *ext = fb->objtype == OSTREE_OBJECT_TYPE_FILE ? "filez" : ostree_object_type_to_string (fb->objtype);
  return g_strdup_printf ("objects/%.2s/%s.%s", hex, hex + 2, ext);
}

/* A stock delta (what `ostree static-delta generate` writes): its parts
 * and the fallback objects it leaves to be fetched one by one come through
 * the same ranged, resumable, verified downloads into the part store, while
 * the stock apply runs in a thread and takes each as soon as it is in.
 * @sb_bytes matched the server's delta index. With @local_dfd >= 0 the
 * parts are there already (an offline apply given a URL): only the missing
 * fallback objects are downloaded. @aopts: the apply's options. */
static gboolean
fetch_stock (Fetch *f, GBytes *sb_bytes, const char *relpath, int local_dfd, const DfApplyOptions *aopts,
             GError **error)
{
  if (f->stock == NULL)
    f->stock = df_stock_superblock_parse_full (sb_bytes, &f->policy, df_apply_usable_memory (aopts), error);
  if (f->stock == NULL)
    return FALSE;
  DfStockSuperblock *sb = f->stock;
  if (aopts->commit && strcmp (sb->to_hex, aopts->commit) != 0)
    return df_throw (error, DF_ERROR_UNTRUSTED, "the delta leads to %s, not to the trusted commit %s", sb->to_hex,
                     aopts->commit);
  g_autoptr (GArray) missing = df_stock_missing_fallbacks (f->repo, sb, NULL, f->cancellable, error);
  if (missing == NULL)
    return FALSE;
  char sb_hex[65];
  df_hex (sb->file.sha256, sb_hex);
  if (!open_store (f, sb_hex, error))
    return FALSE;
  guint n_delta_parts = local_dfd >= 0 ? 0 : sb->n_parts;
  if (local_dfd < 0)
    g_strlcpy (f->delta_rel, relpath, sizeof f->delta_rel);
  f->n_parts = n_delta_parts + missing->len;
  f->parts = g_new0 (Part, MAX (f->n_parts, 1));
  f->fallback_part = g_new (guint, MAX (sb->n_fallbacks, 1));
  for (guint i = 0; i < sb->n_fallbacks; i++)
    f->fallback_part[i] = G_MAXUINT;
  f->res->parts_total = f->n_parts;
  f->res->delta_bytes = sb->file.size;
  /* Downloads go in the order the apply takes the parts: metadata parts,
   * then content parts in its order. */
  g_autofree guint *order = g_new (guint, MAX (n_delta_parts, 1));
  guint n_order = 0;
  for (int pass = 0; pass < 2; pass++)
    for (guint i = 0; i < n_delta_parts; i++)
      if (df_stock_part_has_metadata (&sb->parts[i]) == (pass == 0))
        order[n_order++] = i;
  guint n_meta_parts = 0;
  while (n_meta_parts < n_order && df_stock_part_has_metadata (&sb->parts[order[n_meta_parts]]))
    n_meta_parts++;
  df_stock_content_order (sb, order + n_meta_parts, n_order - n_meta_parts,
                          df_stock_decoders (sb, f->o->memory, f->o->jobs));
  for (guint k = 0; k < n_order && f->fatal == NULL; k++)
    {
      guint i = order[k];
      const DfStockPart *sp = &sb->parts[i];
      /* Inline parts came with the superblock; parts whose objects are
       * all present (resume) need not come at all. */
      gboolean present = FALSE;
      if (sp->inline_data == NULL && !df_stock_part_present (f->repo, sp, f->cancellable, &present, error))
        return FALSE;
      gboolean needed = sp->inline_data == NULL && !present;
      if (!part_plan (f, i, sp->inline_data ? 0 : sp->size, sp->sha256, sp->usize, needed, error))
        return FALSE;
    }
  for (guint k = 0; k < missing->len && f->fatal == NULL; k++)
    {
      guint i = g_array_index (missing, guint, k);
      const DfStockFallback *fb = &sb->fallbacks[i];
      Part *p = &f->parts[n_delta_parts + k];
      char hex[65];
      df_hex (fb->checksum, hex);
      p->fallback = fb;
      p->rel = fallback_rel (fb);
      g_snprintf (p->name, sizeof p->name, "%s.%s", hex, fb->objtype == OSTREE_OBJECT_TYPE_FILE ? "filez" : "meta");
      f->fallback_part[i] = n_delta_parts + k;
      static const guint8 no_sha[DF_SHA256_LEN];
      if (!part_plan (f, n_delta_parts + k, fb->size, no_sha, fb->usize, TRUE, error))
        return FALSE;
    }
  if (f->fatal == NULL && !check_space (f, error))
    return FALSE;
  f->bytes_total += f->bytes_downloaded;
  emit (f, DF_FETCH_EVENT_START, f->mirrors[MAX (0, current_mirror (f))].base, NULL);
  /* The apply runs in its own thread, each part read as soon as it is
   * verified here; this thread keeps moving bytes. */
  StockApply sa = { .f = f, .parts_dfd = local_dfd >= 0 ? local_dfd : f->store_dfd, .aopts = aopts };
  GThread *applier = f->fatal ? NULL : g_thread_new ("df-stock-apply", stock_apply_thread, &sa);
  if (f->fatal == NULL)
    run_loop (f);
  g_mutex_lock (&f->part_lock);
  f->parts_stop = TRUE;
  g_cond_broadcast (&f->part_cond);
  g_mutex_unlock (&f->part_lock);
  if (applier)
    g_thread_join (applier);
  /* The apply's own error says most when it failed first. */
  if (applier && !sa.ok && (f->fatal == NULL || f->apply_failed))
    {
      g_clear_error (&f->fatal);
      g_propagate_error (error, sa.error);
      return FALSE;
    }
  g_clear_error (&sa.error);
  if (f->fatal)
    {
      g_propagate_error (error, g_steal_pointer (&f->fatal));
      return FALSE;
    }
  maybe_progress (f, TRUE);
  close (f->store_dfd);
  f->store_dfd = -1;
  df_rm_rf_at (ostree_repo_get_dfd (f->repo), f->store_rel, NULL);
  return TRUE;
}

/* The "ostree.static-deltas" table (delta name -> SHA-256 of its
 * superblock) the server publishes for the trusted commit: its delta index
 * (delta-indexes/, what `ostree summary -u` writes since 2020), else its
 * summary file (older servers, and repositories whose indexes are gone),
 * and in *@served_by the mirror it came from. NULL without an error when
 * the server has neither. Neither is trusted: the digest only tells a
 * damaged superblock early; trust comes from the commit checksum. */
static GVariant *
stock_delta_table (Fetch *f, guint *served_by, GError **error)
{
  guint8 to[DF_SHA256_LEN];
  ostree_checksum_inplace_to_bytes (f->o->commit, to);
  g_autofree char *to64 = ostree_checksum_b64_from_bytes (to);
  g_autofree char *index_rel = g_strdup_printf ("delta-indexes/%.2s/%s.index", to64, to64 + 2);
  gboolean not_found = FALSE;
  g_autoptr (GError) local = NULL;
  g_autoptr (GBytes) index = fetch_small (f, index_rel, DF_FETCH_INDEX_MAX, &not_found, served_by, &local);
  if (index)
    {
      g_autoptr (GVariant) iv = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE_VARDICT, index, FALSE));
      if (!g_variant_is_normal_form (iv))
        {
          f->suspect = *served_by;
          df_throw (error, DF_ERROR_INVALID_DELTA, "%s/%s is malformed", f->mirrors[*served_by].base, index_rel);
          return NULL;
        }
      return g_variant_lookup_value (iv, "ostree.static-deltas", G_VARIANT_TYPE_VARDICT);
    }
  if (!not_found)
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return NULL;
    }
  g_clear_error (&local);
  g_autoptr (GBytes) summary = fetch_small (f, "summary", DF_FETCH_SUMMARY_MAX, &not_found, served_by, &local);
  if (summary == NULL)
    {
      if (!not_found)
        g_propagate_error (error, g_steal_pointer (&local));
      return NULL;
    }
  g_autoptr (GVariant) sv = g_variant_ref_sink (g_variant_new_from_bytes (OSTREE_SUMMARY_GVARIANT_FORMAT, summary, FALSE));
  if (!g_variant_is_normal_form (sv))
    {
      f->suspect = *served_by;
      df_throw (error, DF_ERROR_INVALID_DELTA, "%s/summary is malformed", f->mirrors[*served_by].base);
      return NULL;
    }
  g_autoptr (GVariant) meta = g_variant_get_child_value (sv, 1);
  return g_variant_lookup_value (meta, "ostree.static-deltas", G_VARIANT_TYPE_VARDICT);
}

/* Discovery of a stock delta: the delta from @from when the server lists
 * one, else the from-scratch one. *@used is FALSE when the server offers
 * neither. */
static gboolean
try_stock (Fetch *f, const char *from, gboolean *used, GError **error)
{
  *used = FALSE;
  GError *local = NULL;
  guint table_mirror = 0;
  g_autoptr (GVariant) deltas = stock_delta_table (f, &table_mirror, &local);
  if (local)
    {
      g_propagate_error (error, local);
      return FALSE;
    }
  if (deltas == NULL)
    return TRUE;
  const char *use_from = NULL;
  g_autoptr (GVariant) digest = NULL;
  if (from)
    {
      g_autofree char *name = g_strdup_printf ("%s-%s", from, f->o->commit);
      digest = g_variant_lookup_value (deltas, name, G_VARIANT_TYPE_BYTESTRING);
      use_from = digest ? from : NULL;
    }
  if (digest == NULL)
    digest = g_variant_lookup_value (deltas, f->o->commit, G_VARIANT_TYPE_BYTESTRING);
  if (digest == NULL || g_variant_n_children (digest) != DF_SHA256_LEN)
    return TRUE;
  g_autofree char *relpath = df_stock_delta_relpath (use_from, f->o->commit);
  g_autofree char *sb_rel = g_strdup_printf ("%s/superblock", relpath);
  gboolean not_found = FALSE;
  guint sb_mirror;
  g_autoptr (GBytes) sb_bytes = fetch_small (f, sb_rel, DF_SUPERBLOCK_MAX, &not_found, &sb_mirror, &local);
  if (sb_bytes == NULL)
    {
      /* Listed but gone: as stock pull does, go on without it. */
      if (not_found)
        {
          g_clear_error (&local);
          return TRUE;
        }
      g_propagate_error (error, local);
      return FALSE;
    }
  guint8 got[DF_SHA256_LEN];
  df_sha256 (g_bytes_get_data (sb_bytes, NULL), g_bytes_get_size (sb_bytes), got);
  if (memcmp (got, g_variant_get_data (digest), DF_SHA256_LEN) != 0)
    {
      /* As for a native superblock and its index: the mirror that listed
       * this digest is trusted for neither. */
      f->suspect = table_mirror;
      return df_throw (error, DF_ERROR_CORRUPT, "%s/%s does not match the digest the server lists for it",
                       f->mirrors[sb_mirror].base, sb_rel);
    }
  f->res->path = use_from ? DF_FETCH_PATH_STOCK_DELTA : DF_FETCH_PATH_STOCK_SCRATCH;
  if (use_from)
    g_strlcpy (f->res->from, use_from, sizeof f->res->from);
  f->aopts = apply_options (f);
  if (!fetch_stock (f, sb_bytes, relpath, -1, f->aopts, error))
    return FALSE;
  *used = TRUE;
  return TRUE;
}

/* The repository lock is taken: say so with an event. */
static void
fetch_lock_waiting (gpointer timeout, gpointer data)
{
  const DfFetchOptions *o = data;
  if (o->event_func == NULL)
    return;
  g_autofree char *msg = g_strdup_printf ("another deltafetch apply or fetch is working in this repository: waiting up to %u s",
                                          GPOINTER_TO_UINT (timeout));
  DfFetchEvent ev = { .type = DF_FETCH_EVENT_WAITING, .message = msg };
  o->event_func (&ev, o->event_data);
}

/* A fetch that failed for a reason a rerun cannot fix (the delta itself is
 * bad) leaves nothing of it behind: neither the downloaded parts nor what
 * the apply staged. Interruptions keep both for the rerun to resume. */
static void
forget_if_final (Fetch *f, const GError *error)
{
  if (!df_apply_failure_is_final (error))
    return;
  if (f->store_dfd >= 0)
    {
      close (f->store_dfd);
      f->store_dfd = -1;
    }
  if (f->store_rel[0])
    df_rm_rf_at (ostree_repo_get_dfd (f->repo), f->store_rel, NULL);
  const DfSignedFile *file = f->session ? &df_apply_session_get_superblock (f->session)->file
                             : f->sb       ? &f->sb->file
                             : f->stock    ? &f->stock->file
                                           : NULL;
  if (file)
    df_apply_forget_staging (f->repo, file->sha256);
}

/* An offline apply of the stock delta in @delta_dfd (superblock @sb, parsed)
 * whose fallback objects come from @urls: df_apply() with URLs. */
gboolean
df_fetch_stock_fallbacks (OstreeRepo *repo, int delta_dfd, const DfStockSuperblock *sb, GPtrArray *urls,
                          const DfApplyOptions *aopts, DfApplyResult *result, GCancellable *cancellable,
                          GError **error)
{
  DfFetchResult res = { 0 };
  g_autoptr (DfFetchOptions) o = df_fetch_options_new ();
  for (guint i = 0; i < urls->len; i++)
    df_fetch_options_add_url (o, urls->pdata[i]);
  if (aopts->memory_explicit)
    df_fetch_options_set_memory_budget (o, aopts->memory);
  df_fetch_options_set_jobs (o, aopts->jobs);
  if (!validate_urls (o->urls, error))
    return FALSE;
  Fetch fs = { 0 };
  Fetch *f = &fs;
  fetch_init (f, repo, o, &res, cancellable);
  f->stock = (DfStockSuperblock *)sb;
  f->stock_borrowed = TRUE;
  gboolean ok = fetch_stock (f, NULL, NULL, delta_dfd, aopts, error);
  fetch_clear (f);
  if (result)
    *result = res.apply;
  return ok;
}

/* Discovery (the native index, else the stock delta table, else
 * libostree's pull) and the download it leads to, for a device at @from
 * (NULL: none). A small file that fails its check sets f->suspect. */
static gboolean
discover_and_fetch (Fetch *f, const char *from, GError **error)
{
  const DfFetchOptions *o = f->o;
  gboolean not_found = FALSE;
  g_autofree char *index_rel = g_strdup_printf ("deltafetch/v1/indexes/%s.index", o->commit);
  guint index_mirror = 0;
  g_autoptr (GError) index_error = NULL;
  g_autoptr (GBytes) index = fetch_small (f, index_rel, DF_FETCH_INDEX_MAX, &not_found, &index_mirror, &index_error);
  if (index == NULL && !not_found)
    {
      g_propagate_error (error, g_steal_pointer (&index_error));
      return FALSE;
    }
  g_autofree char *key = NULL;
  guint8 sb_sha[DF_SHA256_LEN];
  guint64 sb_size = 0;
  if (index)
    {
      g_autoptr (GError) pick_error = NULL;
      key = pick_delta (f, index, from, sb_sha, &sb_size, &pick_error);
      if (pick_error)
        {
          f->suspect = index_mirror;
          return df_throw (error, pick_error->code, "%s/%s: %s", f->mirrors[index_mirror].base, index_rel,
                           pick_error->message);
        }
    }
  if (key)
    return fetch_native (f, index_mirror, key, sb_sha, sb_size, error);
  /* A stock delta the server's stock index lists. */
  gboolean used = FALSE;
  if (!try_stock (f, from, &used, error))
    return FALSE;
  if (used)
    return TRUE;
  if (o->require_signatures)
    return df_throw (error, DF_ERROR_UNTRUSTED,
                     "the server offers no native delta to %s, and signatures are required (libostree's pull has none)",
                     o->commit);
  if (!o->allow_pull)
    return df_throw (error, DF_ERROR_NETWORK, "the server offers no native delta to %s%s%s", o->commit,
                     from ? " from " : "", from ? from : "");
  f->res->path = DF_FETCH_PATH_PULL;
  emit (f, DF_FETCH_EVENT_START, o->urls->pdata[0], NULL);
  return df_fetch_pull_fallback (f->repo, o, f->cancellable, error);
}

gboolean
df_fetch (OstreeRepo *repo, const DfFetchOptions *o, DfFetchResult *result, GCancellable *cancellable, GError **error)
{
  DfFetchResult local_res;
  DfFetchResult *res = result ? result : &local_res;
  memset (res, 0, sizeof *res);
  if (!validate_options (o, error))
    return FALSE;
  if (o->allow_unsigned && o->require_signatures)
    return df_throw (error, DF_ERROR_INVALID_ARGUMENT, "signatures cannot be both required and optional");
  df_autofd lock = df_repo_lock (repo, o->lock_timeout, fetch_lock_waiting, (gpointer)o, cancellable, error);
  if (lock < 0)
    return FALSE;
  /* A run killed during its fallback pull left that pull's remote behind. */
  df_fetch_pull_forget_remote (repo);
  g_strlcpy (res->commit, o->commit, sizeof res->commit);

  g_autofree char *from = NULL;
  g_autoptr (GError) from_error = NULL;
  if (o->from && !ostree_repo_resolve_rev (repo, o->from, FALSE, &from, &from_error))
    return df_throw (error, DF_ERROR_INVALID_ARGUMENT, "the from-commit %s is not in the repository", o->from);
  if (from == NULL && o->ref)
    {
      g_autoptr (GError) ignored = NULL;
      ostree_repo_resolve_rev (repo, o->ref, TRUE, &from, &ignored);
    }
  if (from && !commit_present (repo, from))
    g_clear_pointer (&from, g_free);

  if (commit_present (repo, o->commit))
    {
      res->path = DF_FETCH_PATH_PRESENT;
      g_autoptr (GVariant) commit = NULL;
      if (!ostree_repo_load_commit (repo, o->commit, &commit, NULL, error)
          || !df_check_downgrade (repo, o->ref, o->commit, commit, o->allow_downgrade, error))
        return FALSE;
      return set_ref (repo, o->ref, o->commit, cancellable, error);
    }

  Fetch fs = { 0 };
  Fetch *f = &fs;
  fetch_init (f, repo, o, res, cancellable);
  if (!df_signature_policy_init (&f->policy, o->trusted_keys,
                                 o->require_signatures || (o->trusted_keys != NULL && !o->allow_unsigned), error))
    {
      fetch_clear (f);
      return FALSE;
    }

  gboolean ok;
  for (;;)
    {
      g_autoptr (GError) local = NULL;
      f->suspect = -1;
      /* Nothing an attempt that failed its check chose stands. */
      res->path = 0;
      res->from[0] = '\0';
      ok = discover_and_fetch (f, from, &local);
      if (ok || f->suspect < 0)
        {
          if (!ok)
            g_propagate_error (error, g_steal_pointer (&local));
          break;
        }
      /* A small file failed its check: as for a part that fails its hash,
       * that mirror is demoted and discovery starts over on the next. */
      demote (f, f->suspect, local->message);
      if (current_mirror (f) < 0)
        {
          g_set_error (error, local->domain, local->code, "%s (every mirror failed)", local->message);
          break;
        }
    }
  res->bytes_downloaded = f->bytes_downloaded;
  if (!ok)
    forget_if_final (f, error ? *error : NULL);
  fetch_clear (f);
  return ok;
}
