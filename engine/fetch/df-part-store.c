/* The part store (see df-part-store.h). */
#include "df-part-store.h"

#include <fcntl.h>
#include <sys/stat.h>

/* Legal moves, [from][to]. */
static const gboolean legal[DF_PART_N_STATES][DF_PART_N_STATES] = {
  [DF_PART_STATE_NEW] = { [DF_PART_STATE_UNNEEDED] = TRUE, [DF_PART_STATE_WANTED] = TRUE, [DF_PART_STATE_DONE] = TRUE },
  [DF_PART_STATE_UNNEEDED] = { [DF_PART_STATE_NEW] = TRUE }, /* wanted after all: a rebuild failed */
  [DF_PART_STATE_WANTED] = { [DF_PART_STATE_VERIFYING] = TRUE },
  [DF_PART_STATE_VERIFYING]
  = { [DF_PART_STATE_WANTED] = TRUE, [DF_PART_STATE_DONE] = TRUE, [DF_PART_STATE_FAILED] = TRUE },
};

gboolean
dfi_part_state_legal (DfPartState from, DfPartState to)
{
  return from < DF_PART_N_STATES && to < DF_PART_N_STATES && legal[from][to];
}

const char *
dfi_part_state_name (DfPartState state)
{
  static const char *const names[] = { "new", "unneeded", "wanted", "verifying", "done", "failed" };
  G_STATIC_ASSERT (G_N_ELEMENTS (names) == DF_PART_N_STATES);
  return state < DF_PART_N_STATES ? names[state] : "invalid";
}

void
dfi_part_store_set_state (DfPartStore *s, DfStorePart *p, DfPartState to)
{
  if (!dfi_part_state_legal (p->state, to))
    g_error ("part %s: illegal move from %s to %s", p->name, dfi_part_state_name (p->state), dfi_part_state_name (to));
  g_mutex_lock (&s->lock);
  p->state = to;
  g_cond_broadcast (&s->cond);
  g_mutex_unlock (&s->lock);
}

gboolean
dfi_part_settled (const DfStorePart *p)
{
  return p->state == DF_PART_STATE_DONE || p->state == DF_PART_STATE_UNNEEDED;
}

void
dfi_part_store_init (DfPartStore *s, OstreeRepo *repo, guint64 range_size, GCancellable *cancellable)
{
  memset (s, 0, sizeof *s);
  s->repo = repo;
  s->cancellable = cancellable;
  s->range_size = range_size;
  s->dfd = -1;
  g_mutex_init (&s->lock);
  g_cond_init (&s->cond);
}

void
dfi_part_store_clear (DfPartStore *s)
{
  for (guint i = 0; i < s->n_parts; i++)
    {
      DfStorePart *p = &s->parts[i];
      if (p->fd >= 0)
        close (p->fd);
      g_free (p->rel);
      g_free (p->ranges);
      g_free (p->done);
      g_free (p->recorded);
    }
  g_clear_pointer (&s->parts, g_free);
  s->n_parts = 0;
  if (s->dfd >= 0)
    close (s->dfd);
  s->dfd = -1;
  g_mutex_clear (&s->lock);
  g_cond_clear (&s->cond);
}

/* Removes the state other fetches and applies left in tmp/, all but the
 * one for @keep_hex. */
static void
remove_stale_state (OstreeRepo *repo, const char *keep_hex)
{
  DIR *d = dfi_opendir_at (ostree_repo_get_dfd (repo), "tmp");
  if (d == NULL)
    return;
  g_autoptr (GPtrArray) stale = g_ptr_array_new_with_free_func (g_free);
  struct dirent *de;
  while ((de = readdir (d)))
    {
      const char *n = de->d_name;
      const char *hex = g_str_has_prefix (n, "deltafetch-fetch-")   ? n + 17
                        : g_str_has_prefix (n, "deltafetch-apply-") ? n + 17
                                                                    : NULL;
      if (hex && (keep_hex == NULL || strcmp (hex, keep_hex) != 0))
        g_ptr_array_add (stale, g_strdup (n));
    }
  for (guint i = 0; i < stale->len; i++)
    dfi_rm_rf_at (dirfd (d), stale->pdata[i], NULL);
  closedir (d);
}

gboolean
dfi_part_store_open (DfPartStore *s, const char *sb_hex, GError **error)
{
  remove_stale_state (s->repo, sb_hex);
  g_snprintf (s->rel, sizeof s->rel, "tmp/deltafetch-fetch-%s", sb_hex);
  int repo_dfd = ostree_repo_get_dfd (s->repo);
  if (!dfi_mkdir_p_at (repo_dfd, s->rel, error))
    return FALSE;
  s->dfd = openat (repo_dfd, s->rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (s->dfd < 0)
    return dfi_throw_errno (error, errno, "opening %s", s->rel);
  return TRUE;
}

gboolean
dfi_part_store_open_existing (DfPartStore *s, const char *sb_hex)
{
  g_snprintf (s->rel, sizeof s->rel, "tmp/deltafetch-fetch-%s", sb_hex);
  s->dfd = openat (ostree_repo_get_dfd (s->repo), s->rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  s->rel[0] = '\0'; /* nothing to remove */
  return s->dfd >= 0;
}

/* Part @p's record of the ranges already in (PART.ranges: the range size,
 * 8 bytes little-endian, then a byte per range, 1 when in), or NULL when
 * there is none or it was made with another range size (it does not
 * describe these ranges). *@flags points at the per-range bytes. */
static GBytes *
read_ranges_record (DfPartStore *s, const DfStorePart *p, const guint8 **flags)
{
  char name[96];
  g_snprintf (name, sizeof name, "%s.ranges", p->name);
  g_autoptr (GBytes) rec = dfi_read_file_bounded (s->dfd, name, 8 + p->n_ranges, G_MAXUINT64, "ranges", NULL);
  gsize rlen = 0;
  const guint8 *rb = rec ? g_bytes_get_data (rec, &rlen) : NULL;
  guint64 rs = 0;
  if (rb == NULL || rlen != 8 + p->n_ranges)
    return NULL;
  memcpy (&rs, rb, 8);
  if (GUINT64_FROM_LE (rs) != s->range_size)
    return NULL;
  *flags = rb + 8;
  return g_steal_pointer (&rec);
}

guint64
dfi_part_store_peek (DfPartStore *s, const DfStorePart *p)
{
  if (s->dfd < 0)
    return 0;
  struct stat st;
  /* Under its final name, a part was verified before it was renamed. */
  if (fstatat (s->dfd, p->name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG (st.st_mode)
      && (guint64)st.st_size == p->size)
    return p->size;
  const guint8 *flags = NULL;
  g_autoptr (GBytes) rec = read_ranges_record (s, p, &flags);
  guint64 reused = 0;
  for (guint r = 0; rec && r < p->n_ranges; r++)
    if (flags[r] == 1)
      reused += p->ranges[r].len;
  return reused;
}

void
dfi_part_store_remove (DfPartStore *s)
{
  if (s->dfd >= 0)
    close (s->dfd);
  s->dfd = -1;
  if (s->rel[0])
    dfi_rm_rf_at (ostree_repo_get_dfd (s->repo), s->rel, NULL);
}

void
dfi_part_store_alloc (DfPartStore *s, guint n)
{
  s->parts = g_new0 (DfStorePart, MAX (n, 1));
  s->n_parts = n;
  for (guint i = 0; i < n; i++)
    s->parts[i].fd = -1;
}

void
dfi_part_init (DfPartStore *s, DfStorePart *p, guint index, guint64 size, const guint8 sha[DF_SHA256_LEN],
               guint64 unpacked)
{
  p->index = index;
  if (p->name[0] == '\0')
    g_snprintf (p->name, sizeof p->name, "%u", index);
  p->fd = -1;
  p->size = size;
  memcpy (p->sha256, sha, DF_SHA256_LEN);
  p->unpacked = unpacked;
  guint64 rs = s->range_size;
  p->n_ranges = size == 0 ? 1 : (guint)((size + rs - 1) / rs);
  p->ranges = g_new0 (DfStoreRange, p->n_ranges);
  p->done = g_new0 (guint8, p->n_ranges);
  p->recorded = g_new0 (guint8, p->n_ranges);
  p->remaining = p->n_ranges;
  for (guint r = 0; r < p->n_ranges; r++)
    {
      p->ranges[r].part = p;
      p->ranges[r].slot = r;
      p->ranges[r].off = r * rs;
      p->ranges[r].len = MIN (rs, size - r * rs);
    }
}

static gboolean
hash_file_matches (int fd, guint64 size, const guint8 want[DF_SHA256_LEN])
{
  DfSha256 h;
  dfi_sha256_init (&h);
  g_autofree guint8 *buf = g_malloc (DF_COPY_BUFFER);
  for (guint64 off = 0; off < size;)
    {
      ssize_t n = pread (fd, buf, MIN ((guint64)DF_COPY_BUFFER, size - off), off);
      if (n <= 0)
        {
          dfi_sha256_clear (&h);
          return FALSE;
        }
      dfi_sha256_update (&h, buf, n);
      off += n;
    }
  guint8 got[DF_SHA256_LEN];
  dfi_sha256_final (&h, got);
  dfi_sha256_clear (&h);
  return memcmp (got, want, DF_SHA256_LEN) == 0;
}

/* A downloaded file is what it should be: a part matches its SHA-256; a
 * stock fallback object (no file checksum is published) is inflated and
 * hashed as the object it claims to be. */
static gboolean
part_matches (DfPartStore *s, DfStorePart *p, int fd, GError **error)
{
  if (p->fallback)
    return dfi_stock_fallback_verify (fd, p->size, p->fallback, s->cancellable, error);
  return hash_file_matches (fd, p->size, p->sha256);
}

void
dfi_part_store_lookup (DfPartStore *s, DfStorePart *p)
{
  struct stat st;
  dfi_autofd done_fd = dfi_open_regular (s->dfd, p->name, p->name, &st, NULL);
  if (done_fd >= 0 && (guint64)st.st_size == p->size && part_matches (s, p, done_fd, NULL))
    {
      dfi_part_store_set_state (s, p, DF_PART_STATE_DONE);
      s->bytes_reused += p->size;
      return;
    }
  dfi_part_store_set_state (s, p, DF_PART_STATE_WANTED);
  unlinkat (s->dfd, p->name, 0);
  const guint8 *flags = NULL;
  g_autoptr (GBytes) rec = read_ranges_record (s, p, &flags);
  for (guint r = 0; rec && r < p->n_ranges; r++)
    if (flags[r] == 1)
      {
        p->done[r] = p->recorded[r] = 1;
        p->remaining--;
        p->resumed = TRUE;
        s->bytes_reused += p->ranges[r].len;
      }
}

gboolean
dfi_part_range_done (DfStorePart *p, guint slot)
{
  g_assert (p->state == DF_PART_STATE_WANTED && slot < p->n_ranges);
  if (p->done[slot])
    return FALSE;
  p->done[slot] = 1;
  p->remaining--;
  return TRUE;
}

/* A part's .partial file is open only while transfers write into it (or it
 * is being checked), so a delta of thousands of parts needs few fds. */
int
dfi_part_store_fd (DfPartStore *s, DfStorePart *p)
{
  if (p->fd < 0)
    {
      char name[96];
      g_snprintf (name, sizeof name, "%s.partial", p->name);
      p->fd = openat (s->dfd, name, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    }
  return p->fd;
}

void
dfi_part_store_release_fd (DfStorePart *p)
{
  if (p->fd >= 0 && p->active == 0)
    {
      close (p->fd);
      p->fd = -1;
    }
}

void
dfi_part_store_restart (DfPartStore *s, DfStorePart *p)
{
  if (p->state != DF_PART_STATE_WANTED)
    dfi_part_store_set_state (s, p, DF_PART_STATE_WANTED);
  char name[96];
  g_snprintf (name, sizeof name, "%s.partial", p->name);
  unlinkat (s->dfd, name, 0); /* writers still active keep their inode */
  if (p->fd >= 0)
    close (p->fd);
  p->fd = -1;
  p->generation++;
  memset (p->done, 0, p->n_ranges);
  memset (p->recorded, 0, p->n_ranges);
  for (guint r = 0; r < p->n_ranges; r++)
    p->ranges[r].got = 0;
  p->remaining = p->n_ranges;
  p->etag[0] = '\0';
  p->mirrors_used = 0;
  p->resumed = FALSE;
  g_snprintf (name, sizeof name, "%s.ranges", p->name);
  unlinkat (s->dfd, name, 0);
}

void
dfi_part_store_record (DfPartStore *s, DfStorePart *p)
{
  if (memcmp (p->done, p->recorded, p->n_ranges) == 0)
    return;
  char name[96];
  g_snprintf (name, sizeof name, "%s.ranges", p->name);
  dfi_autofd fd = openat (s->dfd, name, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  guint64 rs = GUINT64_TO_LE (s->range_size);
  if (fd >= 0 && dfi_pwrite_all (fd, &rs, sizeof rs, 0, "ranges", NULL)
      && dfi_pwrite_all (fd, p->done, p->n_ranges, sizeof rs, "ranges", NULL))
    {
      memcpy (p->recorded, p->done, p->n_ranges);
      p->dirty = TRUE;
    }
}

/* A record can still reach the disk before the bytes it describes; a
 * resumed part that fails its check therefore starts over without blame
 * (see p->resumed). */
void
dfi_part_store_checkpoint (DfPartStore *s)
{
  for (guint i = 0; i < s->n_parts; i++)
    {
      DfStorePart *p = &s->parts[i];
      if (dfi_part_settled (p) || !p->dirty)
        continue;
      char name[96];
      g_snprintf (name, sizeof name, "%s.partial", p->name);
      dfi_autofd data = dfi_open_regular (s->dfd, name, name, NULL, NULL);
      g_snprintf (name, sizeof name, "%s.ranges", p->name);
      dfi_autofd rec = dfi_open_regular (s->dfd, name, name, NULL, NULL);
      if (data >= 0 && rec >= 0 && fdatasync (data) == 0 && fdatasync (rec) == 0)
        p->dirty = FALSE;
    }
}

DfPartVerdict
dfi_part_store_finish (DfPartStore *s, DfStorePart *p, guint32 *served_by, GError **error)
{
  g_assert (p->remaining == 0 && p->active == 0);
  dfi_part_store_set_state (s, p, DF_PART_STATE_VERIFYING);
  char name[96];
  g_snprintf (name, sizeof name, "%s.partial", p->name);
  int fd = dfi_part_store_fd (s, p);
  if (fd < 0)
    {
      dfi_throw (error, DF_ERROR_IO, "opening %s: %s", p->name, g_strerror (errno));
      dfi_part_store_set_state (s, p, DF_PART_STATE_FAILED);
      return DF_PART_IO_ERROR;
    }
  if (!part_matches (s, p, fd, error))
    {
      *served_by = p->mirrors_used;
      return DF_PART_BAD;
    }
  close (p->fd);
  p->fd = -1;
  if (renameat (s->dfd, name, s->dfd, p->name) < 0)
    {
      dfi_throw (error, DF_ERROR_IO, "storing %s: %s", p->name, g_strerror (errno));
      dfi_part_store_set_state (s, p, DF_PART_STATE_FAILED);
      return DF_PART_IO_ERROR;
    }
  g_snprintf (name, sizeof name, "%s.ranges", p->name);
  unlinkat (s->dfd, name, 0);
  dfi_part_store_set_state (s, p, DF_PART_STATE_DONE);
  return DF_PART_VERIFIED;
}

gboolean
dfi_part_store_wait (DfPartStore *s, DfStorePart *p, GError **error)
{
  g_mutex_lock (&s->lock);
  while (!dfi_part_settled (p) && !s->stop)
    g_cond_wait (&s->cond, &s->lock);
  gboolean ok = dfi_part_settled (p);
  g_mutex_unlock (&s->lock);
  return ok
         || dfi_throw (error, DF_ERROR_NETWORK, "%s%s did not arrive", p->fallback ? "fallback object " : "part ",
                       p->name);
}

void
dfi_part_store_stop (DfPartStore *s)
{
  g_mutex_lock (&s->lock);
  s->stop = TRUE;
  g_cond_broadcast (&s->cond);
  g_mutex_unlock (&s->lock);
}
