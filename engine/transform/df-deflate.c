/* Analyze (build server) and rebuild (device) of raw deflate streams; the
 * reconstruction data's layout is in df-deflate-private.h. */
#include "df-deflate-private.h"

static const guint8 recon_magic[4] = { 'D', 'F', 'Z', 1 };
#define RECON_FIXED_LEN (4 + 3)
#define RECON_EXPLICIT 0xff /* model "index": the parameters follow */
#define RECON_RAW 0x80      /* flags: the body is not compressed */
/* Tokens analyze gives each model on trial before keeping the best. */
#define TRIAL_TOKENS (192u * 1024)
/* Content rebuild keeps ahead of the next token: a stored piece, a lazy
 * search one position on, and its longest match. */
#define STORED_PIECE 2048u
#define AHEAD (STORED_PIECE + DF_DEFLATE_MAX_MATCH + 8)
#define WINDOW_BUF (2 * DF_DEFLATE_WSIZE + AHEAD)

void
df_deflate_limits_init (DfDeflateLimits *limits)
{
  limits->max_output = G_GUINT64_CONSTANT (1) << 30;
  limits->max_input = G_GUINT64_CONSTANT (1) << 30;
  limits->max_recon = 64 * DF_MIB;
}

/* --- Body encoding (analyze) ----------------------------------------------- */

static void
put_varint (GByteArray *b, guint64 v)
{
  guint8 x[10];
  guint n = 0;
  do
    {
      x[n] = (guint8)(v & 0x7f);
      v >>= 7;
      if (v)
        x[n] |= 0x80;
      n++;
    }
  while (v);
  g_byte_array_append (b, x, n);
}

static void
put_u8 (GByteArray *b, guint8 v)
{
  g_byte_array_append (b, &v, 1);
}

/* Encodes the body for @params; stops after about @max_tokens tokens (a
 * trial). Returns the mispredictions. */
static guint64
encode_body (const DfDeflateParsed *ps, const guint8 *stream, const DfDeflateModelParams *params, guint64 max_tokens,
             GByteArray *out, DfDeflateStats *stats)
{
  g_autofree DfDeflateModel *m = g_new (DfDeflateModel, 1);
  df_deflate_model_init (m, params, ps->content->len);
  m->buf = ps->content->data;
  const guint32 *toks = (const guint32 *)(gpointer)ps->tokens->data;
  guint64 miss = 0, done = 0;
  for (guint bi = 0; bi < ps->blocks->len && done < max_tokens; bi++)
    {
      const DfDeflateBlock *b = &g_array_index (ps->blocks, DfDeflateBlock, bi);
      guint8 head = (guint8)(b->final | b->type << 1 | (b->forget ? 32 : 0));
      if (b->forget)
        df_deflate_model_forget (m);
      if (b->type == 0)
        {
          put_u8 (out, head | (b->pad ? 8 : 0));
          put_varint (out, b->stored_len);
          if (b->pad)
            put_u8 (out, b->pad);
          df_deflate_model_skip (m, b->stored_len);
          continue;
        }
      gboolean verbatim = b->type == 2;
      if (b->type == 2 && b->tok_count <= DF_DEFLATE_BLOCK_TOKENS_MAX)
        {
          DfBitReader r;
          df_bit_reader_init (&r, stream + b->hdr_bit / 8, (b->hdr_bits + 7 + b->hdr_bit % 8) / 8);
          df_bit_reader_get (&r, b->hdr_bit % 8);
          g_autofree DfDeflateHeader *real = g_new (DfDeflateHeader, 1);
          g_autofree DfDeflateHeader *pred = g_new (DfDeflateHeader, 1);
          if (df_deflate_header_read (&r, real, DF_ERROR_FAILED, NULL))
            {
              df_deflate_header_predict (toks + b->tok_start, b->tok_count, pred);
              verbatim = !df_deflate_header_equal (real, pred);
            }
        }
      if (verbatim)
        head |= 16;
      put_u8 (out, head);
      put_varint (out, b->tok_count);
      if (verbatim)
        {
          put_varint (out, b->hdr_bits);
          guint8 acc = 0;
          guint n = 0;
          for (guint64 i = 0; i < b->hdr_bits; i++)
            {
              guint64 bit = b->hdr_bit + i;
              acc |= ((stream[bit / 8] >> (bit % 8)) & 1) << n;
              if (++n == 8)
                {
                  put_u8 (out, acc);
                  acc = 0;
                  n = 0;
                }
            }
          if (n)
            put_u8 (out, acc);
          if (stats)
            stats->headers_verbatim++;
        }
      guint64 run = 0;
      for (guint64 i = 0; i < b->tok_count; i++)
        {
          guint32 t = toks[b->tok_start + i];
          guint32 pred = df_deflate_model_predict (m);
          if (pred == t)
            run++;
          else
            {
              miss++;
              put_varint (out, run);
              run = 0;
              if (!(t & DF_DEFLATE_TOK_MATCH))
                put_u8 (out, 0);
              else
                {
                  guint len = DF_DEFLATE_TOK_LEN (t), d = DF_DEFLATE_TOK_DIST (t);
                  gint rank = df_deflate_model_rank (m, len, d);
                  put_u8 (out, rank >= 0 ? 1 : 2);
                  put_u8 (out, (guint8)(len - 3));
                  put_varint (out, rank >= 0 ? (guint64)rank : d - 1);
                }
            }
          df_deflate_model_advance (m, t);
        }
      put_varint (out, run);
      done += b->tok_count;
    }
  if (done < max_tokens)
    put_u8 (out, ps->trailing);
  return miss;
}

/* Marks the blocks after a flush (an empty stored block) that no match
 * reaches back across: the encoder reset its history there (a full flush,
 * an independent chunk), and the model must forget it too. */
static void
mark_resets (DfDeflateParsed *ps)
{
  guint nb = ps->blocks->len;
  if (nb < 2)
    return;
  DfDeflateBlock *blocks = (DfDeflateBlock *)(gpointer)ps->blocks->data;
  g_autofree gint64 *diff = g_new0 (gint64, nb + 1);
  const guint32 *toks = (const guint32 *)(gpointer)ps->tokens->data;
  for (guint bi = 0; bi < nb; bi++)
    {
      guint64 q = blocks[bi].data_start;
      for (guint64 i = 0; i < blocks[bi].tok_count; i++)
        {
          guint32 t = toks[blocks[bi].tok_start + i];
          if (t & DF_DEFLATE_TOK_MATCH)
            {
              guint64 r = q - DF_DEFLATE_TOK_DIST (t);
              /* The blocks starting in (r, q]: from the first after r. */
              guint lo = 0, hi = bi + 1;
              while (lo < hi)
                {
                  guint mid = (lo + hi) / 2;
                  if (blocks[mid].data_start > r)
                    hi = mid;
                  else
                    lo = mid + 1;
                }
              if (lo <= bi)
                {
                  diff[lo]++;
                  diff[bi + 1]--;
                }
              q += DF_DEFLATE_TOK_LEN (t);
            }
          else
            q++;
        }
    }
  gint64 crossed = 0;
  for (guint bi = 0; bi < nb; bi++)
    {
      crossed += diff[bi];
      blocks[bi].forget = bi > 0 && crossed == 0 && blocks[bi - 1].type == 0 && blocks[bi - 1].stored_len == 0;
    }
}

gboolean
df_deflate_analyze (const guint8 *stream, gsize stream_len, const DfDeflateLimits *limits, gsize *consumed,
                    GBytes **recon_out, DfDeflateStats *stats, GError **error)
{
  DfDeflateLimits def;
  if (limits == NULL)
    {
      df_deflate_limits_init (&def);
      limits = &def;
    }
  DfDeflateParsed ps;
  if (!df_deflate_parse (stream, stream_len, limits, TRUE, consumed, &ps, error))
    return FALSE;
  mark_resets (&ps);

  /* Each model on the first blocks; the fewest bytes of body wins, and one
   * that predicts every token and header there ends the trials (the most
   * common settings come first). */
  guint best = 0;
  gsize best_len = G_MAXSIZE;
  guint64 best_miss = 0;
  guint8 wbits = 15, hbits = 15;
  for (guint round = 0; round < 2; round++)
    {
      for (guint i = 0; i < df_deflate_n_models; i++)
        {
          DfDeflateModelParams t = df_deflate_models[i];
          t.wbits = wbits;
          t.hbits = hbits;
          g_autoptr (GByteArray) trial = g_byte_array_new ();
          DfDeflateStats ts = { 0 };
          guint64 miss = encode_body (&ps, stream, &t, TRIAL_TOKENS, trial, &ts);
          if (trial->len < best_len)
            {
              best_len = trial->len;
              best = i;
              best_miss = miss;
            }
          if (miss == 0 && ts.headers_verbatim == 0)
            break;
        }
      /* A stream of another encoder (most tokens mispredicted: zlib with
       * memLevel 1 or windowBits 10 has 15-45 %) does not pay for the
       * grid. */
      if (round == 1 || best_miss == 0 || best_miss * 10 > MIN ((guint64)TRIAL_TOKENS, ps.tokens->len) * 6)
        break;
      /* Not zlib's default window and hash, perhaps: its windowBits (the
       * smallest window that holds every distance, or 15) and memLevel,
       * found with the commonest level's model, then every model again. */
      const guint32 *toks = (const guint32 *)(gpointer)ps.tokens->data;
      guint maxd = 0;
      for (guint64 i = 0; i < ps.tokens->len; i++)
        if (toks[i] & DF_DEFLATE_TOK_MATCH)
          maxd = MAX (maxd, DF_DEFLATE_TOK_DIST (toks[i]));
      guint8 wb = 15;
      for (guint k = 9; k < 15; k++)
        if (maxd <= (1u << k) - (DF_DEFLATE_MAX_MATCH + DF_DEFLATE_MIN_MATCH + 1))
          {
            wb = (guint8)k;
            break;
          }
      static const guint8 hb[] = { 15, 16, 14, 13, 12, 11, 10, 9, 8 };
      gsize grid_best = G_MAXSIZE;
      guint grid_models[2] = { best, 0 };
      for (guint g = 0; g < (best ? 2u : 1u) && grid_best > 0; g++)
        for (guint w = 0; w < 2 && grid_best > 0; w++)
          for (guint h = 0; h < G_N_ELEMENTS (hb); h++)
            {
              DfDeflateModelParams t = df_deflate_models[grid_models[g]];
              t.wbits = w ? wb : 15;
              t.hbits = hb[h];
              if (w && wb == 15)
                continue;
              g_autoptr (GByteArray) trial = g_byte_array_new ();
              guint64 miss = encode_body (&ps, stream, &t, TRIAL_TOKENS, trial, NULL);
              if (trial->len < grid_best)
                {
                  grid_best = trial->len;
                  wbits = t.wbits;
                  hbits = t.hbits;
                }
              if (miss == 0)
                {
                  grid_best = 0;
                  break;
                }
            }
      if (wbits == 15 && hbits == 15)
        break;
    }
  DfDeflateModelParams mp0 = df_deflate_models[best];
  mp0.wbits = wbits;
  mp0.hbits = hbits;
  /* gzip's window differs from zlib's only in the last 64 KiB, which no
   * trial sees: both run over the whole stream, unless the first predicts
   * everything. */
  DfDeflateModelParams mp1 = mp0;
  mp1.flags ^= DF_DEFLATE_MODEL_GZIP;
  DfDeflateStats st = { 0 };
  g_autoptr (GByteArray) body = g_byte_array_new ();
  st.mispredictions = encode_body (&ps, stream, &mp0, G_MAXUINT64, body, &st);
  const DfDeflateModelParams *mp = &mp0;
  if ((mp0.kind == DF_DEFLATE_MODEL_LAZY || mp0.kind == DF_DEFLATE_MODEL_GREEDY)
      && (st.mispredictions > 0 || st.headers_verbatim > 0))
    {
      DfDeflateStats st1 = { 0 };
      g_autoptr (GByteArray) body1 = g_byte_array_new ();
      st1.mispredictions = encode_body (&ps, stream, &mp1, G_MAXUINT64, body1, &st1);
      if (body1->len < body->len)
        {
          g_byte_array_unref (body);
          body = g_steal_pointer (&body1);
          st = st1;
          mp = &mp1;
        }
    }

  g_autoptr (GByteArray) recon = g_byte_array_new ();
  g_byte_array_append (recon, recon_magic, 4);
  put_u8 (recon, (guint8)best);
  put_u8 (recon, mp->flags);
  put_u8 (recon, (guint8)(mp->wbits << 4 | (mp->hbits - 8)));
  put_varint (recon, ps.content->len);
  put_varint (recon, ps.consumed);

  g_autoptr (ZSTD_CCtx) cctx = ZSTD_createCCtx ();
  ZSTD_CCtx_setParameter (cctx, ZSTD_c_compressionLevel, 19);
  ZSTD_CCtx_setParameter (cctx, ZSTD_c_windowLog, DF_DEFLATE_RECON_WINDOW_LOG);
  ZSTD_CCtx_setPledgedSrcSize (cctx, body->len);
  gsize bound = ZSTD_compressBound (body->len), at = recon->len;
  g_byte_array_set_size (recon, at + bound);
  gsize z = ZSTD_compress2 (cctx, recon->data + at, bound, body->data, body->len);
  if (ZSTD_isError (z))
    {
      df_deflate_parsed_clear (&ps);
      return df_throw (error, DF_ERROR_FAILED, "deflate: zstd: %s", ZSTD_getErrorName (z));
    }
  if (z < body->len)
    g_byte_array_set_size (recon, at + z);
  else
    {
      /* A short body is smaller as it is than in a frame. */
      g_byte_array_set_size (recon, at);
      g_byte_array_append (recon, body->data, body->len);
      recon->data[5] |= RECON_RAW;
    }

  /* The contract is checked here, once, rather than trusted. */
  g_autoptr (GError) local = NULL;
  g_autoptr (GBytes) again
      = df_deflate_rebuild_bytes (ps.content->data, ps.content->len, recon->data, recon->len, limits, &local);
  if (again == NULL || g_bytes_get_size (again) != ps.consumed
      || memcmp (g_bytes_get_data (again, NULL), stream, ps.consumed) != 0)
    {
      df_deflate_parsed_clear (&ps);
      return df_throw (error, DF_ERROR_FAILED, "deflate: the rebuilt stream differs from the original%s%s",
                       local ? ": " : "", local ? local->message : "");
    }

  if (stats)
    {
      *stats = st;
      stats->content_len = ps.content->len;
      stats->stream_len = ps.consumed;
      stats->blocks = ps.blocks->len;
      for (guint i = 0; i < ps.blocks->len; i++)
        {
          guint t = g_array_index (ps.blocks, DfDeflateBlock, i).type;
          if (t == 0)
            stats->stored_blocks++;
          else if (t == 1)
            stats->fixed_blocks++;
          else
            stats->dynamic_blocks++;
        }
      stats->tokens = ps.tokens->len;
      stats->model = best;
      stats->model_flags = mp->flags;
      stats->recon_len = recon->len;
    }
  df_deflate_parsed_clear (&ps);
  *recon_out = g_byte_array_free_to_bytes (g_steal_pointer (&recon));
  return TRUE;
}

GBytes *
df_deflate_inflate (const guint8 *stream, gsize stream_len, const DfDeflateLimits *limits, gsize *consumed,
                    GError **error)
{
  DfDeflateLimits def;
  if (limits == NULL)
    {
      df_deflate_limits_init (&def);
      limits = &def;
    }
  DfDeflateParsed ps;
  if (!df_deflate_parse (stream, stream_len, limits, FALSE, consumed, &ps, error))
    return NULL;
  GBytes *b = g_byte_array_free_to_bytes (g_steal_pointer (&ps.content));
  df_deflate_parsed_clear (&ps);
  return b;
}

/* --- Rebuild (device) ------------------------------------------------------ */

#define INVALID DF_ERROR_INVALID_DELTA

typedef struct
{
  ZSTD_DCtx *dctx;
  ZSTD_inBuffer in;
  guint8 buf[65536];
  gsize len, at;
  gboolean frame_done;
  gboolean raw; /* the body is stored as it is: @in without zstd */
} BodyReader;

static gboolean
body_fill (BodyReader *br, GError **error)
{
  br->len = br->at = 0;
  if (br->raw)
    {
      br->len = MIN (sizeof br->buf, br->in.size - br->in.pos);
      if (br->len == 0)
        return df_throw (error, INVALID, "deflate: reconstruction data ends early");
      memcpy (br->buf, (const guint8 *)br->in.src + br->in.pos, br->len);
      br->in.pos += br->len;
      return TRUE;
    }
  while (br->len == 0)
    {
      if (br->frame_done)
        return df_throw (error, INVALID, "deflate: reconstruction data ends early");
      ZSTD_outBuffer out = { br->buf, sizeof br->buf, 0 };
      gsize before = br->in.pos;
      gsize r = ZSTD_decompressStream (br->dctx, &out, &br->in);
      if (ZSTD_isError (r))
        return df_throw (error, INVALID, "deflate: reconstruction data: zstd: %s", ZSTD_getErrorName (r));
      br->len = out.pos;
      if (r == 0)
        br->frame_done = TRUE;
      else if (out.pos == 0 && br->in.pos == before && br->in.pos == br->in.size)
        return df_throw (error, INVALID, "deflate: reconstruction data is truncated");
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
  return df_throw (error, INVALID, "deflate: reconstruction data: bad varint");
}

/* The body has nothing after its last field. */
static gboolean
body_end (BodyReader *br, GError **error)
{
  if (br->at < br->len)
    return df_throw (error, INVALID, "deflate: reconstruction data: bytes after the final block");
  while (!br->raw && !br->frame_done)
    {
      ZSTD_outBuffer out = { br->buf, sizeof br->buf, 0 };
      gsize before = br->in.pos;
      gsize r = ZSTD_decompressStream (br->dctx, &out, &br->in);
      if (ZSTD_isError (r))
        return df_throw (error, INVALID, "deflate: reconstruction data: zstd: %s", ZSTD_getErrorName (r));
      if (out.pos)
        return df_throw (error, INVALID, "deflate: reconstruction data: bytes after the final block");
      if (r == 0)
        br->frame_done = TRUE;
      else if (br->in.pos == before)
        return df_throw (error, INVALID, "deflate: reconstruction data is truncated");
    }
  if (br->in.pos != br->in.size)
    return df_throw (error, INVALID, "deflate: reconstruction data: bytes after its body");
  return TRUE;
}

/* The content window: [start, end) of the content in buf. */
typedef struct
{
  DfDeflateReadFunc read;
  gpointer read_data;
  guint8 *buf;
  guint64 start, end, total;
} Window;

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
        return df_throw (
            error, DF_ERROR_CORRUPT,
            "deflate: content shorter than the %" G_GUINT64_FORMAT " bytes the reconstruction data declares", w->total);
      if ((gsize)n > room)
        return df_throw (error, DF_ERROR_FAILED, "deflate: content reader returned too much");
      w->end += (guint64)n;
    }
  return TRUE;
}

typedef struct
{
  BodyReader br;
  Window win;
  DfBitWriter bw;
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
    return df_throw (error, INVALID, "deflate: reconstruction data: header too long");
  guint8 bytes[(14 + 19 * 3 + 316 * 14 + 7) / 8];
  guint nb = (guint)((nbits + 7) / 8);
  for (guint i = 0; i < nb; i++)
    if (!body_u8 (&rb->br, &bytes[i], error))
      return FALSE;
  DfBitReader r;
  df_bit_reader_init (&r, bytes, nb);
  if (!df_deflate_header_read (&r, &rb->hdr, INVALID, error))
    return FALSE;
  if (df_bit_reader_tell (&r) != nbits)
    return df_throw (error, INVALID, "deflate: reconstruction data: header length differs");
  return df_deflate_header_write (&rb->bw, &rb->hdr, error);
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
    return df_throw (error, INVALID, "deflate: reconstruction data: bad correction");
  guint64 v;
  if (!body_u8 (&rb->br, &l3, error) || !body_varint (&rb->br, &v, error))
    return FALSE;
  guint len = l3 + 3u;
  if (len > left)
    return df_throw (error, DF_ERROR_CORRUPT, "deflate: a match runs past the end of the content");
  guint64 d;
  if (code == 1)
    {
      d = df_deflate_model_unrank (m, len, v);
      if (d == 0)
        return df_throw (error, DF_ERROR_CORRUPT, "deflate: no match of that rank in the content");
    }
  else
    {
      d = v + 1;
      if (d > DF_DEFLATE_WSIZE || d > pos)
        return df_throw (error, INVALID, "deflate: reconstruction data: distance out of range");
      const guint8 *a = m->buf + (pos - d - m->buf_start), *b = m->buf + (pos - m->buf_start);
      for (guint i = 0; i < len; i++)
        if (a[i] != b[i])
          return df_throw (error, DF_ERROR_CORRUPT, "deflate: a match the content does not hold");
    }
  *tok = df_deflate_tok_match (len, (guint)d);
  return TRUE;
}

/* One token: the model's prediction, or the correction that follows. */
static gboolean
rebuild_step (Rebuild *rb, gboolean corrected, GError **error)
{
  DfDeflateModel *m = &rb->model;
  if (m->pos >= m->total)
    return df_throw (error, DF_ERROR_CORRUPT, "deflate: tokens past the end of the content");
  if (!window_ensure (&rb->win, m->pos, error))
    return FALSE;
  m->buf = rb->win.buf;
  m->buf_start = rb->win.start;
  guint32 tok = df_deflate_model_predict (m);
  if (corrected && !read_correction (rb, &tok, error))
    return FALSE;
  if (rb->defer)
    rb->toks[rb->ntoks++] = tok;
  else if (!df_deflate_token_write (&rb->bw, &rb->lit, &rb->dist, tok, error))
    return FALSE;
  df_deflate_model_advance (m, tok);
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
        return df_throw (error, INVALID, "deflate: reconstruction data: run past the block's end");
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

gboolean
df_deflate_rebuild (DfDeflateReadFunc read, gpointer read_data, const guint8 *recon, gsize recon_len,
                    DfDeflateWriteFunc write, gpointer write_data, const DfDeflateLimits *limits,
                    GCancellable *cancellable, GError **error)
{
  DfDeflateLimits def;
  if (limits == NULL)
    {
      df_deflate_limits_init (&def);
      limits = &def;
    }
  if (recon_len > limits->max_recon)
    return df_throw (error, INVALID, "deflate: reconstruction data over the limit");
  if (recon_len < RECON_FIXED_LEN || memcmp (recon, recon_magic, 4) != 0)
    return df_throw (error, INVALID, "deflate: not deflate reconstruction data");
  DfDeflateModelParams mp;
  gsize at = RECON_FIXED_LEN;
  if (recon[4] == RECON_EXPLICIT)
    {
      if (recon_len < at + 9)
        return df_throw (error, INVALID, "deflate: reconstruction data: bad header");
      const guint8 *e = recon + at;
      mp = (DfDeflateModelParams){ e[0], 0, e[1] | e[2] << 8, e[3] | e[4] << 8, e[5] | e[6] << 8, e[7] | e[8] << 8 };
      at += 9;
    }
  else if (recon[4] < df_deflate_n_models)
    mp = df_deflate_models[recon[4]];
  else
    return df_throw (error, INVALID, "deflate: reconstruction data: unknown model");
  mp.wbits = recon[6] >> 4;
  mp.hbits = (recon[6] & 15) + 8;
  gboolean raw = (recon[5] & RECON_RAW) != 0;
  mp.flags = recon[5] & ~RECON_RAW;
  if (!df_deflate_model_params_ok (&mp))
    return df_throw (error, INVALID, "deflate: reconstruction data: unknown model");
  guint64 lens[2];
  for (guint k = 0; k < 2; k++)
    {
      guint64 x = 0;
      guint i = 0;
      for (;; i++)
        {
          if (at >= recon_len || i == 10)
            return df_throw (error, INVALID, "deflate: reconstruction data: bad header");
          guint8 b = recon[at++];
          x |= (guint64)(b & 0x7f) << (7 * i);
          if (!(b & 0x80))
            break;
        }
      lens[k] = x;
    }
  guint64 total = lens[0], stream_len = lens[1];
  if (total > limits->max_output || stream_len > limits->max_input)
    return df_throw (error, INVALID, "deflate: reconstruction data: lengths over the limits");

  g_autoptr (Rebuild) rb = g_new0 (Rebuild, 1);
  rb->br.raw = raw;
  if (!raw)
    {
      rb->br.dctx = ZSTD_createDCtx ();
      if (rb->br.dctx == NULL)
        return df_throw (error, DF_ERROR_FAILED, "deflate: out of memory");
      ZSTD_DCtx_setParameter (rb->br.dctx, ZSTD_d_windowLogMax, DF_DEFLATE_RECON_WINDOW_LOG);
    }
  rb->br.in = (ZSTD_inBuffer){ recon + at, recon_len - at, 0 };
  rb->win = (Window){ read, read_data, rb->winbuf, 0, 0, total };
  df_bit_writer_init (&rb->bw, write, write_data);
  df_deflate_model_init (&rb->model, &mp, total);
  DfDeflateModel *m = &rb->model;
  gint fixed = -1; /* the current codes are the fixed ones */

  for (;;)
    {
      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        return FALSE;
      if (rb->bw.total + rb->bw.len > stream_len)
        return df_throw (error, DF_ERROR_CORRUPT, "deflate: stream longer than declared");
      guint8 head;
      if (!body_u8 (&rb->br, &head, error))
        return FALSE;
      guint type = (head >> 1) & 3, final = head & 1;
      if (head & 32)
        df_deflate_model_forget (m);
      if (type == 3 || (head & 0xc0) || (type != 0 && (head & 8)) || (type != 2 && (head & 16)))
        return df_throw (error, INVALID, "deflate: reconstruction data: bad block head");
      if (!df_bit_writer_put (&rb->bw, final | type << 1, 3, error))
        return FALSE;
      if (type == 0)
        {
          guint64 slen;
          guint8 pad = 0;
          if (!body_varint (&rb->br, &slen, error) || ((head & 8) && !body_u8 (&rb->br, &pad, error)))
            return FALSE;
          guint nb = (8 - df_bit_writer_pending (&rb->bw)) % 8;
          if (slen > 0xffff || pad >> nb)
            return df_throw (error, INVALID, "deflate: reconstruction data: bad stored block");
          if (slen > total - m->pos)
            return df_throw (error, DF_ERROR_CORRUPT, "deflate: stored block past the end of the content");
          if (!df_bit_writer_put (&rb->bw, pad, nb, error)
              || !df_bit_writer_put (&rb->bw, (guint32)slen | (guint32)(~slen & 0xffff) << 16, 32, error))
            return FALSE;
          /* Even an empty block ends the model's lazy look-ahead, as in
           * analyze (a flush does so in zlib). */
          df_deflate_model_skip (m, 0);
          while (slen > 0)
            {
              guint piece = (guint)MIN (slen, (guint64)STORED_PIECE);
              if (!window_ensure (&rb->win, m->pos, error))
                return FALSE;
              m->buf = rb->win.buf;
              m->buf_start = rb->win.start;
              const guint8 *src = m->buf + (m->pos - m->buf_start);
              for (guint i = 0; i < piece; i++)
                if (!df_bit_writer_put (&rb->bw, src[i], 8, error))
                  return FALSE;
              df_deflate_model_skip (m, piece);
              slen -= piece;
            }
        }
      else
        {
          guint64 count;
          if (!body_varint (&rb->br, &count, error))
            return FALSE;
          if (count > total - m->pos)
            return df_throw (error, DF_ERROR_CORRUPT, "deflate: more tokens than content");
          rb->defer = type == 2 && !(head & 16);
          if (rb->defer)
            {
              /* The header follows from the tokens: build them first. */
              if (count > DF_DEFLATE_BLOCK_TOKENS_MAX)
                return df_throw (error, INVALID, "deflate: reconstruction data: block too long for its header");
              if (rb->toks == NULL)
                rb->toks = g_new (guint32, DF_DEFLATE_BLOCK_TOKENS_MAX);
              rb->ntoks = 0;
              if (!rebuild_tokens (rb, count, error))
                return FALSE;
              df_deflate_header_predict (rb->toks, rb->ntoks, &rb->hdr);
              if (!df_deflate_header_write (&rb->bw, &rb->hdr, error))
                return FALSE;
              df_huff_encoder_build (&rb->lit, rb->hdr.lit, 288);
              df_huff_encoder_build (&rb->dist, rb->hdr.dist, 32);
              fixed = 0;
              rb->defer = FALSE;
              for (guint64 i = 0; i < rb->ntoks; i++)
                if (!df_deflate_token_write (&rb->bw, &rb->lit, &rb->dist, rb->toks[i], error))
                  return FALSE;
            }
          else if (type == 2)
            {
              if (!read_header (rb, error))
                return FALSE;
              df_huff_encoder_build (&rb->lit, rb->hdr.lit, 288);
              df_huff_encoder_build (&rb->dist, rb->hdr.dist, 32);
              fixed = 0;
            }
          else if (fixed != 1)
            {
              guint8 fl[288], fd[32];
              df_deflate_fixed_lengths (fl, fd);
              df_huff_encoder_build (&rb->lit, fl, 288);
              df_huff_encoder_build (&rb->dist, fd, 30);
              fixed = 1;
            }
          if (type == 1 || (head & 16))
            if (!rebuild_tokens (rb, count, error))
              return FALSE;
          if (!df_bit_writer_put (&rb->bw, rb->lit.code[256], rb->lit.len[256], error))
            return FALSE;
        }
      if (final)
        break;
    }
  guint8 trailing;
  if (!body_u8 (&rb->br, &trailing, error))
    return FALSE;
  guint nb = (8 - df_bit_writer_pending (&rb->bw)) % 8;
  if (trailing >> nb)
    return df_throw (error, INVALID, "deflate: reconstruction data: bad trailing bits");
  if (!df_bit_writer_put (&rb->bw, trailing, nb, error) || !body_end (&rb->br, error))
    return FALSE;
  if (m->pos != total)
    return df_throw (error, DF_ERROR_CORRUPT, "deflate: the stream ends before the content");
  if (rb->bw.total + rb->bw.len != stream_len)
    return df_throw (error, DF_ERROR_CORRUPT, "deflate: stream of a length other than declared");
  /* The content must end where declared. */
  guint8 extra;
  gssize n = read (read_data, &extra, 1, error);
  if (n < 0)
    return FALSE;
  if (n > 0)
    return df_throw (error, DF_ERROR_CORRUPT, "deflate: content longer than the reconstruction data declares");
  return df_bit_writer_flush_buf (&rb->bw, error);
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
df_deflate_rebuild_bytes (const guint8 *content, gsize content_len, const guint8 *recon, gsize recon_len,
                          const DfDeflateLimits *limits, GError **error)
{
  MemReader r = { content, content_len, 0 };
  g_autoptr (GByteArray) out = g_byte_array_new ();
  if (!df_deflate_rebuild (mem_read, &r, recon, recon_len, mem_write, out, limits, NULL, error))
    return NULL;
  return g_byte_array_free_to_bytes (g_steal_pointer (&out));
}
