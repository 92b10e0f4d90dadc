#!/usr/bin/env python3
"""State fixtures: every snapshot in tests/fixtures (one per released state format version)
must still restore and run on. Usage: fixture_test.py VIREO FIXTURES_DIR"""
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile

VIREO, FIXTURES = sys.argv[1], sys.argv[2]
results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(("ok   " if ok else "FAIL ") + name + (": " + detail if detail else ""))


for name in sorted(os.listdir(FIXTURES)):
    src = os.path.join(FIXTURES, name)
    if not os.path.exists(os.path.join(src, "expect.json")):
        continue
    expect = json.load(open(os.path.join(src, "expect.json")))
    with tempfile.TemporaryDirectory() as tmp:
        snap = os.path.join(tmp, "snap")
        os.mkdir(snap)
        shutil.copy(os.path.join(src, "state.vireo"), snap)
        with lzma.open(os.path.join(src, "memory.raw.xz")) as f, \
                open(os.path.join(snap, "memory.raw"), "wb") as out:
            shutil.copyfileobj(f, out)
        console = os.path.join(tmp, "console")
        # The fixture was made on another CPU: --force accepts the CPUID difference.
        p = subprocess.run([VIREO, "run", "--restore", snap, "--force", "--console",
                            "file:" + console, "--timeout", "3"], capture_output=True,
                           text=True, stdin=subprocess.DEVNULL)
        ticks = [int(t, 16) for t in re.findall(r"tick ([0-9A-F]{4})", open(console).read())]
        check(f"{name}: restores and runs on", p.returncode == 124 and len(ticks) >= 2 and
              ticks[0] == expect["last_tick"] + 1 and ticks == sorted(ticks),
              f"status {p.returncode}, ticks {ticks[:4]}; {p.stderr.strip()[-300:]}")

failed = results.count(False)
print(f"{len(results) - failed} passed, {failed} failed")
sys.exit(1 if failed or not results else 0)
