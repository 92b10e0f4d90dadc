#!/usr/bin/env python3
"""Snapshot, restore and live migration on the counter payload (a PIT-driven counter printed
over the serial port): the counter goes on from where it was after a restore and after a
migration (TLS with a pre-shared key, TLS with X.509 certificates, plain TCP asked for by name);
two restores of one snapshot run side by side; bad snapshot files, peers that cannot
authenticate and bad migration peers get clear errors and lose nothing.
Usage: state_test.py VIREO PAYLOAD_DIR"""
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest import check, free_port, port_open, results, stop, unix_exchange, wait_for_path  # noqa: E402,E501

VIREO, PAYLOADS = sys.argv[1], sys.argv[2]
COUNTER = os.path.join(PAYLOADS, "counter.bin")
def request(sock, obj):
    return json.loads(unix_exchange(sock, (json.dumps(obj) + "\n").encode()))


def ticks(path):
    try:
        return [int(x, 16) for x in re.findall(r"tick ([0-9A-F]{4})", open(path).read())]
    except OSError:
        return []


def wait_until(pred, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    return pred()


def run(args, tmp, name, sock=True):
    """Starts vireo run with a console file (and a control socket)."""
    out = os.path.join(tmp, name + ".console")
    cmd = [VIREO, "run"] + args + ["--console", "file:" + out, "--timeout", "300"]
    s = None
    if sock:
        s = os.path.join(tmp, name + ".sock")
        cmd += ["--api-sock", s]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    return p, s, out


def vireo_run(args, timeout=30):
    return subprocess.run([VIREO, "run"] + args, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def rewrite_state(src_dir, dst_dir, edit):
    """Copies a snapshot, lets edit(bytearray) change the state file, fixes the CRC."""
    shutil.copytree(src_dir, dst_dir)
    path = os.path.join(dst_dir, "state.vireo")
    b = bytearray(open(path, "rb").read())
    edit(b)
    struct.pack_into("<I", b, 56, 0)
    struct.pack_into("<I", b, 56, zlib.crc32(bytes(b)))
    open(path, "wb").write(b)


def wait_port(port, timeout=30):
    # Probing the destination with an empty connection is itself a case it must survive.
    return wait_until(lambda: port_open(port), timeout)


def snapshot_tests(tmp):
    p, sock, out = run(["--payload", COUNTER], tmp, "src")
    snap = os.path.join(tmp, "snap")
    try:
        wait_for_path(sock)
        wait_until(lambda: len(ticks(out)) >= 5)
        # Left paused, so that the last tick on the console is the snapshot's (a resumed
        # source can print more before this reads the file, slowly under emulation).
        r = request(sock, {"cmd": "snapshot", "path": snap, "paused": True})
        at = ticks(out)[-1]
        request(sock, {"cmd": "resume"})
        check("snapshot of a running VM answers ok", r.get("ok") is True, str(r))
        st = os.stat(os.path.join(snap, "memory.raw"))
        check("memory file has the size of RAM and is sparse",
              st.st_size == 256 << 20 and st.st_blocks * 512 < 4 << 20,
              f"{st.st_size} bytes, {st.st_blocks * 512} allocated")
        n = len(ticks(out))
        check("the VM runs on after the snapshot", wait_until(lambda: len(ticks(out)) > n + 2))
        modes = {f: os.stat(os.path.join(snap, f)).st_mode & 0o777 for f in os.listdir(snap)}
        check("snapshot directory 0700, its files 0600 (guest RAM and state are private)",
              os.stat(snap).st_mode & 0o777 == 0o700 and modes
              and all(m == 0o600 for m in modes.values()),
              f"dir {os.stat(snap).st_mode & 0o777:o}, files "
              + ", ".join(f"{f} {m:o}" for f, m in modes.items()))
        r = request(sock, {"cmd": "snapshot", "path": snap})
        check("a snapshot never overwrites a directory that is not empty",
              r.get("ok") is False and "not empty" in r.get("error", ""), str(r))
        r = request(sock, {"cmd": "snapshot"})
        check("snapshot without a path is refused", r.get("ok") is False, str(r))
        r = request(sock, {"cmd": "status"})
        check("the VM is unharmed by refused snapshots", r.get("state") == "running", str(r))
    finally:
        stop(p)

    # Restore: the counter continues from the snapshot, twice side by side.
    a, _, out_a = run(["--restore", snap], tmp, "ra", sock=False)
    b, _, out_b = run(["--restore", snap], tmp, "rb", sock=False)
    try:
        ta = wait_until(lambda: len(ticks(out_a)) >= 3 and ticks(out_a))
        tb = wait_until(lambda: len(ticks(out_b)) >= 3 and ticks(out_b))
        check("restored counter continues where the snapshot was",
              bool(ta) and at <= ta[0] <= at + 2 and ta == sorted(ta),
              f"snapshot at {at:#x}, restored {ta[:3] if ta else ta}")
        # The payload prints when its interrupt count is a multiple of 10 as it wakes up; a
        # restored PIT can deliver two interrupts before it looks, so a restore may skip one.
        check("two restores of one snapshot run side by side",
              bool(ta) and bool(tb) and a.poll() is None and b.poll() is None and
              at <= tb[0] <= at + 2 and abs(tb[0] - ta[0]) <= 1,
              f"snapshot at {at:#x}: {ta[:3] if ta else ta} / {tb[:3] if tb else tb}")
    finally:
        err_a = stop(a)
        stop(b)
    check("restored VMs ran without errors", "error" not in err_a, err_a.strip()[-300:])

    # Bad snapshots.
    def bad(name, dirname, expect, extra=()):
        r = vireo_run(["--restore", dirname, "--console", "none"] + list(extra))
        check(name, r.returncode == 1 and expect in r.stderr,
              f"status {r.returncode}: {r.stderr.strip()[-200:]}")

    bad("restore from a missing directory", os.path.join(tmp, "nope"), "no such file")
    d = os.path.join(tmp, "trunc")
    shutil.copytree(snap, d)
    data = open(os.path.join(d, "state.vireo"), "rb").read()
    open(os.path.join(d, "state.vireo"), "wb").write(data[:len(data) // 2])
    bad("truncated state file", d, "truncated")
    d = os.path.join(tmp, "flip")
    shutil.copytree(snap, d)
    b2 = bytearray(data)
    b2[len(b2) // 2] ^= 0x10
    open(os.path.join(d, "state.vireo"), "wb").write(b2)
    bad("bit-flipped state file", d, "CRC mismatch")
    d = os.path.join(tmp, "garbage")
    shutil.copytree(snap, d)
    open(os.path.join(d, "state.vireo"), "wb").write(os.urandom(4096))
    bad("garbage state file", d, "not a vireo state file")
    d = os.path.join(tmp, "newer")
    rewrite_state(snap, d, lambda b: struct.pack_into("<I", b, 8, 99))
    bad("state file from a newer format version", d, "version 99")
    d = os.path.join(tmp, "cpuid")
    rewrite_state(snap, d, lambda b: struct.pack_into("<Q", b, 32, 0x1234))
    bad("snapshot from a host with another CPUID is refused", d, "--force")
    r = vireo_run(["--restore", d, "--console", "none", "--force", "--timeout", "1"])
    check("... and restored with --force (with a warning)",
          r.returncode == 124 and "restoring anyway" in r.stderr,
          f"status {r.returncode}: {r.stderr.strip()[-200:]}")
    d = os.path.join(tmp, "short")
    shutil.copytree(snap, d)
    os.truncate(os.path.join(d, "memory.raw"), 1 << 20)
    bad("memory file shorter than RAM", d, "shorter than")
    r = vireo_run(["--restore", snap, "--memory", "512M"])
    check("--restore with a machine option is a usage error",
          r.returncode == 2 and "--memory cannot be used with --restore" in r.stderr,
          r.stderr.strip())
    check("the snapshot itself is untouched by all this",
          open(os.path.join(snap, "state.vireo"), "rb").read() == data)


def fake_destination(port, behaviour, log):
    """A listener that speaks just enough of the protocol to fail in a chosen way."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1)

    def serve():
        c, _ = srv.accept()
        hdr = c.recv(32)
        log.append(hdr[:16])
        if behaviour == "refuse":
            msg = b"unsupported protocol version"
            c.sendall(struct.pack("<IIQ", 100, 0, 4 + len(msg)) + struct.pack("<I", 95) + msg)
        elif behaviour == "die":
            # Accepts the greeting and the configuration, takes 8 KiB of the stream, and dies.
            ok = struct.pack("<IIQ", 100, 0, 6) + struct.pack("<I", 0) + b"ok"
            c.sendall(ok)
            _, _, n = struct.unpack("<IIQ", c.recv(16, socket.MSG_WAITALL))
            c.recv(n, socket.MSG_WAITALL)
            c.sendall(ok)
            c.recv(8192, socket.MSG_WAITALL)
        c.close()
        srv.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t


def make_psk(path):
    with open(path, "w") as f:
        f.write("vireo:" + os.urandom(32).hex() + "\n")
    os.chmod(path, 0o600)
    return path


def make_x509(d):
    """A CA and a server and a client certificate for 127.0.0.1 (QEMU's tls-creds layout)."""
    os.makedirs(d)

    def ossl(*args):
        subprocess.run(["openssl"] + list(args), check=True, capture_output=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    ossl("req", "-x509", *ec, "-keyout", f"{d}/ca-key.pem", "-out", f"{d}/ca-cert.pem",
         "-days", "2", "-subj", "/CN=vireo test CA")
    with open(f"{d}/ext", "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
    for who in ("server", "client"):
        ossl("req", *ec, "-keyout", f"{d}/{who}-key.pem", "-out", f"{d}/{who}.csr",
             "-subj", f"/CN={who}")
        ossl("x509", "-req", "-in", f"{d}/{who}.csr", "-CA", f"{d}/ca-cert.pem", "-CAkey",
             f"{d}/ca-key.pem", "-CAcreateserial", "-out", f"{d}/{who}-cert.pem", "-days", "2",
             "-extfile", f"{d}/ext")
    return d


def wait_failed(sock):
    return wait_until(lambda: (lambda x: x if x.get("phase") == "failed" else None)(
        request(sock, {"cmd": "migrate-status"})))


def migrate_and_check(name, dst_args, migrate_args, tmp, tag):
    """Migrates a counter VM to a destination; the counter must go on there."""
    port = free_port()
    d, _, out_d = run(["--incoming", f"tcp:127.0.0.1:{port}"] + dst_args, tmp, "dst" + tag,
                      sock=False)
    s, sock, out_s = run(["--payload", COUNTER], tmp, "msrc" + tag)
    try:
        wait_for_path(sock)
        wait_port(port)
        wait_until(lambda: len(ticks(out_s)) >= 4)
        r = request(sock, dict({"cmd": "migrate", "uri": f"tcp:127.0.0.1:{port}"},
                               **migrate_args))
        check(f"{name}: migrate starts", r.get("ok") is True, str(r))
        code = s.wait(60)
        before = ticks(out_s)
        check(f"{name}: the source exits 0 once the destination runs the guest", code == 0,
              f"status {code}")
        after = wait_until(lambda: len(ticks(out_d)) >= 3 and ticks(out_d))
        check(f"{name}: the counter goes on at the destination",
              bool(after) and bool(before) and before[-1] <= after[0] <= before[-1] + 3 and
              after == sorted(after), f"source ended at {before[-1] if before else None}, "
              f"destination {after[:3] if after else after}")
    finally:
        err_s = stop(s)
        err_d = stop(d)
    check(f"{name}: the destination said it received the guest",
          "migration received" in err_d, err_d.strip()[-300:])
    return err_s, err_d


def tls_refusals(tmp, psk, x509):
    """A TLS destination keeps waiting through peers that cannot authenticate; their
    migrations fail with the reason and the source VM runs on."""
    port = free_port()
    d, _, _ = run(["--incoming", f"tcp:127.0.0.1:{port}", "--migration-tls", "psk=" + psk],
                  tmp, "dsttls", sock=False)
    s, sock, out_s = run(["--payload", COUNTER], tmp, "msrctls")
    try:
        wait_for_path(sock)
        check("TLS destination listens", wait_port(port))
        g = socket.create_connection(("127.0.0.1", port))
        g.sendall(struct.pack("<IIQ", 1, 0, 16) + b"VIREOMIG" + struct.pack("<II", 1, 1))
        g.settimeout(10)
        try:
            rep = g.recv(64)
        except OSError:
            rep = b""
        g.close()
        check("a plain-TCP source gets no protocol answer from a TLS destination",
              b"ready" not in rep and d.poll() is None, repr(rep))
        wait_until(lambda: len(ticks(out_s)) >= 2)
        uri = f"tcp:127.0.0.1:{port}"
        r = request(sock, {"cmd": "migrate", "uri": uri})
        check("migrate without tls or insecure is refused with the reason",
              r.get("ok") is False and "insecure" in r.get("error", "") and
              "psk=FILE" in r.get("error", ""), str(r))
        wrong = make_psk(os.path.join(tmp, "wrong.psk"))
        for what, args, expect in (
                ("a wrong pre-shared key", {"tls": "psk=" + wrong}, "TLS handshake"),
                ("plain TCP", {"insecure": True}, "--migration-tls"),
                ("X.509 instead of a key", {"tls": "x509=" + x509}, "TLS handshake")):
            r = request(sock, dict({"cmd": "migrate", "uri": uri}, **args))
            st = wait_failed(sock)
            check(f"source with {what}: refused, says why", r.get("ok") is True and bool(st)
                  and expect in st.get("error", ""), f"{r} {st}")
        open(os.path.join(tmp, "loose.psk"), "w").write("vireo:" + "ab" * 32 + "\n")
        os.chmod(os.path.join(tmp, "loose.psk"), 0o644)
        r = request(sock, {"cmd": "migrate", "uri": uri,
                           "tls": "psk=" + os.path.join(tmp, "loose.psk")})
        st = wait_failed(sock)
        check("a key file other users can read is refused", bool(st) and "other users" in
              st.get("error", ""), f"{r} {st}")
        n = len(ticks(out_s))
        check("... the destination is still waiting and the source runs on",
              d.poll() is None and wait_until(lambda: len(ticks(out_s)) > n + 1))
    finally:
        stop(s)
        err_d = stop(d)
    check("the destination logged each refused peer",
          err_d.count("refused 127.0.0.1") >= 4, err_d.strip()[-400:])

    # X.509: a client certificate from another CA is refused by the destination.
    other = make_x509(os.path.join(tmp, "x509-other"))
    mixed = os.path.join(tmp, "x509-mixed")
    os.makedirs(mixed)
    shutil.copy(os.path.join(x509, "ca-cert.pem"), mixed)
    for f in ("client-cert.pem", "client-key.pem"):
        shutil.copy(os.path.join(other, f), mixed)
    port = free_port()
    d, _, _ = run(["--incoming", f"tcp:127.0.0.1:{port}", "--migration-tls", "x509=" + x509],
                  tmp, "dstx", sock=False)
    s, sock, _ = run(["--payload", COUNTER], tmp, "msrcx")
    try:
        wait_for_path(sock)
        wait_port(port)
        for what, creds in (("a client certificate of another CA", mixed),
                            ("a destination certificate of another CA", other)):
            request(sock, {"cmd": "migrate", "uri": f"tcp:127.0.0.1:{port}",
                           "tls": "x509=" + creds})
            st = wait_failed(sock)
            check(f"X.509 with {what}: refused", bool(st) and "TLS" in st.get("error", ""),
                  str(st.get("error") if st else st))
        check("... the X.509 destination is still waiting", d.poll() is None)
    finally:
        stop(s)
        err_d = stop(d)
    check("... and logged both refusals", err_d.count("refused 127.0.0.1") >= 2 and
          "certificate" in err_d,
          err_d.strip()[-600:])


def migration_tests(tmp):
    psk = make_psk(os.path.join(tmp, "mig.psk"))
    x509 = make_x509(os.path.join(tmp, "x509"))
    tls_refusals(tmp, psk, x509)
    _, err_d = migrate_and_check("TLS with a pre-shared key", ["--migration-tls", "psk=" + psk],
                                 {"tls": "psk=" + psk}, tmp, "psk")
    check("... the destination said it was TLS", "(TLS 1.3)" in err_d, err_d.strip()[-300:])
    migrate_and_check("TLS with X.509 certificates", ["--migration-tls", "x509=" + x509],
                      {"tls": "x509=" + x509}, tmp, "x509")

    # Plain TCP, asked for by name on both sides; garbage and a newer protocol on the way.
    port = free_port()
    d, _, out_d = run(["--incoming", f"tcp:127.0.0.1:{port}", "--insecure-migration"], tmp,
                      "dst", sock=False)
    s, sock, out_s = run(["--payload", COUNTER], tmp, "msrc")
    try:
        wait_for_path(sock)
        check("destination listens", wait_port(port))
        # Garbage on the migration port: dropped, the destination keeps waiting.
        g = socket.create_connection(("127.0.0.1", port))
        g.sendall(b"GET / HTTP/1.0\r\n\r\n" + os.urandom(64))
        g.close()
        time.sleep(0.3)
        check("garbage on the migration port is dropped and the wait goes on", d.poll() is None)
        # A source speaking a newer protocol is refused with a reason, the wait goes on.
        g = socket.create_connection(("127.0.0.1", port))
        g.sendall(struct.pack("<IIQ", 1, 0, 16) + b"VIREOMIG" + struct.pack("<II", 7, 7))
        # The reply may arrive in pieces: its header says how long it is.
        rep = g.recv(16, socket.MSG_WAITALL)
        if len(rep) == 16:
            rep += g.recv(struct.unpack("<Q", rep[8:16])[0], socket.MSG_WAITALL)
        g.close()
        check("a newer protocol version is refused with a reason",
              rep[:4] == struct.pack("<I", 100) and b"newer" in rep, repr(rep))

        wait_until(lambda: len(ticks(out_s)) >= 4)
        r = request(sock, {"cmd": "migrate", "uri": f"tcp:127.0.0.1:{port}", "insecure": True})
        check("insecure migrate starts", r.get("ok") is True, str(r))
        code = s.wait(60)
        before = ticks(out_s)
        check("the source exits 0 once the destination runs the guest", code == 0,
              f"status {code}")
        after = wait_until(lambda: len(ticks(out_d)) >= 3 and ticks(out_d))
        check("the counter goes on at the destination",
              bool(after) and bool(before) and before[-1] <= after[0] <= before[-1] + 3 and
              after == sorted(after), f"source ended at {before[-1] if before else None}, "
              f"destination {after[:3] if after else after}")
    finally:
        stop(s)
        err_d = stop(d)
    check("the destination said it received the guest", "migration received" in err_d,
          err_d.strip()[-300:])

    # Failures on the way: the source resumes and keeps running.
    s, sock, out_s = run(["--payload", COUNTER], tmp, "msrc2")
    try:
        wait_for_path(sock)
        wait_until(lambda: len(ticks(out_s)) >= 2)
        port = free_port()
        r = request(sock, {"cmd": "migrate", "uri": f"tcp:127.0.0.1:{port}", "insecure": True})
        st = wait_failed(sock)
        check("no destination listening: migration fails, says why",
              bool(st) and "connect" in st.get("error", ""), str(st))
        for behaviour, expect in (("refuse", "refused"), ("die", "")):
            port = free_port()
            log = []
            t = fake_destination(port, behaviour, log)
            r = request(sock, {"cmd": "migrate", "uri": f"tcp:127.0.0.1:{port}",
                               "insecure": True})
            st = wait_failed(sock)
            t.join(5)
            check(f"destination that {behaviour}s: the migration fails with a reason",
                  bool(st) and expect in st.get("error", "") and bool(st.get("error")),
                  str(st))
        n = len(ticks(out_s))
        st = request(sock, {"cmd": "status"})
        check("after the failed migrations the source runs on",
              st.get("state") == "running" and wait_until(lambda: len(ticks(out_s)) > n + 1),
              str(st))
        r = request(sock, {"cmd": "migrate-cancel"})
        check("migrate-cancel with nothing to cancel is refused", r.get("ok") is False, str(r))
        r = request(sock, {"cmd": "migrate", "uri": "udp:1.2.3.4", "insecure": True})
        check("a bad migration URI is refused", r.get("ok") is False and "tcp:" in
              r.get("error", ""), str(r))
    finally:
        stop(s)

    r = vireo_run(["--incoming", "tcp:127.0.0.1:1"])
    check("--incoming without --migration-tls or --insecure-migration is a usage error",
          r.returncode == 2 and "--insecure-migration" in r.stderr, r.stderr.strip())


with tempfile.TemporaryDirectory() as tmp:
    snapshot_tests(tmp)
    migration_tests(tmp)

failed = results.count(False)
print(f"{len(results) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
