#!/usr/bin/env python3
"""Control socket (vireo run --api-sock) and `vireo vmctl`, on the counter payload: status,
pause (the console stops), resume (it goes on), bad requests (answered, VM unharmed), graceful
stop with a deadline (the payload ignores the power button), forced stop.
Usage: control_test.py VIREO PAYLOAD_DIR"""
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest import unix_exchange, wait_for_path  # noqa: E402

VIREO, PAYLOADS = sys.argv[1], sys.argv[2]
results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(("ok   " if ok else "FAIL ") + name + (": " + detail if detail else ""))


def vmctl(sock, *args):
    p = subprocess.run([VIREO, "vmctl", "--sock", sock] + list(args), capture_output=True,
                       text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def raw(sock, line):
    return unix_exchange(sock, line).decode(errors="replace")


def start(tmp, name):
    sock = os.path.join(tmp, name + ".sock")
    out = os.path.join(tmp, name + ".console")
    p = subprocess.Popen([VIREO, "run", "--payload", os.path.join(PAYLOADS, "counter.bin"),
                          "--api-sock", sock, "--console", "file:" + out, "--timeout", "300"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    wait_for_path(sock)
    return p, sock, out


def ticks(path):
    return open(path).read().count("tick")


def wait_ticks(path, n, timeout=30):
    deadline = time.monotonic() + timeout
    while ticks(path) < n and time.monotonic() < deadline:
        time.sleep(0.1)
    return ticks(path)


with tempfile.TemporaryDirectory() as tmp:
    p, sock, out = start(tmp, "a")
    try:
        wait_ticks(out, 2)
        code, so, _ = vmctl(sock, "status")
        check("status: running", code == 0 and "state: running" in so, so.strip())
        code, so, _ = vmctl(sock, "--json", "status")
        st = json.loads(so) if code == 0 else {}
        check("status --json", st.get("ok") is True and st.get("vcpus") == 1 and
              st.get("memory_mib") == 256, so.strip())

        code, so, _ = vmctl(sock, "pause")
        check("pause", code == 0 and "state: paused" in so, so.strip())
        time.sleep(0.3)
        before = ticks(out)
        time.sleep(1.5)
        after = ticks(out)
        check("no guest progress while paused", before == after, f"{before} -> {after}")
        code, so, _ = vmctl(sock, "pause")
        check("pause twice is harmless", code == 0 and "paused" in so)
        code, so, _ = vmctl(sock, "resume")
        check("resume", code == 0 and "state: running" in so, so.strip())
        n = wait_ticks(out, after + 2)
        check("guest runs again after resume", n >= after + 2, f"{after} -> {n}")

        r = raw(sock, b"this is not json\n")
        check("invalid JSON gets an error reply", '"ok":false' in r and "invalid JSON" in r, r)
        r = raw(sock, b'{"cmd":"fly"}\n')
        check("unknown command gets an error reply", "unknown command" in r, r.strip())
        r = raw(sock, b'{"cmd":"stop","timeout_s":"soon"}\n')
        check("bad argument type gets an error reply", "timeout_s" in r, r.strip())
        r = raw(sock, b"x" * 5000)
        check("over-long request refused", "longer than 4096" in r, r.strip()[:80])
        code, so, se = vmctl(sock, "fly")
        check("vmctl reports the VM's refusal", code == 1 and "unknown command" in se)
        code, so, _ = vmctl(sock, "status")
        check("VM unharmed by bad requests", code == 0 and "running" in so)

        # The payload ignores the power button: the deadline must stop it.
        t0 = time.monotonic()
        code, so, _ = vmctl(sock, "stop", "--timeout", "2")
        check("graceful stop accepted", code == 0, so.strip())
        try:
            status = p.wait(30)
        except subprocess.TimeoutExpired:
            status = None
        took = time.monotonic() - t0
        err = p.stderr.read()
        check("stop deadline ends the VM", status == 0 and 1.5 <= took < 20 and
              "did not power off within 2 s" in err, f"status {status} after {took:.1f}s")
        check("control socket removed at exit", not os.path.exists(sock))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()

    p, sock, out = start(tmp, "b")
    try:
        wait_ticks(out, 1)
        vmctl(sock, "pause")
        code, so, _ = vmctl(sock, "stop", "--force")
        try:
            status = p.wait(30)
        except subprocess.TimeoutExpired:
            status = None
        check("forced stop of a paused VM", code == 0 and status == 0, f"status {status}")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()

    code, _, se = vmctl(os.path.join(tmp, "nobody.sock"), "status")
    check("vmctl on a missing socket: clear error", code == 1 and "No such file" in se, se)

failed = results.count(False)
print(f"{len(results) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
