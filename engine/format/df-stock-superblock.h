/* The stock OSTree static delta superblock, as `ostree static-delta
 * generate` writes it (2022.7 and later): the delta's ends, its parts and
 * the objects each makes, and its fallback objects. Every number read from
 * it is checked before use. The byte layout is summarised in
 * engine/STOCK-FORMAT.md. */
#pragma once

#include "df-common.h"
#include "df-sign.h"

/* One object a part makes: type byte, then its 32-byte checksum. */
#define DF_STOCK_OBJREC_LEN 33

typedef struct
{
  guint8 sha256[DF_SHA256_LEN];
  guint64 size;  /* the part file's size */
  guint64 usize; /* declared size of the objects it makes (informative) */
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
  GBytes *commit;       /* serialized commit object; hashes to @to */
  GVariant *commitmeta; /* detached metadata a{sv}, or NULL */
  gboolean big_endian;  /* of the part and fallback sizes */
  gboolean endianness_guessed;
  guint n_parts;
  DfStockPart *parts;
  guint n_fallbacks;
  DfStockFallback *fallbacks;
  guint64 n_objects;     /* in all parts */
  gboolean inline_parts; /* some part's bytes are in the superblock */
  DfSignedFile file;     /* the superblock file as published: size, SHA-256, envelope */
  guint64 memory;        /* bytes the parsed form takes (for memory budgets) */
} DfStockSuperblock;

void dfi_stock_superblock_free (DfStockSuperblock *sb);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (DfStockSuperblock, dfi_stock_superblock_free)

/* TRUE when @file (a superblock file, perhaps in a signed envelope) is not
 * a native deltafetch superblock: the caller reads it as a stock one. */
gboolean dfi_stock_superblock_sniff (GBytes *file);

/* Parses and validates a stock superblock (plain or in libostree's signed
 * envelope, to which @policy, NULL for none, is applied first). The
 * commit must hash to the to-checksum; part and fallback sizes are read in
 * the delta's endianness. The file and the parsed form together may take
 * at most @memory bytes (DF_ERROR_INVALID_ARGUMENT "memory budget"
 * beyond); the result keeps the file only for inline parts, and takes
 * sb->memory bytes. */
DfStockSuperblock *dfi_stock_superblock_parse_full (GBytes *file, const DfSignaturePolicy *policy, guint64 memory,
                                                    GError **error);
/* The same without a policy or a memory limit (tools). */
DfStockSuperblock *dfi_stock_superblock_parse (GBytes *file, GError **error);

/* "deltas/AB/CDEF…-GHIJ…" (modified base64), the directory a stock
 * repository keeps the delta in; @from may be NULL. */
char *dfi_stock_delta_relpath (const char *from, const char *to);
