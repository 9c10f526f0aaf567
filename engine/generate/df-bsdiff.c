#include "df-bsdiff.h"

#include <divsufsort.h>

#include "df-bspatch.h"

static gsize
common_prefix (const guint8 *a, gsize alen, const guint8 *b, gsize blen)
{
  gsize n = MIN (alen, blen), i = 0;
  while (i < n && a[i] == b[i])
    i++;
  return i;
}

/* Longest prefix of @nw found in @old, by binary search over the sorted
 * suffixes. The common prefix with both bounds is tracked, so bytes known to
 * match are not compared again: long matches cost O(log n + length), not
 * O(log n × length). */
static gsize
longest_match (const saidx_t *sa, const guint8 *old, gsize olen, const guint8 *nw, gsize nlen, gsize *pos)
{
  gsize lo = 0, hi = olen - 1;
  gsize llcp = common_prefix (old + sa[lo], olen - sa[lo], nw, nlen);
  gsize hlcp = common_prefix (old + sa[hi], olen - sa[hi], nw, nlen);
  while (hi - lo >= 2)
    {
      gsize mid = lo + (hi - lo) / 2;
      gsize o = sa[mid], m = MIN (llcp, hlcp);
      gsize k = m + common_prefix (old + o + m, olen - o - m, nw + m, nlen - m);
      gboolean less = (k < olen - o && k < nlen) ? old[o + k] < nw[k] : FALSE;
      if (less)
        lo = mid, llcp = k;
      else
        hi = mid, hlcp = k;
    }
  *pos = llcp > hlcp ? (gsize)sa[lo] : (gsize)sa[hi];
  return MAX (llcp, hlcp);
}

/* Inside a long exact match the next position's match is at least one byte
 * shorter at the next old position: reuse it instead of searching while it
 * stays this long. */
#define DF_BSDIFF_REUSE_MIN 32
/* After this many searches in a row found nothing useful, search every
 * 2nd, then 4th, … up to every 64th byte until something matches again. */
#define DF_BSDIFF_SKIP_AFTER 32u

typedef struct
{
  GByteArray *ctl, *add, *copy;
  guint64 n;
} Out;

static void
emit (Out *o, const guint8 *old, const guint8 *nw, gsize lastscan, gsize lastpos, gsize lenf, gsize copy_len,
      gint64 seek)
{
  gsize start = o->add->len;
  g_byte_array_set_size (o->add, start + lenf);
  for (gsize i = 0; i < lenf; i++)
    o->add->data[start + i] = nw[lastscan + i] - old[lastpos + i];
  g_byte_array_append (o->copy, nw + lastscan + lenf, copy_len);
  dfi_varint_append (o->ctl, lenf);
  dfi_varint_append (o->ctl, copy_len);
  /* Zig-zag, so small backward seeks stay short too. */
  dfi_varint_append (o->ctl, seek >= 0 ? (guint64)seek * 2 : ((guint64)(-(seek + 1)) * 2) + 1);
  o->n++;
}

/* The add bytes as runs: (zeros, non-zero bytes) pairs, the non-zero bytes
 * themselves going to the add section. */
static void
emit_runs (const GByteArray *add, GByteArray *runs, GByteArray *nonzero)
{
  gsize i = 0, n = add->len;
  while (i < n)
    {
      gsize z = i;
      while (z < n && add->data[z] == 0)
        z++;
      gsize e = z;
      while (e < n && add->data[e] != 0)
        e++;
      dfi_varint_append (runs, z - i);
      dfi_varint_append (runs, e - z);
      g_byte_array_append (nonzero, add->data + z, e - z);
      i = e;
    }
}

gboolean
dfi_bsdiff (const guint8 *old, gsize olen, const guint8 *nw, gsize nlen, GByteArray *sections[DF_SECTION_COUNT])
{
  Out o = { g_byte_array_new (), g_byte_array_sized_new (nlen), g_byte_array_new (), 0 };
  g_autofree saidx_t *sa = NULL;
  if (olen > 0)
    {
      sa = g_try_new (saidx_t, olen);
      if (sa == NULL || divsufsort (old, sa, (saidx_t)olen) != 0)
        {
          g_byte_array_unref (o.ctl);
          g_byte_array_unref (o.add);
          g_byte_array_unref (o.copy);
          return FALSE;
        }
    }

  /* Walk the new bytes; at each point look for the longest exact match in
   * the old bytes, and switch alignment only when the new match beats the
   * current alignment (lastoffset) by more than a few bytes. Between
   * alignments, extend the previous match forward and the next one
   * backward as long as at least half the bytes agree: those become "add"
   * bytes (mostly zero), the rest "copy" bytes. */
  gsize scan = 0, len = 0, pos = 0, lastscan = 0, lastpos = 0;
  guint misses = 0;
  gint64 lastoffset = 0;
  while (scan < nlen)
    {
      gsize oldscore = 0, scsc;
      gboolean fresh = TRUE;
      for (scsc = scan += len; scan < nlen; scan++)
        {
          gint64 cur = (gint64)scan + lastoffset;
          gboolean aligned = cur >= 0 && (guint64)cur < olen && old[cur] == nw[scan];
          /* Search only where it can change the outcome: not inside a long
           * match or where the current alignment still agrees (both reuse
           * the previous match, one byte shorter), and ever more sparsely
           * across bytes that match nothing (compressed or unrelated data),
           * so those cost O(n) instead of O(n log n) cache misses. */
          if (!fresh && len > 1 && (len > DF_BSDIFF_REUSE_MIN || aligned))
            len--, pos++;
          else if (!fresh && misses >= DF_BSDIFF_SKIP_AFTER
                   && (scan & ((1u << MIN (misses / DF_BSDIFF_SKIP_AFTER, 6u)) - 1)) != 0)
            len = 0;
          else
            {
              len = olen ? longest_match (sa, old, olen, nw + scan, nlen - scan, &pos) : 0;
              misses = len < 16 ? misses + 1 : 0;
            }
          fresh = FALSE;
          for (; scsc < scan + len; scsc++)
            {
              gint64 op = (gint64)scsc + lastoffset;
              if (op >= 0 && (guint64)op < olen && old[op] == nw[scsc])
                oldscore++;
            }
          if ((len == oldscore && len != 0) || len > oldscore + 8)
            break;
          gint64 op = (gint64)scan + lastoffset;
          if (op >= 0 && (guint64)op < olen && old[op] == nw[scan])
            oldscore--;
        }
      if (len == oldscore && scan != nlen)
        continue;

      gint64 s = 0, best = 0;
      gsize lenf = 0;
      for (gsize i = 0; lastscan + i < scan && lastpos + i < olen;)
        {
          if (old[lastpos + i] == nw[lastscan + i])
            s++;
          i++;
          if (s * 2 - (gint64)i > best * 2 - (gint64)lenf)
            {
              best = s;
              lenf = i;
            }
        }
      gsize lenb = 0;
      if (scan < nlen)
        {
          s = 0, best = 0;
          for (gsize i = 1; scan >= lastscan + i && pos >= i; i++)
            {
              if (old[pos - i] == nw[scan - i])
                s++;
              if (s * 2 - (gint64)i > best * 2 - (gint64)lenb)
                {
                  best = s;
                  lenb = i;
                }
            }
        }
      if (lastscan + lenf > scan - lenb)
        {
          /* The forward and backward extensions overlap: split where the
           * two alignments' agreement balances best. */
          gsize overlap = (lastscan + lenf) - (scan - lenb), lens = 0;
          s = 0, best = 0;
          for (gsize i = 0; i < overlap; i++)
            {
              if (nw[lastscan + lenf - overlap + i] == old[lastpos + lenf - overlap + i])
                s++;
              if (nw[scan - lenb + i] == old[pos - lenb + i])
                s--;
              if (s > best)
                {
                  best = s;
                  lens = i + 1;
                }
            }
          lenf += lens - overlap;
          lenb -= lens;
        }
      gsize copy_len = (scan - lenb) - (lastscan + lenf);
      gint64 seek = (gint64)(pos - lenb) - (gint64)(lastpos + lenf);
      emit (&o, old, nw, lastscan, lastpos, lenf, copy_len, scan < nlen ? seek : 0);
      lastscan = scan - lenb;
      lastpos = pos - lenb;
      lastoffset = (gint64)pos - (gint64)scan;
    }

  dfi_varint_append (sections[DF_SECTION_CONTROL], o.n);
  g_byte_array_append (sections[DF_SECTION_CONTROL], o.ctl->data, o.ctl->len);
  emit_runs (o.add, sections[DF_SECTION_RUNS], sections[DF_SECTION_ADD]);
  g_byte_array_append (sections[DF_SECTION_COPY], o.copy->data, o.copy->len);
  g_byte_array_unref (o.ctl);
  g_byte_array_unref (o.add);
  g_byte_array_unref (o.copy);
  return TRUE;
}
