/* Whether a delta generate is asked for is already published in the
 * repository, whole and as these options would make it again: then a run
 * over many from-commits skips it (df_generate_many()). */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "df-gen-current.h"
#include "df-generate-private.h"
#include "df-gen-publish.h"
#include "df-generate-options.h"
#include "df-sign.h"
#include "df-stock-superblock.h"
#include "df-stock.h"
#include "df-superblock.h"

/* Sets *@why (when asked) and returns FALSE. */
static gboolean stale (char **why, const char *fmt, ...) G_GNUC_PRINTF (2, 3);
static gboolean
stale (char **why, const char *fmt, ...)
{
  if (why)
    {
      va_list ap;
      va_start (ap, fmt);
      g_free (*why);
      *why = g_strdup_vprintf (fmt, ap);
      va_end (ap);
    }
  return FALSE;
}

/* The superblock file of the delta in @rel, checked against @signers: it
 * must carry exactly their signatures (none without signers). */
static GBytes *
read_signed (int repo_dfd, const char *rel, guint64 max, GPtrArray *signers, char **why)
{
  g_autofree char *path = g_build_filename (rel, "superblock", NULL);
  g_autoptr (GBytes) file = dfi_read_file_bounded (repo_dfd, path, max, G_MAXUINT64, "superblock", NULL);
  if (file == NULL)
    {
      stale (why, "not there");
      return NULL;
    }
  g_autoptr (GBytes) data = NULL;
  g_autoptr (GPtrArray) sigs = NULL;
  g_autoptr (GError) local = NULL;
  if (!dfi_signed_unwrap (file, &data, &sigs, &local) && local)
    {
      stale (why, "its superblock: %s", local->message);
      return NULL;
    }
  if (!dfi_signers_match (signers, data, sigs))
    {
      stale (why, "signed by other keys than those given");
      return NULL;
    }
  return g_steal_pointer (&file);
}

/* The detached metadata of commit @to as a delta carries it: its normal
 * form's bytes, empty when there is none. */
static GBytes *
commitmeta_now (OstreeRepo *repo, const char *to)
{
  g_autoptr (GVariant) detached = NULL;
  if (!ostree_repo_read_commit_detached_metadata (repo, to, &detached, NULL, NULL) || detached == NULL)
    return g_bytes_new (NULL, 0);
  g_autoptr (GVariant) normal = g_variant_get_normal_form (detached);
  return g_variant_get_data_as_bytes (normal);
}

/* TRUE when @carried (may be NULL or empty) is @now: a commit signed
 * after its delta was made needs a new superblock. */
static gboolean
same_commitmeta (GBytes *carried, GBytes *now)
{
  if (carried == NULL || g_bytes_get_size (carried) == 0)
    return g_bytes_get_size (now) == 0;
  return g_bytes_equal (carried, now);
}

/* Every part of the delta in @rel as superblock @file lists it. */
static gboolean
parts_current (int repo_dfd, const char *rel, GBytes *file, char **why, GCancellable *cancellable)
{
  int dfd = openat (repo_dfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return stale (why, "not there");
  g_autoptr (GError) local = NULL;
  gboolean ok = dfi_delta_parts_whole (dfd, file, cancellable, &local);
  close (dfd);
  return ok || stale (why, "%s", local->message);
}

static gboolean
native_current (OstreeRepo *repo, int repo_dfd, const char *rel, gboolean indexed, const DfGenerateOptions *opts,
                const char *from, const char *to, GPtrArray *signers, char **why, GCancellable *cancellable)
{
  g_autoptr (GBytes) file = read_signed (repo_dfd, rel, DF_SUPERBLOCK_MAX, signers, why);
  if (file == NULL)
    return FALSE;
  if (indexed && !dfi_gen_index_lists (repo_dfd, from, to, file))
    return stale (why, "the index does not list this superblock");
  g_autoptr (GError) local = NULL;
  g_autoptr (DfSuperblock) sb = dfi_superblock_parse (file, &local);
  if (sb == NULL)
    return stale (why, "its superblock: %s", local->message);
  if (strcmp (sb->from_hex, from ? from : "") != 0 || strcmp (sb->to_hex, to) != 0)
    return stale (why, "its superblock names other commits");
  g_autoptr (GBytes) meta = commitmeta_now (repo, to);
  if (!same_commitmeta (sb->commitmeta, meta))
    return stale (why, "the commit's detached metadata (its signatures) changed since");
  gint32 level = 0;
  guint64 part_size = 0;
  guint32 variants = G_MAXUINT32;
  if (sb->metadata == NULL || !g_variant_lookup (sb->metadata, "deltafetch.level", "i", &level)
      || !g_variant_lookup (sb->metadata, "deltafetch.part-size", "t", &part_size)
      || !g_variant_lookup (sb->metadata, "deltafetch.variants", "u", &variants))
    return stale (why, "made by an older generator");
  if (level != opts->level || part_size != opts->part_size || variants != (guint32)opts->variants)
    return stale (why, "made with other options (level %d, part size %" G_GUINT64_FORMAT ", variants %u)", level,
                  part_size, variants);
  return parts_current (repo_dfd, rel, file, why, cancellable);
}

static gboolean
stock_current (OstreeRepo *repo, const char *from, const char *to, GPtrArray *signers, char **why,
               GCancellable *cancellable)
{
  int repo_dfd = ostree_repo_get_dfd (repo);
  g_autofree char *rel = dfi_stock_delta_relpath (from, to);
  g_autoptr (GBytes) file = read_signed (repo_dfd, rel, DF_STOCK_SUPERBLOCK_MAX, signers, why);
  if (file == NULL)
    return FALSE;
  g_autoptr (GError) local = NULL;
  g_autoptr (DfStockSuperblock) sb = dfi_stock_superblock_parse (file, &local);
  if (sb == NULL)
    return stale (why, "its superblock: %s", local->message);
  if (strcmp (sb->from_hex, from ? from : "") != 0 || strcmp (sb->to_hex, to) != 0)
    return stale (why, "its superblock names other commits");
  g_autoptr (GBytes) meta = commitmeta_now (repo, to);
  g_autoptr (GVariant) carried_v = sb->commitmeta ? g_variant_get_normal_form (sb->commitmeta) : NULL;
  g_autoptr (GBytes) carried = carried_v ? g_variant_get_data_as_bytes (carried_v) : NULL;
  if (!same_commitmeta (carried, meta))
    return stale (why, "the commit's detached metadata (its signatures) changed since");
  return parts_current (repo_dfd, rel, file, why, cancellable);
}

gboolean
dfi_gen_delta_current (OstreeRepo *repo, const DfGenerateOptions *opts, const char *from, const char *to,
                       GPtrArray *signers, char **why, GCancellable *cancellable)
{
  if (opts->format == DF_DELTA_FORMAT_OSTREE)
    return stock_current (repo, from, to, signers, why, cancellable);
  if (opts->out_dir)
    return native_current (repo, AT_FDCWD, opts->out_dir, FALSE, opts, from, to, signers, why, cancellable);
  g_autofree char *rel = dfi_native_delta_relpath (from, to);
  return native_current (repo, ostree_repo_get_dfd (repo), rel, TRUE, opts, from, to, signers, why, cancellable);
}
