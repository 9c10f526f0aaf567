/* Sets and maps of OSTree objects (type + SHA-256), for the tables whose
 * keys come from a delta: the trust walk's, the completeness check's, the
 * object writer's.
 *
 * In a hostile delta the checksums are the attacker's choice, so a fixed
 * hash function (GLib's g_str_hash, or the first digits of the checksum)
 * lets forged entries pile into one bucket and turns every insertion into
 * a walk of all the others. These tables hash with a key drawn at random
 * once per process, which no delta can know. Keys are kept in one arena,
 * DF_OBJSET_KEY_LEN bytes each, so an entry costs about
 * DF_OBJSET_ENTRY_COST bytes (dfi_objset_memory()). */
#pragma once

#include "df-common.h"

/* A key: the object type byte, then the 32-byte checksum. */
#define DF_OBJSET_KEY_LEN (1 + DF_SHA256_LEN)
/* Bytes an entry takes, table slot and key together, at the table's
 * fullest (for memory budgets). */
#define DF_OBJSET_ENTRY_COST 96

/* A hash of @len bytes keyed with the process's random key: for any two
 * different inputs of at most 1 MiB, the chance that they collide is below
 * 2^-40, whatever the inputs (a polynomial over 32-bit words modulo the
 * prime 2^61 - 1 at a random point). */
guint64 dfi_keyed_hash (const void *data, gsize len);
/* GHashFunc for NUL-terminated strings, keyed like dfi_keyed_hash(). */
guint dfi_keyed_str_hash (gconstpointer key);

/* GHashFunc and GEqualFunc for keys of DF_OBJSET_KEY_LEN bytes, for
 * tables that point at a set's keys. */
guint dfi_objset_key_hash (gconstpointer key);
gboolean dfi_objset_key_equal (gconstpointer a, gconstpointer b);

typedef struct _DfObjSet DfObjSet;

/* @value_free may be NULL; values are optional (a set stores NULL). */
DfObjSet *dfi_objset_new (GDestroyNotify value_free);
void dfi_objset_free (DfObjSet *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (DfObjSet, dfi_objset_free)

/* Adds the object with @value (which the set then owns, if it frees
 * values). Returns FALSE when it was there already; its value is then
 * replaced. */
gboolean dfi_objset_add (DfObjSet *s, OstreeObjectType type, const guint8 csum[DF_SHA256_LEN], gpointer value);
gboolean dfi_objset_contains (const DfObjSet *s, OstreeObjectType type, const guint8 csum[DF_SHA256_LEN]);
/* The object's value, or NULL. */
gpointer dfi_objset_lookup (const DfObjSet *s, OstreeObjectType type, const guint8 csum[DF_SHA256_LEN]);
gboolean dfi_objset_contains_key (const DfObjSet *s, const guint8 key[DF_OBJSET_KEY_LEN]);
guint dfi_objset_size (const DfObjSet *s);
/* Bytes the set takes (DF_OBJSET_ENTRY_COST per entry). */
guint64 dfi_objset_memory (const DfObjSet *s);
/* Empties the set (values freed). */
void dfi_objset_clear (DfObjSet *s);

/* Iteration: each key is DF_OBJSET_KEY_LEN bytes (type, checksum). The set
 * must not change while iterating. */
typedef GHashTableIter DfObjSetIter;
void dfi_objset_iter_init (DfObjSetIter *it, const DfObjSet *s);
gboolean dfi_objset_iter_next (DfObjSetIter *it, const guint8 **key, gpointer *value);
