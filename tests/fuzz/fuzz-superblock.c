/* The native superblock parser (engine/format/df-superblock.c), envelope
 * included: the first bytes a fetcher reads from a server. Parsed with the
 * memory apply and fetch give it by default; what it yields goes into the
 * object tables apply builds (fuzz-tables.h). */
#include "fuzz-tables.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr (GBytes) b = g_bytes_new (data, size);
  g_autoptr (GError) error = NULL;
  g_autoptr (DfSuperblock) sb = dfi_superblock_parse_full (b, NULL, FUZZ_PARSE_MEMORY, &error);
  if (sb)
    fuzz_check_superblock_tables (sb);
  return 0;
}
