/* The sources of patches: windows of content objects the repository has,
 * read in place from a bare repository or inflated once into a temporary
 * file shared by the workers (archive repositories), and the decoding of
 * the patches against them. */
#include "df-object-writer-private.h"

#include "df-bspatch.h"

#include <fcntl.h>
#include <gio/gunixinputstream.h>
#include <gio/gunixoutputstream.h>
#include <sys/stat.h>
#include <unistd.h>

/* A window of an existing content object, the base of a patch. */
typedef struct
{
  const guint8 *data;
  guint8 *owned;
  gsize owned_len;
} SourceWindow;

static void
source_window_release (SourceWindow *sw)
{
  dfi_big_free (sw->owned, sw->owned_len);
  memset (sw, 0, sizeof *sw);
}

static gboolean
check_window (const char *hex, guint64 size, guint64 off, gsize len, GError **error)
{
  if (off > size || len > size - off)
    return dfi_throw (error, DF_ERROR_INVALID_DELTA,
                      "source window %" G_GUINT64_FORMAT "+%zu lies outside object %s (%" G_GUINT64_FORMAT " bytes)",
                      off, len, hex, size);
  return TRUE;
}

/* Bare repositories keep a regular file's content as the object file
 * itself: read the window in place (pread into a reused buffer; mapping
 * it would take the process-wide mmap lock twice per object). Returns
 * FALSE without an error when the object is not there, so the caller can
 * ask libostree (parent repositories, other modes). */
static gboolean
read_bare_window (OstreeRepo *repo, const char *hex, guint64 off, gsize len, SourceWindow *sw, GError **error)
{
  OstreeRepoMode mode = ostree_repo_get_mode (repo);
  if (mode != OSTREE_REPO_MODE_BARE && mode != OSTREE_REPO_MODE_BARE_USER && mode != OSTREE_REPO_MODE_BARE_USER_ONLY)
    return FALSE;
  char path[128];
  g_snprintf (path, sizeof path, "objects/%.2s/%s.file", hex, hex + 2);
  if (faccessat (ostree_repo_get_dfd (repo), path, F_OK, AT_SYMLINK_NOFOLLOW) != 0)
    return FALSE;
  g_autofree char *what = g_strdup_printf ("source object %s", hex);
  struct stat st;
  dfi_autofd fd = dfi_open_regular (ostree_repo_get_dfd (repo), path, what, &st, error);
  if (fd < 0)
    return FALSE;
  if (!check_window (hex, st.st_size, off, len, error))
    return FALSE;
  sw->owned = dfi_big_alloc (len);
  sw->owned_len = len;
  sw->data = sw->owned;
  return dfi_pread_all (fd, sw->owned, len, off, what, error);
}

void
dfi_object_writer_set_inflate_budget (DfObjectWriter *w, guint64 bytes)
{
  w->inflate_budget = bytes;
}

/* Drops inflated sources nobody uses beyond the DF_INFLATED_KEEP most
 * recently used. Called with the lock held. */
static void
inflated_trim (DfObjectWriter *w)
{
  for (;;)
    {
      guint idle = 0, oldest = G_MAXUINT;
      for (guint i = 0; i < w->inflated->len; i++)
        {
          Inflated *s = w->inflated->pdata[i];
          if (s->refs > 0)
            continue;
          idle++;
          if (oldest == G_MAXUINT || s->last_use < ((Inflated *)w->inflated->pdata[oldest])->last_use)
            oldest = i;
        }
      if (idle <= DF_INFLATED_KEEP)
        return;
      Inflated *s = g_ptr_array_steal_index_fast (w->inflated, oldest);
      close (s->fd);
      g_free (s);
    }
}

static void
inflated_release (DfObjectWriter *w, Inflated *s)
{
  g_mutex_lock (&w->lock);
  s->refs--;
  s->last_use = ++w->use_tick;
  inflated_trim (w);
  g_mutex_unlock (&w->lock);
}

/* Source object @csum, inflated once into a temporary file however many
 * patches and workers read it: in an archive repository the content is a
 * compressed stream, and reading a window at an offset would mean
 * inflating everything before it, once per patch. The source may be at
 * most DF_WINDOW_PER_BYTE times the object rebuilt from it (what the
 * generator pairs), and all the inflating of an apply stays within its
 * budget (dfi_object_writer_set_inflate_budget()), so a delta cannot make
 * apply inflate far more than it writes. */
static Inflated *
inflated_get (DfObjectWriter *w, const char *hex, const guint8 csum[DF_SHA256_LEN], guint64 object_size,
              GCancellable *c, GError **error)
{
  g_mutex_lock (&w->lock);
  Inflated *s = NULL;
  for (;;)
    {
      s = NULL;
      for (guint i = 0; i < w->inflated->len && s == NULL; i++)
        if (memcmp (((Inflated *)w->inflated->pdata[i])->csum, csum, DF_SHA256_LEN) == 0)
          s = w->inflated->pdata[i];
      if (s == NULL || s->fd >= 0)
        break;
      g_cond_wait (&w->source_cond, &w->lock); /* another worker is inflating it */
    }
  if (s)
    {
      s->refs++;
      g_mutex_unlock (&w->lock);
      return s;
    }
  s = g_new0 (Inflated, 1);
  memcpy (s->csum, csum, DF_SHA256_LEN);
  s->fd = -1;
  s->refs = 1;
  g_ptr_array_add (w->inflated, s);
  g_mutex_unlock (&w->lock);

  gboolean ok = FALSE;
  int fd = -1;
  g_autoptr (GInputStream) in = NULL;
  g_autoptr (GFileInfo) info = NULL;
  g_autoptr (GError) local = NULL;
  if (!ostree_repo_load_file (w->repo, hex, &in, &info, NULL, c, &local))
    dfi_throw (error, DF_ERROR_MISSING_BASE, "source object %s is not in the repository", hex);
  else if (g_file_info_get_file_type (info) != G_FILE_TYPE_REGULAR)
    dfi_throw (error, DF_ERROR_INVALID_DELTA, "source object %s is not a regular file", hex);
  else
    {
      guint64 size = g_file_info_get_size (info);
      gboolean over = object_size <= G_MAXUINT64 / DF_WINDOW_PER_BYTE && size > object_size * DF_WINDOW_PER_BYTE;
      g_mutex_lock (&w->lock);
      gboolean spent = w->inflated_bytes + size > w->inflate_budget;
      if (!over && !spent)
        w->inflated_bytes += size;
      g_mutex_unlock (&w->lock);
      if (over)
        dfi_throw (error, DF_ERROR_INVALID_DELTA,
                   "source object %s has %" G_GUINT64_FORMAT " bytes, too many for an object of %" G_GUINT64_FORMAT,
                   hex, size, object_size);
      else if (spent)
        dfi_throw (error, DF_ERROR_INVALID_DELTA,
                   "the delta's patches need more source bytes inflated than %" G_GUINT64_FORMAT
                   " (%u times what they make)",
                   w->inflate_budget, DF_WINDOW_PER_BYTE);
      else if ((fd = openat (w->tmp_dfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600)) < 0)
        dfi_throw_errno (error, errno, "creating a temporary file in the repository");
      else
        {
          g_autoptr (GOutputStream) out = g_unix_output_stream_new (fd, FALSE);
          gssize n = g_output_stream_splice (out, in, 0, c, error);
          if (n >= 0 && (guint64)n != size)
            dfi_throw (error, DF_ERROR_IO, "source object %s ended early", hex);
          else if (n >= 0)
            ok = TRUE;
          if (!ok)
            dfi_error_normalize (error, NULL);
        }
    }
  g_mutex_lock (&w->lock);
  if (ok)
    {
      s->fd = fd;
      s->size = g_file_info_get_size (info);
    }
  else
    {
      if (fd >= 0)
        close (fd);
      g_ptr_array_remove_fast (w->inflated, s);
      g_free (s);
      s = NULL;
    }
  g_cond_broadcast (&w->source_cond);
  g_mutex_unlock (&w->lock);
  return s;
}

/* Makes [off, off+len) of an existing content object available in @sw,
 * for rebuilding an object of @object_size bytes. */
static gboolean
open_source_window (DfObjectWriter *w, const guint8 csum[DF_SHA256_LEN], guint64 off, gsize len, guint64 object_size,
                    SourceWindow *sw, GCancellable *c, GError **error)
{
  char hex[65];
  dfi_hex (csum, hex);
  g_autoptr (GError) local = NULL;
  if (read_bare_window (w->repo, hex, off, len, sw, &local))
    return TRUE;
  if (local)
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  Inflated *s = inflated_get (w, hex, csum, object_size, c, error);
  if (s == NULL)
    return FALSE;
  gboolean ok = check_window (hex, s->size, off, len, error);
  if (ok)
    {
      sw->owned = dfi_big_alloc (len);
      sw->owned_len = len;
      sw->data = sw->owned;
      g_autofree char *what = g_strdup_printf ("source object %s", hex);
      ok = dfi_pread_all (s->fd, sw->owned, len, off, what, error);
    }
  inflated_release (w, s);
  return ok;
}

/* Decodes a zstd-ref patch (@patch) or the next diff of @r into exactly
 * e->length bytes. */
guint8 *
dfi_object_writer_decode_patch (DfObjectWriter *w, const DfEntry *e, const guint8 *patch, gsize patch_len,
                                DfPartReader *r, GCancellable *c, GError **error)
{
  if (e->encoding == DF_ENCODING_ZSTD_REF)
    {
      unsigned long long fcs = ZSTD_getFrameContentSize (patch, patch_len);
      if (fcs != e->length || ZSTD_findFrameCompressedSize (patch, patch_len) != patch_len)
        {
          dfi_throw (error, DF_ERROR_INVALID_DELTA, "patch frame does not declare exactly %" G_GUINT64_FORMAT " bytes",
                     e->length);
          return NULL;
        }
    }
  gsize slen = e->src_length;
  SourceWindow src = { 0 };
  if (!open_source_window (w, e->source, e->src_offset, slen, e->object_size, &src, c, error))
    {
      source_window_release (&src);
      return NULL;
    }
  guint8 *out = dfi_big_alloc (e->length);
  gboolean ok;
  if (e->encoding == DF_ENCODING_DIFF)
    ok = dfi_diff_decode (r, src.data, slen, out, e->length, error);
  else
    {
      g_autoptr (ZSTD_DCtx) d = ZSTD_createDCtx ();
      ZSTD_DCtx_setParameter (d, ZSTD_d_windowLogMax, 30);
      size_t r = ZSTD_DCtx_refPrefix (d, src.data, slen);
      if (!ZSTD_isError (r))
        r = ZSTD_decompressDCtx (d, out, e->length, patch, patch_len);
      ok = !ZSTD_isError (r) && r == e->length;
      if (!ok)
        dfi_throw (error, DF_ERROR_INVALID_DELTA, "patch does not decode: %s",
                   ZSTD_isError (r) ? ZSTD_getErrorName (r) : "wrong size");
    }
  source_window_release (&src);
  if (!ok)
    {
      dfi_big_free (out, e->length);
      return NULL;
    }
  return out;
}
