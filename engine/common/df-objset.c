#include "df-objset.h"

#include <sys/random.h>

/* The Mersenne prime 2^61 - 1 and arithmetic modulo it in 64-bit
 * integers alone (32-bit targets have no 128-bit product). */
#define P61 ((G_GUINT64_CONSTANT (1) << 61) - 1)

static guint64
fold61 (guint64 x)
{
  guint64 r = (x & P61) + (x >> 61);
  return r >= P61 ? r - P61 : r;
}

/* a * b mod P61, for a, b < P61. */
static guint64
mul61 (guint64 a, guint64 b)
{
  guint64 a0 = a & 0xffffffff, a1 = a >> 32, b0 = b & 0xffffffff, b1 = b >> 32;
  guint64 lo = a0 * b0, mid = a1 * b0 + a0 * b1, hi = a1 * b1;
  /* 2^64 = 8 and 2^61 = 1 (mod P61). */
  guint64 s = (hi << 3) + (mid >> 29) + ((mid & ((1u << 29) - 1)) << 32) + (lo & P61) + (lo >> 61);
  return fold61 (s);
}

static guint64
hash_key (void)
{
  static gsize key = 0;
  if (g_once_init_enter (&key))
    {
      guint64 r = 0;
      if (getrandom (&r, sizeof r, 0) != sizeof r)
        r = ((guint64)g_random_int () << 32) | g_random_int ();
      g_once_init_leave (&key, (gsize)(r % (P61 - 1)) + 1);
    }
  return key;
}

guint64
dfi_keyed_hash (const void *data, gsize len)
{
  /* Horner's rule: each 32-bit word plus one (so leading zero words
   * count), then the length. Two different inputs of n words give
   * different polynomials of degree at most n + 1, which agree on at most
   * n + 1 of the P61 points the key is drawn from. */
  guint64 k = hash_key (), h = 0;
  const guint8 *p = data;
  gsize i = 0;
  for (; i + 4 <= len; i += 4)
    {
      guint32 w;
      memcpy (&w, p + i, 4);
      h = mul61 (fold61 (h + GUINT32_FROM_LE (w) + 1), k);
    }
  if (i < len)
    {
      guint32 w = 0;
      memcpy (&w, p + i, len - i);
      h = mul61 (fold61 (h + GUINT32_FROM_LE (w) + 1), k);
    }
  return mul61 (fold61 (h + len), k);
}

guint
dfi_keyed_str_hash (gconstpointer key)
{
  guint64 h = dfi_keyed_hash (key, strlen (key));
  return (guint)(h ^ (h >> 32));
}

struct _DfObjSet
{
  GHashTable *table; /* key in @keys → value */
  GStringChunk *keys;
  GDestroyNotify value_free;
};

guint
dfi_objset_key_hash (gconstpointer key)
{
  guint64 h = dfi_keyed_hash (key, DF_OBJSET_KEY_LEN);
  return (guint)(h ^ (h >> 32));
}

gboolean
dfi_objset_key_equal (gconstpointer a, gconstpointer b)
{
  return memcmp (a, b, DF_OBJSET_KEY_LEN) == 0;
}

DfObjSet *
dfi_objset_new (GDestroyNotify value_free)
{
  DfObjSet *s = g_new0 (DfObjSet, 1);
  s->value_free = value_free;
  s->table = g_hash_table_new_full (dfi_objset_key_hash, dfi_objset_key_equal, NULL, value_free);
  s->keys = g_string_chunk_new (64 * 1024);
  return s;
}

void
dfi_objset_free (DfObjSet *s)
{
  if (s == NULL)
    return;
  g_hash_table_unref (s->table);
  g_string_chunk_free (s->keys);
  g_free (s);
}

static void
key_fill (guint8 key[DF_OBJSET_KEY_LEN], OstreeObjectType type, const guint8 csum[DF_SHA256_LEN])
{
  key[0] = (guint8)type;
  memcpy (key + 1, csum, DF_SHA256_LEN);
}

gboolean
dfi_objset_add (DfObjSet *s, OstreeObjectType type, const guint8 csum[DF_SHA256_LEN], gpointer value)
{
  guint8 key[DF_OBJSET_KEY_LEN];
  key_fill (key, type, csum);
  gpointer stored;
  if (g_hash_table_lookup_extended (s->table, key, &stored, NULL))
    {
      g_hash_table_insert (s->table, stored, value);
      return FALSE;
    }
  /* The chunk copies the bytes and ends them with a NUL nobody reads. */
  stored = g_string_chunk_insert_len (s->keys, (const char *)key, DF_OBJSET_KEY_LEN);
  g_hash_table_insert (s->table, stored, value);
  return TRUE;
}

gboolean
dfi_objset_contains_key (const DfObjSet *s, const guint8 key[DF_OBJSET_KEY_LEN])
{
  return g_hash_table_contains (s->table, key);
}

gboolean
dfi_objset_contains (const DfObjSet *s, OstreeObjectType type, const guint8 csum[DF_SHA256_LEN])
{
  guint8 key[DF_OBJSET_KEY_LEN];
  key_fill (key, type, csum);
  return g_hash_table_contains (s->table, key);
}

gpointer
dfi_objset_lookup (const DfObjSet *s, OstreeObjectType type, const guint8 csum[DF_SHA256_LEN])
{
  guint8 key[DF_OBJSET_KEY_LEN];
  key_fill (key, type, csum);
  return g_hash_table_lookup (s->table, key);
}

guint
dfi_objset_size (const DfObjSet *s)
{
  return g_hash_table_size (s->table);
}

guint64
dfi_objset_memory (const DfObjSet *s)
{
  return (guint64)g_hash_table_size (s->table) * DF_OBJSET_ENTRY_COST;
}

void
dfi_objset_clear (DfObjSet *s)
{
  g_hash_table_remove_all (s->table);
  g_string_chunk_clear (s->keys);
}

void
dfi_objset_iter_init (DfObjSetIter *it, const DfObjSet *s)
{
  g_hash_table_iter_init (it, s->table);
}

gboolean
dfi_objset_iter_next (DfObjSetIter *it, const guint8 **key, gpointer *value)
{
  gpointer k;
  if (!g_hash_table_iter_next (it, &k, value))
    return FALSE;
  *key = k;
  return TRUE;
}
