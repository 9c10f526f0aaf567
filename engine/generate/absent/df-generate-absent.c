/* df_generate() of a device library, built with -Dgenerate=false: the
 * generator and libdivsufsort are left out, and a call says so. */
#include "df-common.h"

gboolean
df_generate (OstreeRepo *repo, const DfGenerateOptions *opts, char **out_dir, GCancellable *cancellable, GError **error)
{
  return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT,
                    "this libdeltafetch was built without the generator (meson -Dgenerate=false)");
}
