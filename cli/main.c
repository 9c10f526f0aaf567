#include <locale.h>
#include <stdio.h>
#include <string.h>

#include "df-cli.h"

const char *df_cli_exit_codes
    = "Exit codes:\n"
      "  0    success\n"
      "  1    other failure\n"
      "  2    usage error or bad argument (including a memory budget too small for the delta)\n"
      "  3    invalid delta: malformed, truncated, over a size limit\n"
      "  4    corrupt: a part or object does not hash to its checksum\n"
      "  5    untrusted: wrong commit, an object the commit does not reference, or a signature\n"
      "       (superblock, summary, commit) missing or not verifying\n"
      "  6    missing base: the from-commit or a source object is not in the repository\n"
      "  7    no space left on the device\n"
      "  8    I/O or repository error\n"
      "  9    network: the download failed on every mirror (refused, reset, HTTP error, TLS refused,\n"
      "       more bytes than declared, wrong range, index and superblock disagree)\n"
      "  10   slow retrieval: connect timeout, below the low-speed limit, or past a transfer's deadline\n"
      "  11   downgrade: the commit is older than the one --ref points at (see --allow-downgrade)\n"
      "  12   busy: another apply or fetch kept REPO past --lock-timeout\n"
      "  13   too large: over --max-bytes, or only from scratch with --no-from-scratch\n"
      "  14   not found: the remote's summary has no such ref (pull), or REPO no such delta (show, verify,\n"
      "       delete)\n"
      "  130  cancelled (SIGINT or SIGTERM; a rerun resumes)";

GCancellable *df_cli_cancellable;

static const struct
{
  const char *name;
  int (*run) (int, char **);
  gboolean cancellable; /* SIGINT and SIGTERM cancel it cleanly */
  const char *summary;
} verbs[] = {
  { "generate", df_cli_generate, TRUE, "compute a delta between two commits of a repository" },
  { "apply", df_cli_apply, TRUE, "apply a delta directory to a repository, verified, offline" },
  { "fetch", df_cli_fetch, TRUE, "bring a commit in from a static HTTP(S) server, verified and resumable" },
  { "pull", df_cli_pull, TRUE, "fetch a ref's commit through a remote of the repository's config, as ostree pull" },
  { "show", df_cli_show, FALSE, "describe a delta" },
  { "list", df_cli_list, FALSE, "list the deltas a repository publishes" },
  { "delete", df_cli_delete, FALSE, "remove deltas from a repository, index first" },
  { "prune", df_cli_prune, FALSE, "remove deltas whose commits are gone or too old" },
  { "verify", df_cli_verify, TRUE, "check published deltas: parts whole, signatures, a trial apply" },
  { "sign", df_cli_sign, FALSE, "sign published deltas again in place (key rotation)" },
  { "keygen", df_cli_keygen, FALSE, "make an ed25519 key pair" },
  { "index", df_cli_index, TRUE, "merge fanned-out generate jobs' deltas into the repository's indexes" },
  { "publish", df_cli_publish, TRUE, "copy a repository to static hosting, indexes after what they name" },
};

static void
usage (FILE *f)
{
  fprintf (f, "Usage: deltafetch VERB [OPTIONS...]\n\nVerbs:\n");
  for (guint i = 0; i < G_N_ELEMENTS (verbs); i++)
    fprintf (f, "  %-10s %s\n", verbs[i].name, verbs[i].summary);
  fprintf (f, "\nRun 'deltafetch VERB --help' for a verb's options.\n\n%s\n", df_cli_exit_codes);
}

int
main (int argc, char **argv)
{
  setlocale (LC_ALL, "");
  if (argc < 2)
    {
      fprintf (stderr, "deltafetch: no verb given (see deltafetch --help)\n");
      return 2;
    }
  if (strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0 || strcmp (argv[1], "help") == 0)
    {
      usage (stdout);
      return 0;
    }
  if (strcmp (argv[1], "--version") == 0)
    {
      printf ("deltafetch %s\n", df_version ());
      return 0;
    }
  for (guint i = 0; i < G_N_ELEMENTS (verbs); i++)
    if (strcmp (argv[1], verbs[i].name) == 0)
      {
        if (verbs[i].cancellable)
          df_cli_cancellable = df_cli_cancel_on_signals ();
        return verbs[i].run (argc - 1, argv + 1);
      }
  fprintf (stderr, "deltafetch: unknown verb '%s' (see deltafetch --help)\n", argv[1]);
  return 2;
}
