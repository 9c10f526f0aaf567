/* The stock superblock parser (engine/format/df-stock.c): both
 * endiannesses, inline parts, fallbacks, the signed envelope. */
#include "df-stock.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr (GBytes) b = g_bytes_new (data, size);
  g_autoptr (GError) error = NULL;
  df_stock_superblock_sniff (b);
  DfStockSuperblock *sb = df_stock_superblock_parse (b, &error);
  df_stock_superblock_free (sb);
  return 0;
}
