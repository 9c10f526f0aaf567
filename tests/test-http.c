/* Unit tests of the HTTP response parsers the fetcher trusts nothing of:
 * Content-Range, status lines, header values, bounded decimals. */
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
    { "bytes 0-99/99", FALSE },                  /* last beyond the total */
    { "bytes 10-9/100", FALSE },                 /* last < first */
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
      gboolean ok = df_http_parse_content_range (cases[i].value, &a, &b, &t);
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
  g_assert_cmpint (df_http_parse_status_line ("HTTP/1.1 206 Partial Content\r\n", 31), ==, 206);
  g_assert_cmpint (df_http_parse_status_line ("HTTP/2 200\r\n", 12), ==, 200);
  g_assert_cmpint (df_http_parse_status_line ("HTTP/1.0 404\r\n", 14), ==, 404);
  g_assert_cmpint (df_http_parse_status_line ("HTTP/1.1 20\r\n", 13), ==, -1);
  g_assert_cmpint (df_http_parse_status_line ("HTTP/1.1 2000 x\r\n", 17), ==, -1);
  g_assert_cmpint (df_http_parse_status_line ("Content-Length: 5\r\n", 19), ==, -1);
  g_assert_cmpint (df_http_parse_status_line ("HTTP/", 5), ==, -1);
  /* Length-bounded: a line cut before the code is no status. */
  g_assert_cmpint (df_http_parse_status_line ("HTTP/1.1 206", 10), ==, -1);
}

static void
test_header_value (void)
{
  char v[16];
  const char *l = "content-range:  bytes 0-9/10 \r\n";
  g_assert_true (df_http_header_value (l, strlen (l), "Content-Range", v, sizeof v));
  g_assert_cmpstr (v, ==, "bytes 0-9/10");
  l = "Content-Rangex: bytes 0-9/10\r\n";
  g_assert_false (df_http_header_value (l, strlen (l), "Content-Range", v, sizeof v));
  l = "ETag: \"a-very-long-etag-value\"\r\n";
  g_assert_false (df_http_header_value (l, strlen (l), "ETag", v, sizeof v)); /* longer than the buffer */
  l = "ETag:\r\n";
  g_assert_true (df_http_header_value (l, strlen (l), "ETag", v, sizeof v));
  g_assert_cmpstr (v, ==, "");
}

static void
test_u63 (void)
{
  guint64 v = 7;
  g_assert_true (df_http_parse_u63 ("0", 1, &v) && v == 0);
  g_assert_true (df_http_parse_u63 ("9223372036854775807", 19, &v) && v == G_MAXINT64);
  g_assert_false (df_http_parse_u63 ("9223372036854775808", 19, &v));
  g_assert_false (df_http_parse_u63 ("9999999999999999999", 19, &v));
  g_assert_false (df_http_parse_u63 ("12345678901234567890", 20, &v));
  g_assert_false (df_http_parse_u63 ("", 0, &v));
  g_assert_false (df_http_parse_u63 ("1 ", 2, &v));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/http/content-range", test_content_range);
  g_test_add_func ("/http/status-line", test_status_line);
  g_test_add_func ("/http/header-value", test_header_value);
  g_test_add_func ("/http/u63", test_u63);
  return g_test_run ();
}
