/* Walking a commit for the generator: every metadata object it reaches
 * (dirmeta, dirtree), once each, in pre-order, and every file path with its
 * content object, so new objects can be told from old ones and new content
 * paired with old by path. */
#pragma once

#include "df-common.h"

/* A metadata object reached by a walk. */
typedef struct
{
  guint8 objtype;
  char csum[65];
} DfGenObjKey;

/* A file of a walked tree: its path (absolute within the commit) and its
 * content object. */
typedef struct
{
  char *path;
  char csum[65];
} DfGenFileRef;

typedef struct
{
  OstreeRepo *repo;
  GHashTable *seen;    /* "csum.type" of every object reached */
  GPtrArray *metadata; /* DfGenObjKey*, pre-order, first occurrence */
  GPtrArray *files;    /* DfGenFileRef*, pre-order, every path */
} DfGenWalk;

/* Walks @commit of @repo into @w (zero-filled by the caller; released
 * with dfi_gen_walk_clear() whatever the result). @out_commit (may be NULL):
 * the commit object, transfer full. Identical subtrees are listed at every
 * path but add no objects twice. Errors: a missing or unreadable object,
 * directories nested deeper than DF_TREE_DEPTH_MAX. */
gboolean dfi_gen_walk_commit (OstreeRepo *repo, const char *commit, GVariant **out_commit, DfGenWalk *w,
                              GError **error);

/* Frees what @w holds and leaves it empty; a zero-filled @w is fine. */
void dfi_gen_walk_clear (DfGenWalk *w);
