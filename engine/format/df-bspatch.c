#include "df-bspatch.h"

static guint32
rd32 (const guint8 *p)
{
  guint32 v;
  memcpy (&v, p, 4);
  return GUINT32_FROM_LE (v);
}

static gint64
rd64 (const guint8 *p)
{
  guint64 v;
  memcpy (&v, p, 8);
  return (gint64)GUINT64_FROM_LE (v);
}

/* dst[k] = a[k] + b[k] (mod 256), eight bytes at a time: the low seven
 * bits of each byte are added without carrying into the next byte, and the
 * top bit is the sum's parity. The add stream is most of a diff's bytes. */
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

gboolean
df_bspatch (const guint8 *old, gsize old_len, const guint8 *diff, gsize diff_len, guint8 *out, gsize out_len,
            GError **error)
{
#define BAD(fmt, ...) return df_throw (error, DF_ERROR_INVALID_DELTA, "diff: " fmt, ##__VA_ARGS__)
  if (diff_len < 4)
    BAD ("truncated control count");
  guint64 n = rd32 (diff);
  if (n > (diff_len - 4) / DF_DIFF_CONTROL_SIZE)
    BAD ("%" G_GUINT64_FORMAT " controls do not fit in %zu bytes", n, diff_len);
  const guint8 *ctl = diff + 4;
  /* First pass: the add and copy totals must account for every byte. */
  guint64 add_total = 0, copy_total = 0;
  for (guint64 i = 0; i < n; i++)
    {
      add_total += rd32 (ctl + i * DF_DIFF_CONTROL_SIZE);
      copy_total += rd32 (ctl + i * DF_DIFF_CONTROL_SIZE + 4);
    }
  guint64 body = diff_len - 4 - n * DF_DIFF_CONTROL_SIZE;
  if (add_total + copy_total != body || add_total + copy_total != out_len)
    BAD ("controls produce %" G_GUINT64_FORMAT "+%" G_GUINT64_FORMAT " bytes from a %" G_GUINT64_FORMAT
         "-byte body for a %zu-byte result",
         add_total, copy_total, body, out_len);
  const guint8 *add = ctl + n * DF_DIFF_CONTROL_SIZE;
  const guint8 *copy = add + add_total;
  gint64 oldpos = 0;
  gsize newpos = 0;
  for (guint64 i = 0; i < n; i++)
    {
      const guint8 *c = ctl + i * DF_DIFF_CONTROL_SIZE;
      guint32 alen = rd32 (c), clen = rd32 (c + 4);
      gint64 seek = rd64 (c + 8);
      /* newpos stays within out_len: the totals were checked above. */
      if (alen > 0 && (oldpos < 0 || (guint64)oldpos > old_len || alen > old_len - (guint64)oldpos))
        BAD ("control %" G_GUINT64_FORMAT " reads old bytes %" G_GINT64_FORMAT "+%u outside %zu", i, oldpos, alen,
             old_len);
      add_bytes (out + newpos, add, old + oldpos, alen);
      add += alen;
      newpos += alen;
      oldpos += alen;
      memcpy (out + newpos, copy, clen);
      copy += clen;
      newpos += clen;
      /* Keep oldpos in a range where adding the next length cannot
       * overflow; it is range-checked before it is used. */
      if (seek < -(gint64)DF_SOURCE_WINDOW_MAX * 4 || seek > (gint64)DF_SOURCE_WINDOW_MAX * 4)
        BAD ("control %" G_GUINT64_FORMAT " seeks by %" G_GINT64_FORMAT, i, seek);
      oldpos += seek;
      if (oldpos < -(gint64)DF_SOURCE_WINDOW_MAX * 4 || oldpos > (gint64)DF_SOURCE_WINDOW_MAX * 4)
        BAD ("control %" G_GUINT64_FORMAT " moves the old position to %" G_GINT64_FORMAT, i, oldpos);
    }
  g_assert (newpos == out_len);
  return TRUE;
#undef BAD
}
