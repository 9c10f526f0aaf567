/* The native superblock: in-memory form, serializer and validating parser.
 * The byte layout is specified in engine/FORMAT.md. */
#pragma once

#include "df-common.h"
#include "df-sign.h"

#define DF_SUPERBLOCK_MAGIC "DFDELTA\n"
#define DF_SUPERBLOCK_HEADER_LEN 24
/* GVariant type of the superblock body: format 2, and format 3, whose
 * parts also carry their dependencies, the libraries their rebuilds need
 * and the memory those declare. */
#define DF_SUPERBLOCK_BODY_TYPE_V2 "(a{sv}ayayayaya(ayttya(yayyaytttttt)))"
#define DF_SUPERBLOCK_BODY_TYPE_V3 "(a{sv}ayayayaya(ayttya(yayyaytttttt)auast))"
#define DF_ENTRY_TYPE "(yayyaytttttt)"
/* GVariant type of a content object header inside a part. */
#define DF_CONTENT_HEADER_TYPE "(uuua(ayay)s)"

typedef enum
{
  DF_ENCODING_RAW = 0,
  DF_ENCODING_ZSTD_REF = 1,
  DF_ENCODING_DIFF = 2,
  DF_ENCODING_REBUILD = 3, /* format 3: a whole compressed object rebuilt by a program (df-rebuild.h) */
  DF_ENCODING_LAST = DF_ENCODING_REBUILD,
} DfEncoding;

typedef enum
{
  DF_PART_KIND_CONTENT = 0,
  DF_PART_KIND_METADATA = 1,
  /* Format 3: entries that rebuild compressed objects (DF_ENCODING_REBUILD
   * only), applied once the parts they depend on are. */
  DF_PART_KIND_REBUILD = 2,
  /* Format 3: the plain encoding of objects a rebuild part makes, used
   * only when the device cannot or did not rebuild them. */
  DF_PART_KIND_ALTERNATIVE = 3,
  DF_PART_KIND_LAST = DF_PART_KIND_ALTERNATIVE,
} DfPartKind;

typedef struct
{
  guint8 objtype; /* OstreeObjectType: FILE, DIR_TREE or DIR_META */
  guint8 encoding;
  gboolean has_source;
  guint8 checksum[DF_SHA256_LEN];
  guint8 source[DF_SHA256_LEN];
  guint64 object_size; /* whole content (or metadata) size */
  guint64 offset;      /* where this entry's bytes start in the object */
  guint64 length;      /* object bytes this entry produces */
  guint64 data_size;   /* payload bytes this entry consumes */
  guint64 src_offset;  /* window of the source object (ZSTD_REF) */
  guint64 src_length;  /* REBUILD: the decompressed bytes the program reads (its work) */
} DfEntry;

typedef struct
{
  guint8 sha256[DF_SHA256_LEN];
  guint64 compressed_size;
  guint64 uncompressed_size;
  guint8 kind; /* DfPartKind */
  guint64 raw_size; /* sum of the entries' data_size: the raw section's length */
  guint n_entries;
  DfEntry *entries;
  /* Format 3, rebuild parts only (else zero / empty): */
  guint n_deps;
  guint32 *deps;   /* content parts to apply first, strictly ascending */
  char **libraries; /* NULL-terminated library identities the rebuilds need ("zstd 1.5.4"), or NULL */
  guint64 rebuild_memory; /* the most any of its rebuilds' encoders declares */
} DfPart;

typedef struct
{
  guint32 version;
  GVariant *metadata; /* a{sv}, informative */
  gboolean has_from;
  guint8 from[DF_SHA256_LEN];
  guint8 to[DF_SHA256_LEN];
  char from_hex[65]; /* "" when from scratch */
  char to_hex[65];
  GBytes *commit;     /* serialized commit object, hashes to @to */
  GBytes *commitmeta; /* detached metadata a{sv}, possibly empty */
  guint n_parts;
  DfPart *parts;
  DfSignedFile file; /* the superblock file as published: size, SHA-256, envelope */
  guint64 memory;    /* bytes the parsed form takes (for memory budgets) */
} DfSuperblock;

DfSuperblock *dfi_superblock_new (void);
/* Frees what @p owns (entries, dependencies, libraries). */
void dfi_part_clear (DfPart *p);
/* TRUE when @sb has rebuild or alternative parts: it is written as format
 * 3, otherwise as format 2. */
gboolean dfi_superblock_needs_v3 (const DfSuperblock *sb);
void dfi_superblock_free (DfSuperblock *sb);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (DfSuperblock, dfi_superblock_free)

/* Serializes @sb (parts with entries must be filled in). */
GBytes *dfi_superblock_serialize (const DfSuperblock *sb);

/* Parses and validates superblock file @file (read from an untrusted
 * place). @policy (NULL: none) is applied to its envelope before anything
 * else is read. Every bound in df-limits.h and every structural rule of
 * FORMAT.md is checked here, so the result can be used without further
 * range checks on the superblock's own numbers (sources are checked
 * against real objects at apply time). Reading it may hold at most
 * @memory bytes at once, @file included, counted before they are
 * allocated (DF_ERROR_INVALID_ARGUMENT "memory budget" beyond); the
 * result keeps no reference to @file and takes sb->memory bytes. */
DfSuperblock *dfi_superblock_parse_full (GBytes *file, const DfSignaturePolicy *policy, guint64 memory, GError **error);
/* The same without a signature policy or a memory limit (tools). */
DfSuperblock *dfi_superblock_parse (GBytes *file, GError **error);

/* TRUE when every part of the delta whose superblock file is @file
 * (native or stock; stock parts carried inline skipped) is in directory
 * @dir_dfd with the size and SHA-256 the superblock lists; else FALSE,
 * DF_ERROR_CORRUPT naming the first part that is not (or the parse error). */
gboolean dfi_delta_parts_whole (int dir_dfd, GBytes *file, GCancellable *cancellable, GError **error);

/* Reads `superblock` in @dir and parses it (tools). */
DfSuperblock *dfi_superblock_load (int dfd, const char *dir, GError **error);
