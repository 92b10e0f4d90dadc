#!/usr/bin/env python3
"""Integration: the test Linux guest, saved once (guest.linux_snapshot) with a file in tmpfs and
a counter running, restored twice side by side (both have the file, both counters go on, each
keeps its own changes), snapshotted again from a restored VM, and live-migrated over loopback
while a console session is open: the session continues on the destination, the counter is
monotonic, the source exits 0; a destination killed during the memory copy leaves the source
running.
Usage: lifecycle_test.py VIREO GUEST_BUILD_SH"""
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest import Guest, free_port, linux_snapshot, unix_exchange, wait_for_path  # noqa: E402

VIREO, BUILD_SH = sys.argv[1], sys.argv[2]
WORK = os.environ.get("MESON_BUILD_ROOT", tempfile.gettempdir())
results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(("ok   " if ok else "FAIL ") + name + (": " + detail if detail else ""))


def request(sock, obj):
    return json.loads(unix_exchange(sock, (json.dumps(obj) + "\n").encode(), timeout=120))


def counter(g):
    out = g.run("cat /tmp/cnt", timeout=120)
    nums = [ln for ln in out.split("\n") if ln.strip().isdigit()]
    return int(nums[-1]) if nums else -1


def restore(snap, *extra):
    g = Guest(VIREO, ["--restore", snap, "--timeout", "900"] + list(extra))
    g.send("\n")  # a fresh prompt, so the first command is not glued to old output
    return g


def main():
    snap = linux_snapshot(VIREO, BUILD_SH, WORK)
    tmp = tempfile.mkdtemp(prefix="vireo-lifecycle-")
    sock_a = os.path.join(tmp, "a.sock")
    t0 = time.monotonic()
    sock_b = os.path.join(tmp, "b.sock")
    a = restore(snap, "--api-sock", sock_a)
    b = restore(snap, "--api-sock", sock_b)
    dst = None
    try:
        out = a.run("cat /tmp/f", timeout=120)
        check("restored guest answers on its console with the file from before the snapshot",
              out == "hello", f"{out!r} after {time.monotonic() - t0:.1f} s")
        out = b.run("cat /tmp/f", timeout=120)
        check("a second restore of the same snapshot answers too", out == "hello", repr(out))
        c1 = counter(a)
        time.sleep(2.5)
        c2 = counter(a)
        check("the background counter survived the restore and goes on", 0 < c1 < c2,
              f"{c1} then {c2}")
        a.run("echo A > /tmp/who")
        b.run("echo B > /tmp/who")
        wa, wb = a.run("cat /tmp/who"), b.run("cat /tmp/who")
        check("the two restored VMs are independent", (wa, wb) == ("A", "B"), f"{wa} {wb}")

        # A snapshot of a restored VM (its RAM is a copy-on-write map of the first snapshot).
        snap2 = os.path.join(tmp, "snap2")
        r = request(sock_a, {"cmd": "snapshot", "path": snap2})
        check("snapshot of a restored VM", r.get("ok") is True, str(r))
        c = restore(snap2)
        try:
            out = c.run("cat /tmp/who", timeout=120)
            check("... restores with its own changes", out == "A", repr(out))
        finally:
            c.kill()

        # A destination killed in the middle of the memory copy: B keeps running.
        sock_d = os.path.join(tmp, "doomed.sock")
        port = free_port()
        doomed = Guest(VIREO, ["--incoming", f"tcp:127.0.0.1:{port}", "--api-sock", sock_d,
                               "--timeout", "900", "--insecure-migration"])
        time.sleep(0.5)
        before_b = counter(b)
        r = request(sock_b, {"cmd": "migrate", "uri": f"tcp:127.0.0.1:{port}",
                             "insecure": True})
        phase = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and phase not in ("precopy", "completed", "failed"):
            phase = request(sock_b, {"cmd": "migrate-status"}).get("phase", "")
        doomed.kill()
        st = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and st.get("phase") not in ("failed", "completed"):
            st = request(sock_b, {"cmd": "migrate-status"})
            time.sleep(0.1)
        check("destination killed mid-migration: the migration fails, says why",
              phase == "precopy" and st.get("phase") == "failed" and bool(st.get("error")),
              f"killed in {phase}; {st.get('phase')}: {st.get('error')}")
        out = b.run("cat /tmp/who", timeout=120)
        # The counter ticks once a second of guest time, and the failed migration may have
        # taken less than that: give it up to 20 s to move on (a paused source never does).
        after_b = counter(b)
        deadline = time.monotonic() + 20
        while after_b <= before_b and time.monotonic() < deadline:
            time.sleep(0.5)
            after_b = counter(b)
        check("... and the source guest keeps running", out == "B" and after_b > before_b and
              b.proc.poll() is None, f"{out!r}, counter {before_b} -> {after_b}")

        # Live migration of A over loopback, TLS with a pre-shared key.
        port = free_port()
        psk = os.path.join(tmp, "mig.psk")
        with open(psk, "w") as f:
            f.write("vireo:" + os.urandom(32).hex() + "\n")
        os.chmod(psk, 0o600)
        dst = Guest(VIREO, ["--incoming", f"tcp:127.0.0.1:{port}", "--timeout", "900",
                            "--migration-tls", "psk=" + psk])
        time.sleep(0.5)
        before = counter(a)
        r = request(sock_a, {"cmd": "migrate", "uri": f"tcp:127.0.0.1:{port}",
                             "tls": "psk=" + psk})
        check("migrate accepted", r.get("ok") is True, str(r))
        last = {}
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and a.proc.poll() is None:
            try:
                last = request(sock_a, {"cmd": "migrate-status"})
            except OSError:
                break
            time.sleep(0.2)
        code = a.wait_exit(60)
        check("the source exits 0 after the migration", code == 0,
              f"status {code}, last status {last}")
        dst.send("\n")
        out = dst.run("cat /tmp/who; cat /tmp/f", timeout=120)
        check("the console session continues on the destination", out.split() == ["A", "hello"],
              repr(out))
        after = counter(dst)
        time.sleep(2)
        later = counter(dst)
        check("the counter is monotonic across the migration", before <= after < later,
              f"{before} before, {after} and {later} after")
        info = [ln for ln in a.stderr.splitlines() if "migration completed" in ln]
        if info:
            print("info " + info[-1])
        dst.send("poweroff\n")
        code = dst.wait_exit(300)
        check("the migrated guest powers off cleanly (status 0)", code == 0, f"status {code}")
    except TimeoutError as e:
        check("guest session", False, str(e))
    finally:
        for g in (a, b, dst):
            if g:
                g.kill()
    failed = results.count(False)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
