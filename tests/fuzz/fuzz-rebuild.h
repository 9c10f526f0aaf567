/* Shared by fuzz-rebuild.c and make-seeds.c: the bytes the fuzz target's
 * object source returns for an object piece, so that the seeds' recipes
 * and reconstruction data fit what the target reads. */
#pragma once

#include <glib.h>
#include <zstd.h>

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

/* The source a patch piece reads: the object whose checksum starts with
 * FUZZ_REBUILD_PATCH_ID, when asked for at this function's size (@len: the
 * size of its content, FUZZ_REBUILD_PATCH_SOURCE_LEN bytes of the text
 * above): a zstd frame of that content. g_free() the result. */
#define FUZZ_REBUILD_PATCH_ID 0x5a
#define FUZZ_REBUILD_PATCH_SOURCE_LEN 8192
static inline guint8 *
fuzz_rebuild_patch_source (gsize *len, guint8 **content)
{
  guint8 id[1] = { FUZZ_REBUILD_PATCH_ID };
  guint8 *text = g_malloc (FUZZ_REBUILD_PATCH_SOURCE_LEN);
  fuzz_rebuild_object_bytes (id, text, FUZZ_REBUILD_PATCH_SOURCE_LEN);
  gsize cap = ZSTD_compressBound (FUZZ_REBUILD_PATCH_SOURCE_LEN);
  guint8 *out = g_malloc (cap);
  size_t n = ZSTD_compress (out, cap, text, FUZZ_REBUILD_PATCH_SOURCE_LEN, 1);
  g_assert (!ZSTD_isError (n));
  *len = n;
  if (content)
    *content = text;
  else
    g_free (text);
  return out;
}
