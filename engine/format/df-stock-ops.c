/* Running the opcode program of a stock delta part (see df-stock-ops.h). */
#include "df-stock-ops.h"

#include <sys/stat.h>

typedef struct
{
  const DfStockPart *part;
  DfStockPayload *pl;
  const DfStockSink *sink;
  gpointer user;
  guint64 pc;    /* next opcode byte */
  guint8 *opwin; /* DF_STOCK_OPS_WINDOW bytes of opcodes from opwin_off */
  guint64 opwin_off;
  gsize opwin_len;
  guint index;      /* next object of the part */
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

#define OPBAD(...) dfi_throw (error, DF_ERROR_INVALID_DELTA, __VA_ARGS__)

/* The next opcode byte (x->pc < ops_len). */
static gboolean
op_byte (Exec *x, guint8 *out, GError **error)
{
  if (x->pc < x->opwin_off || x->pc >= x->opwin_off + x->opwin_len)
    {
      gsize n = MIN ((guint64)DF_STOCK_OPS_WINDOW, x->pl->ops_len - x->pc);
      x->opwin_len = 0;
      if (!dfi_stock_payload_pread (x->pl->fd, x->opwin, n, x->pl->ops_off + x->pc, error))
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
  if (!dfi_add_u64 (off, len, &end) || end > x->pl->raw_len)
    return OPBAD ("data %" G_GUINT64_FORMAT "+%" G_GUINT64_FORMAT " lies outside the part's %" G_GUINT64_FORMAT
                  " bytes",
                  off, len, x->pl->raw_len);
  return TRUE;
}

/* @off and @len lie in the data (raw_range() checked them). */
static gboolean
raw_read (Exec *x, guint64 off, guint8 *buf, gsize len, GError **error)
{
  if (len >= DF_STOCK_IO_CHUNK / 2)
    return dfi_stock_payload_pread (x->pl->fd, buf, len, x->pl->raw_off + off, error);
  if (off < x->win_off || off + len > x->win_off + x->win_len)
    {
      gsize n = MIN ((guint64)DF_STOCK_IO_CHUNK, x->pl->raw_len - off);
      x->win_len = 0;
      if (!dfi_stock_payload_pread (x->pl->fd, x->win, n, x->pl->raw_off + off, error))
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
  if (!dfi_add_u64 (x->produced, size, &x->produced) || x->produced > x->part->usize)
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
  if (!dfi_add_u64 (off, len, &end) || end > x->source_size)
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
dfi_stock_execute (const DfStockPart *part, DfStockPayload *payload, const DfStockSink *sink, gpointer user,
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
            ok = x.have_source ? emit_source (&x, b, a, error)
                               : (raw_range (&x, b, a, error) && emit_raw (&x, b, a, error));
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
