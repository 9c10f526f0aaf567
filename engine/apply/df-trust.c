#include "df-trust.h"

#include <fcntl.h>
#include <sys/stat.h>

struct _DfTrust
{
  OstreeRepo *repo;
  DfObjSet *delta_meta; /* → GBytes */
  DfObjSet *reached;    /* every object of the commit */
  GPtrArray *meta;      /* DfTrustMeta*: verified, referenced */
  guint64 memory_limit; /* of the tables: see dfi_trust_set_memory_limit() */
};

static void
trust_meta_free (DfTrustMeta *m)
{
  g_bytes_unref (m->data);
  g_free (m);
}

DfTrust *
dfi_trust_new (OstreeRepo *repo)
{
  DfTrust *t = g_new0 (DfTrust, 1);
  t->repo = g_object_ref (repo);
  t->delta_meta = dfi_objset_new ((GDestroyNotify)g_bytes_unref);
  t->reached = dfi_objset_new (NULL);
  t->meta = g_ptr_array_new_with_free_func ((GDestroyNotify)trust_meta_free);
  t->memory_limit = G_MAXUINT64;
  return t;
}

void
dfi_trust_free (DfTrust *t)
{
  if (t == NULL)
    return;
  g_object_unref (t->repo);
  dfi_objset_free (t->delta_meta);
  dfi_objset_free (t->reached);
  g_ptr_array_unref (t->meta);
  g_free (t);
}

void
dfi_trust_set_memory_limit (DfTrust *t, guint64 bytes)
{
  t->memory_limit = bytes;
}

guint64
dfi_trust_memory (const DfTrust *t)
{
  return (guint64)dfi_objset_size (t->delta_meta) * DF_TRUST_DELTA_META_COST + dfi_objset_memory (t->reached)
         + (guint64)t->meta->len * (sizeof (DfTrustMeta) + sizeof (gpointer));
}

void
dfi_trust_add_delta_metadata (DfTrust *t, OstreeObjectType type, const guint8 csum[DF_SHA256_LEN], GBytes *data)
{
  dfi_objset_add (t->delta_meta, type, csum, g_bytes_ref (data));
}

/* Notes that the commit references an object. The table grows with the
 * tree, and a tree made up by a hostile delta (when no trusted commit is
 * given) can name millions of objects: it stays within its share of the
 * memory budget. */
static gboolean
reach (DfTrust *t, OstreeObjectType type, const guint8 *csum, GError **error)
{
  if (!dfi_objset_add (t->reached, type, csum, NULL))
    return TRUE;
  if ((dfi_objset_size (t->reached) & 4095) == 0 && dfi_trust_memory (t) > t->memory_limit)
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT,
                      "the commit references more than %u objects, more than the memory budget holds",
                      dfi_objset_size (t->reached));
  return TRUE;
}

static gboolean
valid_name (const char *name)
{
  return name[0] != '\0' && strchr (name, '/') == NULL && strcmp (name, ".") != 0 && strcmp (name, "..") != 0;
}

/* Loads a metadata object the commit references: from the delta (checked
 * against its checksum) or from the repository. Without @out, one reached
 * before (the dirmeta most directories share) is not loaded again. */
static gboolean
reach_metadata (DfTrust *t, OstreeObjectType type, const guint8 *csum, GVariant **out, GError **error)
{
  char hex[65];
  dfi_hex (csum, hex);
  gboolean reached = dfi_objset_contains (t->reached, type, csum);
  if (out == NULL && reached)
    return TRUE;
  GBytes *data = dfi_objset_lookup (t->delta_meta, type, csum);
  if (data)
    {
      guint8 actual[DF_SHA256_LEN];
      dfi_sha256 (g_bytes_get_data (data, NULL), g_bytes_get_size (data), actual);
      if (memcmp (actual, csum, DF_SHA256_LEN) != 0)
        return dfi_throw (error, DF_ERROR_CORRUPT, "%s %s: the delta's bytes hash to something else",
                          ostree_object_type_to_string (type), hex);
      g_autoptr (GVariant) v
          = g_variant_ref_sink (g_variant_new_from_bytes (ostree_metadata_variant_type (type), data, FALSE));
      g_autoptr (GError) local = NULL;
      gboolean ok = g_variant_is_normal_form (v)
                    && (type == OSTREE_OBJECT_TYPE_DIR_TREE ? ostree_validate_structureof_dirtree (v, &local)
                                                            : ostree_validate_structureof_dirmeta (v, &local));
      if (!ok)
        return dfi_throw (error, DF_ERROR_INVALID_DELTA, "%s %s is malformed%s%s", ostree_object_type_to_string (type),
                          hex, local ? ": " : "", local ? local->message : "");
      if (type == OSTREE_OBJECT_TYPE_DIR_META)
        {
          guint32 mode = 0;
          g_variant_get_child (v, 2, "u", &mode);
          if (!S_ISDIR (GUINT32_FROM_BE (mode)))
            return dfi_throw (error, DF_ERROR_INVALID_DELTA, "dirmeta %s is not a directory", hex);
        }
      if (!reached)
        {
          DfTrustMeta *m = g_new0 (DfTrustMeta, 1);
          m->type = type;
          memcpy (m->checksum, csum, DF_SHA256_LEN);
          m->data = g_bytes_ref (data);
          g_ptr_array_add (t->meta, m);
        }
      if (!reach (t, type, csum, error))
        return FALSE;
      if (out)
        *out = g_steal_pointer (&v);
      return TRUE;
    }
  g_autoptr (GVariant) v = NULL;
  g_autoptr (GError) local = NULL;
  if (!ostree_repo_load_variant_if_exists (t->repo, type, hex, &v, &local) || v == NULL)
    return dfi_throw (error, DF_ERROR_MISSING_BASE, "%s %s is neither in the delta nor in the repository",
                      ostree_object_type_to_string (type), hex);
  if (!reach (t, type, csum, error))
    return FALSE;
  if (out)
    *out = g_steal_pointer (&v);
  return TRUE;
}

static gboolean
walk_tree (DfTrust *t, const guint8 *tree, const guint8 *meta, guint depth, GError **error)
{
  if (depth > DF_TREE_DEPTH_MAX)
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "directories nested deeper than %d", DF_TREE_DEPTH_MAX);
  char thex[65];
  dfi_hex (tree, thex);
  if (!reach_metadata (t, OSTREE_OBJECT_TYPE_DIR_META, meta, NULL, error))
    return FALSE;
  /* A subtree shared by several directories is walked once. */
  if (dfi_objset_contains (t->reached, OSTREE_OBJECT_TYPE_DIR_TREE, tree))
    return TRUE;
  g_autoptr (GVariant) tv = NULL;
  if (!reach_metadata (t, OSTREE_OBJECT_TYPE_DIR_TREE, tree, &tv, error))
    return FALSE;
  g_autoptr (GVariant) files = g_variant_get_child_value (tv, 0);
  g_autoptr (GVariant) dirs = g_variant_get_child_value (tv, 1);
  gsize n = g_variant_n_children (files);
  for (gsize i = 0; i < n; i++)
    {
      const char *name;
      g_autoptr (GVariant) c = NULL;
      g_variant_get_child (files, i, "(&s@ay)", &name, &c);
      if (!valid_name (name) || g_variant_get_size (c) != DF_SHA256_LEN)
        return dfi_throw (error, DF_ERROR_INVALID_DELTA, "dirtree %s holds an invalid file entry", thex);
      if (!reach (t, OSTREE_OBJECT_TYPE_FILE, g_variant_get_data (c), error))
        return FALSE;
    }
  n = g_variant_n_children (dirs);
  for (gsize i = 0; i < n; i++)
    {
      const char *name;
      g_autoptr (GVariant) st = NULL, sm = NULL;
      g_variant_get_child (dirs, i, "(&s@ay@ay)", &name, &st, &sm);
      if (!valid_name (name) || g_variant_get_size (st) != DF_SHA256_LEN || g_variant_get_size (sm) != DF_SHA256_LEN)
        return dfi_throw (error, DF_ERROR_INVALID_DELTA, "dirtree %s holds an invalid directory entry", thex);
      if (!walk_tree (t, g_variant_get_data (st), g_variant_get_data (sm), depth + 1, error))
        return FALSE;
    }
  return TRUE;
}

gboolean
dfi_trust_walk (DfTrust *t, GBytes *commit_bytes, const char *to_hex, GError **error)
{
  g_autoptr (GVariant) commit
      = g_variant_ref_sink (g_variant_new_from_bytes (OSTREE_COMMIT_GVARIANT_FORMAT, commit_bytes, FALSE));
  g_autoptr (GVariant) tree = g_variant_get_child_value (commit, 6);
  g_autoptr (GVariant) meta = g_variant_get_child_value (commit, 7);
  if (g_variant_get_size (tree) != DF_SHA256_LEN || g_variant_get_size (meta) != DF_SHA256_LEN)
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "commit %s has a malformed root", to_hex);
  if (!walk_tree (t, g_variant_get_data (tree), g_variant_get_data (meta), 0, error))
    return FALSE;
  DfObjSetIter it;
  const guint8 *key;
  dfi_objset_iter_init (&it, t->delta_meta);
  while (dfi_objset_iter_next (&it, &key, NULL))
    if (!dfi_objset_contains_key (t->reached, key))
      {
        char hex[65];
        dfi_hex (key + 1, hex);
        return dfi_throw (error, DF_ERROR_UNTRUSTED, "%s %s is not referenced by commit %s; refusing the delta",
                          ostree_object_type_to_string (key[0]), hex, to_hex);
      }
  dfi_objset_clear (t->delta_meta);
  return TRUE;
}

gboolean
dfi_trust_reaches (DfTrust *t, OstreeObjectType type, const guint8 csum[DF_SHA256_LEN])
{
  return dfi_objset_contains (t->reached, type, csum);
}

GPtrArray *
dfi_trust_metadata (DfTrust *t)
{
  return t->meta;
}

/* Which of @wanted (keys of objects whose checksums start with byte @xx)
 * are loose objects in objects/XX: one readdir instead of two stat calls
 * per object (libostree's has_object looks in the transaction's staging
 * directory first, then in objects/). Found ones are removed from
 * @wanted. A directory that cannot be read leaves everything to the
 * caller's check. */
static void
drop_listed (int objects_dfd, guint xx, const char *file_ext, GHashTable *wanted)
{
  char name[65];
  g_snprintf (name, 3, "%02x", xx);
  DIR *d = dfi_opendir_at (objects_dfd, name);
  if (d == NULL)
    return;
  static const struct
  {
    const char *ext;
    OstreeObjectType type;
  } meta_ext[] = { { "dirtree", OSTREE_OBJECT_TYPE_DIR_TREE },
                   { "dirmeta", OSTREE_OBJECT_TYPE_DIR_META },
                   { "commit", OSTREE_OBJECT_TYPE_COMMIT } };
  struct dirent *de;
  guint8 key[DF_OBJSET_KEY_LEN];
  while (g_hash_table_size (wanted) > 0 && (de = readdir (d)) != NULL)
    {
      const char *dot = strchr (de->d_name, '.');
      if (dot == NULL || dot - de->d_name != 62)
        continue;
      int type = -1;
      if (strcmp (dot + 1, file_ext) == 0)
        type = OSTREE_OBJECT_TYPE_FILE;
      for (guint k = 0; type < 0 && k < G_N_ELEMENTS (meta_ext); k++)
        if (strcmp (dot + 1, meta_ext[k].ext) == 0)
          type = meta_ext[k].type;
      if (type < 0)
        continue;
      memcpy (name + 2, de->d_name, 62);
      name[64] = '\0';
      if (!ostree_validate_checksum_string (name, NULL))
        continue;
      key[0] = type;
      ostree_checksum_inplace_to_bytes (name, key + 1);
      g_hash_table_remove (wanted, key);
    }
  closedir (d);
}

gboolean
dfi_trust_check_present (DfTrust *t, const DfObjSet *carried, gboolean has_from, const char *to_hex, GCancellable *c,
                         GError **error)
{
  /* Grouped by the objects/XX directory they would be in; the tables point
   * at the keys of t->reached. */
  GHashTable *by_dir[256] = { NULL };
  DfObjSetIter it;
  const guint8 *key;
  dfi_objset_iter_init (&it, t->reached);
  while (dfi_objset_iter_next (&it, &key, NULL))
    {
      if (dfi_objset_contains_key (carried, key))
        continue;
      guint xx = key[1];
      if (by_dir[xx] == NULL)
        by_dir[xx] = g_hash_table_new (dfi_objset_key_hash, dfi_objset_key_equal);
      g_hash_table_add (by_dir[xx], (gpointer)key);
    }
  int objects_dfd = openat (ostree_repo_get_dfd (t->repo), "objects", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  const char *file_ext = ostree_repo_get_mode (t->repo) == OSTREE_REPO_MODE_ARCHIVE ? "filez" : "file";
  gboolean ok = TRUE;
  for (guint xx = 0; xx < 256; xx++)
    {
      if (by_dir[xx] == NULL)
        continue;
      /* A directory is worth listing once it holds a few of the objects. */
      if (ok && objects_dfd >= 0 && g_hash_table_size (by_dir[xx]) >= DF_PRESENT_LIST_MIN)
        drop_listed (objects_dfd, xx, file_ext, by_dir[xx]);
      /* What the listing did not find (staged by this transaction, in a
       * parent repository, or not there at all) is asked one by one. */
      GHashTableIter hit;
      gpointer k;
      g_hash_table_iter_init (&hit, by_dir[xx]);
      while (ok && g_hash_table_iter_next (&hit, &k, NULL))
        {
          const guint8 *obj = k;
          char hex[65];
          dfi_hex (obj + 1, hex);
          gboolean have = FALSE;
          if (!ostree_repo_has_object (t->repo, obj[0], hex, &have, c, error))
            ok = FALSE;
          else if (!have)
            ok = dfi_throw (error, has_from ? DF_ERROR_MISSING_BASE : DF_ERROR_INVALID_DELTA,
                            "%s %s of commit %s is neither in the delta nor in the repository",
                            ostree_object_type_to_string (obj[0]), hex, to_hex);
        }
      g_hash_table_unref (by_dir[xx]);
    }
  if (objects_dfd >= 0)
    close (objects_dfd);
  return ok;
}
