#!/usr/bin/env python3
"""vireod with real VMs (KVM suite 'daemon'), driven through its HTTP API on the unix socket.

  daemon_test.py VIREOD VIREO PAYLOAD_DIR GUEST_BUILD_SH CASE

CASE is one of: lifecycle (payload VMs: every action, console, snapshot, power-off, crash and
restart policy, bad input), linux (the test Linux guest: boot, console, shutdown), reattach
(kill -9 vireod with 10 VMs running, one VMM killed meanwhile, restart), parallel (50 actions
at once on one VM), crashsafe (kill -9 vireod in the middle of writes, PRAGMA integrity_check),
scale (300 payload VMs started and listed)."""
import os
import signal
import socket
import sqlite3
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from dlib import Console, Daemon, payload_vm  # noqa: E402


def history(api, name):
    return api.get(f"/vms/{name}/history").json["items"]


def check_history_chain(items):
    """Every transition leaves the state the previous one entered (no lost update)."""
    for a, b in zip(items, items[1:]):
        assert a["to"] == b["from"], (a, b)


def case_lifecycle(d, payloads, _build_sh):
    api = d.api
    hang = os.path.join(payloads, "hang.bin")
    counter = os.path.join(payloads, "counter.bin")
    assert api.post("/vms", payload_vm("life", counter, tags=["t"])).status == 201
    # Refused at once: nothing to stop yet.
    r = api.post("/vms/life/actions/stop")
    assert r.status == 409 and r.code == "invalid_state", r
    t = api.action("life", "start")
    vm = api.vm("life")
    assert vm["state"] == "running" and vm["pid"], vm
    assert t["result"]["state"] == "running", t
    assert os.path.exists(f"/proc/{vm['pid']}"), vm
    # The console (websocket through the console hub) shows the payload's ticks.
    con = Console(d.sock, "life")
    con.wait_for("tick", 60)
    con.close()
    # Stats from /proc.
    time.sleep(0.5)
    st = api.get("/vms/life/stats").json
    assert st["rss_bytes"] > 1 << 20 and isinstance(st["cpu_seconds"], float), st
    api.action("life", "pause")
    assert api.vm("life")["state"] == "paused"
    r = api.post("/vms/life/actions/pause")
    assert r.status == 409 and r.code == "invalid_state", r
    snapdir = os.path.join(d.dir, "snap1")
    t = api.action("life", "snapshot", {"path": snapdir})
    assert os.path.exists(os.path.join(snapdir, "state.vireo")), t
    assert t["result"]["path"] == snapdir and api.vm("life")["state"] == "paused", t
    api.action("life", "resume")
    api.action("life", "reset")
    assert api.vm("life")["state"] == "running"
    # A definition change needs a stopped VM; tags may change at any time.
    r = api.patch("/vms/life", {"vcpus": 2})
    assert r.status == 409 and r.code == "invalid_state", r
    r = api.patch("/vms/life", {"tags": ["u"]})
    assert r.status == 200 and r.json["tags"] == ["u"], r
    r = api.delete("/vms/life")
    assert r.status == 409, r
    t = api.action("life", "stop")
    vm = api.vm("life")
    assert vm["state"] == "stopped" and vm["pid"] is None, vm
    assert "stopped by api" in vm["state_reason"], vm
    hist = history(api, "life")
    check_history_chain(hist)
    assert [h["to"] for h in hist] == ["defined", "starting", "running", "paused", "running",
                                       "running", "stopping", "stopped"], hist
    migrate(d, counter)
    # The guest powers itself off: stopped, said so.
    assert api.post("/vms", payload_vm("off", os.path.join(payloads, "poweroff.bin"))).status == 201
    t = api.action("off", "start", ok=False)
    vm = api.wait_state("off", "stopped", 30)
    assert "guest powered off" in vm["state_reason"], vm
    # A VMM killed behind the daemon's back: crashed with its signal; on-failure restarts it.
    assert api.post("/vms", payload_vm("crash", hang, restart_policy="on-failure")).status == 201
    api.action("crash", "start")
    pid = api.vm("crash")["pid"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.time() + 30
    while time.time() < deadline:
        h = history(api, "crash")
        if any(x["to"] == "crashed" for x in h) and api.vm("crash")["state"] == "running":
            break
        time.sleep(0.1)
    h = history(api, "crash")
    crashed = [x for x in h if x["to"] == "crashed"]
    assert crashed and "killed by signal 9 (SIGKILL)" in crashed[0]["reason"], h
    vm = api.vm("crash")
    assert vm["state"] == "running" and vm["pid"] != pid, (vm, h)
    assert "restart policy on-failure" in vm["state_reason"], vm
    api.action("crash", "stop")
    # A missing payload file is refused when the VM starts (422 in the task's error).
    assert api.post("/vms", payload_vm("nofile", "/nonexistent/x.bin")).status == 201
    t = api.action("nofile", "start", ok=False)
    assert t["state"] == "failed" and t["error"]["code"] == "unprocessable", t
    assert "/nonexistent/x.bin" in t["error"]["message"], t
    assert api.vm("nofile")["state"] == "defined"
    # A VMM that refuses its payload: the task says why, from the VMM's log.
    assert api.post("/vms", payload_vm("isdir", "/tmp")).status == 201
    t = api.action("isdir", "start", ok=False)
    assert t["state"] == "failed" and "Is a directory" in t["error"]["message"], t
    vm = api.vm("isdir")
    assert vm["state"] == "crashed" and "exited with status 1" in vm["state_reason"], vm
    for name in ("life", "off", "crash", "nofile", "isdir"):
        r = api.delete(f"/vms/{name}")
        assert r.status == 204, (name, r)
    assert api.get("/vms/life").status == 404
    assert not os.listdir(os.path.join(d.state, "vms")), os.listdir(os.path.join(d.state, "vms"))


def migrate(d, counter):
    """Live migration as a task: the source VM goes migrating -> stopped ("migrated to"), and
    the destination (a plain `vireo run --incoming`) runs the guest on."""
    import subprocess
    from guest import free_port
    api = d.api
    assert api.post("/vms", payload_vm("mig", counter)).status == 201
    api.action("mig", "start")
    r = api.post("/vms/mig/actions/migrate", {"uri": "udp:1.2.3.4:5"})
    assert r.status == 400 and r.code == "invalid_value", r
    port = free_port()
    dsock = os.path.join(d.dir, "dest.sock")
    dlog = open(os.path.join(d.dir, "dest.log"), "wb")
    argv = [d.vireo, "run", "--incoming", f"tcp:127.0.0.1:{port}", "--console", "none",
            "--api-sock", dsock, "--timeout", "120"]
    body = {"uri": f"tcp:127.0.0.1:{port}"}
    helptext = subprocess.run([d.vireo, "run", "--help"], capture_output=True, text=True).stdout
    if "--insecure-migration" in helptext:
        # Plain TCP between two local processes; the TLS variants are the VMM's own tests.
        argv.append("--insecure-migration")
        body["insecure"] = True
    dest = subprocess.Popen(argv, stdout=dlog, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        t = api.action("mig", "migrate", body, timeout=180)
        assert t["result"]["phase"] == "completed", t
        vm = api.vm("mig")
        assert vm["state"] == "stopped" and "migrated to" in vm["state_reason"], vm
        assert [h["to"] for h in history(api, "mig")][-2:] == ["migrating", "stopped"]
        assert dest.poll() is None, "the destination is not running the guest"
    finally:
        dest.kill()
        dest.wait()
        dlog.close()
    assert api.delete("/vms/mig").status == 204


def case_linux(d, _payloads, build_sh):
    import guest as g
    api = d.api
    gdir = g.build_guest(build_sh)
    body = {"name": "linux", "vcpus": 1, "memory_mib": 256,
            "devices": {"rng": True, "balloon": True}, "nics": [{"type": "user"}],
            "boot": {"kernel": os.path.join(gdir, "vmlinux"),
                     "initrd": os.path.join(gdir, "initramfs.cpio")}}
    assert api.post("/vms", body).status == 201
    t0 = time.time()
    api.action("linux", "start")
    con = Console(d.sock, "linux")
    con.wait_for(g.READY_MARKER, 600)
    con.wait_for(g.PROMPT, 120)
    print(f"info test guest at its shell {time.time() - t0:.1f} s after the start request")
    con.send("echo sum-$((40+2))\n")
    con.wait_for("sum-42", 60)
    # A second viewer gets the ring (the boot log) first.
    con2 = Console(d.sock, "linux")
    con2.wait_for(g.READY_MARKER, 30)
    con2.close()
    con.close()
    # Stats: /proc for CPU and RSS, the control socket for the balloon and the NIC.
    st = api.get("/vms/linux/stats").json
    assert st["rss_bytes"] > 32 << 20 and st["cpu_seconds"] > 0.5, st
    assert st["balloon"] and st["balloon"]["driver_ok"] is True, st
    assert len(st["net"]) == 1 and st["net"][0]["backend"] == "user", st
    assert st["block"] is None, st
    # Shutdown: the ACPI power button, and a hard stop after timeout_s if the guest ignores it.
    t = api.action("linux", "shutdown", {"timeout_s": 30}, timeout=120)
    vm = api.vm("linux")
    assert vm["state"] == "stopped" and "shut down by api" in vm["state_reason"], vm
    check_history_chain(history(api, "linux"))
    api.action("linux", "start")
    api.action("linux", "stop")
    assert api.delete("/vms/linux").status == 204


def case_reattach(d, payloads, _build_sh):
    api = d.api
    hang = os.path.join(payloads, "hang.bin")
    names = [f"r{i}" for i in range(11)]
    for n in names:
        assert api.post("/vms", payload_vm(n, hang, tags=["re"])).status == 201
    r = api.post("/vms/actions/start", {"tag": "re"})
    assert r.status == 202, r
    for t in r.json["tasks"]:
        assert api.wait_task(t["id"], 180)["state"] == "succeeded", t
    before = {n: api.vm(n)["pid"] for n in names}
    # Not running when the daemon goes: one to autostart, one to restart by its policy.
    assert api.post("/vms", payload_vm("auto", hang, autostart=True)).status == 201
    assert api.post("/vms", payload_vm("again", hang, restart_policy="always")).status == 201
    api.action("again", "start")
    again_pid = api.vm("again")["pid"]
    d.kill9()
    os.kill(again_pid, signal.SIGKILL)
    # While the daemon is down: every VMM still runs; one of them is killed.
    for n, pid in before.items():
        assert os.path.exists(f"/proc/{pid}"), n
    os.kill(before["r10"], signal.SIGKILL)
    deadline = time.time() + 10
    while os.path.exists(f"/proc/{before['r10']}") and time.time() < deadline:
        time.sleep(0.02)  # its shim reaps it and records the signal
    t0 = time.monotonic()
    d.start()
    print(f"info vireod back with 11 VMs reconciled in {time.monotonic() - t0:.2f} s")
    for n in names[:10]:
        vm = api.vm(n)
        assert vm["state"] == "running" and vm["pid"] == before[n], vm
    vm = api.vm("r10")
    assert vm["state"] == "crashed", vm
    assert "while vireod was down" in vm["state_reason"] and "signal 9" in vm["state_reason"], vm
    vm = api.wait_state("auto", "running", 60)
    assert "autostart" in vm["state_reason"], vm
    vm = api.wait_state("again", "running", 60)
    assert "restart policy" in vm["state_reason"] and vm["pid"] != again_pid, vm
    h = history(api, "again")
    assert any(x["to"] == "crashed" and "while vireod was down" in x["reason"] for x in h), h
    for n in ("auto", "again"):
        api.action(n, "stop")
    # SIGTERM: vireod stops serving and leaves every VMM running; the next one re-attaches.
    t0 = time.monotonic()
    d.stop()
    assert d.proc.returncode == 0 and time.monotonic() - t0 < 10, d.proc.returncode
    for n in names[:10]:
        assert os.path.exists(f"/proc/{before[n]}"), n
    d.start()
    for n in names[:10]:
        vm = api.vm(n)
        assert vm["state"] == "running" and vm["pid"] == before[n], vm
    # Re-attached means controllable: pause and resume each, then stop them all.
    for n in names[:10]:
        api.action(n, "pause")
        api.action(n, "resume")
    r = api.post("/vms/actions/stop", {"ids": names[:10]})
    for t in r.json["tasks"]:
        assert api.wait_task(t["id"], 120)["state"] == "succeeded", t
    # A re-attached VMM's end is noticed too (its pidfd is watched again).
    for n in names[:10]:
        vm = api.vm(n)
        assert vm["state"] == "stopped" and not os.path.exists(f"/proc/{before[n]}"), vm
        check_history_chain(history(api, n))


def case_parallel(d, payloads, _build_sh):
    """50 actions posted at once on one VM (alternating start and stop, from 50 threads): they
    run one at a time in the order the daemon accepted them, each sees the state its
    predecessor left (a start after a start fails with invalid_state), and the history has no
    lost or doubled transition."""
    api = d.api
    assert api.post("/vms", payload_vm("par", os.path.join(payloads, "hang.bin"))).status == 201
    tasks, lock = [], threading.Lock()
    go = threading.Barrier(50)

    def post(i):
        go.wait()
        r = api.post("/vms/par/actions/" + ("start" if i % 2 == 0 else "stop"))
        with lock:
            tasks.append(r)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Each is a task (202) or, when the answer was certain at once, a 409.
    assert all(r.status in (202, 409) for r in tasks), [r for r in tasks if r.status not in
                                                          (202, 409)]
    done = [api.wait_task(r.json["id"], 300) for r in tasks if r.status == 202]
    assert len(done) >= 2, tasks
    # (Times have millisecond resolution: a task that fails at once starts and ends in the
    # same millisecond as its neighbours.)
    done.sort(key=lambda t: (t["started_at"], t["finished_at"]))
    for a, b in zip(done, done[1:]):
        # Strictly one after the other, in the order they were accepted.
        assert a["finished_at"] <= b["started_at"], (a, b)
        assert a["created_at"] <= b["created_at"], (a, b)
    state = "defined"
    ok = 0
    for t in done:
        kind = t["kind"].split(".")[1]
        allowed = state in ("defined", "stopped", "crashed") if kind == "start" else \
            state in ("running", "paused", "stopping", "starting")
        if allowed:
            assert t["state"] == "succeeded", (state, t)
            state = "running" if kind == "start" else "stopped"
            ok += 1
        else:
            assert t["state"] == "failed" and t["error"]["code"] == "invalid_state", (state, t)
    h = history(api, "par")
    check_history_chain(h)
    starts = sum(1 for x in h if x["to"] == "running")
    stops = sum(1 for x in h if x["to"] == "stopped")
    assert starts + stops == ok, (ok, h)
    assert api.vm("par")["state"] == state
    print(f"info 50 parallel actions: {len(done)} tasks, {ok} succeeded in order, "
          f"{len(tasks) - len(done)} refused at once")
    if state == "running":
        api.action("par", "stop")


def integrity(state_dir):
    db = sqlite3.connect(os.path.join(state_dir, "vireod.db"), timeout=30)
    try:
        res = db.execute("PRAGMA integrity_check").fetchall()
        assert res == [("ok",)], res
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        vms = db.execute("SELECT COUNT(*) FROM vms").fetchone()[0]
        logged = db.execute("SELECT COUNT(DISTINCT vm_id) FROM vm_state_log").fetchone()[0]
        assert vms == logged, (vms, logged)
        return vms
    finally:
        db.close()


def case_crashsafe(d, payloads, _build_sh):
    """vireod is killed with SIGKILL while 8 clients create, patch and delete VMs as fast as
    they can; the database passes integrity_check, every VM has its state log, and the next
    vireod starts on it and serves every VM it holds."""
    hang = os.path.join(payloads, "hang.bin")
    for rnd in range(4):
        stop = threading.Event()

        def writer(w):
            i = 0
            while not stop.is_set():
                try:
                    n = f"w{rnd}-{w}-{i}"
                    d.api.post("/vms", payload_vm(n, hang))
                    d.api.patch(f"/vms/{n}", {"description": "x" * 100, "tags": ["a", "b"]})
                    if i % 3 == 0:
                        d.api.delete(f"/vms/{n}")
                except OSError:
                    return
                i += 1

        ws = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
        for t in ws:
            t.start()
        time.sleep(0.5 + rnd * 0.37)
        d.kill9()
        stop.set()
        for t in ws:
            t.join()
        vms = integrity(d.state)
        d.start()
        lst = d.api.get("/vms?limit=1000").json
        assert lst["total"] == vms, (lst["total"], vms)
        print(f"info round {rnd}: killed with {vms} VMs stored; consistent")


def meminfo(key):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def case_scale(d, payloads, _build_sh, n=300):
    api = d.api
    hang = os.path.join(payloads, "hang.bin")
    avail0 = meminfo("MemAvailable")
    t0 = time.monotonic()
    for i in range(n):
        r = api.post("/vms", payload_vm(f"s{i:03d}", hang, tags=["scale"]))
        assert r.status == 201, r
    t_def = time.monotonic() - t0
    t0 = time.monotonic()
    r = api.post("/vms/actions/start", {"tag": "scale"})
    assert r.status == 202 and len(r.json["tasks"]) == n, r
    failed = []
    for t in r.json["tasks"]:
        t = api.wait_task(t["id"], 900)
        if t["state"] != "succeeded":
            failed.append(t)
    t_start = time.monotonic() - t0
    assert not failed, failed[:3]
    t0 = time.monotonic()
    lst = api.get("/vms?tag=scale&limit=1000").json
    t_list = time.monotonic() - t0
    assert lst["total"] == n and all(v["state"] == "running" for v in lst["items"]), lst["total"]
    pids = [v["pid"] for v in lst["items"]]
    assert len(set(pids)) == n and all(os.path.exists(f"/proc/{p}") for p in pids)
    rss = 0
    for p in pids:
        with open(f"/proc/{p}/status") as f:
            rss += next(int(x.split()[1]) for x in f if x.startswith("VmRSS:")) * 1024
    used = avail0 - meminfo("MemAvailable")
    print(f"info {n} payload VMs (16 MiB each): defined in {t_def:.1f} s, started in "
          f"{t_start:.1f} s ({n / t_start:.1f}/s), listed in {t_list * 1000:.0f} ms; VMM RSS "
          f"total {rss >> 20} MiB ({rss / n / (1 << 20):.1f} MiB each); host MemAvailable "
          f"down {used >> 20} MiB; vireod RSS {d.rss_bytes() >> 20} MiB")
    t0 = time.monotonic()
    r = api.post("/vms/actions/stop", {"tag": "scale"})
    for t in r.json["tasks"]:
        assert api.wait_task(t["id"], 900)["state"] == "succeeded", t
    print(f"info {n} VMs stopped in {time.monotonic() - t0:.1f} s")


CASES = {"lifecycle": case_lifecycle, "linux": case_linux, "reattach": case_reattach,
         "parallel": case_parallel, "crashsafe": case_crashsafe, "scale": case_scale}


def main():
    vireod, vireo, payloads, build_sh, case = sys.argv[1:6]
    d = Daemon(os.path.abspath(vireod), os.path.abspath(vireo))
    rc = 1
    try:
        d.start()
        CASES[case](d, os.path.abspath(payloads), build_sh)
        print(f"ok {case}")
        rc = 0
    except Exception:  # noqa: BLE001 - print the daemon's log with any failure
        import traceback
        traceback.print_exc()
        print("vireod log (end):\n" + d.logtext()[-5000:])
    finally:
        d.cleanup()
    return rc


if __name__ == "__main__":
    sys.exit(main())
