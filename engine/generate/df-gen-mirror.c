/* Publishing a repository to static hosting in an order where no client
 * ever reads a file that names one not there yet: objects, delta parts,
 * superblocks, stats and indexes, refs and config, the summary; removals
 * last (see deltafetch.h, df_publish_plan()). */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "df-common.h"
#include "df-gen-publish.h"

/* The stage of a repository file (relative path), or -1 when it is not
 * published (tmp/, state/, locks, remote refs). */
static int
stage_of (const char *rel, DfCacheClass *cache)
{
  const char *base = strrchr (rel, '/');
  base = base ? base + 1 : rel;
  gboolean digits = base[0] != '\0' && strspn (base, "0123456789") == strlen (base);
  if (g_str_has_prefix (rel, "objects/"))
    {
      *cache = DF_CACHE_IMMUTABLE;
      return DF_PUBLISH_STAGE_OBJECTS;
    }
  if (g_str_has_prefix (rel, "deltafetch/v1/deltas/") || g_str_has_prefix (rel, "deltas/"))
    {
      if (strcmp (base, "superblock") == 0)
        {
          *cache = DF_CACHE_REVALIDATE;
          return DF_PUBLISH_STAGE_SUPERBLOCKS;
        }
      *cache = digits ? DF_CACHE_LONG : DF_CACHE_REVALIDATE;
      return DF_PUBLISH_STAGE_PARTS;
    }
  if (g_str_has_prefix (rel, "deltafetch/v1/stats/") || g_str_has_prefix (rel, "deltafetch/v1/indexes/")
      || g_str_has_prefix (rel, "delta-indexes/"))
    {
      *cache = DF_CACHE_SHORT;
      return DF_PUBLISH_STAGE_INDEXES;
    }
  if (g_str_has_prefix (rel, "refs/heads/") || strcmp (rel, "config") == 0)
    {
      *cache = DF_CACHE_SHORT;
      return DF_PUBLISH_STAGE_REFS;
    }
  if (strcmp (rel, "summary.sig") == 0 || strcmp (rel, "summary") == 0)
    {
      *cache = DF_CACHE_SHORT;
      return DF_PUBLISH_STAGE_SUMMARY;
    }
  return -1;
}

/* Adds the regular files under @rel of @dfd (recursively) to @out. */
static gboolean
collect (int dfd, const char *rel, GPtrArray *out, GError **error)
{
  DIR *d = dfi_opendir_at (dfd, rel);
  if (d == NULL)
    {
      if (errno == ENOENT)
        return TRUE;
      return dfi_throw_errno (error, errno, "opening %s", rel);
    }
  g_autoptr (GPtrArray) subdirs = g_ptr_array_new_with_free_func (g_free);
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    {
      if (de->d_name[0] == '.')
        continue; /* ., .., and files being written (.tmp-...) */
      g_autofree char *path = g_build_filename (rel, de->d_name, NULL);
      struct stat st;
      if (fstatat (dirfd (d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        continue;
      DfCacheClass cache;
      if (S_ISDIR (st.st_mode))
        g_ptr_array_add (subdirs, g_steal_pointer (&path));
      else if (S_ISREG (st.st_mode) && g_str_has_suffix (de->d_name, ".deleting") == FALSE)
        {
          int stage = stage_of (path, &cache);
          if (stage < 0)
            continue;
          DfPublishFile *f = g_new0 (DfPublishFile, 1);
          f->path = g_steal_pointer (&path);
          f->stage = stage;
          f->cache = cache;
          f->size = st.st_size;
          g_ptr_array_add (out, f);
        }
    }
  closedir (d);
  for (guint i = 0; i < subdirs->len; i++)
    if (!g_str_has_suffix (subdirs->pdata[i], ".deleting") && !collect (dfd, subdirs->pdata[i], out, error))
      return FALSE;
  return TRUE;
}

static int
file_cmp (gconstpointer a, gconstpointer b)
{
  const DfPublishFile *x = *(DfPublishFile *const *)a, *y = *(DfPublishFile *const *)b;
  if (x->stage != y->stage)
    return x->stage < y->stage ? -1 : 1;
  return strcmp (x->path, y->path);
}

/* The files of @dfd a server holds, by stage and path; objects too when
 * @objects (never removed from a server, so its own listing skips them). */
static gboolean
plan_dir (int dfd, gboolean objects, GPtrArray **out, GError **error)
{
  g_autoptr (GPtrArray) files = g_ptr_array_new_with_free_func ((GDestroyNotify)df_publish_file_free);
  const char *tops[] = { "objects", "deltas", "deltafetch/v1", "delta-indexes", "refs/heads" };
  for (guint i = objects ? 0 : 1; i < G_N_ELEMENTS (tops); i++)
    if (!collect (dfd, tops[i], files, error))
      return FALSE;
  const char *singles[] = { "config", "summary.sig", "summary" };
  for (guint i = 0; i < G_N_ELEMENTS (singles); i++)
    {
      struct stat st;
      DfCacheClass cache;
      if (fstatat (dfd, singles[i], &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG (st.st_mode))
        continue;
      DfPublishFile *f = g_new0 (DfPublishFile, 1);
      f->path = g_strdup (singles[i]);
      f->stage = stage_of (singles[i], &cache);
      f->cache = cache;
      f->size = st.st_size;
      g_ptr_array_add (files, f);
    }
  g_ptr_array_sort (files, file_cmp);
  *out = g_steal_pointer (&files);
  return TRUE;
}

gboolean
df_publish_plan (OstreeRepo *repo, GPtrArray **out_files, GCancellable *cancellable, GError **error)
{
  return plan_dir (ostree_repo_get_dfd (repo), TRUE, out_files, error);
}

/* TRUE when @f is in @dst as in @src: an object (named by its content) of
 * the same size; another file of the same size and modification time
 * (copies get their source's), else of the same bytes, compared 1 MiB at a
 * time (then it gets its source's time, so the next run only stats it). */
static gboolean
same_file (int src, int dst, const DfPublishFile *f)
{
  struct stat a, b;
  if (fstatat (dst, f->path, &b, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG (b.st_mode) || (guint64)b.st_size != f->size)
    return FALSE;
  if (f->stage == DF_PUBLISH_STAGE_OBJECTS)
    return TRUE;
  if (fstatat (src, f->path, &a, AT_SYMLINK_NOFOLLOW) < 0)
    return FALSE;
  if (a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec)
    return TRUE;
  int x = openat (src, f->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  int y = openat (dst, f->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  gboolean same = x >= 0 && y >= 0;
  g_autofree guint8 *p = same ? g_malloc (DF_MIB) : NULL;
  g_autofree guint8 *q = same ? g_malloc (DF_MIB) : NULL;
  for (guint64 off = 0; same && off < f->size;)
    {
      gsize n = MIN ((guint64)DF_MIB, f->size - off);
      same = dfi_pread_all (x, p, n, off, "file", NULL) && dfi_pread_all (y, q, n, off, "file", NULL)
             && memcmp (p, q, n) == 0;
      off += n;
    }
  if (x >= 0)
    close (x);
  if (y >= 0)
    close (y);
  if (same)
    {
      struct timespec times[2] = { { .tv_nsec = UTIME_OMIT }, a.st_mtim };
      utimensat (dst, f->path, times, AT_SYMLINK_NOFOLLOW);
    }
  return same;
}

gboolean
dfi_copy_file_at (int src, const char *src_rel, int dst, const char *rel, GCancellable *cancellable, GError **error)
{
  g_autofree char *dir = g_path_get_dirname (rel);
  g_autofree char *base = g_path_get_basename (rel);
  if (strcmp (dir, ".") != 0 && !dfi_mkdir_p_at (dst, dir, error))
    return FALSE;
  g_autofree char *tmp = g_strdup_printf ("%s/.%s.tmp-%d", dir, base, (int)getpid ());
  int in = openat (src, src_rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (in < 0)
    return dfi_throw_errno (error, errno, "opening %s", src_rel);
  int out = openat (dst, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (out < 0)
    {
      int errsv = errno;
      close (in);
      return dfi_throw_errno (error, errsv, "creating %s", tmp);
    }
  g_autofree guint8 *buf = g_malloc (DF_MIB);
  gboolean ok = TRUE;
  for (;;)
    {
      ssize_t n = read (in, buf, DF_MIB);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 || g_cancellable_set_error_if_cancelled (cancellable, error))
        {
          if (n < 0)
            dfi_throw_errno (error, errno, "reading %s", src_rel);
          ok = FALSE;
          break;
        }
      if (n == 0)
        break;
      for (ssize_t done = 0; done < n && ok;)
        {
          ssize_t w = write (out, buf + done, n - done);
          if (w < 0 && errno == EINTR)
            continue;
          if (w <= 0)
            ok = dfi_throw_errno (error, errno, "writing %s", tmp);
          else
            done += w;
        }
      if (!ok)
        break;
    }
  struct stat st;
  if (ok && fstat (in, &st) == 0)
    {
      /* The source's time: a later publish then only compares stats. */
      struct timespec times[2] = { { .tv_nsec = UTIME_OMIT }, st.st_mtim };
      futimens (out, times);
    }
  close (in);
  if (ok && fsync (out) < 0)
    ok = dfi_throw_errno (error, errno, "syncing %s", tmp);
  if (close (out) < 0 && ok)
    ok = dfi_throw_errno (error, errno, "writing %s", tmp);
  if (ok && renameat (dst, tmp, dst, rel) < 0)
    ok = dfi_throw_errno (error, errno, "renaming %s", tmp);
  if (!ok)
    unlinkat (dst, tmp, 0);
  return ok;
}

gboolean
df_publish (OstreeRepo *repo, const char *dest, DfPublishResult *result, GCancellable *cancellable, GError **error)
{
  DfPublishResult local = { 0 };
  DfPublishResult *res = result ? result : &local;
  memset (res, 0, sizeof *res);
  if (g_mkdir_with_parents (dest, 0755) < 0)
    return dfi_throw_errno (error, errno, "creating %s", dest);
  int src = ostree_repo_get_dfd (repo);
  int dst = open (dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dst < 0)
    return dfi_throw_errno (error, errno, "opening %s", dest);
  g_autoptr (GPtrArray) files = NULL, there = NULL;
  gboolean ok = plan_dir (src, TRUE, &files, error) && plan_dir (dst, FALSE, &there, error);
  g_autoptr (GHashTable) wanted = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; ok && i < files->len; i++)
    {
      DfPublishFile *f = files->pdata[i];
      g_hash_table_add (wanted, f->path);
      if (same_file (src, dst, f))
        continue;
      ok = dfi_copy_file_at (src, f->path, dst, f->path, cancellable, error);
      if (ok)
        {
          res->files_copied++;
          res->bytes_copied += f->size;
        }
    }
  /* Last, what the repository no longer has (but objects, which a client
   * of an older summary may still want): nothing published names them now. */
  for (guint i = there ? there->len : 0; ok && i-- > 0;)
    {
      DfPublishFile *f = there->pdata[i]; /* the last stages first: indexes before what they named */
      if (f->stage == DF_PUBLISH_STAGE_OBJECTS || g_hash_table_contains (wanted, f->path))
        continue;
      if (unlinkat (dst, f->path, 0) < 0 && errno != ENOENT)
        ok = dfi_throw_errno (error, errno, "removing %s from %s", f->path, dest);
      else
        {
          res->files_removed++;
          g_autofree char *dir = g_path_get_dirname (f->path);
          unlinkat (dst, dir, AT_REMOVEDIR); /* a delta directory left empty */
        }
    }
  if (ok && fsync (dst) < 0)
    ok = dfi_throw_errno (error, errno, "syncing %s", dest);
  close (dst);
  return ok;
}
