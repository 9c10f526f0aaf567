#include <stdio.h>

#include "df-cli.h"

/* What generate made (or kept) of one delta; 0, else the exit code. */
static int
print_delta (DfGeneratedDelta *d, gboolean stock)
{
  if (d->skipped)
    {
      g_autofree char *size = df_cli_format_size (d->size);
      printf ("kept: %s (already published whole, %s, checked in %.1f s)\n", d->dir, size, d->seconds);
      return 0;
    }
  if (stock)
    {
      /* deltafetch show reads stock deltas too; the summary is its job. */
      printf ("stock delta: %s (%.1f s)\n", d->dir, d->seconds);
      return 0;
    }
  g_autoptr (GError) error = NULL;
  g_autoptr (DfDeltaInfo) info = df_delta_info_load (d->dir, &error);
  if (info == NULL)
    return df_cli_fail (error);
  g_autofree char *csize = df_cli_format_size (df_delta_info_get_total_compressed_size (info));
  g_autofree char *usize = df_cli_format_size (df_delta_info_get_count (info, DF_COUNT_CONTENT_BYTES));
  printf ("delta: %s\n", d->dir);
  printf ("from %s to %s\n", d->from ? d->from : "(empty)", d->to);
  printf ("%u parts, %s compressed, %s of new content, %.1f s\n", df_delta_info_get_n_parts (info), csize, usize,
          d->seconds);
  df_cli_print_rebuilds (info);
  if (d->analyses_reused == 1)
    printf ("Reused:      the analysis of 1 compressed object, from an earlier delta of this run\n");
  else if (d->analyses_reused > 1)
    printf ("Reused:      the analyses of %u compressed objects, from an earlier delta of this run\n",
            d->analyses_reused);
  return 0;
}

int
df_cli_generate (int argc, char **argv)
{
  g_autofree char *out_root = NULL;
  g_autofree char *repo_path = NULL, *to = NULL, *out = NULL, *part_size = NULL, *format = NULL, *variants = NULL;
  g_auto (GStrv) froms = NULL, signs = NULL, gpg_keys = NULL;
  g_autofree char *gpg_homedir = NULL;
  gboolean empty = FALSE, quiet = FALSE, force = FALSE;
  int jobs = 0, level = DF_DEFAULT_LEVEL, from_last = 0;
  GOptionEntry entries[] = {
    { "repo", 0, 0, G_OPTION_ARG_FILENAME, &repo_path, "Repository holding both commits (required)", "REPO" },
    { "from", 0, 0, G_OPTION_ARG_STRING_ARRAY, &froms, "Commit or ref the device has; repeat for a delta from each",
      "REV" },
    { "from-last", 0, 0, G_OPTION_ARG_INT, &from_last,
      "Also a delta from each of the N commits before --to in its history", "N" },
    { "empty", 0, 0, G_OPTION_ARG_NONE, &empty, "Make a from-scratch delta", NULL },
    { "force", 0, 0, G_OPTION_ARG_NONE, &force,
      "Make deltas again that are already published whole with these options and keys", NULL },
    { "to", 0, 0, G_OPTION_ARG_STRING, &to, "Commit or ref to produce (required)", "REV" },
    { "out", 0, 0, G_OPTION_ARG_FILENAME, &out, "Write the delta to DIR instead of inside REPO", "DIR" },
    { "out-root", 0, 0, G_OPTION_ARG_FILENAME, &out_root,
      "Fan-out: write each delta into DIR/ID/ without index (deltafetch index merges them)", "DIR" },
    { "jobs", 'j', 0, G_OPTION_ARG_INT, &jobs, "Worker threads (default: one per processor)", "N" },
    { "level", 0, 0, G_OPTION_ARG_INT, &level, "zstd level 1..19 (default 19)", "N" },
    { "part-size", 0, 0, G_OPTION_ARG_STRING, &part_size, "Largest uncompressed part, 1M..32M (default 8M)", "SIZE" },
    { "format", 0, 0, G_OPTION_ARG_STRING, &format,
      "native (default) or ostree: a stock static delta by libostree's generator, indexed for stock clients",
      "FORMAT" },
    { "sign", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &signs,
      "Sign the superblock with this ed25519 secret key (ostree sign format: base64 of seed + public key); "
      "repeat for one signature per key",
      "KEYFILE" },
    { "gpg-sign", 0, 0, G_OPTION_ARG_STRING_ARRAY, &gpg_keys,
      "GPG key id that signs the repository's summary when a stock delta changes it (repeatable)", "KEYID" },
    { "gpg-homedir", 0, 0, G_OPTION_ARG_FILENAME, &gpg_homedir, "GnuPG home directory for --gpg-sign", "DIR" },
    { "variants", 0, 0, G_OPTION_ARG_STRING, &variants,
      "both (default): compressed objects the device can rebuild from their content (initrds, .gz) are carried "
      "that way and also plainly in optional parts; transformed: rebuilt only; plain: nothing rebuilt (format 2)",
      "WHICH" },
    { "quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet, "Print only the delta's path", NULL },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- compute deltafetch deltas to one commit");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_summary (ctx,
                                "Computes a delta that turns commit FROM (or nothing, with --empty) into commit TO,\n"
                                "one for each --from, each of the --from-last commits and --empty, in one run.\n"
                                "Without --out each is stored in REPO under deltafetch/v1/deltas/ with an index under\n"
                                "deltafetch/v1/indexes/, paths stock ostree ignores. A delta already published whole,\n"
                                "with the same options and keys, is kept (\"kept\"), unless --force. The deltas of\n"
                                "one run share the walk of TO and its compressed objects' analyses (\"Reused:\").\n\n"
                                "Memory: per job about 160 MiB at the default level 19 (about 60 MiB at levels up to\n"
                                "12) plus two parts in flight; on a 650 MB OS update with 2 jobs, 350 MB peak for one\n"
                                "delta, 440 MB for three in one run.");
  g_autofree char *desc = g_strdup_printf ("%s", df_cli_exit_codes);
  g_option_context_set_description (ctx, desc);
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return df_cli_usage (ctx, "%s", error->message);
  if (argc > 1)
    return df_cli_usage (ctx, "unexpected argument '%s'", argv[1]);
  if (repo_path == NULL || to == NULL)
    return df_cli_usage (ctx, "--repo and --to are required");
  if (from_last < 0 || from_last > 1000)
    return df_cli_usage (ctx, "--from-last must be within 0..1000");
  if (froms == NULL && from_last == 0 && !empty)
    return df_cli_usage (ctx, "give --from, --from-last or --empty");
  if (jobs < 0)
    return df_cli_usage (ctx, "--jobs must not be negative");
  guint64 psize = DF_DEFAULT_PART_SIZE;
  if (part_size && !df_cli_parse_size (part_size, &psize))
    return df_cli_usage (ctx, "cannot parse --part-size '%s'", part_size);

  g_autoptr (OstreeRepo) repo = df_cli_open_repo (repo_path, &error);
  if (repo == NULL)
    return df_cli_fail (error);
  g_autoptr (DfGenerateOptions) opts = df_generate_options_new ();
  for (guint i = 0; froms && froms[i]; i++)
    df_generate_options_add_from (opts, froms[i]);
  df_generate_options_set_from_last (opts, from_last);
  df_generate_options_set_force (opts, force);
  df_generate_options_set_empty (opts, empty);
  df_generate_options_set_to (opts, to);
  df_generate_options_set_out_dir (opts, out);
  df_generate_options_set_out_root (opts, out_root);
  df_generate_options_set_jobs (opts, jobs);
  df_generate_options_set_level (opts, level);
  df_generate_options_set_part_size (opts, psize);
  for (guint i = 0; signs && signs[i]; i++)
    df_generate_options_add_sign_key (opts, signs[i]);
  for (guint i = 0; gpg_keys && gpg_keys[i]; i++)
    df_generate_options_add_summary_gpg_key (opts, gpg_keys[i]);
  df_generate_options_set_gpg_homedir (opts, gpg_homedir);
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
  g_autoptr (GPtrArray) deltas = NULL;
  gint64 start = g_get_monotonic_time ();
  if (!df_generate_many (repo, opts, &deltas, df_cli_cancellable, &error))
    return df_cli_fail (error);
  df_cli_progress_end ();
  guint made = 0;
  guint64 total = 0;
  for (guint i = 0; i < deltas->len; i++)
    {
      DfGeneratedDelta *d = deltas->pdata[i];
      made += !d->skipped;
      total += d->size;
      int rc = 0;
      if (quiet)
        printf ("%s\n", d->dir);
      else if ((rc = print_delta (d, format && strcmp (format, "ostree") == 0)) != 0)
        return rc;
    }
  if (!quiet && deltas->len > 1)
    {
      g_autofree char *tsize = df_cli_format_size (total);
      printf ("%u deltas to %.12s: %u made, %u kept, %s in all, %.1f s\n", deltas->len,
              ((DfGeneratedDelta *)deltas->pdata[0])->to, made, deltas->len - made, tsize,
              (g_get_monotonic_time () - start) / 1e6);
    }
  return 0;
}
