/* Analyze (build server) of raw deflate streams: the reconstruction data
 * (layout in df-deflate-private.h) that df-deflate-rebuild.c turns back
 * into the stream on the device. */
#include "df-deflate-private.h"

const guint8 dfi_deflate_recon_magic[4] = { 'D', 'F', 'Z', 1 };
/* Tokens analyze gives each model on trial before keeping the best. */
#define TRIAL_TOKENS (192u * 1024)

void
dfi_deflate_limits_init (DfDeflateLimits *limits)
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

/* Whether a split may go at the start of block @b, the last one having
 * gone at @last (or none: the stream's start). */
static gboolean
split_here (const DfDeflateParsed *ps, const DfDeflateBlock *b, const DfDeflateSplit *last)
{
  guint64 bit0 = last ? last->bit : 0, content0 = last ? last->content : 0;
  /* Tests and fuzz seeds: splits in small streams. */
  const char *hook = g_getenv ("DF_TEST_DEFLATE_SEGMENT_TARGET");
  guint64 target = hook ? g_ascii_strtoull (hook, NULL, 10) : DF_DEFLATE_SEGMENT_TARGET;
  return b->start_bit - bit0 >= 8 * target && b->data_start - content0 >= DF_DEFLATE_SEGMENT_MIN_CONTENT
         && ps->content->len - b->data_start >= DF_DEFLATE_SEGMENT_MIN_CONTENT && ps->consumed * 8 > b->start_bit;
}

/* Encodes the body for @params; stops after about @max_tokens tokens (a
 * trial). Returns the mispredictions. With @splits (not for the greedy
 * model), appends the split table's entries (DfDeflateSplit) to it. */
static guint64
encode_body (const DfDeflateParsed *ps, const guint8 *stream, const DfDeflateModelParams *params, guint64 max_tokens,
             GByteArray *out, DfDeflateStats *stats, GArray *splits)
{
  g_autofree DfDeflateModel *m = g_new (DfDeflateModel, 1);
  dfi_deflate_model_init (m, params, ps->content->len);
  m->buf = ps->content->data;
  const guint32 *toks = (const guint32 *)(gpointer)ps->tokens->data;
  guint64 miss = 0, done = 0;
  for (guint bi = 0; bi < ps->blocks->len && done < max_tokens; bi++)
    {
      const DfDeflateBlock *b = &g_array_index (ps->blocks, DfDeflateBlock, bi);
      const DfDeflateSplit *last
          = splits && splits->len ? &g_array_index (splits, DfDeflateSplit, splits->len - 1) : NULL;
      if (splits && splits->len < DF_DEFLATE_SPLITS_MAX && split_here (ps, b, last))
        {
          DfDeflateSplit sp = { .content = b->data_start, .bit = b->start_bit, .body = out->len };
          dfi_deflate_model_save (m, &sp.st);
          g_array_append_val (splits, sp);
        }
      guint8 head = (guint8)(b->final | b->type << 1 | (b->forget ? 32 : 0));
      if (b->forget)
        dfi_deflate_model_forget (m);
      if (b->type == 0)
        {
          put_u8 (out, head | (b->pad ? 8 : 0));
          put_varint (out, b->stored_len);
          if (b->pad)
            put_u8 (out, b->pad);
          dfi_deflate_model_skip (m, b->stored_len);
          continue;
        }
      gboolean verbatim = b->type == 2;
      if (b->type == 2 && b->tok_count <= DF_DEFLATE_BLOCK_TOKENS_MAX)
        {
          DfBitReader r;
          dfi_bit_reader_init (&r, stream + b->hdr_bit / 8, (b->hdr_bits + 7 + b->hdr_bit % 8) / 8);
          dfi_bit_reader_get (&r, b->hdr_bit % 8);
          g_autofree DfDeflateHeader *real = g_new (DfDeflateHeader, 1);
          g_autofree DfDeflateHeader *pred = g_new (DfDeflateHeader, 1);
          if (dfi_deflate_header_read (&r, real, DF_ERROR_FAILED, NULL))
            {
              dfi_deflate_header_predict (toks + b->tok_start, b->tok_count, pred);
              verbatim = !dfi_deflate_header_equal (real, pred);
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
          guint32 pred = dfi_deflate_model_predict (m);
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
                  gint rank = dfi_deflate_model_rank (m, len, d);
                  put_u8 (out, rank >= 0 ? 1 : 2);
                  put_u8 (out, (guint8)(len - 3));
                  put_varint (out, rank >= 0 ? (guint64)rank : d - 1);
                }
            }
          dfi_deflate_model_advance (m, t);
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

/* The smallest windowBits that holds every distance of @ps's tokens (zlib's
 * window less its look-ahead), or 15. */
static guint8
smallest_window_bits (const DfDeflateParsed *ps)
{
  const guint32 *toks = (const guint32 *)(gpointer)ps->tokens->data;
  guint maxd = 0;
  for (guint64 i = 0; i < ps->tokens->len; i++)
    if (toks[i] & DF_DEFLATE_TOK_MATCH)
      maxd = MAX (maxd, DF_DEFLATE_TOK_DIST (toks[i]));
  guint8 wb = 15;
  for (guint k = 9; k < 15; k++)
    if (maxd <= (1u << k) - (DF_DEFLATE_MAX_MATCH + DF_DEFLATE_MIN_MATCH + 1))
      {
        wb = (guint8)k;
        break;
      }
  return wb;
}

/* Tries windowBits 15 and smallest_window_bits() with each hash size,
 * with model @best and then model 0, on the first blocks: sets *@wbits
 * and *@hbits to the pair whose trial body is smallest, and stops at one
 * that predicts every token. */
static void
search_window_and_hash (const DfDeflateParsed *ps, const guint8 *stream, guint best, guint8 *wbits, guint8 *hbits)
{
  guint8 wb = smallest_window_bits (ps);
  static const guint8 hb[] = { 15, 16, 14, 13, 12, 11, 10, 9, 8 };
  gsize grid_best = G_MAXSIZE;
  guint grid_models[2] = { best, 0 };
  for (guint g = 0; g < (best ? 2u : 1u) && grid_best > 0; g++)
    for (guint w = 0; w < 2 && grid_best > 0; w++)
      for (guint h = 0; h < G_N_ELEMENTS (hb); h++)
        {
          DfDeflateModelParams t = dfi_deflate_models[grid_models[g]];
          t.wbits = w ? wb : 15;
          t.hbits = hb[h];
          if (w && wb == 15)
            continue;
          g_autoptr (GByteArray) trial = g_byte_array_new ();
          guint64 miss = encode_body (ps, stream, &t, TRIAL_TOKENS, trial, NULL, NULL);
          if (trial->len < grid_best)
            {
              grid_best = trial->len;
              *wbits = t.wbits;
              *hbits = t.hbits;
            }
          if (miss == 0)
            {
              grid_best = 0;
              break;
            }
        }
}

/* Picks the model for @ps: returns its index in dfi_deflate_models[], and
 * in *@wbits_out and *@hbits_out the window and hash bits to run it
 * with. */
static guint
choose_model (const DfDeflateParsed *ps, const guint8 *stream, guint8 *wbits_out, guint8 *hbits_out)
{
  /* Each model on the first blocks; the fewest bytes of body wins, and one
   * that predicts every token and header there ends the trials (the most
   * common settings come first). */
  guint best = 0;
  gsize best_len = G_MAXSIZE;
  guint64 best_miss = 0;
  guint8 wbits = 15, hbits = 15;
  for (guint round = 0; round < 2; round++)
    {
      for (guint i = 0; i < dfi_deflate_n_models; i++)
        {
          DfDeflateModelParams t = dfi_deflate_models[i];
          t.wbits = wbits;
          t.hbits = hbits;
          g_autoptr (GByteArray) trial = g_byte_array_new ();
          DfDeflateStats ts = { 0 };
          guint64 miss = encode_body (ps, stream, &t, TRIAL_TOKENS, trial, &ts, NULL);
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
      if (round == 1 || best_miss == 0 || best_miss * 10 > MIN ((guint64)TRIAL_TOKENS, ps->tokens->len) * 6)
        break;
      /* Not zlib's default window and hash, perhaps: its windowBits (the
       * smallest window that holds every distance, or 15) and memLevel,
       * found with the commonest level's model, then every model again. */
      search_window_and_hash (ps, stream, best, &wbits, &hbits);
      if (wbits == 15 && hbits == 15)
        break;
    }
  *wbits_out = wbits;
  *hbits_out = hbits;
  return best;
}

/* Encodes the whole body with model @best at @wbits and @hbits: returns
 * the body, its parameters in *@mp_out and its figures in *@st_out. */
static GByteArray *
encode_chosen (const DfDeflateParsed *ps, const guint8 *stream, guint best, guint8 wbits, guint8 hbits,
               DfDeflateModelParams *mp_out, DfDeflateStats *st_out, GArray *splits)
{
  DfDeflateModelParams mp0 = dfi_deflate_models[best];
  mp0.wbits = wbits;
  mp0.hbits = hbits;
  /* gzip's window differs from zlib's only in the last 64 KiB, which no
   * trial sees: both run over the whole stream, unless the first predicts
   * everything. */
  DfDeflateModelParams mp1 = mp0;
  mp1.flags ^= DF_DEFLATE_MODEL_GZIP;
  DfDeflateStats st = { 0 };
  g_autoptr (GByteArray) body = g_byte_array_new ();
  gboolean chains_all = mp0.kind != DF_DEFLATE_MODEL_GREEDY;
  st.mispredictions = encode_body (ps, stream, &mp0, G_MAXUINT64, body, &st, chains_all ? splits : NULL);
  *mp_out = mp0;
  if ((mp0.kind == DF_DEFLATE_MODEL_LAZY || mp0.kind == DF_DEFLATE_MODEL_GREEDY)
      && (st.mispredictions > 0 || st.headers_verbatim > 0))
    {
      DfDeflateStats st1 = { 0 };
      g_autoptr (GByteArray) body1 = g_byte_array_new ();
      g_autoptr (GArray) splits1 = g_array_new (FALSE, FALSE, sizeof (DfDeflateSplit));
      st1.mispredictions = encode_body (ps, stream, &mp1, G_MAXUINT64, body1, &st1, chains_all ? splits1 : NULL);
      if (body1->len < body->len)
        {
          g_array_set_size (splits, 0);
          g_array_append_vals (splits, splits1->data, splits1->len);
          g_byte_array_unref (body);
          body = g_steal_pointer (&body1);
          st = st1;
          *mp_out = mp1;
        }
    }
  *st_out = st;
  return g_steal_pointer (&body);
}

/* Whether every segment @splits make holds at most DF_DEFLATE_SEGMENT_MAX
 * bytes of stream (a block longer than that leaves none). */
static gboolean
splits_fit (const DfDeflateParsed *ps, const GArray *splits)
{
  guint64 prev = 0;
  for (guint i = 0; i <= splits->len; i++)
    {
      guint64 bit = i < splits->len ? g_array_index (splits, DfDeflateSplit, i).bit : (guint64)ps->consumed * 8;
      if (bit / 8 - prev / 8 + 1 > DF_DEFLATE_SEGMENT_MAX)
        return FALSE;
      prev = bit;
    }
  return TRUE;
}

static void
put_splits (GByteArray *recon, const GArray *splits)
{
  put_varint (recon, splits->len);
  const DfDeflateSplit *prev = NULL;
  for (guint i = 0; i < splits->len; i++)
    {
      const DfDeflateSplit *sp = &g_array_index (splits, DfDeflateSplit, i);
      put_varint (recon, sp->content - (prev ? prev->content : 0));
      put_varint (recon, sp->bit - (prev ? prev->bit : 0));
      put_varint (recon, sp->body - (prev ? prev->body : 0));
      put_u8 (recon, (guint8)((sp->st.have_cache ? 1 : 0) | (sp->st.win_eof ? 2 : 0)));
      if (sp->st.have_cache)
        put_varint (recon, sp->st.cache);
      put_varint (recon, sp->content + 2 - sp->st.frontier);
      put_varint (recon, sp->st.win_offset);
      put_varint (recon, sp->st.win_loaded);
      put_varint (recon, sp->content - sp->st.floor);
      prev = sp;
    }
}

/* The reconstruction data of @ps (layout in df-deflate-private.h): model
 * @best run with @mp, the split table of @splits (when it has any), then
 * @body as a zstd frame, or as it is when the frame would not be smaller.
 * NULL with DF_ERROR_FAILED when zstd fails. */
static GByteArray *
pack_recon (const DfDeflateParsed *ps, guint best, const DfDeflateModelParams *mp, const GByteArray *body,
            const GArray *splits, GError **error)
{
  g_autoptr (GByteArray) recon = g_byte_array_new ();
  g_byte_array_append (recon, dfi_deflate_recon_magic, 4);
  put_u8 (recon, (guint8)best);
  put_u8 (recon, (guint8)(mp->flags | (splits->len ? DF_DEFLATE_RECON_SPLITS : 0)));
  put_u8 (recon, (guint8)(mp->wbits << 4 | (mp->hbits - 8)));
  put_varint (recon, ps->content->len);
  put_varint (recon, ps->consumed);
  if (splits->len)
    put_splits (recon, splits);

  g_autoptr (ZSTD_CCtx) cctx = ZSTD_createCCtx ();
  ZSTD_CCtx_setParameter (cctx, ZSTD_c_compressionLevel, 19);
  ZSTD_CCtx_setParameter (cctx, ZSTD_c_windowLog, DF_DEFLATE_RECON_WINDOW_LOG);
  ZSTD_CCtx_setPledgedSrcSize (cctx, body->len);
  gsize bound = ZSTD_compressBound (body->len), at = recon->len;
  g_byte_array_set_size (recon, at + bound);
  gsize z = ZSTD_compress2 (cctx, recon->data + at, bound, body->data, body->len);
  if (ZSTD_isError (z))
    {
      dfi_throw (error, DF_ERROR_FAILED, "deflate: zstd: %s", ZSTD_getErrorName (z));
      return NULL;
    }
  if (z < body->len)
    g_byte_array_set_size (recon, at + z);
  else
    {
      /* A short body is smaller as it is than in a frame. */
      g_byte_array_set_size (recon, at);
      g_byte_array_append (recon, body->data, body->len);
      recon->data[5] |= DF_DEFLATE_RECON_RAW;
    }
  return g_steal_pointer (&recon);
}

/* Fills @stats for an analysis of @ps: @st (the body's figures), model
 * @best with @model_flags, @recon_len bytes of reconstruction data. */
static void
fill_stats (DfDeflateStats *stats, const DfDeflateStats *st, const DfDeflateParsed *ps, guint best, guint8 model_flags,
            gsize recon_len)
{
  *stats = *st;
  stats->content_len = ps->content->len;
  stats->stream_len = ps->consumed;
  stats->blocks = ps->blocks->len;
  for (guint i = 0; i < ps->blocks->len; i++)
    {
      guint t = g_array_index (ps->blocks, DfDeflateBlock, i).type;
      if (t == 0)
        stats->stored_blocks++;
      else if (t == 1)
        stats->fixed_blocks++;
      else
        stats->dynamic_blocks++;
    }
  stats->tokens = ps->tokens->len;
  stats->model = best;
  stats->model_flags = model_flags;
  stats->recon_len = recon_len;
}

gboolean
dfi_deflate_analyze (const guint8 *stream, gsize stream_len, const DfDeflateLimits *limits, gsize *consumed,
                     GBytes **recon_out, DfDeflateStats *stats, GError **error)
{
  DfDeflateLimits def;
  if (limits == NULL)
    {
      dfi_deflate_limits_init (&def);
      limits = &def;
    }
  DfDeflateParsed ps;
  if (!dfi_deflate_parse (stream, stream_len, limits, TRUE, consumed, &ps, error))
    return FALSE;
  mark_resets (&ps);

  guint8 wbits, hbits;
  guint best = choose_model (&ps, stream, &wbits, &hbits);
  DfDeflateModelParams mp;
  DfDeflateStats st;
  g_autoptr (GArray) splits = g_array_new (FALSE, FALSE, sizeof (DfDeflateSplit));
  g_autoptr (GByteArray) body = encode_chosen (&ps, stream, best, wbits, hbits, &mp, &st, splits);
  if (!splits_fit (&ps, splits))
    g_array_set_size (splits, 0);
  g_autoptr (GByteArray) recon = NULL;
  /* The contract is checked here, once, rather than trusted: the rebuild
   * starts over at every split, so the check covers each of them; should
   * one not hold, the data goes without splits. */
  g_autoptr (GError) local = NULL;
  for (;;)
    {
      g_clear_pointer (&recon, g_byte_array_unref);
      recon = pack_recon (&ps, best, &mp, body, splits, error);
      if (recon == NULL)
        {
          dfi_deflate_parsed_clear (&ps);
          return FALSE;
        }
      g_clear_error (&local);
      g_autoptr (GBytes) again
          = dfi_deflate_rebuild_bytes (ps.content->data, ps.content->len, recon->data, recon->len, limits, &local);
      if (again != NULL && g_bytes_get_size (again) == ps.consumed
          && memcmp (g_bytes_get_data (again, NULL), stream, ps.consumed) == 0)
        break;
      if (splits->len == 0)
        {
          dfi_deflate_parsed_clear (&ps);
          return dfi_throw (error, DF_ERROR_FAILED, "deflate: the rebuilt stream differs from the original%s%s",
                            local ? ": " : "", local ? local->message : "");
        }
      g_array_set_size (splits, 0);
    }

  if (stats)
    {
      fill_stats (stats, &st, &ps, best, mp.flags, recon->len);
      stats->splits = splits->len;
    }
  dfi_deflate_parsed_clear (&ps);
  *recon_out = g_byte_array_free_to_bytes (g_steal_pointer (&recon));
  return TRUE;
}

GBytes *
dfi_deflate_inflate (const guint8 *stream, gsize stream_len, const DfDeflateLimits *limits, gsize *consumed,
                     GError **error)
{
  DfDeflateLimits def;
  if (limits == NULL)
    {
      dfi_deflate_limits_init (&def);
      limits = &def;
    }
  DfDeflateParsed ps;
  if (!dfi_deflate_parse (stream, stream_len, limits, FALSE, consumed, &ps, error))
    return NULL;
  GBytes *b = g_byte_array_free_to_bytes (g_steal_pointer (&ps.content));
  dfi_deflate_parsed_clear (&ps);
  return b;
}
