/* The deltafetch command-line tool: one file per verb, sharing these. */
#pragma once

#include "deltafetch.h"

int df_cli_generate (int argc, char **argv);
int df_cli_apply (int argc, char **argv);
int df_cli_fetch (int argc, char **argv);
int df_cli_pull (int argc, char **argv);
int df_cli_show (int argc, char **argv);
int df_cli_list (int argc, char **argv);
int df_cli_delete (int argc, char **argv);
int df_cli_prune (int argc, char **argv);
int df_cli_verify (int argc, char **argv);
int df_cli_sign (int argc, char **argv);
int df_cli_keygen (int argc, char **argv);
int df_cli_publish (int argc, char **argv);
int df_cli_index (int argc, char **argv);

/* Text appended to every verb's --help. */
extern const char *df_cli_exit_codes;

/* A cancellable that SIGINT and SIGTERM cancel (a second signal exits at
 * once with 130); blocks both signals in the calling thread and the ones it
 * creates, so call it before any other thread starts. The verbs whose work
 * checks the cancellable get it (through df_cli_cancellable). */
GCancellable *df_cli_cancel_on_signals (void);
extern GCancellable *df_cli_cancellable;

/* @error's message on one line (saying which signal cancelled the run). */
char *df_cli_error_line (const GError *error);
/* Prints "deltafetch: <message>" on stderr and returns the exit code. */
int df_cli_fail (const GError *error);
/* Usage error: prints the message and returns 2. */
int df_cli_usage (GOptionContext *ctx, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

/* Parses "123", "64K", "64M", "1G" (binary units, optional "iB"/"B"). */
gboolean df_cli_parse_size (const char *s, guint64 *out);

OstreeRepo *df_cli_open_repo (const char *path, GError **error);

/* Progress line on a TTY (stderr), nothing otherwise. */
void df_cli_progress (const DfProgress *p, gpointer user_data);
void df_cli_progress_end (void);
char *df_cli_format_size (guint64 bytes);
/* What `generate` and `show` print about compressed objects rebuilt on the
 * device (nothing when none were found). */
void df_cli_print_rebuilds (const DfDeltaInfo *info);
/* What `apply` and `fetch` print about rebuilt objects and fallbacks. */
void df_cli_print_rebuild_result (const DfApplyResult *res);

/* The options apply and fetch share: the trust policy (--keys,
 * --require-signatures, --allow-unsigned, --allow-downgrade),
 * --lock-timeout and --rebuild. Added to @ctx's main group; @t must outlive the parse. */
typedef struct
{
  char *keys;
  char *revoked_keys;
  gboolean require_signatures;
  gboolean allow_unsigned;
  gboolean allow_downgrade;
  int lock_timeout;
  char *rebuild;
} DfCliTrust;
void df_cli_add_trust_options (GOptionContext *ctx, DfCliTrust *t);
void df_cli_trust_clear (DfCliTrust *t);
/* Sets what @t parsed on @opts (apply and fetch both run as a fetch);
 * FALSE with a usage message in *@msg (free it) for a bad value. */
gboolean df_cli_trust_set (const DfCliTrust *t, DfFetchOptions *opts, char **msg);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (DfCliTrust, df_cli_trust_clear)
/* The network options apply and fetch share: connections, ranges,
 * timeouts, retries, TLS. Added to @ctx's main group with the defaults of
 * DfFetchOptions; @n must outlive the parse. */
typedef struct
{
  int connections, low_limit, low_time, min_rate, connect_timeout, retries;
  char *range, *cacert, *cert, *key, *pin, *max_rate, *proxy;
  char **headers;
} DfCliNet;
void df_cli_add_network_options (GOptionContext *ctx, DfCliNet *n);
/* Checks the values parsed into @n and sets them on @opts; FALSE with a
 * usage message in *@msg (free it) when one is out of range. */
gboolean df_cli_net_apply (const DfCliNet *n, DfFetchOptions *opts, char **msg);
void df_cli_net_clear (DfCliNet *n);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (DfCliNet, df_cli_net_clear)

/* The line apply and fetch print when the superblock's signature verified. */
void df_cli_print_signature (gboolean verified);
