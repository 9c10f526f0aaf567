/* Native part files: one zstd frame whose payload is the concatenation of
 * the part's entries' data (engine/FORMAT.md, "Parts"). */
#pragma once

#include "df-superblock.h"

/* Compresses @payload into a part file. Deterministic for the same input and
 * level. */
GBytes *df_part_compress (const guint8 *payload, gsize len, int level, GError **error);

/* Checks @file against the part's declared SHA-256 and sizes before looking
 * at any byte of it, then decompresses it within the declared size.
 * @index names the part in errors. */
GBytes *df_part_decode (const DfPart *part, guint index, GBytes *file, GError **error);

/* Content object header: uid, gid, mode, xattrs (a(ayay)), symlink target. */
typedef struct
{
  guint32 uid, gid, mode;
  GVariant *xattrs;     /* a(ayay) */
  char *symlink_target; /* "" for regular files */
} DfContentHeader;

void df_content_header_clear (DfContentHeader *h);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (DfContentHeader, df_content_header_clear)

/* Serialized form: u32 LE length, then a normal-form DF_CONTENT_HEADER_TYPE
 * variant. */
GBytes *df_content_header_serialize (guint32 uid, guint32 gid, guint32 mode, GVariant *xattrs,
                                     const char *symlink_target);

/* Parses a header at the start of @data (@len bytes available); on success
 * *@consumed is the header's full size. Validates the mode: regular files
 * and symlinks only, symlink iff a target is given. */
gboolean df_content_header_parse (const guint8 *data, gsize len, DfContentHeader *out, gsize *consumed, GError **error);

/* A GFileInfo suitable for ostree_raw_file_to_content_stream(). */
GFileInfo *df_content_header_to_file_info (const DfContentHeader *h, guint64 size);
