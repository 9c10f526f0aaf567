/* A stock part's decoded payload and its opcode program, bspatch included
 * (engine/format/df-stock.c). Input: the number of objects the part
 * declares (1 byte, at most 8), their types (1 byte each), then the
 * payload. Sources are a fixed 64 KiB pattern. */
#include <sys/mman.h>
#include <unistd.h>

#include "df-stock.h"
#include "fuzz.h"

#define OLD_LEN 65536

static guint8 old_bytes[OLD_LEN];

static gboolean
s_metadata (gpointer u, OstreeObjectType t, const guint8 c[DF_SHA256_LEN], GBytes *d, GError **e)
{
  return TRUE;
}
static gboolean
s_begin (gpointer u, const guint8 c[DF_SHA256_LEN], guint32 uid, guint32 gid, guint32 mode, GVariant *x,
         const char *target, guint64 size, gboolean *skip, GError **e)
{
  return TRUE;
}
static gboolean
s_data (gpointer u, const guint8 *d, gsize len, GError **e)
{
  return TRUE;
}
static gboolean
s_end (gpointer u, GError **e)
{
  return TRUE;
}
static gboolean
s_set (gpointer u, const guint8 c[DF_SHA256_LEN], GError **e)
{
  *(guint8 *)u = c[0];
  return TRUE;
}
static gboolean
s_size (gpointer u, guint64 *size, GError **e)
{
  *size = *(guint8 *)u == 0xff ? G_MAXUINT64 : OLD_LEN;
  return TRUE;
}
static gboolean
s_read (gpointer u, guint64 off, guint8 *buf, gsize len, GError **e)
{
  g_assert (off <= OLD_LEN && len <= OLD_LEN - off); /* the interpreter checks */
  memcpy (buf, old_bytes + off, len);
  return TRUE;
}
static void
s_unset (gpointer u)
{
}

static const DfStockSink sink = { s_metadata, s_begin, s_data, s_end, s_set, s_size, s_read, s_unset };

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  guint n = MIN (data[0], 8u);
  if (n == 0 || size < 1 + n)
    return 0;
  for (gsize i = 0; i < OLD_LEN; i++)
    old_bytes[i] = (guint8)(i * 31 + 1);
  /* The objects may add up to 1 MiB (what the part declares). */
  DfStockPart part = { .n_objects = n, .usize = 1024 * 1024 };
  part.objects = g_malloc0 (n * DF_STOCK_OBJREC_LEN);
  for (guint j = 0; j < n; j++)
    {
      static const guint8 types[] = { OSTREE_OBJECT_TYPE_FILE, OSTREE_OBJECT_TYPE_DIR_TREE,
                                      OSTREE_OBJECT_TYPE_DIR_META };
      part.objects[j * DF_STOCK_OBJREC_LEN] = types[data[1 + j] % 3];
      part.objects[j * DF_STOCK_OBJREC_LEN + 1] = (guint8)j;
    }
  int fd = memfd_create ("payload", MFD_CLOEXEC);
  gsize plen = size - 1 - n;
  if (fd >= 0 && (plen == 0 || write (fd, data + 1 + n, plen) == (gssize)plen))
    {
      DfStockPayload pl;
      g_autoptr (GError) error = NULL;
      if (df_stock_payload_open (&pl, fd, plen, &error))
        {
          guint8 source = 0;
          df_stock_execute (&part, &pl, &sink, &source, NULL, NULL, &error);
          df_stock_payload_clear (&pl);
        }
    }
  if (fd >= 0)
    close (fd);
  g_free (part.objects);
  return 0;
}
