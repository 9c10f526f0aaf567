/* Writes the binary seed inputs of the fuzz targets that need engine code
 * to make (not run by the tests; testdata/fuzz/README says how the corpora
 * were made):
 *   make-seeds diff DIR               diffs made by the generator's encoder
 *   make-seeds filez DIR              .filez objects made by libostree
 *   make-seeds stock-part DIR DELTA   every part of a stock delta, decoded
 *   make-seeds part DIR DELTA         every part of a native delta, as a file, with its declared size
 *   make-seeds deflate DIR            zlib streams and their reconstruction data
 *   make-seeds attacks ROOT           the structures of issue 14's attacks, into ROOT/TARGET/attack-*
 *   make-seeds recipe DIR             rebuild recipes of every codec, as the search finds them
 *   make-seeds rebuild DIR            rebuild programs of every segment kind, and a few broken ones
 *   make-seeds rebuild-slow DIR       rebuild programs of many encoder segments (slow: see below)
 *   make-seeds superblock-v3 SB BODY  a format-3 superblock (rebuild and alternative parts), and its body
 * (see make-seeds-attacks.c for the last). */
#include <fcntl.h>
#include <stdio.h>
#include <lzma.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include "df-bsdiff.h"
#include "df-deflate.h"
#include "df-part.h"
#include "df-rebuild.h"
#include "df-recipe.h"
#include "df-stock.h"
#include "df-superblock.h"
#include "filez-util.h"
#include "fuzz-rebuild.h"
#include "make-seeds.h"

void
put (const char *dir, const char *name, const guint8 *a, gsize alen, const guint8 *b, gsize blen)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_autoptr (GByteArray) all = g_byte_array_new ();
  g_byte_array_append (all, a, alen);
  if (b)
    g_byte_array_append (all, b, blen);
  if (!g_file_set_contents (path, (const char *)all->data, all->len, NULL))
    exit (1);
}

static void
diff_seed (const char *dir, const char *name, gsize old_len, gsize new_len, guint shift, guint every)
{
  g_autofree guint8 *old = g_malloc (old_len), *nw = g_malloc (new_len);
  for (gsize i = 0; i < old_len; i++)
    old[i] = (guint8)(i * 7 + 3); /* the pattern fuzz-diff.c uses */
  for (gsize i = 0; i < new_len; i++)
    nw[i] = old[(i + shift) % old_len] + (every && i % every == 0 ? 5 : 0);
  GByteArray *sec[DF_SECTION_COUNT];
  for (guint s = 0; s < DF_SECTION_COUNT; s++)
    sec[s] = g_byte_array_new ();
  if (!dfi_bsdiff (old, old_len, nw, new_len, sec))
    exit (1);
  g_autoptr (GByteArray) payload = dfi_part_payload_assemble (sec);
  guint8 hdr[4] = { old_len & 0xff, old_len >> 8, new_len & 0xff, new_len >> 8 };
  put (dir, name, hdr, 4, payload->data, payload->len);
  for (guint s = 0; s < DF_SECTION_COUNT; s++)
    g_byte_array_unref (sec[s]);
}

static void
filez_seed (const char *dir, const char *name, const guint8 *data, gsize len, const char *target)
{
  DfStockFallback fb;
  g_autoptr (GBytes) b = test_filez_new (data, len, target, &fb);
  if (b == NULL)
    exit (1);
  put (dir, name, g_bytes_get_data (b, NULL), g_bytes_get_size (b), NULL, 0);
}

/* Finds the recipe of @stream (made from @content) and writes it. */
static void
recipe_seed (const char *dir, const char *name, const guint8 *stream, gsize slen, const guint8 *content, gsize clen)
{
  int sfd = memfd_create ("stream", 0), cfd = memfd_create ("content", 0);
  if (!dfi_write_all (sfd, stream, slen, "seed", NULL) || !dfi_write_all (cfd, content, clen, "seed", NULL))
    exit (1);
  DfRecipeSpan s = { sfd, 0, slen }, c = { cfd, 0, clen };
  DfRecipe r;
  gboolean found;
  if (!dfi_recipe_find (&s, &c, NULL, &r, &found, NULL, NULL, NULL) || !found)
    exit (1);
  g_autoptr (GBytes) b = dfi_recipe_serialize (&r);
  put (dir, name, g_bytes_get_data (b, NULL), g_bytes_get_size (b), NULL, 0);
  close (sfd);
  close (cfd);
}

static void
recipe_seeds (const char *dir)
{
  guint8 content[20000];
  for (gsize i = 0; i < sizeof content; i++)
    content[i] = "recipe seed, compressible "[i % 26] + (i % 997 == 0);
  /* zlib: a zlib stream made by compress2(), its body as raw deflate, and
   * a gzip member around that body. */
  guint8 z[30000], gz[30100];
  uLongf zlen = sizeof z;
  if (compress2 (z, &zlen, content, sizeof content, 9) != Z_OK)
    exit (1);
  recipe_seed (dir, "zlib-9", z, zlen, content, sizeof content);
  recipe_seed (dir, "deflate-9", z + 2, zlen - 6, content, sizeof content);
  static const guint8 gzip_header[] = { 0x1f, 0x8b, 8, 8, 0, 0, 0, 0, 2, 3, 's', 'e', 'e', 'd', 0 };
  guint32 crc = crc32 (0, content, sizeof content), isize = sizeof content;
  memcpy (gz, gzip_header, sizeof gzip_header);
  memcpy (gz + sizeof gzip_header, z + 2, zlen - 6);
  for (guint i = 0; i < 4; i++)
    {
      gz[sizeof gzip_header + zlen - 6 + i] = (guint8)(crc >> (8 * i));
      gz[sizeof gzip_header + zlen - 2 + i] = (guint8)(isize >> (8 * i));
    }
  recipe_seed (dir, "gzip-9-name", gz, sizeof gzip_header + zlen - 6 + 8, content, sizeof content);
  /* zstd, one shot at a known size (the search finds the streaming
   * equivalent), and xz with a BCJ filter. */
  guint8 zs[30000];
  size_t zslen = ZSTD_compress (zs, sizeof zs, content, sizeof content, 3);
  if (ZSTD_isError (zslen))
    exit (1);
  recipe_seed (dir, "zstd-3", zs, zslen, content, sizeof content);
  lzma_options_lzma lz;
  lzma_lzma_preset (&lz, 1);
  lzma_filter filters[] = { { LZMA_FILTER_X86, NULL }, { LZMA_FILTER_LZMA2, &lz }, { LZMA_VLI_UNKNOWN, NULL } };
  guint8 xz[30000];
  size_t xzlen = 0;
  if (lzma_stream_buffer_encode (filters, LZMA_CHECK_CRC32, NULL, content, sizeof content, xz, &xzlen, sizeof xz) !=
      LZMA_OK)
    exit (1);
  recipe_seed (dir, "xz-1-x86", xz, xzlen, content, sizeof content);
}

/* The content fuzz-deflate.c rebuilds over (the same pattern). */
static void
deflate_content (guint8 *p, gsize len)
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

/* A raw deflate stream of @content by zlib (even first byte), and its
 * reconstruction data (odd first byte). */
static void
deflate_seed (const char *dir, const char *name, const guint8 *content, gsize len, int level, int strategy, int wbits,
              int mem_level)
{
  z_stream z = { 0 };
  if (deflateInit2 (&z, level, Z_DEFLATED, -wbits, mem_level, strategy) != Z_OK)
    exit (1);
  gsize cap = deflateBound (&z, len) + 64;
  g_autofree guint8 *out = g_malloc (cap);
  z.next_in = (Bytef *)content;
  z.avail_in = len;
  z.next_out = out;
  z.avail_out = cap;
  if (deflate (&z, Z_FINISH) != Z_STREAM_END)
    exit (1);
  gsize n = z.total_out;
  deflateEnd (&z);
  guint8 even = 0, odd = 1;
  g_autofree char *sname = g_strdup_printf ("stream-%s", name);
  put (dir, sname, &even, 1, out, n);
  g_autoptr (GBytes) recon = NULL;
  if (!dfi_deflate_analyze (out, n, NULL, NULL, &recon, NULL, NULL))
    exit (1);
  g_autofree char *rname = g_strdup_printf ("recon-%s", name);
  guint8 first = len > 6000 ? 3 : odd; /* fuzz-deflate.c: 3, the larger content */
  put (dir, rname, &first, 1, g_bytes_get_data (recon, NULL), g_bytes_get_size (recon));
}

/* Rebuild programs (fuzz-rebuild.c): content = a literal + an object piece
 * (whose bytes are what the target's source returns for its checksum) + a
 * literal, compressed in-process; recipes found by the search. */
typedef struct
{
  GByteArray *content;
  guint8 csum[DF_SHA256_LEN];
  gsize head, obj, tail;
} RebuildContent;

static void
rebuild_content (RebuildContent *c, guint8 which, gsize obj_len)
{
  c->content = g_byte_array_new ();
  memset (c->csum, which, sizeof c->csum);
  static const char head[] = "070701000000010000a1a4 cpio header, module.ko.xz";
  static const char tail[] = "TRAILER!!!\n";
  c->head = sizeof head - 1;
  c->obj = obj_len;
  c->tail = sizeof tail - 1;
  g_byte_array_append (c->content, (const guint8 *)head, c->head);
  g_byte_array_set_size (c->content, c->head + obj_len);
  fuzz_rebuild_object_bytes (c->csum, c->content->data + c->head, obj_len);
  g_byte_array_append (c->content, (const guint8 *)tail, c->tail);
}

/* Adds @c's pieces to the builder's current segment. */
static void
rebuild_pieces (DfRebuildBuilder *b, const RebuildContent *c, const guint8 *csum)
{
  dfi_rebuild_builder_literal (b, c->content->data, c->head);
  dfi_rebuild_builder_object (b, csum ? csum : c->csum, c->obj);
  dfi_rebuild_builder_literal (b, c->content->data + c->head + c->obj, c->tail);
}

static GBytes *
zlib_stream (const guint8 *content, gsize len, int level, int wbits)
{
  z_stream z = { 0 };
  if (deflateInit2 (&z, level, Z_DEFLATED, wbits, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    exit (1);
  gsize cap = deflateBound (&z, len) + 64;
  guint8 *out = g_malloc (cap);
  z.next_in = (Bytef *)content;
  z.avail_in = len;
  z.next_out = out;
  z.avail_out = cap;
  if (deflate (&z, Z_FINISH) != Z_STREAM_END)
    exit (1);
  gsize n = z.total_out;
  deflateEnd (&z);
  return g_bytes_new_take (out, n);
}

static GBytes *
find_recipe_bytes (GBytes *stream, const guint8 *content, gsize clen, DfRecipe *r)
{
  int sfd = memfd_create ("stream", 0), cfd = memfd_create ("content", 0);
  if (!dfi_write_all (sfd, g_bytes_get_data (stream, NULL), g_bytes_get_size (stream), "seed", NULL)
      || !dfi_write_all (cfd, content, clen, "seed", NULL))
    exit (1);
  DfRecipeSpan s = { sfd, 0, g_bytes_get_size (stream) }, c = { cfd, 0, clen };
  gboolean found;
  if (!dfi_recipe_find (&s, &c, NULL, r, &found, NULL, NULL, NULL) || !found)
    exit (1);
  close (sfd);
  close (cfd);
  return dfi_recipe_serialize (r);
}

static void
put_bytes (const char *dir, const char *name, GBytes *b)
{
  if (g_bytes_get_size (b) > SEED_MAX_LEN)
    exit (1);
  put (dir, name, g_bytes_get_data (b, NULL), g_bytes_get_size (b), NULL, 0);
}

/* One recipe segment over @c's content compressed as @stream; with
 * @library set, the recipe's library replaced by it. */
static void
recipe_program_seed (const char *dir, const char *name, const RebuildContent *c, GBytes *stream, const char *library)
{
  DfRecipe r;
  g_autoptr (GBytes) rb = find_recipe_bytes (stream, c->content->data, c->content->len, &r);
  if (library)
    {
      g_strlcpy (r.library, library, sizeof r.library);
      g_bytes_unref (rb);
      rb = dfi_recipe_serialize (&r);
    }
  g_autoptr (DfRebuildBuilder) b = dfi_rebuild_builder_new ();
  dfi_rebuild_builder_segment (b, DF_REBUILD_SEGMENT_RECIPE, g_bytes_get_size (stream), rb);
  rebuild_pieces (b, c, NULL);
  g_autoptr (GBytes) prog = dfi_rebuild_builder_end (b, NULL);
  put_bytes (dir, name, prog);
}

static void
rebuild_seeds (const char *dir)
{
  /* plain: a header literal, an object, another object, a trailer. */
  RebuildContent c1;
  rebuild_content (&c1, 1, 3000);
  {
    g_autoptr (DfRebuildBuilder) b = dfi_rebuild_builder_new ();
    dfi_rebuild_builder_segment (b, DF_REBUILD_SEGMENT_PLAIN, c1.content->len + 500, NULL);
    rebuild_pieces (b, &c1, NULL);
    guint8 other[DF_SHA256_LEN];
    memset (other, 7, sizeof other);
    dfi_rebuild_builder_object (b, other, 500);
    dfi_rebuild_builder_segment (b, DF_REBUILD_SEGMENT_PLAIN, 4, NULL);
    dfi_rebuild_builder_literal (b, (const guint8 *)"END\n", 4);
    g_autoptr (GBytes) prog = dfi_rebuild_builder_end (b, NULL);
    put_bytes (dir, "plain", prog);
    /* Broken: another version; cut short. */
    gsize n;
    const guint8 *d = g_bytes_get_data (prog, &n);
    g_autofree guint8 *v2 = g_memdup2 (d, n);
    v2[0] = 3;
    put (dir, "broken-version", v2, n, NULL, 0);
    put (dir, "broken-truncated", d, n - 1, NULL, 0);
  }
  /* deflate: a gzip-like file as plain header + deflate segment + plain
   * trailer, the deflate segment's content read from an object. */
  RebuildContent c2;
  rebuild_content (&c2, 2, 8000);
  g_autoptr (GBytes) raw = zlib_stream (c2.content->data, c2.content->len, 6, -15);
  g_autoptr (GBytes) recon = NULL;
  if (!dfi_deflate_analyze (g_bytes_get_data (raw, NULL), g_bytes_get_size (raw), NULL, NULL, &recon, NULL, NULL))
    exit (1);
  for (guint forged = 0; forged < 2; forged++)
    {
      g_autoptr (DfRebuildBuilder) b = dfi_rebuild_builder_new ();
      static const guint8 gz[10] = { 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3 };
      dfi_rebuild_builder_segment (b, DF_REBUILD_SEGMENT_PLAIN, sizeof gz, NULL);
      dfi_rebuild_builder_literal (b, gz, sizeof gz);
      dfi_rebuild_builder_segment (b, DF_REBUILD_SEGMENT_DEFLATE, g_bytes_get_size (raw), recon);
      guint8 other[DF_SHA256_LEN];
      memset (other, 3, sizeof other); /* other bytes: the data does not fit */
      rebuild_pieces (b, &c2, forged ? other : NULL);
      dfi_rebuild_builder_segment (b, DF_REBUILD_SEGMENT_PLAIN, 8, NULL);
      dfi_rebuild_builder_literal (b, (const guint8 *)"crc+size", 8);
      g_autoptr (GBytes) prog = dfi_rebuild_builder_end (b, NULL);
      put_bytes (dir, forged ? "broken-deflate-content" : "deflate", prog);
    }
  /* recipes: gzip (zlib's wrapper), zlib, zstd, xz; a library this device
   * does not run; an xz preset over the target's memory limit. */
  RebuildContent c3;
  rebuild_content (&c3, 4, 20000);
  g_autoptr (GBytes) gzs = zlib_stream (c3.content->data, c3.content->len, 9, 31);
  recipe_program_seed (dir, "recipe-gzip-9", &c3, gzs, NULL);
  recipe_program_seed (dir, "broken-recipe-library", &c3, gzs, "zlib 0.9.9");
  g_autoptr (GBytes) zls = zlib_stream (c3.content->data, c3.content->len, 6, 15);
  recipe_program_seed (dir, "recipe-zlib-6", &c3, zls, NULL);
  guint8 zs[30000];
  size_t zslen = ZSTD_compress (zs, sizeof zs, c3.content->data, c3.content->len, 3);
  if (ZSTD_isError (zslen))
    exit (1);
  g_autoptr (GBytes) zsb = g_bytes_new (zs, zslen);
  recipe_program_seed (dir, "recipe-zstd-3", &c3, zsb, NULL);
  for (guint32 preset = 1; preset <= 6; preset += 5)
    {
      guint8 xz[30000];
      size_t xzlen = 0;
      if (lzma_easy_buffer_encode (preset, LZMA_CHECK_CRC64, NULL, c3.content->data, c3.content->len, xz, &xzlen,
                                   sizeof xz)
          != LZMA_OK)
        exit (1);
      g_autoptr (GBytes) xzb = g_bytes_new (xz, xzlen);
      recipe_program_seed (dir, preset == 1 ? "recipe-xz-1" : "recipe-xz-6-memory", &c3, xzb, NULL);
    }
  /* mixed: every kind in one object (an initrd-like early plain part). */
  {
    DfRecipe r;
    g_autoptr (GBytes) rb = find_recipe_bytes (gzs, c3.content->data, c3.content->len, &r);
    g_autoptr (DfRebuildBuilder) b = dfi_rebuild_builder_new ();
    dfi_rebuild_builder_segment (b, DF_REBUILD_SEGMENT_PLAIN, c1.content->len, NULL);
    rebuild_pieces (b, &c1, NULL);
    dfi_rebuild_builder_segment (b, DF_REBUILD_SEGMENT_DEFLATE, g_bytes_get_size (raw), recon);
    rebuild_pieces (b, &c2, NULL);
    dfi_rebuild_builder_segment (b, DF_REBUILD_SEGMENT_RECIPE, g_bytes_get_size (gzs), rb);
    rebuild_pieces (b, &c3, NULL);
    g_autoptr (GBytes) prog = dfi_rebuild_builder_end (b, NULL);
    put_bytes (dir, "mixed", prog);
  }
  /* patch (version 2): a literal, then the patch source's content with
   * an edit, as a patch against it; and the same with a source of another
   * size. */
  {
    gsize zlen;
    guint8 *text = NULL;
    g_autofree guint8 *z = fuzz_rebuild_patch_source (&zlen, &text);
    g_autofree guint8 *src = text;
    g_autofree guint8 *edited = g_memdup2 (src, FUZZ_REBUILD_PATCH_SOURCE_LEN);
    memcpy (edited + 1000, "an edit", 7);
    g_autoptr (ZSTD_CCtx) cc = ZSTD_createCCtx ();
    ZSTD_CCtx_setParameter (cc, ZSTD_c_compressionLevel, 19);
    if (ZSTD_isError (ZSTD_CCtx_refPrefix (cc, src, FUZZ_REBUILD_PATCH_SOURCE_LEN)))
      exit (1);
    guint8 frame[4096];
    size_t flen = ZSTD_compress2 (cc, frame, sizeof frame, edited, FUZZ_REBUILD_PATCH_SOURCE_LEN);
    if (ZSTD_isError (flen))
      exit (1);
    guint8 id[DF_SHA256_LEN];
    memset (id, FUZZ_REBUILD_PATCH_ID, sizeof id);
    for (guint broken = 0; broken < 2; broken++)
      {
        g_autoptr (DfRebuildBuilder) b = dfi_rebuild_builder_new ();
        dfi_rebuild_builder_segment (b, DF_REBUILD_SEGMENT_PLAIN, 4 + FUZZ_REBUILD_PATCH_SOURCE_LEN, NULL);
        dfi_rebuild_builder_literal (b, (const guint8 *)"HEAD", 4);
        dfi_rebuild_builder_patch (b, id, zlen + broken, FUZZ_REBUILD_PATCH_SOURCE_LEN, FUZZ_REBUILD_PATCH_SOURCE_LEN,
                                   frame, flen);
        g_autoptr (GBytes) prog = dfi_rebuild_builder_end (b, NULL);
        put_bytes (dir, broken ? "broken-patch-source" : "patch", prog);
      }
  }
  g_byte_array_unref (c1.content);
  g_byte_array_unref (c2.content);
  g_byte_array_unref (c3.content);
}

/* A format-3 superblock: a metadata part, a content part (the modules), a
 * rebuild part making two compressed objects from them (depending on the
 * content part, needing two libraries) and an alternative part with their
 * plain encoding. Written whole into @sb_dir and as its body (what
 * fuzz-superblock-body frames) into @body_dir. */
static void
superblock_v3_seeds (const char *sb_dir, const char *body_dir)
{
  g_autoptr (DfSuperblock) sb = dfi_superblock_new ();
  g_autoptr (GVariant) commit = g_variant_ref_sink (g_variant_new (
      "(@a{sv}@ay@a(say)sst@ay@ay)", g_variant_new_array (G_VARIANT_TYPE ("{sv}"), NULL, 0),
      g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, "", 0, 1), g_variant_new_array (G_VARIANT_TYPE ("(say)"), NULL, 0),
      "subject", "body", GUINT64_TO_BE (1700000000),
      g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, (guint8[32]){ 1 }, 32, 1),
      g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, (guint8[32]){ 2 }, 32, 1)));
  g_autoptr (GVariant) normal = g_variant_get_normal_form (commit);
  sb->commit = g_variant_get_data_as_bytes (normal);
  dfi_sha256 (g_bytes_get_data (sb->commit, NULL), g_bytes_get_size (sb->commit), sb->to);
  dfi_hex (sb->to, sb->to_hex);
  sb->commitmeta = g_bytes_new (NULL, 0);
  sb->n_parts = 4;
  sb->parts = g_new0 (DfPart, 4);
  DfPart *p = &sb->parts[0];
  p->kind = DF_PART_KIND_METADATA;
  p->n_entries = 1;
  p->entries = g_new0 (DfEntry, 1);
  p->entries[0] = (DfEntry){ .objtype = OSTREE_OBJECT_TYPE_DIR_META, .object_size = 30, .length = 30, .data_size = 30 };
  p->entries[0].checksum[0] = 0xaa;
  p->uncompressed_size = DF_PART_TABLE_LEN + 30;
  p->compressed_size = 20;
  p = &sb->parts[1];
  p->kind = DF_PART_KIND_CONTENT;
  p->n_entries = 2;
  p->entries = g_new0 (DfEntry, 2);
  for (guint i = 0; i < 2; i++)
    {
      p->entries[i] = (DfEntry){ .objtype = OSTREE_OBJECT_TYPE_FILE, .object_size = 5000, .length = 5000, .data_size = 5020 };
      p->entries[i].checksum[0] = 0xb0 + i;
    }
  p->uncompressed_size = DF_PART_TABLE_LEN + 2 * 5020;
  p->compressed_size = 3000;
  p = &sb->parts[2];
  p->kind = DF_PART_KIND_REBUILD;
  p->n_entries = 2;
  p->entries = g_new0 (DfEntry, 2);
  for (guint i = 0; i < 2; i++)
    {
      p->entries[i] = (DfEntry){ .objtype = OSTREE_OBJECT_TYPE_FILE,
                                 .object_size = 2000 + i,
                                 .length = 2000 + i,
                                 .data_size = 300,
                                 .encoding = DF_ENCODING_REBUILD,
                                 .src_length = 5100 };
      p->entries[i].checksum[0] = 0xe0 + i;
    }
  p->uncompressed_size = DF_PART_TABLE_LEN + 600;
  p->compressed_size = 500;
  p->n_deps = 1;
  p->deps = g_new (guint32, 1);
  p->deps[0] = 1;
  const char *libs[] = { "zlib 1.2.13", "liblzma 5.4.1", NULL };
  p->libraries = g_strdupv ((char **)libs);
  p->rebuild_memory = 10 * DF_MIB;
  p = &sb->parts[3];
  p->kind = DF_PART_KIND_ALTERNATIVE;
  p->n_entries = 2;
  p->entries = g_new0 (DfEntry, 2);
  for (guint i = 0; i < 2; i++)
    {
      p->entries[i]
          = (DfEntry){ .objtype = OSTREE_OBJECT_TYPE_FILE, .object_size = 2000 + i, .length = 2000 + i, .data_size = 2020 + i };
      p->entries[i].checksum[0] = 0xe0 + i;
    }
  p->uncompressed_size = DF_PART_TABLE_LEN + 4041;
  p->compressed_size = 4000;
  g_autoptr (GBytes) file = dfi_superblock_serialize (sb);
  g_autoptr (GError) error = NULL;
  g_autoptr (DfSuperblock) back = dfi_superblock_parse (file, &error);
  if (back == NULL || back->version != 3)
    {
      fprintf (stderr, "superblock-v3: %s\n", error ? error->message : "not version 3");
      exit (1);
    }
  put_bytes (sb_dir, "v3-rebuild", file);
  gsize n;
  const guint8 *d = g_bytes_get_data (file, &n);
  unsigned long long blen = ZSTD_getFrameContentSize (d + DF_SUPERBLOCK_HEADER_LEN, n - DF_SUPERBLOCK_HEADER_LEN);
  if (blen == ZSTD_CONTENTSIZE_ERROR || blen == ZSTD_CONTENTSIZE_UNKNOWN || blen > SEED_MAX_LEN)
    exit (1);
  g_autofree guint8 *body = g_malloc (blen);
  if (ZSTD_decompress (body, blen, d + DF_SUPERBLOCK_HEADER_LEN, n - DF_SUPERBLOCK_HEADER_LEN) != blen)
    exit (1);
  put (body_dir, "v3-rebuild", body, blen, NULL, 0);
}

/* slow-segments-*: as many one-byte recipe segments as fit in
 * SEED_MAX_LEN, each starting an encoder (xz preset 1, the largest under
 * fuzz-rebuild's limit; zlib level 9). A run's work is linear in its
 * content plus one encoder start per segment, which the parse does not
 * bound: about 900 xz starts take 17-19 s of CPU (half of it in the
 * kernel), 900 zlib starts 1.6 s. Kept out of the corpus `meson test`
 * replays until the engine bounds them (testdata/fuzz/README.md). */
static void
rebuild_slow_seeds (const char *dir)
{
  static const struct
  {
    const char *name;
    int codec;
  } many[] = { { "slow-segments-xz", 0 }, { "slow-segments-zlib", 1 } };
  for (guint m = 0; m < G_N_ELEMENTS (many); m++)
    {
      static const guint8 one[1] = { 'k' };
      g_autoptr (GBytes) stream = NULL;
      if (many[m].codec == 0)
        {
          guint8 xz[256];
          size_t xzlen = 0;
          if (lzma_easy_buffer_encode (1, LZMA_CHECK_CRC64, NULL, one, 1, xz, &xzlen, sizeof xz) != LZMA_OK)
            exit (1);
          stream = g_bytes_new (xz, xzlen);
        }
      else
        stream = zlib_stream (one, 1, 9, 15);
      DfRecipe r;
      g_autoptr (GBytes) rb = find_recipe_bytes (stream, one, 1, &r);
      guint n = (SEED_MAX_LEN - 64) / (g_bytes_get_size (rb) + 24);
      for (;; n -= 16)
        {
          g_autoptr (DfRebuildBuilder) b = dfi_rebuild_builder_new ();
          for (guint i = 0; i < n; i++)
            {
              dfi_rebuild_builder_segment (b, DF_REBUILD_SEGMENT_RECIPE, g_bytes_get_size (stream), rb);
              dfi_rebuild_builder_literal (b, one, 1);
            }
          g_autoptr (GBytes) prog = dfi_rebuild_builder_end (b, NULL);
          if (g_bytes_get_size (prog) <= SEED_MAX_LEN)
            {
              put_bytes (dir, many[m].name, prog);
              break;
            }
        }
    }
}

int
main (int argc, char **argv)
{
  if (argc >= 3 && strcmp (argv[1], "deflate") == 0)
    {
      guint8 content[6000];
      deflate_content (content, sizeof content);
      deflate_seed (argv[2], "6", content, sizeof content, 6, Z_DEFAULT_STRATEGY, 15, 8);
      deflate_seed (argv[2], "1", content, sizeof content, 1, Z_DEFAULT_STRATEGY, 15, 8);
      deflate_seed (argv[2], "fixed", content, sizeof content, 9, Z_FIXED, 15, 8);
      deflate_seed (argv[2], "stored", content, sizeof content, 0, Z_DEFAULT_STRATEGY, 15, 8);
      deflate_seed (argv[2], "head", content, 700, 6, Z_DEFAULT_STRATEGY, 15, 8);
      /* A small window and hash: the model mispredicts. */
      deflate_seed (argv[2], "small", content, sizeof content, 6, Z_DEFAULT_STRATEGY, 9, 1);
      /* Splits (lanes) over 200 KiB, at every block a segment allows. */
      g_autofree guint8 *big = g_malloc (200 * 1024);
      deflate_content (big, 200 * 1024);
      g_setenv ("DF_TEST_DEFLATE_SEGMENT_TARGET", "1", TRUE);
      deflate_seed (argv[2], "splits", big, 200 * 1024, 6, Z_DEFAULT_STRATEGY, 15, 2);
      return 0;
    }
  if (argc >= 3 && strcmp (argv[1], "diff") == 0)
    {
      diff_seed (argv[2], "moved", 4000, 4100, 1000, 0);
      diff_seed (argv[2], "sprinkled", 3000, 3000, 0, 97);
      diff_seed (argv[2], "grown", 500, 6000, 17, 400);
      return 0;
    }
  if (argc >= 3 && strcmp (argv[1], "recipe") == 0)
    {
      recipe_seeds (argv[2]);
      return 0;
    }
  if (argc >= 4 && strcmp (argv[1], "superblock-v3") == 0)
    {
      superblock_v3_seeds (argv[2], argv[3]);
      return 0;
    }
  if (argc >= 3 && strcmp (argv[1], "rebuild-slow") == 0)
    {
      rebuild_slow_seeds (argv[2]);
      return 0;
    }
  if (argc >= 3 && strcmp (argv[1], "rebuild") == 0)
    {
      rebuild_seeds (argv[2]);
      return 0;
    }
  if (argc >= 3 && strcmp (argv[1], "filez") == 0)
    {
      guint8 text[3000];
      for (gsize i = 0; i < sizeof text; i++)
        text[i] = "deltafetch fuzz seed "[i % 21];
      filez_seed (argv[2], "text", text, sizeof text, NULL);
      filez_seed (argv[2], "empty", NULL, 0, NULL);
      filez_seed (argv[2], "symlink", NULL, 0, "../lib/x86_64-linux-gnu/libc.so.6");
      return 0;
    }
  if (argc >= 4 && strcmp (argv[1], "stock-part") == 0)
    {
      int dfd = open (argv[3], O_RDONLY | O_DIRECTORY);
      g_autoptr (GError) error = NULL;
      g_autoptr (GBytes) sbb
          = dfd >= 0 ? dfi_read_file_bounded (dfd, "superblock", 1 << 26, G_MAXUINT64, "sb", &error) : NULL;
      g_autoptr (DfStockSuperblock) sb = sbb ? dfi_stock_superblock_parse (sbb, &error) : NULL;
      if (sb == NULL)
        return 1;
      for (guint i = 0; i < sb->n_parts; i++)
        {
          char name[16];
          g_snprintf (name, sizeof name, "%u", i);
          int pfd = sb->parts[i].inline_data ? -1 : openat (dfd, name, O_RDONLY);
          int out = memfd_create ("payload", 0);
          guint64 len = 0;
          if (!dfi_stock_part_decode (sb, i, pfd, -1, out, &len, NULL, NULL, &error))
            return 1;
          g_autofree guint8 *payload = g_malloc (MAX (len, 1));
          if (pread (out, payload, len, 0) != (gssize)len)
            return 1;
          const DfStockPart *p = &sb->parts[i];
          guint n = MIN (p->n_objects, 8u);
          guint8 hdr[9] = { n };
          for (guint j = 0; j < n; j++)
            hdr[1 + j] = p->objects[j * DF_STOCK_OBJREC_LEN] == OSTREE_OBJECT_TYPE_FILE ? 0
                         : p->objects[j * DF_STOCK_OBJREC_LEN] == OSTREE_OBJECT_TYPE_DIR_TREE ? 1 : 2;
          char seed[32];
          g_snprintf (seed, sizeof seed, "part-%u", i);
          put (argv[2], seed, hdr, 1 + n, payload, len);
          close (out);
          if (pfd >= 0)
            close (pfd);
        }
      return 0;
    }
  if (argc >= 4 && strcmp (argv[1], "part") == 0)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (DfSuperblock) sb = dfi_superblock_load (AT_FDCWD, argv[3], &error);
      if (sb == NULL)
        return 1;
      for (guint i = 0; i < sb->n_parts; i++)
        {
          char name[16];
          g_snprintf (name, sizeof name, "%u", i);
          g_autofree char *path = g_build_filename (argv[3], name, NULL);
          g_autoptr (GBytes) file = dfi_read_file_bounded (AT_FDCWD, path, 1 << 26, G_MAXUINT64, "part", &error);
          guint64 u = sb->parts[i].uncompressed_size;
          if (file == NULL || u >= 1 << 24)
            continue; /* the target's size field has 3 bytes */
          guint8 hdr[3] = { u & 0xff, (u >> 8) & 0xff, (u >> 16) & 0xff };
          g_snprintf (name, sizeof name, "part-%u", i);
          put (argv[2], name, hdr, 3, g_bytes_get_data (file, NULL), g_bytes_get_size (file));
        }
      return 0;
    }
  if (argc >= 3 && strcmp (argv[1], "attacks") == 0)
    {
      attack_seeds (argv[2]);
      return 0;
    }
  fprintf (stderr, "usage: make-seeds diff|filez|deflate|recipe|rebuild|rebuild-slow|attacks DIR | make-seeds stock-part|part DIR DELTA | make-seeds superblock-v3 SB BODY\n");
  return 2;
}
