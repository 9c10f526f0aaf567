/* Detection of an x86 bzImage kernel: its setup, its compressed payload
 * (examined as a frame) and what surrounds it. */
#include "df-detect-private.h"

/* An x86 bzImage (boot protocol 2.08 or later) filling the file @src:
 * DF_DETECT_RES_NO when @p (the first @n bytes) is not one. */
DfDetectResult
dfi_detect_bzimage (DfDetectCtx *c, DfDetectSrc *src, const guint8 *p, gsize n, GError **error)
{
  if (n < 0x250 || dfi_detect_le16 (p + 0x1fe) != 0xaa55 || memcmp (p + 0x202, "HdrS", 4) != 0
      || dfi_detect_le16 (p + 0x206) < 0x0208)
    return DF_DETECT_RES_NO;
  guint setup_sects = p[0x1f1] ? p[0x1f1] : 4;
  guint64 pm = (guint64)(setup_sects + 1) * 512;
  guint32 poff = dfi_detect_le32 (p + 0x248), plen = dfi_detect_le32 (p + 0x24c);
  guint64 pstart = pm + poff, pend = pstart + plen, size = src->size;
  if (plen == 0 || pend > size)
    return DF_DETECT_RES_NO;
  guint si = dfi_detect_seg_add (c, DF_SEGMENT_BZIMAGE_SETUP, 0, -1, 0, pm, 0);
  DfSegment *s = dfi_detect_seg_at (c, si);
  s->u.bzimage.version = dfi_detect_le16 (p + 0x206);
  s->u.bzimage.setup_sects = p[0x1f1];
  s->u.bzimage.payload_offset = poff;
  s->u.bzimage.payload_length = plen;
  if (pstart > pm)
    dfi_detect_seg_add (c, DF_SEGMENT_PLAIN, 0, -1, pm, pstart - pm, 0);
  guint8 probe[16];
  gssize m = dfi_detect_src_read (src, probe, sizeof probe, pstart, error);
  if (m < 0)
    return DF_DETECT_RES_ERROR;
  guint nseg = c->segs->len, nent = c->entries->len;
  guint64 fend = 0;
  DfDetectResult r = dfi_detect_try_frame (c, src, pstart, probe, m, 0, -1, TRUE, &fend, error);
  if (r == DF_DETECT_RES_ERROR)
    return r;
  if (r == DF_DETECT_RES_OK && fend > pend)
    {
      dfi_detect_rollback (c, nseg, nent);
      r = DF_DETECT_RES_NO;
    }
  if (r == DF_DETECT_RES_OK)
    {
      dfi_detect_seg_at (c, nseg)->flags |= DF_SEGMENT_BZIMAGE_PAYLOAD;
      if (fend < pend) /* the kernel appends the decompressed size */
        dfi_detect_seg_add (c, DF_SEGMENT_PLAIN, 0, -1, fend, pend - fend, 0);
    }
  else
    dfi_detect_seg_add (c, DF_SEGMENT_PLAIN, 0, -1, pstart, plen,
                        DF_SEGMENT_BZIMAGE_PAYLOAD | (c->limited ? DF_SEGMENT_LIMIT : 0));
  if (pend < size)
    dfi_detect_seg_add (c, DF_SEGMENT_PLAIN, 0, -1, pend, size - pend, 0);
  return DF_DETECT_RES_OK;
}
