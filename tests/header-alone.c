/* The public header compiles on its own, and a program using only it links
 * against the shared library. */
#include <deltafetch.h>
#include <stdio.h>
#include <string.h>

/* The result structs are caller-allocated: their sizes are the ABI. A new
 * field takes its room from the reserved words (LP64: x86_64, aarch64). */
#if GLIB_SIZEOF_VOID_P == 8
G_STATIC_ASSERT (sizeof (DfApplyResult) == 656);
G_STATIC_ASSERT (sizeof (DfFetchResult) == 976);
#endif

int
main (void)
{
  g_autoptr (DfApplyOptions) opts = df_apply_options_new ();
  df_apply_options_set_memory_budget (opts, DF_DEFAULT_MEMORY_BUDGET);
  g_autoptr (GError) error = g_error_new_literal (DF_ERROR, DF_ERROR_CORRUPT, "x");
  if (strcmp (df_version (), DF_VERSION_STRING) != 0 || !DF_CHECK_VERSION (0, 1, 0) || DF_CHECK_VERSION (99, 0, 0))
    return 1;
  if (df_error_exit_code (error) != 4 || df_error_exit_code (NULL) != 0)
    return 1;
  /* Every code's exit code, name and class; the other domains. */
  static const struct
  {
    GQuark domain;
    int code, exit_code;
    const char *name;
    gboolean retryable;
  } kinds[] = {
    { 0, DF_ERROR_FAILED, 1, "failed", FALSE },
    { 0, DF_ERROR_INVALID_ARGUMENT, 2, "invalid-argument", FALSE },
    { 0, DF_ERROR_INVALID_DELTA, 3, "invalid-delta", FALSE },
    { 0, DF_ERROR_CORRUPT, 4, "corrupt", FALSE },
    { 0, DF_ERROR_UNTRUSTED, 5, "untrusted", FALSE },
    { 0, DF_ERROR_MISSING_BASE, 6, "missing-base", FALSE },
    { 0, DF_ERROR_NO_SPACE, 7, "no-space", TRUE },
    { 0, DF_ERROR_IO, 8, "io", FALSE },
    { 0, DF_ERROR_NETWORK, 9, "network", TRUE },
    { 0, DF_ERROR_TIMEOUT, 10, "timeout", TRUE },
    { 0, DF_ERROR_DOWNGRADE, 11, "downgrade", FALSE },
    { 0, DF_ERROR_BUSY, 12, "busy", TRUE },
    { 0, DF_ERROR_TOO_LARGE, 13, "too-large", FALSE },
    { 0, DF_ERROR_NOT_FOUND, 14, "not-found", FALSE },
    { 0, 999, 1, "failed", FALSE },
    { 1, G_IO_ERROR_CANCELLED, 130, "cancelled", FALSE },
    { 1, G_IO_ERROR_NO_SPACE, 7, "no-space", TRUE },
    { 1, G_IO_ERROR_PERMISSION_DENIED, 8, "io", FALSE },
    { 2, 0, 1, "failed", FALSE },
  };
  for (unsigned i = 0; i < G_N_ELEMENTS (kinds); i++)
    {
      GQuark d = kinds[i].domain == 0 ? DF_ERROR : kinds[i].domain == 1 ? G_IO_ERROR : G_FILE_ERROR;
      g_autoptr (GError) e = g_error_new_literal (d, kinds[i].code, "x");
      if (df_error_exit_code (e) != kinds[i].exit_code || strcmp (df_error_name (e), kinds[i].name) != 0
          || df_error_is_retryable (e) != kinds[i].retryable)
        {
          fprintf (stderr, "kind %u: exit %d, name %s, retryable %d\n", i, df_error_exit_code (e), df_error_name (e),
                   df_error_is_retryable (e));
          return 1;
        }
    }
  return df_error_name (NULL) == NULL && !df_error_is_retryable (NULL) ? 0 : 1;
}
