/* df_generate()'s options: the public setters are in deltafetch.h; here
 * is what the generator reads. Built in every configuration, so a device
 * library (-Dgenerate=false) keeps the whole public API. */
#pragma once

#include "deltafetch.h"

struct _DfGenerateOptions
{
  GPtrArray *froms; /* char*: revisions, in the order given */
  guint from_last;  /* also the N commits before the to-commit */
  gboolean empty;
  gboolean force;
  char *to;
  char *out_dir;
  char *out_root; /* fan-out: each delta into out_root/ID/, no index */
  guint jobs;
  int level;
  guint64 part_size;
  GPtrArray *sign_keys; /* char*: secret key files */
  GPtrArray *gpg_keys;  /* char*: GPG key ids that sign the summary */
  char *gpg_homedir;
  DfDeltaFormat format;
  DfVariants variants;
  DfProgressFunc progress;
  gpointer progress_data;
};
