/* Parsers for the HTTP response fields the fetcher trusts nothing of:
 * status lines, Content-Range and Content-Length. Pure functions of their
 * input, overflow-safe, fuzzable. */
#pragma once

#include <glib.h>

/* Parses an unsigned decimal of at most 19 digits (so it fits in 63 bits)
 * spanning exactly [@s, @s + @len). */
gboolean df_http_parse_u63 (const char *s, gsize len, guint64 *out);

/* "bytes FIRST-LAST/TOTAL" (RFC 9110 §14.4). TOTAL "*" gives G_MAXUINT64.
 * Rejects other units, signs, spaces inside numbers, more than 19 digits,
 * LAST < FIRST and LAST >= TOTAL. */
gboolean df_http_parse_content_range (const char *value, guint64 *first, guint64 *last, guint64 *total);

/* "HTTP/1.1 206 Partial Content", "HTTP/2 200": the status code, or -1. */
int df_http_parse_status_line (const char *line, gsize len);

/* When @line (one raw header line, CRLF included or not) is "@name: value",
 * copies the trimmed value into @out (at most @out_len - 1 bytes; longer
 * values are refused) and returns TRUE. Names compare case-insensitively. */
gboolean df_http_header_value (const char *line, gsize len, const char *name, char *out, gsize out_len);
