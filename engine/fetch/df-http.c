#include "df-http.h"

#include <string.h>

gboolean
dfi_http_parse_u63 (const char *s, gsize len, guint64 *out)
{
  if (len == 0 || len > 19)
    return FALSE;
  guint64 v = 0;
  for (gsize i = 0; i < len; i++)
    {
      if (s[i] < '0' || s[i] > '9')
        return FALSE;
      v = v * 10 + (guint64)(s[i] - '0');
    }
  /* 19 digits stay below 10^19 < 2^64: no overflow above; keep 63 bits so
   * sums of two values cannot wrap either. */
  if (v > (guint64)G_MAXINT64)
    return FALSE;
  *out = v;
  return TRUE;
}

gboolean
dfi_http_parse_content_range (const char *value, guint64 *first, guint64 *last, guint64 *total)
{
  if (strncmp (value, "bytes ", 6) != 0)
    return FALSE;
  const char *p = value + 6;
  const char *dash = strchr (p, '-');
  if (dash == NULL)
    return FALSE;
  const char *slash = strchr (dash + 1, '/');
  if (slash == NULL)
    return FALSE;
  guint64 a, b, t;
  if (!dfi_http_parse_u63 (p, dash - p, &a) || !dfi_http_parse_u63 (dash + 1, slash - dash - 1, &b))
    return FALSE;
  const char *tp = slash + 1;
  if (strcmp (tp, "*") == 0)
    t = G_MAXUINT64;
  else if (!dfi_http_parse_u63 (tp, strlen (tp), &t))
    return FALSE;
  if (b < a || (t != G_MAXUINT64 && b >= t))
    return FALSE;
  *first = a;
  *last = b;
  *total = t;
  return TRUE;
}

int
dfi_http_parse_status_line (const char *line, gsize len)
{
  if (len < 5 || strncmp (line, "HTTP/", 5) != 0)
    return -1;
  gsize i = 5;
  while (i < len && line[i] != ' ')
    i++;
  if (i + 4 > len || line[i] != ' ')
    return -1;
  i++;
  for (gsize k = 0; k < 3; k++)
    if (line[i + k] < '0' || line[i + k] > '9')
      return -1;
  if (i + 3 < len && line[i + 3] != ' ' && line[i + 3] != '\r' && line[i + 3] != '\n')
    return -1;
  return (line[i] - '0') * 100 + (line[i + 1] - '0') * 10 + (line[i + 2] - '0');
}

gboolean
dfi_http_header_value (const char *line, gsize len, const char *name, char *out, gsize out_len)
{
  gsize n = strlen (name);
  if (len <= n || g_ascii_strncasecmp (line, name, n) != 0 || line[n] != ':')
    return FALSE;
  gsize a = n + 1, b = len;
  while (a < b && (line[a] == ' ' || line[a] == '\t'))
    a++;
  while (b > a && (line[b - 1] == '\r' || line[b - 1] == '\n' || line[b - 1] == ' ' || line[b - 1] == '\t'))
    b--;
  if (b - a >= out_len)
    return FALSE;
  memcpy (out, line + a, b - a);
  out[b - a] = '\0';
  return TRUE;
}

static DfHttpVerdict bad (char **why, DfHttpVerdict v, const char *fmt, ...) G_GNUC_PRINTF (3, 4);

static DfHttpVerdict
bad (char **why, DfHttpVerdict v, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  *why = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  return v;
}

/* A 206: exactly the range asked, of a file of the size asked. */
static DfHttpVerdict
check_partial (const DfHttpAsk *ask, const DfHttpReply *reply, guint64 cl, guint64 *expect, char **why)
{
  if (!ask->ranged)
    return bad (why, DF_HTTP_REPLY_BAD, "206 reply to a request without Range");
  guint64 a, b, t;
  if (!dfi_http_parse_content_range (reply->content_range, &a, &b, &t))
    return bad (why, DF_HTTP_REPLY_BAD, "206 reply with a missing or invalid Content-Range '%s'", reply->content_range);
  if (a != ask->off || b != ask->off + ask->len - 1 || t != ask->file_size)
    return bad (why, DF_HTTP_REPLY_BAD,
                "asked for bytes %" G_GUINT64_FORMAT "-%" G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT
                ", got Content-Range '%s'",
                ask->off, ask->off + ask->len - 1, ask->file_size, reply->content_range);
  if (cl != G_MAXUINT64 && cl != ask->len)
    return bad (why, DF_HTTP_REPLY_BAD, "Content-Length %" G_GUINT64_FORMAT " for a %" G_GUINT64_FORMAT "-byte range",
                cl, ask->len);
  *expect = ask->len;
  return DF_HTTP_REPLY_RANGE;
}

/* A 200: the whole file, asked for or not (a server may ignore Range). */
static DfHttpVerdict
check_whole (const DfHttpAsk *ask, guint64 cl, guint64 *expect, char **why)
{
  if (ask->file_size != G_MAXUINT64)
    {
      if (cl != G_MAXUINT64 && cl != ask->file_size)
        return bad (why, DF_HTTP_REPLY_BAD,
                    "server declares %" G_GUINT64_FORMAT " bytes, the delta declares %" G_GUINT64_FORMAT, cl,
                    ask->file_size);
      *expect = ask->file_size;
      return DF_HTTP_REPLY_WHOLE;
    }
  if (cl != G_MAXUINT64 && cl > ask->len)
    return bad (why, DF_HTTP_REPLY_BAD,
                "server declares %" G_GUINT64_FORMAT " bytes, at most %" G_GUINT64_FORMAT " are acceptable", cl,
                ask->len);
  *expect = ask->len; /* an upper bound for small files */
  return DF_HTTP_REPLY_WHOLE;
}

DfHttpVerdict
dfi_http_check_reply (const DfHttpAsk *ask, const DfHttpReply *reply, guint64 *expect, char **why)
{
  *why = NULL;
  *expect = 0;
  if (reply->status != 200 && reply->status != 206)
    return DF_HTTP_REPLY_STATUS;
  if (reply->content_encoding[0] && g_ascii_strcasecmp (reply->content_encoding, "identity") != 0)
    return bad (why, DF_HTTP_REPLY_BAD, "server applied Content-Encoding '%s' to a delta file",
                reply->content_encoding);
  guint64 cl = G_MAXUINT64;
  if (reply->content_length[0] && !dfi_http_parse_u63 (reply->content_length, strlen (reply->content_length), &cl))
    return bad (why, DF_HTTP_REPLY_BAD, "unparsable Content-Length '%s'", reply->content_length);
  if (ask->validator && ask->validator[0] && reply->etag[0] && strcmp (ask->validator, reply->etag) != 0)
    return bad (why, DF_HTTP_REPLY_CHANGED, "%s changed on the server (ETag %s, was %s)", ask->name, reply->etag,
                ask->validator);
  if (reply->status == 206)
    return check_partial (ask, reply, cl, expect, why);
  return check_whole (ask, cl, expect, why);
}
