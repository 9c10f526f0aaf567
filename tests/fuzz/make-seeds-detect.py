#!/usr/bin/env python3
# Writes the seeds of fuzz-detect (testdata/fuzz/detect/): small files of
# every structure df-detect recognises, made with GNU gzip, zstd and xz
# and python's zlib, cpio and bzImage headers written by hand. Not run by
# the tests. Usage: tests/fuzz/make-seeds-detect.py DIR
import gzip
import os
import struct
import subprocess
import sys
import zlib

out = sys.argv[1]
os.makedirs(out, exist_ok=True)


def put(name, data):
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)


def run(cmd, data):
    return subprocess.run(cmd, input=data, stdout=subprocess.PIPE, check=True).stdout


text = b"".join(b"seed line %d of deltafetch's detector\n" % i for i in range(120))


def newc(entries, pad_to=0):
    o = bytearray()
    for ino, (name, mode, data) in enumerate(entries + [("TRAILER!!!", 0, b"")]):
        nb = name.encode() + b"\0"
        o += b"070701" + b"".join(b"%08X" % f for f in [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0]) + nb
        o += b"\0" * (-len(o) % 4) + data
        o += b"\0" * (-len(o) % 4)
    if pad_to:
        o += b"\0" * (-len(o) % pad_to)
    return bytes(o)


arc = newc([(".", 0o40755, b""), ("init", 0o100755, text[:300]), ("bin/sh", 0o120777, b"busybox")])
early = newc([("kernel/x86/microcode/AuthenticAMD.bin", 0o100644, text[:64])], pad_to=512)
put("gzip-name", run(["gzip", "-c", "-9"], text))
put("gzip-multi", gzip.compress(text[:500], mtime=0) + gzip.compress(text[500:], 1, mtime=0))
put("zlib", zlib.compress(text, 9))
put("zstd-skippable", run(["zstd", "-q", "-c", "-19"], text) + struct.pack("<II", 0x184D2A50, 3) + b"abc")
put("xz-x86", run(["xz", "-c", "--x86", "--lzma2=dict=1MiB", "--check=crc32"], text))
put("cpio", arc)
put("initrd-gzip", early + run(["gzip", "-c", "-n"], arc))
put("initrd-zstd", early + run(["zstd", "-q", "-c"], arc))
put("initrd-xz", early + run(["xz", "-c", "--check=crc32"], arc))
put("nested-gzip", run(["gzip", "-c", "-n"], run(["xz", "-c"], arc)))
boot = bytearray(b"\xfa" * 1024)
boot[0x1F1] = 1
boot[0x1FE:0x200] = b"\x55\xaa"
boot[0x202:0x206] = b"HdrS"
boot[0x206:0x208] = struct.pack("<H", 0x020F)
for kind, cmd in [("xz", ["xz", "-c", "--x86", "--lzma2=dict=1MiB", "--check=crc32"]), ("lzma", ["xz", "-c", "--format=lzma"])]:
    payload = run(cmd, text) + struct.pack("<I", len(text))
    b = bytearray(boot)
    b[0x248:0x250] = struct.pack("<II", 16, len(payload))
    put("bzimage-" + kind, bytes(b) + b"\x90" * 16 + payload + b"trailer")

# Attacks, each within libFuzzer's -max_len (262,144 bytes): output
# bombs (the budget stops them), more members than the segment limit, a
# cpio of as many empty entries as fit.
put("attack-bomb-zstd", run(["zstd", "-q", "-c", "-19"], b"\0" * (256 << 20)))
put("attack-bomb-gzip", run(["gzip", "-c", "-9", "-n"], b"\0" * (64 << 20)))
put("attack-bomb-xz", run(["xz", "-c", "-9e"], b"\0" * (64 << 20)))
tiny = gzip.compress(b"", mtime=0)
put("attack-members", tiny * (262144 // len(tiny)))
many = newc([("e%d" % i, 0o100644, b"") for i in range(2000)])
put("attack-entries", many[:262144])
