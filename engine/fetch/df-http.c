#include "df-http.h"

#include <string.h>

gboolean
df_http_parse_u63 (const char *s, gsize len, guint64 *out)
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
df_http_parse_content_range (const char *value, guint64 *first, guint64 *last, guint64 *total)
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
  if (!df_http_parse_u63 (p, dash - p, &a) || !df_http_parse_u63 (dash + 1, slash - dash - 1, &b))
    return FALSE;
  const char *tp = slash + 1;
  if (strcmp (tp, "*") == 0)
    t = G_MAXUINT64;
  else if (!df_http_parse_u63 (tp, strlen (tp), &t))
    return FALSE;
  if (b < a || (t != G_MAXUINT64 && b >= t))
    return FALSE;
  *first = a;
  *last = b;
  *total = t;
  return TRUE;
}

int
df_http_parse_status_line (const char *line, gsize len)
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
df_http_header_value (const char *line, gsize len, const char *name, char *out, gsize out_len)
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
