/* A native part file (engine/format/df-part.c): the zstd frame decoded
 * within the declared size, the section table, and the content headers and
 * varints in its sections, as apply reads them. Input: the declared
 * uncompressed size (3 bytes, little-endian), then the part file; its
 * SHA-256 and compressed size are taken from the input, so every input gets
 * past the hash check to the decoder. */
#include "df-part.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size < 3)
    return 0;
  DfPart part = { .kind = DF_PART_KIND_CONTENT };
  part.uncompressed_size = data[0] | (guint64)data[1] << 8 | (guint64)data[2] << 16;
  part.compressed_size = size - 3;
  dfi_sha256 (data + 3, size - 3, part.sha256);
  g_autoptr (GBytes) file = g_bytes_new_static (data + 3, size - 3);
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) payload = dfi_part_decode (&part, 0, file, &error);
  if (payload == NULL)
    return 0;
  gsize len;
  const guint8 *p = g_bytes_get_data (payload, &len);
  if (len < DF_PART_TABLE_LEN)
    return 0;
  guint64 raw;
  memcpy (&raw, p, sizeof raw);
  DfPartReader r;
  if (!dfi_part_reader_init (&r, p, len, GUINT64_FROM_LE (raw), &error))
    return 0;
  /* Raw: content headers, each followed by as many body bytes as the next
   * control varint says (a stand-in for the entries' data sizes). */
  while (r.pos[DF_SECTION_RAW] < r.len[DF_SECTION_RAW])
    {
      g_auto (DfContentHeader) h = { 0 };
      gsize consumed;
      const guint8 *at = r.data[DF_SECTION_RAW] + r.pos[DF_SECTION_RAW];
      if (!dfi_content_header_parse (at, r.len[DF_SECTION_RAW] - r.pos[DF_SECTION_RAW], &h, &consumed, &error)
          || !dfi_part_reader_take (&r, DF_SECTION_RAW, consumed, &error))
        break;
      guint64 body;
      if (!dfi_part_reader_varint (&r, DF_SECTION_CONTROL, &body, &error)
          || !dfi_part_reader_take (&r, DF_SECTION_RAW, body, &error))
        break;
    }
  g_clear_error (&error);
  dfi_part_reader_finish (&r, &error);
  return 0;
}
