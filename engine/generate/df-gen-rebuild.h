/* The generator's side of rebuilt objects (format 3): finds compressed
 * objects (by content: df-detect.h), a way to rebuild each compressed
 * frame bit-exactly from its decompressed content (a recipe, df-recipe.h,
 * or deflate reconstruction data, df-deflate.h), and the objects of the
 * trees that the content holds again (an initrd's cpio entries), and writes
 * the rebuild program (df-rebuild.h). Every program is run here, with the
 * device's code, before it is used: its output must equal the object.
 *
 * Thread-safe: encode workers analyse objects in parallel. Memory (build
 * server): per analysis the object and its largest frame's content in
 * unnamed memory files, and what dfi_deflate_analyze() holds (about twice
 * the content for a gzip stream). */
#pragma once

#include "df-common.h"

typedef struct _DfGenRebuild DfGenRebuild;

/* What the analyses of one to-commit's objects find that depends only on
 * the objects themselves, kept for every delta to that commit (the deltas
 * of one df_generate_many() call; a fleet's new initrd is new against each
 * earlier release, and its search would otherwise run once per delta):
 * each object's detection, each frame's recipe search or deflate analysis,
 * each source's content hash, and the programs already run and found to
 * rebuild their object. Thread-safe. Memory: a detection per analysed
 * object (its segments and cpio entries) and a reconstruction per gzip
 * frame without a recipe (about 1 % of its content). */
typedef struct _DfGenRebuildCache DfGenRebuildCache;

DfGenRebuildCache *dfi_gen_rebuild_cache_new (void);
void dfi_gen_rebuild_cache_free (DfGenRebuildCache *cache);

/* @cache: (borrowed, outliving the result) shared with the other deltas to
 * the same to-commit. */
DfGenRebuild *dfi_gen_rebuild_new (OstreeRepo *repo, DfGenRebuildCache *cache);
void dfi_gen_rebuild_free (DfGenRebuild *g);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (DfGenRebuild, dfi_gen_rebuild_free)

/* How many analyses found the object already analysed (by an earlier delta
 * sharing the cache). */
guint dfi_gen_rebuild_reused (DfGenRebuild *g);

/* Content object @csum (of the to- or from-commit) may be a piece of a
 * program: the device has it, or this delta writes it plainly (objects
 * this module would transform themselves are left out when they are
 * hashed). Call for all of them before analysing. */
void dfi_gen_rebuild_add_source (DfGenRebuild *g, const char *csum);

typedef struct
{
  gboolean found;       /* compressed frames were recognised */
  gboolean transformed; /* a program rebuilds the object (the fields below are set) */
  GBytes *program;
  guint64 content_total; /* decompressed bytes the program reads */
  guint64 memory;        /* its encoders' largest declared memory */
  char **libraries;      /* library identities it needs (NULL-terminated, possibly empty) */
  GPtrArray *sources;    /* hex checksums of the objects its pieces read */
  guint64 literal_bytes; /* bytes it carries */
  char *description;     /* one line for reports */
} DfGenRebuildResult;

void dfi_gen_rebuild_result_clear (DfGenRebuildResult *r);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (DfGenRebuildResult, dfi_gen_rebuild_result_clear)

/* Analyses content object @csum (@size bytes, a regular file): fills @out.
 * @old (NULL for none): the object of the from-commit it replaces (the
 * device has it): literal content runs become patches against its
 * decompressed content (gzip or zstd) where that is smaller.
 * Finding nothing, or nothing worth rebuilding, is not an error
 * (out->transformed FALSE, out->description says why). Errors: reading the
 * repository, the cancellation, or DF_ERROR_FAILED when a program the
 * generator made does not rebuild the object (a bug: the object then
 * stays plain and the caller may report it). */
gboolean dfi_gen_rebuild_analyze (DfGenRebuild *g, const char *csum, guint64 size, const char *old,
                                  DfGenRebuildResult *out, GCancellable *cancellable, GError **error);
