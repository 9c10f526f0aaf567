/* A stock part's decoded payload and its opcode program, bspatch included
 * (engine/format/df-stock-payload.c, df-stock-ops.c). Sources are a fixed
 * 64 KiB pattern.
 *
 * Input: the objects the part declares, then the payload. Either
 *   N (1 byte, 1..8; larger counts as 8), then N type bytes: object j has
 *     that type and the checksum j, 0, 0, …;
 * or, for parts of many objects,
 *   0, N (2 bytes, little-endian; at most FUZZ_PART_OBJECTS_MAX), K (1
 *     byte, at least 1), then K type bytes used in turn: object j has type
 *     byte j % K and a checksum of
 *     28 fixed bytes then j (4 bytes, big-endian), so that all share a
 *     28-byte prefix (issue 14: forged checksums flooding the tables).
 * A type byte is a file, a dirtree or a dirmeta as its value % 3.
 *
 * The sink checks the interpreter's side of DfStockSink: content only
 * inside a begun, not skipped object and exactly its size; a source opened
 * (its size asked) only while such an object is open and a source is
 * named, and read only after that, so opcodes that name sources without
 * reading them cost nothing (issue 14: 'r' amplification). Objects whose
 * checksum ends in 3 (mod 4) are skipped, as apply skips objects it has.
 * The metadata objects go into the table apply keeps them in until the
 * trust walk (fuzz-tables.h). */
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz-tables.h"
#include "fuzz.h"

#define OLD_LEN 65536
/* Objects a part may declare here: a bound on the work of one input (the
 * sink's table is checked at the end), so that a timeout means the
 * interpreter's own work. */
#define FUZZ_PART_OBJECTS_MAX 8192

static guint8 old_bytes[OLD_LEN];

typedef enum
{
  OBJ_NONE,    /* no object open (or the last one skipped, then closed) */
  OBJ_OPEN,    /* begun, not skipped */
  OBJ_SKIPPED, /* begun and skipped: nothing of it is produced */
} ObjState;

typedef struct
{
  ObjState obj;
  guint64 size, got;
  gboolean source_named, source_open;
  guint8 source_first; /* 0xff: the source claims G_MAXUINT64 bytes */
  GByteArray *metadata_keys;
} Sink;

static gboolean
s_metadata (gpointer u, OstreeObjectType t, const guint8 c[DF_SHA256_LEN], GBytes *d, GError **e)
{
  Sink *s = u;
  g_assert_true (s->obj != OBJ_OPEN);
  fuzz_key_append (s->metadata_keys, t, c);
  return TRUE;
}

static gboolean
s_begin (gpointer u, const guint8 c[DF_SHA256_LEN], guint32 uid, guint32 gid, guint32 mode, GVariant *x,
         const char *target, guint64 size, gboolean *skip, GError **e)
{
  Sink *s = u;
  g_assert_true (s->obj != OBJ_OPEN);
  *skip = c[DF_SHA256_LEN - 1] % 4 == 3;
  s->obj = *skip ? OBJ_SKIPPED : OBJ_OPEN;
  s->size = size;
  s->got = 0;
  return TRUE;
}

static gboolean
s_data (gpointer u, const guint8 *d, gsize len, GError **e)
{
  Sink *s = u;
  g_assert_true (s->obj == OBJ_OPEN && len <= s->size - s->got);
  s->got += len;
  return TRUE;
}

static gboolean
s_end (gpointer u, GError **e)
{
  Sink *s = u;
  g_assert_true (s->obj == OBJ_OPEN && s->got == s->size);
  s->obj = OBJ_NONE;
  return TRUE;
}

static gboolean
s_set (gpointer u, const guint8 c[DF_SHA256_LEN], GError **e)
{
  Sink *s = u;
  s->source_named = TRUE;
  s->source_open = FALSE;
  s->source_first = c[0];
  return TRUE;
}

static gboolean
s_size (gpointer u, guint64 *size, GError **e)
{
  Sink *s = u;
  g_assert_true (s->source_named && s->obj == OBJ_OPEN);
  s->source_open = TRUE;
  *size = s->source_first == 0xff ? G_MAXUINT64 : OLD_LEN;
  return TRUE;
}

static gboolean
s_read (gpointer u, guint64 off, guint8 *buf, gsize len, GError **e)
{
  Sink *s = u;
  g_assert_true (s->source_open && s->obj == OBJ_OPEN);
  g_assert_true (off <= OLD_LEN && len <= OLD_LEN - off); /* the interpreter checks */
  memcpy (buf, old_bytes + off, len);
  return TRUE;
}

static void
s_unset (gpointer u)
{
  Sink *s = u;
  s->source_named = s->source_open = FALSE;
}

static const DfStockSink sink = { s_metadata, s_begin, s_data, s_end, s_set, s_size, s_read, s_unset };

static const guint8 types[] = { OSTREE_OBJECT_TYPE_FILE, OSTREE_OBJECT_TYPE_DIR_TREE, OSTREE_OBJECT_TYPE_DIR_META };

/* Reads the object list into @part; returns the header's length, 0 if the
 * input is too short. */
static gsize
read_objects (const uint8_t *data, size_t size, DfStockPart *part)
{
  if (size >= 1 && data[0] != 0)
    {
      guint n = MIN (data[0], 8u);
      if (size < 1 + n)
        return 0;
      part->n_objects = n;
      part->objects = g_malloc0 (n * DF_STOCK_OBJREC_LEN);
      for (guint j = 0; j < n; j++)
        {
          part->objects[j * DF_STOCK_OBJREC_LEN] = types[data[1 + j] % 3];
          part->objects[j * DF_STOCK_OBJREC_LEN + 1] = (guint8)j;
        }
      return 1 + n;
    }
  if (size < 4 || data[3] == 0 || size < 4 + (gsize)data[3])
    return 0;
  guint n = data[1] | (guint)data[2] << 8, k = data[3];
  if (n == 0 || n > FUZZ_PART_OBJECTS_MAX)
    return 0;
  part->n_objects = n;
  part->objects = g_malloc (n * DF_STOCK_OBJREC_LEN);
  for (guint j = 0; j < n; j++)
    {
      guint8 *rec = part->objects + j * DF_STOCK_OBJREC_LEN;
      rec[0] = types[data[4 + j % k] % 3];
      for (guint b = 0; b < DF_SHA256_LEN - 4; b++)
        rec[1 + b] = (guint8)(b * 37 + 11);
      guint32 be = GUINT32_TO_BE (j);
      memcpy (rec + 1 + DF_SHA256_LEN - 4, &be, 4);
    }
  return 4 + k;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  /* The objects may add up to 1 MiB (what the part declares). */
  DfStockPart part = { .usize = 1024 * 1024 };
  gsize hlen = read_objects (data, size, &part);
  if (hlen == 0)
    return 0;
  for (gsize i = 0; i < OLD_LEN; i++)
    old_bytes[i] = (guint8)(i * 31 + 1);
  int fd = memfd_create ("payload", MFD_CLOEXEC);
  gsize plen = size - hlen;
  Sink s = { .metadata_keys = g_byte_array_new () };
  if (fd >= 0 && (plen == 0 || write (fd, data + hlen, plen) == (gssize)plen))
    {
      DfStockPayload pl;
      g_autoptr (GError) error = NULL;
      if (dfi_stock_payload_open (&pl, fd, plen, &error))
        {
          dfi_stock_execute (&part, &pl, &sink, &s, NULL, NULL, &error);
          dfi_stock_payload_clear (&pl);
        }
    }
  if (fd >= 0)
    close (fd);
  fuzz_check_object_set (s.metadata_keys->data, s.metadata_keys->len / DF_OBJSET_KEY_LEN);
  g_byte_array_unref (s.metadata_keys);
  g_free (part.objects);
  return 0;
}
