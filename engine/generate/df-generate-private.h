#pragma once

#include "df-common.h"

/* Where a native delta lives inside a repository, relative to its top:
 * deltafetch/v1/deltas/<from>-<to> or deltafetch/v1/deltas/<to>. */
char *df_native_delta_relpath (const char *from, const char *to);
