/* df_verify_delta(): a published delta checked as a device takes it,
 * parts, signature and a trial apply. Above both the generator (whose
 * df_list_deltas() finds the delta) and apply (which it runs). */
#include <fcntl.h>
#include <unistd.h>

#include "df-common.h"
#include "df-stock-superblock.h"
#include "df-superblock.h"

/* Every part of @d as its superblock lists it (size, SHA-256). */
static gboolean
parts_whole (const DfRepoDelta *d, GCancellable *cancellable, GError **error)
{
  g_autofree char *sb_path = g_build_filename (d->dir, "superblock", NULL);
  guint64 max = d->format == DF_DELTA_FORMAT_NATIVE ? DF_SUPERBLOCK_MAX : DF_STOCK_SUPERBLOCK_MAX;
  g_autoptr (GBytes) file = dfi_read_file_bounded (AT_FDCWD, sb_path, max, G_MAXUINT64, "superblock", error);
  if (file == NULL)
    return FALSE;
  int dfd = open (d->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return dfi_throw_errno (error, errno, "opening %s", d->dir);
  gboolean ok = dfi_delta_parts_whole (dfd, file, cancellable, error);
  close (dfd);
  return ok;
}

/* objects/XX/YYY.EXT of object @csum of @type (@archive: file objects are
 * ".filez"). */
static char *
object_path (const char *csum, OstreeObjectType type, gboolean archive)
{
  const char *ext = type == OSTREE_OBJECT_TYPE_FILE && archive ? "filez" : ostree_object_type_to_string (type);
  return g_strdup_printf ("objects/%.2s/%s.%s", csum, csum + 2, ext);
}

/* Hard-links the objects of commit @csum of @repo (and its detached
 * metadata) into @dest, a new repository of the same mode on the same
 * file system. */
static gboolean
link_commit (OstreeRepo *repo, const char *csum, OstreeRepo *dest, GCancellable *cancellable, GError **error)
{
  g_autoptr (GHashTable) reachable = NULL;
  if (!ostree_repo_traverse_commit (repo, csum, 0, &reachable, cancellable, error))
    return FALSE;
  gboolean compressed = ostree_repo_get_mode (repo) == OSTREE_REPO_MODE_ARCHIVE;
  int src_dfd = ostree_repo_get_dfd (repo), dst_dfd = ostree_repo_get_dfd (dest);
  GHashTableIter it;
  GVariant *key;
  g_hash_table_iter_init (&it, reachable);
  while (g_hash_table_iter_next (&it, (gpointer *)&key, NULL))
    {
      const char *c;
      OstreeObjectType type;
      ostree_object_name_deserialize (key, &c, &type);
      g_autofree char *rel = object_path (c, type, compressed);
      g_autofree char *dir = g_path_get_dirname (rel);
      if (!dfi_mkdir_p_at (dst_dfd, dir, error))
        return FALSE;
      if (linkat (src_dfd, rel, dst_dfd, rel, 0) < 0 && errno != EEXIST)
        return dfi_throw_errno (error, errno, "linking %s into the trial repository", rel);
      if (type == OSTREE_OBJECT_TYPE_COMMIT)
        {
          g_autofree char *meta = object_path (c, OSTREE_OBJECT_TYPE_COMMIT_META, compressed);
          if (linkat (src_dfd, meta, dst_dfd, meta, 0) < 0 && errno != ENOENT && errno != EEXIST)
            return dfi_throw_errno (error, errno, "linking %s into the trial repository", meta);
        }
    }
  return TRUE;
}

/* Applies @d into a trial repository under REPO/tmp/ that holds only its
 * from-commit (hard links), then removes it. */
static gboolean
trial_apply (OstreeRepo *repo, const DfRepoDelta *d, const char *keys_path, DfApplyResult *res,
             GCancellable *cancellable, GError **error)
{
  int repo_dfd = ostree_repo_get_dfd (repo);
  if (!dfi_mkdir_p_at (repo_dfd, "tmp", error))
    return FALSE;
  g_autofree char *repo_path = g_file_get_path (ostree_repo_get_path (repo));
  g_autofree char *tmpl = g_build_filename (repo_path, "tmp", "deltafetch-verify-XXXXXX", NULL);
  if (g_mkdtemp (tmpl) == NULL)
    return dfi_throw_errno (error, errno, "creating a trial repository under %s/tmp", repo_path);
  g_autoptr (GFile) tf = g_file_new_for_path (tmpl);
  g_autoptr (OstreeRepo) trial = ostree_repo_new (tf);
  gboolean ok = ostree_repo_create (trial, ostree_repo_get_mode (repo), cancellable, error)
                && (d->from == NULL || link_commit (repo, d->from, trial, cancellable, error));
  if (ok)
    {
      g_autoptr (DfApplyOptions) ao = df_apply_options_new ();
      df_apply_options_set_commit (ao, d->to);
      df_apply_options_set_trusted_keys (ao, keys_path);
      df_apply_options_set_allow_unsigned (ao, keys_path == NULL);
      ok = df_apply (trial, d->dir, ao, res, cancellable, error);
    }
  g_autoptr (GError) rm_error = NULL;
  if (!dfi_rm_rf_at (AT_FDCWD, tmpl, &rm_error) && ok)
    {
      g_propagate_error (error, g_steal_pointer (&rm_error));
      return FALSE;
    }
  return ok;
}

gboolean
df_verify_delta (OstreeRepo *repo, const DfRepoDelta *delta, const char *keys_path, DfApplyResult *result,
                 GCancellable *cancellable, GError **error)
{
  if (delta->problem)
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "%s", delta->problem);
  if (!parts_whole (delta, cancellable, error))
    return FALSE;
  DfApplyResult local = { 0 };
  return trial_apply (repo, delta, keys_path, result ? result : &local, cancellable, error);
}
