#!/usr/bin/env python3
"""Command-line and bad-input tests for `vireo run`: every case must end with a clear message on
stderr and the documented exit status, never a crash or a hang.
Usage: cli_test.py VIREO PAYLOAD_DIR [GUEST_BUILD_SH]"""
import os
import pty
import random
import select
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest import unix_exchange, wait_for_path  # noqa: E402

VIREO = sys.argv[1]
PAYLOADS = sys.argv[2]
failures = []
passed = 0


def run(args, timeout=120):
    p = subprocess.run([VIREO] + args, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def check(name, args, status, needle, where="stderr", timeout=120):
    global passed
    try:
        code, out, err = run(args, timeout)
    except subprocess.TimeoutExpired:
        failures.append(f"{name}: hung (no exit within {timeout}s)")
        print(f"FAIL {name}: hung")
        return
    text = err if where == "stderr" else out
    problems = []
    if code < 0:
        problems.append(f"killed by signal {-code}")
    if code != status:
        problems.append(f"exit status {code}, want {status}")
    if needle.lower() not in text.lower():
        problems.append(f"{where} lacks {needle!r}")
    if "Sanitizer" in err or "runtime error" in err:
        problems.append("sanitizer report")
    if problems:
        failures.append(f"{name}: " + "; ".join(problems) + f"\n  stderr: {err.strip()[:600]}")
        print(f"FAIL {name}: {problems}")
    else:
        passed += 1
        print(f"ok   {name}: {text.strip().splitlines()[-1] if text.strip() else ''}")


def guest_dir():
    if len(sys.argv) < 4:
        return None
    p = subprocess.run([sys.argv[3]], capture_output=True, text=True)
    return p.stdout.strip().splitlines()[-1] if p.returncode == 0 else None


with tempfile.TemporaryDirectory() as tmp:
    hello = os.path.join(PAYLOADS, "hello.bin")
    check("no-args", [], 2, "Usage: vireo")
    check("help", ["run", "--help"], 0, "Usage: vireo run", where="stdout")
    check("unknown-command", ["frobnicate"], 2, "unknown command")
    check("unknown-option", ["run", "--frobnicate"], 2, "unknown option '--frobnicate'")
    check("missing-value", ["run", "--kernel"], 2, "needs a value")
    check("no-guest", ["run"], 2, "no guest given")
    check("memory-0", ["run", "--payload", hello, "--memory", "0"], 2, "--memory")
    check("memory-junk", ["run", "--payload", hello, "--memory", "lots"], 2, "not a size")
    check("cpus-0", ["run", "--payload", hello, "--cpus", "0"], 2, "at least one vCPU")
    check("cpus-too-many", ["run", "--payload", hello, "--cpus", "100000"], 2, "at most")
    check("cpu-feature-unknown", ["run", "--payload", hello, "--cpu-features", "-warpdrive"],
          2, "unknown CPU feature")
    check("console-bad", ["run", "--payload", hello, "--console", "printer"], 2, "--console")
    check("timeout-0", ["run", "--payload", hello, "--timeout", "0"], 2, "--timeout")
    check("kernel-missing", ["run", "--kernel", os.path.join(tmp, "nope")], 1,
          "No such file")
    check("kernel-directory", ["run", "--kernel", tmp], 1, "directory")
    rnd = os.path.join(tmp, "random.bin")
    with open(rnd, "wb") as f:
        f.write(random.Random(42).randbytes(1 << 20))
    check("kernel-random-bytes", ["run", "--kernel", rnd], 1, "not a Linux kernel")
    empty = os.path.join(tmp, "empty")
    open(empty, "wb").close()
    check("kernel-empty", ["run", "--kernel", empty], 1, "not a Linux kernel")
    check("console-file-unwritable",
          ["run", "--payload", hello, "--console", "file:/nonexistent/dir/console.txt"], 1,
          "console file")
    big = os.path.join(tmp, "big.bin")
    with open(big, "wb") as f:
        f.truncate(1 << 20)
    check("payload-too-big", ["run", "--payload", big], 1, "too large")
    check("timeout-fires", ["run", "--payload", os.path.join(PAYLOADS, "hang.bin"),
                            "--timeout", "3", "--console", "none"], 124, "timeout")

    check("memory-4g-split-around-hole", ["run", "--payload", hello, "--memory", "4G"], 0,
          "Hello from real mode", where="stdout")
    code, out, err = run(["run", "--payload", hello, "--hugepages"])
    if code == 0 and "Hello" in out or code == 1 and "huge pages" in err:
        passed += 1
        print(f"ok   hugepages: status {code}")
    else:
        failures.append(f"hugepages: status {code}, stderr {err.strip()[-300:]}")

    # Socket console: output written before the client connects is replayed to it; SIGTERM
    # stops the VM with status 128+15 and removes the socket.
    sock_path = os.path.join(tmp, "console.sock")
    p = subprocess.Popen([VIREO, "run", "--payload", os.path.join(PAYLOADS, "hang.bin"),
                          "--console", "socket:" + sock_path, "--timeout", "60"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    got = b""
    try:
        wait_for_path(sock_path)
        time.sleep(0.5)  # let the payload print before anyone listens
        got = unix_exchange(sock_path, until=b"hanging on purpose", timeout=10)
    except OSError as e:
        got += f"[{e}]".encode()
    p.send_signal(signal.SIGTERM)
    try:
        _, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
    if b"hanging on purpose" in got and p.returncode == 143 and not os.path.exists(sock_path):
        passed += 1
        print("ok   socket-console-backlog-and-sigterm")
    else:
        failures.append(f"socket console: got {got!r}, status {p.returncode}, socket left: "
                        f"{os.path.exists(sock_path)}, stderr {err.strip()[-300:]}")

    # Terminal console: raw mode, and Ctrl-A x quits with status 0.
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(VIREO, [VIREO, "run", "--payload", os.path.join(PAYLOADS, "hang.bin"),
                         "--timeout", "60"])
    out = b""
    deadline = time.monotonic() + 30
    while b"hanging on purpose" not in out and time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 1)
        if r:
            try:
                out += os.read(fd, 4096)
            except OSError:
                break
    os.write(fd, b"\x01x")
    status = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        wpid, st = os.waitpid(pid, os.WNOHANG)
        if wpid:
            status = os.waitstatus_to_exitcode(st)
            break
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                out += os.read(fd, 4096)
            except OSError:
                pass
    if status is None:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    if status == 0 and b"Ctrl-A x" in out and b"console escape" in out:
        passed += 1
        print("ok   terminal-escape-ctrl-a-x")
    else:
        failures.append(f"terminal escape: status {status}, output {out[-400:]!r}")

    g = guest_dir()
    if g:
        bz = open(os.path.join(g, "bzImage"), "rb").read()
        trunc = os.path.join(tmp, "truncated-bzImage")
        with open(trunc, "wb") as f:
            f.write(bz[: len(bz) // 2])
        check("bzimage-truncated", ["run", "--kernel", trunc], 1, "truncated")
        hdr = os.path.join(tmp, "header-only-bzImage")
        with open(hdr, "wb") as f:
            f.write(bz[:0x300])
        check("bzimage-header-only", ["run", "--kernel", hdr], 1, "truncated")
        huge = os.path.join(tmp, "huge-initrd")
        with open(huge, "wb") as f:
            f.truncate(300 << 20)
        check("initrd-bigger-than-ram", ["run", "--kernel", os.path.join(g, "vmlinux"),
                                         "--initrd", huge, "--memory", "256M"], 1,
              "larger than guest RAM")
        almost = os.path.join(tmp, "almost-initrd")
        with open(almost, "wb") as f:
            f.truncate(250 << 20)
        check("initrd-no-room", ["run", "--kernel", os.path.join(g, "vmlinux"),
                                 "--initrd", almost, "--memory", "256M"], 1, "does not fit")
        check("cmdline-too-long", ["run", "--kernel", os.path.join(g, "vmlinux"),
                                   "--cmdline", "x" * 5000], 1, "command line")
    else:
        failures.append("test guest not available: bzImage/initrd cases not run")

print(f"{passed} passed, {len(failures)} failed")
for f in failures:
    print("FAIL", f)
sys.exit(1 if failures else 0)
