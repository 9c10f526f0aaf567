/* Unit tests of the fetcher's part store (engine/fetch/df-part-store.c):
 * every legal and illegal move of a part's state, and a part's life on
 * disk — ranges written and recorded, resumed by a later run, verified and
 * renamed, found whole by the next, a bad part and its restart, an I/O
 * failure, a consumer thread waiting. No network. */
#include "df-part-store.h"

#include <fcntl.h>

#define RS ((guint64)64 * 1024)

/* The moves the store allows, and only those. */
static const struct
{
  DfPartState from, to;
} legal_moves[] = {
  { DF_PART_STATE_NEW, DF_PART_STATE_UNNEEDED },     { DF_PART_STATE_NEW, DF_PART_STATE_WANTED },
  { DF_PART_STATE_NEW, DF_PART_STATE_DONE },         { DF_PART_STATE_WANTED, DF_PART_STATE_VERIFYING },
  { DF_PART_STATE_VERIFYING, DF_PART_STATE_WANTED }, { DF_PART_STATE_VERIFYING, DF_PART_STATE_DONE },
  { DF_PART_STATE_VERIFYING, DF_PART_STATE_FAILED }, { DF_PART_STATE_UNNEEDED, DF_PART_STATE_NEW },
};

static gboolean
expected_legal (DfPartState from, DfPartState to)
{
  for (guint i = 0; i < G_N_ELEMENTS (legal_moves); i++)
    if (legal_moves[i].from == from && legal_moves[i].to == to)
      return TRUE;
  return FALSE;
}

static void
test_state_table (void)
{
  guint n_legal = 0;
  for (guint from = 0; from < DF_PART_N_STATES; from++)
    for (guint to = 0; to < DF_PART_N_STATES; to++)
      {
        g_assert_cmpint (dfi_part_state_legal (from, to), ==, expected_legal (from, to));
        n_legal += dfi_part_state_legal (from, to);
      }
  g_assert_cmpuint (n_legal, ==, G_N_ELEMENTS (legal_moves));
  /* No way out of DONE or FAILED, UNNEEDED only back to NEW, and nothing
   * beyond the enum. */
  for (guint s = 0; s <= DF_PART_N_STATES; s++)
    {
      g_assert_false (dfi_part_state_legal (DF_PART_STATE_DONE, s));
      g_assert_true (dfi_part_state_legal (DF_PART_STATE_UNNEEDED, s) == (s == DF_PART_STATE_NEW));
      g_assert_false (dfi_part_state_legal (DF_PART_STATE_FAILED, s));
      g_assert_false (dfi_part_state_legal (DF_PART_N_STATES, s));
      g_assert_false (dfi_part_state_legal (s, DF_PART_N_STATES));
    }
  g_assert_cmpstr (dfi_part_state_name (DF_PART_STATE_VERIFYING), ==, "verifying");
  g_assert_cmpstr (dfi_part_state_name (DF_PART_N_STATES), ==, "invalid");
}

/* One move, data = from * DF_PART_N_STATES + to: a legal one is made and
 * wakes nothing wrongly; an illegal one aborts, naming both states. */
static void
test_move (gconstpointer data)
{
  guint code = GPOINTER_TO_UINT (data);
  DfPartState from = code / DF_PART_N_STATES, to = code % DF_PART_N_STATES;
  if (g_test_subprocess ())
    {
      DfPartStore s;
      dfi_part_store_init (&s, NULL, RS, NULL);
      DfStorePart p = { .state = from, .fd = -1 };
      g_strlcpy (p.name, "7", sizeof p.name);
      dfi_part_store_set_state (&s, &p, to);
      g_assert_cmpint (p.state, ==, to);
      dfi_part_store_clear (&s);
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  if (expected_legal (from, to))
    g_test_trap_assert_passed ();
  else
    {
      g_test_trap_assert_failed ();
      g_autofree char *msg = g_strdup_printf ("*part 7: illegal move from %s to %s*", dfi_part_state_name (from),
                                              dfi_part_state_name (to));
      g_test_trap_assert_stderr (msg);
    }
}

/* A repository in a temporary directory, and a store in it. */
typedef struct
{
  char *dir;
  OstreeRepo *repo;
} Fixture;

static void
fixture_setup (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  fx->dir = g_dir_make_tmp ("test-part-store-XXXXXX", &error);
  g_assert_no_error (error);
  g_autoptr (GFile) path = g_file_new_for_path (fx->dir);
  fx->repo = ostree_repo_new (path);
  g_assert_true (ostree_repo_create (fx->repo, OSTREE_REPO_MODE_BARE_USER_ONLY, NULL, &error));
  g_assert_no_error (error);
}

static void
fixture_teardown (Fixture *fx, gconstpointer data)
{
  dfi_rm_rf_at (AT_FDCWD, fx->dir, NULL);
  g_object_unref (fx->repo);
  g_free (fx->dir);
}

static const char sb_hex[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/* @n bytes of a pattern that differs per offset. */
static guint8 *
pattern (gsize n)
{
  guint8 *b = g_malloc (n);
  for (gsize i = 0; i < n; i++)
    b[i] = (guint8)(i * 7 + i / 251);
  return b;
}

/* Opens the store and describes part 0 of it: @size bytes of pattern(). */
static DfStorePart *
open_part (DfPartStore *s, Fixture *fx, gsize size, const guint8 *data)
{
  g_autoptr (GError) error = NULL;
  dfi_part_store_init (s, fx->repo, RS, NULL);
  g_assert_true (dfi_part_store_open (s, sb_hex, &error));
  g_assert_no_error (error);
  dfi_part_store_alloc (s, 1);
  guint8 sha[DF_SHA256_LEN];
  dfi_sha256 (data, size, sha);
  DfStorePart *p = &s->parts[0];
  dfi_part_init (s, p, 0, size, sha, size * 2);
  g_assert_cmpint (p->state, ==, DF_PART_STATE_NEW);
  g_assert_cmpstr (p->name, ==, "0");
  return p;
}

static void
write_range (DfPartStore *s, DfStorePart *p, guint r, const guint8 *data)
{
  int fd = dfi_part_store_fd (s, p);
  g_assert_cmpint (fd, >=, 0);
  const DfStoreRange *range = &p->ranges[r];
  g_assert_true (dfi_pwrite_all (fd, data + range->off, range->len, range->off, "part", NULL));
  g_assert_true (dfi_part_range_done (p, r));
  g_assert_false (dfi_part_range_done (p, r)); /* once only */
}

static gboolean
exists (DfPartStore *s, const char *name)
{
  struct stat st;
  return fstatat (s->dfd, name, &st, 0) == 0;
}

static void
test_lifecycle (Fixture *fx, gconstpointer unused)
{
  const gsize size = 3 * RS + 1000;
  g_autofree guint8 *data = pattern (size);
  g_autoptr (GError) error = NULL;

  /* First run: two of four ranges arrive and are recorded. */
  DfPartStore s;
  DfStorePart *p = open_part (&s, fx, size, data);
  g_assert_cmpuint (p->n_ranges, ==, 4);
  g_assert_cmpuint (p->ranges[3].off, ==, 3 * RS);
  g_assert_cmpuint (p->ranges[3].len, ==, 1000);
  dfi_part_store_lookup (&s, p);
  g_assert_cmpint (p->state, ==, DF_PART_STATE_WANTED);
  g_assert_cmpuint (p->remaining, ==, 4);
  g_assert_false (p->resumed);
  write_range (&s, p, 0, data);
  write_range (&s, p, 2, data);
  dfi_part_store_record (&s, p);
  g_assert_true (p->dirty);
  dfi_part_store_checkpoint (&s);
  g_assert_false (p->dirty);
  dfi_part_store_release_fd (p);
  g_assert_cmpint (p->fd, ==, -1);
  g_assert_true (exists (&s, "0.partial") && exists (&s, "0.ranges"));
  dfi_part_store_clear (&s);

  /* Second run: the recorded ranges are reused; the rest arrives and the
   * part is verified and renamed. */
  p = open_part (&s, fx, size, data);
  dfi_part_store_lookup (&s, p);
  g_assert_cmpint (p->state, ==, DF_PART_STATE_WANTED);
  g_assert_true (p->resumed);
  g_assert_cmpuint (p->remaining, ==, 2);
  g_assert_true (p->done[0] && !p->done[1] && p->done[2] && !p->done[3]);
  g_assert_cmpuint (s.bytes_reused, ==, 2 * RS);
  write_range (&s, p, 1, data);
  write_range (&s, p, 3, data);
  guint32 served = 0;
  g_assert_cmpint (dfi_part_store_finish (&s, p, &served, &error), ==, DF_PART_VERIFIED);
  g_assert_no_error (error);
  g_assert_cmpint (p->state, ==, DF_PART_STATE_DONE);
  g_assert_true (dfi_part_settled (p));
  g_assert_true (exists (&s, "0") && !exists (&s, "0.partial") && !exists (&s, "0.ranges"));
  dfi_part_store_clear (&s);

  /* Third run: the verified file is taken as it is. */
  p = open_part (&s, fx, size, data);
  dfi_part_store_lookup (&s, p);
  g_assert_cmpint (p->state, ==, DF_PART_STATE_DONE);
  g_assert_cmpuint (s.bytes_reused, ==, size);

  /* Opening the store of another delta removes this one. */
  char rel[128];
  g_strlcpy (rel, s.rel, sizeof rel);
  dfi_part_store_clear (&s);
  dfi_part_store_init (&s, fx->repo, RS, NULL);
  g_assert_true (dfi_part_store_open (&s, "ff", &error));
  struct stat st;
  g_assert_cmpint (fstatat (ostree_repo_get_dfd (fx->repo), rel, &st, 0), ==, -1);
  dfi_part_store_remove (&s);
  g_assert_cmpint (fstatat (ostree_repo_get_dfd (fx->repo), "tmp/deltafetch-fetch-ff", &st, 0), ==, -1);
  dfi_part_store_clear (&s);
}

/* A record made with another range size describes other ranges: ignored. */
static void
test_other_range_size (Fixture *fx, gconstpointer unused)
{
  const gsize size = 2 * RS;
  g_autofree guint8 *data = pattern (size);
  DfPartStore s;
  DfStorePart *p = open_part (&s, fx, size, data);
  dfi_part_store_lookup (&s, p);
  write_range (&s, p, 0, data);
  dfi_part_store_record (&s, p);
  dfi_part_store_clear (&s);
  dfi_part_store_init (&s, fx->repo, 2 * RS, NULL);
  g_assert_true (dfi_part_store_open (&s, sb_hex, NULL));
  dfi_part_store_alloc (&s, 1);
  guint8 sha[DF_SHA256_LEN];
  dfi_sha256 (data, size, sha);
  p = &s.parts[0];
  dfi_part_init (&s, p, 0, size, sha, size);
  dfi_part_store_lookup (&s, p);
  g_assert_cmpuint (p->n_ranges, ==, 1);
  g_assert_cmpuint (p->remaining, ==, 1);
  g_assert_false (p->resumed);
  g_assert_cmpuint (s.bytes_reused, ==, 0);
  dfi_part_store_clear (&s);
}

/* Bytes that do not match: BAD, with who served them; the store blames
 * nobody and the part stays VERIFYING until its caller restarts it. */
static void
test_bad_and_restart (Fixture *fx, gconstpointer unused)
{
  const gsize size = RS + 10;
  g_autofree guint8 *data = pattern (size);
  g_autofree guint8 *wrong = pattern (size);
  wrong[RS + 3] ^= 1;
  DfPartStore s;
  DfStorePart *p = open_part (&s, fx, size, data);
  dfi_part_store_lookup (&s, p);
  write_range (&s, p, 0, wrong);
  write_range (&s, p, 1, wrong);
  p->mirrors_used = 0x5;
  p->etag_mirror = 2;
  g_strlcpy (p->etag, "\"x\"", sizeof p->etag);
  guint gen = p->generation;
  guint32 served = 0;
  g_autoptr (GError) error = NULL;
  g_assert_cmpint (dfi_part_store_finish (&s, p, &served, &error), ==, DF_PART_BAD);
  g_assert_cmpuint (served, ==, 0x5);
  g_assert_cmpint (p->state, ==, DF_PART_STATE_VERIFYING);
  g_assert_false (exists (&s, "0"));
  dfi_part_store_restart (&s, p);
  g_assert_cmpint (p->state, ==, DF_PART_STATE_WANTED);
  g_assert_cmpuint (p->generation, ==, gen + 1);
  g_assert_cmpuint (p->remaining, ==, 2);
  g_assert_true (!p->done[0] && !p->done[1]);
  g_assert_cmpuint (p->mirrors_used, ==, 0);
  g_assert_cmpstr (p->etag, ==, "");
  g_assert_false (exists (&s, "0.partial") || exists (&s, "0.ranges"));
  /* Restarting a part that is still downloading (its file changed). */
  write_range (&s, p, 0, data);
  dfi_part_store_restart (&s, p);
  g_assert_cmpint (p->state, ==, DF_PART_STATE_WANTED);
  g_assert_cmpuint (p->remaining, ==, 2);
  /* The right bytes now. */
  write_range (&s, p, 0, data);
  write_range (&s, p, 1, data);
  g_assert_cmpint (dfi_part_store_finish (&s, p, &served, &error), ==, DF_PART_VERIFIED);
  dfi_part_store_clear (&s);
}

/* The final name is taken by a directory: the rename fails, an I/O error,
 * and the part is FAILED. */
static void
test_io_error (Fixture *fx, gconstpointer unused)
{
  const gsize size = 100;
  g_autofree guint8 *data = pattern (size);
  DfPartStore s;
  DfStorePart *p = open_part (&s, fx, size, data);
  dfi_part_store_lookup (&s, p);
  write_range (&s, p, 0, data);
  g_assert_cmpint (mkdirat (s.dfd, "0", 0700), ==, 0);
  g_assert_cmpint (mkdirat (s.dfd, "0/x", 0700), ==, 0);
  guint32 served = 0;
  g_autoptr (GError) error = NULL;
  g_assert_cmpint (dfi_part_store_finish (&s, p, &served, &error), ==, DF_PART_IO_ERROR);
  g_assert_error (error, DF_ERROR, DF_ERROR_IO);
  g_assert_nonnull (strstr (error->message, "storing 0"));
  g_assert_cmpint (p->state, ==, DF_PART_STATE_FAILED);
  g_assert_false (dfi_part_settled (p));
  dfi_part_store_clear (&s);
}

typedef struct
{
  DfPartStore *s;
  DfStorePart *p;
  gboolean ok;
  GError *error;
} Waiter;

static gpointer
wait_thread (gpointer data)
{
  Waiter *w = data;
  w->ok = dfi_part_store_wait (w->s, w->p, &w->error);
  return NULL;
}

/* A consumer thread waits for a part: woken by DONE; or by the stop,
 * with an error naming the part. */
static void
test_wait (void)
{
  DfPartStore s;
  dfi_part_store_init (&s, NULL, RS, NULL);
  dfi_part_store_alloc (&s, 2);
  static const guint8 sha[DF_SHA256_LEN];
  for (guint i = 0; i < 2; i++)
    dfi_part_init (&s, &s.parts[i], i, 10, sha, 10);
  Waiter w0 = { &s, &s.parts[0] }, w1 = { &s, &s.parts[1] };
  GThread *t0 = g_thread_new ("w0", wait_thread, &w0);
  GThread *t1 = g_thread_new ("w1", wait_thread, &w1);
  dfi_part_store_set_state (&s, &s.parts[0], DF_PART_STATE_WANTED);
  dfi_part_store_set_state (&s, &s.parts[0], DF_PART_STATE_VERIFYING);
  dfi_part_store_set_state (&s, &s.parts[0], DF_PART_STATE_DONE);
  g_thread_join (t0);
  g_assert_true (w0.ok);
  g_assert_no_error (w0.error);
  dfi_part_store_stop (&s);
  g_thread_join (t1);
  g_assert_false (w1.ok);
  g_assert_error (w1.error, DF_ERROR, DF_ERROR_NETWORK);
  g_assert_cmpstr (w1.error->message, ==, "part 1 did not arrive");
  g_clear_error (&w1.error);
  /* An UNNEEDED part does not hold a waiter. */
  dfi_part_store_set_state (&s, &s.parts[1], DF_PART_STATE_UNNEEDED);
  g_assert_true (dfi_part_store_wait (&s, &s.parts[1], NULL));
  dfi_part_store_clear (&s);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/fetch/part-state/table", test_state_table);
  for (guint from = 0; from < DF_PART_N_STATES; from++)
    for (guint to = 0; to < DF_PART_N_STATES; to++)
      {
        g_autofree char *path
            = g_strdup_printf ("/fetch/part-state/move/%s-%s", dfi_part_state_name (from), dfi_part_state_name (to));
        g_test_add_data_func (path, GUINT_TO_POINTER (from * DF_PART_N_STATES + to), test_move);
      }
  g_test_add ("/fetch/part-store/lifecycle", Fixture, NULL, fixture_setup, test_lifecycle, fixture_teardown);
  g_test_add ("/fetch/part-store/other-range-size", Fixture, NULL, fixture_setup, test_other_range_size,
              fixture_teardown);
  g_test_add ("/fetch/part-store/bad-and-restart", Fixture, NULL, fixture_setup, test_bad_and_restart,
              fixture_teardown);
  g_test_add ("/fetch/part-store/io-error", Fixture, NULL, fixture_setup, test_io_error, fixture_teardown);
  g_test_add_func ("/fetch/part-store/wait", test_wait);
  return g_test_run ();
}
