/* Stock OSTree static deltas, as `ostree static-delta generate` writes them
 * (2022.7 and later): the superblock, the part files and the opcode program
 * each part runs. Every number read from them is checked before use.
 * The byte layout is summarised in engine/STOCK-FORMAT.md. */
#pragma once

#include "df-common.h"
#include "df-sign.h"

/* One object a part makes: type byte, then its 32-byte checksum. */
#define DF_STOCK_OBJREC_LEN 33

typedef struct
{
  guint8 sha256[DF_SHA256_LEN];
  guint64 size;        /* the part file's size */
  guint64 usize;       /* declared size of the objects it makes (informative) */
  guint n_objects;
  guint8 *objects;     /* n_objects records of DF_STOCK_OBJREC_LEN bytes */
  GBytes *inline_data; /* the part's bytes, when the superblock carries it */
} DfStockPart;

typedef struct
{
  guint8 objtype;
  guint8 checksum[DF_SHA256_LEN];
  guint64 size;  /* compressed (.filez) size */
  guint64 usize; /* uncompressed size */
} DfStockFallback;

typedef struct
{
  gboolean has_from;
  guint8 from[DF_SHA256_LEN];
  guint8 to[DF_SHA256_LEN];
  char from_hex[65]; /* "" when from scratch */
  char to_hex[65];
  guint64 timestamp;
  GBytes *commit;      /* serialized commit object; hashes to @to */
  GVariant *commitmeta; /* detached metadata a{sv}, or NULL */
  gboolean big_endian;  /* of the part and fallback sizes */
  gboolean endianness_guessed;
  guint n_parts;
  DfStockPart *parts;
  guint n_fallbacks;
  DfStockFallback *fallbacks;
  guint64 n_objects; /* in all parts */
  gboolean inline_parts; /* some part's bytes are in the superblock */
  DfSignedFile file; /* the superblock file as published: size, SHA-256, envelope */
  guint64 memory;    /* bytes the parsed form takes (for memory budgets) */
} DfStockSuperblock;

void df_stock_superblock_free (DfStockSuperblock *sb);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (DfStockSuperblock, df_stock_superblock_free)

/* TRUE when @file (a superblock file, perhaps in a signed envelope) is not
 * a native deltafetch superblock: the caller reads it as a stock one. */
gboolean df_stock_superblock_sniff (GBytes *file);

/* Parses and validates a stock superblock (plain or in libostree's signed
 * envelope, to which @policy, NULL for none, is applied first). The
 * commit must hash to the to-checksum; part and fallback sizes are read in
 * the delta's endianness. The file and the parsed form together may take
 * at most @memory bytes (DF_ERROR_INVALID_ARGUMENT "memory budget"
 * beyond); the result keeps the file only for inline parts, and takes
 * sb->memory bytes. */
DfStockSuperblock *df_stock_superblock_parse_full (GBytes *file, const DfSignaturePolicy *policy, guint64 memory,
                                                   GError **error);
/* The same without a policy or a memory limit (tools). */
DfStockSuperblock *df_stock_superblock_parse (GBytes *file, GError **error);

/* "deltas/AB/CDEF…-GHIJ…" (modified base64), the directory a stock
 * repository keeps the delta in; @from may be NULL. */
char *df_stock_delta_relpath (const char *from, const char *to);

/* Decodes part @i into @out_fd (an empty file): the part file @part_fd (or
 * the inline bytes) must have the declared size and SHA-256, checked before
 * any byte is decompressed; the payload may not exceed @max bytes. Returns
 * the payload length in @out_len. */
typedef struct _DfStockDecoder DfStockDecoder;
/* An xz decoder kept from part to part, so its 32 MiB dictionary is
 * allocated (and its pages touched) once. */
DfStockDecoder *df_stock_decoder_new (void);
void df_stock_decoder_free (DfStockDecoder *d);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (DfStockDecoder, df_stock_decoder_free)

/* What df_stock_execute() holds while a part runs: the mode and xattr
 * tables (at most DF_STOCK_PAYLOAD_TABLE_MAX each), three buffers of
 * DF_STOCK_IO_CHUNK and the opcode window. */
#define DF_STOCK_PAYLOAD_TABLE_MAX (1024 * 1024)
#define DF_STOCK_IO_CHUNK (256 * 1024)
#define DF_STOCK_OPS_WINDOW (64 * 1024)
#define DF_STOCK_EXEC_MEM (2 * DF_STOCK_PAYLOAD_TABLE_MAX + 3 * DF_STOCK_IO_CHUNK + DF_STOCK_OPS_WINDOW)

/* The most bytes part @p's payload may decode to: its declared
 * uncompressed size (the objects it makes) plus an allowance for bsdiff
 * controls (1/DF_STOCK_PAYLOAD_SLACK_DIV of it), per object (source
 * checksum, symlink target, opcodes) and per part (tables). */
#define DF_STOCK_PAYLOAD_SLACK_DIV 16
#define DF_STOCK_PAYLOAD_PER_OBJECT (4096 + 128)
#define DF_STOCK_PAYLOAD_BASE (64 * 1024)
guint64 df_stock_payload_max (const DfStockPart *p);

/* @dec may be NULL (a decoder for this part alone). With @copy_dfd >= 0
 * the part file is copied into a temporary file under that directory
 * while it is hashed and decoded from the copy (for files on media the
 * engine does not control); with -1 it is read again (the fetcher's own
 * store). Decoding stops with DF_ERROR_INVALID_DELTA past
 * df_stock_payload_max(). */
gboolean df_stock_part_decode (const DfStockSuperblock *sb, guint i, int part_fd, int copy_dfd, int out_fd,
                               guint64 *out_len, DfStockDecoder *dec, GCancellable *c, GError **error);

/* A decoded part payload `(a(uuu)aa(ayay)ayay)` in a file: the mode and
 * xattr tables in memory (at most 1 MiB each), the raw data and the
 * opcodes read on demand. */
typedef struct
{
  int fd; /* not owned */
  GVariant *modes;  /* a(uuu), big-endian values */
  GVariant *xattrs; /* aa(ayay) */
  guint64 raw_off, raw_len;
  guint64 ops_off, ops_len;
} DfStockPayload;

gboolean df_stock_payload_open (DfStockPayload *p, int fd, guint64 len, GError **error);
void df_stock_payload_clear (DfStockPayload *p);
/* All the opcodes (tools). */
GBytes *df_stock_payload_read_ops (const DfStockPayload *p, GError **error);

/* What a part's program produces, in order. Content bytes arrive in
 * pieces; a content object is begun, fed exactly its size, then ended.
 * Sources are the old objects modified files are rebuilt from. */
typedef struct
{
  gboolean (*metadata) (gpointer user, OstreeObjectType type, const guint8 csum[DF_SHA256_LEN], GBytes *data,
                        GError **error);
  /* Set *skip to leave the object out (its bytes are not produced). */
  gboolean (*content_begin) (gpointer user, const guint8 csum[DF_SHA256_LEN], guint32 uid, guint32 gid, guint32 mode,
                             GVariant *xattrs, const char *symlink_target, guint64 size, gboolean *skip,
                             GError **error);
  gboolean (*content_data) (gpointer user, const guint8 *data, gsize len, GError **error);
  gboolean (*content_end) (gpointer user, GError **error);
  /* Names source object @csum (replacing any other). It is opened only
   * when source_size() or source_read() needs it: a program may name
   * sources it never reads. */
  gboolean (*source_set) (gpointer user, const guint8 csum[DF_SHA256_LEN], GError **error);
  /* The source's content size (asked before any read). */
  gboolean (*source_size) (gpointer user, guint64 *size, GError **error);
  /* Exactly @len bytes at @offset of the source (always inside it). */
  gboolean (*source_read) (gpointer user, guint64 offset, guint8 *buf, gsize len, GError **error);
  void (*source_unset) (gpointer user);
} DfStockSink;

/* Opcodes run, by kind (optional output of df_stock_execute()). */
typedef struct
{
  guint64 splice, open, write, write_source, set_source, unset_source, close, bspatch;
} DfStockOpStats;

/* Runs part @part's program over @payload into @sink. Every object the
 * part declares must be produced, in order, and nothing else, and their
 * sizes may not add up to more than the part declares. @stats, when
 * given, is added to. */
gboolean df_stock_execute (const DfStockPart *part, DfStockPayload *payload, const DfStockSink *sink, gpointer user,
                           DfStockOpStats *stats, GCancellable *c, GError **error);

/* Reads fallback object @fb from @fd, a loose `.filez` file of @file_size
 * bytes as an archive repository serves it (a header, then the content as
 * raw deflate), into @sink: begun, fed exactly the declared size, ended.
 * The header must declare the fallback's size; inflating stops at it. The
 * caller checks the checksum (the sink sees every byte). */
gboolean df_stock_filez_read (int fd, guint64 file_size, const DfStockFallback *fb, const DfStockSink *sink,
                              gpointer user, GCancellable *c, GError **error);

/* Checks that @fd (@file_size bytes) holds fallback @fb: a `.filez` file
 * whose object hashes to its checksum, or for a dirtree/dirmeta the
 * object's own bytes. Nothing is written. */
gboolean df_stock_fallback_verify (int fd, guint64 file_size, const DfStockFallback *fb, GCancellable *c,
                                   GError **error);
