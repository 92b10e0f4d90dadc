#!/usr/bin/env python3
"""Snapshot, restore and live migration, side by side with QEMU (printed, not pass/fail).

The test Linux guest (guest/build.sh: bzImage + initramfs, 2 vCPUs, 256 MiB, the same command
line) runs in vireo and in QEMU (`-M pc -enable-kvm -cpu host`, the machine QEMU users migrate;
its monitor over QMP). For each, one chain of steps:

  1. boot to the ready marker; snapshot the idle guest;
  2. in the guest, `vtest touch 128` keeps 128 MiB of written pages; snapshot again;
  3. restore that snapshot --restores times: process start to the first KVM_RUN
     (bench/first_kvm_run.c) and to the guest's answer on the console;
  4. live-migrate it over loopback TCP to a new process ("touched, then idle");
  5. there, start a loop that rewrites 64 MiB without pause (`vtest touch 64` over and over)
     and migrate again ("dirtying 64 MiB").

Snapshot: vireo's `snapshot` control command (the guest is paused while the directory is
written) against QEMU's equivalent, `stop`, `migrate exec:cat > FILE`, `cont` (QEMU 7.2 has no
file: migration URI); the pause is measured by the client around both. Restore:
`vireo run --restore DIR` against `qemu ... -incoming "exec:cat FILE"` followed by `cont` as
soon as QEMU has loaded it (a stream saved from a stopped guest stays paused). Migration:
`migrate tcp:...` on both, QEMU with max-bandwidth raised from its default 32 MiB/s (vireo
does not throttle) and the same 300 ms downtime limit; downtime as each VMM reports it (vireo:
pause to the destination's "running"; QEMU: its `downtime`).

Ratios: QEMU / vireo (> 1: vireo is faster or smaller).

The first idle snapshot of each VMM is profiled with perf (system-wide, reported for the VMM's
process) when perf works here; --no-perf leaves it out.

--payloads adds the vireo-only measurements of the freestanding payloads (touch.bin, dirty.bin),
whose guest reads its own TSC and reports the largest pause it saw.

Runs itself in the nested KVM test host when /dev/kvm is not usable (see bench/boot.py);
there the times are emulation times and only the ratios count.

Each chain runs --rounds times (default 3), alternating vireo and QEMU; the table gives min and
median over the chains.

Usage: bench/state.py [--vireo build/vireo] [--rounds 3] [--restores 3] [--payloads]
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import READY_MARKER, fmt, stats  # noqa: E402
from guest import unix_exchange, wait_for_path  # noqa: E402

MEM = 256


class Qmp:
    def __init__(self, path, timeout=60):
        if not wait_for_path(path, timeout):
            raise RuntimeError(f"no QMP socket {path}")
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.f = self.s.makefile("rwb")
        self._read()  # greeting
        self.cmd("qmp_capabilities")

    def _read(self):
        while True:
            line = self.f.readline()
            if not line:
                raise ConnectionError("QMP closed")
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    def cmd(self, name, **args):
        req = {"execute": name}
        if args:
            req["arguments"] = args
        self.f.write(json.dumps(req).encode() + b"\n")
        self.f.flush()
        r = self._read()
        if "error" in r:
            raise RuntimeError(f"QMP {name}: {r['error']}")
        return r.get("return")

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def vireo_req(sock, obj, timeout=600):
    return json.loads(unix_exchange(sock, (json.dumps(obj) + "\n").encode(), timeout=timeout))


def probe_console(v, n, timeout=300):
    """Seconds until the guest's shell answers a command (None if it does not)."""
    start = v.console_len()
    t = time.monotonic()
    v.send(f"echo AN''SWER{n}\n")
    return time.monotonic() - t if v.wait_for_new(f"ANSWER{n}", timeout, start) else None


def guest_cmd(v, cmd, done, timeout=600):
    start = v.console_len()
    v.send(cmd + "\n")
    if not v.wait_for_new(done, timeout, start):
        raise RuntimeError(f"{v.name}: {cmd!r} did not print {done!r}: {v.tail()}")


def du_mib(path):
    return int(subprocess.run(["du", "-sk", path], capture_output=True, text=True)
               .stdout.split()[0]) / 1024


class VireoSide:
    name = "vireo"

    def __init__(self, a, files, tmp):
        self.a, self.files, self.tmp = a, files, tmp
        self.n = 0

    def _sock(self):
        self.n += 1
        return os.path.join(self.tmp, f"vireo-{self.n}.sock")

    def boot(self):
        self.sock = self._sock()
        argv = common.vireo_argv(self.a.vireo, "bzImage", self.files, 2, MEM,
                                 ["--api-sock", self.sock, "-v"])
        return common.Vmm(argv, self.tmp, "vireo-src")

    def snapshot(self, v, tag):
        path = os.path.join(self.tmp, f"vireo-snap-{tag}")
        t = time.monotonic()
        r = vireo_req(self.sock, {"cmd": "snapshot", "path": path})
        wall = (time.monotonic() - t) * 1000
        if not r.get("ok"):
            raise RuntimeError(f"vireo snapshot: {r}")
        return {"pause_ms": r.get("pause_ms"), "wall_ms": wall, "path": path,
                "size_mib": du_mib(path)}

    def restore(self, snap, i):
        return common.Vmm([self.a.vireo, "run", "--restore", snap["path"]], self.tmp,
                          f"vireo-restore-{i}")

    def incoming(self, port):
        self.dst_sock = self._sock()
        # Plain TCP, as QEMU's tcp: migration it is compared with.
        v = common.Vmm([self.a.vireo, "run", "--incoming", f"tcp:127.0.0.1:{port}",
                        "--insecure-migration", "--api-sock", self.dst_sock, "-v"], self.tmp,
                       "vireo-dst")
        t = time.monotonic()
        while "waiting for a migration" not in v.stderr_text():
            if v.proc.poll() is not None or time.monotonic() - t > 120:
                raise RuntimeError(f"vireo --incoming did not listen: {v.tail()}")
            time.sleep(0.05)
        return v

    def migrate(self, src, port):
        t = time.monotonic()
        vireo_req(self.sock, {"cmd": "migrate", "uri": f"tcp:127.0.0.1:{port}",
                              "insecure": True})
        st = {}
        while src.proc.poll() is None and time.monotonic() - t < 900:
            try:
                st = vireo_req(self.sock, {"cmd": "migrate-status"}, timeout=10)
            except (OSError, ValueError):
                break
            if st.get("phase") in ("completed", "failed", "cancelled"):
                break
            time.sleep(0.05)
        src.wait(120)
        m = re.search(r"migration completed: (\d+) MiB sent in (\d+) ms, (\d+) rounds, "
                      r"guest paused ([0-9.]+) ms", src.stderr_text())
        if not m:
            raise RuntimeError(f"vireo migration did not complete: {st} {src.tail()}")
        self.sock = self.dst_sock
        return {"total_ms": float(m.group(2)), "downtime_ms": float(m.group(4)),
                "rounds": int(m.group(3)), "sent_mib": float(m.group(1)),
                "wall_ms": (time.monotonic() - t) * 1000}


class QemuSide:
    name = "qemu"

    def __init__(self, a, files, tmp):
        self.a, self.files, self.tmp = a, files, tmp
        self.n = 0

    def _argv(self, extra=()):
        self.n += 1
        self.qmp_path = os.path.join(self.tmp, f"qemu-{self.n}.qmp")
        return common.qemu_argv("pc", "bzImage", self.files, 2, MEM,
                                ["-qmp", f"unix:{self.qmp_path},server=on,wait=off"] +
                                list(extra))

    def boot(self):
        v = common.Vmm(self._argv(), self.tmp, "qemu-src")
        self.qmp = Qmp(self.qmp_path)
        return v

    def _wait_migration(self, qmp, limit=600):
        t = time.monotonic()
        while time.monotonic() - t < limit:
            r = qmp.cmd("query-migrate")
            if r.get("status") in ("completed", "failed", "cancelled"):
                return r
            time.sleep(0.02)
        qmp.cmd("migrate_cancel")
        raise RuntimeError(f"QEMU migration did not finish within {limit} s (cancelled): {r}")

    def snapshot(self, v, tag):
        path = os.path.join(self.tmp, f"qemu-snap-{tag}")
        t = time.monotonic()
        self.qmp.cmd("stop")
        self.qmp.cmd("migrate", uri=f"exec:cat > {path}")
        r = self._wait_migration(self.qmp)
        self.qmp.cmd("cont")
        wall = (time.monotonic() - t) * 1000
        if r.get("status") != "completed":
            raise RuntimeError(f"QEMU snapshot: {r}")
        return {"pause_ms": wall, "wall_ms": wall, "path": path, "size_mib": du_mib(path),
                "qemu_total_ms": r.get("total-time")}

    def restore(self, snap, i):
        v = common.Vmm(self._argv(["-incoming", f"exec:cat {snap['path']}"]), self.tmp,
                       f"qemu-restore-{i}")
        # The stream says the guest was paused (stop before the save, as vireo's snapshot
        # pauses it): QEMU loads it and stays paused until `cont`, sent as soon as it may.
        q = Qmp(self.qmp_path)
        try:
            t = time.monotonic()
            while time.monotonic() - t < self.a.limit:
                st = q.cmd("query-status").get("status")
                if st != "inmigrate":
                    break
                time.sleep(0.01)
            if st != "running":
                q.cmd("cont")
        finally:
            q.close()
        return v

    def incoming(self, port):
        v = common.Vmm(self._argv(["-incoming", f"tcp:127.0.0.1:{port}"]), self.tmp,
                       "qemu-dst")
        self.dst_qmp = Qmp(self.qmp_path)
        return v

    def migrate(self, src, port):
        q = self.qmp
        q.cmd("migrate-set-parameters", **{"max-bandwidth": 64 << 30, "downtime-limit": 300})
        t = time.monotonic()
        q.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
        r = self._wait_migration(q)
        wall = (time.monotonic() - t) * 1000
        if r.get("status") != "completed":
            raise RuntimeError(f"QEMU migration: {r}")
        q.close()
        src.kill()
        self.qmp = self.dst_qmp
        ram = r.get("ram", {})
        return {"total_ms": r.get("total-time"), "downtime_ms": r.get("downtime"),
                "rounds": ram.get("dirty-sync-count"),
                "sent_mib": ram.get("transferred", 0) / 2**20, "wall_ms": wall}


class PerfAttach:
    """perf record around one step (system-wide: `perf record -p` gets no samples here),
    reported for the VMM process only: where its CPU time goes during a snapshot."""

    def __init__(self, pid, path, enabled):
        self.p = None
        self.pid = pid
        self.path = path
        if enabled:
            self.p = subprocess.Popen(["perf", "record", "-q", "-F", "999", "-e", "cpu-clock",
                                       "-a", "-o", path], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
            time.sleep(1.0)  # perf attaches

    def report(self, title, top=8):
        if not self.p:
            return
        self.p.send_signal(signal.SIGINT)
        self.p.wait(60)
        rep = subprocess.run(["perf", "report", "-i", self.path, "--stdio", "--no-children",
                              "--pid", str(self.pid), "--percentage", "relative",
                              "--sort", "dso,sym", "--percent-limit", "2"],
                             capture_output=True, text=True).stdout
        lines = [ln for ln in rep.splitlines() if ln.strip() and not ln.startswith("#")]
        print(f"  perf, {title}, the VMM process's samples:")
        for ln in lines[:top]:
            print("     " + " ".join(ln.split()))


def migrate_checked(side, v, probe):
    """Migrates VM v to a fresh destination, ends the source and checks the guest still answers
    on the console. Returns (the migration's figures, the destination VM)."""
    port = common.free_port()
    d = side.incoming(port)
    res = side.migrate(v, port)
    v.kill()
    if probe_console(d, probe) is None:
        tail = d.tail()
        d.kill()
        raise RuntimeError(f"{side.name}: guest dead after migrating: {tail}")
    return res, d


def chain(side, a, out):
    """Boot, snapshots, restores, two migrations; the figures go into out as they come."""
    v = side.boot()
    try:
        out["boot_s"] = v.wait_for(READY_MARKER, a.limit)
        if out["boot_s"] is None:
            raise RuntimeError(f"{side.name}: no ready marker: {v.tail()}")
        perf = PerfAttach(v.proc.pid, os.path.join(side.tmp, "snap.perf"), a.perf)
        out["snap_idle"] = side.snapshot(v, "idle")
        perf.report(f"{side.name} process during the idle snapshot "
                    f"({out['snap_idle']['pause_ms']:.0f} ms)")
        a.perf = False  # once
        if probe_console(v, 1) is None:
            raise RuntimeError(f"{side.name}: guest dead after the snapshot: {v.tail()}")
        guest_cmd(v, "vtest touch 128 1000000 &", "vtest: touched")
        out["snap_touched"] = side.snapshot(v, "touched")
        for i in range(a.restores):
            r = side.restore(out["snap_touched"], i)
            try:
                ans = probe_console(r, 100 + i, a.limit)
                fr = r.first_run() or {}
                out["restores"].append({"first_run_ms": fr.get("wall_ms"),
                                        "answer_s": (time.monotonic() - r.t0) if ans else None})
            finally:
                r.kill()
        out["mig_idle"], v = migrate_checked(side, v, 2)
        guest_cmd(v, "(while :; do vtest touch 64; done) >/dev/null 2>&1 &", "vireo# ")
        time.sleep(a.dirty_warmup)
        out["mig_dirty"], v = migrate_checked(side, v, 3)
    finally:
        v.kill()


def ratio(q, v):
    return f"{q / v:.2f}" if q is not None and v else "-"


def report(res, rounds):
    print(f"\nSide by side, the test Linux guest (bzImage, 2 vCPUs, 256 MiB), {rounds} chain(s) "
          "each, alternating; min / median; ratio = QEMU / vireo, medians")
    print(f"  {'':<46}{'vireo':>17}{'qemu pc':>17}{'ratio':>8}")

    def row(label, f, spec=".1f"):
        def vals(side):
            out = []
            for r in res.get(side, []):
                try:
                    out.append(f(r))
                except (KeyError, TypeError):
                    pass
            return stats(out)
        (vmin, vmed), (qmin, qmed) = vals("vireo"), vals("qemu")
        print(f"  {label:<46}{fmt(vmin, spec):>8} / {fmt(vmed, spec):<6}"
              f"{fmt(qmin, spec):>8} / {fmt(qmed, spec):<6}{ratio(qmed, vmed):>8}")

    row("boot to the ready marker, s", lambda r: r["boot_s"])
    for tag, what in (("idle", "idle"), ("touched", "128 MiB touched")):
        row(f"snapshot ({what}): guest paused, ms", lambda r: r[f"snap_{tag}"]["pause_ms"],
            ".0f")
        row(f"snapshot ({what}): on disk, MiB", lambda r: r[f"snap_{tag}"]["size_mib"])
    row("restore: start to first KVM_RUN, ms",
        lambda r: stats([x["first_run_ms"] for x in r["restores"]])[1], ".0f")
    row("restore: start to the console's answer, s",
        lambda r: stats([x["answer_s"] for x in r["restores"]])[1], ".2f")
    for tag, what in (("idle", "touched, then idle"), ("dirty", "dirtying 64 MiB")):
        row(f"migration ({what}): total, ms", lambda r: r[f"mig_{tag}"]["total_ms"], ".0f")
        row(f"migration ({what}): downtime, ms", lambda r: r[f"mig_{tag}"]["downtime_ms"],
            ".0f")
        row(f"migration ({what}): sent, MiB", lambda r: r[f"mig_{tag}"]["sent_mib"], ".0f")
        row(f"migration ({what}): rounds", lambda r: r[f"mig_{tag}"]["rounds"], ".0f")
    print("  (restore rows: the median of each chain's restores; downtime as each VMM reports "
          "it)")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vireo", default=os.path.join(common.TOP, "build", "vireo"))
    ap.add_argument("--payloads-dir", default=os.path.join(common.TOP, "build", "guest",
                                                           "payloads"))
    ap.add_argument("--rounds", type=int, default=3, help="chains per VMM")
    ap.add_argument("--restores", type=int, default=3, help="restores per chain")
    ap.add_argument("--limit", type=int, default=600, help="seconds per boot or restore")
    ap.add_argument("--dirty-warmup", type=float, default=3.0,
                    help="seconds the dirtying loop runs before the migration")
    ap.add_argument("--payloads", action="store_true",
                    help="also the vireo-only payload measurements")
    ap.add_argument("--only", choices=("vireo", "qemu"))
    ap.add_argument("--no-perf", action="store_true",
                    help="no perf profile of the first idle snapshot")
    a = ap.parse_args()
    common.in_kvm_host(__file__, sys.argv[1:])
    a.vireo = os.path.abspath(a.vireo)
    perf_ok = not a.no_perf and shutil.which("perf") and subprocess.run(
        ["perf", "stat", "-e", "cpu-clock", "true"], capture_output=True).returncode == 0
    files = common.guest_files()
    common.stage([a.vireo, shutil.which(common.QEMU), "/bin/sh", "/usr/bin/cat"])
    res = {}
    for i in range(a.rounds):
        for cls in (VireoSide, QemuSide):
            if a.only and cls.name != a.only:
                continue
            with common.tmpdir("vireo-bench-state-") as tmp:
                a.perf = perf_ok and i == 0
                side = cls(a, files, tmp)
                t = time.monotonic()
                out = {"restores": []}
                res.setdefault(side.name, []).append(out)
                try:
                    chain(side, a, out)
                    print(f"  chain {i + 1} {side.name}: done in {time.monotonic() - t:.0f} s",
                          flush=True)
                except (RuntimeError, OSError, ValueError) as e:
                    print(f"  chain {i + 1} {side.name}: FAILED after "
                          f"{time.monotonic() - t:.0f} s (the figures before it stand): {e}",
                          flush=True)
    report(res, a.rounds)
    with common.tmpdir("vireo-bench-state-") as tmp:
        if a.payloads:
            import state_payloads
            state_payloads.run(a.vireo, a.payloads_dir, tmp)


if __name__ == "__main__":
    main()
