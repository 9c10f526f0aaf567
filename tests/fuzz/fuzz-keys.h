/* The ed25519 keys fuzz-signed.c trusts, made from fixed seeds so that
 * make-seeds can sign its seeds with them and the fuzzer reaches a
 * signature that verifies. */
#pragma once

#include <glib.h>
#include <openssl/evp.h>

/* As many trusted keys as an envelope may carry signatures: every
 * signature is tried against every key, so an envelope at the cap costs
 * DF_SIGNATURES_MAX × FUZZ_KEYS verifications, the most a device with that
 * many keys pays. */
#define FUZZ_KEYS 8

/* Key @i (< FUZZ_KEYS), secret half included; free with EVP_PKEY_free(). */
static inline EVP_PKEY *
fuzz_key (guint i)
{
  guint8 seed[32];
  for (guint k = 0; k < sizeof seed; k++)
    seed[k] = (guint8)(i * 29 + k * 7 + 1);
  return EVP_PKEY_new_raw_private_key (EVP_PKEY_ED25519, NULL, seed, sizeof seed);
}
