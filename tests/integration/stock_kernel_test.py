#!/usr/bin/env python3
"""Unmodified guest: Debian's stock linux-image-amd64 kernel with its own initrd, no patch, no
clearcpuid, 2 vCPUs. It must reach a userspace shell (initramfs-tools' `break=top` shell), run
commands whose output is checked, reboot the same kernel again (a guest `reboot` with
--on-reboot restart), and power off cleanly (status 0), with no XSAVE consistency warning and no
kernel WARNING on the way.

Usage: stock_kernel_test.py VIREO [BOOTS]   (BOOTS: how many boots in one VM, default 2)
The kernel is the newest /boot/vmlinuz-*-amd64 with its /boot/initrd.img-* (Debian package
linux-image-amd64); VIREO_STOCK_KERNEL=PATH and VIREO_STOCK_INITRD=PATH choose others."""
import glob
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest import Guest  # noqa: E402

SHELL = "(initramfs) "


def stock_kernel():
    k = os.environ.get("VIREO_STOCK_KERNEL")
    i = os.environ.get("VIREO_STOCK_INITRD")
    if k and i:
        return k, i
    for k in sorted(glob.glob("/boot/vmlinuz-*-amd64"), reverse=True):
        i = k.replace("vmlinuz-", "initrd.img-")
        if os.access(k, os.R_OK) and os.access(i, os.R_OK):
            return k, i
    raise SystemExit("FAIL no readable /boot/vmlinuz-*-amd64 with its initrd.img "
                     "(apt-get install linux-image-amd64)")


def main():
    vireo = sys.argv[1]
    boots = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    kernel, initrd = stock_kernel()
    print(f"kernel {kernel}, initrd {initrd}")
    log = os.path.join(os.environ.get("MESON_BUILD_ROOT", "/tmp"), "stock-kernel-console.log")
    results = []

    def check(name, ok, detail=""):
        results.append(ok)
        print(("ok   " if ok else "FAIL ") + name + (": " + detail if detail else ""),
              flush=True)

    # No panic= here: with it, initramfs-tools reboots instead of spawning the break shell.
    g = Guest(vireo, ["--kernel", kernel, "--initrd", initrd,
                      "--cmdline", "console=ttyS0 break=top",
                      "--cpus", "2", "--memory", "1G", "--on-reboot", "restart",
                      "--timeout", "1500"], log)
    try:
        seen = 0
        for boot in range(1, boots + 1):
            banner = g.wait_for(r"Linux version \S+", 600, seen)
            # The previous boot's last prompt may follow `seen`: look after this banner.
            g.wait_for(re.escape(SHELL), 900, banner.end())
            print(f"boot {boot}: initramfs shell after {time.monotonic() - g.t0:.1f} s",
                  flush=True)
            # The shell's prompt is there; give its line discipline a moment.
            time.sleep(1)
            out = g.run("echo vireo-$((6*7))", timeout=300, retry_segv=False)
            check(f"boot {boot}: shell arithmetic", out.endswith("vireo-42"), repr(out))
            out = g.run("grep -c ^processor /proc/cpuinfo", timeout=300, retry_segv=False)
            check(f"boot {boot}: 2 CPUs online", out.endswith("2"), repr(out))
            out = g.run("uname -r", timeout=300, retry_segv=False)
            check(f"boot {boot}: the stock kernel runs",
                  out.splitlines()[-1] in os.path.basename(kernel) if out else False, repr(out))
            with g.lock:
                seen = len(g.buf)
            if boot < boots:
                # A guest reboot restarts the same kernel (--on-reboot restart).
                g.send("echo b > /proc/sysrq-trigger\n")
        g.send("echo o > /proc/sysrq-trigger\n")
        code = g.wait_exit(300)
        check("power off ends vireo with status 0", code == 0, f"status {code}")
    except TimeoutError as e:
        check("guest session", False, str(e)[-3000:])
    finally:
        g.kill()
    text = g.buf
    n = len(re.findall(r"Linux version ", text))
    check(f"{boots} boots of the same kernel", n == boots, f"{n} boot banners")
    check("no XSAVE consistency warning", "XSAVE consistency problem" not in text)
    warns = [ln for ln in text.splitlines() if "WARNING:" in ln]
    check("no kernel WARNING", not warns, "; ".join(warns[:3]))
    if "restart" not in g.stderr and boots > 1:
        print("stderr:", g.stderr[-1500:])
    print(f"{sum(results)} passed, {len(results) - sum(results)} failed (console: {log})")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
