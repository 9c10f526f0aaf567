/* Recipes (engine/transform/df-recipe.c): streams made at test time by
 * python3's zlib, GNU gzip, and the zstd and xz command-line tools are
 * searched for a recipe, which must then rebuild them byte for byte after
 * a serialisation round trip; hostile recipes and refusals.
 *
 * Not reproducible, and asserted so: GNU gzip (-6, -9, with or without
 * -n): its deflate is its own, not zlib's (different match search and
 * block splitting), so no zlib setting makes its bytes; the model deflate
 * encoder is meant for those. */
#include "df-recipe.h"

#include <fcntl.h>
#include <lzma.h>
#include <sys/mman.h>
#include <zlib.h>

static char *tmpdir;

/* Compressible content like a root filesystem's: text lines, tables of
 * small numbers, and stretches of noise. */
static GBytes *
make_content (gsize len, guint32 seed)
{
  static const char *const words[]
      = { "kernel", "module", "usr", "lib",  "firmware", "systemd",    "0x", "ffff", "config", "=",
          "y",      "\n",     "/",   "init", "ramfs",    "deltafetch", " ",  " ",    "\t" };
  guint8 *d = g_malloc (len);
  guint32 x = seed | 1;
  gsize i = 0;
  while (i < len)
    {
      x ^= x << 13, x ^= x >> 17, x ^= x << 5;
      guint kind = x % 16;
      if (kind < 12)
        for (guint k = 0; k < 8 && i < len; k++)
          {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            const char *w = words[x % G_N_ELEMENTS (words)];
            for (gsize j = 0; w[j] && i < len; j++)
              d[i++] = (guint8)w[j];
          }
      else if (kind < 15)
        for (guint k = 0; k < 64 && i < len; k++)
          d[i++] = (guint8)((x >> (k % 24)) & 7);
      else
        for (guint k = 0; k < 200 && i < len; k++)
          {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            d[i++] = (guint8)x;
          }
    }
  return g_bytes_new_take (d, len);
}

static char *
write_tmp (const char *name, GBytes *b)
{
  char *path = g_build_filename (tmpdir, name, NULL);
  g_assert_true (g_file_set_contents (path, g_bytes_get_data (b, NULL), (gssize)g_bytes_get_size (b), NULL));
  return path;
}

/* Runs the shell command @cmd with IN and OUT in its environment. */
static void
shell (const char *cmd, const char *in, const char *out)
{
  g_autofree char *script = g_strdup_printf ("IN='%s' OUT='%s'; %s", in, out, cmd);
  const char *argv[] = { "/bin/sh", "-c", script, NULL };
  int status;
  g_autoptr (GError) error = NULL;
  g_assert_true (g_spawn_sync (NULL, (char **)argv, NULL, 0, NULL, NULL, NULL, NULL, &status, &error));
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("command failed: %s", cmd);
}

typedef struct
{
  const guint8 *data;
  gsize len, pos;
} MemReader;

static gssize
mem_read (gpointer data, guint8 *buf, gsize len, GError **error)
{
  MemReader *m = data;
  gsize n = MIN (len, m->len - m->pos);
  memcpy (buf, m->data + m->pos, n);
  m->pos += n;
  return (gssize)n;
}

static gboolean
array_write (gpointer data, const guint8 *buf, gsize len, GError **error)
{
  g_byte_array_append (data, buf, (guint)len);
  return TRUE;
}

/* Rebuilds @r from @content; NULL with @error set on failure. */
static GByteArray *
rebuild (const DfRecipe *r, GBytes *content, guint64 limit, GError **error)
{
  MemReader m = { g_bytes_get_data (content, NULL), g_bytes_get_size (content), 0 };
  g_autoptr (GByteArray) out = g_byte_array_new ();
  if (!dfi_recipe_rebuild (r, mem_read, &m, array_write, out, limit, NULL, error))
    return NULL;
  return g_steal_pointer (&out);
}

/* Searches STREAM (made from CONTENT) for a recipe; asserts found ==
 * @expect, and when found that the recipe, serialised and parsed again,
 * rebuilds STREAM byte for byte, twice alike. */
static void
check_stream (const char *what, const char *stream_path, GBytes *content, const char *content_path, gboolean expect)
{
  dfi_autofd sfd = open (stream_path, O_RDONLY);
  dfi_autofd cfd = open (content_path, O_RDONLY);
  g_assert_cmpint (sfd, >=, 0);
  g_assert_cmpint (cfd, >=, 0);
  struct stat st;
  g_assert_cmpint (fstat (sfd, &st), ==, 0);
  DfRecipeSpan s = { sfd, 0, (guint64)st.st_size }, c = { cfd, 0, g_bytes_get_size (content) };
  DfRecipe r;
  gboolean found;
  DfRecipeFindStats stats;
  g_autoptr (GError) error = NULL;
  gint64 t0 = g_get_monotonic_time ();
  g_assert_true (dfi_recipe_find (&s, &c, NULL, &r, &found, &stats, NULL, &error));
  g_assert_no_error (error);
  g_autofree char *desc = found ? dfi_recipe_describe (&r) : g_strdup ("no recipe");
  g_test_message ("%s: %s; %u of %u candidates, %" G_GUINT64_FORMAT " content bytes fed, %" G_GUINT64_FORMAT
                  " compared, %.2f s",
                  what, desc, stats.candidates, stats.listed, stats.bytes_in, stats.bytes_out,
                  (g_get_monotonic_time () - t0) / 1e6);
  if (found != expect)
    g_error ("%s: recipe %s, expected %s (%s)", what, found ? "found" : "not found", expect ? "one" : "none", desc);
  if (!found)
    return;
  g_autoptr (GBytes) ser = dfi_recipe_serialize (&r);
  g_assert_cmpuint (g_bytes_get_size (ser), <=, DF_RECIPE_SERIALIZED_MAX);
  DfRecipe parsed;
  g_assert_true (dfi_recipe_parse (ser, &parsed, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (&parsed, sizeof parsed, &r, sizeof r);
  guint64 mem;
  g_assert_true (dfi_recipe_memory (&parsed, &mem, &error));
  g_autoptr (GByteArray) a = rebuild (&parsed, content, mem, &error);
  g_assert_no_error (error);
  g_autofree char *orig = NULL;
  gsize orig_len;
  g_assert_true (g_file_get_contents (stream_path, &orig, &orig_len, NULL));
  g_assert_cmpmem (a->data, a->len, orig, orig_len);
  /* What the caller hash-checks must not vary from one rebuild to the next. */
  g_autoptr (GByteArray) b = rebuild (&parsed, content, mem, &error);
  g_assert_no_error (error);
  guint8 ha[DF_SHA256_LEN], hb[DF_SHA256_LEN];
  dfi_sha256 (a->data, a->len, ha);
  dfi_sha256 (b->data, b->len, hb);
  g_assert_cmpmem (ha, sizeof ha, hb, sizeof hb);
}

typedef struct
{
  const char *name;
  const char *cmd; /* from $IN to $OUT */
  gboolean reproducible;
} Case;

static void
run_cases (const char *prefix, const Case *cases, guint n, gsize content_len, guint32 seed)
{
  g_autoptr (GBytes) content = make_content (content_len, seed);
  g_autofree char *in = write_tmp ("content", content);
  for (guint i = 0; i < n; i++)
    {
      g_autofree char *out = g_build_filename (tmpdir, "stream", NULL);
      shell (cases[i].cmd, in, out);
      g_autofree char *what = g_strdup_printf ("%s %s", prefix, cases[i].name);
      check_stream (what, out, content, in, cases[i].reproducible);
      unlink (out);
    }
  if (g_getenv ("DF_RECIPE_KEEP") == NULL) /* DF_RECIPE_KEEP=1: the content stays, to debug */
    unlink (in);
}

#define PY_ZLIB(expr)                                                                                                  \
  "python3 -c \"import sys, zlib, gzip; d = open(sys.argv[1], 'rb').read(); "                                          \
  "open(sys.argv[2], 'wb').write(" expr ")\" \"$IN\" \"$OUT\""

static void
test_zlib (void)
{
  static const Case cases[] = {
#define L(n)                                                                                                           \
  { "zlib -" #n, PY_ZLIB ("zlib.compress(d, " #n ")"), TRUE },                                                         \
      { "gzip -" #n, PY_ZLIB ("gzip.compress(d, " #n ")"), TRUE },                                                     \
      { "raw -" #n, PY_ZLIB ("(lambda c: c.compress(d) + c.flush())(zlib.compressobj(" #n ", zlib.DEFLATED, -15))"),   \
        TRUE }
    L (1),
    L (2),
    L (3),
    L (4),
    L (5),
    L (6),
    L (7),
    L (8),
    L (9),
#undef L
    { "zlib -6 window 12 memlevel 9",
      PY_ZLIB ("(lambda c: c.compress(d) + c.flush())(zlib.compressobj(6, zlib.DEFLATED, 12, 9))"), TRUE },
    { "zlib -6 filtered",
      PY_ZLIB ("(lambda c: c.compress(d) + c.flush())(zlib.compressobj(6, zlib.DEFLATED, 15, 8, 1))"), TRUE },
    { "zlib -1 huffman",
      PY_ZLIB ("(lambda c: c.compress(d) + c.flush())(zlib.compressobj(1, zlib.DEFLATED, 15, 8, 2))"), TRUE },
    { "gzip with a name",
      PY_ZLIB ("gzip.compress(d, 9, mtime=1700000000)[:3] + b'\\x08' + "
               "gzip.compress(d, 9, mtime=1700000000)[4:10] + b'initrd.img\\x00' + "
               "gzip.compress(d, 9, mtime=1700000000)[10:]"),
      TRUE },
  };
  run_cases ("python", cases, G_N_ELEMENTS (cases), 384 * 1024, 1);
}

static void
test_gnu_gzip (void)
{
  static const Case cases[] = {
    { "gzip -6", "gzip -6 -c \"$IN\" >\"$OUT\"", FALSE },
    { "gzip -9", "gzip -9 -c \"$IN\" >\"$OUT\"", FALSE },
    { "gzip -6 -n", "gzip -6 -n -c \"$IN\" >\"$OUT\"", FALSE },
    { "gzip -9 -n", "gzip -9 -n -c \"$IN\" >\"$OUT\"", FALSE },
  };
  run_cases ("GNU", cases, G_N_ELEMENTS (cases), 384 * 1024, 2);
}

/* The search's bounds: a GNU gzip stream (no recipe) under a limit of
 * two candidates, then of 100 KB of content, stops there. */
static void
test_limits (void)
{
  g_autoptr (GBytes) content = make_content (384 * 1024, 6);
  g_autofree char *in = write_tmp ("limits", content);
  g_autofree char *out = g_build_filename (tmpdir, "limits.gz", NULL);
  shell ("gzip -6 -c \"$IN\" >\"$OUT\"", in, out);
  dfi_autofd sfd = open (out, O_RDONLY), cfd = open (in, O_RDONLY);
  struct stat st;
  g_assert_cmpint (fstat (sfd, &st), ==, 0);
  DfRecipeSpan s = { sfd, 0, (guint64)st.st_size }, c = { cfd, 0, g_bytes_get_size (content) };
  DfRecipe r;
  gboolean found = TRUE;
  DfRecipeFindStats stats;
  DfRecipeFindLimits two = { .max_candidates = 2 }, bytes = { .max_bytes = 100000 };
  g_assert_true (dfi_recipe_find (&s, &c, &two, &r, &found, &stats, NULL, NULL));
  g_assert_false (found);
  g_assert_cmpuint (stats.candidates, ==, 2);
  g_assert_cmpuint (stats.listed, >, 2);
  g_assert_true (stats.exhausted);
  g_assert_true (dfi_recipe_find (&s, &c, &bytes, &r, &found, &stats, NULL, NULL));
  g_assert_false (found);
  g_assert_cmpuint (stats.bytes_in, <=, 100000);
  g_assert_true (stats.exhausted);
  g_autoptr (GCancellable) cancel = g_cancellable_new ();
  g_cancellable_cancel (cancel);
  g_autoptr (GError) error = NULL;
  g_assert_false (dfi_recipe_find (&s, &c, NULL, &r, &found, &stats, cancel, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  unlink (in);
  unlink (out);
}

static void
test_zstd (void)
{
  static const Case cases[] = {
#define Z(lvl, t, check)                                                                                               \
  { "zstd " lvl " " t " " check " file", "zstd -q " lvl " " t " " check " -c \"$IN\" >\"$OUT\"", TRUE },               \
      { "zstd " lvl " " t " " check " pipe", "zstd -q " lvl " " t " " check " -c <\"$IN\" >\"$OUT\"", TRUE }
    Z ("-1", "-T0", ""),
    Z ("-1", "--single-thread", ""),
    Z ("-1", "-T0", "--no-check"),
    Z ("-1", "--single-thread", "--no-check"),
    Z ("-3", "-T0", ""),
    Z ("-3", "--single-thread", ""),
    Z ("-3", "-T0", "--no-check"),
    Z ("-9", "-T0", ""),
    Z ("-9", "--single-thread", ""),
    Z ("-9", "--single-thread", "--no-check"),
    Z ("-19", "-T0", ""),
    Z ("-19", "--single-thread", ""),
    Z ("-3", "", "--no-content-size"),
    Z ("-3", "", "--zstd=wlog=20"),
#undef Z
  };
  run_cases ("CLI", cases, G_N_ELEMENTS (cases), 1024 * 1024, 3);
}

static void
test_xz (void)
{
  static const Case cases[] = {
    { "xz -6", "xz -6 -c \"$IN\" >\"$OUT\"", TRUE },
    { "xz -9", "xz -9 -c \"$IN\" >\"$OUT\"", TRUE },
    { "xz -0e", "xz -0e -c \"$IN\" >\"$OUT\"", TRUE },
    { "xz --check=crc32", "xz --check=crc32 -c \"$IN\" >\"$OUT\"", TRUE },
    { "xz -T0", "xz -T0 -c \"$IN\" >\"$OUT\"", TRUE },
    { "xz -T1", "xz -T1 -c \"$IN\" >\"$OUT\"", TRUE },
    { "xz -0 -T0 (several blocks)", "xz -0 -T0 -c \"$IN\" >\"$OUT\"", TRUE },
    { "xz -0 -T0 --block-size=1MiB pipe", "xz -0 -T2 --block-size=1MiB -c <\"$IN\" >\"$OUT\"", TRUE },
    { "xz kernel style", "xz --check=crc32 --x86 --lzma2=dict=32MiB -c \"$IN\" >\"$OUT\"", TRUE },
    { "xz --lzma2=preset=6,lc=1,lp=2,pb=0", "xz --lzma2=preset=6,lc=1,lp=2,pb=0 -c \"$IN\" >\"$OUT\"", TRUE },
  };
  run_cases ("CLI", cases, G_N_ELEMENTS (cases), 5 * 256 * 1024, 4);
}

/* A valid recipe to start the hostile tests from: xz's kernel style. */
static void
sample (DfRecipe *r)
{
  memset (r, 0, sizeof *r);
  r->codec = DF_RECIPE_CODEC_XZ;
  dfi_recipe_library_identity (r->codec, r->library);
  r->content_size = 1000;
  r->stream_size = 600;
  r->level = 6;
  r->xz.check = LZMA_CHECK_CRC32;
  r->xz.dict_size = 32 << 20;
  r->xz.lc = 3;
  r->xz.pb = 2;
  r->xz.n_filters = 1;
  r->xz.filters[0].id = LZMA_FILTER_X86;
}

static void
assert_refused (const DfRecipe *r, const char *what)
{
  g_autoptr (GBytes) b = dfi_recipe_serialize (r);
  DfRecipe out;
  g_autoptr (GError) error = NULL;
  if (dfi_recipe_parse (b, &out, &error))
    g_error ("hostile recipe accepted: %s", what);
  g_assert_error (error, DF_ERROR, DF_ERROR_INVALID_DELTA);
}

static void
test_parse_hostile (void)
{
  DfRecipe r, out;
  sample (&r);
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) good = dfi_recipe_serialize (&r);
  g_assert_true (dfi_recipe_parse (good, &out, &error));
  g_assert_no_error (error);
#define BAD(stmt)                                                                                                      \
  do                                                                                                                   \
    {                                                                                                                  \
      sample (&r);                                                                                                     \
      stmt;                                                                                                            \
      assert_refused (&r, #stmt);                                                                                      \
    }                                                                                                                  \
  while (0)
  BAD (r.codec = 0);
  BAD (r.codec = 6);
  BAD (r.codec = 255);
  BAD (r.library[0] = '\0');
  BAD (r.library[0] = '\n');
  BAD (r.content_size = DF_RECIPE_CONTENT_MAX + 1);
  BAD (r.stream_size = 0);
  BAD (r.stream_size = 2 * DF_MIB + 2000);
  BAD (r.level = 10);
  BAD (r.level = -1);
  BAD (r.xz.check = 2);
  BAD (r.xz.dict_size = 4095);
  BAD (r.xz.dict_size = G_MAXUINT32);
  BAD (r.xz.lc = 4; r.xz.lp = 1);
  BAD (r.xz.pb = 5);
  BAD (r.xz.n_filters = 2);
  BAD (r.xz.filters[0].id = LZMA_FILTER_LZMA2);
  BAD (r.xz.filters[0].id = 0x4000000000000000);
  BAD (r.xz.filters[0].id = LZMA_FILTER_DELTA; r.xz.filters[0].arg = 257);
  BAD (r.xz.block_size = DF_RECIPE_XZ_BLOCK_MAX + 1);
  BAD (r.zstd.mt = TRUE);
  BAD (r.deflate.header_len = 3);
  /* Deflate and zstd recipes. */
  BAD (r.codec = DF_RECIPE_CODEC_ZLIB);
#define DEFLATE(c)                                                                                                     \
  r.codec = c, memset (&r.xz, 0, sizeof r.xz), dfi_recipe_library_identity (r.codec, r.library), r.level = 6,          \
  r.deflate.window_bits = 15, r.deflate.mem_level = 8
  sample (&r);
  DEFLATE (DF_RECIPE_CODEC_DEFLATE);
  good = (g_bytes_unref (good), dfi_recipe_serialize (&r));
  g_assert_true (dfi_recipe_parse (good, &out, &error));
  BAD (DEFLATE (DF_RECIPE_CODEC_DEFLATE); r.level = 0);
  BAD (DEFLATE (DF_RECIPE_CODEC_DEFLATE); r.deflate.window_bits = 8);
  BAD (DEFLATE (DF_RECIPE_CODEC_DEFLATE); r.deflate.window_bits = 16);
  BAD (DEFLATE (DF_RECIPE_CODEC_DEFLATE); r.deflate.mem_level = 10);
  BAD (DEFLATE (DF_RECIPE_CODEC_DEFLATE); r.deflate.strategy = 5);
  BAD (DEFLATE (DF_RECIPE_CODEC_DEFLATE); r.deflate.header_len = 2);
  BAD (DEFLATE (DF_RECIPE_CODEC_GZIP); r.deflate.header_len = 9);
  BAD (DEFLATE (DF_RECIPE_CODEC_GZIP); r.deflate.header_len = 10);
  BAD (DEFLATE (DF_RECIPE_CODEC_ZLIB); r.deflate.header_len = 2; r.deflate.header[0] = 0x78; r.deflate.header[1] = 0);
  BAD (DEFLATE (DF_RECIPE_CODEC_ZLIB); r.deflate.header_len = 2; r.deflate.header[0] = 0x78;
       r.deflate.header[1] = 0xbb);
#define ZSTD()                                                                                                         \
  r.codec = DF_RECIPE_CODEC_ZSTD, memset (&r.xz, 0, sizeof r.xz), dfi_recipe_library_identity (r.codec, r.library),    \
  r.level = 3
  BAD (ZSTD (); r.level = 23);
  BAD (ZSTD (); r.level = ZSTD_minCLevel () - 1);
  BAD (ZSTD (); r.zstd.window_log = 9);
  BAD (ZSTD (); r.zstd.window_log = 32);
  BAD (ZSTD (); r.zstd.content_size = TRUE);
  BAD (ZSTD (); r.zstd.job_size = 1024);
  BAD (ZSTD (); r.zstd.mt = TRUE; r.zstd.job_size = 1024);
  BAD (ZSTD (); r.zstd.mt = TRUE; r.zstd.overlap_log = 10);
  BAD (ZSTD (); r.deflate.mem_level = 8);
#undef BAD

  /* The bytes themselves: truncated, grown, flipped, another version. */
  sample (&r);
  g_bytes_unref (good);
  good = dfi_recipe_serialize (&r);
  gsize len;
  const guint8 *d = g_bytes_get_data (good, &len);
  for (gsize cut = 0; cut < len; cut++)
    {
      g_autoptr (GBytes) b = g_bytes_new (d, cut);
      g_clear_error (&error);
      /* A shorter buffer may still be a normal-form variant of the type
       * (GVariant gives defaults); whatever it parses to passed the
       * checks. */
      if (dfi_recipe_parse (b, &out, NULL))
        g_assert_true (dfi_recipe_check (&out, NULL));
    }
  g_autofree guint8 *big = g_malloc0 (DF_RECIPE_SERIALIZED_MAX + 1);
  g_autoptr (GBytes) huge = g_bytes_new (big, DF_RECIPE_SERIALIZED_MAX + 1);
  g_assert_false (dfi_recipe_parse (huge, &out, &error));
  g_assert_error (error, DF_ERROR, DF_ERROR_INVALID_DELTA);
  g_clear_error (&error);
  g_autofree guint8 *v2 = g_memdup2 (d, len);
  v2[0] = DF_RECIPE_FORMAT_VERSION + 1;
  g_autoptr (GBytes) b2 = g_bytes_new (v2, len);
  g_assert_false (dfi_recipe_parse (b2, &out, &error));
  g_assert_error (error, DF_ERROR, DF_ERROR_INVALID_DELTA);
  g_clear_error (&error);
  for (gsize i = 0; i < len; i++)
    for (guint bit = 0; bit < 8; bit++)
      {
        g_autofree guint8 *m = g_memdup2 (d, len);
        m[i] ^= (guint8)(1 << bit);
        g_autoptr (GBytes) b = g_bytes_new (m, len);
        if (dfi_recipe_parse (b, &out, NULL))
          g_assert_true (dfi_recipe_check (&out, NULL));
      }
}

/* A small deflate stream and its recipe, found by the search. */
static void
small_recipe (DfRecipe *r, GBytes **content)
{
  *content = make_content (100000, 5);
  g_autofree char *in = write_tmp ("small", *content);
  g_autofree char *out = g_build_filename (tmpdir, "small.xz", NULL);
  shell ("xz -9 -c \"$IN\" >\"$OUT\"", in, out);
  dfi_autofd sfd = open (out, O_RDONLY), cfd = open (in, O_RDONLY);
  struct stat st;
  g_assert_cmpint (fstat (sfd, &st), ==, 0);
  DfRecipeSpan s = { sfd, 0, (guint64)st.st_size }, c = { cfd, 0, g_bytes_get_size (*content) };
  gboolean found;
  g_autoptr (GError) error = NULL;
  g_assert_true (dfi_recipe_find (&s, &c, NULL, r, &found, NULL, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (found);
  unlink (in);
  unlink (out);
}

static gssize
counting_read (gpointer data, guint8 *buf, gsize len, GError **error)
{
  (*(guint *)data)++;
  return 0;
}

static void
test_refusals (void)
{
  DfRecipe r;
  g_autoptr (GBytes) content = NULL;
  small_recipe (&r, &content);
  guint64 mem;
  g_assert_true (dfi_recipe_memory (&r, &mem, NULL));
  g_test_message ("xz -9 on 100 kB: the rebuild needs %" G_GUINT64_FORMAT " KiB", mem / 1024);
  g_assert_cmpuint (mem, >, 600 * DF_MIB); /* a 64 MiB dictionary's bt4 match finder */

  /* Too little memory: refused before a byte is read. */
  guint reads = 0;
  g_autoptr (GByteArray) out = g_byte_array_new ();
  g_autoptr (GError) error = NULL;
  g_assert_false (dfi_recipe_rebuild (&r, counting_read, &reads, array_write, out, mem - 1, NULL, &error));
  g_assert_error (error, DF_ERROR, DF_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "memory budget"));
  g_assert_cmpuint (reads, ==, 0);
  g_assert_cmpuint (out->len, ==, 0);
  g_clear_error (&error);

  /* Another library build: refused too. */
  DfRecipe other = r;
  g_strlcpy (other.library, "liblzma 5.2.5", sizeof other.library);
  g_assert_false (dfi_recipe_rebuild (&other, counting_read, &reads, array_write, out, G_MAXUINT64, NULL, &error));
  g_assert_error (error, DF_ERROR, DF_ERROR_MISSING_BASE);
  g_assert_nonnull (strstr (error->message, "liblzma 5.2.5"));
  g_assert_cmpuint (reads, ==, 0);
  g_clear_error (&error);

  /* Content of the wrong length. */
  g_autoptr (GBytes) shorter = g_bytes_new_from_bytes (content, 0, g_bytes_get_size (content) - 1);
  g_assert_null (rebuild (&r, shorter, mem, &error));
  g_assert_error (error, DF_ERROR, DF_ERROR_CORRUPT);
  g_clear_error (&error);

  /* Other content of the same length: a different stream, cut at the
   * recipe's length at most (the caller's hash check refuses it). */
  g_autoptr (GBytes) other_content = make_content (g_bytes_get_size (content), 99);
  MemReader m = { g_bytes_get_data (other_content, NULL), g_bytes_get_size (other_content), 0 };
  g_byte_array_set_size (out, 0);
  if (!dfi_recipe_rebuild (&r, mem_read, &m, array_write, out, mem, NULL, &error))
    g_assert_error (error, DF_ERROR, DF_ERROR_CORRUPT);
  g_assert_cmpuint (out->len, <=, r.stream_size);
}

/* The zstd multi-threaded estimate against what libzstd allocates
 * (ZSTD_sizeof_CCtx() after compressing several jobs): at least that, at
 * most 1.5 times. */
static void
test_zstd_mt_memory (void)
{
  for (int level = 1; level <= 9; level += 4)
    {
      DfRecipe r = { .codec = DF_RECIPE_CODEC_ZSTD, .level = level };
      dfi_recipe_library_identity (r.codec, r.library);
      r.zstd.mt = TRUE;
      r.zstd.checksum = TRUE;
      guint64 job = G_GUINT64_CONSTANT (1)
                    << MAX (20, ZSTD_getCParams (level, ZSTD_CONTENTSIZE_UNKNOWN, 0).windowLog + 2);
      /* Two jobs: a second output buffer, were the first job not drained
       * before the second starts, would pass the ceiling the allocator
       * holds libzstd to. */
      r.content_size = job + 1000;
      g_autoptr (GBytes) content = make_content (r.content_size, 7);
      /* The zstd tool's stream (one worker, fed as it feeds). */
      g_autoptr (ZSTD_CCtx) cctx = ZSTD_createCCtx ();
      ZSTD_CCtx_setParameter (cctx, ZSTD_c_compressionLevel, level);
      ZSTD_CCtx_setParameter (cctx, ZSTD_c_checksumFlag, 1);
      ZSTD_CCtx_setParameter (cctx, ZSTD_c_nbWorkers, 1);
      g_autoptr (GByteArray) tool = g_byte_array_new ();
      g_autofree guint8 *dst = g_malloc (ZSTD_CStreamOutSize ());
      const guint8 *src = g_bytes_get_data (content, NULL);
      for (gsize at = 0; at < r.content_size;)
        {
          gsize n = MIN (ZSTD_CStreamInSize (), r.content_size - at);
          gboolean last = at + n == r.content_size;
          ZSTD_inBuffer ib = { src + at, n, 0 };
          size_t rem;
          do
            {
              ZSTD_outBuffer ob = { dst, ZSTD_CStreamOutSize (), 0 };
              rem = ZSTD_compressStream2 (cctx, &ob, &ib, last ? ZSTD_e_end : ZSTD_e_continue);
              g_assert_false (ZSTD_isError (rem));
              g_byte_array_append (tool, dst, ob.pos);
            }
          while (last ? rem != 0 : ib.pos < ib.size);
          at += n;
        }
      r.stream_size = tool->len;
      guint64 est;
      g_assert_true (dfi_recipe_memory (&r, &est, NULL));
      /* The rebuild makes the same bytes, with libzstd's memory counted
       * by its allocator: within the estimate, which is not loose. */
      g_autoptr (GError) error = NULL;
      g_autoptr (GByteArray) out = rebuild (&r, content, est, &error);
      g_assert_no_error (error);
      g_assert_cmpmem (out->data, out->len, tool->data, tool->len);
      guint64 peak = dfi_recipe_zstd_last_peak ();
      g_test_message ("zstd -%d multi-threaded, one worker: estimate %" G_GUINT64_FORMAT
                      " KiB, libzstd held at most %" G_GUINT64_FORMAT " KiB",
                      level, est / 1024, peak / 1024);
      g_assert_cmpuint (peak, >, 0);
      g_assert_cmpuint (est, >=, peak);
      g_assert_cmpuint (est, <=, peak + peak / 8);
      /* A ceiling below what libzstd asks for fails the rebuild cleanly,
       * naming the ceiling. */
      g_autofree char *low = g_strdup_printf ("%" G_GUINT64_FORMAT, peak / 2);
      g_setenv ("DF_TEST_ZSTD_ALLOC_LIMIT", low, TRUE);
      g_autoptr (GByteArray) none = rebuild (&r, content, est, &error);
      g_unsetenv ("DF_TEST_ZSTD_ALLOC_LIMIT");
      g_assert_null (none);
      g_assert_error (error, DF_ERROR, DF_ERROR_FAILED);
      g_assert_nonnull (strstr (error->message, "more than the"));
      g_assert_cmpuint (dfi_recipe_zstd_last_peak (), <=, peak / 2);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_autoptr (GError) error = NULL;
  tmpdir = g_dir_make_tmp ("test-recipe-XXXXXX", &error);
  g_assert_no_error (error);
  g_test_add_func ("/recipe/find/python-zlib", test_zlib);
  g_test_add_func ("/recipe/find/gnu-gzip", test_gnu_gzip);
  g_test_add_func ("/recipe/find/limits", test_limits);
  g_test_add_func ("/recipe/find/zstd", test_zstd);
  g_test_add_func ("/recipe/find/xz", test_xz);
  g_test_add_func ("/recipe/parse/hostile", test_parse_hostile);
  g_test_add_func ("/recipe/rebuild/refusals", test_refusals);
  g_test_add_func ("/recipe/memory/zstd-mt", test_zstd_mt_memory);
  int rc = g_test_run ();
  if (g_getenv ("DF_RECIPE_KEEP") == NULL)
    dfi_rm_rf_at (AT_FDCWD, tmpdir, NULL);
  else
    g_printerr ("kept %s\n", tmpdir);
  g_free (tmpdir);
  return rc;
}
