#include <stdio.h>

#include "df-cli.h"

int
df_cli_generate (int argc, char **argv)
{
  g_autofree char *repo_path = NULL, *from = NULL, *to = NULL, *out = NULL, *part_size = NULL, *sign = NULL,
                  *format = NULL, *variants = NULL;
  gboolean empty = FALSE, quiet = FALSE;
  int jobs = 0, level = DF_DEFAULT_LEVEL;
  GOptionEntry entries[] = {
    { "repo", 0, 0, G_OPTION_ARG_FILENAME, &repo_path, "Repository holding both commits (required)", "REPO" },
    { "from", 0, 0, G_OPTION_ARG_STRING, &from, "Commit or ref the device has", "REV" },
    { "empty", 0, 0, G_OPTION_ARG_NONE, &empty, "Make a from-scratch delta", NULL },
    { "to", 0, 0, G_OPTION_ARG_STRING, &to, "Commit or ref to produce (required)", "REV" },
    { "out", 0, 0, G_OPTION_ARG_FILENAME, &out, "Write the delta to DIR instead of inside REPO", "DIR" },
    { "jobs", 'j', 0, G_OPTION_ARG_INT, &jobs, "Worker threads (default: one per processor)", "N" },
    { "level", 0, 0, G_OPTION_ARG_INT, &level, "zstd level 1..19 (default 19)", "N" },
    { "part-size", 0, 0, G_OPTION_ARG_STRING, &part_size, "Largest uncompressed part, 1M..32M (default 8M)", "SIZE" },
    { "format", 0, 0, G_OPTION_ARG_STRING, &format,
      "native (default) or ostree: a stock static delta by libostree's generator, indexed for stock clients",
      "FORMAT" },
    { "sign", 0, 0, G_OPTION_ARG_FILENAME, &sign,
      "Sign the superblock with this ed25519 secret key (ostree sign format: base64 of seed + public key)", "KEYFILE" },
    { "variants", 0, 0, G_OPTION_ARG_STRING, &variants,
      "both (default): compressed objects the device can rebuild from their content (initrds, .gz) are carried "
      "that way and also plainly in optional parts; transformed: rebuilt only; plain: nothing rebuilt (format 2)",
      "WHICH" },
    { "quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet, "Print only the delta's path", NULL },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- compute a native deltafetch delta");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_summary (ctx,
                                "Computes a delta that turns commit FROM (or nothing, with --empty) into commit TO.\n"
                                "Without --out it is stored in REPO under deltafetch/v1/deltas/ with an index under\n"
                                "deltafetch/v1/indexes/, paths stock ostree ignores.\n\n"
                                "Memory: per job about 160 MiB at the default level 19 (about 60 MiB at levels up to\n"
                                "12) plus two parts in flight; 360 MB peak for 2 jobs on a 650 MB OS update.");
  g_autofree char *desc = g_strdup_printf ("%s", df_cli_exit_codes);
  g_option_context_set_description (ctx, desc);
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return df_cli_usage (ctx, "%s", error->message);
  if (argc > 1)
    return df_cli_usage (ctx, "unexpected argument '%s'", argv[1]);
  if (repo_path == NULL || to == NULL)
    return df_cli_usage (ctx, "--repo and --to are required");
  if ((from == NULL) == !empty)
    return df_cli_usage (ctx, "give exactly one of --from or --empty");
  if (jobs < 0)
    return df_cli_usage (ctx, "--jobs must not be negative");
  guint64 psize = DF_DEFAULT_PART_SIZE;
  if (part_size && !df_cli_parse_size (part_size, &psize))
    return df_cli_usage (ctx, "cannot parse --part-size '%s'", part_size);

  g_autoptr (OstreeRepo) repo = df_cli_open_repo (repo_path, &error);
  if (repo == NULL)
    return df_cli_fail (error);
  g_autoptr (DfGenerateOptions) opts = df_generate_options_new ();
  df_generate_options_set_from (opts, from);
  df_generate_options_set_empty (opts, empty);
  df_generate_options_set_to (opts, to);
  df_generate_options_set_out_dir (opts, out);
  df_generate_options_set_jobs (opts, jobs);
  df_generate_options_set_level (opts, level);
  df_generate_options_set_part_size (opts, psize);
  df_generate_options_set_sign_key (opts, sign);
  if (format && strcmp (format, "ostree") == 0)
    df_generate_options_set_format (opts, DF_DELTA_FORMAT_OSTREE);
  else if (format && strcmp (format, "native") != 0)
    return df_cli_usage (ctx, "--format must be native or ostree, not '%s'", format);
  if (variants && strcmp (variants, "transformed") == 0)
    df_generate_options_set_variants (opts, DF_VARIANTS_TRANSFORMED);
  else if (variants && strcmp (variants, "plain") == 0)
    df_generate_options_set_variants (opts, DF_VARIANTS_PLAIN);
  else if (variants && strcmp (variants, "both") != 0)
    return df_cli_usage (ctx, "--variants must be both, transformed or plain, not '%s'", variants);
  if (!quiet)
    df_generate_options_set_progress (opts, df_cli_progress, NULL);
  g_autofree char *dir = NULL;
  gint64 start = g_get_monotonic_time ();
  if (!df_generate (repo, opts, &dir, df_cli_cancellable, &error))
    return df_cli_fail (error);
  df_cli_progress_end ();
  if (quiet)
    {
      printf ("%s\n", dir);
      return 0;
    }
  if (format && strcmp (format, "ostree") == 0)
    {
      /* deltafetch does not read stock deltas yet; ostree static-delta show does. */
      printf ("stock delta: %s (%.1f s)\n", dir, (g_get_monotonic_time () - start) / 1e6);
      return 0;
    }
  g_autoptr (DfDeltaInfo) info = df_delta_info_load (dir, &error);
  if (info == NULL)
    return df_cli_fail (error);
  g_autofree char *csize = df_cli_format_size (df_delta_info_get_total_compressed_size (info));
  g_autofree char *usize = df_cli_format_size (df_delta_info_get_count (info, DF_COUNT_CONTENT_BYTES));
  printf ("delta: %s\n", dir);
  printf ("from %s to %s\n", df_delta_info_get_from (info) ? df_delta_info_get_from (info) : "(empty)",
          df_delta_info_get_to (info));
  printf ("%u parts, %s compressed, %s of new content, %.1f s\n", df_delta_info_get_n_parts (info), csize, usize,
          (g_get_monotonic_time () - start) / 1e6);
  df_cli_print_rebuilds (info);
  return 0;
}
