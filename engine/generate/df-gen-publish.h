/* Publishing a delta: where the generator writes it, and the last phase of
 * df_generate() that makes it whole — the superblock, its signature, the
 * rename into place and the repository's delta index. */
#pragma once

#include "df-common.h"
#include "df-sign.h"

typedef struct _DfGenerator DfGenerator;

/* Opens g->out_dfd: the options' out_dir (created; refused if it already
 * holds a superblock), or else a fresh temporary directory next to the
 * delta's place in g->repo (g->final_rel, g->tmp_rel), @from (NULL: from
 * scratch) to @to being full checksums. Whatever the result, release with
 * dfi_gen_output_close(). */
gboolean dfi_gen_output_open (DfGenerator *g, const char *from, const char *to, GError **error);

/* Once every part is written: builds the superblock from g->parts (taken
 * over) and g->rebuilds, with the commit object @commitv and @to's
 * detached metadata; checks it with apply's parser (a delta beyond the
 * format's limits fails here); signs it with each of @signers (may be NULL); writes
 * and syncs it; and, in the repository, renames the delta into place and
 * updates deltafetch/v1/indexes/<to>.index. @out_dir_path (may be NULL):
 * the delta's directory, transfer full. */
gboolean dfi_gen_publish (DfGenerator *g, const char *from, const char *to, GVariant *commitv, GPtrArray *signers,
                          char **out_dir_path, GCancellable *cancellable, GError **error);

/* Closes g->out_dfd and removes a temporary directory not yet renamed
 * (after an error); safe to call on an output never opened. */
void dfi_gen_output_close (DfGenerator *g);

/* Lists @superblock (the file's bytes) as the delta from @from to @to in
 * @to's native index, and rewrites the stats file, signed by @signers. */
gboolean dfi_gen_index_set (int repo_dfd, const char *from, const char *to, GBytes *superblock, GPtrArray *signers,
                            GError **error);
/* Copies file @src_rel of directory @src to @rel of @dst (its directories
 * made) through a hidden temporary name in the same directory, synced,
 * then renamed into place (df-gen-mirror.c). */
gboolean dfi_copy_file_at (int src, const char *src_rel, int dst, const char *rel, GCancellable *cancellable,
                           GError **error);
/* Removes the entry of @from (NULL: from scratch) from the native index of
 * @to (the index goes with its last entry) and rewrites the stats file,
 * signed by @signers (removed with the index). */
gboolean dfi_gen_index_remove (int repo_dfd, const char *from, const char *to, GPtrArray *signers, GError **error);
/* Bytes of the regular files in directory @rel of @dfd (a delta: its
 * superblock and parts), and how many in *@files (may be NULL). */
guint64 dfi_gen_dir_bytes (int dfd, const char *rel, guint *files);
/* TRUE when @to's native index has an entry for @from (NULL: from
 * scratch), and with @superblock (the file's bytes) when it lists that
 * very superblock (SHA-256 and size). */
gboolean dfi_gen_index_lists (int repo_dfd, const char *from, const char *to, GBytes *superblock);
/* FALSE when @to's stats file is signed and @signers is empty: removing a
 * delta would leave it unsigned (call before changing anything). */
gboolean dfi_gen_stats_check_keys (int repo_dfd, const char *to, GPtrArray *signers, GError **error);
