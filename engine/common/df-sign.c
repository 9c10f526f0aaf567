#include "df-sign.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <string.h>
#include <sys/stat.h>

struct _DfKeyring
{
  GPtrArray *keys; /* EVP_PKEY* */
};

struct _DfSigner
{
  EVP_PKEY *key;
};

static void
pkey_free (gpointer p)
{
  EVP_PKEY_free (p);
}

/* Decodes one base64 key of exactly @want bytes. */
static gboolean
decode_key (const char *text, gsize want, guint8 *out)
{
  g_autofree char *s = g_strstrip (g_strdup (text));
  if (*s == '\0')
    return FALSE;
  for (const char *c = s; *c; c++)
    if (!g_ascii_isalnum (*c) && *c != '+' && *c != '/' && *c != '=')
      return FALSE;
  gsize len = 0;
  g_autofree guchar *raw = g_base64_decode (s, &len);
  if (raw == NULL || len != want)
    return FALSE;
  memcpy (out, raw, want);
  return TRUE;
}

/* Key files are the device's own configuration, often symbolic links into
 * a key store: they are followed here, unlike a delta's files. */
static GBytes *
read_key_file (const char *path, gsize max, const char *what, GError **error)
{
  g_autofree char *real = realpath (path, NULL);
  if (real == NULL)
    {
      dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "%s %s: %s", what, path, g_strerror (errno));
      return NULL;
    }
  return dfi_read_file_bounded (AT_FDCWD, real, max, G_MAXUINT64, what, error);
}

static gboolean
add_keys_from_file (DfKeyring *k, const char *path, GError **error)
{
  g_autoptr (GBytes) b = read_key_file (path, 1024 * 1024, "key file", error);
  if (b == NULL)
    return FALSE;
  g_autofree char *text = g_strndup (g_bytes_get_data (b, NULL), g_bytes_get_size (b));
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
  for (guint i = 0; lines[i]; i++)
    {
      g_strstrip (lines[i]);
      if (lines[i][0] == '\0' || lines[i][0] == '#')
        continue;
      guint8 raw[DF_ED25519_KEY_LEN];
      if (!decode_key (lines[i], sizeof raw, raw))
        return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "%s, line %u: not a base64 ed25519 public key", path,
                          i + 1);
      EVP_PKEY *pk = EVP_PKEY_new_raw_public_key (EVP_PKEY_ED25519, NULL, raw, sizeof raw);
      if (pk == NULL)
        return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "%s, line %u: unusable ed25519 public key", path, i + 1);
      g_ptr_array_add (k->keys, pk);
    }
  return TRUE;
}

DfKeyring *
dfi_keyring_new (void)
{
  DfKeyring *k = g_new0 (DfKeyring, 1);
  k->keys = g_ptr_array_new_with_free_func (pkey_free);
  return k;
}

gboolean
dfi_keyring_add_path (DfKeyring *k, const char *path, GError **error)
{
  struct stat st;
  if (stat (path, &st) < 0)
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "trusted keys %s: %s", path, g_strerror (errno));
  if (!S_ISDIR (st.st_mode))
    return add_keys_from_file (k, path, error);
  g_autoptr (GDir) d = g_dir_open (path, 0, NULL);
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const char *n;
  while (d && (n = g_dir_read_name (d)))
    g_ptr_array_add (names, g_build_filename (path, n, NULL));
  for (guint i = 0; i < names->len; i++)
    if (g_file_test (names->pdata[i], G_FILE_TEST_IS_REGULAR) && !add_keys_from_file (k, names->pdata[i], error))
      return FALSE;
  return TRUE;
}

gboolean
dfi_keyring_add_key (DfKeyring *k, const char *base64, GError **error)
{
  guint8 raw[DF_ED25519_KEY_LEN];
  EVP_PKEY *pk = decode_key (base64, sizeof raw, raw)
                     ? EVP_PKEY_new_raw_public_key (EVP_PKEY_ED25519, NULL, raw, sizeof raw)
                     : NULL;
  if (pk == NULL)
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "'%s' is not a base64 ed25519 public key", base64);
  g_ptr_array_add (k->keys, pk);
  return TRUE;
}

/* The raw public key of @pk. */
static gboolean
raw_public (EVP_PKEY *pk, guint8 out[DF_ED25519_KEY_LEN])
{
  gsize len = DF_ED25519_KEY_LEN;
  return EVP_PKEY_get_raw_public_key (pk, out, &len) == 1 && len == DF_ED25519_KEY_LEN;
}

guint
dfi_keyring_remove (DfKeyring *k, const DfKeyring *revoked)
{
  guint removed = 0;
  for (guint i = k->keys->len; i-- > 0;)
    {
      guint8 a[DF_ED25519_KEY_LEN], b[DF_ED25519_KEY_LEN];
      if (!raw_public (k->keys->pdata[i], a))
        continue;
      for (guint j = 0; j < revoked->keys->len; j++)
        if (raw_public (revoked->keys->pdata[j], b) && memcmp (a, b, sizeof a) == 0)
          {
            g_ptr_array_remove_index (k->keys, i);
            removed++;
            break;
          }
    }
  return removed;
}

DfKeyring *
dfi_keyring_load (const char *path, GError **error)
{
  g_autoptr (DfKeyring) k = dfi_keyring_new ();
  if (!dfi_keyring_add_path (k, path, error))
    return NULL;
  if (k->keys->len == 0)
    {
      dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "trusted keys %s: no key found", path);
      return NULL;
    }
  return g_steal_pointer (&k);
}

void
dfi_keyring_free (DfKeyring *k)
{
  if (k == NULL)
    return;
  g_ptr_array_unref (k->keys);
  g_free (k);
}

guint
dfi_keyring_size (const DfKeyring *k)
{
  return k->keys->len;
}

gboolean
dfi_keyring_verify_any (const DfKeyring *k, GBytes *data, GPtrArray *sigs)
{
  gsize len;
  const guint8 *d = g_bytes_get_data (data, &len);
  for (guint s = 0; sigs && s < sigs->len; s++)
    {
      gsize slen;
      const guint8 *sig = g_bytes_get_data (sigs->pdata[s], &slen);
      if (slen != DF_ED25519_SIG_LEN)
        continue;
      for (guint i = 0; i < k->keys->len; i++)
        {
          EVP_MD_CTX *ctx = EVP_MD_CTX_new ();
          gboolean ok = ctx && EVP_DigestVerifyInit (ctx, NULL, NULL, NULL, k->keys->pdata[i]) == 1
                        && EVP_DigestVerify (ctx, sig, slen, d, len) == 1;
          EVP_MD_CTX_free (ctx);
          if (ok)
            return TRUE;
        }
    }
  return FALSE;
}

DfSigner *
dfi_signer_load (const char *path, GError **error)
{
  g_autoptr (GBytes) b = read_key_file (path, 4096, "secret key", error);
  if (b == NULL)
    return NULL;
  g_autofree char *text = g_strndup (g_bytes_get_data (b, NULL), g_bytes_get_size (b));
  guint8 raw[64];
  if (!decode_key (text, sizeof raw, raw))
    {
      dfi_throw (error, DF_ERROR_INVALID_ARGUMENT,
                 "%s: not a base64 ed25519 secret key (64 bytes: seed and public key)", path);
      return NULL;
    }
  EVP_PKEY *pk = EVP_PKEY_new_raw_private_key (EVP_PKEY_ED25519, NULL, raw, 32);
  guint8 pub[32];
  gsize publen = sizeof pub;
  gboolean ok
      = pk && EVP_PKEY_get_raw_public_key (pk, pub, &publen) == 1 && publen == 32 && memcmp (pub, raw + 32, 32) == 0;
  OPENSSL_cleanse (raw, sizeof raw);
  if (!ok)
    {
      EVP_PKEY_free (pk);
      dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "%s: the public half does not belong to the seed", path);
      return NULL;
    }
  DfSigner *s = g_new0 (DfSigner, 1);
  s->key = pk;
  return s;
}

void
dfi_signer_free (DfSigner *s)
{
  if (s == NULL)
    return;
  EVP_PKEY_free (s->key);
  g_free (s);
}

GBytes *
dfi_signed_wrap (GBytes *data, GPtrArray *sigs)
{
  GVariantBuilder sb;
  g_variant_builder_init (&sb, G_VARIANT_TYPE ("aay"));
  for (guint i = 0; sigs && i < sigs->len; i++)
    g_variant_builder_add_value (&sb, g_variant_new_from_bytes (G_VARIANT_TYPE_BYTESTRING, sigs->pdata[i], TRUE));
  GVariantBuilder dict;
  g_variant_builder_init (&dict, G_VARIANT_TYPE ("a{sv}"));
  g_variant_builder_add (&dict, "{sv}", DF_SIGN_ED25519_KEY, g_variant_builder_end (&sb));
  guint64 magic;
  memcpy (&magic, DF_SIGNED_MAGIC, 8); /* big-endian on disk, as libostree stores it */
  g_autoptr (GVariant) v = g_variant_ref_sink (
      g_variant_new ("(t@ay@a{sv})", magic, g_variant_new_from_bytes (G_VARIANT_TYPE_BYTESTRING, data, TRUE),
                     g_variant_builder_end (&dict)));
  g_autoptr (GVariant) normal = g_variant_get_normal_form (v);
  return g_variant_get_data_as_bytes (normal);
}

GBytes *
dfi_signer_sign (DfSigner *s, GBytes *data, GError **error)
{
  gsize len;
  const guint8 *d = g_bytes_get_data (data, &len);
  guint8 sig[DF_ED25519_SIG_LEN];
  gsize slen = sizeof sig;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new ();
  gboolean ok = ctx && EVP_DigestSignInit (ctx, NULL, NULL, NULL, s->key) == 1
                && EVP_DigestSign (ctx, sig, &slen, d, len) == 1 && slen == sizeof sig;
  EVP_MD_CTX_free (ctx);
  if (!ok)
    {
      dfi_throw (error, DF_ERROR_FAILED, "ed25519 signing failed");
      return NULL;
    }
  return g_bytes_new (sig, sizeof sig);
}

GBytes *
dfi_signer_wrap (DfSigner *s, GBytes *data, GError **error)
{
  GBytes *sig = dfi_signer_sign (s, data, error);
  if (sig == NULL)
    return NULL;
  g_autoptr (GPtrArray) sigs = g_ptr_array_new_with_free_func ((GDestroyNotify)g_bytes_unref);
  g_ptr_array_add (sigs, sig);
  return dfi_signed_wrap (data, sigs);
}

gboolean
dfi_signer_verify (DfSigner *s, GBytes *data, GBytes *sig)
{
  gsize len, slen;
  const guint8 *d = g_bytes_get_data (data, &len);
  const guint8 *sg = g_bytes_get_data (sig, &slen);
  if (slen != DF_ED25519_SIG_LEN)
    return FALSE;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new ();
  gboolean ok = ctx && EVP_DigestVerifyInit (ctx, NULL, NULL, NULL, s->key) == 1
                && EVP_DigestVerify (ctx, sg, slen, d, len) == 1;
  EVP_MD_CTX_free (ctx);
  return ok;
}

/* The raw public key of @s. */
static gboolean
signer_public (DfSigner *s, guint8 pub[DF_ED25519_KEY_LEN])
{
  gsize len = DF_ED25519_KEY_LEN;
  return EVP_PKEY_get_raw_public_key (s->key, pub, &len) == 1 && len == DF_ED25519_KEY_LEN;
}

GPtrArray *
dfi_signers_load (const GPtrArray *paths, GError **error)
{
  g_autoptr (GPtrArray) signers = g_ptr_array_new_with_free_func ((GDestroyNotify)dfi_signer_free);
  for (guint i = 0; paths && i < paths->len; i++)
    {
      const char *path = paths->pdata[i];
      DfSigner *s = dfi_signer_load (path, error);
      if (s == NULL)
        return NULL;
      g_ptr_array_add (signers, s);
      guint8 pub[DF_ED25519_KEY_LEN], other[DF_ED25519_KEY_LEN];
      if (!signer_public (s, pub))
        {
          dfi_throw (error, DF_ERROR_FAILED, "%s: cannot read its public key", path);
          return NULL;
        }
      for (guint j = 0; j < i; j++)
        if (signer_public (signers->pdata[j], other) && memcmp (pub, other, sizeof pub) == 0)
          {
            dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "%s and %s hold the same key", (const char *)paths->pdata[j],
                       path);
            return NULL;
          }
    }
  return g_steal_pointer (&signers);
}

GPtrArray *
dfi_signers_sign (GPtrArray *signers, GBytes *data, GError **error)
{
  g_autoptr (GPtrArray) sigs = g_ptr_array_new_with_free_func ((GDestroyNotify)g_bytes_unref);
  for (guint i = 0; signers && i < signers->len; i++)
    {
      GBytes *sig = dfi_signer_sign (signers->pdata[i], data, error);
      if (sig == NULL)
        return NULL;
      g_ptr_array_add (sigs, sig);
    }
  return g_steal_pointer (&sigs);
}

GBytes *
dfi_signers_wrap (GPtrArray *signers, GBytes *data, GError **error)
{
  g_autoptr (GPtrArray) sigs = dfi_signers_sign (signers, data, error);
  return sigs ? dfi_signed_wrap (data, sigs) : NULL;
}

gboolean
dfi_signers_match (GPtrArray *signers, GBytes *data, GPtrArray *sigs)
{
  guint n = signers ? signers->len : 0;
  if (sigs == NULL || n == 0)
    return sigs == NULL && n == 0;
  if (sigs->len != n)
    return FALSE;
  for (guint i = 0; i < n; i++)
    {
      gboolean found = FALSE;
      for (guint j = 0; j < sigs->len && !found; j++)
        found = dfi_signer_verify (signers->pdata[i], data, sigs->pdata[j]);
      if (!found)
        return FALSE;
    }
  return TRUE;
}

gboolean
dfi_signed_unwrap (GBytes *file, GBytes **out_data, GPtrArray **out_sigs, GError **error)
{
  gsize len;
  const guint8 *d = g_bytes_get_data (file, &len);
  if (len < 8 || memcmp (d, DF_SIGNED_MAGIC, 8) != 0)
    return FALSE;
  g_autoptr (GVariant) v
      = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE (DF_SIGNED_FORMAT), file, FALSE));
  if (!g_variant_is_normal_form (v))
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "signed superblock: malformed envelope");
  g_autoptr (GVariant) data = g_variant_get_child_value (v, 1);
  g_autoptr (GVariant) dict = g_variant_get_child_value (v, 2);
  g_autoptr (GPtrArray) sigs = g_ptr_array_new_with_free_func ((GDestroyNotify)g_bytes_unref);
  g_autoptr (GVariant) list = g_variant_lookup_value (dict, DF_SIGN_ED25519_KEY, G_VARIANT_TYPE ("aay"));
  /* Checked before anything is verified: pure ed25519 hashes the whole
   * message again for every signature and key. */
  if (list && g_variant_n_children (list) > DF_SIGNATURES_MAX)
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "signed superblock: %zu ed25519 signatures, more than %d",
                      g_variant_n_children (list), DF_SIGNATURES_MAX);
  for (gsize i = 0; list && i < g_variant_n_children (list); i++)
    {
      g_autoptr (GVariant) sig = g_variant_get_child_value (list, i);
      if (g_variant_get_size (sig) != DF_ED25519_SIG_LEN)
        return dfi_throw (error, DF_ERROR_INVALID_DELTA, "signed superblock: an ed25519 signature of %zu bytes",
                          g_variant_get_size (sig));
      g_ptr_array_add (sigs, g_variant_get_data_as_bytes (sig));
    }
  *out_data = g_variant_get_data_as_bytes (data);
  *out_sigs = g_steal_pointer (&sigs);
  return TRUE;
}

gboolean
dfi_signed_open (GBytes *file, GBytes **out_inner, GBytes **out_signed, GPtrArray **out_sigs, GError **error)
{
  GError *local = NULL;
  *out_signed = NULL;
  *out_sigs = NULL;
  if (dfi_signed_unwrap (file, out_signed, out_sigs, &local))
    {
      *out_inner = g_bytes_ref (*out_signed);
      return TRUE;
    }
  if (local)
    {
      g_propagate_error (error, local);
      return FALSE;
    }
  *out_inner = g_bytes_ref (file);
  return TRUE;
}

gpointer
dfi_signed_file_parse (GBytes *file, DfPlainParser parse, goffset file_member, const DfSignaturePolicy *policy,
                       guint64 memory, GError **error)
{
  DfSignedFile sf = { 0 };
  g_autoptr (GBytes) inner = NULL, signed_data = NULL;
  g_autoptr (GPtrArray) sigs = NULL;
  if (!dfi_signed_open (file, &inner, &signed_data, &sigs, error))
    return NULL;
  if (policy && !dfi_signature_policy (signed_data, sigs, policy, &sf.verified, error))
    return NULL;
  sf.is_signed = signed_data != NULL;
  sf.n_signatures = sigs ? sigs->len : 0;
  g_clear_pointer (&signed_data, g_bytes_unref);
  g_clear_pointer (&sigs, g_ptr_array_unref);
  gpointer sb = parse (inner, memory, error);
  if (sb == NULL)
    return NULL;
  sf.size = g_bytes_get_size (file);
  dfi_sha256 (g_bytes_get_data (file, NULL), sf.size, sf.sha256);
  *(DfSignedFile *)G_STRUCT_MEMBER_P (sb, file_member) = sf;
  return sb;
}

gboolean
dfi_signature_policy_init (DfSignaturePolicy *p, const char *keys_path, const char *const *revoked_paths,
                           guint n_revoked, gboolean require, GError **error)
{
  p->keys = p->revoked = NULL;
  p->require = require;
  if (keys_path && (p->keys = dfi_keyring_load (keys_path, error)) == NULL)
    return FALSE;
  for (guint i = 0; i < n_revoked; i++)
    {
      if (revoked_paths[i] == NULL)
        continue;
      if (p->revoked == NULL)
        p->revoked = dfi_keyring_new ();
      if (!dfi_keyring_add_path (p->revoked, revoked_paths[i], error))
        {
          g_prefix_error (error, "revoked keys: ");
          return FALSE;
        }
    }
  if (p->keys && p->revoked)
    dfi_keyring_remove (p->keys, p->revoked);
  return TRUE;
}

void
dfi_signature_policy_clear (DfSignaturePolicy *p)
{
  g_clear_pointer (&p->keys, dfi_keyring_free);
  g_clear_pointer (&p->revoked, dfi_keyring_free);
}

gboolean
dfi_signature_policy (GBytes *signed_data, GPtrArray *sigs, const DfSignaturePolicy *p, gboolean *out_verified,
                      GError **error)
{
  const DfKeyring *keys = p->keys;
  gboolean require = p->require;
  *out_verified = FALSE;
  if (signed_data == NULL)
    {
      if (require)
        return dfi_throw (error, DF_ERROR_UNTRUSTED, "the superblock is not signed and signatures are required");
      return TRUE;
    }
  if (keys == NULL)
    {
      if (require)
        return dfi_throw (error, DF_ERROR_UNTRUSTED, "signatures are required but no trusted keys were given");
      return TRUE;
    }
  if (!dfi_keyring_verify_any (keys, signed_data, sigs))
    {
      if (p->revoked && dfi_keyring_verify_any (p->revoked, signed_data, sigs))
        return dfi_throw (error, DF_ERROR_UNTRUSTED,
                          "the superblock is signed only by revoked keys (none of its %u ed25519 signatures "
                          "verifies with the %u trusted keys left)",
                          sigs ? sigs->len : 0, dfi_keyring_size (keys));
      return dfi_throw (error, DF_ERROR_UNTRUSTED,
                        "none of the superblock's %u ed25519 signatures verifies with the %u trusted keys",
                        sigs ? sigs->len : 0, dfi_keyring_size (keys));
    }
  *out_verified = TRUE;
  return TRUE;
}

/* Writes @text into a new file @path (never over an existing one). */
static gboolean
write_new_file (const char *path, const char *text, int mode, GError **error)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0)
    return dfi_throw_errno (error, errno, "creating %s", path);
  gsize len = strlen (text), done = 0;
  while (done < len)
    {
      ssize_t n = write (fd, text + done, len - done);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          int errsv = errno;
          close (fd);
          unlink (path);
          return dfi_throw_errno (error, errsv, "writing %s", path);
        }
      done += n;
    }
  if (fsync (fd) < 0 || close (fd) < 0)
    {
      int errsv = errno;
      unlink (path);
      return dfi_throw_errno (error, errsv, "writing %s", path);
    }
  return TRUE;
}

gboolean
df_ed25519_keygen (const char *secret_path, const char *public_path, GError **error)
{
  if (g_file_test (secret_path, G_FILE_TEST_EXISTS) || g_file_test (public_path, G_FILE_TEST_EXISTS))
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "%s or %s already exists: keys are never overwritten",
                      secret_path, public_path);
  EVP_PKEY *pk = EVP_PKEY_Q_keygen (NULL, NULL, "ED25519");
  guint8 raw[64];
  gsize slen = 32, plen = 32;
  gboolean ok = pk && EVP_PKEY_get_raw_private_key (pk, raw, &slen) == 1 && slen == 32
                && EVP_PKEY_get_raw_public_key (pk, raw + 32, &plen) == 1 && plen == 32;
  EVP_PKEY_free (pk);
  if (!ok)
    {
      OPENSSL_cleanse (raw, sizeof raw);
      return dfi_throw (error, DF_ERROR_FAILED, "ed25519 key generation failed");
    }
  g_autofree char *secret = g_base64_encode (raw, 64);
  g_autofree char *pub = g_base64_encode (raw + 32, 32);
  OPENSSL_cleanse (raw, sizeof raw);
  g_autofree char *secret_line = g_strconcat (secret, "\n", NULL);
  g_autofree char *pub_line = g_strconcat (pub, "\n", NULL);
  OPENSSL_cleanse (secret, strlen (secret));
  ok = write_new_file (secret_path, secret_line, 0600, error);
  OPENSSL_cleanse (secret_line, strlen (secret_line));
  if (!ok)
    return FALSE;
  if (!write_new_file (public_path, pub_line, 0644, error))
    {
      unlink (secret_path);
      return FALSE;
    }
  return TRUE;
}
