/* Unit tests of the HTTP response parsers the fetcher trusts nothing of:
 * Content-Range, status lines, header values, bounded decimals, and the
 * reply checker that judges a response against its request. */
#include "df-http.h"

static void
test_content_range (void)
{
  static const struct
  {
    const char *value;
    gboolean ok;
    guint64 first, last, total;
  } cases[] = {
    { "bytes 0-99/100", TRUE, 0, 99, 100 },
    { "bytes 100-199/1000", TRUE, 100, 199, 1000 },
    { "bytes 5-5/6", TRUE, 5, 5, 6 },
    { "bytes 0-9/*", TRUE, 0, 9, G_MAXUINT64 },
    { "bytes 9223372036854775806-9223372036854775806/9223372036854775807", TRUE, 9223372036854775806ULL,
      9223372036854775806ULL, 9223372036854775807ULL },
    /* Refused */
    { "bytes 0-99/99", FALSE },                   /* last beyond the total */
    { "bytes 10-9/100", FALSE },                  /* last < first */
    { "bytes 0-99/18446744073709551616", FALSE }, /* 20 digits: would overflow */
    { "bytes 0-99/99999999999999999999", FALSE },
    { "bytes 0-9223372036854775808/9223372036854775809", FALSE }, /* beyond 63 bits */
    { "bytes -1-99/100", FALSE },
    { "bytes +0-99/100", FALSE },
    { "bytes 0 -99/100", FALSE },
    { "bytes 0-99/100 ", FALSE },
    { "bytes 0-99", FALSE },
    { "bytes */100", FALSE },
    { "items 0-99/100", FALSE },
    { "bytes=0-99/100", FALSE },
    { "bytes 0x10-99/100", FALSE },
    { "bytes 0-99/", FALSE },
    { "bytes -/", FALSE },
    { "", FALSE },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      guint64 a = 1, b = 2, t = 3;
      gboolean ok = dfi_http_parse_content_range (cases[i].value, &a, &b, &t);
      g_assert_cmpint (ok, ==, cases[i].ok);
      if (ok)
        {
          g_assert_cmpuint (a, ==, cases[i].first);
          g_assert_cmpuint (b, ==, cases[i].last);
          g_assert_cmpuint (t, ==, cases[i].total);
        }
      else
        {
          /* Outputs untouched on refusal. */
          g_assert_cmpuint (a, ==, 1);
          g_assert_cmpuint (b, ==, 2);
          g_assert_cmpuint (t, ==, 3);
        }
    }
}

static void
test_status_line (void)
{
  g_assert_cmpint (dfi_http_parse_status_line ("HTTP/1.1 206 Partial Content\r\n", 31), ==, 206);
  g_assert_cmpint (dfi_http_parse_status_line ("HTTP/2 200\r\n", 12), ==, 200);
  g_assert_cmpint (dfi_http_parse_status_line ("HTTP/1.0 404\r\n", 14), ==, 404);
  g_assert_cmpint (dfi_http_parse_status_line ("HTTP/1.1 20\r\n", 13), ==, -1);
  g_assert_cmpint (dfi_http_parse_status_line ("HTTP/1.1 2000 x\r\n", 17), ==, -1);
  g_assert_cmpint (dfi_http_parse_status_line ("Content-Length: 5\r\n", 19), ==, -1);
  g_assert_cmpint (dfi_http_parse_status_line ("HTTP/", 5), ==, -1);
  /* Length-bounded: a line cut before the code is no status. */
  g_assert_cmpint (dfi_http_parse_status_line ("HTTP/1.1 206", 10), ==, -1);
}

static void
test_header_value (void)
{
  char v[16];
  const char *l = "content-range:  bytes 0-9/10 \r\n";
  g_assert_true (dfi_http_header_value (l, strlen (l), "Content-Range", v, sizeof v));
  g_assert_cmpstr (v, ==, "bytes 0-9/10");
  l = "Content-Rangex: bytes 0-9/10\r\n";
  g_assert_false (dfi_http_header_value (l, strlen (l), "Content-Range", v, sizeof v));
  l = "ETag: \"a-very-long-etag-value\"\r\n";
  g_assert_false (dfi_http_header_value (l, strlen (l), "ETag", v, sizeof v)); /* longer than the buffer */
  l = "ETag:\r\n";
  g_assert_true (dfi_http_header_value (l, strlen (l), "ETag", v, sizeof v));
  g_assert_cmpstr (v, ==, "");
}

static void
test_u63 (void)
{
  guint64 v = 7;
  g_assert_true (dfi_http_parse_u63 ("0", 1, &v) && v == 0);
  g_assert_true (dfi_http_parse_u63 ("9223372036854775807", 19, &v) && v == G_MAXINT64);
  g_assert_false (dfi_http_parse_u63 ("9223372036854775808", 19, &v));
  g_assert_false (dfi_http_parse_u63 ("9999999999999999999", 19, &v));
  g_assert_false (dfi_http_parse_u63 ("12345678901234567890", 20, &v));
  g_assert_false (dfi_http_parse_u63 ("", 0, &v));
  g_assert_false (dfi_http_parse_u63 ("1 ", 2, &v));
}

/* A ranged request for bytes 100-199 of a 1000-byte file. */
static const DfHttpAsk ranged_ask = { .ranged = TRUE, .off = 100, .len = 100, .file_size = 1000, .name = "part 7" };

static DfHttpVerdict
check (const DfHttpAsk *ask, int status, const char *cr, const char *cl, const char *ce, const char *etag,
       guint64 *expect, char **why)
{
  DfHttpReply reply
      = { .status = status, .content_range = cr, .content_length = cl, .content_encoding = ce, .etag = etag };
  return dfi_http_check_reply (ask, &reply, expect, why);
}

/* Asserts the verdict, and that a reason comes exactly with CHANGED and
 * BAD, containing @why_part. */
static void
expect_verdict (const DfHttpAsk *ask, int status, const char *cr, const char *cl, const char *ce, const char *etag,
                DfHttpVerdict want, guint64 want_expect, const char *why_part)
{
  guint64 expect = 12345;
  g_autofree char *why = NULL;
  DfHttpVerdict v = check (ask, status, cr, cl, ce, etag, &expect, &why);
  g_assert_cmpint (v, ==, want);
  if (want == DF_HTTP_REPLY_BAD || want == DF_HTTP_REPLY_CHANGED)
    {
      g_assert_nonnull (why);
      g_assert_nonnull (strstr (why, why_part));
    }
  else
    g_assert_null (why);
  if (want == DF_HTTP_REPLY_RANGE || want == DF_HTTP_REPLY_WHOLE)
    g_assert_cmpuint (expect, ==, want_expect);
}

static void
test_check_reply_range (void)
{
  const DfHttpAsk *a = &ranged_ask;
  expect_verdict (a, 206, "bytes 100-199/1000", "100", "", "", DF_HTTP_REPLY_RANGE, 100, NULL);
  expect_verdict (a, 206, "bytes 100-199/1000", "", "", "\"e1\"", DF_HTTP_REPLY_RANGE, 100, NULL);
  expect_verdict (a, 206, "bytes 100-199/1000", "", "identity", "", DF_HTTP_REPLY_RANGE, 100, NULL);
  expect_verdict (a, 206, "bytes 100-199/1000", "", "IDENTITY", "", DF_HTTP_REPLY_RANGE, 100, NULL);
  /* Another range, another total, an unknown total, a wrong length. */
  expect_verdict (a, 206, "bytes 100-198/1000", "", "", "", DF_HTTP_REPLY_BAD, 0, "asked for bytes 100-199/1000");
  expect_verdict (a, 206, "bytes 0-99/1000", "", "", "", DF_HTTP_REPLY_BAD, 0, "got Content-Range 'bytes 0-99/1000'");
  expect_verdict (a, 206, "bytes 100-199/1001", "", "", "", DF_HTTP_REPLY_BAD, 0, "asked for bytes");
  expect_verdict (a, 206, "bytes 100-199/*", "", "", "", DF_HTTP_REPLY_BAD, 0, "asked for bytes");
  expect_verdict (a, 206, "bytes 100-199/1000", "99", "", "", DF_HTTP_REPLY_BAD, 0, "Content-Length 99 for a 100-byte");
  expect_verdict (a, 206, "", "", "", "", DF_HTTP_REPLY_BAD, 0, "missing or invalid Content-Range");
  expect_verdict (a, 206, "bytes 100-199", "", "", "", DF_HTTP_REPLY_BAD, 0, "missing or invalid Content-Range");
  expect_verdict (a, 206, "bytes 100-199/1000", "1e2", "", "", DF_HTTP_REPLY_BAD, 0, "unparsable Content-Length");
  expect_verdict (a, 206, "bytes 100-199/1000", "", "gzip", "", DF_HTTP_REPLY_BAD, 0, "Content-Encoding 'gzip'");
  /* A 206 to a request without Range. */
  DfHttpAsk whole = { .ranged = FALSE, .off = 0, .len = 1000, .file_size = 1000, .name = "part 7" };
  expect_verdict (&whole, 206, "bytes 0-999/1000", "", "", "", DF_HTTP_REPLY_BAD, 0, "without Range");
}

static void
test_check_reply_whole (void)
{
  const DfHttpAsk *a = &ranged_ask;
  /* A server that ignores Range sends the whole file: taken, as a whole. */
  expect_verdict (a, 200, "", "1000", "", "", DF_HTTP_REPLY_WHOLE, 1000, NULL);
  expect_verdict (a, 200, "", "", "", "", DF_HTTP_REPLY_WHOLE, 1000, NULL);
  expect_verdict (a, 200, "", "999", "", "", DF_HTTP_REPLY_BAD, 0,
                  "server declares 999 bytes, the delta declares 1000");
  expect_verdict (a, 200, "", "", "br", "", DF_HTTP_REPLY_BAD, 0, "Content-Encoding");
  /* A small file of unknown size: the length asked bounds it. */
  DfHttpAsk small = { .ranged = FALSE, .off = 0, .len = 4096, .file_size = G_MAXUINT64, .name = "index" };
  expect_verdict (&small, 200, "", "", "", "", DF_HTTP_REPLY_WHOLE, 4096, NULL);
  expect_verdict (&small, 200, "", "4096", "", "", DF_HTTP_REPLY_WHOLE, 4096, NULL);
  expect_verdict (&small, 200, "", "10", "", "", DF_HTTP_REPLY_WHOLE, 4096, NULL);
  expect_verdict (&small, 200, "", "4097", "", "", DF_HTTP_REPLY_BAD, 0, "at most 4096 are acceptable");
  expect_verdict (&small, 200, "", "99999999999999999999", "", "", DF_HTTP_REPLY_BAD, 0, "unparsable");
}

static void
test_check_reply_status (void)
{
  static const int others[] = { 0, 100, 201, 204, 301, 304, 400, 404, 416, 500, 503, 999 };
  for (guint i = 0; i < G_N_ELEMENTS (others); i++)
    {
      /* The status decides before any header: even a bad one. */
      expect_verdict (&ranged_ask, others[i], "bytes x", "junk", "gzip", "\"other\"", DF_HTTP_REPLY_STATUS, 0, NULL);
    }
}

static void
test_check_reply_validator (void)
{
  DfHttpAsk a = ranged_ask;
  a.validator = "\"v1\"";
  expect_verdict (&a, 206, "bytes 100-199/1000", "", "", "\"v1\"", DF_HTTP_REPLY_RANGE, 100, NULL);
  /* A reply without an ETag cannot say the file changed. */
  expect_verdict (&a, 206, "bytes 100-199/1000", "", "", "", DF_HTTP_REPLY_RANGE, 100, NULL);
  expect_verdict (&a, 206, "bytes 100-199/1000", "", "", "\"v2\"", DF_HTTP_REPLY_CHANGED, 0,
                  "part 7 changed on the server (ETag \"v2\", was \"v1\")");
  /* The change is told before the range is judged. */
  expect_verdict (&a, 206, "bytes 0-1/2", "", "", "\"v2\"", DF_HTTP_REPLY_CHANGED, 0, "changed on the server");
  expect_verdict (&a, 200, "", "5", "", "\"v2\"", DF_HTTP_REPLY_CHANGED, 0, "changed on the server");
  /* An empty validator compares nothing. */
  a.validator = "";
  expect_verdict (&a, 206, "bytes 100-199/1000", "", "", "\"v2\"", DF_HTTP_REPLY_RANGE, 100, NULL);
}

/* Ranges at the edge of 63 bits neither wrap nor pass. */
static void
test_check_reply_edges (void)
{
  DfHttpAsk a = { .ranged = TRUE, .off = G_MAXINT64 - 1, .len = 1, .file_size = G_MAXINT64, .name = "p" };
  expect_verdict (&a, 206, "bytes 9223372036854775806-9223372036854775806/9223372036854775807", "1", "", "",
                  DF_HTTP_REPLY_RANGE, 1, NULL);
  expect_verdict (&a, 206, "bytes 9223372036854775806-9223372036854775807/9223372036854775807", "", "", "",
                  DF_HTTP_REPLY_BAD, 0, "missing or invalid");
  DfHttpAsk one = { .ranged = TRUE, .off = 0, .len = 1, .file_size = 1, .name = "p" };
  expect_verdict (&one, 206, "bytes 0-0/1", "1", "", "", DF_HTTP_REPLY_RANGE, 1, NULL);
  expect_verdict (&one, 200, "", "1", "", "", DF_HTTP_REPLY_WHOLE, 1, NULL);
  expect_verdict (&one, 200, "", "0", "", "", DF_HTTP_REPLY_BAD, 0, "server declares 0 bytes");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/http/content-range", test_content_range);
  g_test_add_func ("/http/status-line", test_status_line);
  g_test_add_func ("/http/header-value", test_header_value);
  g_test_add_func ("/http/u63", test_u63);
  g_test_add_func ("/http/check-reply/range", test_check_reply_range);
  g_test_add_func ("/http/check-reply/whole", test_check_reply_whole);
  g_test_add_func ("/http/check-reply/status", test_check_reply_status);
  g_test_add_func ("/http/check-reply/validator", test_check_reply_validator);
  g_test_add_func ("/http/check-reply/edges", test_check_reply_edges);
  return g_test_run ();
}
