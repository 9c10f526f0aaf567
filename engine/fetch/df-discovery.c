/* Discovery (see df-discovery.h). */
#include "df-discovery.h"

#include <json-glib/json-glib.h>

#include "df-objset.h"
#include "df-stock.h"
#include "df-superblock.h"

void
dfi_discovered_clear (DfDiscovered *dd)
{
  g_clear_pointer (&dd->key, g_free);
  g_clear_pointer (&dd->stock_from, g_free);
  g_clear_pointer (&dd->stock_relpath, g_free);
  g_clear_pointer (&dd->stock_superblock, g_bytes_unref);
  dd->kind = DF_DISCOVERED_NONE;
}

/* The timestamp of @commit when it is wholly in @repo, else -1. */
static gint64
local_commit_time (OstreeRepo *repo, const char *commit)
{
  g_autoptr (GVariant) v = NULL;
  OstreeRepoCommitState state = 0;
  if (repo == NULL || !ostree_validate_checksum_string (commit, NULL)
      || !ostree_repo_load_commit (repo, commit, &v, &state, NULL) || (state & OSTREE_REPO_COMMIT_STATE_PARTIAL))
    return -1;
  return (gint64)MIN (ostree_commit_get_timestamp (v), (guint64)G_MAXINT64);
}

/* Of the from-commits @names those wholly in @repo, the one whose delta
 * @sizes (from-commit -> guint64*, may be NULL) says is the smallest, else
 * the newest by timestamp: the nearest in history, whose delta is likely
 * the smallest. Ties go to the newest, then to the lesser name. NULL when
 * none is in @repo. */
static const char *
best_local (OstreeRepo *repo, GPtrArray *names, GHashTable *sizes)
{
  const char *best = NULL;
  gint64 best_time = -1;
  guint64 best_size = G_MAXUINT64;
  for (guint i = 0; i < names->len; i++)
    {
      const char *name = names->pdata[i];
      gint64 t = local_commit_time (repo, name);
      if (t < 0)
        continue;
      const guint64 *sp = sizes ? g_hash_table_lookup (sizes, name) : NULL;
      guint64 size = sp ? *sp : G_MAXUINT64;
      if (best == NULL || size < best_size
          || (size == best_size && (t > best_time || (t == best_time && strcmp (name, best) < 0))))
        best = name, best_time = t, best_size = size;
    }
  return best;
}

/* How many of @names are commits wholly in @repo. */
static guint
count_local (OstreeRepo *repo, GPtrArray *names)
{
  guint n = 0;
  for (guint i = 0; i < names->len; i++)
    n += local_commit_time (repo, names->pdata[i]) >= 0;
  return n;
}

/* Whether the arrays and objects of JSON text @data nest at most @max
 * deep (strings, with their escapes, skipped). */
static gboolean
json_depth_at_most (const char *data, gsize len, guint max)
{
  guint depth = 0;
  gboolean in_string = FALSE;
  for (gsize i = 0; i < len; i++)
    {
      char c = data[i];
      if (in_string)
        {
          if (c == '\\')
            i++;
          else if (c == '"')
            in_string = FALSE;
        }
      else if (c == '"')
        in_string = TRUE;
      else if ((c == '[' || c == '{') && ++depth > max)
        return FALSE;
      else if ((c == ']' || c == '}') && depth > 0)
        depth--;
    }
  return TRUE;
}

/* The sizes the server publishes for the deltas to @commit (from-commit ->
 * guint64*), from the generator's stats file
 * (deltafetch/v1/stats/COMMIT.json), or NULL when it has none or it does
 * not parse. Only a preference: the delta chosen is checked as any other,
 * and a wrong size costs at most bytes, which --max-bytes bounds. */
static GHashTable *
published_sizes (DfDownloader *d, const char *commit)
{
  g_autofree char *rel = g_strdup_printf ("deltafetch/v1/stats/%s.json", commit);
  /* A hint: asked once, and a failure blames no mirror. */
  DfSmallFile file = { .rel = rel, .cap = DF_FETCH_STATS_MAX, .optional = TRUE };
  g_autoptr (GError) ignored = NULL;
  if (!dfi_downloader_fetch_many (d, &file, 1, 0, NULL, NULL, &ignored) || file.bytes == NULL)
    return NULL;
  g_autoptr (GBytes) bytes = file.bytes;
  gsize len;
  const char *data = g_bytes_get_data (bytes, &len);
  /* json-glib's parser recurses once a level: the file's three levels
   * and no more. */
  if (!json_depth_at_most (data, len, 4))
    return NULL;
  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  if (len > G_MAXSSIZE || !json_parser_load_from_data (parser, data, (gssize)len, NULL))
    return NULL;
  JsonNode *root = json_parser_get_root (parser);
  JsonObject *top = root && JSON_NODE_HOLDS_OBJECT (root) ? json_node_get_object (root) : NULL;
  JsonNode *deltas = top ? json_object_get_member (top, "deltas") : NULL;
  if (deltas == NULL || !JSON_NODE_HOLDS_ARRAY (deltas))
    return NULL;
  JsonArray *a = json_node_get_array (deltas);
  GHashTable *sizes = g_hash_table_new_full (dfi_keyed_str_hash, g_str_equal, g_free, g_free);
  for (guint i = 0; i < json_array_get_length (a); i++)
    {
      JsonNode *e = json_array_get_element (a, i);
      JsonObject *o = JSON_NODE_HOLDS_OBJECT (e) ? json_node_get_object (e) : NULL;
      JsonNode *from = o ? json_object_get_member (o, "from") : NULL;
      JsonNode *size = o ? json_object_get_member (o, "size") : NULL;
      if (from == NULL || size == NULL || json_node_get_value_type (from) != G_TYPE_STRING
          || json_node_get_value_type (size) != G_TYPE_INT64 || json_node_get_int (size) < 0
          || !ostree_validate_checksum_string (json_node_get_string (from), NULL))
        continue;
      g_hash_table_insert (sizes, g_strdup (json_node_get_string (from)),
                           g_memdup2 (&(guint64){ (guint64)json_node_get_int (size) }, sizeof (guint64)));
    }
  return sizes;
}

/* Looks up the delta to @commit for a device at @from (NULL: none) in the
 * native index; without one from @from, from the commit of @repo (may be
 * NULL) the index has a delta from (*@searched) whose delta is the smallest
 * (when several are, by the server's stats file, else the newest), else
 * from scratch. Returns the key used ("" for scratch) or NULL when the
 * index offers nothing usable. */
static char *
pick_delta (DfDownloader *d, GBytes *index, OstreeRepo *repo, const char *commit, const char *from,
            guint8 sb_sha[DF_SHA256_LEN], guint64 *sb_size, gboolean *searched, GError **error)
{
  g_autoptr (GVariant) v = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE ("a{s(ayt)}"), index, FALSE));
  if (!g_variant_is_normal_form (v))
    {
      dfi_throw (error, DF_ERROR_INVALID_DELTA, "the server's delta index is malformed");
      return NULL;
    }
  const char *found = NULL;
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  if (repo && (from == NULL || !g_variant_lookup (v, from, "(@ayt)", NULL, NULL)))
    {
      /* As many as an index of at most DF_FETCH_INDEX_MAX bytes holds. */
      gsize n = g_variant_n_children (v);
      for (gsize i = 0; i < n; i++)
        {
          g_autoptr (GVariant) e = g_variant_get_child_value (v, i);
          g_autoptr (GVariant) key = g_variant_get_child_value (e, 0);
          const char *name = g_variant_get_string (key, NULL);
          if (name[0])
            g_ptr_array_add (names, g_strdup (name));
        }
      g_autoptr (GHashTable) sizes = count_local (repo, names) > 1 ? published_sizes (d, commit) : NULL;
      found = best_local (repo, names, sizes);
      *searched = found != NULL;
    }
  const char *keys[3] = { from, found, "" };
  for (guint k = 0; k < 3; k++)
    {
      if (keys[k] == NULL)
        continue;
      g_autoptr (GVariant) sha = NULL;
      guint64 size;
      if (!g_variant_lookup (v, keys[k], "(@ayt)", &sha, &size))
        continue;
      if (g_variant_get_size (sha) != DF_SHA256_LEN || size > DF_SUPERBLOCK_MAX || size < DF_SUPERBLOCK_HEADER_LEN)
        {
          dfi_throw (error, DF_ERROR_INVALID_DELTA, "the server's delta index has a bad entry for '%s'", keys[k]);
          return NULL;
        }
      memcpy (sb_sha, g_variant_get_data (sha), DF_SHA256_LEN);
      *sb_size = size;
      return g_strdup (keys[k]);
    }
  return NULL;
}

/* The "ostree.static-deltas" table (delta name -> SHA-256 of its
 * superblock) the server publishes for @commit: its delta index
 * (delta-indexes/, what `ostree summary -u` writes since 2020), else its
 * summary file (older servers, and repositories whose indexes are gone),
 * and in *@served_by the mirror it came from. NULL without an error when
 * the server has neither. */
static GVariant *
stock_delta_table (DfDownloader *d, const char *commit, guint *served_by, int *suspect, GError **error)
{
  guint8 to[DF_SHA256_LEN];
  ostree_checksum_inplace_to_bytes (commit, to);
  g_autofree char *to64 = ostree_checksum_b64_from_bytes (to);
  g_autofree char *index_rel = g_strdup_printf ("delta-indexes/%.2s/%s.index", to64, to64 + 2);
  gboolean not_found = FALSE;
  g_autoptr (GError) local = NULL;
  g_autoptr (GBytes) index
      = dfi_downloader_fetch_small (d, index_rel, DF_FETCH_INDEX_MAX, &not_found, served_by, &local);
  if (index)
    {
      g_autoptr (GVariant) iv = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE_VARDICT, index, FALSE));
      if (!g_variant_is_normal_form (iv))
        {
          *suspect = *served_by;
          dfi_throw (error, DF_ERROR_INVALID_DELTA, "%s/%s is malformed", dfi_downloader_mirror (d, *served_by),
                     index_rel);
          return NULL;
        }
      return g_variant_lookup_value (iv, "ostree.static-deltas", G_VARIANT_TYPE_VARDICT);
    }
  if (!not_found)
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return NULL;
    }
  g_clear_error (&local);
  g_autoptr (GBytes) summary
      = dfi_downloader_fetch_small (d, "summary", DF_FETCH_SUMMARY_MAX, &not_found, served_by, &local);
  if (summary == NULL)
    {
      if (!not_found)
        g_propagate_error (error, g_steal_pointer (&local));
      return NULL;
    }
  g_autoptr (GVariant) sv
      = g_variant_ref_sink (g_variant_new_from_bytes (OSTREE_SUMMARY_GVARIANT_FORMAT, summary, FALSE));
  if (!g_variant_is_normal_form (sv))
    {
      *suspect = *served_by;
      dfi_throw (error, DF_ERROR_INVALID_DELTA, "%s/summary is malformed", dfi_downloader_mirror (d, *served_by));
      return NULL;
    }
  g_autoptr (GVariant) meta = g_variant_get_child_value (sv, 1);
  return g_variant_lookup_value (meta, "ostree.static-deltas", G_VARIANT_TYPE_VARDICT);
}

/* A stock delta: the one from @from when the server lists one, else the
 * from-scratch one, its superblock fetched and matched against the
 * listing. Leaves @out NONE when the server offers neither. */
static gboolean
discover_stock (DfDownloader *d, OstreeRepo *repo, const char *commit, const char *from, DfDiscovered *out,
                int *suspect, GError **error)
{
  GError *local = NULL;
  guint table_mirror = 0;
  g_autoptr (GVariant) deltas = stock_delta_table (d, commit, &table_mirror, suspect, &local);
  if (local)
    {
      g_propagate_error (error, local);
      return FALSE;
    }
  if (deltas == NULL)
    return TRUE;
  const char *use_from = NULL;
  g_autoptr (GVariant) digest = NULL;
  if (from)
    {
      g_autofree char *name = g_strdup_printf ("%s-%s", from, commit);
      digest = g_variant_lookup_value (deltas, name, G_VARIANT_TYPE_BYTESTRING);
      use_from = digest ? from : NULL;
    }
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  if (digest == NULL && repo)
    {
      /* Names are "FROM-TO": those to @commit from a commit @repo holds. */
      gsize n = g_variant_n_children (deltas);
      for (gsize i = 0; i < n; i++)
        {
          g_autoptr (GVariant) e = g_variant_get_child_value (deltas, i);
          g_autoptr (GVariant) key = g_variant_get_child_value (e, 0);
          const char *name = g_variant_get_string (key, NULL);
          const char *dash = strchr (name, '-');
          if (dash && dash - name == 64 && strcmp (dash + 1, commit) == 0)
            g_ptr_array_add (names, g_strndup (name, 64));
        }
      const char *found = best_local (repo, names, NULL);
      if (found)
        {
          g_autofree char *name = g_strdup_printf ("%s-%s", found, commit);
          digest = g_variant_lookup_value (deltas, name, G_VARIANT_TYPE_BYTESTRING);
          use_from = found;
          out->searched = TRUE;
        }
    }
  if (digest == NULL)
    digest = g_variant_lookup_value (deltas, commit, G_VARIANT_TYPE_BYTESTRING);
  if (digest == NULL || g_variant_n_children (digest) != DF_SHA256_LEN)
    return TRUE;
  g_autofree char *relpath = dfi_stock_delta_relpath (use_from, commit);
  g_autofree char *sb_rel = g_strdup_printf ("%s/superblock", relpath);
  gboolean not_found = FALSE;
  guint sb_mirror;
  g_autoptr (GBytes) sb_bytes
      = dfi_downloader_fetch_small (d, sb_rel, DF_SUPERBLOCK_MAX, &not_found, &sb_mirror, &local);
  if (sb_bytes == NULL)
    {
      /* Listed but gone: as stock pull does, go on without it. */
      if (not_found)
        {
          g_clear_error (&local);
          return TRUE;
        }
      g_propagate_error (error, local);
      return FALSE;
    }
  guint8 got[DF_SHA256_LEN];
  dfi_sha256 (g_bytes_get_data (sb_bytes, NULL), g_bytes_get_size (sb_bytes), got);
  if (memcmp (got, g_variant_get_data (digest), DF_SHA256_LEN) != 0)
    {
      /* As for a native superblock and its index: the mirror that listed
       * this digest is trusted for neither. */
      *suspect = table_mirror;
      return dfi_throw (error, DF_ERROR_CORRUPT, "%s/%s does not match the digest the server lists for it",
                        dfi_downloader_mirror (d, sb_mirror), sb_rel);
    }
  out->kind = DF_DISCOVERED_STOCK;
  out->stock_from = g_strdup (use_from);
  out->stock_relpath = g_steal_pointer (&relpath);
  out->stock_superblock = g_steal_pointer (&sb_bytes);
  return TRUE;
}

gboolean
dfi_discover (DfDownloader *d, OstreeRepo *repo, const char *commit, const char *from, DfDiscovered *out, int *suspect,
              GError **error)
{
  memset (out, 0, sizeof *out);
  gboolean not_found = FALSE;
  g_autofree char *index_rel = g_strdup_printf ("deltafetch/v1/indexes/%s.index", commit);
  guint index_mirror = 0;
  g_autoptr (GError) index_error = NULL;
  g_autoptr (GBytes) index
      = dfi_downloader_fetch_small (d, index_rel, DF_FETCH_INDEX_MAX, &not_found, &index_mirror, &index_error);
  if (index == NULL && !not_found)
    {
      g_propagate_error (error, g_steal_pointer (&index_error));
      return FALSE;
    }
  if (index)
    {
      g_autoptr (GError) pick_error = NULL;
      out->key = pick_delta (d, index, repo, commit, from, out->sb_sha, &out->sb_size, &out->searched, &pick_error);
      if (pick_error)
        {
          *suspect = index_mirror;
          return dfi_throw (error, pick_error->code, "%s/%s: %s", dfi_downloader_mirror (d, index_mirror), index_rel,
                            pick_error->message);
        }
    }
  if (out->key)
    {
      out->kind = DF_DISCOVERED_NATIVE;
      out->index_mirror = index_mirror;
      return TRUE;
    }
  return discover_stock (d, repo, commit, from, out, suspect, error);
}
