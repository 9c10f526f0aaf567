/* Stock delta fallback objects: loose `.filez` files as an archive
 * repository serves them, read into a sink or checked against their
 * checksum. */
#pragma once

#include "df-stock-ops.h"

/* Reads fallback object @fb from @fd, a loose `.filez` file of @file_size
 * bytes as an archive repository serves it (a header, then the content as
 * raw deflate), into @sink: begun, fed exactly the declared size, ended.
 * The header must declare the fallback's size; inflating stops at it. The
 * caller checks the checksum (the sink sees every byte). */
gboolean dfi_stock_filez_read (int fd, guint64 file_size, const DfStockFallback *fb, const DfStockSink *sink,
                               gpointer user, GCancellable *c, GError **error);

/* Checks that @fd (@file_size bytes) holds fallback @fb: a `.filez` file
 * whose object hashes to its checksum, or for a dirtree/dirmeta the
 * object's own bytes. Nothing is written. */
gboolean dfi_stock_fallback_verify (int fd, guint64 file_size, const DfStockFallback *fb, GCancellable *c,
                                    GError **error);
