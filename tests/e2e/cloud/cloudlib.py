"""Helpers for the cloud end-to-end tests: the Graph and Okta emulators, Prism proxies in
front of them (tests/emulators/*/README.md "Prism recipe"), and quelld with cloud
identity systems. Reuses the parent suite's Api, wait_for and TERMINAL."""
import http.client
import json
import os
import re
import secrets
import select
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import conftest as base  # tests/e2e/conftest.py, already imported by pytest

Api = base.Api
wait_for = base.wait_for
TERMINAL = base.TERMINAL

REPO = Path(__file__).resolve().parents[3]
NODE = shutil.which("node") or "/usr/bin/node"
PRISM = REPO / "tests" / "contract" / "node_modules" / ".bin" / "prism"
GRAPH_SPEC = REPO / "tests" / "contract" / "specs" / "graph-remediation-subset.yaml"
SHARED_SPECS = REPO / "tests" / "contract" / "specs"
TOKEN_SPEC = SHARED_SPECS / "entra-token-subset.yaml"
OKTA_SPEC = SHARED_SPECS / "okta-remediation-subset-with-examples.yaml"
GRAPH_SERVER = REPO / "tests" / "emulators" / "graph" / "server.js"
OKTA_SERVER = REPO / "tests" / "emulators" / "okta" / "server.js"
SCIM_SERVER = REPO / "tests" / "emulators" / "scim" / "server.js"
ANSI = re.compile(r"\x1b\[[0-9;]*m")

PRISMS = []  # every Prism started in this session, checked after each test


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def stop_proc(p, timeout=10):
    if p is None or p.poll() is not None:
        return
    p.terminate()
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def http_json(port, method, path, body=None, timeout=30):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        c.request(method, path, body=data,
                  headers={"Content-Type": "application/json"} if data is not None else {})
        r = c.getresponse()
        raw = r.read()
        return r.status, (json.loads(raw) if raw else None)
    finally:
        c.close()


class Emulator:
    """One emulator process (graph or okta) on port 0; ctl() talks to /_emulator."""

    def __init__(self, server, args, workdir, name):
        Path(workdir).mkdir(parents=True, exist_ok=True)
        self.log = Path(workdir) / f"{name}.log"
        errf = open(self.log, "wb")
        self.proc = subprocess.Popen([NODE, str(server), "--port", "0", *map(str, args)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=errf)
        errf.close()
        r, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline().decode() if r else ""
        m = re.match(r"listening on (\d+)", line)
        if not m:
            self.stop()
            raise AssertionError(f"{name} emulator did not start: {line!r} "
                                 f"{self.log.read_text()[-2000:]}")
        self.port = int(m.group(1))
        self.url = f"http://127.0.0.1:{self.port}"

    def ctl(self, method, path, body=None, want=(200, 201, 204)):
        st, j = http_json(self.port, method, "/_emulator" + path, body)
        assert st in want, f"emulator {method} {path}: {st} {j}"
        return j

    def stop(self):
        stop_proc(self.proc)
        if self.proc.stdout:
            self.proc.stdout.close()


class Prism:
    """prism proxy --errors SPEC UPSTREAM; problems() lists contract failures it logged:
    requests it refused (422) and answers that broke the spec (Violation, ✖)."""

    BAD = re.compile(r"Violation|✖|UNPROCESSABLE|\b422\b|VIOLATIONS")

    def __init__(self, spec, upstream, workdir, name):
        assert PRISM.exists(), f"no Prism at {PRISM}"
        assert Path(spec).exists(), f"no spec {spec}"
        self.name = name
        self.port = free_port()
        Path(workdir).mkdir(parents=True, exist_ok=True)
        self.log = Path(workdir) / f"prism-{name}.log"
        logf = open(self.log, "wb")
        self.proc = subprocess.Popen([str(PRISM), "proxy", "--errors", str(spec), upstream,
                                      "-h", "127.0.0.1", "-p", str(self.port)],
                                     stdin=subprocess.DEVNULL, stdout=logf,
                                     stderr=subprocess.STDOUT)
        logf.close()

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"prism {name} exited: {self.text()[-3000:]}")
            return "Prism is listening" in self.text()
        wait_for(up, 60, 0.1, what=f"prism {name}")
        self.url = f"http://127.0.0.1:{self.port}"
        PRISMS.append(self)

    def text(self):
        try:
            return ANSI.sub("", self.log.read_text(errors="replace"))
        except FileNotFoundError:
            return ""

    def size(self):
        return len(self.text())

    MARK = "/_quell-log-mark-"

    def problems(self, since=0):
        return [ln for ln in self.text()[since:].splitlines()
                if self.BAD.search(ln) and self.MARK not in ln]

    def settle(self):
        """Returns once Prism has logged everything about the requests answered so far:
        it handles requests in turn and logs each one's outcome before it takes the next,
        so the outcome of a marker request sent now (a path no spec has: 404, its lines
        left out of problems()) comes after all of theirs in the log."""
        mark = self.MARK + secrets.token_hex(6)
        st, _ = http_json(self.port, "GET", mark)
        assert st == 404, f"prism {self.name}: the log marker answered {st}"
        done = re.compile(rf"get {re.escape(mark)} .*Request terminated")
        wait_for(lambda: done.search(self.text()), 30, 0.02,
                 what=f"prism {self.name} to log {mark}")

    def stop(self):
        stop_proc(self.proc)
        if self in PRISMS:
            PRISMS.remove(self)


def no_contract_errors(action):
    """A step that Prism refused would carry its 422 (or its problem type) in the step."""
    for s in action.get("steps", []):
        text = f"{s.get('error_code')} {s.get('message')}"
        assert not re.search(r"\b422\b|stoplight|prism|UNPROCESSABLE", text, re.I), \
            f"step {s['id']} was refused by the contract check: {text}"


class CloudQuelld:
    """quelld on a private store with the given [system] sections: SQLite, or as the
    parent suite's Quelld on PostgreSQL (QUELL_E2E_STORE), two nodes with QUELL_E2E_NODES=2
    (admin spreads requests across both; port, proc and log are the first node's)."""

    def __init__(self, workdir, systems, engine=None, server=None, nodes=None):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.db = self.dir / "quell.db"
        self.conf = self.dir / "quelld.conf"
        self.log = self.dir / "quelld.log"
        self.proc = None
        self.port = None
        self.engine = {"retry_base_ms": 200, "retry_cap_ms": 1000, "lease_ms": 10000,
                       **(engine or {})}
        self.server = {"listen": "127.0.0.1:0", "workers": 8, "node_id": "cloud-e2e",
                       **(server or {})}
        self.systems = systems
        nodes = base._TEST_NODES if nodes is None else nodes
        self.store = None
        if base.STORE == "postgres" and nodes != "sqlite":
            self.store, _ = base.postgres().new_db()
        self.node_id = self.server["node_id"]
        n = (nodes if isinstance(nodes, int) else base.NODES) if self.store else 1
        self.peers = [base.Peer(self, i) for i in range(1, n)]
        self.write_conf()
        self.admin_token = self.token("cloud-admin", "admin")

    def write_conf(self):
        lines = ["[server]"] + [f"{k} = {v}" for k, v in self.server.items()]
        lines += ["", "[engine]"] + [f"{k} = {v}" for k, v in self.engine.items()]
        lines += ["", "[store]"] + ([f"path = {self.db}"] if self.store is None else
                                    ["backend = postgres", f"conninfo = {self.store}"])
        for name, kv in self.systems.items():
            lines += ["", f'[system "{name}"]'] + [f"{k} = {v}" for k, v in kv.items()]
        self.conf.write_text("\n".join(lines) + "\n")

    def token(self, name, role):
        r = subprocess.run([str(base.QUELLD), "-c", str(self.conf), "token", "create",
                            "--name", name, "--role", role], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, f"token create: {r.stderr}"
        return r.stdout.strip()

    def start(self):
        assert self.proc is None
        start_at = self.log.stat().st_size if self.log.exists() else 0
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen([str(base.QUELLD), "-c", str(self.conf)],
                                     stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
        logf.close()

        def port():
            if self.proc.poll() is not None:
                raise AssertionError(f"quelld exited ({self.proc.returncode}): "
                                     f"{self.log.read_text()[start_at:]}")
            with open(self.log, "rb") as f:
                f.seek(start_at)
                m = re.search(rb"listening on \S+ \(port (\d+)\)", f.read())
            return int(m.group(1)) if m else None
        self.port = wait_for(port, 30, what="quelld to listen")
        wait_for(lambda: Api(self.port).get("/healthz", token=None).status == 200, 30,
                 what="/healthz")
        for p in self.peers:
            p.start()
        self.admin = Api([self.port] + [p.port for p in self.peers], self.admin_token)
        return self

    def stop(self):
        for p in self.peers:
            p.end(True)
        stop_proc(self.proc, 30)
        self.proc = None

    def restart(self, systems=None):
        self.stop()
        if systems is not None:
            self.systems = systems
            self.write_conf()
        return self.start()

    # ------------------------------------------------------------------ helpers

    def sync(self, system="cloud", full=False):
        return base.sync_and_wait(self.admin, system, full)

    def identity_by(self, system, field, value):
        """The identity holding the account of system whose field equals value."""
        j = self.admin.ok("GET", f"/api/v1/identities?q={value}&limit=1000")
        hits = [i for i in j["identities"]
                if any(a["system"] == system and a.get(field) == value for a in i["accounts"])]
        assert len(hits) == 1, f"{system} {field}={value}: {len(hits)} identities"
        return hits[0]

    def account_of(self, identity, system):
        (a,) = [a for a in identity["accounts"] if a["system"] == system]
        return a

    def run(self, type_, identity_id, timeout=60, **extra):
        a = self.admin.run(type_, identity_id, **extra) if timeout == 60 else \
            self.admin.wait_terminal(self.admin.submit(type_, identity_id, **extra)["id"],
                                     timeout)
        no_contract_errors(a)
        return a


def secret_file(workdir, name, value):
    p = Path(workdir) / name
    p.write_text(value + "\n")
    os.chmod(p, 0o600)
    return p


def new_guid():
    return str(uuid.uuid4())


def tag():
    return "c" + secrets.token_hex(3)


def only_step(action):
    assert len(action["steps"]) == 1, action
    return action["steps"][0]


def elapsed(t0):
    return time.monotonic() - t0
