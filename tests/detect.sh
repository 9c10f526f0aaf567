#!/bin/bash
# Content detection (engine/transform/df-detect.c): see detect.py, which
# makes the files (GNU gzip, zstd, xz, python's zlib and gzip, cpio and
# bzImage-like files written by hand) and checks `df-test-tool detect`.
exec python3 "$(dirname "$0")/detect.py"
