/* The keyed object sets (engine/common/df-objset.c) under keys the input
 * chooses, checked operation by operation against a reference (a GTree,
 * ordered by the key bytes): what add() returns, lookups, the size and
 * memory, iteration, clearing, and that every value the set was given is
 * freed exactly once. A hash the input could steer makes the bulk seeds
 * (16,384 keys sharing a 28-byte prefix) time out.
 *
 * Input: operations on a current key K (type byte, 32-byte checksum; all
 * zero at the start), each one byte, op & 7 the kind and op >> 3 an
 * argument A (0..31):
 *   0 set     K's checksum byte A to the next input byte
 *   1 type    K's type byte to A
 *   2 add     K, with a new value
 *   3 lookup  K (contains, contains_key, lookup)
 *   4 bulk    N (next 2 bytes, little-endian) adds of K with a counter
 *             0..N-1 written big-endian over checksum bytes
 *             MIN (A, 28)..+3; K keeps the last
 *   5 iterate and compare with the reference
 *   6 clear
 *   7 hash    dfi_keyed_hash() of the next A bytes, twice: the same value;
 *             equal keys hash alike through dfi_objset_key_hash()
 * At most FUZZ_OBJSET_MAX_ADDS adds and FUZZ_OBJSET_MAX_CHECKS iterations
 * per input (the rest are ignored), so that an input's work stays bounded
 * and a timeout means the set's own work. */
#include "df-objset.h"
#include "fuzz.h"

#define L DF_OBJSET_KEY_LEN
#define FUZZ_OBJSET_MAX_ADDS 16384
#define FUZZ_OBJSET_MAX_CHECKS 8

static guint64 n_freed;

static void
value_free (gpointer v)
{
  g_assert_nonnull (v);
  n_freed++;
}

static int
tree_cmp (gconstpointer a, gconstpointer b, gpointer unused)
{
  return memcmp (a, b, L);
}

typedef struct
{
  DfObjSet *set;
  GTree *ref;     /* key (L bytes, owned) → value */
  guint64 serial; /* values handed out: 1, 2, … */
  guint adds, checks;
} State;

static void
add (State *st, const guint8 key[L])
{
  if (st->adds >= FUZZ_OBJSET_MAX_ADDS)
    return;
  st->adds++;
  gpointer value = GSIZE_TO_POINTER (++st->serial);
  gboolean is_new = dfi_objset_add (st->set, key[0], key + 1, value);
  gint before = g_tree_nnodes (st->ref);
  g_tree_replace (st->ref, g_memdup2 (key, L), value);
  g_assert_true (is_new == (g_tree_nnodes (st->ref) > before));
}

static void
lookup (State *st, const guint8 key[L])
{
  gpointer want = g_tree_lookup (st->ref, key);
  g_assert_true (dfi_objset_lookup (st->set, key[0], key + 1) == want);
  g_assert_true (dfi_objset_contains (st->set, key[0], key + 1) == (want != NULL));
  g_assert_true (dfi_objset_contains_key (st->set, key) == (want != NULL));
}

static void
check_all (State *st)
{
  guint n = (guint)g_tree_nnodes (st->ref);
  g_assert_cmpuint (dfi_objset_size (st->set), ==, n);
  g_assert_cmpuint (dfi_objset_memory (st->set), ==, (guint64)n * DF_OBJSET_ENTRY_COST);
  /* Each key once: values are unique, so a key seen twice shows as its
   * value seen twice. */
  g_autofree guint8 *seen = g_malloc0 (st->serial + 1);
  DfObjSetIter it;
  const guint8 *key;
  gpointer value;
  guint visited = 0;
  dfi_objset_iter_init (&it, st->set);
  while (dfi_objset_iter_next (&it, &key, &value))
    {
      g_assert_true (g_tree_lookup (st->ref, key) == value);
      gsize serial = GPOINTER_TO_SIZE (value);
      g_assert_false (seen[serial]);
      seen[serial] = 1;
      visited++;
    }
  g_assert_cmpuint (visited, ==, n);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  n_freed = 0;
  State st = { .set = dfi_objset_new (value_free), .ref = g_tree_new_full (tree_cmp, NULL, g_free, NULL) };
  guint8 k[L] = { 0 };
  for (gsize i = 0; i < size;)
    {
      guint8 op = data[i++], a = op >> 3;
      switch (op & 7)
        {
        case 0:
          if (i < size)
            k[1 + a] = data[i++];
          break;
        case 1:
          k[0] = a;
          break;
        case 2:
          add (&st, k);
          break;
        case 3:
          lookup (&st, k);
          break;
        case 4:
          {
            if (size - i < 2)
              {
                i = size;
                break;
              }
            guint n = data[i] | (guint)data[i + 1] << 8, at = 1 + MIN (a, DF_SHA256_LEN - 4);
            i += 2;
            for (guint c = 0; c < n && st.adds < FUZZ_OBJSET_MAX_ADDS; c++)
              {
                guint32 be = GUINT32_TO_BE (c);
                memcpy (k + at, &be, 4);
                add (&st, k);
              }
            break;
          }
        case 5:
          if (st.checks++ < FUZZ_OBJSET_MAX_CHECKS)
            check_all (&st);
          break;
        case 6:
          dfi_objset_clear (st.set);
          g_tree_destroy (st.ref);
          st.ref = g_tree_new_full (tree_cmp, NULL, g_free, NULL);
          g_assert_cmpuint (dfi_objset_size (st.set), ==, 0);
          break;
        case 7:
          {
            gsize len = MIN ((gsize)a, size - i);
            g_assert_true (dfi_keyed_hash (data + i, len) == dfi_keyed_hash (data + i, len));
            guint8 copy[L];
            memcpy (copy, k, L);
            g_assert_true (dfi_objset_key_hash (copy) == dfi_objset_key_hash (k));
            g_assert_true (dfi_objset_key_equal (copy, k));
            i += len;
            break;
          }
        }
    }
  check_all (&st);
  dfi_objset_free (st.set);
  g_tree_destroy (st.ref);
  /* Replaced, cleared or freed with the set: every value once. */
  g_assert_cmpuint (n_freed, ==, st.serial);
  return 0;
}
