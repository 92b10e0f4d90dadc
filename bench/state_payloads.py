"""vireo-only state measurements with the freestanding payloads (bench/state.py --payloads).

  - idle:    counter.bin, a real-mode PIT counter that touches a few pages;
  - touched: touch.bin, which writes every page of RAM once, then only reads the clock;
  - dirtying: dirty.bin, which rewrites a 64 MiB window of RAM without pause, natively (CPL3).
touch.bin and dirty.bin print the largest gap between two reads of the guest's TSC about every
0.8 s: a guest pause shows there, measured on the guest's own clock. QEMU cannot run these
payloads (a flat binary started in real mode at 0000:8000 with an exit port), so there is no
peer here; bench/state.py compares with QEMU on the Linux guest.
"""
import json
import re
import shutil
import subprocess
import time

from guest import free_port, unix_exchange, wait_for_path


def request(sock, obj, timeout=300):
    return json.loads(unix_exchange(sock, (json.dumps(obj) + "\n").encode(), timeout=timeout))


def wait_text(path, pattern, timeout=120, count=1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = re.findall(pattern, open(path).read())
            if len(found) >= count:
                return found
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{pattern!r} not in {path}")


def start(vireo, args, tmp, name, sock=True):
    out = os.path.join(tmp, name + ".console")
    cmd = [vireo, "run"] + args + ["--console", "file:" + out, "--timeout", "600", "-vv"]
    s = os.path.join(tmp, name + ".sock") if sock else None
    if s:
        cmd += ["--api-sock", s]
    err = open(os.path.join(tmp, name + ".err"), "w")
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    if s:
        wait_for_path(s)
    return p, s, out, os.path.join(tmp, name + ".err")


def stop(p):
    if p.poll() is None:
        p.kill()
    p.wait()


def tsc_khz(errfile):
    m = re.search(r"guest TSC (\d+) kHz", open(errfile).read())
    return int(m.group(1)) if m else 0


def bench_snapshots(vireo, payloads, tmp, mems=("256M",)):
    print("Snapshot save and restore")
    print(f"  {'guest':<22}{'pause ms':>10}{'state KiB':>11}{'memory MiB':>12}"
          f"{'on disk MiB':>13}{'restore->KVM_RUN ms':>21}")
    for mem in mems:
        for kind, payload, ready in (("idle", "counter.bin", r"tick 000[3-9A-F]"),
                                     ("touched", "touch.bin", r"ram [0-9A-F]+")):
            p, sock, out, _ = start(vireo, ["--payload", os.path.join(payloads, payload),
                                            "--memory", mem], tmp, f"s-{mem}-{kind}")
            snap = os.path.join(tmp, f"snap-{mem}-{kind}")
            try:
                wait_text(out, ready, 300)
                r = request(sock, {"cmd": "snapshot", "path": snap})
            finally:
                stop(p)
            du = int(subprocess.run(["du", "-sk", snap], capture_output=True,
                                    text=True).stdout.split()[0]) / 1024
            lat = []
            for _ in range(3):
                q = subprocess.run([vireo, "run", "--restore", snap, "--console", "none",
                                    "--timeout", "1", "-vv"], capture_output=True, text=True)
                m = re.search(r"first KVM_RUN ([0-9.]+) ms", q.stderr)
                if m:
                    lat.append(float(m.group(1)))
            lat_s = f"{min(lat):.1f} (min of 3)" if lat else "n/a"
            print(f"  {mem + ' ' + kind:<22}{r.get('pause_ms', 0):>10.1f}"
                  f"{r.get('state_bytes', 0) / 1024:>11.1f}"
                  f"{r.get('memory_bytes', 0) / 2**20:>12.1f}{du:>13.1f}{lat_s:>21}")
            shutil.rmtree(snap, ignore_errors=True)


def gaps_ms(path, khz):
    return [int(g, 16) / khz for g in re.findall(r"gap ([0-9A-F]{16})", open(path).read())]


def bench_migration(vireo, payloads, tmp):
    print("Live migration over loopback, 256 MiB")
    print(f"  {'guest':<22}{'total ms':>10}{'rounds':>8}{'sent MiB':>10}"
          f"{'downtime ms (source)':>22}{'guest saw ms':>14}{'usual gap ms':>14}")
    for kind, payload in (("touched, then idle", "touch.bin"), ("dirtying 64 MiB", "dirty.bin")):
        port = free_port()
        d, _, out_d, err_d = start(vireo, ["--incoming", f"tcp:127.0.0.1:{port}",
                                           "--insecure-migration"], tmp,
                                   f"m-dst-{payload}", sock=False)
        s, sock, out_s, err_s = start(vireo, ["--payload", os.path.join(payloads, payload),
                                              "--memory", "256M"], tmp, f"m-src-{payload}")
        try:
            wait_text(out_s, r"gap [0-9A-F]{16}", 300, count=3)
            khz = tsc_khz(err_s)
            before = gaps_ms(out_s, khz)
            request(sock, {"cmd": "migrate", "uri": f"tcp:127.0.0.1:{port}", "insecure": True})
            s.wait(300)
            wait_text(out_d, r"gap [0-9A-F]{16}", 60, count=2)
            after = gaps_ms(out_d, khz)
            m = re.search(r"migration completed: (\d+) MiB sent in (\d+) ms, (\d+) rounds, "
                          r"guest paused ([0-9.]+) ms", open(err_s).read())
            if m:
                print(f"  {kind:<22}{m.group(2):>10}{m.group(3):>8}{m.group(1):>10}"
                      f"{m.group(4):>22}{max(after[:2]):>14.1f}{max(before[1:]):>14.1f}")
            else:
                print(f"  {kind:<22} migration did not complete: "
                      f"{open(err_s).read().strip().splitlines()[-1:]}")
        finally:
            stop(s)
            stop(d)
    print("  'guest saw' is the largest gap between two TSC reads in the guest around the "
          "migration;\n  'usual gap' the largest before it (host scheduling on a busy 2-core "
          "machine).")


def run(vireo, payloads, tmp):
    print("\nvireo only: the freestanding payloads")
    bench_snapshots(vireo, payloads, tmp)
    bench_migration(vireo, payloads, tmp)
