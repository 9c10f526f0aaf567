/* Internal helpers shared by every room of the engine: errors, hashing,
 * cleanup functions for foreign types, bounded file reads. */
#pragma once

#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>
/* Frame-header inspection (ZSTD_getFrameHeader) is in the stable ABI of the
 * shared library since 1.4 but declared behind this macro. */
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>

#include "deltafetch.h"
#include "df-limits.h"

G_DEFINE_AUTOPTR_CLEANUP_FUNC (ZSTD_CCtx, ZSTD_freeCCtx)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ZSTD_DCtx, ZSTD_freeDCtx)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (EVP_MD_CTX, EVP_MD_CTX_free)

#define DF_SHA256_LEN 32

/* GLib 2.74 predates g_autofd. */
static inline void
dfi_close_fdp (int *fd)
{
  if (*fd >= 0)
    close (*fd);
}
#define dfi_autofd __attribute__ ((cleanup (dfi_close_fdp))) int

/* Sets @error from errno @errsv: ENOSPC/EDQUOT become DF_ERROR_NO_SPACE,
 * everything else DF_ERROR_IO. Always returns FALSE. */
gboolean dfi_throw_errno (GError **error, int errsv, const char *fmt, ...) G_GNUC_PRINTF (3, 4);

/* Sets @error and returns FALSE. */
gboolean dfi_throw (GError **error, DfError code, const char *fmt, ...) G_GNUC_PRINTF (3, 4);

/* Rewrites an error from libostree/GIO: ENOSPC-like errors become
 * DF_ERROR_NO_SPACE, and @prefix is prepended. */
void dfi_error_normalize (GError **error, const char *prefix);
/* Makes cancelling @from (may be NULL: then returns 0) cancel @to, at once
 * if @from already is; the handler id is for g_cancellable_disconnect(). */
gulong dfi_cancellable_forward (GCancellable *from, GCancellable *to);

void dfi_sha256 (const void *data, gsize len, guint8 out[DF_SHA256_LEN]);

/* Incremental SHA-256 (OpenSSL EVP). */
typedef struct
{
  EVP_MD_CTX *ctx;
} DfSha256;
void dfi_sha256_init (DfSha256 *h);
void dfi_sha256_update (DfSha256 *h, const void *data, gsize len);
void dfi_sha256_final (DfSha256 *h, guint8 out[DF_SHA256_LEN]);
void dfi_sha256_clear (DfSha256 *h);

/* 32 bytes → 64 hex chars + NUL. */
void dfi_hex (const guint8 csum[DF_SHA256_LEN], char out[65]);
/* A checksum carried as an `ay` in a superblock: exactly 32 bytes into
 * @out, or, when @optional, none (*@present FALSE). Errors (invalid delta)
 * name @what, e.g. "superblock: part SHA-256". */
gboolean dfi_checksum_from_variant (GVariant *v, gboolean optional, guint8 out[DF_SHA256_LEN], gboolean *present,
                                    const char *what, GError **error);
/* The ends of a delta as both superblock formats carry them: the
 * from-checksum (empty from scratch), the to-checksum, and the to-commit
 * object, which must hash to the to-checksum (DF_ERROR_CORRUPT otherwise).
 * @prefix starts error messages ("superblock", "stock superblock"). */
gboolean dfi_delta_ends_read (GVariant *from, GVariant *to, GVariant *commit, const char *prefix, gboolean *has_from,
                              guint8 from_out[DF_SHA256_LEN], char from_hex[65], guint8 to_out[DF_SHA256_LEN],
                              char to_hex[65], GBytes **commit_out, GError **error);

/* Parses a 64-char hex checksum; FALSE (error set) if malformed. */
gboolean dfi_parse_checksum (const char *hex, guint8 out[DF_SHA256_LEN], GError **error);

/* Opens @path under @dfd for reading the way every file of a delta (or
 * of the engine's own state) is opened: without blocking (a FIFO in place
 * of a part must not hang the apply while it holds the repository lock),
 * without following a symbolic link, and only if it is a regular file
 * (DF_ERROR_INVALID_DELTA otherwise, naming @what; a missing file is
 * DF_ERROR_INVALID_DELTA "@what is missing" too). Its status in *@st when
 * not NULL. Returns the fd, or -1 with @error set. */
int dfi_open_regular (int dfd, const char *path, const char *what, struct stat *st, GError **error);

/* Reads a whole file that must be at most @max bytes, exactly @expected bytes
 * when @expected is not G_MAXUINT64. Errors name @what. */
GBytes *dfi_read_file_bounded (int dfd, const char *path, guint64 max, guint64 expected, const char *what,
                               GError **error);

/* Writes @len bytes fully, or fails with errno mapped as dfi_throw_errno. */
gboolean dfi_write_all (int fd, const void *buf, gsize len, const char *what, GError **error);
/* The same at offset @off. @error may be NULL; errno tells then. */
gboolean dfi_pwrite_all (int fd, const void *buf, gsize len, guint64 off, const char *what, GError **error);
/* Reads exactly @len bytes at @off: a read error or a file that ends
 * first (DF_ERROR_IO, "@what ended early") fails. */
gboolean dfi_pread_all (int fd, void *buf, gsize len, guint64 off, const char *what, GError **error);
/* Writes @bytes to @path under @dfd through "@path.tmp", fdatasync and
 * rename, so readers see the old file or the whole new one. */
gboolean dfi_write_file_atomic (int dfd, const char *path, GBytes *bytes, GError **error);

/* Takes the repository's deltafetch lock (flock on REPO/tmp/): one
 * apply or fetch at a time per repository, since each keeps and cleans up
 * state under tmp/. While another process or thread holds it, waits up to
 * @timeout_s seconds, calling @waiting (with the timeout as a pointer-sized
 * integer, and @data) once when the wait begins. Returns the fd holding it
 * (close it to release), or -1 with DF_ERROR_IO after the timeout, or the
 * cancellation. */
int dfi_repo_lock (OstreeRepo *repo, guint timeout_s, GFunc waiting, gpointer data, GCancellable *c, GError **error);

/* a + b without overflow, FALSE when it would overflow. */
static inline gboolean
dfi_add_u64 (guint64 a, guint64 b, guint64 *out)
{
  return !__builtin_add_overflow (a, b, out);
}

/* Number of processors. */
guint dfi_ncpus (void);

/* mkdir -p and rm -rf relative to @dfd (AT_FDCWD works); rm_rf of a missing
 * path succeeds. */
gboolean dfi_mkdir_p_at (int dfd, const char *path, GError **error);
gboolean dfi_rm_rf_at (int dfd, const char *path, GError **error);
/* TRUE when file @name of directory @dfd is a regular file of @size bytes
 * whose SHA-256 is @sha256 (read in 1 MiB steps; FALSE when cancelled). */
gboolean dfi_file_matches (int dfd, const char *name, guint64 size, const guint8 sha256[DF_SHA256_LEN],
                           GCancellable *cancellable);
/* A directory stream on @path relative to @dfd, with its own descriptor;
 * NULL with errno set when it cannot be opened. */
DIR *dfi_opendir_at (int dfd, const char *path);

/* Large buffers (parts, windows) come from mmap and go back with munmap
 * (malloc would keep them in per-thread arenas after free, and the apply
 * memory budget is about resident memory), except the few each thread
 * keeps for reuse until dfi_big_cache_release(). */
guint8 *dfi_big_alloc (gsize len);
void dfi_big_free (guint8 *p, gsize len);
/* Unmaps the buffers the calling thread keeps for reuse. */
void dfi_big_cache_release (void);
/* Wraps a dfi_big_alloc() buffer; the GBytes owns it. */
GBytes *dfi_big_bytes (guint8 *p, gsize len);
