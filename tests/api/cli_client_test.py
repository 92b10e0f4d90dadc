"""The `vireo vm|task|token|host` commands against a real vireod (no KVM needed: definitions,
lists, edits, tokens, TLS, errors and exit statuses). VM actions on running VMs are in the
KVM suite (tests/daemon/)."""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apilib  # noqa: E402

VIREOD, VIREO = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
PAYLOAD = os.path.abspath(sys.argv[3])

# Exit statuses documented in `vireo vm --help` and docs/api.md.
OK, FAILED, USAGE, NOT_FOUND, CONFLICT, AUTH, CONNECT = 0, 1, 2, 3, 4, 5, 6


class Cli:
    def __init__(self, endpoint, token=None, extra_env=None, extra=()):
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("VIREO_") and k != "XDG_CONFIG_HOME"}
        self.env["VIREO_ENDPOINT"] = endpoint
        # No config file from the user running the tests.
        self.env["XDG_CONFIG_HOME"] = "/nonexistent"
        if token:
            self.env["VIREO_TOKEN"] = token
        self.env.update(extra_env or {})
        self.extra = list(extra)

    def run(self, *args, expect=OK, stdin=None):
        p = subprocess.run([VIREO, *args, *self.extra], capture_output=True, text=True,
                           env=self.env, input=stdin, timeout=60)
        assert p.returncode == expect, \
            f"vireo {' '.join(args)}: exit {p.returncode}, expected {expect}\n" \
            f"stdout: {p.stdout}\nstderr: {p.stderr}"
        return p

    def json(self, *args):
        return json.loads(self.run(*args, "--json").stdout)


def test_define_list_show_edit_delete(d, cli):
    p = cli.run("vm", "create", "c1", "--payload", PAYLOAD, "--memory", "16M", "--tag", "web",
                "--description", "first")
    assert "defined c1" in p.stdout, p.stdout
    cli.run("vm", "create", "c2", "--payload", PAYLOAD, "--memory", "32", "--cpus", "2")
    rows = cli.run("vm", "list").stdout.splitlines()
    assert rows[0].split()[:3] == ["NAME", "STATE", "CPUS"], rows
    names = [r.split()[0] for r in rows[1:]]
    assert names == ["c1", "c2"], rows
    assert all(r.split()[1] == "defined" for r in rows[1:]), rows
    vms = cli.json("vm", "list", "--tag", "web")
    assert [v["name"] for v in vms] == ["c1"], vms
    assert cli.json("vm", "list", "--state", "running") == []
    assert [v["name"] for v in cli.json("vm", "list", "--name", "c*")] == ["c1", "c2"]
    assert [v["name"] for v in cli.json("vm", "list", "--limit", "1")] == ["c1"]
    vm = cli.json("vm", "show", "c1")
    assert vm["memory_mib"] == 16 and vm["vcpus"] == 1 and vm["tags"] == ["web"], vm
    assert vm["boot"]["payload"] == PAYLOAD, vm
    shown = cli.run("vm", "show", "c2").stdout
    assert "memory_mib" in shown and "32" in shown, shown
    cli.run("vm", "edit", "c2", "--cpus", "3", "--memory", "1G")
    vm = cli.json("vm", "show", vm["id"])  # the uuid works where the name does
    assert vm["name"] == "c1"
    vm2 = cli.json("vm", "show", "c2")
    assert vm2["vcpus"] == 3 and vm2["memory_mib"] == 1024, vm2
    hist = cli.run("vm", "history", "c1").stdout
    assert "defined" in hist, hist
    cli.run("vm", "delete", "c1", "c2")
    assert cli.json("vm", "list") == []


def test_errors_and_exit_statuses(d, cli):
    cli.run("vm", "create", "e1", "--payload", PAYLOAD, "--memory", "16M")
    p = cli.run("vm", "create", "e1", "--payload", PAYLOAD, expect=CONFLICT)
    assert "name_taken" in p.stderr, p.stderr
    p = cli.run("vm", "show", "nope", expect=NOT_FOUND)
    assert "not_found" in p.stderr, p.stderr
    # Names with path characters are refused by the server, not mangled by the client.
    p = cli.run("vm", "create", "../etc", "--payload", PAYLOAD, expect=USAGE)
    assert "invalid_value" in p.stderr or "name" in p.stderr, p.stderr
    # A relative path is the caller's: the client makes it absolute for the daemon.
    cwd = os.getcwd()
    os.chdir(os.path.dirname(PAYLOAD))
    try:
        cli.run("vm", "create", "rel", "--payload", os.path.basename(PAYLOAD), "--disk",
                "./d.qcow2,format=qcow2")
    finally:
        os.chdir(cwd)
    rel = cli.json("vm", "show", "rel")
    assert rel["boot"]["payload"] == PAYLOAD, rel
    assert rel["disks"][0]["path"] == os.path.join(os.path.dirname(PAYLOAD), "d.qcow2"), rel
    cli.run("vm", "delete", "rel")
    cli.run("vm", "create", "e2", "--payload", PAYLOAD, "--cpus", "1000", expect=USAGE)
    cli.run("vm", "create", "e2", "--memory", "lots", expect=USAGE)
    cli.run("vm", "frobnicate", "e1", expect=USAGE)
    # A stopped VM cannot be paused: refused at once with 409 -> exit 4.
    p = cli.run("vm", "pause", "e1", expect=CONFLICT)
    assert "invalid_state" in p.stderr, p.stderr
    cli.run("vm", "resume", "e404", expect=NOT_FOUND)
    # A bulk request: each VM's refusal is reported; the exit status is the highest.
    p = cli.run("vm", "resume", "e1", "e404", expect=CONFLICT)
    assert "e404" in p.stderr and "not_found" in p.stderr, p.stderr
    cli.run("vm", "delete", "e1")
    cli.run("vm", "list", "--bogus", expect=USAGE)
    bad = Cli("unix:" + d.sock + ".missing")
    p = bad.run("vm", "list", expect=CONNECT)
    assert "is vireod running" in p.stderr, p.stderr
    Cli("ftp://x").run("host", "show", expect=USAGE)


def test_from_json_and_host(d, cli):
    path = os.path.join(d.dir, "def.json")
    with open(path, "w") as f:
        json.dump({"boot": {"payload": PAYLOAD}, "memory_mib": 16, "tags": ["j"]}, f)
    cli.run("vm", "create", "j1", "--from-json", path, "--cpus", "2")
    vm = cli.json("vm", "show", "j1")
    assert vm["vcpus"] == 2 and vm["tags"] == ["j"], vm
    with open(path, "w") as f:
        json.dump({"boot": {"payload": PAYLOAD}, "memory_mib": 16, "colour": "red"}, f)
    p = cli.run("vm", "create", "j2", "--from-json", path, expect=USAGE)
    assert "unknown_field" in p.stderr, p.stderr
    cli.run("vm", "delete", "j1")
    host = cli.json("host", "show")
    assert host["vms"]["defined"] == 0 and "kvm" in host, host
    assert "cpus" in cli.run("host", "show").stdout


def test_tokens_over_tls(d, cli):
    secret = cli.run("token", "create", "--name", "ops", "--role", "operator").stdout.strip()
    assert secret.startswith("vireo_"), secret
    viewer = cli.run("token", "create", "--name", "look", "--role", "viewer").stdout.strip()
    listed = cli.json("token", "list")["items"]
    assert {t["name"] for t in listed} >= {"ops", "look"}, listed
    assert all("secret" not in t for t in listed), listed
    ep = f"https://127.0.0.1:{d.port}"
    tls = Cli(ep, secret, {"VIREO_CACERT": d.cert})
    assert tls.json("host", "show")["vms"]["defined"] == 0
    # No token, a viewer writing, a wrong CA: refused with the documented statuses.
    Cli(ep, None, {"VIREO_CACERT": d.cert}).run("vm", "list", expect=AUTH)
    Cli(ep, viewer, {"VIREO_CACERT": d.cert}).run(
        "vm", "create", "v1", "--payload", PAYLOAD, expect=AUTH)
    Cli(ep, secret).run("vm", "list", expect=CONNECT)  # self-signed: not trusted by default
    Cli(ep, secret, extra=["--insecure"]).run("vm", "list")
    tid = [t["id"] for t in listed if t["name"] == "ops"][0]
    cli.run("token", "revoke", tid)
    tls.run("vm", "list", expect=AUTH)
    cli.run("token", "revoke", tid, expect=CONFLICT)


def test_config_file(d, cli):
    conf = os.path.join(d.dir, "xdg", "vireo")
    os.makedirs(conf, exist_ok=True)
    with open(os.path.join(conf, "client.conf"), "w") as f:
        f.write(f"# written by the test\nendpoint = unix:{d.sock}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIREO_")}
    env["XDG_CONFIG_HOME"] = os.path.join(d.dir, "xdg")
    p = subprocess.run([VIREO, "host", "show", "--json"], capture_output=True, text=True,
                       env=env, timeout=30)
    assert p.returncode == 0 and json.loads(p.stdout)["vms"], p.stderr
    with open(os.path.join(conf, "client.conf"), "a") as f:
        f.write("colour = red\n")
    p = subprocess.run([VIREO, "host", "show"], capture_output=True, text=True, env=env,
                       timeout=30)
    assert p.returncode == USAGE and "unknown setting" in p.stderr, p.stderr


def test_tasks(d, cli):
    assert isinstance(cli.json("task", "list"), dict)
    cli.run("task", "show", "00000000-0000-0000-0000-000000000000", expect=NOT_FOUND)
    cli.run("task", "frob", expect=USAGE)


def main():
    d = apilib.Daemon(VIREOD)
    rc = 1
    try:
        cli = Cli("unix:" + d.sock)
        rc = apilib.run_tests([test_define_list_show_edit_delete, test_errors_and_exit_statuses,
                               test_from_json_and_host, test_tokens_over_tls, test_config_file,
                               test_tasks], d, cli)
    finally:
        d.stop()
        if rc:
            print("---- vireod log ----\n" + d.logtext()[-4000:])
        d.cleanup()
    sys.exit(rc)


if __name__ == "__main__":
    main()
