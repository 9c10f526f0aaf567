/* A decoded stock part payload, `(a(uuu)aa(ayay)ayay)`: its framing read
 * from the end of the file, the mode and xattr tables loaded, the raw data
 * and the opcodes located for reading on demand. */
#pragma once

#include "df-common.h"

/* What dfi_stock_execute() holds while a part runs: the mode and xattr
 * tables (at most DF_STOCK_PAYLOAD_TABLE_MAX each), three buffers of
 * DF_STOCK_IO_CHUNK and the opcode window. */
#define DF_STOCK_PAYLOAD_TABLE_MAX (1024 * 1024)
#define DF_STOCK_IO_CHUNK (256 * 1024)
#define DF_STOCK_OPS_WINDOW (64 * 1024)
#define DF_STOCK_EXEC_MEM (2 * DF_STOCK_PAYLOAD_TABLE_MAX + 3 * DF_STOCK_IO_CHUNK + DF_STOCK_OPS_WINDOW)

/* A decoded part payload `(a(uuu)aa(ayay)ayay)` in a file: the mode and
 * xattr tables in memory (at most 1 MiB each), the raw data and the
 * opcodes read on demand. */
typedef struct
{
  int fd;           /* not owned */
  GVariant *modes;  /* a(uuu), big-endian values */
  GVariant *xattrs; /* aa(ayay) */
  guint64 raw_off, raw_len;
  guint64 ops_off, ops_len;
} DfStockPayload;

gboolean dfi_stock_payload_open (DfStockPayload *p, int fd, guint64 len, GError **error);
void dfi_stock_payload_clear (DfStockPayload *p);
/* All the opcodes (tools). */
GBytes *dfi_stock_payload_read_ops (const DfStockPayload *p, GError **error);

/* Reads exactly @len bytes at @off of the payload file @fd; a short file
 * is DF_ERROR_IO ("part payload"). */
gboolean dfi_stock_payload_pread (int fd, guint8 *buf, gsize len, guint64 off, GError **error);
