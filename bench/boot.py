#!/usr/bin/env python3
"""Boot benchmark (printed, not pass/fail).

Boots the test guest (guest/build.sh) with `vireo run` and prints:
  - process start -> first KVM_RUN (wall and CPU ms, from vireo's own debug line)
  - process start -> first console byte (wall s)
  - process start -> shell marker (wall s)
  - VMM memory overhead at the shell: process RSS minus the resident pages of guest RAM
Then boots the same kernel (bzImage) and initrd with qemu-system-x86_64 -enable-kvm, if
installed, and prints the side-by-side ratio, or says plainly that QEMU did not reach the shell
within the limit.

Usage: bench/boot.py [--vireo build/vireo] [--cpus 2] [--memory 256] [--qemu-limit 300]
On kvm_pvm hosts guest kernel code is emulated, so these times are not those of real hardware.
"""
import argparse
import os
import re
import subprocess
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests", "integration"))
from guest import PROMPT, READY_MARKER, Guest, build_guest  # noqa: E402


def guest_ram_rss_kb(pid, mem_mb):
    """Rss of the anonymous mapping that is guest RAM (the one mem_mb MiB large)."""
    size = None
    rss = 0
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                a, b = line.split()[0].split("-")
                size = (int(b, 16) - int(a, 16)) // 1024
            elif line.startswith("Rss:") and size == mem_mb * 1024:
                rss += int(line.split()[1])
    return rss


def vm_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def bench_vireo(args, gdir):
    g = Guest(args.vireo, ["--kernel", os.path.join(gdir, "vmlinux"),
                           "--initrd", os.path.join(gdir, "initramfs.cpio"),
                           "--cpus", str(args.cpus), "--memory", f"{args.memory}M",
                           "--timeout", str(args.limit), "-vv"])
    try:
        g.wait_for(READY_MARKER, args.limit)
        g.wait_for(PROMPT, 60)
        shell = time.monotonic() - g.t0
        total = vm_rss_kb(g.proc.pid)
        guest = guest_ram_rss_kb(g.proc.pid, args.memory)
        g.send("poweroff\n")
        g.wait_exit(120)
    finally:
        g.kill()
    m = re.search(r"first KVM_RUN ([0-9.]+) ms after start, ([0-9.]+) ms of CPU", g.stderr)
    print(f"vireo: first KVM_RUN after {m.group(1) if m else '?'} ms wall, "
          f"{m.group(2) if m else '?'} ms CPU")
    print(f"vireo: first console byte after {g.first_byte_at:.2f} s")
    print(f"vireo: shell after {shell:.1f} s ({args.cpus} vCPUs, {args.memory} MiB)")
    print(f"vireo: RSS {total / 1024:.1f} MiB, guest RAM resident {guest / 1024:.1f} MiB, "
          f"VMM overhead {(total - guest) / 1024:.2f} MiB (goal <= 3 MiB)")
    return shell


def bench_qemu(args, gdir, cmdline):
    qemu = "/usr/bin/qemu-system-x86_64"
    if not os.path.exists(qemu):
        print("qemu: qemu-system-x86_64 is not installed (apt-get install qemu-system-x86); "
              "no side-by-side figure")
        return None
    # "-cpu host" aborts on kvm_pvm (MSR 0x10a refused); "max" minus what the host cannot do
    # gets QEMU through its firmware, with the same guest options vireo's PVM profile adds.
    cpu = "max,-cx16,-arch-capabilities" if os.path.exists("/sys/module/kvm_pvm") else "host"
    cmd = [qemu, "-enable-kvm", "-cpu", cpu, "-smp", str(args.cpus), "-m", str(args.memory),
           "-nographic", "-nic", "none", "-no-reboot", "-kernel", os.path.join(gdir, "bzImage"),
           "-initrd", os.path.join(gdir, "initramfs.cpio"), "-append", cmdline]
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    os.set_blocking(p.stdout.fileno(), False)
    buf = b""
    shell = None
    while time.monotonic() - t0 < args.qemu_limit and p.poll() is None:
        try:
            chunk = p.stdout.read()
        except BlockingIOError:
            chunk = None
        if chunk:
            buf += chunk
            if READY_MARKER.encode() in buf:
                shell = time.monotonic() - t0
                break
            if b"KVM internal error" in buf or b"emulation failure" in buf:
                time.sleep(0.5)
                try:
                    buf += p.stdout.read() or b""
                except BlockingIOError:
                    pass
                break
        time.sleep(0.1)
    p.kill()
    p.wait()
    if shell is None:
        tail = buf.decode(errors="replace").strip().splitlines()[-3:]
        text = buf.decode(errors="replace")
        m = re.search(r"Code=.*<([0-9a-f ]+)>", text)
        if "KVM internal error" in text or "emulation failure" in text:
            why = ("stopped by a KVM emulation failure after "
                   f"{time.monotonic() - t0:.0f} s"
                   + (f" on instruction bytes {m.group(1)}" if m else ""))
        elif p.returncode not in (None, -9):
            why = f"exited with status {p.returncode}"
        else:
            why = f"still booting after {args.qemu_limit} s"
        print(f"qemu: did NOT reach the shell ({why}); last output: {tail}")
        return None
    print(f"qemu: shell after {shell:.1f} s")
    return shell


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vireo", default=os.path.join(here, "..", "build", "vireo"))
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--memory", type=int, default=256)
    ap.add_argument("--limit", type=int, default=900)
    ap.add_argument("--qemu-limit", type=int, default=300)
    args = ap.parse_args()
    gdir = build_guest(os.path.join(here, "..", "guest", "build.sh"))
    if os.path.exists("/sys/module/kvm_pvm"):
        print("note: kvm_pvm host: guest kernel code is emulated; times are not real-hardware "
              "times")
    vt = bench_vireo(args, gdir)
    cmdline = ("console=ttyS0 reboot=k panic=-1 clearcpuid=xsave,erms,fsrm,smap,fsgsbase,pcid,"
               "invpcid,popcnt")
    qt = bench_qemu(args, gdir, cmdline)
    if qt:
        print(f"ratio: qemu/vireo time to shell = {qt / vt:.2f}")
    else:
        print("ratio: none (QEMU did not boot this guest here)")


if __name__ == "__main__":
    main()
