/* Encoding content objects on the encode pool: each object becomes a
 * sequence of entries (a header-only entry, a rebuild entry, chunks stored
 * raw or as a diff against an old object), handed to the packer in order
 * through the object's queue (see df-gen-encode.h).
 *
 * Chunks of large objects are spread over the whole pool, but the bytes of
 * every entry are the same as when one worker encodes them, so the output
 * does not depend on the timing. */
#include "df-generator.h"
#include "df-bsdiff.h"
#include "df-gen-rebuild.h"

/* Raw chunks of at least this size that a fast zstd pass leaves at this
 * percentage or more (already-compressed data: initrd, kernel image, .gz)
 * go into parts compressed at DF_FAST_LEVEL (df-gen-pack.c): a high level
 * would spend minutes on them for nothing. */
#define DF_INCOMPRESSIBLE_MIN (64 * 1024)
#define DF_INCOMPRESSIBLE_PERCENT 95

DfGenEncoded *
dfi_gen_encoded_new (const DfEntry *base)
{
  DfGenEncoded *e = g_new0 (DfGenEncoded, 1);
  e->entry = *base;
  for (guint s = 0; s < DF_SECTION_COUNT; s++)
    e->sec[s] = g_byte_array_new ();
  return e;
}

gsize
dfi_gen_encoded_size (const DfGenEncoded *e)
{
  gsize n = 0;
  for (guint s = 0; s < DF_SECTION_COUNT; s++)
    n += e->sec[s]->len;
  return n;
}

void
dfi_gen_encoded_free (DfGenEncoded *e)
{
  for (guint s = 0; s < DF_SECTION_COUNT; s++)
    g_byte_array_unref (e->sec[s]);
  g_free (e);
}

/* ---------------------------------------------------------------------- */
/* Reading objects in order                                                 */

/* Gives windows [off, off+len) of a stream with non-decreasing offsets, so
 * compressed (archive-mode) objects are read once, front to back. */
typedef struct
{
  GInputStream *in;
  guint8 *buf;
  gsize cap;
  guint64 start;
  gsize len;
} SeqReader;

static void
seq_reader_init (SeqReader *r, GInputStream *in, gsize cap)
{
  r->in = g_object_ref (in);
  r->buf = g_malloc (cap ? cap : 1);
  r->cap = cap;
  r->start = 0;
  r->len = 0;
}

static void
seq_reader_clear (SeqReader *r)
{
  g_clear_object (&r->in);
  g_clear_pointer (&r->buf, g_free);
}

static gboolean
seq_reader_window (SeqReader *r, guint64 off, gsize len, const guint8 **out, GCancellable *c, GError **error)
{
  g_assert (off >= r->start && len <= r->cap);
  guint64 end = r->start + r->len;
  if (off >= end)
    {
      guint64 skip = off - end;
      while (skip > 0)
        {
          gssize n = g_input_stream_skip (r->in, MIN (skip, (guint64)G_MAXSSIZE), c, error);
          if (n < 0)
            return FALSE;
          if (n == 0)
            return dfi_throw (error, DF_ERROR_IO, "object ended early");
          skip -= n;
        }
      r->len = 0;
    }
  else
    {
      gsize drop = off - r->start;
      memmove (r->buf, r->buf + drop, r->len - drop);
      r->len -= drop;
    }
  r->start = off;
  if (r->len < len)
    {
      gsize got = 0;
      if (!g_input_stream_read_all (r->in, r->buf + r->len, len - r->len, &got, c, error))
        return FALSE;
      r->len += got;
      if (r->len < len)
        return dfi_throw (error, DF_ERROR_IO, "object ended early");
    }
  *out = r->buf;
  return TRUE;
}

/* ---------------------------------------------------------------------- */
/* Encoding                                                                 */

static gsize
quick_size (const guint8 *data, gsize len)
{
  gsize cap = ZSTD_compressBound (len);
  g_autofree guint8 *out = g_malloc (cap);
  size_t r = ZSTD_compress (out, cap, data, len, 3);
  return ZSTD_isError (r) ? len : r;
}

/* Chooses how to store @len new bytes given old bytes @src: raw or as a
 * diff, both compressed later with the rest of the part; sizes are
 * estimated with a fast zstd pass. A diff is appended to @e's sections and
 * TRUE returned; FALSE means store raw. (zstd patch-from, encoding 1, is
 * not generated: on a Debian OS update it saved 0.1 % over diffs for twice
 * the time; apply still reads it.) */
static gboolean
encode_against (const guint8 *data, gsize len, const guint8 *src, gsize src_len, DfGenEncoded *e)
{
  gsize est_raw = quick_size (data, len);
  e->incompressible = len >= DF_INCOMPRESSIBLE_MIN && est_raw * 100 >= len * DF_INCOMPRESSIBLE_PERCENT;
  /* The diff goes straight into @e's sections, and is cut off again when
   * raw is smaller. */
  gsize mark[DF_SECTION_COUNT];
  for (guint s = 0; s < DF_SECTION_COUNT; s++)
    mark[s] = e->sec[s]->len;
  gboolean use = FALSE;
  if (dfi_bsdiff (src, src_len, data, len, e->sec))
    {
      /* Estimate the sections as they will sit in the part: one after
       * another. */
      g_autoptr (GByteArray) all = g_byte_array_new ();
      for (guint s = DF_SECTION_CONTROL; s < DF_SECTION_COUNT; s++)
        g_byte_array_append (all, e->sec[s]->data + mark[s], e->sec[s]->len - mark[s]);
      use = quick_size (all->data, all->len) < est_raw;
    }
  if (!use)
    for (guint s = 0; s < DF_SECTION_COUNT; s++)
      g_byte_array_set_size (e->sec[s], mark[s]);
  return use;
}

static void
item_push (DfGenItem *it, DfGenEncoded *e)
{
  DfGenerator *g = it->gen;
  g_mutex_lock (&g->lock);
  /* Back-pressure: a worker ahead of the packer waits here; the packer
   * always drains the lowest unfinished item, whose worker started first,
   * so this cannot deadlock. */
  while (it->out_bytes > 2 * g->opts->part_size && !dfi_gen_failed (g))
    g_cond_wait (&g->cond, &g->lock);
  g_queue_push_tail (&it->out, e);
  it->out_bytes += dfi_gen_encoded_size (e);
  g_cond_broadcast (&g->cond);
  g_mutex_unlock (&g->lock);
}

/* @off × @num ÷ @den (@off < @den) in integers only, so every build host
 * picks the same window (long double is 80 bits on x86 and 128 on
 * aarch64). Exact while both factors fit 32 bits; beyond that, through
 * the fraction @off ÷ @den taken to 32 bits. */
static guint64
scale_offset (guint64 off, guint64 num, guint64 den)
{
  if (off <= G_MAXUINT32 && num <= G_MAXUINT32)
    return off * num / den;
  guint shift = 0;
  while ((den >> shift) > G_MAXUINT32)
    shift++;
  guint64 frac = ((off >> shift) << 32) / MAX (den >> shift, 1); /* < 2^32 */
  return (num >> 32) * frac + (((num & G_MAXUINT32) * frac) >> 32);
}

/* One chunk of an object: its new bytes and, when it has a source, the
 * window of old bytes to diff against, copied so the chunk can be encoded
 * by any worker while the object's own worker reads on. */
typedef struct
{
  guint kind; /* DF_GEN_TASK_CHUNK */
  DfGenItem *it;
  guint64 off; /* in the object */
  const guint8 *data;
  gsize len;
  const guint8 *src; /* NULL: no source */
  gsize src_len;
  guint64 src_off;
  guint8 *copy; /* owns data and src when queued */
  DfGenEncoded *e;
  gint state; /* CHUNK_QUEUED, CHUNK_RUNNING, CHUNK_DONE; under gen->lock */
  gint refs;  /* the object's worker and the pool's queue */
} ChunkTask;

static void
chunk_unref (ChunkTask *t)
{
  if (g_atomic_int_dec_and_test (&t->refs))
    {
      g_free (t->copy);
      g_free (t);
    }
}

enum
{
  CHUNK_QUEUED,
  CHUNK_RUNNING,
  CHUNK_DONE
};

/* Objects of at least this many chunks have their chunks encoded by every
 * worker of the pool (two per job in flight per object): one large image
 * would otherwise keep a single core busy. */
#define DF_CHUNK_SPREAD_MIN 4

static void
encode_chunk (ChunkTask *t)
{
  DfGenEncoded *e = t->e;
  gboolean patched = FALSE;
  if (t->src)
    {
      patched = encode_against (t->data, t->len, t->src, t->src_len, e);
      if (patched)
        {
          e->entry.encoding = DF_ENCODING_DIFF;
          e->entry.has_source = TRUE;
          ostree_checksum_inplace_to_bytes (t->it->source, e->entry.source);
          e->entry.src_offset = t->src_off;
          e->entry.src_length = t->src_len;
        }
    }
  else if (t->len >= DF_INCOMPRESSIBLE_MIN)
    e->incompressible = quick_size (t->data, t->len) * 100 >= t->len * DF_INCOMPRESSIBLE_PERCENT;
  if (!patched)
    g_byte_array_append (e->sec[DF_SECTION_RAW], t->data, t->len);
  e->entry.data_size = e->sec[DF_SECTION_RAW]->len;
}

/* Runs @t unless another worker has taken it; TRUE if this call ran it. */
static gboolean
chunk_claim_run (ChunkTask *t)
{
  DfGenerator *g = t->it->gen;
  g_mutex_lock (&g->lock);
  gboolean mine = t->state == CHUNK_QUEUED;
  if (mine)
    t->state = CHUNK_RUNNING;
  g_mutex_unlock (&g->lock);
  if (!mine)
    return FALSE;
  encode_chunk (t);
  g_mutex_lock (&g->lock);
  t->state = CHUNK_DONE;
  g_cond_broadcast (&g->cond);
  g_mutex_unlock (&g->lock);
  return TRUE;
}

/* Finishes the object's chunks in flight (@inflight, oldest first) until
 * at most @keep remain: the object's own worker runs any chunk no other
 * worker has started (so it never waits on a queued task, and the pool
 * cannot deadlock), waits only when all of them are running elsewhere,
 * and hands finished entries to the packer in order. */
static void
chunks_drain (DfGenerator *g, GQueue *inflight, guint keep)
{
  while (g_queue_get_length (inflight) > keep)
    {
      ChunkTask *head = g_queue_peek_head (inflight);
      g_mutex_lock (&g->lock);
      gboolean head_done = head->state == CHUNK_DONE;
      g_mutex_unlock (&g->lock);
      if (head_done)
        {
          g_queue_pop_head (inflight);
          item_push (head->it, head->e);
          head->e = NULL;
          chunk_unref (head);
          continue;
        }
      gboolean ran = FALSE;
      for (GList *l = inflight->head; l && !ran; l = l->next)
        ran = chunk_claim_run (l->data);
      if (ran)
        continue;
      g_mutex_lock (&g->lock);
      while (head->state != CHUNK_DONE)
        g_cond_wait (&g->cond, &g->lock);
      g_mutex_unlock (&g->lock);
    }
}

/* The pool runs chunks before whole objects (they hold up an object that
 * has started), each kind in order. */
gint
dfi_gen_encode_task_order (gconstpointer a, gconstpointer b, gpointer user_data)
{
  guint ka = *(const guint *)a, kb = *(const guint *)b;
  if (ka != kb)
    return ka == DF_GEN_TASK_CHUNK ? -1 : 1;
  if (ka == DF_GEN_TASK_CHUNK)
    {
      const ChunkTask *x = a, *y = b;
      if (x->it->index != y->it->index)
        return x->it->index < y->it->index ? -1 : 1;
      return x->off < y->off ? -1 : x->off > y->off;
    }
  const DfGenItem *x = a, *y = b;
  return x->index < y->index ? -1 : x->index > y->index;
}

/* Loads content object @it and returns its header (ownership, mode,
 * xattrs, symlink target): the first bytes of its first entry. @out_in:
 * the object's content stream. */
static GBytes *
item_header (DfGenItem *it, GInputStream **out_in, GError **error)
{
  DfGenerator *g = it->gen;
  g_autoptr (GFileInfo) info = NULL;
  g_autoptr (GVariant) xattrs = NULL;
  if (!ostree_repo_load_file (g->repo, it->csum, out_in, &info, &xattrs, g->cancellable, error))
    return NULL;
  const char *target = it->is_symlink ? g_file_info_get_symlink_target (info) : "";
  g_autoptr (GBytes) header = dfi_content_header_serialize (
      g_file_info_get_attribute_uint32 (info, "unix::uid"), g_file_info_get_attribute_uint32 (info, "unix::gid"),
      g_file_info_get_attribute_uint32 (info, "unix::mode"), xattrs, target);
  if (g_bytes_get_size (header) > DF_HEADER_MAX)
    {
      dfi_throw (error, DF_ERROR_FAILED, "object %s: header of %zu bytes exceeds the format's limit", it->csum,
                 g_bytes_get_size (header));
      return NULL;
    }
  return g_steal_pointer (&header);
}

/* With rebuilt variants: analyses @it, keeps what was found for the
 * superblock, and when the object can be rebuilt queues its rebuild entry;
 * its plain entries then go to alternative parts (@pkind). @out_done: the
 * object needs no plain entries. */
static gboolean
encode_rebuild (DfGenItem *it, const DfEntry *base, GBytes *header, guint8 *pkind, gboolean *out_done, GError **error)
{
  DfGenerator *g = it->gen;
  DfGenRebuildResult *res = g_new0 (DfGenRebuildResult, 1);
  if (!dfi_gen_rebuild_analyze (g->rebuild, it->csum, it->size, it->source[0] ? it->source : NULL, res, g->cancellable,
                                error))
    {
      dfi_gen_rebuild_result_clear (res);
      g_free (res);
      return FALSE;
    }
  gboolean transformed = res->transformed;
  if (transformed)
    {
      DfGenEncoded *e = dfi_gen_encoded_new (base);
      e->part_kind = DF_PART_KIND_REBUILD;
      e->entry.encoding = DF_ENCODING_REBUILD;
      e->entry.length = it->size;
      e->entry.src_length = res->content_total;
      g_byte_array_append (e->sec[DF_SECTION_RAW], g_bytes_get_data (header, NULL), g_bytes_get_size (header));
      g_byte_array_append (e->sec[DF_SECTION_RAW], g_bytes_get_data (res->program, NULL),
                           g_bytes_get_size (res->program));
      e->entry.data_size = e->sec[DF_SECTION_RAW]->len;
      g_clear_pointer (&res->program, g_bytes_unref);
      item_push (it, e);
      *pkind = DF_PART_KIND_ALTERNATIVE;
    }
  g_mutex_lock (&g->lock);
  if (res->found)
    g_hash_table_replace (g->rebuilds, g_strdup (it->csum), res);
  g_mutex_unlock (&g->lock);
  if (!res->found)
    {
      dfi_gen_rebuild_result_clear (res);
      g_free (res);
    }
  *out_done = transformed && g->opts->variants == DF_VARIANTS_TRANSFORMED;
  return TRUE;
}

/* A new chunk task for the @len bytes at @off of @it, @data; the first
 * chunk's entry begins with the object's @header. */
static ChunkTask *
chunk_new (DfGenItem *it, const DfEntry *base, guint8 pkind, guint64 off, const guint8 *data, gsize len, GBytes *header)
{
  ChunkTask *t = g_new0 (ChunkTask, 1);
  t->kind = DF_GEN_TASK_CHUNK;
  t->it = it;
  t->off = off;
  t->e = dfi_gen_encoded_new (base);
  t->e->part_kind = pkind;
  t->e->entry.offset = off;
  t->e->entry.length = len;
  if (off == 0)
    g_byte_array_append (t->e->sec[DF_SECTION_RAW], g_bytes_get_data (header, NULL), g_bytes_get_size (header));
  t->data = data;
  t->len = len;
  return t;
}

/* Reads the window of old bytes that chunk @t is diffed against from
 * @src_rd (the item's source). */
static gboolean
chunk_source (ChunkTask *t, SeqReader *src_rd, GError **error)
{
  DfGenItem *it = t->it;
  /* The old bytes most likely to match sit at the same relative
   * position; centre a window there. */
  guint64 win = MIN (it->source_size, (guint64)DF_SOURCE_WINDOW);
  guint64 centre = scale_offset (t->off, it->source_size, it->size);
  guint64 margin = (win > t->len) ? (win - t->len) / 2 : 0;
  guint64 soff = centre > margin ? centre - margin : 0;
  if (soff + win > it->source_size)
    soff = it->source_size - win;
  if (soff < src_rd->start)
    soff = src_rd->start; /* windows only move forward */
  const guint8 *src;
  if (!seq_reader_window (src_rd, soff, win, &src, it->gen->cancellable, error))
    return FALSE;
  t->src = src;
  t->src_len = win;
  t->src_off = soff;
  return TRUE;
}

/* Queues @t for any worker of the pool, with copies of its bytes (the
 * readers move on), then finishes chunks in flight down to two per job. */
static void
chunk_spread (DfGenerator *g, ChunkTask *t, GQueue *inflight)
{
  t->copy = g_malloc (t->len + t->src_len);
  memcpy (t->copy, t->data, t->len);
  t->data = t->copy;
  if (t->src)
    {
      memcpy (t->copy + t->len, t->src, t->src_len);
      t->src = t->copy + t->len;
    }
  t->refs = 2;
  g_queue_push_tail (inflight, t);
  g_thread_pool_push (g->encode_pool, t, NULL);
  chunks_drain (g, inflight, 2 * g->jobs - 1);
}

/* Encodes @it's content, read from @in, chunk by chunk: raw or against
 * the item's source. */
static gboolean
encode_chunks (DfGenItem *it, GInputStream *in, const DfEntry *base, GBytes *header, guint8 pkind, GError **error)
{
  DfGenerator *g = it->gen;
  GCancellable *c = g->cancellable;
  SeqReader rd, src_rd = { 0 };
  seq_reader_init (&rd, in, MIN (it->size, (guint64)DF_CHUNK_SIZE));
  g_autoptr (GInputStream) src_in = NULL;
  gboolean ok = TRUE, has_source = it->source[0] != '\0';
  if (has_source)
    {
      if (!ostree_repo_load_file (g->repo, it->source, &src_in, NULL, NULL, c, error))
        {
          seq_reader_clear (&rd);
          return FALSE;
        }
      seq_reader_init (&src_rd, src_in, MIN (it->source_size, (guint64)DF_SOURCE_WINDOW));
    }
  /* Large objects: chunks are copied out and queued for any worker, at
   * most two per job in flight; the entries still reach the packer in
   * order, and they are the same bytes as when encoded here. */
  gboolean spread = g->jobs > 1 && it->size >= DF_CHUNK_SPREAD_MIN * (guint64)DF_CHUNK_SIZE;
  g_autoptr (GQueue) inflight = g_queue_new ();
  for (guint64 off = 0; ok && off < it->size; off += DF_CHUNK_SIZE)
    {
      if (g_cancellable_set_error_if_cancelled (c, error))
        {
          ok = FALSE;
          break;
        }
      gsize len = MIN ((guint64)DF_CHUNK_SIZE, it->size - off);
      const guint8 *data;
      if (!seq_reader_window (&rd, off, len, &data, c, error))
        {
          ok = FALSE;
          break;
        }
      ChunkTask *t = chunk_new (it, base, pkind, off, data, len, header);
      if (has_source && !chunk_source (t, &src_rd, error))
        {
          dfi_gen_encoded_free (t->e);
          g_free (t);
          ok = FALSE;
          break;
        }
      if (!spread)
        {
          encode_chunk (t);
          item_push (it, t->e);
          g_free (t);
          continue;
        }
      chunk_spread (g, t, inflight);
    }
  /* Every queued chunk is finished (even after an error: the pool still
   * holds pointers to them). */
  chunks_drain (g, inflight, 0);
  seq_reader_clear (&rd);
  if (src_rd.in)
    seq_reader_clear (&src_rd);
  return ok;
}

static gboolean
encode_item (DfGenItem *it, GError **error)
{
  DfGenerator *g = it->gen;
  g_autoptr (GInputStream) in = NULL;
  g_autoptr (GBytes) header = item_header (it, &in, error);
  if (header == NULL)
    return FALSE;

  DfEntry base = { .objtype = OSTREE_OBJECT_TYPE_FILE, .object_size = it->size };
  ostree_checksum_inplace_to_bytes (it->csum, base.checksum);
  guint8 pkind = DF_PART_KIND_CONTENT;
  if (g->rebuild && !it->is_symlink && it->size > 0)
    {
      gboolean done = FALSE;
      if (!encode_rebuild (it, &base, header, &pkind, &done, error))
        return FALSE;
      if (done)
        return TRUE;
    }
  if (it->is_symlink || it->size == 0)
    {
      DfGenEncoded *e = dfi_gen_encoded_new (&base);
      g_byte_array_append (e->sec[DF_SECTION_RAW], g_bytes_get_data (header, NULL), g_bytes_get_size (header));
      e->entry.data_size = e->sec[DF_SECTION_RAW]->len;
      item_push (it, e);
      return TRUE;
    }
  return encode_chunks (it, in, &base, header, pkind, error);
}
void
dfi_gen_encode_worker (gpointer data, gpointer user_data)
{
  if (*(guint *)data == DF_GEN_TASK_CHUNK)
    {
      /* Finished by its object's worker; ran here only if not started. */
      chunk_claim_run (data);
      chunk_unref (data);
      return;
    }
  DfGenItem *it = data;
  DfGenerator *g = it->gen;
  GError *local = NULL;
  if (!dfi_gen_failed (g) && !encode_item (it, &local))
    {
      g_prefix_error (&local, "encoding %s: ", it->csum);
      dfi_gen_fail (g, local);
    }
  g_mutex_lock (&g->lock);
  it->done = TRUE;
  g_cond_broadcast (&g->cond);
  g_mutex_unlock (&g->lock);
}
