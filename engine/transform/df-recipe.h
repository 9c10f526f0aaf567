/* Recipes: how to rebuild a compressed stream bit-exactly from its
 * decompressed content by compressing it again with the system libraries
 * (zlib, libzstd, liblzma).
 *
 * The build server runs dfi_recipe_find() on a compressed stream and its
 * content; when it finds a recipe, the delta can carry the content (diffed
 * in the decompressed domain) and the recipe (dfi_recipe_serialize(), a few
 * dozen bytes plus a gzip header) instead of the compressed bytes. The
 * device parses the recipe (dfi_recipe_parse(), hostile input) and runs
 * dfi_recipe_rebuild(), which refuses when its libraries are not the ones
 * the recipe was found with or when the encoder would need more memory than
 * the device allows; the device then falls back to plain parts. Whatever a
 * rebuild produces is hash-checked by the caller before it is used.
 *
 * What a recipe reproduces:
 * - gzip: one member: the header bytes verbatim (≤ DF_RECIPE_HEADER_MAX),
 *   raw deflate from zlib, then the standard trailer (CRC-32 and length
 *   mod 2^32, little-endian).
 * - zlib: the 2 header bytes verbatim (no preset dictionary), raw deflate
 *   from zlib, then the Adler-32 big-endian.
 * - raw deflate: zlib's output alone.
 * - zstd: one frame (no dictionary, no skippable frames around it), as
 *   the zstd tool makes it from a file or a pipe, single- or
 *   multi-threaded (the worker count does not change the bytes; the job
 *   size and overlap, which follow from the level, do). Its output depends
 *   on how the input is handed over, so a rebuild feeds it as the tool
 *   does; a one-shot ZSTD_compress() of more than 128 KiB compresses its
 *   last block against the caller's whole buffer and is not reproduced.
 * - xz: one stream of LZMA2 behind at most DF_RECIPE_FILTERS_MAX BCJ or
 *   delta filters, from the single-threaded encoder or the multi-threaded
 *   one (whose output depends on the block size, never on the thread count:
 *   a rebuild uses one thread).
 * GNU gzip's own deflate is not zlib's: its output is generally not
 * reproducible this way (dfi_recipe_find() then reports no recipe). zlib
 * level 0 (stored blocks cut by the output buffer) is not supported.
 * liblzma 5.4's threaded encoder tunes itself to the block size, so a
 * one-block stream is reproduced only with the block size that made it
 * (the search tries xz's default, then the block's own size). */
#pragma once

#include <gio/gio.h>

#include "df-common.h"

typedef enum
{
  DF_RECIPE_CODEC_GZIP = 1,
  DF_RECIPE_CODEC_ZLIB = 2,
  DF_RECIPE_CODEC_DEFLATE = 3,
  DF_RECIPE_CODEC_ZSTD = 4,
  DF_RECIPE_CODEC_XZ = 5,
} DfRecipeCodec;

/* Longest wrapper header a recipe carries verbatim (a gzip member's header
 * with its name, comment and extra field). */
#define DF_RECIPE_HEADER_MAX 4096
/* Filters before LZMA2 in an xz recipe (xz allows 3). */
#define DF_RECIPE_FILTERS_MAX 3
/* Room for a library identity such as "liblzma 5.4.1", NUL included. */
#define DF_RECIPE_LIBRARY_MAX 32
/* Largest serialised recipe dfi_recipe_parse() reads. */
#define DF_RECIPE_SERIALIZED_MAX (DF_RECIPE_HEADER_MAX + 512)
/* Largest content a recipe may declare (1 TiB): a sanity bound; the work
 * of a rebuild is linear in the content. */
#define DF_RECIPE_CONTENT_MAX (G_GUINT64_CONSTANT (1) << 40)
/* Largest xz multi-threaded block size a recipe may declare; the encoder
 * holds about twice the block in memory (counted by dfi_recipe_memory()). */
#define DF_RECIPE_XZ_BLOCK_MAX (G_GUINT64_CONSTANT (1) << 32)
/* Buffers a rebuild holds beside the codec's state: input and output of
 * this size each, or for zstd ZSTD_CStreamInSize() and
 * ZSTD_CStreamOutSize() (128 KiB and a little more), which it must use to
 * make the zstd tool's bytes. */
#define DF_RECIPE_BUFFER (64 * 1024)

/* Search bounds (build server): at most this many candidates, and at most
 * this many content bytes fed to encoders over all of them. A wrong
 * candidate usually dies within its first output block (zlib: a few KB of
 * output; zstd: after 128 KiB of content; xz: one LZMA2 chunk, up to 2 MiB
 * of content, or a whole block for the multi-threaded encoder); the right
 * one costs the whole content. */
#define DF_RECIPE_FIND_CANDIDATES_DEFAULT 64
#define DF_RECIPE_FIND_BYTES_DEFAULT (G_GUINT64_CONSTANT (4) << 30)
/* Candidates whose encoder needs more memory than this are skipped. */
#define DF_RECIPE_FIND_MEMORY_MAX (G_GUINT64_CONSTANT (1) << 30)

/* A filter before LZMA2, as an xz block header names it: @id is one of
 * LZMA_FILTER_X86 .. LZMA_FILTER_ARM64 (BCJ; @arg the start offset) or
 * LZMA_FILTER_DELTA (@arg the distance, 1..256). */
typedef struct
{
  guint64 id;
  guint32 arg;
} DfRecipeFilter;

/**
 * DfRecipe:
 * Everything that changes the compressed bytes. A plain value: copy it,
 * keep it on the stack (about 4.2 KiB), zero it to start. Fields a codec
 * does not use are zero (dfi_recipe_parse() insists).
 */
typedef struct
{
  DfRecipeCodec codec;
  /* The library the output depends on, as its runtime version function
   * reports it: "zlib 1.2.13", "zstd 1.5.4", "liblzma 5.4.1". */
  char library[DF_RECIPE_LIBRARY_MAX];
  guint64 content_size; /* decompressed bytes the rebuild reads */
  guint64 stream_size;  /* compressed bytes it writes */
  /* zlib: 1..9 (0, stored, is not supported: its block cuts depend on
   * the output buffer); zstd: ZSTD_minCLevel()..ZSTD_maxCLevel(); xz: the
   * preset, 0..9. */
  int level;
  struct
  {
    guint8 window_bits; /* 9..15 */
    guint8 mem_level;   /* 1..9 */
    guint8 strategy;    /* Z_DEFAULT_STRATEGY..Z_FIXED */
    guint16 header_len; /* gzip: 10..DF_RECIPE_HEADER_MAX; zlib: 2; raw: 0 */
    guint8 header[DF_RECIPE_HEADER_MAX];
  } deflate;
  struct
  {
    guint8 window_log;     /* 0: the level's own for the pledged size; else ZSTD_WINDOWLOG_MIN..MAX */
    gboolean checksum;     /* XXH64 at the end of the frame */
    gboolean content_size; /* frame header carries the content size */
    gboolean pledged;      /* the encoder was told the content size (it picks parameters for it) */
    gboolean mt;           /* multi-threaded mode (ZSTD_c_nbWorkers ≥ 1; the count does not matter) */
    guint32 job_size;      /* mt: 0 default, else ZSTDMT_JOBSIZE_MIN (512 KiB)..1 GiB */
    guint8 overlap_log;    /* mt: 0 default, else 1..9 */
  } zstd;
  struct
  {
    gboolean extreme;  /* LZMA_PRESET_EXTREME */
    guint8 check;      /* LZMA_CHECK_NONE, _CRC32, _CRC64, _SHA256 */
    guint32 dict_size; /* LZMA2 dictionary, LZMA_DICT_SIZE_MIN..1.5 GiB */
    guint8 lc, lp, pb; /* LZMA2 literal context/position bits: lc + lp ≤ 4, pb ≤ 4 */
    guint8 n_filters;  /* 0..DF_RECIPE_FILTERS_MAX, before LZMA2 */
    DfRecipeFilter filters[DF_RECIPE_FILTERS_MAX];
    guint64 block_size; /* 0: single-threaded encoder; else the multi-threaded one's block size */
  } xz;
} DfRecipe;

/* "gzip", "zlib", "deflate", "zstd", "xz", or "unknown". */
const char *dfi_recipe_codec_name (DfRecipeCodec codec);

/* Writes the identity of the library @codec depends on, as this process
 * runs it (zlibVersion(), ZSTD_versionString(), lzma_version_string(), not
 * the headers), into @out. FALSE for an unknown codec. */
gboolean dfi_recipe_library_identity (DfRecipeCodec codec, char out[DF_RECIPE_LIBRARY_MAX]);

/* Checks every field of @recipe against its codec's range (the same checks
 * dfi_recipe_parse() makes). DF_ERROR_INVALID_DELTA naming the field, or
 * for an unknown codec. */
gboolean dfi_recipe_check (const DfRecipe *recipe, GError **error);

/* The peak memory a rebuild of @recipe needs, in bytes: the encoder's
 * state plus the rebuild's buffers. zlib: its documented formula
 * (2^(windowBits+2) + 2^(memLevel+9)) plus its state; zstd single-threaded:
 * ZSTD_estimateCStreamSize_usingCCtxParams(); zstd multi-threaded (which
 * libzstd does not estimate): the single-threaded estimate plus the job
 * buffers, a formula checked against measured use (test-recipe's
 * /recipe/memory/zstd-mt); xz: lzma_raw_encoder_memusage() or
 * lzma_stream_encoder_mt_memusage() with one thread. FALSE
 * (DF_ERROR_INVALID_DELTA) when @recipe does not pass dfi_recipe_check() or
 * the library cannot say. */
gboolean dfi_recipe_memory (const DfRecipe *recipe, guint64 *out, GError **error);

/* The most libzstd held during this thread's last zstd rebuild or proof
 * (counted by the encoder's allocator, which refuses more than the
 * recipe's memory); for tests and benchmarks. */
guint64 dfi_recipe_zstd_last_peak (void);

/* A one-line human description ("xz preset 6, dict 32 MiB, x86, crc32,
 * single-threaded, liblzma 5.4.1"). Free with g_free(). */
char *dfi_recipe_describe (const DfRecipe *recipe);

/* Serialises @recipe (which must pass dfi_recipe_check()) as a GVariant in
 * normal form of type DF_RECIPE_VARIANT_TYPE: at most
 * DF_RECIPE_SERIALIZED_MAX bytes (75 to 91 bytes plus a gzip header's
 * name and comment). The tuple, in order, every field present whatever
 * the codec (those it does not use are zero):
 *   y format version (DF_RECIPE_FORMAT_VERSION)   y codec (DfRecipeCodec)
 *   s library identity   t content size   t stream size   i level
 *   y zlib window bits   y zlib memory level   y zlib strategy
 *   ay wrapper header (gzip or zlib, verbatim)
 *   y zstd window log   b checksum   b content size flag   b pledged
 *   b multi-threaded   u job size   y overlap log
 *   b xz extreme   y check   u dictionary size   (yyy) lc, lp, pb
 *   a(tu) filters before LZMA2 (id, start offset or distance)
 *   t xz block size (0: single-threaded) */
#define DF_RECIPE_VARIANT_TYPE "(yysttiyyyayybbbbuybyu(yyy)a(tu)t)"
#define DF_RECIPE_FORMAT_VERSION 1
GBytes *dfi_recipe_serialize (const DfRecipe *recipe);

/* Parses untrusted @bytes into @out: more than DF_RECIPE_SERIALIZED_MAX
 * bytes, not in GVariant normal form, another format version, an unknown
 * codec or any field out of range (dfi_recipe_check()) is
 * DF_ERROR_INVALID_DELTA. Reads nothing beyond @bytes and allocates only
 * the variant. */
gboolean dfi_recipe_parse (GBytes *bytes, DfRecipe *out, GError **error);

/* Reads up to @len bytes of content into @buf: returns how many (0 at the
 * end), or -1 with @error set. */
typedef gssize (*DfRecipeReadFunc) (gpointer user_data, guint8 *buf, gsize len, GError **error);
/* Takes @len bytes of compressed output; FALSE with @error set stops the
 * rebuild with that error. */
typedef gboolean (*DfRecipeWriteFunc) (gpointer user_data, const guint8 *buf, gsize len, GError **error);

/**
 * dfi_recipe_rebuild:
 * @recipe: a recipe (checked again here)
 * @read: the decompressed content, read once, front to back
 * @write: receives the compressed stream, front to back
 * @memory_limit: the most memory the encoder may take (dfi_recipe_memory())
 *
 * Compresses the content as @recipe says, streaming: beside the codec's
 * state it holds two buffers (DF_RECIPE_BUFFER), whatever the content
 * size. zstd input is fed as the zstd tool feeds it (see df-recipe.c).
 * Refuses before reading anything:
 * - DF_ERROR_MISSING_BASE "recipe needs LIB, this device has LIB2" when
 *   the library running here is not the recipe's (its output could differ);
 * - DF_ERROR_INVALID_ARGUMENT "... more than the memory budget ..." when
 *   dfi_recipe_memory() exceeds @memory_limit;
 * - DF_ERROR_INVALID_DELTA for a recipe that fails dfi_recipe_check().
 * Either way the device can fall back to the compressed bytes themselves.
 * While running: DF_ERROR_CORRUPT when the content is not content_size
 * bytes or the output would not be stream_size bytes (the output is cut
 * there: never more than stream_size bytes are written); the errors of
 * @read and @write; the cancellation. The caller still hash-checks what
 * was written.
 */
gboolean dfi_recipe_rebuild (const DfRecipe *recipe, DfRecipeReadFunc read, gpointer read_data, DfRecipeWriteFunc write,
                             gpointer write_data, guint64 memory_limit, GCancellable *cancellable, GError **error);

/* A byte range of a file: @length bytes at @offset of @fd (read with
 * pread, so the same fd may serve several spans). */
typedef struct
{
  int fd;
  guint64 offset;
  guint64 length;
} DfRecipeSpan;

typedef struct
{
  guint max_candidates; /* 0: DF_RECIPE_FIND_CANDIDATES_DEFAULT */
  guint64 max_bytes;    /* content bytes fed over all candidates; 0: DF_RECIPE_FIND_BYTES_DEFAULT */
  guint64 max_memory;   /* candidates needing more are skipped; 0 (or more): DF_RECIPE_FIND_MEMORY_MAX */
} DfRecipeFindLimits;

/* What a search cost. */
typedef struct
{
  guint candidates;   /* candidates run */
  guint skipped;      /* candidates skipped for DF_RECIPE_FIND_MEMORY_MAX */
  guint listed;       /* candidates the headers allowed */
  guint64 bytes_in;   /* content bytes fed to encoders */
  guint64 bytes_out;  /* compressed bytes compared */
  gboolean exhausted; /* stopped by a limit before every listed candidate ran */
} DfRecipeFindStats;

/**
 * dfi_recipe_find:
 * @compressed: the compressed stream, exactly (one gzip member, zlib
 *   stream, raw deflate stream, zstd frame or xz stream)
 * @content: its decompressed content
 * @limits: (nullable): search bounds; NULL for the defaults
 * @out: the recipe, when one is found
 * @found: TRUE when @out reproduces @compressed byte for byte
 * @stats: (nullable): what the search cost
 *
 * Reads the stream's headers (gzip XFL, zlib FLEVEL and window, zstd frame
 * header, xz stream flags, block header and first LZMA2 chunk), lists the
 * encoder settings that could have made it, most likely first, and runs
 * them in turn, comparing each one's output with @compressed as it comes
 * and dropping it at its first differing byte. Finding no recipe is a
 * normal outcome (TRUE, *@found FALSE). FALSE only for a read error
 * (DF_ERROR_IO), spans that cannot be read, or the cancellation. Memory:
 * one candidate's encoder at a time (at most DF_RECIPE_FIND_MEMORY_MAX)
 * and a few buffers.
 */
gboolean dfi_recipe_find (const DfRecipeSpan *compressed, const DfRecipeSpan *content, const DfRecipeFindLimits *limits,
                          DfRecipe *out, gboolean *found, DfRecipeFindStats *stats, GCancellable *cancellable,
                          GError **error);
