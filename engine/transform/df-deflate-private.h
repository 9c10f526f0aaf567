/* Internals of the deflate reconstruction (df-deflate.h): the tokeniser,
 * the bit-exact writer, the model encoder and the tree builder, shared by
 * df-deflate.c (analyze), df-deflate-rebuild.c and the tests.
 *
 * Reconstruction data layout (all integers little-endian; "varint" is
 * LEB128, at most 10 bytes):
 *   magic "DFZ\1" (4 bytes)
 *   u8 model: an index into dfi_deflate_models[] (analyze's tries), or
 *      0xff: explicit parameters (below)
 *   u8 flags: the model's DF_DEFLATE_MODEL_* (they replace the table's);
 *      bit 7: the body is stored as it is, not as a zstd frame
 *   u8 window bits (9-15) << 4 | hash bits - 8 (0-8): zlib's windowBits
 *      and memLevel + 7 (15 and 15 by default; they replace the table's)
 *   with model 0xff: u8 kind (DfDeflateModelKind), u16 good, u16 lazy,
 *      u16 nice, u16 chain
 *   varint content length, varint stream length
 *   with flags bit 6 (DF_DEFLATE_RECON_SPLITS), the split table: varint n
 *      (1..DF_DEFLATE_SPLITS_MAX), then n splits in increasing order, each
 *      the start of a block where a rebuild may start over (in another
 *      thread, a lane) with the model's state written here:
 *        varint content offset, less the previous split's (or 0)
 *        varint stream bit offset of the block's first header bit, less
 *               the previous split's
 *        varint body offset of the block's head, less the previous split's
 *        u8 state: bit 0 a lazy match is cached, bit 1 the window saw the
 *               end of the input; other bits zero
 *        varint the cached match token (bit 0 only; 0: none)
 *        varint content offset + 2 - the model's frontier (the next
 *               position its hash chains take)
 *        varint window start, varint window end (content read into it)
 *        varint content offset - floor (where the history was reset)
 *      Only for models that keep every position in their chains (not
 *      the greedy one): their chains at a split are those of the 32 KiB
 *      before it. Each segment between splits (and before the first and
 *      after the last) holds at least DF_DEFLATE_SEGMENT_MIN_CONTENT bytes
 *      of content and at most DF_DEFLATE_SEGMENT_MAX bytes of stream.
 *   the body: one zstd frame (window at most 2^DF_DEFLATE_RECON_WINDOW_LOG)
 *   or the bytes themselves (bit 7), nothing after it; decompressed:
 *     per block:
 *       u8 head: bit 0 final, bits 1-2 BTYPE (0 stored, 1 fixed, 2 dynamic),
 *                bit 3 (stored) the alignment bits before LEN are not all
 *                zero, bit 4 (dynamic) the Huffman header is verbatim (else
 *                predicted from the block's tokens), bit 5: the model
 *                forgets the content before this block (no candidate
 *                there: the encoder reset its history, as a zlib full
 *                flush does); other bits zero
 *       stored: varint LEN, then u8 alignment bits if bit 3
 *       fixed, dynamic: varint token count (literals and matches)
 *       dynamic, verbatim: varint header bit count, the header's bits
 *                (HLIT onwards, LSB first, padded to a byte with zeros)
 *       fixed, dynamic: the corrections: repeatedly varint R (tokens the
 *                model predicts right, at most those left); then, unless no
 *                token is left, one correction for the next token:
 *                  u8 0: a literal
 *                  u8 1, u8 length - 3, varint rank: a match whose distance
 *                     is the rank-th (from 0) candidate of the model's hash
 *                     chain whose match is at least that long
 *                  u8 2, u8 length - 3, varint distance - 1: a match
 *     after the final block: u8 the bits after it in its last byte
 *     (the body ends there: bytes after it are refused)
 */
#pragma once

#include "df-deflate.h"

/* The reconstruction data's magic (defined in df-deflate.c), the length
 * of its fixed fields (magic, model, flags, window and hash bits), the
 * model "index" that says explicit parameters follow, and the flag bit
 * that says the body is stored as it is. */
extern const guint8 dfi_deflate_recon_magic[4];
#define DF_DEFLATE_RECON_FIXED_LEN (4 + 3)
#define DF_DEFLATE_RECON_EXPLICIT 0xff
#define DF_DEFLATE_RECON_RAW 0x80
#define DF_DEFLATE_RECON_SPLITS 0x40

#define DF_DEFLATE_WSIZE 32768u
#define DF_DEFLATE_MIN_MATCH 3u
#define DF_DEFLATE_MAX_MATCH 258u
#define DF_DEFLATE_HASH_BITS 16u /* the most: zlib's memLevel 9 */
#define DF_DEFLATE_HASH_SIZE (1u << DF_DEFLATE_HASH_BITS)

/* A token: a literal (the byte, < 256) or a match (DF_DEFLATE_TOK_MATCH |
 * length << 16 | distance). */
#define DF_DEFLATE_TOK_MATCH 0x80000000u
#define DF_DEFLATE_TOK_LEN(t) (((t) >> 16) & 0x1ff)
#define DF_DEFLATE_TOK_DIST(t) ((t)&0xffff)
static inline guint32
dfi_deflate_tok_match (guint len, guint dist)
{
  return DF_DEFLATE_TOK_MATCH | (guint32)len << 16 | dist;
}

/* --- Tables (RFC 1951 3.2.5) --------------------------------------------- */
extern const guint16 dfi_deflate_len_base[29];
extern const guint8 dfi_deflate_len_extra[29];
extern const guint16 dfi_deflate_dist_base[30];
extern const guint8 dfi_deflate_dist_extra[30];
extern const guint8 dfi_deflate_clen_order[19];
/* Length symbol index (0-28, i.e. symbol - 257) of a length 3-258. */
guint dfi_deflate_len_code (guint len);
/* Distance code (0-29) of a distance 1-32768. */
guint dfi_deflate_dist_code (guint dist);
/* The fixed code's lengths (288 literal/length, 30 distance). */
void dfi_deflate_fixed_lengths (guint8 lit[288], guint8 dist[32]);

/* --- Bit reader -------------------------------------------------------------- */
typedef struct
{
  const guint8 *data;
  gsize len;
  gsize pos;      /* next byte to load */
  gsize virt;     /* zero bytes loaded past the end */
  guint64 bitbuf; /* LSB first */
  guint nbits;
} DfBitReader;

void dfi_bit_reader_init (DfBitReader *r, const guint8 *data, gsize len);
/* Bits consumed so far. */
static inline guint64
dfi_bit_reader_tell (const DfBitReader *r)
{
  return (guint64)(r->pos + r->virt) * 8 - r->nbits;
}
/* TRUE when more bits were consumed than the data holds. */
static inline gboolean
dfi_bit_reader_overrun (const DfBitReader *r)
{
  return dfi_bit_reader_tell (r) > (guint64)r->len * 8;
}
static inline void
dfi_bit_reader_need (DfBitReader *r, guint n)
{
  while (r->nbits < n)
    {
      guint64 b = 0;
      if (r->pos < r->len)
        b = r->data[r->pos++];
      else
        r->virt++;
      r->bitbuf |= b << r->nbits;
      r->nbits += 8;
    }
}
/* Reads @n (<= 32) bits. Past the end, zeros: check overrun. */
static inline guint32
dfi_bit_reader_get (DfBitReader *r, guint n)
{
  if (n == 0)
    return 0;
  dfi_bit_reader_need (r, n);
  guint32 v = (guint32)(r->bitbuf & ((G_GUINT64_CONSTANT (1) << n) - 1));
  r->bitbuf >>= n;
  r->nbits -= n;
  return v;
}

/* --- Huffman header ------------------------------------------------------------ */
/* A dynamic block's header as transmitted. */
typedef struct
{
  guint hlit, hdist, hclen; /* counts: 257-286, 1-30, 4-19 */
  guint8 clen_lens[19];     /* code length code lengths, by symbol */
  guint ncl;                /* entries of cl[] */
  guint16 cl[320];          /* code length symbols: symbol | extra << 5 */
  guint8 lit[288], dist[32];
} DfDeflateHeader;

/* Parses a dynamic header (after BTYPE) from @r into @h: counts, code
 * length code (complete or refused), the run-length sequence (a repeat with
 * nothing to repeat, or running past HLIT + HDIST, is refused), the
 * literal/length and distance codes (over-subscribed refused; end-of-block
 * must have a code). Errors: DF_ERROR_INVALID_ARGUMENT with @code's
 * domain... the caller chooses the code (@code) for "not valid deflate". */
gboolean dfi_deflate_header_read (DfBitReader *r, DfDeflateHeader *h, int code, GError **error);

/* The header zlib and GNU gzip send for a block of these @n tokens (their
 * tree construction, the same in both). */
void dfi_deflate_header_predict (const guint32 *tokens, guint64 n, DfDeflateHeader *h);
gboolean dfi_deflate_header_equal (const DfDeflateHeader *a, const DfDeflateHeader *b);

/* Checks that @n code lengths (0-15) make a prefix code that is not
 * over-subscribed. */
gboolean dfi_deflate_lengths_ok (const guint8 *lens, guint n);

/* --- Huffman decoding -------------------------------------------------------- */
typedef struct
{
  guint bits;     /* table index width: the longest code */
  guint16 *table; /* 1 << bits entries: symbol | length << 9; 0: no code */
  guint16 storage[1u << 15];
} DfHuffDecoder;

/* Builds @d for @n lengths (checked with dfi_deflate_lengths_ok first). */
void dfi_huff_decoder_build (DfHuffDecoder *d, const guint8 *lens, guint n);
/* Decodes one symbol, or -1 for bits that are no code. */
static inline int
dfi_huff_decode (const DfHuffDecoder *d, DfBitReader *r)
{
  if (d->bits == 0)
    return -1;
  dfi_bit_reader_need (r, d->bits);
  guint16 e = d->table[r->bitbuf & ((1u << d->bits) - 1)];
  guint l = e >> 9;
  if (l == 0)
    return -1;
  r->bitbuf >>= l;
  r->nbits -= l;
  return e & 0x1ff;
}

/* --- Parsed stream (analyze) ------------------------------------------------ */
typedef struct
{
  guint8 type; /* BTYPE 0-2 */
  guint8 final;
  guint8 pad; /* stored: the alignment bits' value */
  guint32 stored_len;
  guint64 hdr_bit; /* dynamic: first bit of the header (HLIT) */
  guint32 hdr_bits;
  guint64 tok_start, tok_count; /* in DfDeflateParsed.tokens */
  guint64 data_start;           /* content offset of the block */
  guint64 start_bit;            /* stream bit offset of its BFINAL bit */
  gboolean forget;              /* analyze: the model forgets before it */
} DfDeflateBlock;

typedef struct
{
  GByteArray *content;
  GArray *tokens;  /* guint32 */
  GArray *blocks;  /* DfDeflateBlock */
  guint8 trailing; /* bits after the final block in its last byte */
  gsize consumed;  /* bytes of the stream */
} DfDeflateParsed;

void dfi_deflate_parsed_clear (DfDeflateParsed *p);
/* Tokenises and decompresses @stream (see dfi_deflate_analyze() for
 * @consumed and the errors); with @tokens FALSE only the content is kept. */
gboolean dfi_deflate_parse (const guint8 *stream, gsize len, const DfDeflateLimits *limits, gboolean tokens,
                            gsize *consumed, DfDeflateParsed *out, GError **error);

/* --- Bit writer ------------------------------------------------------------------ */
typedef struct
{
  guint64 acc;
  guint n;
  guint8 buf[65536];
  gsize len;
  guint64 total; /* bytes written through @write */
  DfDeflateWriteFunc write;
  gpointer write_data;
} DfBitWriter;

void dfi_bit_writer_init (DfBitWriter *w, DfDeflateWriteFunc write, gpointer write_data);
gboolean dfi_bit_writer_flush_buf (DfBitWriter *w, GError **error);
/* Appends @n (<= 32) bits of @v, LSB first. */
static inline gboolean
dfi_bit_writer_put (DfBitWriter *w, guint32 v, guint n, GError **error)
{
  w->acc |= (guint64)v << w->n;
  w->n += n;
  while (w->n >= 8)
    {
      if (w->len == sizeof w->buf && !dfi_bit_writer_flush_buf (w, error))
        return FALSE;
      w->buf[w->len++] = (guint8)w->acc;
      w->acc >>= 8;
      w->n -= 8;
    }
  return TRUE;
}
/* Bits pending in the current byte (0-7). */
static inline guint
dfi_bit_writer_pending (const DfBitWriter *w)
{
  return w->n;
}

/* Canonical codes (bit-reversed, ready for LSB-first writing). */
typedef struct
{
  guint16 code[288];
  guint8 len[288];
} DfHuffEncoder;
void dfi_huff_encoder_build (DfHuffEncoder *e, const guint8 *lens, guint n);

/* Writes @h's bits (HLIT onwards) exactly as transmitted. */
gboolean dfi_deflate_header_write (DfBitWriter *w, const DfDeflateHeader *h, GError **error);
/* Writes @tok with the codes @lit/@dist; FALSE (DF_ERROR_INVALID_DELTA) for
 * a symbol without a code. */
gboolean dfi_deflate_token_write (DfBitWriter *w, const DfHuffEncoder *lit, const DfHuffEncoder *dist, guint32 tok,
                                  GError **error);

/* --- Model -------------------------------------------------------------------- */
typedef enum
{
  DF_DEFLATE_MODEL_LITERAL = 0, /* every token a literal (Huffman only) */
  DF_DEFLATE_MODEL_GREEDY = 1,  /* zlib/gzip levels 1-3 (deflate_fast) */
  DF_DEFLATE_MODEL_LAZY = 2,    /* zlib/gzip levels 4-9 (deflate_slow) */
  DF_DEFLATE_MODEL_RLE = 3,     /* zlib Z_RLE: distance 1 runs */
  DF_DEFLATE_MODEL_KINDS
} DfDeflateModelKind;

#define DF_DEFLATE_MODEL_TOO_FAR 1u  /* a 3-byte match over 4096 back is no match */
#define DF_DEFLATE_MODEL_FILTERED 2u /* zlib Z_FILTERED: matches of 5 or less are none */
/* GNU gzip's window: it stops sliding once its input ends, and then no
 * longer searches past its window's end (its last 32-64 KiB); zlib slides
 * on. */
#define DF_DEFLATE_MODEL_GZIP 4u
#define DF_DEFLATE_MODEL_FLAGS 7u

typedef struct
{
  guint8 kind, flags;
  guint16 good, lazy, nice, chain; /* lazy: max_lazy (lazy) or max_insert (greedy) */
  guint8 wbits, hbits;             /* window 9-15 (zlib's windowBits), hash 8-16 (memLevel + 7) */
} DfDeflateModelParams;

typedef struct
{
  DfDeflateModelParams p;
  const guint8 *buf; /* the content from absolute offset @buf_start */
  guint64 buf_start;
  guint64 total;    /* content length */
  guint64 pos;      /* position of the next token */
  guint64 frontier; /* positions below are in the hash chains (or skipped) */
  gboolean have_cache;
  guint32 cache; /* lazy: the match found at @pos (0: none) */
  /* The original encoder's 64 KiB window, as it slides over the content:
   * its start, the content read into it, the end of the input seen. A
   * position at its start is their NIL: never a candidate. */
  guint64 win_offset, win_loaded;
  gboolean win_eof;
  guint64 floor; /* no candidate before: the history was reset there */
  guint64 base;  /* chain links are positions less this, plus one */
  guint wsize, hshift, hmask; /* from wbits, hbits */
  guint64 max_dist;           /* the window less the lookahead */
  guint32 head[DF_DEFLATE_HASH_SIZE];
  guint32 prev[DF_DEFLATE_WSIZE];
} DfDeflateModel;

/* @p checked by the caller (dfi_deflate_model_params_ok). */
void dfi_deflate_model_init (DfDeflateModel *m, const DfDeflateModelParams *p, guint64 total);
gboolean dfi_deflate_model_params_ok (const DfDeflateModelParams *p);
/* The model's token at m->pos; the buffer must hold the content from
 * m->pos - 32768 (or 0) to m->pos + 260 (or the end). */
guint32 dfi_deflate_model_predict (DfDeflateModel *m);
/* The real token at m->pos was @tok (checked to fit by the caller); moves on. */
void dfi_deflate_model_advance (DfDeflateModel *m, guint32 tok);
/* @n bytes of a stored block. */
void dfi_deflate_model_skip (DfDeflateModel *m, guint64 n);
/* The original encoder forgot the content before m->pos (a zlib full
 * flush, a pigz independent chunk). */
void dfi_deflate_model_forget (DfDeflateModel *m);
/* The rank of a match (@len, @dist) at m->pos among the hash chain's
 * candidates at least @len long, or -1 beyond DF_DEFLATE_RANK_WALK_MAX. */
gint dfi_deflate_model_rank (DfDeflateModel *m, guint len, guint dist);
/* The distance of the @rank-th candidate at least @len long, 0 if none. */
guint dfi_deflate_model_unrank (DfDeflateModel *m, guint len, guint64 rank);

/* The model's state at a block start, all a lane needs besides the 32 KiB
 * of content before it (df-deflate-private.h's split table). */
typedef struct
{
  guint64 frontier, win_offset, win_loaded, floor;
  guint32 cache;
  gboolean have_cache, win_eof;
} DfDeflateModelState;

void dfi_deflate_model_save (const DfDeflateModel *m, DfDeflateModelState *s);
/* Checks @s (hostile) against @m's parameters and content length for a
 * restart at @pos: every field in the range the model keeps it in, so
 * that a restart reads only the window a rebuild holds and ends. Only
 * models whose chains hold every position may restart. A cached match is
 * checked against the content by the caller. */
gboolean dfi_deflate_model_state_ok (const DfDeflateModel *m, guint64 pos, const DfDeflateModelState *s);
/* Starts @m (initialised, its buffer holding the content from @pos - 32768
 * or 0 to @pos + 260 or the end) over at @pos in state @s: its chains
 * take the positions from 32768 before @pos up to s->frontier. */
void dfi_deflate_model_restore (DfDeflateModel *m, guint64 pos, const DfDeflateModelState *s);

/* A split of the reconstruction data: where a lane may start. */
typedef struct
{
  guint64 content, bit, body;
  DfDeflateModelState st;
} DfDeflateSplit;

/* The models analyze tries, by index (DfDeflateStats.model). */
extern const DfDeflateModelParams dfi_deflate_models[];
extern const guint dfi_deflate_n_models;
