#include "df-object-writer-private.h"

#include "df-bspatch.h"
#include "df-objset.h"
#include "df-rebuild.h"

#include <dirent.h>
#include <fcntl.h>
#include <gio/gunixinputstream.h>
#include <gio/gunixoutputstream.h>
#include <sys/stat.h>
#include <unistd.h>

/* The commit's final syncfs() would otherwise find every byte of the
 * update still dirty in the page cache (the kernel's background threshold
 * is a share of RAM, far above a typical update on a large machine) and
 * the disk idle until then. This thread starts writeback every
 * DF_WRITEBACK_STEP bytes, so the disk works while the CPU decodes, and
 * dirty memory stays bounded on a small device. Durability is still the
 * transaction's job; this only moves the work earlier. */
static gpointer
writeback_thread (gpointer data)
{
  DfObjectWriter *w = data;
  g_mutex_lock (&w->lock);
  while (!w->flush_stop)
    {
      if (!w->flush_pending)
        {
          g_cond_wait (&w->flush_cond, &w->lock);
          continue;
        }
      w->flush_pending = FALSE;
      g_mutex_unlock (&w->lock);
      syncfs (ostree_repo_get_dfd (w->repo));
      g_mutex_lock (&w->lock);
    }
  g_mutex_unlock (&w->lock);
  return NULL;
}

void
dfi_object_writer_stop_writeback (DfObjectWriter *w)
{
  if (w->flusher == NULL)
    return;
  g_mutex_lock (&w->lock);
  w->flush_stop = TRUE;
  g_cond_signal (&w->flush_cond);
  g_mutex_unlock (&w->lock);
  g_thread_join (w->flusher);
  w->flusher = NULL;
}

DfObjectWriter *
dfi_object_writer_new (OstreeRepo *repo, const char *state_dir, GError **error)
{
  int repo_dfd = ostree_repo_get_dfd (repo);
  if (!dfi_mkdir_p_at (repo_dfd, state_dir, error))
    return NULL;
  int dfd = openat (repo_dfd, state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    {
      dfi_throw_errno (error, errno, "opening %s", state_dir);
      return NULL;
    }
  DfObjectWriter *w = g_new0 (DfObjectWriter, 1);
  w->repo = g_object_ref (repo);
  w->state_dir = g_strdup (state_dir);
  w->state_dfd = dfd;
  w->tmp_dfd = openat (repo_dfd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  w->inflated = g_ptr_array_new ();
  w->inflate_budget = G_MAXUINT64;
  g_mutex_init (&w->lock);
  g_cond_init (&w->source_cond);
  w->splits = g_hash_table_new_full (dfi_keyed_str_hash, g_str_equal, g_free, g_free);
  w->verified_markers = g_hash_table_new_full (dfi_keyed_str_hash, g_str_equal, g_free, NULL);
  g_cond_init (&w->flush_cond);
  if (!ostree_repo_get_disable_fsync (repo))
    w->flusher = g_thread_new ("df-writeback", writeback_thread, w);
  return w;
}

void
dfi_object_writer_free (DfObjectWriter *w)
{
  if (w == NULL)
    return;
  dfi_object_writer_stop_writeback (w);
  g_cond_clear (&w->flush_cond);
  /* A staging directory that never received a chunk is not worth keeping
   * for a rerun (one that holds chunks is, unless the caller removed it). */
  unlinkat (ostree_repo_get_dfd (w->repo), w->state_dir, AT_REMOVEDIR);
  g_object_unref (w->repo);
  g_free (w->state_dir);
  if (w->state_dfd >= 0)
    close (w->state_dfd);
  if (w->tmp_dfd >= 0)
    close (w->tmp_dfd);
  for (guint i = 0; i < w->inflated->len; i++)
    {
      Inflated *s = w->inflated->pdata[i];
      g_assert (s->refs == 0);
      close (s->fd);
      g_free (s);
    }
  g_ptr_array_unref (w->inflated);
  g_cond_clear (&w->source_cond);
  g_mutex_clear (&w->lock);
  g_hash_table_unref (w->splits);
  g_hash_table_unref (w->verified_markers);
  g_free (w);
}

static char *
marker_name (const char *hex, guint64 offset)
{
  return g_strdup_printf ("%s.%" G_GUINT64_FORMAT ".ok", hex, offset);
}

void
dfi_object_writer_expect_split (DfObjectWriter *w, const guint8 checksum[DF_SHA256_LEN], guint64 size, guint n_chunks,
                                guint n_done)
{
  char hex[65];
  dfi_hex (checksum, hex);
  Split *s = g_new0 (Split, 1);
  s->n_chunks = n_chunks;
  s->done = n_done;
  s->size = size;
  g_hash_table_replace (w->splits, g_strdup (hex), s);
}

static gboolean
is_split (const DfEntry *e)
{
  return e->objtype == OSTREE_OBJECT_TYPE_FILE && e->length != e->object_size;
}

/* SHA-256 of @len bytes at @off of @name in the staging area. */
static gboolean
hash_staged (DfObjectWriter *w, const char *name, guint64 off, guint64 len, guint8 out[DF_SHA256_LEN])
{
  dfi_autofd fd = dfi_open_regular (w->state_dfd, name, name, NULL, NULL);
  if (fd < 0)
    return FALSE;
  DfSha256 h;
  dfi_sha256_init (&h);
  g_autofree guint8 *buf = g_malloc (DF_COPY_BUFFER);
  gboolean ok = TRUE;
  for (guint64 done = 0; ok && done < len;)
    {
      gsize n = MIN ((guint64)DF_COPY_BUFFER, len - done);
      ok = dfi_pread_all (fd, buf, n, off + done, name, NULL);
      if (ok)
        dfi_sha256_update (&h, buf, n);
      done += n;
    }
  dfi_sha256_final (&h, out);
  dfi_sha256_clear (&h);
  return ok;
}

/* A chunk's marker holds the SHA-256 of the chunk's staged bytes (and, for
 * the first chunk, of the staged header): the staged files are not synced,
 * so after a power loss a marker may outlive the bytes it describes. A
 * marker is trusted only once those bytes hash to it; one that does not is
 * removed and the chunk applied again. */
static gboolean
chunk_staged (DfObjectWriter *w, const char *hex, const DfEntry *e)
{
  g_autofree char *m = marker_name (hex, e->offset);
  g_mutex_lock (&w->lock);
  gboolean known = g_hash_table_contains (w->verified_markers, m);
  g_mutex_unlock (&w->lock);
  if (known)
    return TRUE;
  if (faccessat (w->state_dfd, m, F_OK, 0) != 0)
    return FALSE;
  gsize want = e->offset == 0 ? 2 * DF_SHA256_LEN : DF_SHA256_LEN;
  g_autoptr (GBytes) rec = dfi_read_file_bounded (w->state_dfd, m, want, want, "marker", NULL);
  g_autofree char *dname = g_strdup_printf ("%s.data", hex);
  g_autofree char *hname = g_strdup_printf ("%s.header", hex);
  guint8 got[DF_SHA256_LEN];
  const guint8 *r = rec ? g_bytes_get_data (rec, NULL) : NULL;
  gboolean ok = r && hash_staged (w, dname, e->offset, e->length, got) && memcmp (got, r, DF_SHA256_LEN) == 0;
  struct stat st;
  if (ok && e->offset == 0)
    ok = fstatat (w->state_dfd, hname, &st, 0) == 0 && hash_staged (w, hname, 0, st.st_size, got)
         && memcmp (got, r + DF_SHA256_LEN, DF_SHA256_LEN) == 0;
  if (!ok)
    {
      unlinkat (w->state_dfd, m, 0);
      return FALSE;
    }
  g_mutex_lock (&w->lock);
  g_hash_table_add (w->verified_markers, g_steal_pointer (&m));
  g_mutex_unlock (&w->lock);
  return TRUE;
}

gboolean
dfi_object_writer_entry_done (DfObjectWriter *w, const DfEntry *e)
{
  char hex[65];
  dfi_hex (e->checksum, hex);
  gboolean have = FALSE;
  if (ostree_repo_has_object (w->repo, e->objtype, hex, &have, NULL, NULL) && have)
    return TRUE;
  return is_split (e) && chunk_staged (w, hex, e);
}

/* libostree reports a checksum mismatch as a generic error; give it our
 * code so callers and exit codes can tell corruption from I/O trouble. */
static void
classify_write_error (GError **error, const char *what)
{
  if (error && *error && (strstr ((*error)->message, "Corrupted") || strstr ((*error)->message, "checksum expected")))
    {
      GError *n = g_error_new (DF_ERROR, DF_ERROR_CORRUPT, "%s%sreconstructed bytes do not match the checksum (%s)",
                               what ? what : "", what ? ": " : "", (*error)->message);
      g_error_free (*error);
      *error = n;
      return;
    }
  dfi_error_normalize (error, what);
}

gboolean
dfi_object_writer_metadata (DfObjectWriter *w, OstreeObjectType type, const guint8 checksum[DF_SHA256_LEN],
                            GBytes *data, GCancellable *c, GError **error)
{
  char hex[65];
  dfi_hex (checksum, hex);
  g_autoptr (GVariant) v
      = g_variant_ref_sink (g_variant_new_from_bytes (ostree_metadata_variant_type (type), data, FALSE));
  g_autofree guchar *out = NULL;
  if (!ostree_repo_write_metadata (w->repo, type, hex, v, &out, c, error))
    {
      g_autofree char *what = g_strdup_printf ("%s %s", ostree_object_type_to_string (type), hex);
      classify_write_error (error, what);
      return FALSE;
    }
  g_mutex_lock (&w->lock);
  w->objects++;
  g_mutex_unlock (&w->lock);
  return TRUE;
}

/* OSTree's content checksum is SHA-256 over a length-prefixed header
 * variant (uid, gid, mode big-endian, rdev 0, symlink target, xattrs)
 * followed by the content. libostree computes it with GLib's portable
 * SHA-256; OpenSSL's is several times faster, so apply hashes with OpenSSL
 * and lets libostree skip its own pass when the result matches. */
static void
checksum_header (DfSha256 *h, const DfContentHeader *hdr)
{
  dfi_content_checksum_begin (h, hdr->uid, hdr->gid, hdr->mode, hdr->symlink_target, hdr->xattrs);
}

/* Writes a content object whose bytes come from @body. When @verified is
 * TRUE the caller has already checked the object's checksum with OpenSSL,
 * and libostree is asked not to hash again; otherwise libostree hashes and
 * refuses a mismatch. Either way nothing unverified enters the repository. */
static gboolean
write_content (DfObjectWriter *w, const char *hex, const DfContentHeader *h, GInputStream *body, guint64 size,
               gboolean verified, GCancellable *c, GError **error)
{
  g_autoptr (GFileInfo) info = dfi_content_header_to_file_info (h, size);
  g_autoptr (GInputStream) stream = NULL;
  guint64 len = 0;
  if (!ostree_raw_file_to_content_stream (body, info, h->xattrs, &stream, &len, c, error))
    return FALSE;
  g_autofree guchar *out = NULL;
  if (!ostree_repo_write_content (w->repo, hex, stream, len, verified ? NULL : &out, c, error))
    {
      classify_write_error (error, NULL);
      return FALSE;
    }
  g_mutex_lock (&w->lock);
  w->objects++;
  w->bytes += size;
  if (w->bytes - w->flush_requested >= DF_WRITEBACK_STEP)
    {
      w->flush_requested = w->bytes;
      w->flush_pending = TRUE;
      g_cond_signal (&w->flush_cond);
    }
  g_mutex_unlock (&w->lock);
  return TRUE;
}

gboolean
dfi_object_writer_content (DfObjectWriter *w, const guint8 checksum[DF_SHA256_LEN], const DfContentHeader *h,
                           GInputStream *body, guint64 size, gboolean verified, GCancellable *c, GError **error)
{
  char hex[65];
  dfi_hex (checksum, hex);
  return write_content (w, hex, h, body, size, verified, c, error);
}

static gboolean
checksum_matches (DfSha256 *h, const char *hex)
{
  guint8 actual[DF_SHA256_LEN], want[DF_SHA256_LEN];
  dfi_sha256_final (h, actual);
  dfi_sha256_clear (h);
  ostree_checksum_inplace_to_bytes (hex, want);
  return memcmp (actual, want, DF_SHA256_LEN) == 0;
}

/* A whole object from memory: hash, then write. A mismatch goes through
 * libostree's own verification, which has the last word on OSTree's
 * checksum definition and reports the corruption. */
static gboolean
write_content_bytes (DfObjectWriter *w, const char *hex, const DfContentHeader *h, const guint8 *data, gsize len,
                     GCancellable *c, GError **error)
{
  DfSha256 sha;
  checksum_header (&sha, h);
  dfi_sha256_update (&sha, data, len);
  gboolean ok = checksum_matches (&sha, hex);
  g_autoptr (GInputStream) in = g_memory_input_stream_new_from_data (data, len, NULL);
  return write_content (w, hex, h, in, len, ok, c, error);
}

struct _DfWriteBatch
{
  GHashTable *fds;    /* hex → fd of <hex>.data */
  GPtrArray *markers; /* "<hex>.<offset>.ok" to create once the part is done */
  GPtrArray *hexes;   /* the object of each marker */
  GPtrArray *hashes;  /* GBytes: each marker's contents */
};

DfWriteBatch *
dfi_write_batch_new (void)
{
  DfWriteBatch *b = g_new0 (DfWriteBatch, 1);
  b->fds = g_hash_table_new_full (dfi_keyed_str_hash, g_str_equal, g_free, NULL);
  b->markers = g_ptr_array_new_with_free_func (g_free);
  b->hexes = g_ptr_array_new_with_free_func (g_free);
  b->hashes = g_ptr_array_new_with_free_func ((GDestroyNotify)g_bytes_unref);
  return b;
}

void
dfi_write_batch_free (DfWriteBatch *b)
{
  if (b == NULL)
    return;
  GHashTableIter it;
  gpointer fd;
  g_hash_table_iter_init (&it, b->fds);
  while (g_hash_table_iter_next (&it, NULL, &fd))
    close (GPOINTER_TO_INT (fd));
  g_hash_table_unref (b->fds);
  g_ptr_array_unref (b->markers);
  g_ptr_array_unref (b->hexes);
  g_ptr_array_unref (b->hashes);
  g_free (b);
}

static int
batch_fd (DfObjectWriter *w, DfWriteBatch *b, const char *hex, GError **error)
{
  gpointer fd;
  if (g_hash_table_lookup_extended (b->fds, hex, NULL, &fd))
    return GPOINTER_TO_INT (fd);
  g_autofree char *name = g_strdup_printf ("%s.data", hex);
  int n = openat (w->state_dfd, name, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (n < 0)
    {
      dfi_throw_errno (error, errno, "staging %s", name);
      return -1;
    }
  g_hash_table_insert (b->fds, g_strdup (hex), GINT_TO_POINTER (n));
  return n;
}

static void
forget_staged (DfObjectWriter *w, const char *hex)
{
  DIR *d = dfi_opendir_at (w->state_dfd, ".");
  if (d == NULL)
    return;
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    if (strncmp (de->d_name, hex, 64) == 0 && de->d_name[64] == '.')
      unlinkat (w->state_dfd, de->d_name, 0);
  closedir (d);
  g_mutex_lock (&w->lock);
  Split *s = g_hash_table_lookup (w->splits, hex);
  if (s)
    s->done = 0;
  GHashTableIter it;
  gpointer m;
  g_hash_table_iter_init (&it, w->verified_markers);
  while (g_hash_table_iter_next (&it, &m, NULL))
    if (strncmp (m, hex, 64) == 0)
      g_hash_table_iter_remove (&it);
  g_mutex_unlock (&w->lock);
}

static gboolean
assemble_split (DfObjectWriter *w, const char *hex, guint64 size, GCancellable *c, GError **error)
{
  g_autofree char *hname = g_strdup_printf ("%s.header", hex);
  g_autofree char *dname = g_strdup_printf ("%s.data", hex);
  g_autoptr (GBytes) hbytes
      = dfi_read_file_bounded (w->state_dfd, hname, DF_HEADER_MAX + 4, G_MAXUINT64, "staged header", error);
  if (hbytes == NULL)
    return FALSE;
  g_auto (DfContentHeader) h = { 0 };
  gsize consumed;
  if (!dfi_content_header_parse (g_bytes_get_data (hbytes, NULL), g_bytes_get_size (hbytes), &h, &consumed, error))
    return FALSE;
  struct stat st;
  int fd = dfi_open_regular (w->state_dfd, dname, "a staged object", &st, error);
  if (fd < 0)
    return FALSE;
  if ((guint64)st.st_size != size)
    {
      close (fd);
      return dfi_throw (error, DF_ERROR_IO, "staged object %s has the wrong size", hex);
    }
  DfSha256 sha;
  checksum_header (&sha, &h);
  g_autofree guint8 *buf = g_malloc (DF_COPY_BUFFER);
  for (guint64 off = 0; off < size;)
    {
      ssize_t n = pread (fd, buf, MIN ((guint64)DF_COPY_BUFFER, size - off), off);
      if (n <= 0)
        {
          int errsv = n < 0 ? errno : EIO;
          dfi_sha256_clear (&sha);
          close (fd);
          return dfi_throw_errno (error, errsv, "reading staged %s", hex);
        }
      dfi_sha256_update (&sha, buf, n);
      off += n;
    }
  gboolean verified = checksum_matches (&sha, hex);
  g_autoptr (GInputStream) in = g_unix_input_stream_new (fd, TRUE);
  g_autoptr (GInputStream) buffered = g_buffered_input_stream_new_sized (in, DF_COPY_BUFFER);
  if (!write_content (w, hex, &h, buffered, size, verified, c, error))
    {
      /* Bytes that do not verify must not be trusted by a later run: drop
       * the staged object so it is staged again from the parts. */
      if (g_error_matches (*error, DF_ERROR, DF_ERROR_CORRUPT))
        forget_staged (w, hex);
      return FALSE;
    }
  /* Written into the transaction: the staged copy is no longer needed. */
  unlinkat (w->state_dfd, dname, 0);
  unlinkat (w->state_dfd, hname, 0);
  return TRUE;
}

typedef struct
{
  int fd;
  guint64 off;
  DfSha256 sha;
  gboolean corrupt_hook;
} RebuildOut;

static gboolean
rebuild_write (gpointer data, const guint8 *buf, gsize len, GError **error)
{
  RebuildOut *o = data;
  if (G_UNLIKELY (o->corrupt_hook && o->off == 0 && len > 0))
    {
      /* DF_TEST_REBUILD_CORRUPT: a rebuild whose result is wrong. */
      guint8 first = buf[0] ^ 1;
      dfi_sha256_update (&o->sha, &first, 1);
      dfi_sha256_update (&o->sha, buf + 1, len - 1);
    }
  else
    dfi_sha256_update (&o->sha, buf, len);
  if (!dfi_pwrite_all (o->fd, buf, len, o->off, "a rebuilt object", error))
    return FALSE;
  o->off += len;
  return TRUE;
}

gboolean
dfi_object_writer_rebuild (DfObjectWriter *w, const DfEntry *e, const guint8 *data, gsize len, guint64 memory_limit,
                           GCancellable *c, GError **error)
{
  char hex[65];
  dfi_hex (e->checksum, hex);
  g_auto (DfContentHeader) h = { 0 };
  gsize hlen = 0;
  if (!dfi_content_header_parse (data, len, &h, &hlen, error))
    return FALSE;
  if (!S_ISREG (h.mode))
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "a rebuilt object must be a regular file");
  g_autoptr (GBytes) prog_bytes = g_bytes_new_static (data + hlen, len - hlen);
  g_auto (DfRebuildProgram) prog = { 0 };
  if (!dfi_rebuild_program_parse (prog_bytes, e->object_size, e->src_length, &prog, error))
    return FALSE;
  int fd = openat (w->state_dfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0)
    return dfi_throw_errno (error, errno, "staging a rebuilt object");
  RebuildOut out = { .fd = fd, .corrupt_hook = g_getenv ("DF_TEST_REBUILD_CORRUPT") != NULL };
  checksum_header (&out.sha, &h);
  if (!dfi_rebuild_run (&prog, dfi_rebuild_open_from_repo, w->repo, rebuild_write, &out, memory_limit, c, error))
    {
      dfi_sha256_clear (&out.sha);
      close (fd);
      return FALSE;
    }
  if (!checksum_matches (&out.sha, hex))
    {
      close (fd);
      return dfi_throw (error, DF_ERROR_CORRUPT, "the rebuilt object does not match its checksum");
    }
  if (lseek (fd, 0, SEEK_SET) < 0)
    {
      int errsv = errno;
      close (fd);
      return dfi_throw_errno (error, errsv, "reading a rebuilt object");
    }
  g_autoptr (GInputStream) in = g_unix_input_stream_new (fd, TRUE);
  g_autoptr (GInputStream) buffered = g_buffered_input_stream_new_sized (in, DF_COPY_BUFFER);
  return write_content (w, hex, &h, buffered, e->object_size, TRUE, c, error);
}

/* Rebuilds that failed, one hex checksum per line, kept with the staged
 * chunks: a later run of the same delta takes those objects from their
 * plain encoding (a fetcher downloads it then). */
#define REBUILD_FAILED "rebuild-failed"

void
dfi_object_writer_note_rebuild_failed (DfObjectWriter *w, const guint8 checksum[DF_SHA256_LEN])
{
  char line[66];
  dfi_hex (checksum, line);
  line[64] = '\n';
  g_mutex_lock (&w->lock);
  int fd = openat (w->state_dfd, REBUILD_FAILED, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd >= 0)
    {
      dfi_write_all (fd, (const guint8 *)line, 65, REBUILD_FAILED, NULL);
      close (fd);
    }
  g_mutex_unlock (&w->lock);
}

GPtrArray *
dfi_object_writer_rebuild_failures (DfObjectWriter *w, guint max)
{
  GPtrArray *out = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GBytes) b
      = dfi_read_file_bounded (w->state_dfd, REBUILD_FAILED, (gsize)max * 65, G_MAXUINT64, REBUILD_FAILED, NULL);
  gsize len = 0;
  const char *d = b ? g_bytes_get_data (b, &len) : NULL;
  for (gsize off = 0; off + 65 <= len; off += 65)
    {
      char hex[65];
      memcpy (hex, d + off, 64);
      hex[64] = '\0';
      if (d[off + 64] != '\n' || !ostree_validate_checksum_string (hex, NULL))
        continue;
      guint8 *raw = g_malloc (DF_SHA256_LEN);
      ostree_checksum_inplace_to_bytes (hex, raw);
      g_ptr_array_add (out, raw);
    }
  return out;
}

gboolean
dfi_object_writer_skip_entry (const DfEntry *e, DfPartReader *r, GError **error)
{
  if (dfi_part_reader_take (r, DF_SECTION_RAW, e->data_size, error) == NULL)
    return FALSE;
  return e->encoding != DF_ENCODING_DIFF || dfi_diff_skip (r, e->length, error);
}

gboolean
dfi_object_writer_entry (DfObjectWriter *w, const DfEntry *e, DfPartReader *r, DfWriteBatch *batch, GCancellable *c,
                         GError **error)
{
  char hex[65];
  dfi_hex (e->checksum, hex);
  const guint8 *data = dfi_part_reader_take (r, DF_SECTION_RAW, e->data_size, error);
  if (data == NULL)
    return FALSE;
  g_auto (DfContentHeader) h = { 0 };
  gsize hlen = 0;
  if (e->offset == 0 && !dfi_content_header_parse (data, e->data_size, &h, &hlen, error))
    return FALSE;
  const guint8 *body = data + hlen;
  gsize body_len = e->data_size - hlen;
  guint8 *decoded = NULL;
  if (e->encoding == DF_ENCODING_DIFF && body_len != 0)
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "%zu raw bytes after the header of a diff entry", body_len);
  if (e->encoding != DF_ENCODING_RAW)
    {
      decoded = dfi_object_writer_decode_patch (w, e, body, body_len, r, c, error);
      if (decoded == NULL)
        return FALSE;
      body = decoded;
      body_len = e->length;
    }
  else if (body_len != e->length)
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "raw data of %zu bytes, the entry declares %" G_GUINT64_FORMAT,
                      body_len, e->length);
  /* The decoded buffer is released on every path out. */
  g_autoptr (GBytes) decoded_owner = decoded ? dfi_big_bytes (decoded, e->length) : NULL;
  if (e->offset == 0 && S_ISLNK (h.mode) && e->object_size != 0)
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "symlink with content bytes");

  if (!is_split (e))
    return write_content_bytes (w, hex, &h, body, body_len, c, error);

  /* A chunk of a split object: staged now, marked done for the whole part
   * at once in dfi_object_writer_commit_batch(). Not synced: the marker
   * holds the chunk's hash instead (see chunk_staged()). */
  guint8 rec[2 * DF_SHA256_LEN];
  dfi_sha256 (body, body_len, rec);
  if (e->offset == 0)
    {
      dfi_sha256 (data, hlen, rec + DF_SHA256_LEN);
      g_autofree char *hname = g_strdup_printf ("%s.header", hex);
      dfi_autofd hfd = openat (w->state_dfd, hname, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (hfd < 0)
        return dfi_throw_errno (error, errno, "staging %s", hname);
      if (!dfi_pwrite_all (hfd, data, hlen, 0, hname, error))
        return FALSE;
    }
  int fd = batch_fd (w, batch, hex, error);
  if (fd < 0 || !dfi_pwrite_all (fd, body, body_len, e->offset, hex, error))
    return FALSE;
  g_ptr_array_add (batch->markers, marker_name (hex, e->offset));
  g_ptr_array_add (batch->hexes, g_strdup (hex));
  g_ptr_array_add (batch->hashes, g_bytes_new (rec, e->offset == 0 ? sizeof rec : DF_SHA256_LEN));
  return TRUE;
}

gboolean
dfi_object_writer_commit_batch (DfObjectWriter *w, DfWriteBatch *b, GCancellable *c, GError **error)
{
  GHashTableIter it;
  gpointer key, fd;
  g_hash_table_iter_init (&it, b->fds);
  while (g_hash_table_iter_next (&it, &key, &fd))
    {
      close (GPOINTER_TO_INT (fd));
      g_hash_table_iter_remove (&it);
    }
  /* Data first, then markers. A marker that a power loss left without its
   * bytes, or torn, fails its hash on the next run; a lost marker only
   * costs re-applying the chunk. */
  g_autoptr (GPtrArray) complete = g_ptr_array_new ();
  for (guint i = 0; i < b->markers->len; i++)
    {
      const char *m = b->markers->pdata[i];
      gsize len;
      const guint8 *rec = g_bytes_get_data (b->hashes->pdata[i], &len);
      dfi_autofd mfd = openat (w->state_dfd, m, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (mfd < 0 || !dfi_write_all (mfd, rec, len, m, error))
        return mfd < 0 ? dfi_throw_errno (error, errno, "marking %s", m) : FALSE;
      g_mutex_lock (&w->lock);
      g_hash_table_add (w->verified_markers, g_strdup (m));
      Split *s = g_hash_table_lookup (w->splits, b->hexes->pdata[i]);
      if (s && ++s->done == s->n_chunks)
        g_ptr_array_add (complete, b->hexes->pdata[i]);
      g_mutex_unlock (&w->lock);
    }
  for (guint i = 0; i < complete->len; i++)
    {
      Split *s = g_hash_table_lookup (w->splits, complete->pdata[i]);
      if (!assemble_split (w, complete->pdata[i], s->size, c, error))
        return FALSE;
    }
  g_ptr_array_set_size (b->markers, 0);
  g_ptr_array_set_size (b->hexes, 0);
  g_ptr_array_set_size (b->hashes, 0);
  return TRUE;
}

gboolean
dfi_object_writer_finish_splits (DfObjectWriter *w, GCancellable *c, GError **error)
{
  GHashTableIter it;
  gpointer key, value;
  g_hash_table_iter_init (&it, w->splits);
  while (g_hash_table_iter_next (&it, &key, &value))
    {
      Split *s = value;
      gboolean have = FALSE;
      if (s->done != s->n_chunks)
        continue;
      if (!ostree_repo_has_object (w->repo, OSTREE_OBJECT_TYPE_FILE, key, &have, c, error))
        return FALSE;
      /* Every chunk was staged by an earlier run that stopped before
       * writing the object. */
      if (!have && !assemble_split (w, key, s->size, c, error))
        return FALSE;
    }
  return TRUE;
}

void
dfi_object_writer_get_stats (DfObjectWriter *w, guint64 *objects, guint64 *bytes)
{
  g_mutex_lock (&w->lock);
  *objects = w->objects;
  *bytes = w->bytes;
  g_mutex_unlock (&w->lock);
}

gboolean
dfi_object_writer_cleanup (DfObjectWriter *w, GError **error)
{
  close (w->state_dfd);
  w->state_dfd = -1;
  return dfi_rm_rf_at (ostree_repo_get_dfd (w->repo), w->state_dir, error);
}

gboolean
dfi_object_writer_commit (DfObjectWriter *w, const char *to_hex, GBytes *commit_bytes, GVariant *commitmeta,
                          const char *ref, guint64 *objects, guint64 *bytes, GCancellable *c, GError **error)
{
  if (commitmeta && !ostree_repo_write_commit_detached_metadata (w->repo, to_hex, commitmeta, c, error))
    return FALSE;
  g_autoptr (GVariant) commit
      = g_variant_ref_sink (g_variant_new_from_bytes (OSTREE_COMMIT_GVARIANT_FORMAT, commit_bytes, FALSE));
  g_autofree guchar *out = NULL;
  if (!ostree_repo_write_metadata (w->repo, OSTREE_OBJECT_TYPE_COMMIT, to_hex, commit, &out, c, error))
    return FALSE;
  if (ref)
    ostree_repo_transaction_set_refspec (w->repo, ref, to_hex);
  dfi_object_writer_stop_writeback (w);
  /* libostree moves the staged objects into objects/ one by one, the
   * commit object possibly before its trees, so for that window the commit
   * is marked partial (as libostree's pull does): a kill then leaves an
   * unfinished commit that fsck skips and a rerun completes, not a commit
   * with missing trees. */
  if (!ostree_repo_mark_commit_partial (w->repo, to_hex, TRUE, error)
      || !ostree_repo_commit_transaction (w->repo, NULL, c, error)
      || !ostree_repo_mark_commit_partial (w->repo, to_hex, FALSE, error))
    return FALSE;
  dfi_object_writer_get_stats (w, objects, bytes);
  return TRUE;
}
