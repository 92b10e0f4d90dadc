#!/usr/bin/env python3
"""A hostile migration source and a tampered snapshot (docs/migration.md, docs/snapshots.md:
trust model). The stream and the state file describe the machine; they must never pick the host
files, sockets or ports the receiving vireo uses.

1. A 40-line "source" speaks the migration protocol and sends a configuration whose disk is a
   user's ~/.ssh/authorized_keys (read-write, raw), whose virtio-console appends to ~/.bashrc,
   whose vsock sockets live in ~/.ssh and whose NIC forwards a port on 0.0.0.0. A destination
   with --migration-tls drops it before reading a byte of the protocol. With
   --insecure-migration the destination refuses it when its command line does not give those
   devices (with the reason), and when it does, builds the machine on its own files; the user's
   files are untouched every time.
2. A snapshot whose state.vireo was rewritten to name the same files: refused without --disk,
   and restored on the command line's image and console with them.
Usage: trust_test.py VIREO PAYLOAD_DIR"""
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest import check, free_port, port_open, results, stop, unix_exchange, wait_for_path  # noqa: E402,E501

VIREO, PAYLOADS = sys.argv[1], sys.argv[2]
COUNTER = os.path.join(PAYLOADS, "counter.bin")
def field(tag, data):
    return struct.pack("<HI", tag, len(data)) + data


def section(sid, fields, inst=0):
    body = b"".join(fields)
    return struct.pack("<IIHHI", sid, inst, 1, 1, len(body)) + body


def hostile_disk(path):
    # raw, read-write, no serial, name stem "keys", then the path.
    return bytes([1, 0, 0, 4]) + b"keys" + path.encode()


def hostile_fields(home, fwd_port):
    ssh = os.path.join(home, ".ssh")
    return [field(0x20, hostile_disk(os.path.join(ssh, "authorized_keys"))),
            field(9, b"file:" + os.path.join(home, ".bashrc").encode()),
            field(0x41, b"cid=3,uds=" + os.path.join(ssh, "vsock").encode()),
            field(0x30, f"user,hostfwd=tcp:0.0.0.0:{fwd_port}-:22".encode())]


def hostile_source(port, home, fwd_port, look=None):
    """Plays the source up to the configuration; returns the destination's answer to it and,
    when the machine was built, what look() saw before the source abandons."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)

    def recv_exact(n):
        # A socket with a timeout is non-blocking underneath: MSG_WAITALL does not wait.
        data = b""
        while len(data) < n:
            chunk = s.recv(n - len(data))
            if not chunk:
                break
            data += chunk
        return data

    def reply():
        h = recv_exact(16)
        if len(h) < 16:
            return None, b""
        _, _, n = struct.unpack("<IIQ", h)
        body = recv_exact(n)
        return struct.unpack("<I", body[:4])[0], body[4:]

    def send(t, data):
        s.sendall(struct.pack("<IIQ", t, 0, len(data)) + data)

    send(1, b"VIREOMIG" + struct.pack("<II", 1, 1))
    st, text = reply()
    if st != 0:
        s.close()
        return st, text, None
    cfg = section(1, [field(1, struct.pack("<Q", 16 << 20)), field(2, struct.pack("<I", 1)),
                      field(4, b"\0"), field(8, b"\0"), field(5, b"counter.bin")] +
                  hostile_fields(home, fwd_port))
    send(2, struct.pack("<QQI", 16 << 20, 0, zlib.crc32(cfg)) + cfg)
    st, text = reply()
    seen = look() if st == 0 and look else None
    if st == 0:
        send(7, b"that was all")
    s.close()
    return st, text, seen


def make_home(tmp):
    home = os.path.join(tmp, "home")
    os.makedirs(os.path.join(home, ".ssh"))
    with open(os.path.join(home, ".ssh", "authorized_keys"), "w") as f:
        f.write("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB user@host\n")
    with open(os.path.join(home, ".bashrc"), "w") as f:
        f.write("export PS1='$ '\n")
    return home


def snapshot_of_home(home):
    """Every file under home with its content and mtime."""
    out = {}
    for d, _, files in os.walk(home):
        for n in files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            out[p] = (open(p, "rb").read() if os.path.isfile(p) else None, st.st_mtime_ns)
    return out


def wait_port(port, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port):
            return True
        time.sleep(0.05)
    return False


def destination(port, *args):
    """A destination that takes plain TCP unless args say --migration-tls."""
    args = list(args)
    if not any(a.startswith("--migration-tls") for a in args):
        args.append("--insecure-migration")
    return subprocess.Popen([VIREO, "run", "--incoming", f"tcp:127.0.0.1:{port}",
                             "--console", "none", "--timeout", "60"] + args,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def hostile_migration(tmp):
    home = make_home(tmp)
    before = snapshot_of_home(home)
    fwd = free_port()

    # A TLS destination: the script cannot even start (it has no key); dropped, the wait goes on.
    psk = os.path.join(tmp, "k.psk")
    with open(psk, "w") as f:
        f.write("vireo:" + os.urandom(32).hex() + "\n")
    os.chmod(psk, 0o600)
    mine0 = os.path.join(tmp, "mine0.raw")
    with open(mine0, "wb") as f:
        f.truncate(1 << 20)
    port = free_port()
    d = destination(port, "--migration-tls", "psk=" + psk, "--disk", mine0, "--virtio-console",
                    "file:" + os.path.join(tmp, "mine0.vc"), "--vsock", "cid=3",
                    "--net", "user")
    try:
        wait_port(port)
        try:
            st, text, _ = hostile_source(port, home, fwd)
        except OSError as e:
            st, text = None, str(e).encode()
        time.sleep(0.5)
        check("hostile source, TLS destination: dropped before the protocol, the wait goes on",
              st is None and d.poll() is None, f"{st} {text[:200]!r}")
    finally:
        err = stop(d)
    check("... and the destination says why", "refused 127.0.0.1" in err and "TLS" in err,
          err.strip()[-300:])
    check("... the user's files are untouched and nothing was created",
          snapshot_of_home(home) == before, str(sorted(snapshot_of_home(home))))

    # The destination gives no disk, console, vsock or NIC: the configuration does not fit.
    port = free_port()
    d = destination(port)
    try:
        wait_port(port)
        st, text, _ = hostile_source(port, home, fwd)
        check("hostile source, destination without devices: configuration refused",
              st not in (None, 0) and b"1 disk(s) and the command line gives 0" in text and
              b"never opened" in text, f"{st} {text[:300]!r}")
        code = d.wait(30)
    finally:
        err = stop(d)
    check("... the destination exits 1 and says why", code == 1 and "disk(s)" in err,
          f"status {code}: {err.strip()[-300:]}")
    check("... the user's files are untouched and nothing was created",
          snapshot_of_home(home) == before, str(sorted(snapshot_of_home(home))))

    # The destination gives its own: the machine is built on those.
    mine = os.path.join(tmp, "mine.raw")
    with open(mine, "wb") as f:
        f.truncate(1 << 20)
    vc, uds = os.path.join(tmp, "mine.vc"), os.path.join(tmp, "mine.vsock")
    port = free_port()
    d = destination(port, "--force", "--disk", mine, "--virtio-console", "file:" + vc,
                    "--vsock", "cid=3,uds=" + uds, "--net", "user")
    try:
        wait_port(port)
        st, text, seen = hostile_source(
            port, home, fwd, lambda: (os.path.exists(vc), os.path.exists(uds), port_open(fwd)))
        check("hostile source, destination with its own devices: the machine is built",
              st == 0 and text == b"configured", f"{st} {text[:300]!r}")
        code = d.wait(30)
    finally:
        err = stop(d)
    check("... on the command line's console file and vsock socket, and the stream's port "
          "forward is not listening", seen == (True, True, False) and code == 1,
          f"seen {seen}, status {code}: {err.strip()[-300:]}")
    check("... the user's files are untouched and nothing was created",
          snapshot_of_home(home) == before, str(sorted(snapshot_of_home(home))))
    check("... the disk image given is untouched too (the source sent no state)",
          open(mine, "rb").read() == bytes(1 << 20))


def read_state(path):
    b = open(path, "rb").read()
    hdr, body = bytearray(b[:64]), b[64:]
    secs, pos = [], 0
    while pos < len(body):
        sid, inst, ver, minv, n = struct.unpack_from("<IIHHI", body, pos)
        secs.append([sid, inst, ver, minv, body[pos + 16:pos + 16 + n]])
        pos += 16 + n
    return hdr, secs


def write_state(path, hdr, secs):
    body = b"".join(struct.pack("<IIHHI", s[0], s[1], s[2], s[3], len(s[4])) + s[4]
                    for s in secs)
    struct.pack_into("<Q", hdr, 48, len(body))
    struct.pack_into("<I", hdr, 56, 0)
    struct.pack_into("<I", hdr, 56, zlib.crc32(bytes(hdr) + body))
    open(path, "wb").write(bytes(hdr) + body)


def replace_fields(data, new):
    """The TLV fields of data with those whose tag is in new replaced (or added)."""
    out, pos = b"", 0
    while pos < len(data):
        tag, n = struct.unpack_from("<HI", data, pos)
        if tag not in new:
            out += data[pos:pos + 6 + n]
        pos += 6 + n
    return out + b"".join(field(t, v) for t, v in new.items())


def backing_file(qcow2):
    """The backing file name in a qcow2 header, or None."""
    try:
        with open(qcow2, "rb") as f:
            h = f.read(20)
            off, n = struct.unpack(">QI", h[8:20])
            f.seek(off)
            return f.read(n).decode() if off else None
    except (OSError, struct.error):
        return None


def tampered_snapshot(tmp):
    home = os.path.join(tmp, "home")
    before = snapshot_of_home(home)
    src_disk = os.path.join(tmp, "src.raw")
    with open(src_disk, "wb") as f:
        f.truncate(1 << 20)
    sock, snap = os.path.join(tmp, "s.sock"), os.path.join(tmp, "snap")
    p = subprocess.Popen([VIREO, "run", "--payload", COUNTER, "--memory", "16M", "--disk",
                          src_disk + ",format=raw", "--virtio-console",
                          "file:" + os.path.join(tmp, "src.vc"), "--console", "none",
                          "--api-sock", sock, "--timeout", "60"],
                         stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_path(sock)
        r = unix_exchange(sock, b'{"cmd":"snapshot","path":"' + snap.encode() + b'"}\n')
        check("snapshot of a VM with a disk and a virtio-console", b'"ok":true' in r, repr(r))
    finally:
        stop(p)
    if not os.path.exists(os.path.join(snap, "state.vireo")):
        return

    def restore(d, *args):
        return subprocess.run([VIREO, "run", "--restore", d, "--console", "none",
                               "--timeout", "2"] + list(args), capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=60)

    r = restore(snap)
    check("restore without --disk is refused and names the snapshot's disk",
          r.returncode == 1 and "1 disk(s) and the command line gives 0" in r.stderr and
          "src.raw" in r.stderr, r.stderr.strip()[-300:])
    r = restore(snap, "--disk", src_disk + ",readonly",
                "--virtio-console", "file:" + os.path.join(tmp, "r.vc"))
    check("restore with a read-only --disk for a writable disk is refused",
          r.returncode == 1 and "writable" in r.stderr, r.stderr.strip()[-300:])

    bad = os.path.join(tmp, "tampered")
    shutil.copytree(snap, bad)
    hdr, secs = read_state(os.path.join(bad, "state.vireo"))
    cfg = [s for s in secs if s[0] == 1][0]
    cfg[4] = replace_fields(cfg[4], dict((struct.unpack_from("<H", f)[0], f[6:])
                                         for f in hostile_fields(home, free_port())[:2]))
    write_state(os.path.join(bad, "state.vireo"), hdr, secs)
    r = restore(bad)
    check("tampered snapshot naming ~/.ssh/authorized_keys: refused without --disk",
          r.returncode == 1 and "authorized_keys" in r.stderr and "never opened" in r.stderr,
          r.stderr.strip()[-300:])
    mine, vc = os.path.join(tmp, "mine2.raw"), os.path.join(tmp, "r2.vc")
    shutil.copy(src_disk, mine)
    r = restore(bad, "--disk", mine, "--virtio-console", "file:" + vc)
    overlay = os.path.join(tmp, "keys.tampered.r1.qcow2")
    check("... restored on the command line's image and console instead",
          r.returncode == 124 and os.path.exists(vc) and backing_file(overlay) == mine,
          f"status {r.returncode}, overlay backed by {backing_file(overlay)}: "
          f"{r.stderr.strip()[-300:]}")
    check("... the user's files are untouched and nothing was created",
          snapshot_of_home(home) == before, str(sorted(snapshot_of_home(home))))
    os.unlink(os.path.join(bad, "memory.raw"))
    os.symlink(os.path.join(home, ".ssh", "authorized_keys"), os.path.join(bad, "memory.raw"))
    r = restore(bad, "--disk", mine, "--virtio-console", "file:" + vc)
    check("a snapshot whose memory.raw is a symbolic link is refused",
          r.returncode == 1 and "symbolic link" in r.stderr, r.stderr.strip()[-300:])


with tempfile.TemporaryDirectory() as tmp:
    hostile_migration(tmp)
    tampered_snapshot(tmp)

failed = results.count(False)
print(f"{len(results) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
