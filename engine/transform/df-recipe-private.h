/* Internals of recipes (df-recipe.h): the encoder state a rebuild runs,
 * and what the recipe core (df-recipe.c), the search (df-recipe-find.c)
 * and the codec files (df-recipe-zlib.c, df-recipe-zstd.c,
 * df-recipe-xz.c) share. Not for use outside engine/transform/. */
#pragma once

#include <lzma.h>
#include <zlib.h>

#include "df-recipe.h"

/* The allocator a zstd encoder gets: it counts what libzstd holds, from
 * every thread, and refuses (libzstd then fails cleanly) what would take
 * it past @limit, the recipe's memory (dfi_recipe_memory()). */
typedef struct
{
  guint64 limit;
  gint64 live, peak; /* under @lock */
  gboolean refused;
  GMutex lock;
} DfRecipeAlloc;

/* One rebuild's encoder: the codec's state (only the recipe's codec is
 * live), the running checksum, the counts and the output buffer. Owned by
 * dfi_recipe_run(), which frees the codec state and the buffer. */
typedef struct
{
  const DfRecipe *r;
  DfRecipeWriteFunc write;
  gpointer write_data;
  z_stream z;
  gboolean z_live;
  ZSTD_CCtx *zc;
  DfRecipeAlloc *zalloc; /* what zc allocates, within the recipe's memory */
  lzma_stream lz;
  gboolean lz_live;
  guint32 sum; /* gzip CRC-32 or zlib Adler-32 of the content */
  guint64 in_total, out_total;
  gsize out_size;
  guint8 *out;
} DfRecipeEncoder;

/* ------------------------------------------------------------------------ */
/* The core (df-recipe.c)                                                    */

/* TRUE for the codecs zlib makes: gzip, zlib and raw deflate. */
gboolean dfi_recipe_is_deflate_family (DfRecipeCodec codec);

/* TRUE when @id is one of liblzma's BCJ filters (not delta). */
gboolean dfi_recipe_is_bcj (guint64 id);

/* The longest a stream may be for @content_size bytes of content (what a
 * recipe may declare and a search considers). */
guint64 dfi_recipe_stream_size_max (guint64 content_size);

/* Hands @len bytes of compressed output to the encoder's write function
 * and counts them. DF_ERROR_CORRUPT when the stream would grow past the
 * recipe's stream size (nothing is written then); else the write
 * function's result and error. */
gboolean dfi_recipe_emit (DfRecipeEncoder *e, const guint8 *buf, gsize len, GError **error);

/* Runs @r (dfi_recipe_rebuild() without the identity and memory checks,
 * which the search makes itself): reads the content from @read, writes
 * the stream to @write, and fails with DF_ERROR_CORRUPT when the content
 * or the stream is not the size the recipe says; the errors of @read and
 * @write; the cancellation. Holds one encoder and two buffers, freed
 * before it returns. */
gboolean dfi_recipe_run (const DfRecipe *r, DfRecipeReadFunc read, gpointer read_data, DfRecipeWriteFunc write,
                         gpointer write_data, GCancellable *cancellable, GError **error);

/* ------------------------------------------------------------------------ */
/* The search (df-recipe-find.c)                                             */

/* Appends a copy of @r to @list (of DfRecipe) unless it is listed already
 * or the list is full (256 candidates): the codec files' lists call it,
 * most likely candidate first. */
void dfi_recipe_candidate_add (GArray *list, const DfRecipe *r);

/* ------------------------------------------------------------------------ */
/* The codecs                                                                */

/* Each codec's encoder: _start() makes the encoder's state for e->r (a
 * deflate-family recipe's wrapper header is emitted there) and fails with
 * DF_ERROR_FAILED when the library cannot (out of memory) or
 * DF_ERROR_INVALID_DELTA when it refuses a parameter; _feed() compresses
 * @len content bytes (the last ones when @last: the stream is finished,
 * trailer included) and emits what comes out, failing with
 * DF_ERROR_FAILED when the library does or with dfi_recipe_emit()'s
 * errors. The caller has counted @len in e->in_total already and frees
 * the state (it checks z_live, zc and lz_live).
 *
 * Each codec's _memory() is its share of dfi_recipe_memory() for a recipe
 * that passed dfi_recipe_check(): the encoder's state, without the
 * rebuild's buffers; zstd and xz fail with DF_ERROR_INVALID_DELTA when
 * their library refuses the parameters or cannot say.
 *
 * Each codec's _list() reads the stream's head, @h: dfi_recipe_find()'s
 * buffer of DF_RECIPE_HEADER_MAX + 64 bytes, @n of them read from the
 * stream (at least the 6 or 18 it checks before it picks the codec), zero
 * after them. It adds to @list, most likely first, the recipes that could
 * have made it, starting from @base (codec, library, sizes set; it fills in
 * what the headers say). It adds nothing when the headers rule this codec's
 * encoder out. */

guint64 dfi_recipe_zlib_memory (const DfRecipe *r);
gboolean dfi_recipe_zlib_start (DfRecipeEncoder *e, GError **error);
gboolean dfi_recipe_zlib_feed (DfRecipeEncoder *e, const guint8 *in, gsize len, gboolean last, GError **error);
/* Also reads the gzip trailer's length from @stream (a gzip member whose
 * length field is not the content's lists nothing). */
void dfi_recipe_zlib_list (GArray *list, DfRecipe *base, const guint8 *h, gsize n, const DfRecipeSpan *stream);

gboolean dfi_recipe_zstd_memory (const DfRecipe *r, guint64 *out, GError **error);
gboolean dfi_recipe_zstd_start (DfRecipeEncoder *e, GError **error);
gboolean dfi_recipe_zstd_feed (DfRecipeEncoder *e, const guint8 *in, gsize len, gboolean last, GError **error);
/* Frees the zstd encoder and its allocator. */
void dfi_recipe_zstd_stop (DfRecipeEncoder *e);
void dfi_recipe_zstd_list (GArray *list, DfRecipe *base, const guint8 *h, gsize n);

gboolean dfi_recipe_xz_memory (const DfRecipe *r, guint64 *out, GError **error);
gboolean dfi_recipe_xz_start (DfRecipeEncoder *e, GError **error);
gboolean dfi_recipe_xz_feed (DfRecipeEncoder *e, const guint8 *in, gsize len, gboolean last, GError **error);
void dfi_recipe_xz_list (GArray *list, DfRecipe *base, const guint8 *h, gsize n);
