/* Rebuild (device) of raw deflate streams from their content and the
 * reconstruction data df-deflate.c's analyze made (layout in
 * df-deflate-private.h). */
#include "df-deflate-private.h"

/* Content rebuild keeps ahead of the next token: a stored piece, a lazy
 * search one position on, and its longest match. */
#define STORED_PIECE 2048u
#define AHEAD (STORED_PIECE + DF_DEFLATE_MAX_MATCH + 8)
#define WINDOW_BUF (2 * DF_DEFLATE_WSIZE + AHEAD)

/* --- Rebuild (device) ------------------------------------------------------ */

#define INVALID DF_ERROR_INVALID_DELTA

typedef struct
{
  ZSTD_DCtx *dctx;
  ZSTD_inBuffer in;
  guint8 buf[65536];
  gsize len, at;
  guint64 off0; /* body bytes before @buf */
  gboolean frame_done;
  gboolean raw; /* the body is stored as it is: @in without zstd */
} BodyReader;

static gboolean
body_fill (BodyReader *br, GError **error)
{
  br->off0 += br->len;
  br->len = br->at = 0;
  if (br->raw)
    {
      br->len = MIN (sizeof br->buf, br->in.size - br->in.pos);
      if (br->len == 0)
        return dfi_throw (error, INVALID, "deflate: reconstruction data ends early");
      memcpy (br->buf, (const guint8 *)br->in.src + br->in.pos, br->len);
      br->in.pos += br->len;
      return TRUE;
    }
  while (br->len == 0)
    {
      if (br->frame_done)
        return dfi_throw (error, INVALID, "deflate: reconstruction data ends early");
      ZSTD_outBuffer out = { br->buf, sizeof br->buf, 0 };
      gsize before = br->in.pos;
      gsize r = ZSTD_decompressStream (br->dctx, &out, &br->in);
      if (ZSTD_isError (r))
        return dfi_throw (error, INVALID, "deflate: reconstruction data: zstd: %s", ZSTD_getErrorName (r));
      br->len = out.pos;
      if (r == 0)
        br->frame_done = TRUE;
      else if (out.pos == 0 && br->in.pos == before && br->in.pos == br->in.size)
        return dfi_throw (error, INVALID, "deflate: reconstruction data is truncated");
    }
  return TRUE;
}

static inline gboolean
body_u8 (BodyReader *br, guint8 *v, GError **error)
{
  if (br->at == br->len && !body_fill (br, error))
    return FALSE;
  *v = br->buf[br->at++];
  return TRUE;
}

static gboolean
body_varint (BodyReader *br, guint64 *v, GError **error)
{
  guint64 x = 0;
  for (guint i = 0; i < 10; i++)
    {
      guint8 b;
      if (!body_u8 (br, &b, error))
        return FALSE;
      if (i == 9 && b > 1)
        break;
      x |= (guint64)(b & 0x7f) << (7 * i);
      if (!(b & 0x80))
        {
          *v = x;
          return TRUE;
        }
    }
  return dfi_throw (error, INVALID, "deflate: reconstruction data: bad varint");
}

static inline guint64
body_offset (const BodyReader *br)
{
  return br->off0 + br->at;
}

/* Moves on to body offset @to (not before the current one). */
static gboolean
body_skip (BodyReader *br, guint64 to, GError **error)
{
  while (body_offset (br) < to)
    {
      if (br->at == br->len && !body_fill (br, error))
        return FALSE;
      br->at += (gsize)MIN ((guint64)(br->len - br->at), to - body_offset (br));
    }
  return TRUE;
}

/* The body has nothing after its last field. */
static gboolean
body_end (BodyReader *br, GError **error)
{
  if (br->at < br->len)
    return dfi_throw (error, INVALID, "deflate: reconstruction data: bytes after the final block");
  while (!br->raw && !br->frame_done)
    {
      ZSTD_outBuffer out = { br->buf, sizeof br->buf, 0 };
      gsize before = br->in.pos;
      gsize r = ZSTD_decompressStream (br->dctx, &out, &br->in);
      if (ZSTD_isError (r))
        return dfi_throw (error, INVALID, "deflate: reconstruction data: zstd: %s", ZSTD_getErrorName (r));
      if (out.pos)
        return dfi_throw (error, INVALID, "deflate: reconstruction data: bytes after the final block");
      if (r == 0)
        br->frame_done = TRUE;
      else if (br->in.pos == before)
        return dfi_throw (error, INVALID, "deflate: reconstruction data is truncated");
    }
  if (br->in.pos != br->in.size)
    return dfi_throw (error, INVALID, "deflate: reconstruction data: bytes after its body");
  return TRUE;
}

/* The content window: [start, end) of the content in buf. */
typedef struct
{
  DfDeflateReadFunc read;
  DfDeflateSkipFunc skip; /* NULL: reads what it skips */
  gpointer read_data;
  guint8 *buf;
  guint64 start, end, total;
} Window;

/* Makes the window start at @start (not before its start): skips the
 * content up to there when the window does not reach it. */
static gboolean
window_seek (Window *w, guint64 start, GError **error)
{
  if (start < w->start)
    return dfi_throw (error, DF_ERROR_FAILED, "deflate: a lane cannot go back");
  if (start <= w->end)
    {
      memmove (w->buf, w->buf + (start - w->start), w->end - start);
      w->start = start;
      return TRUE;
    }
  guint64 n = start - w->end;
  if (w->skip != NULL)
    {
      if (!w->skip (w->read_data, n, error))
        return FALSE;
    }
  else
    while (n > 0)
      {
        gssize got = w->read (w->read_data, w->buf, (gsize)MIN (n, (guint64)WINDOW_BUF), error);
        if (got < 0)
          return FALSE;
        if (got == 0)
          return dfi_throw (error, DF_ERROR_CORRUPT, "deflate: content shorter than the reconstruction data declares");
        n -= MIN (n, (guint64)got);
      }
  w->start = w->end = start;
  return TRUE;
}

/* Makes the window hold [pos - 32768, min (pos + AHEAD, total)). */
static gboolean
window_ensure (Window *w, guint64 pos, GError **error)
{
  guint64 need = MIN (w->total, pos + AHEAD);
  if (w->end >= need)
    return TRUE;
  if (need - w->start > WINDOW_BUF)
    {
      guint64 keep = pos > DF_DEFLATE_WSIZE ? pos - DF_DEFLATE_WSIZE : 0;
      memmove (w->buf, w->buf + (keep - w->start), w->end - keep);
      w->start = keep;
    }
  while (w->end < need)
    {
      gsize room = (gsize)MIN ((guint64)WINDOW_BUF - (w->end - w->start), w->total - w->end);
      gssize n = w->read (w->read_data, w->buf + (w->end - w->start), room, error);
      if (n < 0)
        return FALSE;
      if (n == 0)
        return dfi_throw (
            error, DF_ERROR_CORRUPT,
            "deflate: content shorter than the %" G_GUINT64_FORMAT " bytes the reconstruction data declares", w->total);
      if ((gsize)n > room)
        return dfi_throw (error, DF_ERROR_FAILED, "deflate: content reader returned too much");
      w->end += (guint64)n;
    }
  return TRUE;
}

/* Reconstruction data, parsed (its fixed fields and split table). */
typedef struct
{
  DfDeflateModelParams mp;
  gboolean raw;
  guint64 total, stream_len;
  const guint8 *body; /* the body as stored */
  gsize body_len;
  DfDeflateSplit *splits;
  guint n_splits;
} Recon;

typedef struct
{
  BodyReader br;
  Window win;
  DfBitWriter bw;
  guint64 byte_base; /* stream bytes before the first @bw takes */
  DfDeflateModel model;
  DfHuffEncoder lit, dist;
  DfDeflateHeader hdr;
  guint32 *toks; /* a block whose header is predicted, until its end */
  guint64 ntoks;
  gboolean defer;
  guint8 winbuf[WINDOW_BUF];
} Rebuild;

static void
rebuild_free (Rebuild *rb)
{
  ZSTD_freeDCtx (rb->br.dctx);
  g_free (rb->toks);
  g_free (rb);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Rebuild, rebuild_free)

static gboolean
read_header (Rebuild *rb, GError **error)
{
  guint64 nbits;
  if (!body_varint (&rb->br, &nbits, error))
    return FALSE;
  /* 14 + 19 × 3 + 316 × (7 + 7) bits at most. */
  if (nbits > 14 + 19 * 3 + 316 * 14)
    return dfi_throw (error, INVALID, "deflate: reconstruction data: header too long");
  guint8 bytes[(14 + 19 * 3 + 316 * 14 + 7) / 8];
  guint nb = (guint)((nbits + 7) / 8);
  for (guint i = 0; i < nb; i++)
    if (!body_u8 (&rb->br, &bytes[i], error))
      return FALSE;
  DfBitReader r;
  dfi_bit_reader_init (&r, bytes, nb);
  if (!dfi_deflate_header_read (&r, &rb->hdr, INVALID, error))
    return FALSE;
  if (dfi_bit_reader_tell (&r) != nbits)
    return dfi_throw (error, INVALID, "deflate: reconstruction data: header length differs");
  return dfi_deflate_header_write (&rb->bw, &rb->hdr, error);
}

/* The correction for the token at the model's position. */
static gboolean
read_correction (Rebuild *rb, guint32 *tok, GError **error)
{
  DfDeflateModel *m = &rb->model;
  guint64 pos = m->pos, left = m->total - pos;
  guint8 code, l3;
  if (!body_u8 (&rb->br, &code, error))
    return FALSE;
  if (code == 0)
    {
      *tok = *(m->buf + (pos - m->buf_start));
      return TRUE;
    }
  if (code > 2)
    return dfi_throw (error, INVALID, "deflate: reconstruction data: bad correction");
  guint64 v;
  if (!body_u8 (&rb->br, &l3, error) || !body_varint (&rb->br, &v, error))
    return FALSE;
  guint len = l3 + 3u;
  if (len > left)
    return dfi_throw (error, DF_ERROR_CORRUPT, "deflate: a match runs past the end of the content");
  guint64 d;
  if (code == 1)
    {
      d = dfi_deflate_model_unrank (m, len, v);
      if (d == 0)
        return dfi_throw (error, DF_ERROR_CORRUPT, "deflate: no match of that rank in the content");
    }
  else
    {
      d = v + 1;
      if (d > DF_DEFLATE_WSIZE || d > pos)
        return dfi_throw (error, INVALID, "deflate: reconstruction data: distance out of range");
      const guint8 *a = m->buf + (pos - d - m->buf_start), *b = m->buf + (pos - m->buf_start);
      for (guint i = 0; i < len; i++)
        if (a[i] != b[i])
          return dfi_throw (error, DF_ERROR_CORRUPT, "deflate: a match the content does not hold");
    }
  *tok = dfi_deflate_tok_match (len, (guint)d);
  return TRUE;
}

/* One token: the model's prediction, or the correction that follows. */
static gboolean
rebuild_step (Rebuild *rb, gboolean corrected, GError **error)
{
  DfDeflateModel *m = &rb->model;
  if (m->pos >= m->total)
    return dfi_throw (error, DF_ERROR_CORRUPT, "deflate: tokens past the end of the content");
  if (!window_ensure (&rb->win, m->pos, error))
    return FALSE;
  m->buf = rb->win.buf;
  m->buf_start = rb->win.start;
  guint32 tok = dfi_deflate_model_predict (m);
  if (corrected && !read_correction (rb, &tok, error))
    return FALSE;
  if (rb->defer)
    rb->toks[rb->ntoks++] = tok;
  else if (!dfi_deflate_token_write (&rb->bw, &rb->lit, &rb->dist, tok, error))
    return FALSE;
  dfi_deflate_model_advance (m, tok);
  return TRUE;
}

static gboolean
rebuild_tokens (Rebuild *rb, guint64 count, GError **error)
{
  guint64 left = count;
  for (;;)
    {
      guint64 run;
      if (!body_varint (&rb->br, &run, error))
        return FALSE;
      if (run > left)
        return dfi_throw (error, INVALID, "deflate: reconstruction data: run past the block's end");
      for (guint64 i = 0; i < run; i++)
        if (!rebuild_step (rb, FALSE, error))
          return FALSE;
      left -= run;
      if (left == 0)
        return TRUE;
      if (!rebuild_step (rb, TRUE, error))
        return FALSE;
      left--;
    }
}

static gboolean
recon_varint (const guint8 *recon, gsize recon_len, gsize *at, guint64 *v)
{
  guint64 x = 0;
  for (guint i = 0; i < 10 && *at < recon_len; i++)
    {
      guint8 b = recon[(*at)++];
      if (i == 9 && b > 1)
        return FALSE;
      x |= (guint64)(b & 0x7f) << (7 * i);
      if (!(b & 0x80))
        {
          *v = x;
          return TRUE;
        }
    }
  return FALSE;
}

/* The split table at @at (layout in df-deflate-private.h) into rc->splits:
 * increasing, each segment within DF_DEFLATE_SEGMENT_MIN_CONTENT and
 * DF_DEFLATE_SEGMENT_MAX; the model states are checked at a restart. */
static gboolean
read_splits (const guint8 *recon, gsize recon_len, gsize *at, Recon *rc, GError **error)
{
  guint64 n;
  if (!recon_varint (recon, recon_len, at, &n) || n == 0 || n > DF_DEFLATE_SPLITS_MAX)
    return dfi_throw (error, INVALID, "deflate: reconstruction data: bad split table");
  rc->splits = g_new0 (DfDeflateSplit, n);
  rc->n_splits = (guint)n;
  guint64 content = 0, bit = 0, body = 0;
  for (guint i = 0; i < n; i++)
    {
      DfDeflateSplit *sp = &rc->splits[i];
      guint64 dc, db, dr, cache = 0, fr, wo, wl, fl;
      if (!recon_varint (recon, recon_len, at, &dc) || !recon_varint (recon, recon_len, at, &db)
          || !recon_varint (recon, recon_len, at, &dr) || *at >= recon_len)
        return dfi_throw (error, INVALID, "deflate: reconstruction data: bad split table");
      guint8 st = recon[(*at)++];
      if (st > 3 || ((st & 1) && !recon_varint (recon, recon_len, at, &cache))
          || !recon_varint (recon, recon_len, at, &fr) || !recon_varint (recon, recon_len, at, &wo)
          || !recon_varint (recon, recon_len, at, &wl) || !recon_varint (recon, recon_len, at, &fl))
        return dfi_throw (error, INVALID, "deflate: reconstruction data: bad split table");
      /* Bounded before they are added: no sum wraps. */
      if (dc < DF_DEFLATE_SEGMENT_MIN_CONTENT || dc > rc->total || db == 0 || db > rc->stream_len * 8 || dr == 0
          || dr > G_MAXUINT32 || cache > G_MAXUINT32)
        return dfi_throw (error, INVALID, "deflate: reconstruction data: bad split %u", i);
      guint64 prev_bit = bit;
      content += dc, bit += db, body += dr;
      if (content > rc->total || rc->total - content < DF_DEFLATE_SEGMENT_MIN_CONTENT || bit >= rc->stream_len * 8
          || bit / 8 - prev_bit / 8 + 1 > DF_DEFLATE_SEGMENT_MAX || fr > content + 2 || fl > content)
        return dfi_throw (error, INVALID, "deflate: reconstruction data: bad split %u", i);
      *sp = (DfDeflateSplit){ .content = content,
                              .bit = bit,
                              .body = body,
                              .st = { .frontier = content + 2 - fr,
                                      .win_offset = wo,
                                      .win_loaded = wl,
                                      .floor = content - fl,
                                      .cache = (guint32)cache,
                                      .have_cache = (st & 1) != 0,
                                      .win_eof = (st & 2) != 0 } };
    }
  if (rc->stream_len - bit / 8 + 1 > DF_DEFLATE_SEGMENT_MAX)
    return dfi_throw (error, INVALID, "deflate: reconstruction data: the last split's segment is too long");
  return TRUE;
}

static void
recon_clear (Recon *rc)
{
  g_clear_pointer (&rc->splits, g_free);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Recon, recon_clear)

/* The fixed fields of reconstruction data (layout in
 * df-deflate-private.h) and its split table, checked against @limits (NULL:
 * the defaults): the model's parameters, whether the body is stored raw,
 * the content and stream lengths, the body. DF_ERROR_INVALID_DELTA for
 * anything out of range. */
static gboolean
read_recon (const guint8 *recon, gsize recon_len, const DfDeflateLimits *limits, Recon *rc, GError **error)
{
  DfDeflateLimits def;
  if (limits == NULL)
    {
      dfi_deflate_limits_init (&def);
      limits = &def;
    }
  DfDeflateModelParams *mp = &rc->mp;
  if (recon_len > limits->max_recon)
    return dfi_throw (error, INVALID, "deflate: reconstruction data over the limit");
  if (recon_len < DF_DEFLATE_RECON_FIXED_LEN || memcmp (recon, dfi_deflate_recon_magic, 4) != 0)
    return dfi_throw (error, INVALID, "deflate: not deflate reconstruction data");
  gsize at = DF_DEFLATE_RECON_FIXED_LEN;
  if (recon[4] == DF_DEFLATE_RECON_EXPLICIT)
    {
      if (recon_len < at + 9)
        return dfi_throw (error, INVALID, "deflate: reconstruction data: bad header");
      const guint8 *e = recon + at;
      *mp = (DfDeflateModelParams){ e[0], 0, e[1] | e[2] << 8, e[3] | e[4] << 8, e[5] | e[6] << 8, e[7] | e[8] << 8 };
      at += 9;
    }
  else if (recon[4] < dfi_deflate_n_models)
    *mp = dfi_deflate_models[recon[4]];
  else
    return dfi_throw (error, INVALID, "deflate: reconstruction data: unknown model");
  mp->wbits = recon[6] >> 4;
  mp->hbits = (recon[6] & 15) + 8;
  rc->raw = (recon[5] & DF_DEFLATE_RECON_RAW) != 0;
  mp->flags = recon[5] & ~(DF_DEFLATE_RECON_RAW | DF_DEFLATE_RECON_SPLITS);
  if (!dfi_deflate_model_params_ok (mp))
    return dfi_throw (error, INVALID, "deflate: reconstruction data: unknown model");
  if (!recon_varint (recon, recon_len, &at, &rc->total) || !recon_varint (recon, recon_len, &at, &rc->stream_len))
    return dfi_throw (error, INVALID, "deflate: reconstruction data: bad header");
  if (rc->total > limits->max_output || rc->stream_len > limits->max_input)
    return dfi_throw (error, INVALID, "deflate: reconstruction data: lengths over the limits");
  if ((recon[5] & DF_DEFLATE_RECON_SPLITS) && !read_splits (recon, recon_len, &at, rc, error))
    return FALSE;
  rc->body = recon + at;
  rc->body_len = recon_len - at;
  return TRUE;
}

/* A stored block (its 3 header bits written): its length and alignment
 * bits from the body, its bytes from the content. */
static gboolean
rebuild_stored (Rebuild *rb, guint8 head, GError **error)
{
  DfDeflateModel *m = &rb->model;
  guint64 slen;
  guint8 pad = 0;
  if (!body_varint (&rb->br, &slen, error) || ((head & 8) && !body_u8 (&rb->br, &pad, error)))
    return FALSE;
  guint nb = (8 - dfi_bit_writer_pending (&rb->bw)) % 8;
  if (slen > 0xffff || pad >> nb)
    return dfi_throw (error, INVALID, "deflate: reconstruction data: bad stored block");
  if (slen > m->total - m->pos)
    return dfi_throw (error, DF_ERROR_CORRUPT, "deflate: stored block past the end of the content");
  if (!dfi_bit_writer_put (&rb->bw, pad, nb, error)
      || !dfi_bit_writer_put (&rb->bw, (guint32)slen | (guint32)(~slen & 0xffff) << 16, 32, error))
    return FALSE;
  /* Even an empty block ends the model's lazy look-ahead, as in
   * analyze (a flush does so in zlib). */
  dfi_deflate_model_skip (m, 0);
  while (slen > 0)
    {
      guint piece = (guint)MIN (slen, (guint64)STORED_PIECE);
      if (!window_ensure (&rb->win, m->pos, error))
        return FALSE;
      m->buf = rb->win.buf;
      m->buf_start = rb->win.start;
      const guint8 *src = m->buf + (m->pos - m->buf_start);
      for (guint i = 0; i < piece; i++)
        if (!dfi_bit_writer_put (&rb->bw, src[i], 8, error))
          return FALSE;
      dfi_deflate_model_skip (m, piece);
      slen -= piece;
    }
  return TRUE;
}

/* A fixed (@type 1) or dynamic (2) block (its 3 header bits written): its
 * Huffman header (predicted from its tokens, or verbatim from the body),
 * its tokens and its end-of-block code. *@fixed: whether the current codes
 * are the fixed ones (-1 before any). */
static gboolean
rebuild_coded (Rebuild *rb, guint8 head, guint type, gint *fixed, GError **error)
{
  DfDeflateModel *m = &rb->model;
  guint64 count;
  if (!body_varint (&rb->br, &count, error))
    return FALSE;
  if (count > m->total - m->pos)
    return dfi_throw (error, DF_ERROR_CORRUPT, "deflate: more tokens than content");
  rb->defer = type == 2 && !(head & 16);
  if (rb->defer)
    {
      /* The header follows from the tokens: build them first. */
      if (count > DF_DEFLATE_BLOCK_TOKENS_MAX)
        return dfi_throw (error, INVALID, "deflate: reconstruction data: block too long for its header");
      if (rb->toks == NULL)
        rb->toks = g_new (guint32, DF_DEFLATE_BLOCK_TOKENS_MAX);
      rb->ntoks = 0;
      if (!rebuild_tokens (rb, count, error))
        return FALSE;
      dfi_deflate_header_predict (rb->toks, rb->ntoks, &rb->hdr);
      if (!dfi_deflate_header_write (&rb->bw, &rb->hdr, error))
        return FALSE;
      dfi_huff_encoder_build (&rb->lit, rb->hdr.lit, 288);
      dfi_huff_encoder_build (&rb->dist, rb->hdr.dist, 32);
      *fixed = 0;
      rb->defer = FALSE;
      for (guint64 i = 0; i < rb->ntoks; i++)
        if (!dfi_deflate_token_write (&rb->bw, &rb->lit, &rb->dist, rb->toks[i], error))
          return FALSE;
    }
  else if (type == 2)
    {
      if (!read_header (rb, error))
        return FALSE;
      dfi_huff_encoder_build (&rb->lit, rb->hdr.lit, 288);
      dfi_huff_encoder_build (&rb->dist, rb->hdr.dist, 32);
      *fixed = 0;
    }
  else if (*fixed != 1)
    {
      guint8 fl[288], fd[32];
      dfi_deflate_fixed_lengths (fl, fd);
      dfi_huff_encoder_build (&rb->lit, fl, 288);
      dfi_huff_encoder_build (&rb->dist, fd, 30);
      *fixed = 1;
    }
  if (type == 1 || (head & 16))
    if (!rebuild_tokens (rb, count, error))
      return FALSE;
  return dfi_bit_writer_put (&rb->bw, rb->lit.code[256], rb->lit.len[256], error);
}

/* After the final block: the trailing bits, then checks that the body,
 * the content and the stream all end where declared, then the flush. */
static gboolean
rebuild_finish (Rebuild *rb, DfDeflateReadFunc read, gpointer read_data, guint64 stream_len, GError **error)
{
  guint8 trailing;
  if (!body_u8 (&rb->br, &trailing, error))
    return FALSE;
  guint nb = (8 - dfi_bit_writer_pending (&rb->bw)) % 8;
  if (trailing >> nb)
    return dfi_throw (error, INVALID, "deflate: reconstruction data: bad trailing bits");
  if (!dfi_bit_writer_put (&rb->bw, trailing, nb, error) || !body_end (&rb->br, error))
    return FALSE;
  if (rb->model.pos != rb->model.total)
    return dfi_throw (error, DF_ERROR_CORRUPT, "deflate: the stream ends before the content");
  if (rb->byte_base + rb->bw.total + rb->bw.len != stream_len)
    return dfi_throw (error, DF_ERROR_CORRUPT, "deflate: stream of a length other than declared");
  /* The content must end where declared. */
  guint8 extra;
  gssize n = read (read_data, &extra, 1, error);
  if (n < 0)
    return FALSE;
  if (n > 0)
    return dfi_throw (error, DF_ERROR_CORRUPT, "deflate: content longer than the reconstruction data declares");
  return dfi_bit_writer_flush_buf (&rb->bw, error);
}

static Rebuild *
rebuild_new (const Recon *rc, DfDeflateReadFunc read, DfDeflateSkipFunc skip, gpointer read_data,
             DfDeflateWriteFunc write, gpointer write_data, GError **error)
{
  g_autoptr (Rebuild) rb = g_new0 (Rebuild, 1);
  rb->br.raw = rc->raw;
  if (!rc->raw)
    {
      rb->br.dctx = ZSTD_createDCtx ();
      if (rb->br.dctx == NULL)
        return (dfi_throw (error, DF_ERROR_FAILED, "deflate: out of memory"), NULL);
      ZSTD_DCtx_setParameter (rb->br.dctx, ZSTD_d_windowLogMax, DF_DEFLATE_RECON_WINDOW_LOG);
    }
  rb->br.in = (ZSTD_inBuffer){ rc->body, rc->body_len, 0 };
  rb->win = (Window){ read, skip, read_data, rb->winbuf, 0, 0, rc->total };
  dfi_bit_writer_init (&rb->bw, write, write_data);
  dfi_deflate_model_init (&rb->model, &rc->mp, rc->total);
  return g_steal_pointer (&rb);
}

/* The stream bit the next block starts at. */
static inline guint64
rebuild_bit (const Rebuild *rb)
{
  return (rb->byte_base + rb->bw.total + rb->bw.len) * 8 + dfi_bit_writer_pending (&rb->bw);
}

/* Starts the model over at split @sp: the window holds the content from
 * 32 KiB before it. */
static gboolean
restart (Rebuild *rb, const Recon *rc, const DfDeflateSplit *sp, GError **error)
{
  DfDeflateModel *m = &rb->model;
  if (!window_ensure (&rb->win, sp->content, error))
    return FALSE;
  if (rb->win.start > (sp->content > DF_DEFLATE_WSIZE ? sp->content - DF_DEFLATE_WSIZE : 0))
    return dfi_throw (error, DF_ERROR_FAILED, "deflate: a restart without its window");
  dfi_deflate_model_init (m, &rc->mp, rc->total);
  if (!dfi_deflate_model_state_ok (m, sp->content, &sp->st))
    return dfi_throw (error, INVALID, "deflate: reconstruction data: a split's model state is out of range");
  m->buf = rb->win.buf;
  m->buf_start = rb->win.start;
  if (sp->st.have_cache && sp->st.cache != 0)
    {
      guint len = DF_DEFLATE_TOK_LEN (sp->st.cache), d = DF_DEFLATE_TOK_DIST (sp->st.cache);
      const guint8 *b = m->buf + (sp->content - m->buf_start);
      if (memcmp (b - d, b, len) != 0)
        return dfi_throw (error, DF_ERROR_CORRUPT, "deflate: a split's cached match the content does not hold");
    }
  dfi_deflate_model_restore (m, sp->content, &sp->st);
  return TRUE;
}

/* Segment @k: from split k - 1 (or the start) to split k (or the end),
 * the body, the window and the bit writer where it starts. */
static gboolean
run_segment (Rebuild *rb, const Recon *rc, guint k, GCancellable *cancellable, GError **error)
{
  const DfDeflateSplit *next = k < rc->n_splits ? &rc->splits[k] : NULL;
  if (k > 0 && !restart (rb, rc, &rc->splits[k - 1], error))
    return FALSE;
  gint fixed = -1; /* the current codes are the fixed ones */
  for (;;)
    {
      if (next && rebuild_bit (rb) >= next->bit)
        {
          if (rebuild_bit (rb) != next->bit || rb->model.pos != next->content || body_offset (&rb->br) != next->body)
            return dfi_throw (error, DF_ERROR_CORRUPT, "deflate: split %u is not where a block starts", k);
          return TRUE;
        }
      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        return FALSE;
      if (rb->byte_base + rb->bw.total + rb->bw.len > rc->stream_len)
        return dfi_throw (error, DF_ERROR_CORRUPT, "deflate: stream longer than declared");
      guint8 head;
      if (!body_u8 (&rb->br, &head, error))
        return FALSE;
      guint type = (head >> 1) & 3, final = head & 1;
      if (head & 32)
        dfi_deflate_model_forget (&rb->model);
      if (type == 3 || (head & 0xc0) || (type != 0 && (head & 8)) || (type != 2 && (head & 16)))
        return dfi_throw (error, INVALID, "deflate: reconstruction data: bad block head");
      if (final && next)
        return dfi_throw (error, DF_ERROR_CORRUPT, "deflate: the final block comes before split %u", k);
      if (!dfi_bit_writer_put (&rb->bw, final | type << 1, 3, error))
        return FALSE;
      if (type == 0 ? !rebuild_stored (rb, head, error) : !rebuild_coded (rb, head, type, &fixed, error))
        return FALSE;
      if (final)
        return rebuild_finish (rb, rb->win.read, rb->win.read_data, rc->stream_len, error);
    }
}

static gboolean
rebuild_direct (const Recon *rc, DfDeflateReadFunc read, DfDeflateSkipFunc skip, gpointer read_data,
                DfDeflateWriteFunc write, gpointer write_data, GCancellable *cancellable, GError **error)
{
  g_autoptr (Rebuild) rb = rebuild_new (rc, read, skip, read_data, write, write_data, error);
  if (rb == NULL)
    return FALSE;
  /* One lane takes every segment in turn, and starts over at each split
   * as a lane of its own would: what analyze checks. */
  for (guint k = 0; k <= rc->n_splits; k++)
    if (!run_segment (rb, rc, k, cancellable, error))
      return FALSE;
  return TRUE;
}

gboolean
dfi_deflate_rebuild (DfDeflateReadFunc read, gpointer read_data, const guint8 *recon, gsize recon_len,
                     DfDeflateWriteFunc write, gpointer write_data, const DfDeflateLimits *limits,
                     GCancellable *cancellable, GError **error)
{
  g_auto (Recon) rc = { 0 };
  if (!read_recon (recon, recon_len, limits, &rc, error))
    return FALSE;
  return rebuild_direct (&rc, read, NULL, read_data, write, write_data, cancellable, error);
}

/* --- Lanes ------------------------------------------------------------------ */

gboolean
dfi_deflate_recon_has_splits (const guint8 *recon, gsize recon_len)
{
  return recon_len >= DF_DEFLATE_RECON_FIXED_LEN && memcmp (recon, dfi_deflate_recon_magic, 4) == 0
         && (recon[5] & DF_DEFLATE_RECON_SPLITS);
}

/* What the lanes share: the segment each takes next, the one to be
 * written next, the bits of its first byte the one before left, the
 * first error. */
typedef struct
{
  const Recon *rc;
  const DfDeflateSource *src;
  DfDeflateWriteFunc write;
  gpointer write_data;
  GCancellable *cancellable;
  GMutex lock;
  GCond cond;
  guint next_take, next_emit;
  guint8 carry;
  GError *error;
} Lanes;

typedef struct
{
  Lanes *ls;
  gpointer reader;
  GByteArray *out; /* the segment's whole bytes */
} Lane;

static gboolean
lane_write (gpointer data, const guint8 *buf, gsize len, GError **error)
{
  Lane *l = data;
  if (len > DF_DEFLATE_SEGMENT_MAX - MIN (l->out->len, DF_DEFLATE_SEGMENT_MAX))
    return dfi_throw (error, DF_ERROR_CORRUPT, "deflate: a segment longer than its split table allows");
  g_byte_array_append (l->out, buf, (guint)len);
  return TRUE;
}

static void
lanes_fail (Lanes *ls, GError *e)
{
  g_mutex_lock (&ls->lock);
  if (ls->error == NULL)
    ls->error = e;
  else
    g_error_free (e);
  g_cond_broadcast (&ls->cond);
  g_mutex_unlock (&ls->lock);
}

/* Writes segment @k's bytes (the first sharing the bits of the one before
 * it) once every segment before it is written. */
static gboolean
lane_emit (Lane *l, guint k, guint8 partial, GError **error)
{
  Lanes *ls = l->ls;
  g_mutex_lock (&ls->lock);
  while (ls->error == NULL && ls->next_emit != k)
    g_cond_wait (&ls->cond, &ls->lock);
  gboolean stop = ls->error != NULL;
  g_mutex_unlock (&ls->lock);
  if (stop)
    return (g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_CANCELLED, "deflate: another lane failed"), FALSE);
  /* Our turn: the lanes after us wait for it, so the carry is ours. */
  if (l->out->len > 0)
    {
      l->out->data[0] |= ls->carry;
      if (!ls->write (ls->write_data, l->out->data, l->out->len, error))
        return FALSE;
      ls->carry = partial;
    }
  else
    ls->carry |= partial;
  g_mutex_lock (&ls->lock);
  ls->next_emit++;
  g_cond_broadcast (&ls->cond);
  g_mutex_unlock (&ls->lock);
  return TRUE;
}

/* One lane: takes the next segment until none is left, moves its body,
 * window and bit writer to its start, rebuilds it into its buffer and
 * writes it in its turn. */
static gboolean
lane_run (Lane *l, GError **error)
{
  Lanes *ls = l->ls;
  const Recon *rc = ls->rc;
  g_autoptr (Rebuild) rb = rebuild_new (rc, ls->src->read, ls->src->skip, l->reader, lane_write, l, error);
  if (rb == NULL)
    return FALSE;
  for (;;)
    {
      g_mutex_lock (&ls->lock);
      guint k = ls->next_take;
      gboolean stop = ls->error != NULL || k > rc->n_splits;
      if (!stop)
        ls->next_take++;
      g_mutex_unlock (&ls->lock);
      if (stop)
        return TRUE;
      guint64 bit0 = 0;
      if (k > 0)
        {
          const DfDeflateSplit *sp = &rc->splits[k - 1];
          bit0 = sp->bit;
          if (!body_skip (&rb->br, sp->body, error)
              || !window_seek (&rb->win, sp->content > DF_DEFLATE_WSIZE ? sp->content - DF_DEFLATE_WSIZE : 0, error))
            return FALSE;
        }
      g_byte_array_set_size (l->out, 0);
      dfi_bit_writer_init (&rb->bw, lane_write, l);
      rb->bw.n = (guint)(bit0 % 8);
      rb->byte_base = bit0 / 8;
      if (!run_segment (rb, rc, k, ls->cancellable, error) || !dfi_bit_writer_flush_buf (&rb->bw, error))
        return FALSE;
      if (!lane_emit (l, k, (guint8)rb->bw.acc, error))
        return FALSE;
    }
}

static gpointer
lane_thread (gpointer data)
{
  Lane *l = data;
  GError *e = NULL;
  if (!lane_run (l, &e))
    lanes_fail (l->ls, e);
  return NULL;
}

gboolean
dfi_deflate_rebuild_lanes (const DfDeflateSource *src, gpointer reader, guint lanes, const guint8 *recon,
                           gsize recon_len, DfDeflateWriteFunc write, gpointer write_data,
                           const DfDeflateLimits *limits, GCancellable *cancellable, GError **error)
{
  g_auto (Recon) rc = { 0 };
  if (!read_recon (recon, recon_len, limits, &rc, error))
    return FALSE;
  lanes = MIN (MIN (lanes, DF_DEFLATE_LANES), rc.n_splits + 1);
  if (lanes <= 1)
    return rebuild_direct (&rc, src->read, src->skip, reader, write, write_data, cancellable, error);

  Lanes ls = { .rc = &rc, .src = src, .write = write, .write_data = write_data, .cancellable = cancellable };
  g_mutex_init (&ls.lock);
  g_cond_init (&ls.cond);
  Lane lane[DF_DEFLATE_LANES];
  GThread *threads[DF_DEFLATE_LANES] = { NULL };
  /* Every reader is taken where the caller's is, before any reads. */
  for (guint i = 0; i < lanes; i++)
    lane[i] = (Lane){ &ls, i ? src->clone (reader) : reader, g_byte_array_new () };
  for (guint i = 1; i < lanes; i++)
    threads[i] = g_thread_try_new ("deflate-lane", lane_thread, &lane[i], NULL);
  lane_thread (&lane[0]);
  for (guint i = 1; i < lanes; i++)
    if (threads[i])
      g_thread_join (threads[i]);
  for (guint i = 0; i < lanes; i++)
    {
      if (i)
        src->free (lane[i].reader);
      g_byte_array_unref (lane[i].out);
    }
  g_mutex_clear (&ls.lock);
  g_cond_clear (&ls.cond);
  if (ls.error)
    {
      g_propagate_error (error, ls.error);
      return FALSE;
    }
  if (ls.next_emit != rc.n_splits + 1)
    return dfi_throw (error, DF_ERROR_FAILED, "deflate: lanes ended early");
  return TRUE;
}

typedef struct
{
  const guint8 *data;
  gsize len, at;
} MemReader;

static gssize
mem_read (gpointer user_data, guint8 *buf, gsize len, GError **error)
{
  MemReader *r = user_data;
  gsize n = MIN (len, r->len - r->at);
  if (n == 0) /* an empty input may have no buffer at all */
    return 0;
  memcpy (buf, r->data + r->at, n);
  r->at += n;
  return (gssize)n;
}

static gboolean
mem_write (gpointer user_data, const guint8 *buf, gsize len, GError **error)
{
  g_byte_array_append (user_data, buf, (guint)len);
  return TRUE;
}

GBytes *
dfi_deflate_rebuild_bytes (const guint8 *content, gsize content_len, const guint8 *recon, gsize recon_len,
                           const DfDeflateLimits *limits, GError **error)
{
  MemReader r = { content, content_len, 0 };
  g_autoptr (GByteArray) out = g_byte_array_new ();
  if (!dfi_deflate_rebuild (mem_read, &r, recon, recon_len, mem_write, out, limits, NULL, error))
    return NULL;
  return g_byte_array_free_to_bytes (g_steal_pointer (&out));
}
