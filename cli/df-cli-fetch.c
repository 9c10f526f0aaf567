#include <json-glib/json-glib.h>
#include <stdio.h>
#include <unistd.h>

#include "df-cli.h"

static const char *path_names[] = { "", "present", "delta", "scratch", "pull", "stock-delta", "stock-scratch" };

typedef struct
{
  gboolean json, quiet, tty;
  gint64 start;
} FetchUi;

/* One JSON object per line on stdout; with @seconds >= 0, a last member
 * "seconds" to the millisecond (json-glib writes doubles with 17 digits:
 * 0.147 would be 0.14699999999999999). */
static void
json_line_seconds (JsonBuilder *b, double seconds)
{
  json_builder_end_object (b);
  g_autoptr (JsonGenerator) g = json_generator_new ();
  g_autoptr (JsonNode) root = json_builder_get_root (b);
  json_generator_set_root (g, root);
  g_autofree char *s = json_generator_to_data (g, NULL);
  if (seconds >= 0)
    {
      gint64 ms = (gint64)(seconds * 1000 + 0.5);
      s[strlen (s) - 1] = '\0'; /* the closing brace */
      printf ("%s,\"seconds\":%" G_GINT64_FORMAT ".%03d}\n", s, ms / 1000, (int)(ms % 1000));
    }
  else
    printf ("%s\n", s);
  fflush (stdout);
}

static void
json_line (JsonBuilder *b)
{
  json_line_seconds (b, -1);
}

static void
add_int (JsonBuilder *b, const char *name, gint64 v)
{
  json_builder_set_member_name (b, name);
  json_builder_add_int_value (b, v);
}

static void
add_str (JsonBuilder *b, const char *name, const char *v)
{
  json_builder_set_member_name (b, name);
  if (v)
    json_builder_add_string_value (b, v);
  else
    json_builder_add_null_value (b);
}

/* The version of the JSON lines' schema (docs/json-events.md): raised when
 * a field changes meaning or goes; new fields and events do not raise it. */
#define JSON_SCHEMA 2

/* An event's line: its name, the schema and the time (UTC, RFC 3339, to
 * the millisecond), then its fields. */
static JsonBuilder *
event_builder (const char *name, gint64 time)
{
  JsonBuilder *b = json_builder_new ();
  json_builder_begin_object (b);
  add_str (b, "event", name);
  add_int (b, "schema", JSON_SCHEMA);
  g_autoptr (GDateTime) now = g_date_time_new_from_unix_utc (time / G_USEC_PER_SEC);
  g_autofree char *t = g_date_time_format (now, "%Y-%m-%dT%H:%M:%S");
  g_autofree char *ts = g_strdup_printf ("%s.%03dZ", t, (int)(time % G_USEC_PER_SEC / 1000));
  add_str (b, "time", ts);
  return b;
}

static void
on_event (const DfFetchEvent *ev, gpointer data)
{
  FetchUi *ui = data;
  if (ui->json)
    {
      static const char *names[] = { "", "start", "progress", "retry", "mirror-switch", "waiting", "rebuild-fallback" };
      static const char *phases[] = { "", "discover", "download", "apply", "commit" };
      g_autoptr (JsonBuilder) b = event_builder (names[ev->type], ev->time);
      add_str (b, "phase", phases[ev->phase]);
      if (ev->type == DF_FETCH_EVENT_START)
        add_str (b, "path", path_names[ev->path]);
      if (ev->url)
        add_str (b, "url", ev->url);
      if (ev->message)
        add_str (b, "message", ev->message);
      add_int (b, "bytes_done", ev->bytes_done);
      add_int (b, "bytes_total", ev->bytes_total);
      add_int (b, "bytes_downloaded", ev->bytes_downloaded);
      add_int (b, "bytes_reused", ev->bytes_reused);
      add_int (b, "parts_applied", ev->parts_applied);
      add_int (b, "parts_total", ev->parts_total);
      add_int (b, "rate", (gint64)(ev->rate + 0.5)); /* bytes a second */
      json_line (b);
      return;
    }
  /* Notes on the way go to a terminal only: a log gets the one-line result. */
  if (ui->quiet || !ui->tty)
    return;
  switch (ev->type)
    {
    case DF_FETCH_EVENT_START:
      if (ev->path == DF_FETCH_PATH_PULL)
        fprintf (stderr, "no native delta on the server: falling back to libostree's pull from %s\n", ev->url);
      break;
    case DF_FETCH_EVENT_RETRY:
      fprintf (stderr, "\r\033[Kretrying: %s\n", ev->message);
      break;
    case DF_FETCH_EVENT_MIRROR_SWITCH:
      fprintf (stderr, "\r\033[Kmirror %s demoted: %s\n", ev->url, ev->message);
      break;
    case DF_FETCH_EVENT_WAITING:
      fprintf (stderr, "\r\033[K%s\n", ev->message);
      break;
    case DF_FETCH_EVENT_REBUILD_FALLBACK:
      fprintf (stderr, "\r\033[Ka rebuild failed (%s): fetching its plain encoding\n", ev->message);
      break;
    case DF_FETCH_EVENT_PROGRESS:
      {
        g_autofree char *done = df_cli_format_size (ev->bytes_done);
        g_autofree char *total = df_cli_format_size (ev->bytes_total);
        g_autofree char *rate = df_cli_format_size ((guint64)ev->rate);
        char eta[32] = "";
        if (ev->rate > 0 && ev->bytes_total > ev->bytes_done)
          g_snprintf (eta, sizeof eta, ", ETA %.0f s", (ev->bytes_total - ev->bytes_done) / ev->rate);
        fprintf (stderr, "\r\033[K%s of %s at %s/s%s, %u/%u parts applied", done, total, rate, eta, ev->parts_applied,
                 ev->parts_total);
      }
      break;
    }
}

static void
add_bool (JsonBuilder *b, const char *name, gboolean v)
{
  json_builder_set_member_name (b, name);
  json_builder_add_boolean_value (b, v);
}

/* How the commit came (or would come) in, for people. */
static const char *path_text[] = { "",
                                   "already in the repository",
                                   "native delta from %s",
                                   "native from-scratch delta",
                                   "libostree's pull (no native delta on the server)",
                                   "stock delta from %s (stock OSTree format)",
                                   "stock from-scratch delta (stock OSTree format)" };

static const char *found_names[] = { NULL, "option", "ref", "repository", "booted" };

/* --dry-run: what the fetch would do. */
static int
print_plan (const DfFetchPlan *p, const char *ref, gboolean json, gboolean quiet)
{
  if (json)
    {
      g_autoptr (JsonBuilder) b = event_builder ("plan", g_get_real_time ());
      add_str (b, "path", path_names[p->path]);
      add_str (b, "commit", p->commit);
      add_str (b, "ref", ref);
      add_str (b, "from", p->from[0] ? p->from : NULL);
      add_str (b, "from_found", found_names[p->from_found]);
      add_int (b, "delta_bytes", p->delta_bytes);
      add_int (b, "download_bytes", p->download_bytes);
      add_int (b, "reused_bytes", p->reused_bytes);
      add_int (b, "disk_bytes", p->disk_bytes);
      add_int (b, "parts_total", p->parts_total);
      add_int (b, "parts_to_fetch", p->parts_to_fetch);
      add_bool (b, "size_known", p->size_known);
      add_bool (b, "signature_verified", p->signature_verified);
      add_bool (b, "summary_verified", p->summary_verified);
      json_line (b);
      return 0;
    }
  if (quiet)
    return 0;
  printf ("commit %s\n", p->commit);
  printf ("would take: ");
  printf (path_text[p->path], p->from);
  if (p->from_found == DF_FETCH_FROM_BOOTED)
    printf (" (the booted deployment's commit)");
  else if (p->from_found == DF_FETCH_FROM_REPOSITORY)
    printf (" (found in the repository)");
  printf ("\n");
  g_autofree char *dl = df_cli_format_size (p->download_bytes);
  g_autofree char *db = df_cli_format_size (p->delta_bytes);
  g_autofree char *ru = df_cli_format_size (p->reused_bytes);
  g_autofree char *disk = df_cli_format_size (p->disk_bytes);
  if (p->path == DF_FETCH_PATH_PULL && !p->size_known)
    printf ("download: not known beforehand (libostree's pull; the server declares no object sizes)\n");
  else if (p->path == DF_FETCH_PATH_PULL)
    printf ("download: %s by libostree's pull, %u objects; disk: at least %s needed\n", dl, p->parts_to_fetch, disk);
  else if (p->path != DF_FETCH_PATH_PRESENT)
    printf ("download: %s of a %s delta (%s already here), %u of %u files; disk: %s needed\n", dl, db, ru,
            p->parts_to_fetch, p->parts_total, disk);
  if (p->path != DF_FETCH_PATH_PRESENT && p->path != DF_FETCH_PATH_PULL)
    printf ("superblock signature: %s\n", p->signature_verified ? "verified with a trusted key" : "not checked");
  if (p->summary_verified)
    printf ("summary signature: verified\n");
  printf ("nothing was written (--dry-run)\n");
  return 0;
}

/* The repository `pull` works in without --repo: $OSTREE_REPO, else the
 * system's, as `ostree` does. */
static const char *
default_repo (void)
{
  const char *env = g_getenv ("OSTREE_REPO");
  return env && env[0] ? env : "/sysroot/ostree/repo";
}

/* `fetch` (a commit from URLs) and `pull` (a ref through a remote of the
 * repository's config) share everything but how the target is named. */
static int
fetch_main (int argc, char **argv, gboolean pull)
{
  g_autofree char *repo_path = NULL, *commit = NULL, *from = NULL, *ref = NULL, *memory = NULL, *max_bytes = NULL,
                  *expected = NULL;
  g_auto (GStrv) urls = NULL;
  int jobs = 0;
  gboolean json = FALSE, quiet = FALSE, no_pull = FALSE, no_scratch = FALSE, dry_run = FALSE;
  GOptionEntry fetch_entries[] = {
    { "repo", 0, 0, G_OPTION_ARG_FILENAME, &repo_path, "Repository to write into (required)", "REPO" },
    { "url", 0, 0, G_OPTION_ARG_STRING_ARRAY, &urls, "Base URL of the served repository; repeat for mirrors, in order",
      "URL" },
    { "commit", 0, 0, G_OPTION_ARG_STRING, &commit, "Trusted checksum of the commit to bring in (required)",
      "CHECKSUM" },
    { "ref", 0, 0, G_OPTION_ARG_STRING, &ref,
      "Point REF (or REMOTE:REF) at the commit once it is verified and committed", "REF" },
    { NULL },
  };
  GOptionEntry pull_entries[] = {
    { "repo", 0, 0, G_OPTION_ARG_FILENAME, &repo_path,
      "Repository to write into (default: $OSTREE_REPO, else /sysroot/ostree/repo)", "REPO" },
    { "url", 0, 0, G_OPTION_ARG_STRING_ARRAY, &urls,
      "Fetch from these mirrors instead of the remote's (contenturl, url, mirrorlist); repeatable", "URL" },
    { "commit", 0, 0, G_OPTION_ARG_STRING, &commit,
      "Trusted checksum of the commit (from signed metadata): the summary is not consulted", "CHECKSUM" },
    { NULL },
  };
  GOptionEntry entries[] = {
    { "from", 0, 0, G_OPTION_ARG_STRING, &from, "Commit the device has (default: what the ref points at)", "REV" },
    { "memory", 0, 0, G_OPTION_ARG_STRING, &memory, "Memory budget of the apply workers (default 64M)", "SIZE" },
    { "jobs", 'j', 0, G_OPTION_ARG_INT, &jobs, "Most apply worker threads (default: one per processor)", "N" },
    { "no-pull-fallback", 0, 0, G_OPTION_ARG_NONE, &no_pull, "Fail instead of using libostree's pull", NULL },
    { "max-bytes", 0, 0, G_OPTION_ARG_STRING, &max_bytes,
      "Refuse (exit 13) before downloading parts an update that needs more than SIZE downloaded", "SIZE" },
    { "expected-size", 0, 0, G_OPTION_ARG_STRING, &expected,
      "Refuse (exit 5) before downloading parts a delta whose published size (superblock and parts, as in the "
      "generator's stats file) is not SIZE",
      "SIZE" },
    { "no-from-scratch", 0, 0, G_OPTION_ARG_NONE, &no_scratch,
      "Refuse (exit 13) from-scratch deltas, and libostree's pull when REPO has no from-commit", NULL },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json,
      "Print JSON lines (events start, progress, retry, mirror-switch, waiting, "
      "rebuild-fallback, done, error) on stdout",
      NULL },
    { "quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet, "Print nothing on success", NULL },
    { "dry-run", 'n', 0, G_OPTION_ARG_NONE, &dry_run,
      "Only say what the fetch would do (path, bytes to download, disk space, signatures), writing nothing", NULL },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new (
      pull ? "REMOTE[:REF] [REF] - bring a ref's commit in through a remote of the repository's config"
           : "- bring a commit in from a static HTTP(S) server");
  g_option_context_add_main_entries (ctx, pull ? pull_entries : fetch_entries, NULL);
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_auto (DfCliTrust) trust = { 0 };
  df_cli_add_trust_options (ctx, &trust);
  g_auto (DfCliNet) net = { 0 };
  df_cli_add_network_options (ctx, &net);
  if (pull)
    g_option_context_set_summary (
        ctx, "As 'deltafetch fetch', with everything from the repository's [remote \"REMOTE\"] config, as\n"
             "'ostree pull' reads it: the mirrors (contenturl, else url; \"mirrorlist=URL\" lists, file:// too),\n"
             "tls-ca-path, tls-client-cert-path, tls-client-key-path, tls-permissive, proxy. Command-line\n"
             "options override. Without --commit, REF's commit is looked up in the remote's summary, whose\n"
             "signature is checked first when the remote asks (sign-verify-summary with its ed25519 keys,\n"
             "gpg-verify-summary with its keyring); the commit's signature is checked before any part is\n"
             "downloaded as its gpg-verify and sign-verify ask. REF is then written as REMOTE:REF\n"
             "(refs/remotes/REMOTE/REF), as 'ostree pull' does, and is the device's from-commit.");
  else
    g_option_context_set_summary (
        ctx, "Downloads the native delta to the trusted commit (from the device's commit, else from the newest\n"
             "commit in REPO it has a delta from, else from scratch; else libostree's pull) in parallel byte\n"
             "ranges, checks every part's SHA-256 before it is decompressed, and applies parts while others\n"
             "download, with the verification of 'deltafetch apply'. Downloaded bytes\n"
             "stay in REPO/tmp, so a rerun after a crash or a network loss fetches only what is missing.\n"
             "Proxies: --proxy, else libcurl's http_proxy, https_proxy and no_proxy environment variables.");
  g_option_context_set_description (ctx, df_cli_exit_codes);
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return df_cli_usage (ctx, "%s", error->message);
  g_autofree char *remote = NULL;
  if (pull)
    {
      if (argc < 2 || argc > 3)
        return df_cli_usage (ctx, argc < 2 ? "REMOTE is required" : "unexpected argument '%s'",
                             argc > 3 ? argv[3] : "");
      const char *colon = strchr (argv[1], ':');
      remote = colon ? g_strndup (argv[1], colon - argv[1]) : g_strdup (argv[1]);
      if (colon && argc == 3)
        return df_cli_usage (ctx, "the ref is given twice: '%s' and '%s'", argv[1], argv[2]);
      const char *name = colon ? colon + 1 : argc == 3 ? argv[2] : NULL;
      if (remote[0] == '\0' || (name && name[0] == '\0'))
        return df_cli_usage (ctx, "cannot parse '%s' as REMOTE[:REF]", argv[1]);
      if (name == NULL && commit == NULL)
        return df_cli_usage (ctx, "a REF (or --commit) is required");
      ref = name ? g_strdup_printf ("%s:%s", remote, name) : NULL;
      if (repo_path == NULL)
        repo_path = g_strdup (default_repo ());
    }
  else
    {
      if (argc != 1)
        return df_cli_usage (ctx, "unexpected argument '%s'", argv[1]);
      if (repo_path == NULL || commit == NULL || urls == NULL)
        return df_cli_usage (ctx, "--repo, --commit and --url are required");
    }
  if (jobs < 0 || trust.lock_timeout < 0)
    return df_cli_usage (ctx, "--jobs and --lock-timeout must not be negative");
  guint64 budget = DF_DEFAULT_MEMORY_BUDGET;
  if (memory && !df_cli_parse_size (memory, &budget))
    return df_cli_usage (ctx, "cannot parse --memory '%s'", memory);
  guint64 max_bytes_v = 0, expected_v = 0;
  if (max_bytes && (!df_cli_parse_size (max_bytes, &max_bytes_v) || max_bytes_v == 0))
    return df_cli_usage (ctx, "cannot parse --max-bytes '%s'", max_bytes);
  if (expected && (!df_cli_parse_size (expected, &expected_v) || expected_v == 0))
    return df_cli_usage (ctx, "cannot parse --expected-size '%s'", expected);

  FetchUi ui = { .json = json, .quiet = quiet, .tty = isatty (2), .start = g_get_monotonic_time () };
  g_autoptr (DfFetchOptions) opts = df_fetch_options_new ();
  df_fetch_options_set_commit (opts, commit);
  df_fetch_options_set_remote (opts, remote);
  for (guint i = 0; urls && urls[i]; i++)
    df_fetch_options_add_url (opts, urls[i]);
  df_fetch_options_set_from (opts, from);
  df_fetch_options_set_ref (opts, ref);
  g_autofree char *msg = NULL;
  if (!df_cli_net_apply (&net, opts, &msg))
    return df_cli_usage (ctx, "%s", msg);
  if (memory)
    df_fetch_options_set_memory_budget (opts, budget);
  df_fetch_options_set_jobs (opts, jobs);
  df_fetch_options_set_allow_pull_fallback (opts, !no_pull);
  df_fetch_options_set_max_bytes (opts, max_bytes_v);
  df_fetch_options_set_expected_size (opts, expected_v);
  df_fetch_options_set_allow_from_scratch (opts, !no_scratch);
  g_autofree char *trust_msg = NULL;
  if (!df_cli_trust_set (&trust, opts, &trust_msg))
    return df_cli_usage (ctx, "%s", trust_msg);
  df_fetch_options_set_event_func (opts, on_event, &ui);

  DfFetchResult res;
  DfFetchPlan plan;
  g_autoptr (OstreeRepo) repo = df_cli_open_repo (repo_path, &error);
  gboolean ok = repo
                && (dry_run ? df_fetch_plan (repo, opts, &plan, df_cli_cancellable, &error)
                            : df_fetch (repo, opts, &res, df_cli_cancellable, &error));
  double secs = (g_get_monotonic_time () - ui.start) / 1e6;
  if (ui.tty && !json && !quiet)
    fprintf (stderr, "\r\033[K");
  if (!ok)
    {
      if (json)
        {
          g_autoptr (JsonBuilder) b = event_builder ("error", g_get_real_time ());
          add_int (b, "exit_code", df_error_exit_code (error));
          add_str (b, "error", df_error_name (error));
          json_builder_set_member_name (b, "retryable");
          json_builder_add_boolean_value (b, df_error_is_retryable (error));
          g_autofree char *line = df_cli_error_line (error);
          add_str (b, "message", line);
          json_line (b);
        }
      return df_cli_fail (error);
    }
  if (dry_run)
    return print_plan (&plan, ref, json, quiet);
  if (json)
    {
      g_autoptr (JsonBuilder) b = event_builder ("done", g_get_real_time ());
      add_str (b, "path", path_names[res.path]);
      add_str (b, "commit", res.commit);
      add_str (b, "ref", ref);
      json_builder_set_member_name (b, "summary_verified");
      json_builder_add_boolean_value (b, res.summary_verified);
      add_str (b, "from", res.from[0] ? res.from : NULL);
      add_str (b, "from_found", found_names[res.from_found]);
      add_int (b, "delta_bytes", res.delta_bytes);
      add_int (b, "bytes_downloaded", res.bytes_downloaded);
      add_int (b, "bytes_reused", res.bytes_reused);
      add_int (b, "parts_total", res.parts_total);
      add_int (b, "parts_downloaded", res.parts_downloaded);
      add_int (b, "parts_present", res.parts_present);
      add_int (b, "retries", res.retries);
      add_int (b, "mirror_switches", res.mirror_switches);
      add_int (b, "objects_written", res.apply.objects_written);
      add_int (b, "workers", res.apply.workers);
      add_int (b, "objects_rebuilt", res.apply.objects_rebuilt);
      add_int (b, "rebuild_fallbacks", res.apply.rebuild_fallbacks);
      add_str (b, "rebuild_fallback_reason",
               res.apply.rebuild_fallback_reason[0] ? res.apply.rebuild_fallback_reason : NULL);
      add_int (b, "rebuild_parts_unused", res.apply.rebuild_parts_unused);
      add_int (b, "parts_unused", res.apply.parts_unused);
      add_str (b, "rebuild_unused_reason", res.apply.rebuild_unused_reason[0] ? res.apply.rebuild_unused_reason : NULL);
      add_int (b, "memory_raised_to", res.apply.memory_raised_to);
      json_builder_set_member_name (b, "rebuild_alone");
      json_builder_add_boolean_value (b, res.apply.rebuild_alone);
      json_builder_set_member_name (b, "signature_verified");
      json_builder_add_boolean_value (b, res.apply.signature_verified);
      json_line_seconds (b, secs);
      return 0;
    }
  if (quiet)
    return 0;
  if (commit)
    printf ("commit %s (matches --commit)\n", res.commit);
  else
    printf ("commit %s (from remote %s's summary%s)\n", res.commit, remote,
            res.summary_verified ? ", its signature verified" : ", which is not signed");
  df_cli_print_signature (res.apply.signature_verified);
  printf ("path: ");
  printf (path_text[res.path], res.from);
  if (res.from_found == DF_FETCH_FROM_BOOTED)
    printf (" (the booted deployment's commit)");
  if (res.from_found == DF_FETCH_FROM_REPOSITORY)
    printf (" (found in the repository: the newest commit it holds that the server has a delta from)");
  printf ("\n");
  if (res.path != DF_FETCH_PATH_PRESENT && res.path != DF_FETCH_PATH_PULL)
    {
      g_autofree char *dl = df_cli_format_size (res.bytes_downloaded);
      g_autofree char *db = df_cli_format_size (res.delta_bytes);
      g_autofree char *ru = df_cli_format_size (res.bytes_reused);
      printf ("%s downloaded of a %s delta (%s reused from an earlier run), %u of %u parts fetched, %u retries, "
              "%u mirror switches, %.2f s\n",
              dl, db, ru, res.parts_downloaded, res.parts_total, res.retries, res.mirror_switches, secs);
    }
  df_cli_print_rebuild_result (&res.apply);
  if (ref)
    printf ("ref %s -> %s\n", ref, res.commit);
  return 0;
}

int
df_cli_fetch (int argc, char **argv)
{
  return fetch_main (argc, argv, FALSE);
}

int
df_cli_pull (int argc, char **argv)
{
  return fetch_main (argc, argv, TRUE);
}
