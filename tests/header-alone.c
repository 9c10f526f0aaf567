/* The public header compiles on its own, and a program using only it links
 * against the shared library. */
#include <deltafetch.h>

int
main (void)
{
  g_autoptr (DfApplyOptions) opts = df_apply_options_new ();
  df_apply_options_set_memory_budget (opts, DF_DEFAULT_MEMORY_BUDGET);
  g_autoptr (GError) error = g_error_new_literal (DF_ERROR, DF_ERROR_CORRUPT, "x");
  return df_error_exit_code (error) == 4 && df_error_exit_code (NULL) == 0 ? 0 : 1;
}
