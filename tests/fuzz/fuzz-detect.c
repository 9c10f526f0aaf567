/* Content detection (dfi_detect_read_at()) of the input as a file, read
 * through an in-memory callback that aborts on any read past the end (the
 * detector must never ask for one), under lowered limits so that each
 * input stays within tests/fuzz/limits: decoders of at most 8 MiB, 32 MiB
 * of decompressed output. Entry hashing on. The result must tile the file. */
#include "df-detect.h"
#include "fuzz.h"

typedef struct
{
  const uint8_t *data;
  size_t size;
} Mem;

static gssize
mem_read_at (gpointer user_data, void *buf, gsize len, guint64 offset, GError **error)
{
  Mem *m = user_data;
  if (offset > m->size || len > m->size - offset)
    abort ();
  memcpy (buf, m->data + offset, len);
  return len;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  Mem m = { data, size };
  DfDetectLimits lim;
  dfi_detect_limits_default (&lim);
  lim.decoder_mem = 8 * DF_MIB;
  lim.decompressed_max = 32 * DF_MIB;
  g_autoptr (GError) error = NULL;
  g_autoptr (DfDetect) d = dfi_detect_read_at (mem_read_at, &m, size, &lim, DF_DETECT_HASH_ENTRIES, NULL, &error);
  if (d == NULL)
    abort (); /* content never fails a detection */
  guint64 at = 0;
  for (guint i = 0; i < d->n_segments; i++)
    {
      const DfSegment *s = &d->segments[i];
      if (s->depth == 0)
        {
          if (s->offset != at || s->length == 0)
            abort ();
          at += s->length;
        }
    }
  if (at != size)
    abort ();
  for (guint i = 0; i < d->n_entries; i++)
    if (d->entries[i].segment >= d->n_segments || d->segments[d->entries[i].segment].kind != DF_SEGMENT_CPIO)
      abort ();
  DfDetectSummary sum;
  dfi_detect_summarize (d, &sum);
  g_free (dfi_detect_summary_to_string (&sum));
  return 0;
}
