/* Test helper: forges the hostile deltas of issue 14 at full size. Each
 * forged delta passes every check of the format except the one under test:
 * parts carry their true SHA-256 and sizes, superblocks are normal-form,
 * the entries of every object tile it. tests/forged.sh runs them.
 *
 * Trees
 *   df-forge bytes FILE SIZE SEED        SIZE seeded pseudo-random bytes into FILE
 *   df-forge ones DIR N                  N one-byte files in DIR, each a distinct object (byte value and mode
 *                                        differ; N ≤ 1024)
 *
 * Native deltas (DELTA is a delta directory, rewritten in place)
 *   df-forge info DELTA                  prints "superblock-bytes F body-bytes B entries E parts P"
 *   df-forge meta DELTA N PATTERN SEED   one more metadata part holding N dirmeta entries the commit does not
 *                                        reference (every one the same valid 12-byte dirmeta); PATTERN says how
 *                                        their checksums look: "random" (seeded, incompressible), "distinct"
 *                                        (a counter in the first four bytes, the rest shared: the superblock
 *                                        compresses to a few bytes per entry), "prefix" (all but the last four
 *                                        bytes shared, a counter in those: every checksum starts with the same
 *                                        56 hex digits, so the first eight too)
 *   df-forge chunk-spam DELTA CSUM N     file CSUM (carried raw and whole) re-declared as N chunks, all but the
 *                                        last one byte long; chunks 0..N-2 in one new part, the last chunk in a
 *                                        part of its own, the last part of the delta
 *   df-forge declare-size DELTA CSUM SIZE CHUNK  file CSUM (carried raw and whole) re-declared as SIZE bytes,
 *                                        tiled by raw chunks of CHUNK bytes (its real content, then zeros), one
 *                                        part per chunk
 *   df-forge window DELTA SOURCE SRC_LEN MAXLEN  every file carried raw and whole of 1..MAXLEN bytes becomes a
 *                                        diff entry (one copy control) against file SOURCE, declaring the source
 *                                        window [0, SRC_LEN); all of them moved into one new part; prints how many
 *
 * Signed envelopes (libostree's "(taya{sv})")
 *   df-forge sig-flood FILE N SIZE SEED  an envelope of N crafted ed25519 signatures (S below the group order, so
 *                                        a verifier must hash the message for each) over SIZE seeded bytes
 *   df-forge sig-nth DELTA SECRET N      wraps DELTA's superblock in an envelope of N signatures: N-1 crafted
 *                                        ones, then a valid one by SECRET (`ostree sign` format)
 *
 * Stock deltas (made by `ostree static-delta generate`; rewritten in place)
 *   df-forge stock-flood DELTA N SEED    the first part that makes metadata also makes N forged dirmeta objects
 *                                        (N more 'S' opcodes over one 12-byte dirmeta), whose checksums share all
 *                                        but their last four bytes (so their first eight hex digits); part stored
 *                                        uncompressed, its declared size raised by the objects' bytes
 *   df-forge stock-bloat DELTA PART SIZE part PART's data grows by SIZE zero bytes that no opcode reads;
 *                                        xz-compressed (liblzma), the declared uncompressed size unchanged
 *   df-forge stock-ropen DELTA COUNT SOURCE  COUNT 'r' (set read source) opcodes naming file SOURCE inserted
 *                                        just before the first 'r' opcode of the first part that has one, so
 *                                        the result is unchanged; part stored uncompressed (also for COUNT 0,
 *                                        the control), its declared size raised by the bytes added
 *
 * CSUM and SOURCE are content checksums in hex; sizes are in bytes.
 */
#include <fcntl.h>
#include <lzma.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "df-bspatch.h"
#include "df-part.h"
#include "df-sign.h"
#include "df-stock.h"
#include "df-superblock.h"

/* Forged parts are compressed fast: the format does not say how hard. */
#define FORGE_ZSTD_LEVEL 3
#define FORGE_XZ_PRESET 1

static void G_GNUC_NORETURN
die (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  fprintf (stderr, "df-forge: ");
  vfprintf (stderr, fmt, ap);
  fprintf (stderr, "\n");
  va_end (ap);
  exit (99);
}

static guint64
parse_u64 (const char *s)
{
  guint64 v;
  g_autoptr (GError) error = NULL;
  if (!g_ascii_string_to_unsigned (s, 10, 0, G_MAXUINT64, &v, &error))
    die ("%s", error->message);
  return v;
}

static void
parse_csum (const char *hex, guint8 out[DF_SHA256_LEN])
{
  g_autoptr (GError) error = NULL;
  if (!dfi_parse_checksum (hex, out, &error))
    die ("%s", error->message);
}

static GBytes *
read_file (const char *path)
{
  gchar *data;
  gsize len;
  g_autoptr (GError) error = NULL;
  if (!g_file_get_contents (path, &data, &len, &error))
    die ("%s", error->message);
  return g_bytes_new_take (data, len);
}

static void
write_file (const char *path, const void *data, gsize len)
{
  g_autoptr (GError) error = NULL;
  if (!g_file_set_contents (path, data, len, &error))
    die ("%s", error->message);
}

static void
write_bytes (const char *path, GBytes *b)
{
  write_file (path, g_bytes_get_data (b, NULL), g_bytes_get_size (b));
}

static void
fill_random (GRand *rnd, guint8 *p, gsize len)
{
  for (gsize i = 0; i < len; i += 4)
    {
      guint32 v = g_rand_int (rnd);
      memcpy (p + i, &v, MIN (4, len - i));
    }
}

/* A dirmeta as OSTree stores it: uid, gid, mode (big-endian), no xattrs. */
static GBytes *
dirmeta_bytes (void)
{
  g_autoptr (GVariant) v = g_variant_ref_sink (g_variant_new (
      "(uuu@a(ayay))", 0, 0, GUINT32_TO_BE (040755), g_variant_new_array (G_VARIANT_TYPE ("(ayay)"), NULL, 0)));
  g_autoptr (GVariant) normal = g_variant_get_normal_form (v);
  return g_variant_get_data_as_bytes (normal);
}

/* ---------------------------------------------------------------------- */
/* Trees                                                                    */

static int
cmd_bytes (const char *path, guint64 size, guint64 seed)
{
  g_autoptr (GRand) rnd = g_rand_new_with_seed ((guint32)seed);
  FILE *f = fopen (path, "we");
  if (f == NULL)
    die ("%s: %s", path, g_strerror (errno));
  guint8 buf[65536];
  for (guint64 done = 0; done < size;)
    {
      gsize n = MIN ((guint64)sizeof buf, size - done);
      fill_random (rnd, buf, n);
      if (fwrite (buf, 1, n, f) != n)
        die ("%s: %s", path, g_strerror (errno));
      done += n;
    }
  if (fclose (f) != 0)
    die ("%s: %s", path, g_strerror (errno));
  return 0;
}

static int
cmd_ones (const char *dir, guint n)
{
  static const guint modes[] = { 0644, 0600, 0755, 0700 };
  if (n > 256 * G_N_ELEMENTS (modes))
    die ("at most %u distinct one-byte files", (guint)(256 * G_N_ELEMENTS (modes)));
  if (g_mkdir_with_parents (dir, 0755) < 0)
    die ("%s: %s", dir, g_strerror (errno));
  for (guint i = 0; i < n; i++)
    {
      guint8 byte = i % 256;
      guint mode = modes[i / 256];
      g_autofree char *path = g_strdup_printf ("%s/b%o-%03u", dir, mode, byte);
      write_file (path, &byte, 1);
      if (chmod (path, mode) < 0)
        die ("%s: %s", path, g_strerror (errno));
    }
  return 0;
}

/* ---------------------------------------------------------------------- */
/* Native deltas: an editable model                                         */

/* One entry and its bytes in each section of its part (NULL: none). */
typedef struct
{
  DfEntry e;
  GBytes *sec[DF_SECTION_COUNT];
} Slot;

static void
slot_free (Slot *s)
{
  for (guint k = 0; k < DF_SECTION_COUNT; k++)
    g_clear_pointer (&s->sec[k], g_bytes_unref);
  g_free (s);
}

typedef struct
{
  guint8 kind;
  guint orig;       /* the part file it came from, or G_MAXUINT for a new part */
  GPtrArray *slots; /* Slot*, once loaded or built */
  gboolean dirty;   /* rebuilt from @slots when saved */
} FPart;

typedef struct
{
  char *dir;
  DfSuperblock *sb;
  GPtrArray *parts; /* FPart* */
} Forge;

static void
fpart_free (FPart *p)
{
  g_clear_pointer (&p->slots, g_ptr_array_unref);
  g_free (p);
}

static Forge *
forge_open (const char *dir)
{
  g_autoptr (GError) error = NULL;
  Forge *f = g_new0 (Forge, 1);
  f->dir = g_strdup (dir);
  f->sb = dfi_superblock_load (AT_FDCWD, dir, &error);
  if (f->sb == NULL)
    die ("%s", error->message);
  if (f->sb->file.is_signed)
    die ("%s is signed; forge the plain delta, then sign it", dir);
  f->parts = g_ptr_array_new_with_free_func ((GDestroyNotify)fpart_free);
  for (guint i = 0; i < f->sb->n_parts; i++)
    {
      FPart *p = g_new0 (FPart, 1);
      p->kind = f->sb->parts[i].kind;
      p->orig = i;
      g_ptr_array_add (f->parts, p);
    }
  return f;
}

static void
forge_free (Forge *f)
{
  g_ptr_array_unref (f->parts);
  dfi_superblock_free (f->sb);
  g_free (f->dir);
  g_free (f);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Forge, forge_free)

static FPart *
forge_new_part (Forge *f, guint8 kind)
{
  FPart *p = g_new0 (FPart, 1);
  p->kind = kind;
  p->orig = G_MAXUINT;
  p->slots = g_ptr_array_new_with_free_func ((GDestroyNotify)slot_free);
  p->dirty = TRUE;
  g_ptr_array_add (f->parts, p);
  return p;
}

/* Splits an existing part's payload into its entries' slots. */
static GPtrArray *
forge_slots (Forge *f, FPart *p)
{
  if (p->slots)
    return p->slots;
  const DfPart *info = &f->sb->parts[p->orig];
  g_autoptr (GError) error = NULL;
  g_autofree char *path = g_strdup_printf ("%s/%u", f->dir, p->orig);
  g_autoptr (GBytes) file = read_file (path);
  g_autoptr (GBytes) payload = dfi_part_decode (info, p->orig, file, &error);
  if (payload == NULL)
    die ("%s", error->message);
  gsize len;
  const guint8 *data = g_bytes_get_data (payload, &len);
  DfPartReader r;
  if (!dfi_part_reader_init (&r, data, len, info->raw_size, &error))
    die ("part %u: %s", p->orig, error->message);
  p->slots = g_ptr_array_new_with_free_func ((GDestroyNotify)slot_free);
  for (guint j = 0; j < info->n_entries; j++)
    {
      Slot *s = g_new0 (Slot, 1);
      s->e = info->entries[j];
      gsize before[DF_SECTION_COUNT];
      memcpy (before, r.pos, sizeof before);
      if (dfi_part_reader_take (&r, DF_SECTION_RAW, s->e.data_size, &error) == NULL
          || (s->e.encoding == DF_ENCODING_DIFF && !dfi_diff_skip (&r, s->e.length, &error)))
        die ("part %u entry %u: %s", p->orig, j, error->message);
      for (guint k = 0; k < DF_SECTION_COUNT; k++)
        if (r.pos[k] > before[k])
          s->sec[k] = g_bytes_new_from_bytes (payload, (r.data[k] - data) + before[k], r.pos[k] - before[k]);
      g_ptr_array_add (p->slots, s);
    }
  if (!dfi_part_reader_finish (&r, &error))
    die ("part %u: %s", p->orig, error->message);
  return p->slots;
}

/* The slot holding the first (or only) entry of file @csum, and its part. */
static Slot *
forge_find_file (Forge *f, const guint8 csum[DF_SHA256_LEN], FPart **out_part, guint *out_index)
{
  for (guint i = 0; i < f->parts->len; i++)
    {
      FPart *p = f->parts->pdata[i];
      if (p->kind != DF_PART_KIND_CONTENT)
        continue;
      /* Look at the superblock first: only the part that holds it is read. */
      gboolean here = p->slots != NULL;
      if (!here && p->orig != G_MAXUINT)
        for (guint j = 0; j < f->sb->parts[p->orig].n_entries && !here; j++)
          here = memcmp (f->sb->parts[p->orig].entries[j].checksum, csum, DF_SHA256_LEN) == 0;
      if (!here)
        continue;
      GPtrArray *slots = forge_slots (f, p);
      for (guint j = 0; j < slots->len; j++)
        {
          Slot *s = slots->pdata[j];
          if (memcmp (s->e.checksum, csum, DF_SHA256_LEN) == 0 && s->e.offset == 0)
            {
              *out_part = p;
              *out_index = j;
              return s;
            }
        }
    }
  char hex[65];
  dfi_hex (csum, hex);
  die ("file %s is not in the delta", hex);
}

/* Takes slot @j out of part @p (a part left empty is dropped when saved). */
static Slot *
forge_take_slot (FPart *p, guint j)
{
  p->dirty = TRUE;
  return g_ptr_array_steal_index (p->slots, j);
}

/* The header (u32 length + GVariant) and body of a raw whole-object entry. */
static void
raw_file_split (const Slot *s, GBytes **header, GBytes **body)
{
  if (s->e.encoding != DF_ENCODING_RAW || s->e.length != s->e.object_size || s->e.objtype != OSTREE_OBJECT_TYPE_FILE)
    die ("the file is not carried raw and whole");
  gsize hlen = s->e.data_size - s->e.length;
  *header = g_bytes_new_from_bytes (s->sec[DF_SECTION_RAW], 0, hlen);
  *body = g_bytes_new_from_bytes (s->sec[DF_SECTION_RAW], hlen, s->e.length);
}

static GBytes *
concat (GBytes *a, GBytes *b)
{
  gsize la = g_bytes_get_size (a), lb = g_bytes_get_size (b);
  guint8 *p = g_malloc (la + lb);
  memcpy (p, g_bytes_get_data (a, NULL), la);
  memcpy (p + la, g_bytes_get_data (b, NULL), lb);
  return g_bytes_new_take (p, la + lb);
}

static Slot *
slot_new (const DfEntry *e, GBytes *raw)
{
  Slot *s = g_new0 (Slot, 1);
  s->e = *e;
  s->sec[DF_SECTION_RAW] = raw;
  return s;
}

/* Builds, compresses and writes a dirty part as file @name; fills @out. */
static void
forge_write_part (Forge *f, FPart *p, const char *name, DfPart *out)
{
  GByteArray *sec[DF_SECTION_COUNT];
  for (guint k = 0; k < DF_SECTION_COUNT; k++)
    sec[k] = g_byte_array_new ();
  out->kind = p->kind;
  out->n_entries = p->slots->len;
  out->entries = g_new0 (DfEntry, MAX (p->slots->len, 1));
  out->raw_size = 0;
  for (guint j = 0; j < p->slots->len; j++)
    {
      Slot *s = p->slots->pdata[j];
      out->entries[j] = s->e;
      out->raw_size += s->e.data_size;
      for (guint k = 0; k < DF_SECTION_COUNT; k++)
        if (s->sec[k])
          g_byte_array_append (sec[k], g_bytes_get_data (s->sec[k], NULL), g_bytes_get_size (s->sec[k]));
    }
  if (sec[DF_SECTION_RAW]->len != out->raw_size)
    die ("a rebuilt part's raw section holds %u bytes, its entries %" G_GUINT64_FORMAT, sec[DF_SECTION_RAW]->len,
         out->raw_size);
  GByteArray *payload = dfi_part_payload_assemble (sec);
  for (guint k = 0; k < DF_SECTION_COUNT; k++)
    g_byte_array_unref (sec[k]);
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) file = dfi_part_compress (payload->data, payload->len, FORGE_ZSTD_LEVEL, NULL, &error);
  if (file == NULL)
    die ("%s", error->message);
  out->uncompressed_size = payload->len;
  g_byte_array_unref (payload);
  out->compressed_size = g_bytes_get_size (file);
  dfi_sha256 (g_bytes_get_data (file, NULL), g_bytes_get_size (file), out->sha256);
  g_autofree char *path = g_build_filename (f->dir, name, NULL);
  write_bytes (path, file);
  g_clear_pointer (&p->slots, g_ptr_array_unref);
}

static GVariant *
bytes_variant (const guint8 *data, gsize len)
{
  return g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, data, len, 1);
}

/* The superblock file (FORMAT.md, "Superblock"), as dfi_superblock_serialize()
 * writes it but compressed at FORGE_ZSTD_LEVEL: its level 19 took 18 s for
 * the 20 MB body of 200,000 entries, and the format leaves the level to the
 * writer. */
static GBytes *
forge_serialize (const DfSuperblock *sb)
{
  GVariantBuilder parts;
  g_variant_builder_init (&parts, G_VARIANT_TYPE ("a(ayttya" DF_ENTRY_TYPE ")"));
  for (guint i = 0; i < sb->n_parts; i++)
    {
      const DfPart *p = &sb->parts[i];
      GVariantBuilder entries;
      g_variant_builder_init (&entries, G_VARIANT_TYPE ("a" DF_ENTRY_TYPE));
      for (guint j = 0; j < p->n_entries; j++)
        {
          const DfEntry *e = &p->entries[j];
          g_variant_builder_add (&entries, "(y@ayy@aytttttt)", e->objtype, bytes_variant (e->checksum, DF_SHA256_LEN),
                                 e->encoding, bytes_variant (e->source, e->has_source ? DF_SHA256_LEN : 0),
                                 GUINT64_TO_LE (e->object_size), GUINT64_TO_LE (e->offset), GUINT64_TO_LE (e->length),
                                 GUINT64_TO_LE (e->data_size), GUINT64_TO_LE (e->src_offset),
                                 GUINT64_TO_LE (e->src_length));
        }
      g_variant_builder_add (&parts, "(@aytty@a" DF_ENTRY_TYPE ")", bytes_variant (p->sha256, DF_SHA256_LEN),
                             GUINT64_TO_LE (p->compressed_size), GUINT64_TO_LE (p->uncompressed_size), p->kind,
                             g_variant_builder_end (&entries));
    }
  gsize clen, mlen = 0;
  const guint8 *cdata = g_bytes_get_data (sb->commit, &clen);
  const guint8 *mdata = sb->commitmeta ? g_bytes_get_data (sb->commitmeta, &mlen) : NULL;
  GVariant *meta = sb->metadata ? sb->metadata : g_variant_new_array (G_VARIANT_TYPE ("{sv}"), NULL, 0);
  g_autoptr (GVariant) body = g_variant_ref_sink (g_variant_new (
      "(@a{sv}@ay@ay@ay@ay@a(ayttya" DF_ENTRY_TYPE "))", meta,
      bytes_variant (sb->from, sb->has_from ? DF_SHA256_LEN : 0), bytes_variant (sb->to, DF_SHA256_LEN),
      bytes_variant (cdata, clen), bytes_variant (mdata, mdata ? mlen : 0), g_variant_builder_end (&parts)));
  g_autoptr (GVariant) normal = g_variant_get_normal_form (body);
  gsize blen = g_variant_get_size (normal);
  g_autofree guint8 *plain = g_malloc (blen);
  g_variant_store (normal, plain);
  g_autoptr (ZSTD_CCtx) cctx = ZSTD_createCCtx ();
  ZSTD_CCtx_setParameter (cctx, ZSTD_c_compressionLevel, FORGE_ZSTD_LEVEL);
  ZSTD_CCtx_setParameter (cctx, ZSTD_c_contentSizeFlag, 1);
  ZSTD_CCtx_setParameter (cctx, ZSTD_c_checksumFlag, 1);
  ZSTD_CCtx_setParameter (cctx, ZSTD_c_windowLog, 20);
  gsize cap = ZSTD_compressBound (blen);
  GByteArray *out = g_byte_array_sized_new (DF_SUPERBLOCK_HEADER_LEN + cap);
  guint32 version = GUINT32_TO_LE (DF_FORMAT_VERSION_PLAIN), reserved = 0;
  guint64 blen_le = GUINT64_TO_LE ((guint64)blen);
  g_byte_array_append (out, (const guint8 *)DF_SUPERBLOCK_MAGIC, 8);
  g_byte_array_append (out, (const guint8 *)&version, 4);
  g_byte_array_append (out, (const guint8 *)&reserved, 4);
  g_byte_array_append (out, (const guint8 *)&blen_le, 8);
  g_byte_array_set_size (out, DF_SUPERBLOCK_HEADER_LEN + cap);
  size_t r = ZSTD_compress2 (cctx, out->data + DF_SUPERBLOCK_HEADER_LEN, cap, plain, blen);
  if (ZSTD_isError (r))
    die ("zstd: %s", ZSTD_getErrorName (r));
  g_byte_array_set_size (out, DF_SUPERBLOCK_HEADER_LEN + r);
  return g_byte_array_free_to_bytes (out);
}

static gboolean
is_part_name (const char *name)
{
  if (*name == '\0')
    return FALSE;
  for (const char *c = name; *c; c++)
    if (!g_ascii_isdigit (*c))
      return FALSE;
  return TRUE;
}

/* Writes the parts (renumbered in model order) and the superblock. */
static void
forge_save (Forge *f)
{
  for (guint i = f->parts->len; i > 0; i--)
    {
      FPart *p = f->parts->pdata[i - 1];
      if (p->slots && p->slots->len == 0)
        g_ptr_array_remove_index (f->parts, i - 1);
    }
  guint n = f->parts->len;
  DfPart *parts = g_new0 (DfPart, MAX (n, 1));
  for (guint i = 0; i < n; i++)
    {
      FPart *p = f->parts->pdata[i];
      g_autofree char *tmp = g_strdup_printf (".forge-%u", i);
      if (!p->dirty)
        {
          const DfPart *old = &f->sb->parts[p->orig];
          parts[i] = *old;
          parts[i].entries = g_memdup2 (old->entries, sizeof (DfEntry) * MAX (old->n_entries, 1));
          g_autofree char *from = g_strdup_printf ("%s/%u", f->dir, p->orig);
          g_autofree char *to = g_build_filename (f->dir, tmp, NULL);
          if (rename (from, to) < 0)
            die ("%s: %s", from, g_strerror (errno));
        }
      else
        forge_write_part (f, p, tmp, &parts[i]);
    }
  /* Part files of the old layout that are left were rebuilt or dropped. */
  g_autoptr (GDir) d = g_dir_open (f->dir, 0, NULL);
  const char *name;
  while (d && (name = g_dir_read_name (d)))
    if (is_part_name (name))
      {
        g_autofree char *path = g_build_filename (f->dir, name, NULL);
        unlink (path);
      }
  for (guint i = 0; i < n; i++)
    {
      g_autofree char *from = g_strdup_printf ("%s/.forge-%u", f->dir, i);
      g_autofree char *to = g_strdup_printf ("%s/%u", f->dir, i);
      if (rename (from, to) < 0)
        die ("%s: %s", from, g_strerror (errno));
    }
  for (guint i = 0; i < f->sb->n_parts; i++)
    dfi_part_clear (&f->sb->parts[i]);
  g_free (f->sb->parts);
  f->sb->parts = parts;
  f->sb->n_parts = n;
  g_autoptr (GBytes) sb = forge_serialize (f->sb);
  g_autofree char *path = g_build_filename (f->dir, "superblock", NULL);
  write_bytes (path, sb);
  guint64 body, entries = 0;
  memcpy (&body, (const guint8 *)g_bytes_get_data (sb, NULL) + 16, 8);
  for (guint i = 0; i < n; i++)
    entries += parts[i].n_entries;
  printf ("superblock-bytes %zu body-bytes %" G_GUINT64_FORMAT " entries %" G_GUINT64_FORMAT " parts %u\n",
          g_bytes_get_size (sb), GUINT64_FROM_LE (body), entries, n);
}

/* ---------------------------------------------------------------------- */
/* Native commands                                                          */

static int
cmd_info (const char *dir)
{
  g_autofree char *path = g_build_filename (dir, "superblock", NULL);
  g_autoptr (GBytes) file = read_file (path);
  gsize len;
  const guint8 *d = g_bytes_get_data (file, &len);
  /* The native header: magic, version, reserved, body length (LE). */
  if (len < DF_SUPERBLOCK_HEADER_LEN || memcmp (d, DF_SUPERBLOCK_MAGIC, 8) != 0)
    die ("%s is not a plain native superblock", path);
  guint64 body;
  memcpy (&body, d + 16, 8);
  g_autoptr (GError) error = NULL;
  g_autoptr (DfSuperblock) sb = dfi_superblock_parse (file, &error);
  guint64 entries = 0;
  for (guint i = 0; sb && i < sb->n_parts; i++)
    entries += sb->parts[i].n_entries;
  printf ("superblock-bytes %zu body-bytes %" G_GUINT64_FORMAT " entries %" G_GUINT64_FORMAT " parts %u%s%s\n", len,
          GUINT64_FROM_LE (body), entries, sb ? sb->n_parts : 0, sb ? "" : " unparsed: ", sb ? "" : error->message);
  return 0;
}

static int
cmd_meta (const char *dir, guint n, const char *pattern, guint64 seed)
{
  g_autoptr (Forge) f = forge_open (dir);
  g_autoptr (GRand) rnd = g_rand_new_with_seed ((guint32)seed);
  g_autoptr (GBytes) meta = dirmeta_bytes ();
  gsize mlen = g_bytes_get_size (meta);
  guint8 shared[DF_SHA256_LEN];
  fill_random (rnd, shared, sizeof shared);
  FPart *p = NULL;
  for (guint i = 0; i < n; i++)
    {
      /* A metadata part holds at most DF_PART_SIZE_MAX bytes. */
      if (p == NULL || (p->slots->len + 1) * mlen + DF_PART_TABLE_LEN > DF_PART_SIZE_MAX)
        p = forge_new_part (f, DF_PART_KIND_METADATA);
      DfEntry e = { .objtype = OSTREE_OBJECT_TYPE_DIR_META, .object_size = mlen, .length = mlen, .data_size = mlen };
      guint32 counter = GUINT32_TO_BE (i);
      if (g_str_equal (pattern, "random"))
        fill_random (rnd, e.checksum, DF_SHA256_LEN);
      else if (g_str_equal (pattern, "distinct"))
        {
          memcpy (e.checksum, shared, DF_SHA256_LEN);
          memcpy (e.checksum, &counter, 4);
        }
      else if (g_str_equal (pattern, "prefix"))
        {
          memcpy (e.checksum, shared, DF_SHA256_LEN);
          memcpy (e.checksum + DF_SHA256_LEN - 4, &counter, 4);
        }
      else
        die ("unknown checksum pattern %s", pattern);
      g_ptr_array_add (p->slots, slot_new (&e, g_bytes_ref (meta)));
    }
  forge_save (f);
  return 0;
}

static int
cmd_chunk_spam (const char *dir, const char *hex, guint64 n)
{
  g_autoptr (Forge) f = forge_open (dir);
  guint8 csum[DF_SHA256_LEN];
  parse_csum (hex, csum);
  FPart *p;
  guint j;
  forge_find_file (f, csum, &p, &j);
  Slot *s = forge_take_slot (p, j);
  g_autoptr (GBytes) header = NULL, body = NULL;
  raw_file_split (s, &header, &body);
  guint64 size = s->e.object_size;
  if (n < 2 || n > size)
    die ("a %" G_GUINT64_FORMAT "-byte file cannot be %" G_GUINT64_FORMAT " chunks", size, n);
  const guint8 *bytes = g_bytes_get_data (body, NULL);
  FPart *many = forge_new_part (f, DF_PART_KIND_CONTENT);
  FPart *last = forge_new_part (f, DF_PART_KIND_CONTENT);
  for (guint64 k = 0; k < n; k++)
    {
      DfEntry e = s->e;
      e.offset = k;
      e.length = k + 1 < n ? 1 : size - k;
      e.data_size = e.length;
      g_autoptr (GBytes) chunk = g_bytes_new (bytes + k, e.length);
      GBytes *raw = k == 0 ? concat (header, chunk) : g_steal_pointer (&chunk);
      if (k == 0)
        e.data_size += g_bytes_get_size (header);
      g_ptr_array_add (k + 1 < n ? many->slots : last->slots, slot_new (&e, raw));
    }
  slot_free (s);
  forge_save (f);
  return 0;
}

static int
cmd_declare_size (const char *dir, const char *hex, guint64 size, guint64 chunk)
{
  g_autoptr (Forge) f = forge_open (dir);
  guint8 csum[DF_SHA256_LEN];
  parse_csum (hex, csum);
  FPart *p;
  guint j;
  forge_find_file (f, csum, &p, &j);
  Slot *s = forge_take_slot (p, j);
  g_autoptr (GBytes) header = NULL, body = NULL;
  raw_file_split (s, &header, &body);
  /* The first chunk holds the header and the whole real content. */
  if (chunk < g_bytes_get_size (body) || chunk + DF_HEADER_MAX + DF_PART_TABLE_LEN > DF_PART_SIZE_MAX || size < chunk)
    die ("chunks of %" G_GUINT64_FORMAT " bytes do not fit", chunk);
  /* Every chunk but the first is zeros: one shared buffer. */
  g_autoptr (GBytes) zeros = g_bytes_new_take (g_malloc0 (chunk), chunk);
  for (guint64 off = 0; off < size; off += chunk)
    {
      DfEntry e = s->e;
      e.object_size = size;
      e.offset = off;
      e.length = MIN (chunk, size - off);
      e.data_size = e.length;
      GBytes *raw;
      if (off == 0)
        {
          guint8 *first = g_malloc0 (e.length);
          memcpy (first, g_bytes_get_data (body, NULL), g_bytes_get_size (body));
          g_autoptr (GBytes) fb = g_bytes_new_take (first, e.length);
          raw = concat (header, fb);
          e.data_size += g_bytes_get_size (header);
        }
      else
        raw = g_bytes_new_from_bytes (zeros, 0, e.length);
      g_ptr_array_add (forge_new_part (f, DF_PART_KIND_CONTENT)->slots, slot_new (&e, raw));
    }
  slot_free (s);
  forge_save (f);
  return 0;
}

static int
cmd_window (const char *dir, const char *source_hex, guint64 src_len, guint64 maxlen)
{
  g_autoptr (Forge) f = forge_open (dir);
  guint8 source[DF_SHA256_LEN];
  parse_csum (source_hex, source);
  FPart *dest = forge_new_part (f, DF_PART_KIND_CONTENT);
  guint moved = 0;
  for (guint i = 0; i < f->parts->len; i++)
    {
      FPart *p = f->parts->pdata[i];
      if (p == dest || p->kind != DF_PART_KIND_CONTENT)
        continue;
      gboolean has = FALSE;
      for (guint j = 0; j < f->sb->parts[p->orig].n_entries && !has; j++)
        {
          const DfEntry *e = &f->sb->parts[p->orig].entries[j];
          has = e->encoding == DF_ENCODING_RAW && e->length == e->object_size && e->length > 0 && e->length <= maxlen;
        }
      if (!has)
        continue;
      GPtrArray *slots = forge_slots (f, p);
      for (guint j = 0; j < slots->len;)
        {
          Slot *s = slots->pdata[j];
          if (!(s->e.encoding == DF_ENCODING_RAW && s->e.length == s->e.object_size && s->e.length > 0
                && s->e.length <= maxlen))
            {
              j++;
              continue;
            }
          s = forge_take_slot (p, j);
          g_autoptr (GBytes) header = NULL, body = NULL;
          raw_file_split (s, &header, &body);
          /* One control: add nothing, copy the whole body, seek nowhere. */
          Slot *d = g_new0 (Slot, 1);
          d->e = s->e;
          d->e.encoding = DF_ENCODING_DIFF;
          d->e.has_source = TRUE;
          memcpy (d->e.source, source, DF_SHA256_LEN);
          d->e.src_offset = 0;
          d->e.src_length = src_len;
          d->e.data_size = g_bytes_get_size (header);
          d->sec[DF_SECTION_RAW] = g_steal_pointer (&header);
          GByteArray *ctl = g_byte_array_new ();
          dfi_varint_append (ctl, 1);
          dfi_varint_append (ctl, 0);
          dfi_varint_append (ctl, s->e.length);
          dfi_varint_append (ctl, 0);
          d->sec[DF_SECTION_CONTROL] = g_byte_array_free_to_bytes (ctl);
          d->sec[DF_SECTION_COPY] = g_steal_pointer (&body);
          g_ptr_array_add (dest->slots, d);
          slot_free (s);
          moved++;
        }
    }
  if (moved == 0)
    die ("no file of 1..%" G_GUINT64_FORMAT " bytes is carried raw", maxlen);
  forge_save (f);
  printf ("diff-entries %u\n", moved);
  return 0;
}

/* ---------------------------------------------------------------------- */
/* Signed envelopes                                                         */

/* A well-formed ed25519 signature that does not verify: its S (the second
 * half, little-endian) is below the group order, so a verifier cannot
 * refuse it without hashing the message. */
static GBytes *
crafted_signature (GRand *rnd)
{
  guint8 sig[DF_ED25519_SIG_LEN];
  fill_random (rnd, sig, sizeof sig);
  sig[63] &= 0x0f;
  return g_bytes_new (sig, sizeof sig);
}

static int
cmd_sig_flood (const char *path, guint n, guint64 size, guint64 seed)
{
  g_autoptr (GRand) rnd = g_rand_new_with_seed ((guint32)seed);
  guint8 *msg = g_malloc (size);
  fill_random (rnd, msg, size);
  g_autoptr (GBytes) data = g_bytes_new_take (msg, size);
  g_autoptr (GPtrArray) sigs = g_ptr_array_new_with_free_func ((GDestroyNotify)g_bytes_unref);
  for (guint i = 0; i < n; i++)
    g_ptr_array_add (sigs, crafted_signature (rnd));
  g_autoptr (GBytes) env = dfi_signed_wrap (data, sigs);
  write_bytes (path, env);
  return 0;
}

static int
cmd_sig_nth (const char *dir, const char *secret, guint n)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *path = g_build_filename (dir, "superblock", NULL);
  g_autoptr (GBytes) plain = read_file (path);
  g_autoptr (DfSigner) signer = dfi_signer_load (secret, &error);
  if (signer == NULL)
    die ("%s", error->message);
  g_autoptr (GBytes) one = dfi_signer_wrap (signer, plain, &error);
  g_autoptr (GBytes) inner = NULL;
  g_autoptr (GPtrArray) valid = NULL;
  if (one == NULL || !dfi_signed_unwrap (one, &inner, &valid, &error) || valid->len != 1)
    die ("signing: %s", error ? error->message : "no signature");
  g_autoptr (GRand) rnd = g_rand_new_with_seed (n);
  g_autoptr (GPtrArray) sigs = g_ptr_array_new_with_free_func ((GDestroyNotify)g_bytes_unref);
  for (guint i = 0; i + 1 < n; i++)
    g_ptr_array_add (sigs, crafted_signature (rnd));
  g_ptr_array_add (sigs, g_bytes_ref (valid->pdata[0]));
  g_autoptr (GBytes) env = dfi_signed_wrap (plain, sigs);
  write_bytes (path, env);
  return 0;
}

/* ---------------------------------------------------------------------- */
/* Stock deltas                                                             */

#define STOCK_SB_TYPE "(a{sv}tayay(a{sv}aya(say)sstayay)aya(uayttay)a(yaytt))"

typedef struct
{
  char *dir;
  GBytes *file;
  DfStockSuperblock *sb;
} Stock;

static Stock *
stock_open (const char *dir)
{
  Stock *s = g_new0 (Stock, 1);
  s->dir = g_strdup (dir);
  g_autofree char *path = g_build_filename (dir, "superblock", NULL);
  s->file = read_file (path);
  g_autoptr (GError) error = NULL;
  if (!dfi_stock_superblock_sniff (s->file) || (s->sb = dfi_stock_superblock_parse (s->file, &error)) == NULL)
    die ("%s: not a stock delta%s%s", dir, error ? ": " : "", error ? error->message : "");
  if (s->sb->file.is_signed)
    die ("%s is signed", dir);
  return s;
}

static void
stock_free (Stock *s)
{
  g_bytes_unref (s->file);
  dfi_stock_superblock_free (s->sb);
  g_free (s->dir);
  g_free (s);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Stock, stock_free)

/* Part @i's payload, decoded: its four members. */
typedef struct
{
  GBytes *modes, *xattrs;
  GByteArray *raw, *ops;
} StockPayload;

static void
stock_payload_clear (StockPayload *p)
{
  g_clear_pointer (&p->modes, g_bytes_unref);
  g_clear_pointer (&p->xattrs, g_bytes_unref);
  g_clear_pointer (&p->raw, g_byte_array_unref);
  g_clear_pointer (&p->ops, g_byte_array_unref);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (StockPayload, stock_payload_clear)

static void
stock_payload_read (Stock *s, guint i, StockPayload *out)
{
  g_autoptr (GError) error = NULL;
  if (s->sb->parts[i].inline_data)
    die ("part %u is inline", i);
  g_autofree char *path = g_strdup_printf ("%s/%u", s->dir, i);
  dfi_autofd pfd = open (path, O_RDONLY | O_CLOEXEC);
  dfi_autofd tfd = open (g_get_tmp_dir (), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (pfd < 0 || tfd < 0)
    die ("part %u: %s", i, g_strerror (errno));
  guint64 len;
  DfStockPayload pl;
  if (!dfi_stock_part_decode (s->sb, i, pfd, -1, tfd, &len, NULL, NULL, &error)
      || !dfi_stock_payload_open (&pl, tfd, len, &error))
    die ("part %u: %s", i, error->message);
  out->modes = g_bytes_new (g_variant_get_data (pl.modes), g_variant_get_size (pl.modes));
  out->xattrs = g_bytes_new (g_variant_get_data (pl.xattrs), g_variant_get_size (pl.xattrs));
  out->raw = g_byte_array_sized_new (pl.raw_len);
  g_byte_array_set_size (out->raw, pl.raw_len);
  if (!dfi_pread_all (tfd, out->raw->data, pl.raw_len, pl.raw_off, "payload", &error))
    die ("%s", error->message);
  g_autoptr (GBytes) ops = dfi_stock_payload_read_ops (&pl, &error);
  if (ops == NULL)
    die ("%s", error->message);
  out->ops = g_byte_array_new ();
  g_byte_array_append (out->ops, g_bytes_get_data (ops, NULL), g_bytes_get_size (ops));
  dfi_stock_payload_clear (&pl);
}

/* A part file being written, hashed as it goes. */
typedef struct
{
  int fd;
  guint64 size;
  DfSha256 sha;
} PartSink;

static void
sink_out (PartSink *k, const guint8 *p, gsize n)
{
  g_autoptr (GError) error = NULL;
  if (!dfi_pwrite_all (k->fd, p, n, k->size, "part", &error))
    die ("%s", error->message);
  dfi_sha256_update (&k->sha, p, n);
  k->size += n;
}

/* Zeros in a compressed payload go in blocks of this size: one block is
 * compressed once and written as often as needed, so 2 GiB of zeros cost
 * a second, not the minute xz needs to compress them in one stream. */
#define ZERO_BLOCK (64 * DF_MIB)

/* One xz block of @in (LZMA2 at FORGE_XZ_PRESET, CRC64), appended to
 * @index; the block's bytes are returned, its unpadded size in @unpadded. */
static GBytes *
xz_block (const guint8 *in, gsize len, lzma_index *index, lzma_vli *unpadded)
{
  lzma_options_lzma opt;
  if (lzma_lzma_preset (&opt, FORGE_XZ_PRESET))
    die ("xz: no preset %d", FORGE_XZ_PRESET);
  lzma_filter filters[] = { { LZMA_FILTER_LZMA2, &opt }, { LZMA_VLI_UNKNOWN, NULL } };
  lzma_block block = { .version = 0, .check = LZMA_CHECK_CRC64, .filters = filters };
  gsize cap = lzma_block_buffer_bound (len), pos = 0;
  guint8 *out = g_malloc (cap);
  if (lzma_block_buffer_encode (&block, NULL, in, len, out, &pos, cap) != LZMA_OK
      || lzma_index_append (index, NULL, lzma_block_unpadded_size (&block), block.uncompressed_size) != LZMA_OK)
    die ("xz: cannot encode a block");
  *unpadded = lzma_block_unpadded_size (&block);
  return g_bytes_new_take (out, pos);
}

/* Writes @prefix, @zeros zero bytes and @suffix as one .xz stream. */
static void
xz_write (PartSink *k, GByteArray *prefix, guint64 zeros, GByteArray *suffix)
{
  lzma_stream_flags flags = { .version = 0, .check = LZMA_CHECK_CRC64 };
  guint8 hf[LZMA_STREAM_HEADER_SIZE];
  if (lzma_stream_header_encode (&flags, hf) != LZMA_OK)
    die ("xz: stream header");
  sink_out (k, hf, sizeof hf);
  lzma_index *index = lzma_index_init (NULL);
  lzma_vli unpadded;
  g_autoptr (GBytes) first = xz_block (prefix->data, prefix->len, index, &unpadded);
  sink_out (k, g_bytes_get_data (first, NULL), g_bytes_get_size (first));
  if (zeros >= ZERO_BLOCK)
    {
      g_autofree guint8 *z = g_malloc0 (ZERO_BLOCK);
      g_autoptr (GBytes) zb = xz_block (z, ZERO_BLOCK, index, &unpadded);
      sink_out (k, g_bytes_get_data (zb, NULL), g_bytes_get_size (zb));
      for (guint64 left = zeros - ZERO_BLOCK; left >= ZERO_BLOCK; left -= ZERO_BLOCK)
        {
          if (lzma_index_append (index, NULL, unpadded, ZERO_BLOCK) != LZMA_OK)
            die ("xz: index");
          sink_out (k, g_bytes_get_data (zb, NULL), g_bytes_get_size (zb));
        }
    }
  /* The zeros that do not fill a block go with the suffix. */
  GByteArray *last = g_byte_array_sized_new (zeros % ZERO_BLOCK + suffix->len);
  g_byte_array_set_size (last, zeros % ZERO_BLOCK);
  memset (last->data, 0, last->len);
  g_byte_array_append (last, suffix->data, suffix->len);
  g_autoptr (GBytes) lb = xz_block (last->data, last->len, index, &unpadded);
  g_byte_array_unref (last);
  sink_out (k, g_bytes_get_data (lb, NULL), g_bytes_get_size (lb));
  gsize cap = lzma_index_size (index), pos = 0;
  g_autofree guint8 *ib = g_malloc (cap);
  if (lzma_index_buffer_encode (index, ib, &pos, cap) != LZMA_OK)
    die ("xz: index");
  sink_out (k, ib, pos);
  flags.backward_size = lzma_index_size (index);
  guint8 ff[LZMA_STREAM_HEADER_SIZE];
  if (lzma_stream_footer_encode (&flags, ff) != LZMA_OK)
    die ("xz: stream footer");
  sink_out (k, ff, sizeof ff);
  lzma_index_end (index, NULL);
}

/* Writes part @i: the payload "(a(uuu)aa(ayay)ayay)" with @zeros zero
 * bytes after the data (GVariant's framing by hand: the first three
 * members' ends, little-endian, last member first, as wide as the whole
 * payload needs), uncompressed or as xz; fills the part's new SHA-256 and
 * size. */
static void
stock_write_part (Stock *s, guint i, const StockPayload *pl, guint64 zeros, gboolean xz, guint8 sha[DF_SHA256_LEN],
                  guint64 *size)
{
  guint64 end[3];
  end[0] = g_bytes_get_size (pl->modes);
  end[1] = end[0] + g_bytes_get_size (pl->xattrs);
  end[2] = end[1] + pl->raw->len + zeros;
  guint64 body = end[2] + pl->ops->len;
  guint osz = body + 3 <= G_MAXUINT8 ? 1 : body + 6 <= G_MAXUINT16 ? 2 : body + 12 <= G_MAXUINT32 ? 4 : 8;
  GByteArray *prefix = g_byte_array_new (), *suffix = g_byte_array_new ();
  g_byte_array_append (prefix, g_bytes_get_data (pl->modes, NULL), g_bytes_get_size (pl->modes));
  g_byte_array_append (prefix, g_bytes_get_data (pl->xattrs, NULL), g_bytes_get_size (pl->xattrs));
  g_byte_array_append (prefix, pl->raw->data, pl->raw->len);
  g_byte_array_append (suffix, pl->ops->data, pl->ops->len);
  for (guint m = 0; m < 3; m++)
    {
      guint64 v = GUINT64_TO_LE (end[2 - m]);
      g_byte_array_append (suffix, (const guint8 *)&v, osz);
    }
  g_autofree char *path = g_strdup_printf ("%s/%u", s->dir, i);
  PartSink k = { .fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) };
  if (k.fd < 0)
    die ("%s: %s", path, g_strerror (errno));
  dfi_sha256_init (&k.sha);
  guint8 type = xz ? 'x' : 0;
  sink_out (&k, &type, 1);
  if (xz)
    xz_write (&k, prefix, zeros, suffix);
  else
    {
      static const guint8 zero_block[1024 * 1024];
      sink_out (&k, prefix->data, prefix->len);
      for (guint64 left = zeros; left > 0;)
        {
          gsize n = MIN (left, sizeof zero_block);
          sink_out (&k, zero_block, n);
          left -= n;
        }
      sink_out (&k, suffix->data, suffix->len);
    }
  g_byte_array_unref (prefix);
  g_byte_array_unref (suffix);
  dfi_sha256_final (&k.sha, sha);
  dfi_sha256_clear (&k.sha);
  *size = k.size;
  close (k.fd);
}

/* Rewrites the superblock with part @i's new hash, sizes and object list
 * (NULL: unchanged), in the delta's byte order. */
static void
stock_set_part (Stock *s, guint i, const guint8 sha[DF_SHA256_LEN], guint64 size, guint64 usize, GBytes *objects)
{
  g_autoptr (GVariant) v
      = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE (STOCK_SB_TYPE), s->file, FALSE));
  g_autoptr (GVariant) headers = g_variant_get_child_value (v, 6);
  GVariantBuilder hb;
  g_variant_builder_init (&hb, G_VARIANT_TYPE ("a(uayttay)"));
  for (gsize j = 0; j < g_variant_n_children (headers); j++)
    {
      g_autoptr (GVariant) h = g_variant_get_child_value (headers, j);
      if (j != i)
        {
          g_variant_builder_add_value (&hb, h);
          continue;
        }
      guint32 version;
      g_autoptr (GVariant) old_sha = NULL, old_objs = NULL;
      guint64 old_size, old_usize;
      g_variant_get (h, "(u@aytt@ay)", &version, &old_sha, &old_size, &old_usize, &old_objs);
      gboolean be = s->sb->big_endian;
      GVariant *objs
          = objects ? g_variant_new_from_bytes (G_VARIANT_TYPE_BYTESTRING, objects, TRUE) : g_steal_pointer (&old_objs);
      g_variant_builder_add (
          &hb, "(u@aytt@ay)", version, g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, sha, DF_SHA256_LEN, 1),
          be ? GUINT64_TO_BE (size) : GUINT64_TO_LE (size), be ? GUINT64_TO_BE (usize) : GUINT64_TO_LE (usize), objs);
    }
  GVariantBuilder b;
  g_variant_builder_init (&b, G_VARIANT_TYPE_TUPLE);
  for (gsize j = 0; j < g_variant_n_children (v); j++)
    {
      if (j == 6)
        g_variant_builder_add_value (&b, g_variant_builder_end (&hb));
      else
        g_variant_builder_add_value (&b, g_variant_get_child_value (v, j));
    }
  g_autoptr (GVariant) nsb = g_variant_ref_sink (g_variant_builder_end (&b));
  g_autoptr (GVariant) normal = g_variant_get_normal_form (nsb);
  g_autoptr (GBytes) out = g_variant_get_data_as_bytes (normal);
  g_autofree char *path = g_build_filename (s->dir, "superblock", NULL);
  write_bytes (path, out);
}

/* The opcode at *@pos (its operands skipped); *@idx counts the part's
 * objects made so far, which says how many operands an 'S' has. */
static guint8
stock_next_op (const DfStockPart *p, const GByteArray *ops, gsize *pos, guint *idx, guint64 *first_operand)
{
  guint8 op = ops->data[(*pos)++];
  gboolean meta = *idx < p->n_objects && p->objects[*idx * DF_STOCK_OBJREC_LEN] != OSTREE_OBJECT_TYPE_FILE;
  guint nargs;
  switch (op)
    {
    case 'S':
      nargs = meta ? 2 : 4;
      (*idx)++;
      break;
    case 'o':
      nargs = 3;
      break;
    case 'w':
    case 'B':
      nargs = 2;
      break;
    case 'r':
      nargs = 1;
      break;
    case 'c':
      nargs = 0;
      (*idx)++;
      break;
    case 'R':
      nargs = 0;
      break;
    default:
      die ("unknown opcode 0x%02x", op);
    }
  for (guint k = 0; k < nargs; k++)
    {
      guint64 v = 0;
      for (guint b = 0; *pos < ops->len; b++)
        {
          guint8 c = ops->data[(*pos)++];
          v |= (guint64)(c & 0x7f) << (7 * b);
          if (!(c & 0x80))
            break;
        }
      if (k == 0 && first_operand)
        *first_operand = v;
    }
  return op;
}

static gboolean
stock_part_makes_metadata (const DfStockPart *p)
{
  for (guint j = 0; j < p->n_objects; j++)
    if (p->objects[j * DF_STOCK_OBJREC_LEN] != OSTREE_OBJECT_TYPE_FILE)
      return TRUE;
  return FALSE;
}

static int
cmd_stock_flood (const char *dir, guint n, guint64 seed)
{
  g_autoptr (Stock) s = stock_open (dir);
  guint i = 0;
  while (i < s->sb->n_parts && !stock_part_makes_metadata (&s->sb->parts[i]))
    i++;
  if (i == s->sb->n_parts)
    i = 0;
  const DfStockPart *p = &s->sb->parts[i];
  g_auto (StockPayload) pl = { 0 };
  stock_payload_read (s, i, &pl);
  g_autoptr (GBytes) meta = dirmeta_bytes ();
  gsize mlen = g_bytes_get_size (meta);
  guint64 off = pl.raw->len;
  g_byte_array_append (pl.raw, g_bytes_get_data (meta, NULL), mlen);
  GByteArray *objs = g_byte_array_new ();
  g_byte_array_append (objs, p->objects, (gsize)p->n_objects * DF_STOCK_OBJREC_LEN);
  g_autoptr (GRand) rnd = g_rand_new_with_seed ((guint32)seed);
  guint8 shared[DF_SHA256_LEN];
  fill_random (rnd, shared, sizeof shared);
  for (guint k = 0; k < n; k++)
    {
      guint8 rec[DF_STOCK_OBJREC_LEN];
      rec[0] = OSTREE_OBJECT_TYPE_DIR_META;
      guint32 counter = GUINT32_TO_BE (k);
      memcpy (rec + 1, shared, DF_SHA256_LEN - 4);
      memcpy (rec + 1 + DF_SHA256_LEN - 4, &counter, 4);
      g_byte_array_append (objs, rec, sizeof rec);
      g_byte_array_append (pl.ops, (const guint8 *)"S", 1);
      dfi_varint_append (pl.ops, mlen);
      dfi_varint_append (pl.ops, off);
    }
  guint8 sha[DF_SHA256_LEN];
  guint64 size;
  stock_write_part (s, i, &pl, 0, FALSE, sha, &size);
  g_autoptr (GBytes) ob = g_byte_array_free_to_bytes (objs);
  stock_set_part (s, i, sha, size, p->usize + (guint64)n * mlen, ob);
  printf ("part %u makes %u forged dirmeta objects\n", i, n);
  return 0;
}

static int
cmd_stock_bloat (const char *dir, guint i, guint64 zeros)
{
  g_autoptr (Stock) s = stock_open (dir);
  if (i >= s->sb->n_parts)
    die ("no part %u", i);
  g_auto (StockPayload) pl = { 0 };
  stock_payload_read (s, i, &pl);
  guint8 sha[DF_SHA256_LEN];
  guint64 size;
  stock_write_part (s, i, &pl, zeros, TRUE, sha, &size);
  stock_set_part (s, i, sha, size, s->sb->parts[i].usize, NULL);
  printf ("part %u: %" G_GUINT64_FORMAT " bytes, declares %" G_GUINT64_FORMAT
          " uncompressed, decodes to %" G_GUINT64_FORMAT "\n",
          i, size, s->sb->parts[i].usize,
          g_bytes_get_size (pl.modes) + g_bytes_get_size (pl.xattrs) + pl.raw->len + zeros + pl.ops->len);
  return 0;
}

static int
cmd_stock_ropen (const char *dir, guint count, const char *source_hex)
{
  g_autoptr (Stock) s = stock_open (dir);
  guint8 source[DF_SHA256_LEN];
  parse_csum (source_hex, source);
  for (guint i = 0; i < s->sb->n_parts; i++)
    {
      const DfStockPart *p = &s->sb->parts[i];
      g_auto (StockPayload) pl = { 0 };
      stock_payload_read (s, i, &pl);
      gsize pos = 0, at = G_MAXSIZE;
      guint idx = 0;
      while (pos < pl.ops->len && at == G_MAXSIZE)
        {
          gsize start = pos;
          if (stock_next_op (p, pl.ops, &pos, &idx, NULL) == 'r')
            at = start;
        }
      if (at == G_MAXSIZE)
        continue;
      guint64 added = 0;
      if (count > 0)
        {
          guint64 off = pl.raw->len;
          g_byte_array_append (pl.raw, source, DF_SHA256_LEN);
          GByteArray *ins = g_byte_array_new ();
          for (guint k = 0; k < count; k++)
            {
              g_byte_array_append (ins, (const guint8 *)"r", 1);
              dfi_varint_append (ins, off);
            }
          GByteArray *ops = g_byte_array_new ();
          g_byte_array_append (ops, pl.ops->data, at);
          g_byte_array_append (ops, ins->data, ins->len);
          g_byte_array_append (ops, pl.ops->data + at, pl.ops->len - at);
          g_byte_array_unref (pl.ops);
          pl.ops = ops;
          added = DF_SHA256_LEN + ins->len;
          g_byte_array_unref (ins);
        }
      guint8 sha[DF_SHA256_LEN];
      guint64 size;
      stock_write_part (s, i, &pl, 0, FALSE, sha, &size);
      stock_set_part (s, i, sha, size, p->usize + added, NULL);
      printf ("part %u: %u 'r' opcodes inserted at opcode byte %zu (%" G_GUINT64_FORMAT " bytes)\n", i, count, at,
              added);
      return 0;
    }
  die ("no part has an 'r' opcode");
}

int
main (int argc, char **argv)
{
  if (argc < 3)
    die ("usage: see the comment at the top of df-forge.c");
  const char *cmd = argv[1];
  if (g_str_equal (cmd, "bytes") && argc == 5)
    return cmd_bytes (argv[2], parse_u64 (argv[3]), parse_u64 (argv[4]));
  if (g_str_equal (cmd, "ones") && argc == 4)
    return cmd_ones (argv[2], parse_u64 (argv[3]));
  if (g_str_equal (cmd, "info") && argc == 3)
    return cmd_info (argv[2]);
  if (g_str_equal (cmd, "meta") && argc == 6)
    return cmd_meta (argv[2], parse_u64 (argv[3]), argv[4], parse_u64 (argv[5]));
  if (g_str_equal (cmd, "chunk-spam") && argc == 5)
    return cmd_chunk_spam (argv[2], argv[3], parse_u64 (argv[4]));
  if (g_str_equal (cmd, "declare-size") && argc == 6)
    return cmd_declare_size (argv[2], argv[3], parse_u64 (argv[4]), parse_u64 (argv[5]));
  if (g_str_equal (cmd, "window") && argc == 6)
    return cmd_window (argv[2], argv[3], parse_u64 (argv[4]), parse_u64 (argv[5]));
  if (g_str_equal (cmd, "sig-flood") && argc == 6)
    return cmd_sig_flood (argv[2], parse_u64 (argv[3]), parse_u64 (argv[4]), parse_u64 (argv[5]));
  if (g_str_equal (cmd, "sig-nth") && argc == 5)
    return cmd_sig_nth (argv[2], argv[3], parse_u64 (argv[4]));
  if (g_str_equal (cmd, "stock-flood") && argc == 5)
    return cmd_stock_flood (argv[2], parse_u64 (argv[3]), parse_u64 (argv[4]));
  if (g_str_equal (cmd, "stock-bloat") && argc == 5)
    return cmd_stock_bloat (argv[2], parse_u64 (argv[3]), parse_u64 (argv[4]));
  if (g_str_equal (cmd, "stock-ropen") && argc == 5)
    return cmd_stock_ropen (argv[2], parse_u64 (argv[3]), argv[4]);
  die ("unknown command or wrong arguments: %s (see the comment at the top of df-forge.c)", cmd);
}
