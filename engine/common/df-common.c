#include "df-common.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

G_DEFINE_QUARK (deltafetch - error - quark, df_error)

/* What callers are told of an error: its exit code, name and whether a
 * retry may succeed (deltafetch.h). */
typedef struct
{
  int exit_code;
  const char *name;
  gboolean retryable;
} ErrorKind;

static const ErrorKind error_kinds[] = {
  [DF_ERROR_FAILED] = { 1, "failed", FALSE },
  [DF_ERROR_INVALID_ARGUMENT] = { 2, "invalid-argument", FALSE },
  [DF_ERROR_INVALID_DELTA] = { 3, "invalid-delta", FALSE },
  [DF_ERROR_CORRUPT] = { 4, "corrupt", FALSE },
  [DF_ERROR_UNTRUSTED] = { 5, "untrusted", FALSE },
  [DF_ERROR_MISSING_BASE] = { 6, "missing-base", FALSE },
  [DF_ERROR_NO_SPACE] = { 7, "no-space", TRUE },
  [DF_ERROR_IO] = { 8, "io", FALSE },
  [DF_ERROR_NETWORK] = { 9, "network", TRUE },
  [DF_ERROR_TIMEOUT] = { 10, "timeout", TRUE },
  [DF_ERROR_DOWNGRADE] = { 11, "downgrade", FALSE },
  [DF_ERROR_BUSY] = { 12, "busy", TRUE },
  [DF_ERROR_TOO_LARGE] = { 13, "too-large", FALSE },
  [DF_ERROR_NOT_FOUND] = { 14, "not-found", FALSE },
};
static const ErrorKind error_cancelled = { 130, "cancelled", FALSE };

static const ErrorKind *
error_kind (const GError *error)
{
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return &error_cancelled;
  DfError code = DF_ERROR_FAILED;
  if (error->domain == DF_ERROR && error->code >= DF_ERROR_FAILED && error->code <= DF_ERROR_NOT_FOUND)
    code = (DfError)error->code;
  else if (error->domain == G_IO_ERROR)
    code = error->code == G_IO_ERROR_NO_SPACE ? DF_ERROR_NO_SPACE : DF_ERROR_IO;
  return &error_kinds[code];
}

int
df_error_exit_code (const GError *error)
{
  return error ? error_kind (error)->exit_code : 0;
}

const char *
df_error_name (const GError *error)
{
  return error ? error_kind (error)->name : NULL;
}

gboolean
df_error_is_retryable (const GError *error)
{
  return error && error_kind (error)->retryable;
}

static DfError
code_for_errno (int errsv)
{
  return (errsv == ENOSPC || errsv == EDQUOT) ? DF_ERROR_NO_SPACE : DF_ERROR_IO;
}

gboolean
dfi_throw_errno (GError **error, int errsv, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (error, DF_ERROR, code_for_errno (errsv), "%s: %s", msg, g_strerror (errsv));
  errno = errsv; /* callers that pass no error read errno */
  return FALSE;
}

gboolean
dfi_throw (GError **error, DfError code, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error_literal (error, DF_ERROR, code, msg);
  return FALSE;
}

void
dfi_error_normalize (GError **error, const char *prefix)
{
  if (error == NULL || *error == NULL)
    return;
  GError *e = *error;
  /* libostree reports ENOSPC both as G_IO_ERROR_NO_SPACE and as a message
   * carrying strerror(ENOSPC) in other codes, and its own reserve
   * (min-free-space-percent or -size in the repo config) as a plain
   * "... would be exceeded" message. */
  gboolean nospace = g_error_matches (e, G_IO_ERROR, G_IO_ERROR_NO_SPACE)
                     || strstr (e->message, g_strerror (ENOSPC)) != NULL
                     || strstr (e->message, g_strerror (EDQUOT)) != NULL
                     || (strstr (e->message, "min-free-space-") != NULL
                         && strstr (e->message, "would be exceeded") != NULL);
  if (nospace)
    {
      GError *n
          = g_error_new (DF_ERROR, DF_ERROR_NO_SPACE, "%s%s%s", prefix ? prefix : "", prefix ? ": " : "", e->message);
      g_error_free (e);
      *error = n;
    }
  else if (prefix)
    g_prefix_error (error, "%s: ", prefix);
}

void
dfi_sha256 (const void *data, gsize len, guint8 out[DF_SHA256_LEN])
{
  unsigned int n = 0;
  if (!EVP_Digest (data, len, out, &n, EVP_sha256 (), NULL) || n != DF_SHA256_LEN)
    g_error ("OpenSSL SHA-256 failed");
}

void
dfi_sha256_init (DfSha256 *h)
{
  h->ctx = EVP_MD_CTX_new ();
  if (h->ctx == NULL || !EVP_DigestInit_ex (h->ctx, EVP_sha256 (), NULL))
    g_error ("OpenSSL SHA-256 init failed");
}

void
dfi_sha256_update (DfSha256 *h, const void *data, gsize len)
{
  if (!EVP_DigestUpdate (h->ctx, data, len))
    g_error ("OpenSSL SHA-256 update failed");
}

void
dfi_sha256_final (DfSha256 *h, guint8 out[DF_SHA256_LEN])
{
  unsigned int n = 0;
  if (!EVP_DigestFinal_ex (h->ctx, out, &n) || n != DF_SHA256_LEN)
    g_error ("OpenSSL SHA-256 final failed");
}

void
dfi_sha256_clear (DfSha256 *h)
{
  g_clear_pointer (&h->ctx, EVP_MD_CTX_free);
}

void
dfi_hex (const guint8 csum[DF_SHA256_LEN], char out[65])
{
  ostree_checksum_inplace_from_bytes (csum, out);
}

gboolean
dfi_parse_checksum (const char *hex, guint8 out[DF_SHA256_LEN], GError **error)
{
  if (hex == NULL || !ostree_validate_checksum_string (hex, NULL))
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT, "not a SHA-256 checksum: '%s'", hex ? hex : "(null)");
  ostree_checksum_inplace_to_bytes (hex, out);
  return TRUE;
}

int
dfi_open_regular (int dfd, const char *path, const char *what, struct stat *st_out, GError **error)
{
  int fd = openat (dfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW);
  if (fd < 0)
    {
      if (errno == ENOENT)
        dfi_throw (error, DF_ERROR_INVALID_DELTA, "%s is missing", what);
      else if (errno == ELOOP)
        dfi_throw (error, DF_ERROR_INVALID_DELTA, "%s is a symbolic link, not a regular file", what);
      else
        dfi_throw_errno (error, errno, "opening %s", what);
      return -1;
    }
  struct stat st;
  if (fstat (fd, &st) < 0)
    {
      dfi_throw_errno (error, errno, "stat %s", what);
      close (fd);
      return -1;
    }
  if (!S_ISREG (st.st_mode))
    {
      dfi_throw (error, DF_ERROR_INVALID_DELTA, "%s is not a regular file", what);
      close (fd);
      return -1;
    }
  /* Reads of a regular file never block; the flag only had to keep open()
   * from waiting on a FIFO's writer. */
  fcntl (fd, F_SETFL, fcntl (fd, F_GETFL) & ~O_NONBLOCK);
  if (st_out)
    *st_out = st;
  return fd;
}

GBytes *
dfi_read_file_bounded (int dfd, const char *path, guint64 max, guint64 expected, const char *what, GError **error)
{
  struct stat st;
  int fd = dfi_open_regular (dfd, path, what, &st, error);
  if (fd < 0)
    return NULL;
  dfi_autofd owned = fd;
  guint64 size = st.st_size;
  if (expected != G_MAXUINT64 && size != expected)
    {
      dfi_throw (error, DF_ERROR_INVALID_DELTA,
                 "%s has %" G_GUINT64_FORMAT " bytes, the superblock declares %" G_GUINT64_FORMAT, what, size,
                 expected);
      return NULL;
    }
  if (size > max)
    {
      dfi_throw (error, DF_ERROR_INVALID_DELTA,
                 "%s has %" G_GUINT64_FORMAT " bytes, more than the limit of %" G_GUINT64_FORMAT, what, size, max);
      return NULL;
    }
  /* Read one byte more than expected so a file that grows under us is
   * noticed instead of silently cut. */
  gsize cap = (gsize)size + 1;
  guint8 *buf = dfi_big_alloc (cap);
  gsize got = 0;
  while (got < cap)
    {
      ssize_t n = read (fd, buf + got, cap - got);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          dfi_big_free (buf, cap);
          dfi_throw_errno (error, errno, "reading %s", what);
          return NULL;
        }
      if (n == 0)
        break;
      got += n;
    }
  if (got != size)
    {
      dfi_big_free (buf, cap);
      dfi_throw (error, DF_ERROR_INVALID_DELTA, "%s changed size while being read", what);
      return NULL;
    }
  /* The GBytes reports @got bytes but owns the whole mapping. */
  GBytes *whole = dfi_big_bytes (buf, cap);
  GBytes *ret = g_bytes_new_from_bytes (whole, 0, got);
  g_bytes_unref (whole);
  return ret;
}

/* write() when @off is negative, pwrite() at @off otherwise, until done. */
static gboolean
write_loop (int fd, const void *buf, gsize len, gint64 off, const char *what, GError **error)
{
  const guint8 *p = buf;
  while (len > 0)
    {
      ssize_t n = off < 0 ? write (fd, p, len) : pwrite (fd, p, len, off);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          return dfi_throw_errno (error, errno, "writing %s", what);
        }
      p += n;
      len -= n;
      if (off >= 0)
        off += n;
    }
  return TRUE;
}

gboolean
dfi_write_all (int fd, const void *buf, gsize len, const char *what, GError **error)
{
  return write_loop (fd, buf, len, -1, what, error);
}

gboolean
dfi_pwrite_all (int fd, const void *buf, gsize len, guint64 off, const char *what, GError **error)
{
  g_return_val_if_fail (off <= (guint64)G_MAXINT64, FALSE);
  return write_loop (fd, buf, len, (gint64)off, what, error);
}

gboolean
dfi_pread_all (int fd, void *buf, gsize len, guint64 off, const char *what, GError **error)
{
  gsize done = 0;
  while (done < len)
    {
      ssize_t n = pread (fd, (guint8 *)buf + done, len - done, off + done);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return dfi_throw_errno (error, errno, "reading %s", what);
      if (n == 0)
        return dfi_throw (error, DF_ERROR_IO, "%s ended early", what);
      done += n;
    }
  return TRUE;
}

gboolean
dfi_write_file_atomic (int dfd, const char *path, GBytes *bytes, GError **error)
{
  g_autofree char *tmp = g_strdup_printf ("%s.tmp", path);
  int fd = openat (dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return dfi_throw_errno (error, errno, "creating %s", tmp);
  gsize len;
  const guint8 *data = g_bytes_get_data (bytes, &len);
  gboolean ok = dfi_write_all (fd, data, len, path, error);
  if (ok && fdatasync (fd) < 0)
    ok = dfi_throw_errno (error, errno, "syncing %s", path);
  close (fd);
  if (ok && renameat (dfd, tmp, dfd, path) < 0)
    ok = dfi_throw_errno (error, errno, "renaming %s", path);
  if (!ok)
    unlinkat (dfd, tmp, 0);
  return ok;
}

guint
dfi_ncpus (void)
{
  long n = sysconf (_SC_NPROCESSORS_ONLN);
  return n > 0 ? (guint)n : 1;
}

DIR *
dfi_opendir_at (int dfd, const char *path)
{
  int fd = openat (dfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  DIR *d = fdopendir (fd);
  if (d == NULL)
    {
      int errsv = errno;
      close (fd);
      errno = errsv;
    }
  return d;
}

gboolean
dfi_mkdir_p_at (int dfd, const char *path, GError **error)
{
  g_autofree char *copy = g_strdup (path);
  for (char *p = copy + 1;; p++)
    {
      gboolean end = *p == '\0';
      if (*p == '/' || end)
        {
          *p = '\0';
          if (mkdirat (dfd, copy, 0755) < 0 && errno != EEXIST)
            return dfi_throw_errno (error, errno, "creating %s", copy);
          if (end)
            break;
          *p = '/';
        }
    }
  return TRUE;
}

static gboolean
rm_rf_children (int dfd, GError **error)
{
  DIR *d = fdopendir (dfd);
  if (d == NULL)
    {
      close (dfd);
      return dfi_throw_errno (error, errno, "opening a directory to delete");
    }
  struct dirent *de;
  gboolean ok = TRUE;
  while (ok && (de = readdir (d)) != NULL)
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      if (unlinkat (dirfd (d), de->d_name, 0) == 0)
        continue;
      if (errno != EISDIR && errno != EPERM)
        {
          if (errno != ENOENT)
            ok = dfi_throw_errno (error, errno, "deleting %s", de->d_name);
          continue;
        }
      int sub = openat (dirfd (d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub < 0)
        ok = dfi_throw_errno (error, errno, "opening %s", de->d_name);
      else if (rm_rf_children (sub, error) && unlinkat (dirfd (d), de->d_name, AT_REMOVEDIR) < 0)
        ok = dfi_throw_errno (error, errno, "deleting %s", de->d_name);
      else if (error && *error)
        ok = FALSE;
    }
  closedir (d);
  return ok;
}

gboolean
dfi_rm_rf_at (int dfd, const char *path, GError **error)
{
  if (unlinkat (dfd, path, 0) == 0 || errno == ENOENT)
    return TRUE;
  int fd = openat (dfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? TRUE : dfi_throw_errno (error, errno, "opening %s", path);
  if (!rm_rf_children (fd, error))
    return FALSE;
  if (unlinkat (dfd, path, AT_REMOVEDIR) < 0 && errno != ENOENT)
    return dfi_throw_errno (error, errno, "deleting %s", path);
  return TRUE;
}

/* Below this, malloc's arenas are the better deal (no page faults on
 * fresh pages, no syscalls); above it, a mapping returns memory for sure. */
#define DF_BIG_THRESHOLD (256 * 1024)
/* A mapping starts with this header, which records its capacity. */
#define DF_BIG_HEADER 64

/* Each thread keeps up to DF_BIG_CACHE_SLOTS freed mappings of at most
 * DF_BIG_CACHE_MAX bytes for its next allocations: mmap() and munmap()
 * take the process-wide mmap lock for writing, and with a mapping per
 * decoded object the workers spent a fifth of their time waiting on each
 * other there (and on zeroing fresh pages). The apply memory budget counts
 * the cache per worker, and workers release it after each part, so idle
 * threads hold nothing. */
typedef struct
{
  guint8 *map[DF_BIG_CACHE_SLOTS];
} BigCache;

static gsize
big_capacity (const guint8 *map)
{
  gsize cap;
  memcpy (&cap, map, sizeof cap);
  return cap;
}

static void
big_unmap (guint8 *map)
{
  munmap (map, big_capacity (map) + DF_BIG_HEADER);
}

static void
big_cache_free (gpointer data)
{
  BigCache *c = data;
  for (guint i = 0; i < DF_BIG_CACHE_SLOTS; i++)
    if (c->map[i])
      big_unmap (c->map[i]);
  g_free (c);
}

static GPrivate big_cache_key = G_PRIVATE_INIT (big_cache_free);

static BigCache *
big_cache (void)
{
  BigCache *c = g_private_get (&big_cache_key);
  if (c == NULL)
    {
      c = g_new0 (BigCache, 1);
      g_private_set (&big_cache_key, c);
    }
  return c;
}

void
dfi_big_cache_release (void)
{
  BigCache *c = g_private_get (&big_cache_key);
  if (c == NULL)
    return;
  for (guint i = 0; i < DF_BIG_CACHE_SLOTS; i++)
    if (c->map[i])
      {
        big_unmap (c->map[i]);
        c->map[i] = NULL;
      }
}

guint8 *
dfi_big_alloc (gsize len)
{
  if (len < DF_BIG_THRESHOLD)
    return g_malloc (len ? len : 1);
  BigCache *c = big_cache ();
  int best = -1;
  for (int i = 0; i < DF_BIG_CACHE_SLOTS; i++)
    if (c->map[i] && big_capacity (c->map[i]) >= len
        && (best < 0 || big_capacity (c->map[i]) < big_capacity (c->map[best])))
      best = i;
  if (best >= 0)
    {
      guint8 *map = c->map[best];
      c->map[best] = NULL;
      return map + DF_BIG_HEADER;
    }
  /* Sizes that may be cached are rounded up so a mapping serves the next
   * request of a similar size too; untouched pages cost nothing. */
  gsize cap = len;
  if (len <= DF_BIG_CACHE_MAX)
    {
      cap = DF_BIG_THRESHOLD;
      while (cap < len)
        cap *= 2;
    }
  if (cap > G_MAXSIZE - DF_BIG_HEADER)
    g_error ("out of memory allocating %zu bytes", len);
  void *p = mmap (NULL, cap + DF_BIG_HEADER, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    g_error ("out of memory allocating %zu bytes", len);
  memcpy (p, &cap, sizeof cap);
  return (guint8 *)p + DF_BIG_HEADER;
}

void
dfi_big_free (guint8 *p, gsize len)
{
  if (p == NULL)
    return;
  if (len < DF_BIG_THRESHOLD)
    {
      g_free (p);
      return;
    }
  guint8 *map = p - DF_BIG_HEADER;
  if (big_capacity (map) <= DF_BIG_CACHE_MAX)
    {
      BigCache *c = big_cache ();
      for (guint i = 0; i < DF_BIG_CACHE_SLOTS; i++)
        if (c->map[i] == NULL)
          {
            c->map[i] = map;
            return;
          }
    }
  big_unmap (map);
}

typedef struct
{
  guint8 *p;
  gsize len;
} BigBuf;

static void
big_buf_free (gpointer data)
{
  BigBuf *b = data;
  dfi_big_free (b->p, b->len);
  g_free (b);
}

GBytes *
dfi_big_bytes (guint8 *p, gsize len)
{
  BigBuf *b = g_new (BigBuf, 1);
  b->p = p;
  b->len = len;
  return g_bytes_new_with_free_func (p, len, big_buf_free, b);
}

int
dfi_repo_lock (OstreeRepo *repo, guint timeout_s, GFunc waiting, gpointer data, GCancellable *c, GError **error)
{
  /* The directory itself is locked: nothing is left behind, and libostree
   * locks other files. */
  int fd = openat (ostree_repo_get_dfd (repo), "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    {
      dfi_throw_errno (error, errno, "opening the repository's deltafetch lock");
      return -1;
    }
  /* Polled rather than blocking: the wait must end at the timeout and on
   * cancellation. A process killed with SIGKILL still holds the lock for a
   * moment after its parent sees it exit, so an agent that restarts at
   * once waits that moment out here. */
  gint64 deadline = g_get_monotonic_time () + (gint64)timeout_s * G_USEC_PER_SEC;
  gboolean told = FALSE;
  while (flock (fd, LOCK_EX | LOCK_NB) < 0)
    {
      int errsv = errno;
      if (errsv == EINTR)
        continue;
      if (errsv != EWOULDBLOCK || g_get_monotonic_time () >= deadline
          || g_cancellable_set_error_if_cancelled (c, error))
        {
          close (fd);
          if (error && *error)
            return -1;
          if (errsv == EWOULDBLOCK)
            dfi_throw (error, DF_ERROR_BUSY,
                       "another deltafetch apply or fetch is working in this repository (waited %u s)", timeout_s);
          else
            dfi_throw_errno (error, errsv, "locking the repository");
          return -1;
        }
      if (!told && waiting)
        waiting (GUINT_TO_POINTER (timeout_s), data);
      told = TRUE;
      g_usleep (DF_LOCK_POLL_US);
    }
  return fd;
}

gboolean
dfi_checksum_from_variant (GVariant *v, gboolean optional, guint8 out[DF_SHA256_LEN], gboolean *present,
                           const char *what, GError **error)
{
  gsize n = 0;
  const guint8 *d = g_variant_get_fixed_array (v, &n, 1);
  if (present)
    *present = n != 0;
  if (n == 0 && optional)
    return TRUE;
  if (n != DF_SHA256_LEN)
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "%s is %zu bytes, not 32", what, n);
  memcpy (out, d, DF_SHA256_LEN);
  return TRUE;
}

gboolean
dfi_delta_ends_read (GVariant *from, GVariant *to, GVariant *commit, const char *prefix, gboolean *has_from,
                     guint8 from_out[DF_SHA256_LEN], char from_hex[65], guint8 to_out[DF_SHA256_LEN], char to_hex[65],
                     GBytes **commit_out, GError **error)
{
  g_autofree char *from_what = g_strdup_printf ("%s: from checksum", prefix);
  g_autofree char *to_what = g_strdup_printf ("%s: to checksum", prefix);
  if (!dfi_checksum_from_variant (from, TRUE, from_out, has_from, from_what, error)
      || !dfi_checksum_from_variant (to, FALSE, to_out, NULL, to_what, error))
    return FALSE;
  from_hex[0] = '\0';
  if (*has_from)
    dfi_hex (from_out, from_hex);
  dfi_hex (to_out, to_hex);
  *commit_out = g_variant_get_data_as_bytes (commit);
  guint8 actual[DF_SHA256_LEN];
  dfi_sha256 (g_bytes_get_data (*commit_out, NULL), g_bytes_get_size (*commit_out), actual);
  if (memcmp (actual, to_out, DF_SHA256_LEN) != 0)
    {
      char hex[65];
      dfi_hex (actual, hex);
      return dfi_throw (error, DF_ERROR_CORRUPT, "%s: the commit object hashes to %s, not to the declared %s", prefix,
                        hex, to_hex);
    }
  return TRUE;
}

static void
forward_cancel (GCancellable *from, gpointer to)
{
  g_cancellable_cancel (to);
}

gulong
dfi_cancellable_forward (GCancellable *from, GCancellable *to)
{
  return from ? g_cancellable_connect (from, G_CALLBACK (forward_cancel), to, NULL) : 0;
}

gboolean
dfi_file_matches (int dfd, const char *name, guint64 size, const guint8 sha256[DF_SHA256_LEN],
                  GCancellable *cancellable)
{
  int fd = openat (dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return FALSE;
  struct stat st;
  gboolean ok = fstat (fd, &st) == 0 && S_ISREG (st.st_mode) && (guint64)st.st_size == size;
  DfSha256 h;
  dfi_sha256_init (&h);
  g_autofree guint8 *buf = ok ? g_malloc (DF_MIB) : NULL;
  guint64 done = 0;
  while (ok && done < size && !g_cancellable_is_cancelled (cancellable))
    {
      ssize_t n = read (fd, buf, MIN ((guint64)DF_MIB, size - done));
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        ok = FALSE;
      else
        {
          dfi_sha256_update (&h, buf, n);
          done += n;
        }
    }
  close (fd);
  guint8 got[DF_SHA256_LEN];
  dfi_sha256_final (&h, got);
  dfi_sha256_clear (&h);
  return ok && done == size && memcmp (got, sha256, DF_SHA256_LEN) == 0;
}
