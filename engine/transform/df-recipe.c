/* Recipes: rebuilding compressed streams by compressing their content
 * again with zlib, libzstd or liblzma (df-recipe.h is the manual). This
 * file holds the recipe itself (checks, memory, description,
 * serialisation) and the rebuild's driver; each codec's encoder and
 * candidate list are in df-recipe-zlib.c, df-recipe-zstd.c and
 * df-recipe-xz.c, the search in df-recipe-find.c. */
#include "df-recipe-private.h"

/* ------------------------------------------------------------------------ */
/* Names and identities                                                      */

const char *
dfi_recipe_codec_name (DfRecipeCodec codec)
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

gboolean
dfi_recipe_is_deflate_family (DfRecipeCodec codec)
{
  return codec == DF_RECIPE_CODEC_GZIP || codec == DF_RECIPE_CODEC_ZLIB || codec == DF_RECIPE_CODEC_DEFLATE;
}

gboolean
dfi_recipe_library_identity (DfRecipeCodec codec, char out[DF_RECIPE_LIBRARY_MAX])
{
  if (dfi_recipe_is_deflate_family (codec))
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
  return dfi_throw (error, DF_ERROR_INVALID_DELTA, "recipe: %s out of range (%" G_GUINT64_FORMAT ")", field, value);
}

static gboolean
is_bool (gboolean b)
{
  return b == FALSE || b == TRUE;
}

gboolean
dfi_recipe_is_bcj (guint64 id)
{
  return id >= LZMA_FILTER_X86 && id <= LZMA_FILTER_ARM64 && id != LZMA_FILTER_DELTA;
}

/* The longest a stream may be for its content: what the worst of the
 * codecs adds to incompressible data is far below 1/16 plus 1 MiB. */
guint64
dfi_recipe_stream_size_max (guint64 content_size)
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
dfi_recipe_check (const DfRecipe *r, GError **error)
{
  char lib[DF_RECIPE_LIBRARY_MAX];
  if (!dfi_recipe_library_identity (r->codec, lib))
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "recipe: unknown codec %d", (int)r->codec);
  gsize lib_len = strnlen (r->library, DF_RECIPE_LIBRARY_MAX);
  if (lib_len == 0 || lib_len == DF_RECIPE_LIBRARY_MAX)
    return bad (error, "library identity length", lib_len);
  for (gsize i = 0; i < lib_len; i++)
    if (!g_ascii_isprint (r->library[i]))
      return bad (error, "library identity character", (guint8)r->library[i]);
  if (r->content_size > DF_RECIPE_CONTENT_MAX)
    return bad (error, "content size", r->content_size);
  if (r->stream_size == 0 || r->stream_size > dfi_recipe_stream_size_max (r->content_size))
    return bad (error, "stream size", r->stream_size);

  if (dfi_recipe_is_deflate_family (r->codec))
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
      else if (!dfi_recipe_is_bcj (f->id))
        return bad (error, "xz filter", f->id);
    }
  if (r->xz.block_size > DF_RECIPE_XZ_BLOCK_MAX)
    return bad (error, "xz block size", r->xz.block_size);
  return check_deflate_unused (r, error) && check_zstd_unused (r, error);
}

gboolean
dfi_recipe_memory (const DfRecipe *r, guint64 *out, GError **error)
{
  if (!dfi_recipe_check (r, error))
    return FALSE;
  guint64 mem = 0;
  if (dfi_recipe_is_deflate_family (r->codec))
    mem = dfi_recipe_zlib_memory (r);
  else if (r->codec == DF_RECIPE_CODEC_ZSTD)
    {
      if (!dfi_recipe_zstd_memory (r, &mem, error))
        return FALSE;
    }
  else if (!dfi_recipe_xz_memory (r, &mem, error))
    return FALSE;
  *out = mem + sizeof (DfRecipeEncoder)
         + (r->codec == DF_RECIPE_CODEC_ZSTD ? ZSTD_CStreamInSize () + ZSTD_CStreamOutSize () : 2 * DF_RECIPE_BUFFER);
  return TRUE;
}

char *
dfi_recipe_describe (const DfRecipe *r)
{
  GString *s = g_string_new (dfi_recipe_codec_name (r->codec));
  if (dfi_recipe_is_deflate_family (r->codec))
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
            g_string_append_printf (s, ", %s",
                                    dfi_recipe_is_bcj (id) ? bcj[id == LZMA_FILTER_ARM64 ? 6 : id - 4] : "?");
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
dfi_recipe_serialize (const DfRecipe *r)
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
dfi_recipe_parse (GBytes *bytes, DfRecipe *out, GError **error)
{
  memset (out, 0, sizeof *out);
  if (g_bytes_get_size (bytes) > DF_RECIPE_SERIALIZED_MAX)
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "recipe: %" G_GSIZE_FORMAT " bytes, more than %d",
                      g_bytes_get_size (bytes), DF_RECIPE_SERIALIZED_MAX);
  g_autoptr (GVariant) v
      = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE (DF_RECIPE_VARIANT_TYPE), bytes, FALSE));
  if (!g_variant_is_normal_form (v))
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "recipe: not a well-formed recipe");
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
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "recipe: format version %u, this build reads %d", version,
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
  if (!dfi_recipe_check (out, error))
    {
      memset (out, 0, sizeof *out);
      return FALSE;
    }
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* The encoder                                                               */

gboolean
dfi_recipe_emit (DfRecipeEncoder *e, const guint8 *buf, gsize len, GError **error)
{
  if (len == 0)
    return TRUE;
  if (len > e->r->stream_size - e->out_total)
    return dfi_throw (error, DF_ERROR_CORRUPT,
                      "recipe rebuild: the %s stream grows past its %" G_GUINT64_FORMAT " bytes",
                      dfi_recipe_codec_name (e->r->codec), e->r->stream_size);
  e->out_total += len;
  return e->write (e->write_data, buf, len, error);
}

static void
encoder_clear (DfRecipeEncoder *e)
{
  if (e->z_live)
    deflateEnd (&e->z);
  e->z_live = FALSE;
  dfi_recipe_zstd_stop (e);
  g_clear_pointer (&e->out, g_free);
  if (e->lz_live)
    lzma_end (&e->lz);
  e->lz_live = FALSE;
}

static gboolean
encoder_start (DfRecipeEncoder *e, GError **error)
{
  if (dfi_recipe_is_deflate_family (e->r->codec))
    return dfi_recipe_zlib_start (e, error);
  if (e->r->codec == DF_RECIPE_CODEC_ZSTD)
    return dfi_recipe_zstd_start (e, error);
  return dfi_recipe_xz_start (e, error);
}

/* Feeds @len content bytes (the last ones when @last) and emits what the
 * encoder makes of them. */
static gboolean
encoder_feed (DfRecipeEncoder *e, const guint8 *in, gsize len, gboolean last, GError **error)
{
  e->in_total += len;
  if (dfi_recipe_is_deflate_family (e->r->codec))
    return dfi_recipe_zlib_feed (e, in, len, last, error);
  if (e->r->codec == DF_RECIPE_CODEC_ZSTD)
    return dfi_recipe_zstd_feed (e, in, len, last, error);
  return dfi_recipe_xz_feed (e, in, len, last, error);
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
gboolean
dfi_recipe_run (const DfRecipe *r, DfRecipeReadFunc read, gpointer read_data, DfRecipeWriteFunc write,
                gpointer write_data, GCancellable *cancellable, GError **error)
{
  g_autofree DfRecipeEncoder *e = g_new0 (DfRecipeEncoder, 1);
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
        ok = dfi_throw (error, DF_ERROR_CORRUPT,
                        "recipe rebuild: the content is longer than %" G_GUINT64_FORMAT " bytes", r->content_size);
      else if (n == 0 && e->in_total != r->content_size)
        ok = dfi_throw (error, DF_ERROR_CORRUPT,
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
            ok = dfi_throw (error, DF_ERROR_CORRUPT,
                            "recipe rebuild: the content is longer than %" G_GUINT64_FORMAT " bytes", r->content_size);
          else
            ok = encoder_feed (e, in, (gsize)n, TRUE, error);
          break;
        }
      else
        ok = encoder_feed (e, in, (gsize)n, FALSE, error);
    }
  if (ok && e->out_total != r->stream_size)
    ok = dfi_throw (error, DF_ERROR_CORRUPT,
                    "recipe rebuild: the %s stream has %" G_GUINT64_FORMAT " bytes, the recipe says %" G_GUINT64_FORMAT,
                    dfi_recipe_codec_name (r->codec), e->out_total, r->stream_size);
  encoder_clear (e);
  return ok;
}

gboolean
dfi_recipe_rebuild (const DfRecipe *r, DfRecipeReadFunc read, gpointer read_data, DfRecipeWriteFunc write,
                    gpointer write_data, guint64 memory_limit, GCancellable *cancellable, GError **error)
{
  if (!dfi_recipe_check (r, error))
    return FALSE;
  char lib[DF_RECIPE_LIBRARY_MAX];
  dfi_recipe_library_identity (r->codec, lib);
  if (strcmp (lib, r->library) != 0)
    return dfi_throw (error, DF_ERROR_MISSING_BASE, "recipe needs %s, this device has %s", r->library, lib);
  guint64 mem;
  if (!dfi_recipe_memory (r, &mem, error))
    return FALSE;
  if (mem > memory_limit)
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT,
                      "recipe rebuild (%s) needs %" G_GUINT64_FORMAT
                      " KiB, more than the memory budget of %" G_GUINT64_FORMAT " KiB",
                      dfi_recipe_codec_name (r->codec), mem / 1024, memory_limit / 1024);
  return dfi_recipe_run (r, read, read_data, write, write_data, cancellable, error);
}
