#!/usr/bin/env python3
"""qcow2 layer throughput: runs build/qcow2_bench (vireo raw vs vireo qcow2) and, when qemu-img is
installed, `qemu-img bench` on a qcow2 image with the same sequential patterns (queue depth 1,
host page cache), and prints vireo-qcow2 / qemu-qcow2 ratios. qemu-img bench has no random mode,
so the 4 KiB comparison is sequential only. Not part of pass/fail.
Usage: bench/qcow2.py [BUILD_DIR] [--size-mb N] [--dir DIR]"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ap = argparse.ArgumentParser()
ap.add_argument("build", nargs="?", default="build")
ap.add_argument("--size-mb", type=int, default=256)
ap.add_argument("--ops", type=int, default=20000)
ap.add_argument("--dir", default=None)
args = ap.parse_args()

bench = os.path.join(args.build, "qcow2_bench")
if not os.path.exists(bench):
    sys.exit(f"{bench} not found: build first (ninja -C {args.build})")

with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
    p = subprocess.run([bench, "-d", tmp, "-s", str(args.size_mb), "-n", str(args.ops)],
                       capture_output=True, text=True, check=True)
    print("vireo block layer, synchronous, page cache:")
    print(p.stdout)
    ours = {}
    for line in p.stderr.splitlines():
        m = re.match(r"RESULT (\S+) (\S+) ([\d.]+)", line)
        if m:
            ours[(m.group(1), m.group(2))] = float(m.group(3))

    if not shutil.which("qemu-img"):
        print("qemu-img not installed: no peer comparison")
        sys.exit(0)

    def qemu_bench(pattern, size, count, write, fresh):
        img = os.path.join(tmp, "q.qcow2")
        if os.path.exists(img):
            os.unlink(img)
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", img, f"{args.size_mb}M"],
                       check=True)
        if not fresh:
            subprocess.run(["qemu-img", "bench", "-q", "-f", "qcow2", "-t", "writeback", "-d",
                            "1", "-w", "-s", "1M", "-c", str(args.size_mb), img], check=True,
                           capture_output=True)
        cmd = ["qemu-img", "bench", "-f", "qcow2", "-t", "writeback", "-d", "1", "-s",
               str(size), "-c", str(count)]
        if write:
            cmd.append("-w")
        t0 = time.monotonic()
        out = subprocess.run(cmd + [img], check=True, capture_output=True, text=True).stdout
        m = re.search(r"Run completed in ([\d.]+) seconds", out)
        secs = float(m.group(1)) if m else time.monotonic() - t0
        return size * count / 1e6 / secs

    n4k = min(args.ops, args.size_mb * 256)
    rows = [("seq-write-1M-alloc", 1 << 20, args.size_mb, True, True),
            ("seq-read-1M", 1 << 20, args.size_mb, False, False),
            ("seq-write-4K", 4096, n4k, True, False),
            ("seq-read-4K", 4096, n4k, False, False)]
    print("vireo qcow2 vs qemu-img bench (qcow2, depth 1, cache=writeback):")
    print(f"{'test':<22} {'vireo MB/s':>12} {'qemu MB/s':>12} {'ratio':>8}")
    for name, size, count, write, fresh in rows:
        q = qemu_bench(name, size, count, write, fresh)
        v = ours.get((name, "qcow2"), 0.0)
        print(f"{name:<22} {v:>12.1f} {q:>12.1f} {v / q if q else 0:>8.2f}")
