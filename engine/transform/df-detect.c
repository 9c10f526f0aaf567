/* Content detection: see df-detect.h for what is reported and the limits.
 *
 * Reading is done through a small "source" interface (read at an offset,
 * short only at the end) with two implementations: the file itself, and
 * the decompressed stream of a frame in another source. The second decodes
 * forward on demand and keeps the last 128-192 KiB of output, so that the
 * detector, which mostly reads forward (headers, then skips data), never
 * holds a whole stream; a read behind that window restarts the decoder
 * (counted against the decompressed budget). One detector then serves the
 * file and every decompressed stream in it. */
#include <lzma.h>
#include <sys/stat.h>
#include <zlib.h>
#include <zstd_errors.h>

#include "df-detect.h"

/* Largest read of a source and decoder output step; the input buffer of
 * a decoder reads this much from its parent at a time. */
#define STEP (64 * 1024)
/* A frame source keeps at least this much decoded output behind its
 * end, so any read of at most STEP bytes made just after the end was
 * passed is served without restarting. */
#define WIN_KEEP (2 * STEP)
#define WIN_CAP (4 * STEP)
#define PROBE_LEN 1024
#define CPIO_HDR_LEN 110
/* A length not known yet: a plain run to the end of a stream still
 * being decoded (fixed once the frame is decoded to its end). */
#define LEN_TO_END G_MAXUINT64

/* --- Sources ------------------------------------------------------------ */

typedef struct Src Src;
struct Src
{
  /* At most STEP bytes at @off: the count, short only at the end, or -1
   * with @error set (I/O error or cancellation). */
  gssize (*read) (Src *s, void *buf, gsize len, guint64 off, GError **error);
  guint64 size; /* G_MAXUINT64 while unknown */
};

typedef struct
{
  Src base;
  DfReadAtFunc fn;
  gpointer user;
} FileSrc;

static gssize
file_read (Src *s, void *buf, gsize len, guint64 off, GError **error)
{
  FileSrc *f = (FileSrc *)s;
  if (off >= s->size)
    return 0;
  len = MIN (len, s->size - off);
  gsize done = 0;
  while (done < len)
    {
      gssize n = f->fn (f->user, (guint8 *)buf + done, len - done, off + done, error);
      if (n < 0)
        return -1;
      if (n == 0)
        return df_throw (error, DF_ERROR_IO, "detect: file ended at %" G_GUINT64_FORMAT ", before its size",
                         off + done),
               -1;
      done += n;
    }
  return done;
}

/* Reads up to @len bytes (any length) at @off: count (short at the end) or -1. */
static gssize
src_read (Src *s, void *buf, gsize len, guint64 off, GError **error)
{
  gsize done = 0;
  while (done < len)
    {
      gssize n = s->read (s, (guint8 *)buf + done, MIN (len - done, STEP), off + done, error);
      if (n < 0)
        return -1;
      if (n == 0)
        break;
      done += n;
    }
  return done;
}

/* --- The detection context --------------------------------------------- */

struct FrameSrc;

typedef struct
{
  DfDetectLimits lim;
  DfDetectFlags flags;
  GCancellable *cancellable;
  GArray *segs;    /* DfSegment */
  GArray *entries; /* DfCpioEntry */
  GStringChunk *names;
  guint64 produced; /* decoder output, all frames */
  gboolean limited;
  guint8 *scratch; /* STEP bytes for skipping and hashing */
  /* One frame source per depth, kept with its decoder and buffers from
   * one frame to the next (a file of many small members must not pay
   * for a new one each time). */
  struct FrameSrc *pool[DF_DETECT_DEPTH_MAX + 1];
} Ctx;

static DfSegment *
seg_at (Ctx *c, guint i)
{
  return &g_array_index (c->segs, DfSegment, i);
}

/* Whether one more segment that is not the last of its stream fits;
 * otherwise the limit is reached. One plain run per depth may still be
 * added after that to end each stream. */
static gboolean
seg_room (Ctx *c)
{
  if (c->segs->len + 1 < c->lim.segments_max)
    return TRUE;
  c->limited = TRUE;
  return FALSE;
}

static guint
seg_add (Ctx *c, DfSegmentKind kind, guint depth, gint parent, guint64 off, guint64 len, guint flags)
{
  DfSegment s = { .kind = kind, .depth = depth, .parent = parent, .offset = off, .length = len, .flags = flags };
  g_array_append_val (c->segs, s);
  return c->segs->len - 1;
}

/* A plain run from @off to the end of @src (length fixed later if the
 * end is not known yet); marked DF_SEGMENT_LIMIT when a limit ended
 * detection. */
static void
seg_add_plain_to_end (Ctx *c, Src *src, guint depth, gint parent, guint64 off)
{
  guint64 len = src->size == G_MAXUINT64 ? LEN_TO_END : src->size - off;
  if (len == 0)
    return;
  seg_add (c, DF_SEGMENT_PLAIN, depth, parent, off, len, c->limited ? DF_SEGMENT_LIMIT : 0);
}

/* Forgets the segments from @nseg and the entries from @nent on (a
 * structure that did not check out). */
static void
rollback (Ctx *c, guint nseg, guint nent)
{
  g_array_set_size (c->segs, nseg);
  g_array_set_size (c->entries, nent);
}

static gboolean
cancelled (Ctx *c, GError **error)
{
  return g_cancellable_set_error_if_cancelled (c->cancellable, error);
}

/* --- Frame sources: a decompressed stream ------------------------------ */

typedef enum
{
  FS_RUNNING,
  FS_END,   /* decoded to its end, checks passed */
  FS_BAD,   /* not a valid frame: decoder error, truncated, check failed */
  FS_LIMIT, /* the decompressed budget or decoder memory ran out */
} FsState;

typedef struct FrameSrc
{
  Src base;
  Ctx *c;
  Src *parent;
  DfSegmentKind kind;
  guint64 data_start; /* where the decoder's input starts in the parent */
  guint64 in_off;     /* parent offset of the next input read */
  guint8 in[STEP];
  gsize in_len, in_pos;
  gboolean in_eof;
  guint8 *win; /* output [win_base, win_base + win_len) */
  guint64 win_base;
  gsize win_len;
  FsState state;
  guint64 end; /* FS_END: parent offset just after the frame */
  guint32 crc; /* gzip: CRC-32 of the output so far */
  gboolean checked;
  z_stream z;
  gboolean z_init;
  ZSTD_DCtx *zd;
  lzma_stream lz;
  gboolean lz_init;
} FrameSrc;

static gssize frame_read (Src *s, void *buf, gsize len, guint64 off, GError **error);

static guint64
frame_produced (FrameSrc *f)
{
  return f->win_base + f->win_len;
}

/* Starts (or restarts) decoding at data_start. FALSE: FS_BAD/FS_LIMIT set. */
static gboolean
frame_start (FrameSrc *f)
{
  f->in_off = f->data_start;
  f->in_len = f->in_pos = 0;
  f->in_eof = FALSE;
  f->win_base = 0;
  f->win_len = 0;
  f->crc = crc32 (0, NULL, 0);
  f->state = FS_RUNNING;
  switch (f->kind)
    {
    case DF_SEGMENT_GZIP:
    case DF_SEGMENT_ZLIB:
      {
        int bits = f->kind == DF_SEGMENT_GZIP ? -15 : 15;
        int r = f->z_init ? inflateReset2 (&f->z, bits) : inflateInit2 (&f->z, bits);
        if (r != Z_OK)
          return f->state = FS_LIMIT, FALSE;
        f->z_init = TRUE;
        break;
      }
    case DF_SEGMENT_ZSTD:
      {
        if (f->zd == NULL && (f->zd = ZSTD_createDCtx ()) == NULL)
          return f->state = FS_LIMIT, FALSE;
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
          return f->state = FS_LIMIT, FALSE;
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
frame_refill (FrameSrc *f, GError **error)
{
  if (f->in_pos < f->in_len || f->in_eof)
    return TRUE;
  gssize n = f->parent->read (f->parent, f->in, STEP, f->in_off, error);
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
frame_in_pos (FrameSrc *f)
{
  return f->in_off - (f->in_len - f->in_pos);
}

/* The gzip trailer after the deflate data ended: CRC-32 and ISIZE. */
static gboolean
gzip_trailer (FrameSrc *f, GError **error)
{
  guint8 t[8];
  guint64 at = frame_in_pos (f);
  gssize n = src_read (f->parent, t, 8, at, error);
  if (n < 0)
    return FALSE;
  guint32 crc = t[0] | t[1] << 8 | t[2] << 16 | (guint32)t[3] << 24;
  guint32 isize = t[4] | t[5] << 8 | t[6] << 16 | (guint32)t[7] << 24;
  if (n < 8 || crc != f->crc || isize != (guint32)frame_produced (f))
    f->state = FS_BAD;
  else
    {
      f->state = FS_END;
      f->end = at + 8;
      f->checked = TRUE;
    }
  return TRUE;
}

/* Decodes up to STEP more bytes of output. FALSE on an I/O error;
 * otherwise the state says whether the frame goes on. */
static gboolean
frame_step (FrameSrc *f, GError **error)
{
  Ctx *c = f->c;
  if (cancelled (c, error))
    return FALSE;
  if (c->produced >= c->lim.decompressed_max)
    {
      f->state = FS_LIMIT;
      return TRUE;
    }
  if (f->win_len + STEP > WIN_CAP)
    {
      gsize drop = f->win_len - WIN_KEEP;
      memmove (f->win, f->win + drop, WIN_KEEP);
      f->win_base += drop;
      f->win_len = WIN_KEEP;
    }
  guint8 *out = f->win + f->win_len;
  gsize out_pos = 0;
  while (out_pos < STEP && f->state == FS_RUNNING)
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
            f->z.avail_out = STEP - out_pos;
            int r = inflate (&f->z, Z_NO_FLUSH);
            f->in_pos = f->in_len - f->z.avail_in;
            out_pos = STEP - f->z.avail_out;
            if (r == Z_STREAM_END)
              ended = TRUE;
            else if (r == Z_MEM_ERROR)
              f->state = FS_LIMIT;
            else if (r != Z_OK && r != Z_BUF_ERROR)
              f->state = FS_BAD;
            break;
          }
        case DF_SEGMENT_ZSTD:
          {
            ZSTD_inBuffer zin = { f->in, f->in_len, f->in_pos };
            ZSTD_outBuffer zout = { out, STEP, out_pos };
            size_t r = ZSTD_decompressStream (f->zd, &zout, &zin);
            f->in_pos = zin.pos;
            out_pos = zout.pos;
            if (ZSTD_isError (r))
              f->state = ZSTD_getErrorCode (r) == ZSTD_error_frameParameter_windowTooLarge
                                 || ZSTD_getErrorCode (r) == ZSTD_error_memory_allocation
                             ? FS_LIMIT
                             : FS_BAD;
            else if (r == 0)
              ended = TRUE;
            break;
          }
        default:
          {
            f->lz.next_in = f->in + f->in_pos;
            f->lz.avail_in = f->in_len - f->in_pos;
            f->lz.next_out = out + out_pos;
            f->lz.avail_out = STEP - out_pos;
            lzma_ret r = lzma_code (&f->lz, LZMA_RUN);
            f->in_pos = f->in_len - f->lz.avail_in;
            out_pos = STEP - f->lz.avail_out;
            if (r == LZMA_STREAM_END)
              ended = TRUE;
            else if (r == LZMA_MEMLIMIT_ERROR || r == LZMA_MEM_ERROR)
              f->state = FS_LIMIT;
            else if (r != LZMA_OK && r != LZMA_BUF_ERROR)
              f->state = FS_BAD;
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
          f->state = FS_END;
          f->end = frame_in_pos (f);
          /* zlib checks its Adler-32, zstd its checksum, liblzma the xz
           * check; whether there was one to check is filled in by the
           * caller from the header. */
          f->checked = f->kind == DF_SEGMENT_ZLIB;
          return TRUE;
        }
      /* The input ran out and the decoder cannot go on with what it has. */
      if (f->state == FS_RUNNING && f->in_eof && f->in_pos == in_before && out_pos == out_before)
        f->state = FS_BAD;
    }
  f->win_len += out_pos;
  c->produced += out_pos;
  return TRUE;
}

static gssize
frame_read (Src *s, void *buf, gsize len, guint64 off, GError **error)
{
  FrameSrc *f = (FrameSrc *)s;
  g_assert (len <= STEP);
  if (off < f->win_base)
    {
      if (!frame_start (f))
        return 0;
    }
  while (off + len > frame_produced (f) && f->state == FS_RUNNING)
    if (!frame_step (f, error))
      return -1;
  if (off >= frame_produced (f))
    return 0;
  g_assert (off >= f->win_base);
  gsize n = MIN (len, frame_produced (f) - off);
  memcpy (buf, f->win + (off - f->win_base), n);
  return n;
}

/* Decodes the rest of the frame. FALSE on an I/O error. */
static gboolean
frame_drain (FrameSrc *f, GError **error)
{
  while (f->state == FS_RUNNING)
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
static FrameSrc *
frame_get (Ctx *c, guint depth, Src *parent, DfSegmentKind kind, guint64 data_start)
{
  FrameSrc *f = c->pool[depth];
  if (f == NULL)
    {
      f = c->pool[depth] = g_new0 (FrameSrc, 1);
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

static void
frame_free (FrameSrc *f)
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

/* --- Recognisers ------------------------------------------------------- */

static guint32
le32 (const guint8 *p)
{
  return p[0] | p[1] << 8 | p[2] << 16 | (guint32)p[3] << 24;
}

static guint16
le16 (const guint8 *p)
{
  return p[0] | p[1] << 8;
}

typedef enum
{
  RES_OK,    /* recognised; *next is where the structure ends */
  RES_NO,    /* not this structure: plain from here */
  RES_LIMIT, /* a limit reached here: plain from here, detection ends */
  RES_ERROR, /* I/O error or cancelled */
} Result;

static gboolean detect_stream (Ctx *c, Src *src, guint depth, gint parent, GError **error);

/* Scans a NUL-terminated field of at most DF_DETECT_GZIP_FIELD_MAX bytes
 * at *@p; advances *@p past it, its length without NUL in *@len. */
static Result
gzip_field (Src *src, guint64 *p, guint *len, GError **error)
{
  guint8 buf[256];
  guint total = 0;
  while (total < DF_DETECT_GZIP_FIELD_MAX)
    {
      gssize n = src_read (src, buf, MIN (sizeof buf, DF_DETECT_GZIP_FIELD_MAX - total), *p + total, error);
      if (n < 0)
        return RES_ERROR;
      if (n == 0)
        return RES_NO;
      const guint8 *z = memchr (buf, 0, n);
      if (z)
        {
          *len = total + (z - buf);
          *p += *len + 1;
          return RES_OK;
        }
      total += n;
    }
  return RES_NO;
}

/* RFC 1952 header at @pos: fills the gzip fields of @seg and the offset
 * of the deflate data. */
static Result
gzip_header (Ctx *c, Src *src, guint64 pos, DfSegment *seg, guint64 *data_start, GError **error)
{
  guint8 h[10];
  gssize n = src_read (src, h, 10, pos, error);
  if (n < 0)
    return RES_ERROR;
  if (n < 10 || h[0] != 0x1f || h[1] != 0x8b || h[2] != 8 || (h[3] & 0xe0) != 0)
    return RES_NO;
  guint8 flg = h[3];
  seg->u.gzip.flg = flg;
  seg->u.gzip.mtime = le32 (h + 4);
  seg->u.gzip.xfl = h[8];
  seg->u.gzip.os = h[9];
  guint64 p = pos + 10;
  if (flg & 0x04) /* FEXTRA */
    {
      guint8 x[2];
      if ((n = src_read (src, x, 2, p, error)) < 0)
        return RES_ERROR;
      if (n < 2)
        return RES_NO;
      p += 2 + le16 (x);
    }
  guint len = 0;
  Result r;
  if (flg & 0x08) /* FNAME */
    {
      if ((r = gzip_field (src, &p, &len, error)) != RES_OK)
        return r;
      seg->u.gzip.name_len = len;
    }
  if (flg & 0x10) /* FCOMMENT */
    if ((r = gzip_field (src, &p, &len, error)) != RES_OK)
      return r;
  if (flg & 0x02) /* FHCRC: the low 16 bits of the header's CRC-32 */
    {
      uLong crc = crc32 (0, NULL, 0);
      for (guint64 q = pos; q < p;)
        {
          gssize m = src_read (src, c->scratch, MIN (STEP, p - q), q, error);
          if (m < 0)
            return RES_ERROR;
          if (m == 0)
            return RES_NO;
          crc = crc32 (crc, c->scratch, m);
          q += m;
        }
      guint8 x[2];
      if ((n = src_read (src, x, 2, p, error)) < 0)
        return RES_ERROR;
      if (n < 2 || le16 (x) != (crc & 0xffff))
        return RES_NO;
      p += 2;
    }
  seg->u.gzip.header_len = p - pos;
  *data_start = p;
  return RES_OK;
}

/* The xz stream header and the first block header's filter chain. */
static Result
xz_header (Src *src, guint64 pos, DfSegment *seg, GError **error)
{
  guint8 h[LZMA_STREAM_HEADER_SIZE];
  gssize n = src_read (src, h, sizeof h, pos, error);
  if (n < 0)
    return RES_ERROR;
  lzma_stream_flags sf;
  if (n < (gssize)sizeof h || lzma_stream_header_decode (&sf, h) != LZMA_OK)
    return RES_NO;
  seg->u.xz.check = sf.check;
  guint8 bh[LZMA_BLOCK_HEADER_SIZE_MAX];
  if ((n = src_read (src, bh, 1, pos + sizeof h, error)) < 0)
    return RES_ERROR;
  if (n < 1)
    return RES_NO;
  if (bh[0] == 0) /* the index: a stream without blocks */
    return RES_OK;
  lzma_filter filters[LZMA_FILTERS_MAX + 1];
  lzma_block block = { .version = 1, .check = sf.check, .filters = filters };
  block.header_size = lzma_block_header_size_decode (bh[0]);
  if ((n = src_read (src, bh, block.header_size, pos + sizeof h, error)) < 0)
    return RES_ERROR;
  if (n < block.header_size || lzma_block_header_decode (&block, NULL, bh) != LZMA_OK)
    return RES_NO;
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
  return RES_OK;
}

/* Decodes the frame of @kind at @pos of @src (a segment at @depth),
 * examining what it decompresses to unless at the deepest depth. The
 * segment (filled in by the recogniser) and its children are added;
 * *@next is where the frame ends. */
static Result
frame (Ctx *c, Src *src, guint64 pos, guint64 data_start, DfSegment *proto, guint depth, gint parent, guint64 *next,
       GError **error)
{
  if (!seg_room (c))
    return RES_LIMIT;
  guint nseg = c->segs->len, nent = c->entries->len;
  proto->depth = depth;
  proto->parent = parent;
  proto->offset = pos;
  g_array_append_val (c->segs, *proto);
  FrameSrc *f = frame_get (c, depth, src, proto->kind, data_start);
  if (depth < c->lim.depth_max)
    {
      if (!detect_stream (c, &f->base, depth + 1, nseg, error))
        return RES_ERROR;
    }
  else
    seg_at (c, nseg)->flags |= DF_SEGMENT_NOT_EXAMINED;
  if (!frame_drain (f, error))
    return RES_ERROR;
  if (f->state != FS_END)
    {
      rollback (c, nseg, nent);
      if (f->state == FS_LIMIT)
        {
          c->limited = TRUE;
          return RES_LIMIT;
        }
      return RES_NO;
    }
  guint64 dsize = frame_produced (f);
  DfSegment *s = seg_at (c, nseg);
  s->length = f->end - pos;
  s->decompressed_size = dsize;
  if (f->checked || (s->kind == DF_SEGMENT_ZSTD && (s->flags & DF_SEGMENT_CHECKSUM))
      || (s->kind == DF_SEGMENT_XZ && s->u.xz.check != LZMA_CHECK_NONE))
    s->flags |= DF_SEGMENT_CHECKED;
  /* The children tile the decompressed stream; one plain run says
   * nothing and is dropped. */
  if (c->segs->len > nseg + 1)
    {
      DfSegment *last = seg_at (c, c->segs->len - 1);
      if (last->depth == depth + 1 && last->length == LEN_TO_END)
        last->length = dsize - last->offset;
    }
  if (c->segs->len == nseg + 2 && seg_at (c, nseg + 1)->kind == DF_SEGMENT_PLAIN
      && !(seg_at (c, nseg + 1)->flags & DF_SEGMENT_LIMIT))
    g_array_set_size (c->segs, nseg + 1);
  *next = f->end;
  return RES_OK;
}

static const guint8 xz_magic[6] = { 0xfd, '7', 'z', 'X', 'Z', 0 };

/* A gzip, zlib, zstd, xz or lzma frame at @pos, recognised from the
 * bytes @p (@n of them). @payload: a bzImage payload (.lzma allowed). */
static Result
try_frame (Ctx *c, Src *src, guint64 pos, const guint8 *p, gsize n, guint depth, gint parent, gboolean payload,
           guint64 *next, GError **error)
{
  DfSegment seg = { 0 };
  guint64 data_start = pos;
  Result r;
  if (n >= 10 && p[0] == 0x1f && p[1] == 0x8b)
    {
      seg.kind = DF_SEGMENT_GZIP;
      if ((r = gzip_header (c, src, pos, &seg, &data_start, error)) != RES_OK)
        return r;
    }
  else if (n >= 6 && memcmp (p, xz_magic, 6) == 0)
    {
      seg.kind = DF_SEGMENT_XZ;
      if ((r = xz_header (src, pos, &seg, error)) != RES_OK)
        return r;
    }
  else if (n >= 4 && le32 (p) == ZSTD_MAGICNUMBER)
    {
      ZSTD_frameHeader zfh;
      if (ZSTD_getFrameHeader (&zfh, p, n) != 0)
        return RES_NO;
      seg.kind = DF_SEGMENT_ZSTD;
      seg.u.zstd.window_size = zfh.windowSize;
      seg.u.zstd.dict_id = zfh.dictID;
      if (zfh.frameContentSize != ZSTD_CONTENTSIZE_UNKNOWN)
        seg.flags |= DF_SEGMENT_CONTENT_SIZE;
      if (zfh.checksumFlag)
        seg.flags |= DF_SEGMENT_CHECKSUM;
      if (zfh.dictID != 0)
        return RES_NO; /* needs a dictionary we do not have */
      if (zfh.windowSize > c->lim.decoder_mem)
        {
          c->limited = TRUE;
          return RES_LIMIT;
        }
    }
  else if (n >= 2 && (p[0] & 0x0f) == 8 && (p[0] >> 4) <= 7 && ((p[0] << 8) | p[1]) % 31 == 0 && !(p[1] & 0x20)
           && !payload)
    {
      seg.kind = DF_SEGMENT_ZLIB;
      seg.u.zlib.cmf = p[0];
      seg.u.zlib.flg = p[1];
    }
  else if (payload && n >= 13 && p[0] < 225 && le32 (p + 1) >= 4096)
    {
      seg.kind = DF_SEGMENT_LZMA;
      seg.u.lzma.props = p[0];
      seg.u.lzma.dict_size = le32 (p + 1);
      seg.u.lzma.declared_size = le32 (p + 5) | (guint64)le32 (p + 9) << 32;
    }
  else
    return RES_NO;
  return frame (c, src, pos, data_start, &seg, depth, parent, next, error);
}

/* Parses eight hex digits. */
static gboolean
hex8 (const guint8 *p, guint32 *out)
{
  guint32 v = 0;
  for (guint i = 0; i < 8; i++)
    {
      int d = g_ascii_xdigit_value (p[i]);
      if (d < 0)
        return FALSE;
      v = v << 4 | d;
    }
  *out = v;
  return TRUE;
}

static guint64
align4 (guint64 base, guint64 at)
{
  return base + ((at - base + 3) & ~G_GUINT64_CONSTANT (3));
}

/* Reads (and hashes when @h) [@from, @to) of @src: FALSE with *@ok
 * FALSE when the stream ends first; FALSE alone on an I/O error. */
static gboolean
pass_bytes (Ctx *c, Src *src, guint64 from, guint64 to, DfSha256 *h, gboolean *ok, GError **error)
{
  *ok = FALSE;
  if (src->size != G_MAXUINT64 && h == NULL)
    {
      *ok = to <= src->size;
      return TRUE;
    }
  if (h == NULL && to > from) /* a decompressed stream: the last byte must exist */
    from = to - 1;
  while (from < to)
    {
      gssize n = src_read (src, c->scratch, MIN (STEP, to - from), from, error);
      if (n < 0)
        return FALSE;
      if (n == 0)
        return TRUE;
      if (h)
        df_sha256_update (h, c->scratch, n);
      from += n;
    }
  *ok = TRUE;
  return TRUE;
}

/* A newc (070701) or crc (070702) cpio archive at @pos, entry by entry
 * until its trailer. An archive broken or cut after at least one entry
 * ends after its last complete entry (DF_SEGMENT_NO_TRAILER). */
static Result
cpio (Ctx *c, Src *src, guint64 pos, guint depth, gint parent, guint64 *next, GError **error)
{
  if (!seg_room (c))
    return RES_LIMIT;
  guint seg_index = seg_add (c, DF_SEGMENT_CPIO, depth, parent, pos, 0, DF_SEGMENT_NO_TRAILER);
  guint first = c->entries->len;
  guint64 off = pos;
  g_autofree char *name = g_malloc (DF_DETECT_NAME_MAX);
  for (;;)
    {
      if (cancelled (c, error))
        return RES_ERROR;
      guint8 h[CPIO_HDR_LEN];
      gssize n = src_read (src, h, sizeof h, off, error);
      if (n < 0)
        return RES_ERROR;
      guint32 v[13];
      if (n < CPIO_HDR_LEN || memcmp (h, "07070", 5) != 0 || (h[5] != '1' && h[5] != '2'))
        break;
      gboolean hex_ok = TRUE;
      for (guint i = 0; i < 13 && hex_ok; i++)
        hex_ok = hex8 (h + 6 + 8 * i, &v[i]);
      guint32 namesize = v[11];
      if (!hex_ok || namesize < 1 || namesize > DF_DETECT_NAME_MAX)
        break;
      if ((n = src_read (src, name, namesize, off + CPIO_HDR_LEN, error)) < 0)
        return RES_ERROR;
      if (n < namesize || name[namesize - 1] != 0 || strlen (name) != namesize - 1)
        break;
      /* The name ends at a multiple of 4 from the header, the data from
       * the archive's start (the kernel's and GNU cpio's reading). */
      guint64 data_off = off + ((CPIO_HDR_LEN + namesize + 3) & ~3u);
      guint64 data_end = data_off + v[6];
      guint64 end = align4 (pos, data_end);
      gboolean trailer = strcmp (name, "TRAILER!!!") == 0;
      if (!trailer && c->entries->len >= c->lim.entries_max)
        {
          c->limited = TRUE;
          break;
        }
      gboolean hash = (c->flags & DF_DETECT_HASH_ENTRIES) && S_ISREG (v[1]) && !trailer;
      DfSha256 sha = { 0 };
      if (hash)
        df_sha256_init (&sha);
      gboolean ok;
      gboolean io = pass_bytes (c, src, data_off, data_end, hash ? &sha : NULL, &ok, error)
                    && (!ok || pass_bytes (c, src, data_end, end, NULL, &ok, error));
      DfCpioEntry e = { 0 };
      if (hash)
        {
          df_sha256_final (&sha, e.sha256);
          df_sha256_clear (&sha);
          e.has_sha256 = TRUE;
        }
      if (!io)
        return RES_ERROR;
      if (!ok)
        break;
      guint64 hdr = off;
      off = end;
      if (trailer)
        {
          seg_at (c, seg_index)->flags &= ~DF_SEGMENT_NO_TRAILER;
          break;
        }
      e.name = g_string_chunk_insert_len (c->names, name, namesize - 1);
      e.segment = seg_index;
      e.ino = v[0], e.mode = v[1], e.uid = v[2], e.gid = v[3], e.nlink = v[4], e.mtime = v[5];
      e.filesize = v[6], e.devmajor = v[7], e.devminor = v[8], e.rdevmajor = v[9], e.rdevminor = v[10];
      e.check = v[12];
      e.header_offset = hdr;
      e.data_offset = data_off;
      g_array_append_val (c->entries, e);
    }
  DfSegment *s = seg_at (c, seg_index);
  if (off == pos)
    {
      rollback (c, seg_index, first);
      return c->limited ? RES_LIMIT : RES_NO;
    }
  s->length = off - pos;
  s->u.cpio.first_entry = first;
  s->u.cpio.n_entries = c->entries->len - first;
  *next = off;
  return RES_OK;
}

/* A run of zero bytes at @pos: its end in *@next (> @pos). */
static Result
zeros (Ctx *c, Src *src, guint64 pos, guint64 *next, GError **error)
{
  guint64 at = pos;
  for (;;)
    {
      gssize n = src_read (src, c->scratch, STEP, at, error);
      if (n < 0)
        return RES_ERROR;
      gssize i = 0;
      guint64 word;
      while (i + 8 <= n && (memcpy (&word, c->scratch + i, 8), word == 0))
        i += 8;
      while (i < n && c->scratch[i] == 0)
        i++;
      at += i;
      if (i < n || n == 0)
        break;
    }
  *next = at;
  return RES_OK;
}

/* An x86 bzImage (boot protocol 2.08 or later) filling the file @src:
 * RES_NO when @p (the first @n bytes) is not one. */
static Result
bzimage (Ctx *c, Src *src, const guint8 *p, gsize n, GError **error)
{
  if (n < 0x250 || le16 (p + 0x1fe) != 0xaa55 || memcmp (p + 0x202, "HdrS", 4) != 0 || le16 (p + 0x206) < 0x0208)
    return RES_NO;
  guint setup_sects = p[0x1f1] ? p[0x1f1] : 4;
  guint64 pm = (guint64)(setup_sects + 1) * 512;
  guint32 poff = le32 (p + 0x248), plen = le32 (p + 0x24c);
  guint64 pstart = pm + poff, pend = pstart + plen, size = src->size;
  if (plen == 0 || pend > size)
    return RES_NO;
  guint si = seg_add (c, DF_SEGMENT_BZIMAGE_SETUP, 0, -1, 0, pm, 0);
  DfSegment *s = seg_at (c, si);
  s->u.bzimage.version = le16 (p + 0x206);
  s->u.bzimage.setup_sects = p[0x1f1];
  s->u.bzimage.payload_offset = poff;
  s->u.bzimage.payload_length = plen;
  if (pstart > pm)
    seg_add (c, DF_SEGMENT_PLAIN, 0, -1, pm, pstart - pm, 0);
  guint8 probe[16];
  gssize m = src_read (src, probe, sizeof probe, pstart, error);
  if (m < 0)
    return RES_ERROR;
  guint nseg = c->segs->len, nent = c->entries->len;
  guint64 fend = 0;
  Result r = try_frame (c, src, pstart, probe, m, 0, -1, TRUE, &fend, error);
  if (r == RES_ERROR)
    return r;
  if (r == RES_OK && fend > pend)
    {
      rollback (c, nseg, nent);
      r = RES_NO;
    }
  if (r == RES_OK)
    {
      seg_at (c, nseg)->flags |= DF_SEGMENT_BZIMAGE_PAYLOAD;
      if (fend < pend) /* the kernel appends the decompressed size */
        seg_add (c, DF_SEGMENT_PLAIN, 0, -1, fend, pend - fend, 0);
    }
  else
    seg_add (c, DF_SEGMENT_PLAIN, 0, -1, pstart, plen,
             DF_SEGMENT_BZIMAGE_PAYLOAD | (c->limited ? DF_SEGMENT_LIMIT : 0));
  if (pend < size)
    seg_add (c, DF_SEGMENT_PLAIN, 0, -1, pend, size - pend, 0);
  return RES_OK;
}

/* Segments of @src from its start to its end, at @depth under @parent.
 * FALSE only on an I/O error or cancellation. */
static gboolean
detect_stream (Ctx *c, Src *src, guint depth, gint parent, GError **error)
{
  guint8 probe[PROBE_LEN];
  guint64 pos = 0;
  for (;;)
    {
      if (cancelled (c, error))
        return FALSE;
      gssize n = src_read (src, probe, sizeof probe, pos, error);
      if (n < 0)
        return FALSE;
      if (n == 0)
        return TRUE;
      if (c->limited)
        {
          seg_add_plain_to_end (c, src, depth, parent, pos);
          return TRUE;
        }
      guint64 next = pos;
      Result r;
      if (depth == 0 && pos == 0 && (r = bzimage (c, src, probe, n, error)) != RES_NO)
        return r != RES_ERROR;
      if (n >= 6 && memcmp (probe, "07070", 5) == 0)
        r = cpio (c, src, pos, depth, parent, &next, error);
      else if (n >= 8 && (le32 (probe) & 0xfffffff0) == ZSTD_MAGIC_SKIPPABLE_START)
        {
          guint64 end = pos + 8 + le32 (probe + 4);
          gboolean ok;
          r = RES_NO;
          if (!pass_bytes (c, src, end - 1, end, NULL, &ok, error))
            r = RES_ERROR;
          else if (ok && seg_room (c))
            {
              guint i = seg_add (c, DF_SEGMENT_ZSTD_SKIPPABLE, depth, parent, pos, end - pos, 0);
              seg_at (c, i)->u.zstd.magic = le32 (probe);
              next = end;
              r = RES_OK;
            }
          else if (c->limited)
            r = RES_LIMIT;
        }
      else if (probe[0] == 0)
        {
          r = seg_room (c) ? zeros (c, src, pos, &next, error) : RES_LIMIT;
          if (r == RES_OK)
            seg_add (c, DF_SEGMENT_ZERO, depth, parent, pos, next - pos, 0);
        }
      else
        r = try_frame (c, src, pos, probe, n, depth, parent, FALSE, &next, error);
      switch (r)
        {
        case RES_ERROR:
          return FALSE;
        case RES_OK:
          g_assert (next > pos);
          pos = next;
          break;
        case RES_LIMIT:
          c->limited = TRUE;
          break; /* the next round adds the plain run */
        case RES_NO:
          seg_add_plain_to_end (c, src, depth, parent, pos);
          return TRUE;
        }
    }
}

/* --- Entry points -------------------------------------------------------- */

void
df_detect_limits_default (DfDetectLimits *limits)
{
  *limits = (DfDetectLimits){
    .segments_max = DF_DETECT_SEGMENTS_MAX,
    .entries_max = DF_DETECT_ENTRIES_MAX,
    .depth_max = DF_DETECT_DEPTH_MAX,
    .decompressed_max = DF_DETECT_DECOMPRESSED_MAX,
    .decoder_mem = DF_DETECT_DECODER_MEM_MAX,
  };
}

DfDetect *
df_detect_read_at (DfReadAtFunc read_at, gpointer user_data, guint64 size, const DfDetectLimits *limits,
                   DfDetectFlags flags, GCancellable *cancellable, GError **error)
{
  Ctx c = { .flags = flags, .cancellable = cancellable };
  if (limits)
    c.lim = *limits;
  else
    df_detect_limits_default (&c.lim);
  c.lim.segments_max = MAX (c.lim.segments_max, 1);
  c.lim.depth_max = MIN (c.lim.depth_max, DF_DETECT_DEPTH_MAX);
  c.lim.decoder_mem = MAX (c.lim.decoder_mem, 64 * 1024);
  c.segs = g_array_new (FALSE, TRUE, sizeof (DfSegment));
  c.entries = g_array_new (FALSE, TRUE, sizeof (DfCpioEntry));
  c.names = g_string_chunk_new (4096);
  c.scratch = g_malloc (STEP);
  FileSrc file = { .base = { .read = file_read, .size = size }, .fn = read_at, .user = user_data };
  gboolean ok = detect_stream (&c, &file.base, 0, -1, error);
  g_free (c.scratch);
  for (guint i = 0; i <= DF_DETECT_DEPTH_MAX; i++)
    frame_free (c.pool[i]);
  if (!ok)
    {
      g_array_unref (c.segs);
      g_array_unref (c.entries);
      g_string_chunk_free (c.names);
      return NULL;
    }
  DfDetect *d = g_new0 (DfDetect, 1);
  d->size = size;
  d->n_segments = c.segs->len;
  d->segments = (DfSegment *)g_array_free (c.segs, FALSE);
  d->n_entries = c.entries->len;
  d->entries = (DfCpioEntry *)g_array_free (c.entries, FALSE);
  d->names = c.names;
  d->decompressed_total = c.produced;
  d->limited = c.limited;
  return d;
}

static gssize
fd_read_at (gpointer user_data, void *buf, gsize len, guint64 offset, GError **error)
{
  int fd = GPOINTER_TO_INT (user_data);
  for (;;)
    {
      gssize n = pread (fd, buf, len, offset);
      if (n >= 0)
        return n;
      if (errno != EINTR)
        return df_throw_errno (error, errno, "detect: read at %" G_GUINT64_FORMAT, offset), -1;
    }
}

DfDetect *
df_detect_fd (int fd, guint64 size, const DfDetectLimits *limits, DfDetectFlags flags, GCancellable *cancellable,
              GError **error)
{
  return df_detect_read_at (fd_read_at, GINT_TO_POINTER (fd), size, limits, flags, cancellable, error);
}

void
df_detect_free (DfDetect *d)
{
  if (d == NULL)
    return;
  g_free (d->segments);
  g_free (d->entries);
  if (d->names)
    g_string_chunk_free (d->names);
  g_free (d);
}

const char *
df_segment_kind_name (DfSegmentKind kind)
{
  static const char *const names[DF_SEGMENT_KIND_COUNT] = {
    [DF_SEGMENT_PLAIN] = "plain", [DF_SEGMENT_ZERO] = "zero",
    [DF_SEGMENT_GZIP] = "gzip",   [DF_SEGMENT_ZLIB] = "zlib",
    [DF_SEGMENT_ZSTD] = "zstd",   [DF_SEGMENT_ZSTD_SKIPPABLE] = "zstd-skippable",
    [DF_SEGMENT_XZ] = "xz",       [DF_SEGMENT_LZMA] = "lzma",
    [DF_SEGMENT_CPIO] = "cpio",   [DF_SEGMENT_BZIMAGE_SETUP] = "bzimage-setup",
  };
  return (guint)kind < DF_SEGMENT_KIND_COUNT ? names[kind] : "?";
}

void
df_detect_summarize (const DfDetect *d, DfDetectSummary *out)
{
  memset (out, 0, sizeof *out);
  for (guint i = 0; i < d->n_segments; i++)
    {
      const DfSegment *s = &d->segments[i];
      out->count[s->kind]++;
      if (s->depth == 0)
        out->file_bytes[s->kind] += s->length;
      out->decompressed_bytes[s->kind] += s->decompressed_size;
      out->max_depth = MAX (out->max_depth, s->depth);
    }
  out->n_entries = d->n_entries;
  for (guint i = 0; i < d->n_entries; i++)
    out->entry_bytes += d->entries[i].filesize;
  out->limited = d->limited;
}

void
df_detect_summary_add (DfDetectSummary *total, const DfDetectSummary *s)
{
  for (guint k = 0; k < DF_SEGMENT_KIND_COUNT; k++)
    {
      total->count[k] += s->count[k];
      total->file_bytes[k] += s->file_bytes[k];
      total->decompressed_bytes[k] += s->decompressed_bytes[k];
    }
  total->n_entries += s->n_entries;
  total->entry_bytes += s->entry_bytes;
  total->max_depth = MAX (total->max_depth, s->max_depth);
  total->limited |= s->limited;
}

char *
df_detect_summary_to_string (const DfDetectSummary *s)
{
  GString *out = g_string_new (NULL);
  for (guint k = 0; k < DF_SEGMENT_KIND_COUNT; k++)
    {
      if (s->count[k] == 0)
        continue;
      g_autofree char *fb = s->file_bytes[k] ? g_format_size (s->file_bytes[k]) : g_strdup ("in frames");
      g_string_append_printf (out, "%s%s %u (%s", out->len ? ", " : "", df_segment_kind_name (k), s->count[k], fb);
      if (s->decompressed_bytes[k])
        {
          g_autofree char *db = g_format_size (s->decompressed_bytes[k]);
          g_string_append_printf (out, " -> %s", db);
        }
      if (k == DF_SEGMENT_CPIO)
        g_string_append_printf (out, ", %u entries", s->n_entries);
      g_string_append_c (out, ')');
    }
  if (s->limited)
    g_string_append (out, ", limit reached");
  /* g_format_size() puts a no-break space before the unit. */
  g_autofree char *text = g_string_free (out, FALSE);
  g_auto (GStrv) parts = g_strsplit (text, "\u00a0", -1);
  return g_strjoinv (" ", parts);
}
