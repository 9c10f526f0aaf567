/* Delta generation: walk both commits, pair new content with old, encode
 * objects on a thread pool, pack entries into parts in a fixed order,
 * compress parts on a second pool, write the superblock and index last.
 *
 * The phases live in their own files (df-gen-walk.c, df-gen-encode.c,
 * df-gen-pack.c, df-gen-publish.c), the options in df-generate-options.c;
 * this one runs the phases in turn: df_generate(), at the end, reads as their sequence.
 *
 * Determinism: the order of entries and the part boundaries depend only on
 * the two trees and the options; threads only fill in slots that the packer
 * consumes in order, so the output is the same whatever the timing. */
#include <fcntl.h>

#include "df-generate-private.h"
#include "df-gen-current.h"
#include "df-gen-publish.h"
#include "df-gen-walk.h"
#include "df-generator.h"
#include "df-pairing.h"
#include "df-stock-superblock.h"

/* ---------------------------------------------------------------------- */
/* The generator                                                            */

void
dfi_gen_fail (DfGenerator *g, GError *error)
{
  g_mutex_lock (&g->lock);
  if (g->error == NULL)
    g->error = error;
  else
    g_error_free (error);
  g_cond_broadcast (&g->cond);
  g_mutex_unlock (&g->lock);
  g_cancellable_cancel (g->cancellable);
}

gboolean
dfi_gen_failed (DfGenerator *g)
{
  return g->error != NULL;
}

void
dfi_gen_report (DfGenerator *g, gboolean force)
{
  if (g->opts->progress == NULL)
    return;
  gint64 now = g_get_monotonic_time ();
  if (!force && now - g->last_progress < G_USEC_PER_SEC / 10)
    return;
  g->last_progress = now;
  g_mutex_lock (&g->lock);
  DfProgress snap = g->progress;
  g_mutex_unlock (&g->lock);
  g->opts->progress (&snap, g->opts->progress_data);
}

/* ---------------------------------------------------------------------- */
/* The phases                                                               */

static gboolean
resolve_rev (OstreeRepo *repo, const char *rev, char **out, GError **error)
{
  if (!ostree_repo_resolve_rev (repo, rev, FALSE, out, error))
    {
      g_clear_error (error);
      return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "cannot resolve '%s' in the repository", rev);
    }
  return TRUE;
}

static void
rebuild_result_free (gpointer p)
{
  dfi_gen_rebuild_result_clear (p);
  g_free (p);
}

static gboolean
content_info (OstreeRepo *repo, const char *csum, guint64 *size, gboolean *is_symlink, GCancellable *c, GError **error)
{
  g_autoptr (GFileInfo) info = NULL;
  if (!ostree_repo_load_file (repo, csum, NULL, &info, NULL, c, error))
    return FALSE;
  *is_symlink = g_file_info_get_file_type (info) == G_FILE_TYPE_SYMBOLIC_LINK;
  *size = *is_symlink ? 0 : (guint64)g_file_info_get_size (info);
  return TRUE;
}

/* What every delta to one to-commit shares, worked out once for all the
 * deltas of a df_generate_many() call: the commit's walk, its object, the
 * size of each of its content objects, and what the analyses of its
 * compressed objects found. */
typedef struct
{
  gboolean walked;
  DfGenWalk walk;
  GVariant *commitv;
  GHashTable *sizes; /* checksum (owned by walk) -> guint64[2] { size, is symlink } */
  DfGenRebuildCache *rebuild_cache;
} ToCommit;

static void
to_commit_clear (ToCommit *tc)
{
  g_clear_pointer (&tc->rebuild_cache, dfi_gen_rebuild_cache_free);
  dfi_gen_walk_clear (&tc->walk);
  g_clear_pointer (&tc->commitv, g_variant_unref);
  g_clear_pointer (&tc->sizes, g_hash_table_unref);
  tc->walked = FALSE;
}

/* One delta: the generator the workers share, and what each phase hands
 * on to the next. */
typedef struct
{
  DfGenerator g;
  GCancellable *cancellable; /* the caller's; may be NULL */
  gulong chained;            /* its link to g.cancellable */
  const char *from, *to;     /* full checksums; from NULL: from scratch */
  ToCommit *tc;              /* the to-commit, possibly walked by an earlier delta */
  DfGenWalk wfrom;
  GPtrArray *items;           /* DfGenItem*: new content objects, in walk order */
  GThreadPool *compress_pool; /* the encode pool is g.encode_pool */
} Run;

static gboolean
check_options (const DfGenerateOptions *opts, GError **error)
{
  if (opts->to == NULL)
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "no to-revision given");
  if (opts->level < 1 || opts->level > 19)
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "level %d is outside 1..19", opts->level);
  if (opts->part_size < DF_PART_SIZE_MIN || opts->part_size > DF_PART_SIZE_MAX)
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT,
                      "part size %" G_GUINT64_FORMAT " is outside %" G_GUINT64_FORMAT "..%" G_GUINT64_FORMAT,
                      opts->part_size, (guint64)DF_PART_SIZE_MIN, (guint64)DF_PART_SIZE_MAX);
  return TRUE;
}

static void
run_init (Run *r, OstreeRepo *repo, const DfGenerateOptions *opts, const char *from, const char *to, ToCommit *tc,
          GCancellable *cancellable)
{
  r->tc = tc;
  DfGenerator *g = &r->g;
  g->repo = repo;
  g->opts = opts;
  g->jobs = opts->jobs ? opts->jobs : dfi_ncpus ();
  g->cancellable = g_cancellable_new ();
  r->cancellable = cancellable;
  r->chained = dfi_cancellable_forward (cancellable, g->cancellable);
  g_mutex_init (&g->lock);
  g_cond_init (&g->cond);
  g->parts = g_array_new (FALSE, TRUE, sizeof (DfPart));
  g->out_dfd = -1;
  r->from = from;
  r->to = to;
  r->items = g_ptr_array_new_with_free_func (g_free);
}

/* Releases what @r holds; after an error, stops the workers first. */
static void
run_clear (Run *r)
{
  DfGenerator *g = &r->g;
  if (g->encode_pool)
    {
      g_cancellable_cancel (g->cancellable);
      g_mutex_lock (&g->lock);
      g_cond_broadcast (&g->cond);
      g_mutex_unlock (&g->lock);
      g_thread_pool_free (g->encode_pool, TRUE, TRUE);
    }
  if (r->compress_pool)
    g_thread_pool_free (r->compress_pool, FALSE, TRUE);
  for (guint i = 0; i < r->items->len; i++)
    {
      DfGenItem *it = r->items->pdata[i];
      g_queue_clear_full (&it->out, (GDestroyNotify)dfi_gen_encoded_free);
    }
  dfi_gen_output_close (g); /* before the parts: it names their files */
  if (g->parts)
    {
      for (guint i = 0; i < g->parts->len; i++)
        dfi_part_clear (&g_array_index (g->parts, DfPart, i));
      g_array_free (g->parts, TRUE);
    }
  dfi_gen_walk_clear (&r->wfrom);
  g_clear_pointer (&g->rebuild, dfi_gen_rebuild_free);
  g_clear_pointer (&g->rebuilds, g_hash_table_unref);
  if (g->error)
    g_error_free (g->error);
  if (r->chained)
    g_cancellable_disconnect (r->cancellable, r->chained);
  g_object_unref (g->cancellable);
  g_mutex_clear (&g->lock);
  g_cond_clear (&g->cond);
  g_ptr_array_unref (r->items);
}

/* Walk: both commits (the to-commit once for all its deltas). */
static gboolean
phase_walk (Run *r, GError **error)
{
  ToCommit *tc = r->tc;
  if (!tc->walked)
    {
      if (!dfi_gen_walk_commit (r->g.repo, r->to, &tc->commitv, &tc->walk, error))
        return FALSE;
      tc->sizes = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);
      tc->walked = TRUE;
    }
  return r->from == NULL || dfi_gen_walk_commit (r->g.repo, r->from, NULL, &r->wfrom, error);
}

/* content_info() of a content object of the to-commit, looked up once. */
static gboolean
to_content_info (Run *r, char *csum, guint64 *size, gboolean *is_symlink, GError **error)
{
  guint64 *known = g_hash_table_lookup (r->tc->sizes, csum);
  if (known == NULL)
    {
      guint64 sz;
      gboolean link;
      if (!content_info (r->g.repo, csum, &sz, &link, r->cancellable, error))
        return FALSE;
      known = g_new (guint64, 2);
      known[0] = sz;
      known[1] = link;
      g_hash_table_insert (r->tc->sizes, csum, known);
    }
  *size = known[0];
  *is_symlink = known[1] != 0;
  return TRUE;
}

/* Pairs @it (at @path) with the first of @pairing's candidates worth
 * encoding it against, if any. @src_info: the sizes of the candidates
 * looked at so far (keys belong to @pairing). */
static gboolean
choose_source (Run *r, DfPairing *pairing, GHashTable *src_info, DfGenItem *it, const char *path, GError **error)
{
  g_autofree const char **cands = dfi_pairing_candidates (pairing, path);
  for (guint k = 0; cands[k]; k++)
    {
      guint64 *info = g_hash_table_lookup (src_info, cands[k]);
      if (info == NULL)
        {
          gboolean link;
          guint64 sz;
          if (!content_info (r->g.repo, cands[k], &sz, &link, r->cancellable, error))
            return FALSE;
          info = g_new (guint64, 1);
          *info = link ? 0 : sz;
          g_hash_table_insert (src_info, (gpointer)cands[k], info);
        }
      /* Pairs far apart in size rarely share enough to pay for a
       * patch; an empty or symlink source has nothing to offer. */
      if (*info == 0 || *info * 4 < it->size || it->size * 4 < *info)
        continue;
      memcpy (it->source, cands[k], 65);
      it->source_size = *info;
      break;
    }
  return TRUE;
}

/* Plan and pair: the content items are the new objects in walk order,
 * first path wins, each paired with an old object when there is one. */
static gboolean
phase_plan (Run *r, GError **error)
{
  DfGenerator *g = &r->g;
  g_autoptr (DfPairing) pairing = dfi_pairing_new ();
  for (guint i = 0; r->wfrom.files && i < r->wfrom.files->len; i++)
    {
      DfGenFileRef *f = r->wfrom.files->pdata[i];
      dfi_pairing_add_old (pairing, f->path, f->csum);
    }
  g_autoptr (GHashTable) planned = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GHashTable) src_info = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);
  for (guint i = 0; i < r->tc->walk.files->len; i++)
    {
      DfGenFileRef *f = r->tc->walk.files->pdata[i];
      g_autofree char *key = g_strdup_printf ("%s.%d", f->csum, OSTREE_OBJECT_TYPE_FILE);
      if ((r->wfrom.seen && g_hash_table_contains (r->wfrom.seen, key)) || g_hash_table_contains (planned, f->csum))
        continue;
      g_hash_table_add (planned, f->csum);
      DfGenItem *it = g_new0 (DfGenItem, 1);
      it->gen = g;
      it->index = r->items->len;
      memcpy (it->csum, f->csum, 65);
      g_queue_init (&it->out);
      g_ptr_array_add (r->items, it);
      if (!to_content_info (r, f->csum, &it->size, &it->is_symlink, error))
        return FALSE;
      g->progress.bytes_total += it->size;
      if (it->is_symlink || it->size == 0 || !r->from)
        continue;
      if (!choose_source (r, pairing, src_info, it, f->path, error))
        return FALSE;
    }
  g->progress.objects_total = r->items->len;
  return TRUE;
}

/* Compressed objects rebuilt on the device read objects of both trees. */
static void
plan_rebuild_sources (Run *r)
{
  DfGenerator *g = &r->g;
  if (g->opts->variants == DF_VARIANTS_PLAIN)
    return;
  if (r->tc->rebuild_cache == NULL)
    r->tc->rebuild_cache = dfi_gen_rebuild_cache_new ();
  g->rebuild = dfi_gen_rebuild_new (g->repo, r->tc->rebuild_cache);
  g->rebuilds = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, rebuild_result_free);
  g_autoptr (GHashTable) added = g_hash_table_new (g_str_hash, g_str_equal);
  DfGenWalk *walks[] = { &r->tc->walk, &r->wfrom };
  for (guint w = 0; w < G_N_ELEMENTS (walks); w++)
    for (guint i = 0; walks[w]->files && i < walks[w]->files->len; i++)
      {
        DfGenFileRef *f = walks[w]->files->pdata[i];
        if (g_hash_table_add (added, f->csum))
          dfi_gen_rebuild_add_source (g->rebuild, f->csum);
      }
}

/* Metadata parts first: apply needs them to establish trust. An object
 * that cannot be loaded fails the generator, and the parts packed so far
 * still go to the compress pool, which frees them. */
static void
pack_metadata (Run *r, DfGenPacker *pk)
{
  DfGenerator *g = &r->g;
  for (guint i = 0; i < r->tc->walk.metadata->len && !dfi_gen_failed (g); i++)
    {
      DfGenObjKey *k = r->tc->walk.metadata->pdata[i];
      g_autofree char *key = g_strdup_printf ("%s.%d", k->csum, k->objtype);
      if (r->wfrom.seen && g_hash_table_contains (r->wfrom.seen, key))
        continue;
      g_autoptr (GVariant) v = NULL;
      GError *local = NULL;
      if (!ostree_repo_load_variant (g->repo, k->objtype, k->csum, &v, &local))
        {
          dfi_gen_fail (g, local);
          break;
        }
      DfEntry e = { .objtype = k->objtype };
      ostree_checksum_inplace_to_bytes (k->csum, e.checksum);
      e.object_size = e.length = e.data_size = g_variant_get_size (v);
      dfi_gen_packer_add (pk, DF_PART_KIND_METADATA, &e, g_variant_get_data (v), e.data_size, NULL, FALSE);
    }
  dfi_gen_packer_flush (pk);
}

/* Packs @it's entries as its worker queues them, until it is done or a
 * worker has failed. */
static void
pack_item (DfGenerator *g, DfGenPacker *pk, DfGenItem *it)
{
  for (;;)
    {
      g_mutex_lock (&g->lock);
      while (g_queue_is_empty (&it->out) && !it->done && !dfi_gen_failed (g))
        g_cond_wait (&g->cond, &g->lock);
      DfGenEncoded *e = g_queue_pop_head (&it->out);
      gboolean finished = e == NULL;
      if (e)
        {
          it->out_bytes -= dfi_gen_encoded_size (e);
          g_cond_broadcast (&g->cond);
        }
      g_mutex_unlock (&g->lock);
      if (finished || dfi_gen_failed (g))
        {
          if (e)
            dfi_gen_encoded_free (e);
          break;
        }
      dfi_gen_packer_add (pk, e->part_kind, &e->entry, e->sec[DF_SECTION_RAW]->data, e->sec[DF_SECTION_RAW]->len,
                          e->sec, e->incompressible);
      g->progress.bytes_done += e->entry.length;
      dfi_gen_encoded_free (e);
      dfi_gen_report (g, FALSE);
    }
}

/* Content: keep a bounded window of items in the encode pool and pack
 * their entries strictly in item order. */
static void
pack_content (Run *r, DfGenPacker *pk)
{
  DfGenerator *g = &r->g;
  guint window = g->jobs * DF_GENERATE_QUEUE_PER_JOB, submitted = 0;
  for (guint i = 0; i < r->items->len; i++)
    {
      for (; submitted < r->items->len && submitted < i + window; submitted++)
        g_thread_pool_push (g->encode_pool, r->items->pdata[submitted], NULL);
      pack_item (g, pk, r->items->pdata[i]);
      if (dfi_gen_failed (g))
        break;
      g->progress.objects_done++;
    }
  dfi_gen_packer_flush (pk);
}

/* Encode and pack: objects are encoded on one pool, their entries packed
 * into parts here, and the parts compressed and written on another. */
static gboolean
phase_encode_pack (Run *r, GError **error)
{
  DfGenerator *g = &r->g;
  r->compress_pool = g_thread_pool_new (dfi_gen_compress_worker, NULL, g->jobs, FALSE, NULL);
  g->encode_pool = g_thread_pool_new (dfi_gen_encode_worker, NULL, g->jobs, FALSE, NULL);
  g_thread_pool_set_sort_function (g->encode_pool, dfi_gen_encode_task_order, NULL);
  DfGenPacker pk = { .gen = g, .pool = r->compress_pool };

  g->progress.phase = DF_PHASE_ENCODE;
  dfi_gen_report (g, TRUE);
  pack_metadata (r, &pk);
  if (!dfi_gen_failed (g))
    pack_content (r, &pk);
  g_thread_pool_free (g->encode_pool, FALSE, TRUE);
  g->encode_pool = NULL;
  g_thread_pool_free (r->compress_pool, FALSE, TRUE);
  r->compress_pool = NULL;
  if (dfi_gen_failed (g))
    {
      g_propagate_error (error, g_steal_pointer (&g->error));
      return FALSE;
    }
  return !g_cancellable_set_error_if_cancelled (r->cancellable, error);
}

/* Superblock, signature and publication: see dfi_gen_publish(). */
static gboolean
phase_publish (Run *r, GPtrArray *signers, char **out_dir_path, GError **error)
{
  r->g.progress.phase = DF_PHASE_COMMIT;
  dfi_gen_report (&r->g, TRUE);
  return dfi_gen_publish (&r->g, r->from, r->to, r->tc->commitv, signers, out_dir_path, r->cancellable, error);
}

/* One delta from @from (NULL: from scratch) to @to, of @opts's format. */
static gboolean
generate_one (OstreeRepo *repo, const DfGenerateOptions *opts, const char *from, const char *to, ToCommit *tc,
              GPtrArray *signers, char **out_dir_path, guint *reused, GCancellable *cancellable, GError **error)
{
  if (opts->format == DF_DELTA_FORMAT_OSTREE)
    return dfi_generate_stock (repo, opts, from, to, signers, out_dir_path, cancellable, error);
  Run r = { 0 };
  run_init (&r, repo, opts, from, to, tc, cancellable);
  r.g.progress.phase = DF_PHASE_PLAN;
  dfi_gen_report (&r.g, TRUE);
  gboolean ok = phase_walk (&r, error) && phase_plan (&r, error);
  if (ok)
    plan_rebuild_sources (&r);
  ok = ok && dfi_gen_output_open (&r.g, from, to, error) && phase_encode_pack (&r, error)
       && phase_publish (&r, signers, out_dir_path, error);
  if (reused && r.g.rebuild)
    *reused = dfi_gen_rebuild_reused (r.g.rebuild);
  run_clear (&r);
  return ok;
}

/* ---------------------------------------------------------------------- */
/* Many deltas to one commit                                               */

/* Adds @csum to @froms (a from-commit of the run) unless it is there. */
static void
add_from (GPtrArray *froms, const char *csum)
{
  for (guint i = 0; i < froms->len; i++)
    if (g_strcmp0 (froms->pdata[i], csum) == 0)
      return;
  g_ptr_array_add (froms, g_strdup (csum));
}

/* The from-commits of @opts, resolved, each once, in order: the revisions
 * given, then the @from_last commits before @to (its parent first; fewer
 * when the history is shorter or its older commits are not in @repo),
 * then NULL for from scratch. */
static GPtrArray *
list_froms (OstreeRepo *repo, const DfGenerateOptions *opts, const char *to, GError **error)
{
  g_autoptr (GPtrArray) froms = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < opts->froms->len; i++)
    {
      g_autofree char *c = NULL;
      if (!resolve_rev (repo, opts->froms->pdata[i], &c, error))
        return NULL;
      if (strcmp (c, to) == 0)
        {
          dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "from-revision '%s' is the to-commit itself",
                     (const char *)opts->froms->pdata[i]);
          return NULL;
        }
      add_from (froms, c);
    }
  g_autofree char *cur = g_strdup (to);
  for (guint n = 0; n < opts->from_last; n++)
    {
      g_autoptr (GVariant) commit = NULL;
      if (!ostree_repo_load_variant_if_exists (repo, OSTREE_OBJECT_TYPE_COMMIT, cur, &commit, error))
        return NULL;
      g_autofree char *parent = commit ? ostree_commit_get_parent (commit) : NULL;
      g_autoptr (GVariant) pv = NULL;
      if (parent == NULL || !ostree_repo_load_variant_if_exists (repo, OSTREE_OBJECT_TYPE_COMMIT, parent, &pv, error))
        break;
      if (pv == NULL)
        break; /* pruned or never pulled: the history ends here */
      add_from (froms, parent);
      g_free (cur);
      cur = g_steal_pointer (&parent);
    }
  if (opts->empty)
    g_ptr_array_add (froms, NULL);
  return g_steal_pointer (&froms);
}

/* What df_generate() and df_generate_many() check and work out before any
 * delta: the options, the signers, the to-commit and the from-commits. */
static gboolean
prepare (OstreeRepo *repo, const DfGenerateOptions *opts, GPtrArray **signers, char **to, GPtrArray **froms,
         GError **error)
{
  if (!check_options (opts, error))
    return FALSE;
  if (opts->froms->len == 0 && opts->from_last == 0 && !opts->empty)
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "give a from-revision, a number of previous commits or empty");
  if (opts->out_root && (opts->out_dir || opts->format == DF_DELTA_FORMAT_OSTREE))
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT,
                      "an output root takes native deltas, and no output directory beside it");
  if ((*signers = dfi_signers_load (opts->sign_keys, error)) == NULL || !resolve_rev (repo, opts->to, to, error)
      || (*froms = list_froms (repo, opts, *to, error)) == NULL)
    return FALSE;
  if (opts->out_dir && (*froms)->len != 1)
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "an output directory holds one delta, and %u were asked for",
                      (*froms)->len);
  return opts->format != DF_DELTA_FORMAT_OSTREE || opts->out_dir != NULL
         || dfi_summary_check_keys (repo, opts, *signers, error);
}

gboolean
df_generate (OstreeRepo *repo, const DfGenerateOptions *opts, char **out_dir_path, GCancellable *cancellable,
             GError **error)
{
  if (opts->froms->len + (opts->empty ? 1 : 0) != 1 || opts->from_last > 0)
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "give exactly one of a from-revision or empty");
  g_autoptr (GPtrArray) signers = NULL, froms = NULL;
  g_autofree char *to = NULL;
  if (!prepare (repo, opts, &signers, &to, &froms, error))
    return FALSE;
  ToCommit tc = { 0 };
  gboolean ok = generate_one (repo, opts, froms->pdata[0], to, &tc, signers, out_dir_path, NULL, cancellable, error);
  to_commit_clear (&tc);
  return ok;
}

gboolean
df_generate_many (OstreeRepo *repo, const DfGenerateOptions *opts, GPtrArray **out_deltas, GCancellable *cancellable,
                  GError **error)
{
  g_autoptr (GPtrArray) signers = NULL, froms = NULL;
  g_autofree char *to = NULL;
  if (!prepare (repo, opts, &signers, &to, &froms, error))
    return FALSE;
  g_autoptr (GPtrArray) deltas = g_ptr_array_new_with_free_func ((GDestroyNotify)df_generated_delta_free);
  g_autofree char *repo_path = g_file_get_path (ostree_repo_get_path (repo));
  ToCommit tc = { 0 };
  gboolean ok = TRUE;
  for (guint i = 0; ok && i < froms->len; i++)
    {
      const char *from = froms->pdata[i];
      DfGeneratedDelta *d = g_new0 (DfGeneratedDelta, 1);
      d->from = g_strdup (from);
      d->to = g_strdup (to);
      g_ptr_array_add (deltas, d);
      gint64 start = g_get_monotonic_time ();
      /* With an output root, this delta's own output directory in it. */
      DfGenerateOptions each = *opts;
      g_autofree char *id = from ? g_strdup_printf ("%s-%s", from, to) : g_strdup (to);
      g_autofree char *own = opts->out_root ? g_build_filename (opts->out_root, id, NULL) : NULL;
      if (own)
        each.out_dir = own;
      if (!opts->force && (opts->out_dir == NULL || own)
          && dfi_gen_delta_current (repo, &each, from, to, signers, &d->note, cancellable))
        {
          d->skipped = TRUE;
          g_autofree char *rel = opts->format == DF_DELTA_FORMAT_OSTREE ? dfi_stock_delta_relpath (from, to)
                                                                        : dfi_native_delta_relpath (from, to);
          d->dir = own ? g_strdup (own) : g_build_filename (repo_path, rel, NULL);
        }
      else if (own && !dfi_rm_rf_at (AT_FDCWD, own, error)) /* its own output, not current */
        ok = FALSE;
      else
        ok = generate_one (repo, &each, from, to, &tc, signers, &d->dir, &d->analyses_reused, cancellable, error);
      if (g_cancellable_set_error_if_cancelled (cancellable, ok ? error : NULL))
        ok = FALSE;
      d->seconds = (g_get_monotonic_time () - start) / 1e6;
      if (ok)
        d->size = dfi_gen_dir_bytes (AT_FDCWD, d->dir, NULL);
    }
  to_commit_clear (&tc);
  if (ok && out_deltas)
    *out_deltas = g_steal_pointer (&deltas);
  return ok;
}
