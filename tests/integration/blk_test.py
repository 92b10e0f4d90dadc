#!/usr/bin/env python3
"""Integration: virtio-blk in the test Linux guest, restored from the devices fixture
(guest.linux_snapshot_devices: vda = ext4 on a qcow2 image, vdb = read-only raw image).

1. Disks: two disks with their serials, vdb read-only; ext4 on vda is mounted, written, synced,
   unmounted, the guest powers off; on the host the restored VM's overlay chain checks clean with
   `e2fsck -fn`, holds the files, grew by about what was written, and the frozen images did not
   change. Writes to vdb fail in the guest.
2. Snapshot while the guest writes to its disk in a loop: the snapshot's frozen image does not
   change afterwards (the VM goes on in a new overlay), a restore of it has the files from before
   the snapshot and none of what the original VM wrote later, keeps writing, and its disk checks
   clean after a clean shutdown.
3. Live migration over loopback with the disk (shared storage): the destination reads the
   source's files and keeps writing; the result checks clean.
Usage: blk_test.py VIREO GUEST_BUILD_SH"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest import Guest, devices_disks, linux_snapshot_devices, unix_exchange  # noqa: E402

VIREO, BUILD_SH = sys.argv[1], sys.argv[2]
WORK = os.environ.get("MESON_BUILD_ROOT", tempfile.gettempdir())
results = []


def check(name, ok, detail=""):
    results.append(bool(ok))
    print(("ok   " if ok else "FAIL ") + name + (": " + detail if detail else ""), flush=True)


def request(sock, obj, timeout=300):
    return json.loads(unix_exchange(sock, (json.dumps(obj) + "\n").encode(), timeout=timeout))


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class SlowGuest(Guest):
    """Guest commands get 10 minutes: on a loaded PVM host a command that touches the disk can
    take a minute of emulated kernel time."""

    def run(self, command, timeout=600, retry_segv=True):
        return super().run(command, timeout, retry_segv)


def restore(snap, overlay_dir, name, *extra, fixture=True, disks=None):
    """disks: the --disk options (the snapshot's frozen images); the fixture's by default."""
    os.makedirs(overlay_dir, exist_ok=True)
    g = SlowGuest(VIREO, ["--restore", snap, "--overlay-dir", overlay_dir, "--timeout", "900",
                          "-v"] + (disks if disks is not None else devices_disks(snap)) +
                  list(extra), os.path.join(WORK, f"blk-{name}-console.log"))
    # Kernel messages off the console (a PVM-host segfault report would land in the middle of
    # a command's output), and the fixture's background counter stopped: its `sleep` processes
    # are what usually hits that flake, and the test does not need it.
    g.run("dmesg -n 1; kill %1 2>/dev/null; true" if fixture else "dmesg -n 1", timeout=300)
    return g


def seq_text(a, b):
    return "".join(f"{i}\n" for i in range(a, b + 1))


def to_raw(image, tmp, name):
    """The whole chain of image, flattened to a raw file for e2fsck and debugfs."""
    out = os.path.join(tmp, name + ".raw")
    if os.path.exists(out):
        os.unlink(out)
    # The overlays' backing files are the fixture's images, outside their directory.
    subprocess.run([VIREO, "img", "convert", "--backing-dir", WORK, "-O", "raw", image, out],
                   check=True, capture_output=True)
    return out


def fsck(raw):
    p = subprocess.run(["e2fsck", "-fn", raw], capture_output=True, text=True)
    return p.returncode, (p.stdout + p.stderr)[-600:]


def debugfs_cat(raw, path):
    p = subprocess.run(["debugfs", "-R", f"cat {path}", raw], capture_output=True, text=True)
    return p.stdout


def debugfs_exists(raw, path):
    p = subprocess.run(["debugfs", "-R", f"stat {path}", raw], capture_output=True, text=True)
    return "Inode:" in p.stdout


def actual_size(image):
    p = subprocess.run([VIREO, "img", "info", "--backing-dir", WORK, "--json", image],
                       capture_output=True, text=True, check=True)
    return json.loads(p.stdout)["actual-size"]


def poweroff(g, what):
    g.send("poweroff\n")
    code = g.wait_exit(300)
    check(f"{what} powers off with status 0", code == 0, f"status {code}")


def disks_part(snap, tmp):
    fdir = os.path.dirname(snap)
    disk0, data1 = os.path.join(fdir, "disk0.qcow2"), os.path.join(fdir, "data1.raw")
    before = (sha(disk0), sha(data1))
    odir = os.path.join(tmp, "p1")
    g = restore(snap, odir, "disks")
    try:
        out = g.run("ls /sys/block | tr '\\n' ' '", timeout=180)
        if out.split()[-2:] != ["vda", "vdb"]:
            # PVM hosts now and then garble a fresh busybox process's output: once more.
            out = g.run("ls /sys/block | tr '\\n' ' '", timeout=180)
        check("the guest has vda and vdb", out.split()[-2:] == ["vda", "vdb"], repr(out))
        out = g.run("cat /sys/block/vda/serial; echo; cat /sys/block/vdb/serial")
        check("serials from --disk serial=", out.split()[-2:] == ["vireo-disk0", "vireo-ro1"],
              repr(out))
        out = g.run("cat /sys/block/vda/size /sys/block/vdb/size /sys/block/vda/ro "
                    "/sys/block/vdb/ro | tr '\\n' ' '")
        check("capacity from the images, vdb read-only",
              out.split()[-4:] == ["32768", "2048", "0", "1"], repr(out))
        out = g.run("mount -t ext4 /dev/vda /mnt && echo mounted")
        check("ext4 on vda mounts", "mounted" in out.splitlines()[-1:], out[-300:])
        t = time.monotonic()
        out = g.run("seq 1 20000 > /mnt/a && echo hello-from-guest > /mnt/hello && sync && "
                    "wc -c < /mnt/a", timeout=900)
        check("108 KB written and synced", out.splitlines()[-1:] == ["108894"],
              f"{out[-200:]!r} in {time.monotonic() - t:.1f} s")
        out = g.run("dd if=/dev/zero of=/dev/vdb bs=512 count=1 2>&1; echo rc=$?")
        check("writing the read-only disk fails in the guest", "rc=1" in out, out[-200:])
        out = g.run("od -An -tx1 -j 512 -N 4 /dev/vdb | tr -d ' '")
        check("the read-only disk reads its image", out.endswith("00010203"), repr(out))
        out = g.run("umount /mnt && echo unmounted")
        check("unmounts", "unmounted" in out, out[-200:])
        poweroff(g, "the guest")
    finally:
        g.kill()
    overlays = sorted(os.listdir(odir))
    check("the restored VM wrote to its own overlay", overlays == ["disk0.snap.r1.qcow2"],
          repr(overlays))
    if overlays != ["disk0.snap.r1.qcow2"]:
        return
    ov = os.path.join(odir, overlays[0])
    raw = to_raw(ov, tmp, "p1")
    rc, log = fsck(raw)
    check("e2fsck -fn of the guest's disk is clean", rc == 0, log if rc else "")
    check("the file the guest wrote is on the disk", debugfs_cat(raw, "/a") == seq_text(1, 20000))
    check("... and the small one", debugfs_cat(raw, "/hello") == "hello-from-guest\n")
    grown = actual_size(ov)
    check("the overlay grew by about what the guest wrote (108 KB + metadata and journal)",
          100_000 < grown < 2_000_000, f"{grown} bytes")
    check("the snapshot's frozen images did not change", (sha(disk0), sha(data1)) == before)
    os.unlink(raw)


# Small files, a sync every fourth: the guest kernel is slow on PVM hosts, and what matters is
# that writes are in flight around the snapshot.
WRITER = ("(i=0; while true; do i=$((i+1)); seq $i $((i+100)) > /mnt/w$((i % 8)); "
          "echo $i >> /mnt/log; [ $((i % 4)) = 0 ] && sync; done) >/dev/null 2>&1 & "
          "echo $! > /tmp/wpid")


def snapshot_part(snap, tmp):
    da, db = os.path.join(tmp, "a"), os.path.join(tmp, "b")
    sock = os.path.join(tmp, "a.sock")
    snap2 = os.path.join(tmp, "snap2")
    a = restore(snap, da, "snap-a", "--api-sock", sock)
    b = None
    try:
        a.run("mount -t ext4 /dev/vda /mnt && seq 1 5000 > /mnt/before && sync", timeout=600)
        a.run(WRITER)
        a.run("sleep 4; tail -n1 /mnt/log")
        r = request(sock, {"cmd": "snapshot", "path": snap2})
        check("snapshot while the guest writes to its disk", r.get("ok") is True, str(r)[:300])
        disks = r.get("disks", [])
        frozen = disks[0]["frozen"] if disks else ""
        check("the reply names the frozen image and the new one",
              len(disks) == 2 and frozen == os.path.join(da, "disk0.snap.r1.qcow2") and
              disks[0]["active"] == os.path.join(da, "disk0.snap2.qcow2") and
              disks[1]["frozen"] == disks[1]["active"], json.dumps(disks))
        if not disks:
            return
        frozen_sha = sha(frozen)
        n = a.run("sleep 4; tail -n1 /mnt/log")
        out = a.run("kill $(cat /tmp/wpid) 2>/dev/null; sleep 1; echo after > /mnt/after_snapshot; sync; tail -n1 /mnt/log")
        check("the original VM keeps writing after the snapshot", out.split()[-1:] != n.split(),
              f"{n!r} -> {out[-50:]!r}")
        a.run("umount /mnt")
        poweroff(a, "the original VM")
        check("its writes after the snapshot did not reach the frozen image",
              sha(frozen) == frozen_sha)
        raw = to_raw(disks[0]["active"], tmp, "a")
        rc, log = fsck(raw)
        check("the original VM's disk checks clean", rc == 0, log if rc else "")
        os.unlink(raw)

        b = restore(snap2, db, "snap-b", fixture=False,
                    disks=["--disk", frozen, "--disk", disks[1]["frozen"] + ",readonly"])
        out = b.run("tail -n1 /mnt/log; ls /mnt/after_snapshot 2>&1", timeout=180)
        check("the restored VM does not see what the original wrote after the snapshot",
              "No such file" in out, out[-200:])
        c1 = b.run("sleep 3; tail -n1 /mnt/log")
        check("the restored VM's writer goes on", c1.split()[-1:] != out.split()[:1],
              f"{out.split()[:1]} -> {c1[-40:]!r}")
        out = b.run("kill $(cat /tmp/wpid) 2>/dev/null; sleep 1; sync; cmp /mnt/before /mnt/before && "
                    "wc -l < /mnt/before; umount /mnt && echo unmounted", timeout=600)
        check("files from before the snapshot are intact in the guest",
              "5000" in out and "unmounted" in out, out[-200:])
        poweroff(b, "the restored VM")
        check("the frozen image is still unchanged", sha(frozen) == frozen_sha)
        ov = os.path.join(db, "disk0.snap2.r1.qcow2")
        raw = to_raw(ov, tmp, "b")
        rc, log = fsck(raw)
        check("e2fsck -fn of the restored VM's disk after the snapshot is clean", rc == 0,
              log if rc else "")
        check("... with the file from before the snapshot",
              debugfs_cat(raw, "/before") == seq_text(1, 5000))
        check("... and without the original VM's later file",
              not debugfs_exists(raw, "/after_snapshot"))
        os.unlink(raw)
    finally:
        a.kill()
        if b:
            b.kill()


def migration_part(snap, tmp):
    dm = os.path.join(tmp, "m")
    sock = os.path.join(tmp, "m.sock")
    port = 20000 + os.getpid() % 20000
    src = restore(snap, dm, "migrate-src", "--api-sock", sock)
    dst = None
    try:
        src.run("mount -t ext4 /dev/vda /mnt && echo src > /mnt/m && sync", timeout=300)
        # The destination names the images itself: the same files (shared storage).
        dst = SlowGuest(VIREO, ["--incoming", f"tcp:127.0.0.1:{port}", "--timeout", "900", "-v",
                                "--insecure-migration",
                                "--disk", os.path.join(dm, "disk0.snap.r1.qcow2"),
                                "--disk", devices_disks(snap)[3]],
                    os.path.join(WORK, "blk-migrate-dst-console.log"))
        time.sleep(1)
        r = request(sock, {"cmd": "migrate", "uri": f"tcp:127.0.0.1:{port}",
                           "insecure": True})
        check("migration with a disk starts", r.get("ok") is True, str(r)[:300])
        code = src.wait_exit(300)
        check("the source exits once the destination runs the guest", code == 0,
              f"status {code}: {src.stderr[-400:]}")
        # Idempotent: Guest.run repeats a command hit by the PVM segfault flake.
        out = dst.run("(cat /mnt/m; echo dst) > /mnt/m2; sync; cat /mnt/m2 | tr '\\n' ' '",
                      timeout=300)
        check("the destination reads and writes the same disk", out.split()[-2:] == ["src", "dst"],
              out[-200:])
        dst.run("umount /mnt")
        poweroff(dst, "the destination")
        raw = to_raw(os.path.join(dm, "disk0.snap.r1.qcow2"), tmp, "m")
        rc, log = fsck(raw)
        check("the migrated VM's disk checks clean", rc == 0, log if rc else "")
        check("... and has both hosts' writes", debugfs_cat(raw, "/m2") == "src\ndst\n")
        os.unlink(raw)
    finally:
        src.kill()
        if dst:
            dst.kill()


def main():
    t0 = time.monotonic()
    snap = linux_snapshot_devices(VIREO, BUILD_SH, WORK)
    print(f"info fixture ready after {time.monotonic() - t0:.1f} s", flush=True)
    tmp = tempfile.mkdtemp(prefix="vireo-blk-", dir=WORK)
    try:
        for part in (disks_part, snapshot_part, migration_part):
            try:
                part(snap, tmp)
            except (TimeoutError, OSError, subprocess.CalledProcessError) as e:
                check(part.__name__, False, str(e)[-1500:])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{sum(results)} of {len(results)} checks passed "
          f"({time.monotonic() - t0:.0f} s)", flush=True)
    return 0 if results and all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
