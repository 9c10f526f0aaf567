/* The apply of a native delta, fed part by part: trust → metadata walk →
 * content parts on a worker pool → completeness → commit object, ref,
 * transaction.
 *
 * Parts are independent: content parts may be applied in any order and in
 * parallel once the metadata walk has fixed the set of objects the trusted
 * commit references. A fetcher hands them over as they are verified; an
 * offline apply (df-apply-delta.c) finds them all on disk. */
#include "df-apply-session-private.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "df-apply-policy.h"
#include "df-object-writer.h"
#include "df-part.h"
#include "df-rebuild-plan.h"
#include "df-trust.h"

/* ---------------------------------------------------------------------- */

static void
report (Apply *a, gboolean force)
{
  if (a->opts->progress == NULL)
    return;
  gint64 now = g_get_monotonic_time ();
  if (!force && now - a->last_report < G_USEC_PER_SEC / 10)
    return;
  a->last_report = now;
  g_mutex_lock (&a->lock);
  DfProgress snap = a->progress;
  g_mutex_unlock (&a->lock);
  a->opts->progress (&snap, a->opts->progress_data);
}

/* Metadata parts are small: keep their objects until the walk has decided
 * which ones the commit references. */
static gboolean
add_metadata_objects (Apply *a, guint i, GBytes *payload, GError **error)
{
  const DfPart *p = &a->sb->parts[i];
  DfPartReader r;
  gsize len;
  const guint8 *data = g_bytes_get_data (payload, &len);
  if (!dfi_part_reader_init (&r, data, len, p->raw_size, error))
    return (g_prefix_error (error, "part %u: ", i), FALSE);
  g_mutex_lock (&a->lock);
  for (guint j = 0; j < p->n_entries; j++)
    {
      const DfEntry *e = &p->entries[j];
      const guint8 *obj = dfi_part_reader_take (&r, DF_SECTION_RAW, e->data_size, NULL);
      g_assert (obj != NULL); /* the raw section holds exactly the entries */
      g_autoptr (GBytes) b = g_bytes_new_from_bytes (payload, obj - data, e->data_size);
      dfi_trust_add_delta_metadata (a->trust, e->objtype, e->checksum, b);
    }
  a->progress.parts_done++;
  g_mutex_unlock (&a->lock);
  if (!dfi_part_reader_finish (&r, error))
    return (g_prefix_error (error, "part %u: ", i), FALSE);
  return TRUE;
}

/* Establishes what the trusted commit references and writes the metadata
 * it needs; refuses any object of the delta outside that set before a
 * single content byte is written. */
static gboolean
trust_walk (Apply *a, GError **error)
{
  if (!dfi_trust_walk (a->trust, a->sb->commit, a->sb->to_hex, error))
    return FALSE;
  g_autoptr (DfObjSet) sources_seen = dfi_objset_new (NULL);
  for (guint i = 0; i < a->sb->n_parts; i++)
    for (guint j = 0; j < a->sb->parts[i].n_entries; j++)
      {
        const DfEntry *e = &a->sb->parts[i].entries[j];
        if (e->objtype != OSTREE_OBJECT_TYPE_FILE)
          continue;
        char hex[65];
        dfi_hex (e->checksum, hex);
        if (!dfi_trust_reaches (a->trust, OSTREE_OBJECT_TYPE_FILE, e->checksum))
          return dfi_throw (error, DF_ERROR_UNTRUSTED,
                            "part %u: file %s is not referenced by commit %s; refusing the delta", i, hex,
                            a->sb->to_hex);
        if (e->has_source)
          {
            char shex[65];
            gboolean have = FALSE;
            dfi_hex (e->source, shex);
            /* Chunks of one modified file share its source: ask once. */
            if (!dfi_objset_add (sources_seen, OSTREE_OBJECT_TYPE_FILE, e->source, NULL))
              continue;
            if (!ostree_repo_has_object (a->repo, OSTREE_OBJECT_TYPE_FILE, shex, &have, a->cancellable, error))
              return FALSE;
            if (!have)
              return dfi_throw (error, DF_ERROR_MISSING_BASE, "part %u: source object %s is not in the repository", i,
                                shex);
          }
      }
  return TRUE;
}

/* ---------------------------------------------------------------------- */
/* Content parts                                                            */

guint64
dfi_part_output (const DfPart *p)
{
  guint64 out = 0;
  for (guint j = 0; j < p->n_entries; j++)
    {
      const DfEntry *e = &p->entries[j];
      out += e->length;
      /* A chunk of a split object is staged, then written with the rest;
       * a rebuilt object is made in a staged file, then written. */
      if (e->objtype == OSTREE_OBJECT_TYPE_FILE && (e->length != e->object_size || e->encoding == DF_ENCODING_REBUILD))
        out += e->length;
    }
  return out;
}

/* TRUE when every entry of content part @i is already in the repository
 * (or staged): the part need not be read. */
static gboolean
part_satisfied (Apply *a, guint i)
{
  const DfPart *p = &a->sb->parts[i];
  for (guint j = 0; j < p->n_entries; j++)
    if (!dfi_object_writer_entry_done (a->writer, &p->entries[j]))
      return FALSE;
  return TRUE;
}

/* Tells the writer how many chunks each split object has and how many are
 * staged already (resume), and how much it may inflate for patches: at most
 * DF_WINDOW_PER_BYTE times each patched object (the generator pairs files
 * at most that far apart in size). */
static void
register_splits (Apply *a)
{
  g_autoptr (DfObjSet) patched = dfi_objset_new (NULL);
  guint64 budget = 0;
  for (guint i = 0; i < a->sb->n_parts; i++)
    for (guint j = 0; j < a->sb->parts[i].n_entries; j++)
      {
        const DfEntry *e = &a->sb->parts[i].entries[j];
        if (e->has_source && dfi_objset_add (patched, e->objtype, e->checksum, NULL)
            && !dfi_add_u64 (budget, MIN (e->object_size, G_MAXUINT64 / 8) * DF_WINDOW_PER_BYTE, &budget))
          budget = G_MAXUINT64;
      }
  dfi_object_writer_set_inflate_budget (a->writer, budget);

  g_autoptr (GHashTable) chunks = g_hash_table_new_full (dfi_keyed_str_hash, g_str_equal, g_free, g_free);
  for (guint i = 0; i < a->sb->n_parts; i++)
    for (guint j = 0; j < a->sb->parts[i].n_entries; j++)
      {
        const DfEntry *e = &a->sb->parts[i].entries[j];
        if (e->objtype != OSTREE_OBJECT_TYPE_FILE || e->length == e->object_size)
          continue;
        char hex[65];
        dfi_hex (e->checksum, hex);
        guint64 *c = g_hash_table_lookup (chunks, hex);
        if (c == NULL)
          {
            c = g_new0 (guint64, 3);
            c[2] = e->object_size;
            g_hash_table_insert (chunks, g_strdup (hex), c);
          }
        c[0]++;
        c[1] += dfi_object_writer_entry_done (a->writer, e);
      }
  GHashTableIter it;
  gpointer key, value;
  g_hash_table_iter_init (&it, chunks);
  while (g_hash_table_iter_next (&it, &key, &value))
    {
      guint64 *c = value;
      guint8 csum[DF_SHA256_LEN];
      ostree_checksum_inplace_to_bytes (key, csum);
      dfi_object_writer_expect_split (a->writer, csum, c[2], c[0], c[1]);
    }
}

static void
push_task (Apply *a, PartTask *t)
{
  g_mutex_lock (&a->lock);
  a->pending++;
  g_mutex_unlock (&a->lock);
  g_thread_pool_push (a->pool, t, NULL);
}

/* Hands a content part to the pool, or counts it as done when its objects
 * are all there already. Called with the walk done. */
static void
dispatch_content (Apply *a, PartTask *t)
{
  g_mutex_lock (&a->lock);
  gboolean wanted = dfi_rebuild_plan_part_wanted (a->plan, t->index);
  g_mutex_unlock (&a->lock);
  if (!wanted || part_satisfied (a, t->index))
    {
      guint index = t->index;
      g_mutex_lock (&a->lock);
      a->progress.parts_done++;
      if (wanted)
        a->result.parts_skipped++;
      else
        a->result.parts_unused++;
      g_mutex_unlock (&a->lock);
      dfi_session_task_free (t);
      dfi_session_part_finished (a, index);
      return;
    }
  push_task (a, t);
}

/* A content part is done (or was found present): the rebuild and
 * alternative parts that waited for it may run. */
void
dfi_session_part_finished (Apply *a, guint index)
{
  g_autoptr (GPtrArray) released = g_ptr_array_new ();
  g_mutex_lock (&a->lock);
  dfi_rebuild_plan_done (a->plan, index, released);
  g_mutex_unlock (&a->lock);
  for (guint i = 0; i < released->len; i++)
    dispatch_content (a, released->pdata[i]);
}

/* Hands over a content part that arrived after the walk: now, or once the
 * parts it waits for are done. */
static void
offer_content (Apply *a, PartTask *t)
{
  g_mutex_lock (&a->lock);
  gboolean now = dfi_rebuild_plan_offer (a->plan, t->index, t);
  g_mutex_unlock (&a->lock);
  if (now)
    dispatch_content (a, t);
}

static gboolean
satisfied_cb (gpointer data, guint index)
{
  return part_satisfied (data, index);
}

/* Runs once every metadata part is in: the trust walk, then everything
 * that waited for it. */
static gboolean
walk_and_release (Apply *a, GError **error)
{
  if (!trust_walk (a, error))
    return FALSE;
  /* The walk's tables are known now: the rest of the budget is workers. */
  if (a->need > 0)
    {
      guint64 held = a->fixed + dfi_trust_memory (a->trust);
      /* A default budget raised for a rebuild keeps the workers the
       * delta would have had without it (up to DF_REBUILD_BUDGET_MAX). */
      if (a->raise_cap > a->usable && held + a->raise_extra + (guint64)a->workers * a->need > a->usable)
        {
          guint64 before = (a->usable - MIN (held - a->raise_extra, a->usable)) / a->need;
          guint64 want = held + MIN (before, (guint64)a->workers) * a->need;
          if (want > a->usable)
            {
              a->usable = MIN (want, a->raise_cap);
              a->result.memory_raised_to = a->usable + DF_APPLY_RESERVE;
            }
        }
      guint workers = (guint)MAX (1, MIN ((guint64)a->workers, (a->usable - MIN (held, a->usable)) / a->need));
      if (workers != a->workers)
        {
          a->workers = a->result.workers = workers;
          g_thread_pool_set_max_threads (a->pool, workers, NULL);
        }
    }
  register_splits (a);
  dfi_rebuild_plan_start (a->plan, satisfied_cb, a);
  a->progress.phase = DF_PHASE_CONTENT;
  {
    PartTask *t = g_new0 (PartTask, 1);
    t->a = a;
    t->index = G_MAXUINT;
    t->dfd = -1;
    push_task (a, t);
  }
  g_mutex_lock (&a->lock);
  a->walk_done = TRUE;
  g_autoptr (GPtrArray) queued = g_steal_pointer (&a->queued);
  a->queued = g_ptr_array_new ();
  g_mutex_unlock (&a->lock);
  for (guint i = 0; i < queued->len; i++)
    offer_content (a, queued->pdata[i]);
  return TRUE;
}

/* Every object the commit references must be present before the commit
 * object is written: a commit never lands half-populated. Objects the
 * delta carries are in, since every part has been applied; the rest must
 * already be in the repository. */
gboolean
dfi_session_check_complete (Apply *a, GError **error)
{
  g_autoptr (DfObjSet) carried = dfi_objset_new (NULL);
  for (guint i = 0; i < a->sb->n_parts; i++)
    for (guint j = 0; j < a->sb->parts[i].n_entries; j++)
      {
        const DfEntry *e = &a->sb->parts[i].entries[j];
        dfi_objset_add (carried, e->objtype, e->checksum, NULL);
      }
  return dfi_trust_check_present (a->trust, carried, a->sb->has_from, a->sb->to_hex, a->cancellable, error);
}

static void
session_fail_cleanup (Apply *a, const GError *error)
{
  /* Aborting releases the repository for the caller's next transaction;
   * libostree keeps the staged objects (all verified) for the next run to
   * reuse, so a resume loses nothing. */
  if (a->in_txn)
    ostree_repo_abort_transaction (a->repo, NULL, NULL);
  a->in_txn = FALSE;
  /* Chunks staged for a delta that can never succeed are removed: a
   * hostile delta must not leave gigabytes behind. */
  if (dfi_apply_failure_is_final (error))
    {
      g_clear_pointer (&a->writer, dfi_object_writer_free);
      dfi_apply_forget_staging (a->repo, a->sb->file.sha256);
    }
}

/* The memory budget of a session, in bytes (the reserve left out). */
typedef struct
{
  guint64 usable;                  /* the budget; raised for rebuilds when allowed */
  guint64 fixed;                   /* superblock, metadata parts, rebuild plan (and a rebuild beside the workers) */
  guint64 tables;                  /* the trust tables' estimate */
  guint64 need, own;               /* a worker's buffers; a rebuild part's own */
  guint64 raised;                  /* what the budget was raised to (with the reserve), or 0 */
  guint64 raise_cap, raise_extra;  /* see Apply */
  gboolean alone;                  /* rebuilds run alone */
} Budget;

/* Decides which rebuild parts run (dfi_rebuild_plan_new()) and how they
 * fit @m, which is updated. Rebuilds run one at a time, their encoders
 * beside the workers (room for the largest is kept out of the workers'
 * share) or, when that does not fit, alone: a rebuild part then waits for
 * the parts being applied and none starts beside it. Without a budget of
 * the caller's, the default may rise for them up to DF_REBUILD_BUDGET_MAX. */
static DfRebuildPlan *
plan_rebuilds (const DfSuperblock *sb, const DfApplyOptions *opts, Budget *m, GError **error)
{
  guint64 cap = opts->memory_explicit ? m->usable : MAX (m->usable, DF_REBUILD_BUDGET_MAX - DF_APPLY_RESERVE);
  guint64 extra = 0;
  gboolean never = opts->rebuild == DF_REBUILD_NEVER;
  const char *plain = NULL;
  if (never)
    plain = "rebuilding is turned off";
  else if (opts->rebuild == DF_REBUILD_AUTO && opts->plain_at_hand)
    plain = "the delta directory carries their plain encoding";
  DfRebuildPlan *plan = dfi_rebuild_plan_new (sb, cap - m->fixed - m->tables - m->own, plain, never, &extra, error);
  if (plan == NULL)
    return NULL;
  /* The plan's own tables count like the superblock's. */
  m->fixed += dfi_rebuild_plan_memory_size (plan);
  guint64 base = m->fixed + m->tables;
  if (extra == 0)
    return plan;
  if (base + m->need + extra <= cap)
    {
      /* Raised (when allowed) to keep the workers the delta would have
       * had without its rebuilds, beside the largest one. */
      if (base + m->need + extra > m->usable)
        {
          m->usable = base + m->need + extra;
          m->raised = m->usable + DF_APPLY_RESERVE;
        }
      m->raise_cap = cap;
      m->raise_extra = extra;
      m->fixed += extra;
      return plan;
    }
  /* Alone: a rebuild part's own buffers and its encoder, or the workers,
   * never both. */
  guint64 alone = base + MAX (m->need, m->own + extra);
  if (alone > cap)
    {
      m->fixed += extra; /* the plan's tables took the room: refused by the caller */
      return plan;
    }
  if (alone > m->usable)
    {
      m->usable = alone;
      m->raised = m->usable + DF_APPLY_RESERVE;
    }
  m->alone = TRUE;
  return plan;
}

/* The memory budget of an apply of @sb: the parsed superblock, the
 * metadata parts (kept until the commit is written) and their entries in
 * the trust tables, one worker at least, and the trust walk's tables;
 * whatever is left after the walk goes to more workers. Also the rebuild
 * plan, in *@plan_out. */
static gboolean
session_budget (const DfSuperblock *sb, const DfApplyOptions *opts, Budget *m, guint *meta_parts_out,
                DfRebuildPlan **plan_out, GError **error)
{
  guint64 need = 0, meta_total = 0, meta_entries = 0, own = 0;
  guint meta_parts = 0;
  for (guint i = 0; i < sb->n_parts; i++)
    {
      if (sb->parts[i].kind == DF_PART_KIND_METADATA)
        meta_total += sb->parts[i].uncompressed_size, meta_parts++, meta_entries += sb->parts[i].n_entries;
      else
        need = MAX (need, dfi_session_part_memory (&sb->parts[i]));
      if (sb->parts[i].kind == DF_PART_KIND_REBUILD)
        own = MAX (own, dfi_session_part_memory (&sb->parts[i]));
    }
  const char *hook = g_getenv ("DF_TEST_APPLY_PART_MEMORY"); /* tests: parts as large as this */
  if (hook != NULL)
    need = MAX (need, g_ascii_strtoull (hook, NULL, 10));
  *m = (Budget){ .usable = dfi_apply_usable_memory (opts),
                 .fixed = sb->memory + meta_total,
                 .tables = meta_entries * DF_TRUST_DELTA_META_COST,
                 .need = need,
                 .own = own };
  *meta_parts_out = meta_parts;
  if (m->fixed + m->tables + m->need <= m->usable && (*plan_out = plan_rebuilds (sb, opts, m, error)) == NULL)
    return FALSE;
  if (m->fixed + m->tables + need > m->usable)
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT,
                      "the delta needs %" G_GUINT64_FORMAT " MiB (superblock %" G_GUINT64_FORMAT
                      ", metadata %" G_GUINT64_FORMAT ", a worker %" G_GUINT64_FORMAT
                      "), more than the memory budget of %" G_GUINT64_FORMAT " MiB allows",
                      (m->fixed + m->tables + need + DF_APPLY_RESERVE) / DF_MIB + 1, sb->memory / DF_MIB,
                      (meta_total + m->tables) / DF_MIB, need / DF_MIB, opts->memory / DF_MIB);
  return TRUE;
}

gboolean
dfi_apply_session_plan (OstreeRepo *repo, const DfSuperblock *sb, const DfApplyOptions *opts, guint8 *wanted,
                        GCancellable *cancellable, GError **error)
{
  if (!dfi_apply_preflight (repo, opts, sb->to_hex, sb->commit, sb->commitmeta, sb->has_from ? sb->from_hex : NULL,
                            cancellable, error))
    return FALSE;
  Budget m;
  guint meta_parts;
  g_autoptr (DfRebuildPlan) plan = NULL;
  if (!session_budget (sb, opts, &m, &meta_parts, &plan, error))
    return FALSE;
  for (guint i = 0; i < sb->n_parts; i++)
    wanted[i] = sb->parts[i].kind == DF_PART_KIND_METADATA || dfi_rebuild_plan_part_wanted (plan, i);
  return TRUE;
}

DfApplySession *
dfi_apply_session_new (OstreeRepo *repo, DfSuperblock *sb_in, const DfApplyOptions *opts, GCancellable *cancellable,
                       GError **error)
{
  g_autoptr (DfSuperblock) sb = sb_in;
  if (!dfi_apply_preflight (repo, opts, sb->to_hex, sb->commit, sb->commitmeta, sb->has_from ? sb->from_hex : NULL,
                            cancellable, error))
    return NULL;
  Budget m;
  guint meta_parts;
  g_autoptr (DfRebuildPlan) plan = NULL;
  if (!session_budget (sb, opts, &m, &meta_parts, &plan, error))
    return NULL;
  guint64 usable = m.usable, fixed = m.fixed, need = m.need;
  guint workers = opts->jobs ? opts->jobs : dfi_ncpus ();

  Apply *a = g_new0 (Apply, 1);
  a->repo = g_object_ref (repo);
  a->sb = g_steal_pointer (&sb);
  a->plan = g_steal_pointer (&plan);
  a->opts = opts;
  a->result.signature_verified = a->sb->file.verified;
  a->result.memory_raised_to = m.raised;
  a->raise_cap = m.raise_cap;
  a->raise_extra = m.raise_extra;
  a->result.rebuild_alone = m.alone;
  for (guint i = 0; i < a->sb->n_parts; i++)
    if (a->sb->parts[i].kind == DF_PART_KIND_REBUILD && !dfi_rebuild_plan_part_wanted (a->plan, i))
      a->result.rebuild_parts_unused++;
  if (dfi_rebuild_plan_unused_reason (a->plan))
    g_strlcpy (a->result.rebuild_unused_reason, dfi_rebuild_plan_unused_reason (a->plan),
               sizeof a->result.rebuild_unused_reason);
  a->usable = usable;
  a->fixed = fixed;
  a->need = need;
  a->workers = workers;
  a->result.workers = workers;
  memcpy (a->result.commit, a->sb->to_hex, 65);
  a->result.commit_trusted = opts->commit != NULL;
  a->cancellable = g_cancellable_new ();
  if (cancellable)
    {
      a->user_cancellable = g_object_ref (cancellable);
      a->chained = dfi_cancellable_forward (cancellable, a->cancellable);
    }
  g_mutex_init (&a->lock);
  g_mutex_init (&a->rebuild_lock);
  g_cond_init (&a->cond);
  a->trust = dfi_trust_new (repo);
  dfi_trust_set_memory_limit (a->trust, usable - fixed - need);
  a->queued = g_ptr_array_new ();
  a->received = g_new0 (guint8, a->sb->n_parts ? a->sb->n_parts : 1);
  a->meta_parts = meta_parts;
  for (guint i = 0; i < a->sb->n_parts; i++)
    if (a->sb->parts[i].kind == DF_PART_KIND_CONTENT || a->sb->parts[i].kind == DF_PART_KIND_REBUILD)
      for (guint j = 0; j < a->sb->parts[i].n_entries; j++)
        a->progress.bytes_total += a->sb->parts[i].entries[j].length;
  a->progress.parts_total = a->sb->n_parts;
  a->progress.phase = DF_PHASE_PLAN;
  report (a, TRUE);

  /* Staged chunks belong to this exact delta (another delta to the same
   * commit may cut objects differently), so the state is keyed by the
   * superblock's hash. */
  char sb_hex[65];
  dfi_hex (a->sb->file.sha256, sb_hex);
  a->state_dir = g_strdup_printf ("tmp/deltafetch-apply-%s", sb_hex);
  GError *local = NULL;
  gboolean resumed = FALSE;
  a->writer = dfi_object_writer_new (repo, a->state_dir, &local);
  if (a->writer)
    {
      /* Rebuilds that failed in an earlier run of this delta: their plain
       * encoding is wanted now. */
      g_autoptr (GPtrArray) failed = dfi_object_writer_rebuild_failures (a->writer, DF_REBUILD_FAILED_MAX);
      for (guint i = 0; i < failed->len; i++)
        dfi_rebuild_plan_fell_back (a->plan, failed->pdata[i]);
    }
  if (a->writer && ostree_repo_prepare_transaction (repo, &resumed, a->cancellable, &local))
    {
      a->in_txn = TRUE;
      a->pool = g_thread_pool_new (dfi_session_worker, NULL, workers, FALSE, NULL);
      /* Bytes written, diffs counted twice: they also read their source
       * and decode controls. */
      a->work = g_new0 (guint64, MAX (a->sb->n_parts, 1));
      for (guint i = 0; i < a->sb->n_parts; i++)
        for (guint j = 0; j < a->sb->parts[i].n_entries; j++)
          {
            const DfEntry *e = &a->sb->parts[i].entries[j];
            a->work[i] += e->length
                          * (e->encoding == DF_ENCODING_DIFF      ? 2
                             : e->encoding == DF_ENCODING_REBUILD ? 4
                                                                  : 1);
          }
      g_thread_pool_set_sort_function (a->pool, dfi_session_task_order, a);
      a->progress.phase = DF_PHASE_METADATA;
      report (a, TRUE);
      if (meta_parts > 0 || walk_and_release (a, &local))
        return a;
    }
  dfi_error_normalize (&local, NULL);
  session_fail_cleanup (a, local);
  g_propagate_error (error, local);
  dfi_apply_session_free (a);
  return NULL;
}

const DfSuperblock *
dfi_apply_session_get_superblock (DfApplySession *a)
{
  return a->sb;
}

void
dfi_apply_session_get_progress (DfApplySession *a, DfProgress *out)
{
  g_mutex_lock (&a->lock);
  *out = a->progress;
  out->parts_done = a->parts_applied;
  g_mutex_unlock (&a->lock);
}

gboolean
dfi_apply_session_failed (DfApplySession *a)
{
  g_mutex_lock (&a->lock);
  gboolean failed = a->error != NULL;
  g_mutex_unlock (&a->lock);
  return failed;
}

GCancellable *
dfi_apply_session_get_cancellable (DfApplySession *a)
{
  return a->cancellable;
}

gboolean
dfi_apply_session_part_needed (DfApplySession *a, guint index)
{
  g_return_val_if_fail (index < a->sb->n_parts, FALSE);
  if (a->sb->parts[index].kind == DF_PART_KIND_METADATA)
    return TRUE;
  g_mutex_lock (&a->lock);
  gboolean wanted = dfi_rebuild_plan_part_wanted (a->plan, index);
  g_mutex_unlock (&a->lock);
  return wanted && !part_satisfied (a, index);
}

gboolean
dfi_apply_session_add_part (DfApplySession *a, guint index, int dfd, const char *name, GError **error)
{
  if (index >= a->sb->n_parts)
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "part %u does not exist", index);
  g_mutex_lock (&a->lock);
  gboolean dup = a->received[index];
  a->received[index] = TRUE;
  g_mutex_unlock (&a->lock);
  if (dup)
    return TRUE;
  if (a->sb->parts[index].kind == DF_PART_KIND_METADATA)
    {
      g_autoptr (GBytes) payload = dfi_session_read_part (a, index, dfd, name, error);
      if (payload == NULL)
        return FALSE;
      if (!add_metadata_objects (a, index, payload, error))
        return FALSE;
      g_mutex_lock (&a->lock);
      gboolean last = ++a->meta_received == a->meta_parts;
      g_mutex_unlock (&a->lock);
      if (last && !walk_and_release (a, error))
        {
          /* Remember the failure for finish, too. */
          g_mutex_lock (&a->lock);
          if (a->error == NULL)
            a->error = g_error_copy (*error);
          g_mutex_unlock (&a->lock);
          return FALSE;
        }
      return TRUE;
    }
  PartTask *t = g_new0 (PartTask, 1);
  t->a = a;
  t->index = index;
  t->dfd = fcntl (dfd, F_DUPFD_CLOEXEC, 3);
  t->name = g_strdup (name);
  if (t->dfd < 0)
    {
      dfi_session_task_free (t);
      return dfi_throw_errno (error, errno, "part %u", index);
    }
  g_mutex_lock (&a->lock);
  gboolean ready = a->walk_done;
  if (!ready)
    g_ptr_array_add (a->queued, t);
  g_mutex_unlock (&a->lock);
  if (ready)
    offer_content (a, t);
  return TRUE;
}

/* Waits for the workers, reporting progress; then runs what still waits
 * for parts that will not come (present already, or missing), rebuild
 * parts before alternatives. Returns with a->lock held. */
static void
drain_locked (Apply *a)
{
  g_mutex_lock (&a->lock);
  for (;;)
    {
      while (a->pending > 0)
        {
          gint64 deadline = g_get_monotonic_time () + G_USEC_PER_SEC / 10;
          g_cond_wait_until (&a->cond, &a->lock, deadline);
          g_mutex_unlock (&a->lock);
          report (a, FALSE);
          g_mutex_lock (&a->lock);
        }
      g_autoptr (GPtrArray) released = g_ptr_array_new ();
      if (a->error != NULL || !a->walk_done || dfi_rebuild_plan_release (a->plan, released) == 0)
        break;
      g_mutex_unlock (&a->lock);
      for (guint i = 0; i < released->len; i++)
        dispatch_content (a, released->pdata[i]);
      g_mutex_lock (&a->lock);
    }
}

void
dfi_apply_session_drain (DfApplySession *a)
{
  drain_locked (a);
  g_mutex_unlock (&a->lock);
}

char *
dfi_apply_session_fallback_reason (DfApplySession *a)
{
  g_mutex_lock (&a->lock);
  char *reason = a->result.rebuild_fallback_reason[0] ? g_strdup (a->result.rebuild_fallback_reason) : NULL;
  g_mutex_unlock (&a->lock);
  return reason;
}

gboolean
dfi_apply_session_finish (DfApplySession *a, DfApplyResult *result, GError **error)
{
  drain_locked (a);
  GError *local = g_steal_pointer (&a->error);
  gboolean walked = a->walk_done;
  g_mutex_unlock (&a->lock);
  if (local == NULL && !walked)
    {
      for (guint i = 0; i < a->sb->n_parts && local == NULL; i++)
        if (a->sb->parts[i].kind == DF_PART_KIND_METADATA && !a->received[i])
          dfi_throw (&local, DF_ERROR_INVALID_DELTA, "metadata part %u never arrived", i);
    }
  /* A part never handed over is fine only if its objects are all there
   * (the caller skipped it as not needed). */
  for (guint i = 0; i < a->sb->n_parts && local == NULL; i++)
    {
      if (a->received[i])
        continue;
      if (!dfi_rebuild_plan_part_wanted (a->plan, i))
        a->result.parts_unused++, a->progress.parts_done++;
      else if (part_satisfied (a, i))
        a->result.parts_skipped++, a->progress.parts_done++;
      else if (a->sb->parts[i].kind == DF_PART_KIND_ALTERNATIVE)
        /* Not final: the failure is recorded, and the next run of this
         * delta fetches the plain encoding instead. */
        dfi_throw (&local, DF_ERROR_FAILED,
                   "a rebuild failed and part %u, its plain encoding, was not fetched: run again to fetch it", i);
      else
        dfi_throw (&local, DF_ERROR_INVALID_DELTA, "part %u never arrived", i);
    }
  if (local == NULL)
    g_cancellable_set_error_if_cancelled (a->cancellable, &local);
  if (local == NULL)
    {
      a->result.parts_applied = a->parts_applied;
      if (a->on_commit)
        a->on_commit (a->on_commit_data, NULL);
      a->progress.phase = DF_PHASE_COMMIT;
      report (a, TRUE);
      g_autoptr (GVariant) meta = NULL;
      if (g_bytes_get_size (a->sb->commitmeta) > 0)
        meta = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE ("a{sv}"), a->sb->commitmeta, FALSE));
      if (dfi_object_writer_finish_splits (a->writer, a->cancellable, &local)
          && (a->complete_checked || dfi_session_check_complete (a, &local))
          && dfi_object_writer_commit (a->writer, a->sb->to_hex, a->sb->commit, meta, a->opts->ref,
                                       &a->result.objects_written, &a->result.content_bytes, a->cancellable, &local))
        {
          a->in_txn = FALSE;
          dfi_object_writer_cleanup (a->writer, NULL);
        }
    }
  if (local)
    {
      if (a->user_cancellable && g_cancellable_is_cancelled (a->user_cancellable)
          && !g_error_matches (local, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        {
          /* Workers stopped because the caller cancelled. */
          g_clear_error (&local);
          g_cancellable_set_error_if_cancelled (a->user_cancellable, &local);
        }
      dfi_error_normalize (&local, NULL);
      session_fail_cleanup (a, local);
      g_propagate_error (error, local);
      return FALSE;
    }
  if (result)
    *result = a->result;
  return TRUE;
}

void
dfi_apply_session_free (DfApplySession *a)
{
  if (a == NULL)
    return;
  if (a->pool)
    {
      g_cancellable_cancel (a->cancellable);
      g_thread_pool_free (a->pool, FALSE, TRUE);
    }
  if (a->in_txn)
    ostree_repo_abort_transaction (a->repo, NULL, NULL);
  if (a->chained)
    g_cancellable_disconnect (a->user_cancellable, a->chained);
  g_clear_object (&a->user_cancellable);
  g_object_unref (a->cancellable);
  g_clear_pointer (&a->writer, dfi_object_writer_free);
  dfi_trust_free (a->trust);
  for (guint i = 0; a->queued && i < a->queued->len; i++)
    dfi_session_task_free (a->queued->pdata[i]);
  g_clear_pointer (&a->queued, g_ptr_array_unref);
  if (a->plan)
    {
      g_autoptr (GPtrArray) held = g_ptr_array_new_with_free_func ((GDestroyNotify)dfi_session_task_free);
      dfi_rebuild_plan_steal_held (a->plan, held);
      dfi_rebuild_plan_free (a->plan);
    }
  g_clear_error (&a->error);
  g_free (a->received);
  g_free (a->work);
  g_free (a->state_dir);
  dfi_superblock_free (a->sb);
  g_object_unref (a->repo);
  g_mutex_clear (&a->lock);
  g_mutex_clear (&a->rebuild_lock);
  g_cond_clear (&a->cond);
  g_free (a);
}

void
dfi_apply_session_abort (DfApplySession *s, const GError *error)
{
  /* Let the workers stop before cleaning up. */
  GError *ignored = NULL;
  g_cancellable_cancel (s->cancellable);
  dfi_apply_session_finish (s, NULL, &ignored);
  g_clear_error (&ignored);
  session_fail_cleanup (s, (GError *)error);
}

void
dfi_apply_session_on_commit (DfApplySession *a, GFunc func, gpointer data)
{
  a->on_commit = func;
  a->on_commit_data = data;
}
