#pragma once

#include "df-common.h"

/* Where a native delta lives inside a repository, relative to its top:
 * deltafetch/v1/deltas/<from>-<to> or deltafetch/v1/deltas/<to>. */
char *dfi_native_delta_relpath (const char *from, const char *to);

typedef struct _DfSigner DfSigner;
typedef struct _DfGenerateOptions DfGenerateOptions;

/* generate --format=ostree: libostree's generator into REPO (then the delta
 * index and the summary are updated, dfi_summary_regenerate()) or into
 * @opts's output directory, signed by each of @signers when given.
 * @out_path: the delta's directory. */
gboolean dfi_generate_stock (OstreeRepo *repo, const DfGenerateOptions *opts, const char *from, const char *to,
                             GPtrArray *signers, char **out_path, GCancellable *cancellable, GError **error);

/* FALSE (DF_ERROR_INVALID_ARGUMENT) when REPO's summary carries a kind of
 * signature (GPG, ed25519) that @opts (GPG key ids) or @signers cannot
 * make again: call before changing anything the summary lists. */
gboolean dfi_summary_check_keys (OstreeRepo *repo, const DfGenerateOptions *opts, GPtrArray *signers, GError **error);

/* Regenerates REPO's summary (libostree) and signs it again with every
 * kind of key its summary.sig had, plus GPG when @opts has GPG keys:
 * never a summary that silently lost its signatures. */
gboolean dfi_summary_regenerate (OstreeRepo *repo, const DfGenerateOptions *opts, GPtrArray *signers,
                                 GCancellable *cancellable, GError **error);
