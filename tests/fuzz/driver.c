/* Runs a fuzz target over files without libFuzzer: each argument is a
 * file or a directory of files (the seed corpora in testdata/fuzz/), every
 * file is one input. A crash or sanitizer report fails the test; the
 * count of inputs run, the slowest and the peak RSS are printed.
 *
 * Limits (tests/fuzz/limits), spelt as libFuzzer spells them where it has
 * them:
 *   -timeout=S, -timeout_ms=MS  an input using S seconds (MS milliseconds)
 *                     of CPU time fails the run (0: none); CPU time, not
 *                     libFuzzer's wall-clock time, so that a busy machine
 *                     does not fail the test
 *   -rss_limit_mb=N   the program's peak RSS above N MiB after an input
 *                     fails the run (0: none)
 * Neither is judged under the sanitizers (DF_SANITIZED set), whose shadow
 * memory, quarantine and checks inflate both; the libFuzzer build judges
 * its own. Other arguments starting with '-' are refused. */
#include <glib.h>
#include <signal.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "fuzz.h"

static guint timeout_ms, rss_limit_mb;
static gboolean judged;     /* not under the sanitizers */
static const char *current; /* the input being run, for the alarm */
static char slowest[4096];
static gint64 slowest_us = -1;

static void
on_timeout (int sig)
{
  /* Only async-signal-safe calls here. */
  static const char msg[] = "fuzz driver: timeout: an input used more CPU time than its limit: ";
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

static gint64
cpu_us (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (gint64)ts.tv_sec * G_USEC_PER_SEC + ts.tv_nsec / 1000;
}

/* Arms (or with 0 disarms) the CPU-time alarm. */
static void
cpu_alarm (guint ms)
{
  struct itimerval it = { .it_value = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 } };
  setitimer (ITIMER_PROF, &it, NULL);
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
  gint64 t0 = cpu_us ();
  if (judged)
    cpu_alarm (timeout_ms);
  LLVMFuzzerTestOneInput ((const uint8_t *)data, len);
  cpu_alarm (0);
  gint64 us = cpu_us () - t0;
  if (us > slowest_us)
    {
      slowest_us = us;
      g_strlcpy (slowest, path, sizeof slowest);
    }
  if (judged && rss_limit_mb && peak_rss_mb () > rss_limit_mb)
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
  signal (SIGPROF, on_timeout);
  judged = g_getenv ("DF_SANITIZED") == NULL;
  guint n = 0, secs;
  for (int i = 1; i < argc; i++)
    {
      if (argv[i][0] != '-')
        continue;
      if (limit_arg (argv[i], "-timeout", &secs))
        timeout_ms = secs * 1000;
      else if (!limit_arg (argv[i], "-timeout_ms", &timeout_ms) && !limit_arg (argv[i], "-rss_limit_mb", &rss_limit_mb))
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
  printf ("%u inputs run; slowest %s, %" G_GINT64_FORMAT " ms of CPU; peak RSS %" G_GUINT64_FORMAT
          " MiB (limits: %u ms, %u MiB%s)\n",
          n, slowest, slowest_us / 1000, peak_rss_mb (), timeout_ms, rss_limit_mb, judged ? "" : ", not judged");
  return 0;
}
