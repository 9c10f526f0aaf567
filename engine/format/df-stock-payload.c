/* Opening decoded stock part payloads (see df-stock-payload.h). */
#include "df-stock-payload.h"

/* Part payloads are decoded into a file, so they may be large; limits
 * bound what a hostile delta can make us write or hold. The tables are held
 * in memory while the part runs (a real part has a few dozen modes and
 * xattr sets: DF_STOCK_PAYLOAD_TABLE_MAX); the opcodes are read through a
 * window, and bounded here. */
#define DF_STOCK_OPS_MAX (64 * DF_MIB) /* one part's opcodes */

gboolean
dfi_stock_payload_pread (int fd, guint8 *buf, gsize len, guint64 off, GError **error)
{
  return dfi_pread_all (fd, buf, len, off, "part payload", error);
}

static GVariant *
load_member (int fd, guint64 off, guint64 len, const char *type, GError **error)
{
  guint8 *buf = g_malloc (MAX (len, 1));
  if (!dfi_stock_payload_pread (fd, buf, len, off, error))
    {
      g_free (buf);
      return NULL;
    }
  GBytes *b = g_bytes_new_take (buf, len);
  GVariant *v = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE (type), b, FALSE));
  g_bytes_unref (b);
  return v;
}

gboolean
dfi_stock_payload_open (DfStockPayload *p, int fd, guint64 len, GError **error)
{
  memset (p, 0, sizeof *p);
  p->fd = fd;
#define BAD(...) return dfi_throw (error, DF_ERROR_INVALID_DELTA, "part payload: " __VA_ARGS__)
  /* The tuple's first three members are variable-sized: their ends are
   * framing offsets at the very end, the first member's last, each as wide
   * as the payload's size needs. */
  guint osz = len > G_MAXUINT32 ? 8 : len > G_MAXUINT16 ? 4 : len > G_MAXUINT8 ? 2 : 1;
  if (len < 3 * osz)
    BAD ("%" G_GUINT64_FORMAT " bytes", len);
  guint8 tail[24];
  if (!dfi_stock_payload_pread (fd, tail, 3 * osz, len - 3 * osz, error))
    return FALSE;
  guint64 end[3];
  for (guint k = 0; k < 3; k++)
    {
      guint64 v = 0;
      const guint8 *q = tail + (2 - k) * osz; /* member k's offset */
      for (guint b = 0; b < osz; b++)
        v |= (guint64)q[b] << (8 * b);
      end[k] = v;
    }
  guint64 body = len - 3 * osz;
  if (end[0] > end[1] || end[1] > end[2] || end[2] > body)
    BAD ("framing offsets %" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT
         " do not fit %" G_GUINT64_FORMAT " bytes",
         end[0], end[1], end[2], len);
  if (end[0] % 12 != 0)
    BAD ("mode table of %" G_GUINT64_FORMAT " bytes", end[0]);
  if (end[0] > DF_STOCK_PAYLOAD_TABLE_MAX || end[1] - end[0] > DF_STOCK_PAYLOAD_TABLE_MAX)
    BAD ("mode or xattr table over %u bytes", (guint)DF_STOCK_PAYLOAD_TABLE_MAX);
  if (body - end[2] > DF_STOCK_OPS_MAX)
    BAD ("%" G_GUINT64_FORMAT " bytes of opcodes", body - end[2]);
  p->modes = load_member (fd, 0, end[0], "a(uuu)", error);
  if (p->modes == NULL)
    return FALSE;
  p->xattrs = load_member (fd, end[0], end[1] - end[0], "aa(ayay)", error);
  if (p->xattrs == NULL)
    return FALSE;
  p->raw_off = end[1];
  p->raw_len = end[2] - end[1];
  p->ops_off = end[2];
  p->ops_len = body - end[2];
  return TRUE;
#undef BAD
}

void
dfi_stock_payload_clear (DfStockPayload *p)
{
  g_clear_pointer (&p->modes, g_variant_unref);
  g_clear_pointer (&p->xattrs, g_variant_unref);
}

GBytes *
dfi_stock_payload_read_ops (const DfStockPayload *p, GError **error)
{
  guint8 *buf = g_malloc (MAX (p->ops_len, 1));
  if (!dfi_stock_payload_pread (p->fd, buf, p->ops_len, p->ops_off, error))
    {
      g_free (buf);
      return NULL;
    }
  return g_bytes_new_take (buf, p->ops_len);
}
