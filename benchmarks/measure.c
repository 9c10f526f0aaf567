/* df-measure: the benchmarks' timing harness. Runs one command and prints
 * one JSON object: wall seconds (monotonic clock), user and system CPU
 * seconds and peak RSS of the command and its children (getrusage), exit
 * status. Kept apart from the scenarios so every tool is measured the same
 * way.  Usage: df-measure CMD [ARGS...] */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double
now (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main (int argc, char **argv)
{
  if (argc < 2)
    {
      fprintf (stderr, "usage: df-measure CMD [ARGS...]\n");
      return 2;
    }
  double start = now ();
  pid_t pid = fork ();
  if (pid < 0)
    {
      perror ("df-measure: fork");
      return 2;
    }
  if (pid == 0)
    {
      execvp (argv[1], argv + 1);
      fprintf (stderr, "df-measure: %s: %s\n", argv[1], strerror (errno));
      _exit (127);
    }
  int status;
  struct rusage ru;
  if (wait4 (pid, &status, 0, &ru) < 0)
    {
      perror ("df-measure: wait4");
      return 2;
    }
  double wall = now () - start;
  int code = WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
  printf ("{\"wall_s\": %.3f, \"user_s\": %.3f, \"sys_s\": %.3f, \"maxrss_kib\": %ld, \"exit\": %d}\n", wall,
          ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6, ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6, ru.ru_maxrss,
          code);
  return code;
}
