/* Offline apply of a stock OSTree static delta. Trust comes first, as for
 * native deltas: the signature policy, the expected commit, rollback and
 * the from-commit are checked on the superblock alone. Then the parts that
 * carry dirtree/dirmeta objects run once for them alone, the trust walk
 * decides what the commit references, and every object any part declares
 * must be in that set before a content byte is written. Finally every part
 * runs: each file is hashed while it is rebuilt and written only when the
 * hash matches. Parts are decoded into a temporary file (xz needs its
 * dictionary, not the whole payload, in memory). */
#include <fcntl.h>
#include <gio/gunixinputstream.h>
#include <gio/gunixoutputstream.h>
#include <sys/stat.h>

#include "df-apply-policy.h"
#include "df-apply-stock-private.h"
#include "df-object-writer.h"
#include "df-part.h"
#include "df-stock.h"
#include "df-trust.h"

/* In an archive repository a source object is inflated into a temporary
 * file before it is read; a part may inflate at most this many bytes of
 * sources per byte of the objects it makes, plus DF_STOCK_INFLATE_SLACK
 * (ostree diffs files against old ones of similar size). */
#define DF_STOCK_INFLATE_PER_BYTE 4
#define DF_STOCK_INFLATE_SLACK (16 * DF_MIB)

typedef struct
{
  OstreeRepo *repo;
  DfObjectWriter *writer;
  DfTrust *trust;
  GCancellable *c;
  int tmp_dfd;
  gboolean metadata_pass;
  /* Metadata objects the parts carry, held until the walk, and the trust
   * tables may take at most meta_limit bytes together. */
  guint64 meta_held, meta_limit;

  /* The read source: named by the program (src_set), opened on its first
   * read; the last one opened stays open for the next object that names
   * it again. */
  gboolean src_set;
  guint8 src_csum[DF_SHA256_LEN];
  int src_fd;
  guint8 src_fd_csum[DF_SHA256_LEN];
  guint64 src_fd_size;
  char src_what[96]; /* "source object <hex>", for messages */
  /* This part: bytes of the objects rebuilt, and of sources inflated. */
  guint64 part_output, part_inflated;

  /* The file being rebuilt */
  const guint8 *csum;
  DfContentHeader h;
  guint64 size, got;
  DfSha256 sha;
  guint8 *mem;    /* the file in memory: @membuf, or NULL when staged */
  guint8 *membuf; /* DF_STOCK_INMEM_MAX bytes, allocated once: touched once */
  int stage_fd;
} Run;

static gboolean
open_tmpfile (Run *r, int *out, GError **error)
{
  *out = openat (r->tmp_dfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (*out < 0)
    return dfi_throw_errno (error, errno, "creating a temporary file in the repository");
  return TRUE;
}

static gboolean
on_metadata (gpointer user, OstreeObjectType type, const guint8 csum[DF_SHA256_LEN], GBytes *data, GError **error)
{
  Run *r = user;
  if (!r->metadata_pass)
    return TRUE;
  /* Verified by the walk; written once it has decided. */
  dfi_trust_add_delta_metadata (r->trust, type, csum, data);
  r->meta_held += g_bytes_get_size (data);
  if (r->meta_held + dfi_trust_memory (r->trust) > r->meta_limit)
    return dfi_throw (
        error, DF_ERROR_INVALID_ARGUMENT,
        "the delta's dirtree and dirmeta objects take more than the memory budget leaves (%" G_GUINT64_FORMAT " MiB)",
        r->meta_limit / DF_MIB);
  return TRUE;
}

static void
drop_object (Run *r)
{
  r->mem = NULL;
  if (r->stage_fd >= 0)
    close (r->stage_fd);
  r->stage_fd = -1;
  dfi_content_header_clear (&r->h);
  if (r->csum)
    dfi_sha256_clear (&r->sha);
  r->csum = NULL;
}

static gboolean
on_begin (gpointer user, const guint8 csum[DF_SHA256_LEN], guint32 uid, guint32 gid, guint32 mode, GVariant *xattrs,
          const char *target, guint64 size, gboolean *skip, GError **error)
{
  Run *r = user;
  if (r->metadata_pass)
    return (*skip = TRUE);
  char hex[65];
  dfi_hex (csum, hex);
  if (!dfi_trust_reaches (r->trust, OSTREE_OBJECT_TYPE_FILE, csum))
    return dfi_throw (error, DF_ERROR_UNTRUSTED, "file %s is not referenced by the commit", hex);
  gboolean have = FALSE;
  if (!ostree_repo_has_object (r->repo, OSTREE_OBJECT_TYPE_FILE, hex, &have, r->c, error))
    return FALSE;
  if (have)
    return (*skip = TRUE);
  r->h.uid = uid, r->h.gid = gid, r->h.mode = mode;
  r->h.xattrs = g_variant_ref (xattrs);
  r->h.symlink_target = g_strdup (target ? target : "");
  dfi_content_checksum_begin (&r->sha, uid, gid, mode, target, xattrs);
  r->csum = csum;
  r->size = size;
  r->got = 0;
  r->part_output += size;
  if (size > DF_STOCK_INMEM_MAX)
    return open_tmpfile (r, &r->stage_fd, error);
  r->mem = r->membuf;
  return TRUE;
}

static gboolean
on_data (gpointer user, const guint8 *data, gsize len, GError **error)
{
  Run *r = user;
  g_assert (r->got + len <= r->size); /* the interpreter counts */
  dfi_sha256_update (&r->sha, data, len);
  if (r->mem)
    memcpy (r->mem + r->got, data, len);
  else if (!dfi_pwrite_all (r->stage_fd, data, len, r->got, "staged file", error))
    return FALSE;
  r->got += len;
  return TRUE;
}

static gboolean
on_end (gpointer user, GError **error)
{
  Run *r = user;
  char hex[65];
  dfi_hex (r->csum, hex);
  guint8 actual[DF_SHA256_LEN];
  dfi_sha256_final (&r->sha, actual);
  if (memcmp (actual, r->csum, DF_SHA256_LEN) != 0)
    {
      drop_object (r);
      return dfi_throw (error, DF_ERROR_CORRUPT, "file %s: the rebuilt bytes do not hash to its checksum", hex);
    }
  g_autoptr (GInputStream) in = NULL;
  if (r->stage_fd >= 0)
    {
      g_autoptr (GInputStream) raw = g_unix_input_stream_new (r->stage_fd, FALSE);
      in = g_buffered_input_stream_new_sized (raw, DF_COPY_BUFFER);
    }
  else
    in = g_memory_input_stream_new_from_data (r->mem ? r->mem : (guint8 *)"", r->size, NULL);
  gboolean ok = dfi_object_writer_content (r->writer, r->csum, &r->h, in, r->size, TRUE, r->c, error);
  g_clear_object (&in);
  drop_object (r);
  return ok;
}

static void
source_close (Run *r)
{
  if (r->src_fd >= 0)
    close (r->src_fd);
  r->src_fd = -1;
}

static gboolean
on_source_set (gpointer user, const guint8 csum[DF_SHA256_LEN], GError **error)
{
  Run *r = user;
  memcpy (r->src_csum, csum, DF_SHA256_LEN);
  r->src_set = TRUE;
  return TRUE;
}

static void
on_source_unset (gpointer user)
{
  Run *r = user;
  r->src_set = FALSE;
}

/* Opens the named source for reading at any offset, unless it is open
 * already: in place in a bare repository, else inflated into a temporary
 * file through libostree (archive mode, parent repositories), within the
 * part's allowance. */
static gboolean
source_open (Run *r, GError **error)
{
  g_assert (r->src_set);
  if (r->src_fd >= 0 && memcmp (r->src_fd_csum, r->src_csum, DF_SHA256_LEN) == 0)
    return TRUE;
  source_close (r);
  char hex[65], path[128];
  dfi_hex (r->src_csum, hex);
  g_snprintf (r->src_what, sizeof r->src_what, "source object %s", hex);
  OstreeRepoMode mode = ostree_repo_get_mode (r->repo);
  struct stat st;
  if (mode == OSTREE_REPO_MODE_BARE || mode == OSTREE_REPO_MODE_BARE_USER || mode == OSTREE_REPO_MODE_BARE_USER_ONLY)
    {
      g_snprintf (path, sizeof path, "objects/%.2s/%s.file", hex, hex + 2);
      if (faccessat (ostree_repo_get_dfd (r->repo), path, F_OK, AT_SYMLINK_NOFOLLOW) == 0
          && (r->src_fd = dfi_open_regular (ostree_repo_get_dfd (r->repo), path, r->src_what, &st, error)) < 0)
        return FALSE;
    }
  if (r->src_fd < 0)
    {
      g_autoptr (GInputStream) in = NULL;
      g_autoptr (GFileInfo) info = NULL;
      g_autoptr (GError) local = NULL;
      if (!ostree_repo_load_file (r->repo, hex, &in, &info, NULL, r->c, &local))
        return dfi_throw (error, DF_ERROR_MISSING_BASE, "%s is not in the repository", r->src_what);
      if (in == NULL)
        return dfi_throw (error, DF_ERROR_INVALID_DELTA, "%s is not a regular file", r->src_what);
      guint64 size = g_file_info_get_size (info);
      if (r->part_inflated + size > r->part_output * DF_STOCK_INFLATE_PER_BYTE + DF_STOCK_INFLATE_SLACK)
        return dfi_throw (error, DF_ERROR_INVALID_DELTA,
                          "the part reads %" G_GUINT64_FORMAT " bytes of source objects for %" G_GUINT64_FORMAT
                          " bytes of output",
                          r->part_inflated + size, r->part_output);
      r->part_inflated += size;
      int fd;
      if (!open_tmpfile (r, &fd, error))
        return FALSE;
      r->src_fd = fd;
      g_autoptr (GOutputStream) out = g_unix_output_stream_new (r->src_fd, FALSE);
      if (g_output_stream_splice (out, in, 0, r->c, error) < 0)
        {
          source_close (r);
          return FALSE;
        }
      if (fstat (r->src_fd, &st) < 0)
        return dfi_throw_errno (error, errno, "reading %s", r->src_what);
    }
  memcpy (r->src_fd_csum, r->src_csum, DF_SHA256_LEN);
  r->src_fd_size = st.st_size;
  return TRUE;
}

static gboolean
on_source_size (gpointer user, guint64 *size, GError **error)
{
  Run *r = user;
  if (!source_open (r, error))
    return FALSE;
  *size = r->src_fd_size;
  return TRUE;
}

static gboolean
on_source_read (gpointer user, guint64 offset, guint8 *buf, gsize len, GError **error)
{
  Run *r = user;
  if (!source_open (r, error))
    return FALSE;
  return dfi_pread_all (r->src_fd, buf, len, offset, r->src_what, error);
}

static const DfStockSink stock_sink
    = { on_metadata, on_begin, on_data, on_end, on_source_set, on_source_size, on_source_read, on_source_unset };

static gboolean
exec_part (Run *r, const DfStockSuperblock *sb, guint i, int fd, guint64 len, GError **error)
{
  DfStockPayload pl;
  r->part_output = r->part_inflated = 0;
  gboolean ok = dfi_stock_payload_open (&pl, fd, len, error);
  if (ok)
    {
      ok = dfi_stock_execute (&sb->parts[i], &pl, &stock_sink, r, NULL, r->c, error);
      dfi_stock_payload_clear (&pl);
    }
  r->src_set = FALSE;
  drop_object (r);
  if (!ok)
    g_prefix_error (error, "part %u: ", i);
  return ok;
}

gboolean
dfi_stock_part_has_metadata (const DfStockPart *p)
{
  for (guint j = 0; j < p->n_objects; j++)
    if (p->objects[j * DF_STOCK_OBJREC_LEN] != OSTREE_OBJECT_TYPE_FILE)
      return TRUE;
  return FALSE;
}

gboolean
dfi_stock_part_present (OstreeRepo *repo, const DfStockPart *p, GCancellable *c, gboolean *out, GError **error)
{
  *out = FALSE;
  for (guint j = 0; j < p->n_objects; j++)
    {
      const guint8 *rec = p->objects + j * DF_STOCK_OBJREC_LEN;
      char hex[65];
      dfi_hex (rec + 1, hex);
      gboolean have = FALSE;
      if (!ostree_repo_has_object (repo, rec[0], hex, &have, c, error))
        return FALSE;
      if (!have)
        return TRUE;
    }
  *out = TRUE;
  return TRUE;
}

/* Every object the delta declares (parts and fallbacks) must be one the
 * commit references: checked before any content is written. */
static gboolean
check_declared (DfTrust *trust, const DfStockSuperblock *sb, GError **error)
{
  for (guint i = 0; i < sb->n_parts; i++)
    for (guint j = 0; j < sb->parts[i].n_objects; j++)
      {
        const guint8 *rec = sb->parts[i].objects + j * DF_STOCK_OBJREC_LEN;
        if (!dfi_trust_reaches (trust, rec[0], rec + 1))
          {
            char hex[65];
            dfi_hex (rec + 1, hex);
            return dfi_throw (error, DF_ERROR_UNTRUSTED,
                              "part %u: %s %s is not referenced by commit %s; refusing the delta", i,
                              ostree_object_type_to_string (rec[0]), hex, sb->to_hex);
          }
      }
  for (guint i = 0; i < sb->n_fallbacks; i++)
    if (!dfi_trust_reaches (trust, sb->fallbacks[i].objtype, sb->fallbacks[i].checksum))
      {
        char hex[65];
        dfi_hex (sb->fallbacks[i].checksum, hex);
        return dfi_throw (error, DF_ERROR_UNTRUSTED, "fallback %s is not referenced by commit %s; refusing the delta",
                          hex, sb->to_hex);
      }
  return TRUE;
}

/* Every object the commit references must be present before the commit
 * object is written; those the parts make are. */
static gboolean
check_complete (DfTrust *trust, const DfStockSuperblock *sb, GCancellable *c, GError **error)
{
  g_autoptr (DfObjSet) carried = dfi_objset_new (NULL);
  for (guint i = 0; i < sb->n_parts; i++)
    for (guint j = 0; j < sb->parts[i].n_objects; j++)
      {
        const guint8 *rec = sb->parts[i].objects + j * DF_STOCK_OBJREC_LEN;
        dfi_objset_add (carried, rec[0], rec + 1, NULL);
      }
  return dfi_trust_check_present (trust, carried, sb->has_from, sb->to_hex, c, error);
}

static void
progress (const DfApplyOptions *opts, DfProgress *p, DfPhase phase)
{
  p->phase = phase;
  if (opts->progress)
    opts->progress (p, opts->progress_data);
}

GArray *
dfi_stock_missing_fallbacks (OstreeRepo *repo, const DfStockSuperblock *sb, guint64 *bytes, GCancellable *c,
                             GError **error)
{
  g_autoptr (GArray) missing = g_array_new (FALSE, FALSE, sizeof (guint));
  if (bytes)
    *bytes = 0;
  for (guint i = 0; i < sb->n_fallbacks; i++)
    {
      char hex[65];
      dfi_hex (sb->fallbacks[i].checksum, hex);
      gboolean have = FALSE;
      if (!ostree_repo_has_object (repo, sb->fallbacks[i].objtype, hex, &have, c, error))
        return NULL;
      if (!have)
        {
          g_array_append_val (missing, i);
          if (bytes)
            *bytes += sb->fallbacks[i].size;
        }
    }
  return g_steal_pointer (&missing);
}

/* Fallback objects the repository lacks, from the part source: dirtree and
 * dirmeta objects join the trust walk's candidates (@meta), files are
 * rebuilt, hashed and written like those of a part. */
static gboolean
apply_fallbacks (Run *r, const DfStockSuperblock *sb, GArray *missing, gboolean meta, const DfPartSource *src,
                 DfProgress *p, const DfApplyOptions *opts, GError **error)
{
  for (guint k = 0; k < missing->len; k++)
    {
      guint i = g_array_index (missing, guint, k);
      const DfStockFallback *fb = &sb->fallbacks[i];
      if ((fb->objtype != OSTREE_OBJECT_TYPE_FILE) != meta)
        continue;
      int fd_raw = -1;
      guint64 size = 0;
      if (!src->fallback (i, &fd_raw, &size, src->data, error))
        return FALSE;
      dfi_autofd fd = fd_raw;
      if (meta)
        {
          /* The source verified it; the walk checks it again. */
          if (size > DF_METADATA_OBJECT_MAX)
            return dfi_throw (error, DF_ERROR_INVALID_DELTA, "fallback object of %" G_GUINT64_FORMAT " bytes", size);
          g_autofree guint8 *buf = g_malloc (MAX (size, 1));
          if (!dfi_pread_all (fd, buf, size, 0, "fallback object", error))
            return FALSE;
          g_autoptr (GBytes) b = g_bytes_new_take (g_steal_pointer (&buf), size);
          dfi_trust_add_delta_metadata (r->trust, fb->objtype, fb->checksum, b);
          continue;
        }
      gboolean ok = dfi_stock_filez_read (fd, size, fb, &stock_sink, r, r->c, error);
      drop_object (r);
      if (!ok)
        return FALSE;
      p->bytes_done += fb->usize;
      progress (opts, p, DF_PHASE_CONTENT);
    }
  return TRUE;
}

/* Content parts are decoded and rebuilt in the order that keeps the
 * threads busy. With one decoder, Johnson's rule for a two-stage flow
 * shop: parts that decode faster than they rebuild first, quickest to
 * decode first, so the rebuilding thread has work early; parts that take
 * xz longer than their rebuilding (poorly compressed ones, an initrd)
 * last, largest first, so their decoding overlaps the rebuilding of
 * everything before them. With several decoders the slow-to-decode parts
 * go first instead, largest first, so one decoder works through them
 * while the others feed the rebuilding thread the quick ones, and the run
 * does not end on a single decoder. Costs are guessed from the superblock:
 * decoding from the compressed size, rebuilding from the size of the
 * objects. */
static gboolean
decode_heavy (const DfStockPart *p)
{
  return p->size * 4 > p->usize;
}

typedef struct
{
  const DfStockSuperblock *sb;
  gboolean heavy_first;
} OrderCtx;

static gint
content_order (gconstpointer x, gconstpointer y, gpointer data)
{
  const OrderCtx *ctx = data;
  const DfStockPart *p = &ctx->sb->parts[*(const guint *)x], *q = &ctx->sb->parts[*(const guint *)y];
  gboolean hp = decode_heavy (p), hq = decode_heavy (q);
  if (hp != hq)
    return (hp != ctx->heavy_first) ? 1 : -1;
  guint64 kp = hp ? G_MAXUINT64 - (ctx->heavy_first ? p->size : p->usize) : p->size;
  guint64 kq = hq ? G_MAXUINT64 - (ctx->heavy_first ? q->size : q->usize) : q->size;
  if (kp != kq)
    return kp < kq ? -1 : 1;
  return *(const guint *)x < *(const guint *)y ? -1 : 1;
}

void
dfi_stock_content_order (const DfStockSuperblock *sb, guint *parts, guint n, guint decoders)
{
  OrderCtx ctx = { sb, decoders > 1 };
  g_qsort_with_data (parts, n, sizeof *parts, content_order, &ctx);
}

typedef struct
{
  DfObjectWriter *writer;
  GPtrArray *meta; /* DfTrustMeta* */
  GCancellable *c;
  gint stop;
  GError *error;
} MetaWriter;

static gpointer
meta_writer_thread (gpointer data)
{
  MetaWriter *mw = data;
  for (guint i = 0; i < mw->meta->len && !g_atomic_int_get (&mw->stop); i++)
    {
      DfTrustMeta *m = mw->meta->pdata[i];
      if (!dfi_object_writer_metadata (mw->writer, m->type, m->checksum, m->data, mw->c, &mw->error))
        break;
    }
  return NULL;
}

static gboolean
apply_in_txn (Run *r, OstreeRepo *repo, const DfStockSuperblock *sb, const DfPartSource *src,
              const DfApplyOptions *opts, GArray *missing, DfApplyResult *result, GError **error)
{
  DfProgress p = { .parts_total = sb->n_parts, .objects_total = sb->n_objects };
  for (guint i = 0; i < sb->n_parts; i++)
    p.bytes_total += sb->parts[i].usize;
  for (guint k = 0; k < missing->len; k++)
    p.bytes_total += sb->fallbacks[g_array_index (missing, guint, k)].usize;
  progress (opts, &p, DF_PHASE_PLAN);

  /* The plan: parts with dirtree/dirmeta objects first (they run twice:
   * for those alone before the walk, for their files after it), then the
   * content parts whose files are not all present already (resume). */
  g_autofree guint *plan = g_new (guint, MAX (sb->n_parts, 1));
  g_autofree gboolean *content_run = g_new0 (gboolean, MAX (sb->n_parts, 1));
  guint n_plan = 0, n_meta = 0;
  gboolean ok = TRUE;
  for (guint pass = 0; ok && pass < 2; pass++)
    for (guint i = 0; ok && i < sb->n_parts; i++)
      {
        if (dfi_stock_part_has_metadata (&sb->parts[i]) != (pass == 0))
          continue;
        gboolean done;
        ok = dfi_stock_part_present (repo, &sb->parts[i], r->c, &done, error);
        content_run[i] = !done;
        if (ok && done)
          result->parts_skipped++, p.parts_done++;
        if (ok && (pass == 0 || !done))
          plan[n_plan++] = i, n_meta += pass == 0;
      }

  /* A fetcher downloads the parts in this order too (xz decodes slower
   * than a link of 32 MB/s delivers, so a decoder then never waits). */
  guint decoders = dfi_stock_decoders (sb, opts->memory, opts->jobs);
  if (ok)
    dfi_stock_content_order (sb, plan + n_meta, n_plan - n_meta, decoders);
  /* Offline, what the delta declares it will write (objects, and payloads
   * decoded ahead) must fit before a byte is written; a fetch checked
   * that before downloading. */
  if (ok && src->wait == NULL)
    {
      guint64 need = dfi_stock_payload_staging (sb, decoders);
      for (guint i = 0; i < sb->n_parts; i++)
        if (content_run[i])
          need += sb->parts[i].usize;
      for (guint k = 0; k < missing->len; k++)
        need += sb->fallbacks[g_array_index (missing, guint, k)].usize;
      ok = dfi_check_free_space (repo, r->tmp_dfd, need, error);
    }
  decoders = MIN (decoders, MAX (n_plan, 1));
  result->workers = decoders + 1;

  g_autofree int *dec_fd = g_new (int, MAX (n_plan, 1));
  g_autofree guint64 *dec_len = g_new0 (guint64, MAX (n_plan, 1));
  g_autofree gboolean *taken = g_new0 (gboolean, MAX (n_plan, 1));
  for (guint k = 0; k < n_plan; k++)
    dec_fd[k] = -1;
  Pipe pp = { .sb = sb,
              .tmp_dfd = r->tmp_dfd,
              .c = r->c,
              .plan = plan,
              .n_plan = n_plan,
              .n_meta = n_meta,
              .src = src,
              .fd = dec_fd,
              .len = dec_len,
              .taken = taken,
              .pool = g_array_new (FALSE, FALSE, sizeof (int)) };
  g_mutex_init (&pp.lock);
  g_cond_init (&pp.cond);
  g_autoptr (GPtrArray) threads = g_ptr_array_new ();
  for (guint d = 0; ok && n_plan > 0 && d < decoders; d++)
    g_ptr_array_add (threads, g_thread_new ("df-stock-decode", dfi_stock_decoder_thread, &pp));

  /* Metadata: run the first parts for their dirtree/dirmeta objects, walk,
   * write what the commit references. */
  r->metadata_pass = TRUE;
  for (guint k = 0; ok && k < n_meta; k++)
    ok = dfi_stock_pipe_wait (&pp, k, error) && exec_part (r, sb, plan[k], pp.fd[k], pp.len[k], error);
  r->metadata_pass = FALSE;
  if (ok && missing->len > 0)
    ok = apply_fallbacks (r, sb, missing, TRUE, src, &p, opts, error);
  if (ok)
    ok = dfi_trust_walk (r->trust, sb->commit, sb->to_hex, error) && check_declared (r->trust, sb, error);
  /* The verified dirtree and dirmeta objects are written in a thread of
   * their own while the content parts run (libostree takes concurrent
   * writes into one transaction): thousands of small files otherwise hold
   * up the first content part. */
  MetaWriter mw = { .writer = r->writer, .meta = dfi_trust_metadata (r->trust), .c = r->c };
  GThread *meta_thread = ok && mw.meta->len > 0 ? g_thread_new ("df-stock-meta", meta_writer_thread, &mw) : NULL;

  /* Content: metadata parts whose files are all here are done with; the
   * rest run as they come out of the decoders. */
  progress (opts, &p, DF_PHASE_CONTENT);
  for (guint k = 0; k < n_meta; k++)
    if (!content_run[plan[k]])
      dfi_stock_pipe_release (&pp, k);
  for (guint k = 0; ok;)
    {
      ok = dfi_stock_pipe_take (&pp, &k, error);
      if (!ok || k == G_MAXUINT)
        break;
      guint i = plan[k];
      ok = exec_part (r, sb, i, pp.fd[k], pp.len[k], error);
      if (ok)
        {
          result->parts_applied++;
          p.parts_done++;
          p.bytes_done += sb->parts[i].usize;
          progress (opts, &p, DF_PHASE_CONTENT);
        }
      dfi_stock_pipe_release (&pp, k);
    }
  if (ok && missing->len > 0)
    ok = apply_fallbacks (r, sb, missing, FALSE, src, &p, opts, error);
  if (meta_thread)
    {
      g_atomic_int_set (&mw.stop, !ok);
      g_thread_join (meta_thread);
      if (ok && mw.error)
        ok = (g_propagate_error (error, g_steal_pointer (&mw.error)), FALSE);
      g_clear_error (&mw.error);
    }
  g_mutex_lock (&pp.lock);
  pp.stop = TRUE;
  g_cond_broadcast (&pp.cond);
  g_mutex_unlock (&pp.lock);
  for (guint d = 0; d < threads->len; d++)
    g_thread_join (threads->pdata[d]);
  g_clear_error (&pp.error);
  g_mutex_clear (&pp.lock);
  g_cond_clear (&pp.cond);
  for (guint k = 0; k < n_plan; k++)
    if (dec_fd[k] >= 0)
      close (dec_fd[k]);
  for (guint k = 0; k < pp.pool->len; k++)
    close (g_array_index (pp.pool, int, k));
  g_array_unref (pp.pool);
  if (!ok)
    return FALSE;

  progress (opts, &p, DF_PHASE_COMMIT);
  if (!check_complete (r->trust, sb, r->c, error))
    return FALSE;
  return dfi_object_writer_commit (r->writer, sb->to_hex, sb->commit, sb->commitmeta, opts->ref,
                                   &result->objects_written, &result->content_bytes, r->c, error);
}

gboolean
dfi_apply_stock (OstreeRepo *repo, const DfStockSuperblock *sb, const DfPartSource *src, const DfApplyOptions *opts,
                 DfApplyResult *result, GCancellable *cancellable, GError **error)
{
  result->signature_verified = sb->file.verified;
  g_autoptr (GBytes) commitmeta = sb->commitmeta ? g_variant_get_data_as_bytes (sb->commitmeta) : NULL;
  if (!dfi_apply_preflight (repo, opts, sb->to_hex, sb->commit, commitmeta, sb->has_from ? sb->from_hex : NULL,
                            cancellable, error)
      || !dfi_stock_check_memory (sb, opts->memory, error))
    return FALSE;
  /* Objects the delta leaves to be fetched one by one must be here already
   * for an offline apply, or come from the part source. */
  guint64 missing_bytes = 0;
  g_autoptr (GArray) missing = dfi_stock_missing_fallbacks (repo, sb, &missing_bytes, cancellable, error);
  if (missing == NULL)
    return FALSE;
  if (missing->len > 0 && src->fallback == NULL)
    return dfi_throw (error, DF_ERROR_MISSING_BASE,
                      "the delta leaves %u objects (%" G_GUINT64_FORMAT
                      " bytes) to be fetched one by one, and the repository does not have them: give --url, or use "
                      "deltafetch fetch",
                      missing->len, missing_bytes);

  g_autofree char *state = NULL;
  {
    char sha[65];
    dfi_hex (sb->file.sha256, sha);
    state = g_strdup_printf ("tmp/deltafetch-apply-%s", sha);
  }
  g_autofree guint8 *membuf = g_malloc (DF_STOCK_INMEM_MAX);
  Run r = { .repo = repo, .c = cancellable, .src_fd = -1, .stage_fd = -1, .membuf = membuf };
  /* The trust walk and the metadata objects held for it get what the
   * decoders leave of the budget. */
  guint decoders = dfi_stock_decoders (sb, opts->memory, opts->jobs);
  guint64 avail = opts->memory - DF_APPLY_RESERVE - DF_STOCK_REBUILD_MEM - sb->memory;
  r.meta_limit = avail - MIN (avail, (guint64)decoders * DF_STOCK_DECODER_MEM);
  r.tmp_dfd = openat (ostree_repo_get_dfd (repo), "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (r.tmp_dfd < 0)
    return dfi_throw_errno (error, errno, "opening the repository's tmp directory");
  dfi_autofd tmp_owned = r.tmp_dfd;
  gboolean resumed = FALSE;
  if (!ostree_repo_prepare_transaction (repo, &resumed, cancellable, error))
    return FALSE;
  r.writer = dfi_object_writer_new (repo, state, error);
  r.trust = dfi_trust_new (repo);
  dfi_trust_set_memory_limit (r.trust, r.meta_limit);
  memcpy (result->commit, sb->to_hex, 65);
  result->commit_trusted = opts->commit != NULL;
  gboolean ok = r.writer && apply_in_txn (&r, repo, sb, src, opts, missing, result, error);
  source_close (&r);
  if (!ok)
    {
      /* Staged objects (all verified) stay for the next run, unless the
       * delta itself is at fault. */
      ostree_repo_abort_transaction (repo, NULL, NULL);
      dfi_error_normalize (error, NULL);
    }
  else
    dfi_object_writer_cleanup (r.writer, NULL);
  g_clear_pointer (&r.writer, dfi_object_writer_free);
  if (!ok && dfi_apply_failure_is_final (*error))
    dfi_apply_forget_staging (repo, sb->file.sha256);
  dfi_trust_free (r.trust);
  return ok;
}
