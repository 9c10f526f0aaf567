/* The deflate tokeniser: blocks, headers as transmitted, tokens and the
 * decompressed content, every field checked (the stream is hostile). */
#include "df-deflate-private.h"

const guint16 dfi_deflate_len_base[29] = { 3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                           31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258 };
const guint8 dfi_deflate_len_extra[29]
    = { 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0 };
const guint16 dfi_deflate_dist_base[30]
    = { 1,   2,   3,   4,   5,   7,    9,    13,   17,   25,   33,   49,   65,    97,    129,
        193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577 };
const guint8 dfi_deflate_dist_extra[30]
    = { 0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13 };
const guint8 dfi_deflate_clen_order[19] = { 16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15 };

guint
dfi_deflate_len_code (guint len)
{
  if (len == 258)
    return 28;
  guint x = len - 3;
  if (x < 8)
    return x;
  guint n = 31 - __builtin_clz (x);
  return 4 * (n - 1) + ((x >> (n - 2)) & 3);
}

guint
dfi_deflate_dist_code (guint dist)
{
  if (dist <= 4)
    return dist - 1;
  guint x = dist - 1, n = 31 - __builtin_clz (x);
  return 2 * n + ((x >> (n - 1)) & 1);
}

void
dfi_deflate_fixed_lengths (guint8 lit[288], guint8 dist[32])
{
  for (guint i = 0; i < 288; i++)
    lit[i] = i < 144 ? 8 : i < 256 ? 9 : i < 280 ? 7 : 8;
  for (guint i = 0; i < 32; i++)
    dist[i] = 5;
}

void
dfi_bit_reader_init (DfBitReader *r, const guint8 *data, gsize len)
{
  *r = (DfBitReader){ .data = data, .len = len };
}

gboolean
dfi_deflate_lengths_ok (const guint8 *lens, guint n)
{
  guint count[16] = { 0 };
  for (guint i = 0; i < n; i++)
    {
      if (lens[i] > 15)
        return FALSE;
      count[lens[i]]++;
    }
  gint64 left = 1;
  for (guint l = 1; l <= 15; l++)
    {
      left = left * 2 - count[l];
      if (left < 0)
        return FALSE;
    }
  return TRUE;
}

void
dfi_huff_decoder_build (DfHuffDecoder *d, const guint8 *lens, guint n)
{
  guint count[16] = { 0 }, next[16];
  guint maxl = 0;
  for (guint i = 0; i < n; i++)
    {
      count[lens[i]]++;
      maxl = MAX (maxl, lens[i]);
    }
  d->bits = maxl;
  d->table = d->storage;
  if (maxl == 0)
    return;
  memset (d->table, 0, sizeof (guint16) << maxl);
  count[0] = 0;
  guint code = 0;
  for (guint l = 1; l <= 15; l++)
    {
      code = (code + count[l - 1]) << 1;
      next[l] = code;
    }
  for (guint s = 0; s < n; s++)
    {
      guint l = lens[s];
      if (l == 0)
        continue;
      guint c = next[l]++, rev = 0;
      for (guint i = 0; i < l; i++)
        rev |= ((c >> i) & 1) << (l - 1 - i);
      for (guint k = rev; k < (1u << maxl); k += 1u << l)
        d->table[k] = (guint16)(s | l << 9);
    }
}

static gboolean
bad (GError **error, int code, const DfBitReader *r, const char *what)
{
  return dfi_throw (error, code, "deflate: %s at bit %" G_GUINT64_FORMAT, what, dfi_bit_reader_tell (r));
}

gboolean
dfi_deflate_header_read (DfBitReader *r, DfDeflateHeader *h, int code, GError **error)
{
  memset (h, 0, sizeof *h);
  h->hlit = dfi_bit_reader_get (r, 5) + 257;
  h->hdist = dfi_bit_reader_get (r, 5) + 1;
  h->hclen = dfi_bit_reader_get (r, 4) + 4;
  if (h->hlit > 286 || h->hdist > 30)
    return bad (error, code, r, "too many length or distance codes");
  for (guint i = 0; i < h->hclen; i++)
    h->clen_lens[dfi_deflate_clen_order[i]] = (guint8)dfi_bit_reader_get (r, 3);
  if (!dfi_deflate_lengths_ok (h->clen_lens, 19))
    return bad (error, code, r, "over-subscribed code length code");
  g_autofree DfHuffDecoder *cd = g_new (DfHuffDecoder, 1);
  dfi_huff_decoder_build (cd, h->clen_lens, 19);
  guint8 lens[320];
  guint n = 0, total = h->hlit + h->hdist;
  while (n < total)
    {
      int sym = dfi_huff_decode (cd, r);
      if (sym < 0 || dfi_bit_reader_overrun (r))
        return bad (error, code, r, "invalid code length code");
      guint extra = 0, rep = 1, val = sym;
      if (sym == 16)
        {
          if (n == 0)
            return bad (error, code, r, "length repeat with no length before it");
          extra = dfi_bit_reader_get (r, 2);
          rep = 3 + extra;
          val = lens[n - 1];
        }
      else if (sym == 17)
        {
          extra = dfi_bit_reader_get (r, 3);
          rep = 3 + extra;
          val = 0;
        }
      else if (sym == 18)
        {
          extra = dfi_bit_reader_get (r, 7);
          rep = 11 + extra;
          val = 0;
        }
      if (n + rep > total)
        return bad (error, code, r, "code lengths run past their count");
      h->cl[h->ncl++] = (guint16)(sym | extra << 5);
      for (guint i = 0; i < rep; i++)
        lens[n++] = (guint8)val;
    }
  if (dfi_bit_reader_overrun (r))
    return bad (error, code, r, "stream ends in a block header");
  memcpy (h->lit, lens, h->hlit);
  memcpy (h->dist, lens + h->hlit, h->hdist);
  if (h->lit[256] == 0)
    return bad (error, code, r, "no end-of-block code");
  if (!dfi_deflate_lengths_ok (h->lit, 288) || !dfi_deflate_lengths_ok (h->dist, 32))
    return bad (error, code, r, "over-subscribed literal/length or distance code");
  return TRUE;
}

void
dfi_deflate_parsed_clear (DfDeflateParsed *p)
{
  if (p->content)
    g_byte_array_unref (p->content);
  if (p->tokens)
    g_array_unref (p->tokens);
  if (p->blocks)
    g_array_unref (p->blocks);
  memset (p, 0, sizeof *p);
}

#define INVALID DF_ERROR_INVALID_ARGUMENT

/* Decodes the tokens of a fixed or dynamic block. */
static gboolean
parse_tokens (DfBitReader *r, const DfHuffDecoder *lit, const DfHuffDecoder *dist, const DfDeflateLimits *limits,
              DfDeflateParsed *out, gboolean keep, GError **error)
{
  GByteArray *c = out->content;
  for (;;)
    {
      int sym = dfi_huff_decode (lit, r);
      if (sym < 0 || dfi_bit_reader_overrun (r))
        return bad (error, INVALID, r, sym < 0 ? "invalid literal/length code" : "stream ends in a block");
      if (sym < 256)
        {
          if (c->len >= limits->max_output)
            return bad (error, INVALID, r, "content over the limit");
          guint8 b = (guint8)sym;
          g_byte_array_append (c, &b, 1);
          if (keep)
            {
              guint32 t = b;
              g_array_append_val (out->tokens, t);
            }
          continue;
        }
      if (sym == 256)
        return TRUE;
      if (sym > 285)
        return bad (error, INVALID, r, "invalid length symbol");
      guint li = sym - 257;
      guint e = dfi_bit_reader_get (r, dfi_deflate_len_extra[li]);
      guint len = dfi_deflate_len_base[li] + e;
      if (len > 258)
        return bad (error, INVALID, r, "length 258 coded with symbol 284");
      int ds = dfi_huff_decode (dist, r);
      if (ds < 0 || ds > 29)
        return bad (error, INVALID, r, "invalid distance code");
      guint d = dfi_deflate_dist_base[ds] + dfi_bit_reader_get (r, dfi_deflate_dist_extra[ds]);
      if (dfi_bit_reader_overrun (r))
        return bad (error, INVALID, r, "stream ends in a block");
      if (d > c->len)
        return bad (error, INVALID, r, "distance before the start of the content");
      if ((guint64)c->len + len > limits->max_output)
        return bad (error, INVALID, r, "content over the limit");
      guint old = c->len;
      g_byte_array_set_size (c, old + len);
      guint8 *p = c->data + old;
      for (guint i = 0; i < len; i++)
        p[i] = p[(gssize)i - d];
      if (keep)
        {
          guint32 t = dfi_deflate_tok_match (len, d);
          g_array_append_val (out->tokens, t);
        }
    }
}

gboolean
dfi_deflate_parse (const guint8 *stream, gsize len, const DfDeflateLimits *limits, gboolean keep, gsize *consumed,
                   DfDeflateParsed *out, GError **error)
{
  memset (out, 0, sizeof *out);
  if (len > limits->max_input)
    return dfi_throw (error, INVALID, "deflate: stream of %" G_GSIZE_FORMAT " bytes is over the limit", len);
  out->content = g_byte_array_new ();
  out->tokens = g_array_new (FALSE, FALSE, sizeof (guint32));
  out->blocks = g_array_new (FALSE, TRUE, sizeof (DfDeflateBlock));
  DfBitReader r;
  dfi_bit_reader_init (&r, stream, len);
  g_autofree DfHuffDecoder *lit = g_new (DfHuffDecoder, 1);
  g_autofree DfHuffDecoder *dist = g_new (DfHuffDecoder, 1);
  g_autofree DfDeflateHeader *h = g_new (DfDeflateHeader, 1);
  gboolean fixed_built = FALSE;
  for (;;)
    {
      DfDeflateBlock b = { 0 };
      b.start_bit = dfi_bit_reader_tell (&r);
      b.final = (guint8)dfi_bit_reader_get (&r, 1);
      b.type = (guint8)dfi_bit_reader_get (&r, 2);
      b.tok_start = out->tokens->len;
      b.data_start = out->content->len;
      if (dfi_bit_reader_overrun (&r))
        {
          dfi_deflate_parsed_clear (out);
          return bad (error, INVALID, &r, "stream ends before its final block");
        }
      if (b.type == 3)
        {
          dfi_deflate_parsed_clear (out);
          return bad (error, INVALID, &r, "invalid block type");
        }
      if (b.type == 0)
        {
          guint n = r.nbits % 8;
          b.pad = (guint8)dfi_bit_reader_get (&r, n);
          guint32 v = dfi_bit_reader_get (&r, 32);
          if (dfi_bit_reader_overrun (&r))
            {
              dfi_deflate_parsed_clear (out);
              return bad (error, INVALID, &r, "stream ends in a stored block header");
            }
          guint slen = v & 0xffff;
          if ((v >> 16) != (~slen & 0xffff))
            {
              dfi_deflate_parsed_clear (out);
              return bad (error, INVALID, &r, "stored block length check fails");
            }
          /* The reader holds whole bytes now: drain it, then copy. */
          gsize at = (gsize)(dfi_bit_reader_tell (&r) / 8);
          if (slen > len - at)
            {
              dfi_deflate_parsed_clear (out);
              return bad (error, INVALID, &r, "stream ends in a stored block");
            }
          if ((guint64)out->content->len + slen > limits->max_output)
            {
              dfi_deflate_parsed_clear (out);
              return bad (error, INVALID, &r, "content over the limit");
            }
          g_byte_array_append (out->content, stream + at, slen);
          r.pos = at + slen;
          r.virt = 0;
          r.bitbuf = 0;
          r.nbits = 0;
          b.stored_len = slen;
        }
      else
        {
          if (b.type == 2)
            {
              b.hdr_bit = dfi_bit_reader_tell (&r);
              if (!dfi_deflate_header_read (&r, h, INVALID, error))
                {
                  dfi_deflate_parsed_clear (out);
                  return FALSE;
                }
              b.hdr_bits = (guint32)(dfi_bit_reader_tell (&r) - b.hdr_bit);
              dfi_huff_decoder_build (lit, h->lit, 288);
              dfi_huff_decoder_build (dist, h->dist, 32);
              fixed_built = FALSE;
            }
          else if (!fixed_built)
            {
              guint8 fl[288], fd[32];
              dfi_deflate_fixed_lengths (fl, fd);
              dfi_huff_decoder_build (lit, fl, 288);
              dfi_huff_decoder_build (dist, fd, 32);
              fixed_built = TRUE;
            }
          if (!parse_tokens (&r, lit, dist, limits, out, keep, error))
            {
              dfi_deflate_parsed_clear (out);
              return FALSE;
            }
        }
      b.tok_count = out->tokens->len - b.tok_start;
      g_array_append_val (out->blocks, b);
      if (b.final)
        break;
    }
  guint n = r.nbits % 8;
  out->trailing = (guint8)dfi_bit_reader_get (&r, n);
  if (dfi_bit_reader_overrun (&r))
    {
      dfi_deflate_parsed_clear (out);
      return bad (error, INVALID, &r, "stream ends in its final block");
    }
  out->consumed = (gsize)(dfi_bit_reader_tell (&r) / 8);
  if (consumed)
    *consumed = out->consumed;
  else if (out->consumed != len)
    {
      gsize extra = len - out->consumed;
      dfi_deflate_parsed_clear (out);
      return dfi_throw (error, INVALID, "deflate: %" G_GSIZE_FORMAT " bytes after the final block", extra);
    }
  return TRUE;
}
