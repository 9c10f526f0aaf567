/* An update agent keeps one OstreeRepo open across attempts: a df_fetch()
 * that fails once its apply session has begun (a mirror with the superblock
 * but no parts; a fetch cancelled as it starts downloading parts) must
 * leave the repository usable by the next call.
 * Usage: fetch-twice REPO PARTLESS-URL GOOD-URL COMMIT REF; prints TAP. */
#include "deltafetch.h"

#include <stdio.h>

static int n, failed;

static void
cancel_on_start (const DfFetchEvent *ev, gpointer data)
{
  if (ev->type == DF_FETCH_EVENT_START)
    g_cancellable_cancel (data);
}

static void
check (gboolean ok, const char *what, const GError *error)
{
  n++;
  printf ("%sok %d - %s\n", ok ? "" : "not ", n, what);
  if (!ok && error)
    printf ("# %s\n", error->message);
  failed += !ok;
}

int
main (int argc, char **argv)
{
  if (argc != 6)
    return 2;
  g_autoptr (GFile) path = g_file_new_for_path (argv[1]);
  g_autoptr (OstreeRepo) repo = ostree_repo_new (path);
  g_autoptr (GError) error = NULL;
  if (!ostree_repo_open (repo, NULL, &error))
    return 1;

  g_autoptr (DfFetchOptions) bad = df_fetch_options_new ();
  df_fetch_options_add_url (bad, argv[2]);
  df_fetch_options_set_commit (bad, argv[4]);
  df_fetch_options_set_ref (bad, argv[5]);
  df_fetch_options_set_retries (bad, 1);
  df_fetch_options_set_allow_pull_fallback (bad, FALSE);
  gboolean ok = df_fetch (repo, bad, NULL, NULL, &error);
  check (!ok && g_error_matches (error, DF_ERROR, DF_ERROR_NETWORK),
         "a mirror without parts fails with DF_ERROR_NETWORK", error);
  g_clear_error (&error);

  g_autoptr (DfFetchOptions) good = df_fetch_options_new ();
  df_fetch_options_add_url (good, argv[3]);
  df_fetch_options_set_commit (good, argv[4]);
  df_fetch_options_set_ref (good, argv[5]);
  g_autoptr (GCancellable) cancelled = g_cancellable_new ();
  df_fetch_options_set_event_func (good, cancel_on_start, cancelled);
  ok = df_fetch (repo, good, NULL, cancelled, &error);
  df_fetch_options_set_event_func (good, NULL, NULL);
  check (!ok && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED), "a cancelled fetch reports cancellation",
         error);
  g_clear_error (&error);

  DfFetchResult res;
  ok = df_fetch (repo, good, &res, NULL, &error);
  check (ok, "the same OstreeRepo fetches afterwards", error);
  check (ok && strcmp (res.commit, argv[4]) == 0 && res.path != DF_FETCH_PATH_PRESENT,
         "the commit was brought in by this call", NULL);
  printf ("1..%d\n", n);
  return failed ? 1 : 0;
}
