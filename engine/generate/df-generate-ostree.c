/* generate --format=ostree: a stock OSTree static delta, made by libostree's
 * own generator (bsdiff + xz, single-threaded: slow, but exactly what stock
 * clients read), optionally signed in the envelope of df-sign.h, and made
 * discoverable to stock clients through the delta index and the summary. */
#include "df-generate-private.h"

#include "df-sign.h"
#include "df-stock.h"

#include <fcntl.h>

gboolean
dfi_generate_stock (OstreeRepo *repo, const char *from, const char *to, const char *out_dir, GPtrArray *signers,
                    char **out_path, GCancellable *cancellable, GError **error)
{
  GVariantBuilder b;
  g_variant_builder_init (&b, G_VARIANT_TYPE ("a{sv}"));
  g_autofree char *sb_path = NULL;
  if (out_dir)
    {
      if (g_mkdir_with_parents (out_dir, 0755) < 0)
        return dfi_throw_errno (error, errno, "creating %s", out_dir);
      sb_path = g_build_filename (out_dir, "superblock", NULL);
      if (g_file_test (sb_path, G_FILE_TEST_EXISTS))
        return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "%s already holds a delta", out_dir);
      g_variant_builder_add (&b, "{sv}", "filename", g_variant_new_bytestring (sb_path));
    }
  g_autoptr (GVariant) params = g_variant_ref_sink (g_variant_builder_end (&b));
  if (!ostree_repo_static_delta_generate (repo, OSTREE_STATIC_DELTA_GENERATE_OPT_MAJOR, from, to, NULL, params,
                                          cancellable, error))
    return FALSE;
  g_autofree char *dir = NULL;
  int base_dfd = AT_FDCWD;
  if (out_dir)
    dir = g_strdup (out_dir);
  else
    {
      dir = dfi_stock_delta_relpath (from, to);
      base_dfd = ostree_repo_get_dfd (repo);
    }
  g_autofree char *rel_sb = g_build_filename (dir, "superblock", NULL);
  if (signers && signers->len > 0)
    {
      g_autoptr (GBytes) plain
          = dfi_read_file_bounded (base_dfd, rel_sb, DF_STOCK_SUPERBLOCK_MAX, G_MAXUINT64, "stock superblock", error);
      if (plain == NULL)
        return FALSE;
      g_autoptr (GBytes) wrapped = dfi_signers_wrap (signers, plain, error);
      if (wrapped == NULL || !dfi_write_file_atomic (base_dfd, rel_sb, wrapped, error))
        return FALSE;
    }
  if (!out_dir)
    {
      /* What stock pull looks at: the delta index and the summary. */
      if (!ostree_repo_static_delta_reindex (repo, 0, to, cancellable, error)
          || !ostree_repo_regenerate_summary (repo, NULL, cancellable, error))
        return FALSE;
    }
  if (out_path)
    {
      g_autofree char *repo_path = g_file_get_path (ostree_repo_get_path (repo));
      *out_path = out_dir ? g_strdup (out_dir) : g_build_filename (repo_path, dir, NULL);
    }
  return TRUE;
}
