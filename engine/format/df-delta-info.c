/* The public, read-only view of a superblock used by `deltafetch show`. */
#include <fcntl.h>

#include "df-superblock.h"

struct _DfDeltaInfo
{
  DfSuperblock *sb;
  guint64 counts[DF_COUNT_LAST];
  guint64 total_compressed, total_uncompressed;
};

DfDeltaInfo *
df_delta_info_load (const char *delta_dir, GError **error)
{
  g_autoptr (DfSuperblock) sb = df_superblock_load (AT_FDCWD, delta_dir, error);
  if (sb == NULL)
    return NULL;
  DfDeltaInfo *info = g_new0 (DfDeltaInfo, 1);
  for (guint i = 0; i < sb->n_parts; i++)
    {
      const DfPart *p = &sb->parts[i];
      info->total_compressed += p->compressed_size;
      info->total_uncompressed += p->uncompressed_size;
      for (guint j = 0; j < p->n_entries; j++)
        {
          const DfEntry *e = &p->entries[j];
          info->counts[DF_COUNT_CHUNKS]++;
          if (e->objtype != OSTREE_OBJECT_TYPE_FILE)
            {
              info->counts[DF_COUNT_METADATA]++;
              continue;
            }
          info->counts[DF_COUNT_CONTENT_BYTES] += e->length;
          /* Count each object once, by its first chunk. */
          if (e->offset != 0)
            continue;
          if (e->length != e->object_size)
            info->counts[DF_COUNT_CONTENT_SPLIT]++;
          else if (e->encoding != DF_ENCODING_RAW)
            info->counts[DF_COUNT_CONTENT_PATCH]++;
          else
            info->counts[DF_COUNT_CONTENT_RAW]++;
        }
    }
  info->sb = g_steal_pointer (&sb);
  return info;
}

void
df_delta_info_free (DfDeltaInfo *info)
{
  if (info == NULL)
    return;
  df_superblock_free (info->sb);
  g_free (info);
}

const char *
df_delta_info_get_from (const DfDeltaInfo *info)
{
  return info->sb->has_from ? info->sb->from_hex : NULL;
}

const char *
df_delta_info_get_to (const DfDeltaInfo *info)
{
  return info->sb->to_hex;
}

guint
df_delta_info_get_format_version (const DfDeltaInfo *info)
{
  return info->sb->version;
}

guint
df_delta_info_get_n_parts (const DfDeltaInfo *info)
{
  return info->sb->n_parts;
}

guint64
df_delta_info_get_part_compressed_size (const DfDeltaInfo *info, guint i)
{
  g_return_val_if_fail (i < info->sb->n_parts, 0);
  return info->sb->parts[i].compressed_size;
}

guint64
df_delta_info_get_part_uncompressed_size (const DfDeltaInfo *info, guint i)
{
  g_return_val_if_fail (i < info->sb->n_parts, 0);
  return info->sb->parts[i].uncompressed_size;
}

guint
df_delta_info_get_part_n_entries (const DfDeltaInfo *info, guint i)
{
  g_return_val_if_fail (i < info->sb->n_parts, 0);
  return info->sb->parts[i].n_entries;
}

guint64
df_delta_info_get_total_compressed_size (const DfDeltaInfo *info)
{
  return info->total_compressed;
}

guint64
df_delta_info_get_total_uncompressed_size (const DfDeltaInfo *info)
{
  return info->total_uncompressed;
}

guint64
df_delta_info_get_superblock_size (const DfDeltaInfo *info)
{
  return info->sb->file_size;
}

guint64
df_delta_info_get_count (const DfDeltaInfo *info, DfCount what)
{
  g_return_val_if_fail (what < DF_COUNT_LAST, 0);
  return info->counts[what];
}
