#!/usr/bin/env python3
"""Payload tests: boot one freestanding payload under `vireo run --payload` and check its exit
status and console output. Usage: payload_test.py VIREO PAYLOAD_DIR CASE"""
import os
import re
import subprocess
import sys
import tempfile

# case: (payload, extra args, expected exit status, regex the console must match)
CASES = {
    "hello": ("hello", [], 0, r"Hello from real mode"),
    "longmode": ("longmode", [], 0, r"long mode\r?\n.*paging ok"),
    "smp1": ("smp", ["--cpus", "1"], 0, r"cpus=00000001 started=00000000"),
    "smp2": ("smp", ["--cpus", "2"], 0, r"cpus=00000002 started=00000001"),
    "smp4": ("smp", ["--cpus", "4"], 0, r"cpus=00000004 started=00000003"),
    "timer": ("timer", [], 0, r"timer ok: 5 ticks"),
    "triple_fault": ("triple", [], 3, r"about to triple fault"),
}


def main():
    vireo, payload_dir, case = sys.argv[1], sys.argv[2], sys.argv[3]
    payload, extra, want_status, want_re = CASES[case]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "console.txt")
        cmd = [vireo, "run", "--payload", os.path.join(payload_dir, payload + ".bin"),
               "--console", "file:" + out, "--timeout", "120"] + extra
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=300)
        console = open(out, errors="replace").read()
    print("command:", " ".join(cmd))
    print("console:\n" + console)
    print("stderr:\n" + p.stderr)
    ok = True
    if p.returncode != want_status:
        print(f"FAIL: exit status {p.returncode}, want {want_status}")
        ok = False
    if not re.search(want_re, console, re.S):
        print(f"FAIL: console does not match {want_re!r}")
        ok = False
    if case == "triple_fault" and "triple fault" not in p.stderr:
        print("FAIL: stderr does not name the triple fault")
        ok = False
    if case == "triple_fault" and "rip " not in p.stderr:
        print("FAIL: no register dump on stderr")
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
