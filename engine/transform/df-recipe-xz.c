/* Recipes for liblzma's xz: the filter chain, the encoder's memory, the
 * encoder a rebuild runs and the settings a search lists from the stream
 * and block headers (df-recipe.h is the manual). */
#include "df-recipe-private.h"

/* ------------------------------------------------------------------------ */
/* Encoding                                                                  */

/* The xz filter chain of @r in @filters (LZMA_FILTERS_MAX + 1 entries),
 * pointing into @lzma and @opts. */
static void
xz_filters (const DfRecipe *r, lzma_filter *filters, lzma_options_lzma *lzma, lzma_options_bcj *bcj,
            lzma_options_delta *delta)
{
  guint n = 0;
  for (guint i = 0; i < r->xz.n_filters; i++)
    {
      const DfRecipeFilter *f = &r->xz.filters[i];
      filters[n].id = f->id;
      if (f->id == LZMA_FILTER_DELTA)
        {
          delta[i] = (lzma_options_delta){ .type = LZMA_DELTA_TYPE_BYTE, .dist = f->arg };
          filters[n].options = &delta[i];
        }
      else
        {
          bcj[i] = (lzma_options_bcj){ .start_offset = f->arg };
          filters[n].options = f->arg ? &bcj[i] : NULL;
        }
      n++;
    }
  lzma_lzma_preset (lzma, (uint32_t)r->level | (r->xz.extreme ? LZMA_PRESET_EXTREME : 0));
  lzma->dict_size = r->xz.dict_size;
  lzma->lc = r->xz.lc;
  lzma->lp = r->xz.lp;
  lzma->pb = r->xz.pb;
  filters[n].id = LZMA_FILTER_LZMA2;
  filters[n].options = lzma;
  filters[n + 1].id = LZMA_VLI_UNKNOWN;
  filters[n + 1].options = NULL;
}

static lzma_mt
xz_mt (const DfRecipe *r, const lzma_filter *filters)
{
  return (lzma_mt){ .threads = 1, .block_size = r->xz.block_size, .filters = filters, .check = r->xz.check };
}

gboolean
dfi_recipe_xz_memory (const DfRecipe *r, guint64 *out, GError **error)
{
  guint64 mem;
  lzma_filter filters[LZMA_FILTERS_MAX + 1];
  lzma_options_lzma lzma;
  lzma_options_bcj bcj[DF_RECIPE_FILTERS_MAX];
  lzma_options_delta delta[DF_RECIPE_FILTERS_MAX];
  xz_filters (r, filters, &lzma, bcj, delta);
  if (r->xz.block_size)
    {
      lzma_mt mt = xz_mt (r, filters);
      mem = lzma_stream_encoder_mt_memusage (&mt);
    }
  else
    mem = lzma_raw_encoder_memusage (filters);
  if (mem == UINT64_MAX)
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "recipe: liblzma refuses the xz options");
  mem += 16 * 1024; /* stream and block encoder state */
  *out = mem;
  return TRUE;
}

gboolean
dfi_recipe_xz_start (DfRecipeEncoder *e, GError **error)
{
  const DfRecipe *r = e->r;
  lzma_filter filters[LZMA_FILTERS_MAX + 1];
  lzma_options_lzma lzma;
  lzma_options_bcj bcj[DF_RECIPE_FILTERS_MAX];
  lzma_options_delta delta[DF_RECIPE_FILTERS_MAX];
  xz_filters (r, filters, &lzma, bcj, delta);
  e->lz = (lzma_stream)LZMA_STREAM_INIT;
  lzma_ret ret;
  if (r->xz.block_size)
    {
      lzma_mt mt = xz_mt (r, filters);
      ret = lzma_stream_encoder_mt (&e->lz, &mt);
    }
  else
    ret = lzma_stream_encoder (&e->lz, filters, (lzma_check)r->xz.check);
  if (ret != LZMA_OK)
    return dfi_throw (error, ret == LZMA_MEM_ERROR ? DF_ERROR_FAILED : DF_ERROR_INVALID_DELTA,
                      "recipe rebuild: liblzma cannot start its encoder (%d)", (int)ret);
  e->lz_live = TRUE;
  return TRUE;
}

gboolean
dfi_recipe_xz_feed (DfRecipeEncoder *e, const guint8 *in, gsize len, gboolean last, GError **error)
{
  e->lz.next_in = in;
  e->lz.avail_in = len;
  for (;;)
    {
      e->lz.next_out = e->out;
      e->lz.avail_out = e->out_size;
      lzma_ret ret = lzma_code (&e->lz, last ? LZMA_FINISH : LZMA_RUN);
      if (ret != LZMA_OK && ret != LZMA_STREAM_END)
        return dfi_throw (error, DF_ERROR_FAILED, "recipe rebuild: liblzma failed (%d)", (int)ret);
      if (!dfi_recipe_emit (e, e->out, e->out_size - e->lz.avail_out, error))
        return FALSE;
      if (last ? ret == LZMA_STREAM_END : e->lz.avail_in == 0 && e->lz.avail_out != 0)
        break;
    }
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* Candidates                                                                */

/* xz's presets by dictionary size, to try those whose own dictionary is the
 * block header's first. */
void
dfi_recipe_xz_list (GArray *list, DfRecipe *base, const guint8 *h, gsize n)
{
  lzma_stream_flags flags;
  if (n < LZMA_STREAM_HEADER_SIZE + 1 || lzma_stream_header_decode (&flags, h) != LZMA_OK)
    return;
  base->xz.check = (guint8)flags.check;
  lzma_filter filters[LZMA_FILTERS_MAX + 1];
  lzma_block block = { .version = 1, .check = flags.check, .filters = filters };
  block.header_size = lzma_block_header_size_decode (h[LZMA_STREAM_HEADER_SIZE]);
  if (h[LZMA_STREAM_HEADER_SIZE] == 0 || LZMA_STREAM_HEADER_SIZE + block.header_size + 6 > n
      || lzma_block_header_decode (&block, NULL, h + LZMA_STREAM_HEADER_SIZE) != LZMA_OK)
    return;
  guint n_filters = 0;
  while (n_filters < LZMA_FILTERS_MAX && filters[n_filters].id != LZMA_VLI_UNKNOWN)
    n_filters++;
  gboolean usable
      = n_filters >= 1 && n_filters - 1 <= DF_RECIPE_FILTERS_MAX && filters[n_filters - 1].id == LZMA_FILTER_LZMA2;
  for (guint i = 0; usable && i + 1 < n_filters; i++)
    {
      if (filters[i].id == LZMA_FILTER_DELTA)
        base->xz.filters[i].arg = ((lzma_options_delta *)filters[i].options)->dist;
      else if (dfi_recipe_is_bcj (filters[i].id))
        base->xz.filters[i].arg = filters[i].options ? ((lzma_options_bcj *)filters[i].options)->start_offset : 0;
      else
        usable = FALSE;
      base->xz.filters[i].id = filters[i].id;
    }
  if (usable)
    {
      base->xz.n_filters = (guint8)(n_filters - 1);
      base->xz.dict_size = ((lzma_options_lzma *)filters[n_filters - 1].options)->dict_size;
    }
  lzma_filters_free (filters, NULL);
  if (!usable)
    return;
  /* Sizes in the block header: the multi-threaded encoder wrote it. Its
   * block size is the first block's content when there are more blocks;
   * when one block holds it all, any size from there up cuts the same
   * blocks, but liblzma 5.4 tunes the encoder to the block size, so xz's
   * default (3 times the dictionary, at least 1 MiB) comes first. */
  guint64 block_sizes[2] = { 0 };
  guint n_block_sizes = 1;
  if (block.uncompressed_size != LZMA_VLI_UNKNOWN)
    {
      guint64 first = MAX (block.uncompressed_size, 1);
      guint64 xz_default = MAX ((guint64)base->xz.dict_size * 3, DF_MIB);
      block_sizes[0] = first;
      if (first >= base->content_size && xz_default > first)
        {
          block_sizes[0] = xz_default;
          block_sizes[1] = first;
          n_block_sizes = 2;
        }
      if (block_sizes[0] > DF_RECIPE_XZ_BLOCK_MAX)
        return;
    }
  /* lc, lp and pb from the first LZMA2 chunk, when it is an LZMA chunk
   * with properties. */
  const guint8 *chunk = h + LZMA_STREAM_HEADER_SIZE + block.header_size;
  guint lc = 3, lp = 0, pb = 2;
  if (chunk[0] >= 0xc0 && chunk[5] < 9 * 5 * 5)
    {
      lc = chunk[5] % 9;
      lp = chunk[5] / 9 % 5;
      pb = chunk[5] / 45;
      if (lc + lp > LZMA_LCLP_MAX)
        return;
    }
  base->xz.lc = (guint8)lc;
  base->xz.lp = (guint8)lp;
  base->xz.pb = (guint8)pb;

  /* Presets differ in mode, nice length, match finder, depth and
   * dictionary; the dictionary comes from the header, so presets that
   * differ only there (6 to 9) are one candidate. */
  static const int order[] = { 6, 9, 0, 1, 2, 3, 4, 5, 7, 8 };
  lzma_options_lzma seen[40];
  guint n_seen = 0;
  for (guint round = 0; round < 4; round++)
    for (guint i = 0; i < G_N_ELEMENTS (order); i++)
      {
        guint extreme = round & 1;
        lzma_options_lzma o;
        lzma_lzma_preset (&o, (uint32_t)order[i] | (extreme ? LZMA_PRESET_EXTREME : 0));
        gboolean own_dict = o.dict_size == base->xz.dict_size;
        if ((round < 2) != own_dict)
          continue;
        gboolean dup = FALSE;
        for (guint j = 0; j < n_seen && !dup; j++)
          dup = seen[j].mode == o.mode && seen[j].nice_len == o.nice_len && seen[j].mf == o.mf
                && seen[j].depth == o.depth;
        if (dup)
          continue;
        seen[n_seen++] = o;
        DfRecipe r = *base;
        r.level = order[i];
        r.xz.extreme = extreme;
        for (guint b = 0; b < n_block_sizes; b++)
          {
            r.xz.block_size = block_sizes[b];
            dfi_recipe_candidate_add (list, &r);
          }
      }
}
