/* The session's insides, shared by df-apply-session.c (the session: parts
 * handed over, the trust walk, dispatch, finish) and df-apply-worker.c
 * (what a worker does with one part). */
#pragma once

#include "df-apply-session.h"
#include "df-object-writer.h"
#include "df-rebuild-plan.h"
#include "df-trust.h"

struct _DfApplySession
{
  OstreeRepo *repo;
  DfSuperblock *sb;
  DfObjectWriter *writer;
  const DfApplyOptions *opts;
  GCancellable *cancellable;

  DfTrust *trust; /* the walk; its delta metadata is added under lock */

  /* Content workers, under lock */
  GMutex lock;
  GCond cond;
  GError *error;
  guint pending;
  DfProgress progress;
  gint64 last_report;
  guint parts_applied;

  /* Session */
  GCancellable *user_cancellable;
  gulong chained;
  guint64 usable, fixed, need; /* memory: the budget less the reserve, superblock and metadata parts, a worker */
  guint workers;
  GThreadPool *pool;
  guint meta_parts, meta_received;
  gboolean walk_done;
  GPtrArray *queued; /* PartTask* of content parts that arrived before the walk */
  guint8 *received;  /* per part */
  guint64 *work;     /* per part: what applying it costs, roughly (dfi_session_task_order()) */
  DfApplyResult result;
  char *state_dir;
  gboolean in_txn;
  gboolean complete_checked;      /* by the task after the walk, under lock */
  GFunc on_commit;                /* dfi_apply_session_on_commit() */
  gpointer on_commit_data;
  DfRebuildPlan *plan;            /* rebuild and alternative parts (format 3), under lock */
  GMutex rebuild_lock;            /* one rebuild at a time: the budget keeps room for one */
  guint64 raise_cap, raise_extra; /* the budget may rise to raise_cap to keep workers beside raise_extra */
  /* Rebuilds that fit the budget only alone: a rebuild part waits for the
   * parts being applied and none starts beside it (under lock). */
  guint gate_shared;   /* parts being applied */
  guint gate_waiting;  /* rebuild parts waiting to run alone */
  gboolean gate_alone; /* a rebuild part is running alone */
};
typedef struct _DfApplySession Apply;

/* A task for the worker pool: a content part, or (index G_MAXUINT) the
 * verified metadata objects. */
typedef struct
{
  Apply *a;
  guint index;
  int dfd; /* owned; -1 for the metadata task */
  char *name;
} PartTask;

/* df-apply-worker.c */

/* Frees @t, closing its part file. */
void dfi_session_task_free (PartTask *t);
/* The pool's order: the metadata task first, then the costliest part. */
gint dfi_session_task_order (gconstpointer x, gconstpointer y, gpointer data);
/* The pool's function: runs task @data (a PartTask, freed here), records
 * a failure in the session and cancels it, counts the part done. */
void dfi_session_worker (gpointer data, gpointer user_data);
/* Reads part @i from file @name under @dfd, checked against its size and
 * SHA-256, and decodes its payload. */
GBytes *dfi_session_read_part (Apply *a, guint i, int dfd, const char *name, GError **error);
/* Memory one worker needs for part @p. */
guint64 dfi_session_part_memory (const DfPart *p);

/* df-apply-session.c */

/* Whether every object the commit references and the delta does not carry
 * is in the repository (the delta's own objects are checked as written). */
gboolean dfi_session_check_complete (Apply *a, GError **error);
/* Part @index is done with: rebuild parts waiting for it may go. */
void dfi_session_part_finished (Apply *a, guint index);
