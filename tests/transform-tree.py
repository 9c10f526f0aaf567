#!/usr/bin/env python3
"""Synthetic OS trees for the end-to-end tests of issue 15 (compressed files
diffed in their decompressed domain and rebuilt on the device).

  transform-tree.py OUTDIR VERSION KIND [--seed=N]
  transform-tree.py --list-kinds [--all]
  transform-tree.py --selfcheck [--seed=N]

The first form creates OUTDIR (which must not exist) holding a small OS tree
of release VERSION (an integer, 1, 2, 3...) whose initrd, and for the
bzimage-* kinds the kernel, is compressed as KIND. The same arguments give
byte-identical files: every byte comes from random.Random seeded from
(seed, what, version) and every timestamp from VERSION; the clock is never
read. Nothing is printed on success; an error prints one line on stderr and
exits 1 (2 for a usage error or an unknown kind).

The tree (about 3.5 MB of content; 4-8 MB on disk with the initrd):

  usr/lib/modules/6.1.0-V/kernel/drivers/SUBDIR/NAME.ko  40 modules, 10-150 KB
  usr/bin/busybox                                       about 300 KB
  usr/lib/x86_64-linux-gnu/libc.so.6                    about 400 KB, the same in every version
  etc/{hostname,os-release,fstab,passwd,group}
  boot/initrd.img-6.1.0-V
  boot/vmlinuz-6.1.0-V

Modules, busybox, libc and the kernel look like ELF objects: a code-like
section built from an instruction vocabulary (calls zero-filled in the
relocatable modules, with rel32 targets in the linked files), relocation,
symbol and version tables, and strings; gzip -6 shrinks them about 2.5-3x,
xz -6 about 3-4x. Release V has the modules of indices V-1 .. V+38 of an
endless list of names: from V to V+1 one module is removed and one added,
four modules are unchanged and every other one gets 1-4 small edits
(bytes overwritten, inserted, deleted). Edits accumulate: release V is
release 1 plus the edits of 2..V. Busybox and the kernel change a little in
every release, libc never.

The initrd is an uncompressed "early" newc cpio (directories and
kernel/x86/microcode/GenuineIntel.bin, 20-40 KB; TRAILER!!! then zero
padding to a multiple of 512) followed by the main newc cpio compressed as
KIND. The main cpio holds, in byte order of the names (LC_ALL=C sort, as
mkinitramfs does): directories, symlinks (bin -> usr/bin...), copies of the
tree's modules, busybox and libc (byte-identical to the tree's files, at
the same paths), and files only the initrd has (modules.dep, modules.alias,
etc/ld.so.cache, init, conf/ and scripts/ files), which change with the
version. Then TRAILER!!! and zero padding to a multiple of 512, as GNU
cpio writes. Inode numbers grow in entry order from a per-version start;
every entry's mtime is the release's.

The kernel, for the bzimage-* kinds, is a bzImage-like file: boot sector
and setup (setup_sects 27, "HdrS", boot protocol 2.15, kernel_version
string), then the protected-mode code: a head, the compressed payload
(about 1.5 MB of kernel-like content) followed by the le32 of its
decompressed size (both within payload_length), the rest of the
decompressor, padding to 16 bytes and a CRC-32. For the other kinds it
is 200 KB of incompressible bytes.

KIND (the compression of the main cpio; --list-kinds prints the list, and
--list-kinds --all adds the no-early- variants):

  zlib-gzip-1 .. zlib-gzip-9  python's zlib.compressobj(level, DEFLATED, 31)
  gnu-gzip-6, gnu-gzip-9      gzip -N -c FILE (FNAME "main.cpio", MTIME the release's)
  gnu-gzip-6n, gnu-gzip-9n    gzip -N -n -c < FILE
  zstd-3, zstd-9, zstd-19     zstd -q -N -c FILE
  zstd-9-mt                   zstd -q -9 -T0 -c FILE (Debian 12's mkinitramfs)
  zstd-9-st                   zstd -q -9 --single-thread -c FILE
  zstd-9-pipe                 zstd -q -9 -c < FILE (no content size)
  zstd-9-mt-1m                zstd -q -9 -T0 -B1MiB -c FILE: 1 MiB jobs. zstd-9-mt's
                              input (under 3 MB) fits in one job of the default size
                              (4 x the window: 16 MiB at level 9), and with one job
                              zstd 1.5.4's multi-threaded output is the single-threaded
                              one: zstd-9, zstd-9-mt and zstd-9-st make the same bytes.
                              Only this kind has the several jobs of a real initrd.
  xz-6, xz-9, xz-6-crc32      xz -6 -c, xz -9 -c, xz -6 --check=crc32 -c (single-threaded,
                              xz 5.4's default). Both dictionaries exceed the input: xz-6
                              and xz-9 differ only in the block header's dictionary size.
  xz-6-mt                     xz -6 -T2 --block-size=1MiB -c (several blocks)
  bzimage-xz                  initrd as gnu-gzip-6n; the kernel a bzImage whose payload
                              is xz --check=crc32 --x86 --lzma2=,dict=32MiB -c
  plain                       the main cpio not compressed
  garbled                     gzip -6 -n with one byte of the CRC-32 flipped: no valid
                              frame there, the bytes must stay plain
  no-early-KIND               KIND without the early cpio

The environment variables that change what gzip, zstd and xz do (GZIP,
ZSTD_CLEVEL, ZSTD_NBTHREADS, XZ_DEFAULTS, XZ_OPT) are removed before they
run. Their output depends on their versions (here gzip 1.12, zstd 1.5.4,
xz 5.4.1): the trees are the same for the same tools, not across tools.

--selfcheck makes a few trees in $TMPDIR and checks them with this file's
own parsers (cpio, bzImage header; gzip/zstd/xz -d for the frames):
determinism, the initrd's entries against the tree, what changes between
two releases, compression ratios; with DF_TEST_TOOL set, also what
`df-test-tool detect` finds. TAP on stdout.

Python 3 standard library only, plus the gzip, zstd and xz programs.
"""
import itertools
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

DEFAULT_SEED = 42
VERSION_MAX = 1000
N_MODULES = 40
EPOCH = 1700000000  # release 1's mtime; each release is 30 days later
KVER = "6.1.0-%d"
UNCHANGED_PER_RELEASE = 4

# --- Kinds -------------------------------------------------------------------

# kind -> argv of the compressor, the input given as "{file}" (a file
# argument) or absent (fed on stdin). Python-made and special kinds are
# handled in compress().
CLI_KINDS = {
    "gnu-gzip-6": ["gzip", "-6", "-c", "{file}"],
    "gnu-gzip-9": ["gzip", "-9", "-c", "{file}"],
    "gnu-gzip-6n": ["gzip", "-6", "-n", "-c"],
    "gnu-gzip-9n": ["gzip", "-9", "-n", "-c"],
    "zstd-3": ["zstd", "-q", "-3", "-c", "{file}"],
    "zstd-9": ["zstd", "-q", "-9", "-c", "{file}"],
    "zstd-19": ["zstd", "-q", "-19", "-c", "{file}"],
    "zstd-9-mt": ["zstd", "-q", "-9", "-T0", "-c", "{file}"],
    "zstd-9-st": ["zstd", "-q", "-9", "--single-thread", "-c", "{file}"],
    "zstd-9-pipe": ["zstd", "-q", "-9", "-c"],
    "zstd-9-mt-1m": ["zstd", "-q", "-9", "-T0", "-B1MiB", "-c", "{file}"],
    "xz-6": ["xz", "-6", "-c"],
    "xz-9": ["xz", "-9", "-c"],
    "xz-6-crc32": ["xz", "-6", "--check=crc32", "-c"],
    "xz-6-mt": ["xz", "-6", "-T2", "--block-size=1MiB", "-c"],
}
# The kernel's own payload compression (scripts/xz_wrap.sh in Linux 6.1).
BZIMAGE_XZ = ["xz", "--check=crc32", "--x86", "--lzma2=,dict=32MiB", "-c"]

BASE_KINDS = (["zlib-gzip-%d" % i for i in range(1, 10)]
              + ["gnu-gzip-6", "gnu-gzip-9", "gnu-gzip-6n", "gnu-gzip-9n",
                 "zstd-3", "zstd-9", "zstd-19", "zstd-9-mt", "zstd-9-st", "zstd-9-pipe", "zstd-9-mt-1m",
                 "xz-6", "xz-9", "xz-6-crc32", "xz-6-mt",
                 "bzimage-xz", "plain", "garbled"])
ALL_KINDS = BASE_KINDS + ["no-early-" + k for k in BASE_KINDS]

TOOL_ENV_DROP = ("GZIP", "ZSTD_CLEVEL", "ZSTD_NBTHREADS", "XZ_DEFAULTS", "XZ_OPT")


class Failure(Exception):
    def __init__(self, msg, code=1):
        super().__init__(msg)
        self.code = code


def parse_kind(kind):
    """(early, initrd kind, kernel kind) of KIND; Failure(2) if unknown."""
    if kind not in ALL_KINDS:
        raise Failure("unknown kind %r (see --list-kinds)" % kind, 2)
    early = not kind.startswith("no-early-")
    base = kind[len("no-early-"):] if not early else kind
    if base.startswith("bzimage-"):
        return early, "gnu-gzip-6n", base[len("bzimage-"):]
    return early, base, None


def tool_env():
    env = dict(os.environ)
    for k in TOOL_ENV_DROP:
        env.pop(k, None)
    env["LC_ALL"] = "C"
    return env


def run_tool(argv, data, tmpdir, mtime):
    """Runs argv with data on stdin, or, when argv has "{file}", in a file
    named main.cpio whose mtime is @mtime. Returns its stdout."""
    stdin = data
    if "{file}" in argv:
        p = os.path.join(tmpdir, "main.cpio")
        with open(p, "wb") as f:
            f.write(data)
        os.utime(p, (mtime, mtime))
        argv = [p if a == "{file}" else a for a in argv]
        stdin = b""
    try:
        r = subprocess.run(argv, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=tool_env())
    except OSError as e:
        raise Failure("%s: %s" % (argv[0], e))
    if r.returncode != 0:
        raise Failure("%s failed (exit %d): %s" % (" ".join(argv), r.returncode,
                                                   r.stderr.decode(errors="replace").strip()))
    return r.stdout


def compress(kind, data, tmpdir, mtime):
    if kind == "plain":
        return data
    if kind.startswith("zlib-gzip-"):
        co = zlib.compressobj(int(kind[len("zlib-gzip-"):]), zlib.DEFLATED, 31)
        return co.compress(data) + co.flush()
    if kind == "garbled":
        g = bytearray(run_tool(["gzip", "-6", "-n", "-c"], data, tmpdir, mtime))
        g[-8] ^= 0x5A  # the CRC-32's first byte
        return bytes(g)
    return run_tool(CLI_KINDS[kind], data, tmpdir, mtime)


# --- Content -------------------------------------------------------------------

WORDS = """device driver probe remove init exit module param buffer queue request
interrupt irq dma map unmap alloc free lock unlock mutex spin wait event work timer
reset power suspend resume clock regulator gpio pin phy link port bus pci usb scsi
block disk sector page cache flush sync read write open close ioctl mmap poll status
error failed invalid timeout busy ready enable disable start stop config register
table entry list node tree hash key value count size length offset address firmware
version feature capability mode state flags mask shift bits channel ring descriptor
packet frame header payload checksum crc netdev skb tx rx napi carrier speed duplex
vendor subsystem class function slot bar msi msix vector affinity cpu numa memory
region resource handle context session stream media audio video input output sensor
thermal fan battery charger backlight panel display connector encoder crtc plane
fence sync_file dmabuf gem bo vm gtt vram shader engine ring_buffer doorbell mailbox
command response completion callback notifier kobject sysfs debugfs attribute group""".split()

EXPORTS = """printk _printk kmalloc kfree kmem_cache_alloc kmem_cache_free vmalloc vfree
mutex_lock mutex_unlock _raw_spin_lock _raw_spin_unlock _raw_spin_lock_irqsave
_raw_spin_unlock_irqrestore __stack_chk_fail memcpy memset memcmp strlen strcmp
strscpy snprintf sprintf kstrtoint dev_err dev_warn dev_info _dev_info _dev_err
devm_kmalloc devm_kfree request_threaded_irq free_irq pci_enable_device
pci_disable_device pci_set_master pci_request_regions pci_release_regions
pci_iomap pci_iounmap dma_alloc_attrs dma_free_attrs dma_map_page_attrs
__init_waitqueue_head __wake_up schedule_timeout msleep usleep_range
queue_work_on cancel_work_sync delayed_work_timer_fn mod_timer del_timer_sync
jiffies __fentry__ __x86_return_thunk __x86_indirect_thunk_rax
module_put try_module_get platform_driver_unregister __platform_driver_register
usb_register_driver usb_deregister netif_napi_add napi_complete_done
alloc_etherdev_mqs free_netdev register_netdev unregister_netdev
sysfs_create_group sysfs_remove_group device_create device_destroy
class_create class_destroy cdev_init cdev_add cdev_del refcount_warn_saturate""".split()

SUBDIRS = ["net/ethernet/intel", "net/ethernet/realtek", "net/wireless", "usb/core", "usb/host",
           "usb/storage", "scsi", "ata", "md", "gpu/drm", "gpu/drm/i915", "input/mouse",
           "input/keyboard", "hid", "i2c/busses", "mmc/host", "nvme/host", "block", "virtio",
           "char/tpm", "platform/x86", "thermal", "hwmon", "sound/pci"]
SYLLABLES = ["ax", "be", "cor", "dra", "e1", "fi", "gen", "hy", "ig", "ju", "ka", "lo", "mi", "nv",
             "ox", "pi", "qu", "ra", "si", "to", "ul", "vi", "wo", "xe", "yu", "ze", "tg", "rtl",
             "bn", "mlx", "ath", "iw", "snd", "hda", "usb", "sd", "ahci", "raid", "dm"]


def rng(seed, *what):
    # A str seed goes through SHA-512 (random's seed version 2): stable
    # across runs and PYTHONHASHSEED.
    return random.Random("deltafetch-transform-tree:%d:%s" % (seed, ":".join(str(w) for w in what)))


def le16(v):
    return struct.pack("<H", v)


def le32(v):
    return struct.pack("<I", v & 0xFFFFFFFF)


def le64(v):
    return struct.pack("<Q", v & 0xFFFFFFFFFFFFFFFF)


FRESH = [b"\x48\xc7\xc0", b"\x48\x8b\x87", b"\x48\x89\x83", b"\x8b\x43", b"\x83\x7d", b"\xbe", b"\x0f\x85"]
CALL_MARK = b"\xe8\xf1\xe3\xd5\xc7"  # stands for "call rel32" until placed
RIP_MARK = b"\x48\x8b\x05\xa7\xb9\xcb\xdd"  # "mov rax, [rip + rel32]" the same way


class Vocabulary:
    """x86-64-like instructions and phrases of them (one set per seed),
    drawn with Zipf-like weights: code made of them compresses like real
    code."""

    def __init__(self, seed):
        r = rng(seed, "vocabulary")
        insns = [self._insn(r) for _ in range(900)]
        insns += [CALL_MARK] * 40 + [RIP_MARK] * 20
        r.shuffle(insns)
        phrases = []
        for _ in range(700):
            n = r.randint(2, 7)
            phrases.append(b"".join(insns[int(r.paretovariate(0.9)) % len(insns)] for _ in range(n)))
        self.items = phrases + insns
        r.shuffle(self.items)
        self.cum = list(itertools.accumulate(1.0 / (i + 1) ** 0.95 for i in range(len(self.items))))
        self.prologues = [b"\xf3\x0f\x1e\xfa" + b"\xe8\xf1\xe3\xd5\xc7" + p for p in
                          (b"\x55\x48\x89\xe5", b"\x41\x57\x41\x56\x41\x55\x41\x54\x55\x53",
                           b"\x41\x54\x55\x53", b"\x53", b"\x55\x53\x48\x83\xec\x18", b"")]
        self.epilogues = [b"\x5b\x5d\x41\x5c\x41\x5d\x41\x5e\x41\x5f\xe9\x00\x00\x00\x00",
                          b"\x5b\x5d\xc3", b"\x48\x83\xc4\x18\x5b\x5d\xc3", b"\x5b\xc3", b"\xc3",
                          b"\x5d\xe9\x00\x00\x00\x00"]

    @staticmethod
    def _insn(r):
        t = r.random()
        reg = r.randrange(8)
        if t < 0.18:  # mov r64, r64
            return bytes([r.choice((0x48, 0x49, 0x4c, 0x4d)), r.choice((0x89, 0x8b)), 0xc0 | r.randrange(64)])
        if t < 0.40:  # mov r64, [r64 + disp8] / the reverse
            return bytes([r.choice((0x48, 0x49, 0x4c)), r.choice((0x89, 0x8b, 0x8d)), 0x40 | r.randrange(64),
                          r.randrange(0, 0x80, 8)])
        if t < 0.48:  # 32-bit moves and arithmetic
            return bytes([r.choice((0x89, 0x8b, 0x01, 0x29, 0x31, 0x21, 0x09)), 0xc0 | r.randrange(64)])
        if t < 0.56:  # test / cmp
            return r.choice((b"\x85\xc0", b"\x48\x85\xc0", b"\x48\x85\xff", b"\x84\xc0", b"\x45\x85\xe4")) \
                if r.random() < 0.5 else bytes([0x83, 0xf8 | reg, r.randrange(32)])
        if t < 0.70:  # jcc rel8 / jmp rel8
            return bytes([r.choice((0x74, 0x75, 0x7e, 0x7f, 0x78, 0x79, 0x72, 0x73, 0xeb)), r.randrange(2, 0x60)])
        if t < 0.76:  # jcc rel32
            return bytes([0x0f, r.choice((0x84, 0x85, 0x8e, 0x8f)), r.randrange(0x10, 0x200) & 0xff,
                          r.randrange(0, 3), 0, 0])
        if t < 0.82:  # mov r32, imm32 (small constants, error codes)
            v = r.choice((0, 1, 2, 4, 8, 16, 0x20, 0x100, 0x1000, -12, -22, -5, -19, -110, r.randrange(1 << 16)))
            return bytes([0xb8 | reg]) + le32(v)
        if t < 0.88:  # push / pop
            return bytes([r.choice((0x41, 0x40)), 0x50 | reg]) if r.random() < 0.4 else bytes([0x50 | reg])
        if t < 0.93:  # sub/add rsp, shifts, lea
            return bytes([0x48, 0x83, r.choice((0xec, 0xc4, 0xe0, 0xe8)), r.randrange(0, 0x80, 8)])
        if t < 0.97:  # nops
            return r.choice((b"\x0f\x1f\x44\x00\x00", b"\x0f\x1f\x40\x00", b"\x66\x90", b"\x90"))
        return bytes([0xc7, 0x40 | reg, r.randrange(0, 0x80, 8)]) + le32(r.choice((0, 1, r.randrange(1 << 12))))

    def code(self, r, n, linked):
        """n bytes of functions: prologue, body, epilogue, int3 to 16
        bytes. linked: calls and RIP-relative loads get rel32s to targets
        (as in an executable; BCJ filters help), else zeros (relocatable)."""
        pieces, total, starts = [], 0, []
        items, cum = self.items, self.cum
        while total < n:
            m = min(int(r.expovariate(1 / 30)) + 3, 400)
            body = r.choices(items, cum_weights=cum, k=m)
            # Fresh constants and offsets: real code is not only idioms.
            for _ in range(1 + m // 6):
                body.insert(r.randrange(m), FRESH[r.randrange(len(FRESH))] + r.randbytes(r.choice((1, 2, 4))))
            f = b"".join([self.prologues[r.randrange(6)], *body, self.epilogues[r.randrange(6)]])
            f += b"\xcc" * (-(total + len(f)) % 16)
            starts.append(total)
            pieces.append(f)
            total += len(f)
        blob = b"".join(pieces)[:n]
        if not linked:
            return blob.replace(CALL_MARK, b"\xe8\0\0\0\0").replace(RIP_MARK, b"\x48\x8b\x05\0\0\0\0")
        n_starts = len(starts)

        def call(m):
            at = m.start() + len(m.group(0))
            if m.group(0) == CALL_MARK:
                # Mostly to a few hundred popular functions, as real code calls.
                target = starts[min(int(r.paretovariate(0.7)), n_starts) - 1] if r.random() < 0.7 \
                    else starts[r.randrange(n_starts)]
            else:
                target = n + 0x1000 + 8 * r.randrange(4096)  # data after the code
            return m.group(0)[:-4] + le32(target - at)

        return re.sub(re.escape(CALL_MARK) + b"|" + re.escape(RIP_MARK), call, blob)


def text_strings(r, n, prefix):
    """n bytes of NUL-separated printk-like format strings."""
    out, total = [], 0
    fmts = ("%s: ", "%s %d ", "failed to %s: %d\n", "%s %s %pM\n", "%s: %u/%u\n", "invalid %s %#x\n", "%s\n")
    while total < n:
        k = r.randint(2, 7)
        s = (prefix + ": " if r.random() < 0.6 else "") + " ".join(r.choices(WORDS, k=k))
        s += r.choice(fmts).replace("%s", r.choice(WORDS), 1)
        b = s.encode() + b"\0"
        out.append(b)
        total += len(b)
    return b"".join(out)[:n]


def elf_header(e_type, shoff, shnum):
    h = b"\x7fELF\x02\x01\x01\x00" + b"\0" * 8
    h += le16(e_type) + le16(0x3E) + le32(1) + le64(0x1000 if e_type != 1 else 0)
    h += le64(64 if e_type != 1 else 0) + le64(shoff) + le32(0) + le16(64) + le16(56 if e_type != 1 else 0)
    h += le16(0 if e_type == 1 else 9) + le16(64) + le16(shnum) + le16(shnum - 1)
    return h


def section_headers(r, sizes, start):
    out, off = [b"\0" * 64], start
    for i, sz in enumerate(sizes):
        out.append(le32(1 + 9 * i) + le32(r.choice((1, 2, 3, 4, 8))) + le64(r.choice((2, 6, 0x32, 0x42)))
                   + le64(0) + le64(off) + le64(sz) + le32(0) + le32(0) + le64(r.choice((1, 8, 16, 64)))
                   + le64(r.choice((0, 24, 0))))
        off += sz
    return b"".join(out)


def symtab(r, names, text_size):
    syms, strtab, at = [b"\0" * 24], bytearray(b"\0"), 0
    for name in names:
        at += r.randrange(16, 600, 16)
        syms.append(le32(len(strtab)) + bytes([r.choice((0x02, 0x12, 0x10, 0x01)), 0]) + le16(r.choice((2, 3, 0)))
                    + le64(at % max(text_size, 1)) + le64(r.randrange(16, 2000)))
        strtab += name.encode() + b"\0"
    return b"".join(syms), bytes(strtab)


def relocations(r, n, text_size, n_syms):
    out, at = [], 0
    for _ in range(n):
        at += r.randrange(3, 90)
        out.append(le64(at % max(text_size, 1)) + le64((r.randrange(1, max(n_syms, 2)) << 32)
                                                    | r.choice((2, 4, 4, 4, 11, 1)))
                   + le64(r.choice((-4, -4, 0, r.randrange(-64, 64), r.randrange(1 << 16)))))
    return b"".join(out)


class Module:
    def __init__(self, index, subdir, name):
        self.index, self.subdir, self.name = index, subdir, name

    @property
    def path(self):
        return "kernel/drivers/%s/%s.ko" % (self.subdir, self.name)

    def first_version(self):
        return max(1, self.index - N_MODULES + 2)


def module_pool(seed, count):
    """Modules 0..count-1 of the endless list: module i's name depends on
    i and the names before it only."""
    pool, seen = [], set()
    for i in range(count):
        r = rng(seed, "module-name", i)
        name = "".join(r.choice(SYLLABLES) for _ in range(r.randint(2, 3)))
        if r.random() < 0.4:
            name += "_" + r.choice(WORDS)
        if name in seen:
            name += str(i)
        seen.add(name)
        pool.append(Module(i, r.choice(SUBDIRS), name))
    return pool


def modules_of(seed, version):
    pool = module_pool(seed, version - 1 + N_MODULES)
    return pool[version - 1:]


def unchanged_at(seed, step):
    """Indices of the modules left unchanged from release step-1 to step."""
    common = list(range(step - 1, step - 2 + N_MODULES))  # present in both
    return set(rng(seed, "unchanged", step).sample(common, UNCHANGED_PER_RELEASE))


def apply_edits(data, r, n_edits, vocab, keep=64):
    """n_edits small changes after the first @keep bytes: overwrite,
    insert or delete a few to a few hundred bytes."""
    b = bytearray(data)
    for _ in range(n_edits):
        pos = r.randrange(keep, len(b))
        op = r.random()
        if op < 0.4:
            k = r.randint(1, 24)
            b[pos:pos + k] = vocab.code(r, k, False)[:len(b[pos:pos + k])]
        elif op < 0.75:
            b[pos:pos] = vocab.code(r, r.randint(8, 400), False)
        else:
            del b[pos:pos + r.randint(4, 200)]
    return bytes(b)


def module_content(seed, vocab, mod, version):
    r = rng(seed, "module", mod.index)
    size = int(10240 * 15 ** r.random())  # 10-150 KB, log-uniform
    own = ["%s_%s" % (mod.name, w) for w in r.sample(WORDS, 12)]
    used = r.sample(EXPORTS, r.randint(8, 30))
    text_size = int(size * 0.56)
    rodata = text_strings(r, int(size * 0.08), mod.name)
    aliases = ["pci:v%08Xd%08Xsv*sd*bc*sc*i*" % (r.choice((0x8086, 0x10EC, 0x14E4, 0x1022, 0x10DE)),
                                                  r.randrange(1 << 16)) for _ in range(r.randint(0, 6))]
    modinfo = "".join("%s=%s\0" % kv for kv in
                      [("license", "GPL"), ("description", " ".join(r.choices(WORDS, k=4))),
                       ("author", "Some Developer <dev@example.org>")]
                      + [("alias", a) for a in aliases]
                      + [("depends", ""), ("retpoline", "Y"), ("intree", "Y"), ("name", mod.name),
                         ("vermagic", "6.1.0 SMP preempt mod_unload modversions ")]).encode()
    versions = b"".join(le64(r.getrandbits(32)) + s.encode().ljust(56, b"\0") for s in ["module_layout"] + used)
    n_syms = len(own) + len(used) + r.randint(20, 60)
    names = own + used + ["%s.%d" % (r.choice(own), j) for j in range(n_syms - len(own) - len(used))]
    syms, strtab = symtab(r, names, text_size)
    rela = relocations(r, int(size * 0.16) // 24, text_size, n_syms)
    # The code fills what the other sections leave of @size.
    rest = size - 64 - 64 * 8 - sum(len(x) for x in (rodata, modinfo, versions, rela, syms, strtab))
    text = vocab.code(r, max(rest, size // 4), False)
    secs = [text, rodata, modinfo, versions, rela, syms, strtab]
    body = b"".join(secs)
    data = elf_header(1, 64 + len(body), len(secs) + 1) + body + section_headers(r, [len(s) for s in secs], 64)
    for step in range(mod.first_version() + 1, version + 1):
        if mod.index in unchanged_at(seed, step):
            continue
        data = apply_edits(data, rng(seed, "module-edit", mod.index, step), rng(seed, "n-edits", mod.index, step)
                           .randint(1, 4), vocab)
    return data


def binary_content(seed, vocab, what, size, version, strings, edits_per_release, version_string=None):
    """An executable-like ELF of @size bytes: linked code, then
    strings(r, n); the edits of releases 2..@version; @version_string
    (if any) put just after the ELF header."""
    r = rng(seed, what)
    code = vocab.code(r, int(size * 0.78), True)
    data = elf_header(3, size, 30) + code + strings(r, size - len(code) - 64)
    for step in range(2, version + 1):
        data = apply_edits(data, rng(seed, what + "-edit", step), edits_per_release, vocab, keep=256)
    if version_string:
        vs = version_string.encode() + b"\0"
        data = data[:64] + vs + data[64 + len(vs):]
    return data


def busybox_strings(r, n):
    applets = sorted(set(r.choices(WORDS, k=300)))
    out = b"\0".join(a.encode() for a in applets) + b"\0"
    usage = text_strings(r, n - len(out), "busybox")
    return (out + usage)[:n]


def libc_strings(r, n):
    syms, total = [], 0
    while total < n // 2:  # a dynamic symbol table's names, then messages
        sym = r.choice(("__", "", "", "_IO_", "__libc_")) + "_".join(r.choices(WORDS, k=r.randint(1, 2)))
        if r.random() < 0.3:
            sym += "\0GLIBC_2.%d" % r.randrange(2, 37)
        syms.append(sym)
        total += len(sym) + 1
    out = "\0".join(syms).encode() + b"\0"
    return (out + text_strings(r, n - len(out), "libc"))[:n]


def kernel_strings(r, n):
    ksym = b"".join(le32(r.randrange(1 << 20)) + le32(r.randrange(1 << 16)) + le32(r.randrange(1 << 12))
                    for _ in range(n // 2 // 12))
    return (ksym + text_strings(r, n - len(ksym), "kernel"))[:n]


def ld_so_cache(seed, version):
    r = rng(seed, "ld.so.cache")
    libs = sorted({"lib%s.so.%d" % (r.choice(WORDS), r.randrange(0, 8)) for _ in range(420)})
    for step in range(2, version + 1):
        rs = rng(seed, "ld.so.cache-edit", step)
        for _ in range(3):
            i = rs.randrange(len(libs))
            base = libs[i].rsplit(".so.", 1)[0]
            libs[i] = "%s.so.%d" % (base, rs.randrange(0, 12))
        libs = sorted(set(libs))
    libs.sort(reverse=True)
    strings = bytearray()
    entries = []
    n = len(libs)
    header_len = 20 + 4 + 4 + 4 + 4 * 4 + 24 * n  # magic+version, nlibs, len_strings, flags/pad, ext, unused
    for lib in libs:
        key = header_len + len(strings)
        strings += lib.encode() + b"\0"
        val = header_len + len(strings)
        strings += ("/usr/lib/x86_64-linux-gnu/" + lib).encode() + b"\0"
        entries.append(struct.pack("<iIIIQ", 0x0303, key, val, 0, 0))
    head = b"glibc-ld.so.cache1.1" + le32(n) + le32(len(strings)) + bytes([2, 0, 0, 0]) + le32(0) + b"\0" * 12
    return head + b"".join(entries) + bytes(strings)


def init_script(version):
    kv = KVER % version
    return ("""#!/bin/sh
# initramfs init for %s (synthetic)
[ -d /dev ] || mkdir -m 0755 /dev
[ -d /root ] || mkdir -m 0700 /root
[ -d /sys ] || mkdir /sys
[ -d /proc ] || mkdir /proc
[ -d /tmp ] || mkdir /tmp
mkdir -p /var/lock
mount -t sysfs -o nodev,noexec,nosuid sysfs /sys
mount -t proc -o nodev,noexec,nosuid proc /proc
export MODPROBE_OPTIONS="-qb"
export ROOT= ROOTDELAY= ROOTFLAGS= ROOTFSTYPE= IP= DEVICE= BOOT= BOOTIF= RESUME=
export init=/sbin/init readonly=y rootmnt=/root debug= panic= blacklist= resume_offset=
. /conf/initramfs.conf
. /scripts/functions
maybe_break top
run_scripts /scripts/init-top
load_modules
starttime="$(_uptime)"
maybe_break mount
. /scripts/local
mount_root
mount -n -o move /sys ${rootmnt}/sys
mount -n -o move /proc ${rootmnt}/proc
echo "booting kernel %s" > /dev/kmsg
exec run-init ${drop_caps} "${rootmnt}" "${init}" "$@" <"${rootmnt}/dev/console" >"${rootmnt}/dev/console" 2>&1
""" % (kv, kv)).encode()


def shell_functions(seed, what, n, version):
    r = rng(seed, what, version // 2)  # changes every other release
    out, total = [], 0
    while total < n:
        name = "_".join(r.choices(WORDS, k=2))
        body = "\n".join("\t%s %s \"$%s\"" % (r.choice(("log_begin_msg", "echo", "[ -e", "modprobe", "mount")),
                                              r.choice(WORDS), r.choice(WORDS).upper()) for _ in range(r.randint(2, 8)))
        s = "%s()\n{\n%s\n}\n\n" % (name, body)
        out.append(s)
        total += len(s)
    return "".join(out).encode()


def microcode(seed):
    r = rng(seed, "microcode")
    total = r.randrange(20480, 40960, 1024)
    hdr = struct.pack("<IIIIIIIII", 1, 0xF0, 0x06172023, 0x000806EC, r.getrandbits(32), 1, 0x94, total - 48, total)
    return hdr + b"\0" * 12 + r.randbytes(total - 48)


# --- cpio ---------------------------------------------------------------------

def newc(entries, first_ino, mtime, r_ino):
    """A newc archive of entries (name, mode, data), the trailer, zero
    padding to 512 (as GNU cpio writes). Directories' nlink is 2 plus
    their subdirectories."""
    subdirs = {}
    for name, mode, _ in entries:
        if mode & 0o170000 == 0o040000 and name != ".":
            parent = name.rsplit("/", 1)[0] if "/" in name else "."
            subdirs[parent] = subdirs.get(parent, 0) + 1
    out = []
    at = 0
    ino = first_ino
    for name, mode, data in list(entries) + [("TRAILER!!!", 0, b"")]:
        trailer = name == "TRAILER!!!"
        nb = name.encode() + b"\0"
        is_dir = mode & 0o170000 == 0o040000
        nlink = 2 + subdirs.get(name, 0) if is_dir else 1
        fields = [0 if trailer else ino, mode, 0, 0, nlink, 0 if trailer else mtime, len(data),
                  0 if trailer else 8, 0 if trailer else 2, 0, 0, len(nb), 0]
        h = b"070701" + b"".join(b"%08X" % f for f in fields) + nb
        h += b"\0" * (-(at + len(h)) % 4)
        out.append(h)
        at += len(h)
        out.append(data + b"\0" * (-len(data) % 4))
        at += len(data) + (-len(data) % 4)
        ino += r_ino.randint(1, 40)
    out.append(b"\0" * (-at % 512))
    return b"".join(out)


def cpio_sorted(entries):
    """LC_ALL=C sort of find's output ("." and "./x"), names without "./"."""
    return sorted(entries, key=lambda e: b"." if e[0] == "." else b"./" + e[0].encode())


def add_dirs(entries):
    """The parent directories of every entry, once each."""
    names = {e[0] for e in entries}
    out = list(entries)
    for name, _, _ in entries:
        parts = name.split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            if d not in names:
                names.add(d)
                out.append((d, 0o040755, b""))
    if "." not in names:
        out.append((".", 0o040755, b""))
    return out


# --- The kernel -----------------------------------------------------------

SETUP_SECTS = 27


def bzimage(seed, vocab, version, kind, tmpdir):
    kv = KVER % version
    kernel = binary_content(seed, vocab, "vmlinux", 1536 * 1024, version, kernel_strings, 24,
                            "Linux version %s-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) "
                            "12.2.0) #1 SMP PREEMPT_DYNAMIC Debian 6.1.%d-1" % (kv, 60 + version))
    if kind != "xz":
        raise Failure("no bzImage payload kind %r" % kind)
    payload = run_tool(BZIMAGE_XZ, kernel, tmpdir, 0) + le32(len(kernel))
    r = rng(seed, "bzimage")  # the decompressor and setup do not change between releases
    setup = bytearray(vocab.code(r, (SETUP_SECTS + 1) * 512, True))
    boot = bytearray(0x1F1)  # the legacy boot sector: a message, zeros
    boot[0:5] = b"\xea\x05\x00\xc0\x07"
    msg = b"Use a boot loader.\r\n\nRemove disk and press any key to reboot...\r\n\0"
    boot[0x40:0x40 + len(msg)] = msg
    setup[0:0x1F1] = boot
    head = vocab.code(r, r.randrange(0x300, 0x500), True)
    tail = vocab.code(r, 24 * 1024 + r.randrange(4096), True)
    pm = head + payload + tail
    pm += b"\0" * (-(len(pm) + 4) % 16)
    kver_str = ("%s-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.1.%d-1"
                % (kv, 60 + version)).encode() + b"\0"
    kver_at = 0x3000
    setup[kver_at:kver_at + len(kver_str)] = kver_str
    setup[0x1F1] = SETUP_SECTS
    setup[0x1F2:0x1F4] = le16(1)                     # root_flags
    setup[0x1F4:0x1F8] = le32((len(pm) + 4) // 16)    # syssize
    setup[0x1F8:0x1FA] = le16(0)                      # ram_size
    setup[0x1FA:0x1FC] = le16(0xFFFF)                 # vid_mode
    setup[0x1FC:0x1FE] = le16(0)                      # root_dev
    setup[0x1FE:0x200] = b"\x55\xaa"
    setup[0x200:0x202] = b"\xeb\x6a"                  # jump over the header
    setup[0x202:0x206] = b"HdrS"
    setup[0x206:0x208] = le16(0x020F)
    setup[0x208:0x20E] = b"\0" * 6                    # realmode_swtch, start_sys_seg
    setup[0x20E:0x210] = le16(kver_at - 0x200)        # kernel_version
    setup[0x210] = 0                                  # type_of_loader
    setup[0x211] = 0x01                               # loadflags: LOADED_HIGH
    setup[0x212:0x214] = le16(0x8000)
    setup[0x214:0x218] = le32(0x100000)               # code32_start
    setup[0x218:0x230] = b"\0" * 0x18
    setup[0x230:0x234] = le32(0x200000)               # kernel_alignment
    setup[0x234] = 1                                  # relocatable_kernel
    setup[0x235] = 21                                 # min_alignment
    setup[0x236:0x238] = le16(0x7F)                   # xloadflags
    setup[0x238:0x23C] = le32(2047)                   # cmdline_size
    setup[0x23C:0x248] = b"\0" * 12
    setup[0x248:0x24C] = le32(len(head))              # payload_offset (from the protected-mode code)
    setup[0x24C:0x250] = le32(len(payload))           # payload_length, the le32 size included
    setup[0x250:0x260] = b"\0" * 16
    setup[0x260:0x264] = le32((len(kernel) * 5 // 4 + 0xFFF) & ~0xFFF)  # init_size
    setup[0x264:0x268] = le32(0x190)                  # handover_offset
    setup[0x268:0x26C] = le32(0x3000)                 # kernel_info_offset
    img = bytes(setup) + pm
    return img + le32(zlib.crc32(img))


def plain_kernel(seed, vocab, version):
    r = rng(seed, "plain-kernel")
    data = b"plain vmlinuz 6.1.0 (not a bzImage)\n\0" + r.randbytes(200 * 1024)
    for step in range(2, version + 1):
        data = apply_edits(data, rng(seed, "plain-kernel-edit", step), 4, vocab)
    return data


# --- The tree -------------------------------------------------------------------

def make_tree(outdir, version, kind, seed):
    early, initrd_kind, kernel_kind = parse_kind(kind)
    if not 1 <= version <= VERSION_MAX:
        raise Failure("VERSION must be an integer from 1 to %d" % VERSION_MAX, 2)
    try:
        os.makedirs(outdir)
    except OSError as e:
        raise Failure("%s: %s" % (outdir, e.strerror or e))
    try:
        with tempfile.TemporaryDirectory(prefix="transform-tree.") as tmpdir:
            build(outdir, version, early, initrd_kind, kernel_kind, seed, tmpdir)
    except BaseException:
        shutil.rmtree(outdir, ignore_errors=True)
        raise


def build(outdir, version, early, initrd_kind, kernel_kind, seed, tmpdir):
    vocab = Vocabulary(seed)
    kv = KVER % version
    mtime = EPOCH + (version - 1) * 30 * 86400
    files = {}  # path in the tree -> (mode, data)
    mods = modules_of(seed, version)
    moddir = "usr/lib/modules/%s/" % kv
    for m in mods:
        files[moddir + m.path] = (0o644, module_content(seed, vocab, m, version))
    files["usr/bin/busybox"] = (0o755, binary_content(seed, vocab, "busybox", 300 * 1024, version, busybox_strings, 3,
                                                      "BusyBox v1.35.0 (Debian 1:1.35.0-4+b%d) multi-call binary." % version))
    files["usr/lib/x86_64-linux-gnu/libc.so.6"] = (0o755, binary_content(seed, vocab, "libc", 400 * 1024, 1,
                                                                         libc_strings, 0))
    files["etc/hostname"] = (0o644, b"device\n")
    files["etc/os-release"] = (0o644, ('PRETTY_NAME="Synthetic OS release %d"\nNAME="Synthetic OS"\n'
                                       'VERSION_ID="%d"\nID=synthetic\nKERNEL="%s"\n' % (version, version, kv)).encode())
    files["etc/fstab"] = (0o644, b"# <file system> <mount point> <type> <options> <dump> <pass>\n"
                                 b"LABEL=root / ext4 errors=remount-ro 0 1\nLABEL=boot /boot vfat defaults 0 2\n")
    files["etc/passwd"] = (0o644, b"root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
                                  b"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
    files["etc/group"] = (0o644, b"root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n")

    # The initrd's main archive.
    entries = [(name, 0o100000 | mode, data) for name, (mode, data) in files.items()
               if name.startswith(moddir) or name in ("usr/bin/busybox", "usr/lib/x86_64-linux-gnu/libc.so.6")]
    rd = rng(seed, "modules.dep", version)
    paths = sorted(m.path for m in mods)
    dep = "".join("%s:%s\n" % (p, "".join(" " + d for d in rd.sample(paths, rd.choice((0, 0, 0, 1, 2)))))
                  for p in paths)
    alias = "# Aliases extracted from modules themselves.\n" + "".join(
        "alias %s %s\n" % (a, m.name) for m in sorted(mods, key=lambda m: m.name)
        for a in ["pci:v%08Xd%08Xsv*sd*bc*sc*i*" % (0x8086, rng(seed, "alias", m.index).randrange(1 << 16))]
        + ["of:N*T*Cvendor,%s" % m.name.replace("_", "-")])
    entries += [
        (moddir + "modules.dep", 0o100644, dep.encode()),
        (moddir + "modules.alias", 0o100644, alias.encode()),
        ("etc/ld.so.cache", 0o100644, ld_so_cache(seed, version)),
        ("etc/ld.so.conf", 0o100644, b"include /etc/ld.so.conf.d/*.conf\n"),
        ("init", 0o100755, init_script(version)),
        ("conf/initramfs.conf", 0o100644, b"MODULES=most\nBUSYBOX=auto\nKEYMAP=n\nCOMPRESS=zstd\n"
                                          b"DEVICE=\nNFSROOT=auto\nRUNSIZE=10%\nFSTYPE=auto\n"),
        ("conf/arch.conf", 0o100644, b"DPKG_ARCH=amd64\n"),
        ("scripts/functions", 0o100644, shell_functions(seed, "functions", 12000, version)),
        ("scripts/local", 0o100644, shell_functions(seed, "local", 5000, version)),
        ("bin", 0o120777, b"usr/bin"),
        ("lib", 0o120777, b"usr/lib"),
        ("sbin", 0o120777, b"usr/sbin"),
        ("usr/bin/sh", 0o120777, b"busybox"),
        ("usr/sbin", 0o040755, b""),
        ("run", 0o040755, b""),
        ("var", 0o040755, b""),
    ]
    main_cpio = newc(cpio_sorted(add_dirs(entries)), 1000 + 10000 * version, mtime, rng(seed, "ino", version))
    initrd = b""
    if early:
        ucode = [("kernel/x86/microcode/GenuineIntel.bin", 0o100644, microcode(seed))]
        initrd = newc(cpio_sorted(add_dirs(ucode)), 100, mtime, rng(seed, "early-ino", version))
    initrd += compress(initrd_kind, main_cpio, tmpdir, mtime)
    files["boot/initrd.img-" + kv] = (0o644, initrd)
    if kernel_kind:
        files["boot/vmlinuz-" + kv] = (0o644, bzimage(seed, vocab, version, kernel_kind, tmpdir))
    else:
        files["boot/vmlinuz-" + kv] = (0o644, plain_kernel(seed, vocab, version))

    for name in sorted(files):
        mode, data = files[name]
        p = os.path.join(outdir, name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
        os.chmod(p, mode)


# --- Self-check -----------------------------------------------------------

def parse_newc(buf, at=0):
    """Entries [(name, mode, ino, mtime, data)] of the archive at @at and
    the offset just after its trailer; ValueError if malformed."""
    out = []
    while True:
        if buf[at:at + 6] != b"070701":
            raise ValueError("no newc magic at %d" % at)
        f = [int(buf[at + 6 + 8 * i:at + 14 + 8 * i], 16) for i in range(13)]
        namesize, size = f[11], f[6]
        name = buf[at + 110:at + 110 + namesize - 1].decode()
        if buf[at + 110 + namesize - 1] != 0:
            raise ValueError("name not NUL-terminated at %d" % at)
        d = at + 110 + namesize
        d += -d % 4
        if d % 4:
            raise ValueError("data misaligned")
        if name == "TRAILER!!!":
            return out, d + size
        out.append((name, f[1], f[0], f[5], buf[d:d + size]))
        at = d + size
        at += -at % 4


def decompress_kind(kind, data):
    if kind == "plain":
        return data
    tool = {"zlib": None, "gnu-": None, "zstd": ["zstd", "-q", "-d", "-c"], "xz-6": ["xz", "-d", "-c"],
            "xz-9": ["xz", "-d", "-c"]}[kind[:4]]
    if tool is None:
        d = zlib.decompressobj(31)
        out = d.decompress(data) + d.flush()
        if not d.eof or d.unused_data:
            raise ValueError("gzip stream does not end the file")
        return out
    return subprocess.run(tool, input=data, stdout=subprocess.PIPE, check=True).stdout


def selfcheck(seed):
    import hashlib
    import json
    import time
    n, failed = 0, 0

    def report(good, desc, detail=""):
        nonlocal n, failed
        n += 1
        print(("ok" if good else "not ok") + " %d - %s" % (n, desc))
        if not good:
            failed += 1
            for line in str(detail).splitlines()[:20]:
                print("# " + line)

    def tree_files(root):
        out = {}
        for dp, _, fns in os.walk(root):
            for fn in fns:
                p = os.path.join(dp, fn)
                with open(p, "rb") as f:
                    out[os.path.relpath(p, root)] = f.read()
        return out

    tool = os.environ.get("DF_TEST_TOOL")

    def detect_check(kind, root, kv, tree, early, ikind, kkind):
        """What df-test-tool detect --hash finds: the frame, and in its
        cpio every tree file the initrd copies, by name and SHA-256."""
        p = os.path.join(root, "boot/initrd.img-" + kv)
        out = subprocess.run([tool, "detect", "--hash", p], stdout=subprocess.PIPE, check=True).stdout.decode()
        objs = [json.loads(line) for line in out.splitlines()]
        segs = [o for o in objs if "seg" in o and "entry" not in o]
        shape = [(s["depth"], s["kind"]) for s in segs]
        frame = {"zlib": "gzip", "gnu-": "gzip", "garb": "plain", "zstd": "zstd", "xz-6": "xz", "xz-9": "xz",
                 "plai": "cpio"}[ikind[:4]]
        want = [(0, "cpio"), (0, "zero")] if early else []
        want += {"plain": [(0, "cpio"), (0, "zero")], "garbled": [(0, "plain")]}.get(ikind, [(0, frame), (1, "cpio"),
                                                                                                  (1, "zero")])
        problems = [] if shape == want else ["segments %s, wanted %s" % (shape, want)]
        if ikind != "garbled":
            main = [s["seg"] for s in segs if s["kind"] == "cpio"][-1]
            got = {o["name"]: o.get("sha256") for o in objs if "entry" in o and o["seg"] == main}
            for name, data in tree.items():
                if (name.endswith(".ko") or name.startswith("usr/bin") or name.startswith("usr/lib/x86")) \
                        and got.get(name) != hashlib.sha256(data).hexdigest():
                    problems.append("%s: not in the initrd's main archive with its SHA-256" % name)
        report(not problems, "%s: df-test-tool detect --hash on the initrd: %s" % (kind, " ".join(
            "%s%s" % ("  " * d, k) for d, k in shape)), "\n".join(problems) + "\n" + out[-3000:])
        if kkind:
            p = os.path.join(root, "boot/vmlinuz-" + kv)
            out = subprocess.run([tool, "detect", p], stdout=subprocess.PIPE, check=True).stdout.decode()
            segs = [json.loads(line) for line in out.splitlines()][:-1]
            shape = [s["kind"] for s in segs]
            good = shape == ["bzimage-setup", "plain", kkind, "plain", "plain"] and \
                "bzimage-payload" in segs[2]["flags"] and "checked" in segs[2]["flags"] and segs[3]["length"] == 4
            report(good, "%s: df-test-tool detect on the kernel: %s" % (kind, " ".join(shape)), out)
    T = tempfile.mkdtemp(prefix="transform-tree-check.")
    try:
        me = os.path.abspath(__file__)
        r = subprocess.run([sys.executable, me, os.path.join(T, "x"), "1", "lzip-9"], stderr=subprocess.PIPE)
        report(r.returncode == 2 and b"unknown kind" in r.stderr and not os.path.exists(os.path.join(T, "x")),
               "an unknown kind: exit 2, nothing made", r.stderr)
        kinds = ["zlib-gzip-6", "gnu-gzip-6", "gnu-gzip-9n", "zstd-9-mt", "zstd-9-pipe", "zstd-9-mt-1m", "xz-6-mt",
                 "bzimage-xz", "plain", "garbled", "no-early-zstd-9-st"]
        for kind in kinds:
            t0 = time.monotonic()
            for v in (1, 2):
                make_tree(os.path.join(T, "%s-%d" % (kind, v)), v, kind, seed)
            dt = (time.monotonic() - t0) / 2
            a, b = (tree_files(os.path.join(T, "%s-%d" % (kind, v))) for v in (1, 2))
            size = sum(len(d) for d in b.values())
            kv = KVER % 2
            initrd = b["boot/initrd.img-" + kv]
            print("# %s: %.2f s per tree; release 2: tree %d bytes, initrd %d bytes" % (kind, dt, size, len(initrd)))
            early, ikind, kkind = parse_kind(kind)
            if tool:
                detect_check(kind, os.path.join(T, "%s-2" % kind), kv, b, early, ikind, kkind)
            at, problems, ents = 0, [], []
            try:
                if early:
                    ents, end = parse_newc(initrd)
                    if [e[0] for e in ents][-1] != "kernel/x86/microcode/GenuineIntel.bin" or not \
                            20480 <= len(ents[-1][4]) <= 40960:
                        problems.append("early archive: %s" % [e[0] for e in ents])
                    at = end + (-end % 512)
                    if initrd[end:at] != b"\0" * (at - end) or at % 512:
                        problems.append("early archive not padded to 512")
                if kind.endswith("garbled"):
                    try:
                        decompress_kind("gnu-gzip", initrd[at:])
                        problems.append("the garbled stream decompressed")
                    except (zlib.error, ValueError):
                        pass
                    report(not problems, "%s: early archive, a gzip stream that fails its CRC" % kind,
                           "\n".join(problems))
                    continue
                main = decompress_kind(ikind, initrd[at:])
                ents, end = parse_newc(main)
                if main[end:] != b"\0" * (len(main) - end) or len(main) % 512:
                    problems.append("main archive: %d bytes after the trailer, not zero padding to 512"
                                    % (len(main) - end))
                names = [e[0] for e in ents]
                if names[0] != "." or names != sorted(names, key=lambda x: b"." if x == "." else b"./" + x.encode()):
                    problems.append("entries not in order")
                if len(set(e[2] for e in ents)) != len(ents) or len(set(e[3] for e in ents)) != 1:
                    problems.append("inodes not unique or mtimes differ")
                files = {e[0]: e[4] for e in ents if e[1] & 0o170000 == 0o100000}
                same = [p for p in b if p in files and files[p] == b[p]]
                mods = [p for p in b if p.endswith(".ko")]
                if sorted(same) != sorted(mods + ["usr/bin/busybox", "usr/lib/x86_64-linux-gnu/libc.so.6"]):
                    problems.append("the initrd's copies of the tree's files: %d of %d" % (len(same), len(mods) + 2))
                only = sorted(set(files) - set(b))
                if not {"init", "etc/ld.so.cache", "usr/lib/modules/%s/modules.dep" % kv} <= set(only):
                    problems.append("initrd-only files: %s" % only)
            except (ValueError, subprocess.CalledProcessError, zlib.error, IndexError) as e:
                problems.append("parse: %r" % e)
            report(not problems, "%s: initrd parsed, tree files byte-identical inside (%d entries)"
                   % (kind, len(ents) if not problems else 0), "\n".join(problems))
            if kkind:
                k = b["boot/vmlinuz-" + kv]
                sects = k[0x1F1]
                pm = (sects + 1) * 512
                poff, plen = struct.unpack_from("<II", k, 0x248)
                payload = k[pm + poff:pm + poff + plen]
                try:
                    content = subprocess.run(["xz", "-d", "-c"], input=payload[:-4], stdout=subprocess.PIPE,
                                             check=True).stdout
                    good = k[0x202:0x206] == b"HdrS" and struct.unpack("<I", payload[-4:])[0] == len(content) \
                        and 1400000 < len(content) < 1700000
                    report(good, "%s: bzImage payload is xz of %d bytes, size appended" % (kind, len(content)))
                except subprocess.CalledProcessError as e:
                    report(False, "%s: bzImage payload decompresses" % kind, e)
        # Releases: what changes.
        a, b = (tree_files(os.path.join(T, "zstd-9-mt-%d" % v)) for v in (1, 2))
        ma = {p.split("/kernel/", 1)[1]: d for p, d in a.items() if p.endswith(".ko")}
        mb = {p.split("/kernel/", 1)[1]: d for p, d in b.items() if p.endswith(".ko")}
        added, removed = set(mb) - set(ma), set(ma) - set(mb)
        unchanged = [p for p in mb if ma.get(p) == mb[p]]
        sizes = sorted(len(d) for d in mb.values())
        report(len(ma) == len(mb) == N_MODULES and len(added) == len(removed) == 1
               and len(unchanged) == UNCHANGED_PER_RELEASE, "release 1 -> 2: %d modules, 1 added, 1 removed, "
               "%d unchanged; sizes %d..%d" % (len(mb), len(unchanged), sizes[0], sizes[-1]))
        small = [(p, len(ma[p]), len(mb[p])) for p in mb if p in ma and abs(len(ma[p]) - len(mb[p])) > 2000]
        report(not small, "release 1 -> 2: every module's size within 2000 bytes", small)
        libc = "usr/lib/x86_64-linux-gnu/libc.so.6"
        report(a[libc] == b[libc] and a["usr/bin/busybox"] != b["usr/bin/busybox"],
               "libc the same in both releases, busybox not")
        ratios = []
        for what, data in [("modules", b"".join(mb.values())), ("busybox", b["usr/bin/busybox"]), ("libc", b[libc])]:
            gz = len(zlib.compress(data, 6))
            xz = len(subprocess.run(["xz", "-6", "-c"], input=data, stdout=subprocess.PIPE, check=True).stdout)
            ratios.append((what, round(len(data) / gz, 2), round(len(data) / xz, 2)))
        report(all(2 <= g <= 4 and 2 <= x <= 4.5 for _, g, x in ratios),
               "compression ratios (gzip -6 2-4x, xz -6 2-4.5x; modules together): %s" % ratios)
        # Determinism.
        make_tree(os.path.join(T, "again"), 2, "zstd-9-mt", seed)
        report(tree_files(os.path.join(T, "again")) == b, "the same arguments make the same tree")
        make_tree(os.path.join(T, "other"), 2, "zstd-9-mt", seed + 1)
        report(tree_files(os.path.join(T, "other"))[libc] != b[libc], "another seed, another tree")
    finally:
        if failed == 0:
            shutil.rmtree(T, ignore_errors=True)
        else:
            print("# kept %s" % T)
    print("1..%d" % n)
    return failed == 0


# --- Main -----------------------------------------------------------------------

USAGE = "usage: transform-tree.py OUTDIR VERSION KIND [--seed=N] | --list-kinds [--all] | --selfcheck [--seed=N]"


def main(argv):
    seed = DEFAULT_SEED
    pos, flags = [], set()
    for a in argv:
        if a.startswith("--seed="):
            try:
                seed = int(a[len("--seed="):])
            except ValueError:
                raise Failure("bad --seed: %s" % a, 2)
        elif a in ("--list-kinds", "--all", "--selfcheck"):
            flags.add(a)
        elif a in ("-h", "--help"):
            print(__doc__)
            return 0
        elif a.startswith("-") and a != "-":
            raise Failure("unknown option %s (see --help)" % a, 2)
        else:
            pos.append(a)
    if "--list-kinds" in flags:
        print("\n".join(ALL_KINDS if "--all" in flags else BASE_KINDS))
        return 0
    if "--selfcheck" in flags:
        return 0 if selfcheck(seed) else 1
    if len(pos) != 3:
        raise Failure(USAGE, 2)
    try:
        version = int(pos[1])
    except ValueError:
        raise Failure("VERSION must be an integer: %s" % pos[1], 2)
    make_tree(pos[0], version, pos[2], seed)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Failure as e:
        print("transform-tree.py: %s" % e, file=sys.stderr)
        sys.exit(e.code)
