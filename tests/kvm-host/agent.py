#!/usr/bin/env python3
"""Command agent of the nested KVM test host (L1).

Runs inside L1 (started by stage2.sh) and serves tests/kvm-host/host.py on TCP port 7000, which
QEMU's user-mode network forwards from 127.0.0.1 on the host. One connection runs one command:

  client -> agent: one JSON line {"token", "op": "exec"|"ping"|"poweroff", "argv", "cwd", "env"}
  agent -> client: frames of 1 type byte + 4-byte big-endian length + payload:
                   b"o" stdout bytes, b"e" stderr bytes, b"x" JSON {"rc": N} (last frame),
                   b"k" (empty) every 10 s while the command runs, so the host can tell a
                   quiet command from a wedged L1

The token (a random secret the host wrote into the run directory, readable only by its owner)
keeps other local users of the host from running commands in L1. A command runs in a session of
its own; when the client goes away (a killed test, a timeout) its whole process group is killed.
"""
import argparse
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time


def send(conn, lock, kind, data):
    with lock:
        conn.sendall(kind + struct.pack(">I", len(data)) + data)


def pump(src, conn, lock, kind):
    try:
        while True:
            data = os.read(src.fileno(), 65536)
            if not data:
                break
            send(conn, lock, kind, data)
    except OSError:
        pass


def kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass


def run(conn, req):
    lock = threading.Lock()
    env = req.get("env") or {}
    try:
        proc = subprocess.Popen(req["argv"], cwd=req.get("cwd") or "/", env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
    except (OSError, ValueError) as e:
        send(conn, lock, b"e", f"kvm-host agent: cannot run {req['argv'][:1]}: {e}\n".encode())
        send(conn, lock, b"x", json.dumps({"rc": 127}).encode())
        return
    pumps = [threading.Thread(target=pump, args=(proc.stdout, conn, lock, k), daemon=True)
             for k in (b"o",)] + [threading.Thread(target=pump, args=(proc.stderr, conn, lock, b"e"),
                                                   daemon=True)]
    for t in pumps:
        t.start()

    def watch():
        # The client sends nothing more; EOF or an error means it is gone.
        try:
            while conn.recv(1):
                pass
        except OSError:
            pass
        if proc.poll() is None:
            kill_group(proc)

    threading.Thread(target=watch, daemon=True).start()

    def keepalive():
        while proc.poll() is None:
            try:
                send(conn, lock, b"k", b"")
            except OSError:
                return
            time.sleep(10)

    threading.Thread(target=keepalive, daemon=True).start()
    rc = proc.wait()
    for t in pumps:
        t.join()
    # Leftover children of a finished command (a VMM left running) go with it.
    kill_group(proc)
    if rc < 0:
        rc = 128 - rc
    try:
        send(conn, lock, b"x", json.dumps({"rc": rc}).encode())
    except OSError:
        pass


def serve_one(conn, token, stop):
    with conn:
        f = conn.makefile("rb")
        try:
            req = json.loads(f.readline(1 << 20))
        except (ValueError, OSError):
            return
        if not isinstance(req, dict) or req.get("token") != token:
            return
        op = req.get("op", "exec")
        if op == "ping":
            send(conn, threading.Lock(), b"x", json.dumps({"rc": 0}).encode())
        elif op == "poweroff":
            send(conn, threading.Lock(), b"x", json.dumps({"rc": 0}).encode())
            stop.set()
        elif op == "exec" and isinstance(req.get("argv"), list) and req["argv"]:
            run(conn, req)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=7000)
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--ready")
    a = ap.parse_args()
    token = open(a.token_file).read().strip()
    srv = socket.create_server(("0.0.0.0", a.port), backlog=16)
    srv.settimeout(0.5)
    stop = threading.Event()
    if a.ready:
        with open(a.ready, "w") as f:
            f.write("ready\n")
    print("kvm-host agent: serving", flush=True)
    while not stop.is_set():
        try:
            conn, _ = srv.accept()
        except socket.timeout:
            continue
        conn.settimeout(None)
        threading.Thread(target=serve_one, args=(conn, token, stop), daemon=True).start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
