#include <json-glib/json-glib.h>
#include <stdio.h>

#include "df-cli.h"

static const char *count_names[DF_COUNT_LAST] = {
  [DF_COUNT_METADATA] = "metadata-objects",
  [DF_COUNT_CONTENT_RAW] = "content-raw",
  [DF_COUNT_CONTENT_PATCH] = "content-patch",
  [DF_COUNT_CONTENT_SPLIT] = "content-split",
  [DF_COUNT_CHUNKS] = "entries",
  [DF_COUNT_FALLBACK] = "fallback-objects",
  [DF_COUNT_CONTENT_BYTES] = "content-bytes",
  [DF_COUNT_REBUILD_FOUND] = "compressed-found",
  [DF_COUNT_CONTENT_REBUILT] = "content-rebuilt",
  [DF_COUNT_REBUILD_BYTES] = "rebuild-bytes",
  [DF_COUNT_ALTERNATIVE_BYTES] = "alternative-bytes",
};

int
df_cli_show (int argc, char **argv)
{
  gboolean json = FALSE;
  g_autofree char *repo_path = NULL;
  GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
    { "repo", 0, 0, G_OPTION_ARG_FILENAME, &repo_path,
      "DELTA may be a delta id of this repository (FROM-TO or TO, as deltafetch list prints; native first)", "REPO" },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("DELTA - describe a delta directory");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_description (ctx, df_cli_exit_codes);
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return df_cli_usage (ctx, "%s", error->message);
  if (argc != 2)
    return df_cli_usage (ctx, "expected exactly one DELTA directory");
  g_autofree char *dir = g_strdup (argv[1]);
  if (repo_path && !g_file_test (dir, G_FILE_TEST_IS_DIR))
    {
      g_autoptr (OstreeRepo) repo = df_cli_open_repo (repo_path, &error);
      g_autoptr (GPtrArray) deltas = NULL;
      if (repo == NULL || !df_list_deltas (repo, &deltas, NULL, &error))
        return df_cli_fail (error);
      g_clear_pointer (&dir, g_free);
      for (guint i = 0; i < deltas->len && dir == NULL; i++)
        {
          DfRepoDelta *d = deltas->pdata[i];
          if (strcmp (d->id, argv[1]) == 0) /* native sorts first */
            dir = g_strdup (d->dir);
        }
      if (dir == NULL)
        {
          g_set_error (&error, DF_ERROR, DF_ERROR_NOT_FOUND, "%s has no delta %s", repo_path, argv[1]);
          return df_cli_fail (error);
        }
    }
  g_autoptr (DfDeltaInfo) info = df_delta_info_load (dir, &error);
  if (info == NULL)
    return df_cli_fail (error);
  const char *from = df_delta_info_get_from (info);
  guint n = df_delta_info_get_n_parts (info);
  if (json)
    {
      g_autoptr (JsonBuilder) b = json_builder_new ();
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "format");
      json_builder_add_string_value (b, df_delta_info_get_format (info));
      json_builder_set_member_name (b, "signed");
      json_builder_add_boolean_value (b, df_delta_info_is_signed (info));
      json_builder_set_member_name (b, "version");
      json_builder_add_int_value (b, df_delta_info_get_format_version (info));
      json_builder_set_member_name (b, "from");
      if (from)
        json_builder_add_string_value (b, from);
      else
        json_builder_add_null_value (b);
      json_builder_set_member_name (b, "to");
      json_builder_add_string_value (b, df_delta_info_get_to (info));
      json_builder_set_member_name (b, "superblock-size");
      json_builder_add_int_value (b, df_delta_info_get_superblock_size (info));
      json_builder_set_member_name (b, "compressed-size");
      json_builder_add_int_value (b, df_delta_info_get_total_compressed_size (info));
      json_builder_set_member_name (b, "uncompressed-size");
      json_builder_add_int_value (b, df_delta_info_get_total_uncompressed_size (info));
      json_builder_set_member_name (b, "counts");
      json_builder_begin_object (b);
      for (guint c = 0; c < DF_COUNT_LAST; c++)
        {
          json_builder_set_member_name (b, count_names[c]);
          json_builder_add_int_value (b, df_delta_info_get_count (info, c));
        }
      json_builder_end_object (b);
      json_builder_set_member_name (b, "parts");
      json_builder_begin_array (b);
      for (guint i = 0; i < n; i++)
        {
          json_builder_begin_object (b);
          json_builder_set_member_name (b, "compressed-size");
          json_builder_add_int_value (b, df_delta_info_get_part_compressed_size (info, i));
          json_builder_set_member_name (b, "uncompressed-size");
          json_builder_add_int_value (b, df_delta_info_get_part_uncompressed_size (info, i));
          json_builder_set_member_name (b, "entries");
          json_builder_add_int_value (b, df_delta_info_get_part_n_entries (info, i));
          json_builder_set_member_name (b, "kind");
          json_builder_add_string_value (b, df_delta_info_part_is_rebuild (info, i)           ? "rebuild"
                                            : df_delta_info_part_is_alternative (info, i) ? "alternative"
                                                                                          : "normal");
          guint nd;
          const guint *deps = df_delta_info_part_get_deps (info, i, &nd);
          if (nd > 0)
            {
              json_builder_set_member_name (b, "depends-on");
              json_builder_begin_array (b);
              for (guint k = 0; k < nd; k++)
                json_builder_add_int_value (b, deps[k]);
              json_builder_end_array (b);
            }
          json_builder_end_object (b);
        }
      json_builder_end_array (b);
      json_builder_set_member_name (b, "rebuild-notes");
      json_builder_begin_array (b);
      for (const char *const *note = df_delta_info_get_rebuild_notes (info); *note; note++)
        json_builder_add_string_value (b, *note);
      json_builder_end_array (b);
      json_builder_end_object (b);
      g_autoptr (JsonGenerator) gen = json_generator_new ();
      g_autoptr (JsonNode) root = json_builder_get_root (b);
      json_generator_set_root (gen, root);
      json_generator_set_pretty (gen, TRUE);
      g_autofree char *text = json_generator_to_data (gen, NULL);
      printf ("%s\n", text);
      return 0;
    }
  g_autofree char *csize = df_cli_format_size (df_delta_info_get_total_compressed_size (info));
  g_autofree char *usize = df_cli_format_size (df_delta_info_get_total_uncompressed_size (info));
  g_autofree char *cbytes = df_cli_format_size (df_delta_info_get_count (info, DF_COUNT_CONTENT_BYTES));
  gboolean stock = g_str_equal (df_delta_info_get_format (info), "ostree");
  if (stock)
    printf ("Format:      stock OSTree static delta%s\n", df_delta_info_is_signed (info) ? ", signed" : "");
  else
    printf ("Format:      deltafetch native v%u%s\n", df_delta_info_get_format_version (info),
            df_delta_info_is_signed (info) ? ", signed" : "");
  printf ("From:        %s\n", from ? from : "(empty: from scratch)");
  printf ("To:          %s\n", df_delta_info_get_to (info));
  printf ("Parts:       %u, %s compressed, %s %s\n", n, csize, usize, stock ? "of objects" : "uncompressed");
  printf ("Superblock:  %" G_GUINT64_FORMAT " bytes\n", df_delta_info_get_superblock_size (info));
  if (stock)
    printf ("Objects:     %" G_GUINT64_FORMAT " metadata, %" G_GUINT64_FORMAT " files, %" G_GUINT64_FORMAT
            " left to fetch one by one (fallbacks)\n",
            df_delta_info_get_count (info, DF_COUNT_METADATA), df_delta_info_get_count (info, DF_COUNT_CONTENT_RAW),
            df_delta_info_get_count (info, DF_COUNT_FALLBACK));
  else
    printf ("Objects:     %" G_GUINT64_FORMAT " metadata, %" G_GUINT64_FORMAT " content raw, %" G_GUINT64_FORMAT
            " content patched, %" G_GUINT64_FORMAT " content split\n",
            df_delta_info_get_count (info, DF_COUNT_METADATA), df_delta_info_get_count (info, DF_COUNT_CONTENT_RAW),
            df_delta_info_get_count (info, DF_COUNT_CONTENT_PATCH),
            df_delta_info_get_count (info, DF_COUNT_CONTENT_SPLIT));
  if (!stock)
    printf ("Content:     %s in %" G_GUINT64_FORMAT " entries\n", cbytes,
            df_delta_info_get_count (info, DF_COUNT_CHUNKS));
  if (!stock)
    df_cli_print_rebuilds (info);
  for (guint i = 0; i < n; i++)
    {
      g_autofree char *pc = df_cli_format_size (df_delta_info_get_part_compressed_size (info, i));
      g_autofree char *pu = df_cli_format_size (df_delta_info_get_part_uncompressed_size (info, i));
      guint nd;
      const guint *deps = df_delta_info_part_get_deps (info, i, &nd);
      g_autoptr (GString) after = g_string_new (NULL);
      for (guint k = 0; k < nd; k++)
        g_string_append_printf (after, "%s%u", k ? "," : " after parts ", deps[k]);
      printf ("  part %-4u %10s  (%s %s, %u %s)%s%s\n", i, pc, pu, stock ? "of objects" : "uncompressed",
              df_delta_info_get_part_n_entries (info, i), stock ? "objects" : "entries",
              df_delta_info_part_is_rebuild (info, i)       ? " rebuild"
              : df_delta_info_part_is_alternative (info, i) ? " alternative"
                                                            : "",
              after->str);
    }
  return 0;
}
