/* Whether a requested delta is already published, whole, and as the
 * options would make it again (df-gen-current.c). */
#pragma once

#include "df-common.h"

typedef struct _DfGenerateOptions DfGenerateOptions;

/* TRUE when the delta from @from (NULL: from scratch) to @to, in the
 * repository (native, or stock with a stock format in @opts) or in @opts's
 * output directory (native, not indexed there), is complete
 * (every part's size and SHA-256 as its superblock lists them; a native
 * one listed by its index), carries exactly the signatures of @signers
 * (none when NULL or empty), and, native, was made with @opts's level,
 * part size and variants. Else FALSE, with the first reason in *@why
 * (when given). Reads every part. */
gboolean dfi_gen_delta_current (OstreeRepo *repo, const DfGenerateOptions *opts, const char *from, const char *to,
                                GPtrArray *signers, char **why, GCancellable *cancellable);
