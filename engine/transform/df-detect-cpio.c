/* Detection of newc and crc cpio archives (an initramfs), entry by
 * entry, each entry's data hashed when the caller asks. */
#include <sys/stat.h>

#include "df-detect-private.h"

#define CPIO_HDR_LEN 110

/* Parses eight hex digits. */
static gboolean
hex8 (const guint8 *p, guint32 *out)
{
  guint32 v = 0;
  for (guint i = 0; i < 8; i++)
    {
      int d = g_ascii_xdigit_value (p[i]);
      if (d < 0)
        return FALSE;
      v = v << 4 | d;
    }
  *out = v;
  return TRUE;
}

static guint64
align4 (guint64 base, guint64 at)
{
  return base + ((at - base + 3) & ~G_GUINT64_CONSTANT (3));
}

/* A newc (070701) or crc (070702) cpio archive at @pos, entry by entry
 * until its trailer. An archive broken or cut after at least one entry
 * ends after its last complete entry (DF_SEGMENT_NO_TRAILER). */
DfDetectResult
dfi_detect_cpio (DfDetectCtx *c, DfDetectSrc *src, guint64 pos, guint depth, gint parent, guint64 *next, GError **error)
{
  if (!dfi_detect_seg_room (c))
    return DF_DETECT_RES_LIMIT;
  guint seg_index = dfi_detect_seg_add (c, DF_SEGMENT_CPIO, depth, parent, pos, 0, DF_SEGMENT_NO_TRAILER);
  guint first = c->entries->len;
  guint64 off = pos;
  g_autofree char *name = g_malloc (DF_DETECT_NAME_MAX);
  for (;;)
    {
      if (dfi_detect_cancelled (c, error))
        return DF_DETECT_RES_ERROR;
      guint8 h[CPIO_HDR_LEN];
      gssize n = dfi_detect_src_read (src, h, sizeof h, off, error);
      if (n < 0)
        return DF_DETECT_RES_ERROR;
      guint32 v[13];
      if (n < CPIO_HDR_LEN || memcmp (h, "07070", 5) != 0 || (h[5] != '1' && h[5] != '2'))
        break;
      gboolean hex_ok = TRUE;
      for (guint i = 0; i < 13 && hex_ok; i++)
        hex_ok = hex8 (h + 6 + 8 * i, &v[i]);
      guint32 namesize = v[11];
      if (!hex_ok || namesize < 1 || namesize > DF_DETECT_NAME_MAX)
        break;
      if ((n = dfi_detect_src_read (src, name, namesize, off + CPIO_HDR_LEN, error)) < 0)
        return DF_DETECT_RES_ERROR;
      if (n < namesize || name[namesize - 1] != 0 || strlen (name) != namesize - 1)
        break;
      /* The name ends at a multiple of 4 from the header, the data from
       * the archive's start (the kernel's and GNU cpio's reading). */
      guint64 data_off = off + ((CPIO_HDR_LEN + namesize + 3) & ~3u);
      guint64 data_end = data_off + v[6];
      guint64 end = align4 (pos, data_end);
      gboolean trailer = strcmp (name, "TRAILER!!!") == 0;
      if (!trailer && c->entries->len >= c->lim.entries_max)
        {
          c->limited = TRUE;
          break;
        }
      gboolean hash = (c->flags & DF_DETECT_HASH_ENTRIES) && S_ISREG (v[1]) && !trailer;
      DfSha256 sha = { 0 };
      if (hash)
        dfi_sha256_init (&sha);
      gboolean ok;
      gboolean io = dfi_detect_pass_bytes (c, src, data_off, data_end, hash ? &sha : NULL, &ok, error)
                    && (!ok || dfi_detect_pass_bytes (c, src, data_end, end, NULL, &ok, error));
      DfCpioEntry e = { 0 };
      if (hash)
        {
          dfi_sha256_final (&sha, e.sha256);
          dfi_sha256_clear (&sha);
          e.has_sha256 = TRUE;
        }
      if (!io)
        return DF_DETECT_RES_ERROR;
      if (!ok)
        break;
      guint64 hdr = off;
      off = end;
      if (trailer)
        {
          dfi_detect_seg_at (c, seg_index)->flags &= ~DF_SEGMENT_NO_TRAILER;
          break;
        }
      e.name = g_string_chunk_insert_len (c->names, name, namesize - 1);
      e.segment = seg_index;
      e.ino = v[0], e.mode = v[1], e.uid = v[2], e.gid = v[3], e.nlink = v[4], e.mtime = v[5];
      e.filesize = v[6], e.devmajor = v[7], e.devminor = v[8], e.rdevmajor = v[9], e.rdevminor = v[10];
      e.check = v[12];
      e.header_offset = hdr;
      e.data_offset = data_off;
      g_array_append_val (c->entries, e);
    }
  DfSegment *s = dfi_detect_seg_at (c, seg_index);
  if (off == pos)
    {
      dfi_detect_rollback (c, seg_index, first);
      return c->limited ? DF_DETECT_RES_LIMIT : DF_DETECT_RES_NO;
    }
  s->length = off - pos;
  s->u.cpio.first_entry = first;
  s->u.cpio.n_entries = c->entries->len - first;
  *next = off;
  return DF_DETECT_RES_OK;
}
