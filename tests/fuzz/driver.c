/* Runs a fuzz target over files without libFuzzer: each argument is a
 * file or a directory of files (the seed corpora in testdata/fuzz/), every
 * file is one input. A crash or sanitizer report fails the test; the
 * count of inputs run is printed. */
#include <glib.h>
#include <stdio.h>

#include "fuzz.h"

static guint
run_path (const char *path)
{
  if (g_file_test (path, G_FILE_TEST_IS_DIR))
    {
      g_autoptr (GDir) d = g_dir_open (path, 0, NULL);
      if (d == NULL)
        return 0;
      guint n = 0;
      const char *name;
      while ((name = g_dir_read_name (d)) != NULL)
        {
          g_autofree char *child = g_build_filename (path, name, NULL);
          n += run_path (child);
        }
      return n;
    }
  g_autofree char *data = NULL;
  gsize len = 0;
  if (!g_file_get_contents (path, &data, &len, NULL))
    {
      fprintf (stderr, "cannot read %s\n", path);
      exit (2);
    }
  LLVMFuzzerTestOneInput ((const uint8_t *)data, len);
  return 1;
}

int
main (int argc, char **argv)
{
  guint n = 0;
  for (int i = 1; i < argc; i++)
    n += run_path (argv[i]);
  if (n == 0)
    {
      fprintf (stderr, "no inputs\n");
      return 2;
    }
  printf ("%u inputs run\n", n);
  return 0;
}
