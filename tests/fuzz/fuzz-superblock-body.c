/* The native superblock's body (the GVariant inside the zstd frame): the
 * input is the body itself, framed here as generate frames it (zstd with
 * its content size and checksum, the header's size word), so the fuzzer
 * reaches the parser behind the checksum that fuzz-superblock.c mostly
 * stops at. Parsed and checked as fuzz-superblock.c does. */
#include <zstd.h>

#include "fuzz-tables.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size == 0 || size > 4 * 1024 * 1024)
    return 0;
  size_t cap = ZSTD_compressBound (size);
  guint8 *file = g_malloc (DF_SUPERBLOCK_HEADER_LEN + cap);
  ZSTD_CCtx *c = ZSTD_createCCtx ();
  ZSTD_CCtx_setParameter (c, ZSTD_c_compressionLevel, 1);
  ZSTD_CCtx_setParameter (c, ZSTD_c_checksumFlag, 1);
  ZSTD_CCtx_setParameter (c, ZSTD_c_contentSizeFlag, 1);
  size_t n = ZSTD_compress2 (c, file + DF_SUPERBLOCK_HEADER_LEN, cap, data, size);
  ZSTD_freeCCtx (c);
  if (!ZSTD_isError (n))
    {
      /* The body as format 2 and as format 3 (whose parts have three more
       * fields): one of them can be its type. */
      for (guint32 v = DF_FORMAT_VERSION_MIN; v <= DF_FORMAT_VERSION; v++)
        {
          guint32 version = GUINT32_TO_LE (v), reserved = 0;
          guint64 blen = GUINT64_TO_LE ((guint64)size);
          memcpy (file, DF_SUPERBLOCK_MAGIC, 8);
          memcpy (file + 8, &version, 4);
          memcpy (file + 12, &reserved, 4);
          memcpy (file + 16, &blen, 8);
          g_autoptr (GBytes) b = g_bytes_new_static (file, DF_SUPERBLOCK_HEADER_LEN + n);
          g_autoptr (GError) error = NULL;
          g_autoptr (DfSuperblock) sb = dfi_superblock_parse_full (b, NULL, FUZZ_PARSE_MEMORY, &error);
          if (sb)
            fuzz_check_superblock_tables (sb);
        }
      g_free (file);
      return 0;
    }
  g_free (file);
  return 0;
}
