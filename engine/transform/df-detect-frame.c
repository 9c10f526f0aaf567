/* Detection of compressed frames: gzip members, zlib streams, zstd
 * frames, xz streams and (in a bzImage) the legacy .lzma format, their
 * headers read into the segment, their content decoded through a frame
 * source (df-detect-source.c) and examined in turn. */
#include "df-detect-private.h"

/* Scans a NUL-terminated field of at most DF_DETECT_GZIP_FIELD_MAX bytes
 * at *@p; advances *@p past it, its length without NUL in *@len. */
static DfDetectResult
gzip_field (DfDetectSrc *src, guint64 *p, guint *len, GError **error)
{
  guint8 buf[256];
  guint total = 0;
  while (total < DF_DETECT_GZIP_FIELD_MAX)
    {
      gssize n = dfi_detect_src_read (src, buf, MIN (sizeof buf, DF_DETECT_GZIP_FIELD_MAX - total), *p + total, error);
      if (n < 0)
        return DF_DETECT_RES_ERROR;
      if (n == 0)
        return DF_DETECT_RES_NO;
      const guint8 *z = memchr (buf, 0, n);
      if (z)
        {
          *len = total + (z - buf);
          *p += *len + 1;
          return DF_DETECT_RES_OK;
        }
      total += n;
    }
  return DF_DETECT_RES_NO;
}

/* RFC 1952 header at @pos: fills the gzip fields of @seg and the offset
 * of the deflate data. */
static DfDetectResult
gzip_header (DfDetectCtx *c, DfDetectSrc *src, guint64 pos, DfSegment *seg, guint64 *data_start, GError **error)
{
  guint8 h[10];
  gssize n = dfi_detect_src_read (src, h, 10, pos, error);
  if (n < 0)
    return DF_DETECT_RES_ERROR;
  if (n < 10 || h[0] != 0x1f || h[1] != 0x8b || h[2] != 8 || (h[3] & 0xe0) != 0)
    return DF_DETECT_RES_NO;
  guint8 flg = h[3];
  seg->u.gzip.flg = flg;
  seg->u.gzip.mtime = dfi_detect_le32 (h + 4);
  seg->u.gzip.xfl = h[8];
  seg->u.gzip.os = h[9];
  guint64 p = pos + 10;
  if (flg & 0x04) /* FEXTRA */
    {
      guint8 x[2];
      if ((n = dfi_detect_src_read (src, x, 2, p, error)) < 0)
        return DF_DETECT_RES_ERROR;
      if (n < 2)
        return DF_DETECT_RES_NO;
      p += 2 + dfi_detect_le16 (x);
    }
  guint len = 0;
  DfDetectResult r;
  if (flg & 0x08) /* FNAME */
    {
      if ((r = gzip_field (src, &p, &len, error)) != DF_DETECT_RES_OK)
        return r;
      seg->u.gzip.name_len = len;
    }
  if (flg & 0x10) /* FCOMMENT */
    if ((r = gzip_field (src, &p, &len, error)) != DF_DETECT_RES_OK)
      return r;
  if (flg & 0x02) /* FHCRC: the low 16 bits of the header's CRC-32 */
    {
      uLong crc = crc32 (0, NULL, 0);
      for (guint64 q = pos; q < p;)
        {
          gssize m = dfi_detect_src_read (src, c->scratch, MIN (DF_DETECT_STEP, p - q), q, error);
          if (m < 0)
            return DF_DETECT_RES_ERROR;
          if (m == 0)
            return DF_DETECT_RES_NO;
          crc = crc32 (crc, c->scratch, m);
          q += m;
        }
      guint8 x[2];
      if ((n = dfi_detect_src_read (src, x, 2, p, error)) < 0)
        return DF_DETECT_RES_ERROR;
      if (n < 2 || dfi_detect_le16 (x) != (crc & 0xffff))
        return DF_DETECT_RES_NO;
      p += 2;
    }
  seg->u.gzip.header_len = p - pos;
  *data_start = p;
  return DF_DETECT_RES_OK;
}

/* The xz stream header and the first block header's filter chain. */
static DfDetectResult
xz_header (DfDetectSrc *src, guint64 pos, DfSegment *seg, GError **error)
{
  guint8 h[LZMA_STREAM_HEADER_SIZE];
  gssize n = dfi_detect_src_read (src, h, sizeof h, pos, error);
  if (n < 0)
    return DF_DETECT_RES_ERROR;
  lzma_stream_flags sf;
  if (n < (gssize)sizeof h || lzma_stream_header_decode (&sf, h) != LZMA_OK)
    return DF_DETECT_RES_NO;
  seg->u.xz.check = sf.check;
  guint8 bh[LZMA_BLOCK_HEADER_SIZE_MAX];
  if ((n = dfi_detect_src_read (src, bh, 1, pos + sizeof h, error)) < 0)
    return DF_DETECT_RES_ERROR;
  if (n < 1)
    return DF_DETECT_RES_NO;
  if (bh[0] == 0) /* the index: a stream without blocks */
    return DF_DETECT_RES_OK;
  lzma_filter filters[LZMA_FILTERS_MAX + 1];
  lzma_block block = { .version = 1, .check = sf.check, .filters = filters };
  block.header_size = lzma_block_header_size_decode (bh[0]);
  if ((n = dfi_detect_src_read (src, bh, block.header_size, pos + sizeof h, error)) < 0)
    return DF_DETECT_RES_ERROR;
  if (n < block.header_size || lzma_block_header_decode (&block, NULL, bh) != LZMA_OK)
    return DF_DETECT_RES_NO;
  for (guint i = 0; i < LZMA_FILTERS_MAX && filters[i].id != LZMA_VLI_UNKNOWN; i++)
    {
      DfDetectFilter *df = &seg->u.xz.filters[seg->u.xz.n_filters++];
      df->id = filters[i].id;
      if ((filters[i].id == LZMA_FILTER_LZMA1 || filters[i].id == LZMA_FILTER_LZMA2) && filters[i].options)
        df->dict_size = ((lzma_options_lzma *)filters[i].options)->dict_size;
      else if (filters[i].id != LZMA_FILTER_DELTA && filters[i].options)
        df->start_offset = ((lzma_options_bcj *)filters[i].options)->start_offset;
    }
  lzma_filters_free (filters, NULL);
  return DF_DETECT_RES_OK;
}

/* Decodes the frame of @kind at @pos of @src (a segment at @depth),
 * examining what it decompresses to unless at the deepest depth. The
 * segment (filled in by the recogniser) and its children are added;
 * *@next is where the frame ends. */
static DfDetectResult
frame (DfDetectCtx *c, DfDetectSrc *src, guint64 pos, guint64 data_start, DfSegment *proto, guint depth, gint parent,
       guint64 *next, GError **error)
{
  if (!dfi_detect_seg_room (c))
    return DF_DETECT_RES_LIMIT;
  guint nseg = c->segs->len, nent = c->entries->len;
  proto->depth = depth;
  proto->parent = parent;
  proto->offset = pos;
  g_array_append_val (c->segs, *proto);
  DfDetectFrameSrc *f = dfi_detect_frame_get (c, depth, src, proto->kind, data_start);
  if (depth < c->lim.depth_max)
    {
      if (!dfi_detect_stream (c, &f->base, depth + 1, nseg, error))
        return DF_DETECT_RES_ERROR;
    }
  else
    dfi_detect_seg_at (c, nseg)->flags |= DF_SEGMENT_NOT_EXAMINED;
  if (!dfi_detect_frame_drain (f, error))
    return DF_DETECT_RES_ERROR;
  if (f->state != DF_DETECT_FS_END)
    {
      dfi_detect_rollback (c, nseg, nent);
      if (f->state == DF_DETECT_FS_LIMIT)
        {
          c->limited = TRUE;
          return DF_DETECT_RES_LIMIT;
        }
      return DF_DETECT_RES_NO;
    }
  guint64 dsize = dfi_detect_frame_produced (f);
  DfSegment *s = dfi_detect_seg_at (c, nseg);
  s->length = f->end - pos;
  s->decompressed_size = dsize;
  if (f->checked || (s->kind == DF_SEGMENT_ZSTD && (s->flags & DF_SEGMENT_CHECKSUM))
      || (s->kind == DF_SEGMENT_XZ && s->u.xz.check != LZMA_CHECK_NONE))
    s->flags |= DF_SEGMENT_CHECKED;
  /* The children tile the decompressed stream; one plain run says
   * nothing and is dropped. */
  if (c->segs->len > nseg + 1)
    {
      DfSegment *last = dfi_detect_seg_at (c, c->segs->len - 1);
      if (last->depth == depth + 1 && last->length == DF_DETECT_LEN_TO_END)
        last->length = dsize - last->offset;
    }
  if (c->segs->len == nseg + 2 && dfi_detect_seg_at (c, nseg + 1)->kind == DF_SEGMENT_PLAIN
      && !(dfi_detect_seg_at (c, nseg + 1)->flags & DF_SEGMENT_LIMIT))
    g_array_set_size (c->segs, nseg + 1);
  *next = f->end;
  return DF_DETECT_RES_OK;
}

static const guint8 xz_magic[6] = { 0xfd, '7', 'z', 'X', 'Z', 0 };

/* A gzip, zlib, zstd, xz or lzma frame at @pos, recognised from the
 * bytes @p (@n of them). @payload: a bzImage payload (.lzma allowed). */
DfDetectResult
dfi_detect_try_frame (DfDetectCtx *c, DfDetectSrc *src, guint64 pos, const guint8 *p, gsize n, guint depth, gint parent,
                      gboolean payload, guint64 *next, GError **error)
{
  DfSegment seg = { 0 };
  guint64 data_start = pos;
  DfDetectResult r;
  if (n >= 10 && p[0] == 0x1f && p[1] == 0x8b)
    {
      seg.kind = DF_SEGMENT_GZIP;
      if ((r = gzip_header (c, src, pos, &seg, &data_start, error)) != DF_DETECT_RES_OK)
        return r;
    }
  else if (n >= 6 && memcmp (p, xz_magic, 6) == 0)
    {
      seg.kind = DF_SEGMENT_XZ;
      if ((r = xz_header (src, pos, &seg, error)) != DF_DETECT_RES_OK)
        return r;
    }
  else if (n >= 4 && dfi_detect_le32 (p) == ZSTD_MAGICNUMBER)
    {
      ZSTD_frameHeader zfh;
      if (ZSTD_getFrameHeader (&zfh, p, n) != 0)
        return DF_DETECT_RES_NO;
      seg.kind = DF_SEGMENT_ZSTD;
      seg.u.zstd.window_size = zfh.windowSize;
      seg.u.zstd.dict_id = zfh.dictID;
      if (zfh.frameContentSize != ZSTD_CONTENTSIZE_UNKNOWN)
        seg.flags |= DF_SEGMENT_CONTENT_SIZE;
      if (zfh.checksumFlag)
        seg.flags |= DF_SEGMENT_CHECKSUM;
      if (zfh.dictID != 0)
        return DF_DETECT_RES_NO; /* needs a dictionary we do not have */
      if (zfh.windowSize > c->lim.decoder_mem)
        {
          c->limited = TRUE;
          return DF_DETECT_RES_LIMIT;
        }
    }
  else if (n >= 2 && (p[0] & 0x0f) == 8 && (p[0] >> 4) <= 7 && ((p[0] << 8) | p[1]) % 31 == 0 && !(p[1] & 0x20)
           && !payload)
    {
      seg.kind = DF_SEGMENT_ZLIB;
      seg.u.zlib.cmf = p[0];
      seg.u.zlib.flg = p[1];
    }
  else if (payload && n >= 13 && p[0] < 225 && dfi_detect_le32 (p + 1) >= 4096)
    {
      seg.kind = DF_SEGMENT_LZMA;
      seg.u.lzma.props = p[0];
      seg.u.lzma.dict_size = dfi_detect_le32 (p + 1);
      seg.u.lzma.declared_size = dfi_detect_le32 (p + 5) | (guint64)dfi_detect_le32 (p + 9) << 32;
    }
  else
    return DF_DETECT_RES_NO;
  return frame (c, src, pos, data_start, &seg, depth, parent, next, error);
}
