/* Test helper: a loose .filez object as an archive repository stores it,
 * made by libostree (regular file of @len bytes of @data, or a symlink to
 * @target), and the fallback entry that names it. NULL on failure. */
#pragma once

#include "df-stock.h"

#include <sys/stat.h>

static inline GBytes *
test_filez_new (const guint8 *data, gsize len, const char *target, DfStockFallback *fb)
{
  g_autoptr (GFileInfo) info = g_file_info_new ();
  g_file_info_set_attribute_uint32 (info, "unix::uid", 0);
  g_file_info_set_attribute_uint32 (info, "unix::gid", 0);
  g_file_info_set_attribute_uint32 (info, "unix::mode", target ? (S_IFLNK | 0777) : (S_IFREG | 0644));
  g_file_info_set_file_type (info, target ? G_FILE_TYPE_SYMBOLIC_LINK : G_FILE_TYPE_REGULAR);
  if (target)
    g_file_info_set_symlink_target (info, target);
  else
    g_file_info_set_size (info, len);
  g_autoptr (GVariant) xattrs = g_variant_ref_sink (g_variant_new_array (G_VARIANT_TYPE ("(ayay)"), NULL, 0));
  g_autoptr (GInputStream) in = target ? NULL : g_memory_input_stream_new_from_data (data, len, NULL);
  g_autoptr (GInputStream) z = NULL;
  g_autoptr (GOutputStream) out = g_memory_output_stream_new_resizable ();
  if (!ostree_raw_file_to_archive_z2_stream (in, info, xattrs, &z, NULL, NULL)
      || g_output_stream_splice (out, z, G_OUTPUT_STREAM_SPLICE_CLOSE_TARGET, NULL, NULL) < 0)
    return NULL;
  g_autoptr (GInputStream) in2 = target ? NULL : g_memory_input_stream_new_from_data (data, len, NULL);
  g_autofree guchar *csum = NULL;
  if (!ostree_checksum_file_from_input (info, xattrs, in2, OSTREE_OBJECT_TYPE_FILE, &csum, NULL, NULL))
    return NULL;
  GBytes *b = g_memory_output_stream_steal_as_bytes (G_MEMORY_OUTPUT_STREAM (out));
  *fb = (DfStockFallback){ .objtype = OSTREE_OBJECT_TYPE_FILE, .size = g_bytes_get_size (b), .usize = target ? 0 : len };
  memcpy (fb->checksum, csum, DF_SHA256_LEN);
  return b;
}
