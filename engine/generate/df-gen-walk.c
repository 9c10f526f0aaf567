/* Walking a commit for the generator: its metadata objects once each in
 * pre-order, and every file path with its content object (see
 * df-gen-walk.h). */
#include "df-gen-walk.h"

static void
file_ref_free (DfGenFileRef *f)
{
  g_free (f->path);
  g_free (f);
}

static gboolean
walk_dir (DfGenWalk *w, const char *path, const char *tree, const char *meta, guint depth, GError **error)
{
  if (depth > DF_TREE_DEPTH_MAX)
    return dfi_throw (error, DF_ERROR_FAILED, "directory nesting deeper than %d at %s", DF_TREE_DEPTH_MAX, path);
  const struct
  {
    OstreeObjectType t;
    const char *c;
  } objs[] = { { OSTREE_OBJECT_TYPE_DIR_META, meta }, { OSTREE_OBJECT_TYPE_DIR_TREE, tree } };
  for (guint i = 0; i < 2; i++)
    {
      char *key = g_strdup_printf ("%s.%d", objs[i].c, objs[i].t);
      if (g_hash_table_add (w->seen, key))
        {
          DfGenObjKey *k = g_new0 (DfGenObjKey, 1);
          k->objtype = objs[i].t;
          memcpy (k->csum, objs[i].c, 65);
          g_ptr_array_add (w->metadata, k);
        }
    }
  g_autoptr (GVariant) dirtree = NULL;
  if (!ostree_repo_load_variant (w->repo, OSTREE_OBJECT_TYPE_DIR_TREE, tree, &dirtree, error))
    return FALSE;
  g_autoptr (GVariant) files = g_variant_get_child_value (dirtree, 0);
  g_autoptr (GVariant) dirs = g_variant_get_child_value (dirtree, 1);
  /* Identical subtrees share one dirtree; paths still matter for pairing
   * so files are listed for every occurrence, but a tree seen before adds
   * no new objects. */
  gsize n = g_variant_n_children (files);
  for (gsize i = 0; i < n; i++)
    {
      const char *name;
      g_autoptr (GVariant) csum = NULL;
      g_variant_get_child (files, i, "(&s@ay)", &name, &csum);
      DfGenFileRef *f = g_new0 (DfGenFileRef, 1);
      f->path = g_build_filename (path, name, NULL);
      ostree_checksum_inplace_from_bytes (ostree_checksum_bytes_peek (csum), f->csum);
      char *key = g_strdup_printf ("%s.%d", f->csum, OSTREE_OBJECT_TYPE_FILE);
      g_hash_table_add (w->seen, key);
      g_ptr_array_add (w->files, f);
    }
  n = g_variant_n_children (dirs);
  for (gsize i = 0; i < n; i++)
    {
      const char *name;
      g_autoptr (GVariant) tcsum = NULL, mcsum = NULL;
      g_variant_get_child (dirs, i, "(&s@ay@ay)", &name, &tcsum, &mcsum);
      char t[65], m[65];
      ostree_checksum_inplace_from_bytes (ostree_checksum_bytes_peek (tcsum), t);
      ostree_checksum_inplace_from_bytes (ostree_checksum_bytes_peek (mcsum), m);
      g_autofree char *sub = g_build_filename (path, name, NULL);
      if (!walk_dir (w, sub, t, m, depth + 1, error))
        return FALSE;
    }
  return TRUE;
}

void
dfi_gen_walk_clear (DfGenWalk *w)
{
  g_clear_pointer (&w->seen, g_hash_table_unref);
  g_clear_pointer (&w->metadata, g_ptr_array_unref);
  g_clear_pointer (&w->files, g_ptr_array_unref);
}

gboolean
dfi_gen_walk_commit (OstreeRepo *repo, const char *commit, GVariant **out_commit, DfGenWalk *w, GError **error)
{
  w->repo = repo;
  w->seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  w->metadata = g_ptr_array_new_with_free_func (g_free);
  w->files = g_ptr_array_new_with_free_func ((GDestroyNotify)file_ref_free);
  g_autoptr (GVariant) cv = NULL;
  if (!ostree_repo_load_variant (repo, OSTREE_OBJECT_TYPE_COMMIT, commit, &cv, error))
    return FALSE;
  g_autoptr (GVariant) tree = g_variant_get_child_value (cv, 6);
  g_autoptr (GVariant) meta = g_variant_get_child_value (cv, 7);
  char t[65], m[65];
  ostree_checksum_inplace_from_bytes (ostree_checksum_bytes_peek (tree), t);
  ostree_checksum_inplace_from_bytes (ostree_checksum_bytes_peek (meta), m);
  if (!walk_dir (w, "/", t, m, 0, error))
    return FALSE;
  if (out_commit)
    *out_commit = g_steal_pointer (&cv);
  return TRUE;
}
