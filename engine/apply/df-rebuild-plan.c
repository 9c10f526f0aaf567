#include "df-rebuild-plan.h"

#include "df-objset.h"
#include "df-part.h"
#include "df-rebuild.h"

struct _DfRebuildPlan
{
  const DfSuperblock *sb;
  guint8 *used;      /* per part: a rebuild part this device runs */
  guint8 *done;      /* per part */
  guint *deps_left;  /* per part: dependencies not done (rebuild parts) */
  GPtrArray **dependents; /* per content part: rebuild parts waiting on it (GUINT_TO_POINTER) */
  gpointer *held;    /* per part: its task, waiting */
  guint n_used, rebuilds_left;
  const char *unused_reason;
  DfObjSet *rebuilt_by; /* object → its rebuild part + 1 */
  DfObjSet *has_alt;    /* objects with alternative entries */
  DfObjSet *fell_back;  /* objects whose rebuild failed */
};

/* Beyond a worker's part buffers: the encoders and the rebuild's own. */
static guint64
rebuild_need (const DfPart *p)
{
  return p->rebuild_memory + DF_REBUILD_BUFFERS;
}

static gboolean
all_have_alt (const DfRebuildPlan *p, const DfPart *part)
{
  for (guint j = 0; j < part->n_entries; j++)
    if (!dfi_objset_contains (p->has_alt, part->entries[j].objtype, part->entries[j].checksum))
      return FALSE;
  return TRUE;
}

DfRebuildPlan *
dfi_rebuild_plan_new (const DfSuperblock *sb, guint64 room, const char *plain, gboolean never_rebuild, guint64 *extra,
                      GError **error)
{
  g_autoptr (DfRebuildPlan) p = g_new0 (DfRebuildPlan, 1);
  guint n = MAX (sb->n_parts, 1);
  p->sb = sb;
  p->used = g_new0 (guint8, n);
  p->done = g_new0 (guint8, n);
  p->deps_left = g_new0 (guint, n);
  p->dependents = g_new0 (GPtrArray *, n);
  p->held = g_new0 (gpointer, n);
  p->rebuilt_by = dfi_objset_new (NULL);
  p->has_alt = dfi_objset_new (NULL);
  p->fell_back = dfi_objset_new (NULL);
  for (guint i = 0; i < sb->n_parts; i++)
    {
      const DfPart *part = &sb->parts[i];
      for (guint j = 0; j < part->n_entries; j++)
        if (part->kind == DF_PART_KIND_REBUILD)
          dfi_objset_add (p->rebuilt_by, part->entries[j].objtype, part->entries[j].checksum, GUINT_TO_POINTER (i + 1));
        else if (part->kind == DF_PART_KIND_ALTERNATIVE)
          dfi_objset_add (p->has_alt, part->entries[j].objtype, part->entries[j].checksum, NULL);
    }
  guint64 raised = 0;
  for (guint i = 0; i < sb->n_parts; i++)
    {
      const DfPart *part = &sb->parts[i];
      if (part->kind != DF_PART_KIND_REBUILD)
        continue;
      const char *why = NULL;
      gboolean lib_ok = FALSE;
      if (plain != NULL && all_have_alt (p, part))
        why = plain;
      else if (never_rebuild)
        why = "rebuilding is turned off";
      else if ((lib_ok = dfi_rebuild_libraries_match (part->libraries, &why)) && rebuild_need (part) <= room)
        {
          p->used[i] = TRUE;
          p->n_used++;
          raised = MAX (raised, rebuild_need (part));
          continue;
        }
      else if (lib_ok)
        why = "rebuilding needs more memory than the budget allows";
      if (p->unused_reason == NULL)
        p->unused_reason = why;
      for (guint j = 0; j < part->n_entries; j++)
        if (!dfi_objset_contains (p->has_alt, part->entries[j].objtype, part->entries[j].checksum))
          {
            char hex[65];
            dfi_hex (part->entries[j].checksum, hex);
            if (never_rebuild)
              dfi_throw (error, DF_ERROR_INVALID_ARGUMENT,
                         "cannot rebuild object %s (%s) and the delta carries no plain encoding of it", hex, why);
            else if (lib_ok)
              dfi_throw (error, DF_ERROR_INVALID_ARGUMENT,
                         "cannot rebuild object %s (%s: %" G_GUINT64_FORMAT " MiB) and the delta carries no plain "
                         "encoding of it",
                         hex, why, (rebuild_need (part) + DF_MIB - 1) / DF_MIB);
            else
              dfi_throw (error, DF_ERROR_MISSING_BASE,
                         "cannot rebuild object %s (%s) and the delta carries no plain encoding of it", hex, why);
            return NULL;
          }
    }
  *extra = raised;
  return g_steal_pointer (&p);
}

void
dfi_rebuild_plan_free (DfRebuildPlan *p)
{
  if (p == NULL)
    return;
  for (guint i = 0; i < p->sb->n_parts; i++)
    if (p->dependents[i])
      g_ptr_array_unref (p->dependents[i]);
  g_free (p->dependents);
  g_free (p->used);
  g_free (p->done);
  g_free (p->deps_left);
  g_free (p->held);
  dfi_objset_free (p->rebuilt_by);
  dfi_objset_free (p->has_alt);
  dfi_objset_free (p->fell_back);
  g_free (p);
}

guint64
dfi_rebuild_plan_memory_size (const DfRebuildPlan *p)
{
  return p->sb->n_parts * (2 + sizeof (guint) + 2 * sizeof (gpointer)) + dfi_objset_memory (p->rebuilt_by)
         + dfi_objset_memory (p->has_alt) + (guint64)dfi_objset_size (p->has_alt) * DF_OBJSET_ENTRY_COST;
}

guint
dfi_rebuild_plan_n_used (const DfRebuildPlan *p)
{
  return p->n_used;
}

const char *
dfi_rebuild_plan_unused_reason (const DfRebuildPlan *p)
{
  return p->unused_reason;
}

guint64
dfi_rebuild_plan_memory (const DfRebuildPlan *p, guint index)
{
  return p->sb->parts[index].rebuild_memory;
}

gboolean
dfi_rebuild_plan_part_wanted (const DfRebuildPlan *p, guint index)
{
  const DfPart *part = &p->sb->parts[index];
  if (part->kind == DF_PART_KIND_REBUILD)
    return p->used[index];
  if (part->kind != DF_PART_KIND_ALTERNATIVE)
    return TRUE;
  for (guint j = 0; j < part->n_entries; j++)
    {
      const DfEntry *e = &part->entries[j];
      guint by = GPOINTER_TO_UINT (dfi_objset_lookup (p->rebuilt_by, e->objtype, e->checksum));
      if (by == 0 || !p->used[by - 1] || dfi_objset_contains (p->fell_back, e->objtype, e->checksum))
        return TRUE;
    }
  return FALSE;
}

void
dfi_rebuild_plan_start (DfRebuildPlan *p, gboolean (*satisfied) (gpointer data, guint index), gpointer data)
{
  for (guint i = 0; i < p->sb->n_parts; i++)
    {
      const DfPart *part = &p->sb->parts[i];
      if (!p->used[i])
        continue;
      if (satisfied (data, i))
        {
          p->done[i] = TRUE;
          continue;
        }
      p->rebuilds_left++;
      for (guint k = 0; k < part->n_deps; k++)
        {
          guint d = part->deps[k];
          if (!p->done[d] && satisfied (data, d))
            p->done[d] = TRUE;
          if (p->done[d])
            continue;
          p->deps_left[i]++;
          if (p->dependents[d] == NULL)
            p->dependents[d] = g_ptr_array_new ();
          g_ptr_array_add (p->dependents[d], GUINT_TO_POINTER (i));
        }
    }
}

static gboolean
ready (const DfRebuildPlan *p, guint index)
{
  switch (p->sb->parts[index].kind)
    {
    case DF_PART_KIND_REBUILD:
      return p->deps_left[index] == 0;
    case DF_PART_KIND_ALTERNATIVE:
      return p->rebuilds_left == 0;
    default:
      return TRUE;
    }
}

gboolean
dfi_rebuild_plan_offer (DfRebuildPlan *p, guint index, gpointer task)
{
  if (ready (p, index))
    return TRUE;
  p->held[index] = task;
  return FALSE;
}

static void
release (DfRebuildPlan *p, guint index, GPtrArray *released)
{
  if (p->held[index] == NULL)
    return;
  g_ptr_array_add (released, p->held[index]);
  p->held[index] = NULL;
}

void
dfi_rebuild_plan_done (DfRebuildPlan *p, guint index, GPtrArray *released)
{
  if (p->done[index])
    return;
  p->done[index] = TRUE;
  const DfPart *part = &p->sb->parts[index];
  if (p->dependents[index])
    for (guint k = 0; k < p->dependents[index]->len; k++)
      {
        guint r = GPOINTER_TO_UINT (p->dependents[index]->pdata[k]);
        if (--p->deps_left[r] == 0)
          release (p, r, released);
      }
  if (part->kind == DF_PART_KIND_REBUILD && p->used[index] && p->rebuilds_left > 0 && --p->rebuilds_left == 0)
    for (guint i = 0; i < p->sb->n_parts; i++)
      if (p->sb->parts[i].kind == DF_PART_KIND_ALTERNATIVE)
        release (p, i, released);
}

guint
dfi_rebuild_plan_release (DfRebuildPlan *p, GPtrArray *released)
{
  guint before = released->len;
  for (guint i = 0; i < p->sb->n_parts; i++)
    if (p->sb->parts[i].kind == DF_PART_KIND_REBUILD)
      {
        p->deps_left[i] = 0;
        release (p, i, released);
      }
  if (released->len > before)
    return released->len - before;
  p->rebuilds_left = 0;
  for (guint i = 0; i < p->sb->n_parts; i++)
    release (p, i, released);
  return released->len - before;
}

gboolean
dfi_rebuild_plan_fell_back (DfRebuildPlan *p, const guint8 checksum[DF_SHA256_LEN])
{
  dfi_objset_add (p->fell_back, OSTREE_OBJECT_TYPE_FILE, checksum, NULL);
  return dfi_objset_contains (p->has_alt, OSTREE_OBJECT_TYPE_FILE, checksum);
}

gboolean
dfi_rebuild_plan_failed_before (const DfRebuildPlan *p, const guint8 checksum[DF_SHA256_LEN])
{
  return dfi_objset_contains (p->fell_back, OSTREE_OBJECT_TYPE_FILE, checksum);
}

void
dfi_rebuild_plan_steal_held (DfRebuildPlan *p, GPtrArray *out)
{
  for (guint i = 0; i < p->sb->n_parts; i++)
    release (p, i, out);
}
