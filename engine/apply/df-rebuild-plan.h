/* Which rebuild parts (format 3) a device runs, and in what order.
 *
 * A rebuild part is used when this process runs the libraries it names and
 * its declared encoder memory fits the budget; otherwise the objects it
 * makes come from their alternative (plain) parts. A rebuild part waits
 * for the content parts it depends on (they write the objects its
 * programs read); alternative parts wait until every used rebuild part is
 * done, so they are applied only for the objects a rebuild did not make.
 *
 * Not thread-safe: the apply session calls it under its lock. Memory: a
 * few bytes per part, a pointer per dependency, the checksums of the
 * rebuilt objects. */
#pragma once

#include "df-superblock.h"

typedef struct _DfRebuildPlan DfRebuildPlan;

/* Decides for each rebuild part of @sb whether it is used: its libraries
 * are the ones this process runs, and its encoders (the memory it
 * declares) and DF_REBUILD_BUFFERS fit in @room, the memory beyond the
 * workers' part buffers that one rebuild at a time may take. *@extra: what
 * the used ones need of it at most. An unused rebuild part whose objects
 * have no alternative fails here: DF_ERROR_MISSING_BASE (a library
 * differs) or DF_ERROR_INVALID_ARGUMENT (the memory budget). @plain (when
 * not NULL) says why plain encodings are preferred: a rebuild part whose
 * objects all have one is not used, and with @never_rebuild one whose
 * objects lack one fails with DF_ERROR_INVALID_ARGUMENT. */
DfRebuildPlan *dfi_rebuild_plan_new (const DfSuperblock *sb, guint64 room, const char *plain, gboolean never_rebuild,
                                     guint64 *extra, GError **error);
void dfi_rebuild_plan_free (DfRebuildPlan *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (DfRebuildPlan, dfi_rebuild_plan_free)

/* Bytes the plan holds, and may grow to (failed rebuilds), for the
 * memory budget. */
guint64 dfi_rebuild_plan_memory_size (const DfRebuildPlan *p);

/* How many rebuild parts are used, and why the first unused one is not
 * (NULL when all are used). */
guint dfi_rebuild_plan_n_used (const DfRebuildPlan *p);
const char *dfi_rebuild_plan_unused_reason (const DfRebuildPlan *p);

/* Memory part @index's rebuilds may take (its declared encoder memory). */
guint64 dfi_rebuild_plan_memory (const DfRebuildPlan *p, guint index);

/* FALSE for a rebuild part that is not used, and for an alternative part
 * all of whose objects a used rebuild part makes (and has not failed to
 * make). Other parts: TRUE (the caller still skips what is present). */
gboolean dfi_rebuild_plan_part_wanted (const DfRebuildPlan *p, guint index);

/* Called once after the trust walk: @satisfied(@data, i) says whether
 * part i's objects are all present already; such dependencies (and used
 * rebuild parts) count as done. */
void dfi_rebuild_plan_start (DfRebuildPlan *p, gboolean (*satisfied) (gpointer data, guint index), gpointer data);

/* Part @index (its task @task) has arrived: TRUE when it may run now;
 * otherwise the plan holds @task until it may. */
gboolean dfi_rebuild_plan_offer (DfRebuildPlan *p, guint index, gpointer task);

/* Part @index is done (applied or found present): appends to @released
 * the held tasks that may run now. */
void dfi_rebuild_plan_done (DfRebuildPlan *p, guint index, GPtrArray *released);

/* Every part has been handed over and nothing runs: releases what is still
 * held, the rebuild parts first (when any, it returns after them; call
 * again once they are done). Returns the number released. */
guint dfi_rebuild_plan_release (DfRebuildPlan *p, GPtrArray *released);

/* The rebuild of object @checksum failed: TRUE when the delta has an
 * alternative for it (the plan then wants its alternative parts). */
gboolean dfi_rebuild_plan_fell_back (DfRebuildPlan *p, const guint8 checksum[DF_SHA256_LEN]);

/* TRUE when the rebuild of @checksum failed already (in this run or, as
 * recorded, an earlier one). */
gboolean dfi_rebuild_plan_failed_before (const DfRebuildPlan *p, const guint8 checksum[DF_SHA256_LEN]);

/* Tasks still held (for freeing them when a session ends early). */
void dfi_rebuild_plan_steal_held (DfRebuildPlan *p, GPtrArray *out);
