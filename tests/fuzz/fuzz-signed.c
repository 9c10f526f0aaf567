/* The ed25519 signature envelope (`OSTSGNDT`), read before anything else of
 * a superblock: opened, and its signatures put through the policy. */
#include "df-sign.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr (GBytes) b = g_bytes_new (data, size);
  g_autoptr (GBytes) inner = NULL, signed_data = NULL;
  g_autoptr (GPtrArray) sigs = NULL;
  g_autoptr (GError) error = NULL;
  if (df_signed_open (b, &inner, &signed_data, &sigs, &error) && signed_data)
    {
      g_autoptr (GError) e2 = NULL;
      gboolean verified;
      df_signature_policy (signed_data, sigs, NULL, FALSE, &verified, &e2);
    }
  return 0;
}
