/* The public, read-only view of a superblock used by `deltafetch show`:
 * native, or stock as `ostree static-delta generate` writes it. */
#include <fcntl.h>

#include "df-stock.h"
#include "df-superblock.h"

struct _DfDeltaInfo
{
  DfSuperblock *sb;         /* native */
  DfStockSuperblock *stock; /* or stock */
  guint64 counts[DF_COUNT_LAST];
  guint64 total_compressed, total_uncompressed;
  char **notes; /* rebuild notes (native format 3) */
};

static DfDeltaInfo *
stock_info (DfStockSuperblock *st)
{
  DfDeltaInfo *info = g_new0 (DfDeltaInfo, 1);
  info->stock = st;
  for (guint i = 0; i < st->n_parts; i++)
    {
      const DfStockPart *p = &st->parts[i];
      info->total_compressed += p->size;
      info->total_uncompressed += p->usize;
      info->counts[DF_COUNT_CONTENT_BYTES] += p->usize;
      info->counts[DF_COUNT_CHUNKS] += p->n_objects;
      for (guint j = 0; j < p->n_objects; j++)
        info->counts[p->objects[j * DF_STOCK_OBJREC_LEN] == OSTREE_OBJECT_TYPE_FILE ? DF_COUNT_CONTENT_RAW
                                                                                   : DF_COUNT_METADATA]++;
    }
  info->counts[DF_COUNT_FALLBACK] = st->n_fallbacks;
  return info;
}

DfDeltaInfo *
df_delta_info_load (const char *delta_dir, GError **error)
{
  g_autofree char *path = g_build_filename (delta_dir, "superblock", NULL);
  g_autoptr (GBytes) file
      = dfi_read_file_bounded (AT_FDCWD, path, DF_STOCK_SUPERBLOCK_MAX, G_MAXUINT64, "superblock", error);
  if (file == NULL)
    return NULL;
  if (dfi_stock_superblock_sniff (file))
    {
      DfStockSuperblock *st = dfi_stock_superblock_parse (file, error);
      return st ? stock_info (st) : NULL;
    }
  g_autoptr (DfSuperblock) sb = dfi_superblock_parse (file, error);
  if (sb == NULL)
    return NULL;
  DfDeltaInfo *info = g_new0 (DfDeltaInfo, 1);
  for (guint i = 0; i < sb->n_parts; i++)
    {
      const DfPart *p = &sb->parts[i];
      info->total_compressed += p->compressed_size;
      info->total_uncompressed += p->uncompressed_size;
      if (p->kind == DF_PART_KIND_REBUILD)
        info->counts[DF_COUNT_REBUILD_BYTES] += p->compressed_size;
      if (p->kind == DF_PART_KIND_ALTERNATIVE)
        {
          /* The same objects again, for devices that do not rebuild. */
          info->counts[DF_COUNT_ALTERNATIVE_BYTES] += p->compressed_size;
          continue;
        }
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
          if (e->encoding == DF_ENCODING_REBUILD)
            info->counts[DF_COUNT_CONTENT_REBUILT]++;
          else if (e->length != e->object_size)
            info->counts[DF_COUNT_CONTENT_SPLIT]++;
          else if (e->encoding != DF_ENCODING_RAW)
            info->counts[DF_COUNT_CONTENT_PATCH]++;
          else
            info->counts[DF_COUNT_CONTENT_RAW]++;
        }
    }
  /* What the generator found (informative metadata: a(sbs), checksum,
   * rebuilt, note). */
  g_autoptr (GPtrArray) notes = g_ptr_array_new ();
  g_autoptr (GVariant) found = sb->metadata ? g_variant_lookup_value (sb->metadata, "deltafetch.rebuild.found",
                                                                    G_VARIANT_TYPE ("a(sbs)"))
                                            : NULL;
  if (found)
    {
      GVariantIter it;
      const char *csum, *note;
      gboolean rebuilt;
      g_variant_iter_init (&it, found);
      while (g_variant_iter_next (&it, "(&sb&s)", &csum, &rebuilt, &note))
        {
          info->counts[DF_COUNT_REBUILD_FOUND]++;
          g_ptr_array_add (notes, g_strdup_printf ("%s %s: %s", csum, rebuilt ? "rebuilt" : "plain", note));
        }
    }
  g_ptr_array_add (notes, NULL);
  info->notes = (char **)g_ptr_array_free (g_steal_pointer (&notes), FALSE);
  info->sb = g_steal_pointer (&sb);
  return info;
}

const char *const *
df_delta_info_get_rebuild_notes (const DfDeltaInfo *info)
{
  static const char *const none[] = { NULL };
  return info->notes ? (const char *const *)info->notes : none;
}

gboolean
df_delta_info_part_is_alternative (const DfDeltaInfo *info, guint i)
{
  return info->sb && i < info->sb->n_parts && info->sb->parts[i].kind == DF_PART_KIND_ALTERNATIVE;
}

gboolean
df_delta_info_part_is_rebuild (const DfDeltaInfo *info, guint i)
{
  return info->sb && i < info->sb->n_parts && info->sb->parts[i].kind == DF_PART_KIND_REBUILD;
}

const guint *
df_delta_info_part_get_deps (const DfDeltaInfo *info, guint i, guint *n_deps)
{
  *n_deps = 0;
  if (info->sb == NULL || i >= info->sb->n_parts || info->sb->parts[i].n_deps == 0)
    return NULL;
  *n_deps = info->sb->parts[i].n_deps;
  return info->sb->parts[i].deps;
}

void
df_delta_info_free (DfDeltaInfo *info)
{
  if (info == NULL)
    return;
  dfi_superblock_free (info->sb);
  dfi_stock_superblock_free (info->stock);
  g_strfreev (info->notes);
  g_free (info);
}

const char *
df_delta_info_get_format (const DfDeltaInfo *info)
{
  return info->stock ? "ostree" : "deltafetch";
}

const char *
df_delta_info_get_from (const DfDeltaInfo *info)
{
  if (info->stock)
    return info->stock->has_from ? info->stock->from_hex : NULL;
  return info->sb->has_from ? info->sb->from_hex : NULL;
}

const char *
df_delta_info_get_to (const DfDeltaInfo *info)
{
  return info->stock ? info->stock->to_hex : info->sb->to_hex;
}

guint
df_delta_info_get_format_version (const DfDeltaInfo *info)
{
  return info->stock ? 0 : info->sb->version;
}

guint
df_delta_info_get_n_parts (const DfDeltaInfo *info)
{
  return info->stock ? info->stock->n_parts : info->sb->n_parts;
}

guint64
df_delta_info_get_part_compressed_size (const DfDeltaInfo *info, guint i)
{
  g_return_val_if_fail (i < df_delta_info_get_n_parts (info), 0);
  return info->stock ? info->stock->parts[i].size : info->sb->parts[i].compressed_size;
}

guint64
df_delta_info_get_part_uncompressed_size (const DfDeltaInfo *info, guint i)
{
  g_return_val_if_fail (i < df_delta_info_get_n_parts (info), 0);
  return info->stock ? info->stock->parts[i].usize : info->sb->parts[i].uncompressed_size;
}

guint
df_delta_info_get_part_n_entries (const DfDeltaInfo *info, guint i)
{
  g_return_val_if_fail (i < df_delta_info_get_n_parts (info), 0);
  return info->stock ? info->stock->parts[i].n_objects : info->sb->parts[i].n_entries;
}

gboolean
df_delta_info_is_signed (const DfDeltaInfo *info)
{
  return info->stock ? info->stock->file.is_signed : info->sb->file.is_signed;
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
  return info->stock ? info->stock->file.size : info->sb->file.size;
}

guint64
df_delta_info_get_count (const DfDeltaInfo *info, DfCount what)
{
  g_return_val_if_fail (what < DF_COUNT_LAST, 0);
  return info->counts[what];
}

gboolean
dfi_delta_parts_whole (int dir_dfd, GBytes *file, GCancellable *cancellable, GError **error)
{
  g_autoptr (DfSuperblock) sb = NULL;
  g_autoptr (DfStockSuperblock) st = NULL;
  if (dfi_stock_superblock_sniff (file) ? (st = dfi_stock_superblock_parse (file, error)) == NULL
                                        : (sb = dfi_superblock_parse (file, error)) == NULL)
    return FALSE;
  guint n = sb ? sb->n_parts : st->n_parts;
  for (guint i = 0; i < n; i++)
    {
      if (st && st->parts[i].inline_data)
        continue;
      char name[16];
      g_snprintf (name, sizeof name, "%u", i);
      gboolean ok
          = sb ? dfi_file_matches (dir_dfd, name, sb->parts[i].compressed_size, sb->parts[i].sha256, cancellable)
               : dfi_file_matches (dir_dfd, name, st->parts[i].size, st->parts[i].sha256, cancellable);
      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        return FALSE;
      if (!ok)
        return dfi_throw (error, DF_ERROR_CORRUPT,
                          "part %u is missing, or its size or SHA-256 is not what the superblock lists", i);
    }
  return TRUE;
}
