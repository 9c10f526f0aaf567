/* The checks every apply makes, whatever the delta's format and wherever
 * its parts come from: the superblock read within the budget, trust
 * before any part (the expected commit, rollback, the from-commit), free
 * space, and what a failure leaves behind. */
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "df-apply-policy.h"
#include "df-remote-sign.h"

GBytes *
dfi_apply_read_superblock (int dfd, const char *name, const DfApplyOptions *o, GError **error)
{
  struct stat st;
  dfi_autofd fd = dfi_open_regular (dfd, name, "superblock", &st, error);
  if (fd < 0)
    return NULL;
  guint64 usable = dfi_apply_usable_memory (o);
  if ((guint64)st.st_size <= DF_STOCK_SUPERBLOCK_MAX && (guint64)st.st_size > usable)
    {
      dfi_throw (error, DF_ERROR_INVALID_ARGUMENT,
                 "the superblock has %" G_GUINT64_FORMAT " MiB, more than the memory budget leaves (%" G_GUINT64_FORMAT
                 " MiB)",
                 (guint64)st.st_size / DF_MIB + 1, usable / DF_MIB);
      return NULL;
    }
  return dfi_read_file_bounded (dfd, name, DF_STOCK_SUPERBLOCK_MAX, G_MAXUINT64, "superblock", error);
}

gboolean
dfi_apply_preflight (OstreeRepo *repo, const DfApplyOptions *opts, const char *to_hex, GBytes *commit_bytes,
                     GBytes *commitmeta, const char *from_hex, GCancellable *cancellable, GError **error)
{
  guint8 want[DF_SHA256_LEN], to[DF_SHA256_LEN];
  if (opts->commit && !dfi_parse_checksum (opts->commit, want, error))
    return FALSE;
  if (opts->ref && !dfi_valid_refspec (opts->ref))
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "invalid ref name '%s'", opts->ref);
  /* Trust first: nothing is read beyond the superblock unless the commit
   * it produces is the trusted one (its signature was checked by policy
   * before it was parsed). */
  ostree_checksum_inplace_to_bytes (to_hex, to);
  if (opts->commit && memcmp (want, to, DF_SHA256_LEN) != 0)
    return dfi_throw (error, DF_ERROR_UNTRUSTED, "the delta produces commit %s, not the expected %s", to_hex,
                      opts->commit);
  if (opts->remote && !dfi_verify_commit_for_remote (repo, opts->remote, to_hex, commit_bytes, commitmeta, error))
    return FALSE;
  g_autoptr (GVariant) commit
      = g_variant_ref_sink (g_variant_new_from_bytes (OSTREE_COMMIT_GVARIANT_FORMAT, commit_bytes, FALSE));
  if (!dfi_check_downgrade (repo, opts->ref, to_hex, commit, opts->allow_downgrade, error))
    return FALSE;
  if (from_hex)
    {
      gboolean have = FALSE;
      if (!ostree_repo_has_object (repo, OSTREE_OBJECT_TYPE_COMMIT, from_hex, &have, cancellable, error))
        return FALSE;
      if (!have)
        return dfi_throw (error, DF_ERROR_MISSING_BASE,
                          "the delta applies to commit %s, which the repository does not have", from_hex);
    }
  return TRUE;
}

gboolean
dfi_valid_refspec (const char *ref)
{
  g_autofree char *remote = NULL, *name = NULL;
  return ostree_parse_refspec (ref, &remote, &name, NULL) && (remote == NULL || remote[0] != '\0');
}

static char *
format_timestamp (guint64 ts)
{
  g_autoptr (GDateTime) dt = g_date_time_new_from_unix_utc ((gint64)MIN (ts, (guint64)G_MAXINT32 * 64));
  return dt ? g_date_time_format (dt, "%Y-%m-%dT%H:%M:%SZ") : g_strdup_printf ("%" G_GUINT64_FORMAT, ts);
}

gboolean
dfi_check_downgrade (OstreeRepo *repo, const char *ref, const char *checksum, GVariant *commit, gboolean allow,
                     GError **error)
{
  if (ref == NULL || allow)
    return TRUE;
  g_autofree char *current = NULL;
  if (!ostree_repo_resolve_rev (repo, ref, TRUE, &current, error))
    return FALSE;
  g_autoptr (GVariant) cur = NULL;
  /* Nothing to compare with when the ref is new or its commit is gone. */
  if (current == NULL || strcmp (current, checksum) == 0 || !ostree_repo_load_commit (repo, current, &cur, NULL, NULL))
    return TRUE;
  guint64 was = ostree_commit_get_timestamp (cur), now = ostree_commit_get_timestamp (commit);
  if (now >= was)
    return TRUE;
  g_autofree char *a = format_timestamp (now), *b = format_timestamp (was);
  return dfi_throw (error, DF_ERROR_DOWNGRADE,
                    "commit %s (%s) is older than %s (%s) on ref %s; refusing the downgrade (allow it explicitly)",
                    checksum, a, current, b, ref);
}

gboolean
dfi_check_free_space (OstreeRepo *repo, int dfd, guint64 need, GError **error)
{
  guint64 reserve = 0;
  g_autoptr (GError) ignored = NULL;
  ostree_repo_get_min_free_space_bytes (repo, &reserve, &ignored);
  struct statvfs vfs;
  if (fstatvfs (dfd, &vfs) < 0)
    return TRUE; /* cannot tell; writes will report ENOSPC */
  guint64 avail = (guint64)vfs.f_bavail * vfs.f_frsize;
  if (avail < need || avail - need < reserve)
    return dfi_throw (error, DF_ERROR_NO_SPACE,
                      "not enough free space: the update needs %" G_GUINT64_FORMAT
                      " MiB plus the repository's reserve of %" G_GUINT64_FORMAT " MiB, %" G_GUINT64_FORMAT
                      " MiB are free",
                      need / DF_MIB + 1, reserve / DF_MIB, avail / DF_MIB);
  return TRUE;
}

gboolean
dfi_apply_failure_is_final (const GError *error)
{
  if (error == NULL || error->domain != DF_ERROR)
    return FALSE;
  switch ((DfError)error->code)
    {
    case DF_ERROR_INVALID_DELTA:
    case DF_ERROR_CORRUPT:
    case DF_ERROR_UNTRUSTED:
    case DF_ERROR_MISSING_BASE:
      return TRUE;
    default:
      return FALSE;
    }
}

void
dfi_apply_forget_staging (OstreeRepo *repo, const guint8 sb_sha256[DF_SHA256_LEN])
{
  char hex[65];
  dfi_hex (sb_sha256, hex);
  g_autofree char *dir = g_strdup_printf ("tmp/deltafetch-apply-%s", hex);
  dfi_rm_rf_at (ostree_repo_get_dfd (repo), dir, NULL);
}
