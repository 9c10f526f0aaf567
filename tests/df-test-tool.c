/* Test helper: makes hostile variants of a native delta (each internally
 * consistent except for the one fault under test) and measures peak RSS.
 *
 *   df-test-tool part-sha DELTA N        flip a byte of part N's SHA-256 in the superblock
 *   df-test-tool corrupt-object DELTA    change one byte of a raw object inside a part,
 *                                        re-compress it and fix the part's hash and size
 *   df-test-tool corrupt-chunk DELTA     the same for a later chunk of an object split across parts
 *   df-test-tool extra-object DELTA      add a valid file object the commit does not reference
 *   df-test-tool bad-name DELTA NAME     give the root directory one more file entry named NAME
 *                                        (e.g. "..", "a/b"), rehash the dirtree and the commit and
 *                                        make the delta lead to that commit (printed): consistent
 *                                        but for the name
 *   df-test-tool unsized-part DELTA N    re-compress part N without a content size
 *   df-test-tool grown-part DELTA N      re-compress part N with extra bytes beyond its
 *                                        declared size (hash and size fixed up)
 *   df-test-tool swap-signed DELTA OTHER keep DELTA's signatures, sign nothing: put OTHER's
 *                                        superblock bytes inside DELTA's signed envelope
 *   df-test-tool index-froms INDEX       the from-commits a native index lists, one per line
 *                                        ("empty" for from scratch), read with GLib alone
 *   df-test-tool check-envelope SIGNED PLAIN  with GLib alone: SIGNED is libostree's "(taya{sv})"
 *                                        envelope (magic OSTSGNDT, normal form) around exactly the
 *                                        bytes of PLAIN, with one 64-byte "ostree.sign.ed25519" "aay"
 *   df-test-tool sign-commit REPO COMMIT SECRET  add an ed25519 signature by SECRET (a key file
 *                                        in `ostree sign`'s format) to COMMIT's detached metadata,
 *                                        as `ostree sign` does (Debian's libostree cannot: no libsodium)
 *   df-test-tool sign-summary REPO SECRET  write REPO/summary.sig with one ed25519 signature of
 *                                        REPO/summary, as `ostree summary -u --sign` does
 *   df-test-tool stock-verify REPO DELTA  run every part of the stock delta DELTA (sources from
 *                                        REPO), hash every object it makes against its checksum;
 *                                        prints counts of objects and opcodes
 *   df-test-tool stock-mangle DELTA N WHAT  rewrite part N of a stock delta uncompressed, with one
 *                                        fault (WHAT: opcode = an unknown opcode, offset = the first
 *                                        data offset past the payload, bspatch-negative and
 *                                        bspatch-long = the first bspatch control's diff length
 *                                        negative or past the result, objects = one more object
 *                                        declared than made); fixes the part's hash and size
 *   df-test-tool stock-fuzz REPO DELTA N  N seeded mutations (1 to 4 bytes) of the stock superblock
 *                                        and of part 0's decoded payload, each parsed and run (sources
 *                                        from REPO): every one must be refused or succeed, never crash;
 *                                        prints the counts
 *   df-test-tool maxrss CMD ARGS...      run CMD, print "maxrss-kib N" on stderr, exit as CMD
 *   df-test-tool recipe-find STREAM CONTENT [OFFSET LENGTH]  search a recipe for the compressed
 *                                        stream at OFFSET (LENGTH bytes; default: all of STREAM)
 *                                        whose content is the file CONTENT; print it, what the search
 *                                        cost, the memory a rebuild needs, and check the rebuild
 *   df-test-tool recipe-zstd-mt LEVEL FILE  compress FILE at LEVEL in zstd's multi-threaded mode
 *                                        with one worker; print the estimate dfi_recipe_memory() makes,
 *                                        what libzstd holds (ZSTD_sizeof_CCtx) and the growth of
 *                                        the peak RSS
 *   df-test-tool stats DELTA             entries and object bytes per encoding, and the bytes of
 *                                        each part section; with DF_STATS_LIST=1 also every raw
 *                                        object over 64 KiB, DF_STATS_DIFFS=1 every diff entry
 *                                        ("diff OBJECT SOURCE LENGTH")
 *   df-test-tool detect [OPTIONS] FILE   what FILE is made of (dfi_detect_fd()): one JSON object per line,
 *                                        each segment in order ({"seg":I,"depth":D,"parent":P,"kind":K,
 *                                        "offset":O,"length":L,...}), each cpio entry ({"entry":I,"seg":S,
 *                                        "name":N,...}), then {"summary":TEXT,...} and the time taken.
 *                                        OPTIONS: --hash (entry SHA-256), --segments-max=N, --entries-max=N,
 *                                        --depth-max=N, --decompressed-max=N, --decoder-mem=N (limits),
 *                                        --text (instead: one indented line per segment, then the summary)
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "df-detect.h"
#include "df-part.h"
#include "df-recipe.h"
#include "df-sign.h"
#include "df-stock.h"
#include "df-superblock.h"

static void
die (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  fprintf (stderr, "df-test-tool: ");
  vfprintf (stderr, fmt, ap);
  fprintf (stderr, "\n");
  va_end (ap);
  exit (99);
}

static DfSuperblock *
load (const char *dir)
{
  g_autoptr (GError) error = NULL;
  DfSuperblock *sb = dfi_superblock_load (AT_FDCWD, dir, &error);
  if (sb == NULL)
    die ("%s", error->message);
  return sb;
}

static void
save_file (const char *dir, const char *name, GBytes *bytes)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_autoptr (GError) error = NULL;
  if (!g_file_set_contents (path, g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes), &error))
    die ("%s", error->message);
}

static void
save_superblock (const char *dir, DfSuperblock *sb)
{
  g_autoptr (GBytes) b = dfi_superblock_serialize (sb);
  save_file (dir, "superblock", b);
}

static GBytes *
read_payload (const char *dir, DfSuperblock *sb, guint n)
{
  char name[16];
  g_snprintf (name, sizeof name, "%u", n);
  g_autoptr (GError) error = NULL;
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_autoptr (GBytes) file = dfi_read_file_bounded (AT_FDCWD, path, DF_PART_SIZE_MAX * 2, G_MAXUINT64, "part", &error);
  if (file == NULL)
    die ("%s", error->message);
  GBytes *payload = dfi_part_decode (&sb->parts[n], n, file, &error);
  if (payload == NULL)
    die ("%s", error->message);
  return payload;
}

/* Writes @file as part @n and records its hash and size. */
static void
store_part (const char *dir, DfSuperblock *sb, guint n, GBytes *file)
{
  char name[16];
  g_snprintf (name, sizeof name, "%u", n);
  save_file (dir, name, file);
  dfi_sha256 (g_bytes_get_data (file, NULL), g_bytes_get_size (file), sb->parts[n].sha256);
  sb->parts[n].compressed_size = g_bytes_get_size (file);
}

static GBytes *
compress_with (const guint8 *data, gsize len, gboolean content_size)
{
  ZSTD_CCtx *c = ZSTD_createCCtx ();
  ZSTD_CCtx_setParameter (c, ZSTD_c_contentSizeFlag, content_size);
  gsize cap = ZSTD_compressBound (len);
  guint8 *out = g_malloc (cap);
  size_t r;
  if (content_size)
    r = ZSTD_compress2 (c, out, cap, data, len);
  else
    {
      /* Streaming API without a pledged size leaves the size out. */
      ZSTD_outBuffer ob = { out, cap, 0 };
      ZSTD_inBuffer ib = { data, len, 0 };
      r = ZSTD_compressStream2 (c, &ob, &ib, ZSTD_e_end);
      r = ZSTD_isError (r) ? r : ob.pos;
    }
  ZSTD_freeCCtx (c);
  if (ZSTD_isError (r))
    die ("zstd: %s", ZSTD_getErrorName (r));
  return g_bytes_new_take (out, r);
}

static guint
first_content_part (DfSuperblock *sb)
{
  for (guint i = 0; i < sb->n_parts; i++)
    if (sb->parts[i].kind == DF_PART_KIND_CONTENT)
      return i;
  die ("no content part");
  return 0;
}

/* Flips a byte in the first entry matching @want_split (a chunk of a split
 * object, or a whole raw object), re-compresses the part and fixes its
 * hash: the part verifies, the object does not. */
static int
corrupt_entry (const char *dir, gboolean want_split)
{
  g_autoptr (DfSuperblock) sb = load (dir);
  for (guint i = 0; i < sb->n_parts; i++)
    {
      DfPart *p = &sb->parts[i];
      if (p->kind != DF_PART_KIND_CONTENT)
        continue;
      guint64 off = 0;
      for (guint j = 0; j < p->n_entries; j++)
        {
          DfEntry *e = &p->entries[j];
          gboolean split = e->length != e->object_size && e->offset > 0;
          if (e->encoding == DF_ENCODING_RAW && e->length > 0 && (want_split ? split : e->length == e->object_size))
            {
              g_autoptr (GBytes) payload = read_payload (dir, sb, i);
              gsize len = g_bytes_get_size (payload);
              guint8 *data = g_memdup2 (g_bytes_get_data (payload, NULL), len);
              /* The raw section follows the table; the body is the
               * entry's last `length` bytes in it. */
              data[DF_PART_TABLE_LEN + off + e->data_size - 1] ^= 0x01;
              g_autoptr (GBytes) file = compress_with (data, len, TRUE);
              g_free (data);
              store_part (dir, sb, i, file);
              save_superblock (dir, sb);
              char hex[65];
              dfi_hex (e->checksum, hex);
              printf ("%s\n", hex);
              return 0;
            }
          off += e->data_size;
        }
    }
  die ("no matching raw entry found");
  return 1;
}

static int
cmd_corrupt_object (const char *dir)
{
  return corrupt_entry (dir, FALSE);
}

static int
cmd_extra_object (const char *dir)
{
  g_autoptr (DfSuperblock) sb = load (dir);
  guint n = first_content_part (sb);
  DfPart *p = &sb->parts[n];
  const char *content = "an object no commit references\n";
  gsize clen = strlen (content);
  g_autoptr (GBytes) header = dfi_content_header_serialize (0, 0, 0100644, NULL, "");
  g_auto (DfContentHeader) h = { 0 };
  gsize consumed;
  g_autoptr (GError) error = NULL;
  if (!dfi_content_header_parse (g_bytes_get_data (header, NULL), g_bytes_get_size (header), &h, &consumed, &error))
    die ("%s", error->message);
  g_autoptr (GFileInfo) info = dfi_content_header_to_file_info (&h, clen);
  g_autoptr (GInputStream) in = g_memory_input_stream_new_from_data (content, clen, NULL);
  g_autofree guchar *csum = NULL;
  if (!ostree_checksum_file_from_input (info, h.xattrs, in, OSTREE_OBJECT_TYPE_FILE, &csum, NULL, &error))
    die ("%s", error->message);

  /* The new entry goes last: its bytes at the end of the raw section. */
  g_autoptr (GBytes) payload = read_payload (dir, sb, n);
  DfPartReader r;
  if (!dfi_part_reader_init (&r, g_bytes_get_data (payload, NULL), g_bytes_get_size (payload), p->raw_size, &error))
    die ("%s", error->message);
  GByteArray *sec[DF_SECTION_COUNT];
  for (guint k = 0; k < DF_SECTION_COUNT; k++)
    {
      sec[k] = g_byte_array_new ();
      g_byte_array_append (sec[k], r.data[k], r.len[k]);
    }
  g_byte_array_append (sec[DF_SECTION_RAW], g_bytes_get_data (header, NULL), g_bytes_get_size (header));
  g_byte_array_append (sec[DF_SECTION_RAW], (const guint8 *)content, clen);
  GByteArray *buf = dfi_part_payload_assemble (sec);
  for (guint k = 0; k < DF_SECTION_COUNT; k++)
    g_byte_array_unref (sec[k]);
  DfEntry e = { .objtype = OSTREE_OBJECT_TYPE_FILE,
                .object_size = clen,
                .length = clen,
                .data_size = g_bytes_get_size (header) + clen };
  memcpy (e.checksum, csum, DF_SHA256_LEN);
  p->entries = g_renew (DfEntry, p->entries, p->n_entries + 1);
  p->entries[p->n_entries++] = e;
  p->uncompressed_size = buf->len;
  g_autoptr (GBytes) file = compress_with (buf->data, buf->len, TRUE);
  g_byte_array_unref (buf);
  store_part (dir, sb, n, file);
  save_superblock (dir, sb);
  char hex[65];
  dfi_hex (csum, hex);
  printf ("%s\n", hex);
  return 0;
}

static int
cmd_bad_name (const char *dir, const char *name)
{
  g_autoptr (DfSuperblock) sb = load (dir);
  g_autoptr (GVariant) commit
      = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE ("(a{sv}aya(say)sstayay)"), sb->commit, FALSE));
  g_autoptr (GVariant) root_v = g_variant_get_child_value (commit, 6);
  if (g_variant_get_size (root_v) != DF_SHA256_LEN)
    die ("commit without a root tree");
  const guint8 *root = g_variant_get_data (root_v);
  for (guint i = 0; i < sb->n_parts; i++)
    {
      DfPart *p = &sb->parts[i];
      if (p->kind != DF_PART_KIND_METADATA)
        continue;
      g_autoptr (GBytes) payload = read_payload (dir, sb, i);
      g_autoptr (GError) error = NULL;
      DfPartReader r;
      if (!dfi_part_reader_init (&r, g_bytes_get_data (payload, NULL), g_bytes_get_size (payload), p->raw_size, &error))
        die ("%s", error->message);
      gint found = -1;
      GByteArray *sec[DF_SECTION_COUNT];
      for (guint k = 0; k < DF_SECTION_COUNT; k++)
        {
          sec[k] = g_byte_array_new ();
          if (k != DF_SECTION_RAW)
            g_byte_array_append (sec[k], r.data[k], r.len[k]);
        }
      guint8 new_root[DF_SHA256_LEN];
      for (guint j = 0; j < p->n_entries; j++)
        {
          DfEntry *e = &p->entries[j];
          const guint8 *obj = dfi_part_reader_take (&r, DF_SECTION_RAW, e->data_size, NULL);
          if (e->objtype != OSTREE_OBJECT_TYPE_DIR_TREE || memcmp (e->checksum, root, DF_SHA256_LEN) != 0
              || e->encoding != DF_ENCODING_RAW)
            {
              g_byte_array_append (sec[DF_SECTION_RAW], obj, e->data_size);
              continue;
            }
          /* The root dirtree, with NAME pointing at its first file (or at
           * any checksum: the walk must stop at the name). */
          g_autoptr (GVariant) tree = g_variant_ref_sink (
              g_variant_new_from_data (G_VARIANT_TYPE ("(a(say)a(sayay))"), obj, e->data_size, FALSE, NULL, NULL));
          g_autoptr (GVariant) files = g_variant_get_child_value (tree, 0);
          g_autoptr (GVariant) dirs = g_variant_get_child_value (tree, 1);
          GVariantBuilder fb;
          g_variant_builder_init (&fb, G_VARIANT_TYPE ("a(say)"));
          guint8 any[DF_SHA256_LEN] = { 0x42 };
          g_variant_builder_add (&fb, "(s@ay)", name,
                                 g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, any, DF_SHA256_LEN, 1));
          for (gsize k = 0; k < g_variant_n_children (files); k++)
            g_variant_builder_add_value (&fb, g_variant_get_child_value (files, k));
          g_autoptr (GVariant) nt = g_variant_ref_sink (g_variant_new ("(@a(say)@a(sayay))",
                                                                       g_variant_builder_end (&fb), g_steal_pointer (&dirs)));
          gsize len = g_variant_get_size (nt);
          g_byte_array_append (sec[DF_SECTION_RAW], g_variant_get_data (nt), len);
          dfi_sha256 (g_variant_get_data (nt), len, new_root);
          memcpy (e->checksum, new_root, DF_SHA256_LEN);
          e->data_size = e->length = e->object_size = len;
          found = (gint)j;
        }
      if (found < 0)
        {
          for (guint k = 0; k < DF_SECTION_COUNT; k++)
            g_byte_array_unref (sec[k]);
          continue;
        }
      GByteArray *buf = dfi_part_payload_assemble (sec);
      for (guint k = 0; k < DF_SECTION_COUNT; k++)
        g_byte_array_unref (sec[k]);
      p->raw_size = 0;
      for (guint j = 0; j < p->n_entries; j++)
        p->raw_size += p->entries[j].data_size;
      p->uncompressed_size = buf->len;
      g_autoptr (GBytes) file = compress_with (buf->data, buf->len, TRUE);
      g_byte_array_unref (buf);
      store_part (dir, sb, i, file);

      /* The commit, pointing at the new root. */
      GVariantBuilder cb;
      g_variant_builder_init (&cb, G_VARIANT_TYPE ("(a{sv}aya(say)sstayay)"));
      for (gsize k = 0; k < g_variant_n_children (commit); k++)
        g_variant_builder_add_value (
            &cb, k == 6 ? g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, new_root, DF_SHA256_LEN, 1)
                        : g_variant_get_child_value (commit, k));
      g_autoptr (GVariant) nc = g_variant_ref_sink (g_variant_builder_end (&cb));
      g_bytes_unref (sb->commit);
      sb->commit = g_variant_get_data_as_bytes (nc);
      dfi_sha256 (g_variant_get_data (nc), g_variant_get_size (nc), sb->to);
      dfi_hex (sb->to, sb->to_hex);
      save_superblock (dir, sb);
      printf ("%s\n", sb->to_hex);
      return 0;
    }
  die ("the root dirtree is not in the delta");
  return 1;
}

static int
cmd_recompress (const char *dir, guint n, gboolean grow, gboolean content_size)
{
  g_autoptr (DfSuperblock) sb = load (dir);
  if (n >= sb->n_parts)
    die ("no part %u", n);
  g_autoptr (GBytes) payload = read_payload (dir, sb, n);
  GByteArray *buf = g_byte_array_new ();
  g_byte_array_append (buf, g_bytes_get_data (payload, NULL), g_bytes_get_size (payload));
  if (grow)
    g_byte_array_set_size (buf, buf->len + 4 * 1024 * 1024); /* zero bytes: a tiny frame, a big output */
  g_autoptr (GBytes) file = compress_with (buf->data, buf->len, content_size);
  g_byte_array_unref (buf);
  store_part (dir, sb, n, file);
  save_superblock (dir, sb);
  return 0;
}

static GBytes *
read_superblock_file (const char *dir)
{
  g_autofree char *path = g_build_filename (dir, "superblock", NULL);
  g_autoptr (GError) error = NULL;
  GBytes *b = dfi_read_file_bounded (AT_FDCWD, path, DF_SUPERBLOCK_MAX, G_MAXUINT64, "superblock", &error);
  if (b == NULL)
    die ("%s", error->message);
  return b;
}

static int
cmd_swap_signed (const char *dir, const char *other)
{
  g_autoptr (GBytes) file = read_superblock_file (dir);
  g_autoptr (GBytes) inner = NULL;
  g_autoptr (GPtrArray) sigs = NULL;
  g_autoptr (GError) error = NULL;
  if (!dfi_signed_unwrap (file, &inner, &sigs, &error))
    die ("%s is not a signed superblock%s%s", dir, error ? ": " : "", error ? error->message : "");
  g_autoptr (GBytes) replacement = read_superblock_file (other);
  g_autoptr (GBytes) forged = dfi_signed_wrap (replacement, sigs);
  save_file (dir, "superblock", forged);
  return 0;
}

static int
cmd_index_froms (const char *path)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GMappedFile) m = g_mapped_file_new (path, FALSE, &error);
  if (m == NULL)
    die ("%s", error->message);
  g_autoptr (GBytes) b = g_mapped_file_get_bytes (m);
  g_autoptr (GVariant) v = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE ("a{s(ayt)}"), b, FALSE));
  if (!g_variant_is_normal_form (v))
    die ("%s: not an index in normal form", path);
  GVariantIter it;
  const char *from;
  g_variant_iter_init (&it, v);
  while (g_variant_iter_next (&it, "{&s@(ayt)}", &from, NULL))
    printf ("%s\n", from[0] ? from : "empty");
  return 0;
}

static int
cmd_check_envelope (const char *signed_path, const char *plain_path)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) file = dfi_read_file_bounded (AT_FDCWD, signed_path, DF_SUPERBLOCK_MAX, G_MAXUINT64, "s", &error);
  g_autoptr (GBytes) plain = dfi_read_file_bounded (AT_FDCWD, plain_path, DF_SUPERBLOCK_MAX, G_MAXUINT64, "p", NULL);
  if (file == NULL || plain == NULL)
    die ("cannot read the superblocks");
  g_autoptr (GVariant) v = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE ("(taya{sv})"), file, FALSE));
  if (!g_variant_is_normal_form (v))
    die ("not a normal-form (taya{sv})");
  guint64 magic;
  g_autoptr (GVariant) data = NULL, dict = NULL;
  g_variant_get (v, "(t@ay@a{sv})", &magic, &data, &dict);
  /* libostree reads GUINT64_FROM_BE (the 't') == 0x4F535453474E4454. */
  if (GUINT64_FROM_BE (magic) != G_GUINT64_CONSTANT (0x4F535453474E4454))
    die ("magic %" G_GINT64_MODIFIER "x", GUINT64_FROM_BE (magic));
  g_autoptr (GBytes) inner = g_variant_get_data_as_bytes (data);
  if (!g_bytes_equal (inner, plain))
    die ("the signed bytes are not the plain superblock");
  if (g_variant_n_children (dict) != 1)
    die ("%zu signature entries", g_variant_n_children (dict));
  g_autoptr (GVariant) sigs = g_variant_lookup_value (dict, "ostree.sign.ed25519", G_VARIANT_TYPE ("aay"));
  if (sigs == NULL || g_variant_n_children (sigs) != 1)
    die ("no single ostree.sign.ed25519 aay");
  g_autoptr (GVariant) sig = g_variant_get_child_value (sigs, 0);
  if (g_variant_get_size (sig) != 64)
    die ("signature of %zu bytes", g_variant_get_size (sig));
  return 0;
}

static int
cmd_part_sha (const char *dir, guint n)
{
  g_autoptr (DfSuperblock) sb = load (dir);
  if (n >= sb->n_parts)
    die ("no part %u", n);
  sb->parts[n].sha256[7] ^= 0x80;
  save_superblock (dir, sb);
  return 0;
}

static int
cmd_stats (const char *dir)
{
  g_autoptr (DfSuperblock) sb = load (dir);
  const char *names[] = { "metadata", "raw", "zstd-ref", "diff" };
  const char *sections[] = { "raw", "control", "runs", "add", "copy" };
  guint64 count[4] = { 0 }, length[4] = { 0 }, section[DF_SECTION_COUNT] = { 0 };
  for (guint i = 0; i < sb->n_parts; i++)
    {
      g_autoptr (GBytes) payload = read_payload (dir, sb, i);
      DfPartReader r;
      g_autoptr (GError) error = NULL;
      if (!dfi_part_reader_init (&r, g_bytes_get_data (payload, NULL), g_bytes_get_size (payload),
                                 sb->parts[i].raw_size, &error))
        die ("part %u: %s", i, error->message);
      for (guint k = 0; k < DF_SECTION_COUNT; k++)
        section[k] += r.len[k];
      for (guint j = 0; j < sb->parts[i].n_entries; j++)
        {
          const DfEntry *e = &sb->parts[i].entries[j];
          guint k = e->objtype != OSTREE_OBJECT_TYPE_FILE ? 0 : 1 + e->encoding;
          count[k]++;
          length[k] += e->length;
          if (k == 3 && g_getenv ("DF_STATS_DIFFS"))
            {
              char hex[65], shex[65];
              dfi_hex (e->checksum, hex);
              dfi_hex (e->source, shex);
              printf ("diff %s %s %" G_GUINT64_FORMAT "\n", hex, shex, e->length);
            }
          if (k == 1 && e->offset == 0 && e->object_size > 65536 && g_getenv ("DF_STATS_LIST"))
            {
              char hex[65];
              dfi_hex (e->checksum, hex);
              printf ("raw %s %" G_GUINT64_FORMAT "\n", hex, e->object_size);
            }
        }
    }
  for (guint k = 0; k < 4; k++)
    printf ("%-10s entries %6" G_GUINT64_FORMAT "  object bytes %11" G_GUINT64_FORMAT "\n", names[k], count[k],
            length[k]);
  for (guint k = 0; k < DF_SECTION_COUNT; k++)
    printf ("section %-8s %11" G_GUINT64_FORMAT " bytes\n", sections[k], section[k]);
  return 0;
}

typedef struct
{
  OstreeRepo *repo;
  DfSha256 sha;
  const guint8 *csum;
  guint64 meta, content, links, bytes;
  guint8 source_csum[DF_SHA256_LEN];
  GBytes *source; /* loaded on first use */
} StockVerify;

static gboolean
sv_fail (const guint8 *csum, const char *what, GError **error)
{
  char hex[65];
  dfi_hex (csum, hex);
  return dfi_throw (error, DF_ERROR_CORRUPT, "%s %s does not hash to its checksum", what, hex);
}

static gboolean
sv_metadata (gpointer user, OstreeObjectType type, const guint8 csum[DF_SHA256_LEN], GBytes *data, GError **error)
{
  StockVerify *v = user;
  guint8 a[DF_SHA256_LEN];
  dfi_sha256 (g_bytes_get_data (data, NULL), g_bytes_get_size (data), a);
  v->meta++;
  return memcmp (a, csum, DF_SHA256_LEN) == 0 || sv_fail (csum, ostree_object_type_to_string (type), error);
}

static gboolean
sv_begin (gpointer user, const guint8 csum[DF_SHA256_LEN], guint32 uid, guint32 gid, guint32 mode, GVariant *xattrs,
          const char *target, guint64 size, gboolean *skip, GError **error)
{
  StockVerify *v = user;
  dfi_content_checksum_begin (&v->sha, uid, gid, mode, target, xattrs);
  v->csum = csum;
  v->links += target != NULL;
  return TRUE;
}

static gboolean
sv_data (gpointer user, const guint8 *data, gsize len, GError **error)
{
  StockVerify *v = user;
  dfi_sha256_update (&v->sha, data, len);
  v->bytes += len;
  return TRUE;
}

static gboolean
sv_end (gpointer user, GError **error)
{
  StockVerify *v = user;
  guint8 a[DF_SHA256_LEN];
  dfi_sha256_final (&v->sha, a);
  dfi_sha256_clear (&v->sha);
  v->content++;
  return memcmp (a, v->csum, DF_SHA256_LEN) == 0 || sv_fail (v->csum, "file", error);
}

static gboolean
sv_source_set (gpointer user, const guint8 csum[DF_SHA256_LEN], GError **error)
{
  StockVerify *v = user;
  memcpy (v->source_csum, csum, DF_SHA256_LEN);
  g_clear_pointer (&v->source, g_bytes_unref);
  return TRUE;
}

/* Loads the named source on first use, as the apply does. */
static gboolean
sv_source_size (gpointer user, guint64 *size, GError **error)
{
  StockVerify *v = user;
  if (v->source == NULL)
    {
      char hex[65];
      dfi_hex (v->source_csum, hex);
      g_autoptr (GInputStream) in = NULL;
      if (!ostree_repo_load_file (v->repo, hex, &in, NULL, NULL, NULL, error))
        return FALSE;
      if (in == NULL)
        return dfi_throw (error, DF_ERROR_INVALID_DELTA, "source object %s is not a regular file", hex);
      g_autoptr (GOutputStream) out = g_memory_output_stream_new_resizable ();
      if (g_output_stream_splice (out, in, G_OUTPUT_STREAM_SPLICE_CLOSE_TARGET, NULL, error) < 0)
        return FALSE;
      v->source = g_memory_output_stream_steal_as_bytes (G_MEMORY_OUTPUT_STREAM (out));
    }
  *size = g_bytes_get_size (v->source);
  return TRUE;
}

static gboolean
sv_source_read (gpointer user, guint64 offset, guint8 *buf, gsize len, GError **error)
{
  StockVerify *v = user;
  guint64 size;
  if (!sv_source_size (user, &size, error))
    return FALSE;
  g_assert (offset + len <= size);
  memcpy (buf, (const guint8 *)g_bytes_get_data (v->source, NULL) + offset, len);
  return TRUE;
}

static void
sv_source_unset (gpointer user)
{
  StockVerify *v = user;
  g_clear_pointer (&v->source, g_bytes_unref);
}

/* Opens REPO and parses the stock superblock of DELTA (dies otherwise). */
static DfStockSuperblock *
load_stock (const char *repo_path, const char *dir, OstreeRepo **out_repo, GBytes **out_file)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GFile) rf = g_file_new_for_path (repo_path);
  *out_repo = ostree_repo_new (rf);
  if (!ostree_repo_open (*out_repo, NULL, &error))
    die ("%s", error->message);
  *out_file = read_superblock_file (dir);
  if (!dfi_stock_superblock_sniff (*out_file))
    die ("%s is a native delta", dir);
  DfStockSuperblock *sb = dfi_stock_superblock_parse (*out_file, &error);
  if (sb == NULL)
    die ("%s", error->message);
  return sb;
}

static int
cmd_stock_verify (const char *repo_path, const char *dir)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (OstreeRepo) repo = NULL;
  g_autoptr (GBytes) file = NULL;
  g_autoptr (DfStockSuperblock) sb = load_stock (repo_path, dir, &repo, &file);
  StockVerify v = { .repo = repo };
  const DfStockSink sink
      = { sv_metadata, sv_begin, sv_data, sv_end, sv_source_set, sv_source_size, sv_source_read, sv_source_unset };
  DfStockOpStats st = { 0 };
  guint inline_parts = 0;
  for (guint i = 0; i < sb->n_parts; i++)
    {
      g_autofree char *name = g_strdup_printf ("%s/%u", dir, i);
      dfi_autofd pfd = sb->parts[i].inline_data ? -1 : open (name, O_RDONLY | O_CLOEXEC);
      inline_parts += sb->parts[i].inline_data != NULL;
      if (!sb->parts[i].inline_data && pfd < 0)
        die ("part %u: %s", i, g_strerror (errno));
      dfi_autofd tfd = open ("/var/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
      if (tfd < 0)
        die ("tmpfile: %s", g_strerror (errno));
      guint64 len;
      DfStockPayload pl;
      if (!dfi_stock_part_decode (sb, i, pfd, -1, tfd, &len, NULL, NULL, &error)
          || !dfi_stock_payload_open (&pl, tfd, len, &error))
        die ("%s", error->message);
      gboolean ok = dfi_stock_execute (&sb->parts[i], &pl, &sink, &v, &st, NULL, &error);
      dfi_stock_payload_clear (&pl);
      if (!ok)
        die ("part %u: %s", i, error->message);
    }
  printf ("endianness %s%s\nparts %u inline %u\nfallbacks %u\nobjects %" G_GUINT64_FORMAT "\nmetadata %" G_GUINT64_FORMAT
          "\nfiles %" G_GUINT64_FORMAT "\nsymlinks %" G_GUINT64_FORMAT "\nbytes %" G_GUINT64_FORMAT "\n",
          sb->big_endian ? "big" : "little", sb->endianness_guessed ? " (guessed)" : "", sb->n_parts, inline_parts,
          sb->n_fallbacks, sb->n_objects, v.meta, v.content, v.links, v.bytes);
  printf ("ops splice %" G_GUINT64_FORMAT " open %" G_GUINT64_FORMAT " write %" G_GUINT64_FORMAT
          " write-source %" G_GUINT64_FORMAT " set-source %" G_GUINT64_FORMAT " unset-source %" G_GUINT64_FORMAT
          " close %" G_GUINT64_FORMAT " bspatch %" G_GUINT64_FORMAT "\n",
          st.splice, st.open, st.write, st.write_source, st.set_source, st.unset_source, st.close, st.bspatch);
  return 0;
}

static guint64
rd_varint (const guint8 *p, gsize len, gsize *pos)
{
  guint64 v = 0;
  for (guint k = 0; k < 10 && *pos < len; k++)
    {
      guint8 b = p[(*pos)++];
      v |= (guint64)(b & 0x7f) << (7 * k);
      if (!(b & 0x80))
        break;
    }
  return v;
}

static int
cmd_stock_mangle (const char *dir, guint n, const char *what)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) file = read_superblock_file (dir);
  g_autoptr (DfStockSuperblock) sb = dfi_stock_superblock_parse (file, &error);
  if (sb == NULL || n >= sb->n_parts || sb->big_endian || sb->file.is_signed)
    die ("not a plain little-endian stock delta with part %u", n);
  g_autofree char *pname = g_strdup_printf ("%s/%u", dir, n);
  dfi_autofd pfd = open (pname, O_RDONLY | O_CLOEXEC);
  dfi_autofd tfd = open ("/var/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  guint64 len;
  DfStockPayload pl;
  if (!dfi_stock_part_decode (sb, n, pfd, -1, tfd, &len, NULL, NULL, &error)
      || !dfi_stock_payload_open (&pl, tfd, len, &error))
    die ("%s", error->message);
  GByteArray *raw = g_byte_array_sized_new (pl.raw_len);
  g_byte_array_set_size (raw, pl.raw_len);
  if (pread (tfd, raw->data, pl.raw_len, pl.raw_off) != (gssize)pl.raw_len)
    die ("reading the payload");
  g_autoptr (GBytes) ops_bytes = dfi_stock_payload_read_ops (&pl, &error);
  if (ops_bytes == NULL)
    die ("%s", error->message);
  GByteArray *ops = g_byte_array_new ();
  g_byte_array_append (ops, g_bytes_get_data (ops_bytes, NULL), g_bytes_get_size (ops_bytes));
  guint extra_objects = 0;
  gboolean zero_size = g_str_equal (what, "zero-size");
  if (zero_size)
    ; /* an empty part file, declared so */
  else if (g_str_equal (what, "opcode"))
    ops->data[0] = 'Z';
  else if (g_str_equal (what, "objects"))
    extra_objects = 1;
  else
    {
      /* Walk the opcodes to the first one of interest. */
      gsize pos = 0;
      guint idx = 0;
      gboolean done = FALSE;
      while (!done && pos < ops->len)
        {
          guint8 op = ops->data[pos++];
          gboolean meta = op == 'S' && idx < sb->parts[n].n_objects
                          && sb->parts[n].objects[idx * DF_STOCK_OBJREC_LEN] != OSTREE_OBJECT_TYPE_FILE;
          guint nargs = op == 'S' ? (meta ? 2 : 4) : op == 'o' ? 3 : op == 'w' || op == 'B' ? 2 : op == 'r' ? 1 : 0;
          /* Which operand is an offset into the payload's data. */
          guint offarg = op == 'S' ? nargs - 1 : op == 'r' ? 0 : G_MAXUINT;
          if (op == 'S' || op == 'c')
            idx++;
          if (op == 'B' && g_str_has_prefix (what, "bspatch"))
            {
              guint64 off = rd_varint (ops->data, ops->len, &pos);
              guint8 *c = raw->data + off;
              if (g_str_equal (what, "bspatch-negative"))
                c[7] |= 0x80;
              else
                memset (c, 0xff, 7), c[7] = 0x7f;
              done = TRUE;
              break;
            }
          for (guint k = 0; k < nargs; k++)
            {
              gsize start = pos;
              rd_varint (ops->data, ops->len, &pos);
              if (k == offarg && g_str_equal (what, "offset"))
                {
                  GByteArray *rest = g_byte_array_new ();
                  g_byte_array_append (rest, ops->data + pos, ops->len - pos);
                  g_byte_array_set_size (ops, start);
                  dfi_varint_append (ops, pl.raw_len + 1);
                  g_byte_array_append (ops, rest->data, rest->len);
                  g_byte_array_unref (rest);
                  done = TRUE;
                  break;
                }
            }
        }
      if (!done)
        die ("no opcode to mangle for %s", what);
    }
  g_autoptr (GVariant) modes = g_variant_get_normal_form (pl.modes);
  g_autoptr (GVariant) xattrs = g_variant_get_normal_form (pl.xattrs);
  g_autoptr (GVariant) payload = g_variant_ref_sink (g_variant_new (
      "(@a(uuu)@aa(ayay)@ay@ay)", modes, xattrs,
      g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, raw->data, raw->len, 1),
      g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, ops->data, ops->len, 1)));
  gsize plen = g_variant_get_size (payload);
  guint8 *pfile = g_malloc (plen + 1);
  pfile[0] = 0; /* uncompressed */
  /* g_variant_store() wants an aligned destination. */
  g_autofree guint8 *aligned = g_malloc (plen);
  g_variant_store (payload, aligned);
  memcpy (pfile + 1, aligned, plen);
  g_autoptr (GBytes) newpart = g_bytes_new_take (pfile, zero_size ? 0 : plen + 1);
  save_file (dir, strrchr (pname, '/') + 1, newpart);
  /* The superblock with the part's new hash and size. */
  g_autoptr (GVariant) v = g_variant_ref_sink (g_variant_new_from_bytes (
      G_VARIANT_TYPE ("(a{sv}tayay(a{sv}aya(say)sstayay)aya(uayttay)a(yaytt))"), file, FALSE));
  g_autoptr (GVariant) headers = g_variant_get_child_value (v, 6);
  GVariantBuilder hb;
  g_variant_builder_init (&hb, G_VARIANT_TYPE ("a(uayttay)"));
  for (guint i = 0; i < g_variant_n_children (headers); i++)
    {
      g_autoptr (GVariant) h = g_variant_get_child_value (headers, i);
      if (i != n)
        {
          g_variant_builder_add_value (&hb, h);
          continue;
        }
      guint32 ver;
      guint64 size, usize;
      g_autoptr (GVariant) sha = NULL, objs = NULL;
      g_variant_get (h, "(u@aytt@ay)", &ver, &sha, &size, &usize, &objs);
      guint8 digest[DF_SHA256_LEN];
      dfi_sha256 (g_bytes_get_data (newpart, NULL), g_bytes_get_size (newpart), digest);
      GByteArray *ob = g_byte_array_new ();
      g_byte_array_append (ob, g_variant_get_data (objs), g_variant_get_size (objs));
      if (extra_objects)
        g_byte_array_append (ob, g_variant_get_data (objs), DF_STOCK_OBJREC_LEN);
      g_variant_builder_add (&hb, "(u@aytt@ay)", ver,
                             g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, digest, DF_SHA256_LEN, 1),
                             GUINT64_TO_LE ((guint64)g_bytes_get_size (newpart)), usize,
                             g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, ob->data, ob->len, 1));
      g_byte_array_unref (ob);
    }
  GVariantBuilder b;
  g_variant_builder_init (&b, G_VARIANT_TYPE_TUPLE);
  for (guint i = 0; i < g_variant_n_children (v); i++)
    {
      if (i == 6)
        g_variant_builder_add_value (&b, g_variant_builder_end (&hb));
      else
        g_variant_builder_add_value (&b, g_variant_get_child_value (v, i));
    }
  g_autoptr (GVariant) nsb = g_variant_ref_sink (g_variant_builder_end (&b));
  g_autoptr (GVariant) normal = g_variant_get_normal_form (nsb);
  g_autoptr (GBytes) out = g_variant_get_data_as_bytes (normal);
  save_file (dir, "superblock", out);
  dfi_stock_payload_clear (&pl);
  g_byte_array_unref (raw);
  g_byte_array_unref (ops);
  return 0;
}

static int
cmd_stock_fuzz (const char *repo_path, const char *dir, guint iterations)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (OstreeRepo) repo = NULL;
  g_autoptr (GBytes) file = NULL;
  g_autoptr (DfStockSuperblock) sb = load_stock (repo_path, dir, &repo, &file);
  g_autofree char *pname = g_strdup_printf ("%s/0", dir);
  dfi_autofd pfd = sb->parts[0].inline_data ? -1 : open (pname, O_RDONLY | O_CLOEXEC);
  dfi_autofd tfd = open ("/var/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  guint64 len;
  if (!dfi_stock_part_decode (sb, 0, pfd, -1, tfd, &len, NULL, NULL, &error))
    die ("%s", error->message);
  g_autofree guint8 *payload = g_malloc (len);
  if (pread (tfd, payload, len, 0) != (gssize)len)
    die ("reading the payload");
  g_autoptr (GRand) rnd = g_rand_new_with_seed (7);
  gsize slen;
  const guint8 *sdata = g_bytes_get_data (file, &slen);
  g_autofree guint8 *buf = g_malloc (MAX (slen, len));
  guint sb_ok = 0, sb_refused = 0, run_ok = 0, run_refused = 0;
  const DfStockSink sink
      = { sv_metadata, sv_begin, sv_data, sv_end, sv_source_set, sv_source_size, sv_source_read, sv_source_unset };
  for (guint it = 0; it < iterations; it++)
    {
      gboolean on_sb = g_rand_int_range (rnd, 0, 3) == 0;
      gsize n = on_sb ? slen : len;
      memcpy (buf, on_sb ? sdata : payload, n);
      guint flips = g_rand_int_range (rnd, 1, 5);
      for (guint f = 0; f < flips; f++)
        {
          /* Mostly near the end, where the framing and opcodes are. */
          gsize at = g_rand_boolean (rnd) ? n - 1 - (gsize)g_rand_int_range (rnd, 0, MIN (n, 4096))
                                         : (gsize)g_rand_int_range (rnd, 0, n);
          buf[at] = g_rand_int_range (rnd, 0, 256);
        }
      g_autoptr (GError) e = NULL;
      if (on_sb)
        {
          g_autoptr (GBytes) b = g_bytes_new (buf, n);
          g_autoptr (DfStockSuperblock) m = dfi_stock_superblock_parse (b, &e);
          m ? sb_ok++ : sb_refused++;
          continue;
        }
      dfi_autofd mfd = open ("/var/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
      if (pwrite (mfd, buf, n, 0) != (gssize)n)
        die ("writing");
      DfStockPayload pl;
      StockVerify v = { .repo = repo };
      gboolean ok = dfi_stock_payload_open (&pl, mfd, n, &e);
      if (ok)
        {
          ok = dfi_stock_execute (&sb->parts[0], &pl, &sink, &v, NULL, NULL, &e);
          dfi_stock_payload_clear (&pl);
        }
      if (v.csum && v.sha.ctx)
        dfi_sha256_clear (&v.sha);
      sv_source_unset (&v);
      ok ? run_ok++ : run_refused++;
    }
  printf ("superblocks parsed %u refused %u\npayloads run %u refused %u\n", sb_ok, sb_refused, run_ok, run_refused);
  return 0;
}

static int
cmd_maxrss (char **argv)
{
  pid_t pid = fork ();
  if (pid < 0)
    die ("fork: %s", g_strerror (errno));
  if (pid == 0)
    {
      execvp (argv[0], argv);
      _exit (127);
    }
  int status;
  struct rusage ru;
  if (wait4 (pid, &status, 0, &ru) < 0)
    die ("wait4: %s", g_strerror (errno));
  fprintf (stderr, "maxrss-kib %ld\n", ru.ru_maxrss);
  return WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
}

/* A JSON string of @s (bytes that are not printable ASCII as \u00XX). */
static void
json_str (GString *out, const char *s)
{
  g_string_append_c (out, '"');
  for (const guint8 *p = (const guint8 *)s; *p; p++)
    if (*p == '"' || *p == '\\')
      g_string_append_printf (out, "\\%c", *p);
    else if (*p < 0x20 || *p >= 0x7f)
      g_string_append_printf (out, "\\u%04x", *p);
    else
      g_string_append_c (out, *p);
  g_string_append_c (out, '"');
}

static int
cmd_detect (int argc, char **argv)
{
  DfDetectLimits lim;
  dfi_detect_limits_default (&lim);
  DfDetectFlags flags = 0;
  gboolean text_form = FALSE;
  const char *path = NULL;
  for (int i = 0; i < argc; i++)
    {
      const char *a = argv[i];
      const char *eq = strchr (a, '=');
      guint64 v = eq ? g_ascii_strtoull (eq + 1, NULL, 10) : 0;
      if (strcmp (a, "--hash") == 0)
        flags |= DF_DETECT_HASH_ENTRIES;
      else if (strcmp (a, "--text") == 0)
        text_form = TRUE;
      else if (g_str_has_prefix (a, "--segments-max="))
        lim.segments_max = v;
      else if (g_str_has_prefix (a, "--entries-max="))
        lim.entries_max = v;
      else if (g_str_has_prefix (a, "--depth-max="))
        lim.depth_max = v;
      else if (g_str_has_prefix (a, "--decompressed-max="))
        lim.decompressed_max = v;
      else if (g_str_has_prefix (a, "--decoder-mem="))
        lim.decoder_mem = v;
      else if (a[0] == '-' || path)
        die ("detect: bad argument %s", a);
      else
        path = a;
    }
  if (path == NULL)
    die ("usage: detect [OPTIONS] FILE");
  dfi_autofd fd = open (path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat (fd, &st) < 0)
    die ("%s: %s", path, g_strerror (errno));
  g_autoptr (GError) error = NULL;
  gint64 t0 = g_get_monotonic_time ();
  g_autoptr (DfDetect) d = dfi_detect_fd (fd, st.st_size, &lim, flags, NULL, &error);
  gint64 t1 = g_get_monotonic_time ();
  if (d == NULL)
    die ("%s", error->message);
  g_autoptr (GString) out = g_string_new (NULL);
  if (text_form)
    {
      for (guint i = 0; i < d->n_segments; i++)
        {
          const DfSegment *s = &d->segments[i];
          printf ("%*s%-*s %12" G_GUINT64_FORMAT " %12" G_GUINT64_FORMAT, 2 * s->depth, "", 16 - 2 * s->depth,
                  dfi_segment_kind_name (s->kind), s->offset, s->length);
          if (s->kind >= DF_SEGMENT_GZIP && s->kind <= DF_SEGMENT_LZMA && s->kind != DF_SEGMENT_ZSTD_SKIPPABLE)
            printf (" -> %" G_GUINT64_FORMAT, s->decompressed_size);
          if (s->kind == DF_SEGMENT_CPIO)
            printf ("  %u entries", s->u.cpio.n_entries);
          printf ("%s%s%s\n", s->flags & DF_SEGMENT_CHECKED ? "  checked" : "",
                  s->flags & DF_SEGMENT_BZIMAGE_PAYLOAD ? "  bzimage-payload" : "",
                  s->flags & DF_SEGMENT_LIMIT ? "  LIMIT" : "");
        }
      DfDetectSummary sum;
      dfi_detect_summarize (d, &sum);
      g_autofree char *text = dfi_detect_summary_to_string (&sum);
      printf ("%s; %" G_GINT64_FORMAT " ms\n", text, (t1 - t0) / 1000);
      return 0;
    }
  for (guint i = 0; i < d->n_segments; i++)
    {
      const DfSegment *s = &d->segments[i];
      g_string_append_printf (out,
                              "{\"seg\":%u,\"depth\":%u,\"parent\":%d,\"kind\":\"%s\",\"offset\":%" G_GUINT64_FORMAT
                              ",\"length\":%" G_GUINT64_FORMAT,
                              i, s->depth, s->parent, dfi_segment_kind_name (s->kind), s->offset, s->length);
      static const char *const fl[]
          = { "checked", "content-size", "checksum", "no-trailer", "bzimage-payload", "limit", "not-examined" };
      g_string_append (out, ",\"flags\":[");
      gboolean first = TRUE;
      for (guint b = 0; b < G_N_ELEMENTS (fl); b++)
        if (s->flags & (1u << b))
          {
            g_string_append_printf (out, "%s\"%s\"", first ? "" : ",", fl[b]);
            first = FALSE;
          }
      g_string_append_c (out, ']');
      switch (s->kind)
        {
        case DF_SEGMENT_GZIP:
          g_string_append_printf (out,
                                  ",\"dsize\":%" G_GUINT64_FORMAT ",\"flg\":%u,\"xfl\":%u,\"os\":%u,\"mtime\":%u,"
                                  "\"header_len\":%u,\"name_len\":%u",
                                  s->decompressed_size, s->u.gzip.flg, s->u.gzip.xfl, s->u.gzip.os, s->u.gzip.mtime,
                                  s->u.gzip.header_len, s->u.gzip.name_len);
          break;
        case DF_SEGMENT_ZLIB:
          g_string_append_printf (out, ",\"dsize\":%" G_GUINT64_FORMAT ",\"cmf\":%u,\"flg\":%u", s->decompressed_size,
                                  s->u.zlib.cmf, s->u.zlib.flg);
          break;
        case DF_SEGMENT_ZSTD:
          g_string_append_printf (out, ",\"dsize\":%" G_GUINT64_FORMAT ",\"window\":%" G_GUINT64_FORMAT,
                                  s->decompressed_size, s->u.zstd.window_size);
          break;
        case DF_SEGMENT_ZSTD_SKIPPABLE:
          g_string_append_printf (out, ",\"magic\":%u", s->u.zstd.magic);
          break;
        case DF_SEGMENT_XZ:
          g_string_append_printf (out, ",\"dsize\":%" G_GUINT64_FORMAT ",\"check\":%u,\"filters\":[",
                                  s->decompressed_size, s->u.xz.check);
          for (guint f = 0; f < s->u.xz.n_filters; f++)
            g_string_append_printf (out, "%s{\"id\":%" G_GUINT64_FORMAT ",\"dict\":%u,\"start\":%u}", f ? "," : "",
                                    s->u.xz.filters[f].id, s->u.xz.filters[f].dict_size,
                                    s->u.xz.filters[f].start_offset);
          g_string_append_c (out, ']');
          break;
        case DF_SEGMENT_LZMA:
          g_string_append_printf (out, ",\"dsize\":%" G_GUINT64_FORMAT ",\"props\":%u,\"dict\":%u",
                                  s->decompressed_size, s->u.lzma.props, s->u.lzma.dict_size);
          break;
        case DF_SEGMENT_CPIO:
          g_string_append_printf (out, ",\"first_entry\":%u,\"entries\":%u", s->u.cpio.first_entry,
                                  s->u.cpio.n_entries);
          break;
        case DF_SEGMENT_BZIMAGE_SETUP:
          g_string_append_printf (out, ",\"version\":%u,\"setup_sects\":%u,\"payload_offset\":%u,\"payload_length\":%u",
                                  s->u.bzimage.version, s->u.bzimage.setup_sects, s->u.bzimage.payload_offset,
                                  s->u.bzimage.payload_length);
          break;
        default:
          break;
        }
      g_string_append (out, "}\n");
      fwrite (out->str, 1, out->len, stdout);
      g_string_truncate (out, 0);
    }
  for (guint i = 0; i < d->n_entries; i++)
    {
      const DfCpioEntry *e = &d->entries[i];
      g_string_append_printf (out, "{\"entry\":%u,\"seg\":%u,\"name\":", i, e->segment);
      json_str (out, e->name);
      g_string_append_printf (out,
                              ",\"mode\":%u,\"size\":%u,\"header\":%" G_GUINT64_FORMAT ",\"data\":%" G_GUINT64_FORMAT
                              ",\"ino\":%u,\"nlink\":%u,\"mtime\":%u",
                              e->mode, e->filesize, e->header_offset, e->data_offset, e->ino, e->nlink, e->mtime);
      if (e->has_sha256)
        {
          char hex[65];
          dfi_hex (e->sha256, hex);
          g_string_append_printf (out, ",\"sha256\":\"%s\"", hex);
        }
      g_string_append (out, "}\n");
      fwrite (out->str, 1, out->len, stdout);
      g_string_truncate (out, 0);
    }
  DfDetectSummary sum;
  dfi_detect_summarize (d, &sum);
  g_autofree char *text = dfi_detect_summary_to_string (&sum);
  g_string_append (out, "{\"summary\":");
  json_str (out, text);
  g_string_append_printf (out,
                          ",\"segments\":%u,\"entries\":%u,\"decompressed_total\":%" G_GUINT64_FORMAT
                          ",\"limited\":%s,\"ms\":%" G_GINT64_FORMAT "}\n",
                          d->n_segments, d->n_entries, d->decompressed_total, d->limited ? "true" : "false",
                          (t1 - t0) / 1000);
  fwrite (out->str, 1, out->len, stdout);
  return 0;
}

static gboolean
fd_write (gpointer data, const guint8 *buf, gsize len, GError **error)
{
  return dfi_write_all (GPOINTER_TO_INT (data), buf, len, "rebuild", error);
}

static gssize
fd_read (gpointer data, guint8 *buf, gsize len, GError **error)
{
  gssize n = read (GPOINTER_TO_INT (data), buf, len);
  if (n < 0)
    dfi_throw_errno (error, errno, "read");
  return n;
}

static int
cmd_recipe_find (char **argv, int argc)
{
  dfi_autofd sfd = open (argv[2], O_RDONLY);
  dfi_autofd cfd = open (argv[3], O_RDONLY);
  struct stat ss, cs;
  if (sfd < 0 || cfd < 0 || fstat (sfd, &ss) < 0 || fstat (cfd, &cs) < 0)
    die ("cannot open %s or %s", argv[2], argv[3]);
  DfRecipeSpan s = { sfd, 0, (guint64)ss.st_size }, c = { cfd, 0, (guint64)cs.st_size };
  if (argc == 6)
    s.offset = g_ascii_strtoull (argv[4], NULL, 0), s.length = g_ascii_strtoull (argv[5], NULL, 0);
  DfRecipe r;
  gboolean found;
  DfRecipeFindStats st;
  g_autoptr (GError) error = NULL;
  gint64 t0 = g_get_monotonic_time ();
  if (!dfi_recipe_find (&s, &c, NULL, &r, &found, &st, NULL, &error))
    die ("%s", error->message);
  g_autofree char *desc = found ? dfi_recipe_describe (&r) : g_strdup ("no recipe");
  printf ("%s\n%u of %u candidates run (%u skipped for memory%s), %" G_GUINT64_FORMAT " content bytes fed, %" G_GUINT64_FORMAT
          " stream bytes compared, %.2f s\n",
          desc, st.candidates, st.listed, st.skipped, st.exhausted ? ", stopped by a limit" : "", st.bytes_in,
          st.bytes_out, (g_get_monotonic_time () - t0) / 1e6);
  if (!found)
    return 1;
  guint64 mem;
  if (!dfi_recipe_memory (&r, &mem, &error))
    die ("%s", error->message);
  g_autoptr (GBytes) ser = dfi_recipe_serialize (&r);
  int out = memfd_create ("rebuild", 0);
  lseek (cfd, 0, SEEK_SET);
  t0 = g_get_monotonic_time ();
  if (!dfi_recipe_rebuild (&r, fd_read, GINT_TO_POINTER (cfd), fd_write, GINT_TO_POINTER (out), mem, NULL, &error))
    die ("%s", error->message);
  printf ("recipe %" G_GSIZE_FORMAT " bytes serialised; rebuild needs %" G_GUINT64_FORMAT " KiB, took %.2f s\n",
          g_bytes_get_size (ser), mem / 1024, (g_get_monotonic_time () - t0) / 1e6);
  g_autofree guint8 *a = g_malloc (1 << 20), *b = g_malloc (1 << 20);
  for (guint64 pos = 0; pos < s.length; pos += 1 << 20)
    {
      gsize n = (gsize)MIN (s.length - pos, (guint64)1 << 20);
      if (!dfi_pread_all (out, a, n, pos, "rebuild", NULL) || !dfi_pread_all (sfd, b, n, s.offset + pos, "stream", NULL)
          || memcmp (a, b, n) != 0)
        die ("the rebuild differs near byte %" G_GUINT64_FORMAT, pos);
    }
  printf ("rebuild byte-identical\n");
  return 0;
}

static guint64
vm_hwm_kib (void)
{
  g_autofree char *status = NULL;
  g_file_get_contents ("/proc/self/status", &status, NULL, NULL);
  const char *at = status ? strstr (status, "\nVmHWM:") : NULL;
  return at ? g_ascii_strtoull (at + 7, NULL, 10) : 0;
}

static int
cmd_recipe_zstd_mt (int level, const char *path)
{
  g_autofree char *data = NULL;
  gsize len;
  if (!g_file_get_contents (path, &data, &len, NULL))
    die ("cannot read %s", path);
  DfRecipe r = { .codec = DF_RECIPE_CODEC_ZSTD, .level = level, .content_size = len, .stream_size = len + len / 16 };
  dfi_recipe_library_identity (r.codec, r.library);
  r.zstd.mt = TRUE;
  r.zstd.checksum = TRUE;
  guint64 est;
  g_autoptr (GError) error = NULL;
  if (!dfi_recipe_memory (&r, &est, &error))
    die ("%s", error->message);
  guint64 before = vm_hwm_kib ();
  g_autoptr (ZSTD_CCtx) cctx = ZSTD_createCCtx ();
  ZSTD_CCtx_setParameter (cctx, ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter (cctx, ZSTD_c_checksumFlag, 1);
  ZSTD_CCtx_setParameter (cctx, ZSTD_c_nbWorkers, 1);
  gsize out_size = ZSTD_CStreamOutSize (), peak = 0, rem, chunk = ZSTD_CStreamInSize ();
  g_autofree guint8 *out = g_malloc (out_size);
  for (gsize pos = 0;; pos += chunk)
    {
      gboolean last = pos + chunk >= len;
      ZSTD_inBuffer ib = { data + pos, last ? len - pos : chunk, 0 };
      do
        {
          ZSTD_outBuffer ob = { out, out_size, 0 };
          rem = ZSTD_compressStream2 (cctx, &ob, &ib, last ? ZSTD_e_end : ZSTD_e_continue);
          if (ZSTD_isError (rem))
            die ("%s", ZSTD_getErrorName (rem));
          peak = MAX (peak, ZSTD_sizeof_CCtx (cctx));
        }
      while (last ? rem != 0 : ib.pos < ib.size);
      if (last)
        break;
    }
  printf ("zstd -%d, one worker, %" G_GSIZE_FORMAT " bytes: estimate %" G_GUINT64_FORMAT " KiB, libzstd holds %" G_GSIZE_FORMAT
          " KiB, peak RSS grew by %" G_GUINT64_FORMAT " KiB\n",
          level, len, est / 1024, peak / 1024, vm_hwm_kib () - before);
  return 0;
}

/* An a{sv} with "ostree.sign.ed25519" → one signature of @data by @secret,
 * added to @base (may be NULL). */
static GVariant *
signed_dict (GVariant *base, GBytes *data, const char *secret)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (DfSigner) s = dfi_signer_load (secret, &error);
  g_autoptr (GBytes) sig = s ? dfi_signer_sign (s, data, &error) : NULL;
  if (sig == NULL)
    die ("%s", error->message);
  g_autoptr (GVariantDict) d = g_variant_dict_new (base);
  GVariantBuilder sigs;
  g_variant_builder_init (&sigs, G_VARIANT_TYPE ("aay"));
  g_variant_builder_add_value (&sigs, g_variant_new_from_bytes (G_VARIANT_TYPE_BYTESTRING, sig, TRUE));
  g_variant_dict_insert_value (d, DF_SIGN_ED25519_KEY, g_variant_builder_end (&sigs));
  return g_variant_ref_sink (g_variant_dict_end (d));
}

static int
cmd_sign_commit (const char *repo_path, const char *commit, const char *secret)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GFile) f = g_file_new_for_path (repo_path);
  g_autoptr (OstreeRepo) repo = ostree_repo_new (f);
  g_autoptr (GVariant) cv = NULL, meta = NULL;
  if (!ostree_repo_open (repo, NULL, &error) || !ostree_repo_load_commit (repo, commit, &cv, NULL, &error)
      || !ostree_repo_read_commit_detached_metadata (repo, commit, &meta, NULL, &error))
    die ("%s", error->message);
  g_autoptr (GBytes) data = g_variant_get_data_as_bytes (cv);
  g_autoptr (GVariant) d = signed_dict (meta, data, secret);
  if (!ostree_repo_write_commit_detached_metadata (repo, commit, d, NULL, &error))
    die ("%s", error->message);
  return 0;
}

static int
cmd_sign_summary (const char *repo_path, const char *secret)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *path = g_build_filename (repo_path, "summary", NULL);
  g_autofree char *sig_path = g_build_filename (repo_path, "summary.sig", NULL);
  g_autoptr (GMappedFile) m = g_mapped_file_new (path, FALSE, &error);
  if (m == NULL)
    die ("%s", error->message);
  g_autoptr (GBytes) data = g_mapped_file_get_bytes (m);
  g_autoptr (GVariant) d = signed_dict (NULL, data, secret);
  if (!g_file_set_contents (sig_path, g_variant_get_data (d), g_variant_get_size (d), &error))
    die ("%s", error->message);
  return 0;
}

int
main (int argc, char **argv)
{
  if (argc < 3)
    die ("usage: see the comment at the top of df-test-tool.c");
  const char *cmd = argv[1];
  if (strcmp (cmd, "sign-commit") == 0 && argc == 5)
    return cmd_sign_commit (argv[2], argv[3], argv[4]);
  if (strcmp (cmd, "sign-summary") == 0 && argc == 4)
    return cmd_sign_summary (argv[2], argv[3]);
  if (strcmp (cmd, "stock-verify") == 0 && argc == 4)
    return cmd_stock_verify (argv[2], argv[3]);
  if (strcmp (cmd, "stock-mangle") == 0 && argc == 5)
    return cmd_stock_mangle (argv[2], atoi (argv[3]), argv[4]);
  if (strcmp (cmd, "stock-fuzz") == 0 && argc == 5)
    return cmd_stock_fuzz (argv[2], argv[3], atoi (argv[4]));
  if (strcmp (cmd, "maxrss") == 0)
    return cmd_maxrss (argv + 2);
  if (strcmp (cmd, "detect") == 0)
    return cmd_detect (argc - 2, argv + 2);
  if (strcmp (cmd, "recipe-find") == 0 && (argc == 4 || argc == 6))
    return cmd_recipe_find (argv, argc);
  if (strcmp (cmd, "recipe-zstd-mt") == 0 && argc == 4)
    return cmd_recipe_zstd_mt (atoi (argv[2]), argv[3]);
  const char *dir = argv[2];
  guint n = argc > 3 ? (guint)atoi (argv[3]) : 0;
  if (strcmp (cmd, "stats") == 0)
    return cmd_stats (dir);
  if (strcmp (cmd, "part-sha") == 0)
    return cmd_part_sha (dir, n);
  if (strcmp (cmd, "corrupt-object") == 0)
    return cmd_corrupt_object (dir);
  if (strcmp (cmd, "corrupt-chunk") == 0)
    return corrupt_entry (dir, TRUE);
  if (strcmp (cmd, "extra-object") == 0)
    return cmd_extra_object (dir);
  if (strcmp (cmd, "bad-name") == 0 && argc == 4)
    return cmd_bad_name (dir, argv[3]);
  if (strcmp (cmd, "index-froms") == 0 && argc == 3)
    return cmd_index_froms (argv[2]);
  if (strcmp (cmd, "check-envelope") == 0 && argc == 4)
    return cmd_check_envelope (dir, argv[3]);
  if (strcmp (cmd, "swap-signed") == 0 && argc == 4)
    return cmd_swap_signed (dir, argv[3]);
  if (strcmp (cmd, "unsized-part") == 0)
    return cmd_recompress (dir, n, FALSE, FALSE);
  if (strcmp (cmd, "grown-part") == 0)
    return cmd_recompress (dir, n, TRUE, TRUE);
  die ("unknown command %s", cmd);
  return 99;
}
