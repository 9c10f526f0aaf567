/* Content detection for the generator: what a file is made of.
 *
 * dfi_detect_fd() (or dfi_detect_read_at()) reads a file and describes it as
 * a flat list of segments in file order: plain bytes, runs of zero bytes,
 * compressed frames (gzip members, zlib streams, zstd frames and skippable
 * frames, xz streams, the legacy .lzma format inside a kernel), newc cpio
 * archives with their entries, and the parts of an x86 bzImage kernel.
 * Nothing is decided by the file's name.
 *
 * Nesting: a compressed frame's decompressed stream is examined the same
 * way, and what it holds follows the frame in the list as its children
 * (depth one more, `parent` naming the frame). Children's offsets count
 * in the parent's decompressed stream; a frame has children only when
 * something other than one plain run was found there, and then they tile
 * its decompressed stream exactly. So an initrd reads:
 *
 *   cpio      0      2048   entries: kernel/x86/microcode/...
 *   zero      2048   510    (the early archive's padding)
 *   zstd      2560   ...    decompressed 87 MB
 *     cpio    0      ...    entries: bin/sh, init, usr/lib/modules/...
 *
 * Where structures are looked for: at the start of the file (or stream)
 * and just after each structure found. A zero byte there starts a zero
 * run; anything not recognised there makes the rest of the stream one
 * plain run (plain content is not scanned for magic numbers).
 *
 * A bzImage (recognised at the start of the file only) reads:
 *
 *   bzimage-setup 0        20480   boot sector and setup, (setup_sects + 1) * 512
 *   plain         20480    716     protected-mode code before the payload
 *   xz            21196    8122336 the payload (DF_SEGMENT_BZIMAGE_PAYLOAD), decompressed 66 MB
 *   plain         8143532  4       the rest of payload_length (the kernel's le32 of the decompressed size)
 *   plain         8143536  103696  the rest of the file
 *
 * A frame's length counts all of it (a gzip member's header and trailer,
 * an xz stream's header, index and footer).
 *
 * Every offset and length read from the file is checked before use; a
 * structure that does not check out (bad magic, a header field out of
 * range, a decoder error, a truncated frame, a failed CRC) is not
 * reported: from there on the bytes are plain. Each hard limit below,
 * when reached, ends detection the same way: the rest is plain and
 * DF_SEGMENT_LIMIT marks the segment that starts there. Detection never
 * fails on content; it fails only when reading the file fails
 * (DF_ERROR_IO) or is cancelled.
 *
 * Memory is bounded by the limits, never by the file's size: one decoder
 * per frame being decoded, at most depth_max + 1 at once (each a zstd
 * window or an xz dictionary of at most DfDetectLimits.decoder_mem, or
 * zlib's 32 KiB) with 320 KiB of buffers, and the segment and entry
 * tables (at most segments_max * 112 bytes and entries_max * (120 bytes +
 * a name of up to DF_DETECT_NAME_MAX)). Work is linear in the file's size
 * plus at most DfDetectLimits.decompressed_max (+ 64 KiB) bytes of
 * decoder output: every structure is tried once at each position, and a
 * read behind what a decoder keeps (which the detector's forward reading
 * does not do) re-decodes, counted in that budget. Measured on Debian
 * 12's kernel (8.2 MB, xz payload of 66 MB): 1.8 s, 46 MB peak RSS; its
 * initrd (36 MB gzip of a 131 MB cpio, 1,187 entries): 1.0 s, 15 MB.
 *
 * Thread safety: a DfDetect is immutable once returned; detections on
 * different files may run in parallel. */
#pragma once

#include <gio/gio.h>

#include "df-common.h"

G_BEGIN_DECLS

/* --- Limits ---------------------------------------------------------- */
/* Segments in one file, all depths together. A file of more (say a
 * stream of thousands of tiny gzip members) is plain after the last
 * (the plain runs that end each open stream may add up to depth_max
 * more). */
#define DF_DETECT_SEGMENTS_MAX 4096
/* Cpio entries in one file, all archives and depths together. Debian 12's
 * initrd has about 3,000. */
#define DF_DETECT_ENTRIES_MAX 65536
/* Longest cpio entry name, its NUL included (PATH_MAX). */
#define DF_DETECT_NAME_MAX 4096
/* Longest gzip FNAME or FCOMMENT field, its NUL included. */
#define DF_DETECT_GZIP_FIELD_MAX 4096
/* Deepest segment: 0 is the file; 1 inside a frame; 2 inside a frame
 * inside a frame. Frames at this depth are decoded (to find their end)
 * but what they hold is not examined. */
#define DF_DETECT_DEPTH_MAX 2
/* Decompressed bytes produced per file, all frames and depths together,
 * re-decoding included (a kernel's payload is 30-60 MB, an initrd's 50-300). */
#define DF_DETECT_DECOMPRESSED_MAX (G_GUINT64_CONSTANT (4) << 30)
/* Decoder memory per frame: the largest zstd window (a power of two) and
 * liblzma's memlimit. 2^27 covers `zstd --ultra -22` kernels and
 * `xz -9` (64 MiB dictionary). */
#define DF_DETECT_DECODER_MEM_MAX (128 * DF_MIB)

/* The limits a detection runs under; dfi_detect_limits_default() fills in
 * the DF_DETECT_* values above. Tests and fuzzers lower them. Every field
 * must be at least 1; depth_max at most DF_DETECT_DEPTH_MAX. */
typedef struct
{
  guint segments_max;
  guint entries_max;
  guint depth_max;
  guint64 decompressed_max;
  guint64 decoder_mem; /* bytes; rounded down to a power of two for zstd */
} DfDetectLimits;

void dfi_detect_limits_default (DfDetectLimits *limits);

/* --- Segments -------------------------------------------------------- */
typedef enum
{
  DF_SEGMENT_PLAIN = 0,      /* anything not recognised */
  DF_SEGMENT_ZERO,           /* a run of zero bytes between structures (cpio padding, xz stream padding) */
  DF_SEGMENT_GZIP,           /* one RFC 1952 member, header to trailer */
  DF_SEGMENT_ZLIB,           /* one RFC 1950 stream */
  DF_SEGMENT_ZSTD,           /* one zstd frame */
  DF_SEGMENT_ZSTD_SKIPPABLE, /* one zstd skippable frame (not decoded) */
  DF_SEGMENT_XZ,             /* one xz stream, without the stream padding after it */
  DF_SEGMENT_LZMA,           /* legacy .lzma ("lzma_alone"): recognised only as a bzImage payload */
  DF_SEGMENT_CPIO,           /* a newc/crc cpio archive, first header to the end of the trailer entry */
  DF_SEGMENT_BZIMAGE_SETUP,  /* a bzImage's boot sector and real-mode setup: (setup_sects + 1) * 512 bytes */
  DF_SEGMENT_KIND_COUNT
} DfSegmentKind;

/* Flags of a segment. */
enum
{
  /* Frames: the frame's own check passed (gzip CRC-32 and ISIZE, zlib
   * Adler-32, a zstd content checksum, an xz CRC32/CRC64/SHA-256). Unset
   * when the frame has none (zstd without checksum, xz check none,
   * .lzma). A frame whose check fails is not reported at all. */
  DF_SEGMENT_CHECKED = 1 << 0,
  /* zstd: the frame header declares the content size. */
  DF_SEGMENT_CONTENT_SIZE = 1 << 1,
  /* zstd: the frame has the content-checksum flag. */
  DF_SEGMENT_CHECKSUM = 1 << 2,
  /* cpio: the archive ends without "TRAILER!!!" (truncated or broken
   * after its last complete entry, which ends the segment). */
  DF_SEGMENT_NO_TRAILER = 1 << 3,
  /* The segment is the payload of the bzImage whose setup segment comes
   * first (a frame, or plain when its format is not decoded). */
  DF_SEGMENT_BZIMAGE_PAYLOAD = 1 << 4,
  /* A limit was reached at this segment: it and everything after it at
   * its depth is plain, whatever it holds. */
  DF_SEGMENT_LIMIT = 1 << 5,
  /* A frame at the deepest depth: its content was not examined. */
  DF_SEGMENT_NOT_EXAMINED = 1 << 6,
};

#define DF_DETECT_FILTERS_MAX 4 /* LZMA_FILTERS_MAX */

typedef struct
{
  guint64 id;           /* liblzma filter id: LZMA_FILTER_X86 (4), LZMA_FILTER_LZMA2 (0x21)... */
  guint32 dict_size;    /* LZMA1/LZMA2: dictionary size; 0 for other filters */
  guint32 start_offset; /* BCJ filters: start offset (0 is the default) */
} DfDetectFilter;

typedef struct
{
  DfSegmentKind kind;
  guint flags;    /* DF_SEGMENT_* */
  guint depth;    /* 0: in the file */
  gint parent;    /* index of the enclosing frame in the segment list, -1 at depth 0 */
  guint64 offset; /* in the file at depth 0, else in the parent's decompressed stream */
  guint64 length;
  /* Frames (gzip, zlib, zstd, xz, lzma): bytes the frame decompresses to. */
  guint64 decompressed_size;
  union
  {
    struct
    {
      guint8 flg, xfl, os; /* header bytes FLG, XFL, OS */
      guint32 mtime;
      guint32 header_len; /* bytes before the deflate data */
      guint16 name_len;   /* FNAME without its NUL (0: none) */
    } gzip;
    struct
    {
      guint8 cmf, flg; /* the two header bytes (level hint in flg >> 6) */
    } zlib;
    struct
    {
      guint64 window_size;
      guint32 dict_id;
      guint32 magic; /* skippable frames: 0x184D2A50..0x184D2A5F */
    } zstd;
    struct
    {
      guint check;     /* lzma_check: 0 none, 1 CRC32, 4 CRC64, 10 SHA-256 */
      guint n_filters; /* of the first block header; 0 when the stream has no block */
      DfDetectFilter filters[DF_DETECT_FILTERS_MAX];
    } xz;
    struct
    {
      guint8 props; /* lc/lp/pb byte */
      guint32 dict_size;
      guint64 declared_size; /* G_MAXUINT64: unknown (end marker) */
    } lzma;
    struct
    {
      guint first_entry; /* index into DfDetect.entries */
      guint n_entries;   /* the trailer entry not counted */
    } cpio;
    struct
    {
      guint16 version;        /* boot protocol version, e.g. 0x020f */
      guint8 setup_sects;     /* as read (0 means 4) */
      guint32 payload_offset; /* from the start of the protected-mode code, which follows this segment */
      guint32 payload_length;
    } bzimage;
  } u;
} DfSegment;

/* One cpio entry (the trailer is not listed). Offsets are in the same
 * stream as its archive's segment. */
typedef struct
{
  const char *name; /* NUL-terminated, owned by the DfDetect */
  guint segment;    /* index of its archive's segment */
  guint32 ino, mode, uid, gid, nlink, mtime, filesize;
  guint32 devmajor, devminor, rdevmajor, rdevminor, check;
  guint64 header_offset;        /* where its 110-byte header starts */
  guint64 data_offset;          /* where its data starts (after the name and padding) */
  gboolean has_sha256;          /* DF_DETECT_HASH_ENTRIES and a regular file */
  guint8 sha256[DF_SHA256_LEN]; /* of its filesize bytes of data */
} DfCpioEntry;

typedef struct
{
  guint64 size; /* of the file */
  guint n_segments;
  DfSegment *segments; /* pre-order: a frame, then its children */
  guint n_entries;
  DfCpioEntry *entries;
  guint64 decompressed_total; /* decoder output produced, re-decoding included */
  gboolean limited;           /* some limit was reached (see DF_SEGMENT_LIMIT) */
  /*< private >*/
  GStringChunk *names;
} DfDetect;

typedef enum
{
  DF_DETECT_NONE = 0,
  /* Compute the SHA-256 of every regular file's data in a cpio archive
   * (DfCpioEntry.sha256). The data is read anyway to pass it; the hash
   * costs about 2 ms per MB. */
  DF_DETECT_HASH_ENTRIES = 1 << 0,
} DfDetectFlags;

/* Reads up to @len bytes at @offset into @buf: returns the count (fewer
 * only at the end of the file), or -1 with @error set (a real I/O error,
 * which fails the detection). */
typedef gssize (*DfReadAtFunc) (gpointer user_data, void *buf, gsize len, guint64 offset, GError **error);

/* Describes the @size bytes of the file @fd (read with pread(), the
 * file offset untouched; @fd stays the caller's) under @limits (NULL: the
 * defaults). Returns a new DfDetect (free with dfi_detect_free()), or NULL
 * with DF_ERROR_IO when a read fails or the file is shorter than @size,
 * or G_IO_ERROR_CANCELLED. Content never fails it (see the top). */
DfDetect *dfi_detect_fd (int fd, guint64 size, const DfDetectLimits *limits, DfDetectFlags flags,
                         GCancellable *cancellable, GError **error);

/* The same over @read_at (called with @user_data; never past @size). */
DfDetect *dfi_detect_read_at (DfReadAtFunc read_at, gpointer user_data, guint64 size, const DfDetectLimits *limits,
                              DfDetectFlags flags, GCancellable *cancellable, GError **error);

/* Frees @d and everything it owns; NULL is fine. */
void dfi_detect_free (DfDetect *d);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (DfDetect, dfi_detect_free)

/* A short stable name of @kind ("plain", "zero", "gzip", "zlib", "zstd",
 * "zstd-skippable", "xz", "lzma", "cpio", "bzimage-setup"); "?" for
 * anything else. */
const char *dfi_segment_kind_name (DfSegmentKind kind);

/* --- Summary ---------------------------------------------------------- */
typedef struct
{
  guint count[DF_SEGMENT_KIND_COUNT];
  /* Bytes of the file in segments of each kind at depth 0. */
  guint64 file_bytes[DF_SEGMENT_KIND_COUNT];
  /* Frames of each kind at any depth: the bytes they decompress to. */
  guint64 decompressed_bytes[DF_SEGMENT_KIND_COUNT];
  guint n_entries;     /* cpio entries at any depth */
  guint64 entry_bytes; /* their data */
  guint max_depth;
  gboolean limited;
} DfDetectSummary;

/* Counts and bytes by kind of @d into @out. */
void dfi_detect_summarize (const DfDetect *d, DfDetectSummary *out);

/* Adds @s to @total (for a generator that sums up many files). */
void dfi_detect_summary_add (DfDetectSummary *total, const DfDetectSummary *s);

/* One line of text for @s, e.g. "gzip 2 (1.2 MB -> 4.0 MB), cpio 1 (1,234
 * entries), plain 1 (20 kB)": kinds present only, in DfSegmentKind
 * order. Free with g_free(). */
char *dfi_detect_summary_to_string (const DfDetectSummary *s);

G_END_DECLS
