/* The decoders of a stock apply: how many fit in the memory budget, and
 * the pipeline in which they decode parts (xz) into temporary files ahead
 * of the rebuilding thread, each part read from the part source once it
 * is there. */
#include "df-apply-stock-private.h"

#include <fcntl.h>
#include <unistd.h>

/* Decodes part @i into @fd (a temporary file reused from part to part, so
 * its pages are reused rather than freed and taken again). */
static gboolean
decode_part (const DfStockSuperblock *sb, guint i, int delta_dfd, int copy_dfd, int fd, guint64 *len,
             DfStockDecoder *dec, GCancellable *c, GError **error)
{
  dfi_autofd pfd = -1;
  if (sb->parts[i].inline_data == NULL)
    {
      char name[16], what[32];
      g_snprintf (name, sizeof name, "%u", i);
      g_snprintf (what, sizeof what, "part %u", i);
      pfd = dfi_open_regular (delta_dfd, name, what, NULL, error);
      if (pfd < 0)
        return FALSE;
    }
  return dfi_stock_part_decode (sb, i, pfd, copy_dfd, fd, len, dec, c, error);
}

/* The budget less the reserve, the rebuilding thread and the parsed
 * superblock: what the decoders and the trust walk share. */
static guint64
stock_avail (const DfStockSuperblock *sb, guint64 memory)
{
  guint64 fixed = DF_APPLY_RESERVE + DF_STOCK_REBUILD_MEM + sb->memory;
  return memory > fixed ? memory - fixed : 0;
}

guint
dfi_stock_decoders (const DfStockSuperblock *sb, guint64 memory, guint jobs)
{
  /* Without a number of jobs, the rebuilding thread keeps a processor of
   * its own: on two processors a second decoder only takes turns with it
   * (measured: no faster, 30 MiB more). */
  guint cpus = jobs ? jobs : MAX (dfi_ncpus (), 2) - 1;
  return (guint)CLAMP (stock_avail (sb, memory) / DF_STOCK_DECODER_MEM, 1, cpus);
}

gboolean
dfi_stock_check_memory (const DfStockSuperblock *sb, guint64 memory, GError **error)
{
  if (stock_avail (sb, memory) >= DF_STOCK_DECODER_MEM)
    return TRUE;
  return dfi_throw (
      error, DF_ERROR_INVALID_ARGUMENT,
      "the stock delta needs %" G_GUINT64_FORMAT " MiB (superblock %" G_GUINT64_FORMAT
      ", an xz decoder %u, rebuilding %u), more than the memory budget of %" G_GUINT64_FORMAT " MiB allows",
      (DF_APPLY_RESERVE + DF_STOCK_REBUILD_MEM + sb->memory + DF_STOCK_DECODER_MEM) / DF_MIB + 1, sb->memory / DF_MIB,
      (guint)(DF_STOCK_DECODER_MEM / DF_MIB), (guint)(DF_STOCK_REBUILD_MEM / DF_MIB), memory / DF_MIB);
}

guint64
dfi_stock_payload_staging (const DfStockSuperblock *sb, guint decoders)
{
  /* A payload is at most dfi_stock_payload_max() (about as large as the
   * objects it makes: the data of new files, or bsdiff patches as long as
   * their targets); decoding stops there. Decoded parts wait
   * up to DF_STOCK_AHEAD_MAX, plus one in each decoder and the one being
   * rebuilt. Their files are reused, never shrunk. */
  guint64 total = 0, largest = 0;
  for (guint i = 0; i < sb->n_parts; i++)
    {
      guint64 most = dfi_stock_payload_max (&sb->parts[i]);
      total += most;
      largest = MAX (largest, most);
    }
  return MIN (total, DF_STOCK_AHEAD_MAX + (guint64)(decoders + 1) * largest);
}

gpointer
dfi_stock_decoder_thread (gpointer data)
{
  Pipe *pp = data;
  g_autoptr (DfStockDecoder) dec = dfi_stock_decoder_new ();
  for (;;)
    {
      g_mutex_lock (&pp->lock);
      while (pp->next < pp->n_plan && pp->next >= pp->n_meta && pp->ahead > DF_STOCK_AHEAD_MAX && !pp->stop)
        g_cond_wait (&pp->cond, &pp->lock);
      guint k = pp->next;
      gboolean stop = pp->stop || k >= pp->n_plan;
      int fd = -1;
      if (!stop)
        {
          pp->next++;
          if (pp->pool->len > 0)
            {
              fd = g_array_index (pp->pool, int, pp->pool->len - 1);
              g_array_set_size (pp->pool, pp->pool->len - 1);
            }
        }
      g_mutex_unlock (&pp->lock);
      if (stop)
        break;
      guint i = pp->plan[k];
      GError *local = NULL;
      guint64 len = 0;
      gboolean ok = TRUE;
      if (pp->src->wait && pp->sb->parts[i].inline_data == NULL)
        ok = pp->src->wait (i, pp->src->data, &local);
      if (ok && fd < 0 && (fd = openat (pp->tmp_dfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600)) < 0)
        ok = dfi_throw_errno (&local, errno, "creating a temporary file in the repository");
      if (ok)
        ok = decode_part (pp->sb, i, pp->src->dfd, pp->src->private_parts ? -1 : pp->tmp_dfd, fd, &len, dec, pp->c,
                          &local);
      g_mutex_lock (&pp->lock);
      if (ok)
        pp->fd[k] = fd, pp->len[k] = len, pp->ahead += len;
      else
        {
          if (fd >= 0)
            close (fd);
          if (pp->error == NULL)
            pp->error = local;
          else
            g_error_free (local);
          pp->stop = TRUE;
        }
      g_cond_broadcast (&pp->cond);
      g_mutex_unlock (&pp->lock);
      if (!ok)
        break;
    }
  return NULL;
}

/* Waits until plan entry @k is decoded. */
gboolean
dfi_stock_pipe_wait (Pipe *pp, guint k, GError **error)
{
  g_mutex_lock (&pp->lock);
  while (pp->fd[k] < 0 && pp->error == NULL)
    g_cond_wait (&pp->cond, &pp->lock);
  gboolean ok = pp->fd[k] >= 0;
  if (!ok)
    g_propagate_error (error, g_error_copy (pp->error));
  g_mutex_unlock (&pp->lock);
  return ok;
}

/* Waits until a plan entry the rebuilding thread has not taken yet is
 * decoded, the earliest in the plan when several are; *@out is its index,
 * or G_MAXUINT when every entry is taken. */
gboolean
dfi_stock_pipe_take (Pipe *pp, guint *out, GError **error)
{
  g_mutex_lock (&pp->lock);
  *out = G_MAXUINT;
  gboolean ok = TRUE;
  for (;;)
    {
      gboolean left = FALSE;
      for (guint k = 0; k < pp->n_plan && *out == G_MAXUINT; k++)
        if (!pp->taken[k])
          {
            left = TRUE;
            if (pp->fd[k] >= 0)
              *out = k;
          }
      if (*out != G_MAXUINT || !left)
        break;
      if (pp->error)
        {
          g_propagate_error (error, g_error_copy (pp->error));
          ok = FALSE;
          break;
        }
      g_cond_wait (&pp->cond, &pp->lock);
    }
  if (*out != G_MAXUINT)
    pp->taken[*out] = TRUE;
  g_mutex_unlock (&pp->lock);
  return ok;
}

/* Plan entry @k is done with: its file goes back to the pool. */
void
dfi_stock_pipe_release (Pipe *pp, guint k)
{
  g_mutex_lock (&pp->lock);
  pp->taken[k] = TRUE;
  if (pp->fd[k] >= 0)
    {
      g_array_append_val (pp->pool, pp->fd[k]);
      pp->fd[k] = -1;
      pp->ahead -= pp->len[k];
    }
  g_cond_broadcast (&pp->cond);
  g_mutex_unlock (&pp->lock);
}
