/* Packing entries into parts: the packer appends each entry, in the order
 * it is given them, to the part filling for its kind, and hands a full part
 * to the compress pool, which compresses it, writes it to the output
 * directory as "<index>" and records it in the generator's parts. Part
 * boundaries and numbers depend only on the entries and the options. */
#pragma once

#include "df-common.h"
#include "df-part.h"

typedef struct _DfGenerator DfGenerator;
typedef struct _DfGenPartJob DfGenPartJob;

/* Two parts fill at once: one for ordinary entries, compressed at the
 * chosen level, and one for incompressible chunks, compressed fast. */
typedef struct
{
  DfGenerator *gen;
  GThreadPool *pool;
  DfGenPartJob *slots[DF_PART_KIND_LAST + 1][2]; /* by part kind and fast */
  DfGenPartJob *cur;
} DfGenPacker;

/* The compress pool's function: @data is a part handed on by the packer
 * (freed here). Errors go to dfi_gen_fail(). */
void dfi_gen_compress_worker (gpointer data, gpointer user_data);

/* Adds an entry of part kind @kind whose bytes are @raw (@raw_len bytes,
 * for the raw section) and, for a diff, @diff's other sections (NULL:
 * none); @fast: an incompressible chunk. Copies what it is given; a part
 * over the size limits is handed to the pool first, which may wait while
 * the pool is 2 × jobs parts behind. */
void dfi_gen_packer_add (DfGenPacker *pk, guint8 kind, const DfEntry *entry, const guint8 *raw, gsize raw_len,
                         GByteArray *const *diff, gboolean fast);

/* Hands every part still filling to the pool, in a fixed order. */
void dfi_gen_packer_flush (DfGenPacker *pk);
