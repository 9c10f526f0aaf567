/* Content detection: see df-detect.h for what is reported and the limits,
 * df-detect-private.h for how the detector is put together. This file
 * holds the detection context, the walk over a stream (zero runs and zstd
 * skippable frames are recognised here) and the entry points; the
 * sources, compressed frames, cpio archives and bzImage kernels have their
 * own files. */
#include "df-detect-private.h"

#define PROBE_LEN 1024

/* --- The file source --------------------------------------------------- */

typedef struct
{
  DfDetectSrc base;
  DfReadAtFunc fn;
  gpointer user;
} DfDetectFileSrc;

static gssize
file_read (DfDetectSrc *s, void *buf, gsize len, guint64 off, GError **error)
{
  DfDetectFileSrc *f = (DfDetectFileSrc *)s;
  if (off >= s->size)
    return 0;
  len = MIN (len, s->size - off);
  gsize done = 0;
  while (done < len)
    {
      gssize n = f->fn (f->user, (guint8 *)buf + done, len - done, off + done, error);
      if (n < 0)
        return -1;
      if (n == 0)
        return dfi_throw (error, DF_ERROR_IO, "detect: file ended at %" G_GUINT64_FORMAT ", before its size",
                          off + done),
               -1;
      done += n;
    }
  return done;
}

/* --- The detection context --------------------------------------------- */

DfSegment *
dfi_detect_seg_at (DfDetectCtx *c, guint i)
{
  return &g_array_index (c->segs, DfSegment, i);
}

/* Whether one more segment that is not the last of its stream fits;
 * otherwise the limit is reached. One plain run per depth may still be
 * added after that to end each stream. */
gboolean
dfi_detect_seg_room (DfDetectCtx *c)
{
  if (c->segs->len + 1 < c->lim.segments_max)
    return TRUE;
  c->limited = TRUE;
  return FALSE;
}

guint
dfi_detect_seg_add (DfDetectCtx *c, DfSegmentKind kind, guint depth, gint parent, guint64 off, guint64 len, guint flags)
{
  DfSegment s = { .kind = kind, .depth = depth, .parent = parent, .offset = off, .length = len, .flags = flags };
  g_array_append_val (c->segs, s);
  return c->segs->len - 1;
}

/* A plain run from @off to the end of @src (length fixed later if the
 * end is not known yet); marked DF_SEGMENT_LIMIT when a limit ended
 * detection. */
void
dfi_detect_seg_add_plain_to_end (DfDetectCtx *c, DfDetectSrc *src, guint depth, gint parent, guint64 off)
{
  guint64 len = src->size == G_MAXUINT64 ? DF_DETECT_LEN_TO_END : src->size - off;
  if (len == 0)
    return;
  dfi_detect_seg_add (c, DF_SEGMENT_PLAIN, depth, parent, off, len, c->limited ? DF_SEGMENT_LIMIT : 0);
}

/* Forgets the segments from @nseg and the entries from @nent on (a
 * structure that did not check out). */
void
dfi_detect_rollback (DfDetectCtx *c, guint nseg, guint nent)
{
  g_array_set_size (c->segs, nseg);
  g_array_set_size (c->entries, nent);
}

gboolean
dfi_detect_cancelled (DfDetectCtx *c, GError **error)
{
  return g_cancellable_set_error_if_cancelled (c->cancellable, error);
}

/* Reads (and hashes when @h) [@from, @to) of @src: FALSE with *@ok
 * FALSE when the stream ends first; FALSE alone on an I/O error. */
gboolean
dfi_detect_pass_bytes (DfDetectCtx *c, DfDetectSrc *src, guint64 from, guint64 to, DfSha256 *h, gboolean *ok,
                       GError **error)
{
  *ok = FALSE;
  if (src->size != G_MAXUINT64 && h == NULL)
    {
      *ok = to <= src->size;
      return TRUE;
    }
  if (h == NULL && to > from) /* a decompressed stream: the last byte must exist */
    from = to - 1;
  while (from < to)
    {
      gssize n = dfi_detect_src_read (src, c->scratch, MIN (DF_DETECT_STEP, to - from), from, error);
      if (n < 0)
        return FALSE;
      if (n == 0)
        return TRUE;
      if (h)
        dfi_sha256_update (h, c->scratch, n);
      from += n;
    }
  *ok = TRUE;
  return TRUE;
}

/* --- The walk over a stream --------------------------------------------- */

/* A run of zero bytes at @pos: its end in *@next (> @pos). */
static DfDetectResult
zeros (DfDetectCtx *c, DfDetectSrc *src, guint64 pos, guint64 *next, GError **error)
{
  guint64 at = pos;
  for (;;)
    {
      gssize n = dfi_detect_src_read (src, c->scratch, DF_DETECT_STEP, at, error);
      if (n < 0)
        return DF_DETECT_RES_ERROR;
      gssize i = 0;
      guint64 word;
      while (i + 8 <= n && (memcpy (&word, c->scratch + i, 8), word == 0))
        i += 8;
      while (i < n && c->scratch[i] == 0)
        i++;
      at += i;
      if (i < n || n == 0)
        break;
    }
  *next = at;
  return DF_DETECT_RES_OK;
}

/* Segments of @src from its start to its end, at @depth under @parent.
 * FALSE only on an I/O error or cancellation. */
gboolean
dfi_detect_stream (DfDetectCtx *c, DfDetectSrc *src, guint depth, gint parent, GError **error)
{
  guint8 probe[PROBE_LEN];
  guint64 pos = 0;
  for (;;)
    {
      if (dfi_detect_cancelled (c, error))
        return FALSE;
      gssize n = dfi_detect_src_read (src, probe, sizeof probe, pos, error);
      if (n < 0)
        return FALSE;
      if (n == 0)
        return TRUE;
      if (c->limited)
        {
          dfi_detect_seg_add_plain_to_end (c, src, depth, parent, pos);
          return TRUE;
        }
      guint64 next = pos;
      DfDetectResult r;
      if (depth == 0 && pos == 0 && (r = dfi_detect_bzimage (c, src, probe, n, error)) != DF_DETECT_RES_NO)
        return r != DF_DETECT_RES_ERROR;
      if (n >= 6 && memcmp (probe, "07070", 5) == 0)
        r = dfi_detect_cpio (c, src, pos, depth, parent, &next, error);
      else if (n >= 8 && (dfi_detect_le32 (probe) & 0xfffffff0) == ZSTD_MAGIC_SKIPPABLE_START)
        {
          guint64 end = pos + 8 + dfi_detect_le32 (probe + 4);
          gboolean ok;
          r = DF_DETECT_RES_NO;
          if (!dfi_detect_pass_bytes (c, src, end - 1, end, NULL, &ok, error))
            r = DF_DETECT_RES_ERROR;
          else if (ok && dfi_detect_seg_room (c))
            {
              guint i = dfi_detect_seg_add (c, DF_SEGMENT_ZSTD_SKIPPABLE, depth, parent, pos, end - pos, 0);
              dfi_detect_seg_at (c, i)->u.zstd.magic = dfi_detect_le32 (probe);
              next = end;
              r = DF_DETECT_RES_OK;
            }
          else if (c->limited)
            r = DF_DETECT_RES_LIMIT;
        }
      else if (probe[0] == 0)
        {
          r = dfi_detect_seg_room (c) ? zeros (c, src, pos, &next, error) : DF_DETECT_RES_LIMIT;
          if (r == DF_DETECT_RES_OK)
            dfi_detect_seg_add (c, DF_SEGMENT_ZERO, depth, parent, pos, next - pos, 0);
        }
      else
        r = dfi_detect_try_frame (c, src, pos, probe, n, depth, parent, FALSE, &next, error);
      switch (r)
        {
        case DF_DETECT_RES_ERROR:
          return FALSE;
        case DF_DETECT_RES_OK:
          g_assert (next > pos);
          pos = next;
          break;
        case DF_DETECT_RES_LIMIT:
          c->limited = TRUE;
          break; /* the next round adds the plain run */
        case DF_DETECT_RES_NO:
          dfi_detect_seg_add_plain_to_end (c, src, depth, parent, pos);
          return TRUE;
        }
    }
}

/* --- Entry points -------------------------------------------------------- */

void
dfi_detect_limits_default (DfDetectLimits *limits)
{
  *limits = (DfDetectLimits){
    .segments_max = DF_DETECT_SEGMENTS_MAX,
    .entries_max = DF_DETECT_ENTRIES_MAX,
    .depth_max = DF_DETECT_DEPTH_MAX,
    .decompressed_max = DF_DETECT_DECOMPRESSED_MAX,
    .decoder_mem = DF_DETECT_DECODER_MEM_MAX,
  };
}

DfDetect *
dfi_detect_read_at (DfReadAtFunc read_at, gpointer user_data, guint64 size, const DfDetectLimits *limits,
                    DfDetectFlags flags, GCancellable *cancellable, GError **error)
{
  DfDetectCtx c = { .flags = flags, .cancellable = cancellable };
  if (limits)
    c.lim = *limits;
  else
    dfi_detect_limits_default (&c.lim);
  c.lim.segments_max = MAX (c.lim.segments_max, 1);
  c.lim.depth_max = MIN (c.lim.depth_max, DF_DETECT_DEPTH_MAX);
  c.lim.decoder_mem = MAX (c.lim.decoder_mem, 64 * 1024);
  c.segs = g_array_new (FALSE, TRUE, sizeof (DfSegment));
  c.entries = g_array_new (FALSE, TRUE, sizeof (DfCpioEntry));
  c.names = g_string_chunk_new (4096);
  c.scratch = g_malloc (DF_DETECT_STEP);
  DfDetectFileSrc file = { .base = { .read = file_read, .size = size }, .fn = read_at, .user = user_data };
  gboolean ok = dfi_detect_stream (&c, &file.base, 0, -1, error);
  g_free (c.scratch);
  for (guint i = 0; i <= DF_DETECT_DEPTH_MAX; i++)
    dfi_detect_frame_free (c.pool[i]);
  if (!ok)
    {
      g_array_unref (c.segs);
      g_array_unref (c.entries);
      g_string_chunk_free (c.names);
      return NULL;
    }
  DfDetect *d = g_new0 (DfDetect, 1);
  d->size = size;
  d->n_segments = c.segs->len;
  d->segments = (DfSegment *)g_array_free (c.segs, FALSE);
  d->n_entries = c.entries->len;
  d->entries = (DfCpioEntry *)g_array_free (c.entries, FALSE);
  d->names = c.names;
  d->decompressed_total = c.produced;
  d->limited = c.limited;
  return d;
}

static gssize
fd_read_at (gpointer user_data, void *buf, gsize len, guint64 offset, GError **error)
{
  int fd = GPOINTER_TO_INT (user_data);
  for (;;)
    {
      gssize n = pread (fd, buf, len, offset);
      if (n >= 0)
        return n;
      if (errno != EINTR)
        return dfi_throw_errno (error, errno, "detect: read at %" G_GUINT64_FORMAT, offset), -1;
    }
}

DfDetect *
dfi_detect_fd (int fd, guint64 size, const DfDetectLimits *limits, DfDetectFlags flags, GCancellable *cancellable,
               GError **error)
{
  return dfi_detect_read_at (fd_read_at, GINT_TO_POINTER (fd), size, limits, flags, cancellable, error);
}

void
dfi_detect_free (DfDetect *d)
{
  if (d == NULL)
    return;
  g_free (d->segments);
  g_free (d->entries);
  if (d->names)
    g_string_chunk_free (d->names);
  g_free (d);
}

const char *
dfi_segment_kind_name (DfSegmentKind kind)
{
  static const char *const names[DF_SEGMENT_KIND_COUNT] = {
    [DF_SEGMENT_PLAIN] = "plain", [DF_SEGMENT_ZERO] = "zero",
    [DF_SEGMENT_GZIP] = "gzip",   [DF_SEGMENT_ZLIB] = "zlib",
    [DF_SEGMENT_ZSTD] = "zstd",   [DF_SEGMENT_ZSTD_SKIPPABLE] = "zstd-skippable",
    [DF_SEGMENT_XZ] = "xz",       [DF_SEGMENT_LZMA] = "lzma",
    [DF_SEGMENT_CPIO] = "cpio",   [DF_SEGMENT_BZIMAGE_SETUP] = "bzimage-setup",
  };
  return (guint)kind < DF_SEGMENT_KIND_COUNT ? names[kind] : "?";
}

void
dfi_detect_summarize (const DfDetect *d, DfDetectSummary *out)
{
  memset (out, 0, sizeof *out);
  for (guint i = 0; i < d->n_segments; i++)
    {
      const DfSegment *s = &d->segments[i];
      out->count[s->kind]++;
      if (s->depth == 0)
        out->file_bytes[s->kind] += s->length;
      out->decompressed_bytes[s->kind] += s->decompressed_size;
      out->max_depth = MAX (out->max_depth, s->depth);
    }
  out->n_entries = d->n_entries;
  for (guint i = 0; i < d->n_entries; i++)
    out->entry_bytes += d->entries[i].filesize;
  out->limited = d->limited;
}

void
dfi_detect_summary_add (DfDetectSummary *total, const DfDetectSummary *s)
{
  for (guint k = 0; k < DF_SEGMENT_KIND_COUNT; k++)
    {
      total->count[k] += s->count[k];
      total->file_bytes[k] += s->file_bytes[k];
      total->decompressed_bytes[k] += s->decompressed_bytes[k];
    }
  total->n_entries += s->n_entries;
  total->entry_bytes += s->entry_bytes;
  total->max_depth = MAX (total->max_depth, s->max_depth);
  total->limited |= s->limited;
}

char *
dfi_detect_summary_to_string (const DfDetectSummary *s)
{
  GString *out = g_string_new (NULL);
  for (guint k = 0; k < DF_SEGMENT_KIND_COUNT; k++)
    {
      if (s->count[k] == 0)
        continue;
      g_autofree char *fb = s->file_bytes[k] ? g_format_size (s->file_bytes[k]) : g_strdup ("in frames");
      g_string_append_printf (out, "%s%s %u (%s", out->len ? ", " : "", dfi_segment_kind_name (k), s->count[k], fb);
      if (s->decompressed_bytes[k])
        {
          g_autofree char *db = g_format_size (s->decompressed_bytes[k]);
          g_string_append_printf (out, " -> %s", db);
        }
      if (k == DF_SEGMENT_CPIO)
        g_string_append_printf (out, ", %u entries", s->n_entries);
      g_string_append_c (out, ')');
    }
  if (s->limited)
    g_string_append (out, ", limit reached");
  /* g_format_size() puts a no-break space before the unit. */
  g_autofree char *text = g_string_free (out, FALSE);
  g_auto (GStrv) parts = g_strsplit (text, "\u00a0", -1);
  return g_strjoinv (" ", parts);
}
