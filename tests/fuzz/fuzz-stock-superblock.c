/* The stock superblock parser (engine/format/df-stock-superblock.c): both
 * endiannesses, inline parts, fallbacks, the signed envelope. Parsed with
 * the memory apply and fetch give it by default; what it yields goes into
 * the object tables apply builds (fuzz-tables.h). */
#include "fuzz-tables.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr (GBytes) b = g_bytes_new (data, size);
  g_autoptr (GError) error = NULL;
  dfi_stock_superblock_sniff (b);
  g_autoptr (DfStockSuperblock) sb = dfi_stock_superblock_parse_full (b, NULL, FUZZ_PARSE_MEMORY, &error);
  if (sb)
    fuzz_check_stock_superblock_tables (sb);
  return 0;
}
