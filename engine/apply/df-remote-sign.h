/* Signatures as a remote of the repository's config asks for them, the
 * way `ostree pull` reads its options: gpg-verify and gpg-verify-summary
 * (checked by libostree with the remote's keyring), sign-verify and
 * sign-verify-summary (ed25519, checked here with OpenSSL: Debian's
 * libostree is built without it) with the keys of verification-ed25519-key
 * and verification-ed25519-file, else the system's trusted.ed25519 files. */
#pragma once

#include "df-sign.h"

/* A remote's option of deltafetch's own (libostree ignores it): a file or
 * directory of revoked ed25519 public keys, in the format of
 * df_apply_options_set_revoked_keys(). Their signatures never count, on
 * the summary, the commit or a delta fetched through the remote. */
#define DF_REMOTE_REVOKED_KEYS "deltafetch-revoked-keys"

/* A remote's string option, or NULL when absent or empty
 * (DF_ERROR_INVALID_ARGUMENT when the config cannot be read). */
gboolean dfi_remote_option (OstreeRepo *repo, const char *remote, const char *key, char **out, GError **error);

/* Whether the remote's @key ("sign-verify" or "sign-verify-summary") asks
 * for ed25519 signatures: true or a list naming ed25519. A list naming
 * another type is refused (DF_ERROR_INVALID_ARGUMENT). */
gboolean dfi_remote_wants_ed25519 (OstreeRepo *repo, const char *remote, const char *key, gboolean *out,
                                   GError **error);

/* The remote's ed25519 keys (DF_ERROR_UNTRUSTED when it names none and
 * the system has none). */
DfKeyring *dfi_remote_keyring (OstreeRepo *repo, const char *remote, GError **error);

/* An ed25519 signature in @sigdict (an a{sv} whose "ostree.sign.ed25519"
 * holds an aay, as summary.sig and a commit's detached metadata do; NULL:
 * none) verifies @data with one of @keys; else DF_ERROR_UNTRUSTED saying
 * @what. */
gboolean dfi_verify_ed25519_dict (const DfKeyring *keys, GBytes *data, GVariant *sigdict, const char *what,
                                  GError **error);

/* The commit's signature, as the config of @remote asks (gpg-verify,
 * sign-verify and their keys, what `ostree pull` checks): @commit_bytes
 * and its detached metadata @commitmeta (NULL or empty: none) checked
 * before anything of it is written: ed25519 here, GPG by libostree
 * (DF_ERROR_UNTRUSTED). */
gboolean dfi_verify_commit_for_remote (OstreeRepo *repo, const char *remote, const char *to_hex, GBytes *commit_bytes,
                                       GBytes *commitmeta, GError **error);
