/* Every bound deltafetch enforces, in one place. Values read from a delta or
 * the network are checked against these before use; defaults are what the
 * generator and apply use unless an option says otherwise. */
#pragma once

#include "deltafetch.h"

#define DF_MIB (G_GUINT64_CONSTANT (1024) * 1024)

/* Native format version this build writes when a delta rebuilds
 * compressed objects (3), the one it writes otherwise (2, which older
 * builds read), and the oldest it reads. */
#define DF_FORMAT_VERSION 3
#define DF_FORMAT_VERSION_PLAIN 2
#define DF_FORMAT_VERSION_MIN 2

/* --- Superblock ------------------------------------------------------- */
/* Largest superblock file and decompressed body accepted (bytes). An
 * entry takes 96 to 130 bytes of body, so the body limit holds a
 * from-scratch delta of about 250,000 objects; the Debian 12 update pair's
 * superblock is 0.42 MB. Anything bigger is refused unread. */
#define DF_SUPERBLOCK_MAX (16 * DF_MIB)
#define DF_SUPERBLOCK_BODY_MAX (32 * DF_MIB)
/* The superblock body is one zstd frame: its level (generator) and largest
 * window (both sides). */
#define DF_SUPERBLOCK_LEVEL 19
#define DF_SUPERBLOCK_WINDOW_LOG_MAX 26
/* Most ed25519 signatures a signed superblock may carry: each one is
 * checked against every trusted key by hashing the whole superblock, and
 * libostree's envelopes carry one or two (one per signing key). */
#define DF_SIGNATURES_MAX 8
/* Most parts and entries one delta may declare. */
#define DF_PARTS_MAX 65536
#define DF_ENTRIES_MAX (1024u * 1024)

/* --- Rebuilt objects (format 3) ---------------------------------------- */
/* Parts that rebuild compressed objects (kind "rebuild") in one delta, and
 * the parts one of them may depend on (the parts writing the objects its
 * rebuilds read): the dependency records apply keeps are at most their
 * product. A real kernel update has one or two such parts. */
#define DF_REBUILD_PARTS_MAX 64
#define DF_REBUILD_DEPS_MAX 4096
/* Library identities one rebuild part may require. */
#define DF_REBUILD_LIBRARIES_MAX 4
/* Largest object a rebuild entry may make (it is streamed to a staged
 * file, never held in memory). */
#define DF_REBUILD_OBJECT_MAX (G_GUINT64_CONSTANT (4) << 30)
/* The decompressed content a rebuild reads (its work) is at most this many
 * times the object it makes, plus DF_REBUILD_CONTENT_SLACK: real initrds
 * and kernels decompress 3-8 times; the generator keeps the rest plain. */
#define DF_REBUILD_EXPANSION 16
#define DF_REBUILD_CONTENT_SLACK (64 * DF_MIB)
/* All rebuild entries of one delta together read at most this much
 * content: rebuilding runs an encoder over every byte (xz -9 compresses
 * 1-2 MB/s on a small board), and the hash that refuses a forged result
 * comes only at the end. Real initrds hold 50-300 MB. */
#define DF_REBUILD_CONTENT_TOTAL_MAX (G_GUINT64_CONSTANT (2) << 30)
/* The most a part may declare for its rebuilds' encoders (the device
 * decides within its own budget; this only bounds the number). */
#define DF_REBUILD_MEMORY_MAX (G_GUINT64_CONSTANT (1) << 30)
/* When the caller did not set a memory budget, apply may raise the default
 * up to this for a rebuild's encoder (zstd -9 in multi-threaded mode, what
 * Debian's mkinitramfs runs, declares about 100 MiB); never further. */
#define DF_REBUILD_BUDGET_MAX (128 * DF_MIB)
/* Failed rebuilds a later run of the same delta remembers (one line of 65
 * bytes each, in the apply's staging area). */
#define DF_REBUILD_FAILED_MAX 4096

/* --- Parts ------------------------------------------------------------ */
/* Generator default and accepted range of a part's uncompressed payload. */
#define DF_PART_SIZE_DEFAULT DF_DEFAULT_PART_SIZE
#define DF_PART_SIZE_MIN (1 * DF_MIB)
#define DF_PART_SIZE_MAX (32 * DF_MIB)
/* The generator also closes a part once its entries make this many bytes
 * of objects: a part of small diffs can rebuild a whole disk image, and
 * apply spreads parts, not entries, over its workers. */
#define DF_PART_OUTPUT_MAX (64 * DF_MIB)
/* zstd window of part frames: never larger than the part itself; apply
 * refuses frames declaring a window above this. */
#define DF_PART_WINDOW_LOG_MAX 25
/* A content object larger than this is split into chunks of this size
 * (generator); apply accepts chunks up to DF_PART_SIZE_MAX. */
#define DF_CHUNK_SIZE (2 * DF_MIB)
/* Every chunk of a split object but its last is at least this long
 * (apply); the generator cuts DF_CHUNK_SIZE. */
#define DF_CHUNK_MIN (1 * DF_MIB)
/* Old-object window a patch may reference (generator default; apply accepts
 * up to DF_SOURCE_WINDOW_MAX). */
#define DF_SOURCE_WINDOW (4 * DF_MIB)
#define DF_SOURCE_WINDOW_MAX (32 * DF_MIB)
/* A patch's window is at most this many times the bytes it makes (the
 * last chunk of a split object may have a window of DF_SOURCE_WINDOW
 * whatever its length). The generator pairs files at most 4 times apart
 * in size and never reads windows larger than that. */
#define DF_WINDOW_PER_BYTE 4
/* Largest content object header (uid, gid, mode, xattrs, symlink target). */
#define DF_HEADER_MAX (256 * 1024)
/* Largest dirtree/dirmeta object. */
#define DF_METADATA_OBJECT_MAX (16 * DF_MIB)
/* All metadata entries of one delta together (held in memory during the
 * trust walk). */
#define DF_METADATA_TOTAL_MAX (48 * DF_MIB)
/* Deepest directory nesting the trust walk follows (ostree uses 256 too). */
#define DF_TREE_DEPTH_MAX 256
/* The final presence check lists an objects/XX directory (one readdir)
 * instead of asking for each object (two stat calls) once it looks for at
 * least this many objects there. */
#define DF_PRESENT_LIST_MIN 4

/* --- Apply memory ----------------------------------------------------- */
/* Freed buffers each thread keeps for reuse (see dfi_big_alloc()). */
#define DF_BIG_CACHE_SLOTS 2
#define DF_BIG_CACHE_MAX (4 * DF_MIB)
/* Memory set aside from the budget for libostree, GLib, stacks and the
 * trust walk's tables before workers are counted. */
#define DF_APPLY_RESERVE (16 * DF_MIB)
/* Buffer used to stream a staged split object into the repository. */
#define DF_COPY_BUFFER (256 * 1024)
/* Apply starts writeback of written objects every this many bytes. */
#define DF_WRITEBACK_STEP (32 * 1024 * 1024)

/* --- Generate ------------------------------------------------------------ */
/* Encoded entries allowed to wait for the packer, per job. */
#define DF_GENERATE_QUEUE_PER_JOB 4

/* Largest stock superblock file: it may carry the parts themselves
 * (libostree's inline parts); it counts against the memory budget. */
#define DF_STOCK_SUPERBLOCK_MAX (64 * DF_MIB)

/* Largest stock part file, fallback object or size a stock delta declares
 * (ostree puts a file too big to diff in a part or a fallback of its own). */
#define DF_STOCK_FILE_MAX (G_GUINT64_CONSTANT (16) << 30)

/* --- Repository lock ------------------------------------------------- */
/* How often a run waiting for the repository lock tries again. */
#define DF_LOCK_POLL_US (20 * 1000)

/* Fetch */
/* The server's delta index (one entry per from-commit). */
#define DF_FETCH_INDEX_MAX (1 * DF_MIB)
/* A stock server's summary file, read for its delta table when the server
 * has no delta index for the commit. */
#define DF_FETCH_SUMMARY_MAX (16 * DF_MIB)
/* A commit object, read by a plan for libostree's pull for its object
 * sizes (ostree.sizes: about 45 bytes per object, 350,000 objects). */
#define DF_FETCH_COMMIT_MAX (16 * DF_MIB)
/* A dirtree (about 60 bytes an entry: 70,000 entries) and a dirmeta, read
 * by a plan's walk of a commit for libostree's pull. */
#define DF_FETCH_DIRTREE_MAX (4 * DF_MIB)
#define DF_FETCH_DIRMETA_MAX (64 * 1024)
/* The generator's stats file of a to-commit (about 250 bytes a delta),
 * read to choose among from-commits. */
#define DF_FETCH_STATS_MAX (256 * 1024)
/* A remote repository's config file (read to learn the remote's mode). */
#define DF_FETCH_CONFIG_MAX (64 * 1024)
/* A summary's signatures (summary.sig): a few hundred bytes a key. */
#define DF_FETCH_SUMMARY_SIG_MAX (1 * DF_MIB)
/* A remote's mirror list ("mirrorlist=URL"): a URL a line. */
#define DF_FETCH_MIRRORLIST_MAX (64 * 1024)
/* Mirrors a fetch takes. */
#define DF_FETCH_MIRRORS 32
/* Redirects followed per request. */
#define DF_FETCH_MAX_REDIRECTS 5
/* Times a part may start over because its file changed on the server. */
#define DF_FETCH_MAX_CHANGES 3
/* Finished ranges are made durable and recorded this often. */
#define DF_FETCH_CHECKPOINT_US (1 * G_USEC_PER_SEC)
