/* generate --format=ostree: a stock OSTree static delta, made by libostree's
 * own generator (bsdiff + xz, single-threaded: slow, but exactly what stock
 * clients read), optionally signed in the envelope of df-sign.h, and made
 * discoverable to stock clients through the delta index and the summary. */
#include "df-generate-private.h"
#include "df-generate-options.h"

#include "df-sign.h"
#include "df-stock.h"

#include <fcntl.h>
#include <unistd.h>

/* ---------------------------------------------------------------------- */
/* The summary and its signatures                                          */

#define SUMMARY_SIG_MAX (1 * DF_MIB)
#define SUMMARY_MAX (256 * DF_MIB)
#define GPG_SIGS_KEY "ostree.gpgsigs"

/* The kinds of signatures REPO/summary.sig holds (none when absent). */
static gboolean
summary_sig_kinds (int repo_dfd, gboolean *gpg, gboolean *ed25519, GError **error)
{
  *gpg = *ed25519 = FALSE;
  if (faccessat (repo_dfd, "summary.sig", F_OK, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)
    return TRUE;
  g_autoptr (GBytes) b
      = dfi_read_file_bounded (repo_dfd, "summary.sig", SUMMARY_SIG_MAX, G_MAXUINT64, "summary.sig", error);
  if (b == NULL)
    return FALSE;
  g_autoptr (GVariant) v = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE_VARDICT, b, FALSE));
  g_autoptr (GVariant) g = g_variant_lookup_value (v, GPG_SIGS_KEY, G_VARIANT_TYPE ("aay"));
  g_autoptr (GVariant) e = g_variant_lookup_value (v, DF_SIGN_ED25519_KEY, G_VARIANT_TYPE ("aay"));
  *gpg = g && g_variant_n_children (g) > 0;
  *ed25519 = e && g_variant_n_children (e) > 0;
  return TRUE;
}

/* FALSE when a kind of signature the summary has cannot be made again. */
static gboolean
keys_for_kinds (gboolean gpg, gboolean ed25519, const DfGenerateOptions *opts, GPtrArray *signers, GError **error)
{
  if (gpg && opts->gpg_keys->len == 0)
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT,
                      "the repository's summary is GPG-signed and would need signing again: give the key "
                      "(--gpg-sign, --gpg-homedir); nothing was changed");
  if (ed25519 && (signers == NULL || signers->len == 0))
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT,
                      "the repository's summary is ed25519-signed and would need signing again: give the key "
                      "(--sign); nothing was changed");
  return TRUE;
}

gboolean
dfi_summary_check_keys (OstreeRepo *repo, const DfGenerateOptions *opts, GPtrArray *signers, GError **error)
{
  gboolean gpg, ed25519;
  return summary_sig_kinds (ostree_repo_get_dfd (repo), &gpg, &ed25519, error)
         && keys_for_kinds (gpg, ed25519, opts, signers, error);
}

/* Adds one ed25519 signature per signer of REPO/summary to summary.sig,
 * keeping what else it holds (GPG signatures). */
static gboolean
sign_summary_ed25519 (int repo_dfd, GPtrArray *signers, GError **error)
{
  g_autoptr (GBytes) summary = dfi_read_file_bounded (repo_dfd, "summary", SUMMARY_MAX, G_MAXUINT64, "summary", error);
  if (summary == NULL)
    return FALSE;
  g_autoptr (GPtrArray) sigs = dfi_signers_sign (signers, summary, error);
  if (sigs == NULL)
    return FALSE;
  GVariantBuilder dict;
  g_variant_builder_init (&dict, G_VARIANT_TYPE_VARDICT);
  g_autoptr (GBytes) old
      = dfi_read_file_bounded (repo_dfd, "summary.sig", SUMMARY_SIG_MAX, G_MAXUINT64, "summary.sig", NULL);
  if (old)
    {
      g_autoptr (GVariant) v = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE_VARDICT, old, FALSE));
      GVariantIter it;
      const char *k;
      GVariant *val;
      g_variant_iter_init (&it, v);
      while (g_variant_iter_next (&it, "{&sv}", &k, &val))
        {
          if (strcmp (k, DF_SIGN_ED25519_KEY) != 0)
            g_variant_builder_add (&dict, "{sv}", k, val);
          g_variant_unref (val);
        }
    }
  GVariantBuilder aay;
  g_variant_builder_init (&aay, G_VARIANT_TYPE ("aay"));
  for (guint i = 0; i < sigs->len; i++)
    g_variant_builder_add_value (&aay, g_variant_new_from_bytes (G_VARIANT_TYPE_BYTESTRING, sigs->pdata[i], TRUE));
  g_variant_builder_add (&dict, "{sv}", DF_SIGN_ED25519_KEY, g_variant_builder_end (&aay));
  g_autoptr (GVariant) out = g_variant_ref_sink (g_variant_builder_end (&dict));
  g_autoptr (GVariant) normal = g_variant_get_normal_form (out);
  g_autoptr (GBytes) bytes = g_variant_get_data_as_bytes (normal);
  return dfi_write_file_atomic (repo_dfd, "summary.sig", bytes, error);
}

gboolean
dfi_summary_regenerate (OstreeRepo *repo, const DfGenerateOptions *opts, GPtrArray *signers, GCancellable *cancellable,
                        GError **error)
{
  int repo_dfd = ostree_repo_get_dfd (repo);
  gboolean gpg, ed25519;
  if (!summary_sig_kinds (repo_dfd, &gpg, &ed25519, error) || !keys_for_kinds (gpg, ed25519, opts, signers, error))
    return FALSE;
  /* libostree's regeneration removes summary.sig: sign the new summary
   * again with every kind of key it had (and GPG when asked). */
  if (!ostree_repo_regenerate_summary (repo, NULL, cancellable, error))
    return FALSE;
  if (opts->gpg_keys->len > 0)
    {
      g_autoptr (GPtrArray) ids = g_ptr_array_new ();
      for (guint i = 0; i < opts->gpg_keys->len; i++)
        g_ptr_array_add (ids, opts->gpg_keys->pdata[i]);
      g_ptr_array_add (ids, NULL);
      if (!ostree_repo_add_gpg_signature_summary (repo, (const char **)ids->pdata, opts->gpg_homedir, cancellable,
                                                  error))
        return FALSE;
    }
  return !ed25519 || sign_summary_ed25519 (repo_dfd, signers, error);
}

/* ---------------------------------------------------------------------- */
/* Stock deltas                                                            */

gboolean
dfi_generate_stock (OstreeRepo *repo, const DfGenerateOptions *opts, const char *from, const char *to,
                    GPtrArray *signers, char **out_path, GCancellable *cancellable, GError **error)
{
  const char *out_dir = opts->out_dir;
  GVariantBuilder b;
  g_variant_builder_init (&b, G_VARIANT_TYPE ("a{sv}"));
  g_autofree char *sb_path = NULL;
  if (out_dir)
    {
      if (g_mkdir_with_parents (out_dir, 0755) < 0)
        return dfi_throw_errno (error, errno, "creating %s", out_dir);
      sb_path = g_build_filename (out_dir, "superblock", NULL);
      if (g_file_test (sb_path, G_FILE_TEST_EXISTS))
        return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "%s already holds a delta", out_dir);
      g_variant_builder_add (&b, "{sv}", "filename", g_variant_new_bytestring (sb_path));
    }
  g_autoptr (GVariant) params = g_variant_ref_sink (g_variant_builder_end (&b));
  if (!ostree_repo_static_delta_generate (repo, OSTREE_STATIC_DELTA_GENERATE_OPT_MAJOR, from, to, NULL, params,
                                          cancellable, error))
    return FALSE;
  g_autofree char *dir = NULL;
  int base_dfd = AT_FDCWD;
  if (out_dir)
    dir = g_strdup (out_dir);
  else
    {
      dir = dfi_stock_delta_relpath (from, to);
      base_dfd = ostree_repo_get_dfd (repo);
    }
  g_autofree char *rel_sb = g_build_filename (dir, "superblock", NULL);
  if (signers && signers->len > 0)
    {
      g_autoptr (GBytes) plain
          = dfi_read_file_bounded (base_dfd, rel_sb, DF_STOCK_SUPERBLOCK_MAX, G_MAXUINT64, "stock superblock", error);
      if (plain == NULL)
        return FALSE;
      g_autoptr (GBytes) wrapped = dfi_signers_wrap (signers, plain, error);
      if (wrapped == NULL || !dfi_write_file_atomic (base_dfd, rel_sb, wrapped, error))
        return FALSE;
    }
  if (!out_dir)
    {
      /* What stock pull looks at: the delta index and the summary. */
      if (!ostree_repo_static_delta_reindex (repo, 0, to, cancellable, error)
          || !dfi_summary_regenerate (repo, opts, signers, cancellable, error))
        return FALSE;
    }
  if (out_path)
    {
      g_autofree char *repo_path = g_file_get_path (ostree_repo_get_path (repo));
      *out_path = out_dir ? g_strdup (out_dir) : g_build_filename (repo_path, dir, NULL);
    }
  return TRUE;
}
