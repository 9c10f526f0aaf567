/* Unit tests of the downloader's handling of parts found in the store,
 * without a network: a verified file or a complete record is handed to
 * the consumer; a complete record that fails its check (bytes from before
 * a crash) starts over and blames no mirror; a part not needed is never
 * fetched; a consumer that refuses a part stops the fetch. And the
 * scheduler's choice of ranges and mirrors, transfers added to the multi
 * handle but never run. And the blame rules, on parts whose ranges are
 * marked in as if transfers had delivered them. */
#include "df-downloader.h"

#include <fcntl.h>

#define RS ((guint64)64 * 1024)

static const char sb_hex[] = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

typedef struct
{
  char *dir;
  OstreeRepo *repo;
  DfFetchOptions *o;
  DfFetchResult res;
  DfDownloader *d;
  DfPartStore store;
  guint handed; /* parts the consumer took */
  gboolean refuse;
} Fixture;

static gboolean
take_part (gpointer data, DfStorePart *p, GError **error)
{
  Fixture *fx = data;
  g_assert_cmpint (p->state, ==, DF_PART_STATE_DONE);
  if (fx->refuse)
    return dfi_throw (error, DF_ERROR_CORRUPT, "refused part %u", p->index);
  fx->handed++;
  return TRUE;
}

static void
fixture_setup (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  fx->dir = g_dir_make_tmp ("test-downloader-XXXXXX", &error);
  g_assert_no_error (error);
  g_autoptr (GFile) path = g_file_new_for_path (fx->dir);
  fx->repo = ostree_repo_new (path);
  g_assert_true (ostree_repo_create (fx->repo, OSTREE_REPO_MODE_BARE_USER_ONLY, NULL, &error));
  fx->o = df_fetch_options_new ();
  df_fetch_options_add_url (fx->o, "http://127.0.0.1:9/a");
  df_fetch_options_add_url (fx->o, "http://127.0.0.1:9/b");
  df_fetch_options_set_range_size (fx->o, RS);
  df_fetch_options_set_connections (fx->o, 2);
  fx->d = dfi_downloader_new (fx->o, &fx->res, NULL);
  dfi_part_store_init (&fx->store, fx->repo, RS, NULL);
  g_assert_true (dfi_part_store_open (&fx->store, sb_hex, &error));
  DfPartConsumer consumer = { .part_ready = take_part, .data = fx };
  dfi_downloader_attach (fx->d, &fx->store, "deltas/x", &consumer);
  dfi_part_store_alloc (&fx->store, 1);
}

static void
fixture_teardown (Fixture *fx, gconstpointer data)
{
  dfi_downloader_free (fx->d);
  dfi_part_store_clear (&fx->store);
  df_fetch_options_free (fx->o);
  dfi_rm_rf_at (AT_FDCWD, fx->dir, NULL);
  g_object_unref (fx->repo);
  g_free (fx->dir);
}

/* Part 0: @size bytes whose SHA-256 is that of @want; @have (NULL: none)
 * lies in the store as a verified file (@whole) or as a .partial file with
 * every range recorded. */
static DfStorePart *
setup_part (Fixture *fx, gsize size, const guint8 *want, const guint8 *have, gboolean whole)
{
  guint8 sha[DF_SHA256_LEN];
  dfi_sha256 (want, size, sha);
  DfStorePart *p = &fx->store.parts[0];
  dfi_part_init (&fx->store, p, 0, size, sha, size);
  if (have == NULL)
    return p;
  g_autoptr (GBytes) b = g_bytes_new (have, size);
  g_assert_true (dfi_write_file_atomic (fx->store.dfd, whole ? "0" : "0.partial", b, NULL));
  if (!whole)
    {
      guint8 rec[8 + 16];
      guint64 rs = GUINT64_TO_LE (RS);
      memcpy (rec, &rs, 8);
      memset (rec + 8, 1, p->n_ranges);
      g_autoptr (GBytes) r = g_bytes_new (rec, 8 + p->n_ranges);
      g_assert_true (dfi_write_file_atomic (fx->store.dfd, "0.ranges", r, NULL));
    }
  return p;
}

static guint8 *
pattern (gsize n, guint8 salt)
{
  guint8 *b = g_malloc (n);
  for (gsize i = 0; i < n; i++)
    b[i] = (guint8)(i * 13 + salt);
  return b;
}

static void
test_verified_in_store (Fixture *fx, gconstpointer unused)
{
  g_autofree guint8 *data = pattern (2 * RS, 1);
  DfStorePart *p = setup_part (fx, 2 * RS, data, data, TRUE);
  g_assert_true (dfi_downloader_add_part (fx->d, p, TRUE, NULL));
  g_assert_cmpint (p->state, ==, DF_PART_STATE_DONE);
  g_assert_cmpuint (fx->handed, ==, 1);
  g_assert_cmpuint (fx->res.parts_present, ==, 1);
  g_assert_cmpuint (fx->res.bytes_reused, ==, 2 * RS);
  g_assert_cmpuint (fx->res.delta_bytes, ==, 2 * RS);
  g_assert_null (dfi_downloader_get_error (fx->d));
}

static void
test_recorded_good (Fixture *fx, gconstpointer unused)
{
  g_autofree guint8 *data = pattern (2 * RS + 5, 2);
  DfStorePart *p = setup_part (fx, 2 * RS + 5, data, data, FALSE);
  g_assert_true (dfi_downloader_add_part (fx->d, p, TRUE, NULL));
  g_assert_cmpint (p->state, ==, DF_PART_STATE_DONE);
  g_assert_cmpuint (fx->handed, ==, 1);
  g_assert_cmpuint (fx->res.parts_present, ==, 1); /* nothing downloaded in this run */
  g_assert_cmpuint (fx->res.parts_downloaded, ==, 0);
  g_assert_cmpuint (fx->res.bytes_reused, ==, 2 * RS + 5);
  struct stat st;
  g_assert_cmpint (fstatat (fx->store.dfd, "0", &st, 0), ==, 0);
  g_assert_cmpint (fstatat (fx->store.dfd, "0.ranges", &st, 0), ==, -1);
}

/* Every range recorded, bytes wrong: a record may reach the disk before
 * its bytes, so this proves nothing against a mirror. */
static void
test_recorded_bad_blames_nobody (Fixture *fx, gconstpointer unused)
{
  g_autofree guint8 *data = pattern (3 * RS, 3);
  g_autofree guint8 *stale = pattern (3 * RS, 3);
  stale[RS + 1] ^= 0x80;
  DfStorePart *p = setup_part (fx, 3 * RS, data, stale, FALSE);
  p->mirrors_used = 1; /* even so */
  g_assert_true (dfi_downloader_add_part (fx->d, p, TRUE, NULL));
  g_assert_null (dfi_downloader_get_error (fx->d));
  g_assert_cmpint (p->state, ==, DF_PART_STATE_WANTED);
  g_assert_cmpuint (p->generation, ==, 1);
  g_assert_cmpuint (p->remaining, ==, 3);
  g_assert_cmpuint (p->corrupt, ==, 1);
  for (guint r = 0; r < 3; r++)
    g_assert_true (p->ranges[r].queued);
  g_assert_cmpuint (fx->handed, ==, 0);
  g_assert_cmpuint (fx->res.mirror_switches, ==, 0);
  g_assert_cmpint (dfi_downloader_current_mirror (fx->d), ==, 0);
  struct stat st;
  g_assert_cmpint (fstatat (fx->store.dfd, "0.partial", &st, 0), ==, -1);
  g_assert_cmpint (fstatat (fx->store.dfd, "0.ranges", &st, 0), ==, -1);
}

static void
test_not_needed (Fixture *fx, gconstpointer unused)
{
  g_autofree guint8 *data = pattern (RS, 4);
  DfStorePart *p = setup_part (fx, RS, data, NULL, FALSE);
  g_assert_true (dfi_downloader_add_part (fx->d, p, FALSE, NULL));
  g_assert_cmpint (p->state, ==, DF_PART_STATE_UNNEEDED);
  g_assert_cmpuint (fx->res.parts_present, ==, 1);
  g_assert_cmpuint (fx->handed, ==, 0);
  g_assert_false (p->ranges[0].queued);
}

static void
test_missing_queued (Fixture *fx, gconstpointer unused)
{
  g_autofree guint8 *data = pattern (2 * RS, 5);
  DfStorePart *p = setup_part (fx, 2 * RS, data, NULL, FALSE);
  g_assert_true (dfi_downloader_add_part (fx->d, p, TRUE, NULL));
  g_assert_cmpint (p->state, ==, DF_PART_STATE_WANTED);
  g_assert_true (p->ranges[0].queued && p->ranges[1].queued);
  g_assert_cmpuint (fx->handed, ==, 0);
}

static void
test_consumer_refuses (Fixture *fx, gconstpointer unused)
{
  g_autofree guint8 *data = pattern (RS, 6);
  DfStorePart *p = setup_part (fx, RS, data, data, TRUE);
  fx->refuse = TRUE;
  g_autoptr (GError) error = NULL;
  g_assert_false (dfi_downloader_add_part (fx->d, p, TRUE, &error));
  g_assert_error (error, DF_ERROR, DF_ERROR_CORRUPT);
  g_assert_cmpstr (error->message, ==, "refused part 0");
}

/* Demotion: once a mirror, one event each, and then the next mirror. */
static void
test_demote (Fixture *fx, gconstpointer unused)
{
  g_assert_cmpuint (dfi_downloader_n_mirrors (fx->d), ==, 2);
  g_assert_cmpstr (dfi_downloader_mirror (fx->d, 1), ==, "http://127.0.0.1:9/b");
  dfi_downloader_demote (fx->d, 0, "bad");
  dfi_downloader_demote (fx->d, 0, "bad again");
  g_assert_cmpuint (fx->res.mirror_switches, ==, 1);
  g_assert_cmpint (dfi_downloader_current_mirror (fx->d), ==, 1);
  dfi_downloader_demote (fx->d, 1, "bad");
  g_assert_cmpint (dfi_downloader_current_mirror (fx->d), ==, -1);
}

/* Ranges go out in order, no more at once than the connections allow. */
static void
test_schedule_order (Fixture *fx, gconstpointer unused)
{
  g_autofree guint8 *data = pattern (4 * RS, 7);
  DfStorePart *p = setup_part (fx, 4 * RS, data, NULL, FALSE);
  g_assert_true (dfi_downloader_add_part (fx->d, p, TRUE, NULL));
  dfi_downloader_schedule (fx->d);
  g_assert_cmpuint (dfi_downloader_n_in_flight (fx->d), ==, 2);
  for (guint i = 0; i < 2; i++)
    {
      guint m = 9;
      const DfStoreRange *r = dfi_downloader_in_flight (fx->d, i, &m);
      g_assert_true (r == &p->ranges[i]);
      g_assert_cmpuint (m, ==, 0);
      g_assert_false (r->queued);
    }
  g_assert_true (p->ranges[2].queued && p->ranges[3].queued);
  g_assert_cmpuint (p->active, ==, 2);
  g_assert_cmpint (p->fd, >=, 0);
  /* Both connections busy: nothing more. */
  dfi_downloader_schedule (fx->d);
  g_assert_cmpuint (dfi_downloader_n_in_flight (fx->d), ==, 2);
}

/* A range done meanwhile leaves the queue; one backing off waits. */
static void
test_schedule_skips (Fixture *fx, gconstpointer unused)
{
  g_autofree guint8 *data = pattern (3 * RS, 8);
  DfStorePart *p = setup_part (fx, 3 * RS, data, NULL, FALSE);
  g_assert_true (dfi_downloader_add_part (fx->d, p, TRUE, NULL));
  g_assert_true (dfi_part_range_done (p, 0));
  p->ranges[1].not_before = g_get_monotonic_time () + (gint64)3600 * G_USEC_PER_SEC;
  dfi_downloader_schedule (fx->d);
  g_assert_cmpuint (dfi_downloader_n_in_flight (fx->d), ==, 1);
  guint m;
  g_assert_true (dfi_downloader_in_flight (fx->d, 0, &m) == &p->ranges[2]);
  g_assert_false (p->ranges[0].queued);
  g_assert_true (p->ranges[1].queued);
}

/* A demoted mirror gets nothing; with every mirror demoted, the ranges
 * stay queued. */
static void
test_schedule_mirrors (Fixture *fx, gconstpointer unused)
{
  g_autofree guint8 *data = pattern (3 * RS, 9);
  DfStorePart *p = setup_part (fx, 3 * RS, data, NULL, FALSE);
  g_assert_true (dfi_downloader_add_part (fx->d, p, TRUE, NULL));
  dfi_downloader_demote (fx->d, 1, "test");
  dfi_downloader_demote (fx->d, 0, "test");
  dfi_downloader_schedule (fx->d);
  g_assert_cmpuint (dfi_downloader_n_in_flight (fx->d), ==, 0);
  for (guint r = 0; r < 3; r++)
    g_assert_true (p->ranges[r].queued);
}

static void
test_schedule_next_mirror (Fixture *fx, gconstpointer unused)
{
  g_autofree guint8 *data = pattern (RS, 10);
  DfStorePart *p = setup_part (fx, RS, data, NULL, FALSE);
  g_assert_true (dfi_downloader_add_part (fx->d, p, TRUE, NULL));
  dfi_downloader_demote (fx->d, 0, "test");
  dfi_downloader_schedule (fx->d);
  g_assert_cmpuint (dfi_downloader_n_in_flight (fx->d), ==, 1);
  guint m = 9;
  g_assert_true (dfi_downloader_in_flight (fx->d, 0, &m) == &p->ranges[0]);
  g_assert_cmpuint (m, ==, 1);
}

/* Part 0 of 2 ranges queued, then every range marked in as delivered in
 * this run by the mirrors in @served_by, the file holding @bytes, and the
 * part settled. */
static DfStorePart *
deliver (Fixture *fx, DfStorePart *p, const guint8 *bytes, guint32 served_by)
{
  g_autoptr (GBytes) b = g_bytes_new (bytes, p->size);
  g_assert_true (dfi_write_file_atomic (fx->store.dfd, "0.partial", b, NULL));
  for (guint r = 0; r < p->n_ranges; r++)
    g_assert_true (dfi_part_range_done (p, r));
  p->mirrors_used = served_by;
  p->downloaded = p->size;
  dfi_downloader_settle_part (fx->d, p);
  return p;
}

/* Delivered whole and right: verified, stored, handed over. */
static void
test_blame_good (Fixture *fx, gconstpointer unused)
{
  g_autofree guint8 *data = pattern (2 * RS, 11);
  DfStorePart *p = setup_part (fx, 2 * RS, data, NULL, FALSE);
  g_assert_true (dfi_downloader_add_part (fx->d, p, TRUE, NULL));
  deliver (fx, p, data, 1u << 1);
  g_assert_null (dfi_downloader_get_error (fx->d));
  g_assert_cmpint (p->state, ==, DF_PART_STATE_DONE);
  g_assert_cmpuint (fx->handed, ==, 1);
  g_assert_cmpuint (fx->res.parts_downloaded, ==, 1);
  g_assert_cmpuint (fx->res.mirror_switches, ==, 0);
  struct stat st;
  g_assert_cmpint (fstatat (fx->store.dfd, "0", &st, 0), ==, 0);
}

/* Bad bytes that one mirror served alone convict it: it is demoted, and
 * the part starts over on the next. */
static void
test_blame_one_mirror (Fixture *fx, gconstpointer unused)
{
  g_autofree guint8 *data = pattern (2 * RS, 12);
  g_autofree guint8 *bad = pattern (2 * RS, 12);
  bad[RS + 7] ^= 1;
  DfStorePart *p = setup_part (fx, 2 * RS, data, NULL, FALSE);
  g_assert_true (dfi_downloader_add_part (fx->d, p, TRUE, NULL));
  deliver (fx, p, bad, 1u << 0);
  g_assert_null (dfi_downloader_get_error (fx->d));
  g_assert_cmpuint (fx->res.mirror_switches, ==, 1);
  g_assert_cmpint (dfi_downloader_current_mirror (fx->d), ==, 1);
  g_assert_cmpint (p->state, ==, DF_PART_STATE_WANTED);
  g_assert_cmpuint (p->corrupt, ==, 1);
  g_assert_cmpuint (p->generation, ==, 1);
  g_assert_cmpuint (p->remaining, ==, 2);
  g_assert_true (p->ranges[0].queued && p->ranges[1].queued);
  g_assert_cmpuint (fx->handed, ==, 0);
  struct stat st;
  g_assert_cmpint (fstatat (fx->store.dfd, "0.partial", &st, 0), ==, -1);
  /* The next mirror serves it right: handed over. */
  deliver (fx, p, data, 1u << 1);
  g_assert_cmpint (p->state, ==, DF_PART_STATE_DONE);
  g_assert_cmpuint (fx->handed, ==, 1);
}

/* Bad bytes from two mirrors cannot say which one lied: no blame. */
static void
test_blame_mixed (Fixture *fx, gconstpointer unused)
{
  g_autofree guint8 *data = pattern (2 * RS, 13);
  g_autofree guint8 *bad = pattern (2 * RS, 13);
  bad[3] ^= 1;
  DfStorePart *p = setup_part (fx, 2 * RS, data, NULL, FALSE);
  g_assert_true (dfi_downloader_add_part (fx->d, p, TRUE, NULL));
  deliver (fx, p, bad, (1u << 0) | (1u << 1));
  g_assert_null (dfi_downloader_get_error (fx->d));
  g_assert_cmpuint (fx->res.mirror_switches, ==, 0);
  g_assert_cmpint (dfi_downloader_current_mirror (fx->d), ==, 0);
  g_assert_cmpint (p->state, ==, DF_PART_STATE_WANTED);
  g_assert_cmpuint (p->corrupt, ==, 1);
}

/* Each mirror convicted in turn: with none left, the fetch fails as
 * corrupt and the part with it. */
static void
test_blame_every_mirror (Fixture *fx, gconstpointer unused)
{
  g_autofree guint8 *data = pattern (2 * RS, 14);
  g_autofree guint8 *bad = pattern (2 * RS, 15);
  DfStorePart *p = setup_part (fx, 2 * RS, data, NULL, FALSE);
  g_assert_true (dfi_downloader_add_part (fx->d, p, TRUE, NULL));
  deliver (fx, p, bad, 1u << 0);
  g_assert_null (dfi_downloader_get_error (fx->d));
  deliver (fx, p, bad, 1u << 1);
  const GError *e = dfi_downloader_get_error (fx->d);
  g_assert_error (e, DF_ERROR, DF_ERROR_CORRUPT);
  g_assert_nonnull (strstr (e->message, "from every mirror"));
  g_assert_cmpint (p->state, ==, DF_PART_STATE_FAILED);
  g_assert_cmpint (dfi_downloader_current_mirror (fx->d), ==, -1);
  g_assert_cmpuint (fx->handed, ==, 0);
}

/* Failures nobody can be blamed for are bounded too: after the mirrors'
 * number plus two, the fetch fails. */
static void
test_blame_bounded (Fixture *fx, gconstpointer unused)
{
  g_autofree guint8 *data = pattern (2 * RS, 16);
  g_autofree guint8 *bad = pattern (2 * RS, 17);
  DfStorePart *p = setup_part (fx, 2 * RS, data, NULL, FALSE);
  g_assert_true (dfi_downloader_add_part (fx->d, p, TRUE, NULL));
  for (guint k = 0; k < 4; k++)
    {
      deliver (fx, p, bad, 3);
      g_assert_null (dfi_downloader_get_error (fx->d));
    }
  deliver (fx, p, bad, 3);
  const GError *e = dfi_downloader_get_error (fx->d);
  g_assert_error (e, DF_ERROR, DF_ERROR_CORRUPT);
  g_assert_nonnull (strstr (e->message, "does not match its SHA-256 from any mirror"));
  g_assert_cmpint (p->state, ==, DF_PART_STATE_FAILED);
  g_assert_cmpuint (fx->res.mirror_switches, ==, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add ("/fetch/downloader/verified-in-store", Fixture, NULL, fixture_setup, test_verified_in_store,
              fixture_teardown);
  g_test_add ("/fetch/downloader/recorded-good", Fixture, NULL, fixture_setup, test_recorded_good, fixture_teardown);
  g_test_add ("/fetch/downloader/recorded-bad-blames-nobody", Fixture, NULL, fixture_setup,
              test_recorded_bad_blames_nobody, fixture_teardown);
  g_test_add ("/fetch/downloader/not-needed", Fixture, NULL, fixture_setup, test_not_needed, fixture_teardown);
  g_test_add ("/fetch/downloader/missing-queued", Fixture, NULL, fixture_setup, test_missing_queued, fixture_teardown);
  g_test_add ("/fetch/downloader/consumer-refuses", Fixture, NULL, fixture_setup, test_consumer_refuses,
              fixture_teardown);
  g_test_add ("/fetch/downloader/demote", Fixture, NULL, fixture_setup, test_demote, fixture_teardown);
  g_test_add ("/fetch/downloader/blame/good", Fixture, NULL, fixture_setup, test_blame_good, fixture_teardown);
  g_test_add ("/fetch/downloader/blame/one-mirror", Fixture, NULL, fixture_setup, test_blame_one_mirror,
              fixture_teardown);
  g_test_add ("/fetch/downloader/blame/mixed", Fixture, NULL, fixture_setup, test_blame_mixed, fixture_teardown);
  g_test_add ("/fetch/downloader/blame/every-mirror", Fixture, NULL, fixture_setup, test_blame_every_mirror,
              fixture_teardown);
  g_test_add ("/fetch/downloader/blame/bounded", Fixture, NULL, fixture_setup, test_blame_bounded, fixture_teardown);
  g_test_add ("/fetch/downloader/schedule/order", Fixture, NULL, fixture_setup, test_schedule_order, fixture_teardown);
  g_test_add ("/fetch/downloader/schedule/skips", Fixture, NULL, fixture_setup, test_schedule_skips, fixture_teardown);
  g_test_add ("/fetch/downloader/schedule/mirrors", Fixture, NULL, fixture_setup, test_schedule_mirrors,
              fixture_teardown);
  g_test_add ("/fetch/downloader/schedule/next-mirror", Fixture, NULL, fixture_setup, test_schedule_next_mirror,
              fixture_teardown);
  return g_test_run ();
}
