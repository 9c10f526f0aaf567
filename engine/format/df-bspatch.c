#include "df-bspatch.h"

/* dst[k] = a[k] + b[k] (mod 256), eight bytes at a time: the low seven
 * bits of each byte are added without carrying into the next byte, and the
 * top bit is the sum's parity. */
static void
add_bytes (guint8 *dst, const guint8 *a, const guint8 *b, gsize n)
{
  const guint64 low = G_GUINT64_CONSTANT (0x7f7f7f7f7f7f7f7f), high = ~low;
  gsize k = 0;
  for (; k + 8 <= n; k += 8)
    {
      guint64 x, y;
      memcpy (&x, a + k, 8);
      memcpy (&y, b + k, 8);
      guint64 r = ((x & low) + (y & low)) ^ ((x ^ y) & high);
      memcpy (dst + k, &r, 8);
    }
  for (; k < n; k++)
    dst[k] = a[k] + b[k];
}

/* |seek| and |oldpos| stay below this, so sums of them cannot overflow. */
#define DF_DIFF_POS_MAX ((gint64)DF_SOURCE_WINDOW_MAX * 4)

/* Decodes into @out, or only walks the sections when @out is NULL. */
static gboolean
diff_run (DfPartReader *r, const guint8 *old, gsize old_len, guint8 *out, gsize out_len, GError **error)
{
#define BAD(fmt, ...) return dfi_throw (error, DF_ERROR_INVALID_DELTA, "diff: " fmt, ##__VA_ARGS__)
  guint64 n;
  if (!dfi_part_reader_varint (r, DF_SECTION_CONTROL, &n, error))
    return FALSE;
  gint64 oldpos = 0;
  gsize newpos = 0;
  /* The current run: this many old bytes copied as they are, then this
   * many added to the next bytes of the add section. Runs continue across
   * controls and must end exactly with the diff. */
  guint64 zeros = 0, adds = 0;
  for (guint64 i = 0; i < n; i++)
    {
      guint64 alen, clen, zz;
      if (!dfi_part_reader_varint (r, DF_SECTION_CONTROL, &alen, error)
          || !dfi_part_reader_varint (r, DF_SECTION_CONTROL, &clen, error)
          || !dfi_part_reader_varint (r, DF_SECTION_CONTROL, &zz, error))
        return FALSE;
      if (alen > out_len - newpos || clen > out_len - newpos - alen)
        BAD ("control %" G_GUINT64_FORMAT " produces %" G_GUINT64_FORMAT "+%" G_GUINT64_FORMAT
             " bytes past the %zu-byte result",
             i, alen, clen, out_len);
      if (out && alen > 0 && (oldpos < 0 || (guint64)oldpos > old_len || alen > old_len - (guint64)oldpos))
        BAD ("control %" G_GUINT64_FORMAT " reads old bytes %" G_GINT64_FORMAT "+%" G_GUINT64_FORMAT " outside %zu", i,
             oldpos, alen, old_len);
      for (guint64 left = alen; left > 0;)
        {
          if (zeros == 0 && adds == 0)
            {
              if (!dfi_part_reader_varint (r, DF_SECTION_RUNS, &zeros, error)
                  || !dfi_part_reader_varint (r, DF_SECTION_RUNS, &adds, error))
                return FALSE;
              if (zeros == 0 && adds == 0)
                BAD ("empty run");
              continue;
            }
          if (zeros > 0)
            {
              guint64 k = MIN (zeros, left);
              if (out)
                memcpy (out + newpos, old + oldpos, k);
              zeros -= k, left -= k, newpos += k, oldpos += k;
            }
          else
            {
              guint64 k = MIN (adds, left);
              const guint8 *src = dfi_part_reader_take (r, DF_SECTION_ADD, k, error);
              if (src == NULL)
                return FALSE;
              if (out)
                add_bytes (out + newpos, src, old + oldpos, k);
              adds -= k, left -= k, newpos += k, oldpos += k;
            }
        }
      const guint8 *copy = dfi_part_reader_take (r, DF_SECTION_COPY, clen, error);
      if (copy == NULL)
        return FALSE;
      if (out)
        memcpy (out + newpos, copy, clen);
      newpos += clen;
      /* Zig-zag: even values are positive, odd ones negative. */
      if (zz / 2 > (guint64)DF_DIFF_POS_MAX)
        BAD ("control %" G_GUINT64_FORMAT " seeks too far", i);
      gint64 seek = (zz & 1) ? -(gint64)(zz / 2) - 1 : (gint64)(zz / 2);
      oldpos += seek;
      if (oldpos < -DF_DIFF_POS_MAX || oldpos > DF_DIFF_POS_MAX)
        BAD ("control %" G_GUINT64_FORMAT " moves the old position to %" G_GINT64_FORMAT, i, oldpos);
    }
  if (newpos != out_len)
    BAD ("controls produce %zu bytes, the entry declares %zu", newpos, out_len);
  if (zeros != 0 || adds != 0)
    BAD ("runs go on past the diff");
  return TRUE;
#undef BAD
}

gboolean
dfi_diff_decode (DfPartReader *r, const guint8 *old, gsize old_len, guint8 *out, gsize out_len, GError **error)
{
  g_return_val_if_fail (out != NULL || out_len == 0, FALSE);
  return diff_run (r, old, old_len, out ? out : (guint8 *)"", out_len, error);
}

gboolean
dfi_diff_skip (DfPartReader *r, gsize out_len, GError **error)
{
  return diff_run (r, NULL, 0, NULL, out_len, error);
}
