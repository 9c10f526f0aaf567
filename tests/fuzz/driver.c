/* Runs a fuzz target over files without libFuzzer: each argument is a
 * file or a directory of files (the seed corpora in testdata/fuzz/), every
 * file is one input. A crash or sanitizer report fails the test; the
 * count of inputs run, the slowest and the peak RSS are printed.
 *
 * Limits, spelt as libFuzzer spells them so that meson passes one argument
 * list to either build (tests/fuzz/limits):
 *   -timeout=S        an input running S seconds fails the run (0: none)
 *   -rss_limit_mb=N   the process's peak RSS above N MiB after an input
 *                     fails the run (0: none); not judged under the
 *                     sanitizers (DF_SANITIZED set), whose shadow memory and
 *                     quarantine inflate it
 * Other arguments starting with '-' are refused. */
#include <glib.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "fuzz.h"

static guint timeout_s, rss_limit_mb;
static const char *current; /* the input being run, for the alarm */
static char slowest[4096];
static gint64 slowest_us = -1;

static void
on_alarm (int sig)
{
  /* Only async-signal-safe calls here. */
  static const char msg[] = "fuzz driver: timeout: an input ran past -timeout: ";
  if (write (2, msg, sizeof msg - 1) < 0 || write (2, current, strlen (current)) < 0 || write (2, "\n", 1) < 0)
    _exit (1);
  _exit (1);
}

/* This program's peak RSS (VmHWM: getrusage's ru_maxrss would include the
 * process's size before exec, a test runner's). */
static guint64
peak_rss_mb (void)
{
  g_autofree char *status = NULL;
  if (!g_file_get_contents ("/proc/self/status", &status, NULL, NULL))
    return 0;
  const char *at = strstr (status, "\nVmHWM:");
  return at ? g_ascii_strtoull (at + strlen ("\nVmHWM:"), NULL, 10) / 1024 : 0;
}

static void
run_file (const char *path)
{
  g_autofree char *data = NULL;
  gsize len = 0;
  if (!g_file_get_contents (path, &data, &len, NULL))
    {
      fprintf (stderr, "cannot read %s\n", path);
      exit (2);
    }
  current = path;
  gint64 t0 = g_get_monotonic_time ();
  alarm (timeout_s);
  LLVMFuzzerTestOneInput ((const uint8_t *)data, len);
  alarm (0);
  gint64 us = g_get_monotonic_time () - t0;
  if (us > slowest_us)
    {
      slowest_us = us;
      g_strlcpy (slowest, path, sizeof slowest);
    }
  if (rss_limit_mb && g_getenv ("DF_SANITIZED") == NULL && peak_rss_mb () > rss_limit_mb)
    {
      fprintf (stderr, "fuzz driver: peak RSS %" G_GUINT64_FORMAT " MiB after %s, over -rss_limit_mb=%u\n",
               peak_rss_mb (), path, rss_limit_mb);
      exit (1);
    }
}

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
  run_file (path);
  return 1;
}

static gboolean
limit_arg (const char *arg, const char *name, guint *out)
{
  gsize n = strlen (name);
  if (strncmp (arg, name, n) != 0 || arg[n] != '=')
    return FALSE;
  guint64 v;
  if (!g_ascii_string_to_unsigned (arg + n + 1, 10, 0, G_MAXUINT, &v, NULL))
    {
      fprintf (stderr, "bad value in %s\n", arg);
      exit (2);
    }
  *out = v;
  return TRUE;
}

int
main (int argc, char **argv)
{
  signal (SIGALRM, on_alarm);
  guint n = 0;
  for (int i = 1; i < argc; i++)
    {
      if (argv[i][0] != '-')
        continue;
      if (!limit_arg (argv[i], "-timeout", &timeout_s) && !limit_arg (argv[i], "-rss_limit_mb", &rss_limit_mb))
        {
          fprintf (stderr, "unknown option %s\n", argv[i]);
          return 2;
        }
    }
  for (int i = 1; i < argc; i++)
    if (argv[i][0] != '-')
      n += run_path (argv[i]);
  if (n == 0)
    {
      fprintf (stderr, "no inputs\n");
      return 2;
    }
  printf ("%u inputs run; slowest %s, %" G_GINT64_FORMAT " ms; peak RSS %" G_GUINT64_FORMAT
          " MiB (limits: %u s, %u MiB)\n",
          n, slowest, slowest_us / 1000, peak_rss_mb (), timeout_s, rss_limit_mb);
  return 0;
}
