/* The stock path of a fetch: a stock delta (what `ostree static-delta
 * generate` writes) whose parts and fallback objects come through the
 * downloader into the part store, while the stock apply runs in a thread
 * and takes each as soon as it is verified. */
#include "df-apply-policy.h"
#include "df-fetch-run.h"

/* The stock apply's threads wait here for each part and fallback object. */
static gboolean
stock_wait_part (guint i, gpointer data, GError **error)
{
  DfFetchRun *f = data;
  return dfi_part_store_wait (&f->store, &f->store.parts[i], error);
}

static gboolean
stock_fallback (guint i, int *out_fd, guint64 *out_size, gpointer data, GError **error)
{
  DfFetchRun *f = data;
  guint k = f->fallback_part ? f->fallback_part[i] : G_MAXUINT;
  if (k == G_MAXUINT)
    return dfi_throw (error, DF_ERROR_MISSING_BASE, "fallback object %u was not asked for", i);
  DfStorePart *p = &f->store.parts[k];
  if (!dfi_part_store_wait (&f->store, p, error))
    return FALSE;
  *out_fd = dfi_open_regular (f->store.dfd, p->name, p->name, NULL, error);
  if (*out_fd < 0)
    return FALSE;
  *out_size = p->size;
  return TRUE;
}

static gboolean
stock_consumer_failed (gpointer data)
{
  DfFetchRun *f = data;
  return g_atomic_int_get (&f->stock_failed);
}

typedef struct
{
  DfFetchRun *f;
  int parts_dfd;
  gboolean ok;
  GError *error;
} StockApply;

static gpointer
stock_apply_thread (gpointer data)
{
  StockApply *sa = data;
  DfFetchRun *f = sa->f;
  gboolean store = sa->parts_dfd == f->store.dfd;
  DfPartSource src = { .dfd = sa->parts_dfd,
                       .wait = store ? stock_wait_part : NULL,
                       .fallback = stock_fallback,
                       .data = f,
                       .private_parts = store };
  sa->ok = dfi_apply_stock (f->repo, f->stock, &src, f->o->apply, &f->res->apply, f->cancellable, &sa->error);
  if (!sa->ok)
    g_atomic_int_set (&f->stock_failed, 1);
  return NULL;
}

/* The loose-object path of fallback @fb in an archive repository. */
static char *
fallback_rel (const DfStockFallback *fb)
{
  char hex[65];
  dfi_hex (fb->checksum, hex);
  const char *ext = fb->objtype == OSTREE_OBJECT_TYPE_FILE ? "filez" : ostree_object_type_to_string (fb->objtype);
  return g_strdup_printf ("objects/%.2s/%s.%s", hex, hex + 2, ext);
}

/* The delta's parts, in the order the apply takes them: metadata parts,
 * then content parts in its order. Parts that came with the superblock
 * (inline) or whose objects are all present (resume) are not needed. */
static gboolean
plan_delta_parts (DfFetchRun *f, guint n_delta_parts, guint8 *wanted, GError **error)
{
  DfStockSuperblock *sb = f->stock;
  g_autofree guint *order = g_new (guint, MAX (n_delta_parts, 1));
  guint n_order = 0;
  for (int pass = 0; pass < 2; pass++)
    for (guint i = 0; i < n_delta_parts; i++)
      if (dfi_stock_part_has_metadata (&sb->parts[i]) == (pass == 0))
        order[n_order++] = i;
  guint n_meta_parts = 0;
  while (n_meta_parts < n_order && dfi_stock_part_has_metadata (&sb->parts[order[n_meta_parts]]))
    n_meta_parts++;
  dfi_stock_content_order (sb, order + n_meta_parts, n_order - n_meta_parts,
                           dfi_stock_decoders (sb, f->o->apply->memory, f->o->apply->jobs));
  for (guint k = 0; k < n_order && dfi_downloader_get_error (f->dl) == NULL; k++)
    {
      guint i = order[k];
      const DfStockPart *sp = &sb->parts[i];
      gboolean present = FALSE;
      if (sp->inline_data == NULL && !dfi_stock_part_present (f->repo, sp, f->cancellable, &present, error))
        return FALSE;
      gboolean needed = sp->inline_data == NULL && !present;
      DfStorePart *p = &f->store.parts[i];
      dfi_part_init (&f->store, p, i, sp->inline_data ? 0 : sp->size, sp->sha256, sp->usize);
      if (wanted)
        wanted[i] = needed;
      else if (!dfi_downloader_add_part (f->dl, p, needed, error))
        return FALSE;
    }
  return TRUE;
}

/* The fallback objects in @missing, after the delta's parts. */
static gboolean
plan_fallbacks (DfFetchRun *f, guint n_delta_parts, GArray *missing, guint8 *wanted, GError **error)
{
  DfStockSuperblock *sb = f->stock;
  for (guint k = 0; k < missing->len && dfi_downloader_get_error (f->dl) == NULL; k++)
    {
      guint i = g_array_index (missing, guint, k);
      const DfStockFallback *fb = &sb->fallbacks[i];
      DfStorePart *p = &f->store.parts[n_delta_parts + k];
      char hex[65];
      dfi_hex (fb->checksum, hex);
      p->fallback = fb;
      p->rel = fallback_rel (fb);
      g_snprintf (p->name, sizeof p->name, "%s.%s", hex, fb->objtype == OSTREE_OBJECT_TYPE_FILE ? "filez" : "meta");
      f->fallback_part[i] = n_delta_parts + k;
      static const guint8 no_sha[DF_SHA256_LEN];
      dfi_part_init (&f->store, p, n_delta_parts + k, fb->size, no_sha, fb->usize);
      if (wanted)
        wanted[n_delta_parts + k] = TRUE;
      else if (!dfi_downloader_add_part (f->dl, p, TRUE, error))
        return FALSE;
    }
  return TRUE;
}

/* Runs the download with the apply in its own thread, each part read as
 * soon as it is verified; this thread keeps moving bytes. */
static gboolean
download_and_apply (DfFetchRun *f, int local_dfd, GError **error)
{
  StockApply sa = { .f = f, .parts_dfd = local_dfd >= 0 ? local_dfd : f->store.dfd };
  gboolean stopped = dfi_downloader_get_error (f->dl) != NULL;
  GThread *applier = stopped ? NULL : g_thread_new ("df-stock-apply", stock_apply_thread, &sa);
  if (!stopped)
    dfi_downloader_run (f->dl);
  dfi_part_store_stop (&f->store);
  if (applier && dfi_downloader_get_error (f->dl) == NULL)
    dfi_downloader_set_phase (f->dl, DF_FETCH_PHASE_APPLY);
  if (applier)
    g_thread_join (applier);
  /* The apply's own error says most when it failed first. */
  g_autoptr (GError) fatal = dfi_downloader_steal_error (f->dl);
  if (applier && !sa.ok && (fatal == NULL || dfi_downloader_consumer_failed (f->dl)))
    {
      g_propagate_error (error, sa.error);
      return FALSE;
    }
  g_clear_error (&sa.error);
  if (fatal)
    {
      g_propagate_error (error, g_steal_pointer (&fatal));
      return FALSE;
    }
  return TRUE;
}

/* A plan of the stock delta @f->stock: the checks its apply makes before
 * any part, then every part the repository lacks and the fallback objects
 * in @missing, less what the store holds. */
static gboolean
plan_stock (DfFetchRun *f, const char *sb_hex, GArray *missing, GError **error)
{
  DfStockSuperblock *sb = f->stock;
  const DfApplyOptions *aopts = f->o->apply;
  g_autoptr (GBytes) commitmeta = sb->commitmeta ? g_variant_get_data_as_bytes (sb->commitmeta) : NULL;
  if (!dfi_apply_preflight (f->repo, aopts, sb->to_hex, sb->commit, commitmeta, sb->has_from ? sb->from_hex : NULL,
                            f->cancellable, error)
      || !dfi_stock_check_memory (sb, aopts->memory, error))
    return FALSE;
  f->plan->signature_verified = sb->file.verified;
  dfi_part_store_open_existing (&f->store, sb_hex);
  dfi_part_store_alloc (&f->store, sb->n_parts + missing->len);
  f->fallback_part = g_new (guint, MAX (sb->n_fallbacks, 1));
  f->res->delta_bytes = sb->file.size;
  g_autofree guint8 *wanted = g_new0 (guint8, f->store.n_parts + 1);
  return plan_delta_parts (f, sb->n_parts, wanted, error) && plan_fallbacks (f, sb->n_parts, missing, wanted, error)
         && dfi_fetch_run_plan_parts (f, wanted, error);
}

gboolean
dfi_fetch_run_stock (DfFetchRun *f, GBytes *sb_bytes, const char *relpath, int local_dfd, GError **error)
{
  const DfApplyOptions *aopts = f->o->apply;
  if (f->stock == NULL)
    f->stock = dfi_stock_superblock_parse_full (sb_bytes, &f->policy, dfi_apply_usable_memory (aopts), error);
  if (f->stock == NULL)
    return FALSE;
  DfStockSuperblock *sb = f->stock;
  if (aopts->commit && strcmp (sb->to_hex, aopts->commit) != 0)
    return dfi_throw (error, DF_ERROR_UNTRUSTED, "the delta leads to %s, not to the trusted commit %s", sb->to_hex,
                      aopts->commit);
  guint64 published = sb->file.size;
  for (guint i = 0; i < sb->n_parts; i++)
    published += sb->parts[i].inline_data ? 0 : sb->parts[i].size;
  if (!dfi_fetch_run_check_expected (f, published, error))
    return FALSE;
  g_autoptr (GArray) missing = dfi_stock_missing_fallbacks (f->repo, sb, NULL, f->cancellable, error);
  if (missing == NULL)
    return FALSE;
  char sb_hex[65];
  dfi_hex (sb->file.sha256, sb_hex);
  if (f->plan)
    return plan_stock (f, sb_hex, missing, error);
  if (!dfi_part_store_open (&f->store, sb_hex, error))
    return FALSE;
  guint n_delta_parts = local_dfd >= 0 ? 0 : sb->n_parts;
  DfPartConsumer consumer = { .failed = stock_consumer_failed, .data = f };
  dfi_downloader_attach (f->dl, &f->store, local_dfd < 0 ? relpath : "", &consumer);
  dfi_part_store_alloc (&f->store, n_delta_parts + missing->len);
  f->fallback_part = g_new (guint, MAX (sb->n_fallbacks, 1));
  for (guint i = 0; i < sb->n_fallbacks; i++)
    f->fallback_part[i] = G_MAXUINT;
  f->res->parts_total = f->store.n_parts;
  f->res->delta_bytes = sb->file.size;
  if (!plan_delta_parts (f, n_delta_parts, NULL, error) || !plan_fallbacks (f, n_delta_parts, missing, NULL, error))
    return FALSE;
  if (dfi_downloader_get_error (f->dl) == NULL && !dfi_fetch_run_check_space (f, error))
    return FALSE;
  dfi_downloader_start (f->dl);
  if (!download_and_apply (f, local_dfd, error))
    return FALSE;
  dfi_downloader_progress (f->dl, TRUE);
  dfi_part_store_remove (&f->store);
  return TRUE;
}
