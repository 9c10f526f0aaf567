#include "df-gen-rebuild.h"

#include <lzma.h>
#include <sys/mman.h>
#include <zlib.h>

#include "df-deflate.h"
#include "df-detect.h"
#include "df-part.h"
#include "df-rebuild.h"
#include "df-recipe.h"

/* Objects smaller than this are not analysed: a program and its
 * reconstruction data would not pay for themselves. */
#define DF_GEN_REBUILD_MIN (64 * 1024)
/* cpio entries shorter than this stay literal: a piece costs about 45
 * bytes of program. */
#define DF_GEN_PIECE_MIN 256
/* Literal content runs shorter than this are not diffed against the old
 * counterpart's content: a patch frame costs a few dozen bytes. */
#define DF_GEN_PATCH_MIN 4096
/* The level patches are made at (their source and output are at most 16
 * MiB: level 19 takes a second or two). */
#define DF_GEN_PATCH_LEVEL 19

/* Recipes whose encoder needs more than this are not used: a device never
 * raises its budget past it (xz kernels made with a 32 MiB dictionary need
 * about 370 MiB to compress again). */
#define DF_GEN_RECIPE_MEMORY_MAX (128 * DF_MIB)

/* A frame's search, as dfi_recipe_find() and dfi_deflate_analyze() left
 * it. Immutable once in the cache. */
typedef struct
{
  gboolean found; /* a recipe reproduces the frame */
  DfRecipe recipe;
  DfRecipeFindStats stats;
  gboolean deflate_tried; /* no recipe, a gzip or zlib frame: deflate analysis ran */
  GBytes *recon;          /* its reconstruction data, NULL when it refused */
  char *deflate_error;    /* why it refused */
} FrameSearch;

static void
frame_search_free (FrameSearch *f)
{
  g_clear_pointer (&f->recon, g_bytes_unref);
  g_free (f->deflate_error);
  g_free (f);
}

struct _DfGenRebuildCache
{
  GMutex lock;
  GHashTable *hashes;   /* csum → 32-byte SHA-256 of its content, or a 0-byte value for "not a source" */
  GHashTable *detects;  /* csum → DfDetect* (with entry hashes) */
  GHashTable *frames;   /* "csum/segment" → FrameSearch* */
  GHashTable *verified; /* "csum/program SHA-256" of programs that rebuilt their object */
};

DfGenRebuildCache *
dfi_gen_rebuild_cache_new (void)
{
  DfGenRebuildCache *k = g_new0 (DfGenRebuildCache, 1);
  g_mutex_init (&k->lock);
  k->hashes = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_bytes_unref);
  k->detects = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify)dfi_detect_free);
  k->frames = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify)frame_search_free);
  k->verified = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  return k;
}

void
dfi_gen_rebuild_cache_free (DfGenRebuildCache *k)
{
  if (k == NULL)
    return;
  g_hash_table_unref (k->hashes);
  g_hash_table_unref (k->detects);
  g_hash_table_unref (k->frames);
  g_hash_table_unref (k->verified);
  g_mutex_clear (&k->lock);
  g_free (k);
}

/* What @k holds under @key, or NULL. Entries stay until the cache goes. */
static gpointer
cache_get (DfGenRebuildCache *k, GHashTable *table, const char *key)
{
  g_mutex_lock (&k->lock);
  gpointer v = g_hash_table_lookup (table, key);
  g_mutex_unlock (&k->lock);
  return v;
}

/* Keeps @v (owned) under @key unless another worker got there first (two
 * analyses may hash the same source at once); returns what the cache
 * holds, freeing @v with @v_free when that is the other's. */
static gpointer
cache_keep (DfGenRebuildCache *k, GHashTable *table, const char *key, gpointer v, GDestroyNotify v_free)
{
  g_mutex_lock (&k->lock);
  gpointer had = g_hash_table_lookup (table, key);
  if (had == NULL)
    g_hash_table_insert (table, g_strdup (key), v);
  g_mutex_unlock (&k->lock);
  if (had && v_free)
    v_free (v);
  return had ? had : v;
}

struct _DfGenRebuild
{
  OstreeRepo *repo;
  GMutex lock;
  GHashTable *by_size; /* guint64 size → GPtrArray of csum strings */
  GPtrArray *pending;  /* sources whose size is not known yet */
  DfGenRebuildCache *cache; /* the caller's */
  gint reused;              /* atomic */
};

static guint
u64_hash (gconstpointer p)
{
  guint64 v = *(const guint64 *)p;
  return (guint)(v ^ (v >> 32));
}

static gboolean
u64_equal (gconstpointer a, gconstpointer b)
{
  return *(const guint64 *)a == *(const guint64 *)b;
}

DfGenRebuild *
dfi_gen_rebuild_new (OstreeRepo *repo, DfGenRebuildCache *cache)
{
  DfGenRebuild *g = g_new0 (DfGenRebuild, 1);
  g->repo = g_object_ref (repo);
  g_mutex_init (&g->lock);
  g->by_size = g_hash_table_new_full (u64_hash, u64_equal, g_free, (GDestroyNotify)g_ptr_array_unref);
  g->cache = cache;
  g->pending = g_ptr_array_new_with_free_func (g_free);
  return g;
}

void
dfi_gen_rebuild_free (DfGenRebuild *g)
{
  if (g == NULL)
    return;
  g_hash_table_unref (g->by_size);
  g_ptr_array_unref (g->pending);
  g_mutex_clear (&g->lock);
  g_object_unref (g->repo);
  g_free (g);
}

static void
index_source (DfGenRebuild *g, const char *csum, guint64 size)
{
  if (size < DF_GEN_PIECE_MIN)
    return;
  GPtrArray *list = g_hash_table_lookup (g->by_size, &size);
  if (list == NULL)
    {
      list = g_ptr_array_new_with_free_func (g_free);
      g_hash_table_insert (g->by_size, g_memdup2 (&size, sizeof size), list);
    }
  for (guint i = 0; i < list->len; i++)
    if (strcmp (list->pdata[i], csum) == 0)
      return;
  g_ptr_array_add (list, g_strdup (csum));
}

guint
dfi_gen_rebuild_reused (DfGenRebuild *g)
{
  return (guint)g_atomic_int_get (&g->reused);
}

void
dfi_gen_rebuild_add_source (DfGenRebuild *g, const char *csum)
{
  g_mutex_lock (&g->lock);
  g_ptr_array_add (g->pending, g_strdup (csum));
  g_mutex_unlock (&g->lock);
}

/* Sizes are looked up once, when the first candidate shows up: deltas
 * without compressed objects do not pay for it. */
static gboolean
resolve_sources (DfGenRebuild *g, GCancellable *c, GError **error)
{
  gboolean ok = TRUE;
  g_mutex_lock (&g->lock);
  while (ok && g->pending->len > 0)
    {
      const char *csum = g->pending->pdata[g->pending->len - 1];
      g_autoptr (GFileInfo) info = NULL;
      ok = ostree_repo_load_file (g->repo, csum, NULL, &info, NULL, c, error);
      if (ok && g_file_info_get_file_type (info) == G_FILE_TYPE_REGULAR)
        index_source (g, csum, g_file_info_get_size (info));
      g_ptr_array_set_size (g->pending, g->pending->len - 1);
    }
  g_mutex_unlock (&g->lock);
  return ok;
}

void
dfi_gen_rebuild_result_clear (DfGenRebuildResult *r)
{
  g_clear_pointer (&r->program, g_bytes_unref);
  g_clear_pointer (&r->libraries, g_strfreev);
  g_clear_pointer (&r->sources, g_ptr_array_unref);
  g_clear_pointer (&r->description, g_free);
  memset (r, 0, sizeof *r);
}

/* ---------------------------------------------------------------------- */

/* Whether @head (the first bytes of an object) starts like something this
 * module transforms: such an object is never a piece of another program
 * (it may be rebuilt itself, in a part that depends on nothing). */
static gboolean
looks_transformable (const guint8 *head, gsize n)
{
  static const guint8 gz[] = { 0x1f, 0x8b }, zst[] = { 0x28, 0xb5, 0x2f, 0xfd }, xz[] = { 0xfd, '7', 'z', 'X', 'Z', 0 };
  return (n >= 2 && memcmp (head, gz, 2) == 0) || (n >= 4 && memcmp (head, zst, 4) == 0)
         || (n >= 6 && memcmp (head, xz, 6) == 0) || (n >= 6 && memcmp (head, "07070", 5) == 0)
         || (n >= 0x206 && memcmp (head + 0x202, "HdrS", 4) == 0);
}

/* The content of object @csum into a new unnamed memory file; -2 (no
 * error) when its first bytes say it is not a candidate. */
static int
load_object (DfGenRebuild *g, const char *csum, guint64 size, GCancellable *c, GError **error)
{
  g_autoptr (GInputStream) in = NULL;
  if (!ostree_repo_load_file (g->repo, csum, &in, NULL, NULL, c, error))
    return -1;
  dfi_autofd fd = memfd_create ("deltafetch-object", MFD_CLOEXEC);
  if (fd < 0)
    return (dfi_throw_errno (error, errno, "memfd_create"), -1);
  g_autofree guint8 *buf = g_malloc (DF_COPY_BUFFER);
  guint64 off = 0;
  for (;;)
    {
      gsize n = 0;
      if (!g_input_stream_read_all (in, buf, DF_COPY_BUFFER, &n, c, error))
        return -1;
      if (n == 0)
        break;
      /* Most objects are not candidates: stop at their first bytes. */
      if (off == 0 && !looks_transformable (buf, n))
        return -2;
      if (!dfi_pwrite_all (fd, buf, n, off, "an object copy", error))
        return -1;
      off += n;
    }
  if (off != size)
    return (dfi_throw (error, DF_ERROR_IO, "object %s is not %" G_GUINT64_FORMAT " bytes", csum, size), -1);
  int out = fd;
  fd = -1;
  return out;
}

/* SHA-256 of a source's content, computed once; NULL for an object that
 * is no source. */
static GBytes *
source_hash (DfGenRebuild *g, const char *csum, guint64 size, GCancellable *c, GError **error)
{
  GBytes *known = cache_get (g->cache, g->cache->hashes, csum);
  if (known)
    return g_bytes_ref (known);
  g_autoptr (GInputStream) in = NULL;
  if (!ostree_repo_load_file (g->repo, csum, &in, NULL, NULL, c, error))
    return NULL;
  DfSha256 h;
  dfi_sha256_init (&h);
  g_autofree guint8 *buf = g_malloc (DF_COPY_BUFFER);
  guint64 total = 0;
  gboolean excluded = FALSE;
  for (;;)
    {
      gsize got = 0;
      if (!g_input_stream_read_all (in, buf, DF_COPY_BUFFER, &got, c, error))
        {
          dfi_sha256_clear (&h);
          return NULL;
        }
      if (total == 0 && looks_transformable (buf, got))
        excluded = TRUE;
      dfi_sha256_update (&h, buf, got);
      total += got;
      if (got < DF_COPY_BUFFER)
        break;
    }
  guint8 sha[DF_SHA256_LEN];
  dfi_sha256_final (&h, sha);
  dfi_sha256_clear (&h);
  GBytes *v = excluded || total != size ? g_bytes_new (NULL, 0) : g_bytes_new (sha, sizeof sha);
  return g_bytes_ref (cache_keep (g->cache, g->cache->hashes, csum, v, (GDestroyNotify)g_bytes_unref));
}

/* A source object whose content is @size bytes hashing to @sha, or NULL. */
static char *
find_source (DfGenRebuild *g, guint64 size, const guint8 sha[DF_SHA256_LEN], GCancellable *c, GError **error)
{
  g_autoptr (GPtrArray) cands = g_ptr_array_new_with_free_func (g_free);
  g_mutex_lock (&g->lock);
  GPtrArray *list = g_hash_table_lookup (g->by_size, &size);
  for (guint i = 0; list && i < list->len; i++)
    g_ptr_array_add (cands, g_strdup (list->pdata[i]));
  g_mutex_unlock (&g->lock);
  for (guint i = 0; i < cands->len; i++)
    {
      g_autoptr (GBytes) h = source_hash (g, cands->pdata[i], size, c, error);
      if (h == NULL)
        return NULL;
      if (g_bytes_get_size (h) == DF_SHA256_LEN && memcmp (g_bytes_get_data (h, NULL), sha, DF_SHA256_LEN) == 0)
        return g_strdup (cands->pdata[i]);
    }
  return NULL;
}

/* ---------------------------------------------------------------------- */
/* Decompression of one frame (build server)                                */

typedef struct
{
  int fd;
  guint64 off, cap;
} Sink;

static gboolean
sink_put (Sink *s, const guint8 *buf, gsize len, GError **error)
{
  if (len > s->cap - s->off)
    return dfi_throw (error, DF_ERROR_FAILED, "frame decompresses to more than detection said");
  if (!dfi_pwrite_all (s->fd, buf, len, s->off, "frame content", error))
    return FALSE;
  s->off += len;
  return TRUE;
}

static gboolean
decompress_frame (DfSegmentKind kind, const guint8 *in, gsize in_len, Sink *out, GError **error)
{
  g_autofree guint8 *buf = g_malloc (DF_COPY_BUFFER);
  if (kind == DF_SEGMENT_GZIP || kind == DF_SEGMENT_ZLIB)
    {
      z_stream z = { 0 };
      if (inflateInit2 (&z, kind == DF_SEGMENT_GZIP ? 31 : 15) != Z_OK)
        return dfi_throw (error, DF_ERROR_FAILED, "inflateInit2 failed");
      z.next_in = (Bytef *)in;
      z.avail_in = in_len;
      int r = Z_OK;
      gboolean ok = TRUE;
      while (ok && r != Z_STREAM_END)
        {
          z.next_out = buf;
          z.avail_out = DF_COPY_BUFFER;
          r = inflate (&z, Z_NO_FLUSH);
          if (r != Z_OK && r != Z_STREAM_END)
            ok = dfi_throw (error, DF_ERROR_FAILED, "inflate: %s", z.msg ? z.msg : "error");
          else
            ok = sink_put (out, buf, DF_COPY_BUFFER - z.avail_out, error);
        }
      inflateEnd (&z);
      return ok;
    }
  if (kind == DF_SEGMENT_ZSTD)
    {
      g_autoptr (ZSTD_DCtx) d = ZSTD_createDCtx ();
      ZSTD_DCtx_setParameter (d, ZSTD_d_windowLogMax, 31);
      ZSTD_inBuffer ib = { in, in_len, 0 };
      for (;;)
        {
          ZSTD_outBuffer ob = { buf, DF_COPY_BUFFER, 0 };
          size_t r = ZSTD_decompressStream (d, &ob, &ib);
          if (ZSTD_isError (r))
            return dfi_throw (error, DF_ERROR_FAILED, "zstd: %s", ZSTD_getErrorName (r));
          if (!sink_put (out, buf, ob.pos, error))
            return FALSE;
          if (r == 0 || (ib.pos == ib.size && ob.pos < ob.size))
            return TRUE;
        }
    }
  lzma_stream l = LZMA_STREAM_INIT;
  if (lzma_stream_decoder (&l, DF_GEN_RECIPE_MEMORY_MAX * 8, 0) != LZMA_OK)
    return dfi_throw (error, DF_ERROR_FAILED, "lzma_stream_decoder failed");
  l.next_in = in;
  l.avail_in = in_len;
  gboolean ok = TRUE;
  for (lzma_ret r = LZMA_OK; ok && r != LZMA_STREAM_END;)
    {
      l.next_out = buf;
      l.avail_out = DF_COPY_BUFFER;
      r = lzma_code (&l, LZMA_FINISH);
      if (r != LZMA_OK && r != LZMA_STREAM_END)
        ok = dfi_throw (error, DF_ERROR_FAILED, "xz: error %d", r);
      else
        ok = sink_put (out, buf, DF_COPY_BUFFER - l.avail_out, error);
    }
  lzma_end (&l);
  return ok;
}

/* ---------------------------------------------------------------------- */
/* Building a program                                                       */

typedef struct
{
  guint64 offset, length;
  char *csum;
} Match;

static gint
match_cmp (gconstpointer a, gconstpointer b)
{
  const Match *x = a, *y = b;
  return x->offset < y->offset ? -1 : x->offset > y->offset;
}

typedef struct
{
  DfGenRebuild *g;
  DfRebuildBuilder *b;
  const DfDetect *d;
  const char *csum;     /* the object's */
  int ofd;              /* its copy */
  const guint8 *object; /* the object, mapped */
  guint64 size;
  GPtrArray *sources;
  GPtrArray *libraries;
  guint64 memory;
  guint frames, entries, matched;
  guint64 matched_bytes;
  GString *what;
  GCancellable *c;
  /* The old counterpart: its checksum, size, decompressed content (once
   * asked for; NULL when it has none) */
  const char *old;
  guint64 old_size;
  GBytes *old_content;
  gboolean old_tried;
  guint patches;
  guint64 patched_bytes, patch_bytes;
} Ctx;

/* Appends @len bytes at @off of @fd as literals. */
static gboolean
literal_from_fd (Ctx *x, int fd, guint64 off, guint64 len, GError **error)
{
  g_autofree guint8 *buf = g_malloc (DF_COPY_BUFFER);
  while (len > 0)
    {
      gsize n = MIN (len, (guint64)DF_COPY_BUFFER);
      if (!dfi_pread_all (fd, buf, n, off, "frame content", error))
        return FALSE;
      dfi_rebuild_builder_literal (x->b, buf, n);
      off += n;
      len -= n;
    }
  return TRUE;
}

/* The old counterpart's decompressed content, or NULL (not an error) when
 * there is none: no counterpart, not gzip or zstd, more than
 * DF_REBUILD_PATCH_SOURCE_MAX. */
static GBytes *
old_content (Ctx *x, GError **error)
{
  if (x->old == NULL || x->old_tried)
    return x->old_content;
  x->old_tried = TRUE;
  g_autoptr (GInputStream) in = NULL;
  g_autoptr (GFileInfo) info = NULL;
  if (!ostree_repo_load_file (x->g->repo, x->old, &in, &info, NULL, x->c, error))
    return NULL;
  if (g_file_info_get_file_type (info) != G_FILE_TYPE_REGULAR)
    return NULL;
  g_autoptr (GError) local = NULL;
  x->old_size = g_file_info_get_size (info);
  x->old_content = dfi_rebuild_unpack (in, 0, DF_REBUILD_PATCH_SOURCE_MAX, x->c, &local);
  if (g_error_matches (local, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    g_propagate_error (error, g_steal_pointer (&local));
  if (x->old_content != NULL && g_bytes_get_size (x->old_content) == 0)
    g_clear_pointer (&x->old_content, g_bytes_unref);
  return x->old_content;
}

/* A zstd frame of @len bytes at @data against @prefix (NULL for none), at
 * @level; NULL when zstd fails. */
static GBytes *
zstd_frame (const guint8 *data, gsize len, GBytes *prefix, int level)
{
  g_autoptr (ZSTD_CCtx) cc = ZSTD_createCCtx ();
  gsize cap = ZSTD_compressBound (len);
  g_autofree guint8 *dst = g_malloc (cap);
  ZSTD_CCtx_setParameter (cc, ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter (cc, ZSTD_c_contentSizeFlag, 1);
  if (prefix != NULL)
    {
      /* The window covers the prefix and the output (at most 32 MiB). */
      guint64 span = g_bytes_get_size (prefix) + len;
      ZSTD_CCtx_setParameter (cc, ZSTD_c_windowLog, MAX (ZSTD_WINDOWLOG_MIN, (int)g_bit_storage (span)));
      if (ZSTD_isError (ZSTD_CCtx_refPrefix (cc, g_bytes_get_data (prefix, NULL), g_bytes_get_size (prefix))))
        return NULL;
    }
  size_t n = ZSTD_compress2 (cc, dst, cap, data, len);
  if (ZSTD_isError (n))
    return NULL;
  return g_bytes_new (dst, n);
}

/* Appends the content run of @len bytes at @off of @fd: literals, or a
 * patch against the old counterpart's content when that is smaller than
 * the literals would be once compressed. */
static gboolean
content_run (Ctx *x, int fd, guint64 off, guint64 len, GError **error)
{
  GBytes *old = NULL;
  /* Past the device's limit of patch pieces the program would be refused:
   * the rest stays literal. */
  if (len >= DF_GEN_PATCH_MIN && len <= DF_REBUILD_PATCH_OUTPUT_MAX && x->patches < DF_REBUILD_PATCH_PIECES_MAX)
    {
      old = old_content (x, error);
      if (old == NULL && error && *error)
        return FALSE;
    }
  if (old == NULL)
    return literal_from_fd (x, fd, off, len, error);
  g_autofree guint8 *run = g_malloc (len);
  if (!dfi_pread_all (fd, run, len, off, "frame content", error))
    return FALSE;
  g_autoptr (GBytes) patch = zstd_frame (run, len, old, DF_GEN_PATCH_LEVEL);
  /* A patch under 1/32 of the run beats any compression of it alone
   * (text does not shrink that far): not worth a second level-19 pass. */
  g_autoptr (GBytes) alone
      = patch == NULL || g_bytes_get_size (patch) * 32 <= len ? NULL : zstd_frame (run, len, NULL, DF_GEN_PATCH_LEVEL);
  if (patch == NULL || (alone != NULL && g_bytes_get_size (patch) * 10 > g_bytes_get_size (alone) * 9))
    {
      dfi_rebuild_builder_literal (x->b, run, len);
      return TRUE;
    }
  guint8 raw[DF_SHA256_LEN];
  ostree_checksum_inplace_to_bytes (x->old, raw);
  dfi_rebuild_builder_patch (x->b, raw, x->old_size, g_bytes_get_size (old), len, g_bytes_get_data (patch, NULL),
                             g_bytes_get_size (patch));
  if (x->patches++ == 0)
    g_ptr_array_add (x->sources, g_strdup (x->old));
  x->patched_bytes += len;
  x->patch_bytes += g_bytes_get_size (patch);
  return TRUE;
}

/* The content of frame segment @si (in @cfd, @clen bytes) as pieces:
 * cpio entries that are objects of the trees, literals between them. */
static gboolean
add_content (Ctx *x, guint si, int cfd, guint64 clen, GError **error)
{
  g_autoptr (GArray) matches = g_array_new (FALSE, FALSE, sizeof (Match));
  g_array_set_clear_func (matches, (GDestroyNotify)NULL);
  for (guint k = si + 1; k < x->d->n_segments && x->d->segments[k].depth > x->d->segments[si].depth; k++)
    {
      const DfSegment *s = &x->d->segments[k];
      if (s->parent != (gint)si || s->kind != DF_SEGMENT_CPIO)
        continue;
      for (guint e = 0; e < s->u.cpio.n_entries; e++)
        {
          const DfCpioEntry *ce = &x->d->entries[s->u.cpio.first_entry + e];
          x->entries++;
          if (!ce->has_sha256 || ce->filesize < DF_GEN_PIECE_MIN || ce->data_offset + ce->filesize > clen)
            continue;
          g_autoptr (GError) local = NULL;
          char *csum = find_source (x->g, ce->filesize, ce->sha256, x->c, &local);
          if (local)
            return (g_propagate_error (error, g_steal_pointer (&local)), FALSE);
          if (csum == NULL)
            continue;
          Match m = { ce->data_offset, ce->filesize, csum };
          g_array_append_val (matches, m);
        }
    }
  g_array_sort (matches, match_cmp);
  guint64 pos = 0;
  gboolean ok = TRUE;
  for (guint i = 0; i < matches->len; i++)
    {
      Match *m = &g_array_index (matches, Match, i);
      if (ok && m->offset >= pos)
        {
          ok = content_run (x, cfd, pos, m->offset - pos, error);
          guint8 raw[DF_SHA256_LEN];
          ostree_checksum_inplace_to_bytes (m->csum, raw);
          dfi_rebuild_builder_object (x->b, raw, m->length);
          g_ptr_array_add (x->sources, g_strdup (m->csum));
          x->matched++;
          x->matched_bytes += m->length;
          pos = m->offset + m->length;
        }
      g_free (m->csum);
    }
  return ok && content_run (x, cfd, pos, clen - pos, error);
}

static void
add_plain (Ctx *x, guint64 off, guint64 len)
{
  if (len == 0)
    return;
  dfi_rebuild_builder_segment (x->b, DF_REBUILD_SEGMENT_PLAIN, len, NULL);
  dfi_rebuild_builder_literal (x->b, x->object + off, len);
}

/* The gzip or zlib wrapper around a frame's raw deflate stream. */
static void
deflate_wrapper (const DfSegment *s, guint64 *head, guint64 *tail)
{
  *head = s->kind == DF_SEGMENT_GZIP ? s->u.gzip.header_len : 2;
  *tail = s->kind == DF_SEGMENT_GZIP ? 8 : 4;
}

/* How frame segment @si of the object can be made again from its content
 * (in @cfd, @clen bytes): a recipe, else for gzip and zlib deflate
 * reconstruction data. Searched once per object for all deltas (the
 * cache's); NULL only for an error reading the content. */
static const FrameSearch *
frame_search (Ctx *x, guint si, int cfd, guint64 clen, GError **error)
{
  DfGenRebuildCache *k = x->g->cache;
  g_autofree char *key = g_strdup_printf ("%s/%u", x->csum, si);
  const FrameSearch *had = cache_get (k, k->frames, key);
  if (had)
    return had;
  const DfSegment *s = &x->d->segments[si];
  FrameSearch *fs = g_new0 (FrameSearch, 1);
  DfRecipeSpan cspan = { x->ofd, s->offset, s->length }, content = { cfd, 0, clen };
  /* Candidates a device could not run are not even tried: a kernel's xz
   * payload made with a 32 MiB dictionary needs 370 MiB, and running its
   * recipe over 66 MB costs a minute. */
  DfRecipeFindLimits lim = { .max_memory = DF_GEN_RECIPE_MEMORY_MAX };
  if (!dfi_recipe_find (&cspan, &content, &lim, &fs->recipe, &fs->found, &fs->stats, x->c, error))
    {
      frame_search_free (fs);
      return NULL;
    }
  guint64 head, tail;
  deflate_wrapper (s, &head, &tail);
  if (!fs->found && (s->kind == DF_SEGMENT_GZIP || s->kind == DF_SEGMENT_ZLIB) && s->length > head + tail)
    {
      fs->deflate_tried = TRUE;
      DfDeflateStats st;
      g_autoptr (GError) local = NULL;
      if (!dfi_deflate_analyze (x->object + s->offset + head, s->length - head - tail, NULL, NULL, &fs->recon, &st,
                                &local))
        fs->deflate_error = g_strdup (local->message);
    }
  return cache_keep (k, k->frames, key, fs, (GDestroyNotify)frame_search_free);
}

/* Frame segment @si: a recipe or deflate reconstruction data for it, and
 * its content. FALSE without an error when neither is found (the frame
 * stays plain). */
static gboolean
try_frame (Ctx *x, guint si, gboolean *used, GError **error)
{
  const DfSegment *s = &x->d->segments[si];
  *used = FALSE;
  if (s->decompressed_size == 0 || s->decompressed_size > x->size * DF_REBUILD_EXPANSION)
    return TRUE;
  dfi_autofd cfd = memfd_create ("deltafetch-content", MFD_CLOEXEC);
  if (cfd < 0)
    return dfi_throw_errno (error, errno, "memfd_create");
  Sink sink = { cfd, 0, s->decompressed_size };
  g_autoptr (GError) dlocal = NULL;
  if (!decompress_frame (s->kind, x->object + s->offset, s->length, &sink, &dlocal) || sink.off != s->decompressed_size)
    return TRUE; /* detection saw it whole; anything else: keep it plain */
  guint64 clen = sink.off;

  const FrameSearch *fs = frame_search (x, si, cfd, clen, error);
  if (fs == NULL)
    return FALSE;
  const DfRecipe *r = &fs->recipe;
  guint64 mem = 0;
  if (fs->found && !dfi_recipe_memory (r, &mem, error))
    return FALSE;
  if (!fs->found && fs->stats.skipped > 0 && s->kind != DF_SEGMENT_GZIP && s->kind != DF_SEGMENT_ZLIB)
    {
      g_string_append_printf (x->what, "%s%s frame: %u candidate recipes need more than %u MiB to run, kept plain",
                              x->what->len ? "; " : "", dfi_segment_kind_name (s->kind), fs->stats.skipped,
                              (guint)(DF_GEN_RECIPE_MEMORY_MAX / DF_MIB));
      return TRUE;
    }
  if (fs->found)
    {
      g_autoptr (GBytes) rb = dfi_recipe_serialize (r);
      dfi_rebuild_builder_segment (x->b, DF_REBUILD_SEGMENT_RECIPE, s->length, rb);
      gboolean have = FALSE;
      for (guint i = 0; i < x->libraries->len && !have; i++)
        have = strcmp (x->libraries->pdata[i], r->library) == 0;
      if (!have)
        g_ptr_array_add (x->libraries, g_strdup (r->library));
      x->memory = MAX (x->memory, mem);
      g_autofree char *desc = dfi_recipe_describe (r);
      g_string_append_printf (x->what, "%s%s frame by recipe (%s; %" G_GUINT64_FORMAT " MiB to rebuild)",
                              x->what->len ? "; " : "", dfi_segment_kind_name (s->kind), desc, mem / DF_MIB + 1);
    }
  else if (s->kind == DF_SEGMENT_GZIP || s->kind == DF_SEGMENT_ZLIB)
    {
      guint64 head, tail;
      deflate_wrapper (s, &head, &tail);
      if (!fs->deflate_tried)
        return TRUE;
      if (fs->recon == NULL)
        {
          g_string_append_printf (x->what, "%s%s frame: no reconstruction (%s), kept plain", x->what->len ? "; " : "",
                                  dfi_segment_kind_name (s->kind), fs->deflate_error);
          return TRUE;
        }
      add_plain (x, s->offset, head);
      dfi_rebuild_builder_segment (x->b, DF_REBUILD_SEGMENT_DEFLATE, s->length - head - tail, fs->recon);
      x->memory = MAX (x->memory, (guint64)DF_DEFLATE_REBUILD_MEMORY);
      g_string_append_printf (x->what, "%s%s frame by deflate reconstruction (%zu B)", x->what->len ? "; " : "",
                              dfi_segment_kind_name (s->kind), g_bytes_get_size (fs->recon));
      if (!add_content (x, si, cfd, clen, error))
        return FALSE;
      add_plain (x, s->offset + s->length - tail, tail);
      *used = TRUE;
      x->frames++;
      return TRUE;
    }
  else
    {
      g_string_append_printf (x->what, "%s%s frame: no recipe reproduces it, kept plain", x->what->len ? "; " : "",
                              dfi_segment_kind_name (s->kind));
      return TRUE;
    }
  if (!add_content (x, si, cfd, clen, error))
    return FALSE;
  *used = TRUE;
  x->frames++;
  return TRUE;
}

typedef struct
{
  const guint8 *want;
  guint64 size, off;
} Compare;

static gboolean
compare_write (gpointer data, const guint8 *buf, gsize len, GError **error)
{
  Compare *c = data;
  if (len > c->size - c->off || memcmp (c->want + c->off, buf, len) != 0)
    return dfi_throw (error, DF_ERROR_FAILED, "the rebuilt bytes differ from the object at %" G_GUINT64_FORMAT, c->off);
  c->off += len;
  return TRUE;
}

static gboolean
analyze_mapped (DfGenRebuild *g, const char *csum, int ofd, const guint8 *obj, guint64 size, const char *old,
                DfGenRebuildResult *out, GCancellable *c, GError **error)
{
  if (!resolve_sources (g, c, error))
    return FALSE;
  DfGenRebuildCache *k = g->cache;
  const DfDetect *d = cache_get (k, k->detects, csum);
  if (d == NULL)
    {
      DfDetect *mine = dfi_detect_fd (ofd, size, NULL, DF_DETECT_HASH_ENTRIES, c, error);
      if (mine == NULL)
        return FALSE;
      d = cache_keep (k, k->detects, csum, mine, (GDestroyNotify)dfi_detect_free);
    }
  else
    g_atomic_int_inc (&g->reused);
  g_autoptr (DfRebuildBuilder) b = dfi_rebuild_builder_new ();
  g_autoptr (GPtrArray) libs = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GString) what = g_string_new (NULL);
  Ctx x = { .g = g,
            .b = b,
            .d = d,
            .csum = csum,
            .ofd = ofd,
            .object = obj,
            .size = size,
            .libraries = libs,
            .what = what,
            .c = c,
            .old = old };
  x.sources = g_ptr_array_new_with_free_func (g_free);
  guint64 plain_from = 0;
  guint n_frames = 0;
  for (guint i = 0; i < d->n_segments; i++)
    {
      const DfSegment *s = &d->segments[i];
      if (s->depth != 0)
        continue;
      gboolean frame = s->kind == DF_SEGMENT_GZIP || s->kind == DF_SEGMENT_ZLIB || s->kind == DF_SEGMENT_ZSTD
                       || s->kind == DF_SEGMENT_XZ;
      if (!frame)
        continue;
      n_frames++;
      /* Plain bytes before the frame go into one plain segment; the frame
       * is tried in a scratch builder position only once they are in. */
      add_plain (&x, plain_from, s->offset - plain_from);
      gboolean used;
      if (!try_frame (&x, i, &used, error))
        {
          g_ptr_array_unref (x.sources);
          return FALSE;
        }
      plain_from = used ? s->offset + s->length : s->offset;
      if (!used)
        {
          /* The frame joins the plain bytes after it. */
          add_plain (&x, plain_from, s->length);
          plain_from = s->offset + s->length;
        }
    }
  add_plain (&x, plain_from, size - plain_from);
  out->found = n_frames > 0;
  if (x.frames == 0)
    {
      out->description = n_frames ? g_strdup_printf ("%u compressed frame(s): %s", n_frames, what->str)
                                  : g_strdup ("no compressed frame");
      g_ptr_array_unref (x.sources);
      return TRUE;
    }
  guint64 content_total = 0;
  g_autoptr (GBytes) program = dfi_rebuild_builder_end (b, &content_total);
  out->literal_bytes = dfi_rebuild_builder_literal_bytes (b);
  g_autofree char *patched = x.patches
                                 ? g_strdup_printf (" (%" G_GUINT64_FORMAT " bytes of content as a %" G_GUINT64_FORMAT
                                                    "-byte patch against the old version's)",
                                                    x.patched_bytes, x.patch_bytes)
                                 : g_strdup ("");
  g_autofree char *summary = g_strdup_printf (
      "%s; %u of %u cpio files from the trees (%" G_GUINT64_FORMAT " bytes), %" G_GUINT64_FORMAT " bytes literal%s",
      what->str, x.matched, x.entries, x.matched_bytes, out->literal_bytes, patched);
  g_clear_pointer (&x.old_content, g_bytes_unref);

  /* Worth it? The program is stored zstd-compressed; the plain encoding of
   * a compressed object costs about its size. */
  gsize plen = g_bytes_get_size (program);
  gsize cap = ZSTD_compressBound (plen);
  g_autofree guint8 *tmp = g_malloc (cap);
  size_t est = ZSTD_compress (tmp, cap, g_bytes_get_data (program, NULL), plen, 3);
  if (ZSTD_isError (est) || est * 2 > size || plen > DF_PART_SIZE_MAX - DF_HEADER_MAX - DF_PART_TABLE_LEN)
    {
      out->description = g_strdup_printf ("%s: not worth rebuilding (program %zu bytes, about %zu compressed)", summary,
                                          plen, ZSTD_isError (est) ? plen : est);
      g_ptr_array_unref (x.sources);
      return TRUE;
    }

  /* Run it as the device will (once per program: another delta to the
   * same commit often makes the same one). */
  g_auto (DfRebuildProgram) prog = { 0 };
  Compare cmp = { obj, size, 0 };
  g_autoptr (GError) local = NULL;
  guint8 psha[DF_SHA256_LEN];
  dfi_sha256 (g_bytes_get_data (program, NULL), g_bytes_get_size (program), psha);
  g_autofree char *psum = ostree_checksum_from_bytes (psha);
  g_autofree char *pkey = g_strdup_printf ("%s/%s", csum, psum);
  gboolean ran = cache_get (k, k->verified, pkey) != NULL;
  gboolean good = dfi_rebuild_program_parse (program, size, content_total, &prog, &local)
                  && (ran
                      || (dfi_rebuild_run (&prog, dfi_rebuild_open_from_repo, g->repo, compare_write, &cmp, G_MAXUINT64,
                                           c, &local)
                          && cmp.off == size));
  if (good && !ran)
    cache_keep (k, k->verified, pkey, GINT_TO_POINTER (1), NULL);
  if (!good)
    {
      g_ptr_array_unref (x.sources);
      if (g_error_matches (local, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        return (g_propagate_error (error, g_steal_pointer (&local)), FALSE);
      out->description = g_strdup_printf ("%s: the program does not rebuild the object (%s)", summary,
                                          local ? local->message : "short");
      return TRUE;
    }
  out->transformed = TRUE;
  out->program = g_steal_pointer (&program);
  out->content_total = content_total;
  out->memory = prog.memory; /* the encoders' and the patches' */
  g_ptr_array_add (libs, NULL);
  out->libraries = (char **)g_ptr_array_free (g_steal_pointer (&libs), FALSE);
  out->sources = x.sources;
  out->description = g_strdup_printf ("%s; program %zu bytes", summary, plen);
  return TRUE;
}

gboolean
dfi_gen_rebuild_analyze (DfGenRebuild *g, const char *csum, guint64 size, const char *old, DfGenRebuildResult *out,
                         GCancellable *cancellable, GError **error)
{
  memset (out, 0, sizeof *out);
  if (size < DF_GEN_REBUILD_MIN || size > DF_REBUILD_OBJECT_MAX)
    return TRUE;
  dfi_autofd fd = load_object (g, csum, size, cancellable, error);
  if (fd == -2)
    return TRUE;
  if (fd < 0)
    return FALSE;
  guint8 head[0x210];
  gsize hn = MIN (size, (guint64)sizeof head);
  if (!dfi_pread_all (fd, head, hn, 0, "object", error))
    return FALSE;
  if (!looks_transformable (head, hn))
    return TRUE;
  void *map = mmap (NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (map == MAP_FAILED)
    return dfi_throw_errno (error, errno, "mapping object %s", csum);
  gboolean ok = analyze_mapped (g, csum, fd, map, size, old, out, cancellable, error);
  munmap (map, size);
  return ok;
}
