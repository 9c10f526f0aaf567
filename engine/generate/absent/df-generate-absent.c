/* The generator's entry points in a device library, built with
 * -Dgenerate=false: the generator and libdivsufsort are left out, and a
 * call says so. */
#include "df-common.h"

static gboolean
absent (GError **error)
{
  return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT,
                    "this libdeltafetch was built without the generator (meson -Dgenerate=false)");
}

gboolean
df_generate (OstreeRepo *repo, const DfGenerateOptions *opts, char **out_dir, GCancellable *cancellable, GError **error)
{
  return absent (error);
}

gboolean
df_generate_many (OstreeRepo *repo, const DfGenerateOptions *opts, GPtrArray **out_deltas, GCancellable *cancellable,
                  GError **error)
{
  return absent (error);
}

gboolean
df_list_deltas (OstreeRepo *repo, GPtrArray **out_deltas, GCancellable *cancellable, GError **error)
{
  return absent (error);
}

gboolean
df_delete_delta (OstreeRepo *repo, const DfGenerateOptions *opts, const char *id, GPtrArray **out_deleted,
                 GCancellable *cancellable, GError **error)
{
  return absent (error);
}

gboolean
df_prune_deltas (OstreeRepo *repo, const DfGenerateOptions *opts, const char *ref, guint keep_last,
                 GPtrArray **out_deleted, GCancellable *cancellable, GError **error)
{
  return absent (error);
}

gboolean
df_sign_deltas (OstreeRepo *repo, const DfGenerateOptions *opts, const char *const *ids, const char *remove_keys_path,
                GPtrArray **out_signed, GCancellable *cancellable, GError **error)
{
  return absent (error);
}

gboolean
df_publish_plan (OstreeRepo *repo, GPtrArray **out_files, GCancellable *cancellable, GError **error)
{
  return absent (error);
}

gboolean
df_publish (OstreeRepo *repo, const char *dest, DfPublishResult *result, GCancellable *cancellable, GError **error)
{
  return absent (error);
}

gboolean
df_index_merge (OstreeRepo *repo, const DfGenerateOptions *opts, const char *const *out_roots, GPtrArray **out_merged,
                GCancellable *cancellable, GError **error)
{
  return absent (error);
}
