/* Where an apply finds the files of a delta: what the appliers need, and
 * what a delta directory (offline media) and the fetcher's part store
 * (engine/fetch/df-part-store.h) provide. The apply never asks how the
 * files got there. */
#pragma once

#include "df-common.h"

/* Waits until part @index is in place as a complete file under the
 * source's directory, or returns FALSE with @error to give up. Called from
 * the apply's threads. */
typedef gboolean (*DfPartWaitFunc) (guint index, gpointer data, GError **error);
/* Opens the file holding fallback object @index of a stock delta (a
 * verified `.filez`, or the object's bytes for a dirtree or dirmeta): an
 * fd the caller closes, and its size. Called from the apply's threads. */
typedef gboolean (*DfPartFallbackFunc) (guint index, int *out_fd, guint64 *out_size, gpointer data, GError **error);

typedef struct
{
  /* The directory holding part files named by their index ("0", "1", ...). */
  int dfd;
  /* NULL: every part is there already (a delta directory). */
  DfPartWaitFunc wait;
  /* NULL: fallback objects the repository lacks cannot be had. */
  DfPartFallbackFunc fallback;
  gpointer data;
  /* The parts are in the fetcher's own store, written and hashed by it:
   * they need no private copy before they are decoded. */
  gboolean private_parts;
} DfPartSource;

/* The source a delta directory @dfd (borrowed) is: every part present, no
 * fallback objects. */
static inline DfPartSource
dfi_part_source_dir (int dfd)
{
  return (DfPartSource){ .dfd = dfd };
}
