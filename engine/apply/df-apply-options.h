/* df_apply()'s options: the public setters are in deltafetch.h; here is
 * what the appliers read, and what the options imply. A fetch embeds one
 * (engine/fetch/df-fetch-options.h). */
#pragma once

#include "deltafetch.h"
#include "df-sign.h"

struct _DfApplyOptions
{
  char *commit;
  char *ref;
  guint64 memory;
  gboolean memory_explicit; /* set by the caller: rebuilds keep to it */
  guint jobs;
  gboolean allow_downgrade;
  char *trusted_keys;
  char *revoked_keys;
  gboolean require_signatures;
  gboolean allow_unsigned;
  guint lock_timeout;
  DfProgressFunc progress;
  gpointer progress_data;
  GPtrArray *urls; /* df_apply_options_add_url(): where a stock delta's fallback objects come from */
  DfRebuildPolicy rebuild;
  gboolean plain_at_hand; /* set by apply on its copy: the delta directory holds every plain part */
  char *remote;           /* set by a fetch through a remote: the commit's signature is checked as its config asks */
  char *remote_revoked_keys; /* set by a fetch through a remote: its deltafetch-revoked-keys, beside revoked_keys */
};

/* A copy of @o (progress function included). */
DfApplyOptions *dfi_apply_options_copy (const DfApplyOptions *o);

/* The signature policy @o asks for: trusted keys require a signature
 * unless unsigned deltas are allowed explicitly (DF_ERROR_INVALID_ARGUMENT
 * when both are asked for; errors reading the keys). Clear it with
 * dfi_signature_policy_clear(). */
gboolean dfi_apply_signature_policy (const DfApplyOptions *o, DfSignaturePolicy *out, GError **error);

/* Bytes a superblock may take while it is read and parsed: the memory
 * budget less DF_APPLY_RESERVE. */
guint64 dfi_apply_usable_memory (const DfApplyOptions *o);
