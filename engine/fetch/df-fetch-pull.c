/* The last resort of df_fetch(): libostree's own pull, when the server
 * offers no native delta for the update. Pulling by checksum keeps the
 * trust model: libostree checks every object, the commit included, against
 * the checksum asked for. */
#include "df-fetch-private.h"

#include "df-apply-private.h"
#include "df-common.h"

#define FALLBACK_REMOTE "deltafetch-fallback"

static GVariant *
remote_options (const DfFetchOptions *o)
{
  GVariantBuilder b;
  g_variant_builder_init (&b, G_VARIANT_TYPE ("a{sv}"));
  /* Trust comes from the commit checksum, not from GPG. */
  g_variant_builder_add (&b, "{sv}", "gpg-verify", g_variant_new_string ("false"));
  g_variant_builder_add (&b, "{sv}", "gpg-verify-summary", g_variant_new_string ("false"));
  if (o->ca_file)
    g_variant_builder_add (&b, "{sv}", "tls-ca-path", g_variant_new_string (o->ca_file));
  if (o->cert)
    g_variant_builder_add (&b, "{sv}", "tls-client-cert-path", g_variant_new_string (o->cert));
  if (o->key)
    g_variant_builder_add (&b, "{sv}", "tls-client-key-path", g_variant_new_string (o->key));
  return g_variant_ref_sink (g_variant_builder_end (&b));
}

gboolean
df_fetch_pull_fallback (OstreeRepo *repo, const DfFetchOptions *o, GCancellable *c, GError **error)
{
  if (o->pin)
    return df_throw (error, DF_ERROR_NETWORK,
                     "the server offers no native delta, and libostree's pull cannot honour the pinned public key");
  g_autoptr (GVariant) ropts = remote_options (o);
  g_autofree char *last = NULL;
  for (guint i = 0; i < o->urls->len; i++)
    {
      const char *url = o->urls->pdata[i];
      g_autoptr (GError) e = NULL;
      ostree_repo_remote_change (repo, NULL, OSTREE_REPO_REMOTE_CHANGE_DELETE_IF_EXISTS, FALLBACK_REMOTE, NULL, NULL, c,
                                 NULL);
      if (!ostree_repo_remote_change (repo, NULL, OSTREE_REPO_REMOTE_CHANGE_ADD, FALLBACK_REMOTE, url, ropts, c, &e))
        {
          g_propagate_error (error, g_steal_pointer (&e));
          df_error_normalize (error, "configuring the fallback pull");
          return FALSE;
        }
      GVariantBuilder b;
      g_variant_builder_init (&b, G_VARIANT_TYPE ("a{sv}"));
      const char *refs[] = { o->commit, NULL };
      g_variant_builder_add (&b, "{sv}", "refs", g_variant_new_strv (refs, -1));
      g_variant_builder_add (&b, "{sv}", "n-network-retries", g_variant_new_uint32 (o->retries));
      /* The commit object first, for the downgrade check; then the rest. */
      GVariantBuilder b1;
      g_variant_builder_init (&b1, G_VARIANT_TYPE ("a{sv}"));
      g_variant_builder_add (&b1, "{sv}", "refs", g_variant_new_strv (refs, -1));
      g_variant_builder_add (&b1, "{sv}", "n-network-retries", g_variant_new_uint32 (o->retries));
      g_variant_builder_add (&b1, "{sv}", "flags", g_variant_new_int32 (OSTREE_REPO_PULL_FLAGS_COMMIT_ONLY));
      g_autoptr (GVariant) copts = g_variant_ref_sink (g_variant_builder_end (&b1));
      g_autoptr (GVariant) popts = g_variant_ref_sink (g_variant_builder_end (&b));
      g_autoptr (GVariant) commit = NULL;
      gboolean ok = ostree_repo_pull_with_options (repo, FALLBACK_REMOTE, copts, NULL, c, &e)
                    && ostree_repo_load_commit (repo, o->commit, &commit, NULL, &e);
      if (ok && !df_check_downgrade (repo, o->ref, o->commit, commit, o->allow_downgrade, error))
        {
          ostree_repo_remote_change (repo, NULL, OSTREE_REPO_REMOTE_CHANGE_DELETE_IF_EXISTS, FALLBACK_REMOTE, NULL,
                                     NULL, NULL, NULL);
          return FALSE;
        }
      ok = ok && ostree_repo_pull_with_options (repo, FALLBACK_REMOTE, popts, NULL, c, &e);
      ostree_repo_remote_change (repo, NULL, OSTREE_REPO_REMOTE_CHANGE_DELETE_IF_EXISTS, FALLBACK_REMOTE, NULL, NULL,
                                 NULL, NULL);
      if (g_cancellable_set_error_if_cancelled (c, error))
        return FALSE;
      if (ok)
        {
          if (o->ref && !ostree_repo_set_ref_immediate (repo, NULL, o->ref, o->commit, c, error))
            return FALSE;
          return TRUE;
        }
      /* A full disk is not the mirror's fault: no other mirror can help. */
      df_error_normalize (&e, "libostree's pull");
      if (g_error_matches (e, DF_ERROR, DF_ERROR_NO_SPACE))
        {
          g_propagate_error (error, g_steal_pointer (&e));
          return FALSE;
        }
      g_free (last);
      last = g_strdup_printf ("%s: %s", url, e->message);
    }
  return df_throw (error, DF_ERROR_NETWORK, "libostree's pull failed on every mirror; last: %s", last);
}
