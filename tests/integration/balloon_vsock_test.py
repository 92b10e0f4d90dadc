#!/usr/bin/env python3
"""Integration: virtio-balloon and virtio-vsock on the test Linux guest, one boot.

Balloon: the guest faults in memory and frees it (free page reporting switched off for this
part), the balloon is inflated by 32 MiB: the guest's MemTotal drops and the host RSS of the
vireo process drops; deflating gives MemTotal back. Then free page reporting alone brings the
RSS down after the guest touches and frees memory again. Statistics arrive through
balloon-stats. Vsock: host to guest (unix socket + CONNECT) and guest to host (PATH_PORT), each
an echo. Then a snapshot is restored: the balloon's target survives and vsock works again after
the transport reset.
Usage: balloon_vsock_test.py VIREO GUEST_BUILD_SH"""
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest import PROMPT, READY_MARKER, Guest, build_guest, unix_exchange, wait_for_path  # noqa

BOOT_TIMEOUT = 900
MIB = 32  # balloon and touch size: guest kernel work is slow on PVM hosts
REPORTING = "/sys/module/page_reporting/parameters/page_reporting_order"
results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(("ok   " if ok else "FAIL ") + name + (": " + detail if detail else ""), flush=True)


def rss_mib(g):
    with open(f"/proc/{g.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def ctl(api, req, timeout=60):
    return json.loads(unix_exchange(api, (json.dumps(req) + "\n").encode(), timeout=timeout))


def meminfo(g, key):
    out = g.run(f"grep {key}: /proc/meminfo")
    try:
        return int(out.split()[1]) / 1024
    except (IndexError, ValueError):
        return -1.0


def wait_actual(api, mib, timeout=600):
    r = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = ctl(api, {"cmd": "balloon-stats"})
        if r.get("actual_mib") == mib:
            break
        time.sleep(2)
    return r


def host_to_guest(g, uds, port, msg):
    """The guest echoes one connection on port; the host connects through the unix socket."""
    g.run(f"(vtest listen {port} > /tmp/vl 2>&1 &) ; sleep 1")
    for _ in range(60):
        if "listening" in g.run("cat /tmp/vl"):
            break
        time.sleep(1)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(120)
    s.connect(uds)
    s.sendall(f"CONNECT {port}\n".encode())
    line = b""
    while not line.endswith(b"\n"):
        c = s.recv(1)
        if not c:
            break
        line += c
    s.sendall(msg)
    s.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        c = s.recv(4096)
        if not c:
            break
        data += c
    s.close()
    return line, data


def guest_to_host(g, uds, port, msg):
    """The host listens on uds_port and answers "pong:" + what it got; the guest connects."""
    path = f"{uds}_{port}"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    srv.settimeout(180)
    got = []

    def serve():
        try:
            c, _ = srv.accept()
            c.settimeout(120)
            data = b""
            while True:
                b = c.recv(4096)
                if not b:
                    break
                data += b
            got.append(data)
            c.sendall(b"pong:" + data)
            c.close()
        except OSError as e:
            got.append(repr(e).encode())

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    out = g.run(f"vtest connect {port} {msg}", timeout=180)
    t.join(30)
    srv.close()
    os.unlink(path)
    return out, got


def main():
    vireo, build_sh = sys.argv[1], sys.argv[2]
    g_dir = build_guest(build_sh)
    tmp = tempfile.mkdtemp(prefix="vireo-balvsock-")
    api = os.path.join(tmp, "api.sock")
    uds = os.path.join(tmp, "v.sock")
    snap = os.path.join(tmp, "snap")
    logdir = os.environ.get("MESON_BUILD_ROOT", "/tmp")
    g = Guest(vireo, ["--kernel", os.path.join(g_dir, "vmlinux"),
                      "--initrd", os.path.join(g_dir, "initramfs.cpio"),
                      "--memory", "256M", "--balloon", "--vsock", f"cid=3,uds={uds}",
                      "--api-sock", api, "--timeout", "3000", "-v"],
              os.path.join(logdir, "balloon-vsock-console.log"))
    r = None
    try:
        g.wait_for(READY_MARKER, BOOT_TIMEOUT)
        g.wait_for(PROMPT, 120)
        print(f"shell after {time.monotonic() - g.t0:.1f} s", flush=True)
        out = g.run("cat /sys/bus/virtio/devices/*/device | sort | tr '\\n' ' '")
        check("device IDs 5 (balloon) and 19 (vsock)", out.split() == ["0x0005", "0x0013"],
              repr(out))

        # Statistics: the driver sent them at start; a request brings fresh ones.
        st = ctl(api, {"cmd": "balloon-stats"})
        for _ in range(30):
            if st.get("stats_updates", 0) >= 2:
                break
            time.sleep(1)
            st = ctl(api, {"cmd": "balloon-stats"})
        stats = st.get("stats", {})
        check("balloon statistics arrive and refresh on request",
              st.get("stats_supported") and st.get("stats_updates", 0) >= 2 and
              200 << 20 < stats.get("total_memory", 0) <= 256 << 20 and
              0 < stats.get("free_memory", 0) <= stats.get("total_memory", 0),
              json.dumps(st)[:400])

        # Inflation returns memory to the host: touch and free memory in the guest (with free
        # page reporting off, so the freed pages stay resident), then inflate.
        order = g.run(f"cat {REPORTING}")
        g.run(f"echo 11 > {REPORTING}")
        rss0 = rss_mib(g)
        out = g.run(f"vtest touch {MIB + 8}", timeout=600)
        rss1 = rss_mib(g)
        print(f"info touch: {out!r}, RSS {rss0:.1f} -> {rss1:.1f} MiB", flush=True)
        total0 = meminfo(g, "MemTotal")
        t = time.monotonic()
        r1 = ctl(api, {"cmd": "balloon", "target_mib": MIB})
        st = wait_actual(api, MIB)
        rss2 = rss_mib(g)
        total1 = meminfo(g, "MemTotal")
        print(f"info inflate {MIB} MiB in {time.monotonic() - t:.1f} s: RSS {rss1:.1f} -> "
              f"{rss2:.1f} MiB, MemTotal {total0:.1f} -> {total1:.1f} MiB", flush=True)
        check("balloon command accepted", r1.get("ok") and r1.get("target_mib") == MIB, str(r1))
        check(f"balloon inflated to {MIB} MiB (actual)", st.get("actual_mib") == MIB,
              json.dumps(st)[:300])
        check("guest MemTotal dropped by the balloon", total0 - total1 >= MIB - 1,
              f"{total0:.1f} -> {total1:.1f} MiB")
        check("host RSS of the VMM dropped on inflation", rss1 - rss2 >= MIB / 2,
              f"{rss1:.1f} -> {rss2:.1f} MiB, discarded "
              f"{st.get('discarded_bytes', 0) >> 20} MiB")
        t = time.monotonic()
        ctl(api, {"cmd": "balloon", "target_mib": 0})
        st = wait_actual(api, 0)
        total2 = meminfo(g, "MemTotal")
        print(f"info deflate in {time.monotonic() - t:.1f} s", flush=True)
        check("deflate gives the memory back", st.get("actual_mib") == 0 and
              abs(total2 - total0) < 1, f"MemTotal {total2:.1f} MiB, {json.dumps(st)[:200]}")

        # Free page reporting: touched and freed memory goes back to the host by itself.
        g.run(f"echo {order or 10} > {REPORTING}")
        rep0 = ctl(api, {"cmd": "balloon-stats"}).get("reported_bytes", 0)
        base = rss_mib(g)
        # Held for a while, so the host sees the RSS rise before the pages are freed.
        g.run(f"(vtest touch {MIB} 30 > /tmp/vt 2>&1 &) ; true")
        peak = base
        deadline = time.monotonic() + 300
        # Half of it is what the check below needs; the rest may already be reported back.
        while time.monotonic() < deadline and peak - base < MIB / 2:
            time.sleep(1)
            peak = max(peak, rss_mib(g))
        rss4, rep1 = peak, rep0
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            time.sleep(3)
            rss4 = rss_mib(g)
            rep1 = ctl(api, {"cmd": "balloon-stats"}).get("reported_bytes", 0)
            if peak - rss4 >= (peak - base) / 2:
                break
        # At least half of what the guest touched and freed comes back by itself (reporting
        # works in 4 MiB blocks, so not all of it need).
        check("free page reporting returns freed guest memory",
              peak - base >= MIB / 2 and rep1 > rep0 and peak - rss4 >= (peak - base) / 2,
              f"RSS {base:.1f} -> {peak:.1f} (touched) -> {rss4:.1f} MiB, reported "
              f"{(rep1 - rep0) >> 20} MiB")

        # Vsock both ways.
        line, data = host_to_guest(g, uds, 1234, b"ping-from-host")
        check("vsock host to guest: CONNECT answered OK", line.startswith(b"OK "), repr(line))
        check("vsock host to guest: echo", data == b"ping-from-host", repr(data))
        out, got = guest_to_host(g, uds, 5678, "hello-from-guest")
        check("vsock guest to host", got == [b"hello-from-guest"] and
              "reply pong:hello-from-guest" in out, f"{out!r} {got!r}")

        # Snapshot, restore: the target survives; connections are reset and vsock works anew.
        ctl(api, {"cmd": "balloon", "target_mib": 8})
        wait_actual(api, 8)
        rep = ctl(api, {"cmd": "snapshot", "path": snap}, timeout=300)
        check("snapshot", rep.get("ok"), str(rep)[:200])
        g.kill()
        api2, uds2 = os.path.join(tmp, "api2.sock"), os.path.join(tmp, "v2.sock")
        r = Guest(vireo, ["--restore", snap, "--vsock", f"cid=3,uds={uds2}",
                          "--api-sock", api2, "--timeout", "900", "-v"],
                  os.path.join(logdir, "balloon-vsock-restored-console.log"))
        out = r.run("echo restored", timeout=120)
        check("restored VM answers", out == "restored", repr(out))
        wait_for_path(api2)
        st = ctl(api2, {"cmd": "balloon-stats"})
        check("restored balloon keeps target and size",
              st.get("target_mib") == 8 and st.get("actual_mib") == 8, json.dumps(st)[:200])
        line, data = host_to_guest(r, uds2, 1235, b"after-restore")
        check("restored vsock: host to guest echo", line.startswith(b"OK ") and
              data == b"after-restore", f"{line!r} {data!r}")
        out, got = guest_to_host(r, uds2, 5679, "again")
        check("restored vsock: guest to host", "reply pong:again" in out, repr(out))
        r.send("poweroff\n")
        code = r.wait_exit(300)
        check("restored VM powers off", code == 0, f"status {code}")
        bad = "needs reset" in g.stderr + r.stderr
        check("no device needed a reset", not bad, (g.stderr + r.stderr)[-500:] if bad else "")
    except (TimeoutError, OSError, ValueError) as e:
        check("guest session", False, str(e)[-1500:])
    finally:
        g.kill()
        if r:
            r.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
    return 0 if results and all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
