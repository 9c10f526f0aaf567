/* A minimal update agent: brings a trusted commit into a device repository
 * with libdeltafetch. Build: cc update-agent.c $(pkg-config --cflags --libs deltafetch-1)
 * Usage: update-agent REPO URL COMMIT REF */
#include <deltafetch.h>
#include <stdio.h>

static void
on_event (const DfFetchEvent *ev, gpointer user_data)
{
  if (ev->type == DF_FETCH_EVENT_RETRY || ev->type == DF_FETCH_EVENT_MIRROR_SWITCH)
    fprintf (stderr, "%s: %s\n", ev->url, ev->message);
}

int
main (int argc, char **argv)
{
  if (argc != 5)
    {
      fprintf (stderr, "usage: %s REPO URL COMMIT REF\n", argv[0]);
      return 2;
    }
  g_autoptr (GError) error = NULL;
  g_autoptr (GFile) path = g_file_new_for_path (argv[1]);
  g_autoptr (OstreeRepo) repo = ostree_repo_new (path);
  if (!ostree_repo_open (repo, NULL, &error))
    {
      fprintf (stderr, "%s\n", error->message);
      return 1;
    }
  g_autoptr (DfFetchOptions) opts = df_fetch_options_new ();
  df_fetch_options_add_url (opts, argv[2]);
  df_fetch_options_set_commit (opts, argv[3]); /* from the agent's signed metadata */
  df_fetch_options_set_ref (opts, argv[4]);
  df_fetch_options_set_event_func (opts, on_event, NULL);
  g_autoptr (GCancellable) cancellable = g_cancellable_new (); /* cancel from another thread to stop */
  DfFetchResult result;
  if (!df_fetch (repo, opts, &result, cancellable, &error))
    {
      /* Retryable ("network", "timeout", "busy", "no-space"): try again
       * later, and the fetch resumes; otherwise this update is refused. */
      fprintf (stderr, "update failed (%s%s): %s\n", df_error_name (error),
               df_error_is_retryable (error) ? ", retry later" : "", error->message);
      return df_error_exit_code (error);
    }
  printf ("%s: %llu bytes downloaded, %llu objects written\n", result.commit,
          (unsigned long long)result.bytes_downloaded, (unsigned long long)result.apply.objects_written);
  return 0;
}
