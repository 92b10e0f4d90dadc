"""Driving a `vireo run` guest over its serial console (stdin/stdout pipes)."""
import atexit
import os
import re
import socket
import subprocess
import threading
import time

READY_MARKER = "VIREO_GUEST_READY"
KERNEL_SEGV_LINE = re.compile(r"^(\S+\[\d+\]: segfault at |Code: [0-9a-f]{2} )")
PROMPT = "vireo# "
# The segfault flake that repeats are for exists only on kvm_pvm hosts (docs/pvm-hosts.md).
# Elsewhere (real VT-x/AMD-V, the nested test host) a guest segfault is a failure, never
# repeated; where repeats do happen they are counted and reported at exit.
PVM_HOST = os.path.exists("/sys/module/kvm_pvm")
REPEATS = []


def _report_repeats():
    if REPEATS:
        print(f"info {len(REPEATS)} guest command(s) repeated after a PVM segfault flake: "
              + "; ".join(REPEATS))


atexit.register(_report_repeats)


def wait_for_path(path, timeout=30):
    """Waits until path exists (a socket the VMM creates); returns whether it does."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    return os.path.exists(path)


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (for migration listeners)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def port_open(port):
    """Whether a TCP connection to 127.0.0.1:port is accepted."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def stop(p):
    """Kills the process p if it still runs; returns its stderr."""
    if p.poll() is None:
        p.kill()
    return p.communicate()[1]


# The outcome of every check() of a test script, in order.
results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(("ok   " if ok else "FAIL ") + name + (": " + detail if detail else ""))


def unix_exchange(path, send=b"", until=b"\n", timeout=20):
    """Connects to a unix socket, sends send, reads until until appears (or EOF)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        s.settimeout(timeout)
        if send:
            s.sendall(send)
        data = b""
        while until not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data
    finally:
        s.close()


def build_guest(build_sh):
    """Runs guest/build.sh (cached) and returns the guest directory."""
    p = subprocess.run([build_sh], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("guest/build.sh failed:\n" + p.stderr[-3000:])
    return p.stdout.strip().splitlines()[-1]


class Guest:
    def __init__(self, vireo, args, log_path=None):
        self.cmd = [vireo, "run"] + args
        self.buf = ""
        self.lock = threading.Condition()
        self.log = open(log_path, "w") if log_path else None
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.stderr = ""
        self.first_byte_at = None
        threading.Thread(target=self._reader, daemon=True).start()
        threading.Thread(target=self._err_reader, daemon=True).start()

    def _reader(self):
        fd = self.proc.stdout.fileno()
        while True:
            data = os.read(fd, 4096)
            if not data:
                break
            text = data.decode(errors="replace")
            with self.lock:
                if self.first_byte_at is None:
                    self.first_byte_at = time.monotonic() - self.t0
                self.buf += text
                self.lock.notify_all()
            if self.log:
                self.log.write(text)
                self.log.flush()
        with self.lock:
            self.lock.notify_all()

    def _err_reader(self):
        for line in self.proc.stderr:
            self.stderr += line.decode(errors="replace")

    def wait_for(self, pattern, timeout, start=0):
        """Waits until pattern (regex) appears in the console after offset start; returns the
        match. Raises TimeoutError with the console tail."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern, re.S)
        with self.lock:
            while True:
                m = rx.search(self.buf, start)
                if m:
                    return m
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not m):
                    raise TimeoutError(f"waiting for {pattern!r}: console tail:\n"
                                       + self.buf[-2000:] + "\nstderr:\n" + self.stderr[-2000:])
                self.lock.wait(min(left, 1.0))

    def send(self, text):
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def run(self, command, timeout=120, retry_segv=True):
        """Runs a shell command in the guest and returns its output (between markers).

        On PVM hosts a freshly started guest process now and then dies at its first TLS
        access (a user-mode segfault at address 0, seen on plain boots too, see
        docs/pvm-hosts.md); such a run is repeated up to three times, and said so."""
        with self.lock:
            start = len(self.buf)
        # The markers are written split so the echoed command line does not match.
        self.send(f"echo '@@'BEGIN; {command}; echo '@@'END\n")
        m = self.wait_for(r"@@BEGIN\r?\n(.*?)@@END", timeout, start)
        out = m.group(1).replace("\r", "").strip()
        # The kernel reports a user process's segfault on the console, in the middle of
        # whatever another command prints (see above): such lines are not the command's.
        kept = [ln for ln in out.split("\n") if not KERNEL_SEGV_LINE.match(ln)]
        if len(kept) != len(out.split("\n")):
            print(f"info kernel segfault report on the console during {command!r}")
            out = "\n".join(kept).strip()
        if retry_segv and PVM_HOST and "Segmentation fault" in out:
            tries = 3 if retry_segv is True else retry_segv
            REPEATS.append(repr(command))
            print(f"info guest process segfaulted (PVM host flake), repeating: {command!r}")
            time.sleep(1)
            return self.run(command, timeout, retry_segv=tries - 1 if tries > 1 else False)
        return out

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _devices_images(vireo, d):
    """The fixture's disks: disk0.qcow2 (16 MiB, ext4 labelled 'vireo', made on the host) and
    data1.raw (1 MiB, byte i of each 256-byte block = i), read-only in the guest."""
    raw = os.path.join(d, "disk0.raw")
    subprocess.run(["truncate", "-s", "16M", raw], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "vireo", raw], check=True)
    subprocess.run([vireo, "img", "convert", "-O", "qcow2", raw,
                    os.path.join(d, "disk0.qcow2")], check=True, capture_output=True)
    os.unlink(raw)
    with open(os.path.join(d, "data1.raw"), "wb") as f:
        f.write(bytes(range(256)) * 4096)


def linux_snapshot_devices(vireo, build_sh, workdir):
    """Like linux_snapshot but with one vCPU (device tests need no SMP, and on PVM hosts a
    second vCPU's timer and scheduler work costs more emulated time than the test itself) and
    the standard test devices: --rng, a writable virtio disk
    (vda: DIR/disk0.qcow2, ext4 on the whole disk, serial vireo-disk0, not mounted) and a
    read-only one (vdb: DIR/data1.raw, serial vireo-ro1), DIR being the directory of the
    returned snapshot. Those two images are the snapshot's frozen images: never write them;
    restore with `--restore SNAP --overlay-dir PRIVATE_DIR` + devices_disks(SNAP) and the
    restored VM writes to
    PRIVATE_DIR/disk0.snap.rN.qcow2 (see docs/snapshots.md)."""
    return linux_snapshot(vireo, build_sh, workdir, devices=True)


def devices_disks(snap):
    """The --disk options that restore linux_snapshot_devices' snapshot: its frozen images. A
    snapshot names no host file a restore opens (docs/snapshots.md): the command line does."""
    d = os.path.dirname(snap)
    return ["--disk", os.path.join(d, "disk0.qcow2"),
            "--disk", os.path.join(d, "data1.raw") + ",readonly"]


def linux_snapshot(vireo, build_sh, workdir, devices=False):
    """The test guest booted once and saved: returns a snapshot directory to restore from.

    The guest (2 vCPUs, 256 MiB) is at its shell prompt with /tmp/f containing "hello" and a
    background counter writing 1, 2, 3... into /tmp/cnt every second. The first caller in a
    build boots and snapshots it (about 40 s on PVM hosts); later callers, in this test run or
    in other tests, reuse it. It is remade when the vireo binary or the guest changes."""
    import fcntl
    import hashlib
    import json as _json
    g_dir = build_guest(build_sh)
    st = os.stat(vireo)
    key = hashlib.sha256(f"{st.st_size}:{st.st_mtime_ns}:{g_dir}".encode()).hexdigest()[:16]
    extra = []
    if devices:
        # The images live next to the snapshot: they are its frozen disks.
        fdir = os.path.join(workdir, "linux-devices-" + key)
        snap = os.path.join(fdir, "snap")
        extra = ["--rng", "--disk", os.path.join(fdir, "disk0.qcow2") + ",serial=vireo-disk0",
                 "--disk", os.path.join(fdir, "data1.raw") + ",readonly,serial=vireo-ro1",
                 "--overlay-dir", os.path.join(fdir, "run")]
    else:
        snap = os.path.join(workdir, "linux-snapshot-" + key)
    with open(os.path.join(workdir, "linux-snapshot.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(os.path.join(snap, "state.vireo")):
            return snap
        if devices:
            import shutil
            shutil.rmtree(fdir, ignore_errors=True)
            os.makedirs(os.path.join(fdir, "run"))
            _devices_images(vireo, fdir)
        sock = os.path.join(workdir, "linux-snapshot.sock")
        for attempt in (1, 2):
            g = Guest(vireo, ["--kernel", os.path.join(g_dir, "vmlinux"),
                              "--initrd", os.path.join(g_dir, "initramfs.cpio"),
                              "--cpus", "1" if devices else "2", "--memory", "256M",
                              "--api-sock", sock, "--timeout", "1500"] + extra,
                      os.path.join(workdir, "linux-snapshot-console.log"))
            try:
                g.wait_for(READY_MARKER, 900)
                g.wait_for(PROMPT, 120)
                break
            except TimeoutError:
                g.kill()
                # On kvm_pvm hosts an SMP guest's init can die at its first TLS access
                # (docs/pvm-hosts.md); that boot is lost, the next one normally is not.
                if attempt == 2 or not PVM_HOST or "Attempted to kill init" not in g.buf:
                    raise
                REPEATS.append("fixture boot")
                print("info fixture: the guest's init died (PVM host flake); booting again")
        try:
            print(f"info fixture: test guest booted to its shell in "
                  f"{time.monotonic() - g.t0:.1f} s")
            g.run("echo hello > /tmp/f; (i=0; while true; do i=$((i+1)); echo $i > /tmp/cnt; "
                  "sleep 1; done) >/dev/null 2>&1 & true")
            g.run("sleep 2; cat /tmp/cnt")
            r = _json.loads(unix_exchange(sock, (_json.dumps(
                {"cmd": "snapshot", "path": snap + ".tmp"}) + "\n").encode(), timeout=300))
            if not r.get("ok"):
                raise RuntimeError(f"snapshot of the test guest failed: {r}")
            os.rename(snap + ".tmp", snap)
        finally:
            g.kill()
            if devices:
                # The overlay the fixture VM went on in after the snapshot: nobody needs it.
                import shutil
                shutil.rmtree(os.path.join(fdir, "run"), ignore_errors=True)
        return snap
