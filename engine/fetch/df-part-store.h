/* The part store: where a fetch's files (delta parts, stock fallback
 * objects) are assembled from ranges, checked, and kept across runs.
 *
 * The store is a directory in the repository's tmp/ named after the
 * superblock's SHA-256. A file ("part") lives there as "NAME.partial"
 * while ranges arrive, with "NAME.ranges" noting (the range size, then one
 * byte per range) which ranges are durably in; it is renamed to "NAME"
 * once it matches its checksum. A part's life is one state, moved only by
 * dfi_part_store_set_state(), which asserts the move is legal:
 *
 *   NEW ──> UNNEEDED                       (the apply needs nothing of it)
 *   UNNEEDED ──> NEW                       (needed after all: a rebuild failed)
 *   NEW ──> DONE                           (verified in the store already)
 *   NEW ──> WANTED ──> VERIFYING ──> DONE
 *             ^            │  └───> FAILED (an I/O error, or bad from everywhere)
 *             └────────────┘               (bad: starts over)
 *
 * The store judges bytes and keeps files; it blames nobody: finishing a
 * part says verified, bad (with the mirrors that served it) or I/O error,
 * and its caller decides. Everything runs in the thread that downloads,
 * except dfi_part_store_wait(), for a consumer thread. */
#pragma once

#include "df-common.h"
#include "df-stock.h"

typedef enum
{
  DF_PART_STATE_NEW,       /* planned; the store not consulted yet */
  DF_PART_STATE_UNNEEDED,  /* never fetched: the apply has what it holds */
  DF_PART_STATE_WANTED,    /* ranges missing: queued or in flight */
  DF_PART_STATE_VERIFYING, /* every range in, no writer left: being checked */
  DF_PART_STATE_DONE,      /* verified and stored under its final name */
  DF_PART_STATE_FAILED,    /* given up: the fetch fails */
  DF_PART_N_STATES
} DfPartState;

typedef struct _DfStorePart DfStorePart;

/* Range @slot of a part: bytes [off, off + len). The scheduling fields
 * belong to the downloader. */
typedef struct
{
  DfStorePart *part;
  guint slot;
  guint64 off, len;
  guint64 got; /* bytes from off already in the file (a cut transfer): a retry asks for the rest */
  /* The downloader's */
  guint attempts; /* failures on attempts_mirror */
  guint attempts_mirror;
  guint mirrors_failed; /* mirrors demoted while this range was failing */
  gint64 not_before;    /* monotonic µs: backoff */
  gboolean queued;
} DfStoreRange;

struct _DfStorePart
{
  DfPartState state; /* read it freely in the downloading thread; change it with dfi_part_store_set_state() */
  guint index;
  char name[80];                   /* in the store: "<index>", or "<checksum>.<kind>" for a fallback object */
  const DfStockFallback *fallback; /* a stock fallback object: checked by its object checksum */
  guint64 size;
  guint8 sha256[DF_SHA256_LEN]; /* of the file, from the superblock (not for a fallback object) */
  guint64 unpacked;             /* what it decodes to (free-space check) */
  guint n_ranges;
  DfStoreRange *ranges;
  guint8 *done;     /* per range: bytes are in the .partial file */
  guint8 *recorded; /* per range: done and noted durably in the .ranges file */
  guint remaining;  /* ranges not done */
  int fd;           /* of the .partial file, while open */
  gboolean dirty;   /* ranges recorded since the last checkpoint */
  gboolean resumed; /* holds ranges downloaded by an earlier run */
  guint generation; /* bumped when the part starts over */
  /* The downloader's */
  char *rel;         /* on the server, when not "<delta>/<index>" */
  guint active;      /* transfers writing into this part */
  guint full_active; /* of which whole-file replies */
  char etag[256];    /* of the file on etag_mirror, when consistent so far */
  guint etag_mirror;
  gboolean ignore_etag; /* the file changed too often: rely on the checksum alone */
  guint64 downloaded;   /* bytes received in this run */
  guint32 mirrors_used; /* bit per mirror that delivered bytes */
  guint corrupt, changes;
};

typedef struct
{
  OstreeRepo *repo;
  GCancellable *cancellable;
  guint64 range_size;
  int dfd;       /* the store's directory, once open */
  char rel[128]; /* its path in the repository */
  DfStorePart *parts;
  guint n_parts;
  guint64 bytes_reused; /* found verified or in recorded ranges */
  GMutex lock;          /* guards the parts' states against ... */
  GCond cond;           /* ... a consumer waiting in dfi_part_store_wait() */
  gboolean stop;        /* no more parts will come */
} DfPartStore;

/* Sets up @s for @repo (borrowed; NULL in unit tests), ranges of
 * @range_size bytes, checks stopped by @cancellable (borrowed). */
void dfi_part_store_init (DfPartStore *s, OstreeRepo *repo, guint64 range_size, GCancellable *cancellable);
/* Frees the parts and closes what is open; the files stay. */
void dfi_part_store_clear (DfPartStore *s);

/* Opens (creating it) the store of the delta whose superblock has SHA-256
 * @sb_hex, after removing every other fetch's or apply's leftover state in
 * tmp/ (this delta is the one to finish). */
gboolean dfi_part_store_open (DfPartStore *s, const char *sb_hex, GError **error);
/* For a plan: opens the store of that delta if an earlier run left one,
 * reading only (nothing created, nothing removed); FALSE when there is
 * none. */
gboolean dfi_part_store_open_existing (DfPartStore *s, const char *sb_hex);
/* For a plan: the bytes of @p (initialised, not looked up) an earlier run
 * left in the store: all of it when verified, else its recorded ranges. */
guint64 dfi_part_store_peek (DfPartStore *s, const DfStorePart *p);
/* Closes the store and removes its directory (done, or final failure). */
void dfi_part_store_remove (DfPartStore *s);

/* Allocates @n parts (at least one slot), all NEW with empty names. */
void dfi_part_store_alloc (DfPartStore *s, guint n);
/* Describes part @p: number @index, @size bytes of SHA-256 @sha (ignored
 * for a fallback object), decoding to @unpacked; splits it into ranges.
 * Names it "<index>" unless a name is set. */
void dfi_part_init (DfPartStore *s, DfStorePart *p, guint index, guint64 size, const guint8 sha[DF_SHA256_LEN],
                    guint64 unpacked);
/* Consults the store for NEW part @p: DONE when a verified file is there,
 * else WANTED with the ranges an earlier run recorded marked done. */
void dfi_part_store_lookup (DfPartStore *s, DfStorePart *p);

/* Whether moving a part from @from to @to is legal (see the diagram). */
gboolean dfi_part_state_legal (DfPartState from, DfPartState to);
/* The state's name, for messages. */
const char *dfi_part_state_name (DfPartState state);
/* Moves @p to @to under the store's lock, waking waiters; aborts on an
 * illegal move. */
void dfi_part_store_set_state (DfPartStore *s, DfStorePart *p, DfPartState to);
/* DONE or UNNEEDED: nothing more to do for @p. */
gboolean dfi_part_settled (const DfStorePart *p);

/* Marks range @slot of WANTED @p done; FALSE if it was already. */
gboolean dfi_part_range_done (DfStorePart *p, guint slot);
/* The .partial file of @p, opened on demand; -1 with errno on failure. */
int dfi_part_store_fd (DfPartStore *s, DfStorePart *p);
/* Closes @p's file when no transfer writes into it. */
void dfi_part_store_release_fd (DfStorePart *p);
/* Notes @p's finished ranges in its .ranges file, as soon as they are in,
 * so a killed process loses none (the page cache survives it). */
void dfi_part_store_record (DfPartStore *s, DfStorePart *p);
/* Against power loss: makes the bytes of every part with new records,
 * then the records, durable. */
void dfi_part_store_checkpoint (DfPartStore *s);
/* Starts @p over (WANTED or VERIFYING → WANTED): its files go, every range
 * is missing again and the generation changes; writers still active keep
 * writing into the old inode. Its ranges are not queued here. */
void dfi_part_store_restart (DfPartStore *s, DfStorePart *p);

typedef enum
{
  DF_PART_VERIFIED, /* DONE: stored under its final name */
  DF_PART_BAD,      /* VERIFYING still: the bytes do not match; the caller blames or restarts */
  DF_PART_IO_ERROR, /* FAILED: the store cannot read or keep it */
} DfPartVerdict;

/* Checks WANTED @p, every range in and no writer left, and keeps it
 * under its final name. BAD leaves @p VERIFYING with *@served_by the
 * mirrors (a bit each) that delivered its bytes in this run and @error
 * saying why; IO_ERROR sets @error. */
DfPartVerdict dfi_part_store_finish (DfPartStore *s, DfStorePart *p, guint32 *served_by, GError **error);

/* For a consumer thread: waits until @p is settled (TRUE) or the store is
 * stopped (FALSE, @error set). */
gboolean dfi_part_store_wait (DfPartStore *s, DfStorePart *p, GError **error);
/* No more parts will come: wakes every waiter. */
void dfi_part_store_stop (DfPartStore *s);
