#include "df-part.h"

#include <sys/stat.h>

static const char *const section_names[DF_SECTION_COUNT] = { "raw", "control", "runs", "add", "copy" };

gboolean
dfi_part_reader_init (DfPartReader *r, const guint8 *payload, gsize len, guint64 raw_size, GError **error)
{
  memset (r, 0, sizeof *r);
  if (len < DF_PART_TABLE_LEN)
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "payload of %zu bytes has no section table", len);
  guint64 at = DF_PART_TABLE_LEN;
  for (guint s = 0; s < DF_SECTION_COUNT; s++)
    {
      guint64 n;
      memcpy (&n, payload + 8 * s, 8);
      n = GUINT64_FROM_LE (n);
      if (n > len - at)
        return dfi_throw (error, DF_ERROR_INVALID_DELTA, "%s section of %" G_GUINT64_FORMAT " bytes does not fit",
                          section_names[s], n);
      r->data[s] = payload + at;
      r->len[s] = n;
      at += n;
    }
  if (at != len)
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "sections cover %" G_GUINT64_FORMAT " of %zu payload bytes", at,
                      len);
  if (r->len[DF_SECTION_RAW] != raw_size)
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "raw section of %zu bytes, the entries declare %" G_GUINT64_FORMAT,
                      r->len[DF_SECTION_RAW], raw_size);
  return TRUE;
}

const guint8 *
dfi_part_reader_take (DfPartReader *r, DfSection s, guint64 n, GError **error)
{
  if (n > r->len[s] - r->pos[s])
    {
      dfi_throw (error, DF_ERROR_INVALID_DELTA, "%s section: %" G_GUINT64_FORMAT " bytes wanted, %zu left",
                 section_names[s], n, r->len[s] - r->pos[s]);
      return NULL;
    }
  const guint8 *p = r->data[s] + r->pos[s];
  r->pos[s] += n;
  return p;
}

gboolean
dfi_varint_read (const guint8 **p, const guint8 *end, guint64 *out)
{
  guint64 v = 0;
  const guint8 *q = *p;
  for (guint i = 0; i < 10 && q < end; i++)
    {
      guint8 b = *q++;
      /* The tenth byte may only carry the 64th bit. */
      if (i == 9 && b > 1)
        return FALSE;
      v |= (guint64)(b & 0x7f) << (7 * i);
      if ((b & 0x80) == 0)
        {
          *out = v;
          *p = q;
          return TRUE;
        }
    }
  return FALSE;
}

gboolean
dfi_part_reader_varint (DfPartReader *r, DfSection s, guint64 *out, GError **error)
{
  const guint8 *p = r->data[s] + r->pos[s];
  if (!dfi_varint_read (&p, r->data[s] + r->len[s], out))
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "%s section: a number ends early or exceeds 64 bits",
                      section_names[s]);
  r->pos[s] = p - r->data[s];
  return TRUE;
}

gboolean
dfi_part_reader_finish (const DfPartReader *r, GError **error)
{
  for (guint s = 0; s < DF_SECTION_COUNT; s++)
    if (r->pos[s] != r->len[s])
      return dfi_throw (error, DF_ERROR_INVALID_DELTA, "%s section: %zu bytes left over", section_names[s],
                        r->len[s] - r->pos[s]);
  return TRUE;
}

void
dfi_varint_append (GByteArray *out, guint64 v)
{
  guint8 b[10];
  guint n = 0;
  while (v >= 0x80)
    {
      b[n++] = (guint8)(v | 0x80);
      v >>= 7;
    }
  b[n++] = (guint8)v;
  g_byte_array_append (out, b, n);
}

GByteArray *
dfi_part_payload_assemble (GByteArray *const sections[DF_SECTION_COUNT])
{
  gsize total = DF_PART_TABLE_LEN;
  for (guint s = 0; s < DF_SECTION_COUNT; s++)
    total += sections[s]->len;
  GByteArray *out = g_byte_array_sized_new (total);
  for (guint s = 0; s < DF_SECTION_COUNT; s++)
    {
      guint64 n = GUINT64_TO_LE ((guint64)sections[s]->len);
      g_byte_array_append (out, (const guint8 *)&n, 8);
    }
  for (guint s = 0; s < DF_SECTION_COUNT; s++)
    g_byte_array_append (out, sections[s]->data, sections[s]->len);
  return out;
}

/* Input handed to zstd between two looks at the cancellable: about half a
 * second of work at level 19. */
#define COMPRESS_STEP (1024 * 1024)

GBytes *
dfi_part_compress (const guint8 *payload, gsize len, int level, GCancellable *cancellable, GError **error)
{
  g_autoptr (ZSTD_CCtx) cctx = ZSTD_createCCtx ();
  /* The window never needs to exceed the part, and apply refuses windows
   * above DF_PART_WINDOW_LOG_MAX; content size and no zstd checksum (the
   * part's SHA-256 covers it). The input is handed over a step at a time,
   * for cancellation, from a buffer zstd reads in place (stable input: no
   * copy into its own window buffer). */
  int wlog = 10;
  while (wlog < DF_PART_WINDOW_LOG_MAX && ((gsize)1 << wlog) < len)
    wlog++;
  size_t r;
  if (ZSTD_isError (r = ZSTD_CCtx_setParameter (cctx, ZSTD_c_compressionLevel, level))
      || ZSTD_isError (r = ZSTD_CCtx_setParameter (cctx, ZSTD_c_windowLog, wlog))
      || ZSTD_isError (r = ZSTD_CCtx_setParameter (cctx, ZSTD_c_contentSizeFlag, 1))
      || ZSTD_isError (r = ZSTD_CCtx_setParameter (cctx, ZSTD_c_checksumFlag, 0))
      || ZSTD_isError (r = ZSTD_CCtx_setParameter (cctx, ZSTD_c_stableInBuffer, 1))
      || ZSTD_isError (r = ZSTD_CCtx_setPledgedSrcSize (cctx, len)))
    {
      dfi_throw (error, DF_ERROR_FAILED, "zstd: %s", ZSTD_getErrorName (r));
      return NULL;
    }
  gsize cap = ZSTD_compressBound (len);
  g_autofree guint8 *out = g_malloc (cap);
  ZSTD_outBuffer ob = { out, cap, 0 };
  ZSTD_inBuffer ib = { payload, 0, 0 };
  for (;;)
    {
      ib.size = MIN (len, ib.size + COMPRESS_STEP);
      ZSTD_EndDirective mode = ib.size == len ? ZSTD_e_end : ZSTD_e_continue;
      do
        r = ZSTD_compressStream2 (cctx, &ob, &ib, mode);
      while (!ZSTD_isError (r) && (mode == ZSTD_e_end ? r != 0 && ob.pos < ob.size : ib.pos < ib.size));
      if (ZSTD_isError (r) || (mode == ZSTD_e_end && r != 0))
        {
          dfi_throw (error, DF_ERROR_FAILED, "zstd: %s", ZSTD_isError (r) ? ZSTD_getErrorName (r) : "output full");
          return NULL;
        }
      if (mode == ZSTD_e_end)
        break;
      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        return NULL;
    }
  return g_bytes_new_take (g_realloc (g_steal_pointer (&out), ob.pos), ob.pos);
}

GBytes *
dfi_part_decode (const DfPart *part, guint index, GBytes *file, GError **error)
{
  gsize size = 0;
  const guint8 *data = g_bytes_get_data (file, &size);
  if (size != part->compressed_size)
    {
      dfi_throw (error, DF_ERROR_INVALID_DELTA, "part %u: %zu bytes, the superblock declares %" G_GUINT64_FORMAT, index,
                 size, part->compressed_size);
      return NULL;
    }
  guint8 actual[DF_SHA256_LEN];
  dfi_sha256 (data, size, actual);
  if (memcmp (actual, part->sha256, DF_SHA256_LEN) != 0)
    {
      char a[65], e[65];
      dfi_hex (actual, a);
      dfi_hex (part->sha256, e);
      dfi_throw (error, DF_ERROR_CORRUPT, "part %u: SHA-256 is %s, the superblock declares %s", index, a, e);
      return NULL;
    }
  /* From here the bytes are the ones the superblock named, but the
   * superblock itself may be hostile: still bound everything. */
  ZSTD_frameHeader fh;
  size_t r = ZSTD_getFrameHeader (&fh, data, size);
  if (r != 0 || fh.frameType != ZSTD_frame)
    {
      dfi_throw (error, DF_ERROR_INVALID_DELTA, "part %u: not a zstd frame", index);
      return NULL;
    }
  if (fh.frameContentSize != part->uncompressed_size)
    {
      dfi_throw (error, DF_ERROR_INVALID_DELTA, "part %u: frame declares %llu bytes, the superblock %" G_GUINT64_FORMAT,
                 index, (unsigned long long)fh.frameContentSize, part->uncompressed_size);
      return NULL;
    }
  if (fh.windowSize > ((guint64)1 << DF_PART_WINDOW_LOG_MAX))
    {
      dfi_throw (error, DF_ERROR_INVALID_DELTA, "part %u: zstd window of %llu bytes is over the limit", index,
                 (unsigned long long)fh.windowSize);
      return NULL;
    }
  if (ZSTD_findFrameCompressedSize (data, size) != size)
    {
      dfi_throw (error, DF_ERROR_INVALID_DELTA, "part %u: not exactly one zstd frame", index);
      return NULL;
    }
  g_autoptr (ZSTD_DCtx) dctx = ZSTD_createDCtx ();
  ZSTD_DCtx_setParameter (dctx, ZSTD_d_windowLogMax, DF_PART_WINDOW_LOG_MAX);
  gsize usize = part->uncompressed_size;
  guint8 *out = dfi_big_alloc (usize);
  /* One-shot into a buffer of exactly the declared size: zstd cannot write
   * past it, and a frame that would produce more fails. */
  r = ZSTD_decompressDCtx (dctx, out, usize, data, size);
  if (ZSTD_isError (r) || r != usize)
    {
      dfi_big_free (out, usize);
      if (ZSTD_isError (r))
        dfi_throw (error, DF_ERROR_INVALID_DELTA, "part %u: zstd: %s", index, ZSTD_getErrorName (r));
      else
        dfi_throw (error, DF_ERROR_INVALID_DELTA, "part %u: decompressed to %zu bytes, declared %zu", index, r, usize);
      return NULL;
    }
  return dfi_big_bytes (out, usize);
}

void
dfi_content_header_clear (DfContentHeader *h)
{
  g_clear_pointer (&h->xattrs, g_variant_unref);
  g_clear_pointer (&h->symlink_target, g_free);
}

GBytes *
dfi_content_header_serialize (guint32 uid, guint32 gid, guint32 mode, GVariant *xattrs, const char *symlink_target)
{
  g_autoptr (GVariant) x
      = xattrs ? g_variant_ref (xattrs) : g_variant_ref_sink (g_variant_new_array (G_VARIANT_TYPE ("(ayay)"), NULL, 0));
  g_autoptr (GVariant) v
      = g_variant_ref_sink (g_variant_new ("(uuu@a(ayay)s)", GUINT32_TO_LE (uid), GUINT32_TO_LE (gid),
                                           GUINT32_TO_LE (mode), x, symlink_target ? symlink_target : ""));
  g_autoptr (GVariant) normal = g_variant_get_normal_form (v);
  gsize n = g_variant_get_size (normal);
  guint8 *buf = g_malloc (4 + n);
  guint32 len_le = GUINT32_TO_LE ((guint32)n);
  memcpy (buf, &len_le, 4);
  g_variant_store (normal, buf + 4);
  return g_bytes_new_take (buf, 4 + n);
}

gboolean
dfi_content_header_parse (const guint8 *data, gsize len, DfContentHeader *out, gsize *consumed, GError **error)
{
  if (len < 4)
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "content header truncated");
  guint32 hlen;
  memcpy (&hlen, data, 4);
  hlen = GUINT32_FROM_LE (hlen);
  if (hlen > DF_HEADER_MAX || hlen > len - 4)
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "content header of %u bytes does not fit", hlen);
  g_autoptr (GBytes) b = g_bytes_new (data + 4, hlen);
  g_autoptr (GVariant) v
      = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE (DF_CONTENT_HEADER_TYPE), b, FALSE));
  if (!g_variant_is_normal_form (v))
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "content header is not a normal-form GVariant");
  guint32 uid, gid, mode;
  g_variant_get (v, "(uuu@a(ayay)s)", &uid, &gid, &mode, &out->xattrs, &out->symlink_target);
  out->uid = GUINT32_FROM_LE (uid);
  out->gid = GUINT32_FROM_LE (gid);
  out->mode = GUINT32_FROM_LE (mode);
  gboolean is_link = S_ISLNK (out->mode), is_reg = S_ISREG (out->mode);
  if (!is_link && !is_reg)
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "content header mode 0%o is neither a regular file nor a symlink",
                      out->mode);
  if ((out->mode & ~(S_IFMT | 07777)) != 0)
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "content header mode 0%o has unknown bits", out->mode);
  if (is_link != (out->symlink_target[0] != '\0'))
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "content header symlink target does not match its mode");
  *consumed = 4 + hlen;
  return TRUE;
}

void
dfi_content_checksum_begin (DfSha256 *h, guint32 uid, guint32 gid, guint32 mode, const char *symlink_target,
                            GVariant *xattrs)
{
  g_autoptr (GVariant) x
      = xattrs ? g_variant_ref (xattrs) : g_variant_ref_sink (g_variant_new_array (G_VARIANT_TYPE ("(ayay)"), NULL, 0));
  g_autoptr (GVariant) v = g_variant_ref_sink (g_variant_new ("(uuuus@a(ayay))", GUINT32_TO_BE (uid),
                                                              GUINT32_TO_BE (gid), GUINT32_TO_BE (mode), 0,
                                                              symlink_target ? symlink_target : "", x));
  guint32 len_be = GUINT32_TO_BE ((guint32)g_variant_get_size (v));
  static const guint8 pad[4] = { 0 };
  dfi_sha256_init (h);
  dfi_sha256_update (h, &len_be, 4);
  dfi_sha256_update (h, pad, 4);
  dfi_sha256_update (h, g_variant_get_data (v), g_variant_get_size (v));
}

GFileInfo *
dfi_content_header_to_file_info (const DfContentHeader *h, guint64 size)
{
  GFileInfo *info = g_file_info_new ();
  gboolean link = S_ISLNK (h->mode);
  g_file_info_set_attribute_uint32 (info, "standard::type", link ? G_FILE_TYPE_SYMBOLIC_LINK : G_FILE_TYPE_REGULAR);
  g_file_info_set_attribute_boolean (info, "standard::is-symlink", link);
  g_file_info_set_attribute_uint32 (info, "unix::uid", h->uid);
  g_file_info_set_attribute_uint32 (info, "unix::gid", h->gid);
  g_file_info_set_attribute_uint32 (info, "unix::mode", h->mode);
  if (link)
    g_file_info_set_attribute_byte_string (info, "standard::symlink-target", h->symlink_target);
  else
    g_file_info_set_attribute_uint64 (info, "standard::size", size);
  return info;
}
