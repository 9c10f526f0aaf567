/* df_generate()'s options (see deltafetch.h). */
#include "df-generate-options.h"

#include "df-common.h"

DfGenerateOptions *
df_generate_options_new (void)
{
  DfGenerateOptions *o = g_new0 (DfGenerateOptions, 1);
  o->level = DF_DEFAULT_LEVEL;
  o->part_size = DF_PART_SIZE_DEFAULT;
  return o;
}

void
df_generate_options_free (DfGenerateOptions *o)
{
  if (o == NULL)
    return;
  g_free (o->from);
  g_free (o->to);
  g_free (o->out_dir);
  g_free (o->sign_key);
  g_free (o);
}

void
df_generate_options_set_from (DfGenerateOptions *o, const char *rev)
{
  g_free (o->from);
  o->from = g_strdup (rev);
}

void
df_generate_options_set_empty (DfGenerateOptions *o, gboolean empty)
{
  o->empty = empty;
}

void
df_generate_options_set_to (DfGenerateOptions *o, const char *rev)
{
  g_free (o->to);
  o->to = g_strdup (rev);
}

void
df_generate_options_set_out_dir (DfGenerateOptions *o, const char *dir)
{
  g_free (o->out_dir);
  o->out_dir = g_strdup (dir);
}

void
df_generate_options_set_jobs (DfGenerateOptions *o, guint jobs)
{
  o->jobs = jobs;
}

void
df_generate_options_set_level (DfGenerateOptions *o, int level)
{
  o->level = level;
}

void
df_generate_options_set_part_size (DfGenerateOptions *o, guint64 bytes)
{
  o->part_size = bytes;
}

void
df_generate_options_set_variants (DfGenerateOptions *o, DfVariants variants)
{
  o->variants = variants;
}

void
df_generate_options_set_format (DfGenerateOptions *o, DfDeltaFormat format)
{
  o->format = format;
}

void
df_generate_options_set_sign_key (DfGenerateOptions *o, const char *path)
{
  g_free (o->sign_key);
  o->sign_key = g_strdup (path);
}

void
df_generate_options_set_progress (DfGenerateOptions *o, DfProgressFunc func, gpointer data)
{
  o->progress = func;
  o->progress_data = data;
}
