/* The HTTP response parsers (engine/fetch/df-http.c): status line,
 * Content-Range, Content-Length and header lines, each on the whole input
 * and on its first line. */
#include <string.h>

#include "df-http.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autofree char *s = g_strndup ((const char *)data, size); /* stops at a NUL, as header values do */
  gsize len = strlen (s);
  guint64 a, b, c;
  df_http_parse_status_line (s, len);
  df_http_parse_content_range (s, &a, &b, &c);
  df_http_parse_u63 (s, len, &a);
  char out[64];
  df_http_header_value (s, len, "Content-Range", out, sizeof out);
  df_http_header_value (s, len, "ETag", out, sizeof out);
  const char *nl = strchr (s, '\n');
  if (nl)
    {
      df_http_parse_status_line (s, nl - s);
      df_http_parse_content_range (nl + 1, &a, &b, &c);
    }
  return 0;
}
