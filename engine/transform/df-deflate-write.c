/* The bit-exact deflate writer: a header exactly as it was transmitted and
 * tokens with the canonical codes of their lengths. */
#include "df-deflate-private.h"

void
dfi_bit_writer_init (DfBitWriter *w, DfDeflateWriteFunc write, gpointer write_data)
{
  w->acc = 0;
  w->n = 0;
  w->len = 0;
  w->total = 0;
  w->write = write;
  w->write_data = write_data;
}

gboolean
dfi_bit_writer_flush_buf (DfBitWriter *w, GError **error)
{
  if (w->len == 0)
    return TRUE;
  if (!w->write (w->write_data, w->buf, w->len, error))
    return FALSE;
  w->total += w->len;
  w->len = 0;
  return TRUE;
}

void
dfi_huff_encoder_build (DfHuffEncoder *e, const guint8 *lens, guint n)
{
  guint count[16] = { 0 }, next[16];
  memset (e, 0, sizeof *e);
  for (guint i = 0; i < n; i++)
    count[lens[i]]++;
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
      e->len[s] = (guint8)l;
      if (l == 0)
        continue;
      guint c = next[l]++, rev = 0;
      for (guint i = 0; i < l; i++)
        rev |= ((c >> i) & 1) << (l - 1 - i);
      e->code[s] = (guint16)rev;
    }
}

gboolean
dfi_deflate_header_write (DfBitWriter *w, const DfDeflateHeader *h, GError **error)
{
  if (!dfi_bit_writer_put (w, h->hlit - 257, 5, error) || !dfi_bit_writer_put (w, h->hdist - 1, 5, error)
      || !dfi_bit_writer_put (w, h->hclen - 4, 4, error))
    return FALSE;
  for (guint i = 0; i < h->hclen; i++)
    if (!dfi_bit_writer_put (w, h->clen_lens[dfi_deflate_clen_order[i]], 3, error))
      return FALSE;
  DfHuffEncoder ce;
  dfi_huff_encoder_build (&ce, h->clen_lens, 19);
  static const guint8 ebits[3] = { 2, 3, 7 };
  for (guint i = 0; i < h->ncl; i++)
    {
      guint sym = h->cl[i] & 31, extra = h->cl[i] >> 5;
      if (ce.len[sym] == 0)
        return dfi_throw (error, DF_ERROR_INVALID_DELTA, "deflate: code length symbol without a code");
      if (!dfi_bit_writer_put (w, ce.code[sym], ce.len[sym], error))
        return FALSE;
      if (sym >= 16 && !dfi_bit_writer_put (w, extra, ebits[sym - 16], error))
        return FALSE;
    }
  return TRUE;
}

gboolean
dfi_deflate_token_write (DfBitWriter *w, const DfHuffEncoder *lit, const DfHuffEncoder *dist, guint32 tok,
                         GError **error)
{
  if (!(tok & DF_DEFLATE_TOK_MATCH))
    {
      if (lit->len[tok] == 0)
        return dfi_throw (error, DF_ERROR_INVALID_DELTA, "deflate: literal without a code");
      return dfi_bit_writer_put (w, lit->code[tok], lit->len[tok], error);
    }
  guint len = DF_DEFLATE_TOK_LEN (tok), d = DF_DEFLATE_TOK_DIST (tok);
  guint lc = dfi_deflate_len_code (len), dc = dfi_deflate_dist_code (d);
  guint ls = 257 + lc;
  if (lit->len[ls] == 0 || dist->len[dc] == 0)
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "deflate: match without a code");
  /* Code and extra bits together are at most 15 + 5 and 15 + 13 bits. */
  return dfi_bit_writer_put (w, lit->code[ls] | (len - dfi_deflate_len_base[lc]) << lit->len[ls],
                             lit->len[ls] + dfi_deflate_len_extra[lc], error)
         && dfi_bit_writer_put (w, dist->code[dc] | (d - dfi_deflate_dist_base[dc]) << dist->len[dc],
                                dist->len[dc] + dfi_deflate_dist_extra[dc], error);
}
