/* Rebuild programs (engine/transform/df-rebuild.c): programs made with the
 * builder are parsed and run over an in-memory object store and rebuild
 * their objects byte for byte (plain segments, a deflate segment with
 * reconstruction data from dfi_deflate_analyze(), recipe segments for zlib,
 * gzip and xz streams made in-process); hand-made hostile programs are
 * refused with the exact error code the header documents, and no failing
 * run writes more than the object's declared size. */
#include "df-deflate.h"
#include "df-rebuild.h"
#include "df-recipe.h"

#include <lzma.h>
#include <sys/mman.h>
#include <time.h>
#include <zlib.h>

/* ---------------------------------------------------------------------- */
/* Content, objects, writer                                                 */

/* Compressible text-like content, deterministic in @seed. */
static GBytes *
make_content (gsize len, guint32 seed)
{
  static const char *const words[] = { "module ", "kernel ", "initrd ", "cpio\n", "firmware ", "0x1f8b ", "udev " };
  guint8 *p = g_malloc (len);
  guint32 x = seed;
  for (gsize i = 0; i < len;)
    {
      x = x * 1103515245 + 12345;
      if ((x >> 28) == 0)
        p[i++] = (guint8)(x >> 8); /* some noise */
      else
        for (const char *w = words[(x >> 16) % G_N_ELEMENTS (words)]; *w && i < len; w++)
          p[i++] = (guint8)*w;
    }
  return g_bytes_new_take (p, len);
}

static void
csum_of (GBytes *b, guint8 out[DF_SHA256_LEN])
{
  dfi_sha256 (g_bytes_get_data (b, NULL), g_bytes_get_size (b), out);
}

/* An object store: checksum (hex) -> content. */
typedef struct
{
  GHashTable *objects;
  guint opens;
} Store;

static void
store_init (Store *s)
{
  s->objects = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_bytes_unref);
  s->opens = 0;
}

static void
store_clear (Store *s)
{
  g_clear_pointer (&s->objects, g_hash_table_unref);
}

/* Stores @content under @csum (its own checksum when @csum is NULL). */
static void
store_put (Store *s, GBytes *content, const guint8 *csum, guint8 out[DF_SHA256_LEN])
{
  guint8 c[DF_SHA256_LEN];
  if (csum)
    memcpy (c, csum, DF_SHA256_LEN);
  else
    csum_of (content, c);
  char hex[65];
  dfi_hex (c, hex);
  g_hash_table_replace (s->objects, g_strdup (hex), g_bytes_ref (content));
  if (out)
    memcpy (out, c, DF_SHA256_LEN);
}

static GInputStream *
store_open (gpointer data, const guint8 checksum[DF_SHA256_LEN], guint64 length, GCancellable *cancellable,
            GError **error)
{
  Store *s = data;
  char hex[65];
  dfi_hex (checksum, hex);
  s->opens++;
  GBytes *b = g_hash_table_lookup (s->objects, hex);
  if (b == NULL)
    {
      g_set_error (error, DF_ERROR, DF_ERROR_MISSING_BASE, "object %s is missing", hex);
      return NULL;
    }
  /* Deliberately no length check here: the runner must catch a short one. */
  return g_memory_input_stream_new_from_bytes (b);
}

/* The writer: collects the object and asserts it never exceeds @max. */
typedef struct
{
  GByteArray *out;
  guint64 max;
  GCancellable *cancel_after_first; /* cancelled on the first write */
} Sink;

static gboolean
sink_write (gpointer data, const guint8 *buf, gsize len, GError **error)
{
  Sink *k = data;
  g_assert_cmpuint (k->out->len + (guint64)len, <=, k->max);
  g_byte_array_append (k->out, buf, len);
  if (k->cancel_after_first)
    g_cancellable_cancel (k->cancel_after_first);
  return TRUE;
}

/* Parses @prog for (@object_size, @content_total) and runs it over @store
 * with @limit; returns the bytes written (the caller's), sets @error. */
static GByteArray *
run_program (GBytes *prog, guint64 object_size, guint64 content_total, Store *store, guint64 limit,
             GCancellable *cancellable, gboolean *ok, GError **error)
{
  g_auto (DfRebuildProgram) p = { 0 };
  GByteArray *out = g_byte_array_new ();
  *ok = FALSE;
  if (!dfi_rebuild_program_parse (prog, object_size, content_total, &p, error))
    return out;
  g_assert_cmpuint (p.object_size, ==, object_size);
  g_assert_cmpuint (p.content_total, ==, content_total);
  Sink k = { out, object_size, NULL };
  *ok = dfi_rebuild_run (&p, store_open, store, sink_write, &k, limit, cancellable, error);
  g_assert_cmpuint (out->len, <=, object_size);
  if (*ok)
    g_assert_cmpuint (out->len, ==, object_size);
  return out;
}

/* Runs @prog and asserts it makes @expect, byte for byte, twice. */
static void
assert_rebuilds (GBytes *prog, guint64 content_total, Store *store, GBytes *expect)
{
  for (guint round = 0; round < 2; round++)
    {
      g_autoptr (GError) error = NULL;
      gboolean ok;
      g_autoptr (GByteArray) out = run_program (prog, g_bytes_get_size (expect), content_total, store,
                                                64 * DF_MIB, NULL, &ok, &error);
      g_assert_no_error (error);
      g_assert_true (ok);
      g_assert_cmpmem (out->data, out->len, g_bytes_get_data (expect, NULL), g_bytes_get_size (expect));
    }
}

/* Runs @prog and asserts it fails with @code (parse or run, as @at_parse);
 * returns the bytes the run wrote. */
static guint64
assert_fails (GBytes *prog, guint64 object_size, guint64 content_total, Store *store, guint64 limit,
              gboolean at_parse, GQuark domain, int code)
{
  g_auto (DfRebuildProgram) p = { 0 };
  g_autoptr (GError) error = NULL;
  gboolean parsed = dfi_rebuild_program_parse (prog, object_size, content_total, &p, &error);
  if (at_parse)
    {
      g_assert_false (parsed);
      g_assert_error (error, domain, code);
      g_test_message ("refused: %s", error->message);
      return 0;
    }
  g_assert_no_error (error);
  g_assert_true (parsed);
  g_autoptr (GByteArray) out = g_byte_array_new ();
  Sink k = { out, object_size, NULL };
  g_assert_false (dfi_rebuild_run (&p, store_open, store, sink_write, &k, limit, NULL, &error));
  g_assert_error (error, domain, code);
  g_test_message ("failed: %s", error->message);
  g_assert_cmpuint (out->len, <=, object_size);
  return out->len;
}

/* ---------------------------------------------------------------------- */
/* Hand-made programs                                                       */

typedef struct
{
  guint8 kind;
  guint64 out, content;
  guint32 n_pieces;
  GBytes *data; /* borrowed, may be NULL */
} TSeg;

typedef struct
{
  guint8 kind;
  gsize csum_len; /* 0 for none */
  guint8 csum[48];
  guint64 len;
} TPiece;

static GVariant *
byte_array_v (const guint8 *d, gsize n)
{
  return g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, d, n, 1);
}

/* Serializes a program as given, in normal form. */
static GBytes *
serialize (guint8 version, const TSeg *segs, guint n_segs, const TPiece *pieces, guint n_pieces, const guint8 *lit,
           gsize lit_len)
{
  GVariantBuilder sb, pb;
  g_variant_builder_init (&sb, G_VARIANT_TYPE ("a(yttuay)"));
  g_variant_builder_init (&pb, G_VARIANT_TYPE ("a(yayt)"));
  for (guint i = 0; i < n_segs; i++)
    {
      gsize dl = 0;
      const guint8 *d = segs[i].data ? g_bytes_get_data (segs[i].data, &dl) : NULL;
      g_variant_builder_add (&sb, "(yttu@ay)", segs[i].kind, GUINT64_TO_LE (segs[i].out),
                             GUINT64_TO_LE (segs[i].content), GUINT32_TO_LE (segs[i].n_pieces), byte_array_v (d, dl));
    }
  for (guint i = 0; i < n_pieces; i++)
    g_variant_builder_add (&pb, "(y@ayt)", pieces[i].kind, byte_array_v (pieces[i].csum, pieces[i].csum_len),
                           GUINT64_TO_LE (pieces[i].len));
  g_autoptr (GVariant) v = g_variant_ref_sink (g_variant_new ("(y@a(yttuay)@a(yayt)@ay)", version,
                                                              g_variant_builder_end (&sb),
                                                              g_variant_builder_end (&pb), byte_array_v (lit, lit_len)));
  g_autoptr (GVariant) n = g_variant_get_normal_form (v);
  return g_variant_get_data_as_bytes (n);
}

static const guint8 LIT[] = "0123456789abcdefghijklmnopqrstuvwxyz";

/* ---------------------------------------------------------------------- */
/* Valid programs                                                           */

static void
test_plain (void)
{
  Store st;
  store_init (&st);
  g_autoptr (GBytes) a = make_content (300000, 1), b = make_content (777, 2);
  guint8 ca[DF_SHA256_LEN], cb[DF_SHA256_LEN];
  store_put (&st, a, NULL, ca);
  store_put (&st, b, NULL, cb);
  /* The object: "head" + a + "mid" + b + b, in two plain segments. */
  g_autoptr (GByteArray) expect = g_byte_array_new ();
  g_byte_array_append (expect, (const guint8 *)"head", 4);
  g_byte_array_append (expect, g_bytes_get_data (a, NULL), g_bytes_get_size (a));
  g_byte_array_append (expect, (const guint8 *)"mid", 3);
  guint64 seg1 = expect->len;
  g_byte_array_append (expect, g_bytes_get_data (b, NULL), g_bytes_get_size (b));
  g_byte_array_append (expect, g_bytes_get_data (b, NULL), g_bytes_get_size (b));
  g_autoptr (DfRebuildBuilder) bld = dfi_rebuild_builder_new ();
  dfi_rebuild_builder_segment (bld, DF_REBUILD_SEGMENT_PLAIN, seg1, NULL);
  dfi_rebuild_builder_literal (bld, (const guint8 *)"he", 2);
  dfi_rebuild_builder_literal (bld, (const guint8 *)"ad", 2); /* merged with the one before */
  dfi_rebuild_builder_object (bld, ca, g_bytes_get_size (a));
  dfi_rebuild_builder_literal (bld, (const guint8 *)"mid", 3);
  dfi_rebuild_builder_segment (bld, DF_REBUILD_SEGMENT_PLAIN, expect->len - seg1, NULL);
  dfi_rebuild_builder_object (bld, cb, g_bytes_get_size (b));
  dfi_rebuild_builder_object (bld, cb, g_bytes_get_size (b));
  g_assert_cmpuint (dfi_rebuild_builder_literal_bytes (bld), ==, 7);
  guint64 total = 0;
  g_autoptr (GBytes) prog = dfi_rebuild_builder_end (bld, &total);
  g_assert_cmpuint (total, ==, expect->len);
  g_autoptr (GBytes) exp = g_bytes_new (expect->data, expect->len);
  g_auto (DfRebuildProgram) p = { 0 };
  g_autoptr (GError) error = NULL;
  g_assert_true (dfi_rebuild_program_parse (prog, expect->len, total, &p, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (p.n_segments, ==, 2);
  g_assert_cmpuint (p.n_pieces, ==, 5); /* "head", a, "mid" | b, b */
  g_assert_cmpuint (p.literals_len, ==, 7);
  g_assert_cmpuint (p.memory, ==, 0);
  g_assert_cmpuint (p.n_libraries, ==, 0);
  st.opens = 0;
  assert_rebuilds (prog, total, &st, exp);
  g_assert_cmpuint (st.opens, ==, 2 * 3); /* each object piece opened once a run */
  /* A plain program needs no encoder: a zero memory limit is enough. */
  gboolean ok;
  g_autoptr (GByteArray) out = run_program (prog, expect->len, total, &st, 0, NULL, &ok, &error);
  g_assert_no_error (error);
  g_assert_true (ok);
  store_clear (&st);
}

/* Raw deflate of @content by zlib at @level. */
static GBytes *
zlib_raw_ml (GBytes *content, int level, int wbits, int mem_level)
{
  z_stream z = { 0 };
  g_assert_cmpint (deflateInit2 (&z, level, Z_DEFLATED, wbits, mem_level, Z_DEFAULT_STRATEGY), ==, Z_OK);
  gsize cap = deflateBound (&z, g_bytes_get_size (content)) + 64;
  guint8 *out = g_malloc (cap);
  z.next_in = (Bytef *)g_bytes_get_data (content, NULL);
  z.avail_in = g_bytes_get_size (content);
  z.next_out = out;
  z.avail_out = cap;
  g_assert_cmpint (deflate (&z, Z_FINISH), ==, Z_STREAM_END);
  gsize n = z.total_out;
  deflateEnd (&z);
  return g_bytes_new_take (out, n);
}

static GBytes *
zlib_raw (GBytes *content, int level, int wbits)
{
  return zlib_raw_ml (content, level, wbits, 8);
}

static GBytes *
concat3 (GBytes *a, GBytes *b, GBytes *c)
{
  GByteArray *x = g_byte_array_new ();
  GBytes *all[] = { a, b, c };
  for (guint i = 0; i < 3; i++)
    if (all[i])
      g_byte_array_append (x, g_bytes_get_data (all[i], NULL), g_bytes_get_size (all[i]));
  return g_byte_array_free_to_bytes (x);
}

/* A deflate fixture: content = literal head + object + literal tail; the
 * object file = 7 plain bytes + raw deflate (level 6) + 5 plain bytes. */
typedef struct
{
  Store st;
  GBytes *head, *obj, *tail, *content, *stream, *recon, *file;
  guint8 cobj[DF_SHA256_LEN];
} DeflateFix;

/* With @splits, analyze puts a split wherever a segment allows one. */
static void
deflate_fix_init_sized (DeflateFix *f, gsize head, gsize obj, gsize tail, gboolean splits)
{
  store_init (&f->st);
  f->head = make_content (head, 11);
  f->obj = make_content (obj, 12);
  f->tail = make_content (tail, 13);
  store_put (&f->st, f->obj, NULL, f->cobj);
  f->content = concat3 (f->head, f->obj, f->tail);
  /* memLevel 2 with splits: small blocks, room for many. */
  f->stream = zlib_raw_ml (f->content, 6, -15, splits ? 2 : 8);
  g_autoptr (GError) error = NULL;
  if (splits)
    g_setenv ("DF_TEST_DEFLATE_SEGMENT_TARGET", "1", TRUE);
  DfDeflateStats st;
  g_assert_true (dfi_deflate_analyze (g_bytes_get_data (f->stream, NULL), g_bytes_get_size (f->stream), NULL, NULL,
                                      &f->recon, &st, &error));
  g_unsetenv ("DF_TEST_DEFLATE_SEGMENT_TARGET");
  g_assert_no_error (error);
  if (splits)
    g_assert_cmpuint (st.splits, >=, 3);
  g_autoptr (GBytes) pre = g_bytes_new_static ("PREFIX!", 7), post = g_bytes_new_static ("POST.", 5);
  f->file = concat3 (pre, f->stream, post);
}

static void
deflate_fix_init (DeflateFix *f)
{
  deflate_fix_init_sized (f, 1234, 150000, 4321, FALSE);
}

static void
deflate_fix_clear (DeflateFix *f)
{
  store_clear (&f->st);
  g_bytes_unref (f->head);
  g_bytes_unref (f->obj);
  g_bytes_unref (f->tail);
  g_bytes_unref (f->content);
  g_bytes_unref (f->stream);
  g_bytes_unref (f->recon);
  g_bytes_unref (f->file);
}

/* The fixture's program, the deflate segment's data @recon and its content
 * given an extra literal byte when @extra. */
static GBytes *
deflate_program (DeflateFix *f, GBytes *recon, gboolean extra, guint64 *total)
{
  g_autoptr (DfRebuildBuilder) b = dfi_rebuild_builder_new ();
  dfi_rebuild_builder_segment (b, DF_REBUILD_SEGMENT_PLAIN, 7, NULL);
  dfi_rebuild_builder_literal (b, (const guint8 *)"PREFIX!", 7);
  dfi_rebuild_builder_segment (b, DF_REBUILD_SEGMENT_DEFLATE, g_bytes_get_size (f->stream), recon);
  dfi_rebuild_builder_literal (b, g_bytes_get_data (f->head, NULL), g_bytes_get_size (f->head));
  dfi_rebuild_builder_object (b, f->cobj, g_bytes_get_size (f->obj));
  dfi_rebuild_builder_literal (b, g_bytes_get_data (f->tail, NULL), g_bytes_get_size (f->tail));
  if (extra)
    dfi_rebuild_builder_literal (b, (const guint8 *)"X", 1);
  dfi_rebuild_builder_segment (b, DF_REBUILD_SEGMENT_PLAIN, 5, NULL);
  dfi_rebuild_builder_literal (b, (const guint8 *)"POST.", 5);
  return dfi_rebuild_builder_end (b, total);
}

static void
test_deflate (void)
{
  DeflateFix f;
  deflate_fix_init (&f);
  guint64 total;
  g_autoptr (GBytes) prog = deflate_program (&f, f.recon, FALSE, &total);
  g_assert_cmpuint (total, ==, 7 + g_bytes_get_size (f.content) + 5);
  g_test_message ("deflate: %zu bytes of content, stream %zu, recon %zu, program %zu", g_bytes_get_size (f.content),
                  g_bytes_get_size (f.stream), g_bytes_get_size (f.recon), g_bytes_get_size (prog));
  g_auto (DfRebuildProgram) p = { 0 };
  g_autoptr (GError) error = NULL;
  g_assert_true (dfi_rebuild_program_parse (prog, g_bytes_get_size (f.file), total, &p, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (p.memory, ==, DF_DEFLATE_REBUILD_MEMORY);
  g_assert_cmpuint (p.n_libraries, ==, 0);
  assert_rebuilds (prog, total, &f.st, f.file);
  /* Below the deflate model's memory: refused before anything is written. */
  g_assert_cmpuint (assert_fails (prog, g_bytes_get_size (f.file), total, &f.st, DF_DEFLATE_REBUILD_MEMORY - 1, FALSE,
                                  DF_ERROR, DF_ERROR_INVALID_ARGUMENT),
                    ==, 0);
  deflate_fix_clear (&f);
}

/* A deflate segment with splits: its memory counts a second lane, and it
 * rebuilds the same in one lane, two, and as many as the cores (each lane
 * reading the object piece and the literals through its own reader). */
static void
test_deflate_lanes (void)
{
  DeflateFix f;
  deflate_fix_init_sized (&f, 120000, 240000, 110000, TRUE);
  guint64 total;
  g_autoptr (GBytes) prog = deflate_program (&f, f.recon, FALSE, &total);
  g_auto (DfRebuildProgram) p = { 0 };
  g_autoptr (GError) error = NULL;
  g_assert_true (dfi_rebuild_program_parse (prog, g_bytes_get_size (f.file), total, &p, &error));
  g_assert_cmpuint (p.deflate_lanes, ==, DF_DEFLATE_LANES);
  g_assert_cmpuint (p.memory, ==, DF_DEFLATE_REBUILD_MEMORY + (DF_DEFLATE_LANES - 1) * DF_DEFLATE_LANE_MEMORY);
  static const char *lanes[] = { "1", "2", NULL };
  for (guint i = 0; i < G_N_ELEMENTS (lanes); i++)
    {
      if (lanes[i])
        g_setenv ("DF_TEST_DEFLATE_LANES", lanes[i], TRUE);
      else
        g_unsetenv ("DF_TEST_DEFLATE_LANES");
      assert_rebuilds (prog, total, &f.st, f.file);
    }
  g_unsetenv ("DF_TEST_DEFLATE_LANES");
  /* Its memory is what the program declares: below, refused. */
  g_assert_cmpuint (assert_fails (prog, g_bytes_get_size (f.file), total, &f.st, p.memory - 1, FALSE, DF_ERROR,
                                  DF_ERROR_INVALID_ARGUMENT),
                    ==, 0);
  /* Content that does not fit (an extra literal byte): a clean error from
   * whichever lane meets it. */
  g_autoptr (GBytes) bad = deflate_program (&f, f.recon, TRUE, &total);
  g_setenv ("DF_TEST_DEFLATE_LANES", "2", TRUE);
  assert_fails (bad, g_bytes_get_size (f.file), total, &f.st, 64 * DF_MIB, FALSE, DF_ERROR, DF_ERROR_CORRUPT);
  g_unsetenv ("DF_TEST_DEFLATE_LANES");
  deflate_fix_clear (&f);
}

/* Finds the recipe of @stream made from @content (asserting one exists). */
static GBytes *
find_recipe (GBytes *stream, GBytes *content, DfRecipe *r)
{
  int sfd = memfd_create ("stream", 0), cfd = memfd_create ("content", 0);
  g_assert_cmpint (sfd, >=, 0);
  g_assert_cmpint (cfd, >=, 0);
  g_assert_true (dfi_write_all (sfd, g_bytes_get_data (stream, NULL), g_bytes_get_size (stream), "stream", NULL));
  g_assert_true (dfi_write_all (cfd, g_bytes_get_data (content, NULL), g_bytes_get_size (content), "content", NULL));
  DfRecipeSpan s = { sfd, 0, g_bytes_get_size (stream) }, c = { cfd, 0, g_bytes_get_size (content) };
  gboolean found = FALSE;
  g_autoptr (GError) error = NULL;
  g_assert_true (dfi_recipe_find (&s, &c, NULL, r, &found, NULL, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (found);
  close (sfd);
  close (cfd);
  return dfi_recipe_serialize (r);
}

/* A recipe fixture: content = literal head + object + literal tail, the
 * file = the compressed stream alone (one recipe segment). */
typedef struct
{
  Store st;
  GBytes *head, *obj, *tail, *content, *stream, *recipe;
  DfRecipe r;
  guint8 cobj[DF_SHA256_LEN];
} RecipeFix;

static GBytes *
xz_stream (GBytes *content)
{
  gsize cap = g_bytes_get_size (content) + 4096, n = 0;
  guint8 *out = g_malloc (cap);
  g_assert_cmpint (lzma_easy_buffer_encode (1, LZMA_CHECK_CRC64, NULL, g_bytes_get_data (content, NULL),
                                            g_bytes_get_size (content), out, &n, cap),
                   ==, LZMA_OK);
  return g_bytes_new_take (out, n);
}

static void
recipe_fix_init (RecipeFix *f, const char *codec)
{
  store_init (&f->st);
  f->head = make_content (512, 21);
  f->obj = make_content (90000, 22);
  f->tail = make_content (1000, 23);
  store_put (&f->st, f->obj, NULL, f->cobj);
  f->content = concat3 (f->head, f->obj, f->tail);
  if (strcmp (codec, "gzip") == 0)
    f->stream = zlib_raw (f->content, 9, 31); /* zlib's gzip wrapper */
  else if (strcmp (codec, "zlib") == 0)
    f->stream = zlib_raw (f->content, 6, 15);
  else
    f->stream = xz_stream (f->content);
  f->recipe = find_recipe (f->stream, f->content, &f->r);
  g_autofree char *desc = dfi_recipe_describe (&f->r);
  g_test_message ("%s: %s", codec, desc);
}

static void
recipe_fix_clear (RecipeFix *f)
{
  store_clear (&f->st);
  g_bytes_unref (f->head);
  g_bytes_unref (f->obj);
  g_bytes_unref (f->tail);
  g_bytes_unref (f->content);
  g_bytes_unref (f->stream);
  g_bytes_unref (f->recipe);
}

static GBytes *
recipe_program (RecipeFix *f, GBytes *recipe, guint64 out_size, guint64 *total)
{
  g_autoptr (DfRebuildBuilder) b = dfi_rebuild_builder_new ();
  dfi_rebuild_builder_segment (b, DF_REBUILD_SEGMENT_RECIPE, out_size, recipe);
  dfi_rebuild_builder_literal (b, g_bytes_get_data (f->head, NULL), g_bytes_get_size (f->head));
  dfi_rebuild_builder_object (b, f->cobj, g_bytes_get_size (f->obj));
  dfi_rebuild_builder_literal (b, g_bytes_get_data (f->tail, NULL), g_bytes_get_size (f->tail));
  return dfi_rebuild_builder_end (b, total);
}

static void
check_recipe (const char *codec)
{
  RecipeFix f;
  recipe_fix_init (&f, codec);
  guint64 total;
  g_autoptr (GBytes) prog = recipe_program (&f, f.recipe, g_bytes_get_size (f.stream), &total);
  g_assert_cmpuint (total, ==, g_bytes_get_size (f.content));
  g_auto (DfRebuildProgram) p = { 0 };
  g_autoptr (GError) error = NULL;
  g_assert_true (dfi_rebuild_program_parse (prog, g_bytes_get_size (f.stream), total, &p, &error));
  g_assert_no_error (error);
  guint64 mem;
  g_assert_true (dfi_recipe_memory (&f.r, &mem, NULL));
  g_assert_cmpuint (p.memory, ==, mem);
  g_assert_cmpuint (p.n_libraries, ==, 1);
  g_assert_cmpstr (p.libraries[0], ==, f.r.library);
  g_assert_null (p.libraries[1]);
  const char *why = NULL;
  g_assert_true (dfi_rebuild_libraries_match (p.libraries, &why));
  assert_rebuilds (prog, total, &f.st, f.stream);
  /* One byte under the encoder's memory: refused, nothing written. */
  g_assert_cmpuint (
      assert_fails (prog, g_bytes_get_size (f.stream), total, &f.st, mem - 1, FALSE, DF_ERROR, DF_ERROR_INVALID_ARGUMENT),
      ==, 0);
  /* The object's content replaced by other bytes of the same length: the
   * stream made differs in length, never past the segment's size. */
  g_autoptr (GBytes) other = make_content (g_bytes_get_size (f.obj), 99);
  store_put (&f.st, other, f.cobj, NULL);
  assert_fails (prog, g_bytes_get_size (f.stream), total, &f.st, 64 * DF_MIB, FALSE, DF_ERROR, DF_ERROR_CORRUPT);
  recipe_fix_clear (&f);
}

static void
test_recipe_gzip (void)
{
  check_recipe ("gzip");
}

static void
test_recipe_zlib (void)
{
  check_recipe ("zlib");
}

static void
test_recipe_xz (void)
{
  check_recipe ("xz");
}

/* Everything at once: plain + deflate + recipe segments in one object. */
static void
test_mixed (void)
{
  DeflateFix d;
  RecipeFix r;
  deflate_fix_init (&d);
  recipe_fix_init (&r, "gzip");
  store_put (&d.st, r.obj, NULL, NULL);
  g_autoptr (DfRebuildBuilder) b = dfi_rebuild_builder_new ();
  dfi_rebuild_builder_segment (b, DF_REBUILD_SEGMENT_DEFLATE, g_bytes_get_size (d.stream), d.recon);
  dfi_rebuild_builder_literal (b, g_bytes_get_data (d.head, NULL), g_bytes_get_size (d.head));
  dfi_rebuild_builder_object (b, d.cobj, g_bytes_get_size (d.obj));
  dfi_rebuild_builder_literal (b, g_bytes_get_data (d.tail, NULL), g_bytes_get_size (d.tail));
  dfi_rebuild_builder_segment (b, DF_REBUILD_SEGMENT_PLAIN, 3, NULL);
  dfi_rebuild_builder_literal (b, (const guint8 *)"mid", 3);
  dfi_rebuild_builder_segment (b, DF_REBUILD_SEGMENT_RECIPE, g_bytes_get_size (r.stream), r.recipe);
  dfi_rebuild_builder_literal (b, g_bytes_get_data (r.head, NULL), g_bytes_get_size (r.head));
  dfi_rebuild_builder_object (b, r.cobj, g_bytes_get_size (r.obj));
  dfi_rebuild_builder_literal (b, g_bytes_get_data (r.tail, NULL), g_bytes_get_size (r.tail));
  guint64 total;
  g_autoptr (GBytes) prog = dfi_rebuild_builder_end (b, &total);
  g_autoptr (GBytes) mid = g_bytes_new_static ("mid", 3);
  g_autoptr (GBytes) expect = concat3 (d.stream, mid, r.stream);
  assert_rebuilds (prog, total, &d.st, expect);
  deflate_fix_clear (&d);
  recipe_fix_clear (&r);
}

/* ---------------------------------------------------------------------- */
/* Hostile programs                                                         */

#define PARSE_BAD(prog, osize, ctotal) assert_fails (prog, osize, ctotal, NULL, 0, TRUE, DF_ERROR, DF_ERROR_INVALID_DELTA)

static TPiece
lit_piece (guint64 len)
{
  TPiece p = { DF_REBUILD_PIECE_LITERAL, 0, { 0 }, len };
  return p;
}

static TPiece
obj_piece (const guint8 *csum, gsize csum_len, guint64 len)
{
  TPiece p = { DF_REBUILD_PIECE_OBJECT, csum_len, { 0 }, len };
  memcpy (p.csum, csum, csum_len);
  return p;
}

static void
test_hostile_parse (void)
{
  guint8 csum[40];
  memset (csum, 0xab, sizeof csum);
  /* A valid baseline: one plain segment of 10 literal bytes + a 20-byte object. */
  TSeg seg = { DF_REBUILD_SEGMENT_PLAIN, 30, 30, 2, NULL };
  TPiece pcs[2] = { lit_piece (10), obj_piece (csum, 32, 20) };
  {
    g_autoptr (GBytes) ok = serialize (1, &seg, 1, pcs, 2, LIT, 10);
    g_auto (DfRebuildProgram) p = { 0 };
    g_autoptr (GError) error = NULL;
    g_assert_true (dfi_rebuild_program_parse (ok, 30, 30, &p, &error));
    g_assert_no_error (error);
    /* The object and content sizes the entry declares must match. */
    PARSE_BAD (ok, 31, 30); /* segment out sizes do not add up to the object */
    PARSE_BAD (ok, 29, 30); /* ... or exceed it */
    PARSE_BAD (ok, 30, 31); /* content_total mismatch */
    PARSE_BAD (ok, 30, 29);
    /* Not normal form: truncated, empty, a framing offset broken. */
    gsize n = g_bytes_get_size (ok);
    g_autoptr (GBytes) cut = g_bytes_new_from_bytes (ok, 0, n - 1);
    PARSE_BAD (cut, 30, 30);
    g_autoptr (GBytes) empty = g_bytes_new (NULL, 0);
    PARSE_BAD (empty, 30, 30);
    guint8 *bad = g_memdup2 (g_bytes_get_data (ok, NULL), n);
    bad[n - 1] ^= 0xff;
    g_autoptr (GBytes) badb = g_bytes_new_take (bad, n);
    PARSE_BAD (badb, 30, 30);
  }
  /* Wrong version (0 and 3; 2 is the one with patch pieces). */
  for (guint v = 0; v <= 3; v += 3)
    {
      g_autoptr (GBytes) b = serialize (v, &seg, 1, pcs, 2, LIT, 10);
      PARSE_BAD (b, 30, 30);
    }
  /* 0 segments. */
  {
    g_autoptr (GBytes) b = serialize (1, NULL, 0, NULL, 0, NULL, 0);
    PARSE_BAD (b, 0, 0);
  }
  /* Too many segments: 4097 plain segments of one literal byte each. */
  {
    guint n = DF_REBUILD_SEGMENTS_MAX + 1;
    g_autofree TSeg *ss = g_new0 (TSeg, n);
    g_autofree TPiece *pp = g_new0 (TPiece, n);
    g_autofree guint8 *lit = g_malloc0 (n);
    for (guint i = 0; i < n; i++)
      {
        ss[i] = (TSeg){ DF_REBUILD_SEGMENT_PLAIN, 1, 1, 1, NULL };
        pp[i] = lit_piece (1);
      }
    g_autoptr (GBytes) b = serialize (1, ss, n, pp, n, lit, n);
    PARSE_BAD (b, n, n);
    /* The same at the limit is accepted. */
    g_autoptr (GBytes) at = serialize (1, ss, n - 1, pp, n - 1, lit, n - 1);
    g_auto (DfRebuildProgram) p = { 0 };
    g_autoptr (GError) error = NULL;
    g_assert_true (dfi_rebuild_program_parse (at, n - 1, n - 1, &p, &error));
    g_assert_no_error (error);
  }
  /* Too many pieces: one segment of 256 Ki + 1 one-byte literals. */
  {
    guint n = DF_REBUILD_PIECES_MAX + 1;
    g_autofree TPiece *pp = g_new0 (TPiece, n);
    g_autofree guint8 *lit = g_malloc0 (n);
    for (guint i = 0; i < n; i++)
      pp[i] = lit_piece (1);
    TSeg s = { DF_REBUILD_SEGMENT_PLAIN, n, n, n, NULL };
    g_autoptr (GBytes) b = serialize (1, &s, 1, pp, n, lit, n);
    PARSE_BAD (b, n, n);
  }
  /* Pieces not adding up to the segment's content: fewer, more. */
  {
    TSeg s = { DF_REBUILD_SEGMENT_PLAIN, 30, 30, 1, NULL };
    g_autoptr (GBytes) b = serialize (1, &s, 1, pcs, 2, LIT, 10); /* the 2nd piece left over */
    PARSE_BAD (b, 30, 30);
    TPiece big[2] = { lit_piece (10), obj_piece (csum, 32, 21) };
    g_autoptr (GBytes) c = serialize (1, &seg, 1, big, 2, LIT, 10);
    PARSE_BAD (c, 30, 30);
    TSeg s3 = { DF_REBUILD_SEGMENT_PLAIN, 30, 30, 3, NULL }; /* more pieces than there are */
    g_autoptr (GBytes) d = serialize (1, &s3, 1, pcs, 2, LIT, 10);
    PARSE_BAD (d, 30, 30);
  }
  /* Literals longer and shorter than the literal pieces. */
  {
    g_autoptr (GBytes) longer = serialize (1, &seg, 1, pcs, 2, LIT, 11);
    PARSE_BAD (longer, 30, 30);
    g_autoptr (GBytes) shorter = serialize (1, &seg, 1, pcs, 2, LIT, 9);
    PARSE_BAD (shorter, 30, 30);
  }
  /* A piece of length 0; an object piece with a 31- or 33-byte checksum
   * or none; a literal piece with a checksum; an unknown piece kind. */
  {
    TSeg s0 = { DF_REBUILD_SEGMENT_PLAIN, 30, 30, 3, NULL };
    TPiece z[3] = { lit_piece (10), lit_piece (0), obj_piece (csum, 32, 20) };
    g_autoptr (GBytes) b = serialize (1, &s0, 1, z, 3, LIT, 10);
    PARSE_BAD (b, 30, 30);
    TPiece z2[3] = { lit_piece (10), obj_piece (csum, 32, 0), obj_piece (csum, 32, 20) };
    g_autoptr (GBytes) b2 = serialize (1, &s0, 1, z2, 3, LIT, 10);
    PARSE_BAD (b2, 30, 30);
    static const gsize lens[] = { 0, 31, 33 };
    for (guint i = 0; i < G_N_ELEMENTS (lens); i++)
      {
        TPiece w[2] = { lit_piece (10), obj_piece (csum, lens[i], 20) };
        g_autoptr (GBytes) c = serialize (1, &seg, 1, w, 2, LIT, 10);
        PARSE_BAD (c, 30, 30);
      }
    TPiece lc[2] = { lit_piece (10), obj_piece (csum, 32, 20) };
    lc[0].csum_len = 32;
    g_autoptr (GBytes) d = serialize (1, &seg, 1, lc, 2, LIT, 10);
    PARSE_BAD (d, 30, 30);
    TPiece uk[2] = { lit_piece (10), obj_piece (csum, 32, 20) };
    uk[1].kind = 3;
    g_autoptr (GBytes) e = serialize (1, &seg, 1, uk, 2, LIT, 10);
    PARSE_BAD (e, 30, 30);
    uk[1].kind = DF_REBUILD_PIECE_PATCH; /* with a 32-byte id */
    g_autoptr (GBytes) f = serialize (2, &seg, 1, uk, 2, LIT, 10);
    PARSE_BAD (f, 30, 30);
  }
  /* Plain segments with data, or whose content differs from their output;
   * a segment making nothing; an unknown segment kind; recipe and deflate
   * segments without data; a garbage recipe. */
  {
    g_autoptr (GBytes) junk = g_bytes_new_static ("junk", 4);
    TSeg s1 = { DF_REBUILD_SEGMENT_PLAIN, 30, 30, 2, junk };
    g_autoptr (GBytes) a = serialize (1, &s1, 1, pcs, 2, LIT, 10);
    PARSE_BAD (a, 30, 30);
    TSeg s2 = { DF_REBUILD_SEGMENT_PLAIN, 29, 30, 2, NULL };
    g_autoptr (GBytes) b = serialize (1, &s2, 1, pcs, 2, LIT, 10);
    PARSE_BAD (b, 29, 30);
    TSeg s3[2] = { { DF_REBUILD_SEGMENT_PLAIN, 30, 30, 2, NULL }, { DF_REBUILD_SEGMENT_PLAIN, 0, 0, 0, NULL } };
    g_autoptr (GBytes) c = serialize (1, s3, 2, pcs, 2, LIT, 10);
    PARSE_BAD (c, 30, 30);
    for (guint k = DF_REBUILD_SEGMENT_RECIPE; k <= 255; k += (k < 4 ? 1 : 250))
      {
        TSeg s4 = { k, 30, 30, 2, k > DF_REBUILD_SEGMENT_LAST ? junk : NULL };
        g_autoptr (GBytes) d = serialize (1, &s4, 1, pcs, 2, LIT, 10);
        PARSE_BAD (d, 30, 30);
      }
    TSeg s5 = { DF_REBUILD_SEGMENT_RECIPE, 30, 30, 2, junk };
    g_autoptr (GBytes) e = serialize (1, &s5, 1, pcs, 2, LIT, 10);
    PARSE_BAD (e, 30, 30);
  }
  /* Sums that overflow 64 bits. */
  {
    TSeg s[2] = { { DF_REBUILD_SEGMENT_PLAIN, G_MAXUINT64, G_MAXUINT64, 1, NULL },
                  { DF_REBUILD_SEGMENT_PLAIN, 2, 2, 1, NULL } };
    TPiece p[2] = { obj_piece (csum, 32, G_MAXUINT64), obj_piece (csum, 32, 2) };
    g_autoptr (GBytes) b = serialize (1, s, 2, p, 2, NULL, 0);
    PARSE_BAD (b, 1, 1);
    PARSE_BAD (b, G_MAXUINT64, G_MAXUINT64);
    TSeg one = { DF_REBUILD_SEGMENT_PLAIN, 1, 1, 2, NULL };
    TPiece q[2] = { obj_piece (csum, 32, G_MAXUINT64), obj_piece (csum, 32, 2) };
    g_autoptr (GBytes) c = serialize (1, &one, 1, q, 2, NULL, 0);
    PARSE_BAD (c, 1, 1);
  }
}

/* Recipe segments: sizes that differ from the recipe's, another library,
 * more than 8 libraries. */
static void
test_hostile_recipe (void)
{
  RecipeFix f;
  recipe_fix_init (&f, "zlib");
  guint64 slen = g_bytes_get_size (f.stream), total;
  /* The segment's output one byte off the recipe's stream size. */
  {
    g_autoptr (GBytes) prog = recipe_program (&f, f.recipe, slen + 1, &total);
    PARSE_BAD (prog, slen + 1, total);
  }
  /* The content one byte off the recipe's content size. */
  {
    g_autoptr (DfRebuildBuilder) b = dfi_rebuild_builder_new ();
    dfi_rebuild_builder_segment (b, DF_REBUILD_SEGMENT_RECIPE, slen, f.recipe);
    dfi_rebuild_builder_literal (b, g_bytes_get_data (f.head, NULL), g_bytes_get_size (f.head) - 1);
    dfi_rebuild_builder_object (b, f.cobj, g_bytes_get_size (f.obj));
    dfi_rebuild_builder_literal (b, g_bytes_get_data (f.tail, NULL), g_bytes_get_size (f.tail));
    g_autoptr (GBytes) prog = dfi_rebuild_builder_end (b, &total);
    PARSE_BAD (prog, slen, total);
  }
  /* A recipe for another library identity: parsed (the device decides from
   * the superblock's libraries), refused at run time, nothing written. */
  {
    DfRecipe other = f.r;
    g_strlcpy (other.library, "zlib 0.0.1", sizeof other.library);
    g_autoptr (GBytes) rb = dfi_recipe_serialize (&other);
    g_autoptr (GBytes) prog = recipe_program (&f, rb, slen, &total);
    g_auto (DfRebuildProgram) p = { 0 };
    g_autoptr (GError) error = NULL;
    g_assert_true (dfi_rebuild_program_parse (prog, slen, total, &p, &error));
    g_assert_cmpstr (p.libraries[0], ==, "zlib 0.0.1");
    const char *why = NULL;
    g_assert_false (dfi_rebuild_libraries_match (p.libraries, &why));
    g_assert_nonnull (why);
    g_autoptr (GByteArray) out = g_byte_array_new ();
    Sink k = { out, slen, NULL };
    g_assert_false (dfi_rebuild_run (&p, store_open, &f.st, sink_write, &k, 64 * DF_MIB, NULL, &error));
    g_assert_error (error, DF_ERROR, DF_ERROR_MISSING_BASE);
    g_assert_cmpuint (out->len, ==, 0);
  }
  /* The test hook makes every library differ. */
  {
    g_auto (DfRebuildProgram) p = { 0 };
    g_autoptr (GBytes) prog = recipe_program (&f, f.recipe, slen, &total);
    g_assert_true (dfi_rebuild_program_parse (prog, slen, total, &p, NULL));
    const char *why = NULL;
    g_setenv ("DF_TEST_REBUILD_LIBRARY", "mismatch", TRUE);
    g_assert_false (dfi_rebuild_libraries_match (p.libraries, &why));
    g_unsetenv ("DF_TEST_REBUILD_LIBRARY");
    g_assert_true (dfi_rebuild_libraries_match (p.libraries, &why));
  }
  /* Eight distinct libraries are accepted, nine are not. */
  for (guint n = 8; n <= 9; n++)
    {
      g_autoptr (DfRebuildBuilder) b = dfi_rebuild_builder_new ();
      GBytes *keep[9];
      for (guint i = 0; i < n; i++)
        {
          DfRecipe other = f.r;
          g_snprintf (other.library, sizeof other.library, "zlib 9.9.%u", i);
          keep[i] = dfi_recipe_serialize (&other);
          dfi_rebuild_builder_segment (b, DF_REBUILD_SEGMENT_RECIPE, slen, keep[i]);
          dfi_rebuild_builder_literal (b, g_bytes_get_data (f.content, NULL), g_bytes_get_size (f.content));
        }
      g_autoptr (GBytes) prog = dfi_rebuild_builder_end (b, &total);
      for (guint i = 0; i < n; i++)
        g_bytes_unref (keep[i]);
      g_auto (DfRebuildProgram) p = { 0 };
      g_autoptr (GError) error = NULL;
      gboolean ok = dfi_rebuild_program_parse (prog, slen * n, total, &p, &error);
      if (n == 8)
        {
          g_assert_no_error (error);
          g_assert_cmpuint (p.n_libraries, ==, 8);
          g_assert_null (p.libraries[8]);
        }
      else
        {
          g_assert_false (ok);
          g_assert_error (error, DF_ERROR, DF_ERROR_INVALID_DELTA);
        }
    }
  recipe_fix_clear (&f);
}

/* @recon with its declared content length (@expect) moved by @delta. */
static GBytes *
recon_with_content (GBytes *recon, guint64 expect, int delta)
{
  gsize rl;
  const guint8 *r = g_bytes_get_data (recon, &rl);
  g_assert_cmpuint (r[4], !=, 0xff);
  guint64 v = 0;
  gsize at = 7, k = 0;
  for (; k < 10; k++)
    {
      v |= (guint64)(r[at + k] & 0x7f) << (7 * k);
      if (!(r[at + k] & 0x80))
        break;
    }
  g_assert_cmpuint (v, ==, expect);
  gsize vlen = k + 1;
  GByteArray *e = g_byte_array_new ();
  g_byte_array_append (e, r, at);
  guint64 w = v + delta;
  do
    {
      guint8 c = w & 0x7f;
      w >>= 7;
      if (w)
        c |= 0x80;
      g_byte_array_append (e, &c, 1);
    }
  while (w);
  g_byte_array_append (e, r + at + vlen, rl - at - vlen);
  return g_byte_array_free_to_bytes (e);
}

/* Run-time failures: missing and short objects, deflate data for another
 * content length, cancellation. */
static void
test_hostile_run (void)
{
  DeflateFix f;
  deflate_fix_init (&f);
  guint64 flen = g_bytes_get_size (f.file), total;
  g_autoptr (GBytes) prog = deflate_program (&f, f.recon, FALSE, &total);
  /* The object is missing. */
  {
    Store empty;
    store_init (&empty);
    assert_fails (prog, flen, total, &empty, 64 * DF_MIB, FALSE, DF_ERROR, DF_ERROR_MISSING_BASE);
    store_clear (&empty);
  }
  /* The object is shorter than the program says (the store does not check). */
  {
    Store sh;
    store_init (&sh);
    g_autoptr (GBytes) cut = g_bytes_new_from_bytes (f.obj, 0, g_bytes_get_size (f.obj) - 1);
    store_put (&sh, cut, f.cobj, NULL);
    assert_fails (prog, flen, total, &sh, 64 * DF_MIB, FALSE, DF_ERROR, DF_ERROR_CORRUPT);
    /* Same in a plain segment. */
    g_autoptr (DfRebuildBuilder) b = dfi_rebuild_builder_new ();
    dfi_rebuild_builder_segment (b, DF_REBUILD_SEGMENT_PLAIN, g_bytes_get_size (f.obj), NULL);
    dfi_rebuild_builder_object (b, f.cobj, g_bytes_get_size (f.obj));
    guint64 t2;
    g_autoptr (GBytes) p2 = dfi_rebuild_builder_end (b, &t2);
    assert_fails (p2, g_bytes_get_size (f.obj), t2, &sh, 0, FALSE, DF_ERROR, DF_ERROR_CORRUPT);
    store_clear (&sh);
  }
  /* The segment's content one byte longer than the reconstruction data
   * declares: the rebuild leaves content unread. */
  {
    guint64 t2;
    g_autoptr (GBytes) p2 = deflate_program (&f, f.recon, TRUE, &t2);
    assert_fails (p2, flen, t2, &f.st, 64 * DF_MIB, FALSE, DF_ERROR, DF_ERROR_CORRUPT);
  }
  /* The reconstruction data edited to declare one byte less content (its
   * varint after the 7-byte header; the model index is not 0xff for a
   * zlib stream): content left over, DF_ERROR_CORRUPT. One byte more:
   * more than the segment holds, over the rebuild's limits,
   * DF_ERROR_INVALID_DELTA. */
  for (int delta = -1; delta <= 1; delta += 2)
    {
      g_autoptr (GBytes) edited = recon_with_content (f.recon, g_bytes_get_size (f.content), delta);
      guint64 t2;
      g_autoptr (GBytes) p2 = deflate_program (&f, edited, FALSE, &t2);
      assert_fails (p2, flen, t2, &f.st, 64 * DF_MIB, FALSE, DF_ERROR,
                    delta < 0 ? DF_ERROR_CORRUPT : DF_ERROR_INVALID_DELTA);
    }
  /* Cancelled before the run, and during it (after the first write). */
  {
    g_auto (DfRebuildProgram) p = { 0 };
    g_assert_true (dfi_rebuild_program_parse (prog, flen, total, &p, NULL));
    g_autoptr (GCancellable) c = g_cancellable_new ();
    g_cancellable_cancel (c);
    g_autoptr (GError) error = NULL;
    g_autoptr (GByteArray) out = g_byte_array_new ();
    Sink k = { out, flen, NULL };
    g_assert_false (dfi_rebuild_run (&p, store_open, &f.st, sink_write, &k, 64 * DF_MIB, c, &error));
    g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
    g_assert_cmpuint (out->len, <, flen);
  }
  {
    /* A plain program of 3 MiB, cancelled by the writer's first call. */
    Store big;
    store_init (&big);
    g_autoptr (GBytes) obj = make_content (3 * DF_MIB, 31);
    guint8 c[DF_SHA256_LEN];
    store_put (&big, obj, NULL, c);
    g_autoptr (DfRebuildBuilder) b = dfi_rebuild_builder_new ();
    dfi_rebuild_builder_segment (b, DF_REBUILD_SEGMENT_PLAIN, 3 * DF_MIB, NULL);
    dfi_rebuild_builder_object (b, c, 3 * DF_MIB);
    guint64 t2;
    g_autoptr (GBytes) p2 = dfi_rebuild_builder_end (b, &t2);
    g_auto (DfRebuildProgram) p = { 0 };
    g_assert_true (dfi_rebuild_program_parse (p2, 3 * DF_MIB, t2, &p, NULL));
    g_autoptr (GCancellable) cancel = g_cancellable_new ();
    g_autoptr (GError) error = NULL;
    g_autoptr (GByteArray) out = g_byte_array_new ();
    Sink k = { out, 3 * DF_MIB, cancel };
    g_assert_false (dfi_rebuild_run (&p, store_open, &big, sink_write, &k, 0, cancel, &error));
    g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
    g_assert_cmpuint (out->len, <, 3 * DF_MIB);
    store_clear (&big);
  }
  deflate_fix_clear (&f);
}

/* Every recipe segment starts an encoder, whose start costs far more
 * than a byte of content: 900 one-byte xz (preset 1) segments took 17-19 s
 * of CPU before programs were held to DF_REBUILD_ENCODER_SEGMENTS_MAX.
 * One more than the limit is refused when parsed; the limit itself runs. */
static void
segment_starts (GBytes *rb, size_t xzlen, const guint8 *one, guint n)
{
  g_autoptr (DfRebuildBuilder) b = dfi_rebuild_builder_new ();
  for (guint i = 0; i < n; i++)
    {
      dfi_rebuild_builder_segment (b, DF_REBUILD_SEGMENT_RECIPE, xzlen, rb);
      dfi_rebuild_builder_literal (b, one, 1);
    }
  guint64 total;
  g_autoptr (GBytes) prog = dfi_rebuild_builder_end (b, &total);
  g_auto (DfRebuildProgram) p = { 0 };
  g_autoptr (GError) error = NULL;
  gboolean parsed = dfi_rebuild_program_parse (prog, (guint64)xzlen * n, total, &p, &error);
  if (n > DF_REBUILD_ENCODER_SEGMENTS_MAX)
    {
      g_assert_false (parsed);
      g_assert_error (error, DF_ERROR, DF_ERROR_INVALID_DELTA);
      return;
    }
  g_assert_no_error (error);
  Store st;
  store_init (&st);
  g_autoptr (GByteArray) out = g_byte_array_new ();
  Sink k = { out, (guint64)xzlen * n, NULL };
  gboolean ok = dfi_rebuild_run (&p, store_open, &st, sink_write, &k, 16 * DF_MIB, NULL, &error);
  store_clear (&st);
  g_assert_no_error (error);
  g_assert_true (ok);
  g_assert_cmpuint (out->len, ==, (guint64)xzlen * n);
}

static void
test_hostile_segment_starts (void)
{
  static const guint8 one[1] = { 'k' };
  guint8 xz[256];
  size_t xzlen = 0;
  g_assert_cmpint (lzma_easy_buffer_encode (1, LZMA_CHECK_CRC64, NULL, one, 1, xz, &xzlen, sizeof xz), ==, LZMA_OK);
  g_autoptr (GBytes) stream = g_bytes_new (xz, xzlen), content = g_bytes_new_static (one, 1);
  DfRecipe r;
  g_autoptr (GBytes) rb = find_recipe (stream, content, &r);
  segment_starts (rb, xzlen, one, DF_REBUILD_ENCODER_SEGMENTS_MAX + 1);
  segment_starts (rb, xzlen, one, DF_REBUILD_ENCODER_SEGMENTS_MAX);
}

/* ---------------------------------------------------------------------- */
/* Patch pieces (version 2): content diffed against an old object's         */
/* decompressed content                                                     */

/* A zstd frame of @content against @prefix. */
static GBytes *
zstd_patch (GBytes *content, GBytes *prefix)
{
  g_autoptr (ZSTD_CCtx) cc = ZSTD_createCCtx ();
  ZSTD_CCtx_setParameter (cc, ZSTD_c_compressionLevel, 19);
  ZSTD_CCtx_setParameter (cc, ZSTD_c_windowLog, 24);
  g_assert_false (ZSTD_isError (ZSTD_CCtx_refPrefix (cc, g_bytes_get_data (prefix, NULL), g_bytes_get_size (prefix))));
  gsize cap = ZSTD_compressBound (g_bytes_get_size (content));
  guint8 *dst = g_malloc (cap);
  size_t n = ZSTD_compress2 (cc, dst, cap, g_bytes_get_data (content, NULL), g_bytes_get_size (content));
  g_assert_false (ZSTD_isError (n));
  return g_bytes_new_take (dst, n);
}

static GBytes *
zstd_of (GBytes *content)
{
  gsize cap = ZSTD_compressBound (g_bytes_get_size (content));
  guint8 *dst = g_malloc (cap);
  size_t n = ZSTD_compress (dst, cap, g_bytes_get_data (content, NULL), g_bytes_get_size (content), 3);
  g_assert_false (ZSTD_isError (n));
  return g_bytes_new_take (dst, n);
}

/* The fixture: old content, the new (the old with a new head and an edit),
 * the old stored gzip-compressed in two members and zstd-compressed. */
typedef struct
{
  Store st;
  GBytes *old, *new, *old_gz, *old_zst, *patch;
  guint8 c_gz[DF_SHA256_LEN], c_zst[DF_SHA256_LEN];
} PatchFix;

static void
patch_fix_init (PatchFix *f)
{
  store_init (&f->st);
  f->old = make_content (200000, 21);
  g_autoptr (GBytes) head = make_content (3000, 22);
  g_autoptr (GByteArray) nb = g_byte_array_new ();
  g_byte_array_append (nb, g_bytes_get_data (head, NULL), g_bytes_get_size (head));
  g_byte_array_append (nb, g_bytes_get_data (f->old, NULL), g_bytes_get_size (f->old));
  memcpy (nb->data + 100000, "an edit in the middle", 21);
  f->new = g_byte_array_free_to_bytes (g_steal_pointer (&nb));
  gsize half = g_bytes_get_size (f->old) / 2;
  g_autoptr (GBytes) a = g_bytes_new_from_bytes (f->old, 0, half);
  g_autoptr (GBytes) b = g_bytes_new_from_bytes (f->old, half, g_bytes_get_size (f->old) - half);
  g_autoptr (GBytes) ga = zlib_raw (a, 6, 31), gb = zlib_raw (b, 9, 31);
  f->old_gz = concat3 (ga, gb, NULL);
  f->old_zst = zstd_of (f->old);
  store_put (&f->st, f->old_gz, NULL, f->c_gz);
  store_put (&f->st, f->old_zst, NULL, f->c_zst);
  f->patch = zstd_patch (f->new, f->old);
}

static void
patch_fix_clear (PatchFix *f)
{
  store_clear (&f->st);
  g_clear_pointer (&f->old, g_bytes_unref);
  g_clear_pointer (&f->new, g_bytes_unref);
  g_clear_pointer (&f->old_gz, g_bytes_unref);
  g_clear_pointer (&f->old_zst, g_bytes_unref);
  g_clear_pointer (&f->patch, g_bytes_unref);
}

/* A program: a literal, then a patch piece of the new content against
 * @src (@src_size bytes, @source_size decompressed), as one plain segment. */
static GBytes *
patch_program (PatchFix *f, const guint8 *src, guint64 src_size, guint64 source_size, guint64 *content_total)
{
  g_autoptr (DfRebuildBuilder) b = dfi_rebuild_builder_new ();
  dfi_rebuild_builder_segment (b, DF_REBUILD_SEGMENT_PLAIN, 10 + g_bytes_get_size (f->new), NULL);
  dfi_rebuild_builder_literal (b, LIT, 10);
  dfi_rebuild_builder_patch (b, src, src_size, source_size, g_bytes_get_size (f->new),
                             g_bytes_get_data (f->patch, NULL), g_bytes_get_size (f->patch));
  return dfi_rebuild_builder_end (b, content_total);
}

static void
test_patch (void)
{
  PatchFix f;
  patch_fix_init (&f);
  g_test_message ("new content %zu bytes, its patch against the old %zu bytes", g_bytes_get_size (f.new),
                  g_bytes_get_size (f.patch));
  g_assert_cmpuint (g_bytes_get_size (f.patch) * 20, <, g_bytes_get_size (f.new));
  g_autoptr (GBytes) expect = concat3 (g_bytes_new_static (LIT, 10), f.new, NULL);
  for (guint which = 0; which < 2; which++)
    {
      const guint8 *src = which ? f.c_zst : f.c_gz;
      GBytes *file = which ? f.old_zst : f.old_gz;
      guint64 total;
      g_autoptr (GBytes) prog = patch_program (&f, src, g_bytes_get_size (file), g_bytes_get_size (f.old), &total);
      g_assert_cmpuint (((const guint8 *)g_bytes_get_data (prog, NULL))[0], ==, DF_REBUILD_PROGRAM_VERSION_PATCH);
      assert_rebuilds (prog, total, &f.st, expect);
      g_auto (DfRebuildProgram) p = { 0 };
      g_assert_true (dfi_rebuild_program_parse (prog, g_bytes_get_size (expect), total, &p, NULL));
      g_assert_cmpuint (p.n_patches, ==, 1);
      g_assert_cmpuint (p.memory, ==, g_bytes_get_size (f.old) + g_bytes_get_size (f.new) + DF_REBUILD_PATCH_DECODERS);
      /* Two patches against one source: it is opened and decompressed
       * once. */
      {
        g_autoptr (DfRebuildBuilder) b2 = dfi_rebuild_builder_new ();
        gsize nl = g_bytes_get_size (f.new);
        dfi_rebuild_builder_segment (b2, DF_REBUILD_SEGMENT_PLAIN, 2 * nl + 10, NULL);
        dfi_rebuild_builder_patch (b2, src, g_bytes_get_size (file), g_bytes_get_size (f.old), nl,
                                   g_bytes_get_data (f.patch, NULL), g_bytes_get_size (f.patch));
        dfi_rebuild_builder_literal (b2, LIT, 10);
        dfi_rebuild_builder_patch (b2, src, g_bytes_get_size (file), g_bytes_get_size (f.old), nl,
                                   g_bytes_get_data (f.patch, NULL), g_bytes_get_size (f.patch));
        guint64 total2;
        g_autoptr (GBytes) prog2 = dfi_rebuild_builder_end (b2, &total2);
        g_autoptr (GBytes) twice = concat3 (f.new, g_bytes_new_static (LIT, 10), f.new);
        f.st.opens = 0;
        assert_rebuilds (prog2, total2, &f.st, twice);
        g_assert_cmpuint (f.st.opens, ==, 2); /* once a run, two runs */
        g_auto (DfRebuildProgram) p2 = { 0 };
        g_assert_true (dfi_rebuild_program_parse (prog2, 2 * nl + 10, total2, &p2, NULL));
        g_assert_cmpuint (p2.n_patches, ==, 2);
        g_assert_cmpuint (p2.memory, ==, p.memory);
      }
      /* A budget below that refuses before anything runs. */
      assert_fails (prog, g_bytes_get_size (expect), total, &f.st, p.memory - 1, FALSE, DF_ERROR,
                    DF_ERROR_INVALID_ARGUMENT);
    }
  patch_fix_clear (&f);
}

/* A hand-made program: one plain segment of a patch piece with @pc's
 * fields, its frame @frame, at program @version. */
static GBytes *
patch_hand (guint8 version, const guint8 *csum, gsize csum_len, guint64 len, GBytes *frame)
{
  TPiece pc = { DF_REBUILD_PIECE_PATCH, csum_len, { 0 }, len };
  memcpy (pc.csum, csum, csum_len);
  TSeg seg = { DF_REBUILD_SEGMENT_PLAIN, len, len, 1, NULL };
  return serialize (version, &seg, 1, &pc, 1, g_bytes_get_data (frame, NULL), g_bytes_get_size (frame));
}

static void
patch_id (guint8 out[48], const guint8 *csum, guint64 size, guint64 source_size)
{
  memcpy (out, csum, DF_SHA256_LEN);
  guint64 a = GUINT64_TO_LE (size), b = GUINT64_TO_LE (source_size);
  memcpy (out + 32, &a, 8);
  memcpy (out + 40, &b, 8);
}

static void
test_hostile_patch (void)
{
  PatchFix f;
  patch_fix_init (&f);
  guint64 n = g_bytes_get_size (f.new), gz = g_bytes_get_size (f.old_gz), old = g_bytes_get_size (f.old);
  guint8 id[48];
  patch_id (id, f.c_gz, gz, old);
  /* The hand-made form of a good program runs. */
  {
    g_autoptr (GBytes) prog = patch_hand (2, id, 48, n, f.patch);
    assert_rebuilds (prog, n, &f.st, f.new);
  }
  /* Parse: a patch in a version-1 program, a frame that declares another
   * length, a frame cut short, bytes after the frame, a 40-byte id, a
   * source or an output over the limits, an empty source. */
  {
    g_autoptr (GBytes) prog = patch_hand (1, id, 48, n, f.patch);
    assert_fails (prog, n, n, &f.st, 64 * DF_MIB, TRUE, DF_ERROR, DF_ERROR_INVALID_DELTA);
  }
  {
    g_autoptr (GBytes) prog = patch_hand (2, id, 48, n - 1, f.patch);
    assert_fails (prog, n - 1, n - 1, &f.st, 64 * DF_MIB, TRUE, DF_ERROR, DF_ERROR_INVALID_DELTA);
  }
  {
    g_autoptr (GBytes) cut = g_bytes_new_from_bytes (f.patch, 0, g_bytes_get_size (f.patch) - 1);
    g_autoptr (GBytes) prog = patch_hand (2, id, 48, n, cut);
    assert_fails (prog, n, n, &f.st, 64 * DF_MIB, TRUE, DF_ERROR, DF_ERROR_INVALID_DELTA);
  }
  {
    g_autoptr (GBytes) more = concat3 (f.patch, g_bytes_new_static (LIT, 3), NULL);
    g_autoptr (GBytes) prog = patch_hand (2, id, 48, n, more);
    assert_fails (prog, n, n, &f.st, 64 * DF_MIB, TRUE, DF_ERROR, DF_ERROR_INVALID_DELTA);
  }
  {
    g_autoptr (GBytes) prog = patch_hand (2, id, 40, n, f.patch);
    assert_fails (prog, n, n, &f.st, 64 * DF_MIB, TRUE, DF_ERROR, DF_ERROR_INVALID_DELTA);
  }
  guint8 bad[48];
  patch_id (bad, f.c_gz, gz, DF_REBUILD_PATCH_SOURCE_MAX + 1);
  {
    g_autoptr (GBytes) prog = patch_hand (2, bad, 48, n, f.patch);
    assert_fails (prog, n, n, &f.st, 64 * DF_MIB, TRUE, DF_ERROR, DF_ERROR_INVALID_DELTA);
  }
  patch_id (bad, f.c_gz, gz, 0);
  {
    g_autoptr (GBytes) prog = patch_hand (2, bad, 48, n, f.patch);
    assert_fails (prog, n, n, &f.st, 64 * DF_MIB, TRUE, DF_ERROR, DF_ERROR_INVALID_DELTA);
  }
  {
    /* An output over the limit (its frame declares it; the content is
     * zeros, so the frame is small). */
    gsize big = DF_REBUILD_PATCH_OUTPUT_MAX + 1;
    g_autoptr (GBytes) zeros = g_bytes_new_take (g_malloc0 (big), big);
    g_autoptr (GBytes) frame = zstd_patch (zeros, f.old);
    g_autoptr (GBytes) prog = patch_hand (2, id, 48, big, frame);
    assert_fails (prog, big, big, &f.st, G_MAXUINT64, TRUE, DF_ERROR, DF_ERROR_INVALID_DELTA);
  }
  /* More than DF_REBUILD_PATCH_PIECES_MAX patch pieces. */
  {
    g_autoptr (GBytes) tiny = g_bytes_new_static ("x", 1);
    g_autoptr (GBytes) frame = zstd_patch (tiny, f.old);
    for (guint count = DF_REBUILD_PATCH_PIECES_MAX; count <= DF_REBUILD_PATCH_PIECES_MAX + 1; count++)
      {
        g_autoptr (DfRebuildBuilder) b = dfi_rebuild_builder_new ();
        dfi_rebuild_builder_segment (b, DF_REBUILD_SEGMENT_PLAIN, count, NULL);
        for (guint i = 0; i < count; i++)
          dfi_rebuild_builder_patch (b, f.c_gz, gz, old, 1, g_bytes_get_data (frame, NULL), g_bytes_get_size (frame));
        guint64 total;
        g_autoptr (GBytes) prog = dfi_rebuild_builder_end (b, &total);
        g_auto (DfRebuildProgram) p = { 0 };
        g_autoptr (GError) error = NULL;
        gboolean ok = dfi_rebuild_program_parse (prog, count, total, &p, &error);
        if (count <= DF_REBUILD_PATCH_PIECES_MAX)
          g_assert_no_error (error);
        else
          g_assert_error (error, DF_ERROR, DF_ERROR_INVALID_DELTA);
        g_assert_true (ok == (count <= DF_REBUILD_PATCH_PIECES_MAX));
      }
  }
  /* Run: the source missing, not compressed, cut short, decompressing to
   * more or less than declared; nothing is written past the object. */
  guint8 missing[DF_SHA256_LEN] = { 1 };
  patch_id (bad, missing, gz, old);
  {
    g_autoptr (GBytes) prog = patch_hand (2, bad, 48, n, f.patch);
    assert_fails (prog, n, n, &f.st, 64 * DF_MIB, FALSE, DF_ERROR, DF_ERROR_MISSING_BASE);
  }
  guint8 c_raw[DF_SHA256_LEN], c_cut[DF_SHA256_LEN], c_trail[DF_SHA256_LEN];
  store_put (&f.st, f.old, NULL, c_raw);
  g_autoptr (GBytes) cut = g_bytes_new_from_bytes (f.old_gz, 0, gz - 9);
  store_put (&f.st, cut, NULL, c_cut);
  g_autoptr (GBytes) trail = concat3 (f.old_zst, g_bytes_new_static ("junk", 4), NULL);
  store_put (&f.st, trail, NULL, c_trail);
  struct
  {
    const guint8 *c;
    guint64 size, source;
  } runs[] = {
    { c_raw, old, old },
    { c_cut, gz - 9, old },
    { c_trail, g_bytes_get_size (trail), old },
    { f.c_gz, gz, old - 1 },
    { f.c_gz, gz, old + 1 },
    { f.c_zst, g_bytes_get_size (f.old_zst), old - 1 },
    { f.c_zst, g_bytes_get_size (f.old_zst), old + 1 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (runs); i++)
    {
      patch_id (bad, runs[i].c, runs[i].size, runs[i].source);
      g_autoptr (GBytes) prog = patch_hand (2, bad, 48, n, f.patch);
      g_assert_cmpuint (assert_fails (prog, n, n, &f.st, 64 * DF_MIB, FALSE, DF_ERROR, DF_ERROR_CORRUPT), ==, 0);
    }
  patch_fix_clear (&f);
}

/* dfi_rebuild_unpack(): several gzip members, several zstd frames, and a
 * limit that a stream of unknown size must keep. */
static void
test_unpack (void)
{
  PatchFix f;
  patch_fix_init (&f);
  g_autoptr (GBytes) two = concat3 (f.old_zst, f.old_zst, NULL);
  g_autoptr (GBytes) twice = concat3 (f.old, f.old, NULL);
  struct
  {
    GBytes *file, *content;
  } ok[] = { { f.old_gz, f.old }, { f.old_zst, f.old }, { two, twice } };
  for (guint i = 0; i < G_N_ELEMENTS (ok); i++)
    for (guint known = 0; known < 2; known++)
      {
        g_autoptr (GInputStream) in = g_memory_input_stream_new_from_bytes (ok[i].file);
        g_autoptr (GError) error = NULL;
        guint64 size = g_bytes_get_size (ok[i].content);
        g_autoptr (GBytes) got = dfi_rebuild_unpack (in, known ? size : 0, known ? size : 16 * DF_MIB, NULL, &error);
        g_assert_no_error (error);
        g_assert_true (g_bytes_equal (got, ok[i].content));
      }
  for (guint i = 0; i < 2; i++)
    {
      g_autoptr (GInputStream) in = g_memory_input_stream_new_from_bytes (i ? f.old_zst : f.old_gz);
      g_autoptr (GError) error = NULL;
      g_autoptr (GBytes) got = dfi_rebuild_unpack (in, 0, g_bytes_get_size (f.old) - 1, NULL, &error);
      g_assert_null (got);
      g_assert_error (error, DF_ERROR, DF_ERROR_FAILED);
    }
  patch_fix_clear (&f);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/rebuild/plain", test_plain);
  g_test_add_func ("/rebuild/deflate", test_deflate);
  g_test_add_func ("/rebuild/deflate-lanes", test_deflate_lanes);
  g_test_add_func ("/rebuild/recipe/gzip", test_recipe_gzip);
  g_test_add_func ("/rebuild/recipe/zlib", test_recipe_zlib);
  g_test_add_func ("/rebuild/recipe/xz", test_recipe_xz);
  g_test_add_func ("/rebuild/mixed", test_mixed);
  g_test_add_func ("/rebuild/hostile/parse", test_hostile_parse);
  g_test_add_func ("/rebuild/hostile/recipe", test_hostile_recipe);
  g_test_add_func ("/rebuild/hostile/run", test_hostile_run);
  g_test_add_func ("/rebuild/hostile/segment-starts", test_hostile_segment_starts);
  g_test_add_func ("/rebuild/patch", test_patch);
  g_test_add_func ("/rebuild/hostile/patch", test_hostile_patch);
  g_test_add_func ("/rebuild/unpack", test_unpack);
  return g_test_run ();
}
