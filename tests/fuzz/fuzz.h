/* The entry point every fuzz target defines (libFuzzer's), run either by
 * libFuzzer (meson -Dfuzzing=true, clang) or by driver.c over a corpus. */
#pragma once

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);
