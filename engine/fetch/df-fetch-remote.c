/* A fetch through a remote of the repository's configuration
 * (df_fetch_options_set_remote()): what `ostree pull REMOTE` reads from
 * it, and the ref looked up in the remote's summary, its signature checked
 * first when the remote asks for that.
 *
 * The summary and its signature come through our own downloader (mirrors,
 * retries, the low-speed limit, a size cap) rather than libostree's
 * ostree_repo_remote_fetch_summary_with_options(), which has none of those
 * limits and runs its own main loop; libostree then judges what came: the
 * GPG signatures with the remote's keyring, the ed25519 ones with the keys
 * the remote's config names. */
#include <fcntl.h>
#include <gio/gio.h>

#include "df-apply-policy.h"
#include "df-downloader.h"
#include "df-remote-sign.h"
#include "df-fetch-remote.h"

/* The lines of a mirror list that are http(s) URLs (empty lines and
 * "#" comments skipped, as libostree does), at most DF_FETCH_MIRRORS. */
static gboolean
parse_mirrorlist (const char *list_url, const char *text, gsize len, GPtrArray *out, GError **error)
{
  if (memchr (text, '\0', len) || !g_utf8_validate (text, len, NULL))
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "mirror list %s is not text", list_url);
  g_autofree char *copy = g_strndup (text, len);
  g_auto (GStrv) lines = g_strsplit (copy, "\n", -1);
  for (guint i = 0; lines[i]; i++)
    {
      char *l = g_strstrip (lines[i]);
      if (l[0] == '\0' || l[0] == '#')
        continue;
      if (!g_str_has_prefix (l, "http://") && !g_str_has_prefix (l, "https://"))
        continue; /* libostree skips them too */
      if (out->len == DF_FETCH_MIRRORS)
        return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "mirror list %s names more than %u mirrors", list_url,
                          DF_FETCH_MIRRORS);
      gsize n = strlen (l);
      while (n > 0 && l[n - 1] == '/')
        l[--n] = '\0';
      g_ptr_array_add (out, g_strdup (l));
    }
  if (out->len == 0)
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "mirror list %s names no http:// or https:// mirror", list_url);
  return TRUE;
}

/* The mirror list at @list_url: a local file (file://), or downloaded with
 * @o's network settings. At most DF_FETCH_MIRRORLIST_MAX bytes. */
static gboolean
load_mirrorlist (const DfFetchOptions *o, const char *list_url, GPtrArray *out, GCancellable *c, GError **error)
{
  g_autoptr (GBytes) text = NULL;
  if (g_str_has_prefix (list_url, "file://"))
    {
      g_autoptr (GFile) file = g_file_new_for_uri (list_url);
      g_autofree char *path = g_file_get_path (file);
      if (path == NULL)
        return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "mirror list %s is not a local path", list_url);
      text = dfi_read_file_bounded (AT_FDCWD, path, DF_FETCH_MIRRORLIST_MAX, G_MAXUINT64, "mirror list", error);
      if (text == NULL)
        return FALSE;
    }
  else if (g_str_has_prefix (list_url, "http://") || g_str_has_prefix (list_url, "https://"))
    {
      /* The downloader takes a base URL and a file under it. */
      const char *slash = strrchr (list_url, '/');
      g_autoptr (DfFetchOptions) lo = dfi_fetch_options_copy (o);
      g_ptr_array_set_size (lo->net.urls, 0);
      g_ptr_array_add (lo->net.urls, g_strndup (list_url, slash - list_url));
      DfFetchResult scratch = { 0 };
      DfDownloader *d = dfi_downloader_new (lo, &scratch, c);
      gboolean not_found = FALSE;
      guint served_by = 0;
      text = dfi_downloader_fetch_small (d, slash + 1, DF_FETCH_MIRRORLIST_MAX, &not_found, &served_by, error);
      dfi_downloader_free (d);
      if (text == NULL)
        {
          if (not_found)
            return dfi_throw (error, DF_ERROR_NETWORK, "mirror list %s: not found", list_url);
          return FALSE;
        }
    }
  else
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "mirror list %s is not file://, http:// or https://", list_url);
  gsize len;
  const char *data = g_bytes_get_data (text, &len);
  return parse_mirrorlist (list_url, data ? data : "", len, out, error);
}

/* The mirrors a remote URL option names: itself, or the mirror list of
 * "mirrorlist=URL". */
static gboolean
expand_url (const DfFetchOptions *o, const char *remote, const char *url, GPtrArray *out, GCancellable *c,
            GError **error)
{
  if (g_str_has_prefix (url, "mirrorlist="))
    return load_mirrorlist (o, url + strlen ("mirrorlist="), out, c, error);
  if (!g_str_has_prefix (url, "http://") && !g_str_has_prefix (url, "https://"))
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT,
                      "remote %s's URL %s is not http:// or https:// (deltafetch fetches from web servers)", remote,
                      url);
  char *u = g_strdup (url);
  gsize n = strlen (u);
  while (n > 0 && u[n - 1] == '/')
    u[--n] = '\0';
  g_ptr_array_add (out, u);
  return TRUE;
}

/* The summary signatures remote @remote asks for: ed25519 by
 * sign-verify-summary, GPG by gpg-verify-summary. */
static gboolean
summary_wants (OstreeRepo *repo, const char *remote, gboolean *ed25519, gboolean *gpg, GError **error)
{
  g_autoptr (GError) local = NULL;
  *ed25519 = *gpg = FALSE;
  if (!dfi_remote_wants_ed25519 (repo, remote, "sign-verify-summary", ed25519, error))
    return FALSE;
  if (!ostree_repo_remote_get_gpg_verify_summary (repo, remote, gpg, &local))
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "remote %s: %s", remote, local->message);
  return TRUE;
}

/* The summary's signatures as summary_wants() found them asked for. */
static gboolean
verify_summary (OstreeRepo *repo, const char *remote, GBytes *summary, GBytes *sig, gboolean ed25519, gboolean gpg,
                GCancellable *c, GError **error)
{
  g_autoptr (GError) local = NULL;
  if (!ed25519 && !gpg)
    return TRUE;
  if (sig == NULL)
    return dfi_throw (error, DF_ERROR_UNTRUSTED,
                      "remote %s asks for a signed summary, and the server has no summary.sig", remote);
  if (ed25519)
    {
      g_autoptr (DfKeyring) keys = dfi_remote_keyring (repo, remote, error);
      if (keys == NULL)
        return FALSE;
      g_autoptr (GVariant) sigv = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE_VARDICT, sig, FALSE));
      g_autofree char *what = g_strdup_printf ("remote %s's summary", remote);
      if (!g_variant_is_normal_form (sigv))
        return dfi_throw (error, DF_ERROR_UNTRUSTED, "%s: summary.sig is malformed", what);
      if (!dfi_verify_ed25519_dict (keys, summary, sigv, what, error))
        return FALSE;
    }
  if (gpg)
    {
      g_autoptr (OstreeGpgVerifyResult) r = ostree_repo_verify_summary (repo, remote, summary, sig, c, &local);
      if (r == NULL || !ostree_gpg_verify_result_require_valid_signature (r, &local))
        return dfi_throw (error, DF_ERROR_UNTRUSTED, "remote %s: the summary's GPG signature does not verify: %s",
                          remote, local->message);
    }
  return TRUE;
}

/* The commit @ref names in the remote's summary, from @meta_urls. */
static gboolean
resolve_ref (OstreeRepo *repo, const DfFetchOptions *o, const char *remote, const char *ref, GPtrArray *meta_urls,
             DfFetchResult *res, char **out, GCancellable *c, GError **error)
{
  g_autoptr (DfFetchOptions) mo = dfi_fetch_options_copy (o);
  g_ptr_array_unref (mo->net.urls);
  mo->net.urls = g_ptr_array_ref (meta_urls);
  if (!dfi_fetch_validate_urls (mo->net.urls, error))
    return FALSE;
  gboolean ed25519 = FALSE, gpg = FALSE;
  if (!summary_wants (repo, remote, &ed25519, &gpg, error))
    return FALSE;
  DfDownloader *d = dfi_downloader_new (mo, res, c);
  gboolean not_found = FALSE;
  guint served_by = 0;
  g_autoptr (GBytes) summary
      = dfi_downloader_fetch_small (d, "summary", DF_FETCH_SUMMARY_MAX, &not_found, &served_by, error);
  g_autoptr (GBytes) sig = NULL;
  g_autoptr (GError) sig_error = NULL;
  if (summary && (ed25519 || gpg))
    {
      /* From the mirror the summary came from: signature and summary must
       * be one publication. */
      while (dfi_downloader_current_mirror (d) >= 0 && (guint)dfi_downloader_current_mirror (d) != served_by)
        dfi_downloader_demote (d, dfi_downloader_current_mirror (d), "it has no summary");
      gboolean sig_missing = FALSE;
      sig = dfi_downloader_fetch_small (d, "summary.sig", DF_FETCH_SUMMARY_SIG_MAX, &sig_missing, &served_by,
                                        &sig_error);
      if (sig == NULL && !sig_missing)
        {
          g_propagate_error (error, g_steal_pointer (&sig_error));
          g_clear_pointer (&summary, g_bytes_unref);
        }
    }
  else if (not_found)
    dfi_throw (error, DF_ERROR_NETWORK, "remote %s has no summary (ostree summary -u makes one)", remote);
  res->bytes_downloaded += dfi_downloader_bytes (d);
  dfi_downloader_free (d);
  if (summary == NULL)
    return FALSE;
  if (!verify_summary (repo, remote, summary, sig, ed25519, gpg, c, error))
    return FALSE;
  g_autoptr (GVariant) sv
      = g_variant_ref_sink (g_variant_new_from_bytes (OSTREE_SUMMARY_GVARIANT_FORMAT, summary, FALSE));
  if (!g_variant_is_normal_form (sv))
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "remote %s: the summary is malformed", remote);
  g_autoptr (GVariant) refs = g_variant_get_child_value (sv, 0);
  gsize n = g_variant_n_children (refs);
  for (gsize i = 0; i < n; i++)
    {
      const char *name;
      g_autoptr (GVariant) csum = NULL;
      g_variant_get_child (refs, i, "(&s(t@ay@a{sv}))", &name, NULL, &csum, NULL);
      if (strcmp (name, ref) != 0)
        continue;
      if (g_variant_get_size (csum) != DF_SHA256_LEN)
        return dfi_throw (error, DF_ERROR_INVALID_DELTA, "remote %s: the summary's entry for %s is malformed", remote,
                          ref);
      *out = ostree_checksum_from_bytes (g_variant_get_data (csum));
      res->summary_verified = ed25519 || gpg;
      return TRUE;
    }
  return dfi_throw (error, DF_ERROR_NOT_FOUND, "remote %s has no ref %s", remote, ref);
}

gboolean
dfi_fetch_remote_resolve (OstreeRepo *repo, const DfFetchOptions *o, DfFetchResult *res, GCancellable *c,
                          DfFetchOptions **out, GError **error)
{
  const char *remote = o->remote;
  g_autoptr (GError) local = NULL;
  g_autofree char *url = NULL;
  if (!ostree_repo_remote_get_url (repo, remote, &url, &local))
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "%s", local->message);
  g_autoptr (DfFetchOptions) r = dfi_fetch_options_copy (o);
  g_free (r->apply->remote);
  r->apply->remote = g_strdup (remote);

  /* TLS and the proxy: the options' own win. */
  g_autofree char *ca = NULL, *cert = NULL, *key = NULL, *proxy = NULL;
  gboolean permissive = FALSE;
  if (!dfi_remote_option (repo, remote, "tls-ca-path", &ca, error)
      || !dfi_remote_option (repo, remote, "tls-client-cert-path", &cert, error)
      || !dfi_remote_option (repo, remote, "tls-client-key-path", &key, error)
      || !dfi_remote_option (repo, remote, "proxy", &proxy, error))
    return FALSE;
  if (!ostree_repo_get_remote_boolean_option (repo, remote, "tls-permissive", FALSE, &permissive, &local))
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "remote %s: %s", remote, local->message);
  if ((cert == NULL) != (key == NULL))
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT,
                      "remote %s must set both tls-client-cert-path and tls-client-key-path, or neither", remote);
  if (r->net.ca_file == NULL)
    r->net.ca_file = g_steal_pointer (&ca);
  if (r->net.cert == NULL)
    {
      r->net.cert = g_steal_pointer (&cert);
      r->net.key = g_steal_pointer (&key);
    }
  if (r->net.proxy == NULL)
    r->net.proxy = g_steal_pointer (&proxy);
  r->net.insecure = r->net.insecure || permissive;

  /* Revoked keys: the remote's beside the options' own (both count). */
  g_free (r->apply->remote_revoked_keys);
  r->apply->remote_revoked_keys = NULL;
  if (!dfi_remote_option (repo, remote, DF_REMOTE_REVOKED_KEYS, &r->apply->remote_revoked_keys, error))
    return FALSE;

  /* The ref is the remote's: REMOTE:REF, as `ostree pull` keeps it. */
  g_autofree char *ref_remote = NULL, *ref_name = NULL;
  if (r->apply->ref)
    {
      if (!ostree_parse_refspec (r->apply->ref, &ref_remote, &ref_name, NULL))
        return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "invalid ref name '%s'", r->apply->ref);
      if (ref_remote && strcmp (ref_remote, remote) != 0)
        return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "ref %s names another remote than %s", r->apply->ref,
                          remote);
      g_free (r->apply->ref);
      r->apply->ref = g_strdup_printf ("%s:%s", remote, ref_name);
    }

  /* The mirrors: content from contenturl, else url; the summary from url. */
  g_autoptr (GPtrArray) meta_urls = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *contenturl = NULL;
  if (!dfi_remote_option (repo, remote, "contenturl", &contenturl, error))
    return FALSE;
  if (r->apply->commit == NULL || (r->net.urls->len == 0 && contenturl == NULL))
    {
      if (!expand_url (r, remote, url, meta_urls, c, error))
        return FALSE;
    }
  if (r->net.urls->len == 0)
    {
      if (contenturl)
        {
          g_autoptr (GPtrArray) content = g_ptr_array_new_with_free_func (g_free);
          if (!expand_url (r, remote, contenturl, content, c, error))
            return FALSE;
          g_ptr_array_extend_and_steal (r->net.urls, g_steal_pointer (&content));
        }
      else
        for (guint i = 0; i < meta_urls->len; i++)
          g_ptr_array_add (r->net.urls, g_strdup (meta_urls->pdata[i]));
    }

  if (r->apply->commit == NULL)
    {
      if (ref_name == NULL)
        return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "a ref or a commit is required");
      g_autofree char *commit = NULL;
      if (!resolve_ref (repo, r, remote, ref_name, meta_urls, res, &commit, c, error))
        return FALSE;
      r->apply->commit = g_steal_pointer (&commit);
    }
  *out = g_steal_pointer (&r);
  return TRUE;
}
