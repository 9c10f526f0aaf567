/* Recipes for libzstd: the encoder's parameters, its memory, the encoder
 * a rebuild runs and the settings a search lists from the frame header
 * (df-recipe.h is the manual). */
#include "df-recipe-private.h"

/* ------------------------------------------------------------------------ */
/* Encoding                                                                  */

/* Sets @r's parameters on @cctx; an error names the parameter. */
static gboolean
zstd_params (const DfRecipe *r, ZSTD_CCtx *cctx, ZSTD_CCtx_params *params, GError **error)
{
  struct
  {
    ZSTD_cParameter p;
    int v;
    const char *name;
  } set[] = {
    { ZSTD_c_compressionLevel, r->level, "level" },
    { ZSTD_c_windowLog, r->zstd.window_log, "window log" },
    { ZSTD_c_checksumFlag, r->zstd.checksum, "checksum flag" },
    { ZSTD_c_contentSizeFlag, r->zstd.content_size, "content size flag" },
    { ZSTD_c_nbWorkers, r->zstd.mt ? 1 : 0, "workers" },
    { ZSTD_c_jobSize, (int)r->zstd.job_size, "job size" },
    { ZSTD_c_overlapLog, r->zstd.overlap_log, "overlap log" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (set); i++)
    {
      if (!r->zstd.mt && (set[i].p == ZSTD_c_nbWorkers || set[i].p == ZSTD_c_jobSize || set[i].p == ZSTD_c_overlapLog))
        continue;
      size_t rc = cctx ? ZSTD_CCtx_setParameter (cctx, set[i].p, set[i].v)
                       : ZSTD_CCtxParams_setParameter (params, set[i].p, set[i].v);
      if (ZSTD_isError (rc))
        return dfi_throw (error, DF_ERROR_INVALID_DELTA, "recipe: zstd refuses %s %d: %s", set[i].name, set[i].v,
                          ZSTD_getErrorName (rc));
    }
  return TRUE;
}

/* The window log the zstd encoder uses for @r. */
static guint
zstd_window_log (const DfRecipe *r)
{
  if (r->zstd.window_log)
    return r->zstd.window_log;
  return ZSTD_getCParams (r->level, r->zstd.pledged ? r->content_size : ZSTD_CONTENTSIZE_UNKNOWN, 0).windowLog;
}

/* What libzstd's multi-threaded mode holds beside its buffers and the
 * worker's context: the outer context, the job table, the pools and the
 * thread (a few KiB measured; with room). */
#define ZSTD_MT_OVERHEAD (256 * 1024)

/* libzstd's least job size (ZSTDMT_JOBSIZE_MIN, not in its public header). */
#define ZSTD_JOB_SIZE_MIN (512 * 1024)

/* The job size libzstd's multi-threaded mode cuts the input at: the
 * recipe's (raised to libzstd's least), else 2^max(20, windowLog + 2). */
static guint64
zstd_job_size (const DfRecipe *r)
{
  if (r->zstd.job_size)
    return MAX (r->zstd.job_size, ZSTD_JOB_SIZE_MIN);
  return G_GUINT64_CONSTANT (1) << MAX (20u, zstd_window_log (r) + 2);
}

gboolean
dfi_recipe_zstd_memory (const DfRecipe *r, guint64 *out, GError **error)
{
  ZSTD_CCtx_params *params = ZSTD_createCCtxParams ();
  DfRecipe st = *r;
  st.zstd.mt = FALSE;
  st.zstd.job_size = 0;
  st.zstd.overlap_log = 0;
  gboolean ok = zstd_params (&st, NULL, params, error);
  if (ok && r->zstd.pledged)
    ZSTD_CCtxParams_setParameter (params, ZSTD_c_srcSizeHint, (int)MIN (MAX (r->content_size, 1), G_MAXINT));
  /* In multi-threaded mode the worker's context takes its input from
   * the round buffer below: no streaming buffers of its own. */
  size_t est = !ok          ? 0
               : r->zstd.mt ? ZSTD_estimateCCtxSize_usingCCtxParams (params)
                            : ZSTD_estimateCStreamSize_usingCCtxParams (params);
  ZSTD_freeCCtxParams (params);
  if (!ok)
    return FALSE;
  if (ZSTD_isError (est))
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "recipe: zstd cannot estimate its memory: %s",
                      ZSTD_getErrorName (est));
  guint64 mem = est;
  if (r->zstd.mt)
    {
      /* libzstd does not estimate its multi-threaded mode. With one
       * worker it holds the worker's context (about the
       * single-threaded one), a round buffer of a job (or the window)
       * plus three jobs of input, and the output of the job in flight:
       * one output buffer, since dfi_recipe_zstd_feed() drains each
       * job before the next starts. Measured within this (test-recipe
       * /recipe/memory/zstd-mt), and enforced: the encoder's allocator
       * refuses more. */
      guint64 job = zstd_job_size (r), window = G_GUINT64_CONSTANT (1) << zstd_window_log (r);
      mem += MAX (window, job) + 3 * job + ZSTD_compressBound (job) + ZSTD_MT_OVERHEAD;
    }
  *out = mem;
  return TRUE;
}

/* Allocations carry their size in front, on malloc's alignment. */
#define ZSTD_ALLOC_HEAD 16

static _Thread_local guint64 last_peak;

static void *
zstd_alloc (void *opaque, size_t size)
{
  DfRecipeAlloc *al = opaque;
  g_mutex_lock (&al->lock);
  gboolean room = size <= al->limit && (guint64)al->live <= al->limit - size;
  if (room)
    {
      al->live += (gint64)size;
      al->peak = MAX (al->peak, al->live);
    }
  else
    al->refused = TRUE;
  g_mutex_unlock (&al->lock);
  guint8 *p = room ? malloc (size + ZSTD_ALLOC_HEAD) : NULL;
  if (p == NULL)
    {
      if (room)
        {
          g_mutex_lock (&al->lock);
          al->live -= (gint64)size;
          g_mutex_unlock (&al->lock);
        }
      return NULL;
    }
  memcpy (p, &size, sizeof size);
  return p + ZSTD_ALLOC_HEAD;
}

static void
zstd_free (void *opaque, void *address)
{
  DfRecipeAlloc *al = opaque;
  if (address == NULL)
    return;
  guint8 *p = (guint8 *)address - ZSTD_ALLOC_HEAD;
  size_t size;
  memcpy (&size, p, sizeof size);
  free (p);
  g_mutex_lock (&al->lock);
  al->live -= (gint64)size;
  g_mutex_unlock (&al->lock);
}

/* An error of libzstd's, or the allocator's refusal named as such. */
static gboolean
zstd_fail (DfRecipeEncoder *e, size_t rc, GError **error)
{
  if (e->zalloc != NULL && e->zalloc->refused)
    return dfi_throw (error, DF_ERROR_FAILED,
                      "recipe rebuild: zstd asks for more than the %" G_GUINT64_FORMAT " KiB its recipe declares",
                      e->zalloc->limit / 1024);
  return dfi_throw (error, DF_ERROR_FAILED, "recipe rebuild: zstd: %s", ZSTD_getErrorName (rc));
}

void
dfi_recipe_zstd_stop (DfRecipeEncoder *e)
{
  ZSTD_freeCCtx (e->zc);
  e->zc = NULL;
  if (e->zalloc != NULL)
    {
      last_peak = (guint64)e->zalloc->peak;
      g_mutex_clear (&e->zalloc->lock);
      g_clear_pointer (&e->zalloc, g_free);
    }
}

guint64
dfi_recipe_zstd_last_peak (void)
{
  return last_peak;
}

gboolean
dfi_recipe_zstd_start (DfRecipeEncoder *e, GError **error)
{
  const DfRecipe *r = e->r;
  guint64 limit;
  if (!dfi_recipe_zstd_memory (r, &limit, error))
    return FALSE;
  e->zalloc = g_new0 (DfRecipeAlloc, 1);
  g_mutex_init (&e->zalloc->lock);
  e->zalloc->limit = limit;
  const char *hook = g_getenv ("DF_TEST_ZSTD_ALLOC_LIMIT"); /* tests: a lower ceiling */
  if (hook != NULL)
    e->zalloc->limit = MIN (limit, g_ascii_strtoull (hook, NULL, 10));
  e->zc = ZSTD_createCCtx_advanced ((ZSTD_customMem){ zstd_alloc, zstd_free, e->zalloc });
  if (e->zc == NULL)
    return dfi_throw (error, DF_ERROR_FAILED, "recipe rebuild: out of memory for the zstd encoder");
  if (!zstd_params (r, e->zc, NULL, error))
    return FALSE;
  if (r->zstd.pledged)
    {
      size_t rc = ZSTD_CCtx_setPledgedSrcSize (e->zc, r->content_size);
      if (ZSTD_isError (rc))
        return zstd_fail (e, rc, error);
    }
  return TRUE;
}

/* Compresses @ib with @op and emits the output, until the input is taken
 * (continue) or everything is out (flush, end). */
static gboolean
zstd_stream (DfRecipeEncoder *e, ZSTD_inBuffer *ib, ZSTD_EndDirective op, GError **error)
{
  for (;;)
    {
      ZSTD_outBuffer ob = { e->out, e->out_size, 0 }; /* fresh each call, as the CLI */
      size_t rem = ZSTD_compressStream2 (e->zc, &ob, ib, op);
      if (ZSTD_isError (rem))
        return zstd_fail (e, rem, error);
      if (!dfi_recipe_emit (e, e->out, ob.pos, error))
        return FALSE;
      if (op == ZSTD_e_continue ? ib->pos == ib->size : rem == 0)
        return TRUE;
    }
}

/* In multi-threaded mode the input is handed over up to each job's end,
 * and the job is drained (a flush with no input, which cuts no new job)
 * before the next one's input: the worker's output buffer is free again
 * when the next job starts, so libzstd holds one instead of two. The
 * bytes are those of the zstd tool, which the recipe's proof checks. */
gboolean
dfi_recipe_zstd_feed (DfRecipeEncoder *e, const guint8 *in, gsize len, gboolean last, GError **error)
{
  guint64 job = e->r->zstd.mt ? zstd_job_size (e->r) : G_MAXUINT64;
  guint64 fed = e->in_total - len;
  for (;;)
    {
      gsize piece = (gsize)MIN ((guint64)len, job - fed % job);
      gboolean end = last && piece == len;
      ZSTD_inBuffer ib = { in, piece, 0 };
      if (!zstd_stream (e, &ib, end ? ZSTD_e_end : ZSTD_e_continue, error))
        return FALSE;
      if (end)
        return TRUE;
      in += piece, len -= piece, fed += piece;
      if (piece > 0 && fed % job == 0)
        {
          ZSTD_inBuffer none = { NULL, 0, 0 };
          if (!zstd_stream (e, &none, ZSTD_e_flush, error))
            return FALSE;
        }
      if (len == 0)
        return TRUE;
    }
}

/* ------------------------------------------------------------------------ */
/* Candidates                                                                */

static const int zstd_levels[]
    = { 3, 19, 9, 1, 6, 12, 15, 22, 2, 4, 5, 7, 8, 10, 11, 13, 14, 16, 17, 18, 20, 21, -1, -2, -3, -4, -5, -6, -7 };

void
dfi_recipe_zstd_list (GArray *list, DfRecipe *base, const guint8 *h, gsize n)
{
  ZSTD_frameHeader fh;
  if (ZSTD_getFrameHeader (&fh, h, n) != 0 || fh.frameType != ZSTD_frame || fh.dictID != 0)
    return;
  gboolean single_segment = (h[4] >> 5) & 1;
  gboolean has_size = fh.frameContentSize != ZSTD_CONTENTSIZE_UNKNOWN;
  if (has_size && fh.frameContentSize != base->content_size)
    return;
  base->zstd.checksum = fh.checksumFlag != 0;
  /* A frame with its size was pledged it; one without was either not
   * (a pipe) or told not to write it (--no-content-size). */
  for (guint pass = 0; pass < (has_size ? 1u : 2u); pass++)
    {
      DfRecipe r = *base;
      r.zstd.pledged = has_size || pass == 1;
      r.zstd.content_size = has_size;
      for (guint explicit_window = 0; explicit_window < 2; explicit_window++)
        for (guint i = 0; i < G_N_ELEMENTS (zstd_levels); i++)
          {
            r.level = zstd_levels[i];
            r.zstd.window_log = 0;
            if (explicit_window)
              {
                /* The window set apart from the level (the CLI's
                 * --zstd=wlog=N), for the common levels, after every
                 * level's own. */
                if (single_segment || i >= 4 || fh.windowSize == 0 || (fh.windowSize & (fh.windowSize - 1)))
                  continue;
                r.zstd.window_log = (guint8)g_bit_nth_msf (fh.windowSize, -1);
                if (r.zstd.window_log < ZSTD_WINDOWLOG_MIN || r.zstd.window_log > ZSTD_WINDOWLOG_MAX)
                  continue;
                DfRecipe own = r;
                own.zstd.window_log = 0;
                if (zstd_window_log (&own) == r.zstd.window_log)
                  continue; /* listed already */
              }
            else if (!single_segment && fh.windowSize != G_GUINT64_CONSTANT (1) << zstd_window_log (&r))
              continue;
            /* Multi-threaded first, the zstd tool's default; its
             * output differs from the single-threaded one even within one
             * job (the last input is never compressed in place). */
            r.zstd.mt = TRUE;
            dfi_recipe_candidate_add (list, &r);
            r.zstd.mt = FALSE;
            dfi_recipe_candidate_add (list, &r);
          }
    }
}
