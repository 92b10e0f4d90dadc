"""Helpers for the vireod API tests: start a daemon, talk HTTP over its unix socket or HTTPS,
and check every reply against api/openapi.yaml (status documented for the operation, body valid
against the documented schema, documented headers well-formed)."""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

import jsonschema
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPEC_PATH = os.path.join(ROOT, "api", "openapi.yaml")
PREFIX = "/api/v1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Spec:
    """The OpenAPI document and a validator for replies."""

    def __init__(self, path=SPEC_PATH):
        with open(path, encoding="utf-8") as f:
            self.text = f.read()
        self.doc = yaml.safe_load(self.text)
        self.seen = set()  # (template, method, status) checked, for the coverage report
        self.templates = []
        for tpl in self.doc["paths"]:
            rx = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(tpl)) + "$"
            # Fixed segments win over {placeholders}, as in the server's route table.
            self.templates.append((tpl.count("{"), tpl, re.compile(rx)))
        self.templates.sort()

    def resolve(self, node):
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            assert ref.startswith("#/"), ref
            node = self.doc
            for part in ref[2:].split("/"):
                node = node[part]
        return node

    def template_of(self, path):
        path = path.split("?", 1)[0]
        if path == "/metrics":
            return "/metrics"
        if not path.startswith(PREFIX + "/"):
            return None
        rel = path[len(PREFIX):]
        for _, tpl, rx in self.templates:
            if rx.match(rel):
                return tpl
        return None

    def schema(self, name):
        return self.validator({"$ref": "#/components/schemas/" + name})

    def validator(self, schema):
        full = dict(schema)
        full["components"] = self.doc["components"]
        return jsonschema.Draft202012Validator(full)

    def check(self, method, path, status, headers, body):
        """Raises AssertionError when the reply is not what the spec documents."""
        tpl = self.template_of(path)
        if status == 405:
            # A method the path does not have cannot be documented on it; the body is still
            # the one error shape and Allow lists the methods.
            assert headers.get("Allow"), "405 without Allow"
            self._check_json(self.resolve({"$ref": "#/components/responses/MethodNotAllowed"}),
                             status, headers, body, path)
            return
        if tpl is None:
            # Authentication comes before routing: on TCP an unknown path without a token is
            # 401, not 404 (nothing is said about which paths exist).
            assert status in (401, 404), f"{method} {path}: {status} for an undocumented path"
            name = "NotFound" if status == 404 else "Unauthenticated"
            self._check_json(self.resolve({"$ref": "#/components/responses/" + name}), status,
                             headers, body, path)
            return
        op = self.doc["paths"][tpl].get(method.lower())
        assert op is not None, f"{method} {tpl} is not documented"
        responses = op["responses"]
        assert str(status) in responses, \
            f"{method} {tpl}: status {status} not documented ({sorted(responses)}); body {body!r}"
        self.seen.add((tpl, method, status))
        self._check_json(self.resolve(responses[str(status)]), status, headers, body, path)

    def _check_json(self, resp, status, headers, body, path):
        for name, h in resp.get("headers", {}).items():
            h = self.resolve(h)
            val = headers.get(name)
            assert val is not None, f"{path}: {status} without header {name}"
            jsonschema.validate(val, h["schema"])
        content = resp.get("content")
        if not content:
            assert body in (b"", None), f"{path}: {status} should have no body, got {body!r}"
            return
        ctype = (headers.get("Content-Type") or "").split(";")[0].strip()
        assert ctype in content, f"{path}: Content-Type {ctype!r}, documented {list(content)}"
        if ctype != "application/json":
            return
        obj = json.loads(body)
        errors = sorted(self.validator(content[ctype]["schema"]).iter_errors(obj),
                        key=lambda e: list(e.path))
        assert not errors, f"{path} {status}: reply does not match the spec: " + "; ".join(
            f"{list(e.path)}: {e.message}" for e in errors[:5]) + f"\n{json.dumps(obj)[:2000]}"


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def json(self):
        return json.loads(self.body) if self.body else None

    @property
    def code(self):
        j = self.json
        return j.get("code") if isinstance(j, dict) else None

    def __repr__(self):
        return f"<{self.status} {self.body[:400]!r}>"


class Client:
    """One endpoint (unix socket or https) with an optional token; every reply is checked."""

    def __init__(self, spec, unix=None, https=None, token=None, cafile=None):
        self.spec, self.unix, self.https, self.token, self.cafile = spec, unix, https, token, cafile

    def with_token(self, token):
        return Client(self.spec, self.unix, self.https, token, self.cafile)

    def conn(self, timeout=30):
        if self.unix:
            return UnixHTTPConnection(self.unix, timeout)
        ctx = ssl.create_default_context(cafile=self.cafile)
        return http.client.HTTPSConnection(self.https[0], self.https[1], context=ctx,
                                           timeout=timeout)

    def raw(self, method, path, body=None, headers=None, check=True):
        hdrs = dict(headers or {})
        if self.token and "Authorization" not in hdrs:
            hdrs["Authorization"] = "Bearer " + self.token
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
            hdrs.setdefault("Content-Type", "application/json")
        c = self.conn()
        try:
            c.request(method, path, body=body, headers=hdrs)
            r = c.getresponse()
            data = r.read()
            rep = Reply(r.status, dict(r.getheaders()), data)
        finally:
            c.close()
        if check:
            self.spec.check(method, path, rep.status, rep.headers, rep.body)
        return rep

    def get(self, path, **kw):
        return self.raw("GET", PREFIX + path, **kw)

    def post(self, path, body=None, **kw):
        return self.raw("POST", PREFIX + path, body, **kw)

    def patch(self, path, body=None, **kw):
        return self.raw("PATCH", PREFIX + path, body, **kw)

    def delete(self, path, **kw):
        return self.raw("DELETE", PREFIX + path, **kw)

    def wait_task(self, task_id, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            t = self.get(f"/tasks/{task_id}").json
            if t["state"] in ("succeeded", "failed", "cancelled"):
                return t
            time.sleep(0.1)
        raise AssertionError(f"task {task_id} did not finish in {timeout} s")


class Daemon:
    """A vireod with its own state directory, unix socket and (optionally) TLS listener."""

    def __init__(self, vireod, vireo=None, listen=True, extra=()):
        self.vireod = vireod
        self.dir = tempfile.mkdtemp(prefix="vireod-api-")
        self.state = os.path.join(self.dir, "state")
        self.sock = os.path.join(self.dir, "run", "vireod.sock")
        self.port = free_port() if listen else None
        args = [vireod, "--state-dir", self.state, "--socket", self.sock]
        if vireo:
            args += ["--vireo", vireo]
        if listen:
            args += ["--listen", f"127.0.0.1:{self.port}"]
        args += list(extra)
        self.log_path = os.path.join(self.dir, "vireod.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while not os.path.exists(self.sock) or (listen and not self._tcp_up()):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("vireod did not come up:\n" + self.logtext())
            time.sleep(0.05)
        self.cert = os.path.join(self.state, "tls", "cert.pem")

    def _tcp_up(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def logtext(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def exchange(unix_path, data, timeout=10):
    """Sends raw bytes on a new unix socket connection (ignoring a reset once the server has
    answered) and returns everything the server sends until it closes."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(unix_path)
    try:
        s.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass
    out = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except (ConnectionResetError, socket.timeout):
        pass
    s.close()
    return out


def run_tests(tests, *args):
    """Runs test functions in order; prints one line each; returns the exit status."""
    failed = 0
    for t in tests:
        t0 = time.time()
        try:
            t(*args)
            print(f"ok   {t.__name__} ({time.time() - t0:.2f} s)", flush=True)
        except Exception as e:  # noqa: BLE001 - report every failure, go on with the rest
            failed += 1
            import traceback
            print(f"FAIL {t.__name__}: {e}", flush=True)
            traceback.print_exc()
    print(f"{len(tests) - failed}/{len(tests)} passed")
    return 1 if failed else 0
