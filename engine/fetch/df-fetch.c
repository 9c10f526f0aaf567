/* A fetch: discovery, then the native or stock path, else libostree's
 * pull, or a delta directory at hand; this file only wires the rooms
 * together.
 *
 * The downloader (df-downloader.c) moves bytes: small files into memory,
 * ranges of part files into the part store (df-part-store.c), a directory
 * in the repository's tmp/ named after the superblock's SHA-256. A part
 * whose ranges are all in is checked by the store; only a part that
 * matches the superblock is handed to the apply, whose workers decode and
 * write it while further parts download. Nothing a server says is trusted:
 * each transfer (df-transfer.c) holds status, Content-Range,
 * Content-Length and ETag to what was asked (dfi_http_check_reply()), and
 * no response may deliver more bytes than the delta declares. */
#include "df-fetch.h"

#include <fcntl.h>
#include <sys/stat.h>

#include "df-apply-delta.h"
#include "df-apply-policy.h"
#include "df-discovery.h"
#include "df-fetch-private.h"
#include "df-fetch-run.h"
#include "df-part.h"

void
dfi_fetch_run_init (DfFetchRun *f, OstreeRepo *repo, const DfFetchOptions *o, DfFetchResult *res,
                    GCancellable *cancellable)
{
  f->repo = repo;
  f->o = o;
  f->res = res;
  f->own_cancellable = cancellable ? NULL : g_cancellable_new ();
  f->cancellable = cancellable ? cancellable : f->own_cancellable;
  f->dl = dfi_downloader_new (o, res, f->cancellable);
  dfi_part_store_init (&f->store, repo, o->net.range_size, f->cancellable);
}

void
dfi_fetch_run_clear (DfFetchRun *f)
{
  dfi_downloader_free (f->dl);
  dfi_part_store_clear (&f->store);
  g_free (f->fallback_part);
  if (f->session)
    dfi_apply_session_free (f->session);
  else if (f->sb)
    dfi_superblock_free (f->sb);
  if (!f->stock_borrowed)
    dfi_stock_superblock_free (f->stock);
  dfi_signature_policy_clear (&f->policy);
  g_clear_object (&f->own_cancellable);
}

/* Refuses (DF_ERROR_TOO_LARGE) a download of @planned bytes over the
 * caller's limit. */
static gboolean
check_max_bytes (DfFetchRun *f, guint64 planned, GError **error)
{
  if (f->o->max_bytes > 0 && planned > f->o->max_bytes)
    return dfi_throw (error, DF_ERROR_TOO_LARGE,
                      "the update needs %" G_GUINT64_FORMAT
                      " bytes downloaded, more than the limit of %" G_GUINT64_FORMAT
                      " (nothing of it was downloaded but the index and the superblock)",
                      planned, f->o->max_bytes);
  return TRUE;
}

/* A stock delta's parts are also decoded into temporary files first. */
static guint64
stock_staging (DfFetchRun *f)
{
  return f->stock ? dfi_stock_payload_staging (f->stock,
                                               dfi_stock_decoders (f->stock, f->o->apply->memory, f->o->apply->jobs))
                  : 0;
}

gboolean
dfi_fetch_run_check_expected (DfFetchRun *f, guint64 published, GError **error)
{
  if (f->o->expected_size == 0 || published == f->o->expected_size)
    return TRUE;
  return dfi_throw (error, DF_ERROR_UNTRUSTED,
                    "the server's delta to %s%s%s has %" G_GUINT64_FORMAT
                    " bytes, and the update's metadata says %" G_GUINT64_FORMAT,
                    f->o->apply->commit, f->res->from[0] ? " from " : "", f->res->from, published, f->o->expected_size);
}

/* The native delta's size as published: superblock and parts. */
static guint64
native_published (const DfSuperblock *sb)
{
  guint64 n = sb->file.size;
  for (guint i = 0; i < sb->n_parts; i++)
    n += sb->parts[i].compressed_size;
  return n;
}

gboolean
dfi_fetch_run_check_space (DfFetchRun *f, GError **error)
{
  if (!check_max_bytes (f, dfi_downloader_bytes_planned (f->dl) + dfi_downloader_bytes (f->dl), error))
    return FALSE;
  guint64 need = 0;
  for (guint i = 0; i < f->store.n_parts; i++)
    {
      DfStorePart *p = &f->store.parts[i];
      if (dfi_part_settled (p))
        continue;
      for (guint r = 0; r < p->n_ranges; r++)
        if (!p->done[r])
          need += p->ranges[r].len;
      need += p->unpacked;
    }
  return dfi_check_free_space (f->repo, f->store.dfd, need + stock_staging (f), error);
}

gboolean
dfi_fetch_run_plan_parts (DfFetchRun *f, const guint8 *wanted, GError **error)
{
  DfFetchPlan *plan = f->plan;
  guint64 missing = 0, reused = 0, disk = 0;
  for (guint i = 0; i < f->store.n_parts; i++)
    {
      DfStorePart *p = &f->store.parts[i];
      f->res->delta_bytes += p->size;
      if (!wanted[i])
        continue;
      guint64 have = dfi_part_store_peek (&f->store, p);
      reused += have;
      missing += p->size - have;
      if (have < p->size)
        {
          plan->parts_to_fetch++;
          disk += p->size - have + p->unpacked;
        }
    }
  plan->reused_bytes = reused;
  plan->download_bytes = dfi_downloader_bytes (f->dl) + missing;
  plan->disk_bytes = disk + stock_staging (f);
  plan->parts_total = f->store.n_parts;
  plan->size_known = TRUE;
  if (!check_max_bytes (f, plan->download_bytes, error))
    return FALSE;
  return dfi_check_free_space (f->repo, ostree_repo_get_dfd (f->repo), plan->disk_bytes, error);
}

/* ---------------------------------------------------------------------- */
/* The native path                                                          */

static gboolean
session_take_part (gpointer data, DfStorePart *p, GError **error)
{
  DfFetchRun *f = data;
  return dfi_apply_session_add_part (f->session, p->index, f->store.dfd, p->name, error);
}

static gboolean
session_failed (gpointer data)
{
  DfFetchRun *f = data;
  return dfi_apply_session_failed (f->session);
}

static guint
session_parts_applied (gpointer data)
{
  DfFetchRun *f = data;
  DfProgress p;
  dfi_apply_session_get_progress (f->session, &p);
  return p.parts_done;
}

/* Plans every part of the native delta: metadata parts first, as content
 * parts wait for the trust walk. */
static gboolean
plan_native_parts (DfFetchRun *f, GError **error)
{
  /* Queued in this order: the metadata, then the content parts a rebuild
   * this device runs reads, then those rebuild parts, then the rest. A
   * rebuild (seconds of CPU for an initrd) then runs while the rest
   * downloads, instead of after the last byte. */
  g_autofree guint8 *pass_of = g_new (guint8, MAX (f->sb->n_parts, 1));
  for (guint i = 0; i < f->sb->n_parts; i++)
    pass_of[i] = f->sb->parts[i].kind == DF_PART_KIND_METADATA ? 0 : 3;
  for (guint i = 0; i < f->sb->n_parts; i++)
    {
      const DfPart *dp = &f->sb->parts[i];
      if (dp->kind != DF_PART_KIND_REBUILD || !dfi_apply_session_part_needed (f->session, i))
        continue;
      pass_of[i] = 2;
      for (guint k = 0; k < dp->n_deps; k++)
        if (pass_of[dp->deps[k]] == 3)
          pass_of[dp->deps[k]] = 1;
    }
  for (guint pass = 0; pass < 4; pass++)
    for (guint i = 0; i < f->sb->n_parts; i++)
      {
        const DfPart *dp = &f->sb->parts[i];
        if (pass_of[i] != pass)
          continue;
        DfStorePart *p = &f->store.parts[i];
        dfi_part_init (&f->store, p, i, dp->compressed_size, dp->sha256, dfi_part_output (dp));
        if (!dfi_downloader_add_part (f->dl, p, dfi_apply_session_part_needed (f->session, i), error))
          return FALSE;
        if (dfi_downloader_get_error (f->dl))
          return TRUE;
      }
  return TRUE;
}

/* The download stopped: the apply's error when it failed first, else the
 * downloader's, the session cancelled. */
static gboolean
native_failed (DfFetchRun *f, GError **error)
{
  g_autoptr (GError) fatal = dfi_downloader_steal_error (f->dl);
  if (dfi_downloader_consumer_failed (f->dl))
    {
      /* The apply's own error says what went wrong. */
      g_autoptr (GError) apply_error = NULL;
      if (!dfi_apply_session_finish (f->session, NULL, &apply_error) && apply_error)
        {
          g_propagate_error (error, g_steal_pointer (&apply_error));
          return FALSE;
        }
      return dfi_throw (error, DF_ERROR_FAILED, "the apply failed");
    }
  GError *ignored = NULL;
  g_cancellable_cancel (dfi_apply_session_get_cancellable (f->session));
  dfi_apply_session_finish (f->session, NULL, &ignored);
  g_clear_error (&ignored);
  g_propagate_error (error, g_steal_pointer (&fatal));
  return FALSE;
}

/* Once every part downloaded is applied: the plain encoding of any object
 * whose rebuild failed meanwhile is downloaded now, in the same run. The
 * failure is recorded in the apply's staging first, so a run interrupted
 * from here on asks for those parts from the start. */
static gboolean
fetch_rebuild_fallbacks (DfFetchRun *f, GError **error)
{
  dfi_apply_session_drain (f->session);
  if (dfi_apply_session_failed (f->session))
    return TRUE; /* finish reports it */
  guint wanted = 0;
  for (guint i = 0; i < f->store.n_parts; i++)
    {
      DfStorePart *p = &f->store.parts[i];
      if (p->state != DF_PART_STATE_UNNEEDED || !dfi_apply_session_part_needed (f->session, i))
        continue;
      if (!dfi_downloader_want_part (f->dl, p, error))
        return FALSE;
      wanted++;
    }
  if (wanted == 0)
    return TRUE;
  g_autofree char *why = dfi_apply_session_fallback_reason (f->session);
  dfi_downloader_emit (f->dl, DF_FETCH_EVENT_REBUILD_FALLBACK, NULL, why ? why : "a rebuild failed");
  if (dfi_downloader_get_error (f->dl) == NULL && !dfi_fetch_run_check_space (f, error))
    return FALSE;
  if (dfi_downloader_get_error (f->dl) == NULL)
    dfi_downloader_run (f->dl);
  return TRUE;
}

static void
enter_commit (gpointer dl, gpointer unused)
{
  dfi_downloader_set_phase (dl, DF_FETCH_PHASE_COMMIT);
}

/* A plan of the native delta @f->sb: the parts a first run's session
 * would want, less what the store holds. */
static gboolean
plan_native (DfFetchRun *f, const char *sb_hex, GError **error)
{
  g_autofree guint8 *wanted = g_new0 (guint8, MAX (f->sb->n_parts, 1));
  if (!dfi_apply_session_plan (f->repo, f->sb, f->o->apply, wanted, f->cancellable, error))
    return FALSE;
  f->plan->signature_verified = f->sb->file.verified;
  dfi_part_store_open_existing (&f->store, sb_hex);
  dfi_part_store_alloc (&f->store, f->sb->n_parts);
  for (guint i = 0; i < f->sb->n_parts; i++)
    {
      const DfPart *dp = &f->sb->parts[i];
      dfi_part_init (&f->store, &f->store.parts[i], i, dp->compressed_size, dp->sha256, dfi_part_output (dp));
    }
  f->res->delta_bytes = f->sb->file.size;
  return dfi_fetch_run_plan_parts (f, wanted, error);
}

/* Downloads (from @delta_rel on the mirrors) and applies the native delta
 * whose superblock @sb_bytes (verified against the index) describes. */
static gboolean
fetch_delta (DfFetchRun *f, GBytes *sb_bytes, const char *sb_hex, const char *delta_rel, GError **error)
{
  const DfApplyOptions *aopts = f->o->apply;
  f->sb = dfi_superblock_parse_full (sb_bytes, &f->policy, dfi_apply_usable_memory (aopts), error);
  if (f->sb == NULL)
    return FALSE;
  if (strcmp (f->sb->to_hex, f->o->apply->commit) != 0)
    return dfi_throw (error, DF_ERROR_UNTRUSTED, "the server's delta leads to %s, not to the trusted commit %s",
                      f->sb->to_hex, f->o->apply->commit);
  if (!dfi_fetch_run_check_expected (f, native_published (f->sb), error))
    return FALSE;
  if (f->plan)
    return plan_native (f, sb_hex, error);
  if (!dfi_part_store_open (&f->store, sb_hex, error))
    return FALSE;
  DfSuperblock *sb = f->sb;
  f->session = dfi_apply_session_new (f->repo, g_steal_pointer (&f->sb), aopts, f->cancellable, error);
  if (f->session == NULL)
    return FALSE;
  f->sb = (DfSuperblock *)dfi_apply_session_get_superblock (f->session);
  g_assert (f->sb == sb);

  DfPartConsumer consumer = {
    .part_ready = session_take_part, .failed = session_failed, .parts_applied = session_parts_applied, .data = f
  };
  dfi_downloader_attach (f->dl, &f->store, delta_rel, &consumer);
  dfi_part_store_alloc (&f->store, f->sb->n_parts);
  f->res->parts_total = f->store.n_parts;
  f->res->delta_bytes = f->sb->file.size;
  if (!plan_native_parts (f, error))
    return FALSE;
  gboolean stopped = dfi_downloader_get_error (f->dl) != NULL;
  if (!stopped && !dfi_fetch_run_check_space (f, error))
    return FALSE;
  dfi_downloader_start (f->dl);
  if (!stopped)
    dfi_downloader_run (f->dl);
  if (dfi_downloader_get_error (f->dl) == NULL && !dfi_downloader_consumer_failed (f->dl)
      && !fetch_rebuild_fallbacks (f, error))
    return FALSE;
  if (dfi_downloader_get_error (f->dl) || dfi_downloader_consumer_failed (f->dl))
    return native_failed (f, error);
  dfi_downloader_set_phase (f->dl, DF_FETCH_PHASE_APPLY);
  dfi_apply_session_on_commit (f->session, enter_commit, f->dl);
  if (!dfi_apply_session_finish (f->session, &f->res->apply, error))
    return FALSE;
  dfi_downloader_progress (f->dl, TRUE);
  dfi_part_store_remove (&f->store);
  return TRUE;
}

/* The superblock of 64-hex @sb_hex (@sb_size bytes, SHA-256 @sb_sha) at
 * @delta_rel: from the store of an interrupted run, or the server; either
 * way it must match the index that mirror @index_mirror served. */
static GBytes *
native_superblock (DfFetchRun *f, guint index_mirror, const char *delta_rel, const guint8 sb_sha[DF_SHA256_LEN],
                   const char *sb_hex, guint64 sb_size, GError **error)
{
  int repo_dfd = ostree_repo_get_dfd (f->repo);
  g_autofree char *sb_store = g_strdup_printf ("tmp/deltafetch-fetch-%s/superblock", sb_hex);
  g_autoptr (GError) ignored = NULL;
  g_autoptr (GBytes) sb_bytes = dfi_read_file_bounded (repo_dfd, sb_store, sb_size, sb_size, "superblock", &ignored);
  guint8 got[DF_SHA256_LEN];
  if (sb_bytes)
    {
      dfi_sha256 (g_bytes_get_data (sb_bytes, NULL), g_bytes_get_size (sb_bytes), got);
      if (memcmp (got, sb_sha, DF_SHA256_LEN) == 0)
        return g_steal_pointer (&sb_bytes);
      g_clear_pointer (&sb_bytes, g_bytes_unref);
    }
  g_autofree char *rel = g_strdup_printf ("%s/superblock", delta_rel);
  guint sb_mirror;
  gboolean not_found;
  sb_bytes = dfi_downloader_fetch_small (f->dl, rel, sb_size, &not_found, &sb_mirror, error);
  if (sb_bytes == NULL)
    return NULL;
  dfi_sha256 (g_bytes_get_data (sb_bytes, NULL), g_bytes_get_size (sb_bytes), got);
  if (g_bytes_get_size (sb_bytes) != sb_size || memcmp (got, sb_sha, DF_SHA256_LEN) != 0)
    {
      /* Either file may be the damaged one: the mirror whose index
       * promised this superblock is trusted for neither. (The superblock
       * comes from another mirror only when that one did not have it.) */
      f->suspect = index_mirror;
      dfi_throw (error, DF_ERROR_CORRUPT, "%s/%s does not match the server's index",
                 dfi_downloader_mirror (f->dl, sb_mirror), rel);
      return NULL;
    }
  g_autofree char *dir = g_path_get_dirname (sb_store);
  if (f->plan == NULL && dfi_mkdir_p_at (repo_dfd, dir, NULL))
    dfi_write_file_atomic (repo_dfd, sb_store, sb_bytes, NULL);
  return g_steal_pointer (&sb_bytes);
}

/* The native delta discovery chose. */
static gboolean
fetch_native (DfFetchRun *f, const DfDiscovered *dd, GError **error)
{
  const char *key = dd->key;
  f->res->path = key[0] ? DF_FETCH_PATH_DELTA : DF_FETCH_PATH_SCRATCH;
  if (key[0])
    g_strlcpy (f->res->from, key, sizeof f->res->from);
  char delta_rel[200];
  g_snprintf (delta_rel, sizeof delta_rel, "deltafetch/v1/deltas/%s%s%s", key, key[0] ? "-" : "", f->o->apply->commit);
  char sb_hex[65];
  dfi_hex (dd->sb_sha, sb_hex);
  g_autoptr (GBytes) sb_bytes
      = native_superblock (f, dd->index_mirror, delta_rel, dd->sb_sha, sb_hex, dd->sb_size, error);
  return sb_bytes && fetch_delta (f, sb_bytes, sb_hex, delta_rel, error);
}

/* ---------------------------------------------------------------------- */
/* The whole fetch                                                          */

/* A fetch that failed for a reason a rerun cannot fix (the delta itself is
 * bad) leaves nothing of it behind: neither the downloaded parts nor what
 * the apply staged. Interruptions keep both for the rerun to resume. */
static void
forget_if_final (DfFetchRun *f, const GError *error)
{
  if (!dfi_apply_failure_is_final (error))
    return;
  dfi_part_store_remove (&f->store);
  const DfSignedFile *file = f->session ? &dfi_apply_session_get_superblock (f->session)->file
                             : f->sb    ? &f->sb->file
                             : f->stock ? &f->stock->file
                                        : NULL;
  if (file)
    dfi_apply_forget_staging (f->repo, file->sha256);
}

/* Discovery and the download it leads to (else libostree's pull), for a
 * device at @from (NULL: none). A small file that fails its check sets
 * f->suspect. */
static gboolean
discover_and_fetch (DfFetchRun *f, const char *from, GError **error)
{
  const DfFetchOptions *o = f->o;
  g_auto (DfDiscovered) dd = { 0 };
  if (!dfi_discover (f->dl, f->repo, o->apply->commit, from, &dd, &f->suspect, error))
    return FALSE;
  gboolean has_from = dd.kind == DF_DISCOVERED_NATIVE  ? dd.key[0] != '\0'
                      : dd.kind == DF_DISCOVERED_STOCK ? dd.stock_from != NULL
                                                       : FALSE;
  f->res->from_found = !has_from ? DF_FETCH_FROM_NONE : dd.searched ? DF_FETCH_FROM_REPOSITORY : f->from_how;
  /* Without a delta on offer, only the pull is left: from scratch unless
   * the device has a commit. */
  gboolean scratch = dd.kind == DF_DISCOVERED_NONE ? from == NULL : !has_from;
  if (scratch && !o->allow_scratch)
    return dfi_throw (error, DF_ERROR_TOO_LARGE,
                      "the server offers %s to %s%s%s, and from-scratch downloads are not allowed",
                      dd.kind == DF_DISCOVERED_NATIVE  ? "only a from-scratch delta"
                      : dd.kind == DF_DISCOVERED_STOCK ? "only a stock from-scratch delta"
                                                       : "no delta (libostree's pull would fetch the whole commit)",
                      o->apply->commit, from ? " from " : "", from ? from : "");
  if (dd.kind == DF_DISCOVERED_NATIVE)
    return fetch_native (f, &dd, error);
  if (dd.kind == DF_DISCOVERED_STOCK)
    {
      f->res->path = dd.stock_from ? DF_FETCH_PATH_STOCK_DELTA : DF_FETCH_PATH_STOCK_SCRATCH;
      if (dd.stock_from)
        g_strlcpy (f->res->from, dd.stock_from, sizeof f->res->from);
      return dfi_fetch_run_stock (f, dd.stock_superblock, dd.stock_relpath, -1, error);
    }
  if (o->apply->require_signatures)
    return dfi_throw (
        error, DF_ERROR_UNTRUSTED,
        "the server offers no native delta to %s, and signatures are required (libostree's pull has none)",
        o->apply->commit);
  if (!o->allow_pull)
    return dfi_throw (error, DF_ERROR_NETWORK, "the server offers no native delta to %s%s%s", o->apply->commit,
                      from ? " from " : "", from ? from : "");
  if (o->net.max_rate > 0)
    return dfi_throw (error, DF_ERROR_NETWORK,
                      "the server offers no delta to %s, and libostree's pull cannot honour the rate cap",
                      o->apply->commit);
  if (o->expected_size > 0)
    return dfi_throw (error, DF_ERROR_UNTRUSTED,
                      "the server offers no delta to %s, and the update's metadata expects one of %" G_GUINT64_FORMAT
                      " bytes",
                      o->apply->commit, o->expected_size);
  f->res->path = DF_FETCH_PATH_PULL;
  if (f->plan || o->max_bytes > 0)
    {
      if (!dfi_fetch_pull_within_limit (f, error))
        return FALSE;
      if (f->plan)
        return TRUE;
    }
  dfi_downloader_set_phase (f->dl, DF_FETCH_PHASE_DOWNLOAD);
  dfi_downloader_emit (f->dl, DF_FETCH_EVENT_START, o->net.urls->pdata[0], NULL);
  return dfi_fetch_pull_fallback (f, error);
}

static gboolean
commit_present (OstreeRepo *repo, const char *commit)
{
  g_autoptr (GVariant) v = NULL;
  OstreeRepoCommitState state = 0;
  if (!ostree_repo_load_commit (repo, commit, &v, &state, NULL))
    return FALSE;
  return (state & OSTREE_REPO_COMMIT_STATE_PARTIAL) == 0;
}

gboolean
dfi_set_ref (OstreeRepo *repo, const char *ref, const char *commit, GCancellable *c, GError **error)
{
  g_autofree char *remote = NULL, *name = NULL;
  if (ref == NULL)
    return TRUE;
  if (!ostree_parse_refspec (ref, &remote, &name, error))
    return FALSE;
  return ostree_repo_set_ref_immediate (repo, remote, name, commit, c, error);
}

/* The commit of the deployment the system booted (/run/ostree-booted),
 * when @repo is the booted sysroot's repository; else NULL. */
static char *
booted_commit (OstreeRepo *repo)
{
  if (!g_file_test ("/run/ostree-booted", G_FILE_TEST_EXISTS))
    return NULL;
  g_autoptr (OstreeSysroot) sysroot = ostree_sysroot_new_default ();
  g_autoptr (OstreeRepo) sysrepo = NULL;
  if (!ostree_sysroot_load (sysroot, NULL, NULL) || !ostree_sysroot_get_repo (sysroot, &sysrepo, NULL, NULL))
    return NULL;
  OstreeDeployment *booted = ostree_sysroot_get_booted_deployment (sysroot);
  struct stat a, b;
  if (booted == NULL || fstat (ostree_repo_get_dfd (repo), &a) < 0 || fstat (ostree_repo_get_dfd (sysrepo), &b) < 0
      || a.st_dev != b.st_dev || a.st_ino != b.st_ino)
    return NULL;
  return g_strdup (ostree_deployment_get_csum (booted));
}

/* Where the device is: @o->from resolved, else the booted deployment's
 * commit, else its ref's; NULL when that commit is not wholly in @repo. */
static gboolean
resolve_from (OstreeRepo *repo, const DfFetchOptions *o, char **out, DfFetchFrom *how, GError **error)
{
  g_autofree char *from = NULL;
  g_autoptr (GError) from_error = NULL;
  if (o->from && !ostree_repo_resolve_rev (repo, o->from, FALSE, &from, &from_error))
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "the from-commit %s is not in the repository", o->from);
  *how = DF_FETCH_FROM_OPTION;
  if (from == NULL && (from = booted_commit (repo)) != NULL)
    {
      *how = DF_FETCH_FROM_BOOTED;
      if (!commit_present (repo, from))
        g_clear_pointer (&from, g_free);
    }
  if (from == NULL && o->apply->ref)
    {
      g_autoptr (GError) ignored = NULL;
      ostree_repo_resolve_rev (repo, o->apply->ref, TRUE, &from, &ignored);
      *how = DF_FETCH_FROM_REF;
    }
  if (from && !commit_present (repo, from))
    g_clear_pointer (&from, g_free);
  *out = g_steal_pointer (&from);
  return TRUE;
}

/* Discovery and download until one succeeds, or fails for a reason other
 * than a small file that failed its check: as for a part that fails its
 * hash, that mirror is demoted and discovery starts over on the next.
 * When a listing and the superblock it lists disagree, the likeliest cause
 * is a cache in front of the server that holds an old copy of one of them
 * (an index changes in place when a delta is made again): once, before
 * any mirror is demoted for it, discovery starts over on the same mirror
 * with every small file asked for fresh. Files that still disagree on
 * every mirror are a server in the middle of an update, or inconsistent:
 * DF_ERROR_NETWORK (retryable), not corruption. */
static gboolean
fetch_from_mirrors (DfFetchRun *f, const char *from, GError **error)
{
  gboolean fresh = FALSE;
  for (;;)
    {
      g_autoptr (GError) local = NULL;
      f->suspect = -1;
      /* Nothing an attempt that failed its check chose stands. */
      f->res->path = 0;
      f->res->from[0] = '\0';
      f->res->from_found = DF_FETCH_FROM_NONE;
      if (discover_and_fetch (f, from, &local))
        return TRUE;
      if (f->suspect < 0)
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return FALSE;
        }
      gboolean disagree = g_error_matches (local, DF_ERROR, DF_ERROR_CORRUPT);
      if (disagree && !fresh)
        {
          fresh = TRUE;
          dfi_downloader_set_fresh (f->dl);
          g_autofree char *why = g_strdup_printf ("%s: asking again for fresh copies", local->message);
          dfi_downloader_emit (f->dl, DF_FETCH_EVENT_RETRY, dfi_downloader_mirror (f->dl, (guint)f->suspect), why);
          continue;
        }
      dfi_downloader_demote (f->dl, f->suspect, local->message);
      if (dfi_downloader_current_mirror (f->dl) < 0)
        {
          if (disagree)
            g_set_error (error, DF_ERROR, DF_ERROR_NETWORK,
                         "%s, also when asked for fresh copies (every mirror failed): the server's files disagree, "
                         "perhaps while it is being updated",
                         local->message);
          else
            g_set_error (error, local->domain, local->code, "%s (every mirror failed)", local->message);
          return FALSE;
        }
    }
}

/* A delta directory at hand (offline media): its superblock read and its
 * signature checked once; only a stock delta's fallback objects that the
 * repository lacks come from the mirrors, if any are given. */
static gboolean
fetch_from_dir (OstreeRepo *repo, const DfFetchOptions *o, DfFetchResult *res, GCancellable *cancellable,
                GError **error)
{
  int dfd = open (o->delta_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return dfi_throw_errno (error, errno, "opening delta %s", o->delta_dir);
  dfi_autofd dfd_owned = dfd;
  g_auto (DfDelta) d = { 0 };
  if (!dfi_delta_open (dfd, o->apply, &d, error))
    return FALSE;
  const char *from = dfi_delta_from (&d);
  if (d.stock)
    res->path = from ? DF_FETCH_PATH_STOCK_DELTA : DF_FETCH_PATH_STOCK_SCRATCH;
  else
    res->path = from ? DF_FETCH_PATH_DELTA : DF_FETCH_PATH_SCRATCH;
  if (from)
    g_strlcpy (res->from, from, sizeof res->from);
  g_strlcpy (res->commit, dfi_delta_to (&d), sizeof res->commit);
  res->delta_bytes = dfi_delta_file (&d)->size;
  if (d.stock && o->net.urls->len > 0)
    {
      DfFetchRun f = { .stock = d.stock, .stock_borrowed = TRUE };
      dfi_fetch_run_init (&f, repo, o, res, cancellable);
      gboolean ok = dfi_fetch_run_stock (&f, NULL, NULL, dfd, error);
      res->bytes_downloaded = dfi_downloader_bytes (f.dl);
      dfi_fetch_run_clear (&f);
      return ok;
    }
  DfPartSource src = dfi_part_source_dir (dfd);
  return dfi_apply_delta (repo, &d, &src, o->apply, &res->apply, cancellable, error);
}

/* What a fetch and a plan start with: where the device is (*@from, how
 * found), and whether the commit is already in @repo (res->path PRESENT,
 * after the rollback check that applies to it too). */
static gboolean
begin_run (OstreeRepo *repo, const DfFetchOptions *o, DfFetchResult *res, char **from, DfFetchFrom *how, GError **error)
{
  const DfApplyOptions *a = o->apply;
  g_strlcpy (res->commit, a->commit, sizeof res->commit);
  if (!resolve_from (repo, o, from, how, error))
    return FALSE;
  if (!commit_present (repo, a->commit))
    return TRUE;
  res->path = DF_FETCH_PATH_PRESENT;
  g_autoptr (GVariant) commit = NULL;
  return ostree_repo_load_commit (repo, a->commit, &commit, NULL, error)
         && dfi_check_downgrade (repo, a->ref, a->commit, commit, a->allow_downgrade, error);
}

gboolean
dfi_fetch_plan (OstreeRepo *repo, const DfFetchOptions *o, DfFetchPlan *plan, DfFetchResult *res,
                GCancellable *cancellable, GError **error)
{
  const DfApplyOptions *a = o->apply;
  if (o->delta_dir)
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "a plan is made for a download, not a delta directory");
  g_autofree char *from = NULL;
  DfFetchFrom how = DF_FETCH_FROM_NONE;
  if (!begin_run (repo, o, res, &from, &how, error))
    return FALSE;
  if (res->path == DF_FETCH_PATH_PRESENT)
    {
      plan->size_known = TRUE;
      return TRUE;
    }
  DfFetchRun fs = { .plan = plan };
  DfFetchRun *f = &fs;
  dfi_fetch_run_init (f, repo, o, res, cancellable);
  f->from_how = how;
  gboolean ok = dfi_apply_signature_policy (a, &f->policy, error) && fetch_from_mirrors (f, from, error);
  dfi_fetch_run_clear (f);
  return ok;
}

gboolean
dfi_fetch_locked (OstreeRepo *repo, const DfFetchOptions *o, DfFetchResult *res, GCancellable *cancellable,
                  GError **error)
{
  const DfApplyOptions *a = o->apply;
  /* A run killed during its fallback pull left that pull's remote behind. */
  dfi_fetch_pull_forget_remote (repo);
  if (o->delta_dir)
    return fetch_from_dir (repo, o, res, cancellable, error);
  g_autofree char *from = NULL;
  DfFetchFrom how = DF_FETCH_FROM_NONE;
  if (!begin_run (repo, o, res, &from, &how, error))
    return FALSE;
  if (res->path == DF_FETCH_PATH_PRESENT)
    return dfi_set_ref (repo, a->ref, a->commit, cancellable, error);
  DfFetchRun fs = { 0 };
  DfFetchRun *f = &fs;
  dfi_fetch_run_init (f, repo, o, res, cancellable);
  f->from_how = how;
  gboolean ok = dfi_apply_signature_policy (a, &f->policy, error) && fetch_from_mirrors (f, from, error);
  res->bytes_downloaded = dfi_downloader_bytes (f->dl);
  if (!ok)
    forget_if_final (f, error ? *error : NULL);
  dfi_fetch_run_clear (f);
  return ok;
}
