/* df_apply()'s options (see deltafetch.h) and what they imply: the
 * signature policy and the memory a superblock may take. */
#include "df-apply-options.h"

DfApplyOptions *
df_apply_options_new (void)
{
  DfApplyOptions *o = g_new0 (DfApplyOptions, 1);
  o->memory = DF_DEFAULT_MEMORY_BUDGET;
  o->lock_timeout = DF_DEFAULT_LOCK_TIMEOUT;
  o->urls = g_ptr_array_new_with_free_func (g_free);
  return o;
}

void
df_apply_options_free (DfApplyOptions *o)
{
  if (o == NULL)
    return;
  g_free (o->commit);
  g_free (o->ref);
  g_free (o->trusted_keys);
  g_free (o->revoked_keys);
  g_free (o->remote);
  g_free (o->remote_revoked_keys);
  g_ptr_array_unref (o->urls);
  g_free (o);
}

void
df_apply_options_add_url (DfApplyOptions *o, const char *url)
{
  char *u = g_strdup (url);
  gsize n = strlen (u);
  while (n > 0 && u[n - 1] == '/')
    u[--n] = '\0';
  g_ptr_array_add (o->urls, u);
}

void
df_apply_options_set_commit (DfApplyOptions *o, const char *checksum)
{
  g_free (o->commit);
  o->commit = g_strdup (checksum);
}

void
df_apply_options_set_ref (DfApplyOptions *o, const char *ref)
{
  g_free (o->ref);
  o->ref = g_strdup (ref);
}

void
df_apply_options_set_memory_budget (DfApplyOptions *o, guint64 bytes)
{
  o->memory = bytes;
  o->memory_explicit = TRUE;
}

void
df_apply_options_set_rebuild (DfApplyOptions *o, DfRebuildPolicy policy)
{
  o->rebuild = policy;
}

void
df_apply_options_set_jobs (DfApplyOptions *o, guint jobs)
{
  o->jobs = jobs;
}

void
df_apply_options_set_trusted_keys (DfApplyOptions *o, const char *path)
{
  g_free (o->trusted_keys);
  o->trusted_keys = g_strdup (path);
}

void
df_apply_options_set_revoked_keys (DfApplyOptions *o, const char *path)
{
  g_free (o->revoked_keys);
  o->revoked_keys = g_strdup (path);
}

void
df_apply_options_set_require_signatures (DfApplyOptions *o, gboolean require)
{
  o->require_signatures = require;
}

void
df_apply_options_set_allow_downgrade (DfApplyOptions *o, gboolean allow)
{
  o->allow_downgrade = allow;
}

void
df_apply_options_set_allow_unsigned (DfApplyOptions *o, gboolean allow)
{
  o->allow_unsigned = allow;
}

void
df_apply_options_set_lock_timeout (DfApplyOptions *o, guint seconds)
{
  o->lock_timeout = seconds;
}

void
df_apply_options_set_progress (DfApplyOptions *o, DfProgressFunc func, gpointer data)
{
  o->progress = func;
  o->progress_data = data;
}

gboolean
dfi_apply_signature_policy (const DfApplyOptions *o, DfSignaturePolicy *out, GError **error)
{
  if (o->allow_unsigned && o->require_signatures)
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "signatures cannot be both required and optional");
  const char *revoked[] = { o->revoked_keys, o->remote_revoked_keys };
  return dfi_signature_policy_init (out, o->trusted_keys, revoked, G_N_ELEMENTS (revoked),
                                    o->require_signatures || (o->trusted_keys != NULL && !o->allow_unsigned), error);
}

guint64
dfi_apply_usable_memory (const DfApplyOptions *o)
{
  return o->memory > DF_APPLY_RESERVE ? o->memory - DF_APPLY_RESERVE : 0;
}

DfApplyOptions *
dfi_apply_options_copy (const DfApplyOptions *o)
{
  DfApplyOptions *c = g_memdup2 (o, sizeof *o);
  c->commit = g_strdup (o->commit);
  c->ref = g_strdup (o->ref);
  c->trusted_keys = g_strdup (o->trusted_keys);
  c->revoked_keys = g_strdup (o->revoked_keys);
  c->remote = g_strdup (o->remote);
  c->remote_revoked_keys = g_strdup (o->remote_revoked_keys);
  c->urls = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < o->urls->len; i++)
    g_ptr_array_add (c->urls, g_strdup (o->urls->pdata[i]));
  return c;
}
