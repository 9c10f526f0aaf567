#include "df-pairing.h"

struct _DfPairing
{
  GHashTable *by_path;   /* path → checksum */
  GHashTable *by_masked; /* masked path → checksum */
  GHashTable *by_name;   /* basename → checksum */
  GHashTable *by_mname;  /* masked basename → checksum */
};

DfPairing *
dfi_pairing_new (void)
{
  DfPairing *p = g_new0 (DfPairing, 1);
  p->by_path = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  p->by_masked = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  p->by_name = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  p->by_mname = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  return p;
}

void
dfi_pairing_free (DfPairing *p)
{
  if (p == NULL)
    return;
  g_hash_table_unref (p->by_path);
  g_hash_table_unref (p->by_masked);
  g_hash_table_unref (p->by_name);
  g_hash_table_unref (p->by_mname);
  g_free (p);
}

char *
dfi_pairing_mask_digits (const char *s)
{
  GString *out = g_string_sized_new (strlen (s));
  for (const char *c = s; *c; c++)
    {
      if (g_ascii_isdigit (*c))
        {
          g_string_append_c (out, '#');
          while (g_ascii_isdigit (c[1]))
            c++;
        }
      else
        g_string_append_c (out, *c);
    }
  return g_string_free (out, FALSE);
}

/* The key that survives a version bump: digits masked in every directory
 * (lib/modules/6.1.0-50-amd64 ≈ 6.1.0-56-amd64) but in the file name only
 * after its first '.', so version suffixes match (libfoo.so.1.2.3 ≈
 * libfoo.so.1.2.4) while distinct names do not (cxgb3.ko ≠ cxgb4.ko). */
char *
dfi_pairing_version_key (const char *path)
{
  const char *base = strrchr (path, '/');
  base = base ? base + 1 : path;
  const char *dot = strchr (base, '.');
  gsize keep_from = base - path, keep_to = dot ? (gsize)(dot - path) : strlen (path);
  g_autofree char *head = g_strndup (path, keep_from);
  g_autofree char *name = g_strndup (path + keep_from, keep_to - keep_from);
  g_autofree char *mhead = dfi_pairing_mask_digits (head);
  g_autofree char *mtail = dfi_pairing_mask_digits (path + keep_to);
  return g_strconcat (mhead, name, mtail, NULL);
}

static void
add_first (GHashTable *t, char *key, const char *csum)
{
  if (g_hash_table_contains (t, key))
    g_free (key);
  else
    g_hash_table_insert (t, key, g_strdup (csum));
}

void
dfi_pairing_add_old (DfPairing *p, const char *path, const char *checksum)
{
  const char *base = strrchr (path, '/');
  base = base ? base + 1 : path;
  add_first (p->by_path, g_strdup (path), checksum);
  add_first (p->by_masked, dfi_pairing_version_key (path), checksum);
  add_first (p->by_name, g_strdup (base), checksum);
  add_first (p->by_mname, dfi_pairing_version_key (base), checksum);
}

const char **
dfi_pairing_candidates (DfPairing *p, const char *path)
{
  const char *base = strrchr (path, '/');
  base = base ? base + 1 : path;
  g_autofree char *masked = dfi_pairing_version_key (path);
  g_autofree char *mbase = dfi_pairing_version_key (base);
  const char *found[4] = {
    g_hash_table_lookup (p->by_path, path),
    g_hash_table_lookup (p->by_masked, masked),
    g_hash_table_lookup (p->by_name, base),
    g_hash_table_lookup (p->by_mname, mbase),
  };
  const char **out = g_new0 (const char *, 5);
  guint n = 0;
  for (guint i = 0; i < 4; i++)
    {
      if (found[i] == NULL)
        continue;
      gboolean dup = FALSE;
      for (guint j = 0; j < n; j++)
        dup = dup || strcmp (out[j], found[i]) == 0;
      if (!dup)
        out[n++] = found[i];
    }
  return out;
}
