/* Signatures as a remote of the repository's config asks for them (see
 * df-remote-sign.h), and the commit's before any part is applied. */
#include "df-remote-sign.h"

gboolean
dfi_remote_option (OstreeRepo *repo, const char *remote, const char *key, char **out, GError **error)
{
  g_autoptr (GError) local = NULL;
  *out = NULL;
  if (!ostree_repo_get_remote_option (repo, remote, key, NULL, out, &local))
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "remote %s: %s", remote, local->message);
  if (*out && (*out)[0] == '\0')
    g_clear_pointer (out, g_free);
  return TRUE;
}

gboolean
dfi_remote_wants_ed25519 (OstreeRepo *repo, const char *remote, const char *key, gboolean *out, GError **error)
{
  g_autofree char *raw = NULL;
  *out = FALSE;
  if (!dfi_remote_option (repo, remote, key, &raw, error))
    return FALSE;
  if (raw == NULL || strcmp (raw, "false") == 0 || strcmp (raw, "0") == 0)
    return TRUE;
  if (strcmp (raw, "true") == 0 || strcmp (raw, "1") == 0)
    {
      *out = TRUE; /* every type there is: ed25519 is the one */
      return TRUE;
    }
  g_auto (GStrv) types = NULL;
  g_autoptr (GError) local = NULL;
  if (!ostree_repo_get_remote_list_option (repo, remote, key, &types, &local))
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "remote %s: %s", remote, local->message);
  for (guint i = 0; types && types[i]; i++)
    {
      if (strcmp (types[i], "ed25519") != 0)
        return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT,
                          "remote %s: %s names signature type %s; only ed25519 is known", remote, key, types[i]);
      *out = TRUE;
    }
  return TRUE;
}

DfKeyring *
dfi_remote_keyring (OstreeRepo *repo, const char *remote, GError **error)
{
  g_autofree char *file = NULL, *key = NULL;
  if (!dfi_remote_option (repo, remote, "verification-ed25519-file", &file, error)
      || !dfi_remote_option (repo, remote, "verification-ed25519-key", &key, error))
    return NULL;
  g_autoptr (DfKeyring) k = dfi_keyring_new ();
  if ((file && !dfi_keyring_add_path (k, file, error)) || (key && !dfi_keyring_add_key (k, key, error)))
    {
      g_prefix_error (error, "remote %s: ", remote);
      return NULL;
    }
  if (file == NULL && key == NULL)
    {
      /* Where libostree's ed25519 looks when a remote names no key. */
      const char *system[] = { "/etc/ostree/trusted.ed25519", "/etc/ostree/trusted.ed25519.d",
                               "/usr/share/ostree/trusted.ed25519", "/usr/share/ostree/trusted.ed25519.d" };
      for (guint i = 0; i < G_N_ELEMENTS (system); i++)
        if (g_file_test (system[i], G_FILE_TEST_EXISTS) && !dfi_keyring_add_path (k, system[i], error))
          return NULL;
    }
  /* Keys the system revoked, beside its trusted ones, and those the
   * remote's deltafetch-revoked-keys names: they never count. */
  const char *revoked[] = { "/etc/ostree/revoked.ed25519", "/etc/ostree/revoked.ed25519.d",
                            "/usr/share/ostree/revoked.ed25519", "/usr/share/ostree/revoked.ed25519.d" };
  g_autoptr (DfKeyring) r = dfi_keyring_new ();
  for (guint i = 0; i < G_N_ELEMENTS (revoked); i++)
    if (g_file_test (revoked[i], G_FILE_TEST_EXISTS) && !dfi_keyring_add_path (r, revoked[i], error))
      return NULL;
  g_autofree char *own = NULL;
  if (!dfi_remote_option (repo, remote, DF_REMOTE_REVOKED_KEYS, &own, error))
    return NULL;
  if (own && !dfi_keyring_add_path (r, own, error))
    {
      g_prefix_error (error, "remote %s: %s: ", remote, DF_REMOTE_REVOKED_KEYS);
      return NULL;
    }
  dfi_keyring_remove (k, r);
  if (dfi_keyring_size (k) == 0)
    {
      dfi_throw (error, DF_ERROR_UNTRUSTED,
                 "remote %s asks for ed25519 signatures but names no key (verification-ed25519-key or -file) "
                 "that is not revoked",
                 remote);
      return NULL;
    }
  return g_steal_pointer (&k);
}

gboolean
dfi_verify_ed25519_dict (const DfKeyring *keys, GBytes *data, GVariant *sigdict, const char *what, GError **error)
{
  g_autoptr (GVariant) sigs
      = sigdict ? g_variant_lookup_value (sigdict, DF_SIGN_ED25519_KEY, G_VARIANT_TYPE ("aay")) : NULL;
  if (sigs == NULL || g_variant_n_children (sigs) == 0)
    return dfi_throw (error, DF_ERROR_UNTRUSTED, "%s carries no ed25519 signature", what);
  g_autoptr (GPtrArray) list = g_ptr_array_new_with_free_func ((GDestroyNotify)g_bytes_unref);
  gsize n = MIN (g_variant_n_children (sigs), DF_SIGNATURES_MAX);
  for (gsize i = 0; i < n; i++)
    {
      g_autoptr (GVariant) s = g_variant_get_child_value (sigs, i);
      g_ptr_array_add (list, g_variant_get_data_as_bytes (s));
    }
  if (!dfi_keyring_verify_any (keys, data, list))
    return dfi_throw (error, DF_ERROR_UNTRUSTED, "%s: no ed25519 signature verifies with a trusted key", what);
  return TRUE;
}

gboolean
dfi_verify_commit_for_remote (OstreeRepo *repo, const char *remote, const char *to_hex, GBytes *commit_bytes,
                              GBytes *commitmeta, GError **error)
{
  g_autoptr (GError) local = NULL;
  gboolean gpg = FALSE, ed25519 = FALSE;
  if (!ostree_repo_remote_get_gpg_verify (repo, remote, &gpg, &local))
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "remote %s: %s", remote, local->message);
  if (!dfi_remote_wants_ed25519 (repo, remote, "sign-verify", &ed25519, error))
    return FALSE;
  if (commitmeta && g_bytes_get_size (commitmeta) == 0)
    commitmeta = NULL;
  g_autofree char *what = g_strdup_printf ("commit %s (remote %s asks for signed commits)", to_hex, remote);
  if (ed25519)
    {
      g_autoptr (DfKeyring) keys = dfi_remote_keyring (repo, remote, error);
      if (keys == NULL)
        return FALSE;
      g_autoptr (GVariant) meta
          = commitmeta ? g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE_VARDICT, commitmeta, FALSE))
                       : NULL;
      if (!dfi_verify_ed25519_dict (keys, commit_bytes, meta, what, error))
        return FALSE;
    }
  if (gpg
      && !ostree_repo_signature_verify_commit_data (repo, remote, commit_bytes, commitmeta,
                                                    OSTREE_REPO_VERIFY_FLAGS_NO_SIGNAPI, NULL, &local))
    return dfi_throw (error, DF_ERROR_UNTRUSTED, "%s: its GPG signature does not verify: %s", what, local->message);
  return TRUE;
}
