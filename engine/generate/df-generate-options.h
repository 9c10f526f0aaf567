/* df_generate()'s options: the public setters are in deltafetch.h; here
 * is what the generator reads. Built in every configuration, so a device
 * library (-Dgenerate=false) keeps the whole public API. */
#pragma once

#include "deltafetch.h"

struct _DfGenerateOptions
{
  char *from;
  gboolean empty;
  char *to;
  char *out_dir;
  guint jobs;
  int level;
  guint64 part_size;
  char *sign_key;
  DfDeltaFormat format;
  DfVariants variants;
  DfProgressFunc progress;
  gpointer progress_data;
};
