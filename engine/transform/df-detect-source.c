/* Detection's frame source: the decompressed stream of a gzip, zlib,
 * zstd, xz or lzma frame in another source, decoded forward on demand
 * (df-detect-private.h describes the sources). */
#include <zstd_errors.h>

#include "df-detect-private.h"

/* A frame source keeps at least this much decoded output behind its
 * end, so any read of at most DF_DETECT_STEP bytes made just after the
 * end was passed is served without restarting. */
#define WIN_KEEP (2 * DF_DETECT_STEP)
#define WIN_CAP (4 * DF_DETECT_STEP)

/* Reads up to @len bytes (any length) at @off: count (short at the end) or -1. */
gssize
dfi_detect_src_read (DfDetectSrc *s, void *buf, gsize len, guint64 off, GError **error)
{
  gsize done = 0;
  while (done < len)
    {
      gssize n = s->read (s, (guint8 *)buf + done, MIN (len - done, DF_DETECT_STEP), off + done, error);
      if (n < 0)
        return -1;
      if (n == 0)
        break;
      done += n;
    }
  return done;
}

/* --- Frame sources: a decompressed stream ------------------------------ */

static gssize frame_read (DfDetectSrc *s, void *buf, gsize len, guint64 off, GError **error);

/* Starts (or restarts) decoding at data_start. FALSE: DF_DETECT_FS_BAD or
 * DF_DETECT_FS_LIMIT set. */
static gboolean
frame_start (DfDetectFrameSrc *f)
{
  f->in_off = f->data_start;
  f->in_len = f->in_pos = 0;
  f->in_eof = FALSE;
  f->win_base = 0;
  f->win_len = 0;
  f->crc = crc32 (0, NULL, 0);
  f->state = DF_DETECT_FS_RUNNING;
  switch (f->kind)
    {
    case DF_SEGMENT_GZIP:
    case DF_SEGMENT_ZLIB:
      {
        int bits = f->kind == DF_SEGMENT_GZIP ? -15 : 15;
        int r = f->z_init ? inflateReset2 (&f->z, bits) : inflateInit2 (&f->z, bits);
        if (r != Z_OK)
          return f->state = DF_DETECT_FS_LIMIT, FALSE;
        f->z_init = TRUE;
        break;
      }
    case DF_SEGMENT_ZSTD:
      {
        if (f->zd == NULL && (f->zd = ZSTD_createDCtx ()) == NULL)
          return f->state = DF_DETECT_FS_LIMIT, FALSE;
        ZSTD_DCtx_reset (f->zd, ZSTD_reset_session_and_parameters);
        int log = 10;
        while (log < 31 && (G_GUINT64_CONSTANT (1) << (log + 1)) <= f->c->lim.decoder_mem)
          log++;
        ZSTD_DCtx_setParameter (f->zd, ZSTD_d_windowLogMax, log);
        break;
      }
    case DF_SEGMENT_XZ:
    case DF_SEGMENT_LZMA:
      {
        lzma_ret r = f->kind == DF_SEGMENT_XZ ? lzma_stream_decoder (&f->lz, f->c->lim.decoder_mem, 0)
                                              : lzma_alone_decoder (&f->lz, f->c->lim.decoder_mem);
        f->lz_init = TRUE;
        if (r != LZMA_OK)
          return f->state = DF_DETECT_FS_LIMIT, FALSE;
        break;
      }
    default:
      g_assert_not_reached ();
    }
  return TRUE;
}

/* Makes input available; FALSE on an I/O error. At the parent's end
 * in_eof is set and nothing is added. */
static gboolean
frame_refill (DfDetectFrameSrc *f, GError **error)
{
  if (f->in_pos < f->in_len || f->in_eof)
    return TRUE;
  gssize n = f->parent->read (f->parent, f->in, DF_DETECT_STEP, f->in_off, error);
  if (n < 0)
    return FALSE;
  f->in_len = n;
  f->in_pos = 0;
  f->in_off += n;
  if (n == 0)
    f->in_eof = TRUE;
  return TRUE;
}

/* Parent offset of the first input byte not consumed. */
static guint64
frame_in_pos (DfDetectFrameSrc *f)
{
  return f->in_off - (f->in_len - f->in_pos);
}

/* The gzip trailer after the deflate data ended: CRC-32 and ISIZE. */
static gboolean
gzip_trailer (DfDetectFrameSrc *f, GError **error)
{
  guint8 t[8];
  guint64 at = frame_in_pos (f);
  gssize n = dfi_detect_src_read (f->parent, t, 8, at, error);
  if (n < 0)
    return FALSE;
  guint32 crc = t[0] | t[1] << 8 | t[2] << 16 | (guint32)t[3] << 24;
  guint32 isize = t[4] | t[5] << 8 | t[6] << 16 | (guint32)t[7] << 24;
  if (n < 8 || crc != f->crc || isize != (guint32)dfi_detect_frame_produced (f))
    f->state = DF_DETECT_FS_BAD;
  else
    {
      f->state = DF_DETECT_FS_END;
      f->end = at + 8;
      f->checked = TRUE;
    }
  return TRUE;
}

/* Decodes up to DF_DETECT_STEP more bytes of output. FALSE on an I/O error;
 * otherwise the state says whether the frame goes on. */
static gboolean
frame_step (DfDetectFrameSrc *f, GError **error)
{
  DfDetectCtx *c = f->c;
  if (dfi_detect_cancelled (c, error))
    return FALSE;
  if (c->produced >= c->lim.decompressed_max)
    {
      f->state = DF_DETECT_FS_LIMIT;
      return TRUE;
    }
  if (f->win_len + DF_DETECT_STEP > WIN_CAP)
    {
      gsize drop = f->win_len - WIN_KEEP;
      memmove (f->win, f->win + drop, WIN_KEEP);
      f->win_base += drop;
      f->win_len = WIN_KEEP;
    }
  guint8 *out = f->win + f->win_len;
  gsize out_pos = 0;
  while (out_pos < DF_DETECT_STEP && f->state == DF_DETECT_FS_RUNNING)
    {
      if (!frame_refill (f, error))
        return FALSE;
      gsize in_before = f->in_pos, out_before = out_pos;
      gboolean ended = FALSE;
      switch (f->kind)
        {
        case DF_SEGMENT_GZIP:
        case DF_SEGMENT_ZLIB:
          {
            f->z.next_in = f->in + f->in_pos;
            f->z.avail_in = f->in_len - f->in_pos;
            f->z.next_out = out + out_pos;
            f->z.avail_out = DF_DETECT_STEP - out_pos;
            int r = inflate (&f->z, Z_NO_FLUSH);
            f->in_pos = f->in_len - f->z.avail_in;
            out_pos = DF_DETECT_STEP - f->z.avail_out;
            if (r == Z_STREAM_END)
              ended = TRUE;
            else if (r == Z_MEM_ERROR)
              f->state = DF_DETECT_FS_LIMIT;
            else if (r != Z_OK && r != Z_BUF_ERROR)
              f->state = DF_DETECT_FS_BAD;
            break;
          }
        case DF_SEGMENT_ZSTD:
          {
            ZSTD_inBuffer zin = { f->in, f->in_len, f->in_pos };
            ZSTD_outBuffer zout = { out, DF_DETECT_STEP, out_pos };
            size_t r = ZSTD_decompressStream (f->zd, &zout, &zin);
            f->in_pos = zin.pos;
            out_pos = zout.pos;
            if (ZSTD_isError (r))
              f->state = ZSTD_getErrorCode (r) == ZSTD_error_frameParameter_windowTooLarge
                                 || ZSTD_getErrorCode (r) == ZSTD_error_memory_allocation
                             ? DF_DETECT_FS_LIMIT
                             : DF_DETECT_FS_BAD;
            else if (r == 0)
              ended = TRUE;
            break;
          }
        default:
          {
            f->lz.next_in = f->in + f->in_pos;
            f->lz.avail_in = f->in_len - f->in_pos;
            f->lz.next_out = out + out_pos;
            f->lz.avail_out = DF_DETECT_STEP - out_pos;
            lzma_ret r = lzma_code (&f->lz, LZMA_RUN);
            f->in_pos = f->in_len - f->lz.avail_in;
            out_pos = DF_DETECT_STEP - f->lz.avail_out;
            if (r == LZMA_STREAM_END)
              ended = TRUE;
            else if (r == LZMA_MEMLIMIT_ERROR || r == LZMA_MEM_ERROR)
              f->state = DF_DETECT_FS_LIMIT;
            else if (r != LZMA_OK && r != LZMA_BUF_ERROR)
              f->state = DF_DETECT_FS_BAD;
            break;
          }
        }
      if (f->kind == DF_SEGMENT_GZIP)
        f->crc = crc32 (f->crc, out + out_before, out_pos - out_before);
      if (ended)
        {
          f->win_len += out_pos;
          c->produced += out_pos;
          if (f->kind == DF_SEGMENT_GZIP)
            return gzip_trailer (f, error);
          f->state = DF_DETECT_FS_END;
          f->end = frame_in_pos (f);
          /* zlib checks its Adler-32, zstd its checksum, liblzma the xz
           * check; whether there was one to check is filled in by the
           * caller from the header. */
          f->checked = f->kind == DF_SEGMENT_ZLIB;
          return TRUE;
        }
      /* The input ran out and the decoder cannot go on with what it has. */
      if (f->state == DF_DETECT_FS_RUNNING && f->in_eof && f->in_pos == in_before && out_pos == out_before)
        f->state = DF_DETECT_FS_BAD;
    }
  f->win_len += out_pos;
  c->produced += out_pos;
  return TRUE;
}

static gssize
frame_read (DfDetectSrc *s, void *buf, gsize len, guint64 off, GError **error)
{
  DfDetectFrameSrc *f = (DfDetectFrameSrc *)s;
  g_assert (len <= DF_DETECT_STEP);
  if (off < f->win_base)
    {
      if (!frame_start (f))
        return 0;
    }
  while (off + len > dfi_detect_frame_produced (f) && f->state == DF_DETECT_FS_RUNNING)
    if (!frame_step (f, error))
      return -1;
  if (off >= dfi_detect_frame_produced (f))
    return 0;
  g_assert (off >= f->win_base);
  gsize n = MIN (len, dfi_detect_frame_produced (f) - off);
  memcpy (buf, f->win + (off - f->win_base), n);
  return n;
}

/* Decodes the rest of the frame. FALSE on an I/O error. */
gboolean
dfi_detect_frame_drain (DfDetectFrameSrc *f, GError **error)
{
  while (f->state == DF_DETECT_FS_RUNNING)
    {
      /* Output is thrown away: keep the window from growing. */
      f->win_base += f->win_len;
      f->win_len = 0;
      if (!frame_step (f, error))
        return FALSE;
    }
  return TRUE;
}

/* The frame source of @depth (the pool's, or a new one), set to decode
 * a frame of @kind whose input starts at @data_start of @parent. */
DfDetectFrameSrc *
dfi_detect_frame_get (DfDetectCtx *c, guint depth, DfDetectSrc *parent, DfSegmentKind kind, guint64 data_start)
{
  DfDetectFrameSrc *f = c->pool[depth];
  if (f == NULL)
    {
      f = c->pool[depth] = g_new0 (DfDetectFrameSrc, 1);
      f->base.read = frame_read;
      f->base.size = G_MAXUINT64;
      f->c = c;
      f->win = g_malloc (WIN_CAP);
      f->lz = (lzma_stream)LZMA_STREAM_INIT;
    }
  f->parent = parent;
  f->kind = kind;
  f->data_start = data_start;
  f->end = 0;
  f->checked = FALSE;
  frame_start (f);
  return f;
}

void
dfi_detect_frame_free (DfDetectFrameSrc *f)
{
  if (f == NULL)
    return;
  if (f->z_init)
    inflateEnd (&f->z);
  ZSTD_freeDCtx (f->zd);
  if (f->lz_init)
    lzma_end (&f->lz);
  g_free (f->win);
  g_free (f);
}
