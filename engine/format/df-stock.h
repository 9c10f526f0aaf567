/* Stock OSTree static deltas, as `ostree static-delta generate` writes them
 * (2022.7 and later): the superblock, the part files and the opcode program
 * each part runs. Every number read from them is checked before use.
 * The byte layout is summarised in engine/STOCK-FORMAT.md. */
#pragma once

/* One header per file: the superblock (df-stock-superblock.h), the part
 * files and their decoding (df-stock-part.h), the decoded payload
 * (df-stock-payload.h), the opcode program (df-stock-ops.h) and the
 * fallback `.filez` objects (df-stock-filez.h). This one includes them
 * all, for the users of the whole format. */
#include "df-stock-filez.h"
#include "df-stock-ops.h"
#include "df-stock-part.h"
#include "df-stock-payload.h"
#include "df-stock-superblock.h"
