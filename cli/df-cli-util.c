#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "df-cli.h"

#define DF_MIB_CLI (1024 * 1024)

/* The signal that cancelled the run (0: none yet). */
static volatile gint cancel_signal;

static gpointer
signal_thread (gpointer data)
{
  GCancellable *c = data;
  sigset_t set;
  sigemptyset (&set);
  sigaddset (&set, SIGINT);
  sigaddset (&set, SIGTERM);
  for (;;)
    {
      int sig;
      if (sigwait (&set, &sig) != 0)
        continue;
      /* A second signal while the first one's cancellation winds down:
       * the user insists. Nothing the run leaves is unaccounted for
       * (the same holds for SIGKILL). */
      if (g_atomic_int_get (&cancel_signal) != 0)
        _exit (130);
      g_atomic_int_set (&cancel_signal, sig);
      g_cancellable_cancel (c);
    }
  return NULL;
}

GCancellable *
df_cli_cancel_on_signals (void)
{
  /* Blocked here, before any other thread exists, so that every thread
   * inherits the mask and only the signal thread takes them. */
  sigset_t set;
  sigemptyset (&set);
  sigaddset (&set, SIGINT);
  sigaddset (&set, SIGTERM);
  pthread_sigmask (SIG_BLOCK, &set, NULL);
  GCancellable *c = g_cancellable_new ();
  g_thread_unref (g_thread_new ("df-signals", signal_thread, g_object_ref (c)));
  return c;
}

char *
df_cli_error_line (const GError *error)
{
  int sig = g_atomic_int_get (&cancel_signal);
  if (sig != 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return g_strdup_printf ("cancelled by %s; a rerun resumes where this one stopped",
                            sig == SIGINT ? "SIGINT" : "SIGTERM");
  /* One line, always. */
  char *msg = g_strdup (error->message);
  g_strdelimit (msg, "\n", ' ');
  return msg;
}

int
df_cli_fail (const GError *error)
{
  df_cli_progress_end ();
  g_autofree char *msg = df_cli_error_line (error);
  fprintf (stderr, "deltafetch: %s\n", msg);
  return df_error_exit_code (error);
}

int
df_cli_usage (GOptionContext *ctx, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  fprintf (stderr, "deltafetch: %s (see --help)\n", msg);
  return 2;
}

gboolean
df_cli_parse_size (const char *s, guint64 *out)
{
  char *end = NULL;
  if (s == NULL || !g_ascii_isdigit (s[0]))
    return FALSE;
  guint64 v = g_ascii_strtoull (s, &end, 10);
  guint64 mult = 1;
  switch (g_ascii_toupper (*end))
    {
    case '\0':
      break;
    case 'K':
      mult = 1024, end++;
      break;
    case 'M':
      mult = 1024 * 1024, end++;
      break;
    case 'G':
      mult = 1024ull * 1024 * 1024, end++;
      break;
    default:
      return FALSE;
    }
  if (mult > 1 && (strcmp (end, "") == 0 || strcmp (end, "iB") == 0 || strcmp (end, "B") == 0))
    end += strlen (end);
  if (*end != '\0' || (v != 0 && mult > G_MAXUINT64 / v))
    return FALSE;
  *out = v * mult;
  return TRUE;
}

OstreeRepo *
df_cli_open_repo (const char *path, GError **error)
{
  g_autoptr (GFile) f = g_file_new_for_path (path);
  g_autoptr (OstreeRepo) repo = ostree_repo_new (f);
  if (!ostree_repo_open (repo, NULL, error))
    {
      g_prefix_error (error, "opening repository %s: ", path);
      if ((*error)->domain != DF_ERROR)
        {
          GError *n = g_error_new_literal (DF_ERROR, DF_ERROR_INVALID_ARGUMENT, (*error)->message);
          g_error_free (*error);
          *error = n;
        }
      return NULL;
    }
  return g_steal_pointer (&repo);
}

char *
df_cli_format_size (guint64 bytes)
{
  return g_format_size_full (bytes, G_FORMAT_SIZE_IEC_UNITS);
}

static gboolean progress_shown;

void
df_cli_progress (const DfProgress *p, gpointer user_data)
{
  if (!isatty (STDERR_FILENO))
    return;
  if (p->phase == DF_PHASE_WAIT)
    {
      fprintf (stderr, "\r\033[Kwaiting for another deltafetch apply or fetch in this repository");
      fflush (stderr);
      progress_shown = TRUE;
      return;
    }
  static const char *names[] = { "", "planning", "metadata", "encoding", "content", "committing" };
  const char *phase = p->phase < G_N_ELEMENTS (names) ? names[p->phase] : "";
  g_autofree char *done = df_cli_format_size (p->bytes_done);
  g_autofree char *total = df_cli_format_size (p->bytes_total);
  unsigned pct = p->bytes_total ? (unsigned)(100 * p->bytes_done / p->bytes_total) : 0;
  fprintf (stderr, "\r\033[K%-10s %3u%%  %s / %s  parts %" G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT, phase, pct, done,
           total, p->parts_done, p->parts_total);
  fflush (stderr);
  progress_shown = TRUE;
}

void
df_cli_progress_end (void)
{
  if (progress_shown)
    {
      fprintf (stderr, "\r\033[K");
      fflush (stderr);
      progress_shown = FALSE;
    }
}

void
df_cli_add_trust_options (GOptionContext *ctx, DfCliTrust *t)
{
  t->lock_timeout = DF_DEFAULT_LOCK_TIMEOUT;
  GOptionEntry entries[] = {
    { "keys", 0, 0, G_OPTION_ARG_FILENAME, &t->keys,
      "Trusted ed25519 public keys (a file of base64 keys, or a directory of them): the superblock must be signed by "
      "one of them",
      "PATH" },
    { "revoked-keys", 0, 0, G_OPTION_ARG_FILENAME, &t->revoked_keys,
      "Revoked ed25519 public keys (file or directory): a signature by one of them never counts, even by a key "
      "also in --keys",
      "PATH" },
    { "require-signatures", 0, 0, G_OPTION_ARG_NONE, &t->require_signatures,
      "Refuse a delta whose superblock is not signed by one of --keys (fetch: and libostree's pull)", NULL },
    { "allow-unsigned", 0, 0, G_OPTION_ARG_NONE, &t->allow_unsigned,
      "With --keys, still accept an unsigned delta (a signed one must verify): for moving a fleet to signed deltas",
      NULL },
    { "lock-timeout", 0, 0, G_OPTION_ARG_INT, &t->lock_timeout,
      "Seconds to wait while another apply or fetch works in the repository (default 30)", "SECONDS" },
    { "allow-downgrade", 0, 0, G_OPTION_ARG_NONE, &t->allow_downgrade,
      "Allow a commit older than the one --ref points at (refused by default, exit 11)", NULL },
    { "rebuild", 0, 0, G_OPTION_ARG_STRING, &t->rebuild,
      "Rebuild compressed objects from their content: auto (the default: unless a delta directory carries their plain "
      "encoding), always, or never",
      "WHEN" },
    { NULL },
  };
  /* GLib copies the entries; the variables they point at are @t's. */
  g_option_context_add_main_entries (ctx, entries, NULL);
}

gboolean
df_cli_trust_set (const DfCliTrust *t, DfFetchOptions *opts, char **msg)
{
  if (t->lock_timeout < 0)
    {
      *msg = g_strdup ("--lock-timeout must not be negative");
      return FALSE;
    }
  DfRebuildPolicy rebuild = DF_REBUILD_AUTO;
  if (t->rebuild && strcmp (t->rebuild, "always") == 0)
    rebuild = DF_REBUILD_ALWAYS;
  else if (t->rebuild && strcmp (t->rebuild, "never") == 0)
    rebuild = DF_REBUILD_NEVER;
  else if (t->rebuild && strcmp (t->rebuild, "auto") != 0)
    {
      *msg = g_strdup_printf ("--rebuild must be auto, always or never, not '%s'", t->rebuild);
      return FALSE;
    }
  df_fetch_options_set_rebuild (opts, rebuild);
  df_fetch_options_set_allow_downgrade (opts, t->allow_downgrade);
  df_fetch_options_set_trusted_keys (opts, t->keys);
  df_fetch_options_set_revoked_keys (opts, t->revoked_keys);
  df_fetch_options_set_require_signatures (opts, t->require_signatures);
  df_fetch_options_set_allow_unsigned (opts, t->allow_unsigned);
  df_fetch_options_set_lock_timeout (opts, t->lock_timeout);
  return TRUE;
}

void
df_cli_trust_clear (DfCliTrust *t)
{
  g_clear_pointer (&t->keys, g_free);
  g_clear_pointer (&t->revoked_keys, g_free);
  g_clear_pointer (&t->rebuild, g_free);
}

void
df_cli_add_network_options (GOptionContext *ctx, DfCliNet *n)
{
  n->connections = DF_DEFAULT_CONNECTIONS;
  n->low_limit = DF_DEFAULT_LOW_SPEED_LIMIT;
  n->low_time = DF_DEFAULT_LOW_SPEED_TIME;
  n->min_rate = DF_DEFAULT_MIN_RATE;
  n->connect_timeout = DF_DEFAULT_CONNECT_TIMEOUT;
  n->retries = DF_DEFAULT_RETRIES;
  GOptionEntry entries[] = {
    { "connections", 0, 0, G_OPTION_ARG_INT, &n->connections, "Most parallel transfers (default 8)", "N" },
    { "range-size", 0, 0, G_OPTION_ARG_STRING, &n->range, "Files larger than this are fetched in ranges (default 2M)",
      "SIZE" },
    { "low-speed-limit", 0, 0, G_OPTION_ARG_INT, &n->low_limit,
      "Abandon a transfer slower than this many bytes/s (default 1000)...", "BYTES" },
    { "low-speed-time", 0, 0, G_OPTION_ARG_INT, &n->low_time, "... for this many seconds (default 30)", "SECONDS" },
    { "min-rate", 0, 0, G_OPTION_ARG_INT, &n->min_rate,
      "Deadline of a transfer: its size at this rate, plus connect and low-speed time (default 16384)", "BYTES" },
    { "max-rate", 0, 0, G_OPTION_ARG_STRING, &n->max_rate,
      "Cap the download at about this many bytes/s over all connections (default: none)", "SIZE" },
    { "connect-timeout", 0, 0, G_OPTION_ARG_INT, &n->connect_timeout, "Seconds to connect (default 15)", "SECONDS" },
    { "retries", 0, 0, G_OPTION_ARG_INT, &n->retries, "Attempts per range on a mirror before it is demoted (default 4)",
      "N" },
    { "cacert", 0, 0, G_OPTION_ARG_FILENAME, &n->cacert, "CA certificates (PEM) to verify HTTPS servers with", "FILE" },
    { "cert", 0, 0, G_OPTION_ARG_FILENAME, &n->cert, "Client certificate (PEM) for mutual TLS", "FILE" },
    { "key", 0, 0, G_OPTION_ARG_FILENAME, &n->key, "Key of the client certificate (PEM)", "FILE" },
    { "pin", 0, 0, G_OPTION_ARG_STRING, &n->pin, "Pinned server public key: sha256//BASE64 or a key file", "PIN" },
    { "proxy", 0, 0, G_OPTION_ARG_STRING, &n->proxy,
      "Proxy for every request (default: the http_proxy, https_proxy and no_proxy variables)", "URL" },
    { "http-header", 0, 0, G_OPTION_ARG_STRING_ARRAY, &n->headers, "Send this header with every request; repeatable",
      "NAME=VALUE" },
    { NULL },
  };
  g_option_context_add_main_entries (ctx, entries, NULL);
}

gboolean
df_cli_net_apply (const DfCliNet *n, DfFetchOptions *opts, char **msg)
{
  if (n->connections < 1 || n->low_limit < 0 || n->low_time < 0 || n->min_rate < 0 || n->connect_timeout < 1
      || n->retries < 1)
    {
      *msg = g_strdup ("--connections, --connect-timeout and --retries must be positive, the rest not negative");
      return FALSE;
    }
  guint64 range_size = DF_DEFAULT_RANGE_SIZE;
  if (n->range && !df_cli_parse_size (n->range, &range_size))
    {
      *msg = g_strdup_printf ("cannot parse --range-size '%s'", n->range);
      return FALSE;
    }
  guint64 max_rate = 0;
  if (n->max_rate && (!df_cli_parse_size (n->max_rate, &max_rate) || max_rate == 0))
    {
      *msg = g_strdup_printf ("cannot parse --max-rate '%s' (bytes a second, e.g. 512K)", n->max_rate);
      return FALSE;
    }
  df_fetch_options_set_max_rate (opts, max_rate);
  df_fetch_options_set_connections (opts, n->connections);
  df_fetch_options_set_range_size (opts, range_size);
  df_fetch_options_set_low_speed (opts, n->low_limit, n->low_time);
  df_fetch_options_set_min_rate (opts, n->min_rate);
  df_fetch_options_set_connect_timeout (opts, n->connect_timeout);
  df_fetch_options_set_retries (opts, n->retries);
  df_fetch_options_set_ca_file (opts, n->cacert);
  if (n->cert || n->key)
    df_fetch_options_set_client_cert (opts, n->cert, n->key);
  df_fetch_options_set_pinned_public_key (opts, n->pin);
  df_fetch_options_set_proxy (opts, n->proxy);
  for (guint i = 0; n->headers && n->headers[i]; i++)
    {
      const char *eq = strchr (n->headers[i], '=');
      if (eq == NULL || eq == n->headers[i])
        {
          *msg = g_strdup_printf ("--http-header wants NAME=VALUE, not '%s'", n->headers[i]);
          return FALSE;
        }
      g_autofree char *name = g_strndup (n->headers[i], eq - n->headers[i]);
      df_fetch_options_add_http_header (opts, name, eq + 1);
    }
  return TRUE;
}

void
df_cli_net_clear (DfCliNet *n)
{
  g_clear_pointer (&n->range, g_free);
  g_clear_pointer (&n->cacert, g_free);
  g_clear_pointer (&n->cert, g_free);
  g_clear_pointer (&n->key, g_free);
  g_clear_pointer (&n->pin, g_free);
  g_clear_pointer (&n->max_rate, g_free);
  g_clear_pointer (&n->proxy, g_free);
  g_clear_pointer (&n->headers, g_strfreev);
}

void
df_cli_print_signature (gboolean verified)
{
  if (verified)
    printf ("superblock signature verified with a trusted key\n");
}

void
df_cli_print_rebuilds (const DfDeltaInfo *info)
{
  guint64 found = df_delta_info_get_count (info, DF_COUNT_REBUILD_FOUND);
  if (found == 0)
    return;
  guint64 rebuilt = df_delta_info_get_count (info, DF_COUNT_CONTENT_REBUILT);
  guint64 rb = df_delta_info_get_count (info, DF_COUNT_REBUILD_BYTES);
  guint64 alt = df_delta_info_get_count (info, DF_COUNT_ALTERNATIVE_BYTES);
  g_autofree char *rbs = df_cli_format_size (rb);
  g_autofree char *alts = df_cli_format_size (alt);
  printf ("Compressed:  %" G_GUINT64_FORMAT " objects found, %" G_GUINT64_FORMAT " rebuilt, %" G_GUINT64_FORMAT
          " plain\n",
          found, rebuilt, found - MIN (found, rebuilt));
  if (rebuilt > 0)
    {
      if (alt > 0)
        {
          g_autofree char *saved = df_cli_format_size (alt > rb ? alt - rb : 0);
          printf ("Rebuilt:     %s of parts instead of %s plain (%s saved; the plain parts are optional)\n", rbs, alts,
                  saved);
        }
      else
        printf ("Rebuilt:     %s of parts (no plain encoding carried)\n", rbs);
    }
  for (const char *const *note = df_delta_info_get_rebuild_notes (info); *note; note++)
    printf ("  %s\n", *note);
}

void
df_cli_print_rebuild_result (const DfApplyResult *res)
{
  if (res->memory_raised_to > 0)
    printf ("memory budget raised to %" G_GUINT64_FORMAT " MiB for rebuilding (no --memory given; at most %u MiB)\n",
            (res->memory_raised_to + DF_MIB_CLI - 1) / DF_MIB_CLI, 128);
  if (res->objects_rebuilt > 0)
    printf ("%" G_GUINT64_FORMAT " compressed objects rebuilt from their content%s\n", res->objects_rebuilt,
            res->rebuild_alone ? " (alone: no part applied beside them, to fit the memory budget)" : "");
  if (res->rebuild_parts_unused > 0)
    printf ("%u rebuild parts not used (%s): their objects came from the plain parts\n", res->rebuild_parts_unused,
            res->rebuild_unused_reason);
  if (res->rebuild_fallbacks > 0)
    printf ("%" G_GUINT64_FORMAT " rebuilds failed and their objects came from the plain parts (%s)\n",
            res->rebuild_fallbacks, res->rebuild_fallback_reason);
}
