/* Recipes: rebuilding compressed streams by compressing their content
 * again with zlib, libzstd or liblzma (df-recipe.h is the manual). */
#include "df-recipe.h"

#include <lzma.h>
#include <zlib.h>

/* ------------------------------------------------------------------------ */
/* Names and identities                                                      */

const char *
df_recipe_codec_name (DfRecipeCodec codec)
{
  switch (codec)
    {
    case DF_RECIPE_CODEC_GZIP:
      return "gzip";
    case DF_RECIPE_CODEC_ZLIB:
      return "zlib";
    case DF_RECIPE_CODEC_DEFLATE:
      return "deflate";
    case DF_RECIPE_CODEC_ZSTD:
      return "zstd";
    case DF_RECIPE_CODEC_XZ:
      return "xz";
    }
  return "unknown";
}

static gboolean
is_deflate_family (DfRecipeCodec codec)
{
  return codec == DF_RECIPE_CODEC_GZIP || codec == DF_RECIPE_CODEC_ZLIB || codec == DF_RECIPE_CODEC_DEFLATE;
}

gboolean
df_recipe_library_identity (DfRecipeCodec codec, char out[DF_RECIPE_LIBRARY_MAX])
{
  if (is_deflate_family (codec))
    g_snprintf (out, DF_RECIPE_LIBRARY_MAX, "zlib %s", zlibVersion ());
  else if (codec == DF_RECIPE_CODEC_ZSTD)
    g_snprintf (out, DF_RECIPE_LIBRARY_MAX, "zstd %s", ZSTD_versionString ());
  else if (codec == DF_RECIPE_CODEC_XZ)
    g_snprintf (out, DF_RECIPE_LIBRARY_MAX, "liblzma %s", lzma_version_string ());
  else
    {
      out[0] = '\0';
      return FALSE;
    }
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* Checks                                                                    */

static gboolean
bad (GError **error, const char *field, guint64 value)
{
  return df_throw (error, DF_ERROR_INVALID_DELTA, "recipe: %s out of range (%" G_GUINT64_FORMAT ")", field, value);
}

static gboolean
is_bool (gboolean b)
{
  return b == FALSE || b == TRUE;
}

static gboolean
is_bcj (guint64 id)
{
  return id >= LZMA_FILTER_X86 && id <= LZMA_FILTER_ARM64 && id != LZMA_FILTER_DELTA;
}

/* The longest a stream may be for its content: what the worst of the
 * codecs adds to incompressible data is far below 1/16 plus 1 MiB. */
static guint64
stream_size_max (guint64 content_size)
{
  return content_size + content_size / 16 + DF_MIB + DF_RECIPE_HEADER_MAX;
}

static gboolean
check_deflate_unused (const DfRecipe *r, GError **error)
{
  if (r->deflate.window_bits || r->deflate.mem_level || r->deflate.strategy || r->deflate.header_len)
    return bad (error, "deflate parameters of a non-deflate codec", 1);
  return TRUE;
}

static gboolean
check_zstd_unused (const DfRecipe *r, GError **error)
{
  if (r->zstd.window_log || r->zstd.checksum || r->zstd.content_size || r->zstd.pledged || r->zstd.mt
      || r->zstd.job_size || r->zstd.overlap_log)
    return bad (error, "zstd parameters of a non-zstd codec", 1);
  return TRUE;
}

static gboolean
check_xz_unused (const DfRecipe *r, GError **error)
{
  if (r->xz.extreme || r->xz.check || r->xz.dict_size || r->xz.lc || r->xz.lp || r->xz.pb || r->xz.n_filters
      || r->xz.block_size)
    return bad (error, "xz parameters of a non-xz codec", 1);
  for (guint i = 0; i < DF_RECIPE_FILTERS_MAX; i++)
    if (r->xz.filters[i].id || r->xz.filters[i].arg)
      return bad (error, "xz parameters of a non-xz codec", 1);
  return TRUE;
}

gboolean
df_recipe_check (const DfRecipe *r, GError **error)
{
  char lib[DF_RECIPE_LIBRARY_MAX];
  if (!df_recipe_library_identity (r->codec, lib))
    return df_throw (error, DF_ERROR_INVALID_DELTA, "recipe: unknown codec %d", (int)r->codec);
  gsize lib_len = strnlen (r->library, DF_RECIPE_LIBRARY_MAX);
  if (lib_len == 0 || lib_len == DF_RECIPE_LIBRARY_MAX)
    return bad (error, "library identity length", lib_len);
  for (gsize i = 0; i < lib_len; i++)
    if (!g_ascii_isprint (r->library[i]))
      return bad (error, "library identity character", (guint8)r->library[i]);
  if (r->content_size > DF_RECIPE_CONTENT_MAX)
    return bad (error, "content size", r->content_size);
  if (r->stream_size == 0 || r->stream_size > stream_size_max (r->content_size))
    return bad (error, "stream size", r->stream_size);

  if (is_deflate_family (r->codec))
    {
      if (r->level < 1 || r->level > 9)
        return bad (error, "zlib level", (guint64)r->level);
      if (r->deflate.window_bits < 9 || r->deflate.window_bits > 15)
        return bad (error, "zlib window bits", r->deflate.window_bits);
      if (r->deflate.mem_level < 1 || r->deflate.mem_level > 9)
        return bad (error, "zlib memory level", r->deflate.mem_level);
      if (r->deflate.strategy > Z_FIXED)
        return bad (error, "zlib strategy", r->deflate.strategy);
      const guint8 *h = r->deflate.header;
      if (r->codec == DF_RECIPE_CODEC_GZIP
          && (r->deflate.header_len < 10 || r->deflate.header_len > DF_RECIPE_HEADER_MAX || h[0] != 0x1f || h[1] != 0x8b
              || h[2] != 8))
        return bad (error, "gzip header length", r->deflate.header_len);
      if (r->codec == DF_RECIPE_CODEC_ZLIB
          && (r->deflate.header_len != 2 || (h[0] & 0x0f) != 8 || (h[1] & 0x20) || (h[0] * 256 + h[1]) % 31))
        return bad (error, "zlib header", r->deflate.header_len);
      if (r->codec == DF_RECIPE_CODEC_DEFLATE && r->deflate.header_len != 0)
        return bad (error, "raw deflate header length", r->deflate.header_len);
      return check_zstd_unused (r, error) && check_xz_unused (r, error);
    }

  if (r->codec == DF_RECIPE_CODEC_ZSTD)
    {
      if (r->level < ZSTD_minCLevel () || r->level > ZSTD_maxCLevel ())
        return bad (error, "zstd level", (guint64)(gint64)r->level);
      if (r->zstd.window_log && (r->zstd.window_log < ZSTD_WINDOWLOG_MIN || r->zstd.window_log > ZSTD_WINDOWLOG_MAX))
        return bad (error, "zstd window log", r->zstd.window_log);
      if (!is_bool (r->zstd.checksum) || !is_bool (r->zstd.content_size) || !is_bool (r->zstd.pledged)
          || !is_bool (r->zstd.mt))
        return bad (error, "zstd flag", 2);
      if (r->zstd.content_size && !r->zstd.pledged)
        return bad (error, "zstd content size flag without a pledged size", 1);
      if (r->zstd.job_size && (!r->zstd.mt || r->zstd.job_size < 512 * 1024 || r->zstd.job_size > 1024 * DF_MIB))
        return bad (error, "zstd job size", r->zstd.job_size);
      if (r->zstd.overlap_log && (!r->zstd.mt || r->zstd.overlap_log > 9))
        return bad (error, "zstd overlap log", r->zstd.overlap_log);
      return check_deflate_unused (r, error) && check_xz_unused (r, error);
    }

  /* xz */
  if (r->level < 0 || r->level > 9)
    return bad (error, "xz preset", (guint64)(gint64)r->level);
  if (!is_bool (r->xz.extreme))
    return bad (error, "xz extreme flag", 2);
  if (r->xz.check != LZMA_CHECK_NONE && r->xz.check != LZMA_CHECK_CRC32 && r->xz.check != LZMA_CHECK_CRC64
      && r->xz.check != LZMA_CHECK_SHA256)
    return bad (error, "xz check", r->xz.check);
  if (r->xz.dict_size < LZMA_DICT_SIZE_MIN || r->xz.dict_size > (UINT32_C (3) << 29))
    return bad (error, "xz dictionary size", r->xz.dict_size);
  if (r->xz.lc + r->xz.lp > LZMA_LCLP_MAX || r->xz.pb > LZMA_PB_MAX)
    return bad (error, "xz lc/lp/pb", r->xz.lc * 100 + r->xz.lp * 10 + r->xz.pb);
  if (r->xz.n_filters > DF_RECIPE_FILTERS_MAX)
    return bad (error, "xz filter count", r->xz.n_filters);
  for (guint i = 0; i < DF_RECIPE_FILTERS_MAX; i++)
    {
      const DfRecipeFilter *f = &r->xz.filters[i];
      if (i >= r->xz.n_filters)
        {
          if (f->id || f->arg)
            return bad (error, "xz unused filter", f->id);
        }
      else if (f->id == LZMA_FILTER_DELTA)
        {
          if (f->arg < LZMA_DELTA_DIST_MIN || f->arg > LZMA_DELTA_DIST_MAX)
            return bad (error, "xz delta distance", f->arg);
        }
      else if (!is_bcj (f->id))
        return bad (error, "xz filter", f->id);
    }
  if (r->xz.block_size > DF_RECIPE_XZ_BLOCK_MAX)
    return bad (error, "xz block size", r->xz.block_size);
  return check_deflate_unused (r, error) && check_zstd_unused (r, error);
}

typedef struct
{
  const DfRecipe *r;
  DfRecipeWriteFunc write;
  gpointer write_data;
  z_stream z;
  gboolean z_live;
  ZSTD_CCtx *zc;
  lzma_stream lz;
  gboolean lz_live;
  guint32 sum; /* gzip CRC-32 or zlib Adler-32 of the content */
  guint64 in_total, out_total;
  gsize out_size;
  guint8 *out;
} Encoder;

/* ------------------------------------------------------------------------ */
/* Encoder parameters                                                        */

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

/* Sets @r's parameters on @cctx; an error names the parameter. */
static gboolean
zstd_params (const DfRecipe *r, ZSTD_CCtx *cctx, ZSTD_CCtx_params *params, GError **error)
{
  struct
  {
    ZSTD_cParameter p;
    int v;
    const char *name;
  } set[] = {
    { ZSTD_c_compressionLevel, r->level, "level" },
    { ZSTD_c_windowLog, r->zstd.window_log, "window log" },
    { ZSTD_c_checksumFlag, r->zstd.checksum, "checksum flag" },
    { ZSTD_c_contentSizeFlag, r->zstd.content_size, "content size flag" },
    { ZSTD_c_nbWorkers, r->zstd.mt ? 1 : 0, "workers" },
    { ZSTD_c_jobSize, (int)r->zstd.job_size, "job size" },
    { ZSTD_c_overlapLog, r->zstd.overlap_log, "overlap log" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (set); i++)
    {
      if (!r->zstd.mt && (set[i].p == ZSTD_c_nbWorkers || set[i].p == ZSTD_c_jobSize || set[i].p == ZSTD_c_overlapLog))
        continue;
      size_t rc = cctx ? ZSTD_CCtx_setParameter (cctx, set[i].p, set[i].v)
                       : ZSTD_CCtxParams_setParameter (params, set[i].p, set[i].v);
      if (ZSTD_isError (rc))
        return df_throw (error, DF_ERROR_INVALID_DELTA, "recipe: zstd refuses %s %d: %s", set[i].name, set[i].v,
                         ZSTD_getErrorName (rc));
    }
  return TRUE;
}

/* The window log the zstd encoder uses for @r. */
static guint
zstd_window_log (const DfRecipe *r)
{
  if (r->zstd.window_log)
    return r->zstd.window_log;
  return ZSTD_getCParams (r->level, r->zstd.pledged ? r->content_size : ZSTD_CONTENTSIZE_UNKNOWN, 0).windowLog;
}

/* libzstd's default job size: 2^max(20, windowLog + 2). */
static guint64
zstd_job_size (const DfRecipe *r)
{
  if (r->zstd.job_size)
    return r->zstd.job_size;
  return G_GUINT64_CONSTANT (1) << MAX (20u, zstd_window_log (r) + 2);
}

gboolean
df_recipe_memory (const DfRecipe *r, guint64 *out, GError **error)
{
  if (!df_recipe_check (r, error))
    return FALSE;
  guint64 mem = 0;
  if (is_deflate_family (r->codec))
    /* zlib.h's figure, plus the deflate state (under 6 KiB in 1.2.13). */
    mem = (G_GUINT64_CONSTANT (1) << (r->deflate.window_bits + 2))
          + (G_GUINT64_CONSTANT (1) << (r->deflate.mem_level + 9)) + 8 * 1024;
  else if (r->codec == DF_RECIPE_CODEC_ZSTD)
    {
      ZSTD_CCtx_params *params = ZSTD_createCCtxParams ();
      DfRecipe st = *r;
      st.zstd.mt = FALSE;
      st.zstd.job_size = 0;
      st.zstd.overlap_log = 0;
      gboolean ok = zstd_params (&st, NULL, params, error);
      if (ok && r->zstd.pledged)
        ZSTD_CCtxParams_setParameter (params, ZSTD_c_srcSizeHint, (int)MIN (MAX (r->content_size, 1), G_MAXINT));
      /* In multi-threaded mode the worker's context takes its input from
       * the round buffer below: no streaming buffers of its own. */
      size_t est = !ok ? 0
                   : r->zstd.mt ? ZSTD_estimateCCtxSize_usingCCtxParams (params)
                                : ZSTD_estimateCStreamSize_usingCCtxParams (params);
      ZSTD_freeCCtxParams (params);
      if (!ok)
        return FALSE;
      if (ZSTD_isError (est))
        return df_throw (error, DF_ERROR_INVALID_DELTA, "recipe: zstd cannot estimate its memory: %s",
                         ZSTD_getErrorName (est));
      mem = est;
      if (r->zstd.mt)
        {
          /* libzstd does not estimate its multi-threaded mode. With one
           * worker it holds the worker's context (about the
           * single-threaded one), a round buffer of the window plus three
           * jobs of input, and the output of the job in flight and the
           * one being flushed; measured (test-recipe
           * /recipe/memory/zstd-mt) within this. */
          guint64 job = zstd_job_size (r), window = G_GUINT64_CONSTANT (1) << zstd_window_log (r);
          mem += MAX (window, job) + 3 * job + 2 * ZSTD_compressBound (job);
        }
    }
  else
    {
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
        return df_throw (error, DF_ERROR_INVALID_DELTA, "recipe: liblzma refuses the xz options");
      mem += 16 * 1024; /* stream and block encoder state */
    }
  *out = mem + sizeof (Encoder)
         + (r->codec == DF_RECIPE_CODEC_ZSTD ? ZSTD_CStreamInSize () + ZSTD_CStreamOutSize () : 2 * DF_RECIPE_BUFFER);
  return TRUE;
}

char *
df_recipe_describe (const DfRecipe *r)
{
  GString *s = g_string_new (df_recipe_codec_name (r->codec));
  if (is_deflate_family (r->codec))
    {
      static const char *const strategies[] = { "default", "filtered", "huffman-only", "rle", "fixed" };
      g_string_append_printf (s, " level %d, window bits %u, memory level %u, strategy %s, header %u bytes", r->level,
                              r->deflate.window_bits, r->deflate.mem_level,
                              r->deflate.strategy <= Z_FIXED ? strategies[r->deflate.strategy] : "?",
                              r->deflate.header_len);
    }
  else if (r->codec == DF_RECIPE_CODEC_ZSTD)
    {
      g_string_append_printf (s, " level %d", r->level);
      if (r->zstd.window_log)
        g_string_append_printf (s, ", window log %u", r->zstd.window_log);
      g_string_append_printf (s, ", %s, %s, %s", r->zstd.checksum ? "checksum" : "no checksum",
                              r->zstd.content_size ? "content size"
                              : r->zstd.pledged    ? "size pledged, not written"
                                                   : "size unknown",
                              r->zstd.mt ? "multi-threaded" : "single-threaded");
    }
  else if (r->codec == DF_RECIPE_CODEC_XZ)
    {
      static const char *const bcj[] = { "x86", "powerpc", "ia64", "arm", "armthumb", "sparc", "arm64" };
      g_string_append_printf (s, " preset %d%s, dict %u KiB, lc %u lp %u pb %u", r->level, r->xz.extreme ? "e" : "",
                              r->xz.dict_size / 1024, r->xz.lc, r->xz.lp, r->xz.pb);
      for (guint i = 0; i < MIN (r->xz.n_filters, DF_RECIPE_FILTERS_MAX); i++)
        {
          guint64 id = r->xz.filters[i].id;
          if (id == LZMA_FILTER_DELTA)
            g_string_append_printf (s, ", delta %u", r->xz.filters[i].arg);
          else
            g_string_append_printf (s, ", %s", is_bcj (id) ? bcj[id == LZMA_FILTER_ARM64 ? 6 : id - 4] : "?");
        }
      g_string_append_printf (s, ", check %u, ", r->xz.check);
      if (r->xz.block_size)
        g_string_append_printf (s, "multi-threaded, block %" G_GUINT64_FORMAT, r->xz.block_size);
      else
        g_string_append (s, "single-threaded");
    }
  g_string_append_printf (s, ", %s, %" G_GUINT64_FORMAT " -> %" G_GUINT64_FORMAT " bytes", r->library, r->content_size,
                          r->stream_size);
  return g_string_free (s, FALSE);
}

/* ------------------------------------------------------------------------ */
/* Serialisation                                                             */

GBytes *
df_recipe_serialize (const DfRecipe *r)
{
  GVariantBuilder filters;
  g_variant_builder_init (&filters, G_VARIANT_TYPE ("a(tu)"));
  for (guint i = 0; i < MIN (r->xz.n_filters, DF_RECIPE_FILTERS_MAX); i++)
    g_variant_builder_add (&filters, "(tu)", (guint64)r->xz.filters[i].id, r->xz.filters[i].arg);
  GVariant *header = g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, r->deflate.header,
                                                MIN (r->deflate.header_len, DF_RECIPE_HEADER_MAX), 1);
  char library[DF_RECIPE_LIBRARY_MAX];
  g_strlcpy (library, r->library, sizeof library);
  g_autoptr (GVariant) v = g_variant_ref_sink (
      g_variant_new ("(yysttiyyy@ayybbbbuybyu(yyy)a(tu)t)", (guint8)DF_RECIPE_FORMAT_VERSION, (guint8)r->codec, library,
                     r->content_size, r->stream_size, (gint32)r->level, r->deflate.window_bits, r->deflate.mem_level,
                     r->deflate.strategy, header, r->zstd.window_log, r->zstd.checksum, r->zstd.content_size,
                     r->zstd.pledged, r->zstd.mt, r->zstd.job_size, r->zstd.overlap_log, r->xz.extreme, r->xz.check,
                     r->xz.dict_size, r->xz.lc, r->xz.lp, r->xz.pb, &filters, r->xz.block_size));
  return g_variant_get_data_as_bytes (v);
}

gboolean
df_recipe_parse (GBytes *bytes, DfRecipe *out, GError **error)
{
  memset (out, 0, sizeof *out);
  if (g_bytes_get_size (bytes) > DF_RECIPE_SERIALIZED_MAX)
    return df_throw (error, DF_ERROR_INVALID_DELTA, "recipe: %" G_GSIZE_FORMAT " bytes, more than %d",
                     g_bytes_get_size (bytes), DF_RECIPE_SERIALIZED_MAX);
  g_autoptr (GVariant) v
      = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE (DF_RECIPE_VARIANT_TYPE), bytes, FALSE));
  if (!g_variant_is_normal_form (v))
    return df_throw (error, DF_ERROR_INVALID_DELTA, "recipe: not a well-formed recipe");
  guint8 version, codec, wb, ml, strategy, zwl, ovl, check, lc, lp, pb;
  gboolean checksum, content_size, pledged, mt, extreme;
  guint32 job, dict;
  gint32 level;
  guint64 csize, ssize, block;
  const char *library;
  g_autoptr (GVariant) header = NULL;
  g_autoptr (GVariantIter) filters = NULL;
  g_variant_get (v,
                 "(yy&stti"
                 "yyy@ay"
                 "ybbbbuy"
                 "byu(yyy)a(tu)t)",
                 &version, &codec, &library, &csize, &ssize, &level, &wb, &ml, &strategy, &header, &zwl, &checksum,
                 &content_size, &pledged, &mt, &job, &ovl, &extreme, &check, &dict, &lc, &lp, &pb, &filters, &block);
  if (version != DF_RECIPE_FORMAT_VERSION)
    return df_throw (error, DF_ERROR_INVALID_DELTA, "recipe: format version %u, this build reads %d", version,
                     DF_RECIPE_FORMAT_VERSION);
  if (strlen (library) >= DF_RECIPE_LIBRARY_MAX)
    return bad (error, "library identity length", strlen (library));
  gsize header_len = 0;
  const guint8 *h = g_variant_get_fixed_array (header, &header_len, 1);
  if (header_len > DF_RECIPE_HEADER_MAX)
    return bad (error, "header length", header_len);
  gsize n_filters = g_variant_iter_n_children (filters);
  if (n_filters > DF_RECIPE_FILTERS_MAX)
    return bad (error, "xz filter count", n_filters);

  out->codec = (DfRecipeCodec)codec;
  g_strlcpy (out->library, library, sizeof out->library);
  out->content_size = csize;
  out->stream_size = ssize;
  out->level = level;
  out->deflate.window_bits = wb;
  out->deflate.mem_level = ml;
  out->deflate.strategy = strategy;
  out->deflate.header_len = (guint16)header_len;
  if (header_len)
    memcpy (out->deflate.header, h, header_len);
  out->zstd.window_log = zwl;
  out->zstd.checksum = checksum;
  out->zstd.content_size = content_size;
  out->zstd.pledged = pledged;
  out->zstd.mt = mt;
  out->zstd.job_size = job;
  out->zstd.overlap_log = ovl;
  out->xz.extreme = extreme;
  out->xz.check = check;
  out->xz.dict_size = dict;
  out->xz.lc = lc;
  out->xz.lp = lp;
  out->xz.pb = pb;
  out->xz.n_filters = (guint8)n_filters;
  out->xz.block_size = block;
  guint64 id;
  guint32 arg;
  for (guint i = 0; g_variant_iter_next (filters, "(tu)", &id, &arg); i++)
    out->xz.filters[i] = (DfRecipeFilter){ .id = id, .arg = arg };
  if (!df_recipe_check (out, error))
    {
      memset (out, 0, sizeof *out);
      return FALSE;
    }
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* The encoder                                                               */

static gboolean
emit (Encoder *e, const guint8 *buf, gsize len, GError **error)
{
  if (len == 0)
    return TRUE;
  if (len > e->r->stream_size - e->out_total)
    return df_throw (error, DF_ERROR_CORRUPT,
                     "recipe rebuild: the %s stream grows past its %" G_GUINT64_FORMAT " bytes",
                     df_recipe_codec_name (e->r->codec), e->r->stream_size);
  e->out_total += len;
  return e->write (e->write_data, buf, len, error);
}

static void
encoder_clear (Encoder *e)
{
  if (e->z_live)
    deflateEnd (&e->z);
  e->z_live = FALSE;
  ZSTD_freeCCtx (e->zc);
  e->zc = NULL;
  g_clear_pointer (&e->out, g_free);
  if (e->lz_live)
    lzma_end (&e->lz);
  e->lz_live = FALSE;
}

static gboolean
encoder_start (Encoder *e, GError **error)
{
  const DfRecipe *r = e->r;
  if (is_deflate_family (r->codec))
    {
      memset (&e->z, 0, sizeof e->z);
      if (deflateInit2 (&e->z, r->level, Z_DEFLATED, -(int)r->deflate.window_bits, r->deflate.mem_level,
                        r->deflate.strategy)
          != Z_OK)
        return df_throw (error, DF_ERROR_FAILED, "recipe rebuild: zlib cannot start its encoder");
      e->z_live = TRUE;
      e->sum = r->codec == DF_RECIPE_CODEC_GZIP ? crc32 (0, NULL, 0) : adler32 (0, NULL, 0);
      return emit (e, r->deflate.header, r->deflate.header_len, error);
    }
  if (r->codec == DF_RECIPE_CODEC_ZSTD)
    {
      e->zc = ZSTD_createCCtx ();
      if (e->zc == NULL)
        return df_throw (error, DF_ERROR_FAILED, "recipe rebuild: out of memory for the zstd encoder");
      if (!zstd_params (r, e->zc, NULL, error))
        return FALSE;
      if (r->zstd.pledged)
        {
          size_t rc = ZSTD_CCtx_setPledgedSrcSize (e->zc, r->content_size);
          if (ZSTD_isError (rc))
            return df_throw (error, DF_ERROR_FAILED, "recipe rebuild: zstd: %s", ZSTD_getErrorName (rc));
        }
      return TRUE;
    }
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
    return df_throw (error, ret == LZMA_MEM_ERROR ? DF_ERROR_FAILED : DF_ERROR_INVALID_DELTA,
                     "recipe rebuild: liblzma cannot start its encoder (%d)", (int)ret);
  e->lz_live = TRUE;
  return TRUE;
}

/* Feeds @len content bytes (the last ones when @last) and emits what the
 * encoder makes of them. */
static gboolean
encoder_feed (Encoder *e, const guint8 *in, gsize len, gboolean last, GError **error)
{
  const DfRecipe *r = e->r;
  e->in_total += len;
  if (is_deflate_family (r->codec))
    {
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
            return df_throw (error, DF_ERROR_FAILED, "recipe rebuild: zlib failed");
          if (!emit (e, e->out, e->out_size - e->z.avail_out, error))
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
          return emit (e, trailer, 8, error);
        }
      for (guint i = 0; i < 4; i++)
        trailer[i] = (guint8)(e->sum >> (24 - 8 * i));
      return emit (e, trailer, 4, error);
    }
  if (r->codec == DF_RECIPE_CODEC_ZSTD)
    {
      ZSTD_inBuffer ib = { in, len, 0 };
      for (;;)
        {
          ZSTD_outBuffer ob = { e->out, e->out_size, 0 }; /* fresh each call, as the CLI */
          size_t rem = ZSTD_compressStream2 (e->zc, &ob, &ib, last ? ZSTD_e_end : ZSTD_e_continue);
          if (ZSTD_isError (rem))
            return df_throw (error, DF_ERROR_FAILED, "recipe rebuild: zstd: %s", ZSTD_getErrorName (rem));
          if (!emit (e, e->out, ob.pos, error))
            return FALSE;
          if (last ? rem == 0 : ib.pos == ib.size)
            break;
        }
      return TRUE;
    }
  e->lz.next_in = in;
  e->lz.avail_in = len;
  for (;;)
    {
      e->lz.next_out = e->out;
      e->lz.avail_out = e->out_size;
      lzma_ret ret = lzma_code (&e->lz, last ? LZMA_FINISH : LZMA_RUN);
      if (ret != LZMA_OK && ret != LZMA_STREAM_END)
        return df_throw (error, DF_ERROR_FAILED, "recipe rebuild: liblzma failed (%d)", (int)ret);
      if (!emit (e, e->out, e->out_size - e->lz.avail_out, error))
        return FALSE;
      if (last ? ret == LZMA_STREAM_END : e->lz.avail_in == 0 && e->lz.avail_out != 0)
        break;
    }
  return TRUE;
}

/* Input chunks and output buffer of a rebuild. zstd's output depends on
 * how its input arrives (the last call's input may be compressed straight
 * from the caller's buffer, with the earlier content as an external
 * dictionary, when the output buffer has room for it and the internal
 * buffer is at a block start), so zstd is fed as its command-line tool
 * feeds it: chunks of ZSTD_CStreamInSize(), a fresh ZSTD_CStreamOutSize()
 * output buffer for each call, and ZSTD_e_end with the last chunk when the
 * size was known (a file) or alone after it when not (a pipe). */
static gsize
in_chunk (const DfRecipe *r)
{
  return r->codec == DF_RECIPE_CODEC_ZSTD ? ZSTD_CStreamInSize () : DF_RECIPE_BUFFER;
}

/* Reads a full chunk of @len bytes unless the content ends first. */
static gssize
read_chunk (DfRecipeReadFunc read, gpointer read_data, guint8 *buf, gsize len, GError **error)
{
  gsize got = 0;
  while (got < len)
    {
      gssize n = read (read_data, buf + got, len - got, error);
      if (n < 0)
        return -1;
      if (n == 0)
        break;
      got += (gsize)MIN ((gsize)n, len - got);
    }
  return (gssize)got;
}

/* Runs @r without the identity and memory checks. */
static gboolean
run (const DfRecipe *r, DfRecipeReadFunc read, gpointer read_data, DfRecipeWriteFunc write, gpointer write_data,
     GCancellable *cancellable, GError **error)
{
  g_autofree Encoder *e = g_new0 (Encoder, 1);
  gsize chunk = in_chunk (r);
  g_autofree guint8 *in = g_malloc (chunk);
  e->r = r;
  e->write = write;
  e->write_data = write_data;
  e->out_size = r->codec == DF_RECIPE_CODEC_ZSTD ? ZSTD_CStreamOutSize () : DF_RECIPE_BUFFER;
  e->out = g_malloc (e->out_size);
  gboolean end_with_data = r->codec == DF_RECIPE_CODEC_ZSTD && r->zstd.pledged;
  gboolean ok = encoder_start (e, error);
  while (ok)
    {
      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        {
          ok = FALSE;
          break;
        }
      gssize n = read_chunk (read, read_data, in, chunk, error);
      if (n < 0)
        ok = FALSE;
      else if ((guint64)n > r->content_size - e->in_total)
        ok = df_throw (error, DF_ERROR_CORRUPT,
                       "recipe rebuild: the content is longer than %" G_GUINT64_FORMAT " bytes", r->content_size);
      else if (n == 0 && e->in_total != r->content_size)
        ok = df_throw (error, DF_ERROR_CORRUPT,
                       "recipe rebuild: the content ends after %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT " bytes",
                       e->in_total, r->content_size);
      else if (n == 0 || (end_with_data && e->in_total + (guint64)n == r->content_size))
        {
          /* Whatever the content might still hold is refused. */
          guint8 extra;
          gssize more = n == 0 ? 0 : read (read_data, &extra, 1, error);
          if (more < 0)
            ok = FALSE;
          else if (more > 0)
            ok = df_throw (error, DF_ERROR_CORRUPT,
                           "recipe rebuild: the content is longer than %" G_GUINT64_FORMAT " bytes", r->content_size);
          else
            ok = encoder_feed (e, in, (gsize)n, TRUE, error);
          break;
        }
      else
        ok = encoder_feed (e, in, (gsize)n, FALSE, error);
    }
  if (ok && e->out_total != r->stream_size)
    ok = df_throw (error, DF_ERROR_CORRUPT,
                   "recipe rebuild: the %s stream has %" G_GUINT64_FORMAT " bytes, the recipe says %" G_GUINT64_FORMAT,
                   df_recipe_codec_name (r->codec), e->out_total, r->stream_size);
  encoder_clear (e);
  return ok;
}

gboolean
df_recipe_rebuild (const DfRecipe *r, DfRecipeReadFunc read, gpointer read_data, DfRecipeWriteFunc write,
                   gpointer write_data, guint64 memory_limit, GCancellable *cancellable, GError **error)
{
  if (!df_recipe_check (r, error))
    return FALSE;
  char lib[DF_RECIPE_LIBRARY_MAX];
  df_recipe_library_identity (r->codec, lib);
  if (strcmp (lib, r->library) != 0)
    return df_throw (error, DF_ERROR_MISSING_BASE, "recipe needs %s, this device has %s", r->library, lib);
  guint64 mem;
  if (!df_recipe_memory (r, &mem, error))
    return FALSE;
  if (mem > memory_limit)
    return df_throw (error, DF_ERROR_INVALID_ARGUMENT,
                     "recipe rebuild (%s) needs %" G_GUINT64_FORMAT
                     " KiB, more than the memory budget of %" G_GUINT64_FORMAT " KiB",
                     df_recipe_codec_name (r->codec), mem / 1024, memory_limit / 1024);
  return run (r, read, read_data, write, write_data, cancellable, error);
}

/* ------------------------------------------------------------------------ */
/* Search                                                                    */

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
  if (!df_pread_all (cr->span->fd, buf, n, cr->span->offset + cr->pos, "recipe search: content", error))
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
      if (!df_pread_all (c->span->fd, c->buf, n, c->span->offset + c->pos, "recipe search: stream", error))
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

static void
add (GArray *list, const DfRecipe *r)
{
  if (list->len >= LISTED_MAX)
    return;
  for (guint i = 0; i < list->len; i++)
    if (memcmp (&g_array_index (list, DfRecipe, i), r, sizeof *r) == 0)
      return;
  g_array_append_vals (list, r, 1);
}

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
        add (list, &r);
      }
  r.deflate.mem_level = 8;
  if (huffman_hint)
    {
      r.level = 1;
      r.deflate.strategy = Z_HUFFMAN_ONLY;
      add (list, &r);
      r.deflate.strategy = Z_RLE;
      add (list, &r);
    }
  for (guint s = Z_FILTERED; s <= Z_FIXED; s += Z_FIXED - Z_FILTERED)
    for (guint i = 0; i < n_levels; i++)
      {
        r.level = levels[i];
        r.deflate.strategy = (guint8)s;
        add (list, &r);
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

static void
list_deflate (GArray *list, DfRecipe *base, const guint8 *h, gsize n, const DfRecipeSpan *stream)
{
  if (base->codec == DF_RECIPE_CODEC_GZIP)
    {
      gsize hl = gzip_header_len (h, n);
      if (hl == 0 || stream->length < hl + 8)
        return;
      memcpy (base->deflate.header, h, hl);
      base->deflate.header_len = (guint16)hl;
      guint8 isize[4];
      if (!df_pread_all (stream->fd, isize, 4, stream->offset + stream->length - 4, "gzip trailer", NULL)
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

static const int zstd_levels[]
    = { 3, 19, 9, 1, 6, 12, 15, 22, 2, 4, 5, 7, 8, 10, 11, 13, 14, 16, 17, 18, 20, 21, -1, -2, -3, -4, -5, -6, -7 };

static void
list_zstd (GArray *list, DfRecipe *base, const guint8 *h, gsize n)
{
  ZSTD_frameHeader fh;
  if (ZSTD_getFrameHeader (&fh, h, n) != 0 || fh.frameType != ZSTD_frame || fh.dictID != 0)
    return;
  gboolean single_segment = (h[4] >> 5) & 1;
  gboolean has_size = fh.frameContentSize != ZSTD_CONTENTSIZE_UNKNOWN;
  if (has_size && fh.frameContentSize != base->content_size)
    return;
  base->zstd.checksum = fh.checksumFlag != 0;
  /* A frame with its size was pledged it; one without was either not
   * (a pipe) or told not to write it (--no-content-size). */
  for (guint pass = 0; pass < (has_size ? 1u : 2u); pass++)
    {
      DfRecipe r = *base;
      r.zstd.pledged = has_size || pass == 1;
      r.zstd.content_size = has_size;
      for (guint explicit_window = 0; explicit_window < 2; explicit_window++)
        for (guint i = 0; i < G_N_ELEMENTS (zstd_levels); i++)
          {
            r.level = zstd_levels[i];
            r.zstd.window_log = 0;
            if (explicit_window)
              {
                /* The window set apart from the level (the CLI's
                 * --zstd=wlog=N), for the common levels, after every
                 * level's own. */
                if (single_segment || i >= 4 || fh.windowSize == 0 || (fh.windowSize & (fh.windowSize - 1)))
                  continue;
                r.zstd.window_log = (guint8)g_bit_nth_msf (fh.windowSize, -1);
                if (r.zstd.window_log < ZSTD_WINDOWLOG_MIN || r.zstd.window_log > ZSTD_WINDOWLOG_MAX)
                  continue;
                DfRecipe own = r;
                own.zstd.window_log = 0;
                if (zstd_window_log (&own) == r.zstd.window_log)
                  continue; /* listed already */
              }
            else if (!single_segment && fh.windowSize != G_GUINT64_CONSTANT (1) << zstd_window_log (&r))
              continue;
            /* Multi-threaded first, the zstd tool's default; its
             * output differs from the single-threaded one even within one
             * job (the last input is never compressed in place). */
            r.zstd.mt = TRUE;
            add (list, &r);
            r.zstd.mt = FALSE;
            add (list, &r);
          }
    }
}

/* xz's presets by dictionary size, to try those whose own dictionary is the
 * block header's first. */
static void
list_xz (GArray *list, DfRecipe *base, const guint8 *h, gsize n)
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
      else if (is_bcj (filters[i].id))
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
            add (list, &r);
          }
      }
}

gboolean
df_recipe_find (const DfRecipeSpan *compressed, const DfRecipeSpan *content, const DfRecipeFindLimits *limits,
                DfRecipe *out, gboolean *found, DfRecipeFindStats *stats, GCancellable *cancellable, GError **error)
{
  DfRecipeFindStats st = { 0 };
  *found = FALSE;
  memset (out, 0, sizeof *out);
  guint max_candidates = limits && limits->max_candidates ? limits->max_candidates : DF_RECIPE_FIND_CANDIDATES_DEFAULT;
  guint64 max_bytes = limits && limits->max_bytes ? limits->max_bytes : DF_RECIPE_FIND_BYTES_DEFAULT;
  guint64 max_memory = limits && limits->max_memory ? MIN (limits->max_memory, DF_RECIPE_FIND_MEMORY_MAX)
                                                    : DF_RECIPE_FIND_MEMORY_MAX;

  gsize n = (gsize)MIN (compressed->length, (guint64)DF_RECIPE_HEADER_MAX + 64);
  g_autofree guint8 *h = g_malloc0 (DF_RECIPE_HEADER_MAX + 64);
  if (!df_pread_all (compressed->fd, h, n, compressed->offset, "recipe search: stream", error))
    return FALSE;
  if (compressed->length == 0 || content->length > DF_RECIPE_CONTENT_MAX
      || compressed->length > stream_size_max (content->length))
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
  df_recipe_library_identity (base->codec, base->library);
  if (is_deflate_family (base->codec))
    {
      base->deflate.window_bits = 15;
      base->deflate.mem_level = 8;
      list_deflate (list, base, h, n, compressed);
    }
  else if (base->codec == DF_RECIPE_CODEC_ZSTD)
    list_zstd (list, base, h, n);
  else
    list_xz (list, base, h, n);
  st.listed = list->len;

  for (guint i = 0; i < list->len; i++)
    {
      const DfRecipe *r = &g_array_index (list, DfRecipe, i);
      guint64 mem;
      if (!df_recipe_memory (r, &mem, NULL) || mem > max_memory)
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
      if (run (r, content_read, &cr, compare_write, cmp, cancellable, &local))
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
