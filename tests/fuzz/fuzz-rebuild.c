/* Rebuild programs (engine/transform/df-rebuild.c) as the device reads
 * them: the input is a serialised program. The object and content sizes an
 * entry would declare are taken from the program's own segments (summed,
 * wrapping), so that mutations reach the checks past the sums; the parse
 * must then refuse the same program for any other object size. A program
 * accepted whose content is at most FUZZ_REBUILD_CONTENT_MAX bytes is run
 * under FUZZ_REBUILD_MEMORY_MAX with an object source that returns
 * deterministic bytes of the requested length for any checksum: refused,
 * failed or done, it never writes more than the object's size, and a
 * success writes exactly that. A patch piece's source (checksum starting
 * with FUZZ_REBUILD_PATCH_ID, at its size) is a zstd frame. */
#include "df-rebuild.h"
#include "fuzz-rebuild.h"
#include "fuzz.h"

static GInputStream *
source_open (gpointer data, const guint8 checksum[DF_SHA256_LEN], guint64 length, GCancellable *cancellable,
             GError **error)
{
  if (checksum[0] == FUZZ_REBUILD_PATCH_ID)
    {
      gsize n;
      guint8 *z = fuzz_rebuild_patch_source (&n, NULL);
      if (length == n)
        return g_memory_input_stream_new_from_bytes (g_bytes_new_take (z, n));
      g_free (z);
    }
  /* An object piece is at most the program's content (at most
   * FUZZ_REBUILD_CONTENT_MAX bytes); a patch's source may be declared
   * larger. */
  if (length > FUZZ_REBUILD_CONTENT_MAX)
    {
      g_set_error (error, DF_ERROR, DF_ERROR_CORRUPT, "the fuzz source has no object of %" G_GUINT64_FORMAT " bytes",
                   length);
      return NULL;
    }
  guint8 *buf = g_malloc (MAX (length, 1));
  fuzz_rebuild_object_bytes (checksum, buf, length);
  g_autoptr (GBytes) b = g_bytes_new_take (buf, length);
  return g_memory_input_stream_new_from_bytes (b);
}

typedef struct
{
  guint64 written, max;
} Sink;

static gboolean
sink_write (gpointer data, const guint8 *buf, gsize len, GError **error)
{
  Sink *s = data;
  s->written += len;
  g_assert_cmpuint (s->written, <=, s->max);
  return TRUE;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr (GBytes) in = g_bytes_new (data, size);
  guint64 object_size = 0, content_total = 0;
  {
    g_autoptr (GVariant) v
        = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE (DF_REBUILD_PROGRAM_TYPE), in, FALSE));
    if (g_variant_is_normal_form (v))
      {
        g_autoptr (GVariant) segs = g_variant_get_child_value (v, 1);
        gsize n = g_variant_n_children (segs);
        for (gsize i = 0; i < n && i <= DF_REBUILD_SEGMENTS_MAX; i++)
          {
            guint64 out, content;
            g_variant_get_child (segs, i, "(yttu@ay)", NULL, &out, &content, NULL, NULL);
            object_size += GUINT64_FROM_LE (out);
            content_total += GUINT64_FROM_LE (content);
          }
      }
  }
  g_auto (DfRebuildProgram) p = { 0 };
  g_autoptr (GError) error = NULL;
  if (!dfi_rebuild_program_parse (in, object_size, content_total, &p, &error))
    {
      g_assert_true (g_error_matches (error, DF_ERROR, DF_ERROR_INVALID_DELTA));
      return 0;
    }
  g_assert_cmpuint (p.object_size, ==, object_size);
  g_assert_cmpuint (p.content_total, ==, content_total);
  g_assert_cmpuint (p.n_segments, >=, 1);
  g_assert_cmpuint (p.n_segments, <=, DF_REBUILD_SEGMENTS_MAX);
  g_assert_cmpuint (p.n_pieces, <=, DF_REBUILD_PIECES_MAX);
  g_assert_cmpuint (p.n_libraries, <, G_N_ELEMENTS (p.libraries));
  g_assert_null (p.libraries[p.n_libraries]);
  const char *why;
  (void)dfi_rebuild_libraries_match (p.libraries, &why);
  /* The sums must match exactly: any other object size is refused. */
  {
    g_auto (DfRebuildProgram) q = { 0 };
    g_autoptr (GError) e2 = NULL;
    g_assert_false (dfi_rebuild_program_parse (in, object_size ^ 1, content_total, &q, &e2));
    g_assert_true (g_error_matches (e2, DF_ERROR, DF_ERROR_INVALID_DELTA));
  }
  if (content_total > FUZZ_REBUILD_CONTENT_MAX)
    return 0;
  Sink s = { 0, object_size };
  gboolean ok = dfi_rebuild_run (&p, source_open, NULL, sink_write, &s, FUZZ_REBUILD_MEMORY_MAX, NULL, &error);
  g_assert_cmpuint (s.written, <=, object_size);
  if (ok)
    g_assert_cmpuint (s.written, ==, object_size);
  else
    {
      g_assert_true (error != NULL && error->domain == DF_ERROR);
      g_assert_true (error->code == DF_ERROR_INVALID_DELTA || error->code == DF_ERROR_CORRUPT
                     || error->code == DF_ERROR_MISSING_BASE || error->code == DF_ERROR_INVALID_ARGUMENT);
      if (p.memory > FUZZ_REBUILD_MEMORY_MAX)
        g_assert_cmpuint (s.written, ==, 0);
    }
  return 0;
}
