/* Deflate reconstruction (engine/transform/df-deflate.h): streams made at
 * test time by zlib (levels, strategies) and GNU gzip (levels, with and
 * without -n) over text, an ELF, random and repetitive data, small and
 * multi-MiB; each must rebuild byte for byte, and its reconstruction data's
 * size is printed as a share of the content. Then hostile reconstruction
 * data and streams. */
#include "df-deflate-private.h"

#include <glib/gstdio.h>
#include <zlib.h>

static gboolean verbose_sizes = TRUE;

/* --- Inputs --------------------------------------------------------------- */

static GBytes *
make_text (gsize len, guint32 seed)
{
  static const char *words[]
      = { "the",    "delta",  "object", "commit",   "of", "and", "a",      "tree",   "static", "part",  "apply",
          "fetch",  "kernel", "module", "initrd",   "to", "is",  "in",     "for",    "with",   "size",  "block",
          "stream", "data",   "repo",   "checksum", "\n", ", ",  "ostree", "update", "device", "server" };
  GRand *r = g_rand_new_with_seed (seed);
  GString *s = g_string_sized_new (len + 16);
  while (s->len < len)
    {
      g_string_append (s, words[g_rand_int_range (r, 0, G_N_ELEMENTS (words))]);
      if (g_rand_int_range (r, 0, 7))
        g_string_append_c (s, ' ');
      if (g_rand_int_range (r, 0, 50) == 0)
        g_string_append_printf (s, "%u", g_rand_int (r));
    }
  g_string_truncate (s, len);
  g_rand_free (r);
  return g_string_free_to_bytes (s);
}

static GBytes *
make_random (gsize len, guint32 seed)
{
  GRand *r = g_rand_new_with_seed (seed);
  guint8 *p = g_malloc (len + 1);
  for (gsize i = 0; i < len; i++)
    p[i] = (guint8)g_rand_int (r);
  g_rand_free (r);
  return g_bytes_new_take (p, len);
}

static GBytes *
make_repetitive (gsize len)
{
  guint8 *p = g_malloc (len + 1);
  for (gsize i = 0; i < len; i++)
    p[i] = i < len / 3 ? 0 : (i < 2 * len / 3 ? "abcab"[i % 5] : (guint8)((i / 1000) & 0xff));
  return g_bytes_new_take (p, len);
}

/* An ELF of this system, up to @max bytes (the test binary itself when
 * nothing else is there). */
static GBytes *
make_elf (gsize max)
{
  static const char *paths[] = { "/usr/bin/bash", "/usr/bin/gzip", "/bin/ls", "/proc/self/exe" };
  for (guint i = 0; i < G_N_ELEMENTS (paths); i++)
    {
      gchar *data;
      gsize len;
      if (g_file_get_contents (paths[i], &data, &len, NULL))
        return g_bytes_new_take (data, MIN (len, max));
    }
  g_assert_not_reached ();
}

/* --- Encoders ----------------------------------------------------------------- */

static GBytes *
zlib_raw (GBytes *in, int level, int strategy, int mem_level)
{
  z_stream z = { 0 };
  g_assert_cmpint (deflateInit2 (&z, level, Z_DEFLATED, -15, mem_level, strategy), ==, Z_OK);
  gsize len;
  const guint8 *p = g_bytes_get_data (in, &len);
  gsize cap = deflateBound (&z, len) + 64;
  guint8 *out = g_malloc (cap);
  z.next_in = (Bytef *)p;
  z.avail_in = len;
  z.next_out = out;
  z.avail_out = cap;
  g_assert_cmpint (deflate (&z, Z_FINISH), ==, Z_STREAM_END);
  gsize n = z.total_out;
  deflateEnd (&z);
  return g_bytes_new_take (out, n);
}

/* pigz's way: chunks of @chunk bytes, each compressed on its own with the
 * 32 KiB before it as a dictionary and ended by a sync flush (an empty
 * stored block); @full: full flushes instead, no dictionary. */
static GBytes *
zlib_chunked (GBytes *in, int level, gsize chunk, gboolean full)
{
  gsize len;
  const guint8 *p = g_bytes_get_data (in, &len);
  GByteArray *out = g_byte_array_new ();
  for (gsize at = 0; at < len || at == 0; at += chunk)
    {
      z_stream z = { 0 };
      g_assert_cmpint (deflateInit2 (&z, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), ==, Z_OK);
      if (at > 0 && !full)
        {
          gsize d = MIN (at, 32768);
          g_assert_cmpint (deflateSetDictionary (&z, p + at - d, d), ==, Z_OK);
        }
      gsize n = MIN (chunk, len - at);
      gboolean last = at + n >= len;
      gsize cap = deflateBound (&z, n) + 64;
      guint8 *buf = g_malloc (cap);
      z.next_in = (Bytef *)p + at;
      z.avail_in = n;
      z.next_out = buf;
      z.avail_out = cap;
      int r = deflate (&z, last ? Z_FINISH : full ? Z_FULL_FLUSH : Z_SYNC_FLUSH);
      g_assert_cmpint (r, ==, last ? Z_STREAM_END : Z_OK);
      g_byte_array_append (out, buf, z.total_out);
      g_free (buf);
      deflateEnd (&z);
      if (last)
        break;
    }
  return g_byte_array_free_to_bytes (out);
}

/* GNU gzip's raw deflate stream: the member without its header (10 bytes,
 * the name after it when FNAME is set) and trailer (8 bytes). */
static GBytes *
gzip_raw (GBytes *in, const char *level, gboolean no_name)
{
  g_autofree char *dir = g_dir_make_tmp ("df-deflate-XXXXXX", NULL);
  g_assert_nonnull (dir);
  g_autofree char *path = g_build_filename (dir, "input.bin", NULL);
  gsize len;
  const guint8 *p = g_bytes_get_data (in, &len);
  g_assert_true (g_file_set_contents (path, (const char *)p, len, NULL));
  gchar *out = NULL;
  gsize outlen = 0;
  gint status;
  g_autoptr (GError) error = NULL;
  g_autofree char *err = NULL;
  /* Output is binary: read it as a file rather than through the spawn's
   * string. */
  g_autofree char *gz = g_build_filename (dir, "out.gz", NULL);
  g_autofree char *cmd = g_strdup_printf ("gzip -c %s %s '%s' > '%s'", level, no_name ? "-n" : "-N", path, gz);
  const char *sh[] = { "/bin/sh", "-c", cmd, NULL };
  g_assert_true (g_spawn_sync (NULL, (char **)sh, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, &err, &status, &error));
  g_assert_no_error (error);
  g_assert_true (g_spawn_check_wait_status (status, NULL));
  g_assert_true (g_file_get_contents (gz, &out, &outlen, NULL));
  g_unlink (gz);
  g_unlink (path);
  g_rmdir (dir);
  g_assert_cmpuint (outlen, >=, 18);
  g_assert_cmpuint ((guint8)out[0], ==, 0x1f);
  g_assert_cmpuint ((guint8)out[1], ==, 0x8b);
  gsize start = 10;
  if (out[3] & 8)
    {
      while (start < outlen && out[start] != 0)
        start++;
      start++;
    }
  g_assert_cmpuint (start + 8, <=, outlen);
  GBytes *raw = g_bytes_new (out + start, outlen - start - 8);
  g_free (out);
  return raw;
}

/* --- Round trip -------------------------------------------------------------- */

/* Content in memory for lanes: each lane reads through its own copy. */
typedef struct
{
  const guint8 *data;
  gsize len, at;
} MemSrc;

static gssize
memsrc_read (gpointer data, guint8 *buf, gsize len, GError **error)
{
  MemSrc *r = data;
  gsize n = MIN (len, r->len - r->at);
  memcpy (buf, r->data + r->at, n);
  r->at += n;
  return (gssize)n;
}

static gboolean
memsrc_skip (gpointer data, guint64 n, GError **error)
{
  MemSrc *r = data;
  r->at += (gsize)MIN (n, (guint64)(r->len - r->at));
  return TRUE;
}

static gpointer
memsrc_clone (gpointer data)
{
  return g_memdup2 (data, sizeof (MemSrc));
}

static gboolean
memsrc_write (gpointer data, const guint8 *buf, gsize len, GError **error)
{
  g_byte_array_append (data, buf, (guint)len);
  return TRUE;
}

static const DfDeflateSource memsrc = { memsrc_read, memsrc_skip, memsrc_clone, g_free };

/* Rebuilds in @lanes lanes into a new GBytes, or NULL with @error set. */
static GBytes *
rebuild_lanes (const guint8 *content, gsize clen, const guint8 *recon, gsize rlen, guint lanes, GError **error)
{
  MemSrc src = { content, clen, 0 };
  g_autoptr (GByteArray) out = g_byte_array_new ();
  if (!dfi_deflate_rebuild_lanes (&memsrc, &src, lanes, recon, rlen, memsrc_write, out, NULL, NULL, error))
    return NULL;
  return g_byte_array_free_to_bytes (g_steal_pointer (&out));
}

static void
roundtrip_splits (const char *name, GBytes *content, GBytes *stream, guint64 *splits_out)
{
  gsize clen, slen;
  const guint8 *c = g_bytes_get_data (content, &clen), *s = g_bytes_get_data (stream, &slen);
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) back = dfi_deflate_inflate (s, slen, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (g_bytes_get_data (back, NULL), g_bytes_get_size (back), c, clen);
  g_autoptr (GBytes) recon = NULL;
  DfDeflateStats st;
  gint64 t0 = g_get_monotonic_time ();
  g_assert_true (dfi_deflate_analyze (s, slen, NULL, NULL, &recon, &st, &error));
  g_assert_no_error (error);
  gint64 t1 = g_get_monotonic_time ();
  gsize rlen;
  const guint8 *r = g_bytes_get_data (recon, &rlen);
  g_autoptr (GBytes) again = dfi_deflate_rebuild_bytes (c, clen, r, rlen, NULL, &error);
  g_assert_no_error (error);
  gint64 t2 = g_get_monotonic_time ();
  g_assert_cmpmem (g_bytes_get_data (again, NULL), g_bytes_get_size (again), s, slen);
  /* With splits, lanes rebuild the same: two, and more lanes than there
   * are (capped). */
  if (st.splits > 0)
    for (guint lanes = 2; lanes <= 3; lanes++)
      {
        g_autoptr (GBytes) lb = rebuild_lanes (c, clen, r, rlen, lanes, &error);
        g_assert_no_error (error);
        g_assert_cmpmem (g_bytes_get_data (lb, NULL), g_bytes_get_size (lb), s, slen);
      }
  if (splits_out)
    *splits_out = st.splits;
  /* zlib's and gzip's streams of 64 KiB or more: well under 1 %. */
  if (clen >= 65536)
    g_assert_cmpuint (rlen * 100, <, clen);
  if (verbose_sizes)
    g_test_message ("%-28s content %8" G_GSIZE_FORMAT " stream %8" G_GSIZE_FORMAT " recon %6" G_GSIZE_FORMAT
                    " = %.4f%% of content; model %u/%u; %" G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT
                    " tokens mispredicted, %" G_GUINT64_FORMAT " blocks (%" G_GUINT64_FORMAT
                    " dynamic, %" G_GUINT64_FORMAT " headers verbatim), %" G_GUINT64_FORMAT
                    " splits; analyze %.1f ms, rebuild %.1f ms",
                    name, clen, slen, rlen, clen ? 100.0 * rlen / clen : 0.0, st.model, st.model_flags,
                    st.mispredictions, st.tokens, st.blocks, st.dynamic_blocks, st.headers_verbatim, st.splits,
                    (t1 - t0) / 1000.0, (t2 - t1) / 1000.0);
}

static void
roundtrip (const char *name, GBytes *content, GBytes *stream)
{
  roundtrip_splits (name, content, stream, NULL);
}

typedef struct
{
  const char *name;
  GBytes *(*make) (void);
} Input;

static GBytes *
in_empty (void)
{
  return g_bytes_new (NULL, 0);
}
static GBytes *
in_text_small (void)
{
  return make_text (3000, 1);
}
static GBytes *
in_text (void)
{
  return make_text (300 * 1024, 2);
}
static GBytes *
in_elf (void)
{
  return make_elf (400 * 1024);
}
static GBytes *
in_random (void)
{
  return make_random (200 * 1024, 3);
}
static GBytes *
in_repetitive (void)
{
  return make_repetitive (300 * 1024);
}

static const Input inputs[] = {
  { "empty", in_empty }, { "text-3k", in_text_small }, { "text", in_text },
  { "elf", in_elf },     { "random", in_random },      { "repetitive", in_repetitive },
};

static void
test_zlib (void)
{
  static const struct
  {
    const char *name;
    int level, strategy;
  } settings[] = {
    { "1", 1, Z_DEFAULT_STRATEGY },  { "6", 6, Z_DEFAULT_STRATEGY },     { "9", 9, Z_DEFAULT_STRATEGY },
    { "6-filtered", 6, Z_FILTERED }, { "6-huffman", 6, Z_HUFFMAN_ONLY }, { "6-rle", 6, Z_RLE },
    { "6-fixed", 6, Z_FIXED },
  };
  for (guint i = 0; i < G_N_ELEMENTS (inputs); i++)
    {
      g_autoptr (GBytes) content = inputs[i].make ();
      for (guint k = 0; k < G_N_ELEMENTS (settings); k++)
        {
          g_autoptr (GBytes) stream = zlib_raw (content, settings[k].level, settings[k].strategy, 8);
          g_autofree char *name = g_strdup_printf ("zlib-%s %s", settings[k].name, inputs[i].name);
          roundtrip (name, content, stream);
        }
    }
}

static void
test_gzip (void)
{
  static const char *levels[] = { "-1", "-6", "-9" };
  for (guint i = 0; i < G_N_ELEMENTS (inputs); i++)
    {
      g_autoptr (GBytes) content = inputs[i].make ();
      for (guint k = 0; k < G_N_ELEMENTS (levels); k++)
        for (int no_name = 0; no_name < 2; no_name++)
          {
            if (!no_name && k != 1)
              continue;
            g_autoptr (GBytes) stream = gzip_raw (content, levels[k], no_name);
            g_autofree char *name = g_strdup_printf ("gzip%s%s %s", levels[k], no_name ? " -n" : "", inputs[i].name);
            roundtrip (name, content, stream);
          }
    }
}

/* Several MiB of text, random bytes (stored blocks, over which the
 * model's window lags) and an ELF. */
static GBytes *
make_large (void)
{
  g_autoptr (GBytes) text = make_text (2 * 1024 * 1024, 7);
  g_autoptr (GBytes) rnd = make_random (640 * 1024, 8);
  g_autoptr (GBytes) elf = make_elf (1024 * 1024);
  g_autoptr (GByteArray) all = g_byte_array_new ();
  g_byte_array_append (all, g_bytes_get_data (text, NULL), g_bytes_get_size (text));
  g_byte_array_append (all, g_bytes_get_data (rnd, NULL), g_bytes_get_size (rnd));
  g_byte_array_append (all, g_bytes_get_data (elf, NULL), g_bytes_get_size (elf));
  return g_byte_array_free_to_bytes (g_steal_pointer (&all));
}

/* Several MiB: many blocks, window slides, gzip's and zlib's block cuts,
 * and splits (lanes) for every lazy model, none for the greedy one. */
static void
test_large (void)
{
  g_autoptr (GBytes) content = make_large ();
  guint64 splits;
  /* gzip -6 and -9, zlib at 6, 9 (memLevel 9), 4, Z_RLE: at least 3
   * splits; zlib -1 (greedy): none. */
  static const struct
  {
    const char *name, *gzip_level;
    int level, strategy, mem_level;
    gboolean lazy;
  } encoders[] = {
    { "gzip-6 -n", "-6", 0, 0, 0, TRUE },
    { "gzip-9 -n", "-9", 0, 0, 0, TRUE },
    { "zlib-6", NULL, 6, Z_DEFAULT_STRATEGY, 8, TRUE },
    { "zlib-9 memlevel 9", NULL, 9, Z_DEFAULT_STRATEGY, 9, TRUE },
    { "zlib-4", NULL, 4, Z_DEFAULT_STRATEGY, 8, TRUE },
    { "zlib-6 rle", NULL, 6, Z_RLE, 8, TRUE },
    { "zlib-1", NULL, 1, Z_DEFAULT_STRATEGY, 8, FALSE },
  };
  for (guint i = 0; i < G_N_ELEMENTS (encoders); i++)
    {
      g_autoptr (GBytes) stream = encoders[i].gzip_level
                                      ? gzip_raw (content, encoders[i].gzip_level, TRUE)
                                      : zlib_raw (content, encoders[i].level, encoders[i].strategy, encoders[i].mem_level);
      g_autofree char *name = g_strdup_printf ("%s text+random+elf", encoders[i].name);
      roundtrip_splits (name, content, stream, &splits);
      if (encoders[i].lazy)
        g_assert_cmpuint (splits, >=, 3);
      else
        g_assert_cmpuint (splits, ==, 0);
    }
}

/* zlib with another window (windowBits) or hash (memLevel): the model
 * finds them. */
static void
test_zlib_params (void)
{
  g_autoptr (GBytes) text = make_text (600 * 1024, 17);
  static const struct
  {
    const char *name;
    int level, wbits, mem_level;
  } settings[] = { { "zlib-6 memlevel 1", 6, 15, 1 },
                   { "zlib-9 memlevel 9", 9, 15, 9 },
                   { "zlib-6 windowbits 10", 6, 10, 8 },
                   { "zlib-1 windowbits 12 memlevel 4", 1, 12, 4 } };
  for (guint k = 0; k < G_N_ELEMENTS (settings); k++)
    {
      z_stream z = { 0 };
      g_assert_cmpint (deflateInit2 (&z, settings[k].level, Z_DEFLATED, -settings[k].wbits, settings[k].mem_level,
                                     Z_DEFAULT_STRATEGY),
                       ==, Z_OK);
      gsize len;
      const guint8 *p = g_bytes_get_data (text, &len);
      gsize cap = deflateBound (&z, len) + 64;
      guint8 *out = g_malloc (cap);
      z.next_in = (Bytef *)p;
      z.avail_in = len;
      z.next_out = out;
      z.avail_out = cap;
      g_assert_cmpint (deflate (&z, Z_FINISH), ==, Z_STREAM_END);
      g_autoptr (GBytes) stream = g_bytes_new_take (out, z.total_out);
      deflateEnd (&z);
      roundtrip (settings[k].name, text, stream);
    }
}

static gboolean
write_out (gpointer u, const guint8 *b, gsize l, GError **e)
{
  g_byte_array_append (u, b, (guint)l);
  return TRUE;
}

/* Flushes and chunks (pigz): empty stored blocks between the chunks. */
static void
test_chunked (void)
{
  g_autoptr (GBytes) text = make_text (1024 * 1024, 8);
  g_autoptr (GBytes) sync = zlib_chunked (text, 6, 128 * 1024, FALSE);
  roundtrip ("pigz-like 128k chunks text", text, sync);
  g_autoptr (GBytes) full = zlib_chunked (text, 9, 100 * 1000, TRUE);
  roundtrip ("full flushes text", text, full);
  g_autoptr (GBytes) elf = make_elf (600 * 1024);
  g_autoptr (GBytes) esync = zlib_chunked (elf, 6, 64 * 1024, FALSE);
  roundtrip ("pigz-like 64k chunks elf", elf, esync);
}

/* Hand-made streams: odd but valid choices every encoder may make. */
static void
test_odd_streams (void)
{
  /* A stored block with non-zero alignment bits, then a fixed final block
   * with non-zero bits after it: "ab" stored, "c" fixed. */
  DfBitWriter *w = g_new (DfBitWriter, 1);
  g_autoptr (GByteArray) out = g_byte_array_new ();
  dfi_bit_writer_init (w, write_out, out);
  g_assert_true (dfi_bit_writer_put (w, 0, 3, NULL));    /* not final, stored */
  g_assert_true (dfi_bit_writer_put (w, 0x15, 5, NULL)); /* alignment bits */
  g_assert_true (dfi_bit_writer_put (w, 2u | 0xfffdu << 16, 32, NULL));
  g_assert_true (dfi_bit_writer_put (w, 'a', 8, NULL));
  g_assert_true (dfi_bit_writer_put (w, 'b', 8, NULL));
  guint8 fl[288], fd[32];
  dfi_deflate_fixed_lengths (fl, fd);
  DfHuffEncoder lit, dist;
  dfi_huff_encoder_build (&lit, fl, 288);
  dfi_huff_encoder_build (&dist, fd, 30);
  g_assert_true (dfi_bit_writer_put (w, 1 | 1 << 1, 3, NULL));
  g_assert_true (dfi_deflate_token_write (w, &lit, &dist, 'c', NULL));
  /* "abc" again: a match of 3 at distance 3. */
  g_assert_true (dfi_deflate_token_write (w, &lit, &dist, dfi_deflate_tok_match (3, 3), NULL));
  g_assert_true (dfi_bit_writer_put (w, lit.code[256], lit.len[256], NULL));
  guint pend = (8 - dfi_bit_writer_pending (w)) % 8;
  g_assert_true (dfi_bit_writer_put (w, (1u << pend) - 1, pend, NULL));
  g_assert_true (dfi_bit_writer_flush_buf (w, NULL));
  g_free (w);
  g_autoptr (GBytes) stream = g_bytes_new (out->data, out->len);
  g_autoptr (GBytes) content = g_bytes_new ("abcabc", 6);
  roundtrip ("hand-made pad bits", content, stream);
}

/* --- Hostile --------------------------------------------------------------------- */

static void
test_bad_streams (void)
{
  g_autoptr (GBytes) content = make_text (20000, 9);
  g_autoptr (GBytes) stream = zlib_raw (content, 6, Z_DEFAULT_STRATEGY, 8);
  gsize slen;
  const guint8 *s = g_bytes_get_data (stream, &slen);
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) recon = NULL;
  /* Every truncation is refused cleanly. */
  for (gsize cut = 0; cut < slen; cut += 1 + cut / 8)
    {
      g_assert_false (dfi_deflate_analyze (s, cut, NULL, NULL, &recon, NULL, &error));
      g_assert_error (error, DF_ERROR, DF_ERROR_INVALID_ARGUMENT);
      g_clear_error (&error);
    }
  /* Trailing bytes: refused unless the caller asks where the stream ends. */
  g_autoptr (GByteArray) more = g_byte_array_new ();
  g_byte_array_append (more, s, slen);
  g_byte_array_append (more, (const guint8 *)"TRAILER!", 8);
  g_assert_false (dfi_deflate_analyze (more->data, more->len, NULL, NULL, &recon, NULL, &error));
  g_assert_error (error, DF_ERROR, DF_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  gsize consumed = 0;
  g_assert_true (dfi_deflate_analyze (more->data, more->len, NULL, &consumed, &recon, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (consumed, ==, slen);
  g_clear_pointer (&recon, g_bytes_unref);
  /* Block type 3. */
  guint8 bt3[] = { 0x07, 0, 0 };
  g_assert_false (dfi_deflate_analyze (bt3, sizeof bt3, NULL, NULL, &recon, NULL, &error));
  g_assert_error (error, DF_ERROR, DF_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  /* Content over the limit. */
  DfDeflateLimits lim;
  dfi_deflate_limits_init (&lim);
  lim.max_output = 1000;
  g_assert_false (dfi_deflate_analyze (s, slen, &lim, NULL, &recon, NULL, &error));
  g_assert_error (error, DF_ERROR, DF_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  /* Random bytes never crash the tokeniser. */
  GRand *r = g_rand_new_with_seed (5);
  guint8 buf[512];
  for (guint k = 0; k < 3000; k++)
    {
      guint n = g_rand_int_range (r, 0, sizeof buf);
      for (guint i = 0; i < n; i++)
        buf[i] = (guint8)g_rand_int (r);
      g_autoptr (GBytes) out = dfi_deflate_inflate (buf, n, NULL, NULL, &error);
      (void)out;
      g_clear_error (&error);
    }
  g_rand_free (r);
}

static void
test_bad_recon (void)
{
  g_autoptr (GBytes) content = make_text (60000, 11);
  g_autoptr (GBytes) stream = gzip_raw (content, "-6", TRUE);
  gsize clen, slen, rlen;
  const guint8 *c = g_bytes_get_data (content, &clen), *s = g_bytes_get_data (stream, &slen);
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) recon = NULL;
  g_assert_true (dfi_deflate_analyze (s, slen, NULL, NULL, &recon, NULL, &error));
  const guint8 *r = g_bytes_get_data (recon, &rlen);
  /* Every truncation fails cleanly. */
  for (gsize cut = 0; cut < rlen; cut++)
    {
      g_autoptr (GBytes) out = dfi_deflate_rebuild_bytes (c, clen, r, cut, NULL, &error);
      (void)out;
      g_assert_null (out);
      g_assert_nonnull (error);
      g_clear_error (&error);
    }
  /* Content of another length. */
  g_autoptr (GBytes) o1 = dfi_deflate_rebuild_bytes (c, clen - 1, r, rlen, NULL, &error);
  (void)o1;
  g_assert_error (error, DF_ERROR, DF_ERROR_CORRUPT);
  g_clear_error (&error);
  g_autoptr (GByteArray) longer = g_byte_array_new ();
  g_byte_array_append (longer, c, clen);
  g_byte_array_append (longer, (const guint8 *)"x", 1);
  g_autoptr (GBytes) o2 = dfi_deflate_rebuild_bytes (longer->data, longer->len, r, rlen, NULL, &error);
  (void)o2;
  g_assert_error (error, DF_ERROR, DF_ERROR_CORRUPT);
  g_clear_error (&error);
  /* Over the limits. */
  DfDeflateLimits lim;
  dfi_deflate_limits_init (&lim);
  lim.max_output = clen - 1;
  g_autoptr (GBytes) o3 = dfi_deflate_rebuild_bytes (c, clen, r, rlen, &lim, &error);
  (void)o3;
  g_assert_error (error, DF_ERROR, DF_ERROR_INVALID_DELTA);
  g_clear_error (&error);
  /* Flipped bits anywhere, and bodies of random bytes behind a valid
   * header: a clean error or some stream, never a crash. */
  g_autoptr (GByteArray) bad = g_byte_array_new ();
  g_byte_array_append (bad, r, rlen);
  GRand *rnd = g_rand_new_with_seed (12);
  for (guint k = 0; k < 2000; k++)
    {
      memcpy (bad->data, r, rlen);
      guint flips = g_rand_int_range (rnd, 1, 4);
      for (guint f = 0; f < flips; f++)
        bad->data[g_rand_int_range (rnd, 0, rlen)] ^= (guint8)(1u << g_rand_int_range (rnd, 0, 8));
      g_autoptr (GBytes) out = dfi_deflate_rebuild_bytes (c, clen, bad->data, rlen, NULL, &error);
      (void)out;
      g_assert_true ((out == NULL) == (error != NULL));
      g_clear_error (&error);
    }
  g_rand_free (rnd);
}

/* A body made by hand: corrections that do not fit the content. */
static void
test_forged_body (void)
{
  guint8 content[] = "abcdefgh";
  struct
  {
    const char *what;
    guint8 body[16];
    gsize len;
    int code;
  } cases[] = {
    /* final fixed block, 2 tokens, run 1, a match of 3 at distance 1: "bbb" is not there */
    { "match not in content", { 3, 2, 1, 2, 0, 0 }, 6, DF_ERROR_CORRUPT },
    /* distance before the start */
    { "distance before start", { 3, 2, 0, 2, 0, 9 }, 6, DF_ERROR_INVALID_DELTA },
    /* more tokens than content */
    { "tokens past content", { 3, 9, 9 }, 3, DF_ERROR_CORRUPT },
    /* run longer than the block */
    { "run past block", { 3, 2, 3 }, 3, DF_ERROR_INVALID_DELTA },
    /* a bad correction code */
    { "bad correction", { 3, 2, 0, 7 }, 4, DF_ERROR_INVALID_DELTA },
    /* stored block longer than the content */
    { "stored too long", { 1, 20, 0 }, 3, DF_ERROR_CORRUPT },
    /* bad block head */
    { "bad head", { 0x40 }, 1, DF_ERROR_INVALID_DELTA },
    /* valid, then bytes after the end */
    { "bytes after", { 1, 8, 0, 0, 0 }, 5, DF_ERROR_INVALID_DELTA },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GByteArray) rec = g_byte_array_new ();
      g_byte_array_append (rec, (const guint8 *)"DFZ\1", 4);
      /* Explicit parameters (zlib's level 6). */
      guint8 model[12]
          = { 0xff, DF_DEFLATE_MODEL_TOO_FAR, 15 << 4 | 7, DF_DEFLATE_MODEL_LAZY, 8, 0, 16, 0, 128, 0, 128, 0 };
      g_byte_array_append (rec, model, 12);
      guint8 lens[2] = { 8, 40 };
      g_byte_array_append (rec, lens, 2);
      guint8 frame[256];
      gsize z = ZSTD_compress (frame, sizeof frame, cases[i].body, cases[i].len, 3);
      g_assert_false (ZSTD_isError (z));
      g_byte_array_append (rec, frame, z);
      g_autoptr (GError) error = NULL;
      g_autoptr (GBytes) out = dfi_deflate_rebuild_bytes (content, 8, rec->data, rec->len, NULL, &error);
      (void)out;
      g_test_message ("%s: %s", cases[i].what, error ? error->message : "(no error)");
      g_assert_error (error, DF_ERROR, cases[i].code);
    }
  /* A raw body (flags bit 7): one final stored block of the 8 bytes. */
  guint8 raw[] = { 'D', 'F', 'Z', 1, 0, 0x81, 15 << 4 | 7, 8, 13, 1, 8, 0 };
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) out = dfi_deflate_rebuild_bytes (content, 8, raw, sizeof raw, NULL, &error);
  (void)out;
  g_assert_no_error (error);
  g_autoptr (GBytes) back
      = dfi_deflate_inflate (g_bytes_get_data (out, NULL), g_bytes_get_size (out), NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (g_bytes_get_data (back, NULL), g_bytes_get_size (back), content, 8);
  /* The same with a byte more, or one less. */
  guint8 raw2[sizeof raw + 1];
  memcpy (raw2, raw, sizeof raw);
  raw2[sizeof raw] = 0;
  g_autoptr (GBytes) o2 = dfi_deflate_rebuild_bytes (content, 8, raw2, sizeof raw2, NULL, &error);
  (void)o2;
  g_assert_error (error, DF_ERROR, DF_ERROR_INVALID_DELTA);
  g_clear_error (&error);
  g_autoptr (GBytes) o3 = dfi_deflate_rebuild_bytes (content, 8, raw, sizeof raw - 1, NULL, &error);
  (void)o3;
  g_assert_error (error, DF_ERROR, DF_ERROR_INVALID_DELTA);
}

/* Reconstruction data of @content at zlib level 6, memLevel 2 (many small
 * blocks), with a split wherever a segment allows one. */
static GBytes *
split_recon (GBytes *content, GBytes **stream_out, guint64 *splits)
{
  g_autoptr (GBytes) stream = zlib_raw (content, 6, Z_DEFAULT_STRATEGY, 2);
  g_autoptr (GError) error = NULL;
  GBytes *recon = NULL;
  DfDeflateStats st;
  g_setenv ("DF_TEST_DEFLATE_SEGMENT_TARGET", "1", TRUE);
  gboolean ok = dfi_deflate_analyze (g_bytes_get_data (stream, NULL), g_bytes_get_size (stream), NULL, NULL, &recon,
                                     &st, &error);
  g_unsetenv ("DF_TEST_DEFLATE_SEGMENT_TARGET");
  g_assert_no_error (error);
  g_assert_true (ok);
  *splits = st.splits;
  *stream_out = g_steal_pointer (&stream);
  return recon;
}

static gboolean
fail_write (gpointer data, const guint8 *buf, gsize len, GError **error)
{
  guint *calls = data;
  if (++*calls < 2)
    return TRUE;
  return dfi_throw (error, DF_ERROR_IO, "the disk is full");
}

/* A rebuild of forged data made @out, or failed as a forgery must. */
static void
assert_forgery_refused (GBytes *out, GError **error)
{
  if (out != NULL)
    return;
  g_assert_true (g_error_matches (*error, DF_ERROR, DF_ERROR_INVALID_DELTA)
                 || g_error_matches (*error, DF_ERROR, DF_ERROR_CORRUPT));
  g_clear_error (error);
}

/* Forged split tables: every byte of the table changed, in one lane and
 * in two: a clean error (a split's numbers out of range or not at a
 * block, a state the model does not keep) or a stream, the same in both;
 * a failing writer and a cancelled rebuild stop every lane. */
static void
test_split_hostile (void)
{
  g_autoptr (GBytes) content = make_text (400 * 1024, 21);
  g_autoptr (GBytes) stream = NULL;
  guint64 splits;
  g_autoptr (GBytes) recon = split_recon (content, &stream, &splits);
  g_assert_cmpuint (splits, >=, 4);
  gsize clen, rlen;
  const guint8 *c = g_bytes_get_data (content, &clen), *r = g_bytes_get_data (recon, &rlen);
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) plain = NULL;
  g_assert_true (dfi_deflate_analyze (g_bytes_get_data (stream, NULL), g_bytes_get_size (stream), NULL, NULL, &plain,
                                      NULL, &error));
  /* The table: where the data with splits and the data without part
   * (after the flags byte), for as many bytes as it is longer. */
  const guint8 *p = g_bytes_get_data (plain, NULL);
  gsize start = DF_DEFLATE_RECON_FIXED_LEN, table = rlen - g_bytes_get_size (plain);
  while (r[start] == p[start])
    start++;
  g_assert_cmpuint (table, >, 4 * splits);
  guint failed = 0, made = 0;
  for (gsize i = start; i < start + table; i++)
    for (guint v = 0; v < 2; v++)
      {
        g_autofree guint8 *f = g_memdup2 (r, rlen);
        f[i] ^= v ? 0x80 : 0x01;
        g_autoptr (GBytes) one = dfi_deflate_rebuild_bytes (c, clen, f, rlen, NULL, &error);
        assert_forgery_refused (one, &error);
        g_autoptr (GBytes) two = rebuild_lanes (c, clen, f, rlen, 2, &error);
        assert_forgery_refused (two, &error);
        g_assert_true ((one == NULL) == (two == NULL));
        if (two == NULL)
          failed++;
        else
          {
            g_assert_true (g_bytes_equal (one, two));
            made++;
          }
      }
  g_test_message ("%" G_GUINT64_FORMAT " splits, %" G_GSIZE_FORMAT " bytes of table: %u forgeries refused, %u made a "
                  "stream",
                  splits, table, failed, made);
  g_assert_cmpuint (failed, >, 0);

  /* A writer that fails, a cancelled rebuild: every lane stops. */
  MemSrc src = { c, clen, 0 };
  guint calls = 0;
  g_assert_false (dfi_deflate_rebuild_lanes (&memsrc, &src, 2, r, rlen, fail_write, &calls, NULL, NULL, &error));
  g_assert_error (error, DF_ERROR, DF_ERROR_IO);
  g_clear_error (&error);
  g_autoptr (GCancellable) cancel = g_cancellable_new ();
  g_cancellable_cancel (cancel);
  src.at = 0;
  g_autoptr (GByteArray) out = g_byte_array_new ();
  g_assert_false (dfi_deflate_rebuild_lanes (&memsrc, &src, 2, r, rlen, memsrc_write, out, NULL, cancel, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  /* Content shorter than declared, in lanes: the lane that reads past it
   * says so. */
  g_clear_error (&error);
  src = (MemSrc){ c, clen - 1000, 0 };
  g_byte_array_set_size (out, 0);
  g_assert_false (dfi_deflate_rebuild_lanes (&memsrc, &src, 2, r, rlen, memsrc_write, out, NULL, NULL, &error));
  g_assert_error (error, DF_ERROR, DF_ERROR_CORRUPT);
}

/* By hand, not a test: `test-deflate --bench FILE.gz` analyzes and rebuilds
 * the deflate stream of a single-member gzip file and prints speeds and
 * the reconstruction data's size. */
static gint64
cpu_us (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (gint64)ts.tv_sec * G_USEC_PER_SEC + ts.tv_nsec / 1000;
}

static int
bench (const char *path)
{
  gchar *data;
  gsize len;
  g_autoptr (GError) error = NULL;
  if (!g_file_get_contents (path, &data, &len, &error))
    {
      g_printerr ("%s\n", error->message);
      return 1;
    }
  gsize start = 10;
  if (len < 18 || (guint8)data[0] != 0x1f || (guint8)data[1] != 0x8b)
    return 1;
  if (data[3] & 4)
    start += 2 + ((guint8)data[10] | (guint8)data[11] << 8);
  for (int f = 8; f <= 16; f <<= 1)
    if (data[3] & f)
      {
        while (start < len && data[start])
          start++;
        start++;
      }
  if (data[3] & 2)
    start += 2;
  gsize consumed;
  DfDeflateStats st;
  g_autoptr (GBytes) recon = NULL;
  gint64 t0 = cpu_us ();
  if (!dfi_deflate_analyze ((guint8 *)data + start, len - start, NULL, &consumed, &recon, &st, &error))
    {
      g_printerr ("%s\n", error->message);
      return 1;
    }
  gint64 t1 = cpu_us ();
  g_autoptr (GBytes) content = dfi_deflate_inflate ((guint8 *)data + start, len - start, NULL, &consumed, NULL);
  gint64 t2 = cpu_us ();
  g_autoptr (GBytes) again
      = dfi_deflate_rebuild_bytes (g_bytes_get_data (content, NULL), g_bytes_get_size (content),
                                   g_bytes_get_data (recon, NULL), g_bytes_get_size (recon), NULL, &error);
  gint64 t3 = cpu_us ();
  gboolean same = again && g_bytes_get_size (again) == consumed
                  && memcmp (g_bytes_get_data (again, NULL), data + start, consumed) == 0;
  /* The same in DF_DEFLATE_LANES lanes, by the clock. */
  gint64 w0 = g_get_monotonic_time (), c0 = cpu_us ();
  g_autoptr (GBytes) lanes_out
      = rebuild_lanes (g_bytes_get_data (content, NULL), g_bytes_get_size (content), g_bytes_get_data (recon, NULL),
                       g_bytes_get_size (recon), DF_DEFLATE_LANES, &error);
  gint64 w1 = g_get_monotonic_time (), c1 = cpu_us ();
  gboolean lanes_same = lanes_out && g_bytes_get_size (lanes_out) == consumed
                        && memcmp (g_bytes_get_data (lanes_out, NULL), data + start, consumed) == 0;
  if (!lanes_out)
    g_printerr ("lanes: %s\n", error->message);
  g_print ("%" G_GUINT64_FORMAT " splits; %u lanes: rebuild %.2f s by the clock, %.2f s of CPU; identical: %s\n",
           st.splits, DF_DEFLATE_LANES, (w1 - w0) / 1e6, (c1 - c0) / 1e6, lanes_same ? "yes" : "NO");
  same = same && lanes_same;
  double mb = st.content_len / 1e6;
  g_print ("%s: content %" G_GUINT64_FORMAT " stream %" G_GUINT64_FORMAT " recon %" G_GUINT64_FORMAT
           " (%.4f%%), model %u/%u, %" G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT " mispredicted, %" G_GUINT64_FORMAT
           " blocks, %" G_GUINT64_FORMAT " headers verbatim; analyze %.1f s of CPU (%.1f MB/s, with its check),"
           " rebuild %.1f s of CPU (%.1f MB/s); identical: %s\n",
           path, st.content_len, st.stream_len, st.recon_len, 100.0 * st.recon_len / MAX (st.content_len, 1), st.model,
           st.model_flags, st.mispredictions, st.tokens, st.blocks, st.headers_verbatim, (t1 - t0) / 1e6,
           mb / ((t1 - t0) / 1e6), (t3 - t2) / 1e6, mb / ((t3 - t2) / 1e6), same ? "yes" : "NO");
  g_free (data);
  return same ? 0 : 1;
}

int
main (int argc, char **argv)
{
  if (argc == 3 && strcmp (argv[1], "--bench") == 0)
    return bench (argv[2]);
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/deflate/zlib", test_zlib);
  g_test_add_func ("/deflate/gzip", test_gzip);
  g_test_add_func ("/deflate/large", test_large);
  g_test_add_func ("/deflate/split-hostile", test_split_hostile);
  g_test_add_func ("/deflate/zlib-params", test_zlib_params);
  g_test_add_func ("/deflate/chunked", test_chunked);
  g_test_add_func ("/deflate/odd-streams", test_odd_streams);
  g_test_add_func ("/deflate/bad-streams", test_bad_streams);
  g_test_add_func ("/deflate/bad-recon", test_bad_recon);
  g_test_add_func ("/deflate/forged-body", test_forged_body);
  return g_test_run ();
}
