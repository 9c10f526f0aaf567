/* The deltas a repository publishes, native and stock: listing them,
 * removing one (index first, so no client sees an index that names a
 * delta no longer there), and pruning those whose commits are gone or
 * too old (see deltafetch.h, "Deltas in a repository"). */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "df-gen-publish.h"
#include "df-generate-options.h"
#include "df-generate-private.h"
#include "df-sign.h"
#include "df-stock-superblock.h"
#include "df-stock.h"
#include "df-superblock.h"

#define NATIVE_DELTAS "deltafetch/v1/deltas"

/* "FROM-TO" or "TO" (64 lowercase hex digits each) into its commits. */
static gboolean
parse_id (const char *id, char **from, char **to)
{
  size_t n = strlen (id);
  if (n == 64 && ostree_validate_checksum_string (id, NULL))
    {
      *from = NULL;
      *to = g_strdup (id);
      return TRUE;
    }
  if (n != 129 || id[64] != '-')
    return FALSE;
  g_autofree char *f = g_strndup (id, 64);
  if (!ostree_validate_checksum_string (f, NULL) || !ostree_validate_checksum_string (id + 65, NULL))
    return FALSE;
  *from = g_steal_pointer (&f);
  *to = g_strdup (id + 65);
  return TRUE;
}

static gboolean
commit_present (OstreeRepo *repo, const char *csum)
{
  gboolean has = FALSE;
  return ostree_repo_has_object (repo, OSTREE_OBJECT_TYPE_COMMIT, csum, &has, NULL, NULL) && has;
}

/* A DfRepoDelta for the delta @from -> @to of @format, read from its
 * superblock (not its parts). */
static DfRepoDelta *
describe (OstreeRepo *repo, DfDeltaFormat format, const char *from, const char *to)
{
  int repo_dfd = ostree_repo_get_dfd (repo);
  DfRepoDelta *d = g_new0 (DfRepoDelta, 1);
  d->from = g_strdup (from);
  d->to = g_strdup (to);
  d->id = from ? g_strdup_printf ("%s-%s", from, to) : g_strdup (to);
  d->format = format;
  g_autofree char *rel
      = format == DF_DELTA_FORMAT_NATIVE ? dfi_native_delta_relpath (from, to) : dfi_stock_delta_relpath (from, to);
  g_autofree char *repo_path = g_file_get_path (ostree_repo_get_path (repo));
  d->dir = g_build_filename (repo_path, rel, NULL);
  d->from_present = from == NULL || commit_present (repo, from);
  d->to_present = commit_present (repo, to);
  d->size = dfi_gen_dir_bytes (repo_dfd, rel, NULL);
  g_autofree char *sb_path = g_build_filename (rel, "superblock", NULL);
  g_autoptr (GError) local = NULL;
  guint64 max = format == DF_DELTA_FORMAT_NATIVE ? DF_SUPERBLOCK_MAX : DF_STOCK_SUPERBLOCK_MAX;
  g_autoptr (GBytes) file = dfi_read_file_bounded (repo_dfd, sb_path, max, G_MAXUINT64, "superblock", &local);
  if (file == NULL)
    {
      d->problem = g_strdup (format == DF_DELTA_FORMAT_NATIVE && dfi_gen_index_lists (repo_dfd, from, to, NULL)
                                 ? "listed by its index, but its superblock is not there"
                                 : local->message);
      return d;
    }
  g_autoptr (GBytes) data = NULL;
  g_autoptr (GPtrArray) sigs = NULL;
  if (dfi_signed_unwrap (file, &data, &sigs, NULL) && sigs)
    d->n_signatures = sigs->len; /* a malformed envelope: the parse below says so */
  if (format == DF_DELTA_FORMAT_NATIVE)
    {
      d->indexed = dfi_gen_index_lists (repo_dfd, from, to, file);
      g_autoptr (DfSuperblock) sb = dfi_superblock_parse (file, &local);
      if (sb)
        d->n_parts = sb->n_parts;
      else
        d->problem = g_strdup (local->message);
      if (sb && !d->indexed)
        d->problem = g_strdup ("its index does not list this superblock");
    }
  else
    {
      d->indexed = TRUE;
      g_autoptr (DfStockSuperblock) sb = dfi_stock_superblock_parse (file, &local);
      if (sb)
        d->n_parts = sb->n_parts;
      else
        d->problem = g_strdup (local->message);
    }
  if (d->problem == NULL && !(d->from_present && d->to_present))
    d->problem = g_strdup (d->to_present ? "its from-commit is no longer in the repository"
                                         : "its to-commit is no longer in the repository");
  return d;
}

static int
delta_cmp (gconstpointer a, gconstpointer b)
{
  const DfRepoDelta *x = *(DfRepoDelta *const *)a, *y = *(DfRepoDelta *const *)b;
  int c = strcmp (x->to, y->to);
  if (c == 0)
    c = g_strcmp0 (x->from, y->from);
  return c ? c : (int)x->format - (int)y->format;
}

gboolean
df_list_deltas (OstreeRepo *repo, GPtrArray **out_deltas, GCancellable *cancellable, GError **error)
{
  int repo_dfd = ostree_repo_get_dfd (repo);
  g_autoptr (GPtrArray) list = g_ptr_array_new_with_free_func ((GDestroyNotify)df_repo_delta_free);
  g_autoptr (GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  DIR *d = dfi_opendir_at (repo_dfd, NATIVE_DELTAS);
  if (d == NULL && errno != ENOENT)
    return dfi_throw_errno (error, errno, "opening %s", NATIVE_DELTAS);
  struct dirent *de;
  while (d && (de = readdir (d)) != NULL)
    {
      g_autofree char *from = NULL, *to = NULL;
      if (!parse_id (de->d_name, &from, &to))
        continue; /* ., .., a delta being written (.tmp-...) */
      g_ptr_array_add (list, describe (repo, DF_DELTA_FORMAT_NATIVE, from, to));
      g_hash_table_add (seen, g_strdup (de->d_name));
    }
  if (d)
    closedir (d);
  /* Index entries whose delta is gone. */
  d = dfi_opendir_at (repo_dfd, "deltafetch/v1/indexes");
  while (d && (de = readdir (d)) != NULL)
    {
      size_t n = strlen (de->d_name);
      g_autofree char *to = n == 70 ? g_strndup (de->d_name, 64) : NULL;
      if (to == NULL || strcmp (de->d_name + 64, ".index") != 0 || !ostree_validate_checksum_string (to, NULL))
        continue;
      g_autofree char *path = g_strdup_printf ("deltafetch/v1/indexes/%s", de->d_name);
      g_autoptr (GBytes) b = dfi_read_file_bounded (repo_dfd, path, DF_SUPERBLOCK_MAX, G_MAXUINT64, "index", NULL);
      if (b == NULL)
        continue;
      g_autoptr (GVariant) v = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE ("a{s(ayt)}"), b, FALSE));
      GVariantIter it;
      const char *from;
      g_variant_iter_init (&it, v);
      while (g_variant_iter_next (&it, "{&s@(ayt)}", &from, NULL))
        {
          g_autofree char *id = from[0] ? g_strdup_printf ("%s-%s", from, to) : g_strdup (to);
          if ((from[0] && !ostree_validate_checksum_string (from, NULL)) || g_hash_table_contains (seen, id))
            continue;
          g_ptr_array_add (list, describe (repo, DF_DELTA_FORMAT_NATIVE, from[0] ? from : NULL, to));
          g_hash_table_add (seen, g_steal_pointer (&id));
        }
    }
  if (d)
    closedir (d);
  g_autoptr (GPtrArray) stock = NULL;
  if (!ostree_repo_list_static_delta_names (repo, &stock, cancellable, error))
    return FALSE;
  for (guint i = 0; i < stock->len; i++)
    {
      g_autofree char *from = NULL, *to = NULL;
      if (parse_id (stock->pdata[i], &from, &to))
        g_ptr_array_add (list, describe (repo, DF_DELTA_FORMAT_OSTREE, from, to));
    }
  g_ptr_array_sort (list, delta_cmp);
  *out_deltas = g_steal_pointer (&list);
  return TRUE;
}

/* Moves @rel aside (so nothing reads a half-removed delta) and removes it. */
static gboolean
remove_dir (int repo_dfd, const char *rel, GError **error)
{
  g_autofree char *aside = g_strdup_printf ("%s.deleting", rel);
  if (!dfi_rm_rf_at (repo_dfd, aside, error))
    return FALSE;
  if (renameat (repo_dfd, rel, repo_dfd, aside) < 0)
    {
      if (errno == ENOENT)
        return TRUE;
      return dfi_throw_errno (error, errno, "moving %s aside", rel);
    }
  return dfi_rm_rf_at (repo_dfd, aside, error);
}

/* Removes @d: a native one from its index first, then its directory; a
 * stock one's directory, then libostree's delta index and the summary. */
static gboolean
remove_delta (OstreeRepo *repo, const DfGenerateOptions *opts, GPtrArray *signers, const DfRepoDelta *d,
              GCancellable *cancellable, GError **error)
{
  int repo_dfd = ostree_repo_get_dfd (repo);
  if (d->format == DF_DELTA_FORMAT_NATIVE)
    {
      g_autofree char *rel = dfi_native_delta_relpath (d->from, d->to);
      return dfi_gen_index_remove (repo_dfd, d->from, d->to, signers, error) && remove_dir (repo_dfd, rel, error);
    }
  g_autofree char *rel = dfi_stock_delta_relpath (d->from, d->to);
  return remove_dir (repo_dfd, rel, error) && ostree_repo_static_delta_reindex (repo, 0, d->to, cancellable, error)
         && dfi_summary_regenerate (repo, opts, signers, cancellable, error);
}

/* The signers of @opts, and whether what removing @victims changes can be
 * signed again with them (summary, stats files): checked before anything
 * is removed. */
static GPtrArray *
prepare_removal (OstreeRepo *repo, const DfGenerateOptions *opts, GPtrArray *victims, GError **error)
{
  g_autoptr (GPtrArray) signers = dfi_signers_load (opts->sign_keys, error);
  if (signers == NULL)
    return NULL;
  gboolean stock = FALSE;
  for (guint i = 0; i < victims->len; i++)
    {
      DfRepoDelta *d = victims->pdata[i];
      stock |= d->format == DF_DELTA_FORMAT_OSTREE;
      if (d->format == DF_DELTA_FORMAT_NATIVE
          && !dfi_gen_stats_check_keys (ostree_repo_get_dfd (repo), d->to, signers, error))
        return NULL;
    }
  if (stock && !dfi_summary_check_keys (repo, opts, signers, error))
    return NULL;
  return g_steal_pointer (&signers);
}

static gboolean
remove_all (OstreeRepo *repo, const DfGenerateOptions *opts, GPtrArray *victims, GCancellable *cancellable,
            GError **error)
{
  g_autoptr (GPtrArray) signers = prepare_removal (repo, opts, victims, error);
  if (signers == NULL)
    return FALSE;
  for (guint i = 0; i < victims->len; i++)
    if (!remove_delta (repo, opts, signers, victims->pdata[i], cancellable, error))
      return FALSE;
  return TRUE;
}

gboolean
df_delete_delta (OstreeRepo *repo, const DfGenerateOptions *opts, const char *id, GPtrArray **out_deleted,
                 GCancellable *cancellable, GError **error)
{
  g_autofree char *from = NULL, *to = NULL;
  if (!parse_id (id, &from, &to))
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "'%s' is not a delta id (FROM-TO or TO, full checksums)", id);
  g_autoptr (GPtrArray) all = NULL;
  if (!df_list_deltas (repo, &all, cancellable, error))
    return FALSE;
  g_autoptr (GPtrArray) victims = g_ptr_array_new_with_free_func ((GDestroyNotify)df_repo_delta_free);
  for (guint i = 0; i < all->len; i++)
    {
      DfRepoDelta *d = all->pdata[i];
      if (strcmp (d->id, id) == 0)
        g_ptr_array_add (victims, g_steal_pointer (&all->pdata[i]));
    }
  if (victims->len == 0)
    return dfi_throw (error, DF_ERROR_NOT_FOUND, "the repository has no delta %s", id);
  if (!remove_all (repo, opts, victims, cancellable, error))
    return FALSE;
  if (out_deleted)
    *out_deleted = g_steal_pointer (&victims);
  return TRUE;
}

gboolean
df_prune_deltas (OstreeRepo *repo, const DfGenerateOptions *opts, const char *ref, guint keep_last,
                 GPtrArray **out_deleted, GCancellable *cancellable, GError **error)
{
  /* The commits of @ref's history beyond the @keep_last newest. */
  g_autoptr (GHashTable) old = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  if (ref)
    {
      g_autofree char *cur = NULL;
      if (!ostree_repo_resolve_rev (repo, ref, FALSE, &cur, error))
        return FALSE;
      for (guint n = 0; cur; n++)
        {
          g_autoptr (GVariant) commit = NULL;
          if (!ostree_repo_load_variant_if_exists (repo, OSTREE_OBJECT_TYPE_COMMIT, cur, &commit, error))
            return FALSE;
          if (n >= keep_last)
            g_hash_table_add (old, g_strdup (cur));
          g_autofree char *parent = commit ? ostree_commit_get_parent (commit) : NULL;
          g_free (cur);
          cur = g_steal_pointer (&parent);
        }
    }
  g_autoptr (GPtrArray) all = NULL;
  if (!df_list_deltas (repo, &all, cancellable, error))
    return FALSE;
  g_autoptr (GPtrArray) victims = g_ptr_array_new_with_free_func ((GDestroyNotify)df_repo_delta_free);
  for (guint i = 0; i < all->len; i++)
    {
      DfRepoDelta *d = all->pdata[i];
      if (!d->from_present || !d->to_present || g_hash_table_contains (old, d->to))
        g_ptr_array_add (victims, g_steal_pointer (&all->pdata[i]));
    }
  if (!remove_all (repo, opts, victims, cancellable, error))
    return FALSE;
  if (out_deleted)
    *out_deleted = g_steal_pointer (&victims);
  return TRUE;
}

/* ---------------------------------------------------------------------- */
/* Signing again                                                           */

/* @d's superblock signed again: its signatures by @revoked and by
 * @signers dropped, then one by each of @signers added. */
static gboolean
resign_one (OstreeRepo *repo, const DfGenerateOptions *opts, GPtrArray *signers, const DfKeyring *revoked,
            const DfRepoDelta *d, GCancellable *cancellable, GError **error)
{
  int repo_dfd = ostree_repo_get_dfd (repo);
  g_autofree char *rel = d->format == DF_DELTA_FORMAT_NATIVE ? dfi_native_delta_relpath (d->from, d->to)
                                                             : dfi_stock_delta_relpath (d->from, d->to);
  g_autofree char *sb_path = g_build_filename (rel, "superblock", NULL);
  guint64 max = d->format == DF_DELTA_FORMAT_NATIVE ? DF_SUPERBLOCK_MAX : DF_STOCK_SUPERBLOCK_MAX;
  g_autoptr (GBytes) file = dfi_read_file_bounded (repo_dfd, sb_path, max, G_MAXUINT64, "superblock", error);
  if (file == NULL)
    return FALSE;
  g_autoptr (GBytes) data = NULL;
  g_autoptr (GPtrArray) old = NULL;
  g_autoptr (GError) local = NULL;
  if (!dfi_signed_unwrap (file, &data, &old, &local))
    {
      if (local)
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return FALSE;
        }
      data = g_bytes_ref (file); /* unsigned until now */
    }
  g_autoptr (GPtrArray) sigs = g_ptr_array_new_with_free_func ((GDestroyNotify)g_bytes_unref);
  for (guint i = 0; old && i < old->len; i++)
    {
      g_autoptr (GPtrArray) one = g_ptr_array_new ();
      g_ptr_array_add (one, old->pdata[i]);
      gboolean drop = revoked && dfi_keyring_verify_any (revoked, data, one);
      for (guint j = 0; j < signers->len && !drop; j++)
        drop = dfi_signer_verify (signers->pdata[j], data, old->pdata[i]);
      if (!drop)
        g_ptr_array_add (sigs, g_bytes_ref (old->pdata[i]));
    }
  g_autoptr (GPtrArray) added = dfi_signers_sign (signers, data, error);
  if (added == NULL)
    return FALSE;
  for (guint i = 0; i < added->len; i++)
    g_ptr_array_add (sigs, g_bytes_ref (added->pdata[i]));
  if (sigs->len > DF_SIGNATURES_MAX)
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "%s would carry %u signatures, more than devices accept (%d)",
                      d->id, sigs->len, DF_SIGNATURES_MAX);
  g_autoptr (GBytes) out = sigs->len ? dfi_signed_wrap (data, sigs) : g_bytes_ref (data);
  if (g_bytes_equal (out, file))
    return TRUE;
  if (!dfi_write_file_atomic (repo_dfd, sb_path, out, error))
    return FALSE;
  if (d->format == DF_DELTA_FORMAT_NATIVE)
    return dfi_gen_index_set (repo_dfd, d->from, d->to, out, signers, error);
  return ostree_repo_static_delta_reindex (repo, 0, d->to, cancellable, error)
         && dfi_summary_regenerate (repo, opts, signers, cancellable, error);
}

gboolean
df_sign_deltas (OstreeRepo *repo, const DfGenerateOptions *opts, const char *const *ids, const char *revoked_path,
                GPtrArray **out_signed, GCancellable *cancellable, GError **error)
{
  g_autoptr (GPtrArray) all = NULL;
  if (!df_list_deltas (repo, &all, cancellable, error))
    return FALSE;
  g_autoptr (GPtrArray) chosen = g_ptr_array_new_with_free_func ((GDestroyNotify)df_repo_delta_free);
  for (guint i = 0; ids && ids[i]; i++)
    {
      gboolean found = FALSE;
      for (guint j = 0; j < all->len; j++)
        if (all->pdata[j] && strcmp (((DfRepoDelta *)all->pdata[j])->id, ids[i]) == 0)
          {
            g_ptr_array_add (chosen, g_steal_pointer (&all->pdata[j]));
            found = TRUE;
          }
      if (!found)
        return dfi_throw (error, DF_ERROR_NOT_FOUND, "the repository has no delta %s", ids[i]);
    }
  for (guint j = 0; ids == NULL && j < all->len; j++)
    g_ptr_array_add (chosen, g_steal_pointer (&all->pdata[j]));
  for (guint i = 0; i < chosen->len; i++)
    {
      DfRepoDelta *d = chosen->pdata[i];
      if (d->problem)
        return dfi_throw (error, DF_ERROR_INVALID_DELTA, "%s: %s", d->id, d->problem);
    }
  g_autoptr (GPtrArray) signers = prepare_removal (repo, opts, chosen, error);
  if (signers == NULL)
    return FALSE;
  g_autoptr (DfKeyring) revoked = NULL;
  if (revoked_path && (revoked = dfi_keyring_load (revoked_path, error)) == NULL)
    return FALSE;
  if (signers->len == 0 && revoked == NULL)
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "give a key to sign with or a key to remove");
  for (guint i = 0; i < chosen->len; i++)
    if (!resign_one (repo, opts, signers, revoked, chosen->pdata[i], cancellable, error))
      return FALSE;
  if (out_signed)
    *out_signed = g_steal_pointer (&chosen);
  return TRUE;
}

/* ---------------------------------------------------------------------- */
/* Merging fanned-out outputs                                              */

/* The superblock of the delta in directory @dir (from @from to @to, as its
 * name says) when the delta is whole: its commits as named, every part of
 * the listed size and SHA-256. */
static GBytes *
whole_delta (int dfd, const char *dir, const char *from, const char *to, GCancellable *cancellable, GError **error)
{
  g_autofree char *sb_path = g_build_filename (dir, "superblock", NULL);
  g_autoptr (GBytes) file = dfi_read_file_bounded (dfd, sb_path, DF_SUPERBLOCK_MAX, G_MAXUINT64, "superblock", error);
  if (file == NULL)
    return NULL;
  g_autoptr (DfSuperblock) sb = dfi_superblock_parse (file, error);
  if (sb == NULL)
    return NULL;
  if (strcmp (sb->from_hex, from ? from : "") != 0 || strcmp (sb->to_hex, to) != 0)
    {
      dfi_throw (error, DF_ERROR_INVALID_DELTA, "%s: its superblock names other commits than its name", dir);
      return NULL;
    }
  int d = openat (dfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d < 0)
    {
      dfi_throw_errno (error, errno, "opening %s", dir);
      return NULL;
    }
  gboolean ok = dfi_delta_parts_whole (d, file, cancellable, error);
  close (d);
  if (!ok)
    g_prefix_error (error, "%s: ", dir);
  return ok ? g_steal_pointer (&file) : NULL;
}

/* Copies the whole delta @src_dir (of @n_parts parts, superblock @sb) into
 * the repository at @rel: into a sibling first, renamed into place. */
static gboolean
copy_delta (int src_dfd, const char *src_dir, guint n_parts, int repo_dfd, const char *rel, GCancellable *cancellable,
            GError **error)
{
  g_autofree char *tmp = g_strdup_printf ("%s.merge", rel);
  if (!dfi_rm_rf_at (repo_dfd, tmp, error) || !dfi_mkdir_p_at (repo_dfd, tmp, error))
    return FALSE;
  for (guint i = 0; i <= n_parts; i++)
    {
      g_autofree char *name = i < n_parts ? g_strdup_printf ("%u", i) : g_strdup ("superblock");
      g_autofree char *from_path = g_build_filename (src_dir, name, NULL);
      g_autofree char *to_path = g_build_filename (tmp, name, NULL);
      if (!dfi_copy_file_at (src_dfd, from_path, repo_dfd, to_path, cancellable, error))
        return FALSE;
    }
  return remove_dir (repo_dfd, rel, error)
         && (renameat (repo_dfd, tmp, repo_dfd, rel) == 0 || dfi_throw_errno (error, errno, "renaming %s", tmp));
}

static int
name_cmp (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *)a, *(char *const *)b);
}

gboolean
df_index_merge (OstreeRepo *repo, const DfGenerateOptions *opts, const char *const *out_roots, GPtrArray **out_merged,
                GCancellable *cancellable, GError **error)
{
  int repo_dfd = ostree_repo_get_dfd (repo);
  g_autoptr (GPtrArray) found = g_ptr_array_new_with_free_func ((GDestroyNotify)df_repo_delta_free);
  g_autoptr (GHashTable) by_id = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GHashTable) sb_of = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify)g_bytes_unref);
  /* Everything checked before anything is merged. */
  for (guint r = 0; out_roots && out_roots[r]; r++)
    {
      g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
      DIR *d = opendir (out_roots[r]);
      if (d == NULL)
        return dfi_throw_errno (error, errno, "opening %s", out_roots[r]);
      struct dirent *de;
      while ((de = readdir (d)) != NULL)
        g_ptr_array_add (names, g_strdup (de->d_name));
      closedir (d);
      g_ptr_array_sort (names, name_cmp);
      for (guint i = 0; i < names->len; i++)
        {
          g_autofree char *from = NULL, *to = NULL;
          if (!parse_id (names->pdata[i], &from, &to))
            continue;
          g_autofree char *dir = g_build_filename (out_roots[r], names->pdata[i], NULL);
          g_autoptr (GBytes) sb = whole_delta (AT_FDCWD, dir, from, to, cancellable, error);
          if (sb == NULL)
            return FALSE;
          if (!commit_present (repo, to) || (from && !commit_present (repo, from)))
            return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "%s: its commits are not in the repository", dir);
          DfRepoDelta *prev = g_hash_table_lookup (by_id, names->pdata[i]);
          if (prev)
            {
              if (!g_bytes_equal (sb, g_hash_table_lookup (sb_of, prev->id)))
                return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "%s and %s hold different deltas of the same id",
                                  prev->dir, dir);
              continue;
            }
          DfRepoDelta *e = g_new0 (DfRepoDelta, 1);
          e->id = g_strdup (names->pdata[i]);
          e->from = g_steal_pointer (&from);
          e->to = g_steal_pointer (&to);
          e->dir = g_steal_pointer (&dir);
          e->format = DF_DELTA_FORMAT_NATIVE;
          g_ptr_array_add (found, e);
          g_hash_table_insert (by_id, e->id, e);
          g_hash_table_insert (sb_of, e->id, g_steal_pointer (&sb));
        }
    }
  g_autoptr (GPtrArray) signers = prepare_removal (repo, opts, found, error);
  if (signers == NULL)
    return FALSE;
  for (guint i = 0; i < found->len; i++)
    {
      DfRepoDelta *e = found->pdata[i];
      GBytes *sb = g_hash_table_lookup (sb_of, e->id);
      g_autofree char *rel = dfi_native_delta_relpath (e->from, e->to);
      g_autofree char *sb_rel = g_build_filename (rel, "superblock", NULL);
      g_autoptr (GBytes) there
          = dfi_read_file_bounded (repo_dfd, sb_rel, DF_SUPERBLOCK_MAX, G_MAXUINT64, "superblock", NULL);
      g_autoptr (DfSuperblock) parsed = dfi_superblock_parse (sb, error);
      if (parsed == NULL)
        return FALSE;
      g_autoptr (GError) local = NULL;
      g_autoptr (GBytes) whole_there = there && g_bytes_equal (there, sb)
                                           ? whole_delta (repo_dfd, rel, e->from, e->to, cancellable, &local)
                                           : NULL;
      if (whole_there == NULL && !copy_delta (AT_FDCWD, e->dir, parsed->n_parts, repo_dfd, rel, cancellable, error))
        return FALSE;
      if (!dfi_gen_index_set (repo_dfd, e->from, e->to, sb, signers, error))
        return FALSE;
      g_autofree char *repo_path = g_file_get_path (ostree_repo_get_path (repo));
      g_free (e->dir);
      e->dir = g_build_filename (repo_path, rel, NULL);
      e->size = dfi_gen_dir_bytes (repo_dfd, rel, NULL);
      e->n_parts = parsed->n_parts;
      e->indexed = e->from_present = e->to_present = TRUE;
    }
  if (out_merged)
    *out_merged = g_steal_pointer (&found);
  return TRUE;
}
