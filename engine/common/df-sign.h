/* ed25519 signatures on superblocks, in libostree's signed-delta envelope:
 * the GVariant "(taya{sv})" whose first member is the magic "OSTSGNDT"
 * (stored big-endian, so the file starts with those eight bytes), then the
 * signed superblock bytes, then a dictionary whose key
 * "ostree.sign.ed25519" holds an "aay" of 64-byte signatures over them.
 * Keys are in the format `ostree sign` uses: a public key is the base64 of
 * its 32 raw bytes (one per line in a key file, or one file per key in a
 * directory), a secret key the base64 of the 64 bytes seed + public key.
 * The cryptography is OpenSSL's. */
#pragma once

#include "df-common.h"

#define DF_SIGNED_MAGIC "OSTSGNDT"
#define DF_SIGNED_FORMAT "(taya{sv})"
#define DF_SIGN_ED25519_KEY "ostree.sign.ed25519"
#define DF_ED25519_SIG_LEN 64
#define DF_ED25519_KEY_LEN 32

typedef struct _DfKeyring DfKeyring;

/* Public keys from a file (one base64 key per line; blank lines and lines
 * starting with '#' ignored) or from every regular file of a directory. */
DfKeyring *dfi_keyring_load (const char *path, GError **error);
/* An empty keyring, to fill with the two below. */
DfKeyring *dfi_keyring_new (void);
/* Adds the keys of a key file or of a directory's files. */
gboolean dfi_keyring_add_path (DfKeyring *k, const char *path, GError **error);
/* Adds one base64 public key. */
gboolean dfi_keyring_add_key (DfKeyring *k, const char *base64, GError **error);
void dfi_keyring_free (DfKeyring *k);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (DfKeyring, dfi_keyring_free)
guint dfi_keyring_size (const DfKeyring *k);
/* Takes the keys of @revoked out of @k; returns how many. */
guint dfi_keyring_remove (DfKeyring *k, const DfKeyring *revoked);

/* TRUE when one of @sigs (GBytes of DF_ED25519_SIG_LEN) verifies @data
 * with one of the keys. */
gboolean dfi_keyring_verify_any (const DfKeyring *k, GBytes *data, GPtrArray *sigs);

/* What a superblock parser reads from @file: the signed bytes of an
 * envelope (also in *out_signed, with its signatures in *out_sigs), else
 * @file itself (*out_signed and *out_sigs NULL). FALSE only for a
 * malformed envelope. */
gboolean dfi_signed_open (GBytes *file, GBytes **out_inner, GBytes **out_signed, GPtrArray **out_sigs, GError **error);

/* What is kept of a superblock file as published once it is parsed: its
 * size and SHA-256 (of the file itself, envelope included: what an index
 * lists and what apply and fetch state is named after), and what its
 * envelope said. The signed bytes and signatures are not kept: the
 * policy is applied while parsing. */
typedef struct
{
  guint64 size;
  guint8 sha256[DF_SHA256_LEN];
  gboolean is_signed;
  guint n_signatures;
  gboolean verified; /* a signature verified with a trusted key */
} DfSignedFile;

/* The signature policy of an apply or fetch: a signed superblock must
 * verify with one of @keys (when given); with @require, an unsigned one,
 * or a signed one without keys to check it, is refused
 * (DF_ERROR_UNTRUSTED). */
typedef struct
{
  DfKeyring *keys;    /* owned; the revoked ones taken out */
  DfKeyring *revoked; /* owned; NULL: none */
  gboolean require;
} DfSignaturePolicy;

/* Fills @p from a key file or directory (NULL: no keys), less the keys of
 * each of @revoked_paths (files or directories; NULL entries skipped, up
 * to @n_revoked): a signature by a revoked key never counts. */
gboolean dfi_signature_policy_init (DfSignaturePolicy *p, const char *keys_path, const char *const *revoked_paths,
                                    guint n_revoked, gboolean require, GError **error);
void dfi_signature_policy_clear (DfSignaturePolicy *p);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (DfSignaturePolicy, dfi_signature_policy_clear)

/* Parses superblock file @file, native or stock: opens the envelope
 * (dfi_signed_open()), applies @policy (NULL: none) to it before a byte of
 * what it holds is read, runs @parse on what it holds with @memory (the
 * bytes the parse may hold at once, @file included), and stores the
 * DfSignedFile in the result's member at byte offset @file_member. */
typedef gpointer (*DfPlainParser) (GBytes *inner, guint64 memory, GError **error);
gpointer dfi_signed_file_parse (GBytes *file, DfPlainParser parse, goffset file_member, const DfSignaturePolicy *policy,
                                guint64 memory, GError **error);

/* The signature policy applied to an envelope's @signed_data and @sigs
 * (NULL when unsigned). */
gboolean dfi_signature_policy (GBytes *signed_data, GPtrArray *sigs, const DfSignaturePolicy *p, gboolean *out_verified,
                               GError **error);

/* A signer from a secret key file; checks that the seed yields the public
 * half stored beside it. */
typedef struct _DfSigner DfSigner;
DfSigner *dfi_signer_load (const char *path, GError **error);
void dfi_signer_free (DfSigner *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (DfSigner, dfi_signer_free)
/* @s's signature of @data (DF_ED25519_SIG_LEN bytes). */
GBytes *dfi_signer_sign (DfSigner *s, GBytes *data, GError **error);
/* The envelope around @data with one signature by @s. */
GBytes *dfi_signer_wrap (DfSigner *s, GBytes *data, GError **error);
/* TRUE when @sig is @s's signature of @data. */
gboolean dfi_signer_verify (DfSigner *s, GBytes *data, GBytes *sig);

/* Several signers (a GPtrArray of DfSigner*, owning them), one per key
 * file of @paths (char*; NULL or empty: none); the same key twice is an
 * error. */
GPtrArray *dfi_signers_load (const GPtrArray *paths, GError **error);
/* The envelope around @data with one signature by each of @signers, in
 * their order (libostree's envelope holds a list). */
GBytes *dfi_signers_wrap (GPtrArray *signers, GBytes *data, GError **error);
/* The signatures of @data by each of @signers, in their order (GBytes). */
GPtrArray *dfi_signers_sign (GPtrArray *signers, GBytes *data, GError **error);
/* TRUE when @sigs are exactly one signature of @data by each of
 * @signers (NULL or empty: when @sigs is NULL, unsigned). */
gboolean dfi_signers_match (GPtrArray *signers, GBytes *data, GPtrArray *sigs);

/* When @file starts with the envelope magic: its signed bytes and its
 * ed25519 signatures (possibly none). FALSE with an error when it is
 * malformed; FALSE without one when it is no envelope. */
gboolean dfi_signed_unwrap (GBytes *file, GBytes **out_data, GPtrArray **out_sigs, GError **error);
/* The envelope around @data with @sigs (test tools re-sign with this). */
GBytes *dfi_signed_wrap (GBytes *data, GPtrArray *sigs);
