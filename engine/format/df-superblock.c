#include "df-superblock.h"

#include <fcntl.h>

#include "df-part.h"

void
dfi_part_clear (DfPart *p)
{
  g_clear_pointer (&p->entries, g_free);
  g_clear_pointer (&p->deps, g_free);
  g_clear_pointer (&p->libraries, g_strfreev);
}

gboolean
dfi_superblock_needs_v3 (const DfSuperblock *sb)
{
  for (guint i = 0; i < sb->n_parts; i++)
    if (sb->parts[i].kind == DF_PART_KIND_REBUILD || sb->parts[i].kind == DF_PART_KIND_ALTERNATIVE)
      return TRUE;
  return FALSE;
}

DfSuperblock *
dfi_superblock_new (void)
{
  return g_new0 (DfSuperblock, 1);
}

void
dfi_superblock_free (DfSuperblock *sb)
{
  if (sb == NULL)
    return;
  g_clear_pointer (&sb->metadata, g_variant_unref);
  g_clear_pointer (&sb->commit, g_bytes_unref);
  g_clear_pointer (&sb->commitmeta, g_bytes_unref);
  for (guint i = 0; i < sb->n_parts; i++)
    dfi_part_clear (&sb->parts[i]);
  g_free (sb->parts);
  g_free (sb);
}

static GVariant *
bytes_variant (const guint8 *data, gsize len)
{
  return g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, data, len, 1);
}

GBytes *
dfi_superblock_serialize (const DfSuperblock *sb)
{
  /* Format 2 unless something needs 3: older devices keep reading deltas
   * that rebuild nothing. */
  gboolean v3 = dfi_superblock_needs_v3 (sb);
  const char *part_type = v3 ? "(ayttya" DF_ENTRY_TYPE "auast)" : "(ayttya" DF_ENTRY_TYPE ")";
  GVariantBuilder parts;
  g_autofree char *parts_type = g_strdup_printf ("a%s", part_type);
  g_variant_builder_init (&parts, G_VARIANT_TYPE (parts_type));
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
      GVariant *sha = bytes_variant (p->sha256, DF_SHA256_LEN);
      GVariant *ev = g_variant_builder_end (&entries);
      if (!v3)
        {
          g_variant_builder_add (&parts, "(@aytty@a" DF_ENTRY_TYPE ")", sha, GUINT64_TO_LE (p->compressed_size),
                                 GUINT64_TO_LE (p->uncompressed_size), p->kind, ev);
          continue;
        }
      g_autofree guint32 *deps_le = g_new (guint32, p->n_deps + 1);
      for (guint k = 0; k < p->n_deps; k++)
        deps_le[k] = GUINT32_TO_LE (p->deps[k]);
      const char *const none[] = { NULL };
      g_variant_builder_add (&parts, "(@aytty@a" DF_ENTRY_TYPE "@au@ast)", sha, GUINT64_TO_LE (p->compressed_size),
                             GUINT64_TO_LE (p->uncompressed_size), p->kind, ev,
                             g_variant_new_fixed_array (G_VARIANT_TYPE_UINT32, deps_le, p->n_deps, 4),
                             g_variant_new_strv (p->libraries ? (const char *const *)p->libraries : none, -1),
                             GUINT64_TO_LE (p->rebuild_memory));
    }
  GVariant *meta = sb->metadata ? sb->metadata : g_variant_new_array (G_VARIANT_TYPE ("{sv}"), NULL, 0);
  gsize clen, mlen;
  const guint8 *cdata = g_bytes_get_data (sb->commit, &clen);
  const guint8 *mdata = sb->commitmeta ? g_bytes_get_data (sb->commitmeta, &mlen) : NULL;
  if (mdata == NULL)
    mlen = 0;
  g_autofree char *body_fmt = g_strdup_printf ("(@a{sv}@ay@ay@ay@ay@a%s)", part_type);
  g_autoptr (GVariant) body = g_variant_ref_sink (
      g_variant_new (body_fmt, meta,
                     bytes_variant (sb->from, sb->has_from ? DF_SHA256_LEN : 0), bytes_variant (sb->to, DF_SHA256_LEN),
                     bytes_variant (cdata, clen), bytes_variant (mdata, mlen), g_variant_builder_end (&parts)));
  /* GVariant serializes in host order; the file is little-endian. The
   * integers above were swapped to LE by value already on big-endian hosts,
   * which is what g_variant_byteswap would do; keep the body as built. */
  g_autoptr (GVariant) normal = g_variant_get_normal_form (body);
  gsize blen = g_variant_get_size (normal);
  g_autofree guint8 *plain = g_malloc (blen);
  g_variant_store (normal, plain);
  /* Most of the body is checksums, but its sizes and offsets compress:
   * about 45 % off. */
  g_autoptr (ZSTD_CCtx) cctx = ZSTD_createCCtx ();
  ZSTD_CCtx_setParameter (cctx, ZSTD_c_compressionLevel, DF_SUPERBLOCK_LEVEL);
  ZSTD_CCtx_setParameter (cctx, ZSTD_c_contentSizeFlag, 1);
  /* With zstd's content checksum a damaged file is refused as such, not
   * read as a different delta (parts have their SHA-256 instead). */
  ZSTD_CCtx_setParameter (cctx, ZSTD_c_checksumFlag, 1);
  int wlog = 10;
  while (wlog < DF_SUPERBLOCK_WINDOW_LOG_MAX && ((gsize)1 << wlog) < blen)
    wlog++;
  ZSTD_CCtx_setParameter (cctx, ZSTD_c_windowLog, wlog);
  gsize cap = ZSTD_compressBound (blen);
  GByteArray *out = g_byte_array_sized_new (DF_SUPERBLOCK_HEADER_LEN + cap);
  guint32 version = GUINT32_TO_LE (v3 ? DF_FORMAT_VERSION : DF_FORMAT_VERSION_PLAIN), reserved = 0;
  guint64 blen_le = GUINT64_TO_LE ((guint64)blen);
  g_byte_array_append (out, (const guint8 *)DF_SUPERBLOCK_MAGIC, 8);
  g_byte_array_append (out, (const guint8 *)&version, 4);
  g_byte_array_append (out, (const guint8 *)&reserved, 4);
  g_byte_array_append (out, (const guint8 *)&blen_le, 8);
  g_byte_array_set_size (out, DF_SUPERBLOCK_HEADER_LEN + cap);
  size_t r = ZSTD_compress2 (cctx, out->data + DF_SUPERBLOCK_HEADER_LEN, cap, plain, blen);
  g_assert (!ZSTD_isError (r));
  g_byte_array_set_size (out, DF_SUPERBLOCK_HEADER_LEN + r);
  return g_byte_array_free_to_bytes (out);
}

static gboolean
parse_entry (GVariant *ev, guint part, guint idx, DfPartKind kind, DfEntry *e, GError **error)
{
  g_autoptr (GVariant) csum = NULL, src = NULL;
  guint8 objtype, encoding;
  guint64 osize, off, len, dsize, soff, slen;
  g_variant_get (ev, "(y@ayy@aytttttt)", &objtype, &csum, &encoding, &src, &osize, &off, &len, &dsize, &soff, &slen);
  e->objtype = objtype;
  e->encoding = encoding;
  e->object_size = GUINT64_FROM_LE (osize);
  e->offset = GUINT64_FROM_LE (off);
  e->length = GUINT64_FROM_LE (len);
  e->data_size = GUINT64_FROM_LE (dsize);
  e->src_offset = GUINT64_FROM_LE (soff);
  e->src_length = GUINT64_FROM_LE (slen);

  g_autofree char *where = g_strdup_printf ("part %u entry %u", part, idx);
  if (!dfi_checksum_from_variant (csum, FALSE, e->checksum, NULL, "superblock: object checksum", error)
      || !dfi_checksum_from_variant (src, TRUE, e->source, &e->has_source, "superblock: source checksum", error))
    return (g_prefix_error (error, "%s: ", where), FALSE);

#define BAD(fmt, ...) return dfi_throw (error, DF_ERROR_INVALID_DELTA, "superblock: %s: " fmt, where, ##__VA_ARGS__)

  if (e->encoding > DF_ENCODING_LAST)
    BAD ("unknown encoding %u", e->encoding);
  if ((e->encoding == DF_ENCODING_REBUILD) != (kind == DF_PART_KIND_REBUILD))
    BAD ("encoding %u in a part of kind %u", e->encoding, kind);
  if (e->encoding == DF_ENCODING_REBUILD)
    {
      /* A whole object, streamed from its program to a staged file: not
       * held to the part size, but to DF_REBUILD_OBJECT_MAX, and the
       * content its program reads to a multiple of it. */
      if (objtype != OSTREE_OBJECT_TYPE_FILE)
        BAD ("rebuild entry of object type %u", objtype);
      if (e->has_source || e->src_offset != 0)
        BAD ("rebuild entry with a source");
      if (e->offset != 0 || e->length != e->object_size || e->object_size == 0
          || e->object_size > DF_REBUILD_OBJECT_MAX)
        BAD ("rebuild entry of %" G_GUINT64_FORMAT "+%" G_GUINT64_FORMAT " bytes of a %" G_GUINT64_FORMAT
             "-byte object (whole objects of 1 byte to %" G_GUINT64_FORMAT " only)",
             e->offset, e->length, e->object_size, (guint64)DF_REBUILD_OBJECT_MAX);
      if (e->src_length > e->object_size * DF_REBUILD_EXPANSION + DF_REBUILD_CONTENT_SLACK)
        BAD ("rebuild reads %" G_GUINT64_FORMAT " bytes for a %" G_GUINT64_FORMAT "-byte object", e->src_length,
             e->object_size);
      if (e->data_size <= 4)
        BAD ("rebuild entry without its program");
      return TRUE;
    }
  if (e->encoding != DF_ENCODING_RAW)
    {
      if (!e->has_source)
        BAD ("patch without a source object");
      guint64 end;
      if (!dfi_add_u64 (e->src_offset, e->src_length, &end))
        BAD ("source window overflows");
      if (e->src_length > DF_SOURCE_WINDOW_MAX)
        BAD ("source window of %" G_GUINT64_FORMAT " bytes exceeds %" G_GUINT64_FORMAT, e->src_length,
             (guint64)DF_SOURCE_WINDOW_MAX);
      if (e->length == 0)
        BAD ("empty patch");
      /* The source bytes a patch reads are bounded by what it makes, so a
       * delta cannot make apply read (or, in an archive repository,
       * inflate) megabytes per byte of output. The one exception, the
       * last chunk of a split object, comes once per object, and a split
       * object is at least DF_CHUNK_MIN long. */
      gboolean last_chunk = e->offset > 0 && e->offset + e->length == e->object_size;
      if (e->length < e->src_length / DF_WINDOW_PER_BYTE + (e->src_length % DF_WINDOW_PER_BYTE != 0)
          && !(last_chunk && e->src_length <= DF_SOURCE_WINDOW))
        BAD ("source window of %" G_GUINT64_FORMAT " bytes for %" G_GUINT64_FORMAT " bytes of output",
             e->src_length, e->length);
    }
  else if (e->has_source || e->src_offset != 0 || e->src_length != 0)
    BAD ("raw entry with a source");

  if (kind == DF_PART_KIND_METADATA)
    {
      if (objtype != OSTREE_OBJECT_TYPE_DIR_TREE && objtype != OSTREE_OBJECT_TYPE_DIR_META)
        BAD ("object type %u in a metadata part", objtype);
      if (e->encoding != DF_ENCODING_RAW || e->offset != 0 || e->length != e->object_size || e->data_size != e->length)
        BAD ("metadata entry is not stored whole and raw");
      if (e->object_size > DF_METADATA_OBJECT_MAX)
        BAD ("metadata object of %" G_GUINT64_FORMAT " bytes", e->object_size);
    }
  else
    {
      if (objtype != OSTREE_OBJECT_TYPE_FILE)
        BAD ("object type %u in a content part", objtype);
      /* Content and alternative parts follow the same rules. */
      guint64 end;
      if (!dfi_add_u64 (e->offset, e->length, &end) || end > e->object_size)
        BAD ("bytes %" G_GUINT64_FORMAT "+%" G_GUINT64_FORMAT " lie outside the object's %" G_GUINT64_FORMAT, e->offset,
             e->length, e->object_size);
      if (e->length == 0 && e->object_size != 0)
        BAD ("empty chunk of a non-empty object");
      if (e->length > DF_PART_SIZE_MAX)
        BAD ("chunk of %" G_GUINT64_FORMAT " bytes exceeds %" G_GUINT64_FORMAT, e->length, (guint64)DF_PART_SIZE_MAX);
      /* Every chunk but an object's last is at least DF_CHUNK_MIN: each
       * chunk costs a staged marker and a window, and a million one-byte
       * chunks of one object must not be possible. */
      if (e->offset + e->length < e->object_size && e->length < DF_CHUNK_MIN)
        BAD ("chunk of %" G_GUINT64_FORMAT " bytes at %" G_GUINT64_FORMAT " of a %" G_GUINT64_FORMAT
             "-byte object (chunks but the last are at least %" G_GUINT64_FORMAT ")",
             e->length, e->offset, e->object_size, (guint64)DF_CHUNK_MIN);
      /* A raw chunk carries its bytes verbatim, after the header in the
       * first chunk; the exact header length is checked in the part. */
      if (e->encoding == DF_ENCODING_RAW)
        {
          if (e->offset == 0 ? e->data_size < e->length + 4 : e->data_size != e->length)
            BAD ("raw chunk data size %" G_GUINT64_FORMAT " does not fit length %" G_GUINT64_FORMAT, e->data_size,
                 e->length);
        }
      else if (e->encoding == DF_ENCODING_DIFF)
        {
          /* A diff keeps only the header in the raw section; its exact
           * length is checked in the part. */
          if (e->offset == 0 ? e->data_size < 4 : e->data_size != 0)
            BAD ("diff entry with %" G_GUINT64_FORMAT " raw bytes", e->data_size);
        }
      else if (e->offset == 0 ? e->data_size <= 4 : e->data_size == 0)
        BAD ("zstd-ref entry without its frame");
    }
#undef BAD
  return TRUE;
}

static int
chunk_cmp (const void *a, const void *b)
{
  const DfEntry *x = *(const DfEntry *const *)a, *y = *(const DfEntry *const *)b;
  int c = memcmp (x->checksum, y->checksum, DF_SHA256_LEN);
  if (c != 0)
    return c;
  if (x->objtype != y->objtype)
    return x->objtype < y->objtype ? -1 : 1;
  return x->offset < y->offset ? -1 : x->offset > y->offset ? 1 : 0;
}

/* chunk_cmp() without the offset: the same order, so it searches arrays
 * sorted by chunk_cmp(). */
static int
object_cmp (const void *a, const void *b)
{
  const DfEntry *x = *(const DfEntry *const *)a, *y = *(const DfEntry *const *)b;
  int c = memcmp (x->checksum, y->checksum, DF_SHA256_LEN);
  if (c != 0)
    return c;
  return x->objtype < y->objtype ? -1 : x->objtype > y->objtype;
}

static gboolean
same_object (const DfEntry *x, const DfEntry *y)
{
  return memcmp (x->checksum, y->checksum, DF_SHA256_LEN) == 0 && x->objtype == y->objtype;
}

/* Every object must be produced exactly once: its entries tile
 * [0, object_size) with no gap and no overlap, and agree on its size.
 * @refs (@n, sorted by chunk_cmp) are the entries of one set: the primary
 * encoding (content, metadata and rebuild parts) or the alternatives. */
static gboolean
check_tiling_set (const DfEntry **refs, guint64 n, const char *what, GError **error)
{
  for (guint64 k = 0; k < n;)
    {
      guint64 expect = 0, m = k;
      for (; m < n && same_object (refs[m], refs[k]); m++)
        {
          if (refs[m]->object_size != refs[k]->object_size || refs[m]->offset != expect)
            break;
          expect += refs[m]->length;
          if (refs[m]->length == 0)
            {
              m++;
              break;
            }
        }
      if ((m < n && same_object (refs[m], refs[k])) || expect != refs[k]->object_size)
        {
          char hex[65];
          dfi_hex (refs[k]->checksum, hex);
          return dfi_throw (error, DF_ERROR_INVALID_DELTA,
                            "superblock: the %sentries of %s %s overlap, repeat or leave a gap", what,
                            ostree_object_type_to_string (refs[k]->objtype), hex);
        }
      k = m;
    }
  return TRUE;
}

static gboolean
check_tiling (DfSuperblock *sb, guint64 n_entries, GError **error)
{
  g_autofree const DfEntry **refs = g_new (const DfEntry *, n_entries ? n_entries : 1);
  guint64 n = 0, n_alt = 0;
  for (guint i = 0; i < sb->n_parts; i++)
    if (sb->parts[i].kind != DF_PART_KIND_ALTERNATIVE)
      for (guint j = 0; j < sb->parts[i].n_entries; j++)
        refs[n++] = &sb->parts[i].entries[j];
  qsort (refs, n, sizeof *refs, chunk_cmp);
  if (!check_tiling_set (refs, n, "", error))
    return FALSE;
  /* Alternatives tile among themselves, and only objects that a rebuild
   * part makes have them. */
  const DfEntry **alt = refs + n;
  for (guint i = 0; i < sb->n_parts; i++)
    if (sb->parts[i].kind == DF_PART_KIND_ALTERNATIVE)
      for (guint j = 0; j < sb->parts[i].n_entries; j++)
        alt[n_alt++] = &sb->parts[i].entries[j];
  if (n_alt == 0)
    return TRUE;
  qsort (alt, n_alt, sizeof *alt, chunk_cmp);
  if (!check_tiling_set (alt, n_alt, "alternative ", error))
    return FALSE;
  for (guint64 k = 0; k < n_alt; k++)
    {
      const DfEntry **hit = bsearch (&alt[k], refs, n, sizeof *refs, object_cmp);
      if (hit == NULL || (*hit)->encoding != DF_ENCODING_REBUILD)
        {
          char hex[65];
          dfi_hex (alt[k]->checksum, hex);
          return dfi_throw (error, DF_ERROR_INVALID_DELTA,
                            "superblock: alternative entries for %s, which no rebuild part makes", hex);
        }
    }
  return TRUE;
}

/* A copy of @v's bytes, so the parsed superblock does not keep the whole
 * decompressed body alive through a child of it. */
static GBytes *
copy_bytes (GVariant *v)
{
  return g_bytes_new (g_variant_get_data (v), g_variant_get_size (v));
}

/* Format 3 fields of part @i (whose kind is read): only rebuild parts
 * have dependencies, libraries and memory; dependencies name content
 * parts (which depend on nothing: no cycle), strictly ascending. */
static gboolean
parse_rebuild_fields (DfSuperblock *sb, guint i, GVariant *deps, GVariant *libs, guint64 memory, guint *n_rebuild,
                      GError **error)
{
  DfPart *p = &sb->parts[i];
  gsize n_deps = g_variant_n_children (deps), n_libs = g_variant_n_children (libs);
  if (p->kind != DF_PART_KIND_REBUILD)
    {
      if (n_deps != 0 || n_libs != 0 || memory != 0)
        return dfi_throw (error, DF_ERROR_INVALID_DELTA,
                          "superblock: part %u of kind %u has dependencies, libraries or memory", i, p->kind);
      return TRUE;
    }
  if (++*n_rebuild > DF_REBUILD_PARTS_MAX)
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "superblock: more than %u rebuild parts", DF_REBUILD_PARTS_MAX);
  if (n_deps > DF_REBUILD_DEPS_MAX || n_libs > DF_REBUILD_LIBRARIES_MAX || memory > DF_REBUILD_MEMORY_MAX)
    return dfi_throw (error, DF_ERROR_INVALID_DELTA,
                      "superblock: rebuild part %u declares %zu dependencies, %zu libraries, %" G_GUINT64_FORMAT
                      " bytes of memory (limits %u, %u, %" G_GUINT64_FORMAT ")",
                      i, n_deps, n_libs, memory, DF_REBUILD_DEPS_MAX, DF_REBUILD_LIBRARIES_MAX,
                      (guint64)DF_REBUILD_MEMORY_MAX);
  gsize len;
  const guint32 *d = g_variant_get_fixed_array (deps, &len, sizeof (guint32));
  p->deps = g_new (guint32, n_deps + 1);
  p->n_deps = n_deps;
  for (gsize k = 0; k < n_deps; k++)
    {
      p->deps[k] = GUINT32_FROM_LE (d[k]);
      /* Parts after @i are not parsed yet: their kind is checked in
       * dfi_superblock_check_deps(). */
      if (p->deps[k] >= sb->n_parts || (k > 0 && p->deps[k] <= p->deps[k - 1]))
        return dfi_throw (error, DF_ERROR_INVALID_DELTA,
                          "superblock: rebuild part %u: dependencies out of range or order", i);
    }
  p->libraries = g_new0 (char *, n_libs + 1);
  for (gsize k = 0; k < n_libs; k++)
    {
      const char *lib;
      g_variant_get_child (libs, k, "&s", &lib);
      gsize l = strlen (lib);
      gboolean printable = l > 0 && l < 32;
      for (gsize c = 0; printable && c < l; c++)
        printable = g_ascii_isprint (lib[c]);
      if (!printable)
        return dfi_throw (error, DF_ERROR_INVALID_DELTA, "superblock: rebuild part %u: bad library name", i);
      p->libraries[k] = g_strdup (lib);
    }
  p->rebuild_memory = memory;
  return TRUE;
}

/* Every dependency names a content part. */
static gboolean
check_deps (const DfSuperblock *sb, GError **error)
{
  for (guint i = 0; i < sb->n_parts; i++)
    for (guint k = 0; k < sb->parts[i].n_deps; k++)
      if (sb->parts[sb->parts[i].deps[k]].kind != DF_PART_KIND_CONTENT)
        return dfi_throw (error, DF_ERROR_INVALID_DELTA,
                          "superblock: rebuild part %u depends on part %u, which is not a content part", i,
                          sb->parts[i].deps[k]);
  return TRUE;
}

/* The content all rebuilds read, together, is bounded (their work). */
static gboolean
check_rebuild_total (const DfSuperblock *sb, GError **error)
{
  guint64 total = 0;
  for (guint i = 0; i < sb->n_parts; i++)
    for (guint j = 0; sb->parts[i].kind == DF_PART_KIND_REBUILD && j < sb->parts[i].n_entries; j++)
      if (!dfi_add_u64 (total, sb->parts[i].entries[j].src_length, &total) || total > DF_REBUILD_CONTENT_TOTAL_MAX)
        return dfi_throw (error, DF_ERROR_INVALID_DELTA,
                          "superblock: rebuilds read more than %" G_GUINT64_FORMAT " bytes of content in all",
                          (guint64)DF_REBUILD_CONTENT_TOTAL_MAX);
  return TRUE;
}

static gboolean
over_budget (guint64 need, guint64 memory, GError **error)
{
  if (need <= memory)
    return FALSE;
  dfi_throw (error, DF_ERROR_INVALID_ARGUMENT,
             "the superblock needs %" G_GUINT64_FORMAT
             " MiB to read, more than the memory budget leaves (%" G_GUINT64_FORMAT " MiB)",
             need / DF_MIB + 1, memory / DF_MIB);
  return TRUE;
}

/* The fixed header: magic, format version, reserved field and body length,
 * each checked against what this build reads and the file's size. */
static gboolean
read_header (const guint8 *data, gsize size, guint32 *out_version, guint64 *out_blen, GError **error)
{
  if (size < DF_SUPERBLOCK_HEADER_LEN || memcmp (data, DF_SUPERBLOCK_MAGIC, 8) != 0)
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "superblock: not a deltafetch superblock (bad magic)");
  guint32 version, reserved;
  guint64 blen;
  memcpy (&version, data + 8, 4);
  memcpy (&reserved, data + 12, 4);
  memcpy (&blen, data + 16, 8);
  version = GUINT32_FROM_LE (version);
  reserved = GUINT32_FROM_LE (reserved);
  blen = GUINT64_FROM_LE (blen);
  if (version < DF_FORMAT_VERSION_MIN || version > DF_FORMAT_VERSION)
    return dfi_throw (error, DF_ERROR_INVALID_DELTA,
                      "superblock: format version %u is not supported (this build reads %u to %u)", version,
                      DF_FORMAT_VERSION_MIN, DF_FORMAT_VERSION);
  if (reserved != 0)
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "superblock: reserved header field is %u, not 0", reserved);
  if (size > DF_SUPERBLOCK_MAX || blen == 0 || blen > DF_SUPERBLOCK_BODY_MAX)
    return dfi_throw (error, DF_ERROR_INVALID_DELTA,
                      "superblock: body of %" G_GUINT64_FORMAT " bytes in a %zu-byte file is outside the limits", blen,
                      size);
  *out_version = version;
  *out_blen = blen;
  return TRUE;
}

/* The body after the header of the @size-byte file @data, decompressed
 * (@blen bytes) and read as the body type of its version. */
static GVariant *
read_body (const guint8 *data, gsize size, guint64 blen, gboolean v3, GError **error)
{
  /* The body is one zstd frame declaring exactly blen bytes, decoded into
   * a buffer of that size. */
  const guint8 *frame = data + DF_SUPERBLOCK_HEADER_LEN;
  gsize flen = size - DF_SUPERBLOCK_HEADER_LEN;
  ZSTD_frameHeader fh;
  if (ZSTD_getFrameHeader (&fh, frame, flen) != 0 || fh.frameType != ZSTD_frame || fh.frameContentSize != blen
      || !fh.checksumFlag || fh.windowSize > ((guint64)1 << DF_SUPERBLOCK_WINDOW_LOG_MAX)
      || ZSTD_findFrameCompressedSize (frame, flen) != flen)
    {
      dfi_throw (error, DF_ERROR_INVALID_DELTA,
                 "superblock: body is not one checksummed zstd frame of %" G_GUINT64_FORMAT " bytes filling the file",
                 blen);
      return NULL;
    }
  g_autoptr (ZSTD_DCtx) dctx = ZSTD_createDCtx ();
  ZSTD_DCtx_setParameter (dctx, ZSTD_d_windowLogMax, DF_SUPERBLOCK_WINDOW_LOG_MAX);
  guint8 *plain = dfi_big_alloc (blen);
  size_t r = ZSTD_decompressDCtx (dctx, plain, blen, frame, flen);
  if (ZSTD_isError (r) || r != blen)
    {
      dfi_big_free (plain, blen);
      dfi_throw (error, DF_ERROR_INVALID_DELTA, "superblock: body does not decompress: %s",
                 ZSTD_isError (r) ? ZSTD_getErrorName (r) : "short");
      return NULL;
    }
  g_clear_pointer (&dctx, ZSTD_freeDCtx);
  g_autoptr (GBytes) body_bytes = dfi_big_bytes (plain, blen);
  g_autoptr (GVariant) body = g_variant_ref_sink (g_variant_new_from_bytes (
      G_VARIANT_TYPE (v3 ? DF_SUPERBLOCK_BODY_TYPE_V3 : DF_SUPERBLOCK_BODY_TYPE_V2), body_bytes, FALSE));
  /* Non-normal serializations would let two different files mean the same
   * thing and hide data in padding; refuse them. */
  if (!g_variant_is_normal_form (body))
    {
      dfi_throw (error, DF_ERROR_INVALID_DELTA, "superblock: body is not a normal-form GVariant");
      return NULL;
    }
  return g_steal_pointer (&body);
}

/* What the parsed form takes, counted before it is allocated: sets
 * sb->memory and *@out_entries (entries in all @parts), and checks them
 * against the limits and, with the @held bytes, the @memory budget. */
static gboolean
count_parsed (DfSuperblock *sb, GVariant *parts, GVariant *meta, GVariant *commit, GVariant *commitmeta, guint64 held,
              guint64 memory, guint64 *out_entries, GError **error)
{
  gboolean v3 = sb->version >= 3;
  gsize n_parts = g_variant_n_children (parts);
  if (n_parts > DF_PARTS_MAX)
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "superblock: %zu parts exceed the limit of %u", n_parts,
                      DF_PARTS_MAX);
  guint64 n_entries_total = 0, extra = 0;
  for (gsize i = 0; i < n_parts; i++)
    {
      g_autoptr (GVariant) pv = g_variant_get_child_value (parts, i);
      g_autoptr (GVariant) entries = g_variant_get_child_value (pv, 4);
      n_entries_total += g_variant_n_children (entries);
      if (v3)
        {
          /* Dependencies and library names are kept: count them too
           * (bounded by the body's size, checked in detail below). */
          g_autoptr (GVariant) deps = g_variant_get_child_value (pv, 5);
          g_autoptr (GVariant) libs = g_variant_get_child_value (pv, 6);
          extra += g_variant_get_size (deps) + g_variant_get_size (libs) + 16 * g_variant_n_children (libs);
        }
    }
  if (n_entries_total > DF_ENTRIES_MAX)
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "superblock: %" G_GUINT64_FORMAT " entries exceed the limit of %u",
                      n_entries_total, DF_ENTRIES_MAX);
  sb->memory = sizeof *sb + n_parts * sizeof (DfPart) + n_entries_total * sizeof (DfEntry) + g_variant_get_size (meta)
               + g_variant_get_size (commit) + g_variant_get_size (commitmeta) + extra;
  /* The tiling check sorts a pointer per entry. */
  if (over_budget (held + sb->memory + n_entries_total * sizeof (gpointer), memory, error))
    return FALSE;
  *out_entries = n_entries_total;
  return TRUE;
}

/* The delta's ends, its commit and detached metadata, and the delta's
 * metadata, copied into @sb and checked. */
static gboolean
read_ends (DfSuperblock *sb, GVariant *from, GVariant *to, GVariant *commit, GVariant *meta, GVariant *commitmeta,
           GError **error)
{
  if (!dfi_delta_ends_read (from, to, commit, "superblock", &sb->has_from, sb->from, sb->from_hex, sb->to, sb->to_hex,
                            &sb->commit, error))
    return FALSE;
  g_bytes_unref (sb->commit);
  sb->commit = copy_bytes (commit);
  g_autoptr (GBytes) meta_bytes = copy_bytes (meta);
  sb->metadata = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE ("a{sv}"), meta_bytes, TRUE));
  g_autoptr (GVariant) commitv
      = g_variant_ref_sink (g_variant_new_from_bytes (OSTREE_COMMIT_GVARIANT_FORMAT, sb->commit, FALSE));
  if (!g_variant_is_normal_form (commitv) || !ostree_validate_structureof_commit (commitv, error))
    {
      g_clear_error (error);
      return dfi_throw (error, DF_ERROR_INVALID_DELTA, "superblock: commit %s is not a valid commit object",
                        sb->to_hex);
    }
  sb->commitmeta = copy_bytes (commitmeta);
  if (g_bytes_get_size (sb->commitmeta) > 0)
    {
      g_autoptr (GVariant) mv
          = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE ("a{sv}"), sb->commitmeta, FALSE));
      if (!g_variant_is_normal_form (mv))
        return dfi_throw (error, DF_ERROR_INVALID_DELTA, "superblock: detached commit metadata is malformed");
    }
  return TRUE;
}

/* The entries of part @i (@p, its kind read) from @entries: at least one,
 * each valid, their raw bytes within the part's payload. */
static gboolean
parse_part_entries (DfPart *p, guint i, GVariant *entries, GError **error)
{
  gsize n = g_variant_n_children (entries);
  if (n == 0)
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "superblock: part %u has no entries", i);
  p->entries = g_new0 (DfEntry, n);
  p->n_entries = n;
  guint64 sum = 0;
  for (guint j = 0; j < n; j++)
    {
      g_autoptr (GVariant) ev = g_variant_get_child_value (entries, j);
      if (!parse_entry (ev, i, j, p->kind, &p->entries[j], error))
        return FALSE;
      if (!dfi_add_u64 (sum, p->entries[j].data_size, &sum))
        sum = G_MAXUINT64;
    }
  if (p->uncompressed_size < DF_PART_TABLE_LEN || sum > p->uncompressed_size - DF_PART_TABLE_LEN)
    return dfi_throw (error, DF_ERROR_INVALID_DELTA,
                      "superblock: part %u entries hold %" G_GUINT64_FORMAT
                      " raw bytes, more than the part's %" G_GUINT64_FORMAT,
                      i, sum, p->uncompressed_size);
  p->raw_size = sum;
  return TRUE;
}

/* Part @i of @sb from @pv. @n_rebuild_parts and @metadata_total carry
 * counts from part to part. */
static gboolean
parse_part (DfSuperblock *sb, guint i, GVariant *pv, guint *n_rebuild_parts, guint64 *metadata_total, GError **error)
{
  gboolean v3 = sb->version >= 3;
  DfPart *p = &sb->parts[i];
  g_autoptr (GVariant) sha = NULL, entries = NULL;
  guint64 csize, usize;
  g_autoptr (GVariant) deps = NULL, libs = NULL;
  guint64 rmem = 0;
  if (v3)
    g_variant_get (pv, "(@aytty@a" DF_ENTRY_TYPE "@au@ast)", &sha, &csize, &usize, &p->kind, &entries, &deps, &libs,
                   &rmem);
  else
    g_variant_get (pv, "(@aytty@a" DF_ENTRY_TYPE ")", &sha, &csize, &usize, &p->kind, &entries);
  p->compressed_size = GUINT64_FROM_LE (csize);
  p->uncompressed_size = GUINT64_FROM_LE (usize);
  if (!dfi_checksum_from_variant (sha, FALSE, p->sha256, NULL, "superblock: part SHA-256", error))
    return (g_prefix_error (error, "part %u: ", i), FALSE);
  if (p->kind > (v3 ? DF_PART_KIND_LAST : DF_PART_KIND_METADATA))
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "superblock: part %u has unknown kind %u", i, p->kind);
  if (v3 && !parse_rebuild_fields (sb, i, deps, libs, GUINT64_FROM_LE (rmem), n_rebuild_parts, error))
    return FALSE;
  if (p->uncompressed_size == 0 || p->uncompressed_size > DF_PART_SIZE_MAX || p->compressed_size == 0
      || p->compressed_size > ZSTD_compressBound (p->uncompressed_size))
    return dfi_throw (error, DF_ERROR_INVALID_DELTA,
                      "superblock: part %u declares %" G_GUINT64_FORMAT " bytes compressed, %" G_GUINT64_FORMAT
                      " uncompressed, outside the limits",
                      i, p->compressed_size, p->uncompressed_size);
  if (!parse_part_entries (p, i, entries, error))
    return FALSE;
  if (p->kind == DF_PART_KIND_METADATA)
    {
      *metadata_total += p->uncompressed_size;
      if (*metadata_total > DF_METADATA_TOTAL_MAX)
        return dfi_throw (error, DF_ERROR_INVALID_DELTA,
                          "superblock: metadata parts exceed %" G_GUINT64_FORMAT " bytes",
                          (guint64)DF_METADATA_TOTAL_MAX);
    }
  return TRUE;
}

static DfSuperblock *
parse_plain (GBytes *bytes, guint64 memory, GError **error)
{
  gsize size = 0;
  const guint8 *data = g_bytes_get_data (bytes, &size);
  guint32 version = 0;
  guint64 blen = 0;
  if (!read_header (data, size, &version, &blen, error))
    return NULL;
  gboolean v3 = version >= 3;
  /* The file (held by the caller) and the body are in memory at once, then
   * the parsed form beside them. */
  guint64 held = size + blen;
  if (over_budget (held, memory, error))
    return NULL;
  g_autoptr (GVariant) body = read_body (data, size, blen, v3, error);
  if (body == NULL)
    return NULL;

  g_autoptr (DfSuperblock) sb = dfi_superblock_new ();
  sb->version = version;
  g_autoptr (GVariant) meta = NULL, from = NULL, to = NULL, commit = NULL, commitmeta = NULL, parts = NULL;
  g_variant_get (body, "(@a{sv}@ay@ay@ay@ay*)", &meta, &from, &to, &commit, &commitmeta, &parts);
  guint64 n_entries_total = 0;
  if (!count_parsed (sb, parts, meta, commit, commitmeta, held, memory, &n_entries_total, error))
    return NULL;
  if (!read_ends (sb, from, to, commit, meta, commitmeta, error))
    return NULL;

  gsize n_parts = g_variant_n_children (parts);
  sb->parts = g_new0 (DfPart, n_parts);
  sb->n_parts = n_parts;
  guint64 metadata_total = 0;
  guint n_rebuild_parts = 0;
  for (guint i = 0; i < n_parts; i++)
    {
      g_autoptr (GVariant) pv = g_variant_get_child_value (parts, i);
      if (!parse_part (sb, i, pv, &n_rebuild_parts, &metadata_total, error))
        return NULL;
    }
  if (!check_deps (sb, error) || !check_rebuild_total (sb, error) || !check_tiling (sb, n_entries_total, error))
    return NULL;
  return g_steal_pointer (&sb);
}

DfSuperblock *
dfi_superblock_parse_full (GBytes *file, const DfSignaturePolicy *policy, guint64 memory, GError **error)
{
  return dfi_signed_file_parse (file, (DfPlainParser)parse_plain, G_STRUCT_OFFSET (DfSuperblock, file), policy, memory,
                                error);
}

DfSuperblock *
dfi_superblock_parse (GBytes *file, GError **error)
{
  return dfi_superblock_parse_full (file, NULL, G_MAXUINT64, error);
}

DfSuperblock *
dfi_superblock_load (int dfd, const char *dir, GError **error)
{
  g_autofree char *path = g_build_filename (dir, "superblock", NULL);
  g_autoptr (GBytes) bytes = dfi_read_file_bounded (dfd, path, DF_SUPERBLOCK_MAX, G_MAXUINT64, "superblock", error);
  if (bytes == NULL)
    return NULL;
  return dfi_superblock_parse (bytes, error);
}
