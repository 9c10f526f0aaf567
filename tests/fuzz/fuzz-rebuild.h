/* Shared by fuzz-rebuild.c and make-seeds.c: the bytes the fuzz target's
 * object source returns for an object piece, so that the seeds' recipes
 * and reconstruction data fit what the target reads. */
#pragma once

#include <glib.h>

/* Only programs reading at most this much content are run. */
#define FUZZ_REBUILD_CONTENT_MAX (64 * 1024)
/* The memory limit of the run (zlib, zstd at low levels, xz presets 0-3). */
#define FUZZ_REBUILD_MEMORY_MAX (16 * 1024 * 1024)

/* The content of object @csum (its first byte chooses the text), @len
 * bytes: compressible, deterministic. */
static inline void
fuzz_rebuild_object_bytes (const guint8 *csum, guint8 *buf, gsize len)
{
  static const char text[] = "kernel module firmware initrd cpio entry\n";
  for (gsize i = 0; i < len; i++)
    buf[i] = (guint8)(text[(i + csum[0]) % (sizeof text - 1)] + (i % 251 == 0));
}
