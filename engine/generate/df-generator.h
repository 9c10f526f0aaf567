/* The generator's shared state: what the phases of df_generate() (walk,
 * plan, encode and pack, publish) and the encode and compress workers all
 * see. One DfGenerator per df_generate() call, on its stack. */
#pragma once

#include "df-common.h"
#include "df-generate-options.h"
#include "df-gen-encode.h"
#include "df-gen-pack.h"
#include "df-gen-rebuild.h"

struct _DfGenerator
{
  OstreeRepo *repo;
  const DfGenerateOptions *opts;
  guint jobs;
  GCancellable *cancellable;
  int out_dfd;
  /* With no out_dir: the delta's place in the repository, and the
   * temporary directory written first (NULL once renamed). */
  char *final_rel;
  char *tmp_rel;
  /* With an out_dir: whether this run made the directory, and whether the
   * delta in it is complete; else what was written goes again at close. */
  gboolean out_created;
  gboolean published;

  GMutex lock;
  GCond cond;
  GError *error;            /* first error of any worker */
  GThreadPool *encode_pool; /* during the encode phase */

  /* Parts, filled in by compress workers. */
  GArray *parts; /* DfPart */
  guint parts_pending;

  /* Rebuilt objects (NULL with DF_VARIANTS_PLAIN), and what the analysis
   * found: csum → DfGenRebuildResult* (under lock). */
  DfGenRebuild *rebuild;
  GHashTable *rebuilds;

  DfProgress progress;
  gint64 last_progress;
};

/* Records @error (transfer full) as the generation's error unless one is
 * already recorded, wakes every waiter and cancels the workers. Any thread. */
void dfi_gen_fail (DfGenerator *g, GError *error);

/* Whether a worker has failed. */
gboolean dfi_gen_failed (DfGenerator *g);

/* Calls the progress callback with a snapshot of g->progress, at most ten
 * times a second unless @force. Only from df_generate()'s thread. */
void dfi_gen_report (DfGenerator *g, gboolean force);
