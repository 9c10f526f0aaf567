/* An apply of a native delta in progress, fed part by part: what a
 * fetcher drives, and what an offline apply drives from a delta directory.
 * Parts may arrive in any order and from any thread; content parts that
 * arrive before every metadata part wait (as files) until the trust walk is
 * done, then run on the worker pool, overlapping with further arrivals. */
#pragma once

#include "df-apply-options.h"
#include "df-superblock.h"

typedef struct _DfApplySession DfApplySession;

/* Checks trust and the from-commit, sizes the worker pool from the memory
 * budget, opens the transaction. Takes ownership of @sb. @opts must
 * outlive the session. */
DfApplySession *dfi_apply_session_new (OstreeRepo *repo, DfSuperblock *sb, const DfApplyOptions *opts,
                                       GCancellable *cancellable, GError **error);
void dfi_apply_session_free (DfApplySession *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (DfApplySession, dfi_apply_session_free)

const DfSuperblock *dfi_apply_session_get_superblock (DfApplySession *s);
/* A snapshot of the session's progress (thread-safe). */
void dfi_apply_session_get_progress (DfApplySession *s, DfProgress *out);
/* TRUE once a worker has failed (finish reports the error). */
gboolean dfi_apply_session_failed (DfApplySession *s);
/* Cancelling it stops the workers (finish then reports the cancellation). */
GCancellable *dfi_apply_session_get_cancellable (DfApplySession *s);

/* FALSE when every object of content part @index is present already
 * (resume): a fetcher need not download it. */
gboolean dfi_apply_session_part_needed (DfApplySession *s, guint index);
/* What a session of @sb would want, without one: the checks before any
 * part (dfi_apply_preflight(): trust, rollback, the from-commit, the
 * commit's signature), the memory budget, and in @wanted (one per part)
 * the parts it would ask for on a first run: every metadata part, the
 * content parts and the rebuild parts the rebuild plan keeps. Writes
 * nothing. */
gboolean dfi_apply_session_plan (OstreeRepo *repo, const DfSuperblock *sb, const DfApplyOptions *opts, guint8 *wanted,
                                 GCancellable *cancellable, GError **error);

/* Hands over part @index, a complete file @name under @dfd (the session
 * reads it later, so it must stay until finish). Thread-safe; adding a part
 * twice is harmless. Errors found later surface in finish. */
gboolean dfi_apply_session_add_part (DfApplySession *s, guint index, int dfd, const char *name, GError **error);

/* Waits until every part handed over is applied, and runs what waited for
 * parts that were not handed over. A rebuild that failed meanwhile makes
 * its plain encoding needed (dfi_apply_session_part_needed()): a fetcher
 * may then hand that over too before finish. */
void dfi_apply_session_drain (DfApplySession *s);
/* Why the first rebuild that failed did (newly allocated), or NULL. */
char *dfi_apply_session_fallback_reason (DfApplySession *s);

/* Waits for every part, checks the commit is complete, writes the commit
 * object and the ref, commits the transaction. */
gboolean dfi_apply_session_finish (DfApplySession *s, DfApplyResult *result, GError **error);
/* Has dfi_apply_session_finish() call @func (@data) on its thread once every
 * part is applied, before the final checks and the commit. */
void dfi_apply_session_on_commit (DfApplySession *s, GFunc func, gpointer data);

/* The caller gives up after @error: stops the workers, releases the
 * transaction, and removes what was staged when @error is final
 * (dfi_apply_failure_is_final()). The session is then only to be freed. */
void dfi_apply_session_abort (DfApplySession *s, const GError *error);

/* Bytes applying native part @p writes into the repository: its objects,
 * and the chunks of split objects and rebuilt objects twice (staged, then
 * the object made from them). Its payload size would undercount diff entries. */
guint64 dfi_part_output (const DfPart *p);
