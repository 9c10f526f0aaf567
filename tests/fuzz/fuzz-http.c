/* The HTTP response parsers (engine/fetch/df-http.c): status line,
 * Content-Range, Content-Length and header lines, each on the whole input
 * and on its first line; and the reply checker on the response the input's
 * lines make, against the request its "X-Ask: OFF LEN SIZE RANGED" and
 * "X-Validator: ETAG" lines describe (default: bytes 100-199 of 1,000). */
#include <string.h>

#include "df-http.h"
#include "fuzz.h"

/* "X-Ask" values: each a decimal of at most 19 digits; SIZE "*" unknown. */
static void
parse_ask (const char *value, DfHttpAsk *ask)
{
  g_auto (GStrv) f = g_strsplit (value, " ", 5);
  if (g_strv_length (f) < 4)
    return;
  guint64 v[3];
  for (guint i = 0; i < 3; i++)
    if (i == 2 && strcmp (f[i], "*") == 0)
      v[i] = G_MAXUINT64;
    else if (!dfi_http_parse_u63 (f[i], strlen (f[i]), &v[i]))
      return;
  ask->off = v[0];
  ask->len = v[1];
  ask->file_size = v[2];
  ask->ranged = f[3][0] == '1';
}

static void
check_reply (const char *s)
{
  char cr[128] = "", cl[32] = "", ce[64] = "", etag[256] = "", ask_value[96] = "", validator[256] = "";
  int status = -1;
  DfHttpAsk ask = { .ranged = TRUE, .off = 100, .len = 100, .file_size = 1000, .name = "fuzz" };
  g_auto (GStrv) lines = g_strsplit (s, "\n", 64);
  for (guint i = 0; lines[i]; i++)
    {
      const char *l = lines[i];
      gsize len = strlen (l);
      if (status < 0)
        status = dfi_http_parse_status_line (l, len);
      if (!dfi_http_header_value (l, len, "Content-Range", cr, sizeof cr)
          && !dfi_http_header_value (l, len, "Content-Length", cl, sizeof cl)
          && !dfi_http_header_value (l, len, "Content-Encoding", ce, sizeof ce)
          && !dfi_http_header_value (l, len, "ETag", etag, sizeof etag)
          && !dfi_http_header_value (l, len, "X-Ask", ask_value, sizeof ask_value))
        dfi_http_header_value (l, len, "X-Validator", validator, sizeof validator);
    }
  if (ask_value[0])
    parse_ask (ask_value, &ask);
  ask.validator = validator[0] ? validator : NULL;
  DfHttpReply reply = {
    .status = status < 0 ? 206 : status, .content_range = cr, .content_length = cl, .content_encoding = ce, .etag = etag
  };
  guint64 expect = 0;
  g_autofree char *why = NULL;
  DfHttpVerdict v = dfi_http_check_reply (&ask, &reply, &expect, &why);
  /* What the checker promises its callers. */
  switch (v)
    {
    case DF_HTTP_REPLY_RANGE:
      g_assert (reply.status == 206 && ask.ranged && expect == ask.len && why == NULL);
      break;
    case DF_HTTP_REPLY_WHOLE:
      g_assert (reply.status == 200 && why == NULL);
      g_assert (expect == (ask.file_size != G_MAXUINT64 ? ask.file_size : ask.len));
      break;
    case DF_HTTP_REPLY_STATUS:
      g_assert (reply.status != 200 && reply.status != 206 && why == NULL);
      break;
    case DF_HTTP_REPLY_CHANGED:
      g_assert (why != NULL && ask.validator != NULL && strcmp (ask.validator, etag) != 0);
      break;
    case DF_HTTP_REPLY_BAD:
      g_assert (why != NULL);
      break;
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autofree char *s = g_strndup ((const char *)data, size); /* stops at a NUL, as header values do */
  gsize len = strlen (s);
  guint64 a, b, c;
  dfi_http_parse_status_line (s, len);
  dfi_http_parse_content_range (s, &a, &b, &c);
  dfi_http_parse_u63 (s, len, &a);
  char out[64];
  dfi_http_header_value (s, len, "Content-Range", out, sizeof out);
  dfi_http_header_value (s, len, "ETag", out, sizeof out);
  const char *nl = strchr (s, '\n');
  if (nl)
    {
      dfi_http_parse_status_line (s, nl - s);
      dfi_http_parse_content_range (nl + 1, &a, &b, &c);
    }
  check_reply (s);
  return 0;
}
