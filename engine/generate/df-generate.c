/* Delta generation: walk both commits, pair new content with old, encode
 * objects on a thread pool, pack entries into parts in a fixed order,
 * compress parts on a second pool, write the superblock and index last.
 *
 * Determinism: the order of entries and the part boundaries depend only on
 * the two trees and the options; threads only fill in slots that the packer
 * consumes in order, so the output is the same whatever the timing. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "df-generate-private.h"
#include "df-gen-rebuild.h"
#include "df-bsdiff.h"
#include "df-pairing.h"
#include "df-part.h"
#include "df-superblock.h"

struct _DfGenerateOptions
{
  char *from;
  gboolean empty;
  char *to;
  char *out_dir;
  guint jobs;
  int level;
  guint64 part_size;
  char *sign_key;
  DfDeltaFormat format;
  DfVariants variants;
  DfProgressFunc progress;
  gpointer progress_data;
};

DfGenerateOptions *
df_generate_options_new (void)
{
  DfGenerateOptions *o = g_new0 (DfGenerateOptions, 1);
  o->level = DF_DEFAULT_LEVEL;
  o->part_size = DF_PART_SIZE_DEFAULT;
  return o;
}

void
df_generate_options_free (DfGenerateOptions *o)
{
  if (o == NULL)
    return;
  g_free (o->from);
  g_free (o->to);
  g_free (o->out_dir);
  g_free (o->sign_key);
  g_free (o);
}

void
df_generate_options_set_from (DfGenerateOptions *o, const char *rev)
{
  g_free (o->from);
  o->from = g_strdup (rev);
}

void
df_generate_options_set_empty (DfGenerateOptions *o, gboolean empty)
{
  o->empty = empty;
}

void
df_generate_options_set_to (DfGenerateOptions *o, const char *rev)
{
  g_free (o->to);
  o->to = g_strdup (rev);
}

void
df_generate_options_set_out_dir (DfGenerateOptions *o, const char *dir)
{
  g_free (o->out_dir);
  o->out_dir = g_strdup (dir);
}

void
df_generate_options_set_jobs (DfGenerateOptions *o, guint jobs)
{
  o->jobs = jobs;
}

void
df_generate_options_set_level (DfGenerateOptions *o, int level)
{
  o->level = level;
}

void
df_generate_options_set_part_size (DfGenerateOptions *o, guint64 bytes)
{
  o->part_size = bytes;
}

void
df_generate_options_set_variants (DfGenerateOptions *o, DfVariants variants)
{
  o->variants = variants;
}

void
df_generate_options_set_format (DfGenerateOptions *o, DfDeltaFormat format)
{
  o->format = format;
}

void
df_generate_options_set_sign_key (DfGenerateOptions *o, const char *path)
{
  g_free (o->sign_key);
  o->sign_key = g_strdup (path);
}

void
df_generate_options_set_progress (DfGenerateOptions *o, DfProgressFunc func, gpointer data)
{
  o->progress = func;
  o->progress_data = data;
}

/* ---------------------------------------------------------------------- */
/* Walking commits                                                          */

typedef struct
{
  guint8 objtype;
  char csum[65];
} ObjKey;

typedef struct
{
  char *path;
  char csum[65];
} FileRef;

static void
file_ref_free (FileRef *f)
{
  g_free (f->path);
  g_free (f);
}

typedef struct
{
  OstreeRepo *repo;
  GHashTable *seen;    /* "csum.type" of every object reached */
  GPtrArray *metadata; /* ObjKey*, pre-order, first occurrence */
  GPtrArray *files;    /* FileRef*, pre-order, every path */
} Walk;

static gboolean
walk_dir (Walk *w, const char *path, const char *tree, const char *meta, guint depth, GError **error)
{
  if (depth > DF_TREE_DEPTH_MAX)
    return df_throw (error, DF_ERROR_FAILED, "directory nesting deeper than %d at %s", DF_TREE_DEPTH_MAX, path);
  const struct
  {
    OstreeObjectType t;
    const char *c;
  } objs[] = { { OSTREE_OBJECT_TYPE_DIR_META, meta }, { OSTREE_OBJECT_TYPE_DIR_TREE, tree } };
  for (guint i = 0; i < 2; i++)
    {
      char *key = g_strdup_printf ("%s.%d", objs[i].c, objs[i].t);
      if (g_hash_table_add (w->seen, key))
        {
          ObjKey *k = g_new0 (ObjKey, 1);
          k->objtype = objs[i].t;
          memcpy (k->csum, objs[i].c, 65);
          g_ptr_array_add (w->metadata, k);
        }
    }
  g_autoptr (GVariant) dirtree = NULL;
  if (!ostree_repo_load_variant (w->repo, OSTREE_OBJECT_TYPE_DIR_TREE, tree, &dirtree, error))
    return FALSE;
  g_autoptr (GVariant) files = g_variant_get_child_value (dirtree, 0);
  g_autoptr (GVariant) dirs = g_variant_get_child_value (dirtree, 1);
  /* Identical subtrees share one dirtree; paths still matter for pairing
   * so files are listed for every occurrence, but a tree seen before adds
   * no new objects. */
  gsize n = g_variant_n_children (files);
  for (gsize i = 0; i < n; i++)
    {
      const char *name;
      g_autoptr (GVariant) csum = NULL;
      g_variant_get_child (files, i, "(&s@ay)", &name, &csum);
      FileRef *f = g_new0 (FileRef, 1);
      f->path = g_build_filename (path, name, NULL);
      ostree_checksum_inplace_from_bytes (ostree_checksum_bytes_peek (csum), f->csum);
      char *key = g_strdup_printf ("%s.%d", f->csum, OSTREE_OBJECT_TYPE_FILE);
      g_hash_table_add (w->seen, key);
      g_ptr_array_add (w->files, f);
    }
  n = g_variant_n_children (dirs);
  for (gsize i = 0; i < n; i++)
    {
      const char *name;
      g_autoptr (GVariant) tcsum = NULL, mcsum = NULL;
      g_variant_get_child (dirs, i, "(&s@ay@ay)", &name, &tcsum, &mcsum);
      char t[65], m[65];
      ostree_checksum_inplace_from_bytes (ostree_checksum_bytes_peek (tcsum), t);
      ostree_checksum_inplace_from_bytes (ostree_checksum_bytes_peek (mcsum), m);
      g_autofree char *sub = g_build_filename (path, name, NULL);
      if (!walk_dir (w, sub, t, m, depth + 1, error))
        return FALSE;
    }
  return TRUE;
}

static void
walk_clear (Walk *w)
{
  g_clear_pointer (&w->seen, g_hash_table_unref);
  g_clear_pointer (&w->metadata, g_ptr_array_unref);
  g_clear_pointer (&w->files, g_ptr_array_unref);
}

static gboolean
walk_commit (OstreeRepo *repo, const char *commit, GVariant **out_commit, Walk *w, GError **error)
{
  w->repo = repo;
  w->seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  w->metadata = g_ptr_array_new_with_free_func (g_free);
  w->files = g_ptr_array_new_with_free_func ((GDestroyNotify)file_ref_free);
  g_autoptr (GVariant) cv = NULL;
  if (!ostree_repo_load_variant (repo, OSTREE_OBJECT_TYPE_COMMIT, commit, &cv, error))
    return FALSE;
  g_autoptr (GVariant) tree = g_variant_get_child_value (cv, 6);
  g_autoptr (GVariant) meta = g_variant_get_child_value (cv, 7);
  char t[65], m[65];
  ostree_checksum_inplace_from_bytes (ostree_checksum_bytes_peek (tree), t);
  ostree_checksum_inplace_from_bytes (ostree_checksum_bytes_peek (meta), m);
  if (!walk_dir (w, "/", t, m, 0, error))
    return FALSE;
  if (out_commit)
    *out_commit = g_steal_pointer (&cv);
  return TRUE;
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
            return df_throw (error, DF_ERROR_IO, "object ended early");
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
        return df_throw (error, DF_ERROR_IO, "object ended early");
    }
  *out = r->buf;
  return TRUE;
}

/* ---------------------------------------------------------------------- */
/* Encoding                                                                 */

typedef struct
{
  DfEntry entry;
  GByteArray *sec[DF_SECTION_COUNT]; /* the entry's bytes for each section of its part */
  gboolean incompressible;           /* stored raw and a fast zstd pass barely shrinks it */
  guint8 part_kind;                  /* DfPartKind: content, rebuild or alternative */
} Encoded;

/* Raw chunks of at least this size that a fast zstd pass leaves at this
 * percentage or more (already-compressed data: initrd, kernel image, .gz)
 * go into parts compressed at DF_FAST_LEVEL: a high level would spend
 * minutes on them for nothing. */
#define DF_INCOMPRESSIBLE_MIN (64 * 1024)
#define DF_INCOMPRESSIBLE_PERCENT 95
#define DF_FAST_LEVEL 3

static Encoded *
encoded_new (const DfEntry *base)
{
  Encoded *e = g_new0 (Encoded, 1);
  e->entry = *base;
  for (guint s = 0; s < DF_SECTION_COUNT; s++)
    e->sec[s] = g_byte_array_new ();
  return e;
}

static gsize
encoded_size (const Encoded *e)
{
  gsize n = 0;
  for (guint s = 0; s < DF_SECTION_COUNT; s++)
    n += e->sec[s]->len;
  return n;
}

static void
encoded_free (Encoded *e)
{
  for (guint s = 0; s < DF_SECTION_COUNT; s++)
    g_byte_array_unref (e->sec[s]);
  g_free (e);
}

typedef struct Generator Generator;

/* What the encode pool runs: a whole object, or one chunk of a large one. */
enum
{
  TASK_ITEM,
  TASK_CHUNK
};

typedef struct
{
  guint kind; /* TASK_ITEM */
  Generator *gen;
  guint index;
  char csum[65];
  guint64 size;
  gboolean is_symlink;
  char source[65]; /* "" when none */
  guint64 source_size;
  /* Filled by the worker, drained by the packer; under gen->lock. */
  GQueue out;
  guint64 out_bytes;
  gboolean done;
} Item;

struct Generator
{
  OstreeRepo *repo;
  const DfGenerateOptions *opts;
  guint jobs;
  GCancellable *cancellable;
  int out_dfd;

  GMutex lock;
  GCond cond;
  GError *error; /* first error of any worker */
  GThreadPool *encode_pool;

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

static void
gen_fail (Generator *g, GError *error)
{
  g_mutex_lock (&g->lock);
  if (g->error == NULL)
    g->error = error;
  else
    g_error_free (error);
  g_cond_broadcast (&g->cond);
  g_mutex_unlock (&g->lock);
  g_cancellable_cancel (g->cancellable);
}

static gboolean
gen_failed (Generator *g)
{
  return g->error != NULL;
}

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
encode_against (const guint8 *data, gsize len, const guint8 *src, gsize src_len, Encoded *e)
{
  gsize est_raw = quick_size (data, len);
  e->incompressible = len >= DF_INCOMPRESSIBLE_MIN && est_raw * 100 >= len * DF_INCOMPRESSIBLE_PERCENT;
  /* The diff goes straight into @e's sections, and is cut off again when
   * raw is smaller. */
  gsize mark[DF_SECTION_COUNT];
  for (guint s = 0; s < DF_SECTION_COUNT; s++)
    mark[s] = e->sec[s]->len;
  gboolean use = FALSE;
  if (df_bsdiff (src, src_len, data, len, e->sec))
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
item_push (Item *it, Encoded *e)
{
  Generator *g = it->gen;
  g_mutex_lock (&g->lock);
  /* Back-pressure: a worker ahead of the packer waits here; the packer
   * always drains the lowest unfinished item, whose worker started first,
   * so this cannot deadlock. */
  while (it->out_bytes > 2 * g->opts->part_size && !gen_failed (g))
    g_cond_wait (&g->cond, &g->lock);
  g_queue_push_tail (&it->out, e);
  it->out_bytes += encoded_size (e);
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
  guint kind; /* TASK_CHUNK */
  Item *it;
  guint64 off; /* in the object */
  const guint8 *data;
  gsize len;
  const guint8 *src; /* NULL: no source */
  gsize src_len;
  guint64 src_off;
  guint8 *copy; /* owns data and src when queued */
  Encoded *e;
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
  Encoded *e = t->e;
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
  Generator *g = t->it->gen;
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
chunks_drain (Generator *g, GQueue *inflight, guint keep)
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
static gint
encode_task_order (gconstpointer a, gconstpointer b, gpointer user_data)
{
  guint ka = *(const guint *)a, kb = *(const guint *)b;
  if (ka != kb)
    return ka == TASK_CHUNK ? -1 : 1;
  if (ka == TASK_CHUNK)
    {
      const ChunkTask *x = a, *y = b;
      if (x->it->index != y->it->index)
        return x->it->index < y->it->index ? -1 : 1;
      return x->off < y->off ? -1 : x->off > y->off;
    }
  const Item *x = a, *y = b;
  return x->index < y->index ? -1 : x->index > y->index;
}

static gboolean
encode_item (Item *it, GError **error)
{
  Generator *g = it->gen;
  GCancellable *c = g->cancellable;
  g_autoptr (GInputStream) in = NULL;
  g_autoptr (GFileInfo) info = NULL;
  g_autoptr (GVariant) xattrs = NULL;
  if (!ostree_repo_load_file (g->repo, it->csum, &in, &info, &xattrs, c, error))
    return FALSE;
  const char *target = it->is_symlink ? g_file_info_get_symlink_target (info) : "";
  g_autoptr (GBytes) header = df_content_header_serialize (
      g_file_info_get_attribute_uint32 (info, "unix::uid"), g_file_info_get_attribute_uint32 (info, "unix::gid"),
      g_file_info_get_attribute_uint32 (info, "unix::mode"), xattrs, target);
  if (g_bytes_get_size (header) > DF_HEADER_MAX)
    return df_throw (error, DF_ERROR_FAILED, "object %s: header of %zu bytes exceeds the format's limit", it->csum,
                     g_bytes_get_size (header));

  DfEntry base = { .objtype = OSTREE_OBJECT_TYPE_FILE, .object_size = it->size };
  ostree_checksum_inplace_to_bytes (it->csum, base.checksum);
  guint8 pkind = DF_PART_KIND_CONTENT;
  if (g->rebuild && !it->is_symlink && it->size > 0)
    {
      DfGenRebuildResult *res = g_new0 (DfGenRebuildResult, 1);
      if (!df_gen_rebuild_analyze (g->rebuild, it->csum, it->size, res, c, error))
        {
          df_gen_rebuild_result_clear (res);
          g_free (res);
          return FALSE;
        }
      gboolean transformed = res->transformed;
      if (transformed)
        {
          Encoded *e = encoded_new (&base);
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
          pkind = DF_PART_KIND_ALTERNATIVE;
        }
      g_mutex_lock (&g->lock);
      if (res->found)
        g_hash_table_replace (g->rebuilds, g_strdup (it->csum), res);
      g_mutex_unlock (&g->lock);
      if (!res->found)
        {
          df_gen_rebuild_result_clear (res);
          g_free (res);
        }
      if (transformed && g->opts->variants == DF_VARIANTS_TRANSFORMED)
        return TRUE;
    }
  if (it->is_symlink || it->size == 0)
    {
      Encoded *e = encoded_new (&base);
      g_byte_array_append (e->sec[DF_SECTION_RAW], g_bytes_get_data (header, NULL), g_bytes_get_size (header));
      e->entry.data_size = e->sec[DF_SECTION_RAW]->len;
      item_push (it, e);
      return TRUE;
    }

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
      ChunkTask *t = g_new0 (ChunkTask, 1);
      t->kind = TASK_CHUNK;
      t->it = it;
      t->off = off;
      t->e = encoded_new (&base);
      t->e->part_kind = pkind;
      t->e->entry.offset = off;
      t->e->entry.length = len;
      if (off == 0)
        g_byte_array_append (t->e->sec[DF_SECTION_RAW], g_bytes_get_data (header, NULL), g_bytes_get_size (header));
      t->data = data;
      t->len = len;
      if (has_source)
        {
          /* The old bytes most likely to match sit at the same relative
           * position; centre a window there. */
          guint64 win = MIN (it->source_size, (guint64)DF_SOURCE_WINDOW);
          guint64 centre = scale_offset (off, it->source_size, it->size);
          guint64 margin = (win > len) ? (win - len) / 2 : 0;
          guint64 soff = centre > margin ? centre - margin : 0;
          if (soff + win > it->source_size)
            soff = it->source_size - win;
          if (soff < src_rd.start)
            soff = src_rd.start; /* windows only move forward */
          const guint8 *src;
          if (!seq_reader_window (&src_rd, soff, win, &src, c, error))
            {
              encoded_free (t->e);
              g_free (t);
              ok = FALSE;
              break;
            }
          t->src = src;
          t->src_len = win;
          t->src_off = soff;
        }
      if (!spread)
        {
          encode_chunk (t);
          item_push (it, t->e);
          g_free (t);
          continue;
        }
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
  /* Every queued chunk is finished (even after an error: the pool still
   * holds pointers to them). */
  chunks_drain (g, inflight, 0);
  seq_reader_clear (&rd);
  if (src_rd.in)
    seq_reader_clear (&src_rd);
  return ok;
}

static void
encode_worker (gpointer data, gpointer user_data)
{
  if (*(guint *)data == TASK_CHUNK)
    {
      /* Finished by its object's worker; ran here only if not started. */
      chunk_claim_run (data);
      chunk_unref (data);
      return;
    }
  Item *it = data;
  Generator *g = it->gen;
  GError *local = NULL;
  if (!gen_failed (g) && !encode_item (it, &local))
    {
      g_prefix_error (&local, "encoding %s: ", it->csum);
      gen_fail (g, local);
    }
  g_mutex_lock (&g->lock);
  it->done = TRUE;
  g_cond_broadcast (&g->cond);
  g_mutex_unlock (&g->lock);
}

/* ---------------------------------------------------------------------- */
/* Packing and compressing parts                                            */

typedef struct
{
  Generator *gen;
  guint index;
  GByteArray *sec[DF_SECTION_COUNT];
  gsize size; /* payload bytes so far, section table included */
  guint64 output; /* object bytes its entries make */
  GArray *entries; /* DfEntry */
  guint8 kind;
  int level;
} PartJob;

static void
compress_worker (gpointer data, gpointer user_data)
{
  PartJob *job = data;
  Generator *g = job->gen;
  GError *local = NULL;
  if (!gen_failed (g))
    {
      g_autoptr (GByteArray) payload = df_part_payload_assemble (job->sec);
      g_autoptr (GBytes) file = df_part_compress (payload->data, payload->len, job->level, &local);
      if (file)
        {
          char name[16];
          g_snprintf (name, sizeof name, "%u", job->index);
          gsize flen;
          const guint8 *fdata = g_bytes_get_data (file, &flen);
          int fd = openat (g->out_dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
          if (fd < 0)
            df_throw_errno (&local, errno, "creating part %u", job->index);
          else
            {
              if (df_write_all (fd, fdata, flen, "part", &local) && fdatasync (fd) < 0)
                df_throw_errno (&local, errno, "syncing part %u", job->index);
              close (fd);
            }
          if (local == NULL)
            {
              g_mutex_lock (&g->lock);
              DfPart *p = &g_array_index (g->parts, DfPart, job->index);
              df_sha256 (fdata, flen, p->sha256);
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
    gen_fail (g, local);
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

/* Two parts fill at once: one for ordinary entries, compressed at the
 * chosen level, and one for incompressible chunks, compressed fast. */
typedef struct
{
  Generator *gen;
  GThreadPool *pool;
  PartJob *slots[DF_PART_KIND_LAST + 1][2]; /* by part kind and fast */
  PartJob *cur;
} Packer;

static void
packer_flush_one (Packer *pk)
{
  if (pk->cur == NULL)
    return;
  Generator *g = pk->gen;
  g_mutex_lock (&g->lock);
  /* Bound the parts waiting to be compressed. */
  while (g->parts_pending >= 2 * g->jobs && !gen_failed (g))
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

static void
packer_flush (Packer *pk)
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
static void
packer_add (Packer *pk, guint8 kind, const DfEntry *entry, const guint8 *raw, gsize raw_len,
            GByteArray *const *diff, gboolean fast)
{
  Generator *g = pk->gen;
  gsize len = raw_len;
  for (guint s = DF_SECTION_CONTROL; diff && s < DF_SECTION_COUNT; s++)
    len += diff[s]->len;
  /* An incompressible part costs its size twice in apply memory
   * (compressed and decoded): keep it at 3/4 of the part size, so two
   * workers still fit the default 64 MiB budget. */
  gsize limit = fast ? g->opts->part_size / 4 * 3 : g->opts->part_size;
  pk->cur = pk->slots[kind][fast];
  if (pk->cur
      && (pk->cur->size + len > limit
          || (pk->cur->output > 0 && pk->cur->output + entry->length > DF_PART_OUTPUT_MAX)))
    packer_flush_one (pk);
  if (pk->cur == NULL)
    {
      pk->cur = g_new0 (PartJob, 1);
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

static void
report (Generator *g, gboolean force)
{
  if (g->opts->progress == NULL)
    return;
  gint64 now = g_get_monotonic_time ();
  if (!force && now - g->last_progress < G_USEC_PER_SEC / 10)
    return;
  g->last_progress = now;
  g_mutex_lock (&g->lock);
  DfProgress snap = g->progress;
  g_mutex_unlock (&g->lock);
  g->opts->progress (&snap, g->opts->progress_data);
}

/* ---------------------------------------------------------------------- */
/* Output placement and index                                               */

static gboolean
resolve_rev (OstreeRepo *repo, const char *rev, char **out, GError **error)
{
  if (!ostree_repo_resolve_rev (repo, rev, FALSE, out, error))
    {
      g_clear_error (error);
      return df_throw (error, DF_ERROR_INVALID_ARGUMENT, "cannot resolve '%s' in the repository", rev);
    }
  return TRUE;
}

char *
df_native_delta_relpath (const char *from, const char *to)
{
  if (from)
    return g_strdup_printf ("deltafetch/v1/deltas/%s-%s", from, to);
  return g_strdup_printf ("deltafetch/v1/deltas/%s", to);
}

static int
str_cmp_data (gconstpointer a, gconstpointer b, gpointer unused)
{
  return strcmp (a, b);
}

/* deltafetch/v1/indexes/<to>.index: a{s(ayt)} from-hex ("" from scratch) →
 * (superblock SHA-256, superblock size), keys sorted. */
static gboolean
update_index (int repo_dfd, const char *from, const char *to, GBytes *superblock, GError **error)
{
  if (!df_mkdir_p_at (repo_dfd, "deltafetch/v1/indexes", error))
    return FALSE;
  g_autofree char *path = g_strdup_printf ("deltafetch/v1/indexes/%s.index", to);
  g_autoptr (GTree) entries = g_tree_new_full (str_cmp_data, NULL, g_free, (GDestroyNotify)g_variant_unref);
  g_autoptr (GError) local = NULL;
  g_autoptr (GBytes) old = df_read_file_bounded (repo_dfd, path, DF_SUPERBLOCK_MAX, G_MAXUINT64, "index", &local);
  if (old)
    {
      g_autoptr (GVariant) v = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE ("a{s(ayt)}"), old, FALSE));
      if (g_variant_is_normal_form (v))
        {
          GVariantIter it;
          const char *k;
          GVariant *val;
          g_variant_iter_init (&it, v);
          while (g_variant_iter_next (&it, "{&s@(ayt)}", &k, &val))
            g_tree_insert (entries, g_strdup (k), val);
        }
    }
  guint8 sha[DF_SHA256_LEN];
  df_sha256 (g_bytes_get_data (superblock, NULL), g_bytes_get_size (superblock), sha);
  GVariant *val = g_variant_ref_sink (
      g_variant_new ("(@ayt)", g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, sha, DF_SHA256_LEN, 1),
                     GUINT64_TO_LE ((guint64)g_bytes_get_size (superblock))));
  g_tree_insert (entries, g_strdup (from ? from : ""), val);
  GVariantBuilder b;
  g_variant_builder_init (&b, G_VARIANT_TYPE ("a{s(ayt)}"));
  GTreeNode *node = g_tree_node_first (entries);
  for (; node; node = g_tree_node_next (node))
    g_variant_builder_add (&b, "{s@(ayt)}", (const char *)g_tree_node_key (node), (GVariant *)g_tree_node_value (node));
  g_autoptr (GVariant) idx = g_variant_ref_sink (g_variant_builder_end (&b));
  g_autoptr (GVariant) normal = g_variant_get_normal_form (idx);
  g_autoptr (GBytes) bytes = g_variant_get_data_as_bytes (normal);
  return df_write_file_atomic (repo_dfd, path, bytes, error);
}

/* ---------------------------------------------------------------------- */

static int
df_u32_cmp (const void *a, const void *b)
{
  guint32 x = *(const guint32 *)a, y = *(const guint32 *)b;
  return x < y ? -1 : x > y;
}

static void
rebuild_result_free (gpointer p)
{
  df_gen_rebuild_result_clear (p);
  g_free (p);
}

/* Format 3 fields of the rebuild parts: the content parts writing the
 * objects their programs read, the libraries and memory they need; and
 * the generator's findings as informative metadata. */
static void
finish_rebuild_parts (Generator *g, DfSuperblock *sb, GVariantBuilder *meta)
{
  if (g->rebuilds == NULL || g_hash_table_size (g->rebuilds) == 0)
    return;
  /* Which content parts write each source object. */
  g_autoptr (GHashTable) writers = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify)g_array_unref);
  GHashTableIter it;
  gpointer key, value;
  g_hash_table_iter_init (&it, g->rebuilds);
  while (g_hash_table_iter_next (&it, &key, &value))
    {
      DfGenRebuildResult *r = value;
      for (guint i = 0; r->transformed && i < r->sources->len; i++)
        if (!g_hash_table_contains (writers, r->sources->pdata[i]))
          g_hash_table_insert (writers, r->sources->pdata[i], g_array_new (FALSE, FALSE, sizeof (guint32)));
    }
  for (guint i = 0; i < sb->n_parts; i++)
    {
      const DfPart *p = &sb->parts[i];
      if (p->kind != DF_PART_KIND_CONTENT)
        continue;
      for (guint j = 0; j < p->n_entries; j++)
        {
          char hex[65];
          df_hex (p->entries[j].checksum, hex);
          GArray *a = g_hash_table_lookup (writers, hex);
          guint32 idx = i;
          if (a && (a->len == 0 || g_array_index (a, guint32, a->len - 1) != idx))
            g_array_append_val (a, idx);
        }
    }
  for (guint i = 0; i < sb->n_parts; i++)
    {
      DfPart *p = &sb->parts[i];
      if (p->kind != DF_PART_KIND_REBUILD)
        continue;
      g_autoptr (GHashTable) deps = g_hash_table_new (NULL, NULL);
      g_autoptr (GPtrArray) libs = g_ptr_array_new ();
      for (guint j = 0; j < p->n_entries; j++)
        {
          char hex[65];
          df_hex (p->entries[j].checksum, hex);
          DfGenRebuildResult *r = g_hash_table_lookup (g->rebuilds, hex);
          g_assert (r && r->transformed);
          p->rebuild_memory = MAX (p->rebuild_memory, r->memory);
          for (guint k = 0; r->libraries[k]; k++)
            if (!g_ptr_array_find_with_equal_func (libs, r->libraries[k], g_str_equal, NULL))
              g_ptr_array_add (libs, r->libraries[k]);
          for (guint k = 0; k < r->sources->len; k++)
            {
              GArray *a = g_hash_table_lookup (writers, r->sources->pdata[k]);
              for (guint m = 0; a && m < a->len; m++)
                g_hash_table_add (deps, GUINT_TO_POINTER (g_array_index (a, guint32, m) + 1));
            }
        }
      p->n_deps = g_hash_table_size (deps);
      p->deps = g_new (guint32, p->n_deps + 1);
      guint n = 0;
      g_hash_table_iter_init (&it, deps);
      while (g_hash_table_iter_next (&it, &key, NULL))
        p->deps[n++] = GPOINTER_TO_UINT (key) - 1;
      qsort (p->deps, p->n_deps, sizeof (guint32), df_u32_cmp);
      p->libraries = g_new0 (char *, libs->len + 1);
      for (guint k = 0; k < libs->len; k++)
        p->libraries[k] = g_strdup (libs->pdata[k]);
    }
  GVariantBuilder found;
  g_variant_builder_init (&found, G_VARIANT_TYPE ("a(sbs)"));
  g_autoptr (GList) keys = g_list_sort (g_hash_table_get_keys (g->rebuilds), (GCompareFunc)strcmp);
  for (GList *l = keys; l; l = l->next)
    {
      DfGenRebuildResult *r = g_hash_table_lookup (g->rebuilds, l->data);
      g_variant_builder_add (&found, "(sbs)", (const char *)l->data, r->transformed, r->description);
    }
  g_variant_builder_add (meta, "{sv}", "deltafetch.rebuild.found", g_variant_builder_end (&found));
}

static gboolean
content_info (OstreeRepo *repo, const char *csum, guint64 *size, gboolean *is_symlink, GCancellable *c, GError **error)
{
  g_autoptr (GFileInfo) info = NULL;
  if (!ostree_repo_load_file (repo, csum, NULL, &info, NULL, c, error))
    return FALSE;
  *is_symlink = g_file_info_get_file_type (info) == G_FILE_TYPE_SYMBOLIC_LINK;
  *size = *is_symlink ? 0 : (guint64)g_file_info_get_size (info);
  return TRUE;
}

gboolean
df_generate (OstreeRepo *repo, const DfGenerateOptions *opts, char **out_dir_path, GCancellable *cancellable,
             GError **error)
{
  if (opts->to == NULL)
    return df_throw (error, DF_ERROR_INVALID_ARGUMENT, "no to-revision given");
  if ((opts->from == NULL) == !opts->empty)
    return df_throw (error, DF_ERROR_INVALID_ARGUMENT, "give exactly one of a from-revision or empty");
  if (opts->level < 1 || opts->level > 19)
    return df_throw (error, DF_ERROR_INVALID_ARGUMENT, "level %d is outside 1..19", opts->level);
  if (opts->part_size < DF_PART_SIZE_MIN || opts->part_size > DF_PART_SIZE_MAX)
    return df_throw (error, DF_ERROR_INVALID_ARGUMENT,
                     "part size %" G_GUINT64_FORMAT " is outside %" G_GUINT64_FORMAT "..%" G_GUINT64_FORMAT,
                     opts->part_size, (guint64)DF_PART_SIZE_MIN, (guint64)DF_PART_SIZE_MAX);

  /* A bad key fails now, not after minutes of encoding. */
  g_autoptr (DfSigner) signer = NULL;
  if (opts->sign_key && (signer = df_signer_load (opts->sign_key, error)) == NULL)
    return FALSE;
  g_autofree char *to = NULL, *from = NULL;
  if (!resolve_rev (repo, opts->to, &to, error))
    return FALSE;
  if (opts->from && !resolve_rev (repo, opts->from, &from, error))
    return FALSE;
  if (opts->format == DF_DELTA_FORMAT_OSTREE)
    return df_generate_stock (repo, from, to, opts->out_dir, signer, out_dir_path, cancellable, error);

  Generator g = { .repo = repo, .opts = opts };
  g.jobs = opts->jobs ? opts->jobs : df_ncpus ();
  g.cancellable = g_cancellable_new ();
  gulong chained
      = cancellable ? g_cancellable_connect (cancellable, G_CALLBACK (g_cancellable_cancel), g.cancellable, NULL) : 0;
  g_mutex_init (&g.lock);
  g_cond_init (&g.cond);
  g.parts = g_array_new (FALSE, TRUE, sizeof (DfPart));
  g.out_dfd = -1;
  g.progress.phase = DF_PHASE_PLAN;
  report (&g, TRUE);

  gboolean ok = FALSE;
  Walk wto = { 0 }, wfrom = { 0 };
  g_autoptr (GVariant) commitv = NULL;
  g_autoptr (GPtrArray) items = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (DfPairing) pairing = df_pairing_new ();
  g_autofree char *final_rel = NULL, *tmp_rel = NULL;
  GThreadPool *encode_pool = NULL, *compress_pool = NULL;
  int repo_dfd = ostree_repo_get_dfd (repo);
  GError *local = NULL;

  if (!walk_commit (repo, to, &commitv, &wto, &local))
    goto done;
  if (from)
    {
      if (!walk_commit (repo, from, NULL, &wfrom, &local))
        goto done;
      for (guint i = 0; i < wfrom.files->len; i++)
        {
          FileRef *f = wfrom.files->pdata[i];
          df_pairing_add_old (pairing, f->path, f->csum);
        }
    }

  /* Plan content items: new objects in walk order, first path wins. */
  {
    g_autoptr (GHashTable) planned = g_hash_table_new (g_str_hash, g_str_equal);
    g_autoptr (GHashTable) src_info = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);
    for (guint i = 0; i < wto.files->len; i++)
      {
        FileRef *f = wto.files->pdata[i];
        g_autofree char *key = g_strdup_printf ("%s.%d", f->csum, OSTREE_OBJECT_TYPE_FILE);
        if ((wfrom.seen && g_hash_table_contains (wfrom.seen, key)) || g_hash_table_contains (planned, f->csum))
          continue;
        g_hash_table_add (planned, f->csum);
        Item *it = g_new0 (Item, 1);
        it->gen = &g;
        it->index = items->len;
        memcpy (it->csum, f->csum, 65);
        g_queue_init (&it->out);
        g_ptr_array_add (items, it);
        if (!content_info (repo, it->csum, &it->size, &it->is_symlink, cancellable, &local))
          goto done;
        g.progress.bytes_total += it->size;
        if (it->is_symlink || it->size == 0 || !from)
          continue;
        g_autofree const char **cands = df_pairing_candidates (pairing, f->path);
        for (guint k = 0; cands[k]; k++)
          {
            guint64 *info = g_hash_table_lookup (src_info, cands[k]);
            if (info == NULL)
              {
                gboolean link;
                guint64 sz;
                if (!content_info (repo, cands[k], &sz, &link, cancellable, &local))
                  goto done;
                info = g_new (guint64, 1);
                *info = link ? 0 : sz;
                g_hash_table_insert (src_info, (gpointer)cands[k], info);
              }
            /* Pairs far apart in size rarely share enough to pay for a
             * patch; an empty or symlink source has nothing to offer. */
            if (*info == 0 || *info * 4 < it->size || it->size * 4 < *info)
              continue;
            memcpy (it->source, cands[k], 65);
            it->source_size = *info;
            break;
          }
      }
  }
  g.progress.objects_total = items->len;

  /* Compressed objects rebuilt on the device read objects of both trees. */
  if (opts->variants != DF_VARIANTS_PLAIN)
    {
      g.rebuild = df_gen_rebuild_new (repo);
      g.rebuilds = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, rebuild_result_free);
      g_autoptr (GHashTable) added = g_hash_table_new (g_str_hash, g_str_equal);
      Walk *walks[] = { &wto, &wfrom };
      for (guint w = 0; w < G_N_ELEMENTS (walks); w++)
        for (guint i = 0; walks[w]->files && i < walks[w]->files->len; i++)
          {
            FileRef *f = walks[w]->files->pdata[i];
            if (g_hash_table_add (added, f->csum))
              df_gen_rebuild_add_source (g.rebuild, f->csum);
          }
    }

  /* Output directory: a temporary sibling renamed into place at the end,
   * so a reader never sees a half-written delta. */
  if (opts->out_dir)
    {
      if (g_mkdir_with_parents (opts->out_dir, 0755) < 0)
        {
          df_throw_errno (&local, errno, "creating %s", opts->out_dir);
          goto done;
        }
      g_autofree char *sbpath = g_build_filename (opts->out_dir, "superblock", NULL);
      if (g_file_test (sbpath, G_FILE_TEST_EXISTS))
        {
          df_throw (&local, DF_ERROR_INVALID_ARGUMENT, "%s already holds a delta", opts->out_dir);
          goto done;
        }
      g.out_dfd = open (opts->out_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (g.out_dfd < 0)
        {
          df_throw_errno (&local, errno, "opening %s", opts->out_dir);
          goto done;
        }
    }
  else
    {
      final_rel = df_native_delta_relpath (from, to);
      tmp_rel = g_strdup_printf ("%s.tmp", final_rel);
      if (!df_rm_rf_at (repo_dfd, tmp_rel, &local) || !df_mkdir_p_at (repo_dfd, tmp_rel, &local))
        goto done;
      g.out_dfd = openat (repo_dfd, tmp_rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (g.out_dfd < 0)
        {
          df_throw_errno (&local, errno, "opening %s", tmp_rel);
          goto done;
        }
    }

  compress_pool = g_thread_pool_new (compress_worker, NULL, g.jobs, FALSE, NULL);
  encode_pool = g_thread_pool_new (encode_worker, NULL, g.jobs, FALSE, NULL);
  g_thread_pool_set_sort_function (encode_pool, encode_task_order, NULL);
  g.encode_pool = encode_pool;
  Packer pk = { .gen = &g, .pool = compress_pool };

  /* Metadata parts first: apply needs them to establish trust. */
  g.progress.phase = DF_PHASE_ENCODE;
  report (&g, TRUE);
  for (guint i = 0; i < wto.metadata->len && !gen_failed (&g); i++)
    {
      ObjKey *k = wto.metadata->pdata[i];
      g_autofree char *key = g_strdup_printf ("%s.%d", k->csum, k->objtype);
      if (wfrom.seen && g_hash_table_contains (wfrom.seen, key))
        continue;
      g_autoptr (GVariant) v = NULL;
      if (!ostree_repo_load_variant (repo, k->objtype, k->csum, &v, &local))
        goto done;
      DfEntry e = { .objtype = k->objtype };
      ostree_checksum_inplace_to_bytes (k->csum, e.checksum);
      e.object_size = e.length = e.data_size = g_variant_get_size (v);
      packer_add (&pk, DF_PART_KIND_METADATA, &e, g_variant_get_data (v), e.data_size, NULL, FALSE);
    }
  packer_flush (&pk);

  /* Content: keep a bounded window of items in the encode pool and pack
   * their entries strictly in item order. */
  guint window = g.jobs * DF_GENERATE_QUEUE_PER_JOB, submitted = 0;
  for (guint i = 0; i < items->len; i++)
    {
      for (; submitted < items->len && submitted < i + window; submitted++)
        g_thread_pool_push (encode_pool, items->pdata[submitted], NULL);
      Item *it = items->pdata[i];
      for (;;)
        {
          g_mutex_lock (&g.lock);
          while (g_queue_is_empty (&it->out) && !it->done && !gen_failed (&g))
            g_cond_wait (&g.cond, &g.lock);
          Encoded *e = g_queue_pop_head (&it->out);
          gboolean finished = e == NULL;
          if (e)
            {
              it->out_bytes -= encoded_size (e);
              g_cond_broadcast (&g.cond);
            }
          g_mutex_unlock (&g.lock);
          if (finished || gen_failed (&g))
            {
              if (e)
                encoded_free (e);
              break;
            }
          packer_add (&pk, e->part_kind, &e->entry, e->sec[DF_SECTION_RAW]->data,
                      e->sec[DF_SECTION_RAW]->len, e->sec, e->incompressible);
          g.progress.bytes_done += e->entry.length;
          encoded_free (e);
          report (&g, FALSE);
        }
      if (gen_failed (&g))
        break;
      g.progress.objects_done++;
    }
  packer_flush (&pk);
  g_thread_pool_free (encode_pool, FALSE, TRUE);
  encode_pool = NULL;
  g_thread_pool_free (compress_pool, FALSE, TRUE);
  compress_pool = NULL;
  if (gen_failed (&g))
    {
      local = g_steal_pointer (&g.error);
      goto done;
    }
  if (g_cancellable_set_error_if_cancelled (cancellable, &local))
    goto done;

  g.progress.phase = DF_PHASE_COMMIT;
  report (&g, TRUE);
  {
    g_autoptr (DfSuperblock) sb = df_superblock_new ();
    sb->has_from = from != NULL;
    if (from)
      ostree_checksum_inplace_to_bytes (from, sb->from);
    ostree_checksum_inplace_to_bytes (to, sb->to);
    sb->commit = g_variant_get_data_as_bytes (commitv);
    g_autoptr (GVariant) detached = NULL;
    if (!ostree_repo_read_commit_detached_metadata (repo, to, &detached, cancellable, &local))
      goto done;
    if (detached)
      {
        g_autoptr (GVariant) dn = g_variant_get_normal_form (detached);
        sb->commitmeta = g_variant_get_data_as_bytes (dn);
      }
    else
      sb->commitmeta = g_bytes_new (NULL, 0);
    sb->n_parts = g.parts->len;
    sb->parts = (DfPart *)g_array_free (g.parts, FALSE);
    g.parts = NULL;
    GVariantBuilder mb;
    g_variant_builder_init (&mb, G_VARIANT_TYPE ("a{sv}"));
    g_variant_builder_add (&mb, "{sv}", "deltafetch.level", g_variant_new_int32 (opts->level));
    g_variant_builder_add (&mb, "{sv}", "deltafetch.part-size", g_variant_new_uint64 (opts->part_size));
    finish_rebuild_parts (&g, sb, &mb);
    sb->metadata = g_variant_ref_sink (g_variant_builder_end (&mb));
    g_autoptr (GBytes) bytes = df_superblock_serialize (sb);
    /* Never publish a delta apply would refuse: the superblock is read back
     * with apply's own parser (its limits: file, body and entries). */
    {
      g_autoptr (GError) check = NULL;
      g_autoptr (DfSuperblock) back = df_superblock_parse (bytes, &check);
      if (back == NULL)
        {
          df_throw (&local, DF_ERROR_FAILED, "the delta would break the format's limits: %s", check->message);
          goto done;
        }
    }
    if (signer)
      {
        GBytes *wrapped = df_signer_wrap (signer, bytes, &local);
        if (wrapped == NULL)
          goto done;
        g_bytes_unref (bytes);
        bytes = wrapped;
      }
    if (!df_write_file_atomic (g.out_dfd, "superblock", bytes, &local))
      goto done;
    if (fsync (g.out_dfd) < 0)
      {
        df_throw_errno (&local, errno, "syncing the delta directory");
        goto done;
      }
    if (final_rel)
      {
        if (!df_rm_rf_at (repo_dfd, final_rel, &local))
          goto done;
        if (renameat (repo_dfd, tmp_rel, repo_dfd, final_rel) < 0)
          {
            df_throw_errno (&local, errno, "renaming %s", tmp_rel);
            goto done;
          }
        g_clear_pointer (&tmp_rel, g_free);
        if (!update_index (repo_dfd, from, to, bytes, &local))
          goto done;
      }
  }
  if (out_dir_path)
    {
      g_autofree char *repo_path = g_file_get_path (ostree_repo_get_path (repo));
      *out_dir_path = final_rel ? g_build_filename (repo_path, final_rel, NULL) : g_strdup (opts->out_dir);
    }
  ok = TRUE;

done:
  if (encode_pool)
    {
      g_cancellable_cancel (g.cancellable);
      g_mutex_lock (&g.lock);
      g_cond_broadcast (&g.cond);
      g_mutex_unlock (&g.lock);
      g_thread_pool_free (encode_pool, TRUE, TRUE);
    }
  if (compress_pool)
    g_thread_pool_free (compress_pool, FALSE, TRUE);
  for (guint i = 0; i < items->len; i++)
    {
      Item *it = items->pdata[i];
      g_queue_clear_full (&it->out, (GDestroyNotify)encoded_free);
    }
  if (g.parts)
    {
      for (guint i = 0; i < g.parts->len; i++)
        df_part_clear (&g_array_index (g.parts, DfPart, i));
      g_array_free (g.parts, TRUE);
    }
  if (tmp_rel)
    df_rm_rf_at (repo_dfd, tmp_rel, NULL);
  if (g.out_dfd >= 0)
    close (g.out_dfd);
  walk_clear (&wto);
  walk_clear (&wfrom);
  g_clear_pointer (&g.rebuild, df_gen_rebuild_free);
  g_clear_pointer (&g.rebuilds, g_hash_table_unref);
  if (g.error)
    g_error_free (g.error);
  if (chained)
    g_cancellable_disconnect (cancellable, chained);
  g_object_unref (g.cancellable);
  g_mutex_clear (&g.lock);
  g_cond_clear (&g.cond);
  if (!ok)
    g_propagate_error (error, local);
  return ok;
}
