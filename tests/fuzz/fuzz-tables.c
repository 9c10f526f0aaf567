#include "fuzz-tables.h"

#define L DF_OBJSET_KEY_LEN

/* A stock part's object records are keys as they are. */
G_STATIC_ASSERT (DF_STOCK_OBJREC_LEN == DF_OBJSET_KEY_LEN);

static int
key_cmp (const void *a, const void *b)
{
  return memcmp (a, b, L);
}

void
fuzz_key_append (GByteArray *keys, guint8 type, const guint8 csum[DF_SHA256_LEN])
{
  g_byte_array_append (keys, &type, 1);
  g_byte_array_append (keys, csum, DF_SHA256_LEN);
}

void
fuzz_check_object_set (const guint8 *keys, gsize n)
{
  g_autoptr (DfObjSet) set = dfi_objset_new (NULL);
  gsize added = 0;
  for (gsize i = 0; i < n; i++)
    added += dfi_objset_add (set, keys[i * L], keys + i * L + 1, NULL);

  if (n == 0)
    {
      g_assert_cmpuint (dfi_objset_size (set), ==, 0);
      return;
    }
  /* The reference: the keys sorted, repeats dropped. */
  g_autofree guint8 *ref = g_memdup2 (keys, n * L);
  qsort (ref, n, L, key_cmp);
  gsize distinct = 0;
  for (gsize i = 0; i < n; i++)
    if (distinct == 0 || memcmp (ref + i * L, ref + (distinct - 1) * L, L) != 0)
      memmove (ref + distinct++ * L, ref + i * L, L);

  g_assert_cmpuint (added, ==, distinct);
  g_assert_cmpuint (dfi_objset_size (set), ==, distinct);
  g_assert_cmpuint (dfi_objset_memory (set), ==, (guint64)distinct * DF_OBJSET_ENTRY_COST);
  for (gsize i = 0; i < n; i++)
    {
      const guint8 *k = keys + i * L;
      g_assert_true (dfi_objset_contains_key (set, k));
      g_assert_true (dfi_objset_contains (set, k[0], k + 1));
      /* A neighbour differing in the last byte is there only if it was
       * added too. */
      guint8 other[L];
      memcpy (other, k, L);
      other[L - 1] ^= 0x5a;
      gboolean expect = bsearch (other, ref, distinct, L, key_cmp) != NULL;
      g_assert_true (dfi_objset_contains_key (set, other) == expect);
    }
  g_autofree guint8 *seen = g_malloc0 (distinct);
  gsize visited = 0;
  DfObjSetIter it;
  const guint8 *key;
  gpointer value;
  dfi_objset_iter_init (&it, set);
  while (dfi_objset_iter_next (&it, &key, &value))
    {
      const guint8 *at = bsearch (key, ref, distinct, L, key_cmp);
      g_assert_nonnull (at);
      gsize idx = (gsize)(at - ref) / L;
      g_assert_false (seen[idx]);
      g_assert_null (value);
      seen[idx] = 1;
      visited++;
    }
  g_assert_cmpuint (visited, ==, distinct);
}

void
fuzz_check_superblock_tables (const DfSuperblock *sb)
{
  g_autoptr (GByteArray) objects = g_byte_array_new (), sources = g_byte_array_new ();
  for (guint i = 0; i < sb->n_parts; i++)
    for (guint j = 0; j < sb->parts[i].n_entries; j++)
      {
        const DfEntry *e = &sb->parts[i].entries[j];
        fuzz_key_append (objects, e->objtype, e->checksum);
        if (e->has_source)
          fuzz_key_append (sources, OSTREE_OBJECT_TYPE_FILE, e->source);
      }
  fuzz_check_object_set (objects->data, objects->len / L);
  fuzz_check_object_set (sources->data, sources->len / L);
}

void
fuzz_check_stock_superblock_tables (const DfStockSuperblock *sb)
{
  g_autoptr (GByteArray) objects = g_byte_array_new (), fallbacks = g_byte_array_new ();
  for (guint i = 0; i < sb->n_parts; i++)
    g_byte_array_append (objects, sb->parts[i].objects, sb->parts[i].n_objects * DF_STOCK_OBJREC_LEN);
  for (guint i = 0; i < sb->n_fallbacks; i++)
    fuzz_key_append (fallbacks, sb->fallbacks[i].objtype, sb->fallbacks[i].checksum);
  fuzz_check_object_set (objects->data, objects->len / L);
  fuzz_check_object_set (fallbacks->data, fallbacks->len / L);
}
