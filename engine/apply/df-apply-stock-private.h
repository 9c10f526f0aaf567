/* The stock applier's insides shared by df-apply-stock.c (the rebuilding
 * thread: the plan, trust, the opcodes' sink) and df-apply-stock-decode.c
 * (how many xz decoders fit, and the pipeline that decodes parts ahead
 * of the rebuilding). */
#pragma once

#include "df-apply-stock.h"

/* Files up to this size are rebuilt in memory; larger ones in a temporary
 * file, so memory does not follow file size. */
#define DF_STOCK_INMEM_MAX (4 * DF_MIB)

/* Parts are decoded in threads of their own while the rebuilding thread
 * takes whichever part is decoded first. xz decoding and rebuilding files
 * take about the same time overall, but not part by part (an
 * incompressible initrd takes xz ten times longer than a part of diffs),
 * so the decoders may run ahead by up to DF_STOCK_AHEAD_MAX decoded bytes
 * on disk. Each decoder holds a 32 MiB dictionary (what stock ostree's xz
 * preset needs), so their number comes from the memory budget: one in the
 * default 64 MiB. */
#define DF_STOCK_AHEAD_MAX (256 * DF_MIB)
/* What one xz decoder of a stock part needs (liblzma's figure for the
 * 32 MiB dictionary ostree's encoder uses), and what the rebuilding
 * thread holds besides the budget's reserve. */
#define DF_STOCK_DECODER_MEM (33 * DF_MIB)
#define DF_STOCK_REBUILD_MEM (DF_STOCK_INMEM_MAX + 2 * DF_COPY_BUFFER + DF_STOCK_EXEC_MEM)

/* The decoding pipeline: decoders take the plan's entries in order and
 * decode each part into a temporary file; the rebuilding thread takes
 * whichever is decoded first. */
typedef struct
{
  GMutex lock;
  GCond cond;
  const DfStockSuperblock *sb;
  int tmp_dfd;
  GCancellable *c;
  const guint *plan; /* part indices */
  guint n_plan;
  guint n_meta; /* the first entries, held until the content pass: never waited for */
  guint next;   /* the next entry a decoder takes */
  int *fd;      /* per plan entry, once decoded */
  guint64 *len;
  gboolean *taken;         /* per plan entry: the rebuilding thread is done with it */
  GArray *pool;            /* temporary files free for reuse (their pages stay) */
  const DfPartSource *src; /* where the parts are */
  guint64 ahead;
  GError *error;
  gboolean stop;
} Pipe;

/* A decoder's thread (@data: the Pipe). */
gpointer dfi_stock_decoder_thread (gpointer data);
/* Waits until plan entry @k (a metadata part, taken in order) is decoded. */
gboolean dfi_stock_pipe_wait (Pipe *pp, guint k, GError **error);
/* The next decoded content entry in *@out (G_MAXUINT: none left). */
gboolean dfi_stock_pipe_take (Pipe *pp, guint *out, GError **error);
/* The rebuilding thread is done with entry @k: its file goes back to the
 * pool. */
void dfi_stock_pipe_release (Pipe *pp, guint k);
