#!/usr/bin/env python3
"""Integration: virtio-net on the test Linux guest (docs/network.md). One boot with a user-mode
NIC (hostfwd rules) and, when the test runs as root with /dev/net/tun, a tap NIC:

- eth0 has its default MAC, carrier, MTU 1500; udhcpc gets 10.0.2.15, route and DNS server;
- with host-loopback=on the guest fetches a file from an HTTP server on the host's 127.0.0.1
  through 10.0.2.2, and with a guest route that sends 127.0.0.0/8 to the gateway; it fetches from
  a server on an outside address of the host (not loopback) too;
- the host reaches the guest's port 8080 through hostfwd, both ways;
- the control socket's net-link takes the link down and up (the guest sees carrier 0, 1);
- tap: the guest (static 192.168.77.2) pings the host end and exchanges data with it both ways;
- snapshot, restore with the default user NIC: the NIC keeps its MAC and address, hostfwd works,
  the outside server is reached, but the host's 127.0.0.1 is not (through 10.0.2.2 nor by the
  guest's route to 127.0.0.0/8: the attack of a hostile guest on host-local services);
- restore with restrict=on (and host-loopback=on): nothing is reached, hostfwd still works.
Before the boot, the tap's error paths: no CAP_NET_ADMIN, and a tap another process holds.

As root the whole test runs in a network namespace of its own (unshare --net): the tap, its
addresses and every listener exist only there. Exit 77 only when nothing could run.
Usage: net_test.py VIREO GUEST_BUILD_SH"""
import fcntl
import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest import PROMPT, READY_MARKER, Guest, build_guest, unix_exchange  # noqa

BOOT_TIMEOUT = 900
TAP = "vireotap0"
results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(("ok   " if ok else "FAIL ") + name + (": " + detail if detail else ""), flush=True)


def info(msg):
    print("info " + msg, flush=True)


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def in_own_netns():
    """Re-runs this script in a new network namespace when root (and not there yet)."""
    if os.environ.get("VIREO_NET_TEST_NETNS") == "1" or os.geteuid() != 0:
        return None
    if not shutil.which("unshare") or not shutil.which("ip"):
        return None
    env = dict(os.environ, VIREO_NET_TEST_NETNS="1")
    return subprocess.call(["unshare", "--net", "--", sys.executable] + sys.argv, env=env)


def sh(*cmd):
    return subprocess.run(list(cmd), capture_output=True, text=True)


def setup_tap():
    """Creates the tap in this namespace; returns a reason when it cannot."""
    if os.environ.get("VIREO_NET_TEST_NETNS") != "1":
        return "not root (tap needs CAP_NET_ADMIN to set up)"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun"
    for cmd in (["ip", "tuntap", "add", "dev", TAP, "mode", "tap"],
                ["ip", "addr", "add", "192.168.77.1/24", "dev", TAP],
                ["ip", "link", "set", TAP, "up"]):
        p = sh(*cmd)
        if p.returncode:
            return f"{' '.join(cmd)}: {p.stderr.strip()}"
    return None


def tap_error_paths(vireo, g_dir):
    """vireo refuses a tap it may not use, and one another process holds, with a clear error."""
    base = [vireo, "run", "--kernel", os.path.join(g_dir, "vmlinux"), "--console", "none",
            "--timeout", "60", "--net", "tap=" + TAP]
    if shutil.which("setpriv"):
        # A tap with no owner may be attached by anyone who can open /dev/net/tun; making
        # one (a name that does not exist) needs CAP_NET_ADMIN.
        cmd = base[:-3] + ["5", "--net", "tap=vireonotap0"]
        p = subprocess.run(["setpriv", "--bounding-set=-net_admin", "--inh-caps=-net_admin"]
                           + cmd, capture_output=True, text=True, timeout=120)
        check("tap without CAP_NET_ADMIN: refused with a clear error",
              p.returncode not in (0, 124) and "CAP_NET_ADMIN" in p.stderr,
              f"status {p.returncode}: {p.stderr.strip()[-300:]!r}")
    else:
        info("setpriv missing: the permission error path of tap is not tested")
    # Hold the tap ourselves: TUNSETIFF with IFF_TAP | IFF_NO_PI.
    fd = os.open("/dev/net/tun", os.O_RDWR)
    try:
        fcntl.ioctl(fd, 0x400454ca, struct.pack("16sH22x", TAP.encode(), 0x0002 | 0x1000))
        p = subprocess.run(base, capture_output=True, text=True, timeout=120)
        check("tap held by another process: refused as busy",
              p.returncode not in (0, 124) and "busy" in p.stderr,
              f"status {p.returncode}: {p.stderr.strip()[-300:]!r}")
    finally:
        os.close(fd)


OUTSIDE = "10.99.0.1"  # put on lo in the test's own network namespace


def outside_addr():
    """An address of this host that is not loopback, for a server the guest reaches as an
    ordinary outbound destination; None when there is none."""
    if os.environ.get("VIREO_NET_TEST_NETNS") == "1":
        return OUTSIDE if sh("ip", "addr", "add", OUTSIDE + "/32", "dev", "lo").returncode == 0 \
            else None
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the source address
        addr = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if addr.startswith("127.") else addr


class HttpServer:
    def __init__(self, root, addr="127.0.0.1"):
        self.addr = addr
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "http.server", "--bind", addr, str(self.port),
             "--directory", root], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection((addr, self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def fetch(g, host, port, fname, digest):
    """Whether the guest gets the page from host:port (given up after 15 s)."""
    # timeout execs its command by path: "busybox wget" (the guest has no wget link). Debian's
    # busybox wget has no -T: timeout bounds a connection attempt that gets no answer.
    out = g.run(f"rm -f /tmp/page; timeout 15 busybox wget -q -O /tmp/page "
                f"http://{host}:{port}/{fname} 2>&1; echo status $?; md5sum /tmp/page 2>&1",
                timeout=300)
    return out.split("\n")[-1].split()[:1] == [digest], out[-200:]


def fetch_check(g, name, host, port, fname, digest, expect=True):
    ok, out = fetch(g, host, port, fname, digest)
    check(name, ok == expect, repr(out))


# What a hostile guest does to reach the host's loopback without 10.0.2.2: route 127.0.0.0/8 to
# the gateway (its own loopback routes removed), so its frames carry 127.0.0.1 as destination.
ROUTE_127 = ("sysctl -w net.ipv4.conf.all.route_localnet=1 net.ipv4.conf.eth0.route_localnet=1 "
             ">/dev/null; ip route del local 127.0.0.0/8 dev lo table local 2>/dev/null; "
             "ip route del local 127.0.0.1 dev lo table local 2>/dev/null; "
             "ip route add 127.0.0.0/8 via 10.0.2.2 dev eth0 2>/dev/null; ip route get 127.0.0.1")


def hostfwd_check(g, port, tag):
    """The host connects to 127.0.0.1:port, forwarded to the guest's 8080."""
    g.run(f"(echo from-guest-{tag} | nc -l -p 8080 > /tmp/hf) >/dev/null 2>&1 & sleep 1")
    got = b""
    for _ in range(30):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=60)
        except OSError:
            time.sleep(1)
            continue
        s.settimeout(60)
        s.sendall(f"from-host-{tag}\n".encode())
        try:
            while b"\n" not in got:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
        except socket.timeout:
            pass
        s.close()
        break
    check(f"hostfwd: guest to host ({tag})", got.strip() == f"from-guest-{tag}".encode(),
          repr(got))
    out = ""
    for _ in range(10):
        out = g.run("cat /tmp/hf")
        if out:
            break
        time.sleep(1)
    check(f"hostfwd: host to guest ({tag})", out == f"from-host-{tag}", repr(out))


def dhcp(g):
    """udhcpc on eth0; returns address, routes and resolv.conf. Repeated (up to 3 times) when
    no address came: on PVM hosts a guest process now and then segfaults at its first TLS
    access, and udhcpc or its lease script may be the one."""
    addr = ""
    for attempt in range(3):
        g.run("udhcpc -i eth0 -n -q -t 10 -T 5 > /tmp/dhcp 2>&1", timeout=300)
        addr = g.run("ip -4 addr show eth0")
        if "inet 10.0.2.15/24" in addr:
            break
        info(f"DHCP attempt {attempt + 1} left no address: {g.run('cat /tmp/dhcp')[-300:]!r}")
    return addr + "\n" + g.run("ip route") + "\n" + g.run("cat /etc/resolv.conf")


def api(sock, req):
    return json.loads(unix_exchange(sock, (json.dumps(req) + "\n").encode(), timeout=300))


def carrier(g, dev):
    return g.run(f"cat /sys/class/net/{dev}/carrier 2>/dev/null || echo none")


def tap_checks(g):
    # Idempotent: Guest.run repeats a command whose process hit the PVM segfault flake.
    out = g.run("ip addr add 192.168.77.2/24 dev eth1 2>/dev/null; ip link set eth1 up; "
                "ping -c 3 -W 10 192.168.77.1 2>&1 | grep -c 'bytes from'", timeout=300)
    last = out.split("\n")[-1]
    check("tap: the guest pings the host end", last.isdigit() and int(last) >= 1, repr(out))
    lst = socket.socket()
    lst.bind(("192.168.77.1", 0))
    lst.listen(1)
    lst.settimeout(120)
    port = lst.getsockname()[1]
    g.run(f"echo tap-from-guest | nc 192.168.77.1 {port} >/dev/null 2>&1 & sleep 1")
    got = b""
    try:
        c, _ = lst.accept()
        c.settimeout(60)
        while b"\n" not in got:
            chunk = c.recv(4096)
            if not chunk:
                break
            got += chunk
        c.close()
    except OSError as e:
        got += str(e).encode()
    lst.close()
    check("tap: guest to host over TCP", got.strip() == b"tap-from-guest", repr(got))
    g.run("(nc -l -p 8081 < /dev/null > /tmp/tapin) >/dev/null 2>&1 & sleep 1")
    ok = False
    for _ in range(30):
        try:
            s = socket.create_connection(("192.168.77.2", 8081), timeout=60)
            s.sendall(b"tap-from-host\n")
            s.close()
            ok = True
            break
        except OSError:
            time.sleep(1)
    out = ""
    for _ in range(10):
        out = g.run("cat /tmp/tapin")
        if out:
            break
        time.sleep(1)
    check("tap: host to guest over TCP", ok and out == "tap-from-host", repr(out))


def main():
    code = in_own_netns()
    if code is not None:
        return code
    vireo, build_sh = sys.argv[1], sys.argv[2]
    if os.environ.get("VIREO_NET_TEST_NETNS") == "1":
        sh("ip", "link", "set", "lo", "up")
        info("running in a network namespace of its own")
    g_dir = build_guest(build_sh)
    tap_skip = setup_tap()
    if tap_skip:
        info(f"tap cases skipped: {tap_skip}")
    else:
        tap_error_paths(vireo, g_dir)

    tmp = tempfile.mkdtemp(prefix="vireo-net-")
    sock = os.path.join(tmp, "api.sock")
    snap = os.path.join(tmp, "snap")
    data = os.urandom(3000).hex().encode()  # 6000 bytes of text
    with open(os.path.join(tmp, "page.txt"), "wb") as f:
        f.write(data)
    digest = hashlib.md5(data).hexdigest()
    http = HttpServer(tmp)
    out_addr = outside_addr()
    far = HttpServer(tmp, out_addr) if out_addr else None
    if not far:
        info("no outside address on this host: outbound fetches are not tested")
    fwd = free_port()
    fwd_rules = f"hostfwd=tcp::{fwd}-:8080,hostfwd=udp::{free_port(socket.SOCK_DGRAM)}-:5353"
    nets = ["--net", "user,host-loopback=on," + fwd_rules]
    tap_net = [] if tap_skip else ["--net", f"tap={TAP},mac=52:54:00:ab:cd:ef"]
    nets += tap_net
    build_root = os.environ.get("MESON_BUILD_ROOT", "/tmp")
    g = Guest(vireo, ["--kernel", os.path.join(g_dir, "vmlinux"),
                      "--initrd", os.path.join(g_dir, "initramfs.cpio"),
                      "--memory", "256M", "--api-sock", sock, "--timeout", "1700", "-v"] + nets,
              os.path.join(build_root, "net-guest-console.log"))
    r = r2 = None
    try:
        g.wait_for(READY_MARKER, BOOT_TIMEOUT)
        g.wait_for(PROMPT, 120)
        info(f"shell after {time.monotonic() - g.t0:.1f} s")
        out = g.run("cat /sys/class/net/eth0/address /sys/class/net/eth0/mtu")
        check("eth0: default MAC and MTU 1500", out.split() == ["52:54:00:12:34:56", "1500"],
              repr(out))
        out = dhcp(g)
        check("DHCP: eth0 gets 10.0.2.15/24", "inet 10.0.2.15/24" in out, repr(out))
        check("DHCP: default route via 10.0.2.2", "default via 10.0.2.2" in out, repr(out))
        check("DHCP: DNS server 10.0.2.3", "nameserver 10.0.2.3" in out, repr(out))
        check("eth0: carrier up", carrier(g, "eth0") == "1")

        fetch_check(g, "host-loopback=on: the guest fetches a page from the host's loopback "
                    "via 10.0.2.2", "10.0.2.2", http.port, "page.txt", digest)
        if far:
            fetch_check(g, "the guest fetches a page from an outside address of the host",
                        far.addr, far.port, "page.txt", digest)
            try:
                socket.create_connection((far.addr, fwd), timeout=5).close()
                check("hostfwd without HOSTADDR listens on 127.0.0.1 only", False)
            except OSError as e:
                check("hostfwd without HOSTADDR listens on 127.0.0.1 only", True, str(e))
        hostfwd_check(g, fwd, "1")

        reply = api(sock, {"cmd": "net-link", "nic": 0, "up": False})
        down = carrier(g, "eth0")
        api(sock, {"cmd": "net-link", "nic": 0, "up": True})
        up = carrier(g, "eth0")
        check("net-link: the guest sees carrier go down and up", (down, up) == ("0", "1"),
              f"down {down!r}, up {up!r}, reply {reply}")
        nics = api(sock, {"cmd": "net-info"}).get("nics", [])
        check("net-info lists the NICs with traffic counters",
              len(nics) == len(nets) // 2 and nics[0]["tx_frames"] > 0
              and nics[0]["rx_frames"] > 0 and nics[0]["mac"] == "52:54:00:12:34:56",
              json.dumps(nics)[:300])

        if not tap_skip:
            out = g.run("cat /sys/class/net/eth1/address")
            check("eth1 (tap): MAC from mac=", out == "52:54:00:ab:cd:ef", repr(out))
            tap_checks(g)

        # Last before the snapshot: the restored VMs inherit the guest's route to 127.0.0.0/8.
        out = g.run(ROUTE_127)
        info(f"guest route to 127.0.0.1: {out!r}")
        fetch_check(g, "host-loopback=on: the guest also reaches the host's 127.0.0.1 by routing "
                    "127.0.0.0/8 to the gateway", "127.0.0.1", http.port, "page.txt", digest)

        reply = api(sock, {"cmd": "snapshot", "path": snap})
        check("snapshot of the VM with its NICs", reply.get("ok") is True, str(reply)[:200])
        g.kill()
        # The default user NIC: the host's loopback is out of the guest's reach.
        r = Guest(vireo, ["--restore", snap, "--timeout", "900", "-v",
                          "--net", "user," + fwd_rules] + tap_net,
                  os.path.join(build_root, "net-restored-console.log"))
        out = r.run("cat /sys/class/net/eth0/address; ip -4 addr show eth0 | "
                    "grep -o 'inet [0-9./]*'", timeout=300)
        check("restored: eth0 keeps its MAC and address",
              out.split() == ["52:54:00:12:34:56", "inet", "10.0.2.15/24"], repr(out))
        fetch_check(r, "default: the guest cannot fetch from the host's loopback via 10.0.2.2",
                    "10.0.2.2", http.port, "page.txt", digest, expect=False)
        fetch_check(r, "default: nor by routing 127.0.0.0/8 to the gateway", "127.0.0.1",
                    http.port, "page.txt", digest, expect=False)
        check("default: the dropped loopback packets are logged",
              "dropped a guest packet to a loopback address" in r.stderr, r.stderr[-300:])
        if far:
            fetch_check(r, "default: the guest still fetches from an outside address", far.addr,
                        far.port, "page.txt", digest)
        hostfwd_check(r, fwd, "2")
        r.kill()
        # restrict=on: nothing gets out, even with host-loopback=on; hostfwd still works.
        r2 = Guest(vireo, ["--restore", snap, "--timeout", "900", "-v",
                           "--net", "user,restrict=on,host-loopback=on," + fwd_rules] + tap_net,
                   os.path.join(build_root, "net-restricted-console.log"))
        r2.run("true", timeout=300)
        fetch_check(r2, "restrict=on: no fetch from the host's loopback via 10.0.2.2", "10.0.2.2",
                    http.port, "page.txt", digest, expect=False)
        if far:
            fetch_check(r2, "restrict=on: no fetch from an outside address", far.addr, far.port,
                        "page.txt", digest, expect=False)
        hostfwd_check(r2, fwd, "3")
        r2.send("poweroff\n")
        code = r2.wait_exit(300)
        check("restricted VM powers off with status 0", code == 0, f"status {code}")
        bad = "needs reset" in g.stderr + r.stderr + r2.stderr
        check("no NIC was reset for a bad ring", not bad,
              (g.stderr + r.stderr + r2.stderr)[-500:] if bad else "")
    except (TimeoutError, OSError, ValueError) as e:
        check("guest session", False, str(e)[-3000:])
    finally:
        g.kill()
        for vm in (r, r2):
            if vm:
                vm.kill()
        http.stop()
        if far:
            far.stop()
        if not tap_skip:
            sh("ip", "link", "del", TAP)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{sum(results)} of {len(results)} checks passed")
    if not results:
        return 77
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
