"""Driving a `vireo run` guest over its serial console (stdin/stdout pipes)."""
import os
import re
import socket
import subprocess
import threading
import time

READY_MARKER = "VIREO_GUEST_READY"
PROMPT = "vireo# "


def wait_for_path(path, timeout=30):
    """Waits until path exists (a socket the VMM creates); returns whether it does."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    return os.path.exists(path)


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

    def run(self, command, timeout=120):
        """Runs a shell command in the guest and returns its output (between markers)."""
        with self.lock:
            start = len(self.buf)
        # The markers are written split so the echoed command line does not match.
        self.send(f"echo '@@'BEGIN; {command}; echo '@@'END\n")
        m = self.wait_for(r"@@BEGIN\r?\n(.*?)@@END", timeout, start)
        return m.group(1).replace("\r", "").strip()

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
