/* The deflate reconstruction (engine/transform/df-deflate.h). The first
 * byte chooses:
 *   even: the rest is a raw deflate stream: the tokeniser must refuse it
 *         cleanly or decompress it, and then analyze must succeed and its
 *         reconstruction data rebuild the stream (analyze checks that and
 *         fails otherwise: an abort here);
 *   odd:  the rest is reconstruction data, rebuilt over a fixed 6000-byte
 *         content (text with repeats, the pattern make-seeds uses): a
 *         clean error or some stream, within the limits;
 *   3 mod 4: the same over 200 KiB of that pattern (room for splits), in
 *         one lane and then in two (threads).
 * Limits are tight: 1 MiB of content, 64 KiB of stream and data. */
#include "df-deflate.h"
#include "fuzz.h"

#define CONTENT_LEN 6000
#define SPLIT_CONTENT_LEN (200 * 1024)

/* Also in make-seeds.c. */
static void
content_pattern (guint8 *p, gsize len)
{
  static const char *words[] = { "delta ", "fetch ", "commit ", "object\n", "tree ", "kernel " };
  guint32 x = 1;
  for (gsize i = 0; i < len;)
    {
      x = x * 1103515245 + 12345;
      const char *w = words[(x >> 16) % G_N_ELEMENTS (words)];
      for (gsize k = 0; w[k] && i < len; k++)
        p[i++] = (guint8)w[k];
    }
}

static gboolean
sink (gpointer user_data, const guint8 *buf, gsize len, GError **error)
{
  gsize *n = user_data;
  *n += len;
  return TRUE;
}

typedef struct
{
  const guint8 *data;
  gsize len, at;
} Src;

static gssize
src_read (gpointer user_data, guint8 *buf, gsize len, GError **error)
{
  Src *s = user_data;
  gsize n = MIN (len, s->len - s->at);
  memcpy (buf, s->data + s->at, n);
  s->at += n;
  return (gssize)n;
}

static gboolean
src_skip (gpointer user_data, guint64 n, GError **error)
{
  Src *s = user_data;
  s->at += (gsize)MIN (n, (guint64)(s->len - s->at));
  return TRUE;
}

static gpointer
src_clone (gpointer user_data)
{
  return g_memdup2 (user_data, sizeof (Src));
}

/* With a lock: lanes write in turn but from their own threads. */
static gboolean
sink_locked (gpointer user_data, const guint8 *buf, gsize len, GError **error)
{
  static GMutex lock;
  g_mutex_lock (&lock);
  gboolean ok = sink (user_data, buf, len, error);
  g_mutex_unlock (&lock);
  return ok;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  DfDeflateLimits lim = { .max_output = 1024 * 1024, .max_input = 65536, .max_recon = 65536 };
  g_autoptr (GError) error = NULL;
  if ((data[0] & 1) == 0)
    {
      gsize consumed = 0;
      g_autoptr (GBytes) content = dfi_deflate_inflate (data + 1, size - 1, &lim, &consumed, &error);
      if (content == NULL)
        return 0;
      g_autoptr (GBytes) recon = NULL;
      if (!dfi_deflate_analyze (data + 1, size - 1, &lim, &consumed, &recon, NULL, &error))
        {
          fprintf (stderr, "analyze failed on a stream the tokeniser took: %s\n", error->message);
          abort ();
        }
      return 0;
    }
  static guint8 content[SPLIT_CONTENT_LEN];
  static gboolean made;
  if (!made)
    content_pattern (content, SPLIT_CONTENT_LEN), made = TRUE;
  gsize clen = (data[0] & 3) == 3 ? SPLIT_CONTENT_LEN : CONTENT_LEN;
  Src src = { content, clen, 0 };
  gsize written = 0;
  if (dfi_deflate_rebuild (src_read, &src, data + 1, size - 1, sink, &written, &lim, NULL, &error))
    g_assert (written <= lim.max_input);
  if ((data[0] & 3) != 3)
    return 0;
  g_clear_error (&error);
  static const DfDeflateSource lanes_src = { src_read, src_skip, src_clone, g_free };
  Src src2 = { content, clen, 0 };
  gsize written2 = 0;
  if (dfi_deflate_rebuild_lanes (&lanes_src, &src2, 2, data + 1, size - 1, sink_locked, &written2, &lim, NULL, &error))
    g_assert (written2 == written);
  return 0;
}
