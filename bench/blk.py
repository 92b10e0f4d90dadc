#!/usr/bin/env python3
"""virtio-blk throughput: sequential reads and writes with dd inside the test Linux guest
(O_DIRECT, 1 MiB requests, on its vda: a qcow2 overlay on the fixture's qcow2 image) against the
same transfers on the same image chain from the host through the block layer (tests/helpers
blkio: one synchronous 16 MiB request, host page cache). Prints MB/s and guest/host ratios.

On PVM hosts (kvm_pvm) the guest kernel runs in the host's instruction emulator at about a
million instructions per second: in-guest figures are bound by that, not by the device or the
disk, and are not comparable with a real VT-x/AMD-V host. The guest is restored from the devices
fixture (tests/integration/guest.py), not booted.
Usage: bench/blk.py [BUILD_DIR]"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "build"))
sys.path.insert(0, os.path.join(here, "..", "tests", "integration"))
from guest import Guest, devices_disks, linux_snapshot_devices  # noqa: E402

VIREO = os.path.join(build, "vireo")
BLKIO = os.path.join(build, "tests", "blkio")
MB = 16  # the fixture's disk is 16 MiB


def guest_time(out):
    """Seconds from busybox `time` output ("real\t0m 1.23s")."""
    m = re.search(r"real\s+(\d+)m\s*([\d.]+)s", out)
    return int(m.group(1)) * 60 + float(m.group(2)) if m else None


def host_time(args):
    t = time.monotonic()
    subprocess.run([BLKIO] + args, check=True, capture_output=True)
    return time.monotonic() - t


def main():
    pvm = os.path.exists("/sys/module/kvm_pvm")
    snap = linux_snapshot_devices(VIREO, os.path.join(here, "..", "guest", "build.sh"), build)
    tmp = tempfile.mkdtemp(prefix="vireo-bench-blk-", dir=build)
    rows = []
    try:
        g = Guest(VIREO, ["--restore", snap, "--overlay-dir", tmp, "--timeout", "1200"] +
                  devices_disks(snap))
        try:
            cmds = {
                "seq-write (allocating)": f"dd if=/dev/zero of=/dev/vda bs=1M count={MB} "
                                          "oflag=direct conv=fsync",
                "seq-write (overwrite)": f"dd if=/dev/zero of=/dev/vda bs=1M count={MB} "
                                         "oflag=direct conv=fsync",
                "seq-read": f"dd if=/dev/vda of=/dev/null bs=1M count={MB} iflag=direct",
            }
            guest = {}
            for name, cmd in cmds.items():
                out = g.run(f"time {cmd} 2>&1", timeout=900)
                s = guest_time(out)
                guest[name] = MB * 1.048576 / s if s else None
                if not s:
                    print(f"could not time {name}: {out[-300:]!r}")
            g.send("poweroff\n")
            g.wait_exit(300)
        finally:
            g.kill()
        image = os.path.join(tmp, "disk0.snap.r1.qcow2")
        host = {
            "seq-write (allocating)": None,
            "seq-write (overwrite)": MB * 1.048576 / host_time(
                [image, f"write 0x5a 0 {MB}M", "flush"]),
            "seq-read": MB * 1.048576 / host_time([image, f"dump 0 {MB}M /dev/null"]),
        }
        # Allocating writes on the host: a fresh overlay on the same backing chain.
        fresh = os.path.join(tmp, "fresh.qcow2")
        subprocess.run([VIREO, "img", "create", "-b", image, "-F", "qcow2", fresh], check=True,
                       capture_output=True)
        host["seq-write (allocating)"] = MB * 1.048576 / host_time(
            [fresh, f"write 0x5a 0 {MB}M", "flush"])
        for name in cmds:
            rows.append((name, guest[name], host[name]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"virtio-blk, {MB} MiB sequential, 1 MiB requests (guest: dd O_DIRECT on vda; host: "
          "block layer, same image chain)")
    if pvm:
        print("NOTE: kvm_pvm host: the guest kernel is emulated (~1M instructions/s); guest "
              "figures measure the emulator, not virtio-blk")
    print(f"{'test':<24}{'guest MB/s':>12}{'host MB/s':>12}{'guest/host':>12}")
    for name, gv, hv in rows:
        ratio = f"{gv / hv:.3f}" if gv and hv else "-"
        print(f"{name:<24}{(f'{gv:.1f}' if gv else '-'):>12}{(f'{hv:.1f}' if hv else '-'):>12}"
              f"{ratio:>12}")
        print(f"RESULT {name.replace(' ', '')} guest={gv} host={hv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
