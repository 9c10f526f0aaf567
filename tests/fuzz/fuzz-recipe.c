/* Rebuild recipes (engine/transform/df-recipe.c) as the device reads
 * them: the input is a serialised recipe. Whatever dfi_recipe_parse()
 * accepts must pass dfi_recipe_check(), serialise back to the same bytes
 * (it accepts only the normal form), have a memory figure, and, when its
 * content is small, rebuild under a strict memory limit from a made-up
 * content without writing more than the recipe's stream size: refused,
 * failed or done, never a crash or an unbounded amount of work. */
#include "df-recipe.h"
#include "fuzz.h"

/* The rebuild runs only for content up to this size, under this memory
 * limit: enough for zlib, zstd up to about level 12 on small content and
 * xz presets 0 to 3, which bounds the time an input may take. */
#define FUZZ_RECIPE_CONTENT_MAX (64 * 1024)
#define FUZZ_RECIPE_MEMORY_MAX (16 * 1024 * 1024)

typedef struct
{
  guint64 left;
  guint32 x;
} Source;

static gssize
source_read (gpointer data, guint8 *buf, gsize len, GError **error)
{
  Source *s = data;
  gsize n = (gsize)MIN ((guint64)len, s->left);
  for (gsize i = 0; i < n; i++)
    {
      s->x = s->x * 1103515245 + 12345;
      buf[i] = (guint8)((s->x >> 16) % 7 + 'a'); /* compressible */
    }
  s->left -= n;
  return (gssize)n;
}

static gboolean
sink_write (gpointer data, const guint8 *buf, gsize len, GError **error)
{
  guint64 *total = data;
  *total += len;
  return TRUE;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr (GBytes) in = g_bytes_new (data, size);
  DfRecipe r;
  g_autoptr (GError) error = NULL;
  if (!dfi_recipe_parse (in, &r, &error))
    {
      g_assert_true (g_error_matches (error, DF_ERROR, DF_ERROR_INVALID_DELTA));
      return 0;
    }
  g_assert_true (dfi_recipe_check (&r, NULL));
  g_autoptr (GBytes) again = dfi_recipe_serialize (&r);
  g_assert_true (g_bytes_equal (in, again));
  g_autofree char *desc = dfi_recipe_describe (&r);
  g_assert_nonnull (desc);
  guint64 mem = 0;
  gboolean mem_ok = dfi_recipe_memory (&r, &mem, NULL);
  if (r.content_size > FUZZ_RECIPE_CONTENT_MAX)
    return 0;
  Source src = { r.content_size, (guint32)size };
  guint64 written = 0;
  gboolean ok = dfi_recipe_rebuild (&r, source_read, &src, sink_write, &written, FUZZ_RECIPE_MEMORY_MAX, NULL, &error);
  g_assert_cmpuint (written, <=, r.stream_size);
  if (ok)
    g_assert_true (mem_ok && mem <= FUZZ_RECIPE_MEMORY_MAX && written == r.stream_size);
  else if (mem_ok && mem > FUZZ_RECIPE_MEMORY_MAX)
    g_assert_true (g_error_matches (error, DF_ERROR, DF_ERROR_INVALID_ARGUMENT)
                   || g_error_matches (error, DF_ERROR, DF_ERROR_MISSING_BASE));
  return 0;
}
