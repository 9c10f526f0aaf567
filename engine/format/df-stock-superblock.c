/* Parsing and validating stock delta superblocks (see
 * df-stock-superblock.h). */
#include "df-stock-superblock.h"

#include "df-superblock.h"

#define STOCK_SUPERBLOCK_TYPE "(a{sv}tayay(a{sv}aya(say)sstayay)aya(uayttay)a(yaytt))"

void
dfi_stock_superblock_free (DfStockSuperblock *sb)
{
  if (sb == NULL)
    return;
  for (guint i = 0; i < sb->n_parts; i++)
    {
      g_free (sb->parts[i].objects);
      g_clear_pointer (&sb->parts[i].inline_data, g_bytes_unref);
    }
  g_free (sb->parts);
  g_free (sb->fallbacks);
  g_clear_pointer (&sb->commit, g_bytes_unref);
  g_clear_pointer (&sb->commitmeta, g_variant_unref);
  g_free (sb);
}

gboolean
dfi_stock_superblock_sniff (GBytes *file)
{
  /* In the signed envelope (taya{sv}) the signed bytes start right after
   * the 8-byte magic; nothing needs parsing to look at them. */
  gsize n;
  const guint8 *d = g_bytes_get_data (file, &n);
  gsize at = n >= 8 && memcmp (d, DF_SIGNED_MAGIC, 8) == 0 ? 8 : 0;
  return n < at + 8 || memcmp (d + at, DF_SUPERBLOCK_MAGIC, 8) != 0;
}

char *
dfi_stock_delta_relpath (const char *from, const char *to)
{
  guint8 t[DF_SHA256_LEN];
  ostree_checksum_inplace_to_bytes (to, t);
  g_autofree char *tb = ostree_checksum_b64_from_bytes (t);
  if (from == NULL)
    return g_strdup_printf ("deltas/%.2s/%s", tb, tb + 2);
  guint8 f[DF_SHA256_LEN];
  ostree_checksum_inplace_to_bytes (from, f);
  g_autofree char *fb = ostree_checksum_b64_from_bytes (f);
  return g_strdup_printf ("deltas/%.2s/%s-%s", fb, fb + 2, tb);
}

/* ostree writes part and fallback sizes in the generating host's order and
 * says which in "ostree.endianness"; older deltas lack the key and are
 * judged by whether the sizes make sense (as libostree does). */
static gboolean
stock_endianness (GVariant *meta, GVariant *headers, gboolean *big, gboolean *guessed, GError **error)
{
  guint8 e;
  *guessed = FALSE;
  if (g_variant_lookup (meta, "ostree.endianness", "y", &e))
    {
      if (e != 'l' && e != 'B')
        return dfi_throw (error, DF_ERROR_INVALID_DELTA, "stock superblock: unknown endianness '%c'", e);
      *big = e == 'B';
      return TRUE;
    }
  *guessed = TRUE;
  /* Read as little-endian; swap if that looks absurd. */
  gsize n = g_variant_n_children (headers);
  guint64 total = 0, objects = 0;
  gboolean swapped = FALSE;
  for (gsize i = 0; i < n && !swapped; i++)
    {
      guint64 size, usize;
      g_autoptr (GVariant) objs = NULL;
      g_variant_get_child (headers, i, "(u@aytt@ay)", NULL, NULL, &size, &usize, &objs);
      size = GUINT64_FROM_LE (size);
      usize = GUINT64_FROM_LE (usize);
      objects += g_variant_n_children (objs) / DF_STOCK_OBJREC_LEN;
      total += size;
      if (size > usize && (double)size / (double)usize > 1.2)
        swapped = TRUE;
    }
  if (!swapped && objects > 0 && total / objects > G_MAXUINT32)
    swapped = TRUE;
  *big = swapped;
  return TRUE;
}

static guint64
sized (gboolean big, guint64 v)
{
  return big ? GUINT64_FROM_BE (v) : GUINT64_FROM_LE (v);
}

/* A copy of @v that does not keep the superblock file alive. */
static GVariant *
copy_variant (GVariant *v)
{
  g_autoptr (GBytes) b = g_bytes_new (g_variant_get_data (v), g_variant_get_size (v));
  return g_variant_ref_sink (g_variant_new_from_bytes (g_variant_get_type (v), b, TRUE));
}

static DfStockSuperblock *
parse_plain (GBytes *bytes, guint64 memory, GError **error)
{
#define BAD(...) return (dfi_throw (error, DF_ERROR_INVALID_DELTA, "stock superblock: " __VA_ARGS__), NULL)
  if (g_bytes_get_size (bytes) > DF_STOCK_SUPERBLOCK_MAX)
    BAD ("%zu bytes is over the limit", g_bytes_get_size (bytes));
  g_autoptr (GVariant) v
      = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE (STOCK_SUPERBLOCK_TYPE), bytes, FALSE));
  /* GVariant serializes in normal form; anything else is not from ostree. */
  if (!g_variant_is_normal_form (v))
    BAD ("not a normal-form GVariant of the stock type");
  g_autoptr (GVariant) meta = NULL, from = NULL, to = NULL, commit = NULL, deps = NULL, headers = NULL,
                       fallbacks = NULL;
  guint64 ts;
  g_variant_get (v, "(@a{sv}t@ay@ay@(a{sv}aya(say)sstayay)@ay@a(uayttay)@a(yaytt))", &meta, &ts, &from, &to, &commit,
                 &deps, &headers, &fallbacks);
  g_autoptr (DfStockSuperblock) sb = g_new0 (DfStockSuperblock, 1);
  sb->timestamp = GUINT64_FROM_BE (ts);
  if (!dfi_delta_ends_read (from, to, commit, "stock superblock", &sb->has_from, sb->from, sb->from_hex, sb->to,
                            sb->to_hex, &sb->commit, error))
    return NULL;
  g_bytes_unref (sb->commit);
  sb->commit = g_bytes_new (g_variant_get_data (commit), g_variant_get_size (commit));

  /* What the parsed form takes, counted before it is allocated; the file
   * is held by the caller meanwhile. */
  gsize n_parts = g_variant_n_children (headers), n_fb = g_variant_n_children (fallbacks);
  if (n_parts > DF_PARTS_MAX)
    BAD ("%zu parts exceed the limit of %u", n_parts, DF_PARTS_MAX);
  if (n_fb > DF_ENTRIES_MAX)
    BAD ("%zu fallback objects", n_fb);
  guint64 n_records = 0;
  for (gsize i = 0; i < n_parts; i++)
    {
      g_autoptr (GVariant) hv = g_variant_get_child_value (headers, i);
      g_autoptr (GVariant) objs = g_variant_get_child_value (hv, 4);
      n_records += g_variant_n_children (objs) / DF_STOCK_OBJREC_LEN;
    }
  if (n_records > DF_ENTRIES_MAX)
    BAD ("more than %u objects", DF_ENTRIES_MAX);
  sb->memory = sizeof *sb + n_parts * sizeof (DfStockPart) + n_records * DF_STOCK_OBJREC_LEN
               + n_fb * sizeof (DfStockFallback) + g_variant_get_size (commit);
  if (g_bytes_get_size (bytes) + sb->memory > memory)
    {
      dfi_throw (error, DF_ERROR_INVALID_ARGUMENT,
                 "the stock superblock needs %" G_GUINT64_FORMAT
                 " MiB to read, more than the memory budget leaves (%" G_GUINT64_FORMAT " MiB)",
                 (g_bytes_get_size (bytes) + sb->memory) / DF_MIB + 1, memory / DF_MIB);
      return NULL;
    }
  g_autoptr (GError) local = NULL;
  if (!ostree_validate_structureof_commit (commit, &local))
    BAD ("commit %s is not a valid commit object", sb->to_hex);
  if (g_variant_n_children (deps) != 0)
    BAD ("dependencies on other deltas are not supported");
  if (!stock_endianness (meta, headers, &sb->big_endian, &sb->endianness_guessed, error))
    return NULL;

  g_autofree char *rel = dfi_stock_delta_relpath (sb->has_from ? sb->from_hex : NULL, sb->to_hex);
  g_autofree char *cm_key = g_strconcat (rel, "/commitmeta", NULL);
  g_autoptr (GVariant) commitmeta = g_variant_lookup_value (meta, cm_key, G_VARIANT_TYPE ("a{sv}"));
  if (commitmeta)
    {
      sb->commitmeta = copy_variant (commitmeta);
      sb->memory += g_variant_get_size (commitmeta);
    }

  sb->parts = g_new0 (DfStockPart, n_parts);
  sb->n_parts = n_parts;
  for (guint i = 0; i < n_parts; i++)
    {
      DfStockPart *p = &sb->parts[i];
      guint32 version;
      guint64 size, usize;
      g_autoptr (GVariant) sha = NULL, objs = NULL;
      g_variant_get_child (headers, i, "(u@aytt@ay)", &version, &sha, &size, &usize, &objs);
      version = sb->big_endian ? GUINT32_FROM_BE (version) : GUINT32_FROM_LE (version);
      if (version != 0)
        BAD ("part %u has version %u (only 0 exists)", i, version);
      if (!dfi_checksum_from_variant (sha, FALSE, p->sha256, NULL, "stock superblock: part checksum", error))
        return NULL;
      p->size = sized (sb->big_endian, size);
      p->usize = sized (sb->big_endian, usize);
      /* A part file holds at least its compression byte: an empty one
       * would make an empty byte range to fetch. */
      if (p->size == 0)
        BAD ("part %u declares 0 bytes", i);
      if (p->size > DF_STOCK_FILE_MAX || p->usize > DF_STOCK_FILE_MAX)
        BAD ("part %u declares %" G_GUINT64_FORMAT " bytes, %" G_GUINT64_FORMAT " unpacked (limit %" G_GUINT64_FORMAT
             ")",
             i, p->size, p->usize, DF_STOCK_FILE_MAX);
      gsize olen = g_variant_n_children (objs);
      if (olen % DF_STOCK_OBJREC_LEN != 0)
        BAD ("part %u: object list of %zu bytes", i, olen);
      p->n_objects = olen / DF_STOCK_OBJREC_LEN;
      sb->n_objects += p->n_objects;
      if (sb->n_objects > DF_ENTRIES_MAX)
        BAD ("more than %u objects", DF_ENTRIES_MAX);
      p->objects = g_memdup2 (g_variant_get_data (objs), olen);
      for (guint j = 0; j < p->n_objects; j++)
        {
          guint8 t = p->objects[j * DF_STOCK_OBJREC_LEN];
          if (t != OSTREE_OBJECT_TYPE_FILE && t != OSTREE_OBJECT_TYPE_DIR_TREE && t != OSTREE_OBJECT_TYPE_DIR_META)
            BAD ("part %u object %u has type %u", i, j, t);
        }
      g_autofree char *key = g_strdup_printf ("%s/%u", rel, i);
      g_autoptr (GVariant) inl = g_variant_lookup_value (meta, key, G_VARIANT_TYPE ("(yay)"));
      if (inl)
        {
          /* Inline parts keep the file alive: count it once. */
          if (!sb->inline_parts)
            sb->memory += g_bytes_get_size (bytes);
          sb->inline_parts = TRUE;
          p->inline_data = g_variant_get_data_as_bytes (inl);
        }
    }
  sb->fallbacks = g_new0 (DfStockFallback, MAX (n_fb, 1));
  sb->n_fallbacks = n_fb;
  for (guint i = 0; i < n_fb; i++)
    {
      DfStockFallback *f = &sb->fallbacks[i];
      g_autoptr (GVariant) csum = NULL;
      guint64 size, usize;
      g_variant_get_child (fallbacks, i, "(y@aytt)", &f->objtype, &csum, &size, &usize);
      if (!dfi_checksum_from_variant (csum, FALSE, f->checksum, NULL, "stock superblock: fallback checksum", error))
        return NULL;
      if (f->objtype != OSTREE_OBJECT_TYPE_FILE && f->objtype != OSTREE_OBJECT_TYPE_DIR_TREE
          && f->objtype != OSTREE_OBJECT_TYPE_DIR_META)
        BAD ("fallback %u has type %u", i, f->objtype);
      f->size = sized (sb->big_endian, size);
      f->usize = sized (sb->big_endian, usize);
      if (f->size > DF_STOCK_FILE_MAX || f->usize > DF_STOCK_FILE_MAX)
        BAD ("fallback %u declares %" G_GUINT64_FORMAT " bytes, %" G_GUINT64_FORMAT
             " unpacked (limit %" G_GUINT64_FORMAT ")",
             i, f->size, f->usize, DF_STOCK_FILE_MAX);
    }
  return g_steal_pointer (&sb);
#undef BAD
}

DfStockSuperblock *
dfi_stock_superblock_parse_full (GBytes *file, const DfSignaturePolicy *policy, guint64 memory, GError **error)
{
  return dfi_signed_file_parse (file, (DfPlainParser)parse_plain, G_STRUCT_OFFSET (DfStockSuperblock, file), policy,
                                memory, error);
}

DfStockSuperblock *
dfi_stock_superblock_parse (GBytes *file, GError **error)
{
  return dfi_stock_superblock_parse_full (file, NULL, G_MAXUINT64, error);
}
