/* Publishing a delta: the output directory (the caller's, or a temporary
 * sibling of the delta's place in the repository, renamed into place at
 * the end so a reader never sees a half-written delta), the superblock
 * written last and checked with apply's own parser, and the repository's
 * delta index (see df-gen-publish.h). */
#include <dirent.h>
#include <fcntl.h>
#include <json-glib/json-glib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "df-generate-private.h"
#include "df-gen-publish.h"
#include "df-generator.h"
#include "df-superblock.h"

/* ---------------------------------------------------------------------- */
/* Output placement and index                                               */

char *
dfi_native_delta_relpath (const char *from, const char *to)
{
  if (from)
    return g_strdup_printf ("deltafetch/v1/deltas/%s-%s", from, to);
  return g_strdup_printf ("deltafetch/v1/deltas/%s", to);
}

static int
str_cmp_data (gconstpointer a, gconstpointer b, gpointer unused)
{
  return strcmp (a, b);
}

/* deltafetch/v1/indexes/<to>.index: a{s(ayt)} from-hex ("" from scratch) →
 * (superblock SHA-256, superblock size), keys sorted. Adds or replaces the
 * entry of @from with @superblock's, or removes it when @superblock is
 * NULL (and the file with its last entry: *@left FALSE). */
static gboolean
update_index (int repo_dfd, const char *from, const char *to, GBytes *superblock, gboolean *left, GError **error)
{
  if (!dfi_mkdir_p_at (repo_dfd, "deltafetch/v1/indexes", error))
    return FALSE;
  g_autofree char *path = g_strdup_printf ("deltafetch/v1/indexes/%s.index", to);
  g_autoptr (GTree) entries = g_tree_new_full (str_cmp_data, NULL, g_free, (GDestroyNotify)g_variant_unref);
  g_autoptr (GError) local = NULL;
  g_autoptr (GBytes) old = dfi_read_file_bounded (repo_dfd, path, DF_SUPERBLOCK_MAX, G_MAXUINT64, "index", &local);
  if (old)
    {
      g_autoptr (GVariant) v = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE ("a{s(ayt)}"), old, FALSE));
      if (g_variant_is_normal_form (v))
        {
          GVariantIter it;
          const char *k;
          GVariant *val;
          g_variant_iter_init (&it, v);
          while (g_variant_iter_next (&it, "{&s@(ayt)}", &k, &val))
            g_tree_insert (entries, g_strdup (k), val);
        }
    }
  if (superblock)
    {
      guint8 sha[DF_SHA256_LEN];
      dfi_sha256 (g_bytes_get_data (superblock, NULL), g_bytes_get_size (superblock), sha);
      GVariant *val = g_variant_ref_sink (
          g_variant_new ("(@ayt)", g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, sha, DF_SHA256_LEN, 1),
                         GUINT64_TO_LE ((guint64)g_bytes_get_size (superblock))));
      g_tree_insert (entries, g_strdup (from ? from : ""), val);
    }
  else
    g_tree_remove (entries, from ? from : "");
  *left = g_tree_nnodes (entries) > 0;
  if (!*left)
    {
      if (unlinkat (repo_dfd, path, 0) < 0 && errno != ENOENT)
        return dfi_throw_errno (error, errno, "removing %s", path);
      return TRUE;
    }
  GVariantBuilder b;
  g_variant_builder_init (&b, G_VARIANT_TYPE ("a{s(ayt)}"));
  GTreeNode *node = g_tree_node_first (entries);
  for (; node; node = g_tree_node_next (node))
    g_variant_builder_add (&b, "{s@(ayt)}", (const char *)g_tree_node_key (node), (GVariant *)g_tree_node_value (node));
  g_autoptr (GVariant) idx = g_variant_ref_sink (g_variant_builder_end (&b));
  g_autoptr (GVariant) normal = g_variant_get_normal_form (idx);
  g_autoptr (GBytes) bytes = g_variant_get_data_as_bytes (normal);
  return dfi_write_file_atomic (repo_dfd, path, bytes, error);
}

guint64
dfi_gen_dir_bytes (int dfd, const char *rel, guint *files)
{
  guint n;
  if (files == NULL)
    files = &n;
  *files = 0;
  int d = openat (dfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d < 0)
    return 0;
  DIR *dir = fdopendir (d);
  if (dir == NULL)
    {
      close (d);
      return 0;
    }
  guint64 total = 0;
  struct dirent *de;
  while ((de = readdir (dir)) != NULL)
    {
      struct stat st;
      if (fstatat (dirfd (dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG (st.st_mode))
        total += st.st_size, (*files)++;
    }
  closedir (dir);
  return total;
}

/* deltafetch/v1/stats/<to>.json: every delta to @to the index lists, with
 * its size as published (superblock and parts), for update metadata
 * (TUF/Uptane targets) to carry, as aktualizr-lite's delta-stats; with
 * @signers also <to>.json.sig, the raw 64-byte ed25519 signatures of the
 * JSON file's bytes, one per key in the order given, concatenated. */
static gboolean
update_stats (int repo_dfd, const char *to, GPtrArray *signers, GError **error)
{
  g_autofree char *index_path = g_strdup_printf ("deltafetch/v1/indexes/%s.index", to);
  g_autoptr (GBytes) index
      = dfi_read_file_bounded (repo_dfd, index_path, DF_SUPERBLOCK_MAX, G_MAXUINT64, "index", error);
  if (index == NULL)
    return FALSE;
  g_autoptr (GVariant) v = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE ("a{s(ayt)}"), index, FALSE));
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "to");
  json_builder_add_string_value (b, to);
  json_builder_set_member_name (b, "deltas");
  json_builder_begin_array (b);
  GVariantIter it;
  const char *from;
  GVariant *sha;
  guint64 sb_size;
  g_variant_iter_init (&it, v);
  while (g_variant_iter_next (&it, "{&s(@ayt)}", &from, &sha, &sb_size))
    {
      g_autoptr (GVariant) sha_owned = sha;
      g_autofree char *rel = dfi_native_delta_relpath (from[0] ? from : NULL, to);
      guint files;
      guint64 size = dfi_gen_dir_bytes (repo_dfd, rel, &files);
      char hex[65] = "";
      if (g_variant_get_size (sha) == DF_SHA256_LEN)
        dfi_hex (g_variant_get_data (sha), hex);
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "from");
      if (from[0])
        json_builder_add_string_value (b, from);
      else
        json_builder_add_null_value (b);
      json_builder_set_member_name (b, "size");
      json_builder_add_int_value (b, (gint64)size);
      json_builder_set_member_name (b, "parts");
      json_builder_add_int_value (b, files > 0 ? files - 1 : 0);
      json_builder_set_member_name (b, "superblock_sha256");
      json_builder_add_string_value (b, hex);
      json_builder_set_member_name (b, "superblock_size");
      json_builder_add_int_value (b, (gint64)GUINT64_FROM_LE (sb_size));
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
  json_builder_end_object (b);
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  g_autoptr (JsonNode) root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  json_generator_set_pretty (gen, TRUE);
  gsize len;
  g_autofree char *text = json_generator_to_data (gen, &len);
  g_autoptr (GBytes) json = g_bytes_new (text, len);
  g_autofree char *path = g_strdup_printf ("deltafetch/v1/stats/%s.json", to);
  g_autofree char *sig_path = g_strconcat (path, ".sig", NULL);
  if (!dfi_mkdir_p_at (repo_dfd, "deltafetch/v1/stats", error))
    return FALSE;
  if (signers && signers->len > 0)
    {
      /* One raw signature per key, in the order the keys were given. */
      g_autoptr (GPtrArray) sigs = dfi_signers_sign (signers, json, error);
      if (sigs == NULL)
        return FALSE;
      g_autoptr (GByteArray) all = g_byte_array_new ();
      for (guint i = 0; i < sigs->len; i++)
        g_byte_array_append (all, g_bytes_get_data (sigs->pdata[i], NULL), g_bytes_get_size (sigs->pdata[i]));
      g_autoptr (GBytes) sig = g_byte_array_free_to_bytes (g_steal_pointer (&all));
      if (!dfi_write_file_atomic (repo_dfd, sig_path, sig, error))
        return FALSE;
    }
  else if (unlinkat (repo_dfd, sig_path, 0) < 0 && errno != ENOENT)
    return dfi_throw_errno (error, errno, "removing %s", sig_path);
  return dfi_write_file_atomic (repo_dfd, path, json, error);
}

gboolean
dfi_gen_index_lists (int repo_dfd, const char *from, const char *to, GBytes *superblock)
{
  g_autofree char *path = g_strdup_printf ("deltafetch/v1/indexes/%s.index", to);
  g_autoptr (GBytes) b = dfi_read_file_bounded (repo_dfd, path, DF_SUPERBLOCK_MAX, G_MAXUINT64, "index", NULL);
  if (b == NULL)
    return FALSE;
  g_autoptr (GVariant) v = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE ("a{s(ayt)}"), b, FALSE));
  g_autoptr (GVariant) e = g_variant_lookup_value (v, from ? from : "", G_VARIANT_TYPE ("(ayt)"));
  if (e == NULL || superblock == NULL)
    return e != NULL;
  g_autoptr (GVariant) sha = g_variant_get_child_value (e, 0);
  guint64 size;
  g_variant_get_child (e, 1, "t", &size);
  guint8 want[DF_SHA256_LEN];
  dfi_sha256 (g_bytes_get_data (superblock, NULL), g_bytes_get_size (superblock), want);
  return g_variant_get_size (sha) == DF_SHA256_LEN && memcmp (g_variant_get_data (sha), want, DF_SHA256_LEN) == 0
         && GUINT64_FROM_LE (size) == g_bytes_get_size (superblock);
}

gboolean
dfi_gen_stats_check_keys (int repo_dfd, const char *to, GPtrArray *signers, GError **error)
{
  g_autofree char *sig_path = g_strdup_printf ("deltafetch/v1/stats/%s.json.sig", to);
  if ((signers == NULL || signers->len == 0) && faccessat (repo_dfd, sig_path, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT,
                      "the stats file of %.12s is signed and would need signing again: give the key (--sign); "
                      "nothing was changed",
                      to);
  return TRUE;
}

gboolean
dfi_gen_index_set (int repo_dfd, const char *from, const char *to, GBytes *superblock, GPtrArray *signers,
                   GError **error)
{
  gboolean left;
  return update_index (repo_dfd, from, to, superblock, &left, error) && update_stats (repo_dfd, to, signers, error);
}

gboolean
dfi_gen_index_remove (int repo_dfd, const char *from, const char *to, GPtrArray *signers, GError **error)
{
  gboolean left;
  if (!update_index (repo_dfd, from, to, NULL, &left, error))
    return FALSE;
  if (left)
    return update_stats (repo_dfd, to, signers, error);
  g_autofree char *path = g_strdup_printf ("deltafetch/v1/stats/%s.json", to);
  g_autofree char *sig_path = g_strconcat (path, ".sig", NULL);
  if ((unlinkat (repo_dfd, sig_path, 0) < 0 && errno != ENOENT)
      || (unlinkat (repo_dfd, path, 0) < 0 && errno != ENOENT))
    return dfi_throw_errno (error, errno, "removing %s", path);
  return TRUE;
}

/* ---------------------------------------------------------------------- */
/* The superblock                                                          */

static int
dfi_u32_cmp (const void *a, const void *b)
{
  guint32 x = *(const guint32 *)a, y = *(const guint32 *)b;
  return x < y ? -1 : x > y;
}

/* Format 3 fields of the rebuild parts: the content parts writing the
 * objects their programs read, the libraries and memory they need; and
 * the generator's findings as informative metadata. */
static void
finish_rebuild_parts (DfGenerator *g, DfSuperblock *sb, GVariantBuilder *meta)
{
  if (g->rebuilds == NULL || g_hash_table_size (g->rebuilds) == 0)
    return;
  /* Which content parts write each source object. */
  g_autoptr (GHashTable) writers = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify)g_array_unref);
  GHashTableIter it;
  gpointer key, value;
  g_hash_table_iter_init (&it, g->rebuilds);
  while (g_hash_table_iter_next (&it, &key, &value))
    {
      DfGenRebuildResult *r = value;
      for (guint i = 0; r->transformed && i < r->sources->len; i++)
        if (!g_hash_table_contains (writers, r->sources->pdata[i]))
          g_hash_table_insert (writers, r->sources->pdata[i], g_array_new (FALSE, FALSE, sizeof (guint32)));
    }
  for (guint i = 0; i < sb->n_parts; i++)
    {
      const DfPart *p = &sb->parts[i];
      if (p->kind != DF_PART_KIND_CONTENT)
        continue;
      for (guint j = 0; j < p->n_entries; j++)
        {
          char hex[65];
          dfi_hex (p->entries[j].checksum, hex);
          GArray *a = g_hash_table_lookup (writers, hex);
          guint32 idx = i;
          if (a && (a->len == 0 || g_array_index (a, guint32, a->len - 1) != idx))
            g_array_append_val (a, idx);
        }
    }
  for (guint i = 0; i < sb->n_parts; i++)
    {
      DfPart *p = &sb->parts[i];
      if (p->kind != DF_PART_KIND_REBUILD)
        continue;
      g_autoptr (GHashTable) deps = g_hash_table_new (NULL, NULL);
      g_autoptr (GPtrArray) libs = g_ptr_array_new ();
      for (guint j = 0; j < p->n_entries; j++)
        {
          char hex[65];
          dfi_hex (p->entries[j].checksum, hex);
          DfGenRebuildResult *r = g_hash_table_lookup (g->rebuilds, hex);
          g_assert (r && r->transformed);
          p->rebuild_memory = MAX (p->rebuild_memory, r->memory);
          for (guint k = 0; r->libraries[k]; k++)
            if (!g_ptr_array_find_with_equal_func (libs, r->libraries[k], g_str_equal, NULL))
              g_ptr_array_add (libs, r->libraries[k]);
          for (guint k = 0; k < r->sources->len; k++)
            {
              GArray *a = g_hash_table_lookup (writers, r->sources->pdata[k]);
              for (guint m = 0; a && m < a->len; m++)
                g_hash_table_add (deps, GUINT_TO_POINTER (g_array_index (a, guint32, m) + 1));
            }
        }
      p->n_deps = g_hash_table_size (deps);
      p->deps = g_new (guint32, p->n_deps + 1);
      guint n = 0;
      g_hash_table_iter_init (&it, deps);
      while (g_hash_table_iter_next (&it, &key, NULL))
        p->deps[n++] = GPOINTER_TO_UINT (key) - 1;
      qsort (p->deps, p->n_deps, sizeof (guint32), dfi_u32_cmp);
      p->libraries = g_new0 (char *, libs->len + 1);
      for (guint k = 0; k < libs->len; k++)
        p->libraries[k] = g_strdup (libs->pdata[k]);
    }
  GVariantBuilder found;
  g_variant_builder_init (&found, G_VARIANT_TYPE ("a(sbs)"));
  g_autoptr (GList) keys = g_list_sort (g_hash_table_get_keys (g->rebuilds), (GCompareFunc)strcmp);
  for (GList *l = keys; l; l = l->next)
    {
      DfGenRebuildResult *r = g_hash_table_lookup (g->rebuilds, l->data);
      g_variant_builder_add (&found, "(sbs)", (const char *)l->data, r->transformed, r->description);
    }
  g_variant_builder_add (meta, "{sv}", "deltafetch.rebuild.found", g_variant_builder_end (&found));
}

gboolean
dfi_gen_output_open (DfGenerator *g, const char *from, const char *to, GError **error)
{
  const DfGenerateOptions *opts = g->opts;
  int repo_dfd = ostree_repo_get_dfd (g->repo);
  /* In the repository: a temporary sibling renamed into place at the end,
   * so a reader never sees a half-written delta. An out_dir is written in
   * place (it may be a mount point), the superblock last; a failed run
   * removes what it wrote there (dfi_gen_output_close()). */
  if (opts->out_dir)
    {
      g->out_created = !g_file_test (opts->out_dir, G_FILE_TEST_EXISTS);
      if (g_mkdir_with_parents (opts->out_dir, 0755) < 0)
        return dfi_throw_errno (error, errno, "creating %s", opts->out_dir);
      g_autofree char *sbpath = g_build_filename (opts->out_dir, "superblock", NULL);
      if (g_file_test (sbpath, G_FILE_TEST_EXISTS))
        return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "%s already holds a delta", opts->out_dir);
      g->out_dfd = open (opts->out_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (g->out_dfd < 0)
        return dfi_throw_errno (error, errno, "opening %s", opts->out_dir);
    }
  else
    {
      g->final_rel = dfi_native_delta_relpath (from, to);
      g->tmp_rel = g_strdup_printf ("%s.tmp", g->final_rel);
      if (!dfi_rm_rf_at (repo_dfd, g->tmp_rel, error) || !dfi_mkdir_p_at (repo_dfd, g->tmp_rel, error))
        return FALSE;
      g->out_dfd = openat (repo_dfd, g->tmp_rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (g->out_dfd < 0)
        return dfi_throw_errno (error, errno, "opening %s", g->tmp_rel);
    }
  return TRUE;
}

/* The superblock of the parts written (taken from g->parts) for the delta
 * from @from (NULL: from scratch) to @to, whose commit object is @commitv. */
static DfSuperblock *
build_superblock (DfGenerator *g, const char *from, const char *to, GVariant *commitv, GCancellable *cancellable,
                  GError **error)
{
  g_autoptr (DfSuperblock) sb = dfi_superblock_new ();
  sb->has_from = from != NULL;
  if (from)
    ostree_checksum_inplace_to_bytes (from, sb->from);
  ostree_checksum_inplace_to_bytes (to, sb->to);
  sb->commit = g_variant_get_data_as_bytes (commitv);
  g_autoptr (GVariant) detached = NULL;
  if (!ostree_repo_read_commit_detached_metadata (g->repo, to, &detached, cancellable, error))
    return NULL;
  if (detached)
    {
      g_autoptr (GVariant) dn = g_variant_get_normal_form (detached);
      sb->commitmeta = g_variant_get_data_as_bytes (dn);
    }
  else
    sb->commitmeta = g_bytes_new (NULL, 0);
  sb->n_parts = g->parts->len;
  sb->parts = (DfPart *)g_array_free (g->parts, FALSE);
  g->parts = NULL;
  GVariantBuilder mb;
  g_variant_builder_init (&mb, G_VARIANT_TYPE ("a{sv}"));
  g_variant_builder_add (&mb, "{sv}", "deltafetch.level", g_variant_new_int32 (g->opts->level));
  g_variant_builder_add (&mb, "{sv}", "deltafetch.part-size", g_variant_new_uint64 (g->opts->part_size));
  g_variant_builder_add (&mb, "{sv}", "deltafetch.variants", g_variant_new_uint32 (g->opts->variants));
  finish_rebuild_parts (g, sb, &mb);
  sb->metadata = g_variant_ref_sink (g_variant_builder_end (&mb));
  return g_steal_pointer (&sb);
}

/* The superblock file's bytes: @sb serialized, checked, and signed by
 * each of @signers when given. */
static GBytes *
superblock_file (DfSuperblock *sb, GPtrArray *signers, GError **error)
{
  g_autoptr (GBytes) bytes = dfi_superblock_serialize (sb);
  /* Never publish a delta apply would refuse: the superblock is read back
   * with apply's own parser (its limits: file, body and entries). */
  {
    g_autoptr (GError) check = NULL;
    g_autoptr (DfSuperblock) back = dfi_superblock_parse (bytes, &check);
    if (back == NULL)
      {
        dfi_throw (error, DF_ERROR_FAILED, "the delta would break the format's limits: %s", check->message);
        return NULL;
      }
  }
  if (signers && signers->len > 0)
    return dfi_signers_wrap (signers, bytes, error);
  return g_steal_pointer (&bytes);
}

gboolean
dfi_gen_publish (DfGenerator *g, const char *from, const char *to, GVariant *commitv, GPtrArray *signers,
                 char **out_dir_path, GCancellable *cancellable, GError **error)
{
  int repo_dfd = ostree_repo_get_dfd (g->repo);
  g_autoptr (DfSuperblock) sb = build_superblock (g, from, to, commitv, cancellable, error);
  if (sb == NULL)
    return FALSE;
  g_autoptr (GBytes) bytes = superblock_file (sb, signers, error);
  if (bytes == NULL)
    return FALSE;
  if (!dfi_write_file_atomic (g->out_dfd, "superblock", bytes, error))
    return FALSE;
  if (fsync (g->out_dfd) < 0)
    return dfi_throw_errno (error, errno, "syncing the delta directory");
  if (g->final_rel)
    {
      if (!dfi_rm_rf_at (repo_dfd, g->final_rel, error))
        return FALSE;
      if (renameat (repo_dfd, g->tmp_rel, repo_dfd, g->final_rel) < 0)
        return dfi_throw_errno (error, errno, "renaming %s", g->tmp_rel);
      g_clear_pointer (&g->tmp_rel, g_free);
      gboolean left;
      if (!update_index (repo_dfd, from, to, bytes, &left, error) || !update_stats (repo_dfd, to, signers, error))
        return FALSE;
    }
  g->published = TRUE;
  if (out_dir_path)
    {
      g_autofree char *repo_path = g_file_get_path (ostree_repo_get_path (g->repo));
      *out_dir_path = g->final_rel ? g_build_filename (repo_path, g->final_rel, NULL) : g_strdup (g->opts->out_dir);
    }
  return TRUE;
}

void
dfi_gen_output_close (DfGenerator *g)
{
  if (g->tmp_rel)
    dfi_rm_rf_at (ostree_repo_get_dfd (g->repo), g->tmp_rel, NULL);
  if (g->opts->out_dir && g->out_dfd >= 0 && !g->published)
    {
      /* The parts are named by their index; the superblock was not there
       * before (dfi_gen_output_open() checked). */
      for (guint i = 0; g->parts && i < g->parts->len; i++)
        {
          char name[16];
          g_snprintf (name, sizeof name, "%u", i);
          unlinkat (g->out_dfd, name, 0);
        }
      unlinkat (g->out_dfd, "superblock", 0);
      if (g->out_created)
        rmdir (g->opts->out_dir);
    }
  if (g->out_dfd >= 0)
    close (g->out_dfd);
  g->out_dfd = -1;
  g_clear_pointer (&g->tmp_rel, g_free);
  g_clear_pointer (&g->final_rel, g_free);
}
