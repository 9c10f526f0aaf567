#pragma once

#include "df-common.h"

/* Where a native delta lives inside a repository, relative to its top:
 * deltafetch/v1/deltas/<from>-<to> or deltafetch/v1/deltas/<to>. */
char *dfi_native_delta_relpath (const char *from, const char *to);

typedef struct _DfSigner DfSigner;

/* generate --format=ostree: libostree's generator into REPO (then the delta
 * index and summary are updated) or into @out_dir, signed by each of @signers when
 * given. @out_path: the delta's directory. */
gboolean dfi_generate_stock (OstreeRepo *repo, const char *from, const char *to, const char *out_dir,
                             GPtrArray *signers, char **out_path, GCancellable *cancellable, GError **error);
