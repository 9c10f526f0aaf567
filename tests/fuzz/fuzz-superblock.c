/* The native superblock parser (engine/format/df-superblock.c), envelope
 * included: the first bytes a fetcher reads from a server. */
#include "df-superblock.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr (GBytes) b = g_bytes_new (data, size);
  g_autoptr (GError) error = NULL;
  DfSuperblock *sb = df_superblock_parse (b, &error);
  df_superblock_free (sb);
  return 0;
}
