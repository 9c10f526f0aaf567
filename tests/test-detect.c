/* df-detect's API edges (the content cases are in detect.py): read errors
 * and short files fail with DF_ERROR_IO, cancellation, summaries, names,
 * and a stream of many tiny frames held to the segment limit. */
#include <zlib.h>

#include "df-detect.h"

typedef struct
{
  const guint8 *data;
  gsize size;
  guint64 fail_at;    /* a read reaching this offset fails */
  guint64 reads_past; /* reads the detector made past the end */
  GCancellable *cancel_on_read;
} Mem;

static gssize
mem_read_at (gpointer user_data, void *buf, gsize len, guint64 offset, GError **error)
{
  Mem *m = user_data;
  if (offset + len > m->size)
    m->reads_past++;
  if (offset + len > m->fail_at)
    {
      g_set_error (error, DF_ERROR, DF_ERROR_IO, "test: read at %" G_GUINT64_FORMAT " fails", offset);
      return -1;
    }
  if (m->cancel_on_read)
    g_cancellable_cancel (m->cancel_on_read);
  gsize n = offset < m->size ? MIN (len, m->size - offset) : 0;
  memcpy (buf, m->data + offset, n);
  return n;
}

/* A gzip member of @len bytes of 'a' (zlib's gzip writer). */
static GBytes *
gzip_of (gsize len)
{
  g_autofree guint8 *in = g_malloc (len + 1);
  memset (in, 'a', len);
  z_stream z = { 0 };
  g_assert_cmpint (deflateInit2 (&z, 9, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), ==, Z_OK);
  gsize cap = deflateBound (&z, len) + 32;
  guint8 *out = g_malloc (cap);
  z.next_in = in;
  z.avail_in = len;
  z.next_out = out;
  z.avail_out = cap;
  g_assert_cmpint (deflate (&z, Z_FINISH), ==, Z_STREAM_END);
  gsize n = cap - z.avail_out;
  deflateEnd (&z);
  return g_bytes_new_take (out, n);
}

static void
test_read_error (void)
{
  g_autoptr (GBytes) gz = gzip_of (100000);
  gsize size;
  const guint8 *data = g_bytes_get_data (gz, &size);
  Mem m = { data, size, size / 2, 0, NULL };
  g_autoptr (GError) error = NULL;
  DfDetect *d = dfi_detect_read_at (mem_read_at, &m, size, NULL, 0, NULL, &error);
  g_assert_null (d);
  g_assert_error (error, DF_ERROR, DF_ERROR_IO);
}

static void
test_short_file (void)
{
  g_autoptr (GBytes) gz = gzip_of (1000);
  gsize size;
  const guint8 *data = g_bytes_get_data (gz, &size);
  /* The callback returns 0 before the declared size: the file shrank. */
  Mem m = { data, size, G_MAXUINT64, 0, NULL };
  g_autoptr (GError) error = NULL;
  DfDetect *d = dfi_detect_read_at (mem_read_at, &m, size + 100, NULL, 0, NULL, &error);
  g_assert_null (d);
  g_assert_error (error, DF_ERROR, DF_ERROR_IO);
  g_assert_nonnull (strstr (error->message, "ended"));
}

static void
test_cancel (void)
{
  g_autoptr (GBytes) gz = gzip_of (1000);
  gsize size;
  const guint8 *data = g_bytes_get_data (gz, &size);
  g_autoptr (GCancellable) c = g_cancellable_new ();
  Mem m = { data, size, G_MAXUINT64, 0, c };
  g_autoptr (GError) error = NULL;
  DfDetect *d = dfi_detect_read_at (mem_read_at, &m, size, NULL, 0, c, &error);
  g_assert_null (d);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
}

/* 300 members of 10 bytes each, then a limit of 100 segments: 99 members,
 * then one plain run to the end marked as the limit. */
static void
test_segment_limit (void)
{
  g_autoptr (GBytes) one = gzip_of (10);
  gsize len;
  const guint8 *p = g_bytes_get_data (one, &len);
  g_autoptr (GByteArray) all = g_byte_array_new ();
  for (guint i = 0; i < 300; i++)
    g_byte_array_append (all, p, len);
  Mem m = { all->data, all->len, G_MAXUINT64, 0, NULL };
  DfDetectLimits lim;
  dfi_detect_limits_default (&lim);
  lim.segments_max = 100;
  g_autoptr (GError) error = NULL;
  g_autoptr (DfDetect) d = dfi_detect_read_at (mem_read_at, &m, all->len, &lim, 0, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (d->n_segments, ==, 100);
  for (guint i = 0; i < 99; i++)
    {
      g_assert_cmpint (d->segments[i].kind, ==, DF_SEGMENT_GZIP);
      g_assert_cmpuint (d->segments[i].offset, ==, i * len);
      g_assert_cmpuint (d->segments[i].decompressed_size, ==, 10);
    }
  g_assert_cmpint (d->segments[99].kind, ==, DF_SEGMENT_PLAIN);
  g_assert_cmpuint (d->segments[99].offset, ==, 99 * len);
  g_assert_cmpuint (d->segments[99].length, ==, 201 * len);
  g_assert_true (d->segments[99].flags & DF_SEGMENT_LIMIT);
  g_assert_true (d->limited);
  g_assert_cmpuint (m.reads_past, ==, 0);

  DfDetectSummary s, total = { 0 };
  dfi_detect_summarize (d, &s);
  g_assert_cmpuint (s.count[DF_SEGMENT_GZIP], ==, 99);
  g_assert_cmpuint (s.file_bytes[DF_SEGMENT_GZIP], ==, 99 * len);
  g_assert_cmpuint (s.decompressed_bytes[DF_SEGMENT_GZIP], ==, 990);
  g_assert_cmpuint (s.file_bytes[DF_SEGMENT_PLAIN], ==, 201 * len);
  dfi_detect_summary_add (&total, &s);
  dfi_detect_summary_add (&total, &s);
  g_assert_cmpuint (total.count[DF_SEGMENT_GZIP], ==, 198);
  g_autofree char *text = dfi_detect_summary_to_string (&s);
  g_assert_nonnull (strstr (text, "gzip 99 ("));
  g_assert_nonnull (strstr (text, "-> 990 bytes)"));
  g_assert_true (g_str_has_suffix (text, ", limit reached"));
}

/* A decompression bomb under a small output budget: the member is plain,
 * the output produced stops near the budget. */
static void
test_budget (void)
{
  g_autoptr (GBytes) gz = gzip_of (50 * 1024 * 1024);
  gsize size;
  const guint8 *data = g_bytes_get_data (gz, &size);
  Mem m = { data, size, G_MAXUINT64, 0, NULL };
  DfDetectLimits lim;
  dfi_detect_limits_default (&lim);
  lim.decompressed_max = 1024 * 1024;
  g_autoptr (GError) error = NULL;
  g_autoptr (DfDetect) d = dfi_detect_read_at (mem_read_at, &m, size, &lim, 0, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (d->n_segments, ==, 1);
  g_assert_cmpint (d->segments[0].kind, ==, DF_SEGMENT_PLAIN);
  g_assert_true (d->segments[0].flags & DF_SEGMENT_LIMIT);
  g_assert_cmpuint (d->decompressed_total, <=, lim.decompressed_max + 64 * 1024);
}

static void
test_names (void)
{
  g_assert_cmpstr (dfi_segment_kind_name (DF_SEGMENT_PLAIN), ==, "plain");
  g_assert_cmpstr (dfi_segment_kind_name (DF_SEGMENT_ZSTD_SKIPPABLE), ==, "zstd-skippable");
  g_assert_cmpstr (dfi_segment_kind_name (DF_SEGMENT_BZIMAGE_SETUP), ==, "bzimage-setup");
  g_assert_cmpstr (dfi_segment_kind_name (DF_SEGMENT_KIND_COUNT), ==, "?");
  for (guint k = 0; k < DF_SEGMENT_KIND_COUNT; k++)
    g_assert_cmpstr (dfi_segment_kind_name (k), !=, "?");
  dfi_detect_free (NULL);
  DfDetectLimits lim;
  dfi_detect_limits_default (&lim);
  g_assert_cmpuint (lim.depth_max, ==, DF_DETECT_DEPTH_MAX);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/detect/read-error", test_read_error);
  g_test_add_func ("/detect/short-file", test_short_file);
  g_test_add_func ("/detect/cancel", test_cancel);
  g_test_add_func ("/detect/segment-limit", test_segment_limit);
  g_test_add_func ("/detect/budget", test_budget);
  g_test_add_func ("/detect/names", test_names);
  return g_test_run ();
}
