/* One HTTP transfer (see df-transfer.h). */
#include "df-transfer.h"

#include "df-http.h"

struct _DfTransfer
{
  CURL *easy;
  const DfNetConfig *net;
  GCancellable *cancellable;
  DfTransferSink sink;
  char *url, *name;
  gboolean ranged, head;
  guint64 off, len, file_size;
  struct curl_slist *headers;
  /* The response */
  int status;
  char content_range[128], etag[256], content_length[32], content_encoding[64];
  gboolean headers_checked;
  gboolean whole;   /* the reply is the whole file (asked for, or Range ignored) */
  guint64 expect;   /* body bytes the reply must deliver */
  guint64 received; /* body bytes taken */
  /* A verdict of the callbacks, which abort the transfer */
  DfError verdict;
  char *verdict_msg;
  gboolean local_failure; /* the sink failed to store bytes */
  gboolean file_changed;
  gboolean paused; /* by the rate cap, until dfi_transfer_pace() */
  char errbuf[CURL_ERROR_SIZE];
};

static void
refill (DfRateBucket *b)
{
  gint64 now = g_get_monotonic_time ();
  double burst = MAX ((double)b->rate / 4, (double)CURL_MAX_WRITE_SIZE);
  b->tokens = b->at == 0 ? burst : MIN (b->tokens + (double)(now - b->at) * b->rate / G_USEC_PER_SEC, burst);
  b->at = now;
}

void
dfi_transfer_pace (DfTransfer *t)
{
  if (!t->paused)
    return;
  refill (t->net->bucket);
  if (t->net->bucket->tokens <= 0)
    return;
  t->paused = FALSE;
  /* libcurl may hand the held bytes over (on_write) before this returns. */
  curl_easy_pause (t->easy, CURLPAUSE_CONT);
}

void
dfi_transfer_free (DfTransfer *t)
{
  if (t == NULL)
    return;
  if (t->easy)
    curl_easy_cleanup (t->easy);
  curl_slist_free_all (t->headers);
  g_free (t->url);
  g_free (t->name);
  g_free (t->verdict_msg);
  g_free (t);
}

static gboolean refuse (DfTransfer *t, DfError code, const char *fmt, ...) G_GNUC_PRINTF (3, 4);

static gboolean
refuse (DfTransfer *t, DfError code, const char *fmt, ...)
{
  if (t->verdict == 0)
    {
      va_list ap;
      va_start (ap, fmt);
      t->verdict = code;
      t->verdict_msg = g_strdup_vprintf (fmt, ap);
      va_end (ap);
    }
  return FALSE;
}

/* The final reply's headers are in: is it the answer to what was asked,
 * and does the sink take it? */
static gboolean
check_reply (DfTransfer *t)
{
  DfHttpAsk ask = { .ranged = t->ranged, .off = t->off, .len = t->len, .file_size = t->file_size, .name = t->name };
  ask.validator = t->sink.validator ? t->sink.validator (t->sink.data) : NULL;
  DfHttpReply reply = { .status = t->status,
                        .content_range = t->content_range,
                        .content_length = t->content_length,
                        .content_encoding = t->content_encoding,
                        .etag = t->etag };
  g_autofree char *why = NULL;
  switch (dfi_http_check_reply (&ask, &reply, &t->expect, &why))
    {
    case DF_HTTP_REPLY_STATUS:
      return FALSE; /* reported from the status */
    case DF_HTTP_REPLY_CHANGED:
      t->file_changed = TRUE;
      return refuse (t, DF_ERROR_NETWORK, "%s", why);
    case DF_HTTP_REPLY_BAD:
      return refuse (t, DF_ERROR_NETWORK, "%s", why);
    case DF_HTTP_REPLY_WHOLE:
      t->whole = TRUE;
      break;
    case DF_HTTP_REPLY_RANGE:
      break;
    }
  return t->sink.reply (t->sink.data, t->whole, t->etag) == DF_SINK_OK;
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
  DfTransfer *t = data;
  gsize len = size * n;
  int status = dfi_http_parse_status_line (line, len);
  if (status >= 0)
    {
      /* A new response (after a redirect or 100-continue): forget the last. */
      t->status = status;
      t->content_range[0] = t->etag[0] = t->content_length[0] = t->content_encoding[0] = '\0';
      t->headers_checked = FALSE;
      t->whole = FALSE;
      t->expect = 0;
      return len;
    }
  if (len <= 2 && (line[0] == '\r' || line[0] == '\n'))
    {
      if (t->status < 200 || (t->status >= 300 && t->status < 400))
        return len; /* interim or redirect: libcurl goes on */
      t->headers_checked = TRUE;
      sanitize (t->content_range);
      sanitize (t->etag);
      sanitize (t->content_length);
      sanitize (t->content_encoding);
      return check_reply (t) ? len : 0;
    }
  if (!dfi_http_header_value (line, len, "Content-Range", t->content_range, sizeof t->content_range)
      && !dfi_http_header_value (line, len, "ETag", t->etag, sizeof t->etag)
      && !dfi_http_header_value (line, len, "Content-Length", t->content_length, sizeof t->content_length))
    dfi_http_header_value (line, len, "Content-Encoding", t->content_encoding, sizeof t->content_encoding);
  return len;
}

static size_t
on_write (char *data, size_t size, size_t n, void *user)
{
  DfTransfer *t = user;
  gsize len = size * n;
  if (!t->headers_checked)
    return refuse (t, DF_ERROR_NETWORK, "body without a checked response"), 0;
  if (t->head)
    return refuse (t, DF_ERROR_NETWORK, "a body in reply to HEAD"), 0;
  /* Endless data stops here, whatever the headers said. */
  if (len > t->expect - t->received)
    return refuse (t, DF_ERROR_NETWORK, "server sent more than the %" G_GUINT64_FORMAT " bytes expected", t->expect), 0;
  if (t->net->bucket)
    {
      refill (t->net->bucket);
      if (t->net->bucket->tokens <= 0)
        {
          /* libcurl holds these bytes and the server waits on TCP's window. */
          t->paused = TRUE;
          return CURL_WRITEFUNC_PAUSE;
        }
      t->net->bucket->tokens -= (double)len;
    }
  g_autoptr (GError) error = NULL;
  guint64 at = (t->whole ? 0 : t->off) + t->received;
  switch (t->sink.write (t->sink.data, at, data, len, &error))
    {
    case DF_SINK_OK:
      t->received += len;
      return len;
    case DF_SINK_FAILED:
      t->local_failure = TRUE;
      refuse (t, error ? (DfError)error->code : DF_ERROR_IO, "%s", error ? error->message : "storing bytes failed");
      return 0;
    default:
      return 0;
    }
}

static int
on_progress (void *data, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
  DfTransfer *t = data;
  return g_cancellable_is_cancelled (t->cancellable) ? 1 : 0;
}

/* Deadline of a transfer of @len bytes: at the minimum average rate, plus
 * the time a connection and a stall may take. */
static long
deadline_ms (const DfNetConfig *net, guint64 len)
{
  if (net->min_rate == 0)
    return 0; /* no deadline: the low-speed limit alone */
  guint64 ms = (guint64)(net->connect_timeout + net->low_speed_time) * 1000;
  ms += len / net->min_rate * 1000 + (len % net->min_rate) * 1000 / net->min_rate;
  return (long)MIN (ms, (guint64)G_MAXINT32);
}

static void
set_network (CURL *e, const DfNetConfig *net, const char *url, guint64 len)
{
  curl_easy_setopt (e, CURLOPT_PROTOCOLS_STR, "http,https");
  /* An https mirror never redirects to plain http (its CA and pin would not
   * apply there). */
  curl_easy_setopt (e, CURLOPT_REDIR_PROTOCOLS_STR, g_str_has_prefix (url, "https:") ? "https" : "http,https");
  /* A proxy's "200 Connection established" is not the server's answer. */
  curl_easy_setopt (e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
  curl_easy_setopt (e, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt (e, CURLOPT_MAXREDIRS, (long)DF_FETCH_MAX_REDIRECTS);
  curl_easy_setopt (e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (e, CURLOPT_CONNECTTIMEOUT, (long)net->connect_timeout);
  curl_easy_setopt (e, CURLOPT_LOW_SPEED_LIMIT, (long)net->low_speed_limit);
  curl_easy_setopt (e, CURLOPT_LOW_SPEED_TIME, (long)net->low_speed_time);
  curl_easy_setopt (e, CURLOPT_TIMEOUT_MS, deadline_ms (net, len));
  curl_easy_setopt (e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  /* No CURLOPT_PIPEWAIT: it would hold every transfer to a host until its
   * first response, so a mirror that stalls before its headers would be
   * probed one request at a time. HTTP/2 multiplexes anyway once the first
   * connection is up. */
  curl_easy_setopt (e, CURLOPT_USERAGENT, "deltafetch/1");
  if (net->ca_file)
    curl_easy_setopt (e, CURLOPT_CAINFO, net->ca_file);
  if (net->cert)
    curl_easy_setopt (e, CURLOPT_SSLCERT, net->cert);
  if (net->key)
    curl_easy_setopt (e, CURLOPT_SSLKEY, net->key);
  if (net->pin)
    curl_easy_setopt (e, CURLOPT_PINNEDPUBLICKEY, net->pin);
  if (net->proxy)
    curl_easy_setopt (e, CURLOPT_PROXY, net->proxy);
  if (net->insecure)
    {
      curl_easy_setopt (e, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt (e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
}

DfTransfer *
dfi_transfer_new (const DfNetConfig *net, const DfTransferRequest *req, const DfTransferSink *sink,
                  GCancellable *cancellable)
{
  DfTransfer *t = g_new0 (DfTransfer, 1);
  t->net = net;
  t->cancellable = cancellable;
  t->sink = *sink;
  t->url = g_strdup (req->url);
  t->name = g_strdup (req->name ? req->name : req->url);
  t->ranged = req->ranged;
  t->off = req->off;
  t->len = req->len;
  t->file_size = req->file_size;
  t->head = req->head;
  CURL *e = t->easy = curl_easy_init ();
  if (e == NULL)
    g_error ("out of memory creating a transfer");
  curl_easy_setopt (e, CURLOPT_URL, t->url);
  curl_easy_setopt (e, CURLOPT_PRIVATE, t);
  /* A HEAD moves no body: its deadline is the connection's and a stall's. */
  set_network (e, net, t->url, req->head ? 0 : req->len);
  if (req->head)
    curl_easy_setopt (e, CURLOPT_NOBODY, 1L);
  curl_easy_setopt (e, CURLOPT_ERRORBUFFER, t->errbuf);
  curl_easy_setopt (e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt (e, CURLOPT_HEADERDATA, t);
  curl_easy_setopt (e, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt (e, CURLOPT_WRITEDATA, t);
  curl_easy_setopt (e, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt (e, CURLOPT_XFERINFODATA, t);
  curl_easy_setopt (e, CURLOPT_NOPROGRESS, 0L);
  if (req->ranged)
    {
      char r[64];
      g_snprintf (r, sizeof r, "%" G_GUINT64_FORMAT "-%" G_GUINT64_FORMAT, req->off, req->off + req->len - 1);
      curl_easy_setopt (e, CURLOPT_RANGE, r);
    }
  if (req->if_range)
    {
      g_autofree char *h = g_strdup_printf ("If-Range: %s", req->if_range);
      t->headers = curl_slist_append (t->headers, h);
    }
  for (guint i = 0; net->headers && i + 1 < net->headers->len; i += 2)
    {
      g_autofree char *h
          = g_strdup_printf ("%s: %s", (char *)net->headers->pdata[i], (char *)net->headers->pdata[i + 1]);
      t->headers = curl_slist_append (t->headers, h);
    }
  if (req->fresh)
    {
      t->headers = curl_slist_append (t->headers, "Cache-Control: no-cache");
      t->headers = curl_slist_append (t->headers, "Pragma: no-cache");
    }
  if (t->headers)
    curl_easy_setopt (e, CURLOPT_HTTPHEADER, t->headers);
  return t;
}

CURL *
dfi_transfer_get_easy (DfTransfer *t)
{
  return t->easy;
}

DfTransfer *
dfi_transfer_from_easy (CURL *easy)
{
  DfTransfer *t = NULL;
  curl_easy_getinfo (easy, CURLINFO_PRIVATE, (char **)&t);
  return t;
}

gpointer
dfi_transfer_get_sink_data (DfTransfer *t)
{
  return t->sink.data;
}

int
dfi_transfer_get_status (DfTransfer *t)
{
  return t->status;
}

guint64
dfi_transfer_get_received (DfTransfer *t)
{
  return t->received;
}

guint64
dfi_transfer_get_declared_size (DfTransfer *t)
{
  guint64 n;
  if (!t->content_length[0] || !dfi_http_parse_u63 (t->content_length, strlen (t->content_length), &n))
    return G_MAXUINT64;
  return n;
}

CURLcode
dfi_transfer_perform (DfTransfer *t, CURLM *multi)
{
  curl_multi_add_handle (multi, t->easy);
  int running = 1;
  CURLcode rc = CURLE_OK;
  while (running)
    {
      dfi_transfer_pace (t);
      if (curl_multi_perform (multi, &running) != CURLM_OK)
        break;
      int left;
      CURLMsg *m;
      while ((m = curl_multi_info_read (multi, &left)))
        if (m->msg == CURLMSG_DONE)
          rc = m->data.result;
      if (running)
        curl_multi_poll (multi, NULL, 0, 200, NULL);
    }
  curl_multi_remove_handle (multi, t->easy);
  return rc;
}

static char *
curl_reason (DfTransfer *t, CURLcode rc)
{
  return g_strdup_printf ("%s", t->errbuf[0] ? t->errbuf : curl_easy_strerror (rc));
}

/* What libcurl's @rc means once the callbacks had nothing to say. */
static DfTransferOutcome
judge_curl (DfTransfer *t, CURLcode rc, DfError *kind, char **msg)
{
  switch (rc)
    {
    case CURLE_OK:
      /* A file of known size must arrive whole; @expect bounds one of
       * unknown size. */
      if (t->file_size != G_MAXUINT64 && !t->head && t->received != t->expect)
        {
          *msg = g_strdup_printf ("body ended after %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT " bytes", t->received,
                                  t->expect);
          return DF_TRANSFER_RETRY;
        }
      return DF_TRANSFER_OK;
    case CURLE_HTTP_RETURNED_ERROR:
      *msg = g_strdup_printf ("HTTP status %d", t->status);
      if (t->status == 404 || t->status == 410 || t->status == 403 || t->status == 401)
        return DF_TRANSFER_DEMOTE;
      return DF_TRANSFER_RETRY;
    case CURLE_OPERATION_TIMEDOUT:
      *kind = DF_ERROR_TIMEOUT;
      *msg = g_strdup_printf ("too slow: %s", t->errbuf[0] ? t->errbuf : curl_easy_strerror (rc));
      return DF_TRANSFER_RETRY;
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
      *msg = curl_reason (t, rc);
      return DF_TRANSFER_DEMOTE;
    case CURLE_OUT_OF_MEMORY:
      /* libcurl 7.88 refuses a header line longer than its cap this way,
       * with nothing in the error buffer, before on_header() sees it. (Its
       * cap on all headers together, 300 KiB, gives CURLE_RECV_ERROR and
       * says so in the error buffer.) */
      if (!t->headers_checked && !t->errbuf[0])
        {
          *msg = g_strdup_printf ("a reply header line exceeded %d bytes", CURL_MAX_HTTP_HEADER);
          return DF_TRANSFER_DEMOTE;
        }
      *msg = curl_reason (t, rc);
      return DF_TRANSFER_RETRY;
    default:
      *msg = curl_reason (t, rc);
      return DF_TRANSFER_RETRY;
    }
}

DfTransferOutcome
dfi_transfer_judge (DfTransfer *t, CURLcode rc, DfError *kind, char **msg)
{
  *kind = DF_ERROR_NETWORK;
  if (g_cancellable_is_cancelled (t->cancellable))
    return DF_TRANSFER_FATAL;
  if (t->local_failure)
    {
      *kind = t->verdict;
      *msg = g_strdup (t->verdict_msg);
      return DF_TRANSFER_FATAL;
    }
  if (t->file_changed)
    {
      *msg = g_strdup (t->verdict_msg);
      return DF_TRANSFER_CHANGED;
    }
  if (t->verdict)
    {
      *msg = g_strdup (t->verdict_msg);
      return DF_TRANSFER_DEMOTE; /* a server that answers wrongly once will again */
    }
  if (rc == CURLE_OK && t->status != 200 && t->status != 206)
    rc = CURLE_HTTP_RETURNED_ERROR;
  if (rc == CURLE_WRITE_ERROR && t->status != 200 && t->status != 206 && t->status > 0)
    rc = CURLE_HTTP_RETURNED_ERROR;
  return judge_curl (t, rc, kind, msg);
}

gint64
dfi_transfer_backoff_us (guint attempts)
{
  gint64 us = 250 * 1000;
  for (guint i = 1; i < attempts && us < 8 * G_USEC_PER_SEC; i++)
    us *= 2;
  return MIN (us, 8 * G_USEC_PER_SEC);
}
