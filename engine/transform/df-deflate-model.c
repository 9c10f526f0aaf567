/* The model encoder: hash chains over the content and zlib's and GNU
 * gzip's matching rules (their facts, not their code), predicting at each
 * position the token the original encoder chose. Its state depends only on
 * the content and the real tokens, so analyze and rebuild, which both know
 * them, keep identical models. */
#include "df-deflate-private.h"

/* zlib and gzip never match further back than the window less their
 * lookahead (MAX_DIST), and drop a 3-byte match over TOO_FAR back. */
#define MODEL_TOO_FAR 4096

/* The tries: zlib's and gzip's level table (good, lazy, nice, chain; the
 * same in both), then Z_FILTERED at level 6, Z_RLE and Huffman only. */
const DfDeflateModelParams dfi_deflate_models[] = {
  { DF_DEFLATE_MODEL_LAZY, DF_DEFLATE_MODEL_TOO_FAR, 8, 16, 128, 128, 15, 15 },    /* 6 */
  { DF_DEFLATE_MODEL_LAZY, DF_DEFLATE_MODEL_TOO_FAR, 32, 258, 258, 4096, 15, 15 }, /* 9 */
  { DF_DEFLATE_MODEL_GREEDY, 0, 4, 4, 8, 4, 15, 15 },                              /* 1 */
  { DF_DEFLATE_MODEL_GREEDY, 0, 4, 5, 16, 8, 15, 15 },                             /* 2 */
  { DF_DEFLATE_MODEL_GREEDY, 0, 4, 6, 32, 32, 15, 15 },                            /* 3 */
  { DF_DEFLATE_MODEL_LAZY, DF_DEFLATE_MODEL_TOO_FAR, 4, 4, 16, 16, 15, 15 },       /* 4 */
  { DF_DEFLATE_MODEL_LAZY, DF_DEFLATE_MODEL_TOO_FAR, 8, 16, 32, 32, 15, 15 },      /* 5 */
  { DF_DEFLATE_MODEL_LAZY, DF_DEFLATE_MODEL_TOO_FAR, 8, 32, 128, 256, 15, 15 },    /* 7 */
  { DF_DEFLATE_MODEL_LAZY, DF_DEFLATE_MODEL_TOO_FAR, 32, 128, 258, 1024, 15, 15 }, /* 8 */
  { DF_DEFLATE_MODEL_LAZY, DF_DEFLATE_MODEL_TOO_FAR | DF_DEFLATE_MODEL_FILTERED, 8, 16, 128, 128, 15, 15 },
  { DF_DEFLATE_MODEL_RLE, 0, 0, 0, 0, 0, 15, 15 },
  { DF_DEFLATE_MODEL_LITERAL, 0, 0, 0, 0, 0, 15, 15 },
};
const guint dfi_deflate_n_models = G_N_ELEMENTS (dfi_deflate_models);

gboolean
dfi_deflate_model_params_ok (const DfDeflateModelParams *p)
{
  if (p->kind >= DF_DEFLATE_MODEL_KINDS || (p->flags & ~DF_DEFLATE_MODEL_FLAGS))
    return FALSE;
  /* chain bounds the work per position: zlib's and gzip's largest. */
  return p->chain <= 4096 && p->nice <= DF_DEFLATE_MAX_MATCH && p->lazy <= DF_DEFLATE_MAX_MATCH
         && p->good <= DF_DEFLATE_MAX_MATCH && p->wbits >= 9 && p->wbits <= 15 && p->hbits >= 8 && p->hbits <= 16;
}

void
dfi_deflate_model_init (DfDeflateModel *m, const DfDeflateModelParams *p, guint64 total)
{
  m->p = *p;
  m->buf = NULL;
  m->buf_start = 0;
  m->total = total;
  m->pos = 0;
  m->frontier = 0;
  m->have_cache = FALSE;
  m->cache = 0;
  m->win_offset = 0;
  m->wsize = 1u << p->wbits;
  m->hshift = (p->hbits + DF_DEFLATE_MIN_MATCH - 1) / DF_DEFLATE_MIN_MATCH;
  m->hmask = (1u << p->hbits) - 1;
  m->max_dist = m->wsize - (DF_DEFLATE_MAX_MATCH + DF_DEFLATE_MIN_MATCH + 1);
  m->win_loaded = MIN (total, 2 * (guint64)m->wsize);
  m->win_eof = FALSE;
  m->floor = 0;
  m->base = 0;
  memset (m->head, 0, (m->hmask + 1) * sizeof m->head[0]);
  memset (m->prev, 0, sizeof m->prev);
}

static inline const guint8 *
at (const DfDeflateModel *m, guint64 pos)
{
  return m->buf + (pos - m->buf_start);
}

static inline guint
hash3 (const DfDeflateModel *m, const guint8 *p)
{
  /* zlib's and gzip's hash with 15 bits and shift 5: collisions count
   * against the chain length as they do there. */
  return (((guint)p[0] << (2 * m->hshift)) ^ ((guint)p[1] << m->hshift) ^ p[2]) & m->hmask;
}

/* Chain links are 32-bit: a position less @base, plus one (0: none). Every
 * gigabyte they move down by one, and links that old (far outside the
 * window) become none. */
#define REBASE_STEP (G_GUINT64_CONSTANT (1) << 30)
#define REBASE_AT (3 * REBASE_STEP)

static void
rebase (DfDeflateModel *m)
{
  for (guint i = 0; i <= m->hmask; i++)
    m->head[i] = m->head[i] > REBASE_STEP ? (guint32)(m->head[i] - REBASE_STEP) : 0;
  for (guint i = 0; i < DF_DEFLATE_WSIZE; i++)
    m->prev[i] = m->prev[i] > REBASE_STEP ? (guint32)(m->prev[i] - REBASE_STEP) : 0;
  m->base += REBASE_STEP;
}

static inline gint64
link_pos (const DfDeflateModel *m, guint32 v)
{
  return v ? (gint64)(m->base + v - 1) : -1;
}

static inline void
insert (DfDeflateModel *m, guint64 q)
{
  if (q + DF_DEFLATE_MIN_MATCH > m->total)
    return;
  guint h = hash3 (m, at (m, q));
  if (q - m->base >= REBASE_AT)
    rebase (m);
  m->prev[q & (m->wsize - 1)] = m->head[h];
  m->head[h] = (guint32)(q - m->base + 1);
}

static inline void
insert_upto (DfDeflateModel *m, guint64 end)
{
  for (; m->frontier < end; m->frontier++)
    insert (m, m->frontier);
}

/* The common prefix of the content at @cand and @pos, at most @max bytes:
 * eight at a time, then byte by byte (the same count either way). */
static inline guint
match_len (const DfDeflateModel *m, guint64 cand, guint64 pos, guint max)
{
  const guint8 *a = at (m, cand), *b = at (m, pos);
  guint n = 0;
  while (n + 8 <= max)
    {
      guint64 x, y;
      memcpy (&x, a + n, 8);
      memcpy (&y, b + n, 8);
      if (x != y)
        {
#if G_BYTE_ORDER == G_LITTLE_ENDIAN
          return n + (guint)(__builtin_ctzll (x ^ y) >> 3);
#else
          return n + (guint)(__builtin_clzll (x ^ y) >> 3);
#endif
        }
      n += 8;
    }
  while (n < max && a[n] == b[n])
    n++;
  return n;
}

/* The first chain entry before @pos. */
static inline gint64
chain_start (const DfDeflateModel *m, guint64 pos)
{
  gint64 c = link_pos (m, m->head[hash3 (m, at (m, pos))]);
  while (c >= 0 && (guint64)c >= pos)
    {
      gint64 n = link_pos (m, m->prev[c & (m->wsize - 1)]);
      if (n >= c)
        return -1;
      c = n;
    }
  return c;
}

#define WIN_LOOKAHEAD (DF_DEFLATE_MAX_MATCH + DF_DEFLATE_MIN_MATCH + 1)

/* The window as the original encoder has it at @pos: when its lookahead
 * runs short it slides by 32 KiB (once its position is past the window
 * less the lookahead) and reads what more fits. gzip stops at the end of
 * its input; zlib checks for a slide at every position. */
static void
win_sync (DfDeflateModel *m, guint64 pos)
{
  if (m->win_loaded - MIN (pos, m->win_loaded) >= WIN_LOOKAHEAD)
    return;
  gboolean gz = (m->p.flags & DF_DEFLATE_MODEL_GZIP) != 0;
  for (;;)
    {
      if (gz && m->win_eof)
        return;
      if (pos - m->win_offset >= 2 * m->wsize - WIN_LOOKAHEAD)
        m->win_offset += m->wsize;
      guint64 n = MIN (m->win_offset + 2 * m->wsize - m->win_loaded, m->total - m->win_loaded);
      if (n == 0)
        {
          m->win_eof = TRUE;
          return;
        }
      m->win_loaded += n;
      if (m->win_loaded - pos >= WIN_LOOKAHEAD)
        return;
    }
}

static inline guint
avail (const DfDeflateModel *m, guint64 pos)
{
  return (guint)MIN ((guint64)DF_DEFLATE_MAX_MATCH, m->total - pos);
}

/* zlib's longest_match: the most recent candidate strictly longer than
 * @best (the previous position's match in a lazy search), at most chain
 * candidates (a quarter once @best is good), stopping at nice. 0: none. */
static guint32
search (DfDeflateModel *m, guint64 pos, guint best)
{
  guint av = avail (m, pos);
  if (av < DF_DEFLATE_MIN_MATCH)
    return 0;
  win_sync (m, pos);
  if ((m->p.flags & DF_DEFLATE_MODEL_GZIP) && pos - m->win_offset > 2 * m->wsize - WIN_LOOKAHEAD)
    return 0;
  guint64 nil = m->win_offset;
  guint nice = MIN ((guint)m->p.nice, av), chain = m->p.chain, best_d = 0;
  if (best >= m->p.good)
    chain >>= 2;
  if (chain == 0)
    return 0;
  gint64 c = chain_start (m, pos);
  gboolean first = TRUE;
  gint budget = DF_DEFLATE_SEARCH_BUDGET;
  while (c > (gint64)nil && (guint64)c >= m->floor)
    {
      guint64 d = pos - (guint64)c;
      if (first ? d > m->max_dist : d >= m->max_dist)
        break;
      /* Only a candidate that agrees at the current best length can beat
       * it: the rest cost one byte (zlib's shortcut, same result). */
      const guint8 *a = at (m, (guint64)c), *b = at (m, pos);
      guint l = 0;
      if (best >= av || a[best] == b[best])
        {
          l = match_len (m, (guint64)c, pos, av);
          budget -= (gint)l;
        }
      budget--;
      if (l > best)
        {
          best = l;
          best_d = (guint)d;
          if (l >= nice)
            break;
        }
      if (--chain == 0 || budget <= 0)
        break;
      gint64 n = link_pos (m, m->prev[c & (m->wsize - 1)]);
      if (n >= c)
        break;
      c = n;
      first = FALSE;
    }
  if (best_d == 0 || best < DF_DEFLATE_MIN_MATCH)
    return 0;
  return dfi_deflate_tok_match (best, best_d);
}

/* The lazy matcher's filters on a match just found. */
static guint32
filter (const DfDeflateModel *m, guint32 t)
{
  if (t == 0)
    return 0;
  guint l = DF_DEFLATE_TOK_LEN (t);
  if ((m->p.flags & DF_DEFLATE_MODEL_FILTERED) && l <= 5)
    return 0;
  if ((m->p.flags & DF_DEFLATE_MODEL_TOO_FAR) && l == DF_DEFLATE_MIN_MATCH && DF_DEFLATE_TOK_DIST (t) > MODEL_TOO_FAR)
    return 0;
  return t;
}

static guint32
predict_rle (const DfDeflateModel *m)
{
  guint64 p = m->pos;
  guint av = avail (m, p);
  if (p == 0 || av < DF_DEFLATE_MIN_MATCH)
    return *at (m, p);
  const guint8 *s = at (m, p);
  guint8 b = s[-1];
  guint n = 0;
  while (n < av && s[n] == b)
    n++;
  return n >= DF_DEFLATE_MIN_MATCH ? dfi_deflate_tok_match (n, 1) : *s;
}

guint32
dfi_deflate_model_predict (DfDeflateModel *m)
{
  guint64 p = m->pos;
  guint32 lit = *at (m, p);
  win_sync (m, p);
  switch (m->p.kind)
    {
    case DF_DEFLATE_MODEL_LITERAL:
      return lit;
    case DF_DEFLATE_MODEL_RLE:
      return predict_rle (m);
    case DF_DEFLATE_MODEL_GREEDY:
      {
        insert_upto (m, p);
        guint32 t = search (m, p, DF_DEFLATE_MIN_MATCH - 1);
        insert_upto (m, p + 1);
        return t ? t : lit;
      }
    default:
      break;
    }
  /* Lazy: the match here (found with the previous position's as the bar
   * when the previous token was a deferred literal), then the next
   * position's; a longer one there makes this position a literal. */
  guint32 m0;
  if (m->have_cache)
    m0 = m->cache;
  else
    {
      insert_upto (m, p);
      m0 = filter (m, search (m, p, DF_DEFLATE_MIN_MATCH - 1));
    }
  insert_upto (m, p + 1);
  m->have_cache = FALSE;
  guint l0 = m0 ? DF_DEFLATE_TOK_LEN (m0) : DF_DEFLATE_MIN_MATCH - 1;
  if (m0 && l0 >= m->p.lazy)
    return m0;
  guint32 m1 = 0;
  if (p + 1 < m->total)
    {
      if (l0 < m->p.lazy)
        m1 = filter (m, search (m, p + 1, l0));
      insert_upto (m, p + 2);
      m->have_cache = TRUE;
      m->cache = m1;
    }
  if (m0 && (m1 == 0 || DF_DEFLATE_TOK_LEN (m1) <= l0))
    return m0;
  return lit;
}

void
dfi_deflate_model_advance (DfDeflateModel *m, guint32 tok)
{
  if (!(tok & DF_DEFLATE_TOK_MATCH))
    {
      m->pos++;
      return;
    }
  guint len = DF_DEFLATE_TOK_LEN (tok);
  m->have_cache = FALSE;
  if (m->p.kind == DF_DEFLATE_MODEL_GREEDY && len > m->p.lazy)
    {
      /* deflate_fast leaves the inside of a long match out of the chains. */
      insert_upto (m, m->pos + 1);
      m->frontier = MAX (m->frontier, m->pos + len);
    }
  m->pos += len;
}

void
dfi_deflate_model_skip (DfDeflateModel *m, guint64 n)
{
  m->have_cache = FALSE;
  m->pos += n;
  /* Eagerly, so a rebuild can hand over a stored block in pieces; the
   * models without chains keep none (and a rebuild's window does not
   * hold their start). */
  if (m->p.kind == DF_DEFLATE_MODEL_LAZY || m->p.kind == DF_DEFLATE_MODEL_GREEDY)
    insert_upto (m, m->pos);
}

void
dfi_deflate_model_forget (DfDeflateModel *m)
{
  m->have_cache = FALSE;
  m->floor = m->pos;
}

gint
dfi_deflate_model_rank (DfDeflateModel *m, guint len, guint dist)
{
  guint64 p = m->pos;
  if (avail (m, p) < DF_DEFLATE_MIN_MATCH)
    return -1;
  insert_upto (m, p);
  gint64 c = chain_start (m, p);
  gint rank = 0;
  for (guint steps = 0; c >= 0 && (guint64)c >= m->floor && steps < DF_DEFLATE_RANK_WALK_MAX; steps++)
    {
      guint64 d = p - (guint64)c;
      if (d > DF_DEFLATE_WSIZE)
        break;
      if (match_len (m, (guint64)c, p, len) >= len)
        {
          if (d == dist)
            return rank;
          rank++;
        }
      gint64 n = link_pos (m, m->prev[c & (m->wsize - 1)]);
      if (n >= c)
        break;
      c = n;
    }
  return -1;
}

guint
dfi_deflate_model_unrank (DfDeflateModel *m, guint len, guint64 rank)
{
  guint64 p = m->pos;
  if (avail (m, p) < MAX (len, DF_DEFLATE_MIN_MATCH))
    return 0;
  insert_upto (m, p);
  gint64 c = chain_start (m, p);
  for (guint steps = 0; c >= 0 && (guint64)c >= m->floor && steps < DF_DEFLATE_RANK_WALK_MAX; steps++)
    {
      guint64 d = p - (guint64)c;
      if (d > DF_DEFLATE_WSIZE)
        break;
      if (match_len (m, (guint64)c, p, len) >= len)
        {
          if (rank == 0)
            return (guint)d;
          rank--;
        }
      gint64 n = link_pos (m, m->prev[c & (m->wsize - 1)]);
      if (n >= c)
        break;
      c = n;
    }
  return 0;
}

void
dfi_deflate_model_save (const DfDeflateModel *m, DfDeflateModelState *s)
{
  *s = (DfDeflateModelState){ .frontier = m->frontier,
                              .win_offset = m->win_offset,
                              .win_loaded = m->win_loaded,
                              .floor = m->floor,
                              .cache = m->have_cache ? m->cache : 0,
                              .have_cache = m->have_cache,
                              .win_eof = m->win_eof };
}

gboolean
dfi_deflate_model_state_ok (const DfDeflateModel *m, guint64 pos, const DfDeflateModelState *s)
{
  if (m->p.kind == DF_DEFLATE_MODEL_GREEDY || pos >= m->total || s->floor > pos)
    return FALSE;
  if (m->p.kind == DF_DEFLATE_MODEL_LAZY)
    {
      /* The lazy model's frontier trails its position by a match at most
       * and leads it by two. */
      if (s->frontier > pos + 2 || s->frontier + DF_DEFLATE_MAX_MATCH < pos)
        return FALSE;
    }
  else if (s->frontier != 0 || s->have_cache)
    return FALSE; /* no chains, no look-ahead */
  if (s->have_cache && s->cache != 0)
    {
      guint len = DF_DEFLATE_TOK_LEN (s->cache), dist = DF_DEFLATE_TOK_DIST (s->cache);
      if (s->cache != dfi_deflate_tok_match (len, dist) || len < DF_DEFLATE_MIN_MATCH || len > DF_DEFLATE_MAX_MATCH
          || len > m->total - pos || dist == 0 || dist > pos || dist > DF_DEFLATE_WSIZE)
        return FALSE;
    }
  /* The window as win_sync() keeps it: slid by whole windows, never past
   * the content or the position (which a stored block may have taken far
   * past it: the next search slides it on). */
  return s->win_offset <= pos && s->win_offset % m->wsize == 0 && s->win_loaded >= s->win_offset
         && s->win_loaded <= m->total && s->win_loaded - s->win_offset <= 2 * (guint64)m->wsize;
}

void
dfi_deflate_model_restore (DfDeflateModel *m, guint64 pos, const DfDeflateModelState *s)
{
  m->pos = pos;
  m->win_offset = s->win_offset;
  m->win_loaded = s->win_loaded;
  m->win_eof = s->win_eof;
  m->floor = s->floor;
  m->have_cache = s->have_cache;
  m->cache = s->cache;
  if (m->p.kind != DF_DEFLATE_MODEL_LAZY)
    {
      m->frontier = s->frontier;
      return;
    }
  /* Every position goes into the chains in order, so those of the last
   * 32 KiB make the chains a search at @pos or later can reach: a link
   * further back is beyond every distance the model takes. */
  m->frontier = pos > DF_DEFLATE_WSIZE ? pos - DF_DEFLATE_WSIZE : 0;
  insert_upto (m, s->frontier);
}
