#!/usr/bin/env python3
"""The nested KVM test host: a Linux VM under QEMU's software emulation (TCG) whose emulated CPU
has AMD-V with nested paging, so /dev/kvm works inside it on machines that have no usable KVM.

  host.py mode                   which KVM the tests use here (direct or nested) and why
  host.py start                  boot L1 in the background; prints `export VIREO_KVM_HOST=DIR`
  host.py exec [--timeout S] -- CMD...
                                 run CMD in the L1 named by $VIREO_KVM_HOST (or --host DIR), with
                                 this cwd and environment; its output and exit status pass through
                                 (usable as `meson test --wrapper`)
  host.py stop                   power L1 off
  host.py run [--timeout S] -- CMD...
                                 start, exec, stop: one command in a fresh L1
  host.py console -- CMD...      boot L1 with CMD on this terminal (interactive, e.g. a VM console)

L1 is Debian's stock kernel with a small initramfs (tests/kvm-host/build.sh, cached); this
machine's root is its root, read-only over virtio-9p, with the checkout and the cache read-write.
Each L1 keeps its files in a run directory under the cache (console.log: L1's serial console,
qemu.log: QEMU's own messages); failures name it.
"""
import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
CACHE = os.environ.get("VIREO_CACHE_DIR") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vireo")
# One vCPU: with two, QEMU 7.2's multi-threaded TCG livelocked or crashed L1 now and then while
# it ran nested guests (docs/testing.md); with one it did not, and the suites ran faster.
CPUS = int(os.environ.get("VIREO_KVM_HOST_CPUS", "1"))
MEMORY = os.environ.get("VIREO_KVM_HOST_MEMORY", "6G")


def say(msg):
    print(f"kvm-host: {msg}", file=sys.stderr, flush=True)


def kvm_mode():
    """('direct'|'nested', reason). VIREO_TEST_KVM=direct|nested forces either."""
    forced = os.environ.get("VIREO_TEST_KVM", "")
    if forced in ("direct", "nested"):
        return forced, f"VIREO_TEST_KVM={forced}"
    if forced:
        raise SystemExit(f"kvm-host: VIREO_TEST_KVM must be direct or nested, not {forced!r}")
    if not os.path.exists("/dev/kvm"):
        return "nested", "/dev/kvm does not exist"
    if os.path.exists("/sys/module/kvm_pvm"):
        return "nested", "/dev/kvm is kvm_pvm (no hardware virtualization)"
    for mod in ("kvm_intel", "kvm_amd"):
        if os.path.exists(f"/sys/module/{mod}"):
            if not os.access("/dev/kvm", os.R_OK | os.W_OK):
                return "nested", f"/dev/kvm ({mod}) is not accessible to this user"
            return "direct", f"/dev/kvm is {mod} (hardware virtualization)"
    return "nested", "/dev/kvm has no kvm_intel or kvm_amd behind it"


def boot_files():
    r = subprocess.run([os.path.join(HERE, "build.sh")], stdout=subprocess.PIPE)
    if r.returncode != 0:
        raise SystemExit("kvm-host: building the nested host's boot files failed")
    return r.stdout.decode().strip()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def qemu_argv(files, run, mode, port=None):
    for path in (TOP, CACHE):
        if any(c.isspace() for c in path) or "," in path:
            raise SystemExit(f"kvm-host: {path!r}: paths with spaces or commas cannot be shared")
    model = "passthrough" if os.geteuid() == 0 else "none"
    cmdline = (f"console=ttyS0 panic=-1 vireo.mode={mode} vireo.run={run} vireo.top={TOP} "
               f"vireo.cache={CACHE}")
    if mode == "console":
        cmdline += " loglevel=1"
    argv = ["qemu-system-x86_64", "-accel", os.environ.get("VIREO_KVM_HOST_ACCEL", "tcg,thread=multi"), "-cpu", "max,la57=off", "-smp", str(CPUS),
            "-m", MEMORY, "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-kernel", f"{files}/vmlinuz", "-initrd", f"{files}/initrd.cpio", "-append", cmdline,
            "-virtfs", f"local,path=/,mount_tag=root,security_model={model},readonly=on,"
            "multidevs=remap",
            "-virtfs", f"local,path={TOP},mount_tag=top,security_model={model},multidevs=remap",
            "-virtfs", f"local,path={CACHE},mount_tag=cache,security_model={model},"
            "multidevs=remap"]
    if port:
        argv += ["-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:7000",
                 "-device", "virtio-net-pci,netdev=n0"]
    if mode == "console":
        argv += ["-chardev", "stdio,id=con,signal=off", "-serial", "chardev:con"]
    else:
        argv += ["-serial", f"file:{run}/console.log",
                 "-monitor", f"unix:{run}/monitor.sock,server=on,wait=off"]
    return argv


def new_run_dir():
    base = os.path.join(CACHE, "kvm-host", "run")
    os.makedirs(base, exist_ok=True)
    # Keep the newest few run directories (their console logs) and drop older ones.
    old = sorted((os.path.join(base, d) for d in os.listdir(base)), key=os.path.getmtime)
    for d in old[:-8]:
        st = _read_state(d)
        if st and _alive(st.get("pid")):
            continue
        shutil.rmtree(d, ignore_errors=True)
    run = os.path.join(base, time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3))
    os.makedirs(run, mode=0o700)
    return run


def _read_state(run):
    try:
        with open(os.path.join(run, "state.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _alive(pid):
    if not pid:
        return False
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def console_tail(run, n=25):
    try:
        with open(os.path.join(run, "console.log"), errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no console log)\n"


def start(timeout, run=None):
    """Boots an L1 into a new run directory, or into run (a restart: the old console log is
    kept as console-N.log and state.json now names the new QEMU)."""
    if not shutil.which("qemu-system-x86_64"):
        raise SystemExit("kvm-host: qemu-system-x86_64 is missing (apt-get install "
                         "qemu-system-x86)")
    files = boot_files()
    if run is None:
        run = new_run_dir()
    else:
        n = 1
        while os.path.exists(os.path.join(run, f"console-{n}.log")):
            n += 1
        for name in ("console.log", "qemu.log"):
            if os.path.exists(os.path.join(run, name)):
                os.rename(os.path.join(run, name), os.path.join(run, name.replace(".", f"-{n}.")))
        for name in ("token", "ready"):
            if os.path.exists(os.path.join(run, name)):
                os.unlink(os.path.join(run, name))
    token = secrets.token_hex(16)
    fd = os.open(os.path.join(run, "token"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, token.encode() + b"\n")
    os.close(fd)
    port = free_port()
    argv = qemu_argv(files, run, "agent", port)
    with open(os.path.join(run, "qemu.log"), "wb") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)
    state = {"pid": proc.pid, "port": port, "token": token, "run": run,
             "started": time.time()}
    with open(os.path.join(run, "state.json.tmp"), "w") as f:
        json.dump(state, f)
    os.rename(os.path.join(run, "state.json.tmp"), os.path.join(run, "state.json"))
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            break
        if os.path.exists(os.path.join(run, "ready")):
            try:
                if request(state, {"op": "ping"}, connect_timeout=5) == 0:
                    say(f"nested host up in {time.monotonic() - t0:.1f} s (run directory {run})")
                    return run
            except OSError:
                pass
        time.sleep(0.25)
    why = (f"QEMU exited with status {proc.returncode}" if proc.poll() is not None
           else f"it was not up within {timeout} s")
    say(f"the nested host did not come up ({why}); its console "
        f"({run}/console.log) ends:\n{console_tail(run)}")
    try:
        say("qemu.log: " + open(os.path.join(run, "qemu.log")).read()[-2000:])
    except OSError:
        pass
    kill(state)
    raise SystemExit(1)


# The agent sends a keepalive every 10 s while a command runs: this long without one means L1
# itself is wedged (QEMU's emulated AMD-V has livelocked L1's kernel, see docs/testing.md).
SILENCE_S = 180


def request(state, req, out=None, err=None, connect_timeout=30):
    """Sends one request; streams output; returns the command's exit status."""
    req = dict(req, token=state["token"])
    s = socket.create_connection(("127.0.0.1", state["port"]), timeout=connect_timeout)
    with s:
        s.settimeout(SILENCE_S)
        s.sendall(json.dumps(req).encode() + b"\n")
        f = s.makefile("rb")
        while True:
            hdr = f.read(5)
            if len(hdr) < 5:
                raise ConnectionError("the nested host closed the connection")
            kind, n = hdr[:1], struct.unpack(">I", hdr[1:])[0]
            data = f.read(n)
            if len(data) < n:
                raise ConnectionError("the nested host closed the connection")
            if kind == b"x":
                return json.loads(data)["rc"]
            if kind == b"k":
                continue
            dst = out if kind == b"o" else err
            if dst is not None:
                dst.write(data)
                dst.flush()


def load_state(host):
    run = host or os.environ.get("VIREO_KVM_HOST")
    if not run:
        raise SystemExit("kvm-host: no nested host: set VIREO_KVM_HOST (host.py start prints it) "
                         "or pass --host")
    st = _read_state(run)
    if not st:
        raise SystemExit(f"kvm-host: {run} is not a nested host's run directory")
    return st


class Expired(Exception):
    pass


def exec_cmd(state, argv, timeout=None):
    env = dict(os.environ)
    env.pop("VIREO_KVM_HOST", None)
    req = {"op": "exec", "argv": argv, "cwd": os.getcwd(), "env": env}
    if timeout:
        def expire(*_):
            say(f"{argv[0]}: no result after {timeout} s; killed")
            raise Expired

        signal.signal(signal.SIGALRM, expire)
        signal.alarm(int(timeout))
    # meson stops a test with SIGTERM: leave through the normal path so the connection closes
    # and the agent kills the command in L1.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    for attempt in (1, 2):
        try:
            return request(state, req, sys.stdout.buffer, sys.stderr.buffer)
        except Expired:
            return 124
        except OSError as e:
            alive = _alive(state["pid"])
            why = "no word from it for %d s" % SILENCE_S if isinstance(e, socket.timeout) \
                else str(e)
            say(f"lost the nested host ({why}; QEMU {'still runs' if alive else 'has exited'}); "
                f"its console ({state['run']}/console.log) ends:\n{console_tail(state['run'])}")
            if attempt == 2 or os.environ.get("VIREO_KVM_HOST_RESTART", "1") == "0":
                return 125
        # L1 itself failed, not the command: boot a fresh one and run the command once more
        # there. Every such restart is written to restarts.log and reported by run-all.sh.
        kill(state)
        with open(os.path.join(state["run"], "restarts.log"), "a") as f:
            f.write(f"{time.strftime('%H:%M:%S')} {' '.join(argv)[:300]}: {why}\n")
        say("restarting the nested host and running the command again (counted in "
            f"{state['run']}/restarts.log)")
        start(300, state["run"])
        state = _read_state(state["run"])
    return 125


def kill(state):
    try:
        os.killpg(state["pid"], signal.SIGKILL)
    except OSError:
        pass


def stop(state):
    try:
        request(state, {"op": "poweroff"}, connect_timeout=5)
    except OSError:
        pass
    t0 = time.monotonic()
    while _alive(state["pid"]) and time.monotonic() - t0 < 30:
        try:
            if os.waitpid(state["pid"], os.WNOHANG)[0]:
                break
        except ChildProcessError:
            pass
        time.sleep(0.2)
    kill(state)


def console(argv):
    files = boot_files()
    run = new_run_dir()
    with open(os.path.join(run, "cmd.sh"), "w") as f:
        f.write("exec " + " ".join(_shquote(a) for a in argv) + "\n")
    with open(os.path.join(run, "cwd"), "w") as f:
        f.write(os.getcwd())
    r = subprocess.run(qemu_argv(files, run, "console"))
    try:
        return int(open(os.path.join(run, "rc")).read())
    except (OSError, ValueError):
        say(f"the nested host ended without a result (QEMU exit status {r.returncode})")
        return 1


def _shquote(a):
    return "'" + a.replace("'", "'\\''") + "'"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="verb", required=True)
    sub.add_parser("mode")
    p = sub.add_parser("start")
    p.add_argument("--boot-timeout", type=int, default=300)
    for name in ("exec", "run"):
        p = sub.add_parser(name)
        p.add_argument("--host")
        p.add_argument("--timeout", type=int)
        p.add_argument("--boot-timeout", type=int, default=300)
        p.add_argument("argv", nargs=argparse.REMAINDER)
    p = sub.add_parser("stop")
    p.add_argument("--host")
    p = sub.add_parser("console")
    p.add_argument("argv", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    if hasattr(a, "argv") and a.argv and a.argv[0] == "--":
        a.argv = a.argv[1:]
    if a.verb == "mode":
        mode, why = kvm_mode()
        print(f"{mode}: {why}")
        return 0
    if a.verb == "start":
        run = start(a.boot_timeout)
        print(f"export VIREO_KVM_HOST={run}")
        return 0
    if a.verb in ("exec", "run", "console") and not a.argv:
        ap.error(f"{a.verb}: a command is needed")
    if a.verb == "exec":
        return exec_cmd(load_state(a.host), a.argv, a.timeout)
    if a.verb == "stop":
        stop(load_state(a.host))
        return 0
    if a.verb == "run":
        state = _read_state(start(a.boot_timeout))
        try:
            return exec_cmd(state, a.argv, a.timeout)
        finally:
            stop(state)
    if a.verb == "console":
        return console(a.argv)
    return 2


if __name__ == "__main__":
    sys.exit(main())
