#!/usr/bin/env python3
"""The vireod REST API without KVM: every endpoint and documented error, bad input of every
kind, tokens and roles, TLS on TCP, events, metrics. Every reply is checked against
api/openapi.yaml (apilib.Spec.check).

usage: api_test.py VIREOD [VIREO]"""

import json
import os
import socket
import sqlite3
import ssl
import stat
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from apilib import PREFIX, Client, Daemon, Spec, exchange, run_tests  # noqa: E402

PAYLOAD = "/nonexistent/vireo-api-test/hello.bin"


def vmdef(name, **kw):
    d = {"name": name, "boot": {"payload": PAYLOAD}, "memory_mib": 32}
    d.update(kw)
    return d


class Ctx:
    pass


def setup(vireod, vireo):
    c = Ctx()
    c.spec = Spec()
    c.d = Daemon(vireod, vireo)
    c.unix = Client(c.spec, unix=c.d.sock)
    c.tokens = {}
    for role in ("admin", "operator", "viewer"):
        r = c.unix.post("/tokens", {"name": f"t-{role}", "role": role})
        assert r.status == 201, r
        c.tokens[role] = r.json["secret"]
    c.https = {role: Client(c.spec, https=("127.0.0.1", c.d.port), token=tok, cafile=c.d.cert)
               for role, tok in c.tokens.items()}
    c.anon = Client(c.spec, https=("127.0.0.1", c.d.port), cafile=c.d.cert)
    return c


# ---- transport and auth ----------------------------------------------------------------------

def test_openapi_served(c):
    r = c.unix.get("/openapi.yaml")
    assert r.status == 200 and r.body.decode() == c.spec.text, "served spec differs from the file"


def test_unix_socket_mode(c):
    st = os.stat(c.d.sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)


def test_unix_peer_not_admin_is_refused(c):
    """A peer that is neither root, the daemon's uid nor in the socket's group gets 401 even
    when it can connect (the mode is the first gate, SO_PEERCRED the second)."""
    os.chmod(c.d.sock, 0o666)
    os.chmod(os.path.dirname(c.d.sock), 0o755)
    os.chmod(c.d.dir, 0o755)
    try:
        code = ("import socket,sys;s=socket.socket(socket.AF_UNIX);s.connect(sys.argv[1]);"
                "s.sendall(b'GET /api/v1/vms HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n');"
                "print(s.recv(100).split(b'\\r\\n')[0].decode())")
        out = subprocess.run(["/usr/bin/python3", "-c", code, c.d.sock], capture_output=True,
                             text=True, timeout=20, user=65534, group=65534)
        assert "401" in out.stdout, (out.stdout, out.stderr)
    finally:
        os.chmod(c.d.sock, 0o600)
        os.chmod(c.d.dir, 0o700)


def test_tcp_needs_a_token(c):
    for path in ("/vms", "/host", "/openapi.yaml", "/metrics", "/nosuchthing"):
        r = c.anon.get(path)
        assert r.status == 401 and r.code == "unauthenticated", (path, r)
    r = c.anon.raw("GET", "/metrics")
    assert r.status == 401, r
    # Every malformed or wrong token is the same 401.
    good = c.tokens["viewer"]
    tid = good.split("_")[1]
    for bad in ("", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer " + good[:-1],
                "Bearer " + good + "0", "Bearer " + good[:-1] + ("0" if good[-1] != "0" else "1"),
                f"Bearer vireo_{tid}_" + "g" * 64, f"Bearer vireo_000000000000_{'0' * 64}",
                "Bearer vireo_../../etc_" + "0" * 64):
        r = c.anon.get("/vms", headers={"Authorization": bad})
        assert r.status == 401 and r.code == "unauthenticated", (bad, r)


def test_tokens_on_tcp(c):
    for role in ("viewer", "operator", "admin"):
        r = c.https[role].get("/vms")
        assert r.status == 200, (role, r)


def test_tls_only_on_tcp(c):
    # Plain HTTP to the TLS port gets no HTTP reply.
    s = socket.create_connection(("127.0.0.1", c.d.port), timeout=5)
    s.sendall(b"GET /api/v1/vms HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        data = s.recv(100)
    except (ConnectionResetError, socket.timeout):
        data = b""
    s.close()
    assert not data.startswith(b"HTTP/"), data
    # The generated certificate verifies for 127.0.0.1 and the key is private.
    st = os.stat(os.path.join(c.d.state, "tls", "key.pem"))
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    ctx = ssl.create_default_context(cafile=c.d.cert)
    with socket.create_connection(("127.0.0.1", c.d.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3"), tls.version()
    # A client that does not trust the certificate refuses it.
    ctx = ssl.create_default_context()
    with socket.create_connection(("127.0.0.1", c.d.port), timeout=5) as raw:
        try:
            ctx.wrap_socket(raw, server_hostname="127.0.0.1")
            raise AssertionError("an untrusted self-signed certificate was accepted")
        except ssl.SSLCertVerificationError:
            pass


def test_tls_given_certificate_and_bad_options(c):
    """--tls-cert/--tls-key are served as given (nothing generated); half of the pair, a missing
    file or a malformed --listen stop vireod at start with a message."""
    import shutil
    import tempfile
    from apilib import free_port
    tmp = tempfile.mkdtemp(prefix="vireod-tls-")
    try:
        cert, key = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
        shutil.copy(c.d.cert, cert)
        shutil.copy(os.path.join(c.d.state, "tls", "key.pem"), key)
        d2 = Daemon(c.d.vireod, extra=["--tls-cert", cert, "--tls-key", key])
        try:
            assert not os.path.exists(os.path.join(d2.state, "tls")), "a certificate was generated"
            r = Client(c.spec, unix=d2.sock).post("/tokens", {"name": "t", "role": "viewer"})
            cl = Client(c.spec, https=("127.0.0.1", d2.port), token=r.json["secret"], cafile=cert)
            assert cl.get("/host").status == 200
        finally:
            d2.cleanup()
        for extra, msg in ((["--listen", f"127.0.0.1:{free_port()}", "--tls-cert", cert],
                            "tls-key"),
                           (["--listen", f"127.0.0.1:{free_port()}", "--tls-cert", cert,
                             "--tls-key", os.path.join(tmp, "missing.pem")], "missing.pem"),
                           (["--listen", "nonsense"], "listen")):
            args = [c.d.vireod, "--state-dir", os.path.join(tmp, "s"), "--socket",
                    os.path.join(tmp, "x.sock")] + extra
            p = subprocess.run(args, capture_output=True, text=True, timeout=20)
            assert p.returncode != 0 and msg in p.stderr, (extra, p.returncode, p.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_roles(c):
    v, o, a = c.https["viewer"], c.https["operator"], c.https["admin"]
    r = v.post("/vms", vmdef("role-vm"))
    assert r.status == 403 and r.code == "forbidden", r
    r = o.post("/vms", vmdef("role-vm"))
    assert r.status == 403 and r.code == "forbidden", r
    r = a.post("/vms", vmdef("role-vm"))
    assert r.status == 201, r
    vid = r.json["id"]
    for cl in (v, o):
        assert cl.patch(f"/vms/{vid}", {"description": "x"}).status == 403
        assert cl.delete(f"/vms/{vid}").status == 403
        assert cl.get("/tokens").status == 403
        assert cl.post("/tokens", {"name": "x", "role": "admin"}).status == 403
    r = v.post(f"/vms/{vid}/actions/pause")
    assert r.status == 403 and r.code == "forbidden", r
    r = v.get(f"/vms/{vid}/console")
    assert r.status == 403, r
    # The operator passes the role check and meets the state machine instead.
    r = o.post(f"/vms/{vid}/actions/pause")
    assert r.status == 409 and r.code == "invalid_state", r
    r = v.delete("/tasks/nosuchtask")
    assert r.status == 403, r
    assert a.delete(f"/vms/{vid}").status == 204


def test_role_matrix(c):
    """Every documented operation: 401 without a token on TCP, 403 for each role below its
    x-role, and the body limits (413, 415) on every operation that takes a body. The route
    table and the spec must agree on who may do what."""
    a = c.unix
    vm = a.post("/vms", vmdef("matrix")).json
    fill = {"id": vm["id"], "action": "pause"}
    tok = a.post("/tokens", {"name": "matrix", "role": "viewer"}).json
    task = a.post("/vms/matrix/actions/start")
    rank = {"none": 0, "viewer": 1, "operator": 2, "admin": 3}
    for tpl, ops in c.spec.doc["paths"].items():
        for method, op in ops.items():
            if method not in ("get", "post", "patch", "delete"):
                continue
            path = tpl
            for k, v in fill.items():
                path = path.replace("{" + k + "}", v)
            if tpl.startswith("/tasks/"):
                path = "/tasks/" + (task.json["id"] if task.status == 202 else "nosuch")
            if tpl.startswith("/tokens/"):
                path = "/tokens/" + tok["id"]
            full = PREFIX + path
            need = rank[op["x-role"]]
            r = c.anon.raw(method.upper(), full, b"{}" if method in ("post", "patch") else None)
            assert r.status == 401 and r.code == "unauthenticated", (method, tpl, r)
            for role in ("viewer", "operator"):
                if rank[role] < need:
                    r = c.https[role].raw(method.upper(), full,
                                          b"{}" if method in ("post", "patch") else None)
                    assert r.status == 403 and r.code == "forbidden", (role, method, tpl, r)
            if "requestBody" in op:
                admin = c.https["admin"]
                r = admin.raw(method.upper(), full, b"{}", headers={"Content-Type": "text/csv"})
                assert r.status == 415, (method, tpl, r)
                out = exchange(c.d.sock, f"{method.upper()} {full} HTTP/1.1\r\nHost: x\r\n"
                               "Content-Type: application/json\r\nConnection: close\r\n"
                               f"Content-Length: {(1 << 20) + 1}\r\n\r\n".encode())
                assert out.startswith(b"HTTP/1.1 413"), (method, tpl, out[:100])
                c.spec.check(method.upper(), full, *split_reply(out))
    if task.status == 202:
        a.wait_task(task.json["id"])
    a.delete(f"/tokens/{tok['id']}")
    a.delete("/vms/matrix")


def test_token_lifecycle(c):
    a = c.https["admin"]
    r = a.post("/tokens", {"name": "short-lived", "role": "viewer"})
    assert r.status == 201 and r.headers["Location"] == f"{PREFIX}/tokens/{r.json['id']}", r
    tok, tid = r.json["secret"], r.json["id"]
    cl = c.anon.with_token(tok)
    assert cl.get("/vms").status == 200
    lst = a.get("/tokens").json["items"]
    mine = [t for t in lst if t["id"] == tid]
    assert len(mine) == 1 and "secret" not in mine[0] and mine[0]["last_used_at"], mine
    assert all("secret" not in t and "hash" not in t for t in lst)
    # Stored hashed: the secret part appears nowhere in the database.
    db = sqlite3.connect(f"file:{os.path.join(c.d.state, 'vireod.db')}?mode=ro", uri=True)
    dump = "\n".join(db.iterdump())
    db.close()
    assert tok.split("_")[2] not in dump, "the token's secret is stored in clear"
    assert a.delete(f"/tokens/{tid}").status == 204
    r = cl.get("/vms")
    assert r.status == 401 and r.code == "unauthenticated", r
    r = a.delete(f"/tokens/{tid}")
    assert r.status == 409 and r.code == "invalid_state", r
    for bad in ("000000000000", "nosuch", "..%2f"):
        r = a.delete(f"/tokens/{bad}")
        assert r.status == 404 and r.code == "not_found", (bad, r)
    lst = a.get("/tokens").json["items"]
    assert [t for t in lst if t["id"] == tid][0]["revoked_at"]


def test_offline_token_command(c):
    """`vireod token create/revoke` on the database works beside the running daemon."""
    base = [c.d.vireod, "--state-dir", c.d.state, "token"]
    p = subprocess.run(base + ["create", "--name", "offline", "--role", "operator"],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p.stderr
    tok = p.stdout.strip()
    cl = c.anon.with_token(tok)
    assert cl.get("/vms").status == 200
    assert cl.get("/tokens").status == 403  # operator, not admin
    p = subprocess.run(base + ["revoke", tok.split("_")[1]], capture_output=True, text=True,
                       timeout=20)
    assert p.returncode == 0, p.stderr
    assert cl.get("/vms").status == 401
    for args, rc in ((["create", "--name", "x", "--role", "root"], 2),
                     (["create", "--name", "../x", "--role", "admin"], 2),
                     (["revoke", "000000000000"], 3), (["frobnicate"], 2)):
        p = subprocess.run(base + args, capture_output=True, text=True, timeout=20)
        assert p.returncode == rc and p.stderr, (args, p.returncode, p.stderr)


def test_token_bad_input(c):
    a = c.https["admin"]
    for body, code in (({"name": "x"}, "invalid_value"),
                       ({"name": "x", "role": "root"}, "invalid_value"),
                       ({"name": "x", "role": "admin", "expires": 1}, "unknown_field"),
                       ({"name": 5, "role": "admin"}, "invalid_value"),
                       ({"name": "../etc", "role": "admin"}, "invalid_value"),
                       ({"name": "a/b", "role": "admin"}, "invalid_value"),
                       ({"name": "", "role": "admin"}, "invalid_value"),
                       ({"name": "x" * 64, "role": "admin"}, "invalid_value")):
        r = a.post("/tokens", body)
        assert r.status == 400 and r.code == code, (body, r)


# ---- VMs -------------------------------------------------------------------------------------

def test_vm_crud(c):
    a = c.unix
    r = a.post("/vms", vmdef("crud-1", tags=["web", "prod"], description="first",
                             vcpus=2, disks=[{"path": "/nonexistent/d.qcow2", "format": "qcow2"}],
                             nics=[{"type": "user", "hostfwd": ["tcp:127.0.0.1:2222-:22"]}]))
    assert r.status == 201, r
    vm = r.json
    assert vm["state"] == "defined" and vm["generation"] >= 1 and vm["pid"] is None, vm
    assert r.headers["Location"] == f"{PREFIX}/vms/{vm['id']}"
    assert r.headers["ETag"] == f'"{vm["generation"]}"'
    r = a.post("/vms", vmdef("crud-1"))
    assert r.status == 409 and r.code == "name_taken", r
    for key in (vm["id"], "crud-1"):
        r = a.get(f"/vms/{key}")
        assert r.status == 200 and r.json["id"] == vm["id"], r
    for sub in ("", "/stats", "/history"):
        r = a.get(f"/vms/nosuchvm{sub}")
        assert r.status == 404 and r.code == "not_found", (sub, r)
    r = a.get(f"/vms/{vm['id']}/history")
    assert r.status == 200 and r.json["items"][-1]["to"] == "defined", r
    r = a.get(f"/vms/{vm['id']}/stats")
    assert r.status == 200 and r.json["state"] == "defined", r
    r = a.delete("/vms/crud-1")
    assert r.status == 204 and r.body == b"", r
    assert a.get(f"/vms/{vm['id']}").status == 404
    assert a.delete("/vms/crud-1").status == 404


def test_vm_list_filters_and_paging(c):
    a = c.unix
    ids = []
    for i in range(7):
        tags = ["pg"] + (["odd"] if i % 2 else [])
        r = a.post("/vms", vmdef(f"page-{i}", tags=tags))
        assert r.status == 201, r
        ids.append(r.json["id"])
    r = a.get("/vms?tag=pg&limit=3")
    assert r.status == 200 and r.json["total"] == 7 and len(r.json["items"]) == 3, r
    assert r.json["limit"] == 3 and r.json["offset"] == 0
    seen = []
    for off in (0, 3, 6):
        seen += [v["id"] for v in a.get(f"/vms?tag=pg&limit=3&offset={off}").json["items"]]
    assert seen == ids, "paging lost or repeated VMs"
    assert {v["name"] for v in a.get("/vms?tag=odd").json["items"]} == \
        {"page-1", "page-3", "page-5"}
    assert [v["name"] for v in a.get("/vms?name=page-[12]").json["items"]] == ["page-1", "page-2"]
    assert a.get("/vms?state=running&tag=pg").json["total"] == 0
    assert a.get("/vms?state=defined&tag=pg").json["total"] == 7
    for q in ("limit=0", "limit=1001", "limit=abc", "offset=-1", "state=exploded", "limit=1e3"):
        r = a.get("/vms?" + q)
        assert r.status == 400 and r.code == "invalid_value", (q, r)
    for vid in ids:
        assert a.delete(f"/vms/{vid}").status == 204


def test_vm_bad_definitions(c):
    a = c.unix
    cases = [
        ({"name": "x", "boot": {"payload": PAYLOAD}, "colour": "red"}, "unknown_field"),
        ({"name": "x", "boot": {"payload": PAYLOAD, "bios": "/x"}}, "unknown_field"),
        ({"name": "x", "boot": {"payload": PAYLOAD}, "devices": {"gpu": True}}, "unknown_field"),
        ({"name": "x", "boot": {"payload": PAYLOAD}, "id": "0" * 36}, "unknown_field"),
        ({"name": "x", "boot": {"payload": PAYLOAD}, "vcpus": "2"}, "invalid_value"),
        ({"name": "x", "boot": {"payload": PAYLOAD}, "vcpus": 0}, "invalid_value"),
        ({"name": "x", "boot": {"payload": PAYLOAD}, "vcpus": 65}, "invalid_value"),
        ({"name": "x", "boot": {"payload": PAYLOAD}, "vcpus": 1.5}, "invalid_value"),
        ({"name": "x", "boot": {"payload": PAYLOAD}, "memory_mib": 15}, "invalid_value"),
        ({"name": "x", "boot": {"payload": PAYLOAD}, "memory_mib": 2 ** 63}, "invalid_value"),
        ({"name": "x", "boot": {"payload": PAYLOAD}, "autostart": "yes"}, "invalid_value"),
        ({"name": "x", "boot": {"payload": PAYLOAD}, "restart_policy": "sometimes"},
         "invalid_value"),
        ({"name": "x", "boot": {"payload": PAYLOAD}, "tags": ["UPPER"]}, "invalid_value"),
        ({"name": "x", "boot": {"payload": PAYLOAD}, "tags": "web"}, "invalid_value"),
        ({"name": "x", "boot": {"payload": PAYLOAD}, "tags": [f"t{i}" for i in range(17)]},
         "invalid_value"),
        ({"name": "x", "boot": {"payload": PAYLOAD}, "description": "d" * 1025}, "invalid_value"),
        ({"name": "x", "boot": {"payload": "relative/path.bin"}}, "invalid_value"),
        ({"name": "x", "boot": {"payload": "/a,b.bin"}}, "invalid_value"),
        ({"name": "x", "boot": {"payload": "/a\nb"}}, "invalid_value"),
        ({"name": "x", "boot": {}}, "invalid_value"),
        ({"name": "x"}, "invalid_value"),
        ({"name": "x", "boot": {"payload": PAYLOAD},
          "disks": [{"path": "/d", "format": "vmdk"}]}, "invalid_value"),
        ({"name": "x", "boot": {"payload": PAYLOAD},
          "disks": [{"path": "/d,format=raw"}]}, "invalid_value"),
        ({"name": "x", "boot": {"payload": PAYLOAD},
          "disks": [{"path": "/d"}] * 17}, "invalid_value"),
        ({"name": "x", "boot": {"payload": PAYLOAD}, "nics": [{"type": "bridge"}]},
         "invalid_value"),
        ({"name": "x", "boot": {"payload": PAYLOAD}, "nics": [{"type": "user", "mac": "zz"}]},
         "invalid_value"),
        ({"name": "x", "boot": {"payload": PAYLOAD},
          "nics": [{"type": "user", "hostfwd": ["tcp:1:2-:3,guestfwd=x"]}]}, "invalid_value"),
    ]
    for name in ("../etc", "a/b", "a b", "-x", ".hidden", "x" * 64, "", "a\\b", "é", "a%2fb"):
        cases.append(({"name": name, "boot": {"payload": PAYLOAD}}, "invalid_value"))
    cases.append(({"name": 7, "boot": {"payload": PAYLOAD}}, "invalid_value"))
    for body, code in cases:
        r = a.post("/vms", body)
        assert r.status == 400 and r.code == code, (body, r)
    assert a.get("/vms").json["total"] == 0 or all(
        v["name"] != "x" for v in a.get("/vms").json["items"]), "a refused VM was created"


def test_malformed_bodies(c):
    a = c.unix
    cases = [
        (b"{", "application/json", 400, "invalid_json"),
        (b'{"name": "x",}', "application/json", 400, "invalid_json"),
        (b"{'name': 'x'}", "application/json", 400, "invalid_json"),
        (b'{"name": "x"} {"name": "y"}', "application/json", 400, "invalid_json"),
        (b'{"name": "x"} garbage', "application/json", 400, "invalid_json"),
        (b'[{"name": "x"}]', "application/json", 400, "invalid_json"),
        (b'"just a string"', "application/json", 400, "invalid_json"),
        (b"42", "application/json", 400, "invalid_json"),
        (b'{"name": "\xff\xfe"}', "application/json", 400, "invalid_json"),
        (b'{"name": "x\x00y"}', "application/json", 400, "invalid_json"),
        (b"[" * 100000 + b"]" * 100000, "application/json", 400, "invalid_json"),
        (b'{"a":' * 1000 + b"1" + b"}" * 1000, "application/json", 400, "invalid_json"),
        (b'{"name": "x"}', "text/plain", 415, "unsupported_media_type"),
        (b'{"name": "x"}', "application/jsonp", 415, "unsupported_media_type"),
        (b"name=x", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ]
    for body, ctype, status, code in cases:
        r = a.raw("POST", PREFIX + "/vms", body, headers={"Content-Type": ctype})
        assert r.status == status and r.code == code, (body[:40], r)
    r = a.raw("POST", PREFIX + "/vms", b"")
    assert r.status == 400 and r.code == "bad_request", r


def test_oversized_bodies(c):
    """Bodies over 1 MiB are refused from the headers, before any of the body is read."""
    hdr = (b"POST /api/v1/vms HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Connection: close\r\n")
    big = (1 << 20) + 1
    # Announced length over the cap, no body sent: the 413 comes without waiting for it.
    out = exchange(c.d.sock, hdr + b"Content-Length: %d\r\n\r\n" % big)
    assert out.startswith(b"HTTP/1.1 413"), out[:200]
    status, headers, body = split_reply(out)
    c.spec.check("POST", PREFIX + "/vms", status, headers, body)
    assert json.loads(body)["code"] == "body_too_large"
    # The same with Expect: 100-continue (curl's way): no 100, the 413 at once.
    out = exchange(c.d.sock, hdr + b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % big)
    assert out.startswith(b"HTTP/1.1 413"), out[:200]
    # Chunked (no length to check up front): refused once the cap is passed.
    chunk = b"x" * 65536
    data = hdr + b"Transfer-Encoding: chunked\r\n\r\n"
    data += (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 17 + b"0\r\n\r\n"
    out = exchange(c.d.sock, data)
    assert out.startswith(b"HTTP/1.1 413"), out[:200]
    # A bad Content-Length is a bad request.
    out = exchange(c.d.sock, hdr + b"Content-Length: 12abc\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400"), out[:200]
    # Exactly at the cap is read (and refused for its content, not its size).
    a = c.unix
    body = b'{"name": "cap", "boot": {"payload": "' + PAYLOAD.encode() + b'"}, "description": "'
    body += b"y" * ((1 << 20) - len(body) - 2) + b'"}'
    assert len(body) == 1 << 20
    r = a.raw("POST", PREFIX + "/vms", body, headers={"Content-Type": "application/json"})
    assert r.status == 400 and r.code == "invalid_value", r


def split_reply(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    if headers.get("Transfer-Encoding") == "chunked":
        out = b""
        while body:
            n, _, rest = body.partition(b"\r\n")
            n = int(n, 16)
            if n == 0:
                break
            out += rest[:n]
            body = rest[n + 2:]
        body = out
    return int(lines[0].split()[1]), headers, body


def test_patch(c):
    a = c.unix
    vm = a.post("/vms", vmdef("patch-1", tags=["a"])).json
    gen = vm["generation"]
    r = a.patch("/vms/patch-1", {"vcpus": 4, "description": "changed", "tags": None},
                headers={"Content-Type": "application/merge-patch+json"})
    assert r.status == 200, r
    assert r.json["vcpus"] == 4 and r.json["description"] == "changed" and r.json["tags"] == []
    assert r.json["generation"] == gen + 1 and r.headers["ETag"] == f'"{gen + 1}"'
    r = a.patch("/vms/patch-1", {"vcpus": 2}, headers={"If-Match": f'"{gen}"'})
    assert r.status == 412 and r.code == "generation_mismatch", r
    r = a.patch("/vms/patch-1", {"vcpus": 2}, headers={"If-Match": f'"{gen + 1}"'})
    assert r.status == 200 and r.json["vcpus"] == 2, r
    for bad in ("W/\"1\"", "abc", '""', "-1"):
        r = a.patch("/vms/patch-1", {"vcpus": 2}, headers={"If-Match": bad})
        assert r.status == 400, (bad, r)
    r = a.patch("/vms/patch-1", {"vcpus": 99})
    assert r.status == 400 and r.code == "invalid_value", r
    r = a.patch("/vms/patch-1", {"flavour": "big"})
    assert r.status == 400 and r.code == "unknown_field", r
    r = a.patch("/vms/patch-1", {"name": "../x"})
    assert r.status == 400 and r.code == "invalid_value", r
    r = a.patch("/vms/patch-1", {"boot": None})
    assert r.status == 400, r
    # Read-only members in a patch are ignored (a GET reply can be edited and sent back): they
    # never change the id, state, generation count or times.
    cur = a.get("/vms/patch-1").json
    for ro in ({"id": "0" * 36}, {"state": "running"}, {"generation": 99}, {"pid": 1},
               {"created_at": "2020-01-01T00:00:00.000Z"}):
        r = a.patch("/vms/patch-1", ro)
        assert r.status == 200, (ro, r)
        now = r.json
        assert (now["id"], now["state"], now["created_at"], now["pid"]) == \
            (cur["id"], cur["state"], cur["created_at"], cur["pid"]), (ro, now)
        assert now["generation"] == cur["generation"] + 1, (ro, now)
        cur = now
    cur["memory_mib"] = 64
    r = a.patch("/vms/patch-1", cur)
    assert r.status == 200 and r.json["memory_mib"] == 64 and r.json["id"] == cur["id"], r
    a.post("/vms", vmdef("patch-2"))
    r = a.patch("/vms/patch-1", {"name": "patch-2"})
    assert r.status == 409 and r.code == "name_taken", r
    r = a.patch("/vms/nosuch", {"vcpus": 1})
    assert r.status == 404, r
    r = a.raw("PATCH", PREFIX + "/vms/patch-1", b"")
    assert r.status == 400 and r.code == "bad_request", r
    assert a.delete("/vms/patch-1").status == 204
    assert a.delete("/vms/patch-2").status == 204


def test_actions_and_tasks(c):
    a = c.unix
    vm = a.post("/vms", vmdef("act-1", tags=["act"])).json
    for action in ("shutdown", "stop", "reboot", "reset", "pause", "resume", "snapshot",
                   "migrate"):
        body = {"uri": "tcp:127.0.0.1:1"} if action == "migrate" else None
        r = a.post(f"/vms/act-1/actions/{action}", body)
        assert r.status == 409 and r.code == "invalid_state", (action, r)
    for bad in ("explode", "START", "..", "start%00"):
        r = a.post(f"/vms/act-1/actions/{bad}")
        assert r.status == 404 and r.code == "not_found", (bad, r)
    r = a.post("/vms/nosuch/actions/start")
    assert r.status == 404, r
    r = a.raw("POST", PREFIX + "/vms/act-1/actions/start", b"{", 
              headers={"Content-Type": "application/json"})
    assert r.status == 400 and r.code == "invalid_json", r
    # start: without the payload file (and without KVM) it cannot run. Either refused at once
    # as unprocessable, or a task that fails saying so.
    r = a.post("/vms/act-1/actions/start")
    assert r.status in (202, 422), r
    if r.status == 202:
        assert r.headers["Location"] == f"{PREFIX}/tasks/{r.json['id']}", r
        t = a.wait_task(r.json["id"])
        assert t["state"] == "failed" and t["error"]["code"], t
        assert t["vm_id"] == vm["id"] and t["kind"].endswith("start"), t
        r = a.delete(f"/tasks/{t['id']}")
        assert r.status == 409 and r.code == "invalid_state", r
    else:
        assert r.code == "unprocessable", r
    lst = a.get(f"/tasks?vm=act-1").json
    assert all(t["vm_id"] == vm["id"] for t in lst["items"]), lst
    assert a.get(f"/tasks?vm={vm['id']}&state=failed&limit=5").status == 200
    for q in ("state=done", "limit=0", "offset=x"):
        r = a.get("/tasks?" + q)
        assert r.status == 400 and r.code == "invalid_value", (q, r)
    r = a.get("/tasks/nosuchtask")
    assert r.status == 404 and r.code == "not_found", r
    r = a.delete("/tasks/nosuchtask")
    assert r.status == 404, r
    a.delete("/vms/act-1")


def test_bulk_actions(c):
    a = c.unix
    ids = [a.post("/vms", vmdef(f"bulk-{i}", tags=["bulk"])).json["id"] for i in range(3)]
    r = a.post("/vms/actions/pause", {"tag": "bulk"})
    assert r.status == 202 and len(r.json["tasks"]) == 3, r
    for entry in r.json["tasks"]:
        # Defined VMs cannot pause: each entry says so (or is a task that will fail).
        assert entry["vm_id"] in ids, entry
    r = a.post("/vms/actions/pause", {"ids": ids[:2]})
    assert r.status == 202 and len(r.json["tasks"]) == 2, r
    r = a.post("/vms/actions/pause", {"ids": ["bulk-0", "nosuch"]})
    assert r.status in (202, 404), r
    for body, code in (({"tags": "bulk"}, "unknown_field"), ({"ids": "bulk-0"}, "invalid_value"),
                       ({"tag": 5}, "invalid_value")):
        r = a.post("/vms/actions/pause", body)
        assert r.status == 400 and r.code == code, (body, r)
    r = a.post("/vms/actions/pause")
    assert r.status == 400, r
    r = a.post("/vms/actions/fly", {"tag": "bulk"})
    assert r.status == 404 and r.code == "not_found", r
    r = c.https["viewer"].post("/vms/actions/pause", {"tag": "bulk"})
    assert r.status == 403, r
    for vid in ids:
        a.delete(f"/vms/{vid}")


def test_console_needs_websocket_and_running_vm(c):
    a = c.unix
    a.post("/vms", vmdef("cons-1"))
    r = a.get("/vms/cons-1/console")
    assert r.status == 400 and r.code == "bad_request", r
    ws = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
          "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    r = a.get("/vms/cons-1/console", headers=ws)
    assert r.status == 409 and r.code == "invalid_state", r
    r = a.get("/vms/cons-1/console", headers=dict(ws, **{"Sec-WebSocket-Version": "8"}))
    assert r.status == 400, r
    r = a.get("/vms/nosuch/console", headers=ws)
    assert r.status == 404, r
    a.delete("/vms/cons-1")


def test_routing_errors(c):
    a = c.unix
    r = a.raw("PUT", PREFIX + "/vms", b"{}", headers={"Content-Type": "application/json"})
    assert r.status == 405 and r.code == "method_not_allowed", r
    assert set(r.headers["Allow"].split(", ")) == {"GET", "POST"}, r.headers
    r = a.raw("DELETE", PREFIX + "/host")
    assert r.status == 405 and r.headers["Allow"] == "GET", r
    for path in ("/api/v2/vms", "/api/v1", "/api/v1/", "/api/v1/vms/a/b/c/d", "/", "/etc/passwd",
                 "/api/v1/../v1/vms", "/api/v1/nosuch"):
        r = a.raw("GET", path)
        assert r.status == 404 and r.code == "not_found", (path, r)


def test_host(c):
    r = c.https["viewer"].get("/host")
    assert r.status == 200, r
    h = r.json
    assert h["cpus"] == os.cpu_count(), h
    assert h["memory_bytes"] > h["memory_available_bytes"] > 0, h
    kinds = {m: k for m, k in (("kvm_amd", "kvm-amd"), ("kvm_intel", "kvm-intel"),
                                ("kvm_pvm", "kvm-pvm"))}
    expect = "none"
    if os.path.exists("/dev/kvm"):
        for m, k in kinds.items():
            if os.path.exists(f"/sys/module/{m}"):
                expect = k
                break
    assert h["kvm"]["kind"] == expect and h["kvm"]["device"] == os.path.exists("/dev/kvm"), h


def test_events(c):
    a = c.unix
    got, ready = [], threading.Event()

    def listen(types=None, last=None, out=got, n=3):
        conn = a.conn(timeout=20)
        path = PREFIX + "/events" + (f"?types={types}" if types else "")
        conn.request("GET", path, headers={"Last-Event-ID": str(last)} if last else {})
        resp = conn.getresponse()
        c.spec.check("GET", path, resp.status, dict(resp.getheaders()), None)
        assert resp.getheader("Content-Type").startswith("text/event-stream")
        ev = {}
        while len(out) < n:
            line = resp.fp.readline().decode()
            if line.startswith(": subscribed"):
                ready.set()
            elif line.startswith("id: "):
                ev["id"] = int(line[4:])
            elif line.startswith("event: "):
                ev["event"] = line[7:].strip()
            elif line.startswith("data: "):
                ev["data"] = json.loads(line[6:])
            elif line == "\n" and ev:
                out.append(ev)
                ev = {}
        conn.close()

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    assert ready.wait(10), "no subscription comment"
    vm = a.post("/vms", vmdef("ev-1")).json
    a.patch("/vms/ev-1", {"description": "e"})
    a.delete("/vms/ev-1")
    t.join(20)
    assert [e["event"] for e in got] == ["vm.created", "vm.updated", "vm.deleted"], got
    assert all(e["data"]["id"] == vm["id"] for e in got), got
    assert got[0]["id"] < got[1]["id"] < got[2]["id"]
    events = c.spec.doc["components"]["schemas"]["Events"]["properties"]
    for e in got:
        errs = list(c.spec.validator(events[e["event"]]).iter_errors(e["data"]))
        assert not errs, (e, errs[0].message)
    # Resuming after the first event replays the other two.
    again = []
    ready.clear()
    listen(last=got[0]["id"], out=again, n=2)
    assert [e["id"] for e in again] == [got[1]["id"], got[2]["id"]], again
    # A filter: task events only; a VM event must not show up before the task's.
    only = []
    ready.clear()
    t = threading.Thread(target=listen, kwargs={"types": "task", "out": only, "n": 1},
                         daemon=True)
    t.start()
    assert ready.wait(10)
    a.post("/vms", vmdef("ev-2"))
    a.post("/vms/ev-2/actions/start")
    t.join(20)
    assert only and only[0]["event"].startswith("task."), only
    a.wait_task(a.get("/tasks?vm=ev-2").json["items"][0]["id"])
    a.delete("/vms/ev-2")
    for q in ("types=disk", "types=vm,", "after=-1", "after=x"):
        r = a.get("/events?" + q)
        assert r.status == 400 and r.code == "invalid_value", (q, r)


def parse_metrics(text):
    fams, samples = {}, []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            fams[name] = typ
        elif line and not line.startswith("#"):
            head, value = line.rsplit(" ", 1)
            name = head.split("{", 1)[0]
            labels = {}
            if "{" in head:
                for part in head[head.index("{") + 1:-1].split('",'):
                    k, v = part.split('="', 1)
                    labels[k] = v.rstrip('"')
            samples.append((name, labels, float(value)))
    return fams, samples


def test_metrics(c):
    a = c.unix
    vm = a.post("/vms", vmdef("met-1")).json
    for client, path in ((c.https["viewer"], PREFIX + "/metrics"), (a, "/metrics")):
        r = client.raw("GET", path)
        assert r.status == 200, r
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers
        fams, samples = parse_metrics(r.body.decode())
        for name, typ in fams.items():
            assert (typ == "counter") == name.endswith("_total"), (name, typ)
        names = {s[0] for s in samples}
        for must in ("vireo_vm_info", "vireo_vm_state", "vireo_host_vms",
                     "vireo_host_memory_committed_bytes", "vireo_host_memory_available_bytes",
                     "vireod_info", "vireod_http_requests_total"):
            assert must in names, must
        assert all(n in fams for n in names), names - set(fams)
        st = [s for s in samples if s[0] == "vireo_vm_state" and s[1]["id"] == vm["id"]]
        assert len(st) == 8 and sum(s[2] for s in st) == 1, st
        assert [s[1]["state"] for s in st if s[2] == 1] == ["defined"], st
        info = [s for s in samples if s[0] == "vireo_vm_info" and s[1]["id"] == vm["id"]]
        assert info and info[0][1]["name"] == "met-1" and info[0][2] == 1
        total = sum(s[2] for s in samples if s[0] == "vireo_host_vms")
        assert total == a.get("/vms").json["total"], total
        ok = [s for s in samples if s[0] == "vireod_http_requests_total"
              and s[1]["code"] == "2xx"]
        assert ok and ok[0][2] > 0
    a.delete("/vms/met-1")


def test_audit(c):
    a = c.https["admin"]
    a.post("/vms", vmdef("audit-1"))
    a.delete("/vms/audit-1")
    c.https["viewer"].delete("/vms/audit-1")
    db = sqlite3.connect(f"file:{os.path.join(c.d.state, 'vireod.db')}?mode=ro", uri=True)
    rows = db.execute("SELECT principal, method, path, status, remote FROM audit "
                      "ORDER BY seq").fetchall()
    db.close()
    tid = c.tokens["admin"].split("_")[1]
    vid = c.tokens["viewer"].split("_")[1]
    assert any(r[0] == f"token:{tid}" and r[1] == "POST" and r[2] == PREFIX + "/vms"
               and r[3] == 201 and r[4] == "127.0.0.1" for r in rows), rows[-5:]
    assert any(r[0] == f"token:{vid}" and r[1] == "DELETE" and r[3] == 403 for r in rows), rows
    assert not any(r[1] == "GET" for r in rows), "reads are audited"
    assert any(r[0] == "uid:0" and r[4] == "unix" for r in rows), rows[:5]


def test_concurrent_requests(c):
    """Many clients at once: each gets its own complete, valid reply."""
    errors = []

    def worker(i):
        try:
            cl = c.https["admin"] if i % 2 else c.unix
            r = cl.post("/vms", vmdef(f"conc-{i}"))
            assert r.status == 201, r
            assert cl.get(f"/vms/conc-{i}").status == 200
            assert cl.delete(f"/vms/conc-{i}").status == 204
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]


def test_sigterm_stops_cleanly(c):
    """Last: a held event stream does not keep the daemon from stopping."""
    conn = c.unix.conn(timeout=30)
    conn.request("GET", PREFIX + "/events")
    resp = conn.getresponse()
    assert resp.status == 200
    t0 = time.time()
    c.d.stop()
    assert c.d.proc.returncode == 0, (c.d.proc.returncode, c.d.logtext()[-2000:])
    assert time.time() - t0 < 10, "vireod took too long to stop"
    assert not os.path.exists(c.d.sock), "the socket was left behind"
    conn.close()


TESTS = [test_openapi_served, test_unix_socket_mode, test_unix_peer_not_admin_is_refused,
         test_tcp_needs_a_token, test_tokens_on_tcp, test_tls_only_on_tcp,
         test_tls_given_certificate_and_bad_options, test_roles, test_role_matrix,
         test_token_lifecycle, test_offline_token_command, test_token_bad_input, test_vm_crud,
         test_vm_list_filters_and_paging, test_vm_bad_definitions, test_malformed_bodies,
         test_oversized_bodies, test_patch, test_actions_and_tasks, test_bulk_actions,
         test_console_needs_websocket_and_running_vm, test_routing_errors, test_host,
         test_events, test_metrics, test_audit, test_concurrent_requests,
         test_sigterm_stops_cleanly]


def main():
    vireod = sys.argv[1]
    vireo = sys.argv[2] if len(sys.argv) > 2 else None
    c = setup(vireod, vireo)
    try:
        status = run_tests(TESTS, c)
        seen = len(c.spec.seen)
        print(f"{seen} documented (path, method, status) combinations exercised")
        missing = [(tpl, m.upper(), int(st)) for tpl, ops in c.spec.doc["paths"].items()
                   for m, op in ops.items() if m in ("get", "post", "patch", "delete")
                   for st in op["responses"] if (tpl, m.upper(), int(st)) not in c.spec.seen]
        print("not exercised here:", ", ".join(f"{m} {t} {st}" for t, m, st in missing))
    finally:
        c.d.cleanup() if status == 0 else c.d.stop()
        if status:
            print("vireod log:\n" + c.d.logtext()[-6000:])
    return status


if __name__ == "__main__":
    sys.exit(main())
