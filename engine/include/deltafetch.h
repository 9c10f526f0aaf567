/* deltafetch — OSTree static deltas, generated and applied fast and safely.
 *
 * This header is the whole public API of libdeltafetch and its manual. Every
 * function is documented where it is declared. Conventions:
 *
 *  - Functions that can fail return gboolean (or a pointer, NULL on failure)
 *    and take `GCancellable *cancellable, GError **error` last. Errors are in
 *    the DF_ERROR domain (codes below) unless they come straight from GIO
 *    (G_IO_ERROR_CANCELLED on cancellation).
 *  - Objects are opaque; `*_new` pairs with `*_free`, and `*_free (NULL)` is a
 *    no-op. g_autoptr() works for every type declared here.
 *  - The library never prints. Progress reaches the caller through a callback.
 *  - Checksums are 64-character lower-case hex SHA-256 strings, as in OSTree.
 *
 * Trust model of apply: the root of trust is the to-commit checksum. When the
 * caller passes it (df_apply_options_set_commit(), what an Uptane/TUF agent
 * learns from signed metadata), the commit object carried by the delta must
 * hash to it, and every object written must be reachable from that commit and
 * hash to its checksum before it enters the repository's objects/.
 */
#pragma once

#include <gio/gio.h>
#include <ostree.h>

G_BEGIN_DECLS

#define DF_PUBLIC __attribute__ ((visibility ("default")))

/* ------------------------------------------------------------------------ */
/* Version                                                                   */

/* The version of this header (the project's, meson.build). */
#define DF_VERSION_MAJOR 0
#define DF_VERSION_MINOR 1
#define DF_VERSION_MICRO 0
#define DF_VERSION_STRING "0.1.0"
/* TRUE when this header is version @major.@minor.@micro or later. */
#define DF_CHECK_VERSION(major, minor, micro)                                                                          \
  (DF_VERSION_MAJOR > (major) || (DF_VERSION_MAJOR == (major) && DF_VERSION_MINOR > (minor))                           \
   || (DF_VERSION_MAJOR == (major) && DF_VERSION_MINOR == (minor) && DF_VERSION_MICRO >= (micro)))

/* The version of the library in use ("MAJOR.MINOR.MICRO"), which may be
 * newer than the header a program was built with. */
DF_PUBLIC const char *df_version (void);

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */

/**
 * DfError:
 * @DF_ERROR_FAILED: anything not covered below. CLI exit code 1.
 * @DF_ERROR_INVALID_ARGUMENT: a bad option or argument from the caller (bad
 *   checksum syntax, unknown ref, unusable output directory). CLI exit code 2.
 * @DF_ERROR_INVALID_DELTA: the delta is malformed: bad magic or version,
 *   truncated or oversized superblock or part, a size/offset/count out of
 *   bounds, a declared size exceeded while decompressing. CLI exit code 3.
 * @DF_ERROR_CORRUPT: bytes do not hash to what they should: a part whose
 *   SHA-256 differs from the superblock's, an object whose reconstructed
 *   content differs from its checksum. CLI exit code 4.
 * @DF_ERROR_UNTRUSTED: the delta does not produce the trusted commit: the
 *   commit object does not hash to the expected checksum, or the delta
 *   carries an object the commit does not reference; or a signature the
 *   policy or a remote's config asks for (superblock, summary, commit) is
 *   missing or does not verify. CLI exit code 5.
 * @DF_ERROR_MISSING_BASE: the delta needs a from-commit or a source object
 *   that the repository does not have. CLI exit code 6.
 * @DF_ERROR_NO_SPACE: the filesystem ran out of space (ENOSPC/EDQUOT).
 *   CLI exit code 7.
 * @DF_ERROR_IO: reading the delta or writing the repository failed for
 *   another reason. CLI exit code 8.
 *
 * @DF_ERROR_NETWORK: fetch: the download failed on every mirror after the
 *   bounded retries (connection refused or reset, HTTP errors, TLS refused,
 *   a server that sent more bytes than the delta declares or a range other
 *   than the one asked for, an index and the superblock it lists that
 *   disagree even when asked for fresh copies). CLI exit code 9.
 * @DF_ERROR_TIMEOUT: fetch: slow retrieval: no connection within the
 *   connect timeout, a transfer below the low-speed limit for the low-speed
 *   time, or one that overran its deadline (its size divided by the minimum
 *   average rate, plus slack), on every mirror. CLI exit code 10.
 * @DF_ERROR_DOWNGRADE: the commit is older (by its timestamp) than the one
 *   the ref points at, and downgrades were not allowed. CLI exit code 11.
 * @DF_ERROR_BUSY: another deltafetch apply or fetch kept the repository
 *   for longer than the lock timeout. CLI exit code 12. (Until 0.1.0 this
 *   was DF_ERROR_IO, exit code 8.)
 * @DF_ERROR_TOO_LARGE: fetch: the update is larger than the caller allows
 *   (df_fetch_options_set_max_bytes()), or only a from-scratch download was
 *   offered and it is not allowed (df_fetch_options_set_allow_from_scratch());
 *   refused before any part was downloaded. CLI exit code 13.
 * @DF_ERROR_NOT_FOUND: fetch through a remote: the remote's summary has no
 *   such ref. CLI exit code 14.
 *
 * Codes are stable; new ones are only ever appended. df_error_name() and
 * df_error_is_retryable() classify any error this library returns.
 */
typedef enum
{
  DF_ERROR_FAILED = 1,
  DF_ERROR_INVALID_ARGUMENT,
  DF_ERROR_INVALID_DELTA,
  DF_ERROR_CORRUPT,
  DF_ERROR_UNTRUSTED,
  DF_ERROR_MISSING_BASE,
  DF_ERROR_NO_SPACE,
  DF_ERROR_IO,
  DF_ERROR_NETWORK,
  DF_ERROR_TIMEOUT,
  DF_ERROR_DOWNGRADE,
  DF_ERROR_BUSY,
  DF_ERROR_TOO_LARGE,
  DF_ERROR_NOT_FOUND,
} DfError;

#define DF_ERROR (df_error_quark ())
DF_PUBLIC GQuark df_error_quark (void);

/**
 * df_error_exit_code:
 * @error: (nullable): an error returned by this library
 *
 * Returns: the process exit code the deltafetch CLI uses for @error: 0 for
 * NULL, 130 for G_IO_ERROR_CANCELLED, the code listed at #DfError for the
 * DF_ERROR domain, 7 for G_IO_ERROR_NO_SPACE, 8 for other G_IO_ERROR codes,
 * and 1 otherwise.
 */
DF_PUBLIC int df_error_exit_code (const GError *error);

/**
 * df_error_name:
 * @error: (nullable): an error returned by this library
 *
 * Returns: a stable name for @error's kind, for logs and machine-readable
 * output: "failed", "invalid-argument", "invalid-delta", "corrupt",
 * "untrusted", "missing-base", "no-space", "io", "network", "timeout",
 * "downgrade", "busy", "too-large", "not-found" (the DfError codes, and G_IO_ERROR_NO_SPACE and
 * other G_IO_ERROR codes as "no-space" and "io"), "cancelled"
 * (G_IO_ERROR_CANCELLED); NULL for a NULL @error. The same grouping as
 * df_error_exit_code().
 */
DF_PUBLIC const char *df_error_name (const GError *error);

/**
 * df_error_is_retryable:
 * @error: (nullable): an error returned by this library
 *
 * Returns: TRUE when the same call, with the same update, may succeed if
 * tried again later, because what failed lies outside the update: the
 * network ("network"), a slow server ("timeout"), a busy repository
 * ("busy"), a full disk once space is freed ("no-space"). Fetch and apply
 * keep what they verified, so a retry resumes. FALSE for an update that
 * is itself wrong or refused (invalid delta, corrupt, untrusted, missing
 * base, downgrade: trying again gets the same answer until the update or
 * the repository changes), for a bad call, for a cancellation and for
 * anything unclassified ("failed", "io").
 */
DF_PUBLIC gboolean df_error_is_retryable (const GError *error);

/* ------------------------------------------------------------------------ */
/* Progress                                                                  */

typedef enum
{
  DF_PHASE_PLAN = 1, /* walking commits, pairing objects, reading superblock */
  DF_PHASE_METADATA, /* verifying and writing dirtree/dirmeta objects */
  DF_PHASE_ENCODE,   /* generate: encoding objects and compressing parts */
  DF_PHASE_CONTENT,  /* apply: verifying parts and writing content objects */
  DF_PHASE_COMMIT,   /* final checks, commit object, transaction, ref */
  DF_PHASE_WAIT,     /* apply: waiting for another apply or fetch in the repository (the lock) */
} DfPhase;

/**
 * DfProgress:
 * A snapshot handed to a #DfProgressFunc. Byte counts are content bytes:
 * those the delta's content entries produce for apply, those read for
 * generate.
 */
typedef struct
{
  DfPhase phase;
  guint64 parts_done;
  guint64 parts_total;
  guint64 bytes_done;
  guint64 bytes_total;
  guint64 objects_done;
  guint64 objects_total;
} DfProgress;

/**
 * DfProgressFunc:
 * Called from the thread that called df_generate() or df_apply(), never
 * concurrently, at most about ten times a second plus once per phase change.
 * It must not call back into the library with the same options object.
 */
typedef void (*DfProgressFunc) (const DfProgress *progress, gpointer user_data);

/* ------------------------------------------------------------------------ */
/* Generate                                                                  */

typedef struct _DfGenerateOptions DfGenerateOptions;

/** df_generate_options_new: Returns: (transfer full): options with defaults:
 * from-scratch unset (a from or empty must be chosen), jobs = number of
 * processors, level = DF_DEFAULT_LEVEL, part size = 8 MiB. */
DF_PUBLIC DfGenerateOptions *df_generate_options_new (void);
DF_PUBLIC void df_generate_options_free (DfGenerateOptions *opts);

/** The zstd level used when none is set; 1..19 are accepted. */
#define DF_DEFAULT_LEVEL 19
/** The part size used when none is set (uncompressed bytes). */
#define DF_DEFAULT_PART_SIZE (8 * 1024 * 1024)

/** Revision (checksum or ref) to delta from; NULL with @empty TRUE makes a
 * from-scratch delta. */
DF_PUBLIC void df_generate_options_set_from (DfGenerateOptions *opts, const char *rev);
DF_PUBLIC void df_generate_options_set_empty (DfGenerateOptions *opts, gboolean empty);
/** One more revision to delta from (df_generate_many(): a delta each). */
DF_PUBLIC void df_generate_options_add_from (DfGenerateOptions *opts, const char *rev);
/** df_generate_many(): also a delta from each of the @n commits before the
 * to-commit in its history (its parent first); fewer when the history is
 * shorter or its older commits are no longer in the repository. */
DF_PUBLIC void df_generate_options_set_from_last (DfGenerateOptions *opts, guint n);
/** df_generate_many(): make every delta again, even one that is already
 * published whole and as these options would make it (by default it is
 * kept and reported as skipped). */
DF_PUBLIC void df_generate_options_set_force (DfGenerateOptions *opts, gboolean force);
/** Revision (checksum or ref) the delta produces. Required. */
DF_PUBLIC void df_generate_options_set_to (DfGenerateOptions *opts, const char *rev);
/** Write the delta into @dir (created; must not hold a superblock already)
 * instead of inside the repository; no index is written then. */
DF_PUBLIC void df_generate_options_set_out_dir (DfGenerateOptions *opts, const char *dir);
/** df_generate_many(), for generation fanned out over a scheduler's jobs:
 * each delta goes into @dir/ID/ (ID: FROM-TO, or TO from scratch), no
 * index is written, and one already there whole (same options and keys)
 * is kept. df_index_merge() then brings the jobs' outputs into the
 * repository. Native deltas only. */
DF_PUBLIC void df_generate_options_set_out_root (DfGenerateOptions *opts, const char *dir);
/** Worker threads; 0 means one per processor. */
DF_PUBLIC void df_generate_options_set_jobs (DfGenerateOptions *opts, guint jobs);
/** zstd level 1..19 for parts and patches; higher is smaller and slower. */
DF_PUBLIC void df_generate_options_set_level (DfGenerateOptions *opts, int level);
/** Upper bound of one part's uncompressed payload, 1 MiB..32 MiB. Smaller
 * parts cost apply memory less and resume cheaper; larger parts compress
 * better. */
DF_PUBLIC void df_generate_options_set_part_size (DfGenerateOptions *opts, guint64 bytes);
/**
 * DfDeltaFormat:
 * @DF_DELTA_FORMAT_NATIVE: deltafetch's format (engine/FORMAT.md), the default.
 * @DF_DELTA_FORMAT_OSTREE: a stock OSTree static delta, made by libostree's
 *   own generator (slow: single-threaded bsdiff and xz), which stock
 *   `ostree pull` and `ostree static-delta apply-offline` read. Generated into
 *   the repository, it is added to the delta index and the summary. Jobs,
 *   level and part size do not apply.
 */
typedef enum
{
  DF_DELTA_FORMAT_NATIVE = 0,
  DF_DELTA_FORMAT_OSTREE = 1,
} DfDeltaFormat;
DF_PUBLIC void df_generate_options_set_format (DfGenerateOptions *opts, DfDeltaFormat format);
/**
 * DfVariants:
 * @DF_VARIANTS_BOTH: compressed objects that can be rebuilt on the device
 *   from their decompressed content (initrds, .gz files) are carried that
 *   way, and also plainly in optional parts a device uses when it cannot
 *   rebuild them (the default).
 * @DF_VARIANTS_TRANSFORMED: rebuilt only: smallest, but a device whose
 *   libraries or memory budget do not allow the rebuild cannot apply it.
 * @DF_VARIANTS_PLAIN: nothing rebuilt: a format-2 delta, as older builds
 *   made.
 */
typedef enum
{
  DF_VARIANTS_BOTH = 0,
  DF_VARIANTS_TRANSFORMED,
  DF_VARIANTS_PLAIN,
} DfVariants;
DF_PUBLIC void df_generate_options_set_variants (DfGenerateOptions *opts, DfVariants variants);
/* Signs the superblock with the ed25519 secret key in @path (the format of
 * `ostree sign`: base64 of the 64 bytes seed + public key), in libostree's
 * signed-delta envelope (engine/FORMAT.md, "Signatures"). Replaces the keys
 * set before; NULL: unsigned. */
DF_PUBLIC void df_generate_options_set_sign_key (DfGenerateOptions *opts, const char *path);
/* One more signing key: the envelope carries one signature per key (a
 * device trusting any of them accepts the delta), for a key rotation. */
DF_PUBLIC void df_generate_options_add_sign_key (DfGenerateOptions *opts, const char *path);
/* The repository's summary, whenever it is regenerated (a stock delta made
 * or removed), keeps the kinds of signatures it had: GPG ones are made
 * again with these key ids (and GnuPG home directory), ed25519 ones with
 * the sign keys. A signed summary whose kind of key is not given is not
 * touched: the call fails before anything changes (never a summary that
 * silently lost its signature). GPG keys also sign an unsigned summary. */
DF_PUBLIC void df_generate_options_add_summary_gpg_key (DfGenerateOptions *opts, const char *key_id);
DF_PUBLIC void df_generate_options_set_gpg_homedir (DfGenerateOptions *opts, const char *homedir);
DF_PUBLIC void df_generate_options_set_progress (DfGenerateOptions *opts, DfProgressFunc func, gpointer user_data);

/**
 * df_generate:
 * @repo: an opened repository holding both commits (any mode)
 * @opts: options; from (or empty) and to must be set
 * @out_dir: (out) (optional): the directory the delta was written to
 *
 * Computes a native deltafetch delta (engine/FORMAT.md). Without an output
 * directory it is written inside @repo at
 * `deltafetch/v1/deltas/<from>-<to>/` (or `.../deltas/<to>/` from scratch) and
 * the index `deltafetch/v1/indexes/<to>.index` is updated, both invisible to
 * stock ostree. The result is byte-for-byte the same for the same repository
 * content, commits and options, whatever the number of jobs.
 *
 * Memory: per job a 2 MiB chunk, its 4 MiB source window and suffix array
 * (16 MiB), a zstd compressor (about 30 MiB at level 12, 100 MiB at 19) and
 * up to two 8 MiB parts waiting; measured peak RSS 350 MB for 2 jobs at
 * level 19 on a 650 MB OS update (440 MB for three deltas of one
 * df_generate_many()).
 */
DF_PUBLIC gboolean df_generate (OstreeRepo *repo, const DfGenerateOptions *opts, char **out_dir,
                                GCancellable *cancellable, GError **error);

/**
 * DfGeneratedDelta: one delta of a df_generate_many() run.
 * @from: its from-commit (NULL: from scratch); @to: its to-commit
 * @dir: where it is
 * @skipped: it was already published whole, with the same options and
 *   signatures, and was kept as it was
 * @note: when made, why the one there (if any) was not kept ("not there",
 *   "made with other options ...", "part 3 is missing ..."); NULL when skipped
 * @size: its published bytes (superblock and parts)
 * @seconds: the time it took (checking it, when skipped)
 * @analyses_reused: compressed objects of the to-commit whose analysis
 *   (detection, recipe search or deflate analysis, their program's trial
 *   run) an earlier delta of the same run had done
 */
typedef struct
{
  char *from;
  char *to;
  char *dir;
  gboolean skipped;
  char *note;
  guint64 size;
  double seconds;
  guint analyses_reused;
  gpointer reserved[3];
} DfGeneratedDelta;
DF_PUBLIC void df_generated_delta_free (DfGeneratedDelta *delta);

/**
 * df_generate_many:
 * @opts: the to-revision and any number of from-revisions
 *   (df_generate_options_add_from()), previous commits
 *   (df_generate_options_set_from_last()) and empty, at least one
 * @out_deltas: (out) (optional) (element-type DfGeneratedDelta): one per
 *   delta, in the order made: the revisions given, the previous commits
 *   (newest first), from scratch
 *
 * Makes every delta to one commit in one run, as df_generate() makes one:
 * the to-commit is walked and its objects looked up once for all of them,
 * its compressed objects analysed once (a new initrd is new against every
 * earlier release: its recipe search and its program's trial run are the
 * same for each), and each delta uses every job. A delta already published in the
 * repository whole (its parts' SHA-256 as listed), with the same options
 * and exactly the requested signatures is kept (skipped) unless
 * df_generate_options_set_force(). An output directory holds one delta
 * only. The first failure ends the run; the deltas made before it stay
 * published (a rerun keeps them). Memory: as df_generate(), plus the
 * to-commit's walk kept between deltas and what its compressed objects'
 * analyses found (a detection each, and deflate reconstruction data, about
 * 1 % of the content, for gzip frames that no recipe reproduces).
 */
DF_PUBLIC gboolean df_generate_many (OstreeRepo *repo, const DfGenerateOptions *opts, GPtrArray **out_deltas,
                                     GCancellable *cancellable, GError **error);

/* ------------------------------------------------------------------------ */
/* Deltas in a repository (the build server's side)                         */

/**
 * DfRepoDelta: a delta a repository publishes.
 * @id: "FROM-TO", or "TO" from scratch (full checksums)
 * @from: (nullable): its from-commit; @to: its to-commit
 * @dir: its directory
 * @format: DF_DELTA_FORMAT_NATIVE (deltafetch/v1/deltas/) or
 *   DF_DELTA_FORMAT_OSTREE (deltas/, stock)
 * @size: bytes on disk (superblock and parts)
 * @n_parts: parts its superblock lists (0 when it cannot be read)
 * @n_signatures: ed25519 signatures in its envelope (0: unsigned)
 * @indexed: native: its index lists this very superblock (SHA-256 and
 *   size); stock: always TRUE (libostree's delta index)
 * @from_present, @to_present: its commits are in the repository (a
 *   from-scratch delta's "from" is always present)
 * @problem: (nullable): why it cannot serve a device as it is (superblock
 *   missing or unreadable, not indexed, a commit gone); NULL when it reads
 *   well. Parts are not read here: see `deltafetch verify`.
 */
typedef struct
{
  char *id;
  char *from;
  char *to;
  char *dir;
  DfDeltaFormat format;
  guint64 size;
  guint n_parts;
  guint n_signatures;
  gboolean indexed;
  gboolean from_present;
  gboolean to_present;
  char *problem;
  gpointer reserved[4];
} DfRepoDelta;
DF_PUBLIC void df_repo_delta_free (DfRepoDelta *delta);

/**
 * df_list_deltas:
 * @out_deltas: (out) (element-type DfRepoDelta): every native delta (its
 *   directory, or only an index entry left) and every stock delta, sorted
 *   by to-commit, from-commit and format
 *
 * Reads superblocks and indexes, not parts. Needs the generator.
 */
DF_PUBLIC gboolean df_list_deltas (OstreeRepo *repo, GPtrArray **out_deltas, GCancellable *cancellable, GError **error);
/**
 * df_delete_delta:
 * @opts: the build server's keys: sign keys re-sign the stats file (and
 *   an ed25519-signed summary), summary GPG keys a GPG-signed summary
 * @id: "FROM-TO" or "TO"; every delta of that id (native and stock) goes
 * @out_deleted: (out) (optional) (element-type DfRepoDelta): what was removed
 *
 * A native delta leaves its index first (the index file goes with its last
 * entry) and the stats file is rewritten, then its directory is moved aside
 * and removed, so a client never reads an index naming a delta that is no
 * longer whole. A stock delta's directory goes, then libostree's delta
 * index and the summary are made again, keeping their kinds of signatures
 * (df_generate_options_add_summary_gpg_key()). When a signed file would
 * lose its signature for want of a key, nothing is removed
 * (DF_ERROR_INVALID_ARGUMENT). No such delta: DF_ERROR_NOT_FOUND.
 */
DF_PUBLIC gboolean df_delete_delta (OstreeRepo *repo, const DfGenerateOptions *opts, const char *id,
                                    GPtrArray **out_deleted, GCancellable *cancellable, GError **error);
/**
 * df_prune_deltas:
 * @ref: (nullable): with @keep_last, a ref whose history bounds what is kept
 * @keep_last: the deltas to the @keep_last newest commits of @ref's
 *   history are kept; those to its older commits go (deltas to commits
 *   outside that history are not touched)
 *
 * Removes, as df_delete_delta() does, every delta whose from- or
 * to-commit is no longer in the repository (after `ostree prune`), and
 * with @ref those too old.
 */
DF_PUBLIC gboolean df_prune_deltas (OstreeRepo *repo, const DfGenerateOptions *opts, const char *ref, guint keep_last,
                                    GPtrArray **out_deleted, GCancellable *cancellable, GError **error);

/**
 * df_sign_deltas:
 * @opts: the keys: each sign key adds its signature (replacing one it had
 *   made before); summary GPG keys as for df_delete_delta()
 * @ids: (nullable): the deltas ("FROM-TO" or "TO"; every format of an id);
 *   NULL: every delta of the repository
 * @remove_keys_path: (nullable): public keys (file or directory) whose
 *   signatures are taken out
 * @out_signed: (out) (optional) (element-type DfRepoDelta): the deltas signed
 *
 * Signs published deltas again in place, for a key rotation: each
 * superblock's envelope keeps the signatures it had but those of
 * @remove_keys_path, and gains one by each sign key (a delta left with no
 * signature becomes unsigned). Each superblock is replaced by an atomic
 * rename, then its index entry (native; the stats file is signed again)
 * or libostree's delta index and the summary (stock). A device fetching
 * in between may find the index and the superblock disagreeing: the
 * fetcher then reads the index again, once. Parts are not touched. Keys
 * missing for a signed stats file or summary, or a delta with a problem:
 * nothing is changed.
 */
DF_PUBLIC gboolean df_sign_deltas (OstreeRepo *repo, const DfGenerateOptions *opts, const char *const *ids,
                                   const char *remove_keys_path, GPtrArray **out_signed, GCancellable *cancellable,
                                   GError **error);

/**
 * DfPublishStage: the order in which df_publish() writes a repository's
 * files to static hosting, so that no client ever reads a file that names
 * one not there yet.
 * @DF_PUBLISH_STAGE_OBJECTS: objects/ (what commits and stock pull name)
 * @DF_PUBLISH_STAGE_PARTS: delta parts (deltafetch/v1/deltas/ and deltas/)
 * @DF_PUBLISH_STAGE_SUPERBLOCKS: delta superblocks (they name the parts)
 * @DF_PUBLISH_STAGE_INDEXES: deltafetch/v1/stats/, deltafetch/v1/indexes/,
 *   delta-indexes/ (they name the superblocks)
 * @DF_PUBLISH_STAGE_REFS: refs/heads/ and config
 * @DF_PUBLISH_STAGE_SUMMARY: summary and summary.sig, one right after the other
 */
typedef enum
{
  DF_PUBLISH_STAGE_OBJECTS = 0,
  DF_PUBLISH_STAGE_PARTS,
  DF_PUBLISH_STAGE_SUPERBLOCKS,
  DF_PUBLISH_STAGE_INDEXES,
  DF_PUBLISH_STAGE_REFS,
  DF_PUBLISH_STAGE_SUMMARY,
} DfPublishStage;

/**
 * DfCacheClass: how long a CDN or proxy may keep a published file
 * (docs/publishing.md gives the headers).
 * @DF_CACHE_IMMUTABLE: named by its content (objects): forever
 * @DF_CACHE_LONG: delta parts: long (a delta made again, with --force or
 *   other options, rewrites them: purge its directory then)
 * @DF_CACHE_REVALIDATE: superblocks (signing again rewrites them): revalidate
 * @DF_CACHE_SHORT: indexes, stats, refs, config, summary: change in place,
 *   seconds at most
 */
typedef enum
{
  DF_CACHE_IMMUTABLE = 0,
  DF_CACHE_LONG,
  DF_CACHE_REVALIDATE,
  DF_CACHE_SHORT,
} DfCacheClass;

typedef struct
{
  char *path; /* relative to the repository */
  DfPublishStage stage;
  DfCacheClass cache;
  guint64 size;
  gpointer reserved[2];
} DfPublishFile;
DF_PUBLIC void df_publish_file_free (DfPublishFile *file);

/**
 * df_publish_plan:
 * @out_files: (out) (element-type DfPublishFile): every file a static server
 *   should hold, in the order to upload them: by stage, then by path
 *
 * What df_publish() copies, for uploaders of their own (an object store's
 * command-line tool): upload in this order, each file complete before the
 * next, then remove what the repository no longer has, last stages first.
 */
DF_PUBLIC gboolean df_publish_plan (OstreeRepo *repo, GPtrArray **out_files, GCancellable *cancellable, GError **error);

typedef struct
{
  guint files_copied;
  guint64 bytes_copied;
  guint files_removed;
  gpointer reserved[4];
} DfPublishResult;

/**
 * df_publish:
 * @dest: a directory a static server serves (created if needed)
 *
 * Copies the repository into @dest in df_publish_plan()'s order, each
 * file through a hidden temporary name, synced, then renamed into place;
 * files already there with the same bytes are left alone (objects: the
 * same size). Then removes, last stages first, the files of @dest the
 * repository no longer has (but objects). A client reading @dest at any
 * moment finds every file an index or superblock names, or the index
 * before the update ("no delta yet").
 */
DF_PUBLIC gboolean df_publish (OstreeRepo *repo, const char *dest, DfPublishResult *result, GCancellable *cancellable,
                               GError **error);

/**
 * df_index_merge:
 * @opts: the keys that sign the stats files again (sign keys)
 * @out_roots: (array zero-terminated=1): output roots of fanned-out
 *   generate jobs (df_generate_options_set_out_root())
 * @out_merged: (out) (optional) (element-type DfRepoDelta): the deltas merged
 *
 * Brings the deltas of generate jobs that ran apart (a CI matrix, a
 * Kubernetes Job array) into the repository and its indexes. Every delta
 * is checked first (its commits in the repository, every part as its
 * superblock lists it; the same id twice must be the same bytes), then
 * each is copied in beside its place and renamed into it (unless the same
 * delta is there already), and listed in its index; the stats files are
 * written again. Idempotent: merging the same outputs again changes
 * nothing, and the result is byte for byte what one generate run makes.
 */
DF_PUBLIC gboolean df_index_merge (OstreeRepo *repo, const DfGenerateOptions *opts, const char *const *out_roots,
                                   GPtrArray **out_merged, GCancellable *cancellable, GError **error);

/**
 * df_ed25519_keygen:
 * @secret_path: where the secret key goes (base64 of the 32-byte seed and
 *   the 32-byte public key, as `ostree sign` reads it), mode 0600
 * @public_path: where the public key goes (base64 of its 32 bytes)
 *
 * Makes a new ed25519 key pair (OpenSSL). Neither file may exist yet.
 */
DF_PUBLIC gboolean df_ed25519_keygen (const char *secret_path, const char *public_path, GError **error);

/* ------------------------------------------------------------------------ */
/* Inspect                                                                   */

typedef struct _DfDeltaInfo DfDeltaInfo;

/**
 * df_delta_info_load:
 * @delta_dir: a directory holding `superblock` and the parts: a native
 *   delta, or a stock one (`ostree static-delta generate`)
 *
 * Reads and validates the superblock only (parts are not read).
 * Returns: (transfer full): the delta's description, or NULL with @error set.
 */
DF_PUBLIC DfDeltaInfo *df_delta_info_load (const char *delta_dir, GError **error);
DF_PUBLIC void df_delta_info_free (DfDeltaInfo *info);
/** Returns: "deltafetch" (native) or "ostree" (stock). */
DF_PUBLIC const char *df_delta_info_get_format (const DfDeltaInfo *info);
/** Returns: TRUE when the superblock is in a signed envelope. */
DF_PUBLIC gboolean df_delta_info_is_signed (const DfDeltaInfo *info);
/** Returns: the from-commit checksum, or NULL for a from-scratch delta. */
DF_PUBLIC const char *df_delta_info_get_from (const DfDeltaInfo *info);
DF_PUBLIC const char *df_delta_info_get_to (const DfDeltaInfo *info);
DF_PUBLIC guint df_delta_info_get_format_version (const DfDeltaInfo *info);
DF_PUBLIC guint df_delta_info_get_n_parts (const DfDeltaInfo *info);
/** Sizes of part @i (0-based, < n_parts). For a stock delta the
 * uncompressed size is what the superblock declares for the objects the
 * part makes, and its entries are those objects. */
DF_PUBLIC guint64 df_delta_info_get_part_compressed_size (const DfDeltaInfo *info, guint i);
DF_PUBLIC guint64 df_delta_info_get_part_uncompressed_size (const DfDeltaInfo *info, guint i);
DF_PUBLIC guint df_delta_info_get_part_n_entries (const DfDeltaInfo *info, guint i);
/** Totals over all parts. */
DF_PUBLIC guint64 df_delta_info_get_total_compressed_size (const DfDeltaInfo *info);
DF_PUBLIC guint64 df_delta_info_get_total_uncompressed_size (const DfDeltaInfo *info);
DF_PUBLIC guint64 df_delta_info_get_superblock_size (const DfDeltaInfo *info);

typedef enum
{
  DF_COUNT_METADATA = 0,      /* dirtree and dirmeta objects */
  DF_COUNT_CONTENT_RAW,       /* content objects stored whole (solid zstd); every file of a stock delta */
  DF_COUNT_CONTENT_PATCH,     /* content objects encoded against an old object */
  DF_COUNT_CONTENT_SPLIT,     /* content objects split across several parts */
  DF_COUNT_CHUNKS,            /* entries (object pieces) in all parts */
  DF_COUNT_CONTENT_BYTES,     /* uncompressed content bytes the delta produces */
  DF_COUNT_FALLBACK,          /* stock deltas: objects left to be fetched one by one */
  DF_COUNT_REBUILD_FOUND,     /* native: content objects found compressed by the generator */
  DF_COUNT_CONTENT_REBUILT,   /* native: objects a device rebuilds from their decompressed content */
  DF_COUNT_REBUILD_BYTES,     /* native: compressed bytes of the parts that rebuild them */
  DF_COUNT_ALTERNATIVE_BYTES, /* native: compressed bytes of their plain encoding (optional parts) */
  DF_COUNT_LAST
} DfCount;

DF_PUBLIC guint64 df_delta_info_get_count (const DfDeltaInfo *info, DfCount what);
/* One line per compressed object the generator found: its checksum, what
 * it found and whether it rebuilds it or why not (NULL-terminated; empty
 * for stock deltas and deltas without such objects). */
DF_PUBLIC const char *const *df_delta_info_get_rebuild_notes (const DfDeltaInfo *info);
/* Whether part @i is only needed by devices that do not rebuild (an
 * alternative part), or rebuilds objects. */
DF_PUBLIC gboolean df_delta_info_part_is_alternative (const DfDeltaInfo *info, guint i);
DF_PUBLIC gboolean df_delta_info_part_is_rebuild (const DfDeltaInfo *info, guint i);
/* The content parts rebuild part @i reads objects of (ascending; *@n_deps
 * of them, 0 and NULL for any other part), owned by @info. */
DF_PUBLIC const guint *df_delta_info_part_get_deps (const DfDeltaInfo *info, guint i, guint *n_deps);

/* ------------------------------------------------------------------------ */
/* Apply                                                                     */

typedef struct _DfApplyOptions DfApplyOptions;

/** Default memory budget of apply and fetch: 64 MiB. */
#define DF_DEFAULT_MEMORY_BUDGET (64 * 1024 * 1024)
/** Default time apply and fetch wait for another apply or fetch working in
 * the same repository: 30 seconds. */
#define DF_DEFAULT_LOCK_TIMEOUT 30

DF_PUBLIC DfApplyOptions *df_apply_options_new (void);
DF_PUBLIC void df_apply_options_free (DfApplyOptions *opts);
/** The trusted to-commit checksum. Without it the delta's own to-checksum is
 * the root of trust. */
DF_PUBLIC void df_apply_options_set_commit (DfApplyOptions *opts, const char *checksum);
/** Ref to point at the new commit once everything is verified and committed
 * (the same transaction). NULL sets no ref. */
DF_PUBLIC void df_apply_options_set_ref (DfApplyOptions *opts, const char *ref);
/** Bytes of memory for the apply (default DF_DEFAULT_MEMORY_BUDGET), beyond
 * the mapped libraries: a reserve of 16 MiB for libostree, GLib and
 * stacks, the superblock while it is read and once parsed, the metadata
 * and the tables of the trust walk, and the workers' buffers. The number
 * of parallel workers is derived from what is left (for a stock delta: the
 * number of xz decoders, 33 MiB each). A delta that cannot fit one worker
 * beside the rest is refused with DF_ERROR_INVALID_ARGUMENT before any part
 * is read (its message says "memory budget"); a trust walk whose tables
 * outgrow their share is refused the same way before any content is
 * written. */
DF_PUBLIC void df_apply_options_set_memory_budget (DfApplyOptions *opts, guint64 bytes);
/** Upper bound of worker threads; 0 means one per processor. */
DF_PUBLIC void df_apply_options_set_jobs (DfApplyOptions *opts, guint jobs);
/* Trusted ed25519 public keys: a file of base64 keys (one per line) or a
 * directory of such files, as `ostree sign` writes them. The superblock
 * must then be signed (an unsigned one is refused unless
 * df_apply_options_set_allow_unsigned()) and verify with one of them
 * before anything else of the delta is read (DF_ERROR_UNTRUSTED
 * otherwise). An envelope may carry at most 8 signatures. */
DF_PUBLIC void df_apply_options_set_trusted_keys (DfApplyOptions *opts, const char *path);
/* Refuse unsigned deltas, and signed ones when no trusted keys are set. */
DF_PUBLIC void df_apply_options_set_require_signatures (DfApplyOptions *opts, gboolean require);
/* Revoked ed25519 public keys (a file of base64 keys or a directory of
 * them): a signature by one of them never counts, even when the key is
 * also among the trusted keys; a delta signed only by revoked keys is
 * refused (DF_ERROR_UNTRUSTED) when signatures are required. */
DF_PUBLIC void df_apply_options_set_revoked_keys (DfApplyOptions *opts, const char *path);
/* With trusted keys, still accept an unsigned delta (a signed one must
 * verify): for a fleet moving to signed deltas. Contradicts
 * df_apply_options_set_require_signatures() (DF_ERROR_INVALID_ARGUMENT). */
DF_PUBLIC void df_apply_options_set_allow_unsigned (DfApplyOptions *opts, gboolean allow);
/* Seconds to wait while another apply or fetch works in the repository
 * (default DF_DEFAULT_LOCK_TIMEOUT; 0: do not wait). The progress callback
 * sees DF_PHASE_WAIT when the wait begins; after the timeout the apply
 * fails with DF_ERROR_BUSY. */
DF_PUBLIC void df_apply_options_set_lock_timeout (DfApplyOptions *opts, guint seconds);
/* Rollback protection: when a ref is set and already points at a commit
 * newer (by timestamp) than the delta's, the apply is refused with
 * DF_ERROR_DOWNGRADE before anything is written, unless @allow. */
DF_PUBLIC void df_apply_options_set_allow_downgrade (DfApplyOptions *opts, gboolean allow);
DF_PUBLIC void df_apply_options_set_progress (DfApplyOptions *opts, DfProgressFunc func, gpointer user_data);
/**
 * DfRebuildPolicy:
 * @DF_REBUILD_AUTO: rebuild a compressed object from its content when its
 *   plain encoding would have to be downloaded; when the plain encoding is
 *   already at hand (a delta directory that carries every plain part it
 *   needs), use it: the rebuild would spend the device's CPU to save bytes
 *   that do not move (the default).
 * @DF_REBUILD_ALWAYS: rebuild whenever the libraries and the memory budget
 *   allow, as a fetch does.
 * @DF_REBUILD_NEVER: use the plain encoding of every object; a delta that
 *   carries none for an object it rebuilds is refused with
 *   DF_ERROR_INVALID_ARGUMENT before anything is written.
 */
typedef enum
{
  DF_REBUILD_AUTO = 0,
  DF_REBUILD_ALWAYS,
  DF_REBUILD_NEVER,
} DfRebuildPolicy;
DF_PUBLIC void df_apply_options_set_rebuild (DfApplyOptions *opts, DfRebuildPolicy policy);
/* A static server (an archive repository over http:// or https://) to take
 * the fallback objects of a stock delta from, the objects `ostree
 * static-delta generate` leaves out of the parts to be fetched one by one;
 * more than one: mirrors, in order. They are downloaded as df_fetch() does
 * (ranged, resumable) and each is hashed before it is written, with
 * libcurl's defaults for TLS; for a CA, a client certificate, a pinned key,
 * timeouts or retries, use df_fetch() with df_fetch_options_set_delta_dir().
 * Without a URL those objects must already be in the repository. */
DF_PUBLIC void df_apply_options_add_url (DfApplyOptions *opts, const char *url);

typedef struct
{
  char commit[65];                   /* the commit written */
  gboolean commit_trusted;           /* TRUE when it matched df_apply_options_set_commit() */
  guint parts_applied;               /* parts read and applied in this run */
  guint parts_skipped;               /* parts whose objects were all present already */
  guint64 objects_written;           /* objects written in this run */
  guint64 content_bytes;             /* content bytes written in this run */
  guint workers;                     /* parallel workers used */
  gboolean signature_verified;       /* the superblock's signature verified with a trusted key */
  guint64 objects_rebuilt;           /* compressed objects rebuilt from their content (format 3) */
  guint64 rebuild_fallbacks;         /* objects whose rebuild failed and that came from their plain encoding */
  char rebuild_fallback_reason[256]; /* the first such failure: "<checksum>: <why>", or "" */
  guint rebuild_parts_unused;        /* rebuild parts this device did not run (their plain encoding was used) */
  char rebuild_unused_reason[128];   /* why, or "" */
  guint64 memory_raised_to;          /* the budget rebuilding raised the default to (bytes), or 0 */
  guint parts_unused;                /* parts of the other variant (rebuild or plain) this device did not need */
  gboolean rebuild_alone;            /* rebuilds ran with no part applied beside them, to fit the budget */
  /*< private >*/
  guint64 reserved[16]; /* zeroed; room for later fields: the struct's size is part of the ABI */
} DfApplyResult;

/**
 * df_apply:
 * @repo: an opened bare, bare-user or archive repository
 * @delta_dir: a directory holding `superblock` and the parts
 * @opts: (nullable): options
 * @result: (out caller-allocates) (optional): what was done
 *
 * Writes the delta's to-commit into @repo inside one libostree transaction.
 * Each part's SHA-256 is checked before it is decompressed; each object is
 * hashed as it is reconstructed and must match its checksum and be reachable
 * from the trusted commit before it is written. The commit object and the ref
 * are written last. Interrupted at any point (even by SIGKILL), the repository
 * stays consistent and a new call resumes, skipping parts already applied.
 */
DF_PUBLIC gboolean df_apply (OstreeRepo *repo, const char *delta_dir, const DfApplyOptions *opts, DfApplyResult *result,
                             GCancellable *cancellable, GError **error);

/**
 * df_verify_delta:
 * @delta: a delta df_list_deltas() listed
 * @keys_path: (nullable): trusted ed25519 keys (file or directory): the
 *   superblock must be signed by one of them
 * @result: (out caller-allocates) (optional): what the trial apply did
 *
 * Checks a published delta against its repository as a device would take
 * it: it must read well (no DfRepoDelta problem), every part must have
 * the size and SHA-256 its superblock lists (DF_ERROR_CORRUPT), and it
 * must apply: into a trial repository under REPO/tmp/ holding only the
 * from-commit (hard links to the repository's objects, same mode), every
 * object hashed, the commit trusted; the trial repository is removed
 * afterwards, and nothing else is written. Time and memory: those of an
 * apply.
 */
DF_PUBLIC gboolean df_verify_delta (OstreeRepo *repo, const DfRepoDelta *delta, const char *keys_path,
                                    DfApplyResult *result, GCancellable *cancellable, GError **error);

/* ------------------------------------------------------------------------ */
/* Fetch                                                                     */

/**
 * DfFetchOptions:
 * What df_fetch() downloads and how. Create with df_fetch_options_new(); the
 * commit and at least one URL are required (unless a delta directory is
 * given: df_fetch_options_set_delta_dir()), everything else has a default.
 */
typedef struct _DfFetchOptions DfFetchOptions;

/* Defaults of the fetch options. */
#define DF_DEFAULT_CONNECTIONS 8
#define DF_DEFAULT_RANGE_SIZE (2 * 1024 * 1024)
#define DF_DEFAULT_LOW_SPEED_LIMIT 1000 /* bytes per second ... */
#define DF_DEFAULT_LOW_SPEED_TIME 30    /* ... for this many seconds */
#define DF_DEFAULT_MIN_RATE 16384       /* bytes per second, for transfer deadlines */
#define DF_DEFAULT_CONNECT_TIMEOUT 15   /* seconds */
#define DF_DEFAULT_RETRIES 4            /* attempts per range and mirror */

DF_PUBLIC DfFetchOptions *df_fetch_options_new (void);
DF_PUBLIC void df_fetch_options_free (DfFetchOptions *opts);
/* The trusted to-commit (required): what the update agent learned from its
 * signed metadata. Nothing is written unless the delta produces exactly this
 * commit. */
DF_PUBLIC void df_fetch_options_set_commit (DfFetchOptions *opts, const char *checksum);
/* Adds a base URL of the repository (http or https; at most 32). The first
 * one added is tried first; a mirror that fails or serves bytes that do not
 * verify is demoted and the next one used. An https mirror may redirect to
 * https only. */
DF_PUBLIC void df_fetch_options_add_url (DfFetchOptions *opts, const char *url);
/* The commit the device has (a checksum or a ref of the repository). Default:
 * what the ref (df_fetch_options_set_ref()) points at, if anything. */
DF_PUBLIC void df_fetch_options_set_from (DfFetchOptions *opts, const char *rev);
/* Points @ref at the commit once it is verified and committed. */
DF_PUBLIC void df_fetch_options_set_ref (DfFetchOptions *opts, const char *ref);
/* Most parallel transfers (HTTP/1.1 connections, or streams over fewer
 * HTTP/2 connections), 1 to 64. Default DF_DEFAULT_CONNECTIONS. */
DF_PUBLIC void df_fetch_options_set_connections (DfFetchOptions *opts, guint n);
/* Parts larger than this are fetched as several ranges (64 KiB to 32 MiB).
 * After a kill, a resumed fetch downloads again at most one range per
 * connection; after a power loss, at most the parts that were in flight. */
DF_PUBLIC void df_fetch_options_set_range_size (DfFetchOptions *opts, guint64 bytes);
/* Memory budget of the apply workers (default DF_DEFAULT_MEMORY_BUDGET).
 * Parts stream to disk and need only libcurl's small buffers; the index and
 * the superblock (at most 1 MiB and 64 MiB) are read into memory. */
DF_PUBLIC void df_fetch_options_set_memory_budget (DfFetchOptions *opts, guint64 bytes);
/* Upper bound of the apply's worker threads (for a stock delta: its xz
 * decoders, each also needing 33 MiB of the budget); 0, the default, means
 * one per processor (for a stock delta, one per processor but one). */
DF_PUBLIC void df_fetch_options_set_jobs (DfFetchOptions *opts, guint jobs);
/* As df_apply_options_set_rebuild(); a fetch downloads its parts, so AUTO
 * rebuilds. */
DF_PUBLIC void df_fetch_options_set_rebuild (DfFetchOptions *opts, DfRebuildPolicy policy);
/* A transfer slower than @bytes_per_second for @seconds is abandoned. */
DF_PUBLIC void df_fetch_options_set_low_speed (DfFetchOptions *opts, guint bytes_per_second, guint seconds);
/* Every transfer gets a deadline of its size divided by @bytes_per_second,
 * plus the connect timeout and the low-speed time, so a trickle just above
 * the low-speed limit cannot hold the device for hours. 0: no deadline. */
DF_PUBLIC void df_fetch_options_set_min_rate (DfFetchOptions *opts, guint bytes_per_second);
/* Caps the download rate at about @bytes_per_second over all connections
 * (each transfer is held to its share, libcurl's per-transfer receive cap),
 * for a link the device shares; 0 (the default): no cap. The low-speed limit
 * and the minimum rate are lowered to half a transfer's share where they
 * exceed it, so that a cap never turns into a timeout. */
DF_PUBLIC void df_fetch_options_set_max_rate (DfFetchOptions *opts, guint64 bytes_per_second);
/* Refuses (DF_ERROR_TOO_LARGE), before any part is downloaded, an update
 * whose download would exceed @bytes (index and superblock included).
 * libostree's pull is sized first as df_fetch_plan() sizes it, refused
 * when over (or when its size cannot be known), and stopped when it goes
 * past @bytes as it runs. 0 (the default): no limit. */
DF_PUBLIC void df_fetch_options_set_max_bytes (DfFetchOptions *opts, guint64 bytes);
/* The size of the delta, as published (superblock and parts: "size" in the
 * generator's deltafetch/v1/stats/TO.json), that the update's signed
 * metadata gives: a delta of another size, or libostree's pull (no delta),
 * is refused (DF_ERROR_UNTRUSTED) once the superblock is in, before any
 * part is downloaded. 0 (the default): not checked. */
DF_PUBLIC void df_fetch_options_set_expected_size (DfFetchOptions *opts, guint64 bytes);
/* With FALSE, refuses (DF_ERROR_TOO_LARGE) from-scratch deltas, native or
 * stock, and libostree's pull into a repository without a from-commit: a
 * metered link takes only a delta from the device's commit. Default TRUE. */
DF_PUBLIC void df_fetch_options_set_allow_from_scratch (DfFetchOptions *opts, gboolean allow);
DF_PUBLIC void df_fetch_options_set_connect_timeout (DfFetchOptions *opts, guint seconds);
/* Attempts per range on each mirror before it is demoted. */
DF_PUBLIC void df_fetch_options_set_retries (DfFetchOptions *opts, guint attempts);
/* TLS: CA bundle to verify servers with, client certificate and key
 * (PEM) for mutual TLS, and an optional public-key pin in libcurl's syntax
 * ("sha256//BASE64" or a PEM/DER file). Proxies come from libcurl's usual
 * environment variables (http_proxy, https_proxy, no_proxy). */
DF_PUBLIC void df_fetch_options_set_ca_file (DfFetchOptions *opts, const char *path);
DF_PUBLIC void df_fetch_options_set_client_cert (DfFetchOptions *opts, const char *cert, const char *key);
DF_PUBLIC void df_fetch_options_set_pinned_public_key (DfFetchOptions *opts, const char *pin);
/* Proxy for every request ("http://host:port", any form libcurl takes),
 * instead of libcurl's environment variables. */
DF_PUBLIC void df_fetch_options_set_proxy (DfFetchOptions *opts, const char *proxy);
/* With TRUE, servers' certificates are not checked (a remote's
 * tls-permissive): trust then rests on the commit checksum and the
 * signatures alone. Default FALSE. */
DF_PUBLIC void df_fetch_options_set_tls_permissive (DfFetchOptions *opts, gboolean permissive);
/* A header sent with every request ("Authorization", "Bearer …"), for
 * servers that want a token; repeat for more. A name with ':', a space or
 * a line break, or a value with a line break, is refused
 * (DF_ERROR_INVALID_ARGUMENT). */
DF_PUBLIC void df_fetch_options_add_http_header (DfFetchOptions *opts, const char *name, const char *value);
/* Fetch through @remote, a remote of the repository's configuration, as
 * `ostree pull REMOTE` would: read when df_fetch() starts, what the
 * options do not set comes from it: the mirrors (contenturl, else url,
 * either of them possibly "mirrorlist=URL" with http(s):// or file://
 * URLs), tls-ca-path, tls-client-cert-path and tls-client-key-path,
 * tls-permissive, proxy. Without a commit (df_fetch_options_set_commit()),
 * the ref is looked up in the remote's summary (from its url), whose
 * signature is checked first when the remote asks for it
 * (sign-verify-summary: ed25519 with verification-ed25519-key or -file;
 * gpg-verify-summary: through libostree with the remote's keyring); a
 * summary that fails is DF_ERROR_UNTRUSTED, a ref it lacks
 * DF_ERROR_NOT_FOUND. The commit's own signature is then checked, before
 * any part is downloaded, as the remote's gpg-verify and sign-verify ask
 * (DF_ERROR_UNTRUSTED), and the libostree pull fallback pulls through the
 * remote. A ref without a remote ("stable") is written as the remote's
 * ("REMOTE:stable", refs/remotes/REMOTE/stable), as `ostree pull` does; an
 * unknown remote is DF_ERROR_INVALID_ARGUMENT. */
DF_PUBLIC void df_fetch_options_set_remote (DfFetchOptions *opts, const char *remote);
/* Without a delta for the update (native, or a stock one from the device's
 * commit or from scratch), fall back to libostree's own pull (default
 * TRUE): object by object, each checked against its checksum, without
 * libostree's static deltas. The pull is held to the low-speed limit and
 * the minimum rate over all its transfers together, counting only the time
 * it waits on the network: fewer than low-speed-limit × low-speed-time
 * bytes in any low-speed time, or fewer than min-rate bytes for each second
 * past the connect timeout plus the low-speed time, and it is cancelled
 * with DF_ERROR_TIMEOUT (a stall, a trickle, or bursts that average below
 * the limit). Other failures on every mirror are DF_ERROR_NETWORK. The
 * repository's config is never written: the pull's remote lives in a file
 * under REPO/tmp/ while it runs (removed when it ends, or by the next
 * df_fetch() after a kill). The pull has no signatures (refused when they
 * are required) and cannot honour a pinned public key, a rate cap or a byte
 * limit (refused when one is set: its size is not known beforehand). */
DF_PUBLIC void df_fetch_options_set_allow_pull_fallback (DfFetchOptions *opts, gboolean allow);
/* Signature policy as for apply (df_apply_options_set_trusted_keys():
 * trusted keys require a signature unless unsigned deltas are allowed); it
 * is checked on the superblock before any part is downloaded. */
DF_PUBLIC void df_fetch_options_set_trusted_keys (DfFetchOptions *opts, const char *path);
DF_PUBLIC void df_fetch_options_set_require_signatures (DfFetchOptions *opts, gboolean require);
DF_PUBLIC void df_fetch_options_set_revoked_keys (DfFetchOptions *opts, const char *path);
DF_PUBLIC void df_fetch_options_set_allow_unsigned (DfFetchOptions *opts, gboolean allow);
/* As df_apply_options_set_lock_timeout(); the wait is reported with a
 * DF_FETCH_EVENT_WAITING event. */
DF_PUBLIC void df_fetch_options_set_lock_timeout (DfFetchOptions *opts, guint seconds);
/* Rollback protection as for apply: a commit older than the one the ref
 * points at is refused (DF_ERROR_DOWNGRADE) before any part is downloaded,
 * unless @allow. */
DF_PUBLIC void df_fetch_options_set_allow_downgrade (DfFetchOptions *opts, gboolean allow);

/* Apply the delta in directory @dir (offline media: a native or a stock
 * delta) instead of looking for one on the mirrors, as df_apply() does.
 * The commit is then optional (the delta's own, trusted by its signature
 * or the caller's word, when none is given), and the mirrors are needed
 * only for what the delta leaves to be fetched: a stock delta's fallback
 * objects that the repository lacks, downloaded with every network setting
 * of @opts while the parts apply. */
DF_PUBLIC void df_fetch_options_set_delta_dir (DfFetchOptions *opts, const char *dir);

/**
 * DfFetchPath:
 * How the commit was brought in.
 */
typedef enum
{
  DF_FETCH_PATH_PRESENT = 1,   /* the repository had the commit already */
  DF_FETCH_PATH_DELTA,         /* native delta from the device's commit */
  DF_FETCH_PATH_SCRATCH,       /* native from-scratch delta */
  DF_FETCH_PATH_PULL,          /* libostree's pull (no native delta offered) */
  DF_FETCH_PATH_STOCK_DELTA,   /* stock delta from the device's commit (delta-indexes/ or summary) */
  DF_FETCH_PATH_STOCK_SCRATCH, /* stock from-scratch delta */
} DfFetchPath;

/**
 * DfFetchEventType:
 * @DF_FETCH_EVENT_START: the path is chosen; bytes_total is known.
 * @DF_FETCH_EVENT_PROGRESS: at most about ten times a second, and only when
 *   something it carries changed (bytes, parts applied, the phase).
 * @DF_FETCH_EVENT_RETRY: a transfer failed and will be tried again on the
 *   same mirror after a back-off; message says why.
 * @DF_FETCH_EVENT_MIRROR_SWITCH: @url was demoted; message says why.
 * @DF_FETCH_EVENT_WAITING: another apply or fetch works in the repository;
 *   the fetch waits for it (message says how long at most).
 * @DF_FETCH_EVENT_REBUILD_FALLBACK: an object rebuilt on the device failed
 *   its check (message says which and why); the plain encoding of what
 *   failed is downloaded in the same run, and bytes_total grows by it.
 */
typedef enum
{
  DF_FETCH_EVENT_START = 1,
  DF_FETCH_EVENT_PROGRESS,
  DF_FETCH_EVENT_RETRY,
  DF_FETCH_EVENT_MIRROR_SWITCH,
  DF_FETCH_EVENT_WAITING,
  DF_FETCH_EVENT_REBUILD_FALLBACK,
} DfFetchEventType;

/**
 * DfFetchPhase:
 * @DF_FETCH_PHASE_DISCOVER: waiting for the repository, reading the
 *   server's index and the superblock, choosing the path.
 * @DF_FETCH_PHASE_DOWNLOAD: downloading (parts are applied meanwhile as
 *   they arrive); libostree's pull stays in this phase to its end.
 * @DF_FETCH_PHASE_APPLY: everything downloaded, parts still being applied.
 * @DF_FETCH_PHASE_COMMIT: final checks, the commit, the ref (native deltas).
 *
 * A change of phase is reported by a PROGRESS event.
 */
typedef enum
{
  DF_FETCH_PHASE_DISCOVER = 1,
  DF_FETCH_PHASE_DOWNLOAD,
  DF_FETCH_PHASE_APPLY,
  DF_FETCH_PHASE_COMMIT,
} DfFetchPhase;

/* Allocated by the library for the callback's time: later versions may add
 * fields at the end. */
typedef struct
{
  DfFetchEventType type;
  DfFetchPath path;
  const char *url;          /* the mirror concerned, or NULL */
  const char *message;      /* RETRY, MIRROR_SWITCH, REBUILD_FALLBACK: the reason */
  guint64 bytes_downloaded; /* bytes received in this run */
  guint64 bytes_total;      /* the whole update's bytes to download: what earlier runs left (bytes_reused) plus what
                               this run fetches; 0 until known (libostree's pull: never) */
  guint64 bytes_reused;     /* delta bytes found on disk from an earlier run */
  guint parts_applied;
  guint parts_total;
  double rate;        /* bytes per second over the last seconds */
  DfFetchPhase phase; /* what the fetch is doing */
  gint64 time;        /* when, as g_get_real_time(): microseconds since 1970, UTC */
  guint64 bytes_done; /* of bytes_total: bytes_reused plus bytes_downloaded */
} DfFetchEvent;

/* Called from the thread that called df_fetch(), never concurrently. */
typedef void (*DfFetchEventFunc) (const DfFetchEvent *event, gpointer user_data);
DF_PUBLIC void df_fetch_options_set_event_func (DfFetchOptions *opts, DfFetchEventFunc func, gpointer user_data);
/* The apply's own progress (phases, parts and bytes applied), reported
 * as by df_apply_options_set_progress(). */
DF_PUBLIC void df_fetch_options_set_progress (DfFetchOptions *opts, DfProgressFunc func, gpointer user_data);

/**
 * DfFetchFrom:
 * @DF_FETCH_FROM_NONE: no from-commit (from scratch, libostree's pull, or
 *   the commit was present)
 * @DF_FETCH_FROM_OPTION: the one df_fetch_options_set_from() named
 * @DF_FETCH_FROM_REF: the commit the ref (df_fetch_options_set_ref()) names
 *   (when the system is not booted from @repo's sysroot, or its booted
 *   commit is not wholly in @repo)
 * @DF_FETCH_FROM_REPOSITORY: the device's own commit had no delta (or there
 *   was none): the commit wholly in the repository that the server offers
 *   a delta from (of several, the one whose delta the server's stats file
 *   says is the smallest, else the newest)
 * @DF_FETCH_FROM_BOOTED: the commit of the deployment the system booted
 *   (/run/ostree-booted, the default sysroot), when @repo is that sysroot's
 *   repository and no from-commit was given: tried before the ref's
 *
 * How the from-commit of the delta used was found.
 */
typedef enum
{
  DF_FETCH_FROM_NONE = 0,
  DF_FETCH_FROM_OPTION,
  DF_FETCH_FROM_REF,
  DF_FETCH_FROM_REPOSITORY,
  DF_FETCH_FROM_BOOTED,
} DfFetchFrom;

typedef struct
{
  char commit[65];
  DfFetchPath path;
  char from[65];            /* the delta's from-commit (DF_FETCH_PATH_DELTA) */
  guint64 delta_bytes;      /* superblock and parts, as published */
  guint64 bytes_downloaded; /* bytes received in this run, superblock and index included */
  guint64 bytes_reused;     /* part bytes found on disk from an earlier run */
  /* Files of the delta to fetch: its parts, and for a stock delta also the
   * fallback objects the repository lacks (each a .filez file). */
  guint parts_total;
  guint parts_downloaded; /* fetched in this run */
  guint parts_present;    /* already applied or downloaded before */
  guint retries;
  guint mirror_switches;
  DfApplyResult apply;
  DfFetchFrom from_found;    /* how from was found */
  gboolean summary_verified; /* through a remote: the commit came from its summary, whose signature verified */
  /*< private >*/
  guint64 reserved[15]; /* zeroed; room for later fields: the struct's size is part of the ABI */
} DfFetchResult;

/**
 * df_fetch:
 * @repo: an opened bare, bare-user or archive repository
 * @opts: options; the commit and a URL are required
 * @result: (out caller-allocates) (optional): what was done
 *
 * Brings the commit into @repo from a static HTTP(S) server: the native delta
 * from the device's commit if the server's index lists one, else from the
 * commit the repository holds that it lists one from (the smallest delta
 * by the server's stats file, else the newest), else the native
 * from-scratch delta, else a stock OSTree delta the server's delta index or
 * summary lists (with its fallback objects, each hashed before it is
 * accepted), else (unless disabled) libostree's pull. Parts are
 * downloaded in parallel as byte ranges, each checked against its SHA-256
 * before it is decompressed and applied by worker threads while further
 * parts download; the verification of df_apply() holds. No response may
 * carry more bytes than the delta declares. Downloaded bytes persist in the
 * repository's tmp/ directory, so a call after a crash, power loss or network
 * loss downloads only what is missing. Cancel with @cancellable.
 */
DF_PUBLIC gboolean df_fetch (OstreeRepo *repo, const DfFetchOptions *opts, DfFetchResult *result,
                             GCancellable *cancellable, GError **error);

/**
 * DfFetchPlan:
 * What df_fetch() would do now, as df_fetch_plan() finds it.
 */
typedef struct
{
  char commit[65];
  DfFetchPath path; /* the path it would take (PRESENT: nothing to do) */
  char from[65];    /* the delta's from-commit, "" when none */
  DfFetchFrom from_found;
  guint64 delta_bytes;    /* the delta as published: superblock and parts (stock: and the fallback objects it lacks) */
  guint64 download_bytes; /* what df_fetch() would download now: index, superblock, and the parts (stock: fallback
                             objects) still missing; libostree's pull: the config, commit and trees the plan
                             fetched and the objects the repository lacks; with size_known FALSE, only what the
                             plan itself fetched */
  guint64 reused_bytes;   /* part bytes an interrupted run left, not downloaded again */
  guint64 disk_bytes;     /* the free space df_fetch() checks for before downloading (beyond min-free-space);
                             libostree's pull without ostree.sizes: the objects' compressed sizes, a lower bound */
  guint parts_total;
  guint parts_to_fetch;        /* parts (stock: and fallback objects) with bytes still to download */
  gboolean size_known;         /* FALSE only for libostree's pull when neither the commit carries its objects'
                                  sizes (ostree.sizes) nor the server declares them (a bare repository, or replies
                                  without Content-Length) */
  gboolean signature_verified; /* the superblock's signature verified with a trusted key */
  gboolean summary_verified;   /* as in #DfFetchResult */
  /*< private >*/
  guint32 reserved32;
  guint64 reserved[16]; /* zeroed; room for later fields */
} DfFetchPlan;

/**
 * df_fetch_plan:
 * @repo: the repository df_fetch() would write into
 * @opts: options as for df_fetch()
 * @plan: (out caller-allocates): what df_fetch() would do
 *
 * Finds what df_fetch() would do, downloading only the small files it
 * needs for that (a remote's summary, the delta index, the superblock) and
 * writing nothing, in the repository or anywhere: the path, the
 * from-commit, the bytes to download (less what an interrupted run left),
 * the free space needed, the signatures' state (for libostree's pull, the
 * commit object too: its ostree.sizes, when it has them, give the bytes of
 * the objects the repository lacks; else the plan walks the commit's trees
 * as the pull would, the dirtrees and dirmetas the repository lacks
 * fetched and checked against their checksums, and asks the server the
 * size of each content object the repository lacks with a HEAD request,
 * many side by side; its sets and queues stay within half the memory
 * budget, or it fails with DF_ERROR_TOO_LARGE, and the trees in flight,
 * each checked and let go as it comes in, within the other half). It fails as df_fetch()
 * would before downloading a part: a superblock whose signature, commit or
 * from-commit is wrong (DF_ERROR_UNTRUSTED, DF_ERROR_MISSING_BASE), a
 * downgrade, an update over the byte limit or a from-scratch download not
 * allowed (DF_ERROR_TOO_LARGE), not enough free space (DF_ERROR_NO_SPACE).
 * The repository's lock is not taken.
 *
 * Returns: TRUE with @plan filled.
 */
DF_PUBLIC gboolean df_fetch_plan (OstreeRepo *repo, const DfFetchOptions *opts, DfFetchPlan *plan,
                                  GCancellable *cancellable, GError **error);

/**
 * df_fetch_async:
 * @repo: an opened repository (referenced until the fetch ends)
 * @opts: options as for df_fetch(), copied: free them when you like
 * @cancellable: (nullable): cancels the fetch; the callback then runs with
 *   G_IO_ERROR_CANCELLED once the worker has stopped (a fraction of a
 *   second), and a later fetch resumes from what was verified
 * @callback: called in the thread-default main context of the caller
 *
 * df_fetch() in a worker thread (a #GTask) for agents built on a GLib main
 * loop. The event function and the apply's progress function of @opts are
 * called in the caller's thread-default main context, in order and all
 * before @callback, each with a copy of the event whose strings it owns
 * (valid for the call). Finish with df_fetch_finish().
 *
 * There is no pause: to stop a download for a while, cancel it and call
 * again later. What the cancelled run downloaded and verified stays (ranges
 * are checkpointed every second); a resumed run downloads again at most the
 * ranges in flight when it was cancelled, each at most the range size
 * (2 MiB by default) per connection.
 */
DF_PUBLIC void df_fetch_async (OstreeRepo *repo, const DfFetchOptions *opts, GCancellable *cancellable,
                               GAsyncReadyCallback callback, gpointer user_data);
/**
 * df_fetch_finish:
 * @res: the result handed to df_fetch_async()'s callback
 * @result: (out caller-allocates) (optional): what was done, as df_fetch()
 *   fills it (also on failure: how far it got)
 *
 * Returns: TRUE on success; FALSE with @error set as df_fetch() sets it.
 */
DF_PUBLIC gboolean df_fetch_finish (GAsyncResult *res, DfFetchResult *result, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (DfGenerateOptions, df_generate_options_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (DfGeneratedDelta, df_generated_delta_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (DfRepoDelta, df_repo_delta_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (DfApplyOptions, df_apply_options_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (DfDeltaInfo, df_delta_info_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (DfFetchOptions, df_fetch_options_free)

G_END_DECLS
