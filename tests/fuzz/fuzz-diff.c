/* The native diff decoder (engine/format/df-bspatch.c) over a part payload
 * (section table and sections, engine/format/df-part.c). Input: old size
 * (2 bytes, little-endian), output size (2 bytes), then the payload; the
 * old object is a fixed pattern. */
#include "df-bspatch.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size < 4)
    return 0;
  gsize old_len = data[0] | (gsize)data[1] << 8, out_len = data[2] | (gsize)data[3] << 8;
  g_autofree guint8 *old = g_malloc (MAX (old_len, 1));
  for (gsize i = 0; i < old_len; i++)
    old[i] = (guint8)(i * 7 + 3);
  g_autofree guint8 *out = g_malloc (MAX (out_len, 1));
  DfPartReader r;
  g_autoptr (GError) error = NULL;
  if (!dfi_part_reader_init (&r, data + 4, size - 4, 0, &error))
    return 0;
  /* Two diffs back to back, as entries follow each other in a part. */
  for (int k = 0; k < 2 && error == NULL; k++)
    dfi_diff_decode (&r, old, old_len, out, out_len, &error);
  g_clear_error (&error);
  if (dfi_part_reader_init (&r, data + 4, size - 4, 0, &error))
    dfi_diff_skip (&r, out_len, &error);
  return 0;
}
