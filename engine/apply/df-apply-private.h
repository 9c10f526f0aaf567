/* An apply in progress, fed part by part: what a fetcher drives. Parts may
 * arrive in any order and from any thread; content parts that arrive before
 * every metadata part wait (as files) until the trust walk is done, then
 * run on the worker pool, overlapping with further arrivals. */
#pragma once

#include "df-stock.h"
#include "df-superblock.h"

struct _DfApplyOptions
{
  char *commit;
  char *ref;
  guint64 memory;
  gboolean memory_explicit; /* set by the caller: rebuilds keep to it */
  guint jobs;
  gboolean allow_downgrade;
  char *trusted_keys;
  gboolean require_signatures;
  gboolean allow_unsigned;
  guint lock_timeout;
  DfProgressFunc progress;
  gpointer progress_data;
  GPtrArray *urls; /* for stock fallback objects */
};

typedef struct _DfApplySession DfApplySession;

/* Checks trust and the from-commit, sizes the worker pool from the memory
 * budget, opens the transaction. Takes ownership of @sb. @opts must
 * outlive the session. */
DfApplySession *df_apply_session_new (OstreeRepo *repo, DfSuperblock *sb, const DfApplyOptions *opts,
                                      GCancellable *cancellable, GError **error);
void df_apply_session_free (DfApplySession *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (DfApplySession, df_apply_session_free)

const DfSuperblock *df_apply_session_get_superblock (DfApplySession *s);
/* A snapshot of the session's progress (thread-safe). */
void df_apply_session_get_progress (DfApplySession *s, DfProgress *out);
/* TRUE once a worker has failed (finish reports the error). */
gboolean df_apply_session_failed (DfApplySession *s);
/* Cancelling it stops the workers (finish then reports the cancellation). */
GCancellable *df_apply_session_get_cancellable (DfApplySession *s);

/* FALSE when every object of content part @index is present already
 * (resume): a fetcher need not download it. */
gboolean df_apply_session_part_needed (DfApplySession *s, guint index);

/* Hands over part @index, a complete file @name under @dfd (the session
 * reads it later, so it must stay until finish). Thread-safe; adding a part
 * twice is harmless. Errors found later surface in finish. */
gboolean df_apply_session_add_part (DfApplySession *s, guint index, int dfd, const char *name, GError **error);

/* Waits for every part, checks the commit is complete, writes the commit
 * object and the ref, commits the transaction. */
gboolean df_apply_session_finish (DfApplySession *s, DfApplyResult *result, GError **error);

/* Bytes applying native part @p writes into the repository: its objects,
 * and the chunks of split objects and rebuilt objects twice (staged, then
 * the object made from them). Its payload size would undercount diff entries. */
guint64 df_part_output (const DfPart *p);

/* FALSE (DF_ERROR_NO_SPACE) when the filesystem of @dfd has less than
 * @need bytes free beyond the repository's min-free-space reserve. */
gboolean df_check_free_space (OstreeRepo *repo, int dfd, guint64 need, GError **error);

/* The signature policy @opts ask for: trusted keys require a signature
 * unless unsigned deltas are allowed explicitly. */
gboolean df_apply_signature_policy (const DfApplyOptions *opts, DfSignaturePolicy *out, GError **error);

/* Bytes a superblock may take while it is read and parsed: the memory
 * budget less DF_APPLY_RESERVE. */
guint64 df_apply_usable_memory (const DfApplyOptions *opts);

/* Reads superblock file @name under @dfd: at most DF_STOCK_SUPERBLOCK_MAX
 * bytes, and no more than @opts' memory budget leaves. */
GBytes *df_apply_read_superblock (int dfd, const char *name, const DfApplyOptions *opts, GError **error);

/* The checks made on a parsed superblock, whatever its format, before any
 * part is read: the options, the expected commit, rollback, and the
 * from-commit (@from_hex, NULL from scratch) present. The signature policy
 * was applied while parsing. */
gboolean df_apply_preflight (OstreeRepo *repo, const DfApplyOptions *opts, const char *to_hex, GBytes *commit_bytes,
                             const char *from_hex, GCancellable *cancellable, GError **error);

/* Removes what a failed apply of the delta whose superblock has SHA-256
 * @sb_sha256 staged in the repository's tmp/, when @error says a rerun
 * cannot succeed (the delta itself is bad: invalid, corrupt, untrusted,
 * or lacking a base); staging survives interruptions and local trouble
 * (cancellation, I/O, full disk, network), which a rerun resumes from. */
gboolean df_apply_failure_is_final (const GError *error);
void df_apply_forget_staging (OstreeRepo *repo, const guint8 sb_sha256[DF_SHA256_LEN]);

/* *@out: every object part @p of a stock delta makes is in @repo already
 * (resume), so the part need not be read, nor downloaded. */
gboolean df_stock_part_present (OstreeRepo *repo, const DfStockPart *p, GCancellable *c, gboolean *out, GError **error);

/* Where the parts and fallback objects of a stock delta come from when a
 * fetcher is still downloading them. Called from the apply's threads.
 * @wait returns once part @index is in place as a file, or FALSE with
 * @error to give up. @fallback returns a file holding fallback object
 * @index (a verified `.filez`, or the object's bytes for a dirtree or
 * dirmeta), an fd the caller closes, and its size; either may be NULL. */
typedef gboolean (*DfStockPartWaitFunc) (guint index, gpointer data, GError **error);
typedef gboolean (*DfStockFallbackFunc) (guint index, int *out_fd, guint64 *out_size, gpointer data, GError **error);

typedef struct
{
  DfStockPartWaitFunc wait;
  DfStockFallbackFunc fallback;
  gpointer data;
  /* The parts are in the fetcher's own store, written and hashed by it:
   * they need no private copy before they are decoded. */
  gboolean private_parts;
} DfStockFeed;

/* Applies the stock OSTree delta in @delta_dfd whose superblock @sb was
 * parsed (engine/apply/df-apply-stock.c). With @feed, parts are waited
 * for before they are read, so the apply runs while they arrive, and
 * fallback objects the repository lacks come from it (without it they must
 * be present). */
gboolean df_apply_stock (OstreeRepo *repo, int delta_dfd, const DfStockSuperblock *sb, const DfApplyOptions *opts,
                         const DfStockFeed *feed, DfApplyResult *result, GCancellable *cancellable, GError **error);

/* Stock parts holding dirtree/dirmeta objects run first (for those alone,
 * before the trust walk). The content parts @parts (@n part indices) are
 * sorted into the order @decoders xz decoders take them. */
gboolean df_stock_part_has_metadata (const DfStockPart *p);
void df_stock_content_order (const DfStockSuperblock *sb, guint *parts, guint n, guint decoders);
/* How many xz decoders a stock apply of @sb runs within a memory budget of
 * @memory bytes (each needs 33 MiB, after the reserve, the rebuilding
 * thread and the parsed superblock): at least one, at most @jobs (0: one
 * per processor but one). */
guint df_stock_decoders (const DfStockSuperblock *sb, guint64 memory, guint jobs);
/* FALSE (DF_ERROR_INVALID_ARGUMENT) when not even one decoder fits. */
gboolean df_stock_check_memory (const DfStockSuperblock *sb, guint64 memory, GError **error);
/* Most disk space the decoded payloads of @sb take at once in the
 * repository's tmp/ while @decoders decoders run ahead of the rebuilding
 * (estimated from the parts' declared sizes), for free-space checks. */
guint64 df_stock_payload_staging (const DfStockSuperblock *sb, guint decoders);

/* The fallback objects of @sb that @repo lacks, as indices into
 * sb->fallbacks; their .filez bytes in *@bytes when not NULL. */
GArray *df_stock_missing_fallbacks (OstreeRepo *repo, const DfStockSuperblock *sb, guint64 *bytes, GCancellable *c,
                                    GError **error);

/* An offline apply of the stock delta in @delta_dfd (superblock @sb,
 * parsed) whose missing fallback objects are downloaded from @urls as they
 * are needed (engine/fetch/df-fetch.c). */
gboolean df_fetch_stock_fallbacks (OstreeRepo *repo, int delta_dfd, const DfStockSuperblock *sb, GPtrArray *urls,
                                   const DfApplyOptions *aopts, DfApplyResult *result, GCancellable *cancellable,
                                   GError **error);

/* Commits the transaction holding commit @to_hex and what it references.
 * libostree moves the staged objects into objects/ one by one, the commit
 * object possibly before its trees, so for that window the commit is
 * marked partial (as libostree's pull does): a kill then leaves an
 * unfinished commit that fsck skips and a rerun completes, not a commit
 * with missing trees. */
gboolean df_apply_commit_transaction (OstreeRepo *repo, const char *to_hex, GCancellable *c, GError **error);

/* Rollback protection: FALSE (DF_ERROR_DOWNGRADE) when @ref points at a
 * commit whose timestamp is later than that of @commit (checksum
 * @checksum), unless @allow. */
gboolean df_check_downgrade (OstreeRepo *repo, const char *ref, const char *checksum, GVariant *commit, gboolean allow,
                             GError **error);
