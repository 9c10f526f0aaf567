/* One HTTP transfer: one libcurl easy handle fetching one request.
 *
 * A transfer knows nothing of the fetch that runs it. It takes a request
 * (URL, byte range, expected file size, validator) and a sink, the way
 * curl's client writers take a response: the sink is told once whether the
 * checked reply is taken (the asked range, or the whole file), and then
 * receives the body's bytes at their offsets in the file. Every header is
 * judged by dfi_http_check_reply(); no reply may deliver more bytes than it
 * must. The transfer runs in a multi handle its owner drives (or alone
 * with dfi_transfer_perform()); dfi_transfer_judge() says what its end
 * means. */
#pragma once

#include <curl/curl.h>
#include <gio/gio.h>

#include "df-common.h"

/* The network settings a transfer obeys. Strings are borrowed. */
/* A rate cap shared by transfers (one thread's): bytes they may take now,
 * refilled at @rate a second, held to a quarter second of it (and at least
 * one chunk of what libcurl hands over at once). */
typedef struct
{
  guint64 rate;
  double tokens;
  gint64 at; /* monotonic µs of the last refill */
} DfRateBucket;

typedef struct
{
  guint connect_timeout;                 /* s */
  guint low_speed_limit, low_speed_time; /* B/s below which, for so many s, a transfer is cut */
  guint min_rate;                        /* B/s on average over the transfer; 0: no deadline */
  DfRateBucket *bucket;                  /* a rate cap the transfers share, or NULL (dfi_transfer_pace()) */
  const char *ca_file, *cert, *key, *pin;
  const char *proxy;        /* NULL: libcurl's environment variables */
  gboolean insecure;        /* the server's certificate is not checked */
  const GPtrArray *headers; /* extra request headers, name and value in turn; may be NULL */
} DfNetConfig;

/* What to fetch: bytes [@off, @off + @len) of @url's file of @file_size
 * bytes (G_MAXUINT64: unknown) with a Range header when @ranged, else the
 * whole file, of which @len bounds an unknown size. With @if_range, the
 * request carries "If-Range: @if_range". @name names the file in
 * messages ("part 3"). With @fresh, the request asks every cache on the
 * way for a fresh copy ("Cache-Control: no-cache"). With @head, only the
 * headers are asked for (HEAD): dfi_transfer_get_declared_size() then
 * says the file's size. Strings are copied. */
typedef struct
{
  const char *url;
  const char *name;
  gboolean ranged;
  guint64 off, len, file_size;
  const char *if_range;
  gboolean fresh;
  gboolean head;
} DfTransferRequest;

typedef enum
{
  DF_SINK_OK,     /* taken */
  DF_SINK_MOOT,   /* the reply is not wanted (another brings the same bytes): stop, no fault */
  DF_SINK_STALE,  /* the request is out of date (the file started over): stop, no fault */
  DF_SINK_FAILED, /* writing failed; the error says why */
} DfSinkAnswer;

/* Where a transfer's reply goes. Every callback runs in the thread that
 * drives the transfer. */
typedef struct
{
  /* The ETag a reply must repeat if it names one, or NULL; asked when the
   * final reply's headers are in, not when the request is made, since
   * another reply may have taught the sink the file's ETag meanwhile.
   * May be NULL. */
  const char *(*validator) (gpointer data);
  /* The reply's headers passed the checks: it carries the whole file
   * (@whole) or the asked range; @etag is its ETag ("" when none). OK,
   * MOOT or STALE. */
  DfSinkAnswer (*reply) (gpointer data, gboolean whole, const char *etag);
  /* @len body bytes for offset @at of the file. OK, STALE, or FAILED
   * with @error set. */
  DfSinkAnswer (*write) (gpointer data, guint64 at, const void *buf, gsize len, GError **error);
  gpointer data;
} DfTransferSink;

typedef struct _DfTransfer DfTransfer;

/* A new transfer of @req into @sink (copied; its data is borrowed), held
 * to @net (borrowed for the transfer's life) and stopped when @cancellable
 * (borrowed, may be NULL) is cancelled. Aborts when libcurl cannot create
 * a handle (out of memory). Free with dfi_transfer_free(). */
DfTransfer *dfi_transfer_new (const DfNetConfig *net, const DfTransferRequest *req, const DfTransferSink *sink,
                              GCancellable *cancellable);
/* Frees @t (NULL is fine); it must not be in a multi handle. */
void dfi_transfer_free (DfTransfer *t);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (DfTransfer, dfi_transfer_free)

/* The easy handle, to add to and remove from a multi handle. */
CURL *dfi_transfer_get_easy (DfTransfer *t);
/* The transfer that owns @easy. */
DfTransfer *dfi_transfer_from_easy (CURL *easy);
/* The sink's data. */
gpointer dfi_transfer_get_sink_data (DfTransfer *t);
/* The final reply's status (0 before one), and the body bytes taken. */
int dfi_transfer_get_status (DfTransfer *t);
guint64 dfi_transfer_get_received (DfTransfer *t);
/* The size the final reply's Content-Length declares, or G_MAXUINT64 when
 * it declares none (a HEAD's answer to "how big is this file"). */
guint64 dfi_transfer_get_declared_size (DfTransfer *t);

/* Runs @t to its end in @multi, alone; returns libcurl's result. */
CURLcode dfi_transfer_perform (DfTransfer *t, CURLM *multi);
/* Under a rate cap (DfNetConfig.bucket) a transfer that finds the bucket
 * empty pauses (libcurl holds the bytes, TCP's window holds the server);
 * this resumes it once the bucket has refilled. Call it for every transfer
 * in flight each time round the loop that drives them, starting with a
 * different one each time, so that none starves. */
void dfi_transfer_pace (DfTransfer *t);

typedef enum
{
  DF_TRANSFER_OK,
  DF_TRANSFER_RETRY,   /* worth another attempt on the same server */
  DF_TRANSFER_DEMOTE,  /* this server cannot serve it */
  DF_TRANSFER_FATAL,   /* nothing to retry (local disk, cancelled) */
  DF_TRANSFER_CHANGED, /* the file changed on the server */
} DfTransferOutcome;

/* What @t's end with libcurl's @rc means. On anything but OK (and FATAL
 * by cancellation), *@msg is a newly allocated reason and *@kind its error
 * code (DF_ERROR_NETWORK, DF_ERROR_TIMEOUT, or the sink's I/O code). Not
 * for a transfer its sink stopped (MOOT or STALE). */
DfTransferOutcome dfi_transfer_judge (DfTransfer *t, CURLcode rc, DfError *kind, char **msg);

/* The pause before attempt @attempts + 1: 250 ms doubling up to 8 s. */
gint64 dfi_transfer_backoff_us (guint attempts);
