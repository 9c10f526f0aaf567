/* Encoding content objects: the encode pool's tasks. Each new content
 * object is a DfGenItem; a worker encodes it into entries (a header-only
 * entry for symlinks and empty files; with rebuilt variants, a rebuild
 * entry; then one entry per DF_CHUNK_SIZE chunk, raw or a diff against the
 * item's source) and queues them on the item, in order, for the packer
 * (df-gen-pack.h). Large objects have their chunks spread over the pool. */
#pragma once

#include "df-common.h"
#include "df-part.h"

typedef struct _DfGenerator DfGenerator;

/* One entry's bytes, ready to pack. */
typedef struct
{
  DfEntry entry;
  GByteArray *sec[DF_SECTION_COUNT]; /* the entry's bytes for each section of its part */
  gboolean incompressible;           /* stored raw and a fast zstd pass barely shrinks it */
  guint8 part_kind;                  /* DfPartKind: content, rebuild or alternative */
} DfGenEncoded;

/* What the encode pool runs: a whole object, or one chunk of a large one.
 * Every task begins with its kind (a guint). */
enum
{
  DF_GEN_TASK_ITEM,
  DF_GEN_TASK_CHUNK
};

/* A new content object to encode; planned by df_generate(), which owns it
 * and frees it with g_free() after clearing its queue. */
typedef struct
{
  guint kind; /* DF_GEN_TASK_ITEM */
  DfGenerator *gen;
  guint index;
  char csum[65];
  guint64 size;
  gboolean is_symlink;
  char source[65]; /* "" when none */
  guint64 source_size;
  /* Filled by the worker, drained by the packer; under gen->lock. */
  GQueue out;
  guint64 out_bytes;
  gboolean done;
} DfGenItem;

/* A new entry with @base's fields and empty sections; free with
 * dfi_gen_encoded_free(). */
DfGenEncoded *dfi_gen_encoded_new (const DfEntry *base);

/* The bytes of all of @e's sections together. */
gsize dfi_gen_encoded_size (const DfGenEncoded *e);

/* Frees @e and its sections. */
void dfi_gen_encoded_free (DfGenEncoded *e);

/* The encode pool's function: @data is a DfGenItem or a chunk task (by
 * its kind). An item's entries go to its queue and it is marked done, also
 * after an error, which goes to dfi_gen_fail() with the object named. */
void dfi_gen_encode_worker (gpointer data, gpointer user_data);

/* The encode pool's sort function: chunks before whole objects (they hold
 * up an object that has started), each kind in order. */
gint dfi_gen_encode_task_order (gconstpointer a, gconstpointer b, gpointer user_data);
