/* Internals of content detection (df-detect.h): what the detector's files
 * share. df-detect.c holds the context, the walk over a stream and the
 * entry points; df-detect-source.c the frame source; df-detect-frame.c,
 * df-detect-cpio.c and df-detect-bzimage.c the recognisers. Not for use
 * outside engine/transform/.
 *
 * Reading is done through a small "source" interface (read at an offset,
 * short only at the end) with two implementations: the file itself, and
 * the decompressed stream of a frame in another source. The second decodes
 * forward on demand and keeps the last 128-192 KiB of output, so that the
 * detector, which mostly reads forward (headers, then skips data), never
 * holds a whole stream; a read behind that window restarts the decoder
 * (counted against the decompressed budget). One detector then serves the
 * file and every decompressed stream in it. */
#pragma once

#include <lzma.h>
#include <zlib.h>

#include "df-detect.h"

/* Largest read of a source and decoder output step; the input buffer of
 * a decoder reads this much from its parent at a time. */
#define DF_DETECT_STEP (64 * 1024)
/* A length not known yet: a plain run to the end of a stream still
 * being decoded (fixed once the frame is decoded to its end). */
#define DF_DETECT_LEN_TO_END G_MAXUINT64

/* --- Sources ---------------------------------------------------------- */

typedef struct DfDetectSrc DfDetectSrc;
struct DfDetectSrc
{
  /* At most DF_DETECT_STEP bytes at @off: the count, short only at the
   * end, or -1 with @error set (I/O error or cancellation). */
  gssize (*read) (DfDetectSrc *s, void *buf, gsize len, guint64 off, GError **error);
  guint64 size; /* G_MAXUINT64 while unknown */
};

/* Reads up to @len bytes (any length) at @off of @s, in reads of at most
 * DF_DETECT_STEP: the count (short only at the end) or -1 with @error
 * set. */
gssize dfi_detect_src_read (DfDetectSrc *s, void *buf, gsize len, guint64 off, GError **error);

/* --- The detection context --------------------------------------------- */

struct DfDetectFrameSrc;

typedef struct
{
  DfDetectLimits lim;
  DfDetectFlags flags;
  GCancellable *cancellable;
  GArray *segs;    /* DfSegment */
  GArray *entries; /* DfCpioEntry */
  GStringChunk *names;
  guint64 produced; /* decoder output, all frames */
  gboolean limited;
  guint8 *scratch; /* DF_DETECT_STEP bytes for skipping and hashing */
  /* One frame source per depth, kept with its decoder and buffers from
   * one frame to the next (a file of many small members must not pay
   * for a new one each time). */
  struct DfDetectFrameSrc *pool[DF_DETECT_DEPTH_MAX + 1];
} DfDetectCtx;

/* The segment at index @i (the pointer moves when segments are added). */
DfSegment *dfi_detect_seg_at (DfDetectCtx *c, guint i);

/* Whether one more segment that is not the last of its stream fits;
 * otherwise the limit is reached (c->limited is set). One plain run per
 * depth may still be added after that to end each stream. */
gboolean dfi_detect_seg_room (DfDetectCtx *c);

/* Appends a segment (callers check dfi_detect_seg_room() first); returns
 * its index. */
guint dfi_detect_seg_add (DfDetectCtx *c, DfSegmentKind kind, guint depth, gint parent, guint64 off, guint64 len,
                          guint flags);

/* A plain run from @off to the end of @src (length DF_DETECT_LEN_TO_END,
 * fixed later, if the end is not known yet); marked DF_SEGMENT_LIMIT when
 * a limit ended detection. Nothing when @off is the end. */
void dfi_detect_seg_add_plain_to_end (DfDetectCtx *c, DfDetectSrc *src, guint depth, gint parent, guint64 off);

/* Forgets the segments from @nseg and the entries from @nent on (a
 * structure that did not check out). */
void dfi_detect_rollback (DfDetectCtx *c, guint nseg, guint nent);

/* TRUE, with @error set, when the detection is cancelled. */
gboolean dfi_detect_cancelled (DfDetectCtx *c, GError **error);

/* Reads (and hashes into @h when not NULL) [@from, @to) of @src, through
 * c->scratch: FALSE with *@ok FALSE when the stream ends first; FALSE
 * alone on an I/O error. Without @h a file source is not read (its size
 * says) and a decompressed one only to its last byte. */
gboolean dfi_detect_pass_bytes (DfDetectCtx *c, DfDetectSrc *src, guint64 from, guint64 to, DfSha256 *h, gboolean *ok,
                                GError **error);

/* --- Frame sources (df-detect-source.c) ------------------------------- */

typedef enum
{
  DF_DETECT_FS_RUNNING,
  DF_DETECT_FS_END,   /* decoded to its end, checks passed */
  DF_DETECT_FS_BAD,   /* not a valid frame: decoder error, truncated, check failed */
  DF_DETECT_FS_LIMIT, /* the decompressed budget or decoder memory ran out */
} DfDetectFrameState;

typedef struct DfDetectFrameSrc
{
  DfDetectSrc base;
  DfDetectCtx *c;
  DfDetectSrc *parent;
  DfSegmentKind kind;
  guint64 data_start; /* where the decoder's input starts in the parent */
  guint64 in_off;     /* parent offset of the next input read */
  guint8 in[DF_DETECT_STEP];
  gsize in_len, in_pos;
  gboolean in_eof;
  guint8 *win; /* output [win_base, win_base + win_len) */
  guint64 win_base;
  gsize win_len;
  DfDetectFrameState state;
  guint64 end; /* DF_DETECT_FS_END: parent offset just after the frame */
  guint32 crc; /* gzip: CRC-32 of the output so far */
  gboolean checked;
  z_stream z;
  gboolean z_init;
  ZSTD_DCtx *zd;
  lzma_stream lz;
  gboolean lz_init;
} DfDetectFrameSrc;

static inline guint64
dfi_detect_frame_produced (DfDetectFrameSrc *f)
{
  return f->win_base + f->win_len;
}

/* The frame source of @depth (the pool's, or a new one, owned by the pool
 * and freed with dfi_detect_frame_free()), set to decode a frame of @kind
 * whose input starts at @data_start of @parent. A decoder that cannot start leaves the
 * state DF_DETECT_FS_LIMIT. */
DfDetectFrameSrc *dfi_detect_frame_get (DfDetectCtx *c, guint depth, DfDetectSrc *parent, DfSegmentKind kind,
                                        guint64 data_start);

/* Decodes the rest of the frame, throwing the output away; the state then
 * says how it ended. FALSE on an I/O error or cancellation. */
gboolean dfi_detect_frame_drain (DfDetectFrameSrc *f, GError **error);

/* Frees @f, its decoders and buffers; NULL is allowed. */
void dfi_detect_frame_free (DfDetectFrameSrc *f);

/* --- Recognisers ------------------------------------------------------ */

static inline guint32
dfi_detect_le32 (const guint8 *p)
{
  return p[0] | p[1] << 8 | p[2] << 16 | (guint32)p[3] << 24;
}

static inline guint16
dfi_detect_le16 (const guint8 *p)
{
  return p[0] | p[1] << 8;
}

typedef enum
{
  DF_DETECT_RES_OK,    /* recognised; *next is where the structure ends */
  DF_DETECT_RES_NO,    /* not this structure: plain from here */
  DF_DETECT_RES_LIMIT, /* a limit reached here: plain from here, detection ends */
  DF_DETECT_RES_ERROR, /* I/O error or cancelled */
} DfDetectResult;

/* Segments of @src from its start to its end, at @depth under @parent
 * (the walk over a stream, df-detect.c). FALSE only on an I/O error or
 * cancellation. */
gboolean dfi_detect_stream (DfDetectCtx *c, DfDetectSrc *src, guint depth, gint parent, GError **error);

/* A gzip, zlib, zstd, xz or lzma frame at @pos, recognised from the
 * bytes @p (@n of them). @payload: a bzImage payload (.lzma allowed).
 * Adds the frame's segment and its children; *@next is where it ends
 * (df-detect-frame.c). */
DfDetectResult dfi_detect_try_frame (DfDetectCtx *c, DfDetectSrc *src, guint64 pos, const guint8 *p, gsize n,
                                     guint depth, gint parent, gboolean payload, guint64 *next, GError **error);

/* A newc (070701) or crc (070702) cpio archive at @pos, entry by entry
 * until its trailer; its entries are added to c->entries
 * (df-detect-cpio.c). */
DfDetectResult dfi_detect_cpio (DfDetectCtx *c, DfDetectSrc *src, guint64 pos, guint depth, gint parent, guint64 *next,
                                GError **error);

/* An x86 bzImage (boot protocol 2.08 or later) filling the file @src:
 * DF_DETECT_RES_NO when @p (the first @n bytes) is not one; else its
 * segments, all of the file (df-detect-bzimage.c). */
DfDetectResult dfi_detect_bzimage (DfDetectCtx *c, DfDetectSrc *src, const guint8 *p, gsize n, GError **error);
