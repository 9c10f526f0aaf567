/* Checking and decoding stock delta part files into their payloads (see
 * df-stock-part.h). */
#include "df-stock-part.h"

#include <fcntl.h>
#include <lzma.h>
#include <sys/stat.h>

#include "df-stock-payload.h"

/* xz -8, what ostree writes, needs 33 MiB to decode. */
#define DF_STOCK_XZ_MEMLIMIT (48 * DF_MIB)

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
dfi_stock_decoder_new (void)
{
  DfStockDecoder *d = g_new0 (DfStockDecoder, 1);
  lzma_stream init = LZMA_STREAM_INIT;
  d->s = init;
  return d;
}

void
dfi_stock_decoder_free (DfStockDecoder *d)
{
  if (d == NULL)
    return;
  lzma_end (&d->s);
  g_free (d);
}

guint64
dfi_stock_payload_max (const DfStockPart *p)
{
  /* A payload holds the objects' bytes (their declared total, usize) or
   * bsdiff patches of them (their bytes plus 24-byte controls), the
   * source checksums, symlink targets (which the declared total leaves
   * out), the mode and xattr tables and the opcodes. */
  return p->usize + p->usize / DF_STOCK_PAYLOAD_SLACK_DIV + (guint64)p->n_objects * DF_STOCK_PAYLOAD_PER_OBJECT
         + DF_STOCK_PAYLOAD_BASE;
}

/* Reads all of part @i (@p) from @src and checks it against the declared
 * SHA-256; with @copy >= 0 it is copied there as it is read. The whole
 * file is hashed before any byte of it is interpreted (stock ostree
 * decompresses first). @buf: DF_STOCK_IO_CHUNK bytes. */
static gboolean
part_check (const DfStockPart *p, guint i, Src *src, int copy, guint8 *buf, GError **error)
{
  DfSha256 h;
  dfi_sha256_init (&h);
  for (;;)
    {
      guint64 at = src->off;
      gssize n = src_read (src, buf, DF_STOCK_IO_CHUNK);
      if (n < 0)
        {
          dfi_sha256_clear (&h);
          return dfi_throw_errno (error, errno, "reading part %u", i);
        }
      if (n == 0)
        break;
      dfi_sha256_update (&h, buf, n);
      if (copy >= 0 && !dfi_pwrite_all (copy, buf, n, at, "a copy of the part", error))
        {
          dfi_sha256_clear (&h);
          return FALSE;
        }
    }
  guint8 actual[DF_SHA256_LEN];
  dfi_sha256_final (&h, actual);
  dfi_sha256_clear (&h);
  if (src->off != p->size)
    return dfi_throw (error, DF_ERROR_IO, "part %u ended early", i);
  if (memcmp (actual, p->sha256, DF_SHA256_LEN) != 0)
    {
      char a[65], e[65];
      dfi_hex (actual, a);
      dfi_hex (p->sha256, e);
      return dfi_throw (error, DF_ERROR_CORRUPT, "part %u: SHA-256 is %s, the superblock declares %s", i, a, e);
    }
  return TRUE;
}

/* A stored payload: the rest of @src, copied to @out_fd up to @max bytes;
 * *@written counts them. */
static gboolean
payload_copy (Src *src, guint i, guint64 max, int out_fd, guint8 *buf, guint64 *written, GError **error)
{
  for (;;)
    {
      gssize n = src_read (src, buf, DF_STOCK_IO_CHUNK);
      if (n < 0)
        return dfi_throw_errno (error, errno, "reading part %u", i);
      if (n == 0)
        break;
      if (*written + n > max)
        return dfi_throw (error, DF_ERROR_INVALID_DELTA,
                          "part %u: payload over the %" G_GUINT64_FORMAT " bytes its declared sizes allow", i, max);
      if (!dfi_pwrite_all (out_fd, buf, n, *written, "payload", error))
        return FALSE;
      *written += n;
    }
  return TRUE;
}

/* An xz payload: the rest of @src, decoded with @dec into @out_fd up to
 * @max bytes; *@written counts them. */
static gboolean
payload_xz (DfStockDecoder *dec, Src *src, guint i, guint64 max, int out_fd, guint8 *buf, guint64 *written,
            GCancellable *c, GError **error)
{
  g_autofree guint8 *out = g_malloc (DF_STOCK_IO_CHUNK);
  /* One .xz stream with its integrity check, nothing after it. Setting
   * up the decoder again reuses its memory. */
  lzma_stream *sp = &dec->s;
  if (lzma_stream_decoder (sp, DF_STOCK_XZ_MEMLIMIT, 0) != LZMA_OK)
    return dfi_throw (error, DF_ERROR_FAILED, "part %u: cannot start the xz decoder", i);
  sp->next_in = NULL; /* nothing left over from an earlier part */
  sp->avail_in = 0;
  lzma_ret r = LZMA_OK;
  gboolean ok = TRUE;
  while (ok && r != LZMA_STREAM_END)
    {
      if (sp->avail_in == 0)
        {
          gssize n = src_read (src, buf, DF_STOCK_IO_CHUNK);
          if (n < 0)
            {
              ok = dfi_throw_errno (error, errno, "reading part %u", i);
              break;
            }
          sp->next_in = buf;
          sp->avail_in = n;
        }
      /* Never more output than the bound leaves room for (plus one
       * byte, to tell a payload that goes on from one that ends). */
      gsize room = (gsize)MIN ((guint64)DF_STOCK_IO_CHUNK, max - *written + 1);
      sp->next_out = out;
      sp->avail_out = room;
      r = lzma_code (sp, sp->avail_in == 0 ? LZMA_FINISH : LZMA_RUN);
      gsize n = room - sp->avail_out;
      if (r != LZMA_OK && r != LZMA_STREAM_END)
        ok = dfi_throw (error, DF_ERROR_INVALID_DELTA, "part %u: xz data is corrupt (%s)", i,
                        r == LZMA_MEMLIMIT_ERROR ? "needs too much memory" : "lzma error");
      else if (*written + n > max)
        ok = dfi_throw (error, DF_ERROR_INVALID_DELTA,
                        "part %u: payload over the %" G_GUINT64_FORMAT " bytes its declared sizes allow", i, max);
      else if (n > 0 && !dfi_pwrite_all (out_fd, out, n, *written, "payload", error))
        ok = FALSE;
      *written += n;
      if (ok && g_cancellable_set_error_if_cancelled (c, error))
        ok = FALSE;
    }
  gboolean trailing = sp->avail_in > 0 || src->off != src->end;
  if (!ok)
    return FALSE;
  if (trailing)
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "part %u: bytes after the xz stream", i);
  return TRUE;
}

gboolean
dfi_stock_part_decode (const DfStockSuperblock *sb, guint i, int part_fd, int copy_dfd, int out_fd, guint64 *out_len,
                       DfStockDecoder *dec, GCancellable *c, GError **error)
{
  g_autoptr (DfStockDecoder) own = dec ? NULL : dfi_stock_decoder_new ();
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
        return dfi_throw_errno (error, errno, "part %u", i);
      src.end = st.st_size;
    }
  if (src.end != p->size)
    return dfi_throw (error, DF_ERROR_INVALID_DELTA,
                      "part %u: %" G_GUINT64_FORMAT " bytes, the superblock declares %" G_GUINT64_FORMAT, i, src.end,
                      p->size);
  if (src.end < 1)
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "part %u is empty", i);
  /* A part file on media we do not control (a USB stick, a FUSE mount)
   * could change between being hashed and being read again: it is copied
   * into a private temporary file while it is hashed, and decoded from
   * that copy, so liblzma only ever sees bytes that were hashed. */
  dfi_autofd copy = -1;
  if (copy_dfd >= 0 && src.mem == NULL)
    {
      copy = openat (copy_dfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
      if (copy < 0)
        return dfi_throw_errno (error, errno, "creating a temporary file in the repository");
    }
  g_autofree guint8 *buf = g_malloc (DF_STOCK_IO_CHUNK);
  if (!part_check (p, i, &src, copy, buf, error))
    return FALSE;
  if (copy >= 0)
    src.fd = copy;

  /* Decoding stops at what the part's declared sizes allow, so a small
   * part cannot fill the disk. */
  guint64 max = dfi_stock_payload_max (p);
  src.off = 0;
  guint8 comp;
  if (src_read (&src, &comp, 1) != 1)
    return dfi_throw_errno (error, errno, "reading part %u", i);
  guint64 written = 0;
  if (comp == 0)
    {
      if (!payload_copy (&src, i, max, out_fd, buf, &written, error))
        return FALSE;
    }
  else if (comp == 'x')
    {
      if (!payload_xz (dec, &src, i, max, out_fd, buf, &written, c, error))
        return FALSE;
    }
  else
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "part %u: unknown compression type %u", i, comp);
  *out_len = written;
  return TRUE;
}
