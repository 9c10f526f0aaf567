/* One fetch run: what the
 * orchestration of the native and stock paths shares. The downloader moves
 * bytes into the part store; the apply (a session for a native delta, a
 * thread for a stock one) takes the parts it verifies. */
#pragma once

#include "df-apply-session.h"
#include "df-apply-stock.h"
#include "df-downloader.h"

typedef struct
{
  OstreeRepo *repo;
  const DfFetchOptions *o;
  GCancellable *cancellable;
  GCancellable *own_cancellable;
  DfFetchResult *res;
  DfDownloader *dl;
  DfPartStore store;
  /* The delta */
  DfSuperblock *sb;         /* owned by the session once it exists */
  DfStockSuperblock *stock; /* or a stock delta, applied in a thread as parts arrive */
  gboolean stock_borrowed;  /* a delta directory's, owned by its DfDelta */
  DfSignaturePolicy policy;
  guint *fallback_part; /* stock: per fallback object, its entry in the store or G_MAXUINT */
  gint stock_failed;    /* stock: the apply thread failed (atomic) */
  DfApplySession *session;
  /* The mirror whose small files failed their check: discovery starts
   * over without it. -1: none. */
  int suspect;
  DfFetchFrom from_how; /* where the device's from-commit came from */
  DfFetchPlan *plan;    /* a plan only (df_fetch_plan()): nothing written, no part downloaded */
} DfFetchRun;

/* Sets up @f for a fetch of @o into @repo counting into @res (all
 * borrowed); @cancellable may be NULL. */
void dfi_fetch_run_init (DfFetchRun *f, OstreeRepo *repo, const DfFetchOptions *o, DfFetchResult *res,
                         GCancellable *cancellable);
void dfi_fetch_run_clear (DfFetchRun *f);
/* Whether the download stays within the caller's byte limit
 * (DF_ERROR_TOO_LARGE), and the file system holds what the parts still to
 * come need: their missing bytes, what they decode to, a stock delta's
 * staging. */
gboolean dfi_fetch_run_check_space (DfFetchRun *f, GError **error);
/* The delta's published size (superblock and parts), @published, is the
 * one the caller expects, if it gave one (DF_ERROR_UNTRUSTED). */
gboolean dfi_fetch_run_check_expected (DfFetchRun *f, guint64 published, GError **error);
/* A plan's end: the parts of @f->store (initialised, not looked up) whose
 * @wanted entry is set are what would be downloaded, less what the store
 * already holds (and a stock delta's staging is needed on disk). Fills
 * @f->plan and fails as the check before the download would
 * (dfi_fetch_run_check_space()). */
gboolean dfi_fetch_run_plan_parts (DfFetchRun *f, const guint8 *wanted, GError **error);

/* Fetches and applies the stock delta @f->stock (parsed from @sb_bytes when
 * NULL): its parts from @relpath on the mirrors, or from @local_dfd when
 * >= 0 (then only the missing fallback objects come from the mirrors),
 * applied in a thread as parts arrive. */
gboolean dfi_fetch_run_stock (DfFetchRun *f, GBytes *sb_bytes, const char *relpath, int local_dfd, GError **error);
