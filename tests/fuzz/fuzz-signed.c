/* The ed25519 signature envelope (`OSTSGNDT`), read before anything else of
 * a superblock: opened, and its signatures put through the policy without
 * keys and then against FUZZ_KEYS trusted keys (fuzz-keys.h), every
 * signature against every key as apply does. */
#include <glib/gstdio.h>
#include <unistd.h>

#include "df-sign.h"
#include "fuzz-keys.h"
#include "fuzz.h"

/* The keyring is read from a file (the engine's only way in): written once
 * per process to a temporary file, loaded, removed. Kept for the process's
 * life. */
static DfKeyring *
trusted_keys (void)
{
  static DfKeyring *keys;
  if (keys)
    return keys;
  g_autoptr (GString) text = g_string_new ("# fuzz-signed keys\n");
  for (guint i = 0; i < FUZZ_KEYS; i++)
    {
      EVP_PKEY *k = fuzz_key (i);
      guint8 pub[32];
      gsize len = sizeof pub;
      g_assert_true (k && EVP_PKEY_get_raw_public_key (k, pub, &len) == 1 && len == sizeof pub);
      EVP_PKEY_free (k);
      g_autofree char *b64 = g_base64_encode (pub, sizeof pub);
      g_string_append_printf (text, "%s\n", b64);
    }
  g_autofree char *path = NULL;
  g_autoptr (GError) error = NULL;
  int fd = g_file_open_tmp ("fuzz-signed-keys-XXXXXX", &path, &error);
  g_assert_no_error (error);
  close (fd);
  g_assert_true (g_file_set_contents (path, text->str, text->len, &error));
  keys = dfi_keyring_load (path, &error);
  g_unlink (path);
  g_assert_no_error (error);
  g_assert_cmpuint (dfi_keyring_size (keys), ==, FUZZ_KEYS);
  return keys;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  DfKeyring *keys = trusted_keys ();
  g_autoptr (GBytes) b = g_bytes_new (data, size);
  g_autoptr (GBytes) inner = NULL, signed_data = NULL;
  g_autoptr (GPtrArray) sigs = NULL;
  g_autoptr (GError) error = NULL;
  if (!dfi_signed_open (b, &inner, &signed_data, &sigs, &error) || signed_data == NULL)
    return 0;
  /* Checked before anything is verified (issue 14: signature flooding). */
  g_assert_cmpuint (sigs->len, <=, DF_SIGNATURES_MAX);
  gboolean verified;
  DfSignaturePolicy none = { NULL, NULL, FALSE };
  dfi_signature_policy (signed_data, sigs, &none, &verified, &error);
  g_assert_no_error (error);
  g_assert_false (verified);
  DfSignaturePolicy trusted = { keys, NULL, TRUE };
  gboolean ok = dfi_signature_policy (signed_data, sigs, &trusted, &verified, &error);
  g_assert_true (ok == verified && ok == (error == NULL));
  return 0;
}
