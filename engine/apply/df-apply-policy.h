/* The checks every apply makes, native or stock, offline or fetched
 * (df-apply-policy.c). */
#pragma once

#include "df-apply-options.h"

/* Reads superblock file @name under @dfd: at most DF_STOCK_SUPERBLOCK_MAX
 * bytes, and no more than @o's memory budget leaves
 * (DF_ERROR_INVALID_ARGUMENT). */
GBytes *dfi_apply_read_superblock (int dfd, const char *name, const DfApplyOptions *o, GError **error);

/* The checks made on a parsed superblock, whatever its format, before any
 * part is read: the options, the expected commit (DF_ERROR_UNTRUSTED),
 * rollback (DF_ERROR_DOWNGRADE), and the from-commit (@from_hex, NULL from
 * scratch) present (DF_ERROR_MISSING_BASE). The signature policy was
 * applied while parsing. */
gboolean dfi_apply_preflight (OstreeRepo *repo, const DfApplyOptions *opts, const char *to_hex, GBytes *commit_bytes,
                              GBytes *commitmeta, const char *from_hex, GCancellable *cancellable, GError **error);

/* Whether @ref is a ref name, or a refspec REMOTE:REF (a remote's ref, as
 * `ostree pull` keeps it under refs/remotes/). */
gboolean dfi_valid_refspec (const char *ref);

/* Rollback protection: FALSE (DF_ERROR_DOWNGRADE) when @ref points at a
 * commit whose timestamp is later than that of @commit (checksum
 * @checksum), unless @allow. */
gboolean dfi_check_downgrade (OstreeRepo *repo, const char *ref, const char *checksum, GVariant *commit, gboolean allow,
                              GError **error);

/* FALSE (DF_ERROR_NO_SPACE) when the filesystem of @dfd has less than
 * @need bytes free beyond the repository's min-free-space reserve. */
gboolean dfi_check_free_space (OstreeRepo *repo, int dfd, guint64 need, GError **error);

/* TRUE when @error says a rerun cannot succeed (the delta itself is bad:
 * invalid, corrupt, untrusted, or lacking a base); staging survives
 * interruptions and local trouble (cancellation, I/O, full disk, network),
 * which a rerun resumes from. */
gboolean dfi_apply_failure_is_final (const GError *error);
/* Removes what a failed apply of the delta whose superblock has SHA-256
 * @sb_sha256 staged in the repository's tmp/. */
void dfi_apply_forget_staging (OstreeRepo *repo, const guint8 sb_sha256[DF_SHA256_LEN]);
