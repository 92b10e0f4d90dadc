"""What a new user does with vireod, through the `vireo` command line only (needs KVM: runs in
the nested test host): `vireo vm create ... && vireo vm start NAME && vireo vm console NAME`
gives the Linux test guest's shell; pause, resume, shutdown with a forced fallback, start
again, stop, task list, delete. Exit statuses are checked at every step."""

import json
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "api"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import apilib  # noqa: E402
from guest import PROMPT, READY_MARKER, build_guest  # noqa: E402

VIREOD, VIREO, BUILD_SH = sys.argv[1], sys.argv[2], sys.argv[3]
OK, FAILED, USAGE, NOT_FOUND, CONFLICT = 0, 1, 2, 3, 4


def vireo(env, *args, expect=OK, timeout=600):
    p = subprocess.run([VIREO, *args], capture_output=True, text=True, env=env, timeout=timeout)
    assert p.returncode == expect, (f"vireo {' '.join(args)}: exit {p.returncode}, expected "
                                    f"{expect}\nstdout: {p.stdout}\nstderr: {p.stderr}")
    return p


def state(env, name):
    return json.loads(vireo(env, "vm", "show", name, "--json").stdout)["state"]


class Console:
    """`vireo vm console NAME` with its stdin and stdout on pipes."""

    def __init__(self, env, name):
        self.p = subprocess.Popen([VIREO, "vm", "console", name], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.buf = b""
        self.cv = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            b = self.p.stdout.read1(65536)
            if not b:
                break
            with self.cv:
                self.buf += b
                self.cv.notify_all()

    def wait_for(self, text, timeout, start=0):
        deadline = time.monotonic() + timeout
        with self.cv:
            while text.encode() not in self.buf[start:]:
                left = deadline - time.monotonic()
                if left <= 0 or self.p.poll() is not None:
                    err = self.p.stderr.read().decode() if self.p.poll() is not None else ""
                    raise AssertionError(f"console: no {text!r} in {self.buf[-2000:]!r} "
                                         f"(client exit {self.p.poll()}: {err})")
                self.cv.wait(min(left, 1))
            return self.buf.index(text.encode(), start)

    def send(self, text):
        self.p.stdin.write(text.encode())
        self.p.stdin.flush()

    def close(self, timeout=30):
        self.p.stdin.close()  # end of input: the client says goodbye and exits
        return self.p.wait(timeout)


def main():
    g_dir = build_guest(BUILD_SH)
    d = apilib.Daemon(VIREOD, VIREO, listen=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIREO_")}
    env["VIREO_ENDPOINT"] = "unix:" + d.sock
    ok = False
    try:
        p = vireo(env, "vm", "create", "demo", "--kernel", os.path.join(g_dir, "vmlinux"),
                  "--initrd", os.path.join(g_dir, "initramfs.cpio"), "--memory", "256M",
                  "--cpus", "2", "--tag", "demo")
        print("ok   create:", p.stdout.strip())
        t0 = time.monotonic()
        p = vireo(env, "vm", "start", "demo")
        assert "demo: start done" in p.stdout, p.stdout
        assert state(env, "demo") == "running"
        print(f"ok   start ({time.monotonic() - t0:.1f} s)")
        vireo(env, "vm", "start", "demo", expect=CONFLICT)
        print("ok   a second start is refused (exit 4)")

        con = Console(env, "demo")
        con.wait_for(READY_MARKER, 600)
        at = con.wait_for(PROMPT, 120)
        print(f"ok   console: shell after {time.monotonic() - t0:.1f} s")
        con.send("echo hi-$((6*7))\n")
        con.wait_for("hi-42", 60, at)
        assert con.close() == 0, con.p.stderr.read()
        print("ok   console: command ran, Ctrl-D-like end of input exits 0")

        vireo(env, "vm", "pause", "demo")
        assert state(env, "demo") == "paused"
        vireo(env, "vm", "resume", "demo")
        assert state(env, "demo") == "running"
        print("ok   pause/resume")
        con = Console(env, "demo")
        at = len(con.buf)
        time.sleep(0.5)
        con.send("echo again-$((7*6))\n")
        con.wait_for("again-42", 60, at)
        con.close()
        print("ok   the guest answers after resume")

        # The test guest has no ACPI daemon: the power button does nothing, so the forced
        # fallback after the timeout stops it, and the reason says so.
        vireo(env, "vm", "shutdown", "demo", "--timeout", "3", "--force")
        assert state(env, "demo") == "stopped"
        hist = vireo(env, "vm", "history", "demo").stdout
        assert "stopping" in hist and "stopped" in hist, hist
        print("ok   shutdown with forced fallback; history:\n" + hist)

        vireo(env, "vm", "start", "demo", "--tag", "x", expect=USAGE)
        vireo(env, "vm", "start", "--tag", "demo")
        assert state(env, "demo") == "running"
        vireo(env, "vm", "delete", "demo", expect=CONFLICT)
        vireo(env, "vm", "stop", "demo")
        assert state(env, "demo") == "stopped"
        print("ok   start by tag, delete refused while running, stop")

        tasks = json.loads(vireo(env, "task", "list", "--json").stdout)["items"]
        kinds = [t["kind"] for t in tasks]
        # Two starts ran as tasks (the refused one never became a task), newest first.
        assert kinds == ["vm.stop", "vm.start", "vm.shutdown", "vm.resume", "vm.pause",
                         "vm.start"], kinds
        assert all(t["state"] == "succeeded" for t in tasks), tasks
        vireo(env, "vm", "delete", "demo")
        vireo(env, "vm", "show", "demo", expect=NOT_FOUND)
        print("ok   tasks listed, VM deleted")
        ok = True
    finally:
        subprocess.run([VIREO, "vm", "stop", "demo"], env=env, capture_output=True, timeout=60)
        d.stop()
        if not ok:
            print("---- vireod log ----\n" + d.logtext()[-6000:])
        d.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
