/* Stock delta part files: checking a part file against its superblock
 * entry (size and SHA-256, before any byte is interpreted) and decoding it
 * (stored or xz) into its payload, bounded by what the part declares. */
#pragma once

#include "df-stock-superblock.h"

typedef struct _DfStockDecoder DfStockDecoder;
/* An xz decoder kept from part to part, so its 32 MiB dictionary is
 * allocated (and its pages touched) once. */
DfStockDecoder *dfi_stock_decoder_new (void);
void dfi_stock_decoder_free (DfStockDecoder *d);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (DfStockDecoder, dfi_stock_decoder_free)

/* The most bytes part @p's payload may decode to: its declared
 * uncompressed size (the objects it makes) plus an allowance for bsdiff
 * controls (1/DF_STOCK_PAYLOAD_SLACK_DIV of it), per object (source
 * checksum, symlink target, opcodes) and per part (tables). */
#define DF_STOCK_PAYLOAD_SLACK_DIV 16
#define DF_STOCK_PAYLOAD_PER_OBJECT (4096 + 128)
#define DF_STOCK_PAYLOAD_BASE (64 * 1024)
guint64 dfi_stock_payload_max (const DfStockPart *p);

/* Decodes part @i into @out_fd (an empty file): the part file @part_fd (or
 * the inline bytes) must have the declared size and SHA-256, checked before
 * any byte is decompressed. Returns the payload length in @out_len.
 *
 * @dec may be NULL (a decoder for this part alone). With @copy_dfd >= 0
 * the part file is copied into a temporary file under that directory
 * while it is hashed and decoded from the copy (for files on media the
 * engine does not control); with -1 it is read again (the fetcher's own
 * store). Decoding stops with DF_ERROR_INVALID_DELTA past
 * dfi_stock_payload_max(). */
gboolean dfi_stock_part_decode (const DfStockSuperblock *sb, guint i, int part_fd, int copy_dfd, int out_fd,
                                guint64 *out_len, DfStockDecoder *dec, GCancellable *c, GError **error);
