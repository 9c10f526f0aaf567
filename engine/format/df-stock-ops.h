/* The opcode program of a stock delta part: run over the part's payload,
 * it makes the part's objects, in order, into a sink (DfStockSink), from
 * the payload's data and from old objects (sources), by splicing, writing
 * and bspatch. */
#pragma once

#include "df-stock-payload.h"
#include "df-stock-superblock.h"

/* The longest symlink target a part or a fallback object may carry. */
#define DF_STOCK_SYMLINK_MAX 4096

/* What a part's program produces, in order. Content bytes arrive in
 * pieces; a content object is begun, fed exactly its size, then ended.
 * Sources are the old objects modified files are rebuilt from. */
typedef struct
{
  gboolean (*metadata) (gpointer user, OstreeObjectType type, const guint8 csum[DF_SHA256_LEN], GBytes *data,
                        GError **error);
  /* Set *skip to leave the object out (its bytes are not produced). */
  gboolean (*content_begin) (gpointer user, const guint8 csum[DF_SHA256_LEN], guint32 uid, guint32 gid, guint32 mode,
                             GVariant *xattrs, const char *symlink_target, guint64 size, gboolean *skip,
                             GError **error);
  gboolean (*content_data) (gpointer user, const guint8 *data, gsize len, GError **error);
  gboolean (*content_end) (gpointer user, GError **error);
  /* Names source object @csum (replacing any other). It is opened only
   * when source_size() or source_read() needs it: a program may name
   * sources it never reads. */
  gboolean (*source_set) (gpointer user, const guint8 csum[DF_SHA256_LEN], GError **error);
  /* The source's content size (asked before any read). */
  gboolean (*source_size) (gpointer user, guint64 *size, GError **error);
  /* Exactly @len bytes at @offset of the source (always inside it). */
  gboolean (*source_read) (gpointer user, guint64 offset, guint8 *buf, gsize len, GError **error);
  void (*source_unset) (gpointer user);
} DfStockSink;

/* Opcodes run, by kind (optional output of dfi_stock_execute()). */
typedef struct
{
  guint64 splice, open, write, write_source, set_source, unset_source, close, bspatch;
} DfStockOpStats;

/* Runs part @part's program over @payload into @sink. Every object the
 * part declares must be produced, in order, and nothing else, and their
 * sizes may not add up to more than the part declares. @stats, when
 * given, is added to. */
gboolean dfi_stock_execute (const DfStockPart *part, DfStockPayload *payload, const DfStockSink *sink, gpointer user,
                            DfStockOpStats *stats, GCancellable *c, GError **error);
