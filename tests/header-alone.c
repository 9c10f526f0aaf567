/* The public header compiles on its own, and a program using only it links
 * against the shared library. */
#include <deltafetch.h>
#include <string.h>

int
main (void)
{
  g_autoptr (DfApplyOptions) opts = df_apply_options_new ();
  df_apply_options_set_memory_budget (opts, DF_DEFAULT_MEMORY_BUDGET);
  g_autoptr (GError) error = g_error_new_literal (DF_ERROR, DF_ERROR_CORRUPT, "x");
  if (strcmp (df_version (), DF_VERSION_STRING) != 0 || !DF_CHECK_VERSION (0, 1, 0) || DF_CHECK_VERSION (99, 0, 0))
    return 1;
  return df_error_exit_code (error) == 4 && df_error_exit_code (NULL) == 0 ? 0 : 1;
}
