#include "df-rebuild.h"

#include <zlib.h>

#include "df-deflate.h"

/* ---------------------------------------------------------------------- */
/* Building                                                                 */

struct _DfRebuildBuilder
{
  GVariantBuilder segments;
  GVariantBuilder pieces;
  GByteArray *literals;
  /* The segment being built */
  gboolean open;
  guint8 kind;
  guint64 out_size, content;
  guint32 n_pieces;
  GBytes *data;
  guint64 pending_literal; /* a literal piece not yet added (merged) */
  guint64 total;
  guint8 version;
};

DfRebuildBuilder *
dfi_rebuild_builder_new (void)
{
  DfRebuildBuilder *b = g_new0 (DfRebuildBuilder, 1);
  g_variant_builder_init (&b->segments, G_VARIANT_TYPE ("a(yttuay)"));
  g_variant_builder_init (&b->pieces, G_VARIANT_TYPE ("a(yayt)"));
  b->literals = g_byte_array_new ();
  b->version = DF_REBUILD_PROGRAM_VERSION;
  return b;
}

void
dfi_rebuild_builder_free (DfRebuildBuilder *b)
{
  if (b == NULL)
    return;
  g_variant_builder_clear (&b->segments);
  g_variant_builder_clear (&b->pieces);
  g_byte_array_unref (b->literals);
  g_clear_pointer (&b->data, g_bytes_unref);
  g_free (b);
}

static GVariant *
bytes_variant (const guint8 *data, gsize len)
{
  return g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, data, len, 1);
}

static void
flush_literal (DfRebuildBuilder *b)
{
  if (b->pending_literal == 0)
    return;
  g_variant_builder_add (&b->pieces, "(y@ayt)", DF_REBUILD_PIECE_LITERAL, bytes_variant (NULL, 0),
                         GUINT64_TO_LE (b->pending_literal));
  b->n_pieces++;
  b->pending_literal = 0;
}

static void
close_segment (DfRebuildBuilder *b)
{
  if (!b->open)
    return;
  flush_literal (b);
  gsize len = 0;
  const guint8 *d = b->data ? g_bytes_get_data (b->data, &len) : NULL;
  g_variant_builder_add (&b->segments, "(yttu@ay)", b->kind, GUINT64_TO_LE (b->out_size), GUINT64_TO_LE (b->content),
                         GUINT32_TO_LE (b->n_pieces), bytes_variant (d, len));
  g_clear_pointer (&b->data, g_bytes_unref);
  b->open = FALSE;
}

void
dfi_rebuild_builder_segment (DfRebuildBuilder *b, DfRebuildSegmentKind kind, guint64 out_size, GBytes *data)
{
  close_segment (b);
  b->open = TRUE;
  b->kind = kind;
  b->out_size = out_size;
  b->content = 0;
  b->n_pieces = 0;
  b->data = data ? g_bytes_ref (data) : NULL;
}

void
dfi_rebuild_builder_literal (DfRebuildBuilder *b, const guint8 *data, gsize len)
{
  g_return_if_fail (b->open);
  if (len == 0)
    return;
  g_byte_array_append (b->literals, data, len);
  b->pending_literal += len;
  b->content += len;
  b->total += len;
}

void
dfi_rebuild_builder_object (DfRebuildBuilder *b, const guint8 checksum[DF_SHA256_LEN], guint64 length)
{
  g_return_if_fail (b->open && length > 0);
  flush_literal (b);
  g_variant_builder_add (&b->pieces, "(y@ayt)", DF_REBUILD_PIECE_OBJECT, bytes_variant (checksum, DF_SHA256_LEN),
                         GUINT64_TO_LE (length));
  b->n_pieces++;
  b->content += length;
  b->total += length;
}

void
dfi_rebuild_builder_patch (DfRebuildBuilder *b, const guint8 checksum[DF_SHA256_LEN], guint64 size, guint64 source_size,
                           guint64 length, const guint8 *frame, gsize frame_len)
{
  g_return_if_fail (b->open && length > 0);
  flush_literal (b);
  guint8 id[DF_SHA256_LEN + 16];
  guint64 le_size = GUINT64_TO_LE (size), le_source = GUINT64_TO_LE (source_size);
  memcpy (id, checksum, DF_SHA256_LEN);
  memcpy (id + DF_SHA256_LEN, &le_size, 8);
  memcpy (id + DF_SHA256_LEN + 8, &le_source, 8);
  g_variant_builder_add (&b->pieces, "(y@ayt)", DF_REBUILD_PIECE_PATCH, bytes_variant (id, sizeof id),
                         GUINT64_TO_LE (length));
  g_byte_array_append (b->literals, frame, frame_len);
  b->n_pieces++;
  b->content += length;
  b->total += length;
  b->version = DF_REBUILD_PROGRAM_VERSION_PATCH;
}

guint64
dfi_rebuild_builder_literal_bytes (const DfRebuildBuilder *b)
{
  return b->literals->len;
}

GBytes *
dfi_rebuild_builder_end (DfRebuildBuilder *b, guint64 *content_total)
{
  close_segment (b);
  g_autoptr (GVariant) v = g_variant_ref_sink (
      g_variant_new ("(y@a(yttuay)@a(yayt)@ay)", b->version, g_variant_builder_end (&b->segments),
                     g_variant_builder_end (&b->pieces), bytes_variant (b->literals->data, b->literals->len)));
  g_variant_builder_init (&b->segments, G_VARIANT_TYPE ("a(yttuay)"));
  g_variant_builder_init (&b->pieces, G_VARIANT_TYPE ("a(yayt)"));
  g_autoptr (GVariant) normal = g_variant_get_normal_form (v);
  if (content_total)
    *content_total = b->total;
  return g_variant_get_data_as_bytes (normal);
}

/* ---------------------------------------------------------------------- */
/* Parsing                                                                  */

void
dfi_rebuild_program_clear (DfRebuildProgram *p)
{
  g_clear_pointer (&p->segments, g_variant_unref);
  g_clear_pointer (&p->pieces, g_variant_unref);
  g_clear_pointer (&p->v, g_variant_unref);
  for (guint i = 0; i < p->n_libraries; i++)
    g_free (p->libraries[i]);
  memset (p, 0, sizeof *p);
}

typedef struct
{
  guint8 kind;
  guint64 out_size, content;
  guint32 n_pieces;
  const guint8 *data;
  gsize data_len;
} Segment;

static void
get_segment (const DfRebuildProgram *p, guint i, Segment *s)
{
  g_autoptr (GVariant) sv = g_variant_get_child_value (p->segments, i);
  g_autoptr (GVariant) data = NULL;
  guint64 out, content;
  guint32 n;
  g_variant_get (sv, "(yttu@ay)", &s->kind, &out, &content, &n, &data);
  s->out_size = GUINT64_FROM_LE (out);
  s->content = GUINT64_FROM_LE (content);
  s->n_pieces = GUINT32_FROM_LE (n);
  /* The data lives in the program, which outlives the segment. */
  s->data = g_variant_get_fixed_array (data, &s->data_len, 1);
}

typedef struct
{
  guint8 kind;
  const guint8 *checksum; /* NULL for a literal */
  guint64 length;
  guint64 size, source_size; /* a patch's source object */
} Piece;

static gboolean
get_piece (const DfRebuildProgram *p, guint i, Piece *out)
{
  g_autoptr (GVariant) pv = g_variant_get_child_value (p->pieces, i);
  g_autoptr (GVariant) csum = NULL;
  guint64 len;
  g_variant_get (pv, "(y@ayt)", &out->kind, &csum, &len);
  out->length = GUINT64_FROM_LE (len);
  gsize n;
  const guint8 *c = g_variant_get_fixed_array (csum, &n, 1);
  if (out->length == 0)
    return FALSE;
  if (out->kind == DF_REBUILD_PIECE_LITERAL)
    {
      out->checksum = NULL;
      return n == 0;
    }
  out->checksum = c;
  if (out->kind == DF_REBUILD_PIECE_PATCH && n == DF_SHA256_LEN + 16)
    {
      memcpy (&out->size, c + DF_SHA256_LEN, 8);
      memcpy (&out->source_size, c + DF_SHA256_LEN + 8, 8);
      out->size = GUINT64_FROM_LE (out->size);
      out->source_size = GUINT64_FROM_LE (out->source_size);
      return out->size > 0 && out->size <= DF_REBUILD_OBJECT_MAX && out->source_size > 0
             && out->source_size <= DF_REBUILD_PATCH_SOURCE_MAX && out->length <= DF_REBUILD_PATCH_OUTPUT_MAX;
    }
  return out->kind == DF_REBUILD_PIECE_OBJECT && n == DF_SHA256_LEN;
}

/* The patch frame of piece @pc at @at of the literals: its length, or 0
 * when it is not one zstd frame declaring the piece's length. */
static gsize
patch_frame (const DfRebuildProgram *p, gsize at, const Piece *pc)
{
  if (at > p->literals_len)
    return 0;
  size_t fs = ZSTD_findFrameCompressedSize (p->literals + at, p->literals_len - at);
  if (ZSTD_isError (fs) || ZSTD_getFrameContentSize (p->literals + at, fs) != pc->length)
    return 0;
  return fs;
}

static gboolean
add_library (DfRebuildProgram *p, const char *lib, GError **error)
{
  for (guint i = 0; i < p->n_libraries; i++)
    if (strcmp (p->libraries[i], lib) == 0)
      return TRUE;
  if (p->n_libraries + 1 >= G_N_ELEMENTS (p->libraries))
    return dfi_throw (error, DF_ERROR_INVALID_DELTA, "rebuild program: more than %u libraries",
                      (guint)G_N_ELEMENTS (p->libraries) - 1);
  p->libraries[p->n_libraries++] = g_strdup (lib);
  return TRUE;
}

#define BAD(...) (dfi_throw (error, DF_ERROR_INVALID_DELTA, "rebuild program: " __VA_ARGS__), FALSE)

static gboolean
check_segment (DfRebuildProgram *p, guint i, const Segment *s, GError **error)
{
  if (s->kind > DF_REBUILD_SEGMENT_LAST)
    return BAD ("segment %u has unknown kind %u", i, s->kind);
  if (s->out_size == 0)
    return BAD ("segment %u makes nothing", i);
  if (s->kind == DF_REBUILD_SEGMENT_PLAIN)
    {
      if (s->data_len != 0 || s->content != s->out_size)
        return BAD ("plain segment %u is not its content", i);
      return TRUE;
    }
  if (s->data_len == 0)
    return BAD ("segment %u has no recipe or reconstruction data", i);
  if (++p->n_encoders > DF_REBUILD_ENCODER_SEGMENTS_MAX)
    return BAD ("more than %u recipe or deflate segments", DF_REBUILD_ENCODER_SEGMENTS_MAX);
  if (s->kind == DF_REBUILD_SEGMENT_DEFLATE)
    {
      /* With a split table, one more lane is counted for each core a
       * rebuild may use (dfi_deflate_rebuild_lanes()). */
      gboolean split = dfi_deflate_recon_has_splits (s->data, s->data_len);
      if (split)
        p->deflate_lanes = DF_DEFLATE_LANES;
      p->memory = MAX (p->memory, (guint64)DF_DEFLATE_REBUILD_MEMORY
                                      + (split ? (DF_DEFLATE_LANES - 1) * (guint64)DF_DEFLATE_LANE_MEMORY : 0));
      return TRUE;
    }
  DfRecipe r;
  g_autoptr (GBytes) rb = g_bytes_new_static (s->data, s->data_len);
  guint64 mem;
  if (!dfi_recipe_parse (rb, &r, error) || !dfi_recipe_memory (&r, &mem, error))
    return (g_prefix_error (error, "rebuild program: segment %u: ", i), FALSE);
  if (r.content_size != s->content || r.stream_size != s->out_size)
    return BAD ("segment %u: its recipe is for %" G_GUINT64_FORMAT " -> %" G_GUINT64_FORMAT " bytes, not %" G_GUINT64_FORMAT
                " -> %" G_GUINT64_FORMAT,
                i, r.content_size, r.stream_size, s->content, s->out_size);
  p->memory = MAX (p->memory, mem);
  return add_library (p, r.library, error);
}

gboolean
dfi_rebuild_program_parse (GBytes *bytes, guint64 object_size, guint64 content_total, DfRebuildProgram *out,
                           GError **error)
{
  memset (out, 0, sizeof *out);
  g_auto (DfRebuildProgram) p = { 0 };
  p.v = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE (DF_REBUILD_PROGRAM_TYPE), bytes, FALSE));
  if (!g_variant_is_normal_form (p.v))
    return BAD ("not a normal-form GVariant");
  guint8 version;
  g_autoptr (GVariant) lit = NULL;
  g_variant_get (p.v, "(y@a(yttuay)@a(yayt)@ay)", &version, &p.segments, &p.pieces, &lit);
  if (version != DF_REBUILD_PROGRAM_VERSION && version != DF_REBUILD_PROGRAM_VERSION_PATCH)
    return BAD ("version %u is not supported", version);
  p.literals = g_variant_get_fixed_array (lit, &p.literals_len, 1);
  gsize n_seg = g_variant_n_children (p.segments), n_pieces = g_variant_n_children (p.pieces);
  if (n_seg == 0 || n_seg > DF_REBUILD_SEGMENTS_MAX || n_pieces > DF_REBUILD_PIECES_MAX)
    return BAD ("%zu segments and %zu pieces (limits 1..%u, %u)", n_seg, n_pieces, DF_REBUILD_SEGMENTS_MAX,
                DF_REBUILD_PIECES_MAX);
  p.n_segments = n_seg;
  p.n_pieces = n_pieces;
  p.object_size = object_size;
  p.content_total = content_total;
  guint64 out_sum = 0, content_sum = 0, literal_sum = 0, patch_memory = 0;
  guint piece = 0;
  for (guint i = 0; i < n_seg; i++)
    {
      Segment s;
      get_segment (&p, i, &s);
      if (!check_segment (&p, i, &s, error))
        return FALSE;
      if (!dfi_add_u64 (out_sum, s.out_size, &out_sum) || out_sum > object_size)
        return BAD ("segments make more than the object's %" G_GUINT64_FORMAT " bytes", object_size);
      if (s.n_pieces > n_pieces - piece)
        return BAD ("segment %u takes more pieces than there are", i);
      guint64 seg_content = 0;
      for (guint k = 0; k < s.n_pieces; k++, piece++)
        {
          Piece pc;
          if (!get_piece (&p, piece, &pc))
            return BAD ("piece %u is malformed", piece);
          if (!dfi_add_u64 (seg_content, pc.length, &seg_content) || seg_content > s.content)
            return BAD ("the pieces of segment %u exceed its content", i);
          if (pc.kind == DF_REBUILD_PIECE_LITERAL && !dfi_add_u64 (literal_sum, pc.length, &literal_sum))
            return BAD ("literals overflow");
          if (pc.kind == DF_REBUILD_PIECE_PATCH)
            {
              gsize fs = version == DF_REBUILD_PROGRAM_VERSION_PATCH ? patch_frame (&p, literal_sum, &pc) : 0;
              if (fs == 0)
                return BAD ("patch piece %u has no zstd frame of its %" G_GUINT64_FORMAT " bytes", piece, pc.length);
              if (++p.n_patches > DF_REBUILD_PATCH_PIECES_MAX)
                return BAD ("more than %u patch pieces", DF_REBUILD_PATCH_PIECES_MAX);
              literal_sum += fs;
              patch_memory = MAX (patch_memory, pc.source_size + pc.length + DF_REBUILD_PATCH_DECODERS);
            }
        }
      if (seg_content != s.content)
        return BAD ("the pieces of segment %u hold %" G_GUINT64_FORMAT " bytes, it declares %" G_GUINT64_FORMAT, i,
                    seg_content, s.content);
      if (!dfi_add_u64 (content_sum, s.content, &content_sum) || content_sum > content_total)
        return BAD ("content exceeds the %" G_GUINT64_FORMAT " bytes its entry declares", content_total);
    }
  if (piece != n_pieces || out_sum != object_size || content_sum != content_total || literal_sum != p.literals_len)
    return BAD ("sizes do not add up (pieces %u of %u, output %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
                ", content %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT ", literals %" G_GUINT64_FORMAT " of %zu)",
                piece, p.n_pieces, out_sum, object_size, content_sum, content_total, literal_sum, p.literals_len);
  /* Each lane reads its own patches. */
  p.memory += patch_memory * MAX (p.deflate_lanes, 1u);
  *out = p;
  memset (&p, 0, sizeof p);
  return TRUE;
}

/* ---------------------------------------------------------------------- */
/* Running                                                                  */

gboolean
dfi_rebuild_libraries_match (char *const *libraries, const char **why)
{
  const char *hook = g_getenv ("DF_TEST_REBUILD_LIBRARY");
  gboolean mismatch = hook && strcmp (hook, "mismatch") == 0;
  for (guint i = 0; libraries && libraries[i]; i++)
    {
      char have[DF_RECIPE_LIBRARY_MAX] = "";
      gboolean known = FALSE;
      for (DfRecipeCodec c = DF_RECIPE_CODEC_GZIP; c <= DF_RECIPE_CODEC_XZ && !known; c++)
        known = dfi_recipe_library_identity (c, have) && strcmp (have, libraries[i]) == 0;
      if (!known || mismatch)
        {
          *why = "a library it needs differs on this device";
          return FALSE;
        }
    }
  return TRUE;
}

GInputStream *
dfi_rebuild_open_from_repo (gpointer repo, const guint8 checksum[DF_SHA256_LEN], guint64 length,
                            GCancellable *cancellable, GError **error)
{
  char hex[65];
  dfi_hex (checksum, hex);
  g_autoptr (GInputStream) in = NULL;
  g_autoptr (GFileInfo) info = NULL;
  g_autoptr (GError) local = NULL;
  if (!ostree_repo_load_file (repo, hex, &in, &info, NULL, cancellable, &local))
    {
      if (g_error_matches (local, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
        dfi_throw (error, DF_ERROR_MISSING_BASE, "object %s, which the rebuild reads, is not in the repository", hex);
      else
        g_propagate_error (error, g_steal_pointer (&local));
      return NULL;
    }
  if (g_file_info_get_file_type (info) != G_FILE_TYPE_REGULAR || (guint64)g_file_info_get_size (info) != length)
    {
      dfi_throw (error, DF_ERROR_CORRUPT, "object %s is not a regular file of %" G_GUINT64_FORMAT " bytes", hex,
                 length);
      return NULL;
    }
  return g_steal_pointer (&in);
}

/* Reads up to @len bytes of @in; 0 at its end. */
static gssize
unpack_read (GInputStream *in, guint8 *buf, gsize len, GCancellable *cancellable, GError **error)
{
  gsize got = 0;
  if (!g_input_stream_read_all (in, buf, len, &got, cancellable, error))
    return -1;
  return (gssize)got;
}

static gboolean
unpack_gzip (GInputStream *in, guint8 *buf, gsize len, guint8 *out, gsize cap, gsize *made, GCancellable *cancellable,
             GError **error)
{
  z_stream z = { 0 };
  if (inflateInit2 (&z, 31) != Z_OK)
    return dfi_throw (error, DF_ERROR_FAILED, "inflateInit2 failed");
  gboolean ok = TRUE, in_member = TRUE;
  z.next_in = buf;
  z.avail_in = len;
  z.next_out = out;
  z.avail_out = cap;
  while (ok)
    {
      if (z.avail_in == 0)
        {
          gssize n = unpack_read (in, buf, DF_COPY_BUFFER, cancellable, error);
          if (n < 0)
            {
              ok = FALSE;
              break;
            }
          if (n == 0)
            {
              if (in_member)
                ok = dfi_throw (error, DF_ERROR_CORRUPT, "the gzip stream ends early");
              break;
            }
          z.next_in = buf;
          z.avail_in = (uInt)n;
        }
      if (!in_member)
        {
          /* Another member, or the end. */
          if (z.next_in[0] != 0x1f)
            {
              ok = dfi_throw (error, DF_ERROR_CORRUPT, "bytes after the gzip stream");
              break;
            }
          inflateReset (&z);
          in_member = TRUE;
        }
      int r = inflate (&z, Z_NO_FLUSH);
      if (r == Z_STREAM_END)
        in_member = FALSE;
      else if (r == Z_BUF_ERROR && z.avail_out == 0)
        ok = dfi_throw (error, DF_ERROR_CORRUPT, "the gzip stream decompresses to more than %zu bytes", cap);
      else if (r != Z_OK)
        ok = dfi_throw (error, DF_ERROR_CORRUPT, "inflate: %s", z.msg ? z.msg : "error");
    }
  *made = cap - z.avail_out;
  inflateEnd (&z);
  return ok;
}

static gboolean
unpack_zstd (GInputStream *in, guint8 *buf, gsize len, guint8 *out, gsize cap, gsize *made, GCancellable *cancellable,
             GError **error)
{
  g_autoptr (ZSTD_DCtx) d = ZSTD_createDCtx ();
  if (d == NULL)
    return dfi_throw (error, DF_ERROR_FAILED, "out of memory for the zstd decoder");
  /* The output is the window: no buffer of libzstd's own. */
  ZSTD_DCtx_setParameter (d, ZSTD_d_stableOutBuffer, 1);
  ZSTD_outBuffer ob = { out, cap, 0 };
  size_t r = 1;
  for (;;)
    {
      ZSTD_inBuffer ib = { buf, len, 0 };
      while (ib.pos < ib.size)
        {
          gsize in_was = ib.pos, out_was = ob.pos;
          r = ZSTD_decompressStream (d, &ob, &ib);
          if (ZSTD_isError (r))
            return dfi_throw (error, DF_ERROR_CORRUPT, "zstd: %s", ZSTD_getErrorName (r));
          if (ib.pos == in_was && ob.pos == out_was)
            {
              if (ob.pos < ob.size)
                return dfi_throw (error, DF_ERROR_CORRUPT, "the zstd stream stalls");
              /* The output is full: one byte more than allowed, which
               * the caller reports as too long. */
              *made = ob.pos;
              return TRUE;
            }
        }
      gssize n = unpack_read (in, buf, DF_COPY_BUFFER, cancellable, error);
      if (n < 0)
        return FALSE;
      if (n == 0)
        break;
      len = (gsize)n;
    }
  *made = ob.pos;
  if (r != 0)
    return dfi_throw (error, DF_ERROR_CORRUPT, "the zstd stream ends early");
  return TRUE;
}

GBytes *
dfi_rebuild_unpack (GInputStream *in, guint64 expect, guint64 max, GCancellable *cancellable, GError **error)
{
  gsize cap = (gsize)(expect ? expect : max);
  g_autofree guint8 *buf = g_malloc (DF_COPY_BUFFER);
  gssize n = unpack_read (in, buf, DF_COPY_BUFFER, cancellable, error);
  if (n < 0)
    return NULL;
  /* One byte more than expected tells a stream that is too long. */
  guint8 *out = g_malloc (cap + 1);
  gsize made = 0;
  gboolean ok;
  if (n >= 2 && buf[0] == 0x1f && buf[1] == 0x8b)
    ok = unpack_gzip (in, buf, (gsize)n, out, cap + 1, &made, cancellable, error);
  else if (n >= 4 && ZSTD_isFrame (buf, (gsize)n))
    ok = unpack_zstd (in, buf, (gsize)n, out, cap + 1, &made, cancellable, error);
  else
    ok = dfi_throw (error, DF_ERROR_CORRUPT, "not a gzip or zstd stream");
  if (ok && made > cap)
    ok = expect ? dfi_throw (error, DF_ERROR_CORRUPT, "decompresses to more than %zu bytes", cap)
                : dfi_throw (error, DF_ERROR_FAILED, "decompresses to more than %zu bytes", cap);
  else if (ok && expect && made != expect)
    ok = dfi_throw (error, DF_ERROR_CORRUPT, "decompresses to %zu bytes, not %zu", made, cap);
  if (!ok)
    {
      g_free (out);
      return NULL;
    }
  return g_bytes_new_take (g_realloc (out, MAX (made, 1)), made);
}

/* The content of one segment, read piece by piece. */
typedef struct
{
  const DfRebuildProgram *p;
  guint piece, end;      /* pieces [piece, end) remain */
  guint64 left;          /* of the current piece */
  gsize literal_at;      /* next literal byte */
  GInputStream *stream;  /* the current object piece */
  const guint8 *object;  /* its checksum */
  guint8 *patched;       /* the current patch piece's bytes */
  gsize patched_at;
  GBytes *source;          /* the last patch's decompressed source, kept for */
  const guint8 *source_id; /* the next patch against it: its 48-byte id */
  DfRebuildOpenFunc open;
  gpointer open_data;
  GCancellable *cancellable;
} Reader;

/* Decodes patch piece @pc, whose frame is at r->literal_at: its bytes go
 * to r->patched. */
static gboolean
reader_patch (Reader *r, const Piece *pc, GError **error)
{
  char hex[65];
  dfi_hex (pc->checksum, hex);
  /* Patches against one source (the runs between an archive's matched
   * files) decompress it once; another source replaces it, so that one
   * is held at a time, as the program's memory counts. */
  if (r->source_id == NULL || memcmp (r->source_id, pc->checksum, DF_SHA256_LEN + 16) != 0)
    {
      g_clear_pointer (&r->source, g_bytes_unref);
      r->source_id = NULL;
      g_autoptr (GInputStream) in = r->open (r->open_data, pc->checksum, pc->size, r->cancellable, error);
      if (in == NULL)
        return FALSE;
      r->source = dfi_rebuild_unpack (in, pc->source_size, pc->source_size, r->cancellable, error);
      if (r->source == NULL)
        return (g_prefix_error (error, "object %s, the source of a patch: ", hex), FALSE);
      r->source_id = pc->checksum;
    }
  GBytes *src = r->source;
  gsize fs = patch_frame (r->p, r->literal_at, pc); /* checked by the parser */
  g_autoptr (ZSTD_DCtx) d = ZSTD_createDCtx ();
  if (d == NULL)
    return dfi_throw (error, DF_ERROR_FAILED, "out of memory for the zstd decoder");
  r->patched = g_malloc (pc->length);
  r->patched_at = 0;
  size_t rc = ZSTD_DCtx_refPrefix (d, g_bytes_get_data (src, NULL), g_bytes_get_size (src));
  if (!ZSTD_isError (rc))
    rc = ZSTD_decompressDCtx (d, r->patched, pc->length, r->p->literals + r->literal_at, fs);
  if (ZSTD_isError (rc) || rc != pc->length)
    return dfi_throw (error, DF_ERROR_CORRUPT, "the patch against object %s does not decode: %s", hex,
                      ZSTD_isError (rc) ? ZSTD_getErrorName (rc) : "short");
  r->literal_at += fs;
  return TRUE;
}

/* Moves on to the next piece with bytes left: 1, or 0 at the segment's
 * end, or -1 with @error set. */
static int
reader_next (Reader *r, GError **error)
{
  while (r->left == 0)
    {
      g_clear_object (&r->stream);
      g_clear_pointer (&r->patched, g_free);
      if (r->piece == r->end)
        return 0;
      Piece pc;
      get_piece (r->p, r->piece++, &pc); /* checked by the parser */
      r->left = pc.length;
      r->object = pc.checksum;
      if (pc.kind == DF_REBUILD_PIECE_OBJECT)
        {
          r->stream = r->open (r->open_data, pc.checksum, pc.length, r->cancellable, error);
          if (r->stream == NULL)
            return -1;
        }
      else if (pc.kind == DF_REBUILD_PIECE_PATCH && !reader_patch (r, &pc, error))
        return -1;
    }
  return 1;
}

static gboolean
object_short (const Reader *r, GError **error)
{
  char hex[65];
  dfi_hex (r->object, hex);
  return dfi_throw (error, DF_ERROR_CORRUPT, "object %s ended early", hex);
}

static gboolean
reader_skip (gpointer data, guint64 n, GError **error)
{
  Reader *r = data;
  while (n > 0)
    {
      int more = reader_next (r, error);
      if (more <= 0)
        return more == 0 ? dfi_throw (error, DF_ERROR_CORRUPT, "a segment's content ends early") : FALSE;
      guint64 k = MIN (n, r->left);
      if (r->patched != NULL)
        r->patched_at += k;
      else if (r->stream == NULL)
        r->literal_at += k;
      else
        /* Read, not g_input_stream_skip(): a filter stream (an archive
         * repository's decompressing one) skips its base stream's bytes. */
        for (guint64 left = k; left > 0;)
          {
            guint8 buf[16384];
            gssize got
                = g_input_stream_read (r->stream, buf, (gsize)MIN (left, (guint64)sizeof buf), r->cancellable, error);
            if (got < 0)
              return FALSE;
            if (got == 0)
              return object_short (r, error);
            left -= (guint64)got;
          }
      r->left -= k;
      n -= k;
    }
  return TRUE;
}

/* A reader where @r is, before it reads: for another lane. */
static gpointer
reader_clone (gpointer data)
{
  const Reader *r = data;
  Reader *c = g_new0 (Reader, 1);
  *c = (Reader){ .p = r->p,
                 .piece = r->piece,
                 .end = r->end,
                 .literal_at = r->literal_at,
                 .open = r->open,
                 .open_data = r->open_data,
                 .cancellable = r->cancellable };
  return c;
}

static void
reader_clear (Reader *r)
{
  g_clear_object (&r->stream);
  g_clear_pointer (&r->patched, g_free);
  g_clear_pointer (&r->source, g_bytes_unref);
  r->source_id = NULL;
}

static void
reader_free (gpointer data)
{
  reader_clear (data);
  g_free (data);
}

/* Moves @r from piece @piece, literal byte @literal_at (where a segment
 * started) to the end of its pieces without reading them: after lanes
 * read the segment with readers of their own. */
static void
reader_jump_end (Reader *r, guint piece, gsize literal_at)
{
  g_clear_object (&r->stream);
  g_clear_pointer (&r->patched, g_free);
  r->literal_at = literal_at;
  for (r->piece = piece; r->piece < r->end; r->piece++)
    {
      Piece pc;
      get_piece (r->p, r->piece, &pc);
      if (pc.kind == DF_REBUILD_PIECE_LITERAL)
        r->literal_at += pc.length;
      else if (pc.kind == DF_REBUILD_PIECE_PATCH)
        r->literal_at += patch_frame (r->p, r->literal_at, &pc);
    }
  r->left = 0;
}

static gssize
reader_read (gpointer data, guint8 *buf, gsize len, GError **error)
{
  Reader *r = data;
  int more = reader_next (r, error);
  if (more <= 0)
    return more;
  gsize n = MIN ((guint64)len, r->left);
  if (r->patched != NULL)
    {
      memcpy (buf, r->patched + r->patched_at, n);
      r->patched_at += n;
    }
  else if (r->stream == NULL)
    {
      memcpy (buf, r->p->literals + r->literal_at, n);
      r->literal_at += n;
    }
  else
    {
      gsize got = 0;
      if (!g_input_stream_read_all (r->stream, buf, n, &got, r->cancellable, error))
        return -1;
      if (got != n)
        return (object_short (r, error), -1);
    }
  r->left -= n;
  return n;
}

/* The output of one segment, held to its size. */
typedef struct
{
  DfRebuildWriteFunc write;
  gpointer data;
  guint64 left;
} Writer;

static gboolean
writer_write (gpointer data, const guint8 *buf, gsize len, GError **error)
{
  Writer *w = data;
  if (len > w->left)
    return dfi_throw (error, DF_ERROR_CORRUPT, "a rebuilt segment grows past its declared size");
  w->left -= len;
  return w->write (w->data, buf, len, error);
}

/* Lanes a deflate segment's rebuild runs: one a core up to what the
 * program's memory counts (DF_TEST_DEFLATE_LANES in the environment: that
 * many, for tests). */
static guint
deflate_lanes (const DfRebuildProgram *p)
{
  if (p->deflate_lanes == 0)
    return 1;
  const char *hook = g_getenv ("DF_TEST_DEFLATE_LANES");
  guint n = hook ? (guint)g_ascii_strtoull (hook, NULL, 10) : dfi_ncpus ();
  return CLAMP (n, 1, p->deflate_lanes);
}

static gboolean
rebuild_deflate (const DfRebuildProgram *p, const Segment *s, Reader *r, Writer *w, GCancellable *cancellable,
                 GError **error)
{
  DfDeflateLimits lim;
  dfi_deflate_limits_init (&lim);
  lim.max_output = s->content;
  lim.max_input = s->out_size;
  guint lanes = deflate_lanes (p);
  if (lanes <= 1)
    return dfi_deflate_rebuild ((DfDeflateReadFunc)reader_read, r, s->data, s->data_len, writer_write, w, &lim,
                                cancellable, error);
  static const DfDeflateSource src = { reader_read, reader_skip, reader_clone, reader_free };
  guint piece = r->piece;
  gsize literal_at = r->literal_at;
  if (!dfi_deflate_rebuild_lanes (&src, r, lanes, s->data, s->data_len, writer_write, w, &lim, cancellable, error))
    return FALSE;
  reader_jump_end (r, piece, literal_at);
  return TRUE;
}

gboolean
dfi_rebuild_run (const DfRebuildProgram *p, DfRebuildOpenFunc open, gpointer open_data, DfRebuildWriteFunc write,
                 gpointer write_data, guint64 memory_limit, GCancellable *cancellable, GError **error)
{
  if (p->memory > memory_limit)
    return dfi_throw (error, DF_ERROR_INVALID_ARGUMENT,
                      "rebuilding needs %" G_GUINT64_FORMAT
                      " MiB, more than the memory budget allows (%" G_GUINT64_FORMAT " MiB)",
                      (p->memory + DF_MIB - 1) / DF_MIB, memory_limit / DF_MIB);
  Reader r = { .p = p, .open = open, .open_data = open_data, .cancellable = cancellable };
  g_autofree guint8 *buf = NULL;
  gboolean ok = TRUE;
  for (guint i = 0; ok && i < p->n_segments; i++)
    {
      Segment s;
      get_segment (p, i, &s);
      r.end = r.piece + s.n_pieces;
      Writer w = { .write = write, .data = write_data, .left = s.out_size };
      if (s.kind == DF_REBUILD_SEGMENT_PLAIN)
        {
          if (buf == NULL)
            buf = g_malloc (DF_REBUILD_BUFFERS / 2);
          for (;;)
            {
              if (g_cancellable_set_error_if_cancelled (cancellable, error))
                {
                  ok = FALSE;
                  break;
                }
              gssize n = reader_read (&r, buf, DF_REBUILD_BUFFERS / 2, error);
              if (n <= 0)
                {
                  ok = n == 0;
                  break;
                }
              if (!writer_write (&w, buf, n, error))
                {
                  ok = FALSE;
                  break;
                }
            }
        }
      else if (s.kind == DF_REBUILD_SEGMENT_RECIPE)
        {
          DfRecipe rec;
          g_autoptr (GBytes) rb = g_bytes_new_static (s.data, s.data_len);
          ok = dfi_recipe_parse (rb, &rec, error)
               && dfi_recipe_rebuild (&rec, (DfRecipeReadFunc)reader_read, &r, writer_write, &w, memory_limit,
                                      cancellable, error);
        }
      else
        ok = rebuild_deflate (p, &s, &r, &w, cancellable, error);
      if (ok && (w.left != 0 || r.piece != r.end || r.left != 0))
        ok = dfi_throw (error, DF_ERROR_CORRUPT, "rebuilt segment %u does not have its declared size", i);
      if (!ok)
        g_prefix_error (error, "segment %u: ", i);
    }
  reader_clear (&r);
  return ok;
}
