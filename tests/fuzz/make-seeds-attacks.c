/* Seeds with the structures of issue 14's attacks, each as large as a seed
 * may be (SEED_MAX_LEN), so that a regression to work quadratic in the
 * number of entries, or to memory or work unbounded by them, shows as a
 * libFuzzer timeout or out-of-memory on the seeds themselves
 * (tests/fuzz/limits):
 *   superblock, superblock-body   thousands of entries whose checksums share
 *                                 28 bytes, metadata entries, the chunks of
 *                                 one split object, windows at their limits
 *   stock-superblock              many parts, objects, fallbacks sharing
 *                                 prefixes
 *   stock-part                    tens of thousands of opcodes: 'S' metadata
 *                                 objects, runs of 'r', 'r'/'w' pairs, writes,
 *                                 small files
 *   signed                        envelopes at, just over and far over
 *                                 DF_SIGNATURES_MAX signatures
 *   objset                        bulk insertions of keys sharing a prefix or
 *                                 a suffix
 * The counts are what a seed's size allows and what the sanitized target
 * runs in about a tenth of its timeout (tests/fuzz/limits); the hash
 * regression costs seconds from about 2,000 colliding keys on.
 * Every structure is made from counters: the same build writes the same
 * bytes. Each seed that should parse is parsed here, so a seed that the
 * engine refuses early (and so tests nothing) fails the generator. */
#include <openssl/evp.h>
#include <stdio.h>
#include <zstd.h>

#include "df-part.h"
#include "df-sign.h"
#include "fuzz-keys.h"
#include "fuzz-tables.h"
#include "make-seeds.h"

static const char *root;

static void
seed (const char *target, const char *name, const guint8 *data, gsize len)
{
  if (len > SEED_MAX_LEN)
    {
      fprintf (stderr, "%s/%s: %zu bytes, over the %d a seed may have\n", target, name, len, SEED_MAX_LEN);
      exit (1);
    }
  g_autofree char *dir = g_build_filename (root, target, NULL);
  if (g_mkdir_with_parents (dir, 0755) != 0)
    exit (1);
  put (dir, name, data, len, NULL, 0);
  printf ("%s/%s: %zu bytes\n", target, name, len);
}

static void
seed_bytes (const char *target, const char *name, GBytes *b)
{
  seed (target, name, g_bytes_get_data (b, NULL), g_bytes_get_size (b));
}

/* Checksum @i of a family: 28 bytes fixed by @family, then @i big-endian,
 * so that a family's checksums share a 28-byte prefix (fuzz-stock-part.c
 * makes family 0 itself). */
static void
shared_csum (guint8 out[DF_SHA256_LEN], guint8 family, guint32 i)
{
  for (guint b = 0; b < DF_SHA256_LEN - 4; b++)
    out[b] = (guint8)(b * 37 + 11 + family * 101);
  guint32 be = GUINT32_TO_BE (i);
  memcpy (out + DF_SHA256_LEN - 4, &be, 4);
}

static GVariant *
bytes_v (const guint8 *data, gsize len)
{
  g_autoptr (GBytes) b = g_bytes_new (data, len);
  return g_variant_new_from_bytes (G_VARIANT_TYPE_BYTESTRING, b, TRUE);
}

static GVariant *
csum_v (guint8 family, guint32 i)
{
  guint8 c[DF_SHA256_LEN];
  shared_csum (c, family, i);
  return bytes_v (c, sizeof c);
}

/* A minimal valid commit object (floating). */
static GVariant *
commit_v (void)
{
  return g_variant_new ("(@a{sv}@ay@a(say)sst@ay@ay)", g_variant_new_array (G_VARIANT_TYPE ("{sv}"), NULL, 0),
                        bytes_v (NULL, 0), g_variant_new_array (G_VARIANT_TYPE ("(say)"), NULL, 0), "fuzz seed", "",
                        GUINT64_TO_BE (1700000000), csum_v (7, 1), csum_v (7, 2));
}

static GBytes *
normal_bytes (GVariant *floating)
{
  g_autoptr (GVariant) v = g_variant_ref_sink (floating);
  g_autoptr (GVariant) n = g_variant_get_normal_form (v);
  return g_variant_get_data_as_bytes (n);
}

/* ---------------------------------------------------------------------- */
/* Native superblocks                                                       */

static DfSuperblock *
native_new (void)
{
  DfSuperblock *sb = dfi_superblock_new ();
  sb->version = DF_FORMAT_VERSION;
  sb->commit = normal_bytes (commit_v ());
  dfi_sha256 (g_bytes_get_data (sb->commit, NULL), g_bytes_get_size (sb->commit), sb->to);
  sb->has_from = TRUE;
  shared_csum (sb->from, 8, 0);
  return sb;
}

/* Appends a part of @kind made of @entries (taken). */
static void
native_part (DfSuperblock *sb, guint8 kind, GArray *entries)
{
  sb->parts = g_renew (DfPart, sb->parts, sb->n_parts + 1);
  DfPart *p = &sb->parts[sb->n_parts];
  memset (p, 0, sizeof *p);
  p->kind = kind;
  for (guint j = 0; j < entries->len; j++)
    p->raw_size += g_array_index (entries, DfEntry, j).data_size;
  p->uncompressed_size = DF_PART_TABLE_LEN + p->raw_size;
  p->compressed_size = p->uncompressed_size / 2 + 1;
  shared_csum (p->sha256, 9, sb->n_parts);
  p->n_entries = entries->len;
  p->entries = (DfEntry *)(void *)g_array_free (entries, FALSE);
  sb->n_parts++;
}

/* Entries go into parts of at most @per_part. */
typedef struct
{
  DfSuperblock *sb;
  guint8 kind;
  guint per_part;
  GArray *cur;
} PartFiller;

static void
fill (PartFiller *f, const DfEntry *e)
{
  if (f->cur == NULL)
    f->cur = g_array_new (FALSE, TRUE, sizeof (DfEntry));
  g_array_append_vals (f->cur, e, 1);
  if (f->cur->len == f->per_part)
    {
      native_part (f->sb, f->kind, f->cur);
      f->cur = NULL;
    }
}

static void
fill_end (PartFiller *f)
{
  if (f->cur)
    native_part (f->sb, f->kind, f->cur);
  f->cur = NULL;
}

/* @n one-byte files, each stored whole and raw; their checksums share 28
 * bytes. */
static DfSuperblock *
native_entries (guint n)
{
  DfSuperblock *sb = native_new ();
  PartFiller f = { sb, DF_PART_KIND_CONTENT, 16384, NULL };
  for (guint i = 0; i < n; i++)
    {
      DfEntry e = {
        .objtype = OSTREE_OBJECT_TYPE_FILE, .encoding = DF_ENCODING_RAW, .object_size = 1, .length = 1, .data_size = 5
      };
      shared_csum (e.checksum, 1, i);
      fill (&f, &e);
    }
  fill_end (&f);
  return sb;
}

/* @n dirtree and dirmeta entries (alternately), sharing 28 bytes. */
static DfSuperblock *
native_metadata (guint n)
{
  DfSuperblock *sb = native_new ();
  PartFiller f = { sb, DF_PART_KIND_METADATA, 16384, NULL };
  for (guint i = 0; i < n; i++)
    {
      DfEntry e = { .objtype = i % 2 ? OSTREE_OBJECT_TYPE_DIR_META : OSTREE_OBJECT_TYPE_DIR_TREE,
                    .encoding = DF_ENCODING_RAW,
                    .object_size = 1 + i % 7,
                    .length = 1 + i % 7,
                    .data_size = 1 + i % 7 };
      shared_csum (e.checksum, 1, i);
      fill (&f, &e);
    }
  fill_end (&f);
  return sb;
}

/* One file of @n MiB and a byte, in @n chunks of DF_CHUNK_MIN (diff and
 * zstd-ref in turn, each reading the widest window its length allows) and
 * a last chunk of one byte with a window of DF_SOURCE_WINDOW, spread over
 * parts of 4096 entries. */
static DfSuperblock *
native_chunks (guint n)
{
  DfSuperblock *sb = native_new ();
  PartFiller f = { sb, DF_PART_KIND_CONTENT, 4096, NULL };
  guint64 size = (guint64)n * DF_CHUNK_MIN + 1;
  for (guint k = 0; k <= n; k++)
    {
      gboolean last = k == n, diff = last || k % 2 == 0;
      DfEntry e = { .objtype = OSTREE_OBJECT_TYPE_FILE,
                    .encoding = diff ? DF_ENCODING_DIFF : DF_ENCODING_ZSTD_REF,
                    .has_source = TRUE,
                    .object_size = size,
                    .offset = (guint64)k * DF_CHUNK_MIN,
                    .length = last ? 1 : DF_CHUNK_MIN,
                    .data_size = k == 0 ? (diff ? 4 : 5) : (diff ? 0 : 1),
                    .src_offset = (guint64)k * DF_CHUNK_MIN,
                    .src_length = last ? DF_SOURCE_WINDOW : DF_WINDOW_PER_BYTE * DF_CHUNK_MIN };
      shared_csum (e.checksum, 1, 0);
      shared_csum (e.source, 2, 0);
      fill (&f, &e);
    }
  fill_end (&f);
  return sb;
}

/* @n files of 8 MiB, each a patch with the widest window there is
 * (DF_SOURCE_WINDOW_MAX, 4 times its length) from its own source; the
 * sources share 28 bytes too. */
static DfSuperblock *
native_windows (guint n)
{
  DfSuperblock *sb = native_new ();
  PartFiller f = { sb, DF_PART_KIND_CONTENT, 16384, NULL };
  for (guint i = 0; i < n; i++)
    {
      gboolean diff = i % 2 == 0;
      DfEntry e = { .objtype = OSTREE_OBJECT_TYPE_FILE,
                    .encoding = diff ? DF_ENCODING_DIFF : DF_ENCODING_ZSTD_REF,
                    .has_source = TRUE,
                    .object_size = DF_SOURCE_WINDOW_MAX / DF_WINDOW_PER_BYTE,
                    .length = DF_SOURCE_WINDOW_MAX / DF_WINDOW_PER_BYTE,
                    .data_size = diff ? 4 : 5,
                    .src_offset = (guint64)i * 4096,
                    .src_length = DF_SOURCE_WINDOW_MAX };
      shared_csum (e.checksum, 1, i);
      shared_csum (e.source, 2, i);
      fill (&f, &e);
    }
  fill_end (&f);
  return sb;
}

/* Writes @sb as a superblock file and (when @body_name) its body alone;
 * both must parse within the default memory. */
static void
native_seed (DfSuperblock *sb, const char *file_name, const char *body_name)
{
  g_autoptr (DfSuperblock) own = sb;
  g_autoptr (GBytes) file = dfi_superblock_serialize (sb);
  g_autoptr (GError) error = NULL;
  g_autoptr (DfSuperblock) back = dfi_superblock_parse_full (file, NULL, FUZZ_PARSE_MEMORY, &error);
  if (back == NULL)
    {
      fprintf (stderr, "%s: %s\n", file_name ? file_name : body_name, error->message);
      exit (1);
    }
  if (file_name)
    seed_bytes ("superblock", file_name, file);
  if (body_name)
    {
      gsize flen;
      const guint8 *f = g_bytes_get_data (file, &flen);
      guint64 blen;
      memcpy (&blen, f + 16, 8);
      blen = GUINT64_FROM_LE (blen);
      g_autofree guint8 *body = g_malloc (blen);
      size_t r = ZSTD_decompress (body, blen, f + DF_SUPERBLOCK_HEADER_LEN, flen - DF_SUPERBLOCK_HEADER_LEN);
      if (ZSTD_isError (r) || r != blen)
        exit (1);
      seed ("superblock-body", body_name, body, blen);
    }
}

static void
native_seeds (void)
{
  native_seed (native_entries (8000), "attack-entries", NULL);
  native_seed (native_metadata (8000), "attack-metadata", NULL);
  native_seed (native_chunks (8000), "attack-chunks", NULL);
  native_seed (native_windows (8000), "attack-windows", NULL);
  native_seed (native_entries (2400), NULL, "attack-entries");
  native_seed (native_metadata (2400), NULL, "attack-metadata");
  native_seed (native_chunks (1900), NULL, "attack-chunks");
  native_seed (native_windows (1900), NULL, "attack-windows");
}

/* ---------------------------------------------------------------------- */
/* Stock superblocks                                                        */

/* @n_parts parts of @per_part objects each and @n_fallbacks fallbacks;
 * part, object and fallback checksums each share 28 bytes. */
static GBytes *
stock_superblock (guint n_parts, guint per_part, guint n_fallbacks)
{
  g_autoptr (GVariant) commit = g_variant_ref_sink (commit_v ());
  g_autoptr (GVariant) commit_n = g_variant_get_normal_form (commit);
  guint8 to[DF_SHA256_LEN];
  dfi_sha256 (g_variant_get_data (commit_n), g_variant_get_size (commit_n), to);
  GVariantBuilder meta, headers, fallbacks;
  g_variant_builder_init (&meta, G_VARIANT_TYPE ("a{sv}"));
  g_variant_builder_add (&meta, "{sv}", "ostree.endianness", g_variant_new_byte ('l'));
  g_variant_builder_init (&headers, G_VARIANT_TYPE ("a(uayttay)"));
  guint32 obj = 0;
  for (guint i = 0; i < n_parts; i++)
    {
      g_autofree guint8 *recs = g_malloc (MAX (per_part, 1) * DF_STOCK_OBJREC_LEN);
      for (guint j = 0; j < per_part; j++, obj++)
        {
          static const guint8 types[]
              = { OSTREE_OBJECT_TYPE_FILE, OSTREE_OBJECT_TYPE_DIR_TREE, OSTREE_OBJECT_TYPE_DIR_META };
          recs[j * DF_STOCK_OBJREC_LEN] = types[obj % 3];
          shared_csum (recs + j * DF_STOCK_OBJREC_LEN + 1, 6, obj);
        }
      g_variant_builder_add (&headers, "(u@aytt@ay)", 0, csum_v (5, i), GUINT64_TO_LE (1000 + i),
                             GUINT64_TO_LE (2000 + i), bytes_v (recs, per_part * DF_STOCK_OBJREC_LEN));
    }
  g_variant_builder_init (&fallbacks, G_VARIANT_TYPE ("a(yaytt)"));
  for (guint i = 0; i < n_fallbacks; i++)
    g_variant_builder_add (&fallbacks, "(y@aytt)", i % 2 ? OSTREE_OBJECT_TYPE_FILE : OSTREE_OBJECT_TYPE_DIR_TREE,
                           csum_v (10, i), GUINT64_TO_LE (3000 + i), GUINT64_TO_LE (4000 + i));
  g_autoptr (GBytes) b = normal_bytes (
      g_variant_new ("(@a{sv}t@ay@ay@(a{sv}aya(say)sstayay)@ay@a(uayttay)@a(yaytt))", g_variant_builder_end (&meta),
                     GUINT64_TO_BE (1700000000), csum_v (8, 0), bytes_v (to, sizeof to), commit, bytes_v (NULL, 0),
                     g_variant_builder_end (&headers), g_variant_builder_end (&fallbacks)));
  g_autoptr (GError) error = NULL;
  g_autoptr (DfStockSuperblock) back = dfi_stock_superblock_parse_full (b, NULL, FUZZ_PARSE_MEMORY, &error);
  if (back == NULL)
    {
      fprintf (stderr, "stock superblock: %s\n", error->message);
      exit (1);
    }
  return g_steal_pointer (&b);
}

static void
stock_superblock_seeds (void)
{
  g_autoptr (GBytes) parts = stock_superblock (2400, 1, 0);
  seed_bytes ("stock-superblock", "attack-parts", parts);
  g_autoptr (GBytes) objects = stock_superblock (4, 1900, 0);
  seed_bytes ("stock-superblock", "attack-objects", objects);
  g_autoptr (GBytes) fb = stock_superblock (1, 1, 3700);
  seed_bytes ("stock-superblock", "attack-fallbacks", fb);
}

/* ---------------------------------------------------------------------- */
/* Stock parts                                                              */

static void
op (GByteArray *ops, guint8 code)
{
  g_byte_array_append (ops, &code, 1);
}

static void
operand (GByteArray *ops, guint64 v)
{
  do
    {
      guint8 b = (v & 0x7f) | (v >= 0x80 ? 0x80 : 0);
      g_byte_array_append (ops, &b, 1);
      v >>= 7;
    }
  while (v);
}

/* A stock-part input: the many-objects header (@n objects, their types
 * @types in turn), then the payload: one mode (a regular file), one empty
 * xattr set, @raw and @ops. */
static void
stock_part_seed (const char *name, guint n, const guint8 *types, guint n_types, const guint8 *raw, gsize raw_len,
                 GByteArray *ops)
{
  GVariantBuilder modes, xattrs;
  g_variant_builder_init (&modes, G_VARIANT_TYPE ("a(uuu)"));
  g_variant_builder_add (&modes, "(uuu)", 0, 0, GUINT32_TO_BE (0100644));
  g_variant_builder_init (&xattrs, G_VARIANT_TYPE ("aa(ayay)"));
  g_variant_builder_add_value (&xattrs, g_variant_new_array (G_VARIANT_TYPE ("(ayay)"), NULL, 0));
  g_autoptr (GBytes) payload = normal_bytes (g_variant_new ("(@a(uuu)@aa(ayay)@ay@ay)", g_variant_builder_end (&modes),
                                                            g_variant_builder_end (&xattrs), bytes_v (raw, raw_len),
                                                            bytes_v (ops->data, ops->len)));
  g_autoptr (GByteArray) in = g_byte_array_new ();
  guint8 hdr[4] = { 0, n & 0xff, n >> 8, n_types };
  g_byte_array_append (in, hdr, 4);
  g_byte_array_append (in, types, n_types);
  g_byte_array_append (in, g_bytes_get_data (payload, NULL), g_bytes_get_size (payload));
  seed ("stock-part", name, in->data, in->len);
}

static void
stock_part_seeds (void)
{
  /* Raw data: a source checksum at 0, then 64 bytes to write from. */
  guint8 raw[DF_SHA256_LEN + 64];
  shared_csum (raw, 3, 0);
  for (guint i = 0; i < 64; i++)
    raw[DF_SHA256_LEN + i] = (guint8)(i * 5 + 1);
  const guint64 data_at = DF_SHA256_LEN;
  /* Type bytes: a file; a dirtree, a dirmeta. */
  static const guint8 file[] = { 0 }, meta[] = { 1, 2 };

  /* 8,000 metadata objects, one 'S' each (issue 14: S opcodes feed the
   * trust table); their checksums share 28 bytes. */
  g_autoptr (GByteArray) ops = g_byte_array_new ();
  for (guint j = 0; j < 8000; j++)
    {
      op (ops, 'S');
      operand (ops, 1 + j % 7);
      operand (ops, data_at + j % 50);
    }
  stock_part_seed ("attack-metadata", 8000, meta, 2, raw, sizeof raw, ops);

  /* 100,000 'r' opcodes naming a source while no object is open, then one
   * file rebuilt from it. */
  g_byte_array_set_size (ops, 0);
  for (guint j = 0; j < 100000; j++)
    {
      op (ops, 'r');
      operand (ops, 0);
    }
  op (ops, 'o'), operand (ops, 0), operand (ops, 0), operand (ops, 16);
  op (ops, 'r'), operand (ops, 0);
  op (ops, 'w'), operand (ops, 16), operand (ops, 100);
  op (ops, 'c');
  stock_part_seed ("attack-set-source", 1, file, 1, raw, sizeof raw, ops);

  /* One file of 30,000 bytes, each byte from a source named just before
   * it: every pair opens a source. */
  g_byte_array_set_size (ops, 0);
  op (ops, 'o'), operand (ops, 0), operand (ops, 0), operand (ops, 30000);
  for (guint j = 0; j < 30000; j++)
    {
      op (ops, 'r'), operand (ops, 0);
      op (ops, 'w'), operand (ops, 1), operand (ops, (j * 7) % 120);
    }
  op (ops, 'c');
  stock_part_seed ("attack-source-writes", 1, file, 1, raw, sizeof raw, ops);

  /* One file of 80,000 one-byte writes from the raw data. */
  g_byte_array_set_size (ops, 0);
  op (ops, 'o'), operand (ops, 0), operand (ops, 0), operand (ops, 80000);
  for (guint j = 0; j < 80000; j++)
    op (ops, 'w'), operand (ops, 1), operand (ops, data_at + j % 64);
  op (ops, 'c');
  stock_part_seed ("attack-writes", 1, file, 1, raw, sizeof raw, ops);

  /* 8,000 one-byte files, opened, written and closed (every fourth is
   * skipped by the target, as apply skips objects it has). */
  g_byte_array_set_size (ops, 0);
  for (guint j = 0; j < 8000; j++)
    {
      op (ops, 'o'), operand (ops, 0), operand (ops, 0), operand (ops, 1);
      op (ops, 'w'), operand (ops, 1), operand (ops, data_at + j % 64);
      op (ops, 'c');
    }
  stock_part_seed ("attack-files", 8000, file, 1, raw, sizeof raw, ops);
}

/* ---------------------------------------------------------------------- */
/* Signed envelopes                                                         */

/* @n signatures over @msg_len bytes: junk that gets as far as the curve
 * arithmetic (the scalar is below the group order) and, when @valid, a last
 * one made with the last trusted key, the last pair tried. */
static void
signed_seed (const char *name, guint n, gsize msg_len, gsize sig_len, gboolean valid)
{
  g_autofree guint8 *msg = g_malloc (msg_len);
  for (gsize i = 0; i < msg_len; i++)
    msg[i] = (guint8)(i * 11 + 3);
  g_autoptr (GPtrArray) sigs = g_ptr_array_new_with_free_func ((GDestroyNotify)g_bytes_unref);
  for (guint s = 0; s < n; s++)
    {
      guint8 sig[DF_ED25519_SIG_LEN];
      for (guint k = 0; k < sizeof sig; k++)
        sig[k] = (guint8)(s * 13 + k * 7 + 5);
      sig[DF_ED25519_SIG_LEN - 1] = 0;
      if (valid && s == n - 1)
        {
          EVP_PKEY *key = fuzz_key (FUZZ_KEYS - 1);
          EVP_MD_CTX *ctx = EVP_MD_CTX_new ();
          gsize slen = sizeof sig;
          if (!key || !ctx || EVP_DigestSignInit (ctx, NULL, NULL, NULL, key) != 1
              || EVP_DigestSign (ctx, sig, &slen, msg, msg_len) != 1 || slen != sizeof sig)
            exit (1);
          EVP_MD_CTX_free (ctx);
          EVP_PKEY_free (key);
        }
      g_ptr_array_add (sigs, g_bytes_new (sig, sig_len));
    }
  g_autoptr (GBytes) m = g_bytes_new (msg, msg_len);
  g_autoptr (GBytes) env = dfi_signed_wrap (m, sigs);
  seed_bytes ("signed", name, env);
}

static void
signed_seeds (void)
{
  signed_seed ("attack-at-cap", DF_SIGNATURES_MAX, 4096, DF_ED25519_SIG_LEN, TRUE);
  signed_seed ("attack-over-cap", DF_SIGNATURES_MAX + 1, 4096, DF_ED25519_SIG_LEN, TRUE);
  /* Issue 14's flood, as large as a seed allows. */
  signed_seed ("attack-flood", 3000, 40000, DF_ED25519_SIG_LEN, FALSE);
  signed_seed ("attack-flood-empty", 20000, 64, 0, FALSE);
}

/* ---------------------------------------------------------------------- */
/* Object sets (fuzz-objset.c's operations)                                 */

static void
objset_seeds (void)
{
  /* Type dirtree, 16,384 keys (the target's limit) differing in their
   * last 4 bytes, then every check. */
  static const guint8 prefix[] = { 2 << 3 | 1, 28 << 3 | 4, 0x00, 0x40, 5, 3 };
  seed ("objset", "attack-bulk-prefix", prefix, sizeof prefix);
  /* The same differing in the first 4 bytes of the checksum. */
  static const guint8 suffix[] = { 1 << 3 | 1, 0 << 3 | 4, 0x00, 0x40, 5, 3 };
  seed ("objset", "attack-bulk-suffix", suffix, sizeof suffix);
  /* 5,000 keys; again (every value replaced); cleared; 5,000 of another
   * type; a few single keys, lookups and hashes. */
  static const guint8 again[] = {
    28 << 3 | 4, 0x88, 0x13,                               /* 5,000 keys */
    28 << 3 | 4, 0x88, 0x13,                               /* the same keys again */
    5,           6,    5,                                  /* iterate, clear, iterate */
    3 << 3 | 1,                                            /* type 3 */
    28 << 3 | 4, 0x88, 0x13,                               /* 5,000 keys */
    5,                                                     /* iterate */
    0 << 3 | 0,  0xaa,                                     /* checksum byte 0 */
    2,           2,    3,                                  /* add, add again, look up */
    31 << 3 | 0, 0x55,                                     /* checksum byte 31 */
    3,           2,    3,                                  /* look up (absent), add, look up */
    8 << 3 | 7,  'd',  'e',  'l', 't', 'a', 'f', 'e', 't', /* hash 8 bytes */
    5,                                                     /* iterate */
  };
  seed ("objset", "attack-bulk-again", again, sizeof again);
}

void
attack_seeds (const char *dir)
{
  root = dir;
  native_seeds ();
  stock_superblock_seeds ();
  stock_part_seeds ();
  signed_seeds ();
  objset_seeds ();
}
