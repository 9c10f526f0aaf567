/* Predicting a dynamic block's Huffman header from its symbol frequencies
 * the way zlib and GNU gzip build theirs (the same algorithm in both):
 * length-limited Huffman codes from a heap that breaks ties by subtree
 * depth, lengths over the limit moved down as they do, and the code length
 * sequence run-length coded per tree with their run rules. */
#include "df-deflate-private.h"

#define HEAP_SIZE (2 * 286 + 1)

typedef struct
{
  guint32 freq[HEAP_SIZE];
  guint16 dad[HEAP_SIZE];
  guint16 len[HEAP_SIZE];
  guint8 depth[HEAP_SIZE];
  int heap[HEAP_SIZE];
  int heap_len, heap_max;
} Tree;

static inline gboolean
smaller (const Tree *t, int n, int m)
{
  return t->freq[n] < t->freq[m] || (t->freq[n] == t->freq[m] && t->depth[n] <= t->depth[m]);
}

static void
downheap (Tree *t, int k)
{
  int v = t->heap[k], j = k << 1;
  while (j <= t->heap_len)
    {
      if (j < t->heap_len && smaller (t, t->heap[j + 1], t->heap[j]))
        j++;
      if (smaller (t, v, t->heap[j]))
        break;
      t->heap[k] = t->heap[j];
      k = j;
      j <<= 1;
    }
  t->heap[k] = v;
}

/* Lengths of the leaves, limited to @max_length, into @lens (@elems);
 * returns the largest symbol with a code. */
static int
build_tree (Tree *t, const guint32 *freq, int elems, guint max_length, guint8 *lens)
{
  int max_code = -1;
  t->heap_len = 0;
  t->heap_max = HEAP_SIZE;
  for (int n = 0; n < elems; n++)
    {
      t->freq[n] = freq[n];
      t->len[n] = 0;
      if (freq[n])
        {
          t->heap[++t->heap_len] = max_code = n;
          t->depth[n] = 0;
        }
    }
  /* Two codes at least, so every code has a bit. */
  while (t->heap_len < 2)
    {
      int node = t->heap[++t->heap_len] = max_code < 2 ? ++max_code : 0;
      t->freq[node] = 1;
      t->depth[node] = 0;
    }
  for (int n = t->heap_len / 2; n >= 1; n--)
    downheap (t, n);
  int node = elems;
  do
    {
      int n = t->heap[1];
      t->heap[1] = t->heap[t->heap_len--];
      downheap (t, 1);
      int m = t->heap[1];
      t->heap[--t->heap_max] = n;
      t->heap[--t->heap_max] = m;
      t->freq[node] = t->freq[n] + t->freq[m];
      t->depth[node] = (guint8)(MAX (t->depth[n], t->depth[m]) + 1);
      t->dad[n] = t->dad[m] = (guint16)node;
      t->heap[1] = node++;
      downheap (t, 1);
    }
  while (t->heap_len >= 2);
  t->heap[--t->heap_max] = t->heap[1];

  /* Depths, clipped at the limit; the overflow then moved down. */
  guint bl_count[16] = { 0 };
  int overflow = 0;
  t->len[t->heap[t->heap_max]] = 0;
  int h;
  for (h = t->heap_max + 1; h < HEAP_SIZE; h++)
    {
      int n = t->heap[h];
      guint bits = t->len[t->dad[n]] + 1u;
      if (bits > max_length)
        {
          bits = max_length;
          overflow++;
        }
      t->len[n] = (guint16)bits;
      if (n <= max_code)
        bl_count[bits]++;
    }
  if (overflow > 0)
    {
      do
        {
          guint bits = max_length - 1;
          while (bl_count[bits] == 0)
            bits--;
          bl_count[bits]--;
          bl_count[bits + 1] += 2;
          bl_count[max_length]--;
          overflow -= 2;
        }
      while (overflow > 0);
      h = HEAP_SIZE;
      for (guint bits = max_length; bits != 0; bits--)
        {
          guint n = bl_count[bits];
          while (n != 0)
            {
              int m = t->heap[--h];
              if (m > max_code)
                continue;
              t->len[m] = (guint16)bits;
              n--;
            }
        }
    }
  for (int n = 0; n < elems; n++)
    lens[n] = n <= max_code ? (guint8)t->len[n] : 0;
  return max_code;
}

/* The run-length coding of @lens[0..max_code] as they send it: into
 * @h->cl when @h is not NULL, counted into @bl_freq otherwise. */
static void
scan_lengths (const guint8 *lens, int max_code, guint32 *bl_freq, DfDeflateHeader *h)
{
  int prevlen = -1, nextlen = lens[0], count = 0, max_count = 7, min_count = 4;
  if (nextlen == 0)
    max_count = 138, min_count = 3;
  for (int n = 0; n <= max_code; n++)
    {
      int curlen = nextlen;
      nextlen = n + 1 <= max_code ? lens[n + 1] : 0xffff;
      if (++count < max_count && curlen == nextlen)
        continue;
      if (count < min_count)
        {
          if (h)
            for (int i = 0; i < count; i++)
              h->cl[h->ncl++] = (guint16)curlen;
          else
            bl_freq[curlen] += count;
        }
      else if (curlen != 0)
        {
          if (curlen != prevlen)
            {
              if (h)
                h->cl[h->ncl++] = (guint16)curlen;
              else
                bl_freq[curlen]++;
              count--;
            }
          if (h)
            h->cl[h->ncl++] = (guint16)(16 | (count - 3) << 5);
          else
            bl_freq[16]++;
        }
      else if (count <= 10)
        {
          if (h)
            h->cl[h->ncl++] = (guint16)(17 | (count - 3) << 5);
          else
            bl_freq[17]++;
        }
      else
        {
          if (h)
            h->cl[h->ncl++] = (guint16)(18 | (count - 11) << 5);
          else
            bl_freq[18]++;
        }
      count = 0;
      prevlen = curlen;
      if (nextlen == 0)
        max_count = 138, min_count = 3;
      else if (curlen == nextlen)
        max_count = 6, min_count = 3;
      else
        max_count = 7, min_count = 4;
    }
}

void
dfi_deflate_header_predict (const guint32 *tokens, guint64 n, DfDeflateHeader *h)
{
  guint32 lf[286] = { 0 }, df[30] = { 0 }, bf[19] = { 0 };
  for (guint64 i = 0; i < n; i++)
    {
      guint32 t = tokens[i];
      if (!(t & DF_DEFLATE_TOK_MATCH))
        lf[t]++;
      else
        {
          lf[257 + dfi_deflate_len_code (DF_DEFLATE_TOK_LEN (t))]++;
          df[dfi_deflate_dist_code (DF_DEFLATE_TOK_DIST (t))]++;
        }
    }
  lf[256] = 1;
  memset (h, 0, sizeof *h);
  g_autofree Tree *t = g_new (Tree, 1);
  int lmax = build_tree (t, lf, 286, 15, h->lit);
  int dmax = build_tree (t, df, 30, 15, h->dist);
  scan_lengths (h->lit, lmax, bf, NULL);
  scan_lengths (h->dist, dmax, bf, NULL);
  build_tree (t, bf, 19, 7, h->clen_lens);
  int maxb;
  for (maxb = 18; maxb >= 3; maxb--)
    if (h->clen_lens[dfi_deflate_clen_order[maxb]] != 0)
      break;
  h->hlit = (guint)lmax + 1;
  h->hdist = (guint)dmax + 1;
  h->hclen = (guint)maxb + 1;
  scan_lengths (h->lit, lmax, NULL, h);
  scan_lengths (h->dist, dmax, NULL, h);
}

gboolean
dfi_deflate_header_equal (const DfDeflateHeader *a, const DfDeflateHeader *b)
{
  return a->hlit == b->hlit && a->hdist == b->hdist && a->hclen == b->hclen
         && memcmp (a->clen_lens, b->clen_lens, sizeof a->clen_lens) == 0 && a->ncl == b->ncl
         && memcmp (a->cl, b->cl, a->ncl * sizeof a->cl[0]) == 0 && memcmp (a->lit, b->lit, sizeof a->lit) == 0
         && memcmp (a->dist, b->dist, sizeof a->dist) == 0;
}
