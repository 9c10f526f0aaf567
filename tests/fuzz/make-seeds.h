/* Shared by make-seeds.c and make-seeds-attacks.c. */
#pragma once

#include <glib.h>

/* The longest input tests/fuzz-run.sh lets libFuzzer make or read
 * (-max_len): a longer seed would be cut there. */
#define SEED_MAX_LEN 262144

/* Writes @a then @b (may be NULL) to DIR/NAME; exits on failure. */
void put (const char *dir, const char *name, const guint8 *a, gsize alen, const guint8 *b, gsize blen);

/* Writes the attack seeds of every target into ROOT/TARGET/. */
void attack_seeds (const char *root);
