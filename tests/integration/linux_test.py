#!/usr/bin/env python3
"""Integration: boot the test Linux guest (built by guest/build.sh) with 2 vCPUs and 256 MiB,
wait for its shell, check what it sees over the console, then power it off.
Usage: linux_test.py VIREO GUEST_BUILD_SH"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest import PROMPT, READY_MARKER, Guest, build_guest  # noqa: E402

BOOT_TIMEOUT = 900  # the PVM test hosts emulate guest kernel code; real hosts take ~1 s


def main():
    vireo, build_sh = sys.argv[1], sys.argv[2]
    g_dir = build_guest(build_sh)
    results = []

    def check(name, ok, detail=""):
        results.append((name, ok))
        print(("ok   " if ok else "FAIL ") + name + (": " + detail if detail else ""))

    log = os.path.join(os.environ.get("MESON_BUILD_ROOT", "/tmp"), "linux-guest-console.log")
    g = Guest(vireo, ["--kernel", os.path.join(g_dir, "vmlinux"),
                      "--initrd", os.path.join(g_dir, "initramfs.cpio"),
                      "--cpus", "2", "--memory", "256M", "--timeout", "1500", "-vv"], log)
    try:
        g.wait_for(READY_MARKER, BOOT_TIMEOUT)
        g.wait_for(PROMPT, 120)
        boot_s = time.monotonic() - g.t0
        print(f"shell after {boot_s:.1f} s (first console byte after {g.first_byte_at:.2f} s)")
        check("boot-to-shell", True)

        out = g.run("nproc")
        check("nproc=2", out == "2", repr(out))

        out = g.run("grep MemTotal /proc/meminfo")
        kb = int(out.split()[1]) if out.startswith("MemTotal") else 0
        check("MemTotal within 10% of 256 MiB", abs(kb - 262144) <= 26214, f"{kb} kB")

        host_before = time.time()
        out = g.run("date +%s")
        host_after = time.time()
        try:
            guest_t = int(out)
        except ValueError:
            guest_t = 0
        check("guest date within a minute of the host",
              host_before - 60 <= guest_t <= host_after + 60,
              f"guest {guest_t}, host {int(host_after)}")

        out = g.run("cat /proc/cpuinfo | grep -c ^processor")
        check("cpuinfo lists 2 processors", out == "2", repr(out))

        out = g.run("echo hello-from-$((6*7))")
        check("shell arithmetic over the console", out == "hello-from-42", repr(out))

        g.send("poweroff\n")
        code = g.wait_exit(300)
        check("poweroff ends vireo with status 0", code == 0, f"status {code}")
        check("the vmlinux was entered through its PVH note",
              "booting through the PVH entry point" in g.stderr)
    except TimeoutError as e:
        check("guest session", False, str(e))
    finally:
        g.kill()

    # The same vmlinux through the 64-bit Linux boot protocol (boot_params) instead of PVH,
    # with ACPI off so the kernel must find both CPUs in the MP table, and a reboot through the
    # keyboard controller (reboot=k) ending vireo with status 0 (--on-reboot exit).
    g = Guest(vireo, ["--kernel", os.path.join(g_dir, "vmlinux"),
                      "--initrd", os.path.join(g_dir, "initramfs.cpio"), "--boot", "linux64",
                      "--cmdline", "console=ttyS0 reboot=k panic=-1 acpi=off",
                      "--cpus", "2", "--memory", "128M", "--timeout", "1500"])
    try:
        g.wait_for(READY_MARKER, BOOT_TIMEOUT)
        g.wait_for(PROMPT, 120)
        out = g.run("nproc; grep -o acpi=off /proc/cmdline; ls /sys/bus/pci/devices")
        check("64-bit protocol, acpi=off: 2 CPUs from the MP table, PCI host bridge",
              out.split() == ["2", "acpi=off", "0000:00:00.0"], repr(out))
        g.send("reboot\n")
        code = g.wait_exit(300)
        check("reboot (keyboard controller) ends vireo with status 0", code == 0 and
              "rebooted" in g.stderr, f"status {code}")
    except TimeoutError as e:
        check("64-bit boot protocol session", False, str(e))
    finally:
        g.kill()
    # The bzImage through the 64-bit boot protocol: its decompressor runs, hands over to the
    # kernel, which finds the command line in boot_params (seen through earlyprintk). The rest
    # of this boot is the same kernel as above, so it is not repeated.
    g = Guest(vireo, ["--kernel", os.path.join(g_dir, "bzImage"),
                      "--initrd", os.path.join(g_dir, "initramfs.cpio"),
                      "--cmdline", "console=ttyS0 earlyprintk=serial,ttyS0,115200 panic=-1",
                      "--cpus", "1", "--memory", "128M", "--timeout", "1500"])
    try:
        g.wait_for(r"Linux version 6\.1", BOOT_TIMEOUT)
        m = g.wait_for(r"Command line: ([^\r\n]*)\r?\n", 120)
        check("bzImage decompressed and booted with its command line",
              m.group(1).startswith("console=ttyS0 earlyprintk=serial"), repr(m.group(1)))
    except TimeoutError as e:
        check("bzImage boot", False, str(e))
    finally:
        g.kill()

    failed = [n for n, ok in results if not ok]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
