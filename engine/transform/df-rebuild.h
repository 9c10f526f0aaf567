/* Rebuild programs: how a device makes a compressed object (an initrd, a
 * .gz file, a kernel's payload) from its decompressed content, bit-exactly.
 *
 * A program (format 3's DF_ENCODING_REBUILD entries carry one after the
 * object's header) describes the object as segments in file order:
 *
 * - plain: bytes copied as they are;
 * - recipe: a compressed stream made by compressing the segment's content
 *   again with a system library as a recipe says (df-recipe.h);
 * - deflate: a raw deflate stream made from the segment's content and our
 *   own reconstruction data (df-deflate.h).
 *
 * Each segment's content is a list of pieces: literal bytes, carried in the
 * program, or the whole content of an existing content object ("these
 * bytes are exactly object X"): the files of the new tree that an initrd's
 * cpio archive holds again. So an initrd of 130 MB of cpio, nearly all of
 * it files of the tree, costs its cpio headers, the files found nowhere
 * else and the deflate reconstruction data. A patch piece (version 2) is
 * bytes diffed in the decompressed domain: a zstd frame, carried among the
 * literals, decoded with the decompressed content of an existing object
 * (the old version of a .gz changelog, gzip or zstd) as its prefix.
 *
 * Serialized form, a GVariant of type DF_REBUILD_PROGRAM_TYPE in normal
 * form:
 *   y   version (DF_REBUILD_PROGRAM_VERSION)
 *   a(yttuay) segments: kind (DfRebuildSegmentKind), bytes of the object it
 *       makes, bytes of content it reads, number of pieces (taken in order
 *       from the piece list), its data (a serialized recipe, the deflate
 *       reconstruction data, or empty for plain)
 *   a(yayt) pieces: kind (DfRebuildPieceKind), object checksum (32 bytes,
 *       empty for a literal; for a patch 48: the checksum, then the
 *       object's size and its decompressed size, little-endian 64-bit),
 *       length (the content bytes the piece makes)
 *   ay  literals: every literal piece's bytes and every patch piece's zstd
 *       frame, in piece order
 *
 * The device treats a program as hostile: dfi_rebuild_program_parse()
 * checks every count and sum before anything runs, and dfi_rebuild_run()
 * bounds what it writes to the declared sizes; whatever it writes is
 * hash-checked by the caller before it enters a repository. */
#pragma once

#include <gio/gio.h>

#include "df-common.h"
#include "df-recipe.h"

#define DF_REBUILD_PROGRAM_TYPE "(ya(yttuay)a(yayt)ay)"
#define DF_REBUILD_PROGRAM_VERSION 1
/* Programs with patch pieces carry version 2; version 1 is still read. */
#define DF_REBUILD_PROGRAM_VERSION_PATCH 2
/* A patch piece's source decompresses to at most this, and it makes at most
 * this: both are held in memory while it is decoded. */
#define DF_REBUILD_PATCH_SOURCE_MAX (16 * DF_MIB)
#define DF_REBUILD_PATCH_OUTPUT_MAX (16 * DF_MIB)
/* Patch pieces one program may hold (each decompresses its source). */
#define DF_REBUILD_PATCH_PIECES_MAX 64
/* Memory a patch piece takes beside its source and its output: the
 * source's decoder (gzip or zstd, into a buffer of its own size) and the
 * patch's. */
#define DF_REBUILD_PATCH_DECODERS (512 * 1024)
/* Segments and pieces one program may hold: detection's own limits (4096
 * segments, 65536 cpio entries, each a header literal and an object). */
#define DF_REBUILD_SEGMENTS_MAX 4096
#define DF_REBUILD_PIECES_MAX (256u * 1024)
/* Recipe and deflate segments of one program: each starts an encoder,
 * whose setup (zeroing its tables, up to a hundred MiB) costs whatever
 * little content it gets. Real objects have one to three frames. */
#define DF_REBUILD_ENCODER_SEGMENTS_MAX 64
/* Memory a rebuild takes beside its encoder: buffers of the content reader
 * and the output. */
#define DF_REBUILD_BUFFERS (512 * 1024)

typedef enum
{
  DF_REBUILD_SEGMENT_PLAIN = 0,
  DF_REBUILD_SEGMENT_RECIPE = 1,
  DF_REBUILD_SEGMENT_DEFLATE = 2,
  DF_REBUILD_SEGMENT_LAST = DF_REBUILD_SEGMENT_DEFLATE,
} DfRebuildSegmentKind;

typedef enum
{
  DF_REBUILD_PIECE_LITERAL = 0,
  DF_REBUILD_PIECE_OBJECT = 1,
  DF_REBUILD_PIECE_PATCH = 2,
} DfRebuildPieceKind;

/* --- Building (generator) ---------------------------------------------- */

typedef struct _DfRebuildBuilder DfRebuildBuilder;

DfRebuildBuilder *dfi_rebuild_builder_new (void);
void dfi_rebuild_builder_free (DfRebuildBuilder *b);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (DfRebuildBuilder, dfi_rebuild_builder_free)

/* Starts a segment making @out_size bytes of the object; @data is the
 * serialized recipe or the reconstruction data (NULL for plain). Its
 * content follows as pieces. */
void dfi_rebuild_builder_segment (DfRebuildBuilder *b, DfRebuildSegmentKind kind, guint64 out_size, GBytes *data);
/* Appends literal bytes to the current segment's content (merged with a
 * literal piece just before). */
void dfi_rebuild_builder_literal (DfRebuildBuilder *b, const guint8 *data, gsize len);
/* Appends the whole content of object @checksum (@length bytes). */
void dfi_rebuild_builder_object (DfRebuildBuilder *b, const guint8 checksum[DF_SHA256_LEN], guint64 length);
/* Appends @length bytes made by zstd @frame (@frame_len bytes, carried
 * among the literals) decoded against the decompressed content of object
 * @checksum (@size bytes, @source_size decompressed); the program becomes
 * version 2. */
void dfi_rebuild_builder_patch (DfRebuildBuilder *b, const guint8 checksum[DF_SHA256_LEN], guint64 size,
                                guint64 source_size, guint64 length, const guint8 *frame, gsize frame_len);
/* Bytes of literals so far (what the program will carry). */
guint64 dfi_rebuild_builder_literal_bytes (const DfRebuildBuilder *b);
/* The serialized program; *@content_total: the content bytes it reads. */
GBytes *dfi_rebuild_builder_end (DfRebuildBuilder *b, guint64 *content_total);

/* --- Running (device) --------------------------------------------------- */

typedef struct
{
  GVariant *v; /* the program; segments, pieces and literals point into it */
  GVariant *segments, *pieces;
  const guint8 *literals;
  gsize literals_len;
  guint n_segments, n_pieces;
  guint n_encoders; /* recipe and deflate segments */
  guint64 object_size, content_total;
  guint64 memory; /* the largest encoder memory a segment needs (dfi_recipe_memory(), the deflate model's),
                   * plus the largest patch piece's source, output and decoders */
  guint n_patches;
  guint deflate_lanes; /* lanes its memory counts for a deflate segment with splits (else 0) */
  /* Distinct library identities its recipes need, NULL-terminated. */
  char *libraries[9];
  guint n_libraries;
} DfRebuildProgram;

void dfi_rebuild_program_clear (DfRebuildProgram *p);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (DfRebuildProgram, dfi_rebuild_program_clear)

/* Parses and checks program @bytes (hostile) for an object of
 * @object_size bytes whose entry declares @content_total bytes of content:
 * normal form, version, at most DF_REBUILD_SEGMENTS_MAX segments (of which
 * DF_REBUILD_ENCODER_SEGMENTS_MAX recipe or deflate ones) and
 * DF_REBUILD_PIECES_MAX pieces, each segment's pieces adding up to its
 * content and its output to the object, every recipe valid and matching
 * its segment, the literals used up exactly, at most 8 distinct libraries.
 * DF_ERROR_INVALID_DELTA naming what is wrong. Keeps a reference to
 * @bytes; allocates nothing per piece. */
gboolean dfi_rebuild_program_parse (GBytes *bytes, guint64 object_size, guint64 content_total, DfRebuildProgram *out,
                                    GError **error);

/* Opens object @checksum for reading its content, which must be exactly
 * @length bytes (else DF_ERROR_CORRUPT or DF_ERROR_MISSING_BASE). */
typedef GInputStream *(*DfRebuildOpenFunc) (gpointer user_data, const guint8 checksum[DF_SHA256_LEN],
                                            guint64 length, GCancellable *cancellable, GError **error);
/* A DfRebuildOpenFunc over OstreeRepo @repo (the user data): libostree
 * finds the object in the repository or among those the current
 * transaction has written. A missing object is DF_ERROR_MISSING_BASE; one
 * that is not a regular file of @length bytes DF_ERROR_CORRUPT. */
GInputStream *dfi_rebuild_open_from_repo (gpointer repo, const guint8 checksum[DF_SHA256_LEN], guint64 length,
                                          GCancellable *cancellable, GError **error);

/* The decompressed content of a gzip (one or more members) or zstd (one or
 * more frames) stream read from @in, which must be exactly @expect bytes
 * (else DF_ERROR_CORRUPT), or with @expect 0 at most @max bytes (else
 * DF_ERROR_FAILED). DF_ERROR_CORRUPT for anything else in the stream.
 * Memory: the output and the decoder's state (no zstd window: the output
 * is the window). */
GBytes *dfi_rebuild_unpack (GInputStream *in, guint64 expect, guint64 max, GCancellable *cancellable, GError **error);

/* Takes the next @len bytes of the object. */
typedef gboolean (*DfRebuildWriteFunc) (gpointer user_data, const guint8 *buf, gsize len, GError **error);

/* Runs @p: writes exactly p->object_size bytes through @write, front to
 * back, reading each object piece once through @open. Memory: one
 * segment's encoder (at most @memory_limit, else DF_ERROR_INVALID_ARGUMENT
 * before anything is written; a recipe needing another library than this
 * process runs: DF_ERROR_MISSING_BASE) and DF_REBUILD_BUFFERS. Work:
 * linear in content_total, plus at most DF_REBUILD_ENCODER_SEGMENTS_MAX
 * encoder setups. A segment that does not make exactly its
 * declared bytes, or content that does not fit a recipe or the
 * reconstruction data, is DF_ERROR_CORRUPT; a malformed one
 * DF_ERROR_INVALID_DELTA. The caller hashes the result. */
gboolean dfi_rebuild_run (const DfRebuildProgram *p, DfRebuildOpenFunc open, gpointer open_data,
                          DfRebuildWriteFunc write, gpointer write_data, guint64 memory_limit,
                          GCancellable *cancellable, GError **error);

/* Checks that this process can run programs needing @libraries (NULL-
 * terminated identities, as a superblock part declares them): FALSE with
 * *@why set (a static string) when one is not what this process runs. A
 * test hook: DF_TEST_REBUILD_LIBRARY=mismatch in the environment makes
 * every library differ. */
gboolean dfi_rebuild_libraries_match (char *const *libraries, const char **why);
