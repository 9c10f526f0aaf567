/* Packing entries into parts and compressing the parts: the packer fills
 * parts in the order entries reach it, and the compress pool compresses and
 * writes each full part (see df-gen-pack.h). */
#include <fcntl.h>
#include <unistd.h>

#include "df-generator.h"

/* Incompressible chunks (df-gen-encode.c) are compressed at this level. */
#define DF_FAST_LEVEL 3

struct _DfGenPartJob
{
  DfGenerator *gen;
  guint index;
  GByteArray *sec[DF_SECTION_COUNT];
  gsize size;      /* payload bytes so far, section table included */
  guint64 output;  /* object bytes its entries make */
  GArray *entries; /* DfEntry */
  guint8 kind;
  int level;
};

void
dfi_gen_compress_worker (gpointer data, gpointer user_data)
{
  DfGenPartJob *job = data;
  DfGenerator *g = job->gen;
  GError *local = NULL;
  if (!dfi_gen_failed (g))
    {
      g_autoptr (GByteArray) payload = dfi_part_payload_assemble (job->sec);
      g_autoptr (GBytes) file = dfi_part_compress (payload->data, payload->len, job->level, g->cancellable, &local);
      if (file)
        {
          char name[16];
          g_snprintf (name, sizeof name, "%u", job->index);
          gsize flen;
          const guint8 *fdata = g_bytes_get_data (file, &flen);
          int fd = openat (g->out_dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
          if (fd < 0)
            dfi_throw_errno (&local, errno, "creating part %u", job->index);
          else
            {
              if (dfi_write_all (fd, fdata, flen, "part", &local) && fdatasync (fd) < 0)
                dfi_throw_errno (&local, errno, "syncing part %u", job->index);
              close (fd);
            }
          if (local == NULL)
            {
              g_mutex_lock (&g->lock);
              DfPart *p = &g_array_index (g->parts, DfPart, job->index);
              dfi_sha256 (fdata, flen, p->sha256);
              p->compressed_size = flen;
              p->uncompressed_size = payload->len;
              p->kind = job->kind;
              p->n_entries = job->entries->len;
              p->entries = (DfEntry *)g_array_free (job->entries, FALSE);
              job->entries = NULL;
              g_mutex_unlock (&g->lock);
            }
        }
    }
  if (local)
    dfi_gen_fail (g, local);
  g_mutex_lock (&g->lock);
  g->parts_pending--;
  g->progress.parts_done++;
  g_cond_broadcast (&g->cond);
  g_mutex_unlock (&g->lock);
  for (guint s = 0; s < DF_SECTION_COUNT; s++)
    g_byte_array_unref (job->sec[s]);
  if (job->entries)
    g_array_unref (job->entries);
  g_free (job);
}

static void
packer_flush_one (DfGenPacker *pk)
{
  if (pk->cur == NULL)
    return;
  DfGenerator *g = pk->gen;
  g_mutex_lock (&g->lock);
  /* Bound the parts waiting to be compressed. */
  while (g->parts_pending >= 2 * g->jobs && !dfi_gen_failed (g))
    g_cond_wait (&g->cond, &g->lock);
  g->parts_pending++;
  g->progress.parts_total++;
  /* Numbered when complete, in packing order, so two parts filling side by
   * side still get distinct, deterministic numbers. */
  pk->cur->index = g->parts->len;
  DfPart empty = { 0 };
  g_array_append_val (g->parts, empty);
  g_mutex_unlock (&g->lock);
  g_thread_pool_push (pk->pool, pk->cur, NULL);
  pk->cur = NULL;
}

void
dfi_gen_packer_flush (DfGenPacker *pk)
{
  for (guint k = 0; k <= DF_PART_KIND_LAST; k++)
    for (guint i = 0; i < 2; i++)
      {
        pk->cur = pk->slots[k][i];
        packer_flush_one (pk);
        pk->slots[k][i] = NULL;
      }
}

/* Adds an entry whose bytes are @raw (@raw_len bytes, for the raw section)
 * and, for a diff, @diff's other sections. */
void
dfi_gen_packer_add (DfGenPacker *pk, guint8 kind, const DfEntry *entry, const guint8 *raw, gsize raw_len,
                    GByteArray *const *diff, gboolean fast)
{
  DfGenerator *g = pk->gen;
  gsize len = raw_len;
  for (guint s = DF_SECTION_CONTROL; diff && s < DF_SECTION_COUNT; s++)
    len += diff[s]->len;
  /* An incompressible part costs its size twice in apply memory
   * (compressed and decoded): keep it at 3/4 of the part size, so two
   * workers still fit the default 64 MiB budget. */
  gsize limit = fast ? g->opts->part_size / 4 * 3 : g->opts->part_size;
  pk->cur = pk->slots[kind][fast];
  if (pk->cur
      && (pk->cur->size + len > limit || (pk->cur->output > 0 && pk->cur->output + entry->length > DF_PART_OUTPUT_MAX)))
    packer_flush_one (pk);
  if (pk->cur == NULL)
    {
      pk->cur = g_new0 (DfGenPartJob, 1);
      pk->cur->gen = g;
      pk->cur->kind = kind;
      pk->cur->level = fast ? MIN (DF_FAST_LEVEL, g->opts->level) : g->opts->level;
      for (guint s = 0; s < DF_SECTION_COUNT; s++)
        pk->cur->sec[s] = g_byte_array_new ();
      pk->cur->size = DF_PART_TABLE_LEN;
      pk->cur->entries = g_array_new (FALSE, FALSE, sizeof (DfEntry));
    }
  g_byte_array_append (pk->cur->sec[DF_SECTION_RAW], raw, raw_len);
  for (guint s = DF_SECTION_CONTROL; diff && s < DF_SECTION_COUNT; s++)
    g_byte_array_append (pk->cur->sec[s], diff[s]->data, diff[s]->len);
  pk->cur->size += len;
  pk->cur->output += entry->length;
  g_array_append_vals (pk->cur->entries, entry, 1);
  pk->slots[kind][fast] = pk->cur;
  pk->cur = NULL;
}
