#!/usr/bin/env python3
"""The console websocket, stats and metrics of a real VM (KVM; the counter payload prints "tick N" ten times a
second): several viewers at once see the same output, a new viewer first gets what was written
before it came (the last 64 KiB), input frames are accepted, over the unix socket and over TLS
with a token; a viewer token is refused; the viewers are told when the VM stops; a stopped VM
has no console (409). Every HTTP reply is checked against api/openapi.yaml.

usage: console_test.py VIREOD VIREO PAYLOAD_DIR"""

import os
import re
import socket
import ssl
import sys
import time

import websocket

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "api"))
from apilib import PREFIX, Client, Daemon, Spec, run_tests  # noqa: E402

TICK = re.compile(rb"tick ([0-9A-Fa-f]{4})")


class Ctx:
    pass


def ws_unix(c, name):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(20)
    s.connect(c.d.sock)
    return websocket.create_connection(f"ws://localhost{PREFIX}/vms/{name}/console", socket=s,
                                       timeout=20)


def ws_tls(c, name, token):
    return websocket.create_connection(
        f"wss://127.0.0.1:{c.d.port}{PREFIX}/vms/{name}/console", timeout=20,
        header=[f"Authorization: Bearer {token}"],
        sslopt={"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": c.d.cert})


def read_until(ws, pred, timeout=20):
    """Reads binary frames until pred(all bytes so far) holds; returns the bytes."""
    data = b""
    deadline = time.time() + timeout
    while not pred(data):
        if time.time() > deadline:
            raise AssertionError(f"console output not as expected in {timeout} s: {data[-300:]!r}")
        op, frame = ws.recv_data(control_frame=False)
        assert op == websocket.ABNF.OPCODE_BINARY, op
        data += frame
    return data


def ticks(data):
    return [int(m, 16) for m in TICK.findall(data)]


def test_two_viewers_and_replay(c):
    time.sleep(1.5)  # some output in the ring before anyone watches
    a = ws_unix(c, "cons")
    first = read_until(a, lambda d: len(ticks(d)) >= 3)
    # The replay holds the ticks written in the 1.5 s before the viewer came.
    assert ticks(first)[0] <= max(ticks(first)) - 3, first
    time.sleep(0.5)
    seen_a = max(ticks(read_until(a, lambda d: len(ticks(d)) >= 3)))
    b = ws_tls(c, "cons", c.tokens["operator"])
    seen_b = read_until(b, lambda d: len(ticks(d)) >= 3)
    # The second viewer, too, starts with output from before it came.
    assert ticks(seen_b)[0] < seen_a, (ticks(seen_b)[:5], seen_a)
    # Both now see the same live ticks.
    last = max(ticks(seen_b))
    more_a = read_until(a, lambda d: max(ticks(d) or [0]) >= last + 5)
    more_b = read_until(b, lambda d: max(ticks(d) or [0]) >= last + 5)
    common = set(ticks(more_a)) & set(ticks(more_b))
    assert {last + 1, last + 2, last + 3} <= common | set(ticks(first)), (more_a, more_b)
    # Input is taken (the payload ignores it) and does not disturb anyone.
    a.send("hello\r")
    a.send_binary(b"\x03")
    a.ping(b"p")
    read_until(a, lambda d: len(ticks(d)) >= 2)
    # One viewer leaving does not stop the other.
    a.close()
    read_until(b, lambda d: len(ticks(d)) >= 5)
    c.viewer_b = b


def test_viewer_token_refused(c):
    try:
        ws_tls(c, "cons", c.tokens["viewer"])
        raise AssertionError("a viewer token opened the console")
    except websocket.WebSocketBadStatusException as e:
        assert e.status_code == 403, e


def test_stats_and_metrics_of_a_running_vm(c):
    vm = c.unix.get("/vms/cons").json
    assert vm["state"] == "running" and vm["pid"], vm
    time.sleep(0.5)
    st = c.unix.get("/vms/cons/stats").json  # checked against the spec by the client
    assert st["state"] == "running" and st["cpu_seconds"] > 0 and st["rss_bytes"] > 1 << 20, st
    assert st["net"] and st["net"][0]["nic"] in (0, "0"), st
    assert st["balloon"] is not None, st
    r = c.unix.raw("GET", "/metrics")
    samples = {}
    for line in r.body.decode().splitlines():
        if line and not line.startswith("#"):
            head, value = line.rsplit(" ", 1)
            samples[head] = float(value)
    lab = f'id="{vm["id"]}",name="cons"'
    assert samples[f"vireo_vm_cpu_seconds_total{{{lab}}}"] > 0, samples
    assert samples[f"vireo_vm_memory_rss_bytes{{{lab}}}"] > 1 << 20
    assert samples[f'vireo_vm_state{{{lab},state="running"}}'] == 1
    assert samples[f'vireo_vm_state{{{lab},state="stopped"}}'] == 0
    assert f'vireo_vm_net_rx_packets_total{{{lab},nic="0"}}' in samples, \
        [k for k in samples if "net" in k]
    assert f"vireo_vm_balloon_bytes{{{lab}}}" in samples
    assert samples['vireo_host_vms{state="running"}'] == 1
    assert samples["vireo_host_memory_committed_bytes"] >= 32 << 20


def test_running_vm_conflicts_and_cancel(c):
    a = c.unix
    for r in (a.delete("/vms/cons"), a.post("/vms/cons/actions/start"),
              a.patch("/vms/cons", {"vcpus": 2})):
        assert r.status == 409 and r.code == "invalid_state", r
    r = a.patch("/vms/cons", {"description": "live change"})
    assert r.status == 200 and r.json["description"] == "live change", r
    # Two actions back to back: the second waits in the VM's queue and can be cancelled there.
    p1 = a.post("/vms/cons/actions/pause")
    p2 = a.post("/vms/cons/actions/resume")
    assert p1.status == 202 and p2.status == 202, (p1, p2)
    r = a.delete(f"/tasks/{p2.json['id']}")
    assert r.status in (202, 409), r
    assert a.wait_task(p1.json["id"])["state"] == "succeeded"
    t2 = a.wait_task(p2.json["id"])
    if r.status == 202:
        assert t2["state"] in ("cancelled", "succeeded"), t2
    if a.get("/vms/cons").json["state"] == "paused":
        assert a.wait_task(a.post("/vms/cons/actions/resume").json["id"])["state"] == \
            "succeeded"
    assert a.get("/vms/cons").json["state"] == "running"
    assert c.spec.seen >= {("/vms/{id}", "DELETE", 409), ("/vms/{id}", "PATCH", 409)}


def test_stop_ends_viewers(c):
    b = c.viewer_b
    r = c.unix.post("/vms/cons/actions/stop")
    assert r.status == 202, r
    t = c.unix.wait_task(r.json["id"])
    assert t["state"] == "succeeded", t
    deadline = time.time() + 20
    closed = False
    while time.time() < deadline and not closed:
        try:
            op, _ = b.recv_data(control_frame=True)
            closed = op == websocket.ABNF.OPCODE_CLOSE
        except websocket.WebSocketConnectionClosedException:
            closed = True
    assert closed, "the viewer was not told the console ended"
    ws = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
          "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    r = c.unix.get("/vms/cons/console", headers=ws)
    assert r.status == 409 and r.code == "invalid_state", r


def main():
    vireod, vireo, payloads = sys.argv[1:4]
    c = Ctx()
    c.spec = Spec()
    c.d = Daemon(vireod, vireo)
    c.unix = Client(c.spec, unix=c.d.sock)
    status = 1
    try:
        c.tokens = {}
        for role in ("operator", "viewer"):
            c.tokens[role] = c.unix.post("/tokens", {"name": role, "role": role}).json["secret"]
        r = c.unix.post("/vms", {"name": "cons", "memory_mib": 32,
                                 "boot": {"payload": os.path.join(payloads, "counter.bin")},
                                 "nics": [{"type": "user"}], "devices": {"balloon": True}})
        assert r.status == 201, r
        r = c.unix.post("/vms/cons/actions/start")
        assert r.status == 202, r
        t = c.unix.wait_task(r.json["id"])
        assert t["state"] == "succeeded", t
        status = run_tests([test_two_viewers_and_replay, test_viewer_token_refused,
                            test_stats_and_metrics_of_a_running_vm,
                            test_running_vm_conflicts_and_cancel, test_stop_ends_viewers], c)
    finally:
        # VMMs outlive vireod by design: stop the VM first (it may be stopped already).
        try:
            c.unix.post("/vms/cons/actions/stop", check=False)
            time.sleep(1)
        except OSError:
            pass
        c.d.stop()
        if status:
            print("vireod log:\n" + c.d.logtext()[-6000:])
        else:
            c.d.cleanup()
    return status


if __name__ == "__main__":
    sys.exit(main())
