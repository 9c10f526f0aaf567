/* The build server's verbs for the deltas a repository publishes: list,
 * delete and prune. */
#include <json-glib/json-glib.h>
#include <stdio.h>

#include "df-cli.h"

/* The keys that sign again what a removal changes. */
typedef struct
{
  char **signs, **gpg_keys;
  char *gpg_homedir;
} Keys;

static void
add_key_options (GOptionContext *ctx, Keys *k)
{
  GOptionEntry entries[] = {
    { "sign", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &k->signs,
      "ed25519 secret key that signs the stats files (and an ed25519-signed summary) again (repeatable)", "KEYFILE" },
    { "gpg-sign", 0, 0, G_OPTION_ARG_STRING_ARRAY, &k->gpg_keys,
      "GPG key id that signs the summary again when a stock delta goes (repeatable)", "KEYID" },
    { "gpg-homedir", 0, 0, G_OPTION_ARG_FILENAME, &k->gpg_homedir, "GnuPG home directory for --gpg-sign", "DIR" },
    { NULL },
  };
  g_option_context_add_main_entries (ctx, entries, NULL);
}

static DfGenerateOptions *
keys_options (Keys *k)
{
  DfGenerateOptions *opts = df_generate_options_new ();
  for (guint i = 0; k->signs && k->signs[i]; i++)
    df_generate_options_add_sign_key (opts, k->signs[i]);
  for (guint i = 0; k->gpg_keys && k->gpg_keys[i]; i++)
    df_generate_options_add_summary_gpg_key (opts, k->gpg_keys[i]);
  df_generate_options_set_gpg_homedir (opts, k->gpg_homedir);
  return opts;
}

static void
keys_clear (Keys *k)
{
  g_strfreev (k->signs);
  g_strfreev (k->gpg_keys);
  g_free (k->gpg_homedir);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Keys, keys_clear)

static const char *
format_name (DfDeltaFormat f)
{
  return f == DF_DELTA_FORMAT_OSTREE ? "ostree" : "native";
}

/* One line per delta: format, from -> to (12 digits), size, parts,
 * signatures, and what is wrong with it. */
static void
print_delta (const DfRepoDelta *d, const char *verb)
{
  g_autofree char *size = df_cli_format_size (d->size);
  g_autofree char *from = d->from ? g_strndup (d->from, 12) : g_strdup ("(empty)");
  g_autofree char *sig = d->n_signatures ? g_strdup_printf ("%u signatures", d->n_signatures) : g_strdup ("unsigned");
  printf ("%s%-6s %12s -> %.12s  %9s  %3u parts  %s%s%s\n", verb, format_name (d->format), from, d->to, size,
          d->n_parts, sig, d->problem ? "  PROBLEM: " : "", d->problem ? d->problem : "");
}

static void
add_delta_json (JsonBuilder *b, const DfRepoDelta *d)
{
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "id");
  json_builder_add_string_value (b, d->id);
  json_builder_set_member_name (b, "format");
  json_builder_add_string_value (b, format_name (d->format));
  json_builder_set_member_name (b, "from");
  if (d->from)
    json_builder_add_string_value (b, d->from);
  else
    json_builder_add_null_value (b);
  json_builder_set_member_name (b, "to");
  json_builder_add_string_value (b, d->to);
  json_builder_set_member_name (b, "dir");
  json_builder_add_string_value (b, d->dir);
  json_builder_set_member_name (b, "size");
  json_builder_add_int_value (b, (gint64)d->size);
  json_builder_set_member_name (b, "parts");
  json_builder_add_int_value (b, d->n_parts);
  json_builder_set_member_name (b, "signatures");
  json_builder_add_int_value (b, d->n_signatures);
  json_builder_set_member_name (b, "indexed");
  json_builder_add_boolean_value (b, d->indexed);
  json_builder_set_member_name (b, "from_present");
  json_builder_add_boolean_value (b, d->from_present);
  json_builder_set_member_name (b, "to_present");
  json_builder_add_boolean_value (b, d->to_present);
  json_builder_set_member_name (b, "problem");
  if (d->problem)
    json_builder_add_string_value (b, d->problem);
  else
    json_builder_add_null_value (b);
  json_builder_end_object (b);
}

/* Prints @deltas as text (each line starting with @verb) or as a JSON
 * array. */
static void
print_deltas (GPtrArray *deltas, gboolean json, const char *verb)
{
  if (!json)
    {
      for (guint i = 0; i < deltas->len; i++)
        print_delta (deltas->pdata[i], verb);
      return;
    }
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_array (b);
  for (guint i = 0; i < deltas->len; i++)
    add_delta_json (b, deltas->pdata[i]);
  json_builder_end_array (b);
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  g_autoptr (JsonNode) root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  json_generator_set_pretty (gen, TRUE);
  g_autofree char *text = json_generator_to_data (gen, NULL);
  printf ("%s\n", text);
}

/* Adds @entries (and with @keys the key options) to @ctx, parses, and
 * opens the --repo every verb here needs into *@repo. */
static int
parse (GOptionContext *ctx, GOptionEntry *entries, Keys *keys, int *argc, char ***argv, char *const *repo_path,
       OstreeRepo **repo)
{
  g_autoptr (GError) error = NULL;
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (keys)
    add_key_options (ctx, keys);
  g_option_context_set_description (ctx, df_cli_exit_codes);
  if (!g_option_context_parse (ctx, argc, argv, &error))
    return df_cli_usage (ctx, "%s", error->message);
  if (*repo_path == NULL)
    return df_cli_usage (ctx, "--repo is required");
  *repo = df_cli_open_repo (*repo_path, &error);
  return *repo ? 0 : df_cli_fail (error);
}

int
df_cli_list (int argc, char **argv)
{
  g_autofree char *repo_path = NULL;
  gboolean json = FALSE;
  GOptionEntry entries[] = {
    { "repo", 0, 0, G_OPTION_ARG_FILENAME, &repo_path, "Repository (required)", "REPO" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print a JSON array", NULL },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- list the deltas a repository publishes");
  g_autoptr (OstreeRepo) repo = NULL;
  int rc = parse (ctx, entries, NULL, &argc, &argv, &repo_path, &repo);
  if (rc != 0)
    return rc;
  if (argc > 1)
    return df_cli_usage (ctx, "unexpected argument '%s'", argv[1]);
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) deltas = NULL;
  if (!df_list_deltas (repo, &deltas, df_cli_cancellable, &error))
    return df_cli_fail (error);
  print_deltas (deltas, json, "");
  return 0;
}

int
df_cli_delete (int argc, char **argv)
{
  g_autofree char *repo_path = NULL;
  g_auto (Keys) keys = { 0 };
  GOptionEntry entries[] = {
    { "repo", 0, 0, G_OPTION_ARG_FILENAME, &repo_path, "Repository (required)", "REPO" },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("ID... - remove deltas (ID: FROM-TO or TO)");
  g_autoptr (OstreeRepo) repo = NULL;
  int rc = parse (ctx, entries, &keys, &argc, &argv, &repo_path, &repo);
  if (rc != 0)
    return rc;
  if (argc < 2)
    return df_cli_usage (ctx, "give the id of a delta to remove (deltafetch list shows them)");
  g_autoptr (DfGenerateOptions) opts = keys_options (&keys);
  for (int i = 1; i < argc; i++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (GPtrArray) gone = NULL;
      if (!df_delete_delta (repo, opts, argv[i], &gone, df_cli_cancellable, &error))
        return df_cli_fail (error);
      print_deltas (gone, FALSE, "removed ");
    }
  return 0;
}

int
df_cli_prune (int argc, char **argv)
{
  g_autofree char *repo_path = NULL, *ref = NULL;
  int keep_last = -1;
  gboolean json = FALSE;
  g_auto (Keys) keys = { 0 };
  GOptionEntry entries[] = {
    { "repo", 0, 0, G_OPTION_ARG_FILENAME, &repo_path, "Repository (required)", "REPO" },
    { "ref", 0, 0, G_OPTION_ARG_STRING, &ref, "With --keep-last: the ref whose history is pruned", "REF" },
    { "keep-last", 0, 0, G_OPTION_ARG_INT, &keep_last,
      "Keep the deltas to the N newest commits of --ref, remove those to its older ones", "N" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print what was removed as a JSON array", NULL },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx
      = g_option_context_new ("- remove deltas whose commits are gone (after ostree prune), or older than --keep-last");
  g_autoptr (OstreeRepo) repo = NULL;
  int rc = parse (ctx, entries, &keys, &argc, &argv, &repo_path, &repo);
  if (rc != 0)
    return rc;
  if (argc > 1)
    return df_cli_usage (ctx, "unexpected argument '%s'", argv[1]);
  if ((ref == NULL) != (keep_last < 0))
    return df_cli_usage (ctx, "--ref and --keep-last go together");
  if (ref && (keep_last < 1 || keep_last > 100000))
    return df_cli_usage (ctx, "--keep-last must be within 1..100000");
  g_autoptr (DfGenerateOptions) opts = keys_options (&keys);
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) gone = NULL;
  if (!df_prune_deltas (repo, opts, ref, ref ? (guint)keep_last : 0, &gone, df_cli_cancellable, &error))
    return df_cli_fail (error);
  print_deltas (gone, json, "removed ");
  if (!json)
    printf ("%u deltas removed\n", gone->len);
  return 0;
}

int
df_cli_verify (int argc, char **argv)
{
  g_autofree char *repo_path = NULL, *keys = NULL;
  gboolean all = FALSE;
  GOptionEntry entries[] = {
    { "repo", 0, 0, G_OPTION_ARG_FILENAME, &repo_path, "Repository (required)", "REPO" },
    { "all", 0, 0, G_OPTION_ARG_NONE, &all, "Verify every delta the repository publishes", NULL },
    { "keys", 0, 0, G_OPTION_ARG_FILENAME, &keys,
      "Trusted ed25519 public keys (file or directory): each superblock must be signed by one of them", "PATH" },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new (
      "[ID...] - check published deltas as a device takes them: parts whole, signatures, a trial apply");
  g_autoptr (OstreeRepo) repo = NULL;
  int rc = parse (ctx, entries, NULL, &argc, &argv, &repo_path, &repo);
  if (rc != 0)
    return rc;
  if ((argc > 1) == all)
    return df_cli_usage (ctx, "give delta ids (deltafetch list shows them) or --all");
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) deltas = NULL;
  if (!df_list_deltas (repo, &deltas, df_cli_cancellable, &error))
    return df_cli_fail (error);
  for (int i = 1; i < argc; i++)
    {
      gboolean found = FALSE;
      for (guint j = 0; j < deltas->len && !found; j++)
        found = strcmp (((DfRepoDelta *)deltas->pdata[j])->id, argv[i]) == 0;
      if (!found)
        {
          g_set_error (&error, DF_ERROR, DF_ERROR_NOT_FOUND, "the repository has no delta %s", argv[i]);
          return df_cli_fail (error);
        }
    }
  int first = 0;
  guint checked = 0, failed = 0;
  for (guint j = 0; j < deltas->len; j++)
    {
      DfRepoDelta *d = deltas->pdata[j];
      gboolean asked = all;
      for (int i = 1; i < argc && !asked; i++)
        asked = strcmp (d->id, argv[i]) == 0;
      if (!asked)
        continue;
      checked++;
      g_autofree char *from = d->from ? g_strndup (d->from, 12) : g_strdup ("(empty)");
      DfApplyResult res = { 0 };
      g_autoptr (GError) local = NULL;
      gint64 start = g_get_monotonic_time ();
      if (df_verify_delta (repo, d, keys, &res, df_cli_cancellable, &local))
        {
          g_autofree char *bytes = df_cli_format_size (res.content_bytes);
          printf ("ok     %-6s %12s -> %.12s: %u parts whole, %s, applied in a trial repository "
                  "(%" G_GUINT64_FORMAT " objects, %s) in %.1f s\n",
                  format_name (d->format), from, d->to, d->n_parts,
                  res.signature_verified ? "signature verified" : (d->n_signatures ? "signed" : "unsigned"),
                  res.objects_written, bytes, (g_get_monotonic_time () - start) / 1e6);
          continue;
        }
      if (g_error_matches (local, G_IO_ERROR, G_IO_ERROR_CANCELLED) || g_cancellable_is_cancelled (df_cli_cancellable))
        return df_cli_fail (local);
      failed++;
      g_autofree char *line = df_cli_error_line (local);
      printf ("FAILED %-6s %12s -> %.12s: %s\n", format_name (d->format), from, d->to, line);
      if (first == 0)
        first = df_error_exit_code (local);
    }
  printf ("%u deltas verified, %u failed\n", checked, failed);
  if (failed)
    fprintf (stderr, "deltafetch: %u of %u deltas failed verification\n", failed, checked);
  return first;
}

int
df_cli_sign (int argc, char **argv)
{
  g_autofree char *repo_path = NULL, *remove = NULL;
  gboolean all = FALSE;
  g_auto (Keys) keys = { 0 };
  GOptionEntry entries[] = {
    { "repo", 0, 0, G_OPTION_ARG_FILENAME, &repo_path, "Repository (required)", "REPO" },
    { "all", 0, 0, G_OPTION_ARG_NONE, &all, "Every delta of the repository", NULL },
    { "remove-key", 0, 0, G_OPTION_ARG_FILENAME, &remove,
      "Take out the signatures of these public keys (file or directory of base64 keys)", "PATH" },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx
      = g_option_context_new ("[ID...] - sign published deltas again in place, for a key rotation");
  g_autoptr (OstreeRepo) repo = NULL;
  int rc = parse (ctx, entries, &keys, &argc, &argv, &repo_path, &repo);
  if (rc != 0)
    return rc;
  if ((argc > 1) == all)
    return df_cli_usage (ctx, "give delta ids (deltafetch list shows them) or --all");
  if (keys.signs == NULL && remove == NULL)
    return df_cli_usage (ctx, "give --sign, --remove-key or both");
  g_autoptr (DfGenerateOptions) opts = keys_options (&keys);
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) done = NULL;
  if (!df_sign_deltas (repo, opts, all ? NULL : (const char *const *)argv + 1, remove, &done, df_cli_cancellable,
                       &error))
    return df_cli_fail (error);
  g_autoptr (GPtrArray) now = NULL;
  if (!df_list_deltas (repo, &now, df_cli_cancellable, &error))
    return df_cli_fail (error);
  for (guint i = 0; i < done->len; i++)
    for (guint j = 0; j < now->len; j++)
      {
        DfRepoDelta *a = done->pdata[i], *b = now->pdata[j];
        if (strcmp (a->id, b->id) == 0 && a->format == b->format)
          print_delta (b, "signed ");
      }
  return 0;
}

int
df_cli_keygen (int argc, char **argv)
{
  g_autofree char *out = NULL;
  GOptionEntry entries[] = {
    { "out", 0, 0, G_OPTION_ARG_FILENAME, &out, "Write PREFIX.secret (mode 0600) and PREFIX.pub (required)", "PREFIX" },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- make an ed25519 key pair for --sign and --keys");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_description (ctx, df_cli_exit_codes);
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return df_cli_usage (ctx, "%s", error->message);
  if (out == NULL || argc > 1)
    return df_cli_usage (ctx, "give --out=PREFIX and nothing else");
  g_autofree char *secret = g_strconcat (out, ".secret", NULL);
  g_autofree char *pub = g_strconcat (out, ".pub", NULL);
  if (!df_ed25519_keygen (secret, pub, &error))
    return df_cli_fail (error);
  printf ("secret key: %s (for generate --sign; keep it off devices)\npublic key: %s (for --keys on devices)\n", secret,
          pub);
  return 0;
}

static const char *cache_names[] = {
  [DF_CACHE_IMMUTABLE] = "immutable",
  [DF_CACHE_LONG] = "long",
  [DF_CACHE_REVALIDATE] = "revalidate",
  [DF_CACHE_SHORT] = "short",
};

int
df_cli_publish (int argc, char **argv)
{
  g_autofree char *repo_path = NULL, *to = NULL;
  gboolean print_order = FALSE;
  GOptionEntry entries[] = {
    { "repo", 0, 0, G_OPTION_ARG_FILENAME, &repo_path, "Repository (required)", "REPO" },
    { "to", 0, 0, G_OPTION_ARG_FILENAME, &to, "Directory a static server serves: copy the repository there", "DIR" },
    { "print-order", 0, 0, G_OPTION_ARG_NONE, &print_order,
      "Print the files to upload, in order, one per line: cache class, then path", NULL },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx
      = g_option_context_new ("- copy a repository to static hosting in an order no client can trip on");
  g_autoptr (OstreeRepo) repo = NULL;
  int rc = parse (ctx, entries, NULL, &argc, &argv, &repo_path, &repo);
  if (rc != 0)
    return rc;
  if (argc > 1)
    return df_cli_usage (ctx, "unexpected argument '%s'", argv[1]);
  if ((to == NULL) == !print_order)
    return df_cli_usage (ctx, "give exactly one of --to or --print-order");
  g_autoptr (GError) error = NULL;
  if (print_order)
    {
      g_autoptr (GPtrArray) files = NULL;
      if (!df_publish_plan (repo, &files, df_cli_cancellable, &error))
        return df_cli_fail (error);
      for (guint i = 0; i < files->len; i++)
        {
          DfPublishFile *f = files->pdata[i];
          printf ("%s %s\n", cache_names[f->cache], f->path);
        }
      return 0;
    }
  DfPublishResult res;
  if (!df_publish (repo, to, &res, df_cli_cancellable, &error))
    return df_cli_fail (error);
  g_autofree char *bytes = df_cli_format_size (res.bytes_copied);
  printf ("published to %s: %u files copied (%s), %u removed\n", to, res.files_copied, bytes, res.files_removed);
  return 0;
}

int
df_cli_index (int argc, char **argv)
{
  g_autofree char *repo_path = NULL;
  gboolean json = FALSE;
  g_auto (Keys) keys = { 0 };
  GOptionEntry entries[] = {
    { "repo", 0, 0, G_OPTION_ARG_FILENAME, &repo_path, "Repository (required)", "REPO" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print what was merged as a JSON array", NULL },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new (
      "OUTROOT... - merge the deltas of fanned-out generate --out-root jobs into the repository and its indexes");
  g_autoptr (OstreeRepo) repo = NULL;
  int rc = parse (ctx, entries, &keys, &argc, &argv, &repo_path, &repo);
  if (rc != 0)
    return rc;
  if (argc < 2)
    return df_cli_usage (ctx, "give the output roots of the generate jobs");
  g_autoptr (DfGenerateOptions) opts = keys_options (&keys);
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) merged = NULL;
  if (!df_index_merge (repo, opts, (const char *const *)argv + 1, &merged, df_cli_cancellable, &error))
    return df_cli_fail (error);
  print_deltas (merged, json, "indexed ");
  return 0;
}
