#!/usr/bin/env python3
"""virtio-net throughput, guest to host: the test Linux guest sends SIZE MiB of zeros with
busybox nc to a listener on the host, over user networking (to 127.0.0.1 through the gateway
10.0.2.2) and, when run as root with /dev/net/tun, over a tap (in a network namespace of its
own). Prints MB/s as the host listener measured it (first byte to end of stream).

On kvm_pvm hosts guest kernel code runs in KVM's instruction emulator (about a million
instructions per second), so the guest's TCP stack, not the device or the backend, sets these
figures there; compare them only with runs on the same kind of host.

Usage: bench/net.py [--size MIB] [--vireo BUILD/vireo] [--guest-build guest/build.sh]"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests", "integration"))
from guest import PROMPT, READY_MARKER, Guest, build_guest  # noqa

TAP = "vireobench0"


class Sink:
    """Counts what one TCP client sends; measures from its first byte to its EOF."""

    def __init__(self, addr):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, 0))
        self.sock.listen(1)
        self.sock.settimeout(1800)
        self.port = self.sock.getsockname()[1]
        self.bytes, self.secs = 0, None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            c, _ = self.sock.accept()
        except OSError:
            return
        c.settimeout(600)
        t0 = None
        try:
            while True:
                d = c.recv(1 << 16)
                if not d:
                    break
                if t0 is None:
                    t0 = time.monotonic()
                self.bytes += len(d)
        except OSError:
            pass
        if t0 is not None:
            self.secs = time.monotonic() - t0
        c.close()

    def wait(self, timeout):
        self.thread.join(timeout)
        self.sock.close()


def run_one(g, label, addr, guest_addr, size_mib):
    sink = Sink(addr)
    g.run(f"dd if=/dev/zero of=/tmp/blob bs=64k count={size_mib * 16} 2>/dev/null")
    t0 = time.monotonic()
    g.run(f"nc {guest_addr} {sink.port} < /tmp/blob", timeout=1800)
    sink.wait(120)
    wall = time.monotonic() - t0
    if not sink.secs or sink.bytes != size_mib << 20:
        print(f"{label:6s} incomplete: {sink.bytes} of {size_mib << 20} bytes", flush=True)
        return
    print(f"{label:6s} {size_mib} MiB guest->host: {sink.bytes / sink.secs / 1e6:7.3f} MB/s "
          f"({sink.secs:.1f} s; {wall:.1f} s with the guest command)", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=4, help="MiB to send (default 4)")
    ap.add_argument("--vireo", default=os.path.join(here, "..", "build", "vireo"))
    ap.add_argument("--guest-build", default=os.path.join(here, "..", "guest", "build.sh"))
    a = ap.parse_args()
    if os.geteuid() == 0 and os.environ.get("VIREO_BENCH_NETNS") != "1" and \
            shutil.which("unshare") and os.path.exists("/dev/net/tun"):
        # The tap and its addresses live in a namespace of their own.
        env = dict(os.environ, VIREO_BENCH_NETNS="1")
        return subprocess.call(["unshare", "--net", "--", sys.executable] + sys.argv, env=env)
    tap = os.environ.get("VIREO_BENCH_NETNS") == "1"
    if tap:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        for cmd in (["ip", "tuntap", "add", "dev", TAP, "mode", "tap"],
                    ["ip", "addr", "add", "192.168.78.1/24", "dev", TAP],
                    ["ip", "link", "set", TAP, "up"]):
            subprocess.run(cmd, check=True)
    g_dir = build_guest(a.guest_build)
    # The guest sends to a server on the host's loopback: that needs host-loopback=on.
    nets = ["--net", "user,host-loopback=on"] + (["--net", f"tap={TAP}"] if tap else [])
    g = Guest(a.vireo, ["--kernel", os.path.join(g_dir, "vmlinux"),
                        "--initrd", os.path.join(g_dir, "initramfs.cpio"),
                        "--memory", "256M", "--timeout", "3000"] + nets)
    try:
        g.wait_for(READY_MARKER, 900)
        g.wait_for(PROMPT, 120)
        pvm = "kvm_pvm" in g.stderr
        g.run("udhcpc -i eth0 -n -q -t 10 -T 5 >/dev/null 2>&1", timeout=300)
        run_one(g, "user", "127.0.0.1", "10.0.2.2", a.size)
        if tap:
            g.run("ip addr add 192.168.78.2/24 dev eth1; ip link set eth1 up")
            run_one(g, "tap", "192.168.78.1", "192.168.78.1", a.size)
        else:
            print("tap    skipped (needs root and /dev/net/tun)")
        if pvm:
            print("note: kvm_pvm host: guest kernel code is emulated (~1M instructions/s); "
                  "the guest's TCP stack is the bottleneck, not virtio-net or the backend")
    finally:
        g.kill()
        if tap:
            subprocess.run(["ip", "link", "del", TAP])
    return 0


if __name__ == "__main__":
    sys.exit(main())
