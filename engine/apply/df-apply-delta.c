/* A delta directory's superblock read once, and the delta applied from a
 * part source: the native one through a session fed the parts in file
 * order, the stock one through the stock applier. */
#include "df-apply-delta.h"

#include <sys/stat.h>

#include "df-apply-policy.h"
#include "df-apply-session.h"
#include "df-apply-stock.h"

gboolean
dfi_delta_open (int dfd, const DfApplyOptions *opts, DfDelta *out, GError **error)
{
  memset (out, 0, sizeof *out);
  g_auto (DfSignaturePolicy) policy = { 0 };
  if (!dfi_apply_signature_policy (opts, &policy, error))
    return FALSE;
  g_autoptr (GBytes) file = dfi_apply_read_superblock (dfd, "superblock", opts, error);
  if (file == NULL)
    return FALSE;
  /* A delta written by `ostree static-delta generate` runs through the
   * stock interpreter, with the same trust rules. The parsed forms keep
   * nothing of the file. */
  if (dfi_stock_superblock_sniff (file))
    out->stock = dfi_stock_superblock_parse_full (file, &policy, dfi_apply_usable_memory (opts), error);
  else
    out->native = dfi_superblock_parse_full (file, &policy, dfi_apply_usable_memory (opts), error);
  return out->stock != NULL || out->native != NULL;
}

void
dfi_delta_clear (DfDelta *d)
{
  g_clear_pointer (&d->native, dfi_superblock_free);
  g_clear_pointer (&d->stock, dfi_stock_superblock_free);
}

const DfSignedFile *
dfi_delta_file (const DfDelta *d)
{
  return d->native ? &d->native->file : &d->stock->file;
}

const char *
dfi_delta_from (const DfDelta *d)
{
  if (d->native)
    return d->native->has_from ? d->native->from_hex : NULL;
  return d->stock->has_from ? d->stock->from_hex : NULL;
}

const char *
dfi_delta_to (const DfDelta *d)
{
  return d->native ? d->native->to_hex : d->stock->to_hex;
}

/* Whether a delta directory holds every alternative part, at its size:
 * then a rebuild would spend the CPU to save bytes that do not move. */
static gboolean
plain_at_hand (const DfSuperblock *sb, const DfPartSource *src)
{
  if (src->wait != NULL)
    return FALSE;
  for (guint i = 0; i < sb->n_parts; i++)
    {
      if (sb->parts[i].kind != DF_PART_KIND_ALTERNATIVE)
        continue;
      char name[16];
      g_snprintf (name, sizeof name, "%u", i);
      struct stat st;
      if (fstatat (src->dfd, name, &st, 0) < 0 || !S_ISREG (st.st_mode)
          || (guint64)st.st_size != sb->parts[i].compressed_size)
        return FALSE;
    }
  return TRUE;
}

/* Hands the native delta's parts to a session, in file order (the session
 * accepts any order), each once @src has it. */
static gboolean
apply_native (OstreeRepo *repo, DfSuperblock *sb, const DfPartSource *src, const DfApplyOptions *opts_in,
              DfApplyResult *result, GCancellable *cancellable, GError **error)
{
  /* The copy outlives the session, which keeps a pointer to it. */
  g_autoptr (DfApplyOptions) opts = dfi_apply_options_copy (opts_in);
  opts->plain_at_hand = plain_at_hand (sb, src);
  g_autoptr (DfApplySession) s = dfi_apply_session_new (repo, sb, opts, cancellable, error);
  if (s == NULL)
    return FALSE;
  sb = (DfSuperblock *)dfi_apply_session_get_superblock (s);
  /* What the delta declares it will write must fit before a byte is: a
   * small delta can declare gigabytes. */
  guint64 need = 0;
  for (guint i = 0; i < sb->n_parts; i++)
    if (dfi_apply_session_part_needed (s, i))
      need += dfi_part_output (&sb->parts[i]);
  if (!dfi_check_free_space (repo, ostree_repo_get_dfd (repo), need, error))
    return FALSE;
  for (guint i = 0; i < sb->n_parts; i++)
    {
      /* Alternatives are handed over too: a rebuild that fails falls back
       * on them (the session skips those it does not need). */
      if (!dfi_apply_session_part_needed (s, i) && sb->parts[i].kind != DF_PART_KIND_ALTERNATIVE)
        continue;
      char name[16];
      g_snprintf (name, sizeof name, "%u", i);
      GError *local = NULL;
      if ((src->wait && !src->wait (i, src->data, &local))
          || !dfi_apply_session_add_part (s, i, src->dfd, name, &local))
        {
          dfi_apply_session_abort (s, local);
          g_propagate_error (error, local);
          return FALSE;
        }
    }
  return dfi_apply_session_finish (s, result, error);
}

gboolean
dfi_apply_delta (OstreeRepo *repo, DfDelta *d, const DfPartSource *src, const DfApplyOptions *opts,
                 DfApplyResult *result, GCancellable *cancellable, GError **error)
{
  DfApplyResult local = { 0 };
  DfApplyResult *r = result ? result : &local;
  memset (r, 0, sizeof *r);
  if (d->stock)
    return dfi_apply_stock (repo, d->stock, src, opts, r, cancellable, error);
  return apply_native (repo, g_steal_pointer (&d->native), src, opts, r, cancellable, error);
}
