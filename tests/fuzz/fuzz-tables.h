/* The object tables apply builds from what a delta declares, rebuilt by the
 * fuzz targets from what they parsed: the completeness check's set of
 * carried objects (df-apply.c, df-apply-stock.c), the trust walk's table of
 * the delta's metadata, the set of patch sources. Their keys are the
 * delta's own checksums, so a forged delta chooses them (issue 14: hash
 * flooding); a regression to a hash an input can steer makes the targets'
 * seeds with thousands of keys sharing long prefixes time out. */
#pragma once

#include "df-limits.h"
#include "df-objset.h"
#include "df-stock.h"
#include "df-superblock.h"

/* The memory a superblock parse gets in apply and fetch by default
 * (dfi_apply_usable_memory()). */
#define FUZZ_PARSE_MEMORY (DF_DEFAULT_MEMORY_BUDGET - DF_APPLY_RESERVE)

/* Adds @n keys (DF_OBJSET_KEY_LEN bytes each, repeats allowed) to a fresh
 * DfObjSet and checks it against a sorted copy: what add() returned, the
 * size, the memory, membership of the keys and of keys next to them, and
 * that iteration visits each distinct key once. Aborts on a difference. */
void fuzz_check_object_set (const guint8 *keys, gsize n);

/* Appends the key (@type, @csum) to @keys. */
void fuzz_key_append (GByteArray *keys, guint8 type, const guint8 csum[DF_SHA256_LEN]);

/* The tables apply builds from a parsed superblock: every entry's object,
 * every patch source; for a stock one every object its parts make and
 * every fallback. */
void fuzz_check_superblock_tables (const DfSuperblock *sb);
void fuzz_check_stock_superblock_tables (const DfStockSuperblock *sb);
