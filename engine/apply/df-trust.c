#include "df-trust.h"

#include <sys/stat.h>

struct _DfTrust
{
  OstreeRepo *repo;
  GHashTable *delta_meta; /* key → GBytes */
  GHashTable *reached;    /* keys of every object of the commit */
  GPtrArray *meta;        /* DfTrustMeta*: verified, referenced */
};

static void
trust_meta_free (DfTrustMeta *m)
{
  g_bytes_unref (m->data);
  g_free (m);
}

DfTrust *
df_trust_new (OstreeRepo *repo)
{
  DfTrust *t = g_new0 (DfTrust, 1);
  t->repo = g_object_ref (repo);
  t->delta_meta = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_bytes_unref);
  t->reached = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  t->meta = g_ptr_array_new_with_free_func ((GDestroyNotify)trust_meta_free);
  return t;
}

void
df_trust_free (DfTrust *t)
{
  if (t == NULL)
    return;
  g_object_unref (t->repo);
  g_hash_table_unref (t->delta_meta);
  g_hash_table_unref (t->reached);
  g_ptr_array_unref (t->meta);
  g_free (t);
}

char *
df_trust_key (const char *hex, OstreeObjectType type)
{
  return g_strdup_printf ("%s.%d", hex, type);
}

void
df_trust_add_delta_metadata (DfTrust *t, OstreeObjectType type, const guint8 csum[DF_SHA256_LEN], GBytes *data)
{
  char hex[65];
  df_hex (csum, hex);
  g_hash_table_insert (t->delta_meta, df_trust_key (hex, type), g_bytes_ref (data));
}

static gboolean
valid_name (const char *name)
{
  return name[0] != '\0' && strchr (name, '/') == NULL && strcmp (name, ".") != 0 && strcmp (name, "..") != 0;
}

/* Loads a metadata object the commit references: from the delta (checked
 * against its checksum) or from the repository. */
static GVariant *
reach_metadata (DfTrust *t, OstreeObjectType type, const guint8 *csum, GError **error)
{
  char hex[65];
  df_hex (csum, hex);
  g_autofree char *key = df_trust_key (hex, type);
  GBytes *data = g_hash_table_lookup (t->delta_meta, key);
  if (data)
    {
      guint8 actual[DF_SHA256_LEN];
      df_sha256 (g_bytes_get_data (data, NULL), g_bytes_get_size (data), actual);
      if (memcmp (actual, csum, DF_SHA256_LEN) != 0)
        {
          df_throw (error, DF_ERROR_CORRUPT, "%s %s: the delta's bytes hash to something else",
                    ostree_object_type_to_string (type), hex);
          return NULL;
        }
      g_autoptr (GVariant) v
          = g_variant_ref_sink (g_variant_new_from_bytes (ostree_metadata_variant_type (type), data, FALSE));
      g_autoptr (GError) local = NULL;
      gboolean ok = g_variant_is_normal_form (v)
                    && (type == OSTREE_OBJECT_TYPE_DIR_TREE ? ostree_validate_structureof_dirtree (v, &local)
                                                            : ostree_validate_structureof_dirmeta (v, &local));
      if (!ok)
        {
          df_throw (error, DF_ERROR_INVALID_DELTA, "%s %s is malformed%s%s", ostree_object_type_to_string (type), hex,
                    local ? ": " : "", local ? local->message : "");
          return NULL;
        }
      if (type == OSTREE_OBJECT_TYPE_DIR_META)
        {
          guint32 mode = 0;
          g_variant_get_child (v, 2, "u", &mode);
          if (!S_ISDIR (GUINT32_FROM_BE (mode)))
            {
              df_throw (error, DF_ERROR_INVALID_DELTA, "dirmeta %s is not a directory", hex);
              return NULL;
            }
        }
      if (!g_hash_table_contains (t->reached, key))
        {
          DfTrustMeta *m = g_new0 (DfTrustMeta, 1);
          m->type = type;
          memcpy (m->checksum, csum, DF_SHA256_LEN);
          m->data = g_bytes_ref (data);
          g_ptr_array_add (t->meta, m);
        }
      g_hash_table_add (t->reached, g_steal_pointer (&key));
      return g_steal_pointer (&v);
    }
  g_autoptr (GVariant) v = NULL;
  g_autoptr (GError) local = NULL;
  if (!ostree_repo_load_variant_if_exists (t->repo, type, hex, &v, &local) || v == NULL)
    {
      df_throw (error, DF_ERROR_MISSING_BASE, "%s %s is neither in the delta nor in the repository",
                ostree_object_type_to_string (type), hex);
      return NULL;
    }
  g_hash_table_add (t->reached, g_steal_pointer (&key));
  return g_steal_pointer (&v);
}

static gboolean
walk_tree (DfTrust *t, const guint8 *tree, const guint8 *meta, guint depth, GError **error)
{
  if (depth > DF_TREE_DEPTH_MAX)
    return df_throw (error, DF_ERROR_INVALID_DELTA, "directories nested deeper than %d", DF_TREE_DEPTH_MAX);
  char thex[65];
  df_hex (tree, thex);
  g_autofree char *tkey = df_trust_key (thex, OSTREE_OBJECT_TYPE_DIR_TREE);
  g_autoptr (GVariant) mv = reach_metadata (t, OSTREE_OBJECT_TYPE_DIR_META, meta, error);
  if (mv == NULL)
    return FALSE;
  /* A subtree shared by several directories is walked once. */
  if (g_hash_table_contains (t->reached, tkey))
    return TRUE;
  g_autoptr (GVariant) tv = reach_metadata (t, OSTREE_OBJECT_TYPE_DIR_TREE, tree, error);
  if (tv == NULL)
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
        return df_throw (error, DF_ERROR_INVALID_DELTA, "dirtree %s holds an invalid file entry", thex);
      char hex[65];
      df_hex (g_variant_get_data (c), hex);
      g_hash_table_add (t->reached, df_trust_key (hex, OSTREE_OBJECT_TYPE_FILE));
    }
  n = g_variant_n_children (dirs);
  for (gsize i = 0; i < n; i++)
    {
      const char *name;
      g_autoptr (GVariant) st = NULL, sm = NULL;
      g_variant_get_child (dirs, i, "(&s@ay@ay)", &name, &st, &sm);
      if (!valid_name (name) || g_variant_get_size (st) != DF_SHA256_LEN || g_variant_get_size (sm) != DF_SHA256_LEN)
        return df_throw (error, DF_ERROR_INVALID_DELTA, "dirtree %s holds an invalid directory entry", thex);
      if (!walk_tree (t, g_variant_get_data (st), g_variant_get_data (sm), depth + 1, error))
        return FALSE;
    }
  return TRUE;
}

gboolean
df_trust_walk (DfTrust *t, GBytes *commit_bytes, const char *to_hex, GError **error)
{
  g_autoptr (GVariant) commit
      = g_variant_ref_sink (g_variant_new_from_bytes (OSTREE_COMMIT_GVARIANT_FORMAT, commit_bytes, FALSE));
  g_autoptr (GVariant) tree = g_variant_get_child_value (commit, 6);
  g_autoptr (GVariant) meta = g_variant_get_child_value (commit, 7);
  if (g_variant_get_size (tree) != DF_SHA256_LEN || g_variant_get_size (meta) != DF_SHA256_LEN)
    return df_throw (error, DF_ERROR_INVALID_DELTA, "commit %s has a malformed root", to_hex);
  if (!walk_tree (t, g_variant_get_data (tree), g_variant_get_data (meta), 0, error))
    return FALSE;
  GHashTableIter it;
  gpointer key;
  g_hash_table_iter_init (&it, t->delta_meta);
  while (g_hash_table_iter_next (&it, &key, NULL))
    if (!g_hash_table_contains (t->reached, key))
      {
        g_autofree char *hex = g_strndup (key, 64);
        int type = atoi ((const char *)key + 65);
        return df_throw (error, DF_ERROR_UNTRUSTED, "%s %s is not referenced by commit %s; refusing the delta",
                         ostree_object_type_to_string (type), hex, to_hex);
      }
  g_hash_table_remove_all (t->delta_meta);
  return TRUE;
}

gboolean
df_trust_reaches (DfTrust *t, OstreeObjectType type, const guint8 csum[DF_SHA256_LEN])
{
  char hex[65];
  df_hex (csum, hex);
  g_autofree char *key = df_trust_key (hex, type);
  return g_hash_table_contains (t->reached, key);
}

GPtrArray *
df_trust_metadata (DfTrust *t)
{
  return t->meta;
}

GHashTable *
df_trust_reached (DfTrust *t)
{
  return t->reached;
}

gboolean
df_trust_check_present (DfTrust *t, GHashTable *carried, gboolean has_from, const char *to_hex, GCancellable *c,
                        GError **error)
{
  GHashTableIter it;
  gpointer key;
  g_hash_table_iter_init (&it, t->reached);
  while (g_hash_table_iter_next (&it, &key, NULL))
    {
      if (g_hash_table_contains (carried, key))
        continue;
      char hex[65];
      memcpy (hex, key, 64);
      hex[64] = '\0';
      int type = atoi ((const char *)key + 65);
      gboolean have = FALSE;
      if (!ostree_repo_has_object (t->repo, type, hex, &have, c, error))
        return FALSE;
      if (!have)
        return df_throw (error, has_from ? DF_ERROR_MISSING_BASE : DF_ERROR_INVALID_DELTA,
                         "%s %s of commit %s is neither in the delta nor in the repository",
                         ostree_object_type_to_string (type), hex, to_hex);
    }
  return TRUE;
}
