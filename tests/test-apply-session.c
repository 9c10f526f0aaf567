/* Drives an apply session the way a fetcher will: parts handed over from
 * another thread, in a seeded random order with content parts first (so
 * they must wait for the trust walk), optionally leaving one out.
 *
 *   test-apply-session REPO DELTA COMMIT SEED [--skip-part=N]
 * Exit: 0 on success, the deltafetch exit code of the error otherwise. */
#include <fcntl.h>
#include <stdio.h>

#include "df-apply-session.h"

typedef struct
{
  DfApplySession *s;
  int dfd;
  guint *order;
  guint n;
  int skip;
  GError *error;
} Feeder;

static gpointer
feed (gpointer data)
{
  Feeder *f = data;
  for (guint k = 0; k < f->n && f->error == NULL; k++)
    {
      guint i = f->order[k];
      if ((int)i == f->skip)
        continue;
      char name[16];
      g_snprintf (name, sizeof name, "%u", i);
      dfi_apply_session_add_part (f->s, i, f->dfd, name, &f->error);
      g_usleep (g_random_int_range (0, 2000));
    }
  return NULL;
}

int
main (int argc, char **argv)
{
  if (argc < 5)
    {
      fprintf (stderr, "usage: test-apply-session REPO DELTA COMMIT SEED [--skip-part=N]\n");
      return 2;
    }
  int skip = -1;
  if (argc > 5 && g_str_has_prefix (argv[5], "--skip-part="))
    skip = atoi (argv[5] + strlen ("--skip-part="));
  g_autoptr (GError) error = NULL;
  g_autoptr (GFile) path = g_file_new_for_path (argv[1]);
  g_autoptr (OstreeRepo) repo = ostree_repo_new (path);
  if (!ostree_repo_open (repo, NULL, &error))
    return fprintf (stderr, "%s\n", error->message), 8;
  int dfd = open (argv[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DfSuperblock *sb = dfi_superblock_load (dfd, ".", &error);
  if (sb == NULL)
    return fprintf (stderr, "%s\n", error->message), df_error_exit_code (error);
  g_autoptr (DfApplyOptions) opts = df_apply_options_new ();
  df_apply_options_set_commit (opts, argv[3]);
  df_apply_options_set_ref (opts, "os");
  g_autoptr (DfApplySession) s = dfi_apply_session_new (repo, sb, opts, NULL, &error);
  if (s == NULL)
    return fprintf (stderr, "%s\n", error->message), df_error_exit_code (error);

  /* Content parts first, shuffled; metadata parts last, shuffled. */
  const DfSuperblock *d = dfi_apply_session_get_superblock (s);
  g_autoptr (GRand) rand = g_rand_new_with_seed (atoi (argv[4]));
  g_autofree guint *order = g_new (guint, d->n_parts ? d->n_parts : 1);
  guint n = 0;
  for (int kind = DF_PART_KIND_CONTENT; kind <= DF_PART_KIND_METADATA; kind++)
    {
      guint start = n;
      for (guint i = 0; i < d->n_parts; i++)
        if (d->parts[i].kind == kind)
          order[n++] = i;
      for (guint k = n; k > start + 1; k--)
        {
          guint j = start + g_rand_int_range (rand, 0, k - start);
          guint t = order[k - 1];
          order[k - 1] = order[j];
          order[j] = t;
        }
    }
  Feeder f = { s, dfd, order, n, skip, NULL };
  GThread *th = g_thread_new ("feeder", feed, &f);
  g_thread_join (th);
  if (f.error)
    return fprintf (stderr, "%s\n", f.error->message), df_error_exit_code (f.error);
  DfApplyResult res;
  if (!dfi_apply_session_finish (s, &res, &error))
    return fprintf (stderr, "%s\n", error->message), df_error_exit_code (error);
  printf ("applied %u parts in the order", res.parts_applied);
  for (guint k = 0; k < n; k++)
    printf (" %u", order[k]);
  printf ("\n");
  return 0;
}
