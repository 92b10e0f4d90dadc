#!/usr/bin/env python3
"""vireod's API under load; prints its figures.

  bench/api.py [--build DIR] [--running N] [--defined N] [--requests N]

  1. VMs started per second through the API: N payload VMs (hang.bin, 16 MiB) defined, then
     started with one bulk action; time until every start task has succeeded.
  2. GET /vms latency (p50, p99) with --defined VMs in the database: the default page (100
     VMs) and the whole list (limit=1000).
  3. vireod's RSS with those VMs.
  4. kill -9 of vireod with the N VMs running: time until a new vireod answers with every VM
     re-attached (same VMM pid, state running).

Needs KVM for 1 and 4: run it in the nested test host where there is none,
  flock /tmp/vireo-l1.lock tests/kvm-host/host.py run -- python3 bench/api.py
The VMs it starts are stopped (SIGKILL by pid, only its own) at the end.
"""
import argparse
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "daemon"))
from dlib import Daemon, payload_vm  # noqa: E402


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def define(api, names, payload, tag):
    """Defines VMs from 8 client threads."""
    errs = []

    def work(part):
        for n in part:
            r = api.post("/vms", payload_vm(n, payload, tags=[tag]))
            if r.status != 201:
                errs.append(r)

    ts = [threading.Thread(target=work, args=(names[i::8],)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errs:
        raise SystemExit(f"defining VMs failed: {errs[:3]}")


def bench_start(d, payload, n):
    api = d.api
    define(api, [f"run{i:04d}" for i in range(n)], payload, "run")
    t0 = time.monotonic()
    r = api.post("/vms/actions/start", {"tag": "run"})
    assert r.status == 202, r
    for t in r.json["tasks"]:
        t = api.wait_task(t["id"], 1800)
        if t["state"] != "succeeded":
            raise SystemExit(f"a start failed: {t}")
    dt = time.monotonic() - t0
    print(f"start: {n} VMs started through the API in {dt:.2f} s = {n / dt:.1f} VMs/s")
    return dt


def bench_list(d, payload, n, requests):
    api = d.api
    have = api.get("/vms?limit=1").json["total"]
    define(api, [f"def{i:04d}" for i in range(n - have)], payload, "def")
    out = {}
    for label, path in (("page of 100", "/vms"), ("all (limit=1000)", "/vms?limit=1000")):
        lat = []
        for _ in range(requests):
            t0 = time.perf_counter()
            r = api.get(path)
            lat.append((time.perf_counter() - t0) * 1000)
            assert r.status == 200 and r.json["total"] == n, r
        out[label] = (pct(lat, 50), pct(lat, 99))
        print(f"GET /vms {label} with {n} VMs: p50 {out[label][0]:.2f} ms, "
              f"p99 {out[label][1]:.2f} ms ({requests} requests, goal p99 < 10 ms)")
    print(f"vireod RSS with {n} VMs: {d.rss_bytes() / (1 << 20):.1f} MiB")
    return out


def bench_reattach(d, n):
    api = d.api
    before = {v["name"]: v["pid"] for v in api.get("/vms?tag=run&limit=1000").json["items"]}
    assert len(before) == n and all(before.values()), before
    t0 = time.monotonic()
    d.kill9()
    d.start()
    while True:
        items = api.get("/vms?tag=run&limit=1000").json["items"]
        if all(v["state"] == "running" and v["pid"] == before[v["name"]] for v in items):
            break
        time.sleep(0.01)
    dt = time.monotonic() - t0
    print(f"re-attach: kill -9 of vireod to all {n} running VMs re-attached in {dt * 1000:.0f} ms")
    return dt


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--running", type=int, default=50)
    ap.add_argument("--defined", type=int, default=1000)
    ap.add_argument("--requests", type=int, default=300)
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    payload = os.path.join(build, "guest", "payloads", "hang.bin")
    d = Daemon(os.path.join(build, "src", "daemon", "vireod"), os.path.join(build, "vireo"))
    try:
        d.start()
        print(f"vireod up; host: {os.cpu_count()} CPUs")
        if a.running:
            bench_start(d, payload, a.running)
        bench_list(d, payload, a.defined, a.requests)
        if a.running:
            bench_reattach(d, a.running)
    finally:
        d.cleanup()


if __name__ == "__main__":
    main()
