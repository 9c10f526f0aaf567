/* Bit-exact reconstruction of raw deflate streams (RFC 1951).
 *
 * A compressed file that no zlib setting reproduces (GNU gzip's output,
 * pigz's, any other encoder's) is carried in a delta as its decompressed
 * content plus reconstruction data: the build server runs
 * dfi_deflate_analyze() over the original stream, the device runs
 * dfi_deflate_rebuild() over the decompressed content and that data and gets
 * the original stream back, byte for byte.
 *
 * The reconstruction data is small because a model encoder (hash chains and
 * lazy or greedy matching with zlib's and gzip's parameters) runs on both
 * sides over the decompressed content and predicts each token the original
 * encoder chose; only the mispredictions are stored (the real token, a match
 * as its rank among the model's candidates where possible), with the block
 * boundaries and each dynamic block's Huffman header (predicted from the
 * block's symbol frequencies the way zlib and gzip build their trees, and
 * stored verbatim where that prediction fails). The layout is in
 * df-deflate-private.h.
 *
 * The gzip wrapper (header, trailer) is not handled here: only the raw
 * deflate stream.
 *
 * Contract: for every valid raw deflate stream X,
 * rebuild (decompress (X), analyze (X)) == X. analyze refuses (cleanly)
 * anything it cannot parse; rebuild checks every count and index it reads
 * and fails cleanly on reconstruction data that is malformed or does not fit
 * the content. Reconstruction data that is well formed but wrong (forged)
 * can produce a wrong stream: the caller hashes what rebuild writes. */
#pragma once

#include <gio/gio.h>

#include "df-common.h"

/* --- Limits ---------------------------------------------------------------- */
/* Rebuild memory: the model's window buffer (2 × 32 KiB + lookahead), its
 * hash chains (64 Ki heads and 32 Ki links of 4 bytes), the block being
 * built (at most DF_DEFLATE_BLOCK_TOKENS_MAX tokens of 4 bytes, only for
 * blocks whose header is predicted), the output bit buffer and a zstd
 * decompression context with a window of at most
 * 2^DF_DEFLATE_RECON_WINDOW_LOG bytes: under 4 MiB in all, whatever the
 * stream's size. */
#define DF_DEFLATE_REBUILD_MEMORY (4 * DF_MIB)
/* Tokens of one block whose Huffman header the model predicts: the header
 * comes before the tokens in the stream, so rebuild holds the block's
 * tokens until it has them all. zlib's blocks hold at most 16 Ki - 1 or
 * (memLevel 9) 32 Ki - 1 symbols, GNU gzip's 32 Ki; longer blocks keep their
 * header verbatim. */
#define DF_DEFLATE_BLOCK_TOKENS_MAX (128u * 1024)
/* Bytes the model compares in one search before it stops walking the
 * chain: zlib and gzip have no such bound, but a rebuild must not let
 * content and a model made to walk 4096 candidates of 257 equal bytes at
 * every position cost 10^6 compares a byte. Real data stays far below
 * (a level-9 search mostly rejects a candidate on one byte). */
#define DF_DEFLATE_SEARCH_BUDGET 32768
/* zstd window of the reconstruction data's body frame (both sides). */
#define DF_DEFLATE_RECON_WINDOW_LOG 20
/* Splits (lanes): at most this many in reconstruction data; a segment
 * between two holds at least DF_DEFLATE_SEGMENT_MIN_CONTENT bytes of content
 * (a restart re-reads 32 KiB of it) and at most DF_DEFLATE_SEGMENT_MAX bytes
 * of stream (a lane holds its segment's output until the segments before
 * it are written); analyze puts one about every DF_DEFLATE_SEGMENT_TARGET
 * bytes of stream. A rebuild runs at most DF_DEFLATE_LANES lanes, each
 * DF_DEFLATE_LANE_MEMORY more than one. */
#define DF_DEFLATE_SPLITS_MAX 4096u
#define DF_DEFLATE_SEGMENT_MIN_CONTENT (64u * 1024)
#define DF_DEFLATE_SEGMENT_MAX (1024u * 1024)
#define DF_DEFLATE_SEGMENT_TARGET (256u * 1024)
#define DF_DEFLATE_LANES 2u
#define DF_DEFLATE_LANE_MEMORY (DF_DEFLATE_REBUILD_MEMORY + DF_DEFLATE_SEGMENT_MAX)
/* Candidates a rebuild walks along a hash chain to find a match stored by
 * its rank (analyze stores a raw distance when the rank is beyond). */
#define DF_DEFLATE_RANK_WALK_MAX 256

/* Bounds both sides enforce (a NULL DfDeflateLimits means the defaults).
 * analyze: a stream whose decompressed content exceeds @max_output, or
 * which is longer than @max_input, is refused (DF_ERROR_INVALID_ARGUMENT);
 * it holds the stream, its content and 4 bytes a token in memory (a token
 * makes 1-258 bytes: 0.8 × the content for gzip -6 of binaries, 4 × at
 * worst). rebuild: the content and stream lengths the reconstruction data
 * declares, and the data's own length, are checked against them
 * (DF_ERROR_INVALID_DELTA). */
typedef struct
{
  guint64 max_output; /* decompressed bytes */
  guint64 max_input;  /* compressed bytes */
  guint64 max_recon;  /* reconstruction data bytes */
} DfDeflateLimits;

/* Defaults: 1 GiB of content, 1 GiB of stream, 64 MiB of reconstruction
 * data. */
void dfi_deflate_limits_init (DfDeflateLimits *limits);

/* What analyze found, for reports and tests. */
typedef struct
{
  guint64 content_len; /* decompressed bytes */
  guint64 stream_len;  /* bytes of the deflate stream */
  guint64 blocks;      /* blocks of each kind below, together */
  guint64 stored_blocks, fixed_blocks, dynamic_blocks;
  guint64 tokens;           /* literals and matches of all blocks */
  guint64 mispredictions;   /* tokens the model did not predict */
  guint64 headers_verbatim; /* dynamic headers the model did not predict */
  guint model;              /* index of the model chosen (see df-deflate-private.h) */
  guint model_flags;        /* its flags as used (DF_DEFLATE_MODEL_*) */
  guint64 recon_len;        /* length of the reconstruction data */
  guint64 splits;           /* where a rebuild's lanes may start */
} DfDeflateStats;

/* Reads the raw deflate stream @stream (@stream_len bytes, which may go on
 * after the stream's final block: *@consumed says where it ended; with
 * @consumed NULL, bytes after the final block are refused), decompresses it,
 * chooses the model that predicts it best (each of zlib's and gzip's
 * settings on the first 192 Ki tokens; zlib's windowBits and memLevel when
 * none fits; gzip's end of input over the whole stream), rebuilds the
 * stream from the result to check it, and returns the reconstruction data
 * in *@recon_out (a new GBytes, the caller's). @stats may be NULL.
 * Errors: DF_ERROR_INVALID_ARGUMENT for a stream that is not valid deflate
 * (named in the message: the bit offset and what is wrong) or that exceeds
 * @limits; DF_ERROR_FAILED if the check fails (a bug here: the caller
 * should carry the stream as it is). Runs on the build server: memory as
 * said in DfDeflateLimits; speed about 10 MB/s of content for zlib's and
 * gzip's streams, a few times slower for other encoders'. */
gboolean dfi_deflate_analyze (const guint8 *stream, gsize stream_len, const DfDeflateLimits *limits, gsize *consumed,
                              GBytes **recon_out, DfDeflateStats *stats, GError **error);

/* Reads up to @len bytes of decompressed content into @buf: returns the
 * count (0 only at the content's end) or -1 with @error set. */
typedef gssize (*DfDeflateReadFunc) (gpointer user_data, guint8 *buf, gsize len, GError **error);
/* Takes @len bytes of the rebuilt stream; FALSE with @error set stops the
 * rebuild. */
typedef gboolean (*DfDeflateWriteFunc) (gpointer user_data, const guint8 *buf, gsize len, GError **error);

/* Rebuilds the deflate stream described by the reconstruction data @recon
 * (@recon_len bytes, the caller's, hostile) from its decompressed content,
 * read in order through @read, writing the stream in order through @write.
 * The content must have exactly the length the data declares. Streams:
 * memory bounded by DF_DEFLATE_REBUILD_MEMORY; work linear in the content
 * and the stream (a position costs at most two chain walks of
 * DF_DEFLATE_SEARCH_BUDGET compared bytes and one of
 * DF_DEFLATE_RANK_WALK_MAX candidates; a block at most one tree build):
 * about 20-30 MB/s of content for gzip -6 streams, near gzip -6 itself
 * (level-9 streams as slow as gzip -9: a few MB/s on binaries).
 * Errors: DF_ERROR_INVALID_DELTA for reconstruction data that is malformed
 * or over @limits, DF_ERROR_CORRUPT for data that does not fit the content
 * (a match the content does not hold, a length that differs), the callbacks'
 * errors as they set them, G_IO_ERROR_CANCELLED through @cancellable
 * (checked every block). */
gboolean dfi_deflate_rebuild (DfDeflateReadFunc read, gpointer read_data, const guint8 *recon, gsize recon_len,
                              DfDeflateWriteFunc write, gpointer write_data, const DfDeflateLimits *limits,
                              GCancellable *cancellable, GError **error);

/* Whether reconstruction data @recon has a split table (its lanes). */
gboolean dfi_deflate_recon_has_splits (const guint8 *recon, gsize recon_len);

/* Skips the next @n bytes of content (FALSE with @error set). */
typedef gboolean (*DfDeflateSkipFunc) (gpointer user_data, guint64 n, GError **error);

/* Content that several lanes can read at once: @read and @skip on a
 * reader, @clone a new reader where a reader is now (taken before it has
 * read anything), @free for a clone. Each lane uses its own reader, from
 * its own thread. */
typedef struct
{
  DfDeflateReadFunc read;
  DfDeflateSkipFunc skip;
  gpointer (*clone) (gpointer reader);
  GDestroyNotify free;
} DfDeflateSource;

/* dfi_deflate_rebuild() in up to @lanes threads (at most DF_DEFLATE_LANES,
 * this one among them) when the reconstruction data has a split table:
 * each lane takes the next segment between splits, starts the model over
 * there from the state the table holds, and writes its segment's bytes
 * through @write once the segments before it are written, so that @write
 * takes the stream in order, from one lane at a time. Memory:
 * DF_DEFLATE_LANE_MEMORY a lane past the first, and the clones' own; the
 * work of a lane past the first grows by the content it skips and 32 KiB
 * a segment. Errors as dfi_deflate_rebuild(), and a split where no block
 * starts, or a model state out of range, as DF_ERROR_CORRUPT or
 * DF_ERROR_INVALID_DELTA. */
gboolean dfi_deflate_rebuild_lanes (const DfDeflateSource *src, gpointer reader, guint lanes, const guint8 *recon,
                                    gsize recon_len, DfDeflateWriteFunc write, gpointer write_data,
                                    const DfDeflateLimits *limits, GCancellable *cancellable, GError **error);

/* Convenience for tests and small streams: rebuild from @content in memory
 * into a new GBytes. */
GBytes *dfi_deflate_rebuild_bytes (const guint8 *content, gsize content_len, const guint8 *recon, gsize recon_len,
                                   const DfDeflateLimits *limits, GError **error);

/* Decompresses a raw deflate stream (the tokeniser of analyze) into a new
 * GBytes; *@consumed as for dfi_deflate_analyze(). For tests and callers that
 * need the content. Errors as dfi_deflate_analyze(). */
GBytes *dfi_deflate_inflate (const guint8 *stream, gsize stream_len, const DfDeflateLimits *limits, gsize *consumed,
                             GError **error);
