#!/usr/bin/env python3
"""All side-by-side benchmarks in one go: bench/boot.py, bench/startup.py and bench/state.py
(see each for what it measures), run in one nested KVM test host when this machine has no
usable /dev/kvm (a fresh one, or $VIREO_KVM_HOST), powered off at the end. Prints their
figures and ratios; under emulation (the nested host) only the ratios and instruction counts
mean anything. See docs/benchmarks.md.

Usage: bench/all.py [--runs 3] [--lkvm PATH] [--skip boot|startup|state]...
Takes about 25 minutes in the nested host.
"""
import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="boots per configuration")
    ap.add_argument("--lkvm", help="kvmtool's lkvm (default: the cached build, if any)")
    ap.add_argument("--vireo", default=os.path.join(common.TOP, "build", "vireo"))
    ap.add_argument("--skip", action="append", default=[],
                    choices=("boot", "startup", "state"))
    a = ap.parse_args()
    common.in_kvm_host(__file__, sys.argv[1:])
    peer = ["--lkvm", a.lkvm] if a.lkvm else []
    steps = [("boot", ["--runs", str(a.runs), "--vireo", a.vireo] + peer),
             ("startup", ["--vireo", a.vireo] + peer),
             ("state", ["--vireo", a.vireo])]
    status = 0
    for name, args in steps:
        if name in a.skip:
            continue
        print(f"\n======== bench/{name}.py {' '.join(args)}", flush=True)
        t = time.monotonic()
        rc = subprocess.call([sys.executable, os.path.join(common.HERE, f"{name}.py")] + args)
        print(f"======== bench/{name}.py: exit status {rc}, {time.monotonic() - t:.0f} s",
              flush=True)
        status = status or rc
    return status


if __name__ == "__main__":
    sys.exit(main())
