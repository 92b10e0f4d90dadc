#!/usr/bin/env python3
"""Interoperability of vireo's block layer with QEMU's qcow2: images written by qemu-img/qemu-io
are read and written by vireo, images written by vireo pass `qemu-img check` and read back
byte-identical through `qemu-img convert -O raw`. Exits 77 (skip) when qemu-img is absent.
Usage: img_interop_test.py VIREO BLKIO"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

VIREO, BLKIO = sys.argv[1], sys.argv[2]
if not shutil.which("qemu-img") or not shutil.which("qemu-io"):
    print("SKIP: qemu-img/qemu-io not installed (apt-get install qemu-utils)")
    sys.exit(77)

MIB = 1 << 20
failures = []
passed = 0


class Fail(Exception):
    pass


def sh(args, ok=(0,)):
    p = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    if p.returncode not in ok:
        raise Fail(f"{' '.join(map(str, args))}: exit {p.returncode}\n{p.stdout}{p.stderr}")
    if "Sanitizer" in p.stderr or "runtime error" in p.stderr:
        raise Fail(f"{' '.join(map(str, args))}: sanitizer report\n{p.stderr}")
    return p


def vireo(*args, ok=(0,)):
    return sh([VIREO, "img"] + list(args), ok)


def blkio(path, *cmds, fmt=None):
    return sh([BLKIO] + (["-f", fmt] if fmt else []) + [path] + list(cmds))


def qemu_io(path, *cmds, fmt="qcow2"):
    args = ["qemu-io", "-f", fmt]
    for c in cmds:
        args += ["-c", c]
    p = sh(args + [path])
    if "error" in p.stdout.lower() or "fail" in p.stdout.lower():
        raise Fail(f"qemu-io {cmds}: {p.stdout}")
    return p


def qemu_check(path):
    p = sh(["qemu-img", "check", "--output=json", path], ok=(0, 2, 3))
    r = json.loads(p.stdout)
    if p.returncode or r.get("corruptions", 0) or r.get("leaks", 0):
        raise Fail(f"qemu-img check {path}: exit {p.returncode}: {p.stdout}")


class Model:
    """Expected guest-visible content, as a sparse dict of 64 KiB pages."""

    PAGE = 64 * 1024

    def __init__(self, size):
        self.size = size
        self.pages = {}

    def fill(self, off, length, byte):
        while length:
            p, o = divmod(off, self.PAGE)
            n = min(length, self.PAGE - o)
            page = self.pages.setdefault(p, bytearray(self.PAGE))
            page[o:o + n] = bytes([byte]) * n
            off += n
            length -= n

    def check_raw(self, raw_path, what):
        if os.path.getsize(raw_path) != self.size:
            raise Fail(f"{what}: size {os.path.getsize(raw_path)} != {self.size}")
        zero = bytes(self.PAGE)
        with open(raw_path, "rb") as f:
            # Pages the model never touched must read as zeros; read only where data may be
            # (SEEK_DATA), so multi-GiB sparse files stay cheap.
            fd = f.fileno()
            off = 0
            while off < self.size:
                try:
                    off = os.lseek(fd, off, os.SEEK_DATA)
                except OSError:
                    break
                f.seek(off)
                chunk = f.read(min(8 * MIB, self.size - off))
                for i in range(0, len(chunk), self.PAGE):
                    p = (off + i) // self.PAGE
                    want = self.pages.get(p, zero)[:len(chunk) - i]
                    if chunk[i:i + self.PAGE] != want:
                        raise Fail(f"{what}: content differs in page at {(off + i):#x}")
                off += len(chunk)
            for p, data in self.pages.items():
                f.seek(p * self.PAGE)
                got = f.read(self.PAGE)
                if got != bytes(data[:len(got)]):
                    raise Fail(f"{what}: content differs in page at {p * self.PAGE:#x}")


def via_qemu(path, model, tmp, what):
    raw = os.path.join(tmp, "q-out.raw")
    if os.path.exists(raw):
        os.unlink(raw)
    sh(["qemu-img", "convert", "-O", "raw", path, raw])
    model.check_raw(raw, f"{what} (read by qemu)")
    os.unlink(raw)


def via_vireo(path, model, tmp, what):
    raw = os.path.join(tmp, "v-out.raw")
    if os.path.exists(raw):
        os.unlink(raw)
    vireo("convert", "-O", "raw", path, raw)
    model.check_raw(raw, f"{what} (read by vireo)")
    os.unlink(raw)


def case(fn):
    global passed
    with tempfile.TemporaryDirectory() as tmp:
        try:
            fn(tmp)
            passed += 1
            print(f"ok   {fn.__name__}")
        except Fail as e:
            failures.append(f"{fn.__name__}: {e}")
            print(f"FAIL {fn.__name__}: {e}")
    return fn


@case
def qemu_written_read_by_vireo(tmp):
    img = os.path.join(tmp, "q.qcow2")
    sh(["qemu-img", "create", "-f", "qcow2", img, "64M"])
    m = Model(64 * MIB)
    qemu_io(img, "write -P 0x11 0 1M", "write -P 0x22 3M 4k", "write -P 0x33 70000 1000",
            "write -z 8M 1M", "write -P 0x44 63M 1M")
    m.fill(0, MIB, 0x11)
    m.fill(3 * MIB, 4096, 0x22)
    m.fill(70000, 1000, 0x33)
    m.fill(63 * MIB, MIB, 0x44)
    via_qemu(img, m, tmp, "qemu image")
    via_vireo(img, m, tmp, "qemu image")
    vireo("check", img)


@case
def qemu_chain_depth3_vireo_writes(tmp):
    base = os.path.join(tmp, "base.qcow2")
    mid = os.path.join(tmp, "mid.qcow2")
    top = os.path.join(tmp, "top.qcow2")
    m = Model(32 * MIB)
    sh(["qemu-img", "create", "-f", "qcow2", base, "32M"])
    qemu_io(base, "write -P 0xa1 0 8M")
    m.fill(0, 8 * MIB, 0xa1)
    sh(["qemu-img", "create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", mid])
    qemu_io(mid, "write -P 0xb2 1M 1M", "write -z 2M 64k")
    m.fill(MIB, MIB, 0xb2)
    m.fill(2 * MIB, 65536, 0)
    sh(["qemu-img", "create", "-f", "qcow2", "-b", mid, "-F", "qcow2", top])
    qemu_io(top, "write -P 0xc3 4M 100k")
    m.fill(4 * MIB, 100 * 1024, 0xc3)
    via_vireo(top, m, tmp, "qemu chain")
    # Partial-cluster writes over backing data (copy-on-write), zeroes and discard.
    blkio(top, "write 0xd4 5000 3000", "write 0xd5 1048000 2000", "zero 6M 1M",
          "discard 7M 128K", "write 0xd6 30M 64K")
    m.fill(5000, 3000, 0xd4)
    m.fill(1048000, 2000, 0xd5)
    m.fill(6 * MIB, MIB, 0)
    m.fill(7 * MIB, 128 * 1024, 0)
    m.fill(30 * MIB, 65536, 0xd6)
    qemu_check(top)
    qemu_check(mid)
    qemu_check(base)
    via_qemu(top, m, tmp, "chain after vireo writes")
    via_vireo(top, m, tmp, "chain after vireo writes")


@case
def vireo_chain_depth4_read_by_qemu(tmp):
    m = Model(48 * MIB)
    names = ["l0.qcow2", "l1.qcow2", "l2.qcow2", "l3.qcow2"]
    paths = [os.path.join(tmp, n) for n in names]
    vireo("create", "-f", "qcow2", paths[0], "48M")
    blkio(paths[0], "write 0x10 0 16M")
    m.fill(0, 16 * MIB, 0x10)
    for i in range(1, 4):
        # Relative backing names, resolved against the overlay's directory.
        vireo("create", "-f", "qcow2", "-b", names[i - 1], "-F", "qcow2", paths[i])
        off = i * 3 * MIB + 12345
        blkio(paths[i], f"write {0x10 + i} {off} 200000")
        m.fill(off, 200000, 0x10 + i)
    blkio(paths[3], "zero 1M 2M", "discard 40M 1M", "write 0x7f 47M 1M")
    m.fill(MIB, 2 * MIB, 0)
    m.fill(47 * MIB, MIB, 0x7f)
    for p in paths:
        qemu_check(p)
    via_qemu(paths[3], m, tmp, "vireo chain")
    via_vireo(paths[3], m, tmp, "vireo chain")
    info = json.loads(vireo("info", "--json", paths[3]).stdout)
    if len(info["backing-chain"]) != 4:
        raise Fail(f"info: chain of {len(info['backing-chain'])}")
    qinfo = json.loads(sh(["qemu-img", "info", "--output=json", "--backing-chain",
                           paths[3]]).stdout)
    if len(qinfo) != 4:
        raise Fail("qemu sees a different chain")


@case
def zero_and_discard_over_backing(tmp):
    base = os.path.join(tmp, "b.qcow2")
    top = os.path.join(tmp, "t.qcow2")
    vireo("create", base, "8M")
    blkio(base, "write 0x55 0 8M")
    vireo("create", "-b", "b.qcow2", "-F", "qcow2", top)
    blkio(top, "write 0x66 0 2M", "zero 0 1M", "discard 1M 1M", "zero 4M 512K",
          "discard 6M 64K")
    m = Model(8 * MIB)
    m.fill(0, 8 * MIB, 0x55)
    m.fill(0, 2 * MIB, 0)
    m.fill(4 * MIB, 512 * 1024, 0)
    m.fill(6 * MIB, 65536, 0)
    qemu_check(top)
    via_qemu(top, m, tmp, "zero/discard")
    # qemu's view of the map: the zeroed ranges must not be data.
    mp = json.loads(sh(["qemu-img", "map", "--output=json", top]).stdout)
    for e in mp:
        if e["start"] < MIB and e["data"] and e["depth"] == 0:
            raise Fail(f"zeroed range still allocated as data: {e}")


@case
def large_sparse_images(tmp):
    size = 6 * 1024 * MIB
    v = os.path.join(tmp, "v.qcow2")
    q = os.path.join(tmp, "q.qcow2")
    m = Model(size)
    vireo("create", v, "6G")
    blkio(v, "write 0x71 5G 1M", "write 0x72 4294967000 1000", "write 0x73 6143M 1M")
    m.fill(5 * 1024 * MIB, MIB, 0x71)
    m.fill(4294967000, 1000, 0x72)
    m.fill(6143 * MIB, MIB, 0x73)
    qemu_check(v)
    qemu_io(v, "read -P 0x71 5G 1M", "read -P 0x72 4294967000 1000", "read -P 0 4100M 1M")
    via_vireo(v, m, tmp, "6G vireo image")
    sh(["qemu-img", "create", "-f", "qcow2", q, "6G"])
    qemu_io(q, "write -P 0x81 5G 64k", "write -P 0x82 4G 4k")
    blkio(q, "read 0x81 5G 64K", "read 0x82 4G 4K", "read 0 1G 1M", "write 0x83 5G 4K")
    qemu_io(q, "read -P 0x83 5G 4k", "read -P 0x81 5368713216 61440")
    qemu_check(q)
    if os.stat(v).st_blocks * 512 > 64 * MIB:
        raise Fail("6G image is not sparse")


@case
def compressed_clusters(tmp):
    src = os.path.join(tmp, "src.qcow2")
    comp = os.path.join(tmp, "c.qcow2")
    sh(["qemu-img", "create", "-f", "qcow2", src, "16M"])
    qemu_io(src, "write -P 0x91 0 4M", "write -P 0x92 8M 100k")
    sh(["qemu-img", "convert", "-c", "-O", "qcow2", src, comp])
    m = Model(16 * MIB)
    m.fill(0, 4 * MIB, 0x91)
    m.fill(8 * MIB, 100 * 1024, 0x92)
    via_vireo(comp, m, tmp, "compressed image")
    # Overwrite part of a compressed cluster: copy-on-write out of the compressed data.
    blkio(comp, "write 0x93 10000 100", "discard 1M 1M")
    m.fill(10000, 100, 0x93)
    m.fill(MIB, MIB, 0)
    qemu_check(comp)
    via_qemu(comp, m, tmp, "compressed after writes")


@case
def small_clusters_refcount_growth(tmp):
    # 512-byte clusters: one refcount table cluster covers 8 MiB, so 12 MiB of data forces new
    # refcount blocks and a larger refcount table.
    img = os.path.join(tmp, "s.qcow2")
    vireo("create", "-o", "cluster_size=512", img, "64M")
    m = Model(64 * MIB)
    cmds = []
    for i in range(12):
        cmds.append(f"write {0x20 + i} {i * 5 * MIB} 1M")
        m.fill(i * 5 * MIB, MIB, 0x20 + i)
    blkio(img, *cmds)
    qemu_check(img)
    via_qemu(img, m, tmp, "512-byte clusters")
    vireo("check", img)


@case
def refcount_widths(tmp):
    for bits in (1, 2, 8, 32, 64):
        for maker in ("vireo", "qemu"):
            img = os.path.join(tmp, f"r{bits}{maker}.qcow2")
            if maker == "vireo":
                vireo("create", "-o", f"refcount_bits={bits}", img, "16M")
            else:
                sh(["qemu-img", "create", "-f", "qcow2", "-o", f"refcount_bits={bits}", img,
                    "16M"])
            blkio(img, "write 0xe1 0 3M", "discard 1M 1M", "write 0xe2 2M 100K",
                  "write 0xe3 10M 1M")
            m = Model(16 * MIB)
            m.fill(0, 3 * MIB, 0xe1)
            m.fill(MIB, MIB, 0)
            m.fill(2 * MIB, 100 * 1024, 0xe2)
            m.fill(10 * MIB, MIB, 0xe3)
            qemu_check(img)
            via_qemu(img, m, tmp, f"refcount_bits={bits} ({maker})")
            vireo("check", img)


@case
def qcow2_v2_images(tmp):
    base = os.path.join(tmp, "b2.qcow2")
    top = os.path.join(tmp, "t2.qcow2")
    sh(["qemu-img", "create", "-f", "qcow2", "-o", "compat=0.10", base, "8M"])
    qemu_io(base, "write -P 0x31 0 8M")
    sh(["qemu-img", "create", "-f", "qcow2", "-o", "compat=0.10", "-b", base, "-F", "qcow2",
        top])
    blkio(top, "write 0x32 100 100", "zero 1M 1M", "discard 2M 64K")
    m = Model(8 * MIB)
    m.fill(0, 8 * MIB, 0x31)
    m.fill(100, 100, 0x32)
    m.fill(MIB, MIB, 0)
    m.fill(2 * MIB, 65536, 0x31)  # v2 has no zero flag: a discard shows the backing file
    qemu_check(top)
    via_qemu(top, m, tmp, "v2 image")
    via_vireo(top, m, tmp, "v2 image")


@case
def raw_backing_and_convert(tmp):
    raw = os.path.join(tmp, "base.raw")
    top = os.path.join(tmp, "top.qcow2")
    vireo("create", "-f", "raw", raw, "10M")
    blkio(raw, "write 0x41 1M 1M", fmt="raw")
    vireo("create", "-b", "base.raw", "-F", "raw", top)
    blkio(top, "write 0x42 1536K 8K")
    m = Model(10 * MIB)
    m.fill(MIB, MIB, 0x41)
    m.fill(1536 * 1024, 8192, 0x42)
    qemu_check(top)
    via_qemu(top, m, tmp, "raw backing")
    out = os.path.join(tmp, "out.qcow2")
    vireo("convert", "-O", "qcow2", top, out)
    qemu_check(out)
    via_qemu(out, m, tmp, "converted to qcow2")
    if os.path.getsize(out) > 4 * MIB:
        raise Fail("converted image is not sparse")
    back = os.path.join(tmp, "back.raw")
    vireo("convert", "-f", "qcow2", "-O", "raw", out, back)
    m.check_raw(back, "converted back to raw")
    if os.stat(back).st_blocks * 512 > 3 * MIB:
        raise Fail("converted raw is not sparse")


@case
def overlay_switch(tmp):
    img = os.path.join(tmp, "disk.qcow2")
    ov = os.path.join(tmp, "snap1.qcow2")
    ov2 = os.path.join(tmp, "snap2.qcow2")
    vireo("create", img, "8M")
    blkio(img, "write 0x51 0 2M", f"overlay {ov}", "write 0x52 1M 100", f"overlay {ov2}",
          "write 0x53 4M 1M")
    m = Model(8 * MIB)
    m.fill(0, 2 * MIB, 0x51)
    m.fill(MIB, 100, 0x52)
    m.fill(4 * MIB, MIB, 0x53)
    for p in (img, ov, ov2):
        qemu_check(p)
    via_qemu(ov2, m, tmp, "after two overlay switches")
    base_model = Model(8 * MIB)
    base_model.fill(0, 2 * MIB, 0x51)
    via_qemu(img, base_model, tmp, "base frozen by the switch")


@case
def check_leaks_and_corruptions(tmp):
    img = os.path.join(tmp, "c.qcow2")
    vireo("create", img, "8M")
    blkio(img, "write 0x61 0 1M")
    vireo("check", img)
    # Refcount of a free cluster raised by hand: a leak for both tools.
    with open(img, "r+b") as f:
        hdr = f.read(112)
        rt_off = struct.unpack(">Q", hdr[48:56])[0]
        f.seek(rt_off)
        rb_off = struct.unpack(">Q", f.read(8))[0]
        # A free cluster inside the file (qemu only looks at clusters below the file end).
        end = os.path.getsize(img) // 65536
        f.truncate((end + 2) * 65536)
        f.seek(rb_off + 2 * end)
        f.write(struct.pack(">H", 1))
    if vireo("check", img, ok=(3,)).returncode != 3:
        raise Fail("leak not reported")
    sh(["qemu-img", "check", img], ok=(3,))
    vireo("check", "-r", "leaks", img)
    vireo("check", img)
    qemu_check(img)
    # Refcount of a used data cluster dropped to 0: a corruption.
    with open(img, "r+b") as f:
        f.seek(rb_off + 2 * 5)
        f.write(struct.pack(">H", 0))
    vireo("check", img, ok=(2,))
    sh(["qemu-img", "check", img], ok=(2,))
    js = json.loads(vireo("check", "--json", img, ok=(2,)).stdout)
    if js["corruptions"] < 1:
        raise Fail(f"check --json: {js}")


@case
def dirty_image_recovers(tmp):
    img = os.path.join(tmp, "d.qcow2")
    vireo("create", img, "8M")
    blkio(img, "write 0x71 0 1M", "crash")
    info = json.loads(vireo("info", "--json", img).stdout)
    if not info["dirty-flag"]:
        raise Fail("dirty flag not set after a crash")
    blkio(img, "read 0x71 0 1M", "write 0x72 2M 1M")
    info = json.loads(vireo("info", "--json", img).stdout)
    if info["dirty-flag"]:
        raise Fail("dirty flag still set after a clean close")
    qemu_check(img)


@case
def corrupt_images_refused(tmp):
    img = os.path.join(tmp, "x.qcow2")
    sh(["qemu-img", "create", "-f", "qcow2", img, "8M"])
    good = open(img, "rb").read()

    def patched(off, data, needle):
        with open(img, "wb") as f:
            f.write(good[:off] + data + good[off + len(data):])
        p = vireo("info", "-f", "qcow2", img, ok=(1,))
        if needle not in p.stderr:
            raise Fail(f"want {needle!r}, got {p.stderr.strip()}")

    patched(0, b"QFI\x00", "bad magic")
    patched(4, struct.pack(">I", 4), "unsupported qcow2 version 4")
    patched(20, struct.pack(">I", 30), "cluster_bits 30 out of range")
    patched(40, struct.pack(">Q", 1 << 30), "L1 table")
    patched(32, struct.pack(">I", 1), "encrypted")
    patched(72, struct.pack(">Q", 1 << 20), "unknown incompatible feature bit 20")
    patched(96, struct.pack(">I", 7), "refcount_order 7")


@case
def untrusted_headers(tmp):
    """docs/images.md, "Probing and backing files", through the CLI: a raw disk whose guest wrote
    a qcow2 header naming a host file, an image whose backing file escapes its directory, and
    -b without -F."""
    host = os.path.join(tmp, "host")
    imgs = os.path.join(tmp, "imgs")
    os.makedirs(host)
    os.makedirs(imgs)
    secret = os.path.join(host, "secret")
    with open(secret, "wb") as f:
        f.write(b"HOST-SECRET-4f1d" * 4096)
    disk = os.path.join(imgs, "guest.raw")
    vireo("create", "-f", "raw", disk, "1M")
    # The header a guest of a raw disk writes (qemu-img makes a real one), with and without the
    # backing format recorded. vireo must neither follow it nor copy the host file.
    for fmt_args, needle in ((["-F", "raw"], "outside"), ([], "without a backing format")):
        hdr = os.path.join(tmp, "hdr.qcow2")
        if os.path.exists(hdr):
            os.unlink(hdr)
        sh(["qemu-img", "create", "-f", "qcow2", "-o", "cluster_size=512", "-b", secret] +
           fmt_args + [hdr, "1M"], ok=(0, 1))
        if not os.path.exists(hdr):  # qemu-img >= 6.1 wants -F: make it, then drop the format
            sh(["qemu-img", "create", "-f", "qcow2", "-o", "cluster_size=512", "-b", secret,
                "-F", "raw", hdr, "1M"])
            data = bytearray(open(hdr, "rb").read())
            at = data.find(bytes.fromhex("e2792aca"))
            data[at:at + 4] = bytes.fromhex("11223344")
            open(hdr, "wb").write(data)
        with open(disk, "r+b") as f:
            f.write(open(hdr, "rb").read())
        p = vireo("info", disk, ok=(1,))
        if needle not in p.stderr:
            raise Fail(f"info of the planted header: want {needle!r}, got {p.stderr.strip()}")
        out = os.path.join(tmp, "out.raw")
        if os.path.exists(out):
            os.unlink(out)
        vireo("convert", disk, out, ok=(1,))
        if os.path.exists(out) and b"HOST-SECRET" in open(out, "rb").read():
            raise Fail("convert copied the host file")
        if "file format: raw" not in vireo("info", "-f", "raw", disk).stdout:
            raise Fail("info -f raw")
    # An image (written by qemu-img) whose backing file is outside its directory tree.
    base = os.path.join(host, "base.qcow2")
    top = os.path.join(imgs, "top.qcow2")
    sh(["qemu-img", "create", "-f", "qcow2", base, "4M"])
    sh(["qemu-img", "create", "-f", "qcow2", "-b", "../host/base.qcow2", "-F", "qcow2", top])
    p = vireo("info", top, ok=(1,))
    if "outside" not in p.stderr or "--backing-dir" not in p.stderr:
        raise Fail(f"escaping backing file: {p.stderr.strip()}")
    info = json.loads(vireo("info", "--backing-dir", host, "--json", top).stdout)
    if len(info["backing-chain"]) != 2:
        raise Fail(f"--backing-dir: {info}")
    p = vireo("create", "-b", "base.qcow2", os.path.join(host, "x.qcow2"), ok=(2,))
    if "-F" not in p.stderr:
        raise Fail(f"create -b without -F: {p.stderr.strip()}")


@case
def help_texts(tmp):
    for sub in ("create", "info", "check", "convert"):
        out = vireo(sub, "--help").stdout
        if "SYNOPSIS" not in out or f"vireo img {sub}" not in out:
            raise Fail(f"{sub} --help")
    if "img" not in sh([VIREO, "help"]).stdout:
        raise Fail("vireo help lacks img")


print(f"{passed} passed, {len(failures)} failed")
for f in failures:
    print("FAIL", f)
sys.exit(1 if failures else 0)
