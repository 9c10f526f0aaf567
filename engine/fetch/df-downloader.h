/* The downloader: mirrors, the multi handle, scheduling, retries, blame
 * and demotion, progress events.
 *
 * One thread (the caller's) runs libcurl's multi interface and only moves
 * bytes: small files (indexes, superblocks) into memory, and ranges of the
 * part store's files into the store. A part whose ranges are all in is
 * checked by the store; the downloader blames the mirror that served a bad
 * part alone (a part assembled from several, or resumed, starts over
 * without blame) and hands verified parts to its consumer. A mirror that
 * fails (answers wrongly, or runs out of retries) is demoted: later
 * requests go to the next one. */
#pragma once

#include "df-fetch-options.h"
#include "df-part-store.h"
#include "df-transfer.h"

/* Who takes verified parts. */
typedef struct
{
  /* @p is DONE (or found DONE when added): hand it on. FALSE with @error
   * stops the download. May be NULL. */
  gboolean (*part_ready) (gpointer data, DfStorePart *p, GError **error);
  /* The consumer failed on its own: no use downloading more. */
  gboolean (*failed) (gpointer data);
  /* Parts applied so far, for progress events. May be NULL. */
  guint (*parts_applied) (gpointer data);
  gpointer data;
} DfPartConsumer;

typedef struct _DfDownloader DfDownloader;

/* A downloader for @o's mirrors and network settings (@o borrowed),
 * counting into @res (borrowed), stopped by @cancellable (borrowed). */
DfDownloader *dfi_downloader_new (const DfFetchOptions *o, DfFetchResult *res, GCancellable *cancellable);
void dfi_downloader_free (DfDownloader *d);

guint dfi_downloader_n_mirrors (DfDownloader *d);
const char *dfi_downloader_mirror (DfDownloader *d, guint m);
/* The first mirror not demoted, or -1. */
int dfi_downloader_current_mirror (DfDownloader *d);
/* Stops using mirror @m (at most once: a MIRROR_SWITCH event says @why). */
void dfi_downloader_demote (DfDownloader *d, guint m, const char *why);
/* Bytes received in this run. */
guint64 dfi_downloader_bytes (DfDownloader *d);
/* Bytes the parts added so far will fetch (before dfi_downloader_start()). */
guint64 dfi_downloader_bytes_planned (DfDownloader *d);
/* Counts @n more bytes received by a transfer that is not the downloader's
 * (libostree's pull) and reports progress as dfi_downloader_progress(). */
void dfi_downloader_count_external (DfDownloader *d, guint64 n);
/* Enters @phase (DF_FETCH_PHASE_DISCOVER at first, DOWNLOAD from
 * dfi_downloader_start()), with a PROGRESS event if it changed. */
void dfi_downloader_set_phase (DfDownloader *d, DfFetchPhase phase);
/* Emits event @type about @url (may be NULL) with @message (may be NULL). */
void dfi_downloader_emit (DfDownloader *d, DfFetchEventType type, const char *url, const char *message);
/* A progress event, at most ten a second unless @force. */
void dfi_downloader_progress (DfDownloader *d, gboolean force);

/* From now on, small files are asked for fresh: "Cache-Control: no-cache"
 * and a query no cache has seen, for caches that key on the URL (a CDN in
 * front of a static server, which ignores the query). */
void dfi_downloader_set_fresh (DfDownloader *d);

/* Fetches @rel (at most @cap bytes) from the first mirror that has it,
 * retrying and demoting as for parts, and says which in *@served_by.
 * Returns NULL with *@not_found when every mirror still in use answered
 * 404 or 410. */
GBytes *dfi_downloader_fetch_small (DfDownloader *d, const char *rel, guint64 cap, gboolean *not_found,
                                    guint *served_by, GError **error);

/* One small file of a batch: its body (at most @cap bytes) or, with
 * @head, only its size. */
typedef struct _DfSmallFile DfSmallFile;
struct _DfSmallFile
{
  const char *rel; /* relative to a mirror's base (borrowed) */
  gboolean head;
  gboolean optional; /* a hint: asked once, of one mirror; on failure done with no body, no mirror demoted */
  guint64 cap;
  gpointer user; /* the caller's */
  GBytes *bytes; /* out, not with @head: the body (the caller frees it) */
  guint64 size;  /* out, with @head: the size the server declares, G_MAXUINT64 when none */
  /*< private >*/
  gboolean done, in_flight;
  guint mirror, attempts, n404;
  gint64 ready_at;
};

/* Judges a batch file's body as soon as it is in (a hash check, so that a
 * wrong one stops the batch before more arrive); FALSE with @error stops
 * the batch. */
typedef gboolean (*DfSmallFileCheck) (DfSmallFile *f, gpointer data, GError **error);

/* Fetches @files side by side (up to four requests a connection the
 * options allow; HTTP/2 multiplexes them), each from the first mirror in
 * use, retried and demoted as dfi_downloader_fetch_small() does, then from
 * the next mirror. The bodies in flight take at most @held_max bytes
 * together by their caps (0: no bound; one is always let through); each
 * body in passes @check (may be NULL). Fails at the first file no mirror
 * serves (DF_ERROR_NOT_FOUND when every mirror in use answered 404 or
 * 410) or that @check refuses; the bodies fetched so far are the caller's
 * to free either way. For a downloader with no part in flight. */
gboolean dfi_downloader_fetch_many (DfDownloader *d, DfSmallFile *files, guint n, guint64 held_max,
                                    DfSmallFileCheck check, gpointer data, GError **error);

/* Downloads into @store (borrowed) the parts added next: those without a
 * path of their own are "@delta_rel/<index>" on the mirrors. Verified parts
 * go to @consumer (copied). */
void dfi_downloader_attach (DfDownloader *d, DfPartStore *store, const char *delta_rel, const DfPartConsumer *consumer);
/* Takes NEW part @p of the store: UNNEEDED unless @needed; else looks it
 * up in the store and queues its missing ranges (or finishes it when none
 * is missing). FALSE with @error when the consumer refuses a part found
 * verified. */
gboolean dfi_downloader_add_part (DfDownloader *d, DfStorePart *p, gboolean needed, GError **error);
/* Takes UNNEEDED part @p after all, as dfi_downloader_add_part() would
 * have (a rebuild failed and @p holds its plain encoding); the next
 * dfi_downloader_run() downloads it. */
gboolean dfi_downloader_want_part (DfDownloader *d, DfStorePart *p, GError **error);
/* The first error that stopped the download, or NULL; owned by @d. */
const GError *dfi_downloader_get_error (DfDownloader *d);
/* Takes that error (NULL when none). */
GError *dfi_downloader_steal_error (DfDownloader *d);
/* The download stopped because the consumer failed. */
gboolean dfi_downloader_consumer_failed (DfDownloader *d);
/* Starts transfers for ready ranges while connections are free, as each
 * turn of dfi_downloader_run() does: in queue order, on the first mirror
 * not demoted, skipping ranges done meanwhile and keeping those backing
 * off (or all, when every mirror is demoted) queued. */
void dfi_downloader_schedule (DfDownloader *d);
/* The transfers in flight, and the range and mirror of the @i-th (for
 * tests and diagnostics). */
guint dfi_downloader_n_in_flight (DfDownloader *d);
const DfStoreRange *dfi_downloader_in_flight (DfDownloader *d, guint i, guint *mirror);
/* Every part is added: counts the bytes received so far (indexes,
 * superblock) in the run's total and emits the START event. */
void dfi_downloader_start (DfDownloader *d);
/* What the transfer loop does when one of @p's transfers has ended: once
 * every range is in and none is being written, the part is checked and
 * handed to the consumer, or else blamed and started again (a part one
 * mirror served alone demotes that mirror; a part from several mirrors,
 * or resumed from an earlier run, blames none; after more failures than
 * mirrors plus two, or with every mirror demoted, the fetch fails with
 * DF_ERROR_CORRUPT). Called by the loop; public for the unit tests. */
void dfi_downloader_settle_part (DfDownloader *d, DfStorePart *p);
/* Runs until every added part is settled, an error stops it (see
 * dfi_downloader_get_error()) or the consumer fails. Leaves what is in
 * flight for a resume and makes it durable. */
void dfi_downloader_run (DfDownloader *d);
