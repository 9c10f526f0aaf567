#include <stdio.h>

#include "df-cli.h"

int
df_cli_apply (int argc, char **argv)
{
  g_autofree char *repo_path = NULL, *commit = NULL, *ref = NULL, *memory = NULL;
  g_auto (GStrv) urls = NULL;
  int jobs = 0;
  gboolean quiet = FALSE;
  GOptionEntry entries[] = {
    { "repo", 0, 0, G_OPTION_ARG_FILENAME, &repo_path, "Repository to write into (required)", "REPO" },
    { "commit", 0, 0, G_OPTION_ARG_STRING, &commit, "Trusted checksum of the commit the delta must produce",
      "CHECKSUM" },
    { "ref", 0, 0, G_OPTION_ARG_STRING, &ref, "Point REF at the commit once it is verified and committed", "REF" },
    { "memory", 0, 0, G_OPTION_ARG_STRING, &memory, "Memory budget for in-flight buffers (default 64M)", "SIZE" },
    { "url", 0, 0, G_OPTION_ARG_STRING_ARRAY, &urls,
      "Stock delta: take the objects it leaves to be fetched one by one from this archive repository (repeat for "
      "mirrors), with the network options below",
      "URL" },
    { "jobs", 'j', 0, G_OPTION_ARG_INT, &jobs, "Most worker threads (default: one per processor)", "N" },
    { "quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet, "Print nothing on success", NULL },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("DELTA - apply a delta directory offline");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_auto (DfCliTrust) trust = { 0 };
  df_cli_add_trust_options (ctx, &trust);
  g_auto (DfCliNet) net = { 0 };
  df_cli_add_network_options (ctx, &net);
  g_option_context_set_summary (ctx,
                                "Writes the delta's to-commit into REPO (bare, bare-user or archive). Every part is\n"
                                "checked against its SHA-256 before it is decompressed, every object against its\n"
                                "checksum before it enters objects/, and with --commit every object must be\n"
                                "reachable from that commit. An interrupted apply resumes where it stopped.");
  g_option_context_set_description (ctx, df_cli_exit_codes);
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return df_cli_usage (ctx, "%s", error->message);
  if (argc != 2)
    return df_cli_usage (ctx, "expected exactly one DELTA directory");
  if (repo_path == NULL)
    return df_cli_usage (ctx, "--repo is required");
  if (jobs < 0)
    return df_cli_usage (ctx, "--jobs must not be negative");
  guint64 budget = DF_DEFAULT_MEMORY_BUDGET;
  if (memory && !df_cli_parse_size (memory, &budget))
    return df_cli_usage (ctx, "cannot parse --memory '%s'", memory);

  g_autoptr (OstreeRepo) repo = df_cli_open_repo (repo_path, &error);
  if (repo == NULL)
    return df_cli_fail (error);
  /* With --url, a fetch from the delta directory: only what the delta
   * leaves to be fetched comes from the servers, with every network
   * option. */
  g_autoptr (DfFetchOptions) opts = df_fetch_options_new ();
  df_fetch_options_set_delta_dir (opts, argv[1]);
  df_fetch_options_set_commit (opts, commit);
  df_fetch_options_set_ref (opts, ref);
  if (memory)
    df_fetch_options_set_memory_budget (opts, budget);
  df_fetch_options_set_jobs (opts, jobs);
  g_autofree char *trust_msg = NULL;
  if (!df_cli_trust_set (&trust, opts, &trust_msg))
    return df_cli_usage (ctx, "%s", trust_msg);
  for (guint i = 0; urls && urls[i]; i++)
    df_fetch_options_add_url (opts, urls[i]);
  g_autofree char *msg = NULL;
  if (!df_cli_net_apply (&net, opts, &msg))
    return df_cli_usage (ctx, "%s", msg);
  if (!quiet)
    df_fetch_options_set_progress (opts, df_cli_progress, NULL);
  DfFetchResult fres;
  gint64 start = g_get_monotonic_time ();
  if (!df_fetch (repo, opts, &fres, df_cli_cancellable, &error))
    return df_cli_fail (error);
  const DfApplyResult res = fres.apply;
  df_cli_progress_end ();
  if (quiet)
    return 0;
  g_autofree char *bytes = df_cli_format_size (res.content_bytes);
  printf ("commit %s %s\n", res.commit,
          res.commit_trusted ? "(matches --commit)" : "(trusted from the delta itself: no --commit given)");
  df_cli_print_signature (res.signature_verified);
  g_autofree char *unused
      = res.parts_unused ? g_strdup_printf (", %u of the other variant not needed", res.parts_unused) : g_strdup ("");
  printf ("%u parts applied, %u already present%s, %" G_GUINT64_FORMAT " objects and %s written, %u workers, %.2f s\n",
          res.parts_applied, res.parts_skipped, unused, res.objects_written, bytes, res.workers,
          (g_get_monotonic_time () - start) / 1e6);
  if (fres.bytes_downloaded > 0)
    {
      g_autofree char *dl = df_cli_format_size (fres.bytes_downloaded);
      printf ("%s of fallback objects downloaded\n", dl);
    }
  df_cli_print_rebuild_result (&res);
  if (ref)
    printf ("ref %s -> %s\n", ref, res.commit);
  return 0;
}
