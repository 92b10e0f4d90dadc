"""Helpers for the vireod KVM tests and bench/api.py: a daemon in a private state directory, a
small HTTP client on its unix socket (on tests/api/apilib.py's connection and reply classes), and a
websocket console client."""
import base64
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "api"))
from apilib import PREFIX, Reply, UnixHTTPConnection  # noqa: E402


class Api:
    """Requests on vireod's unix socket (admin by peer credentials)."""

    def __init__(self, sock):
        self.sock = sock

    def req(self, method, path, body=None, headers=None, timeout=60):
        c = UnixHTTPConnection(self.sock, timeout)
        h = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        c.request(method, PREFIX + path, data, h)
        r = c.getresponse()
        out = Reply(r.status, dict(r.getheaders()), r.read())
        c.close()
        return out

    def get(self, path, **kw):
        return self.req("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.req("POST", path, body, **kw)

    def patch(self, path, body, **kw):
        return self.req("PATCH", path, body, **kw)

    def delete(self, path, **kw):
        return self.req("DELETE", path, **kw)

    def vm(self, name):
        r = self.get(f"/vms/{name}")
        assert r.status == 200, r
        return r.json

    def wait_task(self, task_id, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            t = self.get(f"/tasks/{task_id}").json
            if t["state"] in ("succeeded", "failed", "cancelled"):
                return t
            time.sleep(0.05)
        raise AssertionError(f"task {task_id} did not finish in {timeout} s: {t}")

    def action(self, name, action, body=None, timeout=120, ok=True):
        """Runs an action and waits for its task; with ok, asserts it succeeded."""
        r = self.post(f"/vms/{name}/actions/{action}", body)
        assert r.status == 202, (name, action, r)
        t = self.wait_task(r.json["id"], timeout)
        if ok:
            assert t["state"] == "succeeded", (name, action, t)
        return t

    def wait_state(self, name, state, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            vm = self.vm(name)
            if vm["state"] == state:
                return vm
            time.sleep(0.05)
        raise AssertionError(f"{name} is {vm['state']} ({vm['state_reason']}), not {state}")


class Daemon:
    """A vireod with its own state directory and unix socket. kill9() and start() again keep
    the state directory: the next daemon re-attaches."""

    def __init__(self, vireod, vireo, workdir=None):
        self.vireod, self.vireo = vireod, vireo
        self.dir = workdir or tempfile.mkdtemp(prefix="vireod-kvm-")
        self.state = os.path.join(self.dir, "state")
        self.sock = os.path.join(self.dir, "vireod.sock")
        self.log_path = os.path.join(self.dir, "vireod.log")
        self.proc = None
        self.api = Api(self.sock)

    def start(self, timeout=60):
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.vireod, "--state-dir", self.state, "--socket",
                                      self.sock, "--vireo", self.vireo],
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        t0 = time.monotonic()
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("vireod exited:\n" + self.logtext()[-3000:])
            if os.path.exists(self.sock):
                try:
                    if self.api.get("/host", timeout=5).status == 200:
                        return time.monotonic() - t0
                except OSError:
                    pass
            if time.monotonic() - t0 > timeout:
                raise RuntimeError("vireod did not come up:\n" + self.logtext()[-3000:])
            time.sleep(0.02)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill9()

    def logtext(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def rss_bytes(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def vmm_pids(self):
        """Pids of the VMMs and shims this daemon's state directory knows (from their pid
        files), alive or not."""
        pids = []
        vms = os.path.join(self.state, "vms")
        for d in os.listdir(vms) if os.path.isdir(vms) else []:
            for name in ("vmm.pid", "shim.pid"):
                try:
                    with open(os.path.join(vms, d, name)) as f:
                        pids.append(int(f.read()))
                except (OSError, ValueError):
                    pass
        return pids

    def cleanup(self):
        """Stops the daemon and SIGKILLs the VMMs and shims it started (only those: their pids
        come from our own state directory and are checked against their command line)."""
        self.stop()
        for pid in self.vmm_pids():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    mine = self.state.encode() in f.read()
                if mine:
                    os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


def payload_vm(name, payload, memory=16, **kw):
    d = {"name": name, "boot": {"payload": payload}, "memory_mib": memory}
    d.update(kw)
    return d


class Console:
    """A websocket client of GET /vms/{id}/console on the unix socket (RFC 6455)."""

    def __init__(self, sock_path, vm, timeout=30):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(sock_path)
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall((f"GET {PREFIX}/vms/{vm}/console HTTP/1.1\r\nHost: localhost\r\n"
                        f"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                        ).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.s.recv(1)
            if not chunk:
                raise AssertionError(f"console handshake: {head!r}")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            raise AssertionError(f"console handshake refused: {head!r}")
        self.buf = b""
        self.text = ""

    def _recv_exact(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("console closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _frame(self):
        b0, b1 = self._recv_exact(2)
        n = b1 & 0x7f
        if n == 126:
            n = struct.unpack(">H", self._recv_exact(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self._recv_exact(8))[0]
        if b1 & 0x80:
            mask = self._recv_exact(4)
            data = bytes(c ^ mask[i % 4] for i, c in enumerate(self._recv_exact(n)))
        else:
            data = self._recv_exact(n)
        return b0 & 0x0f, data

    def wait_for(self, needle, timeout=120):
        deadline = time.time() + timeout
        while needle not in self.text:
            if time.time() > deadline:
                raise AssertionError(f"{needle!r} not on the console; it ends:\n"
                                     + self.text[-1500:])
            self.s.settimeout(max(0.1, deadline - time.time()))
            op, data = self._frame()
            if op == 8:
                raise EOFError("console closed; it ends:\n" + self.text[-1500:])
            if op in (1, 2, 0):
                self.text += data.decode(errors="replace")
        return self.text

    def send(self, text):
        data = text.encode()
        mask = os.urandom(4)
        head = bytes([0x82])
        if len(data) < 126:
            head += bytes([0x80 | len(data)])
        else:
            head += bytes([0x80 | 126]) + struct.pack(">H", len(data))
        self.s.sendall(head + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(data)))

    def close(self):
        self.s.close()
