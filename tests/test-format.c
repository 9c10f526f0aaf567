/* Unit tests of the parsers and codecs that read untrusted bytes: the
 * superblock, content headers, the diff decoder, stock fallback objects;
 * and of pairing. */
#include "df-bsdiff.h"
#include "df-bspatch.h"
#include "df-objset.h"
#include "df-pairing.h"
#include "df-part.h"
#include "df-stock.h"
#include "df-superblock.h"
#include "filez-util.h"

#include <fcntl.h>
#include <lzma.h>
#include <sys/mman.h>

/* The split object's size. */
#define OBJ (DF_CHUNK_MIN + 40)

static DfSuperblock *
sample_superblock (void)
{
  DfSuperblock *sb = dfi_superblock_new ();
  /* A minimal valid commit object: its checksum becomes "to". */
  g_autoptr (GVariant) commit = g_variant_ref_sink (g_variant_new (
      "(@a{sv}@ay@a(say)sst@ay@ay)", g_variant_new_array (G_VARIANT_TYPE ("{sv}"), NULL, 0),
      g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, "", 0, 1),
      g_variant_new_array (G_VARIANT_TYPE ("(say)"), NULL, 0), "subject", "body", GUINT64_TO_BE (1700000000),
      g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, (guint8[32]){ 1 }, 32, 1),
      g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, (guint8[32]){ 2 }, 32, 1)));
  g_autoptr (GVariant) normal = g_variant_get_normal_form (commit);
  sb->commit = g_variant_get_data_as_bytes (normal);
  dfi_sha256 (g_bytes_get_data (sb->commit, NULL), g_bytes_get_size (sb->commit), sb->to);
  dfi_hex (sb->to, sb->to_hex);
  sb->commitmeta = g_bytes_new (NULL, 0);
  sb->n_parts = 2;
  sb->parts = g_new0 (DfPart, 2);
  /* Part 0: one metadata object. Part 1: an object split in two chunks
   * (the first as short as chunks may be) plus a whole raw one. */
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
  p->n_entries = 3;
  p->entries = g_new0 (DfEntry, 3);
  p->entries[0] = (DfEntry){
    .objtype = OSTREE_OBJECT_TYPE_FILE, .object_size = OBJ, .offset = 0, .length = DF_CHUNK_MIN, .data_size = DF_CHUNK_MIN + 20
  };
  p->entries[1] = (DfEntry){ .objtype = OSTREE_OBJECT_TYPE_FILE,
                             .object_size = OBJ,
                             .offset = DF_CHUNK_MIN,
                             .length = 40,
                             .data_size = 0,
                             .encoding = DF_ENCODING_DIFF,
                             .has_source = TRUE,
                             .src_length = 64 };
  p->entries[0].checksum[0] = p->entries[1].checksum[0] = 0xbb;
  p->entries[1].source[0] = 0xcc;
  p->entries[2] = (DfEntry){ .objtype = OSTREE_OBJECT_TYPE_FILE, .object_size = 5, .length = 5, .data_size = 20 };
  p->entries[2].checksum[0] = 0xdd;
  p->uncompressed_size = DF_PART_TABLE_LEN + DF_CHUNK_MIN + 40 + 50; /* raw section, then the diff's 50 bytes */
  p->compressed_size = 100;
  return sb;
}

static void
test_superblock_roundtrip (void)
{
  g_autoptr (DfSuperblock) sb = sample_superblock ();
  g_autoptr (GBytes) bytes = dfi_superblock_serialize (sb);
  g_autoptr (GError) error = NULL;
  g_autoptr (DfSuperblock) back = dfi_superblock_parse (bytes, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (back->to_hex, ==, sb->to_hex);
  g_assert_false (back->has_from);
  g_assert_cmpuint (back->n_parts, ==, 2);
  g_assert_cmpuint (back->parts[1].n_entries, ==, 3);
  g_assert_cmpmem (&back->parts[1].entries[1], sizeof (DfEntry), &sb->parts[1].entries[1], sizeof (DfEntry));
  g_autoptr (GBytes) again = dfi_superblock_serialize (back);
  g_assert_true (g_bytes_equal (bytes, again));
}

static void
expect_invalid (DfSuperblock *sb, const char *what)
{
  g_autoptr (GBytes) bytes = dfi_superblock_serialize (sb);
  g_autoptr (GError) error = NULL;
  g_autoptr (DfSuperblock) back = dfi_superblock_parse (bytes, &error);
  g_assert_null (back);
  g_assert_nonnull (error);
  if (!g_error_matches (error, DF_ERROR, DF_ERROR_INVALID_DELTA))
    g_error ("%s: unexpected error %s", what, error->message);
  g_test_message ("%s: %s", what, error->message);
}

static void
mut_gap (DfSuperblock *sb)
{
  sb->parts[1].entries[1].offset = DF_CHUNK_MIN + 1;
}
static void
mut_overlap (DfSuperblock *sb)
{
  sb->parts[1].entries[1].offset = DF_CHUNK_MIN - 1;
  sb->parts[1].entries[1].length = 41;
}
static void
mut_repeat (DfSuperblock *sb)
{
  memcpy (sb->parts[1].entries[2].checksum, sb->parts[1].entries[0].checksum, 32);
  sb->parts[1].entries[2].object_size = OBJ;
}
static void
mut_past_end (DfSuperblock *sb)
{
  sb->parts[1].entries[1].length = G_MAXUINT64 - 10;
}
static void
mut_sum (DfSuperblock *sb)
{
  sb->parts[1].uncompressed_size = DF_PART_TABLE_LEN + DF_CHUNK_MIN;
}
static void
mut_diff_raw (DfSuperblock *sb)
{
  sb->parts[1].entries[1].data_size = 5;
}
static void
mut_kind (DfSuperblock *sb)
{
  sb->parts[0].entries[0].objtype = OSTREE_OBJECT_TYPE_FILE;
}
static void
mut_encoding (DfSuperblock *sb)
{
  sb->parts[1].entries[2].encoding = 9;
}
static void
mut_no_source (DfSuperblock *sb)
{
  sb->parts[1].entries[1].has_source = FALSE;
}
static void
mut_window (DfSuperblock *sb)
{
  sb->parts[1].entries[1].src_offset = G_MAXUINT64 - 1;
}
/* A chunk other than an object's last shorter than DF_CHUNK_MIN. */
static void
mut_short_chunk (DfSuperblock *sb)
{
  DfEntry *e = sb->parts[1].entries;
  e[0].length = DF_CHUNK_MIN - 1;
  e[0].data_size = e[0].length + 20;
  e[1].offset = DF_CHUNK_MIN - 1;
  e[1].length = 41;
}
/* A window more than DF_WINDOW_PER_BYTE times what a whole object's
 * patch makes (the last chunk of a split object may have DF_SOURCE_WINDOW). */
static void
mut_wide_window (DfSuperblock *sb)
{
  DfEntry *e = &sb->parts[1].entries[2];
  *e = (DfEntry){ .objtype = OSTREE_OBJECT_TYPE_FILE, .object_size = 5, .length = 5, .data_size = 20,
                  .encoding = DF_ENCODING_DIFF, .has_source = TRUE, .src_length = 21 };
  e->checksum[0] = 0xdd;
}
static void
mut_wide_last_window (DfSuperblock *sb)
{
  sb->parts[1].entries[1].src_length = DF_SOURCE_WINDOW + 1;
}
static void
mut_huge_part (DfSuperblock *sb)
{
  sb->parts[1].uncompressed_size = DF_PART_SIZE_MAX + 1;
}
static void
mut_compressed (DfSuperblock *sb)
{
  sb->parts[1].compressed_size = 0;
}

static void
test_superblock_invalid (void)
{
  static const struct
  {
    const char *what;
    void (*mutate) (DfSuperblock *);
  } cases[] = {
    { "gap", mut_gap },
    { "overlap", mut_overlap },
    { "repeat", mut_repeat },
    { "past end", mut_past_end },
    { "sum", mut_sum },
    { "raw bytes in a later diff chunk", mut_diff_raw },
    { "kind", mut_kind },
    { "encoding", mut_encoding },
    { "no source", mut_no_source },
    { "window", mut_window },
    { "chunk shorter than DF_CHUNK_MIN", mut_short_chunk },
    { "window wider than 4 times the output", mut_wide_window },
    { "last chunk's window wider than DF_SOURCE_WINDOW", mut_wide_last_window },
    { "huge part", mut_huge_part },
    { "compressed", mut_compressed },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (DfSuperblock) sb = sample_superblock ();
      cases[i].mutate (sb);
      expect_invalid (sb, cases[i].what);
    }
}

/* Format 3: sample_superblock() plus a rebuild part (part 2: one whole
 * object rebuilt by a program, depending on content part 1, needing one
 * library) and an alternative part (part 3: the same object raw). */
#define REBUILT_SIZE 1000
static DfSuperblock *
sample_superblock_v3 (void)
{
  DfSuperblock *sb = sample_superblock ();
  sb->parts = g_renew (DfPart, sb->parts, 4);
  sb->n_parts = 4;
  DfPart *p = &sb->parts[2];
  memset (p, 0, 2 * sizeof *p);
  p->kind = DF_PART_KIND_REBUILD;
  p->n_entries = 1;
  p->entries = g_new0 (DfEntry, 1);
  p->entries[0] = (DfEntry){ .objtype = OSTREE_OBJECT_TYPE_FILE,
                             .object_size = REBUILT_SIZE,
                             .length = REBUILT_SIZE,
                             .data_size = 100,
                             .encoding = DF_ENCODING_REBUILD,
                             .src_length = 5 * REBUILT_SIZE };
  p->entries[0].checksum[0] = 0xee;
  p->uncompressed_size = DF_PART_TABLE_LEN + 100;
  p->compressed_size = 90;
  p->n_deps = 1;
  p->deps = g_new (guint32, 1);
  p->deps[0] = 1;
  const char *libs[] = { "zlib 1.2.13", NULL };
  p->libraries = g_strdupv ((char **)libs);
  p->rebuild_memory = DF_MIB;
  p = &sb->parts[3];
  p->kind = DF_PART_KIND_ALTERNATIVE;
  p->n_entries = 1;
  p->entries = g_new0 (DfEntry, 1);
  p->entries[0] = (DfEntry){
    .objtype = OSTREE_OBJECT_TYPE_FILE, .object_size = REBUILT_SIZE, .length = REBUILT_SIZE, .data_size = REBUILT_SIZE + 20
  };
  p->entries[0].checksum[0] = 0xee;
  p->uncompressed_size = DF_PART_TABLE_LEN + REBUILT_SIZE + 20;
  p->compressed_size = 900;
  return sb;
}

static void
test_superblock_v3_roundtrip (void)
{
  g_autoptr (DfSuperblock) v2 = sample_superblock ();
  g_assert_false (dfi_superblock_needs_v3 (v2));
  g_autoptr (DfSuperblock) sb = sample_superblock_v3 ();
  g_assert_true (dfi_superblock_needs_v3 (sb));
  g_autoptr (GBytes) bytes = dfi_superblock_serialize (sb);
  guint32 version;
  memcpy (&version, (const guint8 *)g_bytes_get_data (bytes, NULL) + 8, 4);
  g_assert_cmpuint (GUINT32_FROM_LE (version), ==, 3);
  g_autoptr (GError) error = NULL;
  g_autoptr (DfSuperblock) back = dfi_superblock_parse (bytes, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (back->version, ==, 3);
  g_assert_cmpuint (back->n_parts, ==, 4);
  g_assert_cmpuint (back->parts[2].kind, ==, DF_PART_KIND_REBUILD);
  g_assert_cmpuint (back->parts[3].kind, ==, DF_PART_KIND_ALTERNATIVE);
  g_assert_cmpuint (back->parts[2].n_deps, ==, 1);
  g_assert_cmpuint (back->parts[2].deps[0], ==, 1);
  g_assert_cmpstr (back->parts[2].libraries[0], ==, "zlib 1.2.13");
  g_assert_null (back->parts[2].libraries[1]);
  g_assert_cmpuint (back->parts[2].rebuild_memory, ==, DF_MIB);
  g_assert_cmpuint (back->parts[1].n_deps, ==, 0);
  g_assert_cmpmem (&back->parts[2].entries[0], sizeof (DfEntry), &sb->parts[2].entries[0], sizeof (DfEntry));
  g_autoptr (GBytes) again = dfi_superblock_serialize (back);
  g_assert_true (g_bytes_equal (bytes, again));
}

static void
v3_dep_metadata (DfSuperblock *sb)
{
  sb->parts[2].deps[0] = 0; /* the metadata part */
}
static void
v3_dep_rebuild (DfSuperblock *sb)
{
  sb->parts[2].deps[0] = 2; /* itself */
}
static void
v3_dep_alternative (DfSuperblock *sb)
{
  sb->parts[2].deps[0] = 3;
}
static void
v3_dep_range (DfSuperblock *sb)
{
  sb->parts[2].deps[0] = 4;
}
static void
v3_deps_repeat (DfSuperblock *sb)
{
  sb->parts[2].deps = g_renew (guint32, sb->parts[2].deps, 2);
  sb->parts[2].deps[1] = 1;
  sb->parts[2].n_deps = 2;
}
static void
v3_deps_descending (DfSuperblock *sb)
{
  /* Make part 0 a content part too, so that only the order is wrong. */
  g_free (sb->parts[0].entries);
  sb->parts[0] = sb->parts[1];
  sb->parts[0].entries = g_new0 (DfEntry, 1);
  sb->parts[0].n_entries = 1;
  sb->parts[0].entries[0] = (DfEntry){ .objtype = OSTREE_OBJECT_TYPE_FILE, .object_size = 7, .length = 7, .data_size = 27 };
  sb->parts[0].entries[0].checksum[0] = 0x11;
  sb->parts[0].uncompressed_size = DF_PART_TABLE_LEN + 27;
  sb->parts[2].deps = g_renew (guint32, sb->parts[2].deps, 2);
  sb->parts[2].deps[0] = 1;
  sb->parts[2].deps[1] = 0;
  sb->parts[2].n_deps = 2;
}
static void
v3_libraries_content (DfSuperblock *sb)
{
  const char *libs[] = { "zstd 1.5.4", NULL };
  sb->parts[1].libraries = g_strdupv ((char **)libs);
}
static void
v3_deps_content (DfSuperblock *sb)
{
  sb->parts[1].deps = g_new (guint32, 1);
  sb->parts[1].deps[0] = 1;
  sb->parts[1].n_deps = 1;
}
static void
v3_memory_alternative (DfSuperblock *sb)
{
  sb->parts[3].rebuild_memory = 1;
}
static void
v3_alternative_orphan (DfSuperblock *sb)
{
  sb->parts[3].entries[0].checksum[0] = 0xef; /* no rebuild entry makes it */
}
static void
v3_alternative_of_plain (DfSuperblock *sb)
{
  /* The alternative of an object a content part makes (not a rebuild). */
  sb->parts[3].entries[0].checksum[0] = 0xdd;
  sb->parts[3].entries[0].object_size = sb->parts[3].entries[0].length = 5;
}
static void
v3_encoding_in_content (DfSuperblock *sb)
{
  DfEntry *e = &sb->parts[1].entries[2];
  e->encoding = DF_ENCODING_REBUILD;
  e->src_length = 5;
}
static void
v3_raw_in_rebuild (DfSuperblock *sb)
{
  DfEntry *e = &sb->parts[2].entries[0];
  e->encoding = DF_ENCODING_RAW;
  e->src_length = 0;
}
static void
v3_rebuild_offset (DfSuperblock *sb)
{
  DfEntry *e = &sb->parts[2].entries[0];
  e->offset = 1;
  e->length = REBUILT_SIZE - 1;
}
static void
v3_rebuild_chunk (DfSuperblock *sb)
{
  sb->parts[2].entries[0].length = REBUILT_SIZE - 1;
}
static void
v3_rebuild_no_program (DfSuperblock *sb)
{
  sb->parts[2].entries[0].data_size = 4;
}
static void
v3_rebuild_source (DfSuperblock *sb)
{
  sb->parts[2].entries[0].has_source = TRUE;
  sb->parts[2].entries[0].source[0] = 0xcc;
}
static void
v3_rebuild_expansion (DfSuperblock *sb)
{
  sb->parts[2].entries[0].src_length = REBUILT_SIZE * DF_REBUILD_EXPANSION + DF_REBUILD_CONTENT_SLACK + 1;
}
static void
v3_rebuild_metadata (DfSuperblock *sb)
{
  sb->parts[2].entries[0].objtype = OSTREE_OBJECT_TYPE_DIR_META;
}
static void
v3_library_empty (DfSuperblock *sb)
{
  g_free (sb->parts[2].libraries[0]);
  sb->parts[2].libraries[0] = g_strdup ("");
}
static void
v3_library_control (DfSuperblock *sb)
{
  g_free (sb->parts[2].libraries[0]);
  sb->parts[2].libraries[0] = g_strdup ("zlib\n1.2.13");
}
static void
v3_library_long (DfSuperblock *sb)
{
  g_free (sb->parts[2].libraries[0]);
  sb->parts[2].libraries[0] = g_strnfill (32, 'z');
}
static void
v3_libraries_many (DfSuperblock *sb)
{
  g_strfreev (sb->parts[2].libraries);
  const char *libs[] = { "a 1", "b 1", "c 1", "d 1", "e 1", NULL };
  sb->parts[2].libraries = g_strdupv ((char **)libs);
}
static void
v3_memory_huge (DfSuperblock *sb)
{
  sb->parts[2].rebuild_memory = DF_REBUILD_MEMORY_MAX + 1;
}

static void
test_superblock_v3_invalid (void)
{
  static const struct
  {
    const char *what;
    void (*mutate) (DfSuperblock *);
  } cases[] = {
    { "dependency on a metadata part", v3_dep_metadata },
    { "dependency on itself", v3_dep_rebuild },
    { "dependency on an alternative part", v3_dep_alternative },
    { "dependency out of range", v3_dep_range },
    { "dependency repeated", v3_deps_repeat },
    { "dependencies descending", v3_deps_descending },
    { "libraries on a content part", v3_libraries_content },
    { "dependencies of a content part", v3_deps_content },
    { "memory on an alternative part", v3_memory_alternative },
    { "alternative without a rebuild entry", v3_alternative_orphan },
    { "alternative of an object a content part makes", v3_alternative_of_plain },
    { "encoding 3 in a content part", v3_encoding_in_content },
    { "raw entry in a rebuild part", v3_raw_in_rebuild },
    { "rebuild entry at offset 1", v3_rebuild_offset },
    { "rebuild entry of part of an object", v3_rebuild_chunk },
    { "rebuild entry without its program", v3_rebuild_no_program },
    { "rebuild entry with a source", v3_rebuild_source },
    { "rebuild reading too much content", v3_rebuild_expansion },
    { "rebuild of a metadata object", v3_rebuild_metadata },
    { "empty library name", v3_library_empty },
    { "library name with a control character", v3_library_control },
    { "library name of 32 bytes", v3_library_long },
    { "five libraries", v3_libraries_many },
    { "memory over DF_REBUILD_MEMORY_MAX", v3_memory_huge },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (DfSuperblock) sb = sample_superblock_v3 ();
      cases[i].mutate (sb);
      expect_invalid (sb, cases[i].what);
    }
}

/* Every truncation and every single-byte change of a valid superblock is
 * either refused cleanly or parsed; none may crash (run under ASan too). */
static void
test_superblock_mangled (void)
{
  g_autoptr (DfSuperblock) sb = sample_superblock ();
  g_autoptr (GBytes) bytes = dfi_superblock_serialize (sb);
  gsize len;
  const guint8 *data = g_bytes_get_data (bytes, &len);
  guint refused = 0;
  for (gsize cut = 0; cut < len; cut++)
    {
      g_autoptr (GBytes) b = g_bytes_new (data, cut);
      g_autoptr (GError) error = NULL;
      g_autoptr (DfSuperblock) back = dfi_superblock_parse (b, &error);
      g_assert_null (back);
      g_assert_nonnull (error);
      refused++;
    }
  g_autofree guint8 *copy = g_memdup2 (data, len);
  for (gsize i = 0; i < len; i++)
    for (guint bit = 0; bit < 8; bit += 3)
      {
        copy[i] ^= 1 << bit;
        g_autoptr (GBytes) b = g_bytes_new (copy, len);
        g_autoptr (GError) error = NULL;
        g_autoptr (DfSuperblock) back = dfi_superblock_parse (b, &error);
        g_assert_true ((back == NULL) == (error != NULL));
        refused += back == NULL;
        copy[i] ^= 1 << bit;
      }
  g_test_message ("%u mangled superblocks refused", refused);
}

/* The same for the compressed body: every single-bit change of the
 * uncompressed GVariant, re-compressed, is refused or parsed, never a
 * crash. */
static void
test_superblock_mangled_body (void)
{
  g_autoptr (DfSuperblock) sb = sample_superblock ();
  g_autoptr (GBytes) bytes = dfi_superblock_serialize (sb);
  gsize len;
  const guint8 *data = g_bytes_get_data (bytes, &len);
  guint64 blen;
  memcpy (&blen, data + 16, 8);
  blen = GUINT64_FROM_LE (blen);
  g_autofree guint8 *body = g_malloc (blen);
  g_assert_cmpuint (ZSTD_decompress (body, blen, data + DF_SUPERBLOCK_HEADER_LEN, len - DF_SUPERBLOCK_HEADER_LEN), ==,
                    blen);
  gsize cap = DF_SUPERBLOCK_HEADER_LEN + ZSTD_compressBound (blen);
  g_autofree guint8 *file = g_malloc (cap);
  memcpy (file, data, DF_SUPERBLOCK_HEADER_LEN);
  guint refused = 0, parsed = 0;
  g_autoptr (ZSTD_CCtx) cctx = ZSTD_createCCtx ();
  ZSTD_CCtx_setParameter (cctx, ZSTD_c_checksumFlag, 1);
  for (gsize i = 0; i < blen; i++)
    for (guint bit = 0; bit < 8; bit += 2)
      {
        body[i] ^= 1 << bit;
        size_t r = ZSTD_compress2 (cctx, file + DF_SUPERBLOCK_HEADER_LEN, cap - DF_SUPERBLOCK_HEADER_LEN, body, blen);
        g_assert_false (ZSTD_isError (r));
        g_autoptr (GBytes) b = g_bytes_new (file, DF_SUPERBLOCK_HEADER_LEN + r);
        g_autoptr (GError) error = NULL;
        g_autoptr (DfSuperblock) back = dfi_superblock_parse (b, &error);
        g_assert_true ((back == NULL) == (error != NULL));
        refused += back == NULL;
        parsed += back != NULL;
        body[i] ^= 1 << bit;
      }
  g_test_message ("%u mangled bodies refused, %u parsed", refused, parsed);
  g_assert_cmpuint (refused, >, 0);
}

static void
test_content_header (void)
{
  g_autoptr (GBytes) h = dfi_content_header_serialize (0, 0, 0100644, NULL, "");
  g_auto (DfContentHeader) out = { 0 };
  gsize consumed = 0;
  g_autoptr (GError) error = NULL;
  g_assert_true (dfi_content_header_parse (g_bytes_get_data (h, NULL), g_bytes_get_size (h), &out, &consumed, &error));
  g_assert_cmpuint (consumed, ==, g_bytes_get_size (h));
  g_assert_cmpuint (out.mode, ==, 0100644);

  const struct
  {
    guint32 mode;
    const char *target;
  } bad[]
      = { { 0020644, "" }, { 0060644, "" }, { 0120777, "" }, { 0100644, "target" }, { 0140755, "" }, { 0300644, "" } };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GBytes) b = dfi_content_header_serialize (0, 0, bad[i].mode, NULL, bad[i].target);
      g_auto (DfContentHeader) o = { 0 };
      g_autoptr (GError) e = NULL;
      g_assert_false (dfi_content_header_parse (g_bytes_get_data (b, NULL), g_bytes_get_size (b), &o, &consumed, &e));
      g_assert_error (e, DF_ERROR, DF_ERROR_INVALID_DELTA);
    }
  /* A length field pointing past the data. */
  guint8 lying[8] = { 0xff, 0xff, 0, 0, 1, 2, 3, 4 };
  g_auto (DfContentHeader) o2 = { 0 };
  g_clear_error (&error);
  g_assert_false (dfi_content_header_parse (lying, sizeof lying, &o2, &consumed, &error));
}

static void
fill_code (guint8 *buf, gsize len, guint32 seed)
{
  for (gsize i = 0; i < len; i++)
    {
      seed = seed * 1103515245 + 12345;
      buf[i] = (i % 7 == 0) ? (guint8)(seed >> 16) : (guint8)(i * 13);
    }
}

static void
sections_new (GByteArray *sec[DF_SECTION_COUNT])
{
  for (guint k = 0; k < DF_SECTION_COUNT; k++)
    sec[k] = g_byte_array_new ();
}

static void
sections_free (GByteArray *sec[DF_SECTION_COUNT])
{
  for (guint k = 0; k < DF_SECTION_COUNT; k++)
    g_byte_array_unref (sec[k]);
}

/* Decodes the diff in @sec (one entry of @out_len bytes) against @old;
 * also checks that skipping walks the sections the same way. */
static gboolean
decode_sections (GByteArray *sec[DF_SECTION_COUNT], const guint8 *old, gsize olen, guint8 *out, gsize out_len,
                 GError **error)
{
  g_autoptr (GByteArray) payload = dfi_part_payload_assemble (sec);
  DfPartReader r, skip;
  g_assert_true (dfi_part_reader_init (&r, payload->data, payload->len, 0, NULL));
  skip = r;
  gboolean ok = dfi_diff_decode (&r, old, olen, out, out_len, error) && dfi_part_reader_finish (&r, error);
  if (ok)
    {
      g_assert_true (dfi_diff_skip (&skip, out_len, NULL));
      g_assert_cmpmem (skip.pos, sizeof skip.pos, r.pos, sizeof r.pos);
    }
  return ok;
}

static void
test_diff_roundtrip (void)
{
  gsize olen = 200000;
  g_autofree guint8 *old = g_malloc (olen);
  fill_code (old, olen, 1);
  /* New: a block moved, an insertion, a few bytes changed everywhere. */
  GByteArray *nw = g_byte_array_new ();
  g_byte_array_append (nw, old + 50000, 50000);
  g_byte_array_append (nw, (const guint8 *)"inserted bytes that were never there", 36);
  g_byte_array_append (nw, old, 50000);
  g_byte_array_append (nw, old + 100000, 100000);
  for (gsize i = 0; i < nw->len; i += 997)
    nw->data[i] += 3;
  GByteArray *sec[DF_SECTION_COUNT];
  sections_new (sec);
  g_assert_true (dfi_bsdiff (old, olen, nw->data, nw->len, sec));
  g_autofree guint8 *out = g_malloc (nw->len);
  g_autoptr (GError) error = NULL;
  g_assert_true (decode_sections (sec, old, olen, out, nw->len, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (out, nw->len, nw->data, nw->len);
  /* A diff of related data is small: the changed bytes are in the add
   * section, the rest are zero runs. */
  g_autoptr (GByteArray) payload = dfi_part_payload_assemble (sec);
  gsize cap = ZSTD_compressBound (nw->len);
  g_autofree guint8 *c = g_malloc (cap);
  gsize craw = ZSTD_compress (c, cap, nw->data, nw->len, 3);
  gsize cdiff = ZSTD_compress (c, cap, payload->data, payload->len, 3);
  g_test_message ("raw %u → %zu compressed, diff %u → %zu compressed (add section %u bytes)", nw->len, craw,
                  payload->len, cdiff, sec[DF_SECTION_ADD]->len);
  g_assert_cmpuint (cdiff * 4, <, craw);
  g_assert_cmpuint (sec[DF_SECTION_ADD]->len, <, nw->len / 100);
  sections_free (sec);
  /* Empty old: all copy bytes. */
  sections_new (sec);
  g_assert_true (dfi_bsdiff (NULL, 0, nw->data, 100, sec));
  g_assert_true (decode_sections (sec, NULL, 0, out, 100, &error));
  g_assert_cmpmem (out, 100, nw->data, 100);
  sections_free (sec);
  g_byte_array_unref (nw);
}

/* One diff from explicit numbers: controls (add, copy, zig-zag seek)
 * triples, run pairs, @add_len add bytes, @copy_len copy bytes. */
static void
make_diff (GByteArray *sec[DF_SECTION_COUNT], guint64 n, const guint64 *ctl, guint n_runs, const guint64 *runs,
           gsize add_len, gsize copy_len)
{
  sections_new (sec);
  dfi_varint_append (sec[DF_SECTION_CONTROL], n);
  for (guint64 i = 0; i < MIN (3 * n, 6); i++)
    dfi_varint_append (sec[DF_SECTION_CONTROL], ctl[i]);
  for (guint i = 0; i < n_runs; i++)
    dfi_varint_append (sec[DF_SECTION_RUNS], runs[i]);
  g_byte_array_set_size (sec[DF_SECTION_ADD], add_len);
  if (add_len) /* an empty GByteArray has no data */
    memset (sec[DF_SECTION_ADD]->data, 1, add_len);
  g_byte_array_set_size (sec[DF_SECTION_COPY], copy_len);
  if (copy_len)
    memset (sec[DF_SECTION_COPY]->data, 7, copy_len);
}

static void
test_diff_hostile (void)
{
  guint8 old[64] = { 0 }, out[128];
  const guint64 huge = G_MAXUINT64;
  const struct
  {
    const char *what;
    guint64 n;
    guint64 ctl[6];
    guint n_runs;
    guint64 runs[4];
    gsize add_len, copy_len, out_len;
  } cases[] = {
    { "add past old", 1, { 100, 0, 0 }, 2, { 100, 0 }, 0, 0, 100 },
    { "totals exceed output", 1, { 10, 10, 0 }, 2, { 10, 0 }, 0, 10, 15 },
    { "totals short of output", 1, { 10, 10, 0 }, 2, { 10, 0 }, 0, 10, 21 },
    { "copy section short", 1, { 10, 10, 0 }, 2, { 10, 0 }, 0, 9, 20 },
    { "add section short", 1, { 10, 0, 0 }, 2, { 0, 10 }, 9, 0, 10 },
    { "runs section short", 1, { 10, 0, 0 }, 1, { 5 }, 0, 0, 10 },
    { "empty run", 1, { 10, 0, 0 }, 4, { 0, 0, 10, 0 }, 0, 0, 10 },
    { "runs go on past the diff", 1, { 10, 0, 0 }, 2, { 11, 0 }, 0, 0, 10 },
    { "huge add", 1, { huge, 0, 0 }, 0, { 0 }, 0, 0, 10 },
    { "huge copy", 1, { 0, huge, 0 }, 0, { 0 }, 0, 10, 10 },
    { "seek to minus infinity", 1, { 0, 10, huge }, 0, { 0 }, 0, 10, 10 },
    { "seek to plus infinity", 1, { 0, 10, huge - 1 }, 0, { 0 }, 0, 10, 10 },
    { "negative old position", 2, { 0, 4, 19, 4, 0, 0 }, 2, { 4, 0 }, 0, 4, 8 },
    { "more controls than bytes", 1000, { 0 }, 0, { 0 }, 0, 0, 4 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      GByteArray *sec[DF_SECTION_COUNT];
      make_diff (sec, cases[i].n, cases[i].ctl, cases[i].n_runs, cases[i].runs, cases[i].add_len, cases[i].copy_len);
      g_autoptr (GError) error = NULL;
      g_assert_false (decode_sections (sec, old, sizeof old, out, cases[i].out_len, &error));
      g_assert_error (error, DF_ERROR, DF_ERROR_INVALID_DELTA);
      g_test_message ("%s: %s", cases[i].what, error->message);
      sections_free (sec);
    }
  /* A number longer than 64 bits, and one cut off by the section's end. */
  const guint8 *bad[] = { (const guint8 *)"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", (const guint8 *)"\x80\x80" };
  const gsize bad_len[] = { 10, 2 };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      GByteArray *sec[DF_SECTION_COUNT];
      sections_new (sec);
      g_byte_array_append (sec[DF_SECTION_CONTROL], bad[i], bad_len[i]);
      g_autoptr (GError) error = NULL;
      g_assert_false (decode_sections (sec, old, sizeof old, out, 4, &error));
      g_assert_error (error, DF_ERROR, DF_ERROR_INVALID_DELTA);
      g_test_message ("%s", error->message);
      sections_free (sec);
    }
  /* A section table that does not add up, or a raw section of the wrong
   * size, is refused before any entry is read. */
  guint8 table[DF_PART_TABLE_LEN + 4] = { 0 };
  table[0] = 5;
  DfPartReader r;
  g_autoptr (GError) error = NULL;
  g_assert_false (dfi_part_reader_init (&r, table, sizeof table, 5, &error));
  g_clear_error (&error);
  table[0] = 4;
  g_assert_false (dfi_part_reader_init (&r, table, sizeof table, 3, &error));
  g_clear_error (&error);
  g_assert_true (dfi_part_reader_init (&r, table, sizeof table, 4, &error));
  g_assert_false (dfi_part_reader_finish (&r, &error));
}

static void
test_pairing (void)
{
  g_autofree char *m = dfi_pairing_mask_digits ("/usr/lib/modules/6.1.0-50-amd64/kernel/foo.ko");
  g_assert_cmpstr (m, ==, "/usr/lib/modules/#.#.#-#-amd#/kernel/foo.ko");
  g_autofree char *k1 = dfi_pairing_version_key ("/usr/lib/modules/6.1.0-50-amd64/kernel/cxgb4.ko");
  g_autofree char *k2 = dfi_pairing_version_key ("/usr/lib/modules/6.1.0-56-amd64/kernel/cxgb3.ko");
  g_assert_cmpstr (k1, ==, "/usr/lib/modules/#.#.#-#-amd#/kernel/cxgb4.ko");
  g_assert_cmpstr (k2, !=, k1);
  g_autofree char *k3 = dfi_pairing_version_key ("/usr/lib/libfoo.so.1.2.3");
  g_assert_cmpstr (k3, ==, "/usr/lib/libfoo.so.#.#.#");
  g_autoptr (DfPairing) p = dfi_pairing_new ();
  dfi_pairing_add_old (p, "/usr/lib/modules/6.1.0-50-amd64/kernel/foo2.ko", "X");
  dfi_pairing_add_old (p, "/usr/lib/modules/6.1.0-50-amd64/kernel/foo.ko", "A");
  dfi_pairing_add_old (p, "/usr/lib/libfoo.so.1.2.3", "B");
  dfi_pairing_add_old (p, "/etc/conf", "C");
  dfi_pairing_add_old (p, "/other/conf", "D");
  g_autofree const char **c1 = dfi_pairing_candidates (p, "/usr/lib/modules/6.1.0-56-amd64/kernel/foo.ko");
  g_assert_cmpstr (c1[0], ==, "A");
  g_autofree const char **c2 = dfi_pairing_candidates (p, "/usr/lib/x86_64/libfoo.so.1.2.4");
  g_assert_cmpstr (c2[0], ==, "B");
  g_autofree const char **c3 = dfi_pairing_candidates (p, "/etc/conf");
  g_assert_cmpstr (c3[0], ==, "C");
  g_assert_null (c3[1]); /* basename match is the same object: no duplicate */
  g_autofree const char **c4 = dfi_pairing_candidates (p, "/new/unrelated");
  g_assert_null (c4[0]);
}


static GBytes *
make_filez (const guint8 *data, gsize len, const char *target, DfStockFallback *fb)
{
  GBytes *b = test_filez_new (data, len, target, fb);
  g_assert_nonnull (b);
  return b;
}

/* Checks @len bytes of @data as fallback @fb: the error code, or 0. */
static int
verify_filez (const guint8 *data, gsize len, const DfStockFallback *fb)
{
  int fd = memfd_create ("filez", MFD_CLOEXEC);
  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (write (fd, data, len), ==, (gssize)len);
  g_autoptr (GError) error = NULL;
  gboolean ok = dfi_stock_fallback_verify (fd, len, fb, NULL, &error);
  close (fd);
  if (ok)
    return 0;
  g_assert_nonnull (error);
  g_test_message ("%s", error->message);
  return error->code;
}

static void
test_stock_filez (void)
{
  gsize n = 3 * 1024 * 1024 + 77;
  g_autofree guint8 *data = g_malloc (n);
  for (gsize i = 0; i < n; i++)
    data[i] = (guint8)(i * 2654435761u >> 13);
  DfStockFallback fb;
  g_autoptr (GBytes) good = make_filez (data, n, NULL, &fb);
  gsize len;
  const guint8 *g = g_bytes_get_data (good, &len);
  g_assert_cmpint (verify_filez (g, len, &fb), ==, 0);

  DfStockFallback other = fb;
  other.checksum[5] ^= 1;
  g_assert_cmpint (verify_filez (g, len, &other), ==, DF_ERROR_CORRUPT);
  other = fb;
  other.usize++;
  g_assert_cmpint (verify_filez (g, len, &other), ==, DF_ERROR_INVALID_DELTA);
  /* Cut short, with a byte after the stream, flipped in the middle. */
  g_assert_cmpint (verify_filez (g, len - 1, &fb), !=, 0);
  g_autofree guint8 *m = g_malloc (len + 1);
  memcpy (m, g, len);
  m[len] = 0;
  g_assert_cmpint (verify_filez (m, len + 1, &fb), ==, DF_ERROR_INVALID_DELTA);
  m[len / 2] ^= 0x40;
  g_assert_cmpint (verify_filez (m, len, &fb), !=, 0);
  memcpy (m, g, len);
  /* Header sizes: zero, past the file, over the limit. */
  for (guint k = 0; k < 3; k++)
    {
      memcpy (m, g, len);
      guint32 h = k == 0 ? 0 : k == 1 ? GUINT32_TO_BE ((guint32)len) : GUINT32_TO_BE (DF_HEADER_MAX + 1);
      memcpy (m, &h, 4);
      g_assert_cmpint (verify_filez (m, len, &fb), ==, DF_ERROR_INVALID_DELTA);
    }
  /* A bomb: the header of a 100-byte file over a stream that inflates to
   * its 3 MiB; inflating stops at the declared size. */
  DfStockFallback small;
  g_autoptr (GBytes) sb = make_filez (data, 100, NULL, &small);
  guint32 hlen = GUINT32_FROM_BE (*(const guint32 *)g_bytes_get_data (sb, NULL));
  gsize blen = 8 + hlen + (len - 8 - GUINT32_FROM_BE (*(const guint32 *)g));
  g_autofree guint8 *bomb = g_malloc (blen);
  memcpy (bomb, g_bytes_get_data (sb, NULL), 8 + hlen);
  memcpy (bomb + 8 + hlen, g + 8 + GUINT32_FROM_BE (*(const guint32 *)g), blen - 8 - hlen);
  g_assert_cmpint (verify_filez (bomb, blen, &small), ==, DF_ERROR_INVALID_DELTA);

  /* A symlink: header only. */
  DfStockFallback lnk;
  g_autoptr (GBytes) lb = make_filez (NULL, 0, "../target", &lnk);
  const guint8 *l = g_bytes_get_data (lb, &len);
  g_assert_cmpint (verify_filez (l, len, &lnk), ==, 0);
  /* A dirmeta fallback: its own bytes. */
  DfStockFallback meta = { .objtype = OSTREE_OBJECT_TYPE_DIR_META, .size = 40 };
  dfi_sha256 (data, 40, meta.checksum);
  g_assert_cmpint (verify_filez (data, 40, &meta), ==, 0);
  g_assert_cmpint (verify_filez (data + 1, 40, &meta), ==, DF_ERROR_CORRUPT);
}


/* The superblock's parse and parsed form count against a memory limit,
 * checked before they are allocated. */
static void
test_superblock_memory (void)
{
  g_autoptr (DfSuperblock) sb = sample_superblock ();
  g_autoptr (GBytes) bytes = dfi_superblock_serialize (sb);
  g_autoptr (GError) error = NULL;
  g_autoptr (DfSuperblock) back = dfi_superblock_parse_full (bytes, NULL, 1024 * 1024, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (back->memory, >=, 3 * sizeof (DfEntry));
  g_assert_cmpuint (back->memory, <, 64 * 1024);
  g_autoptr (DfSuperblock) refused = dfi_superblock_parse_full (bytes, NULL, g_bytes_get_size (bytes) + 16, &error);
  g_assert_null (refused);
  g_assert_error (error, DF_ERROR, DF_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "memory budget"));
}

/* Object keys that share their first bytes (a hostile delta's choice)
 * still spread over the table: the hash is keyed, not a prefix. */
static void
test_objset_flood (void)
{
  g_autoptr (DfObjSet) s = dfi_objset_new (NULL);
  g_autoptr (GHashTable) hashes = g_hash_table_new (g_direct_hash, g_direct_equal);
  guint8 csum[DF_SHA256_LEN] = { 0 };
  const guint n = 20000;
  for (guint i = 0; i < n; i++)
    {
      /* Only the last four bytes differ. */
      memcpy (csum + 28, &i, 4);
      g_assert_true (dfi_objset_add (s, OSTREE_OBJECT_TYPE_DIR_TREE, csum, NULL));
      guint8 key[DF_OBJSET_KEY_LEN] = { OSTREE_OBJECT_TYPE_DIR_TREE };
      memcpy (key + 1, csum, DF_SHA256_LEN);
      g_hash_table_add (hashes, GUINT_TO_POINTER (dfi_objset_key_hash (key)));
    }
  g_assert_cmpuint (dfi_objset_size (s), ==, n);
  /* Random 32-bit hashes of 20,000 keys collide about 0.05 times. */
  g_assert_cmpuint (g_hash_table_size (hashes), >=, n - 5);
  for (guint i = 0; i < n; i += 997)
    {
      memcpy (csum + 28, &i, 4);
      g_assert_true (dfi_objset_contains (s, OSTREE_OBJECT_TYPE_DIR_TREE, csum));
      g_assert_false (dfi_objset_contains (s, OSTREE_OBJECT_TYPE_DIR_META, csum));
      g_assert_false (dfi_objset_add (s, OSTREE_OBJECT_TYPE_DIR_TREE, csum, NULL));
    }
  guint seen = 0;
  DfObjSetIter it;
  const guint8 *key;
  dfi_objset_iter_init (&it, s);
  while (dfi_objset_iter_next (&it, &key, NULL))
    seen += key[0] == OSTREE_OBJECT_TYPE_DIR_TREE;
  g_assert_cmpuint (seen, ==, n);
  /* Different inputs of any length hash apart; the same input alike. */
  g_assert_cmpuint (dfi_keyed_hash ("a", 1), !=, dfi_keyed_hash ("a\0", 2));
  g_assert_cmpuint (dfi_keyed_hash ("\0", 1), !=, dfi_keyed_hash ("", 0));
  g_assert_cmpuint (dfi_keyed_hash ("abcdefgh", 8), ==, dfi_keyed_hash ("abcdefgh", 8));
}

/* An envelope carries at most DF_SIGNATURES_MAX signatures. */
static void
test_signature_cap (void)
{
  g_autoptr (GBytes) data = g_bytes_new_static ("superblock", 10);
  for (guint n = DF_SIGNATURES_MAX; n <= DF_SIGNATURES_MAX + 1; n++)
    {
      g_autoptr (GPtrArray) sigs = g_ptr_array_new_with_free_func ((GDestroyNotify)g_bytes_unref);
      for (guint i = 0; i < n; i++)
        g_ptr_array_add (sigs, g_bytes_new_take (g_malloc0 (DF_ED25519_SIG_LEN), DF_ED25519_SIG_LEN));
      g_autoptr (GBytes) file = dfi_signed_wrap (data, sigs);
      g_autoptr (GBytes) inner = NULL, signed_data = NULL;
      g_autoptr (GPtrArray) got = NULL;
      g_autoptr (GError) error = NULL;
      gboolean ok = dfi_signed_open (file, &inner, &signed_data, &got, &error);
      if (n <= DF_SIGNATURES_MAX)
        {
          g_assert_no_error (error);
          g_assert_cmpuint (got->len, ==, n);
        }
      else
        {
          g_assert_false (ok);
          g_assert_error (error, DF_ERROR, DF_ERROR_INVALID_DELTA);
        }
    }
}

/* A stock part whose xz stream decodes to far more than its declared size
 * is refused once decoding passes dfi_stock_payload_max(), without writing
 * the rest; the same part within its bound decodes, from a private copy
 * of the file when asked. */
static void
test_stock_decode_bound (void)
{
  const gsize plain = 16 * 1024 * 1024;
  g_autofree guint8 *zeros = g_malloc0 (plain);
  gsize cap = lzma_stream_buffer_bound (plain) + 1;
  g_autofree guint8 *file = g_malloc (cap);
  file[0] = 'x';
  gsize out = 1;
  g_assert_cmpint (lzma_easy_buffer_encode (6, LZMA_CHECK_CRC64, NULL, zeros, plain, file, &out, cap), ==, LZMA_OK);
  int part_fd = memfd_create ("part", MFD_CLOEXEC);
  g_assert_cmpint (write (part_fd, file, out), ==, (gssize)out);
  DfStockPart part = { .size = out, .n_objects = 1 };
  dfi_sha256 (file, out, part.sha256);
  DfStockSuperblock sb = { .n_parts = 1, .parts = &part };
  for (guint k = 0; k < 2; k++)
    {
      /* Declared: 1 MiB, then all 16. */
      part.usize = k == 0 ? 1024 * 1024 : plain;
      int out_fd = memfd_create ("payload", MFD_CLOEXEC);
      guint64 len = 0;
      g_autoptr (GError) error = NULL;
      gboolean ok = dfi_stock_part_decode (&sb, 0, part_fd, k == 1 ? AT_FDCWD : -1, out_fd, &len, NULL, NULL, &error);
      struct stat st;
      g_assert_cmpint (fstat (out_fd, &st), ==, 0);
      if (k == 0)
        {
          g_assert_false (ok);
          g_assert_error (error, DF_ERROR, DF_ERROR_INVALID_DELTA);
          g_assert_cmpuint (st.st_size, <=, dfi_stock_payload_max (&part));
        }
      else
        {
          g_assert_no_error (error);
          g_assert_cmpuint (len, ==, plain);
        }
      close (out_fd);
    }
  close (part_fd);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/format/superblock/roundtrip", test_superblock_roundtrip);
  g_test_add_func ("/format/superblock/invalid", test_superblock_invalid);
  g_test_add_func ("/format/superblock/mangled", test_superblock_mangled);
  g_test_add_func ("/format/superblock/v3-roundtrip", test_superblock_v3_roundtrip);
  g_test_add_func ("/format/superblock/v3-invalid", test_superblock_v3_invalid);
  g_test_add_func ("/format/superblock/memory", test_superblock_memory);
  g_test_add_func ("/format/signed/signature-cap", test_signature_cap);
  g_test_add_func ("/format/stock/decode-bound", test_stock_decode_bound);
  g_test_add_func ("/common/objset/flood", test_objset_flood);
  g_test_add_func ("/format/superblock/mangled-body", test_superblock_mangled_body);
  g_test_add_func ("/format/content-header", test_content_header);
  g_test_add_func ("/format/diff/roundtrip", test_diff_roundtrip);
  g_test_add_func ("/format/diff/hostile", test_diff_hostile);
  g_test_add_func ("/format/stock/filez", test_stock_filez);
  g_test_add_func ("/generate/pairing", test_pairing);
  return g_test_run ();
}
