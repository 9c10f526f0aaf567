#!/usr/bin/env python3
# Content detection (engine/transform/df-detect.c) through `df-test-tool
# detect`: files made here with GNU gzip, zstd and xz, python's zlib and
# gzip, newc cpio archives written by hand, initrd-like and bzImage-like
# files, and truncated and corrupt variants of each. Offsets, lengths,
# kinds and decompressed sizes are asserted exactly; every output, good
# input or bad, must tile the file (and each examined frame's stream).
# TAP on stdout. Environment: DF_TEST_TOOL; TMPDIR.
import gzip
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

TOOL = os.environ["DF_TEST_TOOL"]
T = tempfile.mkdtemp(prefix="deltafetch-detect.", dir=os.environ.get("TMPDIR"))
n_tests = 0
failed = 0


def report(good, desc, detail=None):
    global n_tests, failed
    n_tests += 1
    print(("ok" if good else "not ok") + " %d - %s" % (n_tests, desc))
    if not good:
        failed += 1
        if detail:
            for line in str(detail).splitlines()[:30]:
                print("# " + line)


def path(name):
    return os.path.join(T, name)


def write(name, data):
    with open(path(name), "wb") as f:
        f.write(data)
    return path(name)


def run(cmd, stdin=None):
    return subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, check=True).stdout


def detect(p, *opts):
    r = subprocess.run([TOOL, "detect", *opts, p], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        raise RuntimeError("df-test-tool detect %s: exit %d: %s" % (p, r.returncode, r.stderr.decode()))
    segs, entries, summary = [], [], None
    for line in r.stdout.decode().splitlines():
        o = json.loads(line)
        if "seg" in o and "entry" not in o:
            segs.append(o)
        elif "entry" in o:
            entries.append(o)
        else:
            summary = o
    return segs, entries, summary


def tiles(segs, size):
    """Problems with the tiling: depth-0 segments cover [0, size) in
    order; the children of a frame cover [0, dsize) of its stream."""
    problems = []

    def walk(parent, depth, length):
        at = 0
        kids = [s for s in segs if s["parent"] == parent and s["depth"] == depth]
        for s in kids:
            if s["offset"] != at:
                problems.append("segment %d at %d, expected %d" % (s["seg"], s["offset"], at))
            if s["length"] <= 0:
                problems.append("segment %d empty" % s["seg"])
            at = s["offset"] + s["length"]
            if any(c["parent"] == s["seg"] for c in segs):
                walk(s["seg"], depth + 1, s["dsize"])
        if (kids or parent == -1) and at != length:
            problems.append("children of %d end at %d, not %d" % (parent, at, length))

    walk(-1, 0, size)
    return problems


def shape(segs):
    return [(s["depth"], s["kind"], s["offset"], s["length"]) for s in segs]


def check(desc, p, want, **kw):
    """Runs detect on p and compares the segments' (depth, kind, offset,
    length) with want, plus fields of given segments: kw seg0={...}."""
    try:
        segs, entries, summary = detect(p, *kw.pop("opts", []))
    except Exception as e:
        report(False, desc, e)
        return None, None
    size = os.path.getsize(p)
    problems = tiles(segs, size)
    if want is not None and shape(segs) != want:
        problems.append("segments %s\nwanted   %s" % (shape(segs), want))
    for k, fields in kw.items():
        i = int(k[3:])
        for f, v in fields.items():
            got = segs[i].get(f) if i < len(segs) else None
            if f == "flags":
                if not set(v) <= set(got or []):
                    problems.append("seg %d flags %s lack %s" % (i, got, v))
            elif f == "noflags":
                if set(v) & set(segs[i]["flags"]):
                    problems.append("seg %d flags %s have one of %s" % (i, segs[i]["flags"], v))
            elif got != v:
                problems.append("seg %d %s = %r, wanted %r" % (i, f, got, v))
    report(not problems, desc, "\n".join(problems))
    return segs, entries


def check_robust(desc, p):
    """A hostile variant: detection succeeds and tiles the file."""
    try:
        segs, _, _ = detect(p)
        problems = tiles(segs, os.path.getsize(p))
        report(not problems, desc, "\n".join(problems))
        return segs
    except Exception as e:
        report(False, desc, e)
        return None


def variants(name, data, plain_from, which=None):
    """Truncated and corrupt variants of data: everything from plain_from
    on must be plain (what is before it is checked by the caller's own
    expectation and by the tiling). which: the labels to run (all)."""
    for label, v in [
        ("cut in half", data[: len(data) // 2]),
        ("last byte cut", data[:-1]),
        ("a byte flipped in the middle", data[: len(data) // 2] + bytes([data[len(data) // 2] ^ 0x55]) + data[len(data) // 2 + 1 :]),
        ("last byte flipped", data[:-1] + bytes([data[-1] ^ 1])),
    ]:
        if which and label not in which:
            continue
        p = write(name + ".bad", v)
        segs = check_robust("%s %s: detected without failing, tiles" % (name, label), p)
        if segs is None:
            continue
        top = [s for s in segs if s["depth"] == 0]
        after = [s for s in top if s["offset"] + s["length"] > plain_from]
        ok = all(s["kind"] in ("plain", "zero") for s in after)
        report(ok, "%s %s: plain from %d" % (name, label, plain_from), shape(segs))


# --- Data ---------------------------------------------------------------
def text(n, seed=1):
    out = bytearray()
    i = seed
    while len(out) < n:
        i = (i * 1103515245 + 12345) & 0x7FFFFFFF
        out += b"line %d of the test data: %x\n" % (len(out), i >> 8)
    return bytes(out[:n])


DATA = text(300000)

# newc cpio written by hand
def newc(entries, magic=b"070701", pad_to=0):
    """entries: (name, mode, data). Returns (bytes, [(name, header, data_off, size)])."""
    out = bytearray()
    info = []
    ino = 100
    for name, mode, data in entries + [("TRAILER!!!", 0, b"")]:
        nb = name.encode() + b"\0"
        hdr = len(out)
        fields = [ino, mode, 0, 0, 1, 1700000000, len(data), 0, 0, 0, 0, len(nb), 0]
        out += magic + b"".join(b"%08X" % f for f in fields) + nb
        out += b"\0" * (-len(out) % 4)
        doff = len(out)
        out += data
        out += b"\0" * (-len(out) % 4)
        if name != "TRAILER!!!":
            info.append((name, hdr, doff, len(data)))
        ino += 1
    end = len(out)
    if pad_to:
        out += b"\0" * (-len(out) % pad_to)
    return bytes(out), info, end


CPIO_ENTRIES = [
    (".", 0o40755, b""),
    ("bin", 0o40755, b""),
    ("bin/sh", 0o100755, DATA[:5001]),
    ("init", 0o100755, b"#!/bin/sh\nexec /bin/sh\n"),
    ("lib/modules/6.1.0-57-amd64/kernel/drivers/x.ko", 0o100644, DATA[7:70000]),
    ("link", 0o120777, b"bin/sh"),
]


def gzip_cli(data, *opts):
    return run(["gzip", "-c", *opts], stdin=data)


def main():
    print("# files in %s" % T)
    # --- plain
    p = write("plain", DATA)
    check("plain file: one plain segment", p, [(0, "plain", 0, len(DATA))])
    p = write("empty", b"")
    check("empty file: no segment", p, [])
    p = write("zeros", b"\0" * 5000)
    check("all zeros: one zero run", p, [(0, "zero", 0, 5000)])

    # --- gzip
    src = write("data.txt", DATA)
    run(["gzip", "-k", "-f", src])
    g = open(src + ".gz", "rb").read()
    check("GNU gzip with a name: one member, FNAME parsed", src + ".gz", [(0, "gzip", 0, len(g))],
          seg0={"dsize": len(DATA), "name_len": 8, "header_len": 10 + 9, "flags": ["checked"]})
    gn = gzip_cli(DATA, "-n")
    p = write("n.gz", gn)
    check("GNU gzip -n: one member, no name", p, [(0, "gzip", 0, len(gn))],
          seg0={"dsize": len(DATA), "name_len": 0, "header_len": 10, "flg": 0})
    g9 = gzip_cli(DATA, "-9", "-n")
    for lvl in (1, 9):
        b = gzip.compress(DATA, compresslevel=lvl, mtime=0)
        p = write("py%d.gz" % lvl, b)
        check("python gzip level %d" % lvl, p, [(0, "gzip", 0, len(b))], seg0={"dsize": len(DATA), "xfl": 4 if lvl == 1 else 2})
        z = zlib.compress(DATA, lvl)
        p = write("py%d.zlib" % lvl, z)
        check("python zlib level %d" % lvl, p, [(0, "zlib", 0, len(z))], seg0={"dsize": len(DATA), "flags": ["checked"]})
    small = gzip_cli(b"x" * 10, "-n")
    multi = gn + g9 + small + gzip.compress(b"", mtime=0)
    p = write("multi.gz", multi)
    check("multi-member gzip: four members", p,
          [(0, "gzip", 0, len(gn)), (0, "gzip", len(gn), len(g9)), (0, "gzip", len(gn) + len(g9), len(small)),
           (0, "gzip", len(gn) + len(g9) + len(small), len(multi) - len(gn) - len(g9) - len(small))],
          seg1={"dsize": len(DATA)}, seg2={"dsize": 10}, seg3={"dsize": 0})
    # FEXTRA, FCOMMENT, FHCRC: written by hand around a raw deflate stream
    co = zlib.compressobj(6, zlib.DEFLATED, -15)
    raw = co.compress(DATA) + co.flush()
    hdr = bytearray(b"\x1f\x8b\x08" + bytes([0x04 | 0x08 | 0x10 | 0x02 | 0x01]) + b"\0\0\0\0\0\x03")
    hdr += struct.pack("<H", 6) + b"AB\x02\x00xy" + b"name\0" + b"a comment\0"
    hdr += struct.pack("<H", zlib.crc32(bytes(hdr)) & 0xFFFF)
    full = bytes(hdr) + raw + struct.pack("<II", zlib.crc32(DATA), len(DATA))
    p = write("fields.gz", full)
    check("gzip with FTEXT, FEXTRA, FNAME, FCOMMENT, FHCRC", p, [(0, "gzip", 0, len(full))],
          seg0={"dsize": len(DATA), "header_len": len(hdr), "name_len": 4})
    badhcrc = bytes(hdr[:-2]) + bytes([hdr[-2] ^ 1, hdr[-1]]) + raw + full[-8:]
    check("gzip with a wrong FHCRC: plain", write("badhcrc.gz", badhcrc), [(0, "plain", 0, len(badhcrc))])
    badcrc = full[:-8] + struct.pack("<II", zlib.crc32(DATA) ^ 1, len(DATA))
    check("gzip with a wrong CRC-32: plain", write("badcrc.gz", badcrc), [(0, "plain", 0, len(badcrc))])
    badisize = full[:-8] + struct.pack("<II", zlib.crc32(DATA), len(DATA) + 1)
    check("gzip with a wrong ISIZE: plain", write("badisize.gz", badisize), [(0, "plain", 0, len(badisize))])
    longname = b"\x1f\x8b\x08\x08\0\0\0\0\0\x03" + b"n" * 5000 + b"\0" + raw + full[-8:]
    check("gzip with a 5000-byte name (over the limit): plain", write("longname.gz", longname),
          [(0, "plain", 0, len(longname))])
    variants("gzip", gn, 0)
    variants("multi-gzip", gn + g9, len(gn))
    with_tail = gn + b"trailing garbage"
    check("gzip then garbage: gzip, plain", write("tail.gz", with_tail), [(0, "gzip", 0, len(gn)), (0, "plain", len(gn), 16)])

    # --- zstd
    for label, opts in [("-3", ["-3"]), ("-19", ["-19"]), ("-19 --single-thread", ["-19", "--single-thread"]),
                        ("-3 -T0", ["-3", "-T0"])]:
        run(["zstd", "-q", "-f", *opts, src, "-o", path("z.zst")])
        zb = open(path("z.zst"), "rb").read()
        check("zstd %s: one frame, content size and checksum flags" % label, path("z.zst"), [(0, "zstd", 0, len(zb))],
              seg0={"dsize": len(DATA), "flags": ["checked", "content-size", "checksum"]})
    zp = run(["zstd", "-q", "-c", "-19"], stdin=DATA)
    p = write("pipe.zst", zp)
    check("zstd -19 from a pipe: no content size", p, [(0, "zstd", 0, len(zp))],
          seg0={"dsize": len(DATA), "noflags": ["content-size"], "flags": ["checksum"]})
    znc = run(["zstd", "-q", "-c", "-3", "--no-check"], stdin=DATA)
    p = write("nocheck.zst", znc)
    check("zstd --no-check: not checked", p, [(0, "zstd", 0, len(znc))], seg0={"dsize": len(DATA), "noflags": ["checked", "checksum"]})
    skip = struct.pack("<II", 0x184D2A53, 5) + b"skip!"
    cat = zp + skip + znc + b"\0\0\0\0"
    p = write("cat.zst", cat)
    check("zstd frames with a skippable frame and zero padding", p,
          [(0, "zstd", 0, len(zp)), (0, "zstd-skippable", len(zp), 13), (0, "zstd", len(zp) + 13, len(znc)),
           (0, "zero", len(zp) + 13 + len(znc), 4)], seg1={"magic": 0x184D2A53}, seg2={"dsize": len(DATA)})
    variants("zstd", zp, 0)
    check("skippable frame longer than the file: plain", write("skip.bad", skip[:-1]), [(0, "plain", 0, 12)])

    # --- xz
    for label, opts, check_type, filters in [
        ("-6", ["-6"], 4, [{"id": 0x21, "dict": 8 << 20, "start": 0}]),
        ("-9 --check=crc32", ["-9", "--check=crc32"], 1, [{"id": 0x21, "dict": 64 << 20, "start": 0}]),
        ("--x86 --lzma2=dict=32MiB", ["--x86", "--lzma2=dict=32MiB"], 4,
         [{"id": 4, "dict": 0, "start": 0}, {"id": 0x21, "dict": 32 << 20, "start": 0}]),
        ("--check=none", ["--check=none"], 0, [{"id": 0x21, "dict": 8 << 20, "start": 0}]),
    ]:
        xb = run(["xz", "-c", *opts], stdin=DATA)
        p = write("x.xz", xb)
        check("xz %s: check %d, filters %s" % (label, check_type, [f["id"] for f in filters]), p,
              [(0, "xz", 0, len(xb))], seg0={"dsize": len(DATA), "check": check_type, "filters": filters})
    x6 = run(["xz", "-c", "-6"], stdin=DATA)
    variants("xz", x6, 0)
    xe = run(["xz", "-c"], stdin=b"")
    check("xz of nothing: no block, no filter", write("empty.xz", xe), [(0, "xz", 0, len(xe))],
          seg0={"dsize": 0, "filters": []})
    # The first block header's LZMA2 dictionary byte raised to 40 (1.5 GiB;
    # made by patching: encoding with such a dictionary takes gigabytes).
    xs = bytearray(run(["xz", "-c", "-0"], stdin=b"abc"))
    hsize = (xs[12] + 1) * 4
    assert xs[14:16] == b"\x21\x01", xs[12:12 + hsize]
    xs[16] = 40
    xs[12 + hsize - 4:12 + hsize] = struct.pack("<I", zlib.crc32(bytes(xs[12:12 + hsize - 4])))
    check("xz with a 1.5 GiB dictionary over the decoder limit: plain, limit", write("bigdict.xz", bytes(xs)), None,
          seg0={"kind": "plain", "flags": ["limit"]})

    # --- cpio
    arc, info, end = newc(CPIO_ENTRIES, pad_to=512)
    p = write("a.cpio", arc)
    segs, entries = check("newc cpio (padded to 512): archive, zero padding", p,
                          [(0, "cpio", 0, end), (0, "zero", end, len(arc) - end)], seg0={"entries": len(CPIO_ENTRIES)})
    got = [(e["name"], e["header"], e["data"], e["size"]) for e in entries or []]
    report(got == info, "cpio entries: names, header and data offsets, sizes", "%s\n%s" % (got, info))
    segs, entries, _ = detect(p, "--hash")
    want = [hashlib.sha256(d).hexdigest() for n, m, d in CPIO_ENTRIES if m & 0o170000 == 0o100000]
    report([e["sha256"] for e in entries if "sha256" in e] == want, "cpio --hash: SHA-256 of regular files")
    crc, _, cend = newc(CPIO_ENTRIES, magic=b"070702")
    check("crc cpio (070702), unpadded", write("crc.cpio", crc), [(0, "cpio", 0, cend)])
    cut = arc[: info[4][2] + 100]
    check("cpio cut inside an entry's data: the complete entries, then plain", write("cut.cpio", cut),
          [(0, "cpio", 0, info[4][1]), (0, "plain", info[4][1], len(cut) - info[4][1])],
          seg0={"entries": 4, "flags": ["no-trailer"]})
    badhex = arc[: info[2][1] + 20] + b"g" + arc[info[2][1] + 21 :]
    check("cpio with a bad hex digit in the third header: two entries, then plain", write("badhex.cpio", badhex),
          [(0, "cpio", 0, info[2][1]), (0, "plain", info[2][1], len(badhex) - info[2][1])], seg0={"entries": 2})
    hugename = arc[:94] + b"%08X" % 0x7FFFFFFF + arc[102:]
    check("cpio with a huge name size: plain", write("hugename.cpio", hugename), [(0, "plain", 0, len(hugename))])
    check("cpio over the entries limit: partial, limit", p, [(0, "cpio", 0, info[3][1]), (0, "plain", info[3][1], len(arc) - info[3][1])],
          opts=["--entries-max=3"], seg1={"flags": ["limit"]})
    variants("cpio", arc[:end], end)

    # --- initrd-like: early cpio, padding, compressed cpio
    early, einfo, eend = newc([(".", 0o40755, b""), ("kernel/x86/microcode/GenuineIntel.bin", 0o100644, DATA[:3000])], pad_to=512)
    main_arc, minfo, mend = newc(CPIO_ENTRIES)
    for kind, comp in [("gzip", gzip_cli(main_arc, "-n", "-9")), ("zstd", run(["zstd", "-q", "-c", "-19"], stdin=main_arc)),
                       ("xz", run(["xz", "-c", "--check=crc32"], stdin=main_arc))]:
        img = early + comp
        p = write("initrd-" + kind, img)
        segs, entries = check("initrd-like (early cpio + padding + %s of a cpio)" % kind, p,
                              [(0, "cpio", 0, eend), (0, "zero", eend, len(early) - eend), (0, kind, len(early), len(comp)),
                               (1, "cpio", 0, mend)],
                              seg2={"dsize": len(main_arc)}, seg3={"parent": 2, "entries": len(CPIO_ENTRIES)})
        nested = [(e["name"], e["header"], e["data"], e["size"]) for e in entries or [] if e["seg"] == 3]
        report(nested == minfo, "initrd-like %s: nested entries, offsets in the decompressed stream" % kind,
               "%s\n%s" % (nested, minfo))
        variants("initrd-" + kind, img, len(early))
    p = path("initrd-gzip")
    lines = run([TOOL, "detect", "--text", p]).decode().splitlines()
    report(len(lines) == 5 and lines[3].startswith("  cpio ") and "gzip 1 (" in lines[4],
           "detect --text: one indented line per segment, then the summary", "\n".join(lines))
    check("initrd-like with --depth-max=0: the frame not examined", p, None, opts=["--depth-max=0"],
          seg2={"kind": "gzip", "flags": ["not-examined"]})
    check("initrd-like with --decompressed-max=1000: the frame is plain, limit", p,
          [(0, "cpio", 0, eend), (0, "zero", eend, len(early) - eend), (0, "plain", len(early), os.path.getsize(p) - len(early))],
          opts=["--decompressed-max=1000"], seg2={"flags": ["limit"]})
    check("initrd-like with --segments-max=2: limit", p, None, opts=["--segments-max=2"])
    # A gzip inside a gzip: depth 2
    inner = gzip_cli(main_arc, "-n")
    outer = gzip_cli(inner + b"\0" * 12, "-n")
    check("gzip of (gzip of a cpio + zeros): depth 2", write("nested.gz", outer),
          [(0, "gzip", 0, len(outer)), (1, "gzip", 0, len(inner)), (2, "cpio", 0, mend), (1, "zero", len(inner), 12)])

    # --- bzImage-like
    for setup_sects, kind in [(3, "xz"), (0, "gzip"), (7, "zstd"), (5, "lzma")]:
        sects = setup_sects or 4
        pm_len = 3000
        kernel = DATA[:200000]
        payload = {"xz": lambda: run(["xz", "-c", "--x86", "--lzma2=dict=32MiB", "--check=crc32"], stdin=kernel),
                   "gzip": lambda: gzip_cli(kernel, "-n", "-9"),
                   "zstd": lambda: run(["zstd", "-q", "-c", "-19"], stdin=kernel),
                   "lzma": lambda: run(["xz", "-c", "--format=lzma"], stdin=kernel)}[kind]()
        payload += struct.pack("<I", len(kernel))
        boot = bytearray(b"\xfa" * ((sects + 1) * 512))
        boot[0x1F1] = setup_sects
        boot[0x1FE:0x200] = b"\x55\xaa"
        boot[0x202:0x206] = b"HdrS"
        boot[0x206:0x208] = struct.pack("<H", 0x020F)
        poff = 700
        boot[0x248:0x250] = struct.pack("<II", poff, len(payload))
        pm = bytes(boot) + b"\x90" * poff + payload + b"\xcc" * (pm_len - poff)
        img = pm + b"TRAILER"
        p = write("bzImage-" + kind, img)
        setup = (sects + 1) * 512
        ps = setup + poff
        check("bzImage-like, setup_sects %d, %s payload" % (setup_sects, kind), p,
              [(0, "bzimage-setup", 0, setup), (0, "plain", setup, poff), (0, kind, ps, len(payload) - 4),
               (0, "plain", ps + len(payload) - 4, 4), (0, "plain", ps + len(payload), len(img) - ps - len(payload))],
              seg0={"version": 0x20F, "setup_sects": setup_sects, "payload_offset": poff, "payload_length": len(payload)},
              seg2={"dsize": len(kernel), "flags": ["bzimage-payload"]})
        if kind == "xz":
            badlen = bytearray(img)
            badlen[0x24C:0x250] = struct.pack("<I", len(img))
            check_robust("bzImage-like with a payload length past the end: detected, tiles", write("bz.badlen", bytes(badlen)))
            bad = bytearray(img)
            bad[ps + 100] ^= 0x40
            check("bzImage-like with a corrupt payload: the payload plain", write("bz.corrupt", bytes(bad)),
                  [(0, "bzimage-setup", 0, setup), (0, "plain", setup, poff), (0, "plain", ps, len(payload)),
                   (0, "plain", ps + len(payload), len(img) - ps - len(payload))], seg2={"flags": ["bzimage-payload"]})
            variants("bzImage-" + kind, img, ps, which=("cut in half", "a byte flipped in the middle"))
            old = bytearray(img)
            old[0x206:0x208] = struct.pack("<H", 0x0207)
            check_robust("bzImage-like of protocol 2.07: not a bzImage", write("bz.old", bytes(old)))

    print("1..%d" % n_tests)
    return failed == 0


try:
    good = main()
finally:
    if failed == 0 and not os.environ.get("DF_KEEP_TMP"):
        shutil.rmtree(T, ignore_errors=True)
    else:
        print("# kept %s" % T)
sys.exit(0 if good else 1)
