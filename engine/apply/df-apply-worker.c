/* What a worker of the apply session does with one part: decode it,
 * write its objects (patches, split chunks, rebuilds with their fallback
 * to the plain encoding), or, for the metadata task, write the verified
 * metadata and check the commit is complete. */
#include "df-apply-session-private.h"

#include <unistd.h>

#include "df-part.h"

GBytes *
dfi_session_read_part (Apply *a, guint i, int dfd, const char *name, GError **error)
{
  g_autofree char *what = g_strdup_printf ("part %u", i);
  g_autoptr (GBytes) file
      = dfi_read_file_bounded (dfd, name, DF_PART_SIZE_MAX + DF_MIB, a->sb->parts[i].compressed_size, what, error);
  if (file == NULL)
    return NULL;
  return dfi_part_decode (&a->sb->parts[i], i, file, error);
}

void
dfi_session_task_free (PartTask *t)
{
  if (t->dfd >= 0)
    close (t->dfd);
  g_free (t->name);
  g_free (t);
}

/* The pool takes the costliest waiting part first, so an apply ends on
 * small parts rather than on one worker rebuilding a large part while the
 * others idle. The metadata task goes before everything. */
gint
dfi_session_task_order (gconstpointer x, gconstpointer y, gpointer data)
{
  const PartTask *p = x, *q = y;
  Apply *a = data;
  guint64 wp = p->index == G_MAXUINT ? G_MAXUINT64 : a->work[p->index];
  guint64 wq = q->index == G_MAXUINT ? G_MAXUINT64 : a->work[q->index];
  if (wp != wq)
    return wp > wq ? -1 : 1;
  return p->index < q->index ? -1 : p->index > q->index;
}

/* The pool task that follows the trust walk: write the verified metadata,
 * and check that the objects the delta does not carry are present, while
 * the content parts are being applied. */
static gboolean
write_metadata (Apply *a, GError **error)
{
  GPtrArray *meta = dfi_trust_metadata (a->trust);
  for (guint i = 0; i < meta->len; i++)
    {
      DfTrustMeta *m = meta->pdata[i];
      if (!dfi_object_writer_metadata (a->writer, m->type, m->checksum, m->data, a->cancellable, error))
        return FALSE;
    }
  if (!dfi_session_check_complete (a, error))
    return FALSE;
  g_mutex_lock (&a->lock);
  a->complete_checked = TRUE;
  g_mutex_unlock (&a->lock);
  return TRUE;
}

/* Rebuilds one object; a rebuild that fails for a reason of its own (a
 * library or memory refusal, a malformed program, a result that does not
 * hash to the checksum) falls back to the object's alternative entries,
 * applied after every rebuild part. */
static gboolean
rebuild_entry (Apply *a, guint index, const DfEntry *e, const guint8 *raw, GError **error)
{
  g_autoptr (GError) local = NULL;
  g_mutex_lock (&a->lock);
  gboolean failed_before = dfi_rebuild_plan_failed_before (a->plan, e->checksum);
  g_mutex_unlock (&a->lock);
  if (failed_before)
    dfi_throw (&local, DF_ERROR_CORRUPT, "its rebuild failed in an earlier run");
  g_mutex_lock (&a->rebuild_lock);
  gboolean ok = !failed_before
                && dfi_object_writer_rebuild (a->writer, e, raw, e->data_size, dfi_rebuild_plan_memory (a->plan, index),
                                              a->cancellable, &local);
  g_mutex_unlock (&a->rebuild_lock);
  if (ok)
    {
      g_mutex_lock (&a->lock);
      a->result.objects_rebuilt++;
      g_mutex_unlock (&a->lock);
      return TRUE;
    }
  gboolean own = local->domain == DF_ERROR
                 && (local->code == DF_ERROR_CORRUPT || local->code == DF_ERROR_INVALID_DELTA
                     || local->code == DF_ERROR_MISSING_BASE || local->code == DF_ERROR_INVALID_ARGUMENT);
  char hex[65];
  dfi_hex (e->checksum, hex);
  g_mutex_lock (&a->lock);
  gboolean alt = own && dfi_rebuild_plan_fell_back (a->plan, e->checksum);
  if (own && !failed_before)
    dfi_object_writer_note_rebuild_failed (a->writer, e->checksum);
  if (alt)
    {
      a->result.rebuild_fallbacks++;
      if (a->result.rebuild_fallback_reason[0] == '\0')
        g_snprintf (a->result.rebuild_fallback_reason, sizeof a->result.rebuild_fallback_reason, "%s: %s", hex,
                    local->message);
    }
  g_mutex_unlock (&a->lock);
  if (alt)
    return TRUE;
  g_propagate_prefixed_error (error, g_steal_pointer (&local), "rebuilding %s: ", hex);
  return FALSE;
}

static gboolean
apply_part (Apply *a, PartTask *t, GError **error)
{
  guint index = t->index;
  const DfPart *p = &a->sb->parts[index];
  g_autoptr (GBytes) payload = dfi_session_read_part (a, index, t->dfd, t->name, error);
  if (payload == NULL)
    return FALSE;
  gsize len;
  const guint8 *data = g_bytes_get_data (payload, &len);
  DfPartReader r;
  if (!dfi_part_reader_init (&r, data, len, p->raw_size, error))
    return (g_prefix_error (error, "part %u: ", index), FALSE);
  g_autoptr (DfWriteBatch) batch = dfi_write_batch_new ();
  for (guint j = 0; j < p->n_entries; j++)
    {
      const DfEntry *e = &p->entries[j];
      if (g_cancellable_set_error_if_cancelled (a->cancellable, error))
        return FALSE;
      gboolean done = dfi_object_writer_entry_done (a->writer, e);
      if (e->encoding == DF_ENCODING_REBUILD)
        {
          const guint8 *raw = dfi_part_reader_take (&r, DF_SECTION_RAW, e->data_size, error);
          if (raw == NULL || (!done && !rebuild_entry (a, index, e, raw, error)))
            return (g_prefix_error (error, "part %u: ", index), FALSE);
        }
      else if (!(done ? dfi_object_writer_skip_entry (e, &r, error)
                      : dfi_object_writer_entry (a->writer, e, &r, batch, a->cancellable, error)))
        {
          char hex[65];
          dfi_hex (e->checksum, hex);
          g_prefix_error (error, "part %u: file %s: ", index, hex);
          return FALSE;
        }
      g_mutex_lock (&a->lock);
      a->progress.bytes_done += e->length;
      g_mutex_unlock (&a->lock);
    }
  if (!dfi_part_reader_finish (&r, error))
    return (g_prefix_error (error, "part %u: ", index), FALSE);
  if (!dfi_object_writer_commit_batch (a->writer, batch, a->cancellable, error))
    return (g_prefix_error (error, "part %u: ", index), FALSE);
  return TRUE;
}

/* When rebuilds run alone (a->result.rebuild_alone), a rebuild part waits
 * until no part is being applied and keeps the others out while it runs;
 * parts wait while a rebuild part runs or waits, so that it does not wait
 * for ever. Neither waits on the other while holding its own turn: no
 * deadlock. */
static void
gate_enter (Apply *a, gboolean alone)
{
  g_mutex_lock (&a->lock);
  if (alone)
    {
      a->gate_waiting++;
      while (a->gate_shared > 0 || a->gate_alone)
        g_cond_wait (&a->cond, &a->lock);
      a->gate_waiting--;
      a->gate_alone = TRUE;
    }
  else
    {
      while (a->gate_waiting > 0 || a->gate_alone)
        g_cond_wait (&a->cond, &a->lock);
      a->gate_shared++;
    }
  g_mutex_unlock (&a->lock);
}

static void
gate_leave (Apply *a, gboolean alone)
{
  g_mutex_lock (&a->lock);
  if (alone)
    a->gate_alone = FALSE;
  else
    a->gate_shared--;
  g_cond_broadcast (&a->cond);
  g_mutex_unlock (&a->lock);
}

static gboolean
apply_part_gated (Apply *a, PartTask *t, GError **error)
{
  if (!a->result.rebuild_alone)
    return apply_part (a, t, error);
  gboolean alone = a->sb->parts[t->index].kind == DF_PART_KIND_REBUILD;
  gate_enter (a, alone);
  gboolean ok = apply_part (a, t, error);
  gate_leave (a, alone);
  return ok;
}

void
dfi_session_worker (gpointer data, gpointer user_data)
{
  PartTask *t = data;
  Apply *a = t->a;
  GError *local = NULL;
  gboolean failed;
  g_mutex_lock (&a->lock);
  failed = a->error != NULL;
  g_mutex_unlock (&a->lock);
  if (!failed && !(t->index == G_MAXUINT ? write_metadata (a, &local) : apply_part_gated (a, t, &local)))
    {
      g_mutex_lock (&a->lock);
      if (a->error == NULL)
        a->error = local;
      else
        g_error_free (local);
      g_mutex_unlock (&a->lock);
      g_cancellable_cancel (a->cancellable);
    }
  guint index = t->index;
  dfi_session_task_free (t);
  if (index != G_MAXUINT)
    dfi_session_part_finished (a, index);
  g_mutex_lock (&a->lock);
  a->pending--;
  if (index != G_MAXUINT)
    {
      a->progress.parts_done++;
      a->parts_applied++;
    }
  g_cond_broadcast (&a->cond);
  g_mutex_unlock (&a->lock);
  /* Idle pool threads keep no buffers. */
  dfi_big_cache_release ();
}

/* Memory one worker needs for part @p: its compressed and uncompressed
 * buffers, or the uncompressed buffer plus the largest patch's source
 * window and output; plus the freed buffers its thread keeps for reuse.
 * A rebuild streams its object: its encoders are counted apart
 * (dfi_rebuild_plan_new()). */
guint64
dfi_session_part_memory (const DfPart *p)
{
  guint64 patch = 0;
  for (guint j = 0; j < p->n_entries; j++)
    if (p->entries[j].encoding != DF_ENCODING_RAW && p->entries[j].encoding != DF_ENCODING_REBUILD)
      patch = MAX (patch, p->entries[j].src_length + p->entries[j].length);
  return MAX (p->compressed_size + p->uncompressed_size, p->uncompressed_size + patch) + DF_COPY_BUFFER
         + DF_BIG_CACHE_SLOTS * DF_BIG_CACHE_MAX;
}
