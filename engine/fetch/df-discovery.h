/* Discovery: which delta the server offers for a commit. The native index
 * (deltafetch/v1/indexes/COMMIT.index) first, else the stock delta table
 * (delta-indexes/, else the summary). Nothing in them is trusted: the
 * digests they list only tell a damaged superblock early. */
#pragma once

#include "df-downloader.h"

typedef enum
{
  DF_DISCOVERED_NONE,   /* the server offers neither */
  DF_DISCOVERED_NATIVE, /* a native delta */
  DF_DISCOVERED_STOCK,  /* a stock delta, superblock fetched and checked */
} DfDiscoveredKind;

typedef struct
{
  DfDiscoveredKind kind;
  /* NATIVE: the index's key ("" from scratch, else the from-commit), the
   * SHA-256 and size of the superblock it lists, the mirror it came from. */
  char *key;
  gboolean searched; /* NATIVE or STOCK: the from-commit is not the device's but one found in the repository */
  guint8 sb_sha[DF_SHA256_LEN];
  guint64 sb_size;
  guint index_mirror;
  /* STOCK: the from-commit (NULL from scratch), the delta's path on the
   * server, its superblock (matching the listed digest). */
  char *stock_from;
  char *stock_relpath;
  GBytes *stock_superblock;
} DfDiscovered;

/* Frees what @dd holds. */
void dfi_discovered_clear (DfDiscovered *dd);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (DfDiscovered, dfi_discovered_clear)

/* Finds the delta to @commit for a device at @from (NULL: none) on @d's
 * mirrors: from @from if offered, else from the newest commit wholly in
 * @repo (NULL: none searched) that one is offered from, else from scratch.
 * A native delta wins over a stock one. When a small file fails its check
 * (a malformed index, a superblock that does not match its listing),
 * *@suspect is the mirror that served the listing and the error says why. */
gboolean dfi_discover (DfDownloader *d, OstreeRepo *repo, const char *commit, const char *from, DfDiscovered *out,
                       int *suspect, GError **error);
