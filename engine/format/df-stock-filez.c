/* Reading and checking stock delta fallback objects, loose `.filez` files
 * (see df-stock-filez.h). */
#include "df-stock-filez.h"

#include <sys/stat.h>

#include "df-part.h"

#define STOCK_FILEZ_HEADER_TYPE "(tuuuusa(ayay))"

gboolean
dfi_stock_filez_read (int fd, guint64 file_size, const DfStockFallback *fb, const DfStockSink *sink, gpointer user,
                      GCancellable *c, GError **error)
{
  char hex[65];
  dfi_hex (fb->checksum, hex);
#define FZBAD(fmt, ...) dfi_throw (error, DF_ERROR_INVALID_DELTA, "fallback object %s: " fmt, hex, ##__VA_ARGS__)
  /* A size word (big-endian), 4 bytes of padding, the header, then the
   * content as raw deflate. */
  guint8 pre[8];
  if (file_size < sizeof pre || !dfi_pread_all (fd, pre, sizeof pre, 0, "fallback object", error))
    return file_size < sizeof pre ? FZBAD ("%" G_GUINT64_FORMAT " bytes are too short", file_size) : FALSE;
  guint32 hlen = (guint32)pre[0] << 24 | (guint32)pre[1] << 16 | (guint32)pre[2] << 8 | pre[3];
  if (hlen == 0 || hlen > DF_HEADER_MAX || hlen > file_size - sizeof pre)
    return FZBAD ("header of %u bytes", hlen);
  guint8 *hbuf = g_malloc (hlen);
  if (!dfi_pread_all (fd, hbuf, hlen, sizeof pre, "fallback object", error))
    {
      g_free (hbuf);
      return FALSE;
    }
  g_autoptr (GVariant) header = g_variant_ref_sink (
      g_variant_new_from_data (G_VARIANT_TYPE (STOCK_FILEZ_HEADER_TYPE), hbuf, hlen, FALSE, g_free, hbuf));
  if (!g_variant_is_normal_form (header))
    return FZBAD ("%s", "malformed header");
  guint64 size;
  guint32 uid, gid, mode, rdev;
  const char *target;
  g_autoptr (GVariant) xattrs = NULL;
  g_variant_get (header, "(tuuuu&s@a(ayay))", &size, &uid, &gid, &mode, &rdev, &target, &xattrs);
  size = GUINT64_FROM_BE (size), uid = GUINT32_FROM_BE (uid), gid = GUINT32_FROM_BE (gid);
  mode = GUINT32_FROM_BE (mode);
  if ((mode & ~(S_IFMT | 07777)) != 0 || !(S_ISREG (mode) || S_ISLNK (mode)) || rdev != 0)
    return FZBAD ("file mode 0%o", mode);
  if (S_ISLNK (mode))
    {
      gsize tlen = strlen (target);
      if (tlen == 0 || tlen > DF_STOCK_SYMLINK_MAX || !g_utf8_validate (target, tlen, NULL))
        return FZBAD ("symlink target of %zu bytes or not UTF-8", tlen);
      size = 0;
    }
  else if (target[0] != '\0')
    return FZBAD ("%s", "a regular file with a symlink target");
  if (size != fb->usize)
    return FZBAD ("%" G_GUINT64_FORMAT " bytes where the delta declares %" G_GUINT64_FORMAT, size, fb->usize);
  gboolean skip = FALSE;
  if (!sink->content_begin (user, fb->checksum, uid, gid, mode, xattrs, S_ISLNK (mode) ? target : NULL, size, &skip,
                            error))
    return FALSE;
  if (skip)
    return TRUE;
  guint64 in_off = sizeof pre + hlen, out_total = 0;
  g_autoptr (GConverter) z = G_CONVERTER (g_zlib_decompressor_new (G_ZLIB_COMPRESSOR_FORMAT_RAW));
  g_autofree guint8 *in = g_malloc (DF_STOCK_IO_CHUNK);
  g_autofree guint8 *out = g_malloc (DF_STOCK_IO_CHUNK);
  gsize in_len = 0, in_pos = 0;
  gboolean finished = S_ISLNK (mode) && in_off == file_size;
  while (!finished)
    {
      if (g_cancellable_set_error_if_cancelled (c, error))
        return FALSE;
      if (in_pos == in_len && in_off < file_size)
        {
          in_len = MIN (DF_STOCK_IO_CHUNK, file_size - in_off);
          if (!dfi_pread_all (fd, in, in_len, in_off, "fallback object", error))
            return FALSE;
          in_off += in_len;
          in_pos = 0;
        }
      gsize nr = 0, nw = 0;
      GConverterFlags flags = in_off == file_size ? G_CONVERTER_INPUT_AT_END : G_CONVERTER_NO_FLAGS;
      g_autoptr (GError) zerr = NULL;
      GConverterResult res
          = g_converter_convert (z, in + in_pos, in_len - in_pos, out, DF_STOCK_IO_CHUNK, flags, &nr, &nw, &zerr);
      if (res == G_CONVERTER_ERROR)
        return FZBAD ("bad compressed data (%s)", zerr->message);
      in_pos += nr;
      if (nw > size - out_total)
        return FZBAD ("more than its %" G_GUINT64_FORMAT " bytes of content", size);
      if (nw > 0 && !sink->content_data (user, out, nw, error))
        return FALSE;
      out_total += nw;
      if (res == G_CONVERTER_FINISHED)
        finished = TRUE;
      else if (nr == 0 && nw == 0 && in_off == file_size && in_pos == in_len)
        return FZBAD ("%s", "compressed data ends early");
    }
  if (in_pos != in_len || in_off != file_size)
    return FZBAD ("%s", "bytes after the compressed data");
  if (out_total != size)
    return FZBAD ("%" G_GUINT64_FORMAT " of its %" G_GUINT64_FORMAT " bytes of content", out_total, size);
  return sink->content_end (user, error);
#undef FZBAD
}

/* Hashing only: what a fetcher checks a downloaded object with. */
typedef struct
{
  DfSha256 h;
  gboolean begun;
} FilezCheck;

static gboolean
check_begin (gpointer user, const guint8 csum[DF_SHA256_LEN], guint32 uid, guint32 gid, guint32 mode, GVariant *xattrs,
             const char *target, guint64 size, gboolean *skip, GError **error)
{
  FilezCheck *k = user;
  dfi_content_checksum_begin (&k->h, uid, gid, mode, target, xattrs);
  k->begun = TRUE;
  return TRUE;
}

static gboolean
check_data (gpointer user, const guint8 *data, gsize len, GError **error)
{
  FilezCheck *k = user;
  dfi_sha256_update (&k->h, data, len);
  return TRUE;
}

static gboolean
check_end (gpointer user, GError **error)
{
  return TRUE;
}

static const DfStockSink filez_check_sink = { NULL, check_begin, check_data, check_end, NULL, NULL, NULL, NULL };

gboolean
dfi_stock_fallback_verify (int fd, guint64 file_size, const DfStockFallback *fb, GCancellable *c, GError **error)
{
  char hex[65];
  dfi_hex (fb->checksum, hex);
  FilezCheck k = { 0 };
  guint8 got[DF_SHA256_LEN];
  if (fb->objtype != OSTREE_OBJECT_TYPE_FILE)
    {
      if (file_size > DF_METADATA_OBJECT_MAX)
        return dfi_throw (error, DF_ERROR_INVALID_DELTA, "fallback %s: %" G_GUINT64_FORMAT " bytes", hex, file_size);
      g_autofree guint8 *buf = g_malloc (MAX (file_size, 1));
      if (!dfi_pread_all (fd, buf, file_size, 0, "fallback object", error))
        return FALSE;
      dfi_sha256 (buf, file_size, got);
    }
  else
    {
      gboolean ok = dfi_stock_filez_read (fd, file_size, fb, &filez_check_sink, &k, c, error);
      if (k.begun)
        {
          dfi_sha256_final (&k.h, got);
          dfi_sha256_clear (&k.h);
        }
      if (!ok)
        return FALSE;
    }
  if (memcmp (got, fb->checksum, DF_SHA256_LEN) != 0)
    return dfi_throw (error, DF_ERROR_CORRUPT, "fallback %s %s does not hash to its checksum",
                      ostree_object_type_to_string (fb->objtype), hex);
  return TRUE;
}
