#!/usr/bin/env python3
"""Control socket (vireo run --api-sock) and `vireo vmctl`, on the counter payload: status,
pause (the console stops), resume (it goes on), bad requests (answered, VM unharmed), graceful
stop with a deadline (the payload ignores the power button), forced stop, and eight clients at
once with a ninth refused, their slots reused after they hang up.
Usage: control_test.py VIREO PAYLOAD_DIR"""
import json
import os
import shutil
import socket
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


def mode(path):
    return os.lstat(path).st_mode & 0o7777


def host_files_tests(tmp):
    """The control socket's own defences: 0600 files, no takeover of a live socket or of a file,
    and another user refused even when the socket is opened up to everyone."""
    p, sock, out = start(tmp, "c")
    try:
        wait_ticks(out, 1)
        check("control socket and console file are 0600", (mode(sock), mode(out)) ==
              (0o600, 0o600), f"{mode(sock):o} {mode(out):o}")
        q = subprocess.run([VIREO, "run", "--payload", os.path.join(PAYLOADS, "counter.bin"),
                            "--api-sock", sock, "--console", "none", "--timeout", "30"],
                           capture_output=True, text=True, timeout=60)
        code, so, _ = vmctl(sock, "status")
        check("a second VM on a live --api-sock is refused and the first keeps it",
              q.returncode == 1 and "in use" in q.stderr and code == 0 and "running" in so,
              f"status {q.returncode}: {q.stderr.strip()[-200:]!r}; first: {so.strip()!r}")
        if os.geteuid() == 0 and shutil.which("setpriv"):
            # The mistake or hostile chmod the peer check is there for.
            os.chmod(tmp, 0o711)
            os.chmod(sock, 0o666)
            n = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534",
                                "--clear-groups", VIREO, "vmctl", "--sock", sock, "stop",
                                "--force"], capture_output=True, text=True, timeout=60)
            code, so, _ = vmctl(sock, "status")
            check("another user (nobody) is refused on the control socket",
                  n.returncode != 0 and "permission denied" in n.stderr and code == 0
                  and "running" in so, f"status {n.returncode}: {n.stderr.strip()!r}")
        else:
            print("skip another user on the control socket: needs root and setpriv")
    finally:
        if p.poll() is None:
            p.kill()
        err = p.communicate()[1]
    if os.geteuid() == 0 and shutil.which("setpriv"):
        check("the refusal is logged", "refused a client (uid 65534" in err, err[-300:])
    # A file that is not a socket is never removed to make room.
    victim = os.path.join(tmp, "victim")
    with open(victim, "w") as f:
        f.write("precious")
    q = subprocess.run([VIREO, "run", "--payload", os.path.join(PAYLOADS, "counter.bin"),
                        "--api-sock", victim, "--console", "none", "--timeout", "30"],
                       capture_output=True, text=True, timeout=60)
    check("a regular file at --api-sock is left alone and the VM does not start",
          q.returncode == 1 and "not a socket" in q.stderr and open(victim).read() == "precious",
          f"status {q.returncode}: {q.stderr.strip()[-200:]!r}")


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

        # Every client is an fd the main loop watches: 8 at once are served, a ninth is turned
        # away, and slots freed by clients that hang up (or send half a line and go) are reused,
        # several rounds over, without the loop losing track of an fd.
        for rnd in range(3):
            held = []
            for _ in range(8):
                c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                c.settimeout(10)
                c.connect(sock)
                held.append(c)
            held[0].sendall(b'{"cmd":"status"}\n')
            r0 = held[0].recv(4096).decode(errors="replace")
            r = unix_exchange(sock).decode(errors="replace")  # refused at once, unasked
            check(f"round {rnd}: 8 clients served, a ninth refused",
                  '"ok":true' in r0 and "too many control clients" in r, r.strip()[:80])
            held[1].sendall(b'{"cmd":"sta')
            for c in held:
                c.close()
            r = ""
            deadline = time.monotonic() + 10
            while "running" not in r and time.monotonic() < deadline:
                try:
                    r = raw(sock, b'{"cmd":"status"}\n')
                except OSError as e:  # refused before the hang-ups were seen
                    r = str(e)
                time.sleep(0.05)
            check(f"round {rnd}: freed slots serve new clients", "running" in r, r.strip()[:80])

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

    host_files_tests(tmp)

    code, _, se = vmctl(os.path.join(tmp, "nobody.sock"), "status")
    check("vmctl on a missing socket: clear error", code == 1 and "No such file" in se, se)

failed = results.count(False)
print(f"{len(results) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
