/* Native part files: one zstd frame whose payload is a table of section
 * lengths and five sections (engine/FORMAT.md, "Parts"). */
#pragma once

#include "df-superblock.h"

/* The sections of a part's payload, in file order. Raw holds the entries'
 * `data_size` bytes (metadata, content headers, raw bodies, zstd-ref
 * frames); the other four hold the diffs (df-bspatch.h). */
typedef enum
{
  DF_SECTION_RAW = 0,
  DF_SECTION_CONTROL,
  DF_SECTION_RUNS,
  DF_SECTION_ADD,
  DF_SECTION_COPY,
  DF_SECTION_COUNT,
} DfSection;

/* The payload starts with one u64 LE length per section. */
#define DF_PART_TABLE_LEN (8 * DF_SECTION_COUNT)

/* Reads the sections of a decoded payload in order; every read is bounded
 * by its section. */
typedef struct
{
  const guint8 *data[DF_SECTION_COUNT];
  gsize len[DF_SECTION_COUNT];
  gsize pos[DF_SECTION_COUNT];
} DfPartReader;

/* Checks the section table of @payload (@len bytes): the lengths must add
 * up to the payload exactly, and the raw section must hold @raw_size bytes
 * (the sum of the entries' data sizes). */
gboolean dfi_part_reader_init (DfPartReader *r, const guint8 *payload, gsize len, guint64 raw_size, GError **error);

/* The next @n bytes of section @s, or NULL (error set) when fewer remain. */
const guint8 *dfi_part_reader_take (DfPartReader *r, DfSection s, guint64 n, GError **error);

/* An unsigned LEB128 number (at most 10 bytes, no bits beyond 64). */
gboolean dfi_part_reader_varint (DfPartReader *r, DfSection s, guint64 *out, GError **error);

/* Every section must have been read to its end. */
gboolean dfi_part_reader_finish (const DfPartReader *r, GError **error);

/* Appends @v to @out as an unsigned LEB128 number. */
void dfi_varint_append (GByteArray *out, guint64 v);

/* Reads an unsigned LEB128 number (at most 10 bytes, no bits beyond 64)
 * at *@p, before @end, and moves *@p past it; FALSE (nothing moved) when
 * it ends early or is too long. */
gboolean dfi_varint_read (const guint8 **p, const guint8 *end, guint64 *out);

/* Table plus sections: the payload dfi_part_reader_init() reads. */
GByteArray *dfi_part_payload_assemble (GByteArray *const sections[DF_SECTION_COUNT]);

/* Compresses @payload into a part file. Deterministic for the same input and
 * level. Looks at @cancellable (may be NULL) after every MiB of input. */
GBytes *dfi_part_compress (const guint8 *payload, gsize len, int level, GCancellable *cancellable, GError **error);

/* Checks @file against the part's declared SHA-256 and sizes before looking
 * at any byte of it, then decompresses it within the declared size.
 * @index names the part in errors. */
GBytes *dfi_part_decode (const DfPart *part, guint index, GBytes *file, GError **error);

/* Content object header: uid, gid, mode, xattrs (a(ayay)), symlink target. */
typedef struct
{
  guint32 uid, gid, mode;
  GVariant *xattrs;     /* a(ayay) */
  char *symlink_target; /* "" for regular files */
} DfContentHeader;

void dfi_content_header_clear (DfContentHeader *h);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (DfContentHeader, dfi_content_header_clear)

/* Serialized form: u32 LE length, then a normal-form DF_CONTENT_HEADER_TYPE
 * variant. */
GBytes *dfi_content_header_serialize (guint32 uid, guint32 gid, guint32 mode, GVariant *xattrs,
                                      const char *symlink_target);

/* Parses a header at the start of @data (@len bytes available); on success
 * *@consumed is the header's full size. Validates the mode: regular files
 * and symlinks only, symlink iff a target is given. */
gboolean dfi_content_header_parse (const guint8 *data, gsize len, DfContentHeader *out, gsize *consumed,
                                   GError **error);

/* Starts OSTree's content checksum of a file object: the file header
 * (uid, gid, mode, symlink target, xattrs a(ayay) or NULL); the content
 * bytes follow. */
void dfi_content_checksum_begin (DfSha256 *h, guint32 uid, guint32 gid, guint32 mode, const char *symlink_target,
                                 GVariant *xattrs);

/* A GFileInfo suitable for ostree_raw_file_to_content_stream(). */
GFileInfo *dfi_content_header_to_file_info (const DfContentHeader *h, guint64 size);
