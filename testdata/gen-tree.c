/* df-gen-tree: seeded generator of OS-rootfs-like directory trees.
 *
 * The generator builds an in-memory model of a "version 1" tree from the
 * seed, optionally applies seeded modifications to turn it into "version 2"
 * (so both versions are realistic neighbours, as consecutive OS builds are),
 * derives the files that a real build would regenerate (package database,
 * modules.dep, initrd, compressed changelogs, message catalogs) and finally
 * writes the model to disk.
 *
 * Everything random comes from our own PRNG (splitmix64 + xoshiro256**),
 * never from g_rand or libc, and no floating point is used, so the output
 * depends only on the command line (and on zlib for the gzip'd files).
 */

/* The project may already pass -D_GNU_SOURCE (for fallocate, O_NOFOLLOW...). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib.h>

/* ------------------------------------------------------------------------ */
/* PRNG                                                                     */
/* ------------------------------------------------------------------------ */

typedef struct
{
  guint64 s[4];
} Rng;

static inline guint64
splitmix64 (guint64 *x)
{
  guint64 z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* FNV-1a; only used to turn stream labels into seeds. */
static guint64
hash_label (const char *label)
{
  guint64 h = 0xcbf29ce484222325ULL;
  for (const guchar *p = (const guchar *)label; *p; p++)
    {
      h ^= *p;
      h *= 0x100000001b3ULL;
    }
  return h;
}

/* Every consumer gets its own stream, keyed by a label such as a path.
 * That keeps a file's content independent of how many random numbers other
 * parts of the generator happened to draw before it, so adding a feature
 * does not silently reshuffle the whole tree, and v2 edits of one file do
 * not perturb the others. */
static void
rng_init (Rng *r, guint64 seed, const char *label)
{
  guint64 x = seed ^ hash_label (label);
  for (guint i = 0; i < 4; i++)
    r->s[i] = splitmix64 (&x);
}

static void rng_initf (Rng *r, guint64 seed, const char *fmt, ...) G_GNUC_PRINTF (3, 4);

static void
rng_initf (Rng *r, guint64 seed, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *label = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  rng_init (r, seed, label);
}

static inline guint64
rotl64 (guint64 x, int k)
{
  return (x << k) | (x >> (64 - k));
}

static inline guint64
rng_next (Rng *r)
{
  guint64 *s = r->s;
  guint64 result = rotl64 (s[1] * 5, 7) * 9;
  guint64 t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl64 (s[3], 45);
  return result;
}

/* Uniform in [0, n); n == 0 yields 0. Multiply-shift keeps it branch-free. */
static inline guint32
rng_range (Rng *r, guint32 n)
{
  return (guint32)(((rng_next (r) >> 32) * (guint64)n) >> 32);
}

/* Uniform in [lo, hi], inclusive. */
static inline guint32
rng_between (Rng *r, guint32 lo, guint32 hi)
{
  return lo + rng_range (r, hi - lo + 1);
}

static inline gboolean
rng_chance (Rng *r, guint percent)
{
  return rng_range (r, 100) < percent;
}

/* Sizes skewed towards the low end (cubic), like real binaries: many small,
 * few large. Integer-only so results never depend on libm. */
static guint32
rng_skewed (Rng *r, guint32 lo, guint32 hi)
{
  guint64 u = rng_range (r, 1024);
  return lo + (guint32)(((guint64)(hi - lo) * u * u * u) >> 30);
}

/* ------------------------------------------------------------------------ */
/* Little helpers                                                           */
/* ------------------------------------------------------------------------ */

static inline void
put_le16 (guint8 *p, guint16 v)
{
  p[0] = v & 0xff;
  p[1] = v >> 8;
}

static inline void
put_le32 (guint8 *p, guint32 v)
{
  for (guint i = 0; i < 4; i++)
    p[i] = (v >> (8 * i)) & 0xff;
}

static inline void
put_le64 (guint8 *p, guint64 v)
{
  for (guint i = 0; i < 8; i++)
    p[i] = (v >> (8 * i)) & 0xff;
}

static gboolean
set_errno_error (GError **error, const char *what, const char *path)
{
  int errsv = errno;
  g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errsv), "%s %s: %s", what, path, g_strerror (errsv));
  return FALSE;
}

static gboolean
write_all (int fd, const guint8 *buf, gsize len, const char *path, GError **error)
{
  while (len > 0)
    {
      ssize_t n = write (fd, buf, len);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          return set_errno_error (error, "Writing", path);
        }
      buf += n;
      len -= (gsize)n;
    }
  return TRUE;
}

static const char *const words[] = {
  "system",  "network", "device",  "buffer",  "config",  "service", "update",  "module",  "kernel", "socket", "signal",
  "option",  "stream",  "cache",   "delta",   "object",  "commit",  "branch",  "remote",  "header", "packet", "driver",
  "memory",  "thread",  "server",  "client",  "policy",  "backup",  "filter",  "render",  "parser", "format", "timer",
  "queue",   "event",   "value",   "table",   "index",   "label",   "audit",   "mount",   "volume", "crypto", "random",
  "session", "console", "display", "printer", "default", "enable",  "disable", "allow",   "deny",   "limit",  "retry",
  "timeout", "verbose", "debug",   "secure",  "local",   "global",  "shared",  "private", "static",
};

static const char *const syllables[] = {
  "ba", "be", "bi", "bo", "da", "de", "di", "do", "fa", "fe", "ga", "go", "ka", "ke", "ki",
  "ko", "la", "le", "li", "lo", "ma", "me", "mi", "mo", "na", "ne", "ni", "no", "pa", "pe",
  "pi", "po", "ra", "re", "ri", "ro", "sa", "se", "si", "so", "ta", "te", "ti", "to", "va",
  "ve", "vi", "zu", "x",  "z",  "n",  "r",  "l",  "t",  "k",  "s",  "d",  "m",  "p",  "g",
};

static const char *
rng_word (Rng *r)
{
  return words[rng_range (r, G_N_ELEMENTS (words))];
}

/* Appends N words joined by SEP. Words are drawn in separate statements:
 * several rng calls in one argument list would be evaluated in an
 * unspecified order, and the tree would then depend on the compiler. */
static void
append_words (GString *s, Rng *r, guint n, const char *sep)
{
  for (guint i = 0; i < n; i++)
    {
      if (i > 0)
        g_string_append (s, sep);
      g_string_append (s, rng_word (r));
    }
}

static void
append_sentence (GString *s, Rng *r, guint min_words, guint max_words)
{
  guint n = rng_between (r, min_words, max_words);
  for (guint i = 0; i < n; i++)
    {
      const char *w = rng_word (r);
      if (i == 0)
        {
          g_string_append_c (s, g_ascii_toupper (w[0]));
          g_string_append (s, w + 1);
        }
      else
        {
          g_string_append_c (s, ' ');
          g_string_append (s, w);
        }
    }
  g_string_append_c (s, '.');
}

/* A pronounceable made-up word; the last syllable may be a bare consonant. */
static char *
rng_name (Rng *r, guint min_syl, guint max_syl)
{
  GString *s = g_string_new (NULL);
  guint n = rng_between (r, min_syl, max_syl);
  for (guint i = 0; i < n; i++)
    {
      /* Only the first 48 syllables have vowels; bare consonants go last. */
      guint limit = (i + 1 == n) ? G_N_ELEMENTS (syllables) : 48;
      g_string_append (s, syllables[rng_range (r, limit)]);
    }
  return g_string_free (s, FALSE);
}

static char *
version_string (const guint v[3])
{
  return g_strdup_printf ("%u.%u.%u", v[0], v[1], v[2]);
}

/* ------------------------------------------------------------------------ */
/* ELF-like binaries                                                        */
/* ------------------------------------------------------------------------ */

/* The code of a binary is kept as a list of instructions whose address
 * operands point at other instructions by index. Serialising resolves the
 * indices to absolute addresses, so inserting or deleting instructions
 * shifts the code *and* bumps every embedded address past the edit, which is
 * exactly what a recompile does to a real binary and what makes bsdiff-style
 * deltas interesting. */

#define ET_REL 1
#define ET_EXEC 2
#define ET_DYN 3
#define ELF_HEADER_SIZE 64
#define N_OPCODES 64

typedef struct
{
  gint32 target; /* index of the instruction addressed, or -1 */
  guint8 len;
  guint8 op[7];
} Insn;

typedef struct
{
  guint8 len;
  guint8 op[7];
  gboolean has_addr;
} OpPattern;

typedef struct
{
  guint16 e_type;
  guint32 base;
  GArray *code; /* of Insn */
  GString *rodata;
} ElfModel;

static void
elf_model_free (ElfModel *m)
{
  g_array_unref (m->code);
  g_string_free (m->rodata, TRUE);
  g_free (m);
}

/* ------------------------------------------------------------------------ */
/* Tree model                                                               */
/* ------------------------------------------------------------------------ */

typedef enum
{
  KIND_DIR,
  KIND_REG,
  KIND_SYMLINK,
} EntryKind;

typedef enum
{
  DATA_NONE,
  DATA_BYTES, /* bytes written as-is */
  DATA_GZIP,  /* bytes gzip-compressed at write time */
  DATA_ELF,   /* ElfModel serialised at write time */
  DATA_LARGE, /* streamed disk image */
} DataKind;

typedef struct
{
  char *name;
  GBytes *value;
} Xattr;

typedef struct
{
  char *path;
  EntryKind kind;
  guint mode; /* permission bits incl. setuid */
  gint uid;   /* -1: whoever creates it */
  gint gid;
  DataKind data_kind;
  GBytes *bytes;
  ElfModel *elf;
  char *target;
  GPtrArray *xattrs; /* of Xattr, or NULL */
} Entry;

typedef struct
{
  GPtrArray *entries;  /* of Entry, owned */
  GHashTable *by_path; /* path -> Entry, borrowed */
} Tree;

static void
xattr_free (Xattr *x)
{
  g_free (x->name);
  g_bytes_unref (x->value);
  g_free (x);
}

static void
entry_free (Entry *e)
{
  g_free (e->path);
  g_clear_pointer (&e->bytes, g_bytes_unref);
  g_clear_pointer (&e->elf, elf_model_free);
  g_free (e->target);
  g_clear_pointer (&e->xattrs, g_ptr_array_unref);
  g_free (e);
}

static Tree *
tree_new (void)
{
  Tree *t = g_new0 (Tree, 1);
  t->entries = g_ptr_array_new_with_free_func ((GDestroyNotify)entry_free);
  t->by_path = g_hash_table_new (g_str_hash, g_str_equal);
  return t;
}

static void
tree_free (Tree *t)
{
  g_hash_table_unref (t->by_path);
  g_ptr_array_unref (t->entries);
  g_free (t);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Tree, tree_free)

static Entry *
tree_lookup (Tree *t, const char *path)
{
  return g_hash_table_lookup (t->by_path, path);
}

static Entry *tree_add (Tree *t, const char *path, EntryKind kind, guint mode);

static void
tree_ensure_parents (Tree *t, const char *path)
{
  g_autofree char *dir = g_path_get_dirname (path);
  if (strcmp (dir, ".") == 0)
    return;
  Entry *p = tree_lookup (t, dir);
  if (p != NULL)
    {
      g_assert (p->kind == KIND_DIR);
      return;
    }
  tree_add (t, dir, KIND_DIR, 0755);
}

static Entry *
tree_add (Tree *t, const char *path, EntryKind kind, guint mode)
{
  g_assert (path[0] != '/' && !g_hash_table_contains (t->by_path, path));
  tree_ensure_parents (t, path);
  Entry *e = g_new0 (Entry, 1);
  e->path = g_strdup (path);
  e->kind = kind;
  e->mode = mode;
  e->uid = e->gid = -1;
  g_ptr_array_add (t->entries, e);
  g_hash_table_insert (t->by_path, e->path, e);
  return e;
}

static Entry *
tree_add_dir (Tree *t, const char *path, guint mode)
{
  Entry *e = tree_lookup (t, path);
  if (e != NULL)
    {
      g_assert (e->kind == KIND_DIR);
      e->mode = mode;
      return e;
    }
  return tree_add (t, path, KIND_DIR, mode);
}

static Entry *
tree_add_bytes (Tree *t, const char *path, guint mode, GBytes *bytes)
{
  Entry *e = tree_add (t, path, KIND_REG, mode);
  e->data_kind = DATA_BYTES;
  e->bytes = bytes;
  return e;
}

static Entry *
tree_add_text (Tree *t, const char *path, guint mode, GString *text)
{
  gsize len = text->len;
  return tree_add_bytes (t, path, mode, g_bytes_new_take (g_string_free (text, FALSE), len));
}

static Entry *
tree_add_gzip (Tree *t, const char *path, guint mode, GString *text)
{
  Entry *e = tree_add_text (t, path, mode, text);
  e->data_kind = DATA_GZIP;
  return e;
}

static Entry *
tree_add_elf (Tree *t, const char *path, guint mode, ElfModel *m)
{
  Entry *e = tree_add (t, path, KIND_REG, mode);
  e->data_kind = DATA_ELF;
  e->elf = m;
  return e;
}

static Entry *
tree_add_symlink (Tree *t, const char *path, const char *target)
{
  Entry *e = tree_add (t, path, KIND_SYMLINK, 0777);
  e->target = g_strdup (target);
  return e;
}

static gboolean
path_is_at_or_below (const char *path, const char *top)
{
  gsize n = strlen (top);
  return strncmp (path, top, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* Removes PATH and, for a directory, everything below it. */
static void
tree_remove (Tree *t, const char *path)
{
  g_autofree char *top = g_strdup (path);
  for (guint i = t->entries->len; i > 0; i--)
    {
      Entry *e = t->entries->pdata[i - 1];
      if (path_is_at_or_below (e->path, top))
        {
          g_hash_table_remove (t->by_path, e->path);
          g_ptr_array_remove_index (t->entries, i - 1);
        }
    }
}

/* Renames PATH (and its subtree) to NEW_PATH, keeping the entries. */
static void
tree_rename (Tree *t, const char *path, const char *new_path)
{
  g_autofree char *old_top = g_strdup (path);
  gsize n = strlen (old_top);
  g_assert (tree_lookup (t, new_path) == NULL);
  for (guint i = 0; i < t->entries->len; i++)
    {
      Entry *e = t->entries->pdata[i];
      if (!path_is_at_or_below (e->path, old_top))
        continue;
      g_hash_table_remove (t->by_path, e->path);
      char *renamed = g_strconcat (new_path, e->path + n, NULL);
      g_free (e->path);
      e->path = renamed;
      g_hash_table_insert (t->by_path, e->path, e);
    }
  tree_ensure_parents (t, new_path);
}

static void
entry_set_xattr (Entry *e, const char *name, const void *value, gsize len)
{
  if (e->xattrs == NULL)
    e->xattrs = g_ptr_array_new_with_free_func ((GDestroyNotify)xattr_free);
  for (guint i = 0; i < e->xattrs->len; i++)
    {
      Xattr *x = e->xattrs->pdata[i];
      if (strcmp (x->name, name) == 0)
        {
          g_bytes_unref (x->value);
          x->value = g_bytes_new (value, len);
          return;
        }
    }
  Xattr *x = g_new0 (Xattr, 1);
  x->name = g_strdup (name);
  x->value = g_bytes_new (value, len);
  g_ptr_array_add (e->xattrs, x);
}

static void
entry_set_owner (Entry *e, gint uid, gint gid)
{
  e->uid = uid;
  e->gid = gid;
}

/* ------------------------------------------------------------------------ */
/* Generator state                                                          */
/* ------------------------------------------------------------------------ */

typedef struct
{
  char *path;
  char *name;
  guint ver[3];
} Program;

typedef struct
{
  char *name; /* "libfoo" */
  guint ver[3];
} Library;

typedef struct
{
  char *name;
  const char *subsys;
  GPtrArray *deps; /* names of other modules */
} Module;

typedef struct
{
  char *name;
  guint ver[3];
  guint debrev;
  guint installed_size;
  guint day;          /* day index of the newest changelog entry */
  GPtrArray *stanzas; /* newest first */
  const char *license;
} Package;

typedef struct
{
  char *name;
  GPtrArray *msgids;
} Domain;

typedef struct
{
  char *code;
  char *translation_key; /* locales sharing a key get identical catalogs */
} Locale;

typedef struct
{
  guint64 seed;
  guint scale;
  guint version;
  guint64 large_size;
  guint small_files;
  gboolean xattrs;
  gboolean owner;

  OpPattern ops[N_OPCODES];
  GHashTable *used_names;
  Tree *tree;

  GPtrArray *bins;
  GPtrArray *libs;
  GPtrArray *modules;
  GPtrArray *packages;
  GPtrArray *domains;
  GPtrArray *locales;
  GPtrArray *confs; /* paths of editable key = value files */
  char *kver;
  const char *os_version;
} GenCtx;

#define LIBDIR "usr/lib/x86_64-linux-gnu"
#define KVER_V1 "6.1.0-50-amd64"
#define KVER_V2 "6.1.0-56-amd64"

static void
program_free (Program *p)
{
  g_free (p->path);
  g_free (p->name);
  g_free (p);
}

static void
library_free (Library *l)
{
  g_free (l->name);
  g_free (l);
}

static void
module_free (Module *m)
{
  g_free (m->name);
  g_ptr_array_unref (m->deps);
  g_free (m);
}

static void
package_free (Package *p)
{
  g_free (p->name);
  g_ptr_array_unref (p->stanzas);
  g_free (p);
}

static void
domain_free (Domain *d)
{
  g_free (d->name);
  g_ptr_array_unref (d->msgids);
  g_free (d);
}

static void
locale_free (Locale *l)
{
  g_free (l->code);
  g_free (l->translation_key);
  g_free (l);
}

static void
gen_ctx_free (GenCtx *ctx)
{
  g_hash_table_unref (ctx->used_names);
  g_clear_pointer (&ctx->tree, tree_free);
  g_ptr_array_unref (ctx->bins);
  g_ptr_array_unref (ctx->libs);
  g_ptr_array_unref (ctx->modules);
  g_ptr_array_unref (ctx->packages);
  g_ptr_array_unref (ctx->domains);
  g_ptr_array_unref (ctx->locales);
  g_ptr_array_unref (ctx->confs);
  g_free (ctx->kver);
  g_free (ctx);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (GenCtx, gen_ctx_free)

/* A name unique within namespace NS, preferring the fixed realistic names
 * and falling back to made-up ones (needed once --scale exceeds the list). */
static char *
unique_name (GenCtx *ctx, const char *ns, Rng *r, const char *const *fixed, guint n_fixed, guint index)
{
  for (guint attempt = 0;; attempt++)
    {
      g_autofree char *base = NULL;
      if (index < n_fixed && attempt == 0)
        base = g_strdup (fixed[index]);
      else
        base = rng_name (r, 2, 3);
      g_autofree char *candidate = attempt < 8 ? g_strdup (base) : g_strdup_printf ("%s%u", base, attempt);
      char *key = g_strconcat (ns, ":", candidate, NULL);
      if (!g_hash_table_contains (ctx->used_names, key))
        {
          g_hash_table_add (ctx->used_names, key);
          return g_steal_pointer (&candidate);
        }
      g_free (key);
    }
}

static GenCtx *
gen_ctx_new (guint64 seed, guint scale, guint version, guint64 large_size, gboolean xattrs, gboolean owner)
{
  GenCtx *ctx = g_new0 (GenCtx, 1);
  ctx->seed = seed;
  ctx->scale = scale;
  ctx->version = version;
  ctx->large_size = large_size;
  ctx->xattrs = xattrs;
  ctx->owner = owner;
  ctx->used_names = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  ctx->tree = tree_new ();
  ctx->bins = g_ptr_array_new_with_free_func ((GDestroyNotify)program_free);
  ctx->libs = g_ptr_array_new_with_free_func ((GDestroyNotify)library_free);
  ctx->modules = g_ptr_array_new_with_free_func ((GDestroyNotify)module_free);
  ctx->packages = g_ptr_array_new_with_free_func ((GDestroyNotify)package_free);
  ctx->domains = g_ptr_array_new_with_free_func ((GDestroyNotify)domain_free);
  ctx->locales = g_ptr_array_new_with_free_func ((GDestroyNotify)locale_free);
  ctx->confs = g_ptr_array_new_with_free_func (g_free);
  ctx->kver = g_strdup (KVER_V1);
  ctx->os_version = "12.5";

  /* A shared instruction vocabulary: real binaries from one compiler share
   * most of their opcode patterns, which is what lets a delta compressor find
   * cross-file similarity. */
  static const guint8 lead_bytes[]
      = { 0x48, 0x89, 0x8b, 0x0f, 0x83, 0x85, 0x31, 0x41, 0x4c, 0xff, 0xe8, 0xe9, 0x74, 0x75, 0xc7, 0x8d };
  Rng r;
  rng_init (&r, seed, "opcodes");
  for (guint i = 0; i < N_OPCODES; i++)
    {
      OpPattern *op = &ctx->ops[i];
      op->len = (guint8)rng_between (&r, 1, 6);
      op->op[0] = lead_bytes[rng_range (&r, G_N_ELEMENTS (lead_bytes))];
      for (guint j = 1; j < op->len; j++)
        op->op[j] = (guint8)rng_next (&r);
      op->has_addr = rng_chance (&r, 25);
    }
  return ctx;
}

/* ------------------------------------------------------------------------ */
/* ELF model generation and "recompiles"                                    */
/* ------------------------------------------------------------------------ */

static void
make_insn (GenCtx *ctx, Rng *r, guint index, guint n_est, Insn *insn)
{
  /* Product of two uniforms skews towards the first patterns, giving the
   * Zipf-ish opcode frequencies of real code. */
  guint u = rng_range (r, N_OPCODES);
  guint i = (u * rng_range (r, N_OPCODES)) / N_OPCODES;
  const OpPattern *op = &ctx->ops[i];
  insn->len = op->len;
  memcpy (insn->op, op->op, sizeof insn->op);
  insn->target = -1;
  if (op->has_addr)
    {
      if (rng_chance (r, 70))
        {
          /* Local branch. */
          gint64 t = (gint64)index + (gint64)rng_between (r, 0, 200) - 100;
          insn->target = (gint32)CLAMP (t, 0, (gint64)n_est);
        }
      else
        insn->target = (gint32)rng_range (r, n_est); /* call */
    }
}

static const Insn prologue = { -1, 5, { 0xc3, 0x55, 0x48, 0x89, 0xe5 } };

static ElfModel *
elf_new (GenCtx *ctx, Rng *r, guint16 e_type, guint32 base, gsize size, GString *rodata)
{
  ElfModel *m = g_new0 (ElfModel, 1);
  m->e_type = e_type;
  m->base = base;
  m->rodata = rodata;
  gsize overhead = ELF_HEADER_SIZE + rodata->len;
  gsize code_target = size > overhead + 1024 ? size - overhead : 1024;
  guint n_est = (guint)(code_target / 4) + 1;
  m->code = g_array_sized_new (FALSE, FALSE, sizeof (Insn), n_est);

  gsize bytes = 0;
  guint until_function = 0;
  while (bytes < code_target)
    {
      Insn insn;
      if (until_function == 0)
        {
          insn = prologue;
          until_function = rng_between (r, 16, 256);
        }
      else
        {
          make_insn (ctx, r, m->code->len, n_est, &insn);
          until_function--;
        }
      bytes += insn.len + (insn.target >= 0 ? 4 : 0);
      g_array_append_val (m->code, insn);
    }

  /* Targets were drawn against an estimate of the instruction count. */
  guint n = m->code->len;
  for (guint i = 0; i < n; i++)
    {
      Insn *insn = &g_array_index (m->code, Insn, i);
      if (insn->target >= (gint32)n)
        insn->target %= (gint32)n;
    }
  return m;
}

static GBytes *
elf_serialize (const ElfModel *m)
{
  guint n = m->code->len;
  g_autofree guint32 *offs = g_new (guint32, n + 1);
  guint32 o = 0;
  for (guint i = 0; i < n; i++)
    {
      const Insn *insn = &g_array_index (m->code, Insn, i);
      offs[i] = o;
      o += insn->len + (insn->target >= 0 ? 4 : 0);
    }
  offs[n] = o;

  gsize total = ELF_HEADER_SIZE + o + m->rodata->len;
  guint8 *buf = g_malloc0 (total);
  static const guint8 ident[] = { 0x7f, 'E', 'L', 'F', 2, 1, 1, 0 };
  memcpy (buf, ident, sizeof ident);
  put_le16 (buf + 16, m->e_type);
  put_le16 (buf + 18, 0x3e); /* x86-64 */
  put_le32 (buf + 20, 1);
  put_le64 (buf + 24, m->e_type == ET_REL ? 0 : (guint64)m->base + ELF_HEADER_SIZE);
  put_le64 (buf + 40, ELF_HEADER_SIZE + (guint64)o); /* "section" offset */
  put_le16 (buf + 52, ELF_HEADER_SIZE);

  guint8 *p = buf + ELF_HEADER_SIZE;
  guint32 code_base = m->base + ELF_HEADER_SIZE;
  for (guint i = 0; i < n; i++)
    {
      const Insn *insn = &g_array_index (m->code, Insn, i);
      memcpy (p, insn->op, insn->len);
      p += insn->len;
      if (insn->target >= 0)
        {
          guint t = MIN ((guint)insn->target, n - 1);
          put_le32 (p, code_base + offs[t]);
          p += 4;
        }
    }
  memcpy (p, m->rodata->str, m->rodata->len);
  return g_bytes_new_take (buf, total);
}

/* Simulates rebuilding the binary from slightly changed sources: runs of
 * instructions are inserted or deleted (so everything after shifts and all
 * addresses pointing past the edit move with it), and a few instructions
 * change in place like a different register allocation would. */
static void
elf_recompile (GenCtx *ctx, ElfModel *m, Rng *r, guint n_edits)
{
  for (guint e = 0; e < n_edits; e++)
    {
      guint n = m->code->len;
      guint p = rng_range (r, n);
      if (rng_chance (r, 60) || n < 64)
        {
          guint k = rng_between (r, 1, 48);
          for (guint i = 0; i < n; i++)
            {
              Insn *insn = &g_array_index (m->code, Insn, i);
              if (insn->target >= (gint32)p)
                insn->target += (gint32)k;
            }
          g_autofree Insn *fresh = g_new (Insn, k);
          for (guint i = 0; i < k; i++)
            make_insn (ctx, r, p + i, n + k - 1, &fresh[i]);
          g_array_insert_vals (m->code, p, fresh, k);
        }
      else
        {
          guint want = rng_between (r, 1, 32); /* not inside MIN: evaluated twice */
          guint k = MIN (want, n - p - 1);
          if (k == 0)
            continue;
          g_array_remove_range (m->code, p, k);
          guint n_new = m->code->len;
          for (guint i = 0; i < n_new; i++)
            {
              Insn *insn = &g_array_index (m->code, Insn, i);
              if (insn->target >= (gint32)(p + k))
                insn->target -= (gint32)k;
              else if (insn->target >= (gint32)p)
                insn->target = (gint32)MIN (p, n_new - 1);
            }
        }
    }

  guint n_tweaks = rng_between (r, 0, 6);
  for (guint i = 0; i < n_tweaks; i++)
    {
      Insn *insn = &g_array_index (m->code, Insn, rng_range (r, m->code->len));
      insn->op[insn->len - 1] ^= (guint8)rng_between (r, 1, 255);
    }
}

/* The read-only data of a binary: a version banner, usage text, messages
 * and symbol names. It is keyed by LABEL alone so that regenerating it with
 * a new version string changes only the banner, like a version bump does. */
static GString *
build_rodata (GenCtx *ctx, const char *label, const char *banner, gsize target)
{
  Rng r;
  rng_initf (&r, ctx->seed, "rodata:%s", label);
  GString *s = g_string_new (banner);
  g_string_append_c (s, '\0');
  g_string_append_printf (s, "Usage: %s [OPTION]... [FILE]...", label);
  g_string_append_c (s, '\0');
  while (s->len < target)
    {
      switch (rng_range (&r, 4))
        {
        case 0:
          append_words (s, &r, 3, "_");
          break;
        case 1:
          g_string_append (s, "--");
          append_words (s, &r, 2, "-");
          break;
        default:
          append_sentence (s, &r, 3, 9);
          g_string_append (s, rng_chance (&r, 50) ? " (%s)\n" : ": %d\n");
          break;
        }
      g_string_append_c (s, '\0');
    }
  return s;
}

/* ------------------------------------------------------------------------ */
/* Text generation                                                          */
/* ------------------------------------------------------------------------ */

static void
append_conf_value (GString *s, Rng *r)
{
  switch (rng_range (r, 6))
    {
    case 0:
      g_string_append_printf (s, "%u", rng_between (r, 0, 65535));
      break;
    case 1:
      g_string_append (s, rng_chance (r, 50) ? "yes" : "no");
      break;
    case 2:
      g_string_append (s, "/var/lib/");
      append_words (s, r, 2, "/");
      break;
    case 3:
      g_string_append_c (s, '"');
      append_words (s, r, 2, " ");
      g_string_append_c (s, '"');
      break;
    default:
      g_string_append (s, rng_word (r));
      break;
    }
}

static void
append_conf_line (GString *s, Rng *r)
{
  append_words (s, r, 2, "_");
  g_string_append (s, " = ");
  append_conf_value (s, r);
  g_string_append_c (s, '\n');
}

static GString *
gen_conf (GenCtx *ctx, const char *path, guint min_lines, guint max_lines)
{
  Rng r;
  rng_initf (&r, ctx->seed, "conf:%s", path);
  GString *s = g_string_new (NULL);
  g_string_append_printf (s, "# /%s\n# ", path);
  append_sentence (s, &r, 4, 10);
  g_string_append (s, "\n\n");
  gboolean ini = rng_chance (&r, 40);
  guint n = rng_between (&r, min_lines, max_lines);
  for (guint i = 0; i < n; i++)
    {
      guint kind = rng_range (&r, 100);
      if (ini && (i == 0 || kind < 5))
        {
          const char *w = rng_word (&r);
          g_string_append_printf (s, "\n[%c%s]\n", g_ascii_toupper (w[0]), w + 1);
        }
      else if (kind < 25)
        {
          g_string_append (s, "# ");
          append_sentence (s, &r, 3, 12);
          g_string_append_c (s, '\n');
        }
      else if (kind < 32)
        g_string_append_c (s, '\n');
      else if (kind < 38)
        {
          g_string_append_c (s, '#');
          append_conf_line (s, &r);
        }
      else
        append_conf_line (s, &r);
    }
  return s;
}

/* Applies a few local edits to a text file: values changed, lines added and
 * lines removed, as a package update or an admin would. The header (first
 * two lines) is left alone. */
static GBytes *
edit_text (Rng *r, GBytes *orig)
{
  gsize len;
  const char *data = g_bytes_get_data (orig, &len);
  g_autofree char *copy = g_strndup (data, len);
  g_auto (GStrv) split = g_strsplit (copy, "\n", -1);
  g_autoptr (GPtrArray) lines = g_ptr_array_new_with_free_func (g_free);
  for (char **l = split; *l; l++)
    g_ptr_array_add (lines, g_strdup (*l));

  guint n_ops = rng_between (r, 1, 4);
  for (guint op = 0; op < n_ops; op++)
    {
      guint n = lines->len;
      if (n < 4)
        break;
      /* Stay off the header and the final empty string after the last \n. */
      guint at = rng_between (r, 2, n - 2);
      guint kind = rng_range (r, 3);
      if (kind == 0)
        {
          const char *line = lines->pdata[at];
          const char *eq = strstr (line, " = ");
          GString *s = g_string_new (NULL);
          if (eq != NULL)
            g_string_append_len (s, line, eq - line + 3);
          else
            {
              append_words (s, r, 2, "_");
              g_string_append (s, " = ");
            }
          append_conf_value (s, r);
          g_free (lines->pdata[at]);
          lines->pdata[at] = g_string_free (s, FALSE);
        }
      else if (kind == 1)
        {
          guint n_add = rng_between (r, 1, 3);
          for (guint i = 0; i < n_add; i++)
            {
              GString *s = g_string_new (NULL);
              append_conf_line (s, r);
              g_string_truncate (s, s->len - 1);
              g_ptr_array_insert (lines, (gint)at, g_string_free (s, FALSE));
            }
        }
      else
        g_ptr_array_remove_index (lines, at);
    }

  g_ptr_array_add (lines, NULL);
  char *joined = g_strjoinv ("\n", (char **)lines->pdata);
  return g_bytes_new_take (joined, strlen (joined));
}

static char *
debian_date (guint day)
{
  static const char *const wdays[] = { "", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun" };
  static const char *const months[]
      = { "", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
  /* 737425 is the GDate Julian day of 2020-01-01. */
  g_autoptr (GDate) d = g_date_new_julian (737425 + day);
  return g_strdup_printf ("%s, %02u %s %u %02u:%02u:%02u +0000", wdays[g_date_get_weekday (d)], g_date_get_day (d),
                          months[g_date_get_month (d)], g_date_get_year (d), (day * 7) % 24, (day * 13) % 60,
                          (day * 29) % 60);
}

static char *
changelog_stanza (GenCtx *ctx, Package *pkg)
{
  Rng r;
  rng_initf (&r, ctx->seed, "changelog:%s:%u.%u.%u-%u", pkg->name, pkg->ver[0], pkg->ver[1], pkg->ver[2], pkg->debrev);
  GString *s = g_string_new (NULL);
  g_string_append_printf (s, "%s (%u.%u.%u-%u) bookworm; urgency=%s\n\n", pkg->name, pkg->ver[0], pkg->ver[1],
                          pkg->ver[2], pkg->debrev, rng_chance (&r, 80) ? "medium" : "high");
  guint n = rng_between (&r, 1, 6);
  for (guint i = 0; i < n; i++)
    {
      g_string_append (s, "  * ");
      append_sentence (s, &r, 4, 14);
      if (rng_chance (&r, 30))
        g_string_append_printf (s, " (Closes: #%u)", rng_between (&r, 900000, 1099999));
      g_string_append_c (s, '\n');
    }
  g_autofree char *date = debian_date (pkg->day);
  g_autofree char *who = rng_name (&r, 2, 3);
  g_string_append_printf (s, "\n -- %c%s Maintainer <%s@example.org>  %s\n\n", g_ascii_toupper (who[0]), who + 1, who,
                          date);
  return g_string_free (s, FALSE);
}

static void
package_bump (GenCtx *ctx, Package *pkg, Rng *r)
{
  if (rng_chance (r, 70))
    {
      pkg->ver[2]++;
      pkg->debrev = 1;
    }
  else if (rng_chance (r, 50))
    {
      pkg->ver[1]++;
      pkg->ver[2] = 0;
      pkg->debrev = 1;
    }
  else
    pkg->debrev++;
  pkg->day += rng_between (r, 3, 60);
  pkg->installed_size += rng_between (r, 0, 40);
  g_ptr_array_insert (pkg->stanzas, 0, changelog_stanza (ctx, pkg));
}

static GString *
gen_license (GenCtx *ctx, const char *name)
{
  Rng r;
  rng_initf (&r, ctx->seed, "license:%s", name);
  GString *s = g_string_new (NULL);
  g_string_append_printf (s, "                    %s LICENSE\n\n", name);
  guint paras = rng_between (&r, 10, 24);
  for (guint p = 0; p < paras; p++)
    {
      guint sentences = rng_between (&r, 2, 7);
      for (guint i = 0; i < sentences; i++)
        {
          append_sentence (s, &r, 6, 20);
          g_string_append_c (s, i + 1 == sentences ? '\n' : ' ');
        }
      g_string_append_c (s, '\n');
    }
  return s;
}

/* A GNU gettext .mo catalog. Catalogs for one domain share their msgids;
 * translations are word-for-word substitutions keyed by the locale's
 * translation key, so related catalogs share a lot of content. */
static GBytes *
gen_mo (GenCtx *ctx, const Domain *dom, const Locale *loc)
{
  guint n = dom->msgids->len;
  g_autoptr (GPtrArray) msgstrs = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < n; i++)
    {
      const char *msgid = dom->msgids->pdata[i];
      g_auto (GStrv) ws = g_strsplit (msgid, " ", -1);
      GString *t = g_string_new (NULL);
      for (char **w = ws; *w; w++)
        {
          Rng r;
          rng_initf (&r, ctx->seed, "translate:%s:%s", loc->translation_key, *w);
          g_autofree char *tw = rng_name (&r, 1, 4);
          if (t->len > 0)
            g_string_append_c (t, ' ');
          g_string_append (t, tw);
        }
      g_ptr_array_add (msgstrs, g_string_free (t, FALSE));
    }

  guint32 orig_off = 28, trans_off = 28 + 8 * n, str_off = 28 + 16 * n;
  GString *strings = g_string_new (NULL);
  GByteArray *out = g_byte_array_sized_new (str_off);
  g_byte_array_set_size (out, str_off);
  guint8 *h = out->data;
  put_le32 (h, 0x950412de);
  put_le32 (h + 4, 0);
  put_le32 (h + 8, n);
  put_le32 (h + 12, orig_off);
  put_le32 (h + 16, trans_off);
  put_le32 (h + 20, 0);
  put_le32 (h + 24, str_off);
  for (guint pass = 0; pass < 2; pass++)
    {
      GPtrArray *src = pass == 0 ? dom->msgids : msgstrs;
      guint32 table = pass == 0 ? orig_off : trans_off;
      for (guint i = 0; i < n; i++)
        {
          const char *str = src->pdata[i];
          guint32 len = (guint32)strlen (str);
          put_le32 (out->data + table + 8 * i, len);
          put_le32 (out->data + table + 8 * i + 4, str_off + (guint32)strings->len);
          g_string_append_len (strings, str, len + 1);
        }
    }
  g_byte_array_append (out, (const guint8 *)strings->str, strings->len);
  g_string_free (strings, TRUE);
  return g_byte_array_free_to_bytes (out);
}

/* ------------------------------------------------------------------------ */
/* gzip                                                                     */
/* ------------------------------------------------------------------------ */

static gboolean
gzip_feed (GConverter *conv, GByteArray *out, const guint8 *data, gsize len, gboolean finish, GError **error)
{
  guint8 buf[65536];
  for (;;)
    {
      if (!finish && len == 0)
        return TRUE;
      gsize nread = 0, nwritten = 0;
      GConverterResult res
          = g_converter_convert (conv, data, len, buf, sizeof buf,
                                 finish ? G_CONVERTER_INPUT_AT_END : G_CONVERTER_NO_FLAGS, &nread, &nwritten, error);
      if (res == G_CONVERTER_ERROR)
        return FALSE;
      g_byte_array_append (out, buf, (guint)nwritten);
      data += nread;
      len -= nread;
      if (res == G_CONVERTER_FINISHED)
        return TRUE;
    }
}

static GBytes *
gzip_bytes (GBytes *in, GError **error)
{
  /* Level 9 and no file name/mtime in the header, like dpkg's gzip -9n. */
  g_autoptr (GZlibCompressor) conv = g_zlib_compressor_new (G_ZLIB_COMPRESSOR_FORMAT_GZIP, 9);
  g_autoptr (GByteArray) out = g_byte_array_new ();
  gsize len;
  const guint8 *data = g_bytes_get_data (in, &len);
  if (!gzip_feed (G_CONVERTER (conv), out, data, len, TRUE, error))
    return NULL;
  return g_byte_array_free_to_bytes (g_steal_pointer (&out));
}

/* ------------------------------------------------------------------------ */
/* Version 1                                                                */
/* ------------------------------------------------------------------------ */

static const char *const bin_names[] = {
  "ls",   "cp",   "mv",   "grep", "sed",  "tar",  "gzip", "ping",  "su",   "pager", "less", "ssh",
  "curl", "find", "gawk", "bash", "dash", "nano", "diff", "rsync", "sort", "xargs", "stat", "mount",
};

static const char *const sbin_names[] = {
  "ip", "fdisk", "mkfs.ext4", "sshd", "agetty", "modprobe", "sysctl", "useradd",
};

static const char *const lib_names[] = {
  "libz", "libssl", "libcrypto", "libselinux", "libsystemd", "libcurl", "libzstd", "libacl",
};

static const char *const module_subsys[] = {
  "net/ethernet/intel", "net/wireless", "scsi",  "usb/storage", "gpu/drm",
  "input/mouse",        "hid",          "block", "md",          "nvme/host",
};

static const char *const module_names[] = {
  "e1000e",   "igb",     "iwlwifi",    "sd_mod",    "uas",       "i915",   "psmouse",     "hid_generic",
  "loop",     "raid1",   "nvme",       "ixgbe",     "ath9k",     "sr_mod", "usb_storage", "amdgpu",
  "evdev",    "usbhid",  "virtio_blk", "dm_crypt",  "nvme_core", "bnx2",   "mt7921e",     "ahci",
  "xhci_pci", "nouveau", "i8042",      "hid_apple", "zram",      "raid10",
};

static const char *const package_names[] = {
  "coreutils", "grep",           "sed",        "tar",  "gzip",   "iputils-ping", "login",     "less",  "openssh-client",
  "curl",      "findutils",      "gawk",       "bash", "dash",   "nano",         "diffutils", "rsync", "iproute2",
  "fdisk",     "openssh-server", "util-linux", "kmod", "procps", "passwd",
};

static const char *const license_names[] = { "GPL-2", "GPL-3", "Apache-2.0" };

static Program *
add_program (GenCtx *ctx, const char *dir, const char *name, guint mode)
{
  Program *p = g_new0 (Program, 1);
  p->name = g_strdup (name);
  p->path = g_strdup_printf ("%s/%s", dir, name);
  Rng r;
  rng_initf (&r, ctx->seed, "program:%s", p->path);
  p->ver[0] = rng_between (&r, 0, 9);
  p->ver[1] = rng_between (&r, 0, 30);
  p->ver[2] = rng_between (&r, 0, 12);
  gsize size = rng_skewed (&r, 20 * 1024, 300 * 1024);
  g_autofree char *v = version_string (p->ver);
  g_autofree char *banner = g_strdup_printf ("%s (deltafetch) %s", name, v);
  GString *rodata = build_rodata (ctx, p->path, banner, size / 12);
  ElfModel *m = elf_new (ctx, &r, ET_EXEC, 0x400000 + (rng_range (&r, 64) << 16), size, rodata);
  tree_add_elf (ctx->tree, p->path, mode, m);
  g_ptr_array_add (ctx->bins, p);
  return p;
}

static char *
library_path (const Library *l)
{
  return g_strdup_printf (LIBDIR "/%s.so.%u.%u.%u", l->name, l->ver[0], l->ver[1], l->ver[2]);
}

static char *
library_link (const Library *l)
{
  return g_strdup_printf (LIBDIR "/%s.so.%u", l->name, l->ver[0]);
}

static GString *
library_rodata (GenCtx *ctx, const Library *l, gsize size)
{
  g_autofree char *v = version_string (l->ver);
  g_autofree char *banner = g_strdup_printf ("%s.so.%u (deltafetch) %s", l->name, l->ver[0], v);
  return build_rodata (ctx, l->name, banner, size / 10);
}

static void
add_library (GenCtx *ctx, const char *name)
{
  Library *l = g_new0 (Library, 1);
  l->name = g_strdup (name);
  Rng r;
  rng_initf (&r, ctx->seed, "library:%s", name);
  l->ver[0] = rng_between (&r, 0, 5);
  l->ver[1] = rng_between (&r, 0, 20);
  l->ver[2] = rng_between (&r, 0, 9);
  gsize size = rng_skewed (&r, 20 * 1024, 300 * 1024);
  ElfModel *m = elf_new (ctx, &r, ET_DYN, 0, size, library_rodata (ctx, l, size));
  g_autofree char *path = library_path (l);
  g_autofree char *link = library_link (l);
  tree_add_elf (ctx->tree, path, 0644, m);
  tree_add_symlink (ctx->tree, link, strrchr (path, '/') + 1);
  g_ptr_array_add (ctx->libs, l);
}

static char *
module_path (GenCtx *ctx, const Module *mod)
{
  return g_strdup_printf ("usr/lib/modules/%s/kernel/drivers/%s/%s.ko", ctx->kver, mod->subsys, mod->name);
}

static GString *
module_rodata (GenCtx *ctx, const Module *mod, gsize size)
{
  g_autofree char *banner = g_strdup_printf ("vermagic=%s SMP preempt mod_unload modversions", ctx->kver);
  GString *s = build_rodata (ctx, mod->name, banner, size / 8);
  g_string_append_printf (s, "name=%s", mod->name);
  g_string_append_c (s, '\0');
  return s;
}

static Module *
add_module (GenCtx *ctx, guint index)
{
  Rng r;
  rng_initf (&r, ctx->seed, "module:%u", index);
  Module *mod = g_new0 (Module, 1);
  mod->name = unique_name (ctx, "module", &r, module_names, G_N_ELEMENTS (module_names), index);
  mod->subsys = module_subsys[rng_range (&r, G_N_ELEMENTS (module_subsys))];
  mod->deps = g_ptr_array_new_with_free_func (g_free);
  /* Depend only on earlier modules, as modprobe ordering would. */
  guint n_deps = ctx->modules->len > 0 ? rng_between (&r, 0, 3) : 0;
  for (guint i = 0; i < n_deps; i++)
    {
      Module *dep = ctx->modules->pdata[rng_range (&r, ctx->modules->len)];
      g_ptr_array_add (mod->deps, g_strdup (dep->name));
    }
  gsize size = rng_skewed (&r, 5 * 1024, 80 * 1024);
  ElfModel *m = elf_new (ctx, &r, ET_REL, 0, size, module_rodata (ctx, mod, size));
  g_autofree char *path = module_path (ctx, mod);
  tree_add_elf (ctx->tree, path, 0644, m);
  g_ptr_array_add (ctx->modules, mod);
  return mod;
}

static GString *
vmlinuz_rodata (GenCtx *ctx)
{
  g_autofree char *banner
      = g_strdup_printf ("Linux version %s (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) "
                         "12.2.0) #1 SMP PREEMPT_DYNAMIC Debian",
                         ctx->kver);
  return build_rodata (ctx, "vmlinuz", banner, 96 * 1024);
}

static GString *
kernel_config (GenCtx *ctx)
{
  Rng r;
  rng_init (&r, ctx->seed, "kconfig");
  GString *s = g_string_new (NULL);
  g_string_append_printf (s,
                          "#\n# Automatically generated file; DO NOT EDIT.\n"
                          "# Linux/x86 %s Kernel Configuration\n#\n",
                          ctx->kver);
  for (guint i = 0; i < 400; i++)
    {
      g_autofree char *sym = g_ascii_strup (rng_word (&r), -1);
      g_autofree char *sym2 = g_ascii_strup (rng_word (&r), -1);
      switch (rng_range (&r, 4))
        {
        case 0:
          g_string_append_printf (s, "# CONFIG_%s_%s_%u is not set\n", sym, sym2, i);
          break;
        case 1:
          g_string_append_printf (s, "CONFIG_%s_%s_%u=m\n", sym, sym2, i);
          break;
        default:
          g_string_append_printf (s, "CONFIG_%s_%s_%u=y\n", sym, sym2, i);
          break;
        }
    }
  return s;
}

static void
add_etc (GenCtx *ctx)
{
  Tree *t = ctx->tree;
  static const char *const conf_paths[] = {
    "etc/adduser.conf",
    "etc/deluser.conf",
    "etc/sysctl.conf",
    "etc/sysctl.d/99-local.conf",
    "etc/systemd/journald.conf",
    "etc/systemd/logind.conf",
    "etc/systemd/system.conf",
    "etc/systemd/resolved.conf",
    "etc/systemd/timesyncd.conf",
    "etc/apt/apt.conf.d/70debconf.conf",
    "etc/apt/apt.conf.d/50unattended-upgrades.conf",
    "etc/default/grub.conf",
    "etc/security/limits.conf",
    "etc/security/access.conf",
    "etc/ld.so.conf.d/x86_64-linux-gnu.conf",
    "etc/nsswitch.conf",
    "etc/gai.conf",
    "etc/logrotate.conf",
    "etc/modprobe.d/blacklist.conf",
    "etc/ssh/sshd_config",
    "etc/ssh/ssh_config",
    "etc/ucf.conf",
  };
  for (guint i = 0; i < G_N_ELEMENTS (conf_paths); i++)
    {
      tree_add_text (t, conf_paths[i], 0644, gen_conf (ctx, conf_paths[i], 8, 60));
      g_ptr_array_add (ctx->confs, g_strdup (conf_paths[i]));
    }
  /* Per-"application" configuration; this is what --scale grows. */
  Rng r;
  rng_init (&r, ctx->seed, "etc-apps");
  for (guint i = 0; i < 8 * ctx->scale; i++)
    {
      g_autofree char *app = unique_name (ctx, "etc", &r, NULL, 0, 0);
      g_autofree char *path = g_strdup_printf ("etc/%s/%s.conf", app, app);
      tree_add_text (t, path, 0644, gen_conf (ctx, path, 5, 120));
      g_ptr_array_add (ctx->confs, g_steal_pointer (&path));
    }

  tree_add_bytes (t, "etc/hostname", 0644, g_bytes_new_static ("deltafetch-test\n", 16));
  tree_add_text (t, "etc/fstab", 0644,
                 g_string_new ("# <file system> <mount point> <type> <options> <dump> <pass>\n"
                               "LABEL=root / ext4 errors=remount-ro 0 1\n"
                               "LABEL=boot /boot ext4 defaults 0 2\n"));
  tree_add_text (t, "etc/hosts", 0644,
                 g_string_new ("127.0.0.1\tlocalhost\n127.0.1.1\tdeltafetch-test\n"
                               "::1\tlocalhost ip6-localhost ip6-loopback\n"));
  tree_add_bytes (t, "etc/.pwd.lock", 0600, g_bytes_new_static ("", 0));

  /* 0444 like systemd's machine-id. */
  rng_init (&r, ctx->seed, "machine-id");
  GString *mid = g_string_new (NULL);
  for (guint i = 0; i < 4; i++)
    g_string_append_printf (mid, "%08x", (guint32)rng_next (&r));
  g_string_append_c (mid, '\n');
  tree_add_text (t, "etc/machine-id", 0444, mid);

  /* A private key must stay 0600. */
  GString *key = g_string_new ("-----BEGIN OPENSSH PRIVATE KEY-----\n");
  for (guint line = 0; line < 5; line++)
    {
      static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
      for (guint i = 0; i < 70; i++)
        g_string_append_c (key, b64[rng_range (&r, 64)]);
      g_string_append_c (key, '\n');
    }
  g_string_append (key, "-----END OPENSSH PRIVATE KEY-----\n");
  tree_add_text (t, "etc/ssh/ssh_host_ed25519_key", 0600, key);
  tree_add_text (t, "etc/ssh/ssh_host_ed25519_key.pub", 0644,
                 g_string_new ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDeltaFetchTestKey "
                               "root@deltafetch-test\n"));
}

static void
add_misc (GenCtx *ctx)
{
  Tree *t = ctx->tree;

  /* Merged-/usr compatibility links (relative). */
  tree_add_symlink (t, "bin", "usr/bin");
  tree_add_symlink (t, "sbin", "usr/sbin");
  tree_add_symlink (t, "lib", "usr/lib");
  tree_add_symlink (t, "lib64", "usr/lib64");

  /* Absolute links, and a dangling one (run/ is a tmpfs on a real system). */
  tree_add_symlink (t, "etc/os-release", "../usr/lib/os-release");
  tree_add_symlink (t, "etc/localtime", "/usr/share/zoneinfo/Etc/UTC");
  tree_add_symlink (t, "etc/resolv.conf", "../run/systemd/resolve/stub-resolv.conf");
  tree_add_symlink (t, "usr/bin/vi", "/etc/alternatives/vi");
  tree_add_symlink (t, "etc/alternatives/vi", "/usr/bin/nano");
  tree_add_symlink (t, "etc/alternatives/pager", "/usr/bin/less");
  tree_add_symlink (t, "usr/bin/sh", "dash");

  /* Empty directories. */
  tree_add_dir (t, "srv", 0755);
  tree_add_dir (t, "mnt", 0755);
  tree_add_dir (t, "media", 0755);

  /* root's home is the 0700 directory. */
  tree_add_dir (t, "root", 0700);
  tree_add_text (t, "root/.profile", 0644,
                 g_string_new ("# ~/.profile: executed by Bourne-compatible login shells.\n"
                               "mesg n 2> /dev/null || true\n"));

  /* A user's home: directory, files and a symlink owned by 1000:1000. */
  Entry *home = tree_add_dir (t, "home/user", 0755);
  entry_set_owner (home, 1000, 1000);
  entry_set_owner (tree_add_text (t, "home/user/.bashrc", 0644, gen_conf (ctx, "home/user/.bashrc", 10, 40)), 1000,
                   1000);
  entry_set_owner (
      tree_add_text (t, "home/user/.profile", 0644, g_string_new ("# ~/.profile\nPATH=\"$HOME/bin:$PATH\"\n")), 1000,
      1000);
  entry_set_owner (tree_add_symlink (t, "home/user/.bash_profile", ".profile"), 1000, 1000);

  /* Empty files; wtmp belongs to group 5 (tty). */
  tree_add_bytes (t, "var/lib/dpkg/lock", 0644, g_bytes_new_static ("", 0));
  entry_set_owner (tree_add_bytes (t, "var/log/wtmp", 0644, g_bytes_new_static ("", 0)), 0, 5);

  /* Identical content in several places. */
  Rng r;
  rng_init (&r, ctx->seed, "zoneinfo");
  GString *tz = g_string_new ("TZif2");
  g_string_append_len (tz, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 15);
  for (guint i = 0; i < 96; i++)
    g_string_append_c (tz, (char)rng_range (&r, 8));
  g_string_append (tz, "\nUTC0\n");
  gsize tzlen = tz->len;
  g_autoptr (GBytes) tzb = g_bytes_new_take (g_string_free (tz, FALSE), tzlen);
  tree_add_bytes (t, "usr/share/zoneinfo/Etc/UTC", 0644, g_bytes_ref (tzb));
  tree_add_bytes (t, "usr/share/zoneinfo/Etc/Zulu", 0644, g_bytes_ref (tzb));
  tree_add_bytes (t, "usr/share/zoneinfo/UTC", 0644, g_bytes_ref (tzb));

  /* A deep directory chain, as nested node_modules produce. */
  GString *deep = g_string_new ("usr/lib/node_modules");
  static const char *const deep_names[] = { "npm",          "node_modules", "cacache", "node_modules", "ssri",
                                            "node_modules", "minipass",     "lib",     "internal",     "streams" };
  for (guint i = 0; i < G_N_ELEMENTS (deep_names); i++)
    {
      g_string_append_printf (deep, "/%s", deep_names[i]);
      g_autofree char *file = g_strdup_printf ("%s/index.js", deep->str);
      GString *js = g_string_new ("'use strict'\n");
      rng_initf (&r, ctx->seed, "js:%u", i);
      for (guint l = 0, n = rng_between (&r, 5, 40); l < n; l++)
        {
          g_string_append (js, "const ");
          append_words (js, &r, 2, "_");
          g_string_append_printf (js, " = require('./%s')\n", rng_word (&r));
        }
      tree_add_text (t, file, 0644, js);
    }
  g_string_free (deep, TRUE);

  /* Helper script; becomes executable in v2 (a mode-only change). */
  tree_add_text (t, "usr/libexec/deltafetch/post-update.sh", 0644,
                 g_string_new ("#!/bin/sh\nset -e\nexec /usr/sbin/sysctl --system\n"));

  /* Fixed-size /boot/config, renamed and edited in v2. */
  g_autofree char *config = g_strdup_printf ("boot/config-%s", ctx->kver);
  tree_add_text (t, config, 0644, kernel_config (ctx));
}

static void
add_xattrs (GenCtx *ctx)
{
  Tree *t = ctx->tree;
  entry_set_xattr (tree_lookup (t, "usr/bin/ping"), "user.deltafetch.test", "cap_net_raw", 11);
  entry_set_xattr (tree_lookup (t, "etc/hostname"), "user.deltafetch.test", "host", 4);
  entry_set_xattr (tree_lookup (t, "etc/ssh"), "user.deltafetch.test", "sshdir", 6);
  Entry *fstab = tree_lookup (t, "etc/fstab");
  entry_set_xattr (fstab, "user.deltafetch.test", "fstab", 5);
  entry_set_xattr (fstab, "user.deltafetch.origin", "generated", 9);
  static const guint8 blob[] = { 0x00, 'd', 'f', 0x00, 0xff, 0x01, 0x7f };
  entry_set_xattr (tree_lookup (t, "usr/sbin/sshd"), "user.deltafetch.blob", blob, sizeof blob);
}

static void
add_packages (GenCtx *ctx)
{
  Rng names;
  rng_init (&names, ctx->seed, "package-names");
  guint n = 24 * ctx->scale;
  for (guint i = 0; i < n; i++)
    {
      Package *pkg = g_new0 (Package, 1);
      pkg->name = unique_name (ctx, "package", &names, package_names, G_N_ELEMENTS (package_names), i);
      Rng r;
      rng_initf (&r, ctx->seed, "package:%s", pkg->name);
      pkg->ver[0] = rng_between (&r, 0, 4);
      pkg->ver[1] = rng_between (&r, 0, 3);
      pkg->ver[2] = 0;
      pkg->debrev = 1;
      pkg->installed_size = rng_between (&r, 50, 9000);
      /* Every third package ships the plain license as its copyright file,
       * identical to the common-licenses copy. */
      pkg->license = license_names[i % 3 == 0 ? 0 : rng_range (&r, 3)];
      pkg->stanzas = g_ptr_array_new_with_free_func (g_free);
      pkg->day = rng_between (&r, 0, 200);
      guint history = rng_between (&r, 3, 30);
      g_ptr_array_add (pkg->stanzas, changelog_stanza (ctx, pkg));
      for (guint h = 1; h < history; h++)
        package_bump (ctx, pkg, &r);
      g_ptr_array_add (ctx->packages, pkg);
    }
}

static void
add_locales (GenCtx *ctx)
{
  static const char *const domains[] = { "coreutils", "grep", "tar", "util-linux" };
  for (guint i = 0; i < G_N_ELEMENTS (domains); i++)
    {
      Domain *d = g_new0 (Domain, 1);
      d->name = g_strdup (domains[i]);
      d->msgids = g_ptr_array_new_with_free_func (g_free);
      Rng r;
      rng_initf (&r, ctx->seed, "domain:%s", d->name);
      for (guint m = 0, n = rng_between (&r, 10, 40); m < n; m++)
        {
          GString *s = g_string_new (NULL);
          append_sentence (s, &r, 2, 8);
          g_ptr_array_add (d->msgids, g_string_free (s, FALSE));
        }
      g_ptr_array_add (ctx->domains, d);
    }

  static const char *const codes[][2] = {
    { "de", "de" }, { "fr", "fr" }, { "es", "es" }, { "it", "it" }, { "pt_BR", "pt" }, { "pt", "pt" },
    { "ja", "ja" }, { "ru", "ru" }, { "nl", "nl" }, { "sv", "sv" }, { "en_GB", "en" }, { "en_AU", "en" },
  };
  Rng names;
  rng_init (&names, ctx->seed, "locale-names");
  guint n = 12 * ctx->scale;
  for (guint i = 0; i < n; i++)
    {
      Locale *loc = g_new0 (Locale, 1);
      if (i < G_N_ELEMENTS (codes))
        {
          loc->code = unique_name (ctx, "locale", &names, &codes[i][0], 1, 0);
          loc->translation_key = g_strdup (codes[i][1]);
        }
      else
        {
          loc->code = unique_name (ctx, "locale", &names, NULL, 0, 0);
          loc->translation_key = g_strdup (loc->code);
        }
      g_ptr_array_add (ctx->locales, loc);
    }
}

static void
build_v1 (GenCtx *ctx)
{
  Tree *t = ctx->tree;

  add_etc (ctx);

  Rng r;
  rng_init (&r, ctx->seed, "bin-names");
  for (guint i = 0; i < 24 * ctx->scale; i++)
    {
      g_autofree char *name = unique_name (ctx, "bin", &r, bin_names, G_N_ELEMENTS (bin_names), i);
      add_program (ctx, "usr/bin", name, strcmp (name, "su") == 0 ? 04755 : 0755);
    }
  for (guint i = 0; i < 8 * ctx->scale; i++)
    {
      g_autofree char *name = unique_name (ctx, "bin", &r, sbin_names, G_N_ELEMENTS (sbin_names), i);
      add_program (ctx, "usr/sbin", name, 0755);
    }

  /* The dynamic loader, reached through an absolute symlink. */
  {
    Rng lr;
    rng_init (&lr, ctx->seed, "ld.so");
    GString *rodata = build_rodata (ctx, "ld.so", "ld.so (Debian GLIBC 2.36-9)", 2048);
    tree_add_elf (t, LIBDIR "/ld-linux-x86-64.so.2", 0755, elf_new (ctx, &lr, ET_DYN, 0, 40 * 1024, rodata));
    tree_add_symlink (t, "usr/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2");
  }

  rng_init (&r, ctx->seed, "lib-names");
  for (guint i = 0; i < 8 * ctx->scale; i++)
    {
      g_autofree char *name = unique_name (ctx, "lib", &r, lib_names, G_N_ELEMENTS (lib_names), i);
      if (i >= G_N_ELEMENTS (lib_names))
        {
          g_autofree char *prefixed = g_strconcat ("lib", name, NULL);
          add_library (ctx, prefixed);
        }
      else
        add_library (ctx, name);
    }

  for (guint i = 0; i < 30 * ctx->scale; i++)
    add_module (ctx, i);

  {
    Rng kr;
    rng_init (&kr, ctx->seed, "vmlinuz");
    g_autofree char *path = g_strdup_printf ("boot/vmlinuz-%s", ctx->kver);
    tree_add_elf (t, path, 0644, elf_new (ctx, &kr, ET_EXEC, 0x1000000, 1024 * 1024, vmlinuz_rodata (ctx)));
  }

  add_misc (ctx);
  add_packages (ctx);
  add_locales (ctx);
  add_xattrs (ctx);
}

/* ------------------------------------------------------------------------ */
/* Version 2                                                                */
/* ------------------------------------------------------------------------ */

static void
bump_version (guint ver[3], Rng *r)
{
  if (rng_chance (r, 80))
    ver[2]++;
  else
    {
      ver[1]++;
      ver[2] = 0;
    }
}

static void
v2_programs (GenCtx *ctx)
{
  Tree *t = ctx->tree;
  g_autoptr (GPtrArray) removed = g_ptr_array_new ();
  for (guint i = 0; i < ctx->bins->len; i++)
    {
      Program *p = ctx->bins->pdata[i];
      Rng r;
      rng_initf (&r, ctx->seed, "v2:program:%s", p->path);
      Entry *e = tree_lookup (t, p->path);

      if (strcmp (p->path, "usr/bin/pager") == 0)
        {
          /* A regular file turns into a symlink. */
          tree_remove (t, p->path);
          tree_add_symlink (t, p->path, "/etc/alternatives/pager");
          g_ptr_array_add (removed, p);
          continue;
        }
      if (strcmp (p->path, "usr/bin/diff") == 0 || strcmp (p->path, "usr/bin/gawk") == 0)
        {
          tree_remove (t, p->path);
          g_ptr_array_add (removed, p);
          continue;
        }
      /* "cp" is pinned unchanged and "ls" pinned changed so every seed has
       * both kinds; the rest are a coin toss. */
      gboolean unchanged = strcmp (p->name, "cp") == 0 || (strcmp (p->name, "ls") != 0 && rng_chance (&r, 30));
      if (unchanged)
        continue;
      if (rng_chance (&r, 50))
        {
          bump_version (p->ver, &r);
          g_autofree char *v = version_string (p->ver);
          g_autofree char *banner = g_strdup_printf ("%s (deltafetch) %s", p->name, v);
          gsize rodata_len = e->elf->rodata->len;
          g_string_free (e->elf->rodata, TRUE);
          e->elf->rodata = build_rodata (ctx, p->path, banner, rodata_len);
        }
      elf_recompile (ctx, e->elf, &r, rng_between (&r, 1, 4));
    }
  for (guint i = 0; i < removed->len; i++)
    g_ptr_array_remove (ctx->bins, removed->pdata[i]);

  Rng r;
  rng_init (&r, ctx->seed, "v2:new-programs");
  for (guint i = 0; i < 2 * ctx->scale; i++)
    {
      g_autofree char *name = unique_name (ctx, "bin", &r, NULL, 0, 0);
      add_program (ctx, i % 2 == 0 ? "usr/bin" : "usr/sbin", name, 0755);
    }
}

static void
v2_libraries (GenCtx *ctx)
{
  Tree *t = ctx->tree;
  for (guint i = 0; i < ctx->libs->len; i++)
    {
      Library *l = ctx->libs->pdata[i];
      Rng r;
      rng_initf (&r, ctx->seed, "v2:library:%s", l->name);
      /* libz is pinned to change so every seed has a retargeted link. */
      if (strcmp (l->name, "libz") != 0 && rng_chance (&r, 50))
        continue;
      g_autofree char *old_path = library_path (l);
      g_autofree char *link = library_link (l);
      l->ver[2]++;
      g_autofree char *new_path = library_path (l);
      tree_rename (t, old_path, new_path);
      Entry *e = tree_lookup (t, new_path);
      gsize rodata_len = e->elf->rodata->len;
      g_string_free (e->elf->rodata, TRUE);
      e->elf->rodata = library_rodata (ctx, l, rodata_len * 10);
      elf_recompile (ctx, e->elf, &r, rng_between (&r, 1, 3));
      Entry *le = tree_lookup (t, link);
      g_free (le->target);
      le->target = g_strdup (strrchr (new_path, '/') + 1);
    }
}

static void
v2_kernel (GenCtx *ctx)
{
  Tree *t = ctx->tree;
  g_autofree char *old_kver = g_steal_pointer (&ctx->kver);
  ctx->kver = g_strdup (KVER_V2);

  g_autofree char *old_dir = g_strdup_printf ("usr/lib/modules/%s", old_kver);
  g_autofree char *new_dir = g_strdup_printf ("usr/lib/modules/%s", ctx->kver);
  tree_rename (t, old_dir, new_dir);

  for (guint i = 0; i < ctx->modules->len; i++)
    {
      Module *mod = ctx->modules->pdata[i];
      Rng r;
      rng_initf (&r, ctx->seed, "v2:module:%s", mod->name);
      if (i != 0 && rng_chance (&r, 20))
        continue;
      g_autofree char *path = module_path (ctx, mod);
      Entry *e = tree_lookup (t, path);
      gsize rodata_len = e->elf->rodata->len;
      g_string_free (e->elf->rodata, TRUE);
      e->elf->rodata = module_rodata (ctx, mod, rodata_len * 8);
      elf_recompile (ctx, e->elf, &r, rng_between (&r, 1, 3));
    }

  /* One module dropped, one new. */
  Module *gone = ctx->modules->pdata[ctx->modules->len / 2];
  g_autofree char *gone_path = module_path (ctx, gone);
  tree_remove (t, gone_path);
  g_ptr_array_remove (ctx->modules, gone);
  add_module (ctx, 1000000);

  g_autofree char *old_vmlinuz = g_strdup_printf ("boot/vmlinuz-%s", old_kver);
  g_autofree char *new_vmlinuz = g_strdup_printf ("boot/vmlinuz-%s", ctx->kver);
  tree_rename (t, old_vmlinuz, new_vmlinuz);
  Entry *e = tree_lookup (t, new_vmlinuz);
  g_string_free (e->elf->rodata, TRUE);
  e->elf->rodata = vmlinuz_rodata (ctx);
  Rng r;
  rng_init (&r, ctx->seed, "v2:vmlinuz");
  elf_recompile (ctx, e->elf, &r, rng_between (&r, 8, 16));

  g_autofree char *old_config = g_strdup_printf ("boot/config-%s", old_kver);
  g_autofree char *new_config = g_strdup_printf ("boot/config-%s", ctx->kver);
  tree_rename (t, old_config, new_config);
  e = tree_lookup (t, new_config);
  GBytes *edited = edit_text (&r, e->bytes);
  g_bytes_unref (e->bytes);
  e->bytes = edited;
}

static void
v2_etc (GenCtx *ctx)
{
  Tree *t = ctx->tree;
  for (guint i = 0; i < ctx->confs->len; i++)
    {
      const char *path = ctx->confs->pdata[i];
      Rng r;
      rng_initf (&r, ctx->seed, "v2:conf:%s", path);
      if (i != 0 && !rng_chance (&r, 30))
        continue;
      Entry *e = tree_lookup (t, path);
      GBytes *edited = edit_text (&r, e->bytes);
      g_bytes_unref (e->bytes);
      e->bytes = edited;
    }
  tree_remove (t, "etc/deluser.conf");
  tree_add_text (t, "etc/sysctl.d/50-deltafetch.conf", 0644, gen_conf (ctx, "etc/sysctl.d/50-deltafetch.conf", 4, 20));

  /* Metadata-only changes: same bytes, new xattr value / new mode. */
  entry_set_xattr (tree_lookup (t, "etc/hostname"), "user.deltafetch.test", "host-v2", 7);
  tree_lookup (t, "usr/libexec/deltafetch/post-update.sh")->mode = 0755;

  tree_remove (t, "etc/alternatives/vi");
  tree_add_symlink (t, "etc/alternatives/vi", "/usr/bin/ls");
}

static void
v2_packages (GenCtx *ctx)
{
  for (guint i = 0; i < ctx->packages->len; i++)
    {
      Package *pkg = ctx->packages->pdata[i];
      Rng r;
      rng_initf (&r, ctx->seed, "v2:package:%s", pkg->name);
      if (i != 0 && !rng_chance (&r, 35))
        continue;
      for (guint n = rng_between (&r, 1, 2); n > 0; n--)
        package_bump (ctx, pkg, &r);
    }
  g_ptr_array_remove_index (ctx->packages, ctx->packages->len - 1);

  Rng r;
  rng_init (&r, ctx->seed, "v2:new-package");
  Package *pkg = g_new0 (Package, 1);
  pkg->name = unique_name (ctx, "package", &r, NULL, 0, 0);
  pkg->ver[0] = 1;
  pkg->debrev = 1;
  pkg->installed_size = rng_between (&r, 50, 900);
  pkg->license = license_names[1];
  pkg->stanzas = g_ptr_array_new_with_free_func (g_free);
  pkg->day = 400;
  g_ptr_array_add (pkg->stanzas, changelog_stanza (ctx, pkg));
  g_ptr_array_add (ctx->packages, pkg);
}

static void
v2_locales (GenCtx *ctx)
{
  /* New messages in one domain: all its catalogs change. */
  Domain *d = ctx->domains->pdata[1];
  Rng r;
  rng_init (&r, ctx->seed, "v2:domain");
  for (guint i = 0; i < 3; i++)
    {
      GString *s = g_string_new (NULL);
      append_sentence (s, &r, 2, 8);
      g_ptr_array_add (d->msgids, g_string_free (s, FALSE));
    }
  Locale *loc = g_new0 (Locale, 1);
  loc->code = g_strdup ("fi");
  loc->translation_key = g_strdup ("fi");
  g_ptr_array_add (ctx->locales, loc);
}

static void
apply_v2 (GenCtx *ctx)
{
  ctx->os_version = "12.6";
  v2_programs (ctx);
  v2_libraries (ctx);
  v2_kernel (ctx);
  v2_etc (ctx);
  v2_packages (ctx);
  v2_locales (ctx);
}

/* ------------------------------------------------------------------------ */
/* Derived files                                                            */
/* ------------------------------------------------------------------------ */

static gint
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *)a, *(const char *const *)b);
}

static void
finalize_modules (GenCtx *ctx)
{
  g_autoptr (GHashTable) present = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < ctx->modules->len; i++)
    {
      Module *mod = ctx->modules->pdata[i];
      g_hash_table_insert (present, mod->name, mod);
    }
  g_autoptr (GPtrArray) lines = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < ctx->modules->len; i++)
    {
      Module *mod = ctx->modules->pdata[i];
      GString *s = g_string_new (NULL);
      g_string_append_printf (s, "kernel/drivers/%s/%s.ko:", mod->subsys, mod->name);
      for (guint d = 0; d < mod->deps->len; d++)
        {
          Module *dep = g_hash_table_lookup (present, mod->deps->pdata[d]);
          if (dep != NULL)
            g_string_append_printf (s, " kernel/drivers/%s/%s.ko", dep->subsys, dep->name);
        }
      g_ptr_array_add (lines, g_string_free (s, FALSE));
    }
  g_ptr_array_sort (lines, compare_strings);
  GString *dep = g_string_new (NULL);
  for (guint i = 0; i < lines->len; i++)
    g_string_append_printf (dep, "%s\n", (const char *)lines->pdata[i]);
  g_autofree char *path = g_strdup_printf ("usr/lib/modules/%s/modules.dep", ctx->kver);
  tree_add_text (ctx->tree, path, 0644, dep);
}

static void
cpio_header (GString *s, const char *name, gsize size)
{
  g_string_append_printf (s, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%s", 0u, 0100644u, 0u, 0u, 1u,
                          0u, (guint)size, 0u, 0u, 0u, 0u, (guint)strlen (name) + 1, 0u, name);
  g_string_append_c (s, '\0');
}

/* An initramfs: a cpio-like archive of modules plus opaque firmware blobs,
 * gzip'd. Rebuilt from the current modules, so v2's bytes differ
 * throughout, as with a real initramfs rebuild. */
static gboolean
finalize_initrd (GenCtx *ctx, GError **error)
{
  const gsize target = 300 * 1024;
  g_autoptr (GZlibCompressor) zc = g_zlib_compressor_new (G_ZLIB_COMPRESSOR_FORMAT_GZIP, 6);
  GConverter *conv = G_CONVERTER (zc);
  g_autoptr (GByteArray) out = g_byte_array_new ();
  Rng r;
  rng_initf (&r, ctx->seed, "initrd:%s", ctx->kver);

  g_autoptr (GString) s = g_string_new (NULL);
  g_autoptr (GString) init = g_string_new ("#!/bin/sh\n");
  for (guint i = 0; i < ctx->modules->len; i++)
    g_string_append_printf (init, "modprobe %s\n", ((Module *)ctx->modules->pdata[i])->name);
  cpio_header (s, "init", init->len);
  g_string_append_len (s, init->str, init->len);
  if (!gzip_feed (conv, out, (const guint8 *)s->str, s->len, FALSE, error))
    return FALSE;

  guint8 blob[8192];
  for (guint i = 0; out->len < target && i < 4 * ctx->modules->len; i++)
    {
      Module *mod = ctx->modules->pdata[i % ctx->modules->len];
      g_autofree char *path = module_path (ctx, mod);
      g_autoptr (GBytes) bytes = elf_serialize (tree_lookup (ctx->tree, path)->elf);
      g_string_truncate (s, 0);
      cpio_header (s, path, g_bytes_get_size (bytes));
      if (!gzip_feed (conv, out, (const guint8 *)s->str, s->len, FALSE, error)
          || !gzip_feed (conv, out, g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes), FALSE, error))
        return FALSE;

      for (guint j = 0; j < sizeof blob; j += 8)
        put_le64 (blob + j, rng_next (&r));
      g_string_truncate (s, 0);
      g_autofree char *fw = g_strdup_printf ("usr/lib/firmware/fw-%u.bin", i);
      cpio_header (s, fw, sizeof blob);
      if (!gzip_feed (conv, out, (const guint8 *)s->str, s->len, FALSE, error)
          || !gzip_feed (conv, out, blob, sizeof blob, FALSE, error))
        return FALSE;
    }
  g_string_truncate (s, 0);
  cpio_header (s, "TRAILER!!!", 0);
  if (!gzip_feed (conv, out, (const guint8 *)s->str, s->len, TRUE, error))
    return FALSE;

  g_autofree char *path = g_strdup_printf ("boot/initrd.img-%s", ctx->kver);
  tree_add_bytes (ctx->tree, path, 0644, g_byte_array_free_to_bytes (g_steal_pointer (&out)));
  return TRUE;
}

static void
finalize_packages (GenCtx *ctx)
{
  Tree *t = ctx->tree;
  for (guint i = 0; i < G_N_ELEMENTS (license_names); i++)
    {
      g_autofree char *path = g_strdup_printf ("usr/share/common-licenses/%s", license_names[i]);
      tree_add_text (t, path, 0644, gen_license (ctx, license_names[i]));
    }

  GString *status = g_string_new (NULL);
  for (guint i = 0; i < ctx->packages->len; i++)
    {
      Package *pkg = ctx->packages->pdata[i];
      Rng r;
      rng_initf (&r, ctx->seed, "status:%s", pkg->name);

      GString *cl = g_string_new (NULL);
      for (guint s = 0; s < pkg->stanzas->len; s++)
        g_string_append (cl, pkg->stanzas->pdata[s]);
      g_autofree char *cl_path = g_strdup_printf ("usr/share/doc/%s/changelog.Debian.gz", pkg->name);
      tree_add_gzip (t, cl_path, 0644, cl);

      GString *copyright = gen_license (ctx, pkg->license);
      if (i % 3 != 0)
        {
          g_autofree char *hdr
              = g_strdup_printf ("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
                                 "Upstream-Name: %s\n\nFiles: *\nLicense: %s\n\n",
                                 pkg->name, pkg->license);
          g_string_prepend (copyright, hdr);
        }
      g_autofree char *cr_path = g_strdup_printf ("usr/share/doc/%s/copyright", pkg->name);
      tree_add_text (t, cr_path, 0644, copyright);

      const char *priority = rng_chance (&r, 50) ? "optional" : "important";
      const char *section = rng_word (&r);
      g_string_append_printf (status,
                              "Package: %s\nStatus: install ok installed\n"
                              "Priority: %s\nSection: %s\nInstalled-Size: %u\n"
                              "Maintainer: Debian Maintainers <debian@example.org>\n"
                              "Architecture: amd64\nVersion: %u.%u.%u-%u\n",
                              pkg->name, priority, section, pkg->installed_size, pkg->ver[0], pkg->ver[1], pkg->ver[2],
                              pkg->debrev);
      g_string_append (status, "Depends: libc6 (>= 2.36)");
      for (guint d = rng_range (&r, 3); d > 0; d--)
        {
          Package *dep = ctx->packages->pdata[rng_range (&r, ctx->packages->len)];
          g_string_append_printf (status, ", %s", dep->name);
        }
      g_string_append (status, "\nDescription: ");
      append_sentence (status, &r, 3, 7);
      g_string_append (status, "\n ");
      append_sentence (status, &r, 10, 30);
      g_string_append (status, "\n\n");
    }
  tree_add_text (t, "var/lib/dpkg/status", 0644, status);
}

static void
finalize_locales (GenCtx *ctx)
{
  for (guint l = 0; l < ctx->locales->len; l++)
    {
      Locale *loc = ctx->locales->pdata[l];
      for (guint d = 0; d < ctx->domains->len; d++)
        {
          Domain *dom = ctx->domains->pdata[d];
          g_autofree char *path = g_strdup_printf ("usr/share/locale/%s/LC_MESSAGES/%s.mo", loc->code, dom->name);
          tree_add_bytes (ctx->tree, path, 0644, gen_mo (ctx, dom, loc));
        }
    }
}

/* --small-files=N: N small text files (a few hundred bytes to a few KiB)
 * spread over 97 x 53 directories, as documentation trees and language
 * runtimes have them. Version 2 deletes 1 % of them, changes a line in 5 %
 * and adds N / 50 new ones. */
static void
add_small_files (GenCtx *ctx)
{
  guint total = ctx->small_files + (ctx->version == 2 ? ctx->small_files / 50 : 0);
  for (guint i = 0; i < total; i++)
    {
      Rng r;
      rng_initf (&r, ctx->seed, "small:%u", i);
      guint fate = rng_between (&r, 0, 99);
      gboolean added = i >= ctx->small_files;
      if (ctx->version == 2 && !added && fate == 0)
        continue;
      g_autofree char *path = g_strdup_printf ("usr/share/many/%02u/%02u/f%07u.txt", i % 97, (i / 97) % 53, i);
      GString *s = g_string_new (NULL);
      for (guint l = 0, n = rng_between (&r, 2, 40); l < n; l++)
        {
          append_words (s, &r, rng_between (&r, 3, 10), " ");
          g_string_append_c (s, '\n');
        }
      if (ctx->version == 2 && !added && fate <= 5)
        g_string_append_printf (s, "revised in version 2 (%u)\n", i);
      tree_add_text (ctx->tree, path, 0644, s);
    }
}

static gboolean
finalize_tree (GenCtx *ctx, GError **error)
{
  finalize_modules (ctx);
  if (!finalize_initrd (ctx, error))
    return FALSE;
  finalize_packages (ctx);
  finalize_locales (ctx);

  GString *osr = g_string_new (NULL);
  g_string_append_printf (osr,
                          "PRETTY_NAME=\"Deltafetch Test GNU/Linux %s\"\nNAME=\"Deltafetch Test\"\n"
                          "VERSION_ID=\"12\"\nVERSION=\"%s (bookworm)\"\nID=debian\n",
                          ctx->os_version, ctx->os_version);
  tree_add_text (ctx->tree, "usr/lib/os-release", 0644, osr);

  if (ctx->large_size > 0)
    {
      Entry *e = tree_add (ctx->tree, "usr/share/images/disk.img", KIND_REG, 0644);
      e->data_kind = DATA_LARGE;
    }
  add_small_files (ctx);
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* Large file                                                               */
/* ------------------------------------------------------------------------ */

#define LARGE_BLOCK 4096
#define LARGE_BUF (1024 * 1024)
#define N_LARGE_SPANS 6

typedef struct
{
  guint64 seed;
  guint8 motifs[16][64];
} LargeGen;

/* One 4 KiB block, a pure function of (seed, salt, index) so any block can
 * be regenerated on its own. Mostly a repeated seeded motif stamped with its
 * block number (compressible, but not trivially deduplicated), some zero
 * blocks, some incompressible noise. */
static void
large_block (const LargeGen *g, guint64 salt, guint64 index, guint8 *out)
{
  guint64 x = g->seed ^ salt ^ (index * 0x9e3779b97f4a7c15ULL);
  guint64 h = splitmix64 (&x);
  guint kind = h & 15;
  if (kind < 2)
    memset (out, 0, LARGE_BLOCK);
  else if (kind < 4)
    {
      for (guint i = 0; i < LARGE_BLOCK; i += 8)
        put_le64 (out + i, splitmix64 (&x));
    }
  else
    {
      const guint8 *m = g->motifs[(h >> 8) & 15];
      for (guint i = 0; i < LARGE_BLOCK; i += 64)
        memcpy (out + i, m, 64);
      put_le64 (out, index);
      put_le64 (out + 8, h);
    }
}

static gboolean
write_large (GenCtx *ctx, int fd, const char *path, GError **error)
{
  const guint64 size = ctx->large_size;
  LargeGen g;
  g.seed = ctx->seed;
  Rng r;
  rng_init (&r, ctx->seed, "large:motifs");
  for (guint i = 0; i < 16; i++)
    for (guint j = 0; j < 64; j += 8)
      put_le64 (&g.motifs[i][j], rng_next (&r));

  /* v2 rewrites a few spans spread across the file, one per segment. */
  guint64 span_off[N_LARGE_SPANS], span_len[N_LARGE_SPANS];
  guint n_spans = ctx->version == 2 ? N_LARGE_SPANS : 0;
  rng_init (&r, ctx->seed, "large:spans");
  guint64 seg = size / N_LARGE_SPANS;
  for (guint i = 0; i < n_spans; i++)
    {
      guint64 want = rng_between (&r, 4096, 65536);
      guint64 len = MIN (want, seg);
      guint64 slack = seg - len;
      guint64 off = seg * i + (slack > 0 ? (rng_next (&r) % (slack + 1)) : 0);
      span_off[i] = off;
      span_len[i] = len;
    }

  /* Allocating the extents up front makes the writes several times cheaper
   * on ext4 (no per-write block allocation). Best effort only: the content
   * is identical either way. */
  if (size > 0)
    (void)fallocate (fd, 0, 0, (off_t)size);

  g_autofree guint8 *buf = g_malloc (LARGE_BUF);
  guint8 tmp[LARGE_BLOCK];
  for (guint64 pos = 0; pos < size; pos += LARGE_BUF)
    {
      guint64 chunk = MIN ((guint64)LARGE_BUF, size - pos);
      guint64 first = pos / LARGE_BLOCK;
      for (guint64 b = 0; b * LARGE_BLOCK < chunk; b++)
        large_block (&g, 0, first + b, buf + b * LARGE_BLOCK);

      for (guint i = 0; i < n_spans; i++)
        {
          guint64 s0 = MAX (span_off[i], pos);
          guint64 s1 = MIN (span_off[i] + span_len[i], pos + chunk);
          while (s0 < s1)
            {
              guint64 block = s0 / LARGE_BLOCK;
              guint64 block_end = MIN ((block + 1) * LARGE_BLOCK, s1);
              large_block (&g, 0x5632, block, tmp);
              memcpy (buf + (s0 - pos), tmp + (s0 - block * LARGE_BLOCK), block_end - s0);
              s0 = block_end;
            }
        }
      if (!write_all (fd, buf, chunk, path, error))
        return FALSE;
    }
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                  */
/* ------------------------------------------------------------------------ */

static gint
compare_entries (gconstpointer a, gconstpointer b)
{
  const Entry *ea = *(const Entry *const *)a;
  const Entry *eb = *(const Entry *const *)b;
  return strcmp (ea->path, eb->path);
}

static gboolean
apply_xattrs (GenCtx *ctx, int fd, const Entry *e, GError **error)
{
  if (!ctx->xattrs || e->xattrs == NULL)
    return TRUE;
  for (guint i = 0; i < e->xattrs->len; i++)
    {
      const Xattr *x = e->xattrs->pdata[i];
      gsize len;
      const void *value = g_bytes_get_data (x->value, &len);
      if (fsetxattr (fd, x->name, value, len, 0) < 0)
        {
          int errsv = errno;
          if (errsv == ENOTSUP)
            {
              g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                           "Setting xattr %s on %s: the filesystem does not support "
                           "user xattrs (use --no-xattrs)",
                           x->name, e->path);
              return FALSE;
            }
          errno = errsv;
          return set_errno_error (error, "Setting xattr on", e->path);
        }
    }
  return TRUE;
}

/* chown before chmod: chown clears the setuid bit. */
static gboolean
apply_owner_mode (GenCtx *ctx, int fd, const Entry *e, GError **error)
{
  if (ctx->owner && e->uid >= 0 && fchown (fd, (uid_t)e->uid, (gid_t)e->gid) < 0)
    return set_errno_error (error, "Changing owner of", e->path);
  if (fchmod (fd, e->mode) < 0)
    return set_errno_error (error, "Changing mode of", e->path);
  return TRUE;
}

static gboolean
write_regular (GenCtx *ctx, int dfd, const Entry *e, GError **error)
{
  int fd = openat (dfd, e->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return set_errno_error (error, "Creating", e->path);

  gboolean ok = FALSE;
  g_autoptr (GBytes) data = NULL;
  switch (e->data_kind)
    {
    case DATA_BYTES:
      data = g_bytes_ref (e->bytes);
      break;
    case DATA_GZIP:
      data = gzip_bytes (e->bytes, error);
      if (data == NULL)
        goto out;
      break;
    case DATA_ELF:
      data = elf_serialize (e->elf);
      break;
    case DATA_LARGE:
      if (!write_large (ctx, fd, e->path, error))
        goto out;
      break;
    case DATA_NONE:
      break;
    }
  if (data != NULL)
    {
      gsize len;
      const guint8 *p = g_bytes_get_data (data, &len);
      if (!write_all (fd, p, len, e->path, error))
        goto out;
    }
  if (!apply_owner_mode (ctx, fd, e, error) || !apply_xattrs (ctx, fd, e, error))
    goto out;
  ok = TRUE;
out:
  if (close (fd) < 0 && ok)
    return set_errno_error (error, "Closing", e->path);
  return ok;
}

static gboolean
write_tree (GenCtx *ctx, int dfd, GError **error)
{
  GPtrArray *entries = ctx->tree->entries;
  g_ptr_array_sort (entries, compare_entries);

  /* Sorting puts every directory before its contents. Directories are made
   * owner-only writable first and get their real metadata at the end, so a
   * restrictive mode can't get in the way of filling them. */
  for (guint i = 0; i < entries->len; i++)
    {
      const Entry *e = entries->pdata[i];
      switch (e->kind)
        {
        case KIND_DIR:
          if (mkdirat (dfd, e->path, 0700) < 0)
            return set_errno_error (error, "Creating directory", e->path);
          break;
        case KIND_REG:
          if (!write_regular (ctx, dfd, e, error))
            return FALSE;
          break;
        case KIND_SYMLINK:
          if (symlinkat (e->target, dfd, e->path) < 0)
            return set_errno_error (error, "Creating symlink", e->path);
          if (ctx->owner && e->uid >= 0
              && fchownat (dfd, e->path, (uid_t)e->uid, (gid_t)e->gid, AT_SYMLINK_NOFOLLOW) < 0)
            return set_errno_error (error, "Changing owner of", e->path);
          break;
        }
    }

  for (guint i = entries->len; i > 0; i--)
    {
      const Entry *e = entries->pdata[i - 1];
      if (e->kind != KIND_DIR)
        continue;
      int fd = openat (dfd, e->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0)
        return set_errno_error (error, "Opening directory", e->path);
      gboolean ok = apply_owner_mode (ctx, fd, e, error) && apply_xattrs (ctx, fd, e, error);
      close (fd);
      if (!ok)
        return FALSE;
    }

  if (fchmod (dfd, 0755) < 0)
    return set_errno_error (error, "Changing mode of", "output directory");
  return TRUE;
}

/* OUTDIR must be absent (we create it) or an empty directory. */
static int
open_outdir (const char *path, GError **error)
{
  struct stat st;
  if (stat (path, &st) == 0)
    {
      if (!S_ISDIR (st.st_mode))
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_DIRECTORY, "%s exists and is not a directory", path);
          return -1;
        }
      g_autoptr (GDir) dir = g_dir_open (path, 0, error);
      if (dir == NULL)
        return -1;
      if (g_dir_read_name (dir) != NULL)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS, "%s exists and is not empty", path);
          return -1;
        }
    }
  else if (errno != ENOENT)
    {
      set_errno_error (error, "Checking", path);
      return -1;
    }
  else if (g_mkdir_with_parents (path, 0755) < 0)
    {
      set_errno_error (error, "Creating", path);
      return -1;
    }

  int dfd = open (path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    set_errno_error (error, "Opening", path);
  return dfd;
}

/* ------------------------------------------------------------------------ */
/* main                                                                     */
/* ------------------------------------------------------------------------ */

static gboolean
parse_u64 (const char *option, const char *str, guint64 *out, GError **error)
{
  if (!g_ascii_string_to_unsigned (str, 10, 0, G_MAXUINT64, out, NULL))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "%s expects a non-negative integer, got \"%s\"",
                   option, str);
      return FALSE;
    }
  return TRUE;
}

static int
usage_error (const char *msg)
{
  g_printerr ("df-gen-tree: %s (try --help)\n", msg);
  return 2;
}

int
main (int argc, char **argv)
{
  g_autofree char *opt_seed = NULL;
  g_autofree char *opt_large = NULL;
  gint opt_version = 0;
  gint opt_scale = 1;
  gint opt_small = 0;
  gboolean opt_no_xattrs = FALSE;
  gboolean opt_no_owner = FALSE;
  g_auto (GStrv) rest = NULL;
  GOptionEntry entries[] = {
    { "seed", 0, 0, G_OPTION_ARG_STRING, &opt_seed, "Seed for all generated data (required)", "N" },
    { "version", 0, 0, G_OPTION_ARG_INT, &opt_version, "Tree version to generate, 1 or 2 (required)", "1|2" },
    { "scale", 0, 0, G_OPTION_ARG_INT, &opt_scale, "Multiply the number of files (default 1)", "N" },
    { "large-file", 0, 0, G_OPTION_ARG_STRING, &opt_large,
      "Also write usr/share/images/disk.img of this size (default 0: none)", "BYTES" },
    { "small-files", 0, 0, G_OPTION_ARG_INT, &opt_small,
      "Also write N small text files under usr/share/many (default 0)", "N" },
    { "no-xattrs", 0, 0, G_OPTION_ARG_NONE, &opt_no_xattrs, "Do not set extended attributes", NULL },
    { "no-owner", 0, 0, G_OPTION_ARG_NONE, &opt_no_owner, "Do not change ownership", NULL },
    { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &rest, NULL, "OUTDIR" },
    G_OPTION_ENTRY_NULL,
  };
  g_autoptr (GOptionContext) octx = g_option_context_new (NULL);
  g_option_context_set_summary (octx, "Generate a seeded OS-rootfs-like test tree.");
  g_option_context_add_main_entries (octx, entries, NULL);
  g_autoptr (GError) error = NULL;

  if (!g_option_context_parse (octx, &argc, &argv, &error))
    return usage_error (error->message);
  if (rest == NULL || rest[0] == NULL || rest[1] != NULL)
    return usage_error ("exactly one OUTDIR is required");
  if (opt_seed == NULL)
    return usage_error ("--seed is required");
  if (opt_version != 1 && opt_version != 2)
    return usage_error ("--version must be 1 or 2");
  if (opt_scale < 1 || opt_scale > 10000)
    return usage_error ("--scale must be between 1 and 10000");
  if (opt_small < 0 || opt_small > 10000000)
    return usage_error ("--small-files must be between 0 and 10000000");
  guint64 seed, large = 0;
  if (!parse_u64 ("--seed", opt_seed, &seed, &error)
      || (opt_large != NULL && !parse_u64 ("--large-file", opt_large, &large, &error)))
    return usage_error (error->message);

  /* Ownership can only be given away by root; as anyone else the files
   * simply stay ours. */
  gboolean owner = !opt_no_owner && geteuid () == 0;
  g_autoptr (GenCtx) ctx = gen_ctx_new (seed, (guint)opt_scale, (guint)opt_version, large, !opt_no_xattrs, owner);
  ctx->small_files = (guint)opt_small;

  /* Check OUTDIR before spending time on the model. */
  int dfd = open_outdir (rest[0], &error);
  if (dfd < 0)
    goto fail;
  build_v1 (ctx);
  if (opt_version == 2)
    apply_v2 (ctx);
  gboolean ok = finalize_tree (ctx, &error) && write_tree (ctx, dfd, &error);
  close (dfd);
  if (!ok)
    goto fail;
  return 0;

fail:
  g_printerr ("df-gen-tree: %s\n", error->message);
  return 1;
}
