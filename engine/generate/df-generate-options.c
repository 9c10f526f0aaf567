/* df_generate()'s options (see deltafetch.h). */
#include "df-generate-options.h"

#include "df-common.h"

DfGenerateOptions *
df_generate_options_new (void)
{
  DfGenerateOptions *o = g_new0 (DfGenerateOptions, 1);
  o->level = DF_DEFAULT_LEVEL;
  o->part_size = DF_PART_SIZE_DEFAULT;
  o->froms = g_ptr_array_new_with_free_func (g_free);
  o->sign_keys = g_ptr_array_new_with_free_func (g_free);
  o->gpg_keys = g_ptr_array_new_with_free_func (g_free);
  return o;
}

void
df_generate_options_free (DfGenerateOptions *o)
{
  if (o == NULL)
    return;
  g_ptr_array_unref (o->froms);
  g_free (o->to);
  g_free (o->out_dir);
  g_free (o->out_root);
  g_ptr_array_unref (o->sign_keys);
  g_ptr_array_unref (o->gpg_keys);
  g_free (o->gpg_homedir);
  g_free (o);
}

void
df_generate_options_set_from (DfGenerateOptions *o, const char *rev)
{
  g_ptr_array_set_size (o->froms, 0);
  if (rev)
    g_ptr_array_add (o->froms, g_strdup (rev));
}

void
df_generate_options_add_from (DfGenerateOptions *o, const char *rev)
{
  g_ptr_array_add (o->froms, g_strdup (rev));
}

void
df_generate_options_set_from_last (DfGenerateOptions *o, guint n)
{
  o->from_last = n;
}

void
df_generate_options_set_force (DfGenerateOptions *o, gboolean force)
{
  o->force = force;
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
df_generate_options_set_out_root (DfGenerateOptions *o, const char *dir)
{
  g_free (o->out_root);
  o->out_root = g_strdup (dir);
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
  g_ptr_array_set_size (o->sign_keys, 0);
  if (path)
    g_ptr_array_add (o->sign_keys, g_strdup (path));
}

void
df_generate_options_add_sign_key (DfGenerateOptions *o, const char *path)
{
  g_ptr_array_add (o->sign_keys, g_strdup (path));
}

void
df_generate_options_add_summary_gpg_key (DfGenerateOptions *o, const char *key_id)
{
  g_ptr_array_add (o->gpg_keys, g_strdup (key_id));
}

void
df_generate_options_set_gpg_homedir (DfGenerateOptions *o, const char *homedir)
{
  g_free (o->gpg_homedir);
  o->gpg_homedir = g_strdup (homedir);
}

void
df_generate_options_set_progress (DfGenerateOptions *o, DfProgressFunc func, gpointer data)
{
  o->progress = func;
  o->progress_data = data;
}

/* The results of df_generate_many(), df_list_deltas() and
 * df_publish_plan(), freed in every configuration. */

void
df_generated_delta_free (DfGeneratedDelta *d)
{
  if (d == NULL)
    return;
  g_free (d->from);
  g_free (d->to);
  g_free (d->dir);
  g_free (d->note);
  g_free (d);
}

void
df_repo_delta_free (DfRepoDelta *d)
{
  if (d == NULL)
    return;
  g_free (d->id);
  g_free (d->from);
  g_free (d->to);
  g_free (d->dir);
  g_free (d->problem);
  g_free (d);
}

void
df_publish_file_free (DfPublishFile *f)
{
  if (f == NULL)
    return;
  g_free (f->path);
  g_free (f);
}
