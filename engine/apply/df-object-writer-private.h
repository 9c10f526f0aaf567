/* The object writer's insides, shared by df-object-writer.c (objects,
 * split objects, batches, rebuilds, staging) and df-object-sources.c (the
 * sources patches read). */
#pragma once

#include "df-object-writer.h"

typedef struct
{
  guint n_chunks;
  guint done;
  guint64 size;
} Split;

/* A source object inflated into a temporary file (repositories that do
 * not keep content in place), shared by the workers. */
typedef struct
{
  guint8 csum[DF_SHA256_LEN];
  int fd; /* -1 while loading */
  guint64 size;
  guint refs;
  guint64 last_use;
} Inflated;

/* Inflated sources nobody uses are kept, the most recently used first, up
 * to this many. */
#define DF_INFLATED_KEEP 2

struct _DfObjectWriter
{
  OstreeRepo *repo;
  char *state_dir;
  int state_dfd;
  int tmp_dfd;
  GMutex lock;
  GCond source_cond;
  GPtrArray *inflated;    /* Inflated*, under lock */
  guint64 inflated_bytes; /* in all, under lock */
  guint64 inflate_budget;
  guint64 use_tick;
  GHashTable *splits;           /* hex → Split* */
  GHashTable *verified_markers; /* markers checked against their chunk (under lock) */
  guint64 objects, bytes;

  /* Early writeback, under lock: see writeback_thread(). */
  GThread *flusher;
  GCond flush_cond;
  guint64 flush_requested; /* w->bytes when the last flush was asked for */
  gboolean flush_pending, flush_stop;
};

/* Decodes a zstd-ref patch (@patch, @patch_len bytes) or the next diff of
 * @r for entry @e into exactly e->length bytes, against the window of the
 * source object the entry names (DF_ERROR_INVALID_DELTA when it does not
 * decode to that length). Free the result with dfi_big_free(). */
guint8 *dfi_object_writer_decode_patch (DfObjectWriter *w, const DfEntry *e, const guint8 *patch, gsize patch_len,
                                        DfPartReader *r, GCancellable *c, GError **error);
