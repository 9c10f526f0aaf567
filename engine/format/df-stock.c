#include "df-stock.h"

#include <fcntl.h>
#include <lzma.h>
#include <sys/stat.h>

#include "df-part.h"
#include "df-superblock.h"

#define STOCK_SUPERBLOCK_TYPE "(a{sv}tayay(a{sv}aya(say)sstayay)aya(uayttay)a(yaytt))"
#define STOCK_PAYLOAD_TYPE "(a(uuu)aa(ayay)ayay)"

/* Part payloads are decoded into a file, so they may be large; these bound
 * what a hostile delta can make us write or hold. The tables are held in
 * memory while the part runs (a real part has a few dozen modes and xattr
 * sets); the opcodes are read through a window. */
#define DF_STOCK_OPS_MAX (64 * DF_MIB) /* one part's opcodes */
#define DF_STOCK_SYMLINK_MAX 4096
/* xz -8, what ostree writes, needs 33 MiB to decode. */
#define DF_STOCK_XZ_MEMLIMIT (48 * DF_MIB)

void
df_stock_superblock_free (DfStockSuperblock *sb)
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
df_stock_superblock_sniff (GBytes *file)
{
  /* In the signed envelope (taya{sv}) the signed bytes start right after
   * the 8-byte magic; nothing needs parsing to look at them. */
  gsize n;
  const guint8 *d = g_bytes_get_data (file, &n);
  gsize at = n >= 8 && memcmp (d, DF_SIGNED_MAGIC, 8) == 0 ? 8 : 0;
  return n < at + 8 || memcmp (d + at, DF_SUPERBLOCK_MAGIC, 8) != 0;
}

char *
df_stock_delta_relpath (const char *from, const char *to)
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
        return df_throw (error, DF_ERROR_INVALID_DELTA, "stock superblock: unknown endianness '%c'", e);
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
#define BAD(...) return (df_throw (error, DF_ERROR_INVALID_DELTA, "stock superblock: " __VA_ARGS__), NULL)
  if (g_bytes_get_size (bytes) > DF_STOCK_SUPERBLOCK_MAX)
    BAD ("%zu bytes is over the limit", g_bytes_get_size (bytes));
  g_autoptr (GVariant) v = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE (STOCK_SUPERBLOCK_TYPE), bytes, FALSE));
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
  if (!df_delta_ends_read (from, to, commit, "stock superblock", &sb->has_from, sb->from, sb->from_hex, sb->to,
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
      df_throw (error, DF_ERROR_INVALID_ARGUMENT,
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

  g_autofree char *rel = df_stock_delta_relpath (sb->has_from ? sb->from_hex : NULL, sb->to_hex);
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
      if (!df_checksum_from_variant (sha, FALSE, p->sha256, NULL, "stock superblock: part checksum", error))
        return NULL;
      p->size = sized (sb->big_endian, size);
      p->usize = sized (sb->big_endian, usize);
      if (p->size > DF_STOCK_FILE_MAX || p->usize > DF_STOCK_FILE_MAX)
        BAD ("part %u declares %" G_GUINT64_FORMAT " bytes, %" G_GUINT64_FORMAT " unpacked (limit %" G_GUINT64_FORMAT ")",
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
      if (!df_checksum_from_variant (csum, FALSE, f->checksum, NULL, "stock superblock: fallback checksum", error))
        return NULL;
      if (f->objtype != OSTREE_OBJECT_TYPE_FILE && f->objtype != OSTREE_OBJECT_TYPE_DIR_TREE
          && f->objtype != OSTREE_OBJECT_TYPE_DIR_META)
        BAD ("fallback %u has type %u", i, f->objtype);
      f->size = sized (sb->big_endian, size);
      f->usize = sized (sb->big_endian, usize);
      if (f->size > DF_STOCK_FILE_MAX || f->usize > DF_STOCK_FILE_MAX)
        BAD ("fallback %u declares %" G_GUINT64_FORMAT " bytes, %" G_GUINT64_FORMAT " unpacked (limit %" G_GUINT64_FORMAT
             ")", i, f->size, f->usize, DF_STOCK_FILE_MAX);
    }
  return g_steal_pointer (&sb);
#undef BAD
}

DfStockSuperblock *
df_stock_superblock_parse_full (GBytes *file, const DfSignaturePolicy *policy, guint64 memory, GError **error)
{
  return df_signed_file_parse (file, (DfPlainParser)parse_plain, G_STRUCT_OFFSET (DfStockSuperblock, file), policy,
                               memory, error);
}

DfStockSuperblock *
df_stock_superblock_parse (GBytes *file, GError **error)
{
  return df_stock_superblock_parse_full (file, NULL, G_MAXUINT64, error);
}

/* ---------------------------------------------------------------------- */
/* Part files                                                               */

/* Reads @fd from @off into @buf (up to @len bytes); returns bytes read. */
static gssize
read_at (int fd, guint8 *buf, gsize len, guint64 off)
{
  gssize n;
  do
    n = pread (fd, buf, len, off);
  while (n < 0 && errno == EINTR);
  return n;
}

/* A byte source over an fd range or a memory block. */
typedef struct
{
  int fd;
  const guint8 *mem;
  guint64 off, end;
} Src;

static gssize
src_read (Src *s, guint8 *buf, gsize len)
{
  gsize n = MIN ((guint64)len, s->end - s->off);
  if (n == 0)
    return 0;
  gssize r;
  if (s->mem)
    memcpy (buf, s->mem + s->off, n), r = n;
  else
    r = read_at (s->fd, buf, n, s->off);
  if (r > 0)
    s->off += r;
  return r;
}

struct _DfStockDecoder
{
  lzma_stream s;
};

DfStockDecoder *
df_stock_decoder_new (void)
{
  DfStockDecoder *d = g_new0 (DfStockDecoder, 1);
  lzma_stream init = LZMA_STREAM_INIT;
  d->s = init;
  return d;
}

void
df_stock_decoder_free (DfStockDecoder *d)
{
  if (d == NULL)
    return;
  lzma_end (&d->s);
  g_free (d);
}

guint64
df_stock_payload_max (const DfStockPart *p)
{
  /* A payload holds the objects' bytes (their declared total, usize) or
   * bsdiff patches of them (their bytes plus 24-byte controls), the
   * source checksums, symlink targets (which the declared total leaves
   * out), the mode and xattr tables and the opcodes. */
  return p->usize + p->usize / DF_STOCK_PAYLOAD_SLACK_DIV + (guint64)p->n_objects * DF_STOCK_PAYLOAD_PER_OBJECT
         + DF_STOCK_PAYLOAD_BASE;
}

gboolean
df_stock_part_decode (const DfStockSuperblock *sb, guint i, int part_fd, int copy_dfd, int out_fd, guint64 *out_len,
                      DfStockDecoder *dec, GCancellable *c, GError **error)
{
  g_autoptr (DfStockDecoder) own = dec ? NULL : df_stock_decoder_new ();
  if (dec == NULL)
    dec = own;
  const DfStockPart *p = &sb->parts[i];
  Src src = { .fd = part_fd };
  if (p->inline_data)
    {
      src.mem = g_bytes_get_data (p->inline_data, NULL);
      src.end = g_bytes_get_size (p->inline_data);
    }
  else
    {
      struct stat st;
      if (fstat (part_fd, &st) < 0)
        return df_throw_errno (error, errno, "part %u", i);
      src.end = st.st_size;
    }
  if (src.end != p->size)
    return df_throw (error, DF_ERROR_INVALID_DELTA, "part %u: %" G_GUINT64_FORMAT " bytes, the superblock declares %" G_GUINT64_FORMAT,
                     i, src.end, p->size);
  if (src.end < 1)
    return df_throw (error, DF_ERROR_INVALID_DELTA, "part %u is empty", i);
  /* A part file on media we do not control (a USB stick, a FUSE mount)
   * could change between being hashed and being read again: it is copied
   * into a private temporary file while it is hashed, and decoded from
   * that copy, so liblzma only ever sees bytes that were hashed. */
  df_autofd copy = -1;
  if (copy_dfd >= 0 && src.mem == NULL)
    {
      copy = openat (copy_dfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
      if (copy < 0)
        return df_throw_errno (error, errno, "creating a temporary file in the repository");
    }
  g_autofree guint8 *buf = g_malloc (DF_STOCK_IO_CHUNK);
  /* The whole file is hashed before any byte of it is interpreted (stock
   * ostree decompresses first). */
  DfSha256 h;
  df_sha256_init (&h);
  for (;;)
    {
      guint64 at = src.off;
      gssize n = src_read (&src, buf, DF_STOCK_IO_CHUNK);
      if (n < 0)
        {
          df_sha256_clear (&h);
          return df_throw_errno (error, errno, "reading part %u", i);
        }
      if (n == 0)
        break;
      df_sha256_update (&h, buf, n);
      if (copy >= 0 && !df_pwrite_all (copy, buf, n, at, "a copy of the part", error))
        {
          df_sha256_clear (&h);
          return FALSE;
        }
    }
  guint8 actual[DF_SHA256_LEN];
  df_sha256_final (&h, actual);
  df_sha256_clear (&h);
  if (src.off != p->size)
    return df_throw (error, DF_ERROR_IO, "part %u ended early", i);
  if (memcmp (actual, p->sha256, DF_SHA256_LEN) != 0)
    {
      char a[65], e[65];
      df_hex (actual, a);
      df_hex (p->sha256, e);
      return df_throw (error, DF_ERROR_CORRUPT, "part %u: SHA-256 is %s, the superblock declares %s", i, a, e);
    }
  if (copy >= 0)
    src.fd = copy;

  /* Decoding stops at what the part's declared sizes allow, so a small
   * part cannot fill the disk. */
  guint64 max = df_stock_payload_max (p);
  src.off = 0;
  guint8 comp;
  if (src_read (&src, &comp, 1) != 1)
    return df_throw_errno (error, errno, "reading part %u", i);
  guint64 written = 0;
  g_autofree guint8 *out = g_malloc (DF_STOCK_IO_CHUNK);
  if (comp == 0)
    {
      for (;;)
        {
          gssize n = src_read (&src, buf, DF_STOCK_IO_CHUNK);
          if (n < 0)
            return df_throw_errno (error, errno, "reading part %u", i);
          if (n == 0)
            break;
          if (written + n > max)
            return df_throw (error, DF_ERROR_INVALID_DELTA,
                             "part %u: payload over the %" G_GUINT64_FORMAT " bytes its declared sizes allow", i, max);
          if (!df_pwrite_all (out_fd, buf, n, written, "payload", error))
            return FALSE;
          written += n;
        }
    }
  else if (comp == 'x')
    {
      /* One .xz stream with its integrity check, nothing after it. Setting
       * up the decoder again reuses its memory. */
      lzma_stream *sp = &dec->s;
      if (lzma_stream_decoder (sp, DF_STOCK_XZ_MEMLIMIT, 0) != LZMA_OK)
        return df_throw (error, DF_ERROR_FAILED, "part %u: cannot start the xz decoder", i);
      sp->next_in = NULL; /* nothing left over from an earlier part */
      sp->avail_in = 0;
      lzma_ret r = LZMA_OK;
      gboolean ok = TRUE;
      while (ok && r != LZMA_STREAM_END)
        {
          if (sp->avail_in == 0)
            {
              gssize n = src_read (&src, buf, DF_STOCK_IO_CHUNK);
              if (n < 0)
                {
                  ok = df_throw_errno (error, errno, "reading part %u", i);
                  break;
                }
              sp->next_in = buf;
              sp->avail_in = n;
            }
          /* Never more output than the bound leaves room for (plus one
           * byte, to tell a payload that goes on from one that ends). */
          gsize room = (gsize)MIN ((guint64)DF_STOCK_IO_CHUNK, max - written + 1);
          sp->next_out = out;
          sp->avail_out = room;
          r = lzma_code (sp, sp->avail_in == 0 ? LZMA_FINISH : LZMA_RUN);
          gsize n = room - sp->avail_out;
          if (r != LZMA_OK && r != LZMA_STREAM_END)
            ok = df_throw (error, DF_ERROR_INVALID_DELTA, "part %u: xz data is corrupt (%s)", i,
                           r == LZMA_MEMLIMIT_ERROR ? "needs too much memory" : "lzma error");
          else if (written + n > max)
            ok = df_throw (error, DF_ERROR_INVALID_DELTA,
                           "part %u: payload over the %" G_GUINT64_FORMAT " bytes its declared sizes allow", i, max);
          else if (n > 0 && !df_pwrite_all (out_fd, out, n, written, "payload", error))
            ok = FALSE;
          written += n;
          if (ok && g_cancellable_set_error_if_cancelled (c, error))
            ok = FALSE;
        }
      gboolean trailing = sp->avail_in > 0 || src.off != src.end;
      if (!ok)
        return FALSE;
      if (trailing)
        return df_throw (error, DF_ERROR_INVALID_DELTA, "part %u: bytes after the xz stream", i);
    }
  else
    return df_throw (error, DF_ERROR_INVALID_DELTA, "part %u: unknown compression type %u", i, comp);
  *out_len = written;
  return TRUE;
}

/* ---------------------------------------------------------------------- */
/* Payloads                                                                 */

static gboolean
read_exact (int fd, guint8 *buf, gsize len, guint64 off, GError **error)
{
  return df_pread_all (fd, buf, len, off, "part payload", error);
}

static GVariant *
load_member (int fd, guint64 off, guint64 len, const char *type, GError **error)
{
  guint8 *buf = g_malloc (MAX (len, 1));
  if (!read_exact (fd, buf, len, off, error))
    {
      g_free (buf);
      return NULL;
    }
  GBytes *b = g_bytes_new_take (buf, len);
  GVariant *v = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE (type), b, FALSE));
  g_bytes_unref (b);
  return v;
}

gboolean
df_stock_payload_open (DfStockPayload *p, int fd, guint64 len, GError **error)
{
  memset (p, 0, sizeof *p);
  p->fd = fd;
#define BAD(...) return df_throw (error, DF_ERROR_INVALID_DELTA, "part payload: " __VA_ARGS__)
  /* The tuple's first three members are variable-sized: their ends are
   * framing offsets at the very end, the first member's last, each as wide
   * as the payload's size needs. */
  guint osz = len > G_MAXUINT32 ? 8 : len > G_MAXUINT16 ? 4 : len > G_MAXUINT8 ? 2 : 1;
  if (len < 3 * osz)
    BAD ("%" G_GUINT64_FORMAT " bytes", len);
  guint8 tail[24];
  if (!read_exact (fd, tail, 3 * osz, len - 3 * osz, error))
    return FALSE;
  guint64 end[3];
  for (guint k = 0; k < 3; k++)
    {
      guint64 v = 0;
      const guint8 *q = tail + (2 - k) * osz; /* member k's offset */
      for (guint b = 0; b < osz; b++)
        v |= (guint64)q[b] << (8 * b);
      end[k] = v;
    }
  guint64 body = len - 3 * osz;
  if (end[0] > end[1] || end[1] > end[2] || end[2] > body)
    BAD ("framing offsets %" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT " do not fit %" G_GUINT64_FORMAT
         " bytes",
         end[0], end[1], end[2], len);
  if (end[0] % 12 != 0)
    BAD ("mode table of %" G_GUINT64_FORMAT " bytes", end[0]);
  if (end[0] > DF_STOCK_PAYLOAD_TABLE_MAX || end[1] - end[0] > DF_STOCK_PAYLOAD_TABLE_MAX)
    BAD ("mode or xattr table over %u bytes", (guint)DF_STOCK_PAYLOAD_TABLE_MAX);
  if (body - end[2] > DF_STOCK_OPS_MAX)
    BAD ("%" G_GUINT64_FORMAT " bytes of opcodes", body - end[2]);
  p->modes = load_member (fd, 0, end[0], "a(uuu)", error);
  if (p->modes == NULL)
    return FALSE;
  p->xattrs = load_member (fd, end[0], end[1] - end[0], "aa(ayay)", error);
  if (p->xattrs == NULL)
    return FALSE;
  p->raw_off = end[1];
  p->raw_len = end[2] - end[1];
  p->ops_off = end[2];
  p->ops_len = body - end[2];
  return TRUE;
#undef BAD
}

void
df_stock_payload_clear (DfStockPayload *p)
{
  g_clear_pointer (&p->modes, g_variant_unref);
  g_clear_pointer (&p->xattrs, g_variant_unref);
}

GBytes *
df_stock_payload_read_ops (const DfStockPayload *p, GError **error)
{
  guint8 *buf = g_malloc (MAX (p->ops_len, 1));
  if (!read_exact (p->fd, buf, p->ops_len, p->ops_off, error))
    {
      g_free (buf);
      return NULL;
    }
  return g_bytes_new_take (buf, p->ops_len);
}

/* ---------------------------------------------------------------------- */
/* Programs                                                                 */

typedef struct
{
  const DfStockPart *part;
  DfStockPayload *pl;
  const DfStockSink *sink;
  gpointer user;
  guint64 pc; /* next opcode byte */
  guint8 *opwin; /* DF_STOCK_OPS_WINDOW bytes of opcodes from opwin_off */
  guint64 opwin_off;
  gsize opwin_len;
  guint index; /* next object of the part */
  guint64 produced; /* bytes of the objects begun so far */
  /* The open content object */
  gboolean open, skip;
  guint64 size, written;
  const guint8 *csum;
  /* The read source: set by 'r', opened by the sink only when a byte of it
   * is needed (then its size is known). */
  gboolean have_source, source_known;
  guint64 source_size;
  guint8 *buf; /* DF_STOCK_IO_CHUNK bytes */
  guint8 *buf2;
  /* A window of the data, so the many small reads (bspatch controls,
   * source checksums, small files) are copies, not system calls. */
  guint8 *win; /* DF_STOCK_IO_CHUNK bytes */
  guint64 win_off;
  gsize win_len;
} Exec;

#define OPBAD(...) df_throw (error, DF_ERROR_INVALID_DELTA, __VA_ARGS__)

/* The next opcode byte (x->pc < ops_len). */
static gboolean
op_byte (Exec *x, guint8 *out, GError **error)
{
  if (x->pc < x->opwin_off || x->pc >= x->opwin_off + x->opwin_len)
    {
      gsize n = MIN ((guint64)DF_STOCK_OPS_WINDOW, x->pl->ops_len - x->pc);
      x->opwin_len = 0;
      if (!read_exact (x->pl->fd, x->opwin, n, x->pl->ops_off + x->pc, error))
        return FALSE;
      x->opwin_off = x->pc;
      x->opwin_len = n;
    }
  *out = x->opwin[x->pc - x->opwin_off];
  x->pc++;
  return TRUE;
}

/* An unsigned LEB128 operand, at most 10 bytes. */
static gboolean
operand (Exec *x, guint64 *out, GError **error)
{
  guint64 v = 0;
  for (guint k = 0; k < 10; k++)
    {
      if (x->pc >= x->pl->ops_len)
        return OPBAD ("opcodes end inside an operand");
      guint8 b;
      if (!op_byte (x, &b, error))
        return FALSE;
      if (k == 9 && b > 1)
        return OPBAD ("operand over 64 bits");
      v |= (guint64)(b & 0x7f) << (7 * k);
      if (!(b & 0x80))
        {
          *out = v;
          return TRUE;
        }
    }
  return OPBAD ("operand over 64 bits");
}

static gboolean
raw_range (Exec *x, guint64 off, guint64 len, GError **error)
{
  guint64 end;
  if (!df_add_u64 (off, len, &end) || end > x->pl->raw_len)
    return OPBAD ("data %" G_GUINT64_FORMAT "+%" G_GUINT64_FORMAT " lies outside the part's %" G_GUINT64_FORMAT " bytes",
                  off, len, x->pl->raw_len);
  return TRUE;
}

/* @off and @len lie in the data (raw_range() checked them). */
static gboolean
raw_read (Exec *x, guint64 off, guint8 *buf, gsize len, GError **error)
{
  if (len >= DF_STOCK_IO_CHUNK / 2)
    return read_exact (x->pl->fd, buf, len, x->pl->raw_off + off, error);
  if (off < x->win_off || off + len > x->win_off + x->win_len)
    {
      gsize n = MIN ((guint64)DF_STOCK_IO_CHUNK, x->pl->raw_len - off);
      x->win_len = 0;
      if (!read_exact (x->pl->fd, x->win, n, x->pl->raw_off + off, error))
        return FALSE;
      x->win_off = off;
      x->win_len = n;
    }
  memcpy (buf, x->win + (off - x->win_off), len);
  return TRUE;
}

static const guint8 *
next_object (Exec *x, gboolean meta, GError **error)
{
  if (x->open)
    {
      OPBAD ("an object is opened while another is open");
      return NULL;
    }
  if (x->index >= x->part->n_objects)
    {
      OPBAD ("more objects than the part declares (%u)", x->part->n_objects);
      return NULL;
    }
  const guint8 *rec = x->part->objects + (gsize)x->index * DF_STOCK_OBJREC_LEN;
  gboolean is_meta = rec[0] != OSTREE_OBJECT_TYPE_FILE;
  if (meta != is_meta)
    {
      OPBAD ("object %u is a %s, the opcode makes a %s", x->index, ostree_object_type_to_string (rec[0]),
             meta ? "metadata object" : "file");
      return NULL;
    }
  return rec;
}

/* An object of @size bytes is begun: the part's objects may not add up to
 * more than it declares (usize), which the free-space check and the
 * payload bound were sized from. */
static gboolean
produce (Exec *x, guint64 size, GError **error)
{
  if (!df_add_u64 (x->produced, size, &x->produced) || x->produced > x->part->usize)
    return OPBAD ("the part's objects come to more than the %" G_GUINT64_FORMAT " bytes it declares", x->part->usize);
  return TRUE;
}

/* The size of the read source, opening it if no byte of it was needed yet. */
static gboolean
source_size (Exec *x, GError **error)
{
  if (x->source_known)
    return TRUE;
  if (!x->sink->source_size (x->user, &x->source_size, error))
    return FALSE;
  x->source_known = TRUE;
  return TRUE;
}

/* Streams @len bytes of the raw data at @off into the object. */
static gboolean
emit_raw (Exec *x, guint64 off, guint64 len, GError **error)
{
  while (len > 0)
    {
      gsize n = MIN (len, (guint64)DF_STOCK_IO_CHUNK);
      if (!raw_read (x, off, x->buf, n, error) || !x->sink->content_data (x->user, x->buf, n, error))
        return FALSE;
      off += n, len -= n;
    }
  return TRUE;
}

static gboolean
emit_source (Exec *x, guint64 off, guint64 len, GError **error)
{
  guint64 end;
  if (!source_size (x, error))
    return FALSE;
  if (!df_add_u64 (off, len, &end) || end > x->source_size)
    return OPBAD ("write of source bytes %" G_GUINT64_FORMAT "+%" G_GUINT64_FORMAT " outside its %" G_GUINT64_FORMAT,
                  off, len, x->source_size);
  while (len > 0)
    {
      gsize n = MIN (len, (guint64)DF_STOCK_IO_CHUNK);
      if (!x->sink->source_read (x->user, off, x->buf, n, error) || !x->sink->content_data (x->user, x->buf, n, error))
        return FALSE;
      off += n, len -= n;
    }
  return TRUE;
}

static gboolean
begin_content (Exec *x, const guint8 *rec, guint64 mode_idx, guint64 xattr_idx, guint64 size, const char *target,
               GError **error)
{
  if (mode_idx >= g_variant_n_children (x->pl->modes) || xattr_idx >= g_variant_n_children (x->pl->xattrs))
    return OPBAD ("mode %" G_GUINT64_FORMAT " or xattrs %" G_GUINT64_FORMAT " outside the part's tables", mode_idx,
                  xattr_idx);
  guint32 uid, gid, mode;
  g_variant_get_child (x->pl->modes, mode_idx, "(uuu)", &uid, &gid, &mode);
  uid = GUINT32_FROM_BE (uid), gid = GUINT32_FROM_BE (gid), mode = GUINT32_FROM_BE (mode);
  if ((mode & ~(S_IFMT | 07777)) != 0 || !(S_ISREG (mode) || S_ISLNK (mode)))
    return OPBAD ("file mode 0%o", mode);
  if (S_ISLNK (mode) != (target != NULL))
    return OPBAD ("symlink mode 0%o where the opcode does not allow it", mode);
  g_autoptr (GVariant) xv = g_variant_get_child_value (x->pl->xattrs, xattr_idx);
  g_autoptr (GVariant) xattrs = g_variant_get_normal_form (xv);
  if (!produce (x, size, error))
    return FALSE;
  x->csum = rec + 1;
  x->size = size;
  x->written = 0;
  x->skip = FALSE;
  if (!x->sink->content_begin (x->user, x->csum, uid, gid, mode, xattrs, target, size, &x->skip, error))
    return FALSE;
  x->open = TRUE;
  return TRUE;
}

static void
close_source (Exec *x)
{
  if (x->have_source)
    x->sink->source_unset (x->user);
  x->have_source = x->source_known = FALSE;
}

static gboolean
end_content (Exec *x, GError **error)
{
  if (!x->open)
    return OPBAD ("close without an open object");
  if (x->written != x->size)
    return OPBAD ("object %u: %" G_GUINT64_FORMAT " of its %" G_GUINT64_FORMAT " bytes written", x->index, x->written,
                  x->size);
  x->open = FALSE;
  close_source (x);
  x->index++;
  return x->skip || x->sink->content_end (x->user, error);
}

static gboolean
op_splice (Exec *x, GError **error)
{
  if (x->index >= x->part->n_objects)
    return OPBAD ("more objects than the part declares (%u)", x->part->n_objects);
  gboolean meta = x->part->objects[(gsize)x->index * DF_STOCK_OBJREC_LEN] != OSTREE_OBJECT_TYPE_FILE;
  const guint8 *rec = next_object (x, meta, error);
  if (rec == NULL)
    return FALSE;
  if (meta)
    {
      guint64 len, off;
      if (!operand (x, &len, error) || !operand (x, &off, error) || !raw_range (x, off, len, error))
        return FALSE;
      if (len > DF_METADATA_OBJECT_MAX)
        return OPBAD ("metadata object of %" G_GUINT64_FORMAT " bytes", len);
      if (!produce (x, len, error))
        return FALSE;
      guint8 *data = g_malloc (MAX (len, 1));
      if (!raw_read (x, off, data, len, error))
        {
          g_free (data);
          return FALSE;
        }
      g_autoptr (GBytes) b = g_bytes_new_take (data, len);
      x->index++;
      close_source (x);
      return x->sink->metadata (x->user, rec[0], rec + 1, b, error);
    }
  guint64 mode_idx, xattr_idx, size, off;
  if (!operand (x, &mode_idx, error) || !operand (x, &xattr_idx, error) || !operand (x, &size, error)
      || !operand (x, &off, error) || !raw_range (x, off, size, error))
    return FALSE;
  if (mode_idx < g_variant_n_children (x->pl->modes))
    {
      guint32 mode;
      g_variant_get_child (x->pl->modes, mode_idx, "(uuu)", NULL, NULL, &mode);
      if (S_ISLNK (GUINT32_FROM_BE (mode)))
        {
          /* A symlink's target is its data; the object has no content. */
          if (size == 0 || size > DF_STOCK_SYMLINK_MAX)
            return OPBAD ("symlink target of %" G_GUINT64_FORMAT " bytes", size);
          g_autofree char *target = g_malloc0 (size + 1);
          if (!raw_read (x, off, (guint8 *)target, size, error))
            return FALSE;
          if (strlen (target) != size || !g_utf8_validate (target, size, NULL))
            return OPBAD ("symlink target with a NUL byte or not UTF-8");
          if (!begin_content (x, rec, mode_idx, xattr_idx, 0, target, error))
            return FALSE;
          return end_content (x, error);
        }
    }
  if (!begin_content (x, rec, mode_idx, xattr_idx, size, NULL, error))
    return FALSE;
  if (!x->skip && !emit_raw (x, off, size, error))
    return FALSE;
  x->written = size;
  return end_content (x, error);
}

/* Mendsley bsdiff (what ostree vendors): repeated 24-byte controls (three
 * sign-magnitude 64-bit numbers: diff length, extra length, old seek), the
 * diff bytes, the extra bytes. Old bytes outside the source count as 0, as
 * in bspatch. Output is streamed; nothing is sized by the target. */
static gint64
offtin (const guint8 *b)
{
  guint64 y = ((guint64)(b[7] & 0x7f) << 56) | ((guint64)b[6] << 48) | ((guint64)b[5] << 40) | ((guint64)b[4] << 32)
              | ((guint64)b[3] << 24) | ((guint64)b[2] << 16) | ((guint64)b[1] << 8) | b[0];
  return (b[7] & 0x80) ? -(gint64)y : (gint64)y;
}

static gboolean
op_bspatch (Exec *x, GError **error)
{
  guint64 off, len;
  if (!operand (x, &off, error) || !operand (x, &len, error) || !raw_range (x, off, len, error))
    return FALSE;
  if (!x->open || !x->have_source || x->written != 0)
    return OPBAD ("bspatch without an open object and a source");
  if (x->skip)
    {
      x->written = x->size;
      return TRUE;
    }
  if (!source_size (x, error))
    return FALSE;
  guint64 pend = off + len, newpos = 0;
  gint64 oldpos = 0;
  const gint64 pos_max = G_MAXINT64 / 4;
  while (newpos < x->size)
    {
      guint8 c[24];
      if (pend - off < 24)
        return OPBAD ("bspatch: truncated control");
      if (!raw_read (x, off, c, 24, error))
        return FALSE;
      off += 24;
      gint64 dlen = offtin (c), elen = offtin (c + 8), seek = offtin (c + 16);
      if (dlen < 0 || dlen > G_MAXINT32 || elen < 0 || elen > G_MAXINT32 || (guint64)dlen > x->size - newpos
          || (guint64)elen > x->size - newpos - dlen)
        return OPBAD ("bspatch: control (%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT ") outside the %" G_GUINT64_FORMAT
                      "-byte result",
                      dlen, elen, x->size);
      if ((guint64)(dlen + elen) > pend - off)
        return OPBAD ("bspatch: control wants more bytes than the patch has");
      for (gint64 done = 0; done < dlen;)
        {
          gsize n = MIN ((guint64)(dlen - done), (guint64)DF_STOCK_IO_CHUNK);
          if (!raw_read (x, off, x->buf, n, error))
            return FALSE;
          /* Add the old bytes that exist. */
          gint64 o = oldpos + done;
          gint64 lo = MAX (o, 0), hi = MIN (o + (gint64)n, (gint64)x->source_size);
          if (lo < hi)
            {
              if (!x->sink->source_read (x->user, lo, x->buf2, hi - lo, error))
                return FALSE;
              for (gint64 k = lo; k < hi; k++)
                x->buf[k - o] += x->buf2[k - lo];
            }
          if (!x->sink->content_data (x->user, x->buf, n, error))
            return FALSE;
          off += n, done += n;
        }
      newpos += dlen;
      oldpos += dlen;
      if (!emit_raw (x, off, elen, error))
        return FALSE;
      off += elen, newpos += elen;
      if (seek < -pos_max || seek > pos_max)
        return OPBAD ("bspatch: seek by %" G_GINT64_FORMAT, seek);
      oldpos += seek;
      if (oldpos < -pos_max || oldpos > pos_max)
        return OPBAD ("bspatch: old position %" G_GINT64_FORMAT, oldpos);
    }
  if (off != pend)
    return OPBAD ("bspatch: %" G_GUINT64_FORMAT " patch bytes left over", pend - off);
  x->written = x->size;
  return TRUE;
}

gboolean
df_stock_execute (const DfStockPart *part, DfStockPayload *payload, const DfStockSink *sink, gpointer user,
                  DfStockOpStats *stats, GCancellable *c, GError **error)
{
  Exec x = { .part = part, .pl = payload, .sink = sink, .user = user };
  DfStockOpStats unused;
  if (stats == NULL)
    stats = &unused;
  g_autofree guint8 *buf = g_malloc (DF_STOCK_IO_CHUNK), *buf2 = g_malloc (DF_STOCK_IO_CHUNK),
                   *win = g_malloc (DF_STOCK_IO_CHUNK), *opwin = g_malloc (DF_STOCK_OPS_WINDOW);
  x.buf = buf, x.buf2 = buf2, x.win = win, x.opwin = opwin;
  gboolean ok = TRUE;
  guint64 n_ops = 0;
  while (ok && x.pc < payload->ops_len)
    {
      if ((++n_ops & 1023) == 0 && g_cancellable_set_error_if_cancelled (c, error))
        {
          ok = FALSE;
          break;
        }
      guint8 op;
      if (!op_byte (&x, &op, error))
        {
          ok = FALSE;
          break;
        }
      guint64 a, b, cc;
      switch (op)
        {
        case 'S':
          stats->splice++;
          ok = op_splice (&x, error);
          break;
        case 'o':
          {
            stats->open++;
            const guint8 *rec = next_object (&x, FALSE, error);
            ok = rec && operand (&x, &a, error) && operand (&x, &b, error) && operand (&x, &cc, error)
                 && begin_content (&x, rec, a, b, cc, NULL, error);
            break;
          }
        case 'w':
          (x.have_source ? stats->write_source++ : stats->write++);
          ok = operand (&x, &a, error) && operand (&x, &b, error);
          if (ok && (!x.open || a > x.size - x.written))
            ok = OPBAD ("write of %" G_GUINT64_FORMAT " bytes past the open object", a);
          /* A skipped object (present already) reads nothing, so its
           * source is never opened. */
          if (ok && !x.skip)
            ok = x.have_source ? emit_source (&x, b, a, error) : (raw_range (&x, b, a, error) && emit_raw (&x, b, a, error));
          else if (ok && !x.have_source)
            ok = raw_range (&x, b, a, error);
          if (ok)
            x.written += a;
          break;
        case 'r':
          {
            /* Only names the source: it is opened when a byte of it is
             * needed, so opcodes that set sources and read nothing cost
             * nothing (in an archive repository opening means inflating
             * the whole object). */
            stats->set_source++;
            guint8 src[DF_SHA256_LEN];
            ok = operand (&x, &a, error) && raw_range (&x, a, DF_SHA256_LEN, error)
                 && raw_read (&x, a, src, DF_SHA256_LEN, error);
            if (ok)
              {
                close_source (&x);
                ok = sink->source_set (user, src, error);
                x.have_source = ok;
              }
            break;
          }
        case 'R':
          stats->unset_source++;
          close_source (&x);
          break;
        case 'c':
          stats->close++;
          ok = end_content (&x, error);
          break;
        case 'B':
          stats->bspatch++;
          ok = op_bspatch (&x, error);
          break;
        default:
          ok = OPBAD ("unknown opcode 0x%02x at byte %" G_GUINT64_FORMAT, op, x.pc - 1);
        }
    }
  close_source (&x);
  if (!ok)
    return FALSE;
  if (x.open)
    return OPBAD ("the program ends with object %u open", x.index);
  if (x.index != part->n_objects)
    return OPBAD ("the program makes %u of the part's %u objects", x.index, part->n_objects);
  return TRUE;
}

/* ---------------------------------------------------------------------- */
/* Fallback objects                                                         */

#define STOCK_FILEZ_HEADER_TYPE "(tuuuusa(ayay))"

gboolean
df_stock_filez_read (int fd, guint64 file_size, const DfStockFallback *fb, const DfStockSink *sink, gpointer user,
                     GCancellable *c, GError **error)
{
  char hex[65];
  df_hex (fb->checksum, hex);
#define FZBAD(fmt, ...) df_throw (error, DF_ERROR_INVALID_DELTA, "fallback object %s: " fmt, hex, ##__VA_ARGS__)
  /* A size word (big-endian), 4 bytes of padding, the header, then the
   * content as raw deflate. */
  guint8 pre[8];
  if (file_size < sizeof pre || !df_pread_all (fd, pre, sizeof pre, 0, "fallback object", error))
    return file_size < sizeof pre ? FZBAD ("%" G_GUINT64_FORMAT " bytes are too short", file_size) : FALSE;
  guint32 hlen = (guint32)pre[0] << 24 | (guint32)pre[1] << 16 | (guint32)pre[2] << 8 | pre[3];
  if (hlen == 0 || hlen > DF_HEADER_MAX || hlen > file_size - sizeof pre)
    return FZBAD ("header of %u bytes", hlen);
  guint8 *hbuf = g_malloc (hlen);
  if (!df_pread_all (fd, hbuf, hlen, sizeof pre, "fallback object", error))
    {
      g_free (hbuf);
      return FALSE;
    }
  g_autoptr (GVariant) header
      = g_variant_ref_sink (g_variant_new_from_data (G_VARIANT_TYPE (STOCK_FILEZ_HEADER_TYPE), hbuf, hlen, FALSE, g_free, hbuf));
  if (!g_variant_is_normal_form (header))
    return FZBAD ("%s", "malformed header");
  guint64 size;
  guint32 uid, gid, mode, rdev;
  const char *target;
  g_autoptr (GVariant) xattrs = NULL;
  g_variant_get (header, "(tuuuu&s@a(ayay))", &size, &uid, &gid, &mode, &rdev, &target, &xattrs);
  size = GUINT64_FROM_BE (size), uid = GUINT32_FROM_BE (uid), gid = GUINT32_FROM_BE (gid);
  mode = GUINT32_FROM_BE (mode);
  if ((mode & ~(S_IFMT | 07777)) != 0 || !(S_ISREG (mode) || S_ISLNK (mode)) || rdev != 0)
    return FZBAD ("file mode 0%o", mode);
  if (S_ISLNK (mode))
    {
      gsize tlen = strlen (target);
      if (tlen == 0 || tlen > DF_STOCK_SYMLINK_MAX || !g_utf8_validate (target, tlen, NULL))
        return FZBAD ("symlink target of %zu bytes or not UTF-8", tlen);
      size = 0;
    }
  else if (target[0] != '\0')
    return FZBAD ("%s", "a regular file with a symlink target");
  if (size != fb->usize)
    return FZBAD ("%" G_GUINT64_FORMAT " bytes where the delta declares %" G_GUINT64_FORMAT, size, fb->usize);
  gboolean skip = FALSE;
  if (!sink->content_begin (user, fb->checksum, uid, gid, mode, xattrs, S_ISLNK (mode) ? target : NULL, size, &skip,
                            error))
    return FALSE;
  if (skip)
    return TRUE;
  guint64 in_off = sizeof pre + hlen, out_total = 0;
  g_autoptr (GConverter) z = G_CONVERTER (g_zlib_decompressor_new (G_ZLIB_COMPRESSOR_FORMAT_RAW));
  g_autofree guint8 *in = g_malloc (DF_STOCK_IO_CHUNK);
  g_autofree guint8 *out = g_malloc (DF_STOCK_IO_CHUNK);
  gsize in_len = 0, in_pos = 0;
  gboolean finished = S_ISLNK (mode) && in_off == file_size;
  while (!finished)
    {
      if (g_cancellable_set_error_if_cancelled (c, error))
        return FALSE;
      if (in_pos == in_len && in_off < file_size)
        {
          in_len = MIN (DF_STOCK_IO_CHUNK, file_size - in_off);
          if (!df_pread_all (fd, in, in_len, in_off, "fallback object", error))
            return FALSE;
          in_off += in_len;
          in_pos = 0;
        }
      gsize nr = 0, nw = 0;
      GConverterFlags flags = in_off == file_size ? G_CONVERTER_INPUT_AT_END : G_CONVERTER_NO_FLAGS;
      g_autoptr (GError) zerr = NULL;
      GConverterResult res
          = g_converter_convert (z, in + in_pos, in_len - in_pos, out, DF_STOCK_IO_CHUNK, flags, &nr, &nw, &zerr);
      if (res == G_CONVERTER_ERROR)
        return FZBAD ("bad compressed data (%s)", zerr->message);
      in_pos += nr;
      if (nw > size - out_total)
        return FZBAD ("more than its %" G_GUINT64_FORMAT " bytes of content", size);
      if (nw > 0 && !sink->content_data (user, out, nw, error))
        return FALSE;
      out_total += nw;
      if (res == G_CONVERTER_FINISHED)
        finished = TRUE;
      else if (nr == 0 && nw == 0 && in_off == file_size && in_pos == in_len)
        return FZBAD ("%s", "compressed data ends early");
    }
  if (in_pos != in_len || in_off != file_size)
    return FZBAD ("%s", "bytes after the compressed data");
  if (out_total != size)
    return FZBAD ("%" G_GUINT64_FORMAT " of its %" G_GUINT64_FORMAT " bytes of content", out_total, size);
  return sink->content_end (user, error);
#undef FZBAD
}

/* Hashing only: what a fetcher checks a downloaded object with. */
typedef struct
{
  DfSha256 h;
  gboolean begun;
} FilezCheck;

static gboolean
check_begin (gpointer user, const guint8 csum[DF_SHA256_LEN], guint32 uid, guint32 gid, guint32 mode,
             GVariant *xattrs, const char *target, guint64 size, gboolean *skip, GError **error)
{
  FilezCheck *k = user;
  df_content_checksum_begin (&k->h, uid, gid, mode, target, xattrs);
  k->begun = TRUE;
  return TRUE;
}

static gboolean
check_data (gpointer user, const guint8 *data, gsize len, GError **error)
{
  FilezCheck *k = user;
  df_sha256_update (&k->h, data, len);
  return TRUE;
}

static gboolean
check_end (gpointer user, GError **error)
{
  return TRUE;
}

static const DfStockSink filez_check_sink = { NULL, check_begin, check_data, check_end, NULL, NULL, NULL, NULL };

gboolean
df_stock_fallback_verify (int fd, guint64 file_size, const DfStockFallback *fb, GCancellable *c, GError **error)
{
  char hex[65];
  df_hex (fb->checksum, hex);
  FilezCheck k = { 0 };
  guint8 got[DF_SHA256_LEN];
  if (fb->objtype != OSTREE_OBJECT_TYPE_FILE)
    {
      if (file_size > DF_METADATA_OBJECT_MAX)
        return df_throw (error, DF_ERROR_INVALID_DELTA, "fallback %s: %" G_GUINT64_FORMAT " bytes", hex, file_size);
      g_autofree guint8 *buf = g_malloc (MAX (file_size, 1));
      if (!df_pread_all (fd, buf, file_size, 0, "fallback object", error))
        return FALSE;
      df_sha256 (buf, file_size, got);
    }
  else
    {
      gboolean ok = df_stock_filez_read (fd, file_size, fb, &filez_check_sink, &k, c, error);
      if (k.begun)
        {
          df_sha256_final (&k.h, got);
          df_sha256_clear (&k.h);
        }
      if (!ok)
        return FALSE;
    }
  if (memcmp (got, fb->checksum, DF_SHA256_LEN) != 0)
    return df_throw (error, DF_ERROR_CORRUPT, "fallback %s %s does not hash to its checksum",
                     ostree_object_type_to_string (fb->objtype), hex);
  return TRUE;
}
