/* Recipe search (build server): lists the encoder settings a stream's
 * headers allow (the codec files' dfi_recipe_*_list()) and runs them in
 * turn against the stream (df-recipe.h is the manual). */
#include "df-recipe-private.h"

/* Errors that end one candidate, never returned to the caller. */
#define STOP_QUARK (g_quark_from_static_string ("df-recipe-find-stop"))
enum
{
  STOP_DIFFERS,
  STOP_BUDGET,
};

typedef struct
{
  const DfRecipeSpan *span;
  guint64 pos;
  guint64 budget; /* content bytes this candidate may still read */
  guint64 *fed;
} ContentReader;

static gssize
content_read (gpointer data, guint8 *buf, gsize len, GError **error)
{
  ContentReader *cr = data;
  guint64 n = MIN ((guint64)len, cr->span->length - cr->pos);
  if (n == 0)
    return 0;
  if (cr->budget == 0)
    {
      g_set_error_literal (error, STOP_QUARK, STOP_BUDGET, "budget");
      return -1;
    }
  n = MIN (n, cr->budget);
  if (!dfi_pread_all (cr->span->fd, buf, n, cr->span->offset + cr->pos, "recipe search: content", error))
    return -1;
  cr->pos += n;
  cr->budget -= n;
  *cr->fed += n;
  return (gssize)n;
}

typedef struct
{
  const DfRecipeSpan *span;
  guint64 pos;
  guint64 *compared;
  guint8 buf[DF_RECIPE_BUFFER];
} Comparer;

static gboolean
compare_write (gpointer data, const guint8 *out, gsize len, GError **error)
{
  Comparer *c = data;
  while (len > 0)
    {
      if (c->pos == c->span->length)
        return g_set_error_literal (error, STOP_QUARK, STOP_DIFFERS, "longer"), FALSE;
      gsize n = (gsize)MIN ((guint64)MIN (len, sizeof c->buf), c->span->length - c->pos);
      if (!dfi_pread_all (c->span->fd, c->buf, n, c->span->offset + c->pos, "recipe search: stream", error))
        return FALSE;
      if (memcmp (c->buf, out, n) != 0)
        return g_set_error_literal (error, STOP_QUARK, STOP_DIFFERS, "differs"), FALSE;
      c->pos += n;
      *c->compared += n;
      out += n;
      len -= n;
    }
  return TRUE;
}

/* Most candidates listed before running any. */
#define LISTED_MAX 256

void
dfi_recipe_candidate_add (GArray *list, const DfRecipe *r)
{
  if (list->len >= LISTED_MAX)
    return;
  for (guint i = 0; i < list->len; i++)
    if (memcmp (&g_array_index (list, DfRecipe, i), r, sizeof *r) == 0)
      return;
  g_array_append_vals (list, r, 1);
}

gboolean
dfi_recipe_find (const DfRecipeSpan *compressed, const DfRecipeSpan *content, const DfRecipeFindLimits *limits,
                 DfRecipe *out, gboolean *found, DfRecipeFindStats *stats, GCancellable *cancellable, GError **error)
{
  DfRecipeFindStats st = { 0 };
  *found = FALSE;
  memset (out, 0, sizeof *out);
  guint max_candidates = limits && limits->max_candidates ? limits->max_candidates : DF_RECIPE_FIND_CANDIDATES_DEFAULT;
  guint64 max_bytes = limits && limits->max_bytes ? limits->max_bytes : DF_RECIPE_FIND_BYTES_DEFAULT;
  guint64 max_memory
      = limits && limits->max_memory ? MIN (limits->max_memory, DF_RECIPE_FIND_MEMORY_MAX) : DF_RECIPE_FIND_MEMORY_MAX;

  gsize n = (gsize)MIN (compressed->length, (guint64)DF_RECIPE_HEADER_MAX + 64);
  g_autofree guint8 *h = g_malloc0 (DF_RECIPE_HEADER_MAX + 64);
  if (!dfi_pread_all (compressed->fd, h, n, compressed->offset, "recipe search: stream", error))
    return FALSE;
  if (compressed->length == 0 || content->length > DF_RECIPE_CONTENT_MAX
      || compressed->length > dfi_recipe_stream_size_max (content->length))
    {
      if (stats)
        *stats = st;
      return TRUE;
    }

  g_autoptr (GArray) list = g_array_new (FALSE, FALSE, sizeof (DfRecipe));
  g_autofree DfRecipe *base = g_new0 (DfRecipe, 1);
  base->content_size = content->length;
  base->stream_size = compressed->length;
  static const guint8 xz_magic[] = { 0xfd, '7', 'z', 'X', 'Z', 0 };
  if (n >= 18 && memcmp (h, xz_magic, 6) == 0)
    base->codec = DF_RECIPE_CODEC_XZ;
  else if (n >= 6 && h[0] == 0x28 && h[1] == 0xb5 && h[2] == 0x2f && h[3] == 0xfd)
    base->codec = DF_RECIPE_CODEC_ZSTD;
  else if (n >= 18 && h[0] == 0x1f && h[1] == 0x8b)
    base->codec = DF_RECIPE_CODEC_GZIP;
  else if (n >= 6 && (h[0] & 0x0f) == 8 && (h[0] >> 4) <= 7 && (h[0] >> 4) >= 1 && !(h[1] & 0x20)
           && (h[0] * 256 + h[1]) % 31 == 0)
    base->codec = DF_RECIPE_CODEC_ZLIB;
  else
    base->codec = DF_RECIPE_CODEC_DEFLATE;
  dfi_recipe_library_identity (base->codec, base->library);
  if (dfi_recipe_is_deflate_family (base->codec))
    {
      base->deflate.window_bits = 15;
      base->deflate.mem_level = 8;
      dfi_recipe_zlib_list (list, base, h, n, compressed);
    }
  else if (base->codec == DF_RECIPE_CODEC_ZSTD)
    dfi_recipe_zstd_list (list, base, h, n);
  else
    dfi_recipe_xz_list (list, base, h, n);
  st.listed = list->len;

  for (guint i = 0; i < list->len; i++)
    {
      const DfRecipe *r = &g_array_index (list, DfRecipe, i);
      guint64 mem;
      if (!dfi_recipe_memory (r, &mem, NULL) || mem > max_memory)
        {
          st.skipped++;
          continue;
        }
      if (st.candidates >= max_candidates || st.bytes_in >= max_bytes)
        {
          st.exhausted = TRUE;
          break;
        }
      st.candidates++;
      ContentReader cr = { .span = content, .budget = max_bytes - st.bytes_in, .fed = &st.bytes_in };
      g_autofree Comparer *cmp = g_new0 (Comparer, 1);
      cmp->span = compressed;
      cmp->compared = &st.bytes_out;
      g_autoptr (GError) local = NULL;
      if (dfi_recipe_run (r, content_read, &cr, compare_write, cmp, cancellable, &local))
        {
          *out = *r;
          *found = TRUE;
          break;
        }
      if (local->domain == STOP_QUARK && local->code == STOP_BUDGET)
        {
          st.exhausted = TRUE;
          break;
        }
      /* A differing byte, or a length or size mismatch: the next one. */
      if (local->domain == STOP_QUARK
          || (local->domain == DF_ERROR && (local->code == DF_ERROR_CORRUPT || local->code == DF_ERROR_INVALID_DELTA)))
        continue;
      g_propagate_error (error, g_steal_pointer (&local));
      if (stats)
        *stats = st;
      return FALSE;
    }
  if (stats)
    *stats = st;
  return TRUE;
}
