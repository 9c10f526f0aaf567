/* The only room that writes into a repository's objects. Every object is
 * hashed before libostree writes it (content with OpenSSL over OSTree's
 * file header and bytes); a match is written without libostree hashing it
 * again, anything else goes through libostree's verifying write, which
 * refuses it before it can enter objects/ (writes land in the
 * transaction's staging directory first). */
#pragma once

#include "df-part.h"

typedef struct _DfObjectWriter DfObjectWriter;

/* @state_dir: a directory (relative to the repo's dfd) for staging objects
 * that are split across parts; it survives a crash and is reused. */
DfObjectWriter *dfi_object_writer_new (OstreeRepo *repo, const char *state_dir, GError **error);
void dfi_object_writer_free (DfObjectWriter *w);
/* In repositories that keep content compressed (archive mode), patches
 * read their sources from inflated copies; inflating may come to at most
 * @bytes in all (default: no limit). */
void dfi_object_writer_set_inflate_budget (DfObjectWriter *w, guint64 bytes);
/* Ends the early-writeback thread; call before committing the transaction. */
void dfi_object_writer_stop_writeback (DfObjectWriter *w);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (DfObjectWriter, dfi_object_writer_free)

/* Declares that object @checksum (@size content bytes) arrives in @n_chunks
 * pieces, @n_done of which are staged already (resume). */
void dfi_object_writer_expect_split (DfObjectWriter *w, const guint8 checksum[DF_SHA256_LEN], guint64 size,
                                     guint n_chunks, guint n_done);

/* Writes split objects whose every chunk was staged by an earlier run that
 * stopped before writing the object. */
gboolean dfi_object_writer_finish_splits (DfObjectWriter *w, GCancellable *c, GError **error);

/* TRUE when the entry's bytes are already where they need to be: the
 * object is in the repository (or this transaction), or the chunk is
 * staged. */
gboolean dfi_object_writer_entry_done (DfObjectWriter *w, const DfEntry *e);

/* Writes a verified-by-hash metadata object. */
gboolean dfi_object_writer_metadata (DfObjectWriter *w, OstreeObjectType type, const guint8 checksum[DF_SHA256_LEN],
                                     GBytes *data, GCancellable *c, GError **error);

/* Split chunks written by one part, marked done together. */
typedef struct _DfWriteBatch DfWriteBatch;
DfWriteBatch *dfi_write_batch_new (void);
void dfi_write_batch_free (DfWriteBatch *b);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (DfWriteBatch, dfi_write_batch_free)

/* Reconstructs entry @e from its bytes in the part's sections (read
 * through @r, entries in order) and writes it: whole objects go straight
 * into the repository; a chunk of a split object is staged in @batch. */
gboolean dfi_object_writer_entry (DfObjectWriter *w, const DfEntry *e, DfPartReader *r, DfWriteBatch *batch,
                                  GCancellable *c, GError **error);

/* Writes a whole content object whose bytes come from @body (@size bytes).
 * With @verified the caller has hashed them against @checksum already and
 * libostree does not hash again; otherwise libostree hashes and refuses a
 * mismatch (DF_ERROR_CORRUPT), so nothing unverified enters the repository. */
gboolean dfi_object_writer_content (DfObjectWriter *w, const guint8 checksum[DF_SHA256_LEN], const DfContentHeader *h,
                                    GInputStream *body, guint64 size, gboolean verified, GCancellable *c,
                                    GError **error);

/* Rebuilds the object of DF_ENCODING_REBUILD entry @e from @data (its
 * header and program, @len bytes: the entry's raw bytes) into a staged
 * unnamed file, hashing it as it goes, and writes it when the hash
 * matches. The program's object pieces are read from the repository
 * (objects written earlier in this transaction included). Its encoders
 * may take at most @memory_limit. Errors: the program's
 * (dfi_rebuild_run()), and DF_ERROR_CORRUPT when the result does not hash
 * to the checksum: nothing is written then, and the caller may use the
 * object's plain encoding instead. */
gboolean dfi_object_writer_rebuild (DfObjectWriter *w, const DfEntry *e, const guint8 *data, gsize len,
                                    guint64 memory_limit, GCancellable *c, GError **error);

/* Records that rebuilding @checksum failed, in the staging area (kept
 * until the delta is applied): a later run takes its plain encoding. */
void dfi_object_writer_note_rebuild_failed (DfObjectWriter *w, const guint8 checksum[DF_SHA256_LEN]);
/* The checksums recorded so far (32 bytes each), at most @max. */
GPtrArray *dfi_object_writer_rebuild_failures (DfObjectWriter *w, guint max);

/* Moves @r past entry @e, already applied, without decoding it. */
gboolean dfi_object_writer_skip_entry (const DfEntry *e, DfPartReader *r, GError **error);

/* Marks the chunks staged through @batch done, and writes every
 * split object whose last chunk this was. Call once per part. */
gboolean dfi_object_writer_commit_batch (DfObjectWriter *w, DfWriteBatch *batch, GCancellable *c, GError **error);

/* The end of every apply, once every object is in and the commit is
 * known to be complete: writes the commit's detached metadata
 * (@commitmeta, NULL: none) and the commit object (@commit_bytes, checksum
 * @to_hex), points @ref (NULL: none) at it, stops the early writeback and
 * commits the repository's transaction, the commit marked partial until
 * every object is in objects/. Then *@objects and *@bytes: what was
 * written. libostree's errors. */
gboolean dfi_object_writer_commit (DfObjectWriter *w, const char *to_hex, GBytes *commit_bytes, GVariant *commitmeta,
                                   const char *ref, guint64 *objects, guint64 *bytes, GCancellable *c, GError **error);

/* Objects and content bytes written so far. */
void dfi_object_writer_get_stats (DfObjectWriter *w, guint64 *objects, guint64 *bytes);

/* Removes the staging area once the transaction is committed. */
gboolean dfi_object_writer_cleanup (DfObjectWriter *w, GError **error);
