/* Recipes for zlib's deflate (gzip, zlib and raw streams): the encoder a
 * rebuild runs and the settings a search lists from the stream's header
 * (df-recipe.h is the manual). */
#include "df-recipe-private.h"

/* ------------------------------------------------------------------------ */
/* Encoding                                                                  */

guint64
dfi_recipe_zlib_memory (const DfRecipe *r)
{
  /* zlib.h's figure, plus the deflate state (under 6 KiB in 1.2.13). */
  return (G_GUINT64_CONSTANT (1) << (r->deflate.window_bits + 2))
         + (G_GUINT64_CONSTANT (1) << (r->deflate.mem_level + 9)) + 8 * 1024;
}

gboolean
dfi_recipe_zlib_start (DfRecipeEncoder *e, GError **error)
{
  const DfRecipe *r = e->r;
  memset (&e->z, 0, sizeof e->z);
  if (deflateInit2 (&e->z, r->level, Z_DEFLATED, -(int)r->deflate.window_bits, r->deflate.mem_level,
                    r->deflate.strategy)
      != Z_OK)
    return dfi_throw (error, DF_ERROR_FAILED, "recipe rebuild: zlib cannot start its encoder");
  e->z_live = TRUE;
  e->sum = r->codec == DF_RECIPE_CODEC_GZIP ? crc32 (0, NULL, 0) : adler32 (0, NULL, 0);
  return dfi_recipe_emit (e, r->deflate.header, r->deflate.header_len, error);
}

gboolean
dfi_recipe_zlib_feed (DfRecipeEncoder *e, const guint8 *in, gsize len, gboolean last, GError **error)
{
  const DfRecipe *r = e->r;
  if (r->codec == DF_RECIPE_CODEC_GZIP)
    e->sum = crc32_z (e->sum, in, len);
  else if (r->codec == DF_RECIPE_CODEC_ZLIB)
    e->sum = adler32_z (e->sum, in, len);
  e->z.next_in = (Bytef *)in;
  e->z.avail_in = (uInt)len;
  for (;;)
    {
      e->z.next_out = e->out;
      e->z.avail_out = e->out_size;
      int ret = deflate (&e->z, last ? Z_FINISH : Z_NO_FLUSH);
      if (ret == Z_STREAM_ERROR)
        return dfi_throw (error, DF_ERROR_FAILED, "recipe rebuild: zlib failed");
      if (!dfi_recipe_emit (e, e->out, e->out_size - e->z.avail_out, error))
        return FALSE;
      if (last ? ret == Z_STREAM_END : e->z.avail_in == 0 && e->z.avail_out != 0)
        break;
    }
  if (!last || r->codec == DF_RECIPE_CODEC_DEFLATE)
    return TRUE;
  guint8 trailer[8];
  if (r->codec == DF_RECIPE_CODEC_GZIP)
    {
      guint32 isize = (guint32)e->in_total;
      for (guint i = 0; i < 4; i++)
        {
          trailer[i] = (guint8)(e->sum >> (8 * i));
          trailer[4 + i] = (guint8)(isize >> (8 * i));
        }
      return dfi_recipe_emit (e, trailer, 8, error);
    }
  for (guint i = 0; i < 4; i++)
    trailer[i] = (guint8)(e->sum >> (24 - 8 * i));
  return dfi_recipe_emit (e, trailer, 4, error);
}

/* ------------------------------------------------------------------------ */
/* Candidates                                                                */

/* zlib's level hints: the gzip XFL byte and the zlib FLEVEL field as zlib
 * 1.2.13 writes them. */
static void
deflate_candidates (GArray *list, DfRecipe *base, const int *levels, guint n_levels, gboolean huffman_hint)
{
  DfRecipe r = *base;
  r.deflate.strategy = Z_DEFAULT_STRATEGY;
  for (guint ml = 8; ml <= 9; ml++)
    for (guint i = 0; i < n_levels; i++)
      {
        r.level = levels[i];
        r.deflate.mem_level = (guint8)ml;
        dfi_recipe_candidate_add (list, &r);
      }
  r.deflate.mem_level = 8;
  if (huffman_hint)
    {
      r.level = 1;
      r.deflate.strategy = Z_HUFFMAN_ONLY;
      dfi_recipe_candidate_add (list, &r);
      r.deflate.strategy = Z_RLE;
      dfi_recipe_candidate_add (list, &r);
    }
  for (guint s = Z_FILTERED; s <= Z_FIXED; s += Z_FIXED - Z_FILTERED)
    for (guint i = 0; i < n_levels; i++)
      {
        r.level = levels[i];
        r.deflate.strategy = (guint8)s;
        dfi_recipe_candidate_add (list, &r);
      }
}

static const int all_levels[] = { 6, 9, 1, 5, 4, 3, 2, 7, 8 };

/* Length of the gzip member header in @h (@n bytes read), or 0 when it is
 * not one zlib could follow. */
static gsize
gzip_header_len (const guint8 *h, gsize n)
{
  if (n < 10 || h[0] != 0x1f || h[1] != 0x8b || h[2] != 8 || (h[3] & 0xe0))
    return 0;
  gsize pos = 10;
  if (h[3] & 4) /* FEXTRA */
    {
      if (pos + 2 > n)
        return 0;
      pos += 2 + (h[pos] | (gsize)h[pos + 1] << 8);
    }
  for (guint flag = 8; flag <= 16; flag <<= 1) /* FNAME, FCOMMENT */
    if (h[3] & flag)
      {
        while (pos < n && h[pos] != 0)
          pos++;
        if (pos >= n)
          return 0;
        pos++;
      }
  if (h[3] & 2) /* FHCRC */
    pos += 2;
  return pos <= MIN (n, (gsize)DF_RECIPE_HEADER_MAX) ? pos : 0;
}

void
dfi_recipe_zlib_list (GArray *list, DfRecipe *base, const guint8 *h, gsize n, const DfRecipeSpan *stream)
{
  if (base->codec == DF_RECIPE_CODEC_GZIP)
    {
      gsize hl = gzip_header_len (h, n);
      if (hl == 0 || stream->length < hl + 8)
        return;
      memcpy (base->deflate.header, h, hl);
      base->deflate.header_len = (guint16)hl;
      guint8 isize[4];
      if (!dfi_pread_all (stream->fd, isize, 4, stream->offset + stream->length - 4, "gzip trailer", NULL)
          || (isize[0] | isize[1] << 8 | isize[2] << 16 | (guint32)isize[3] << 24) != (guint32)base->content_size)
        return; /* not this content */
      static const int xfl0[] = { 6, 5, 4, 3, 2, 7, 8 }, nine[] = { 9 }, one[] = { 1 };
      if (h[8] == 2)
        deflate_candidates (list, base, nine, 1, FALSE);
      else if (h[8] == 4)
        deflate_candidates (list, base, one, 1, TRUE);
      else if (h[8] == 0)
        deflate_candidates (list, base, xfl0, G_N_ELEMENTS (xfl0), FALSE);
      else
        deflate_candidates (list, base, all_levels, G_N_ELEMENTS (all_levels), TRUE);
      return;
    }
  if (base->codec == DF_RECIPE_CODEC_ZLIB)
    {
      base->deflate.window_bits = (guint8)((h[0] >> 4) + 8);
      base->deflate.header_len = 2;
      memcpy (base->deflate.header, h, 2);
      static const int f0[] = { 1 }, f1[] = { 2, 3, 4, 5 }, f2[] = { 6 }, f3[] = { 9, 7, 8 };
      static const int *const f[] = { f0, f1, f2, f3 };
      static const guint nf[] = { 1, 4, 1, 3 };
      deflate_candidates (list, base, f[h[1] >> 6], nf[h[1] >> 6], h[1] >> 6 == 0);
      return;
    }
  deflate_candidates (list, base, all_levels, G_N_ELEMENTS (all_levels), TRUE);
}
