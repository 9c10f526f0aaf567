/* deltafetch-agent: an example update agent on deltafetch's async API, as a
 * fleet integrator would write one, using only <deltafetch.h>.
 *
 *   deltafetch-agent [--repo=REPO] [--commit=CHECKSUM] [--lock-timeout=S] REMOTE:REF
 *
 * Runs df_fetch_async() through the repository's remote (its config as
 * `ostree remote add` wrote it) on a GLib main loop, logs the fetch's
 * phases, retries and mirror switches through g_log_structured() (journald
 * fields when run under systemd, plain lines on a terminal), cancels
 * cleanly on SIGTERM or SIGINT, and sorts a failure into what an agent
 * does next:
 *
 *   exit 0    the commit is in the repository: deploy it
 *   exit 75   retry later (EX_TEMPFAIL): a busy repository, the network, a
 *             stale index on a CDN, a full disk; the next run resumes
 *   exit 65   refuse this update (EX_DATAERR): a bad signature, a corrupt or
 *             forged delta, a downgrade, an update too large
 *   exit 130  cancelled (SIGTERM, SIGINT)
 *   exit 64   usage (EX_USAGE), or a setup the operator must fix
 */
#define G_LOG_DOMAIN "deltafetch-agent"
#define G_LOG_USE_STRUCTURED 1

#include <deltafetch.h>
#include <glib-unix.h>
#include <stdio.h>

typedef struct
{
  GMainLoop *loop;
  GCancellable *cancellable;
  gint64 cancelled_at; /* monotonic µs of the signal, 0: none */
  DfFetchPhase phase;
  int exit_code;
} Agent;

static const char *phase_names[] = { "", "discover", "download", "apply", "commit" };

static void
on_event (const DfFetchEvent *ev, gpointer data)
{
  Agent *a = data;
  switch (ev->type)
    {
    case DF_FETCH_EVENT_START:
      g_message ("download started: %" G_GUINT64_FORMAT " bytes to fetch%s", ev->bytes_total,
                 ev->path == DF_FETCH_PATH_PULL ? " (libostree's pull)" : "");
      break;
    case DF_FETCH_EVENT_RETRY:
      g_warning ("retrying: %s", ev->message);
      break;
    case DF_FETCH_EVENT_MIRROR_SWITCH:
      g_warning ("mirror %s demoted: %s", ev->url, ev->message);
      break;
    case DF_FETCH_EVENT_WAITING:
      g_message ("%s", ev->message);
      break;
    case DF_FETCH_EVENT_PROGRESS:
      if (ev->phase != a->phase)
        {
          a->phase = ev->phase;
          g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_MESSAGE, "DF_PHASE", phase_names[ev->phase], "MESSAGE",
                            "phase %s: %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT " bytes", phase_names[ev->phase],
                            ev->bytes_done, ev->bytes_total);
        }
      break;
    default:
      break;
    }
}

/* What the agent does about @error. */
static int
triage (const GError *error)
{
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return 130;
  if (df_error_is_retryable (error))
    return 75;
  if (g_error_matches (error, DF_ERROR, DF_ERROR_INVALID_ARGUMENT)
      || g_error_matches (error, DF_ERROR, DF_ERROR_NOT_FOUND) || error->domain != DF_ERROR)
    return 64;
  return 65;
}

static void
on_done (GObject *source, GAsyncResult *res, gpointer data)
{
  Agent *a = data;
  DfFetchResult r;
  g_autoptr (GError) error = NULL;
  gboolean ok = df_fetch_finish (res, &r, &error);
  g_autofree char *bytes = g_strdup_printf ("%" G_GUINT64_FORMAT, r.bytes_downloaded);
  if (ok)
    {
      g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_MESSAGE, "DF_COMMIT", r.commit, "DF_BYTES", bytes, "MESSAGE",
                        "commit %s is in the repository (%s bytes downloaded): ready to deploy", r.commit, bytes);
      a->exit_code = 0;
    }
  else
    {
      a->exit_code = triage (error);
      const char *action = a->exit_code == 75 ? "retry later" : a->exit_code == 65 ? "update refused" : "stopped";
      g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_WARNING, "DF_ERROR", df_error_name (error), "DF_BYTES", bytes,
                        "MESSAGE", "%s (%s) after %s bytes downloaded: %s", action, df_error_name (error), bytes,
                        error->message);
      if (a->cancelled_at)
        g_message ("cancelled: the fetch stopped %" G_GINT64_FORMAT " ms after the signal",
                   (g_get_monotonic_time () - a->cancelled_at) / 1000);
    }
  g_main_loop_quit (a->loop);
}

static gboolean
on_signal (gpointer data)
{
  Agent *a = data;
  if (a->cancelled_at == 0)
    {
      a->cancelled_at = g_get_monotonic_time ();
      g_message ("signal received: cancelling");
      g_cancellable_cancel (a->cancellable);
    }
  return G_SOURCE_CONTINUE;
}

int
main (int argc, char **argv)
{
  g_autofree char *repo_path = NULL, *commit = NULL;
  int lock_timeout = 30;
  GOptionEntry entries[] = {
    { "repo", 0, 0, G_OPTION_ARG_FILENAME, &repo_path, "Repository (default /sysroot/ostree/repo)", "REPO" },
    { "commit", 0, 0, G_OPTION_ARG_STRING, &commit, "Trusted commit from signed metadata (default: the summary's)",
      "CHECKSUM" },
    { "lock-timeout", 0, 0, G_OPTION_ARG_INT, &lock_timeout, "Seconds to wait for a busy repository", "S" },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("REMOTE:REF - fetch an update, as an agent would");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error) || argc != 2 || strchr (argv[1], ':') == NULL
      || lock_timeout < 0)
    {
      fprintf (stderr, "usage: deltafetch-agent [--repo=REPO] [--commit=CHECKSUM] REMOTE:REF\n");
      return 64;
    }
  g_autofree char *remote = g_strndup (argv[1], strchr (argv[1], ':') - argv[1]);

  g_autoptr (GFile) path = g_file_new_for_path (repo_path ? repo_path : "/sysroot/ostree/repo");
  g_autoptr (OstreeRepo) repo = ostree_repo_new (path);
  if (!ostree_repo_open (repo, NULL, &error))
    {
      g_warning ("cannot open the repository: %s", error->message);
      return 64;
    }
  Agent a = { .loop = g_main_loop_new (NULL, FALSE), .cancellable = g_cancellable_new (), .exit_code = 1 };
  g_autoptr (DfFetchOptions) opts = df_fetch_options_new ();
  df_fetch_options_set_remote (opts, remote);
  df_fetch_options_set_ref (opts, argv[1]);
  df_fetch_options_set_commit (opts, commit);
  df_fetch_options_set_lock_timeout (opts, (guint)lock_timeout);
  df_fetch_options_set_event_func (opts, on_event, &a);
  g_unix_signal_add (SIGTERM, on_signal, &a);
  g_unix_signal_add (SIGINT, on_signal, &a);
  g_message ("fetching %s", argv[1]);
  df_fetch_async (repo, opts, a.cancellable, on_done, &a);
  g_main_loop_run (a.loop);
  g_main_loop_unref (a.loop);
  g_object_unref (a.cancellable);
  return a.exit_code;
}
