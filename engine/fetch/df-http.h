/* Parsers for the HTTP response fields the fetcher trusts nothing of:
 * status lines, Content-Range and Content-Length. Pure functions of their
 * input, overflow-safe, fuzzable. */
#pragma once

#include <glib.h>

/* Parses an unsigned decimal of at most 19 digits (so it fits in 63 bits)
 * spanning exactly [@s, @s + @len). */
gboolean dfi_http_parse_u63 (const char *s, gsize len, guint64 *out);

/* "bytes FIRST-LAST/TOTAL" (RFC 9110 §14.4). TOTAL "*" gives G_MAXUINT64.
 * Rejects other units, signs, spaces inside numbers, more than 19 digits,
 * LAST < FIRST and LAST >= TOTAL. */
gboolean dfi_http_parse_content_range (const char *value, guint64 *first, guint64 *last, guint64 *total);

/* "HTTP/1.1 206 Partial Content", "HTTP/2 200": the status code, or -1. */
int dfi_http_parse_status_line (const char *line, gsize len);

/* When @line (one raw header line, CRLF included or not) is "@name: value",
 * copies the trimmed value into @out (at most @out_len - 1 bytes; longer
 * values are refused) and returns TRUE. Names compare case-insensitively. */
gboolean dfi_http_header_value (const char *line, gsize len, const char *name, char *out, gsize out_len);

/* What a request asked for, as the reply checker sees it. */
typedef struct
{
  gboolean ranged;       /* a Range header for [off, off + len) was sent */
  guint64 off, len;      /* without Range: @len bounds a reply of unknown size */
  guint64 file_size;     /* of the whole file; G_MAXUINT64 when unknown */
  const char *validator; /* an ETag a reply must repeat if it names one, or NULL */
  const char *name;      /* what is asked for, in messages ("part 3") */
} DfHttpAsk;

/* The final response's status and header values ("" when absent), with
 * control characters already replaced. */
typedef struct
{
  int status;
  const char *content_range, *content_length, *content_encoding, *etag;
} DfHttpReply;

typedef enum
{
  DF_HTTP_REPLY_STATUS,  /* neither 200 nor 206: the status says what failed */
  DF_HTTP_REPLY_RANGE,   /* 206 carrying exactly the bytes asked */
  DF_HTTP_REPLY_WHOLE,   /* 200: the whole file from offset 0 (asked for or Range ignored) */
  DF_HTTP_REPLY_CHANGED, /* the ETag differs from the validator: the file changed */
  DF_HTTP_REPLY_BAD,     /* not an answer to what was asked */
} DfHttpVerdict;

/* Judges a response's headers against @ask: status, Content-Encoding (only
 * identity), Content-Length, ETag against @ask->validator, and for a 206
 * Content-Range, which must be exactly the range asked of a file of
 * @ask->file_size bytes. A pure function. For RANGE and WHOLE, *@expect
 * is the number of body bytes the reply must deliver (an upper bound when
 * the file size is unknown). For CHANGED and BAD, *@why is a newly
 * allocated one-line reason (free with g_free()); otherwise NULL. */
DfHttpVerdict dfi_http_check_reply (const DfHttpAsk *ask, const DfHttpReply *reply, guint64 *expect, char **why);
