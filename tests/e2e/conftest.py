"""
End-to-end fixtures for quelld: a real Samba AD DC (scripts/lab/samba.sh), real quelld
processes on a private SQLite store, and plain HTTP.

Environment:
  QUELL_BUILD   meson build directory (quelld at src/daemon/quelld)      required
  LAB_DIR ...   an already running lab (source DIR/env, exported); when LAB_DIR is
                unset the suite provisions and starts its own lab and stops it at the end
  QUELL_E2E_STORE=postgres
                every quelld keeps its store in PostgreSQL (a database of its own, or
                one shared by the nodes of a cluster) instead of SQLite: in the
                cluster of QUELL_TEST_PG (a libpq connection string), or else one the
                suite starts with scripts/lib/pg.sh and stops at the end
  QUELL_E2E_NODES=2 (with QUELL_E2E_STORE=postgres)
                every quelld a test starts is two nodes on one database, each with
                its own port, node_id, directory and log; q.api() spreads requests
                across both (one after the other). q.proc, q.port, q.log and q.conf
                are node 0's, and q.api(node=0) talks to node 0 only: what a test
                inspects of one process (signals, log, metrics, /proc) is node 0's.
                A test marked single_node (by nature one process: it reads the
                process's log for what the engine did, or the SQLite file) keeps
                one node; one marked sqlite keeps SQLite.
  QUELL_E2E_REAL_OUTAGE=1
                fault tests stop the real Samba (samba.sh down/up). By default they do
                so only when the suite owns the lab; with a shared lab they cut a TCP
                relay that sits between quelld and Samba instead, so other users of the
                lab are not disturbed.
"""
import http.client
import itertools
import json
import os
import re
import secrets
import select
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

import contract

REPO = Path(__file__).resolve().parents[2]
SAMBA_SH = REPO / "scripts" / "lab" / "samba.sh"
PG_SH = REPO / "scripts" / "lib" / "pg.sh"
STORE = os.environ.get("QUELL_E2E_STORE", "sqlite")
NODES = int(os.environ.get("QUELL_E2E_NODES", "1"))
PASSWORD = "E2e-Pw-" + secrets.token_hex(4)
ROLES = ("admin", "responder", "viewer", "detector")
TERMINAL = {"completed", "partially_completed", "failed", "cancelled", "denied", "rejected"}
UAC_DISABLE = 0x2
UAC_DONT_EXPIRE = 0x10000


def _build():
    b = os.environ.get("QUELL_BUILD")
    if not b:
        pytest.exit("QUELL_BUILD is not set (the meson build directory)", returncode=2)
    q = Path(b) / "src" / "daemon" / "quelld"
    if not q.exists():
        pytest.exit(f"no quelld at {q}", returncode=2)
    return q


QUELLD = None


def pytest_configure(config):
    global QUELLD
    QUELLD = _build()
    if NODES not in (1, 2) or (NODES == 2 and STORE != "postgres"):
        pytest.exit("QUELL_E2E_NODES=2 needs QUELL_E2E_STORE=postgres", returncode=2)
    config.addinivalue_line("markers", "single_node(reason): the test's quellds run one "
                            "node each (QUELL_E2E_NODES)")
    config.addinivalue_line("markers", "sqlite(reason): the test's quellds keep SQLite "
                            "stores whatever QUELL_E2E_STORE says")
    config.addinivalue_line("markers", "timer(reason): most of the test is a wait for a "
                            "schedule to fall due; scripts/test.sh runs it in the release "
                            "pass only (-m 'not timer' under the sanitizers)")


def wait_for(pred, timeout=60.0, interval=0.05, what="condition"):
    """Polls pred() until it returns something truthy; the timeout only keeps a broken
    daemon from hanging the suite (no test asserts on elapsed time)."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def sync_and_wait(api, system=None, full=False, timeout=900):
    """POST /api/v1/sync[/{system}] (202), then polls GET /api/v1/sync until every
    system asked for has finished the run that serves the request. Returns that
    system's status (or the list of them), with the old report keys as aliases.
    Request and polls go to one node: a run's number and progress are that node's
    (engine/sync.c keeps them in memory), not the cluster's."""
    api = api.one()
    path = "/api/v1/sync" + (f"/{system}" if system else "") + ("?full=true" if full else "")
    r = api.request("POST", path)
    assert r.status == 202, f"POST {path}: {r}"
    want = {s["system"]: s["requested_run"] for s in r.json["systems"]}

    def done():
        st = api.request("GET", "/api/v1/sync").json["systems"]
        mine = [s for s in st if s["system"] in want]
        return mine if all(s["finished_run"] >= want[s["system"]] for s in mine) else None
    mine = wait_for(done, timeout, 0.1, what=f"sync {system or 'all'}")
    for s in mine:
        assert s["error"] is None, f"sync {s['system']} failed: {s}"
        s.update(accounts_seen=s["seen"], accounts_new=s["created"])
    return mine[0] if system else mine


# --------------------------------------------------------------------------- lab


class Lab:
    def __init__(self, env, owned):
        self.env = env
        self.owned = owned
        self.dir = env["LAB_DIR"]
        self.url = env.get("LAB_LDAP_URL", "ldaps://127.0.0.1")
        self.ca = env["LAB_CA"]
        self.base_dn = env["LAB_BASE_DN"]
        self.bind_dn = env["LAB_BIND_DN"]
        self.pw_file = env["LAB_BIND_PW_FILE"]
        self.krb5_config = env["KRB5_CONFIG"]
        self.tmp = Path(tempfile.mkdtemp(prefix="quell-e2e-krb-"))
        self.tag = "e" + secrets.token_hex(3)  # unique per run: every user name has it
        self._n = 0

    def name(self, hint="u"):
        """A fresh sAMAccountName (≤ 20 chars) owned by this run."""
        self._n += 1
        return f"{self.tag}{hint[:6]}{self._n}"

    def sh(self, *args, check=True):
        r = subprocess.run(["bash", str(SAMBA_SH), *args], capture_output=True, text=True,
                           timeout=300)
        if check and r.returncode != 0:
            raise AssertionError(f"samba.sh {args[0]} failed: {r.stderr.strip()}")
        return r

    def adduser(self, sam, cn=None, password=PASSWORD, uac=512):
        r = self.sh("adduser", self.dir, sam, cn or sam, password, str(uac))
        return r.stdout.strip().splitlines()[-1]

    def users(self, n, prefix, nopw=False):
        self.sh("users", self.dir, str(n), prefix, *(["nopw"] if nopw else []))
        return [f"{prefix}{i:04d}" for i in range(1, n + 1)]

    def _ldap_env(self):
        return dict(os.environ, LDAPTLS_CACERT=self.ca, LDAPTLS_REQCERT="demand")

    def search(self, filt, attrs=("userAccountControl",), base=None):
        """{dn: {attr: [values]}} of the entries matching filt (plain-text values only)."""
        r = subprocess.run(
            ["ldapsearch", "-LLL", "-o", "ldif-wrap=no", "-x", "-H", "ldaps://127.0.0.1",
             "-D", self.bind_dn, "-y", self.pw_file, "-b", base or self.base_dn, filt,
             *attrs], capture_output=True, text=True, env=self._ldap_env(), timeout=120)
        assert r.returncode == 0, f"ldapsearch {filt}: {r.stderr}"
        out, dn = {}, None
        for line in r.stdout.splitlines():
            if not line:
                dn = None
                continue
            k, _, v = line.partition(": ")
            k = k.rstrip(":")
            if k == "dn":
                dn = v
                out[dn] = {}
            elif dn is not None:
                out[dn].setdefault(k.lower(), []).append(v)
        return out

    def uac(self, sam):
        e = self.search(f"(sAMAccountName={sam})")
        assert len(e) == 1, f"{sam}: {len(e)} entries"
        return int(next(iter(e.values()))["useraccountcontrol"][0])

    def uacs(self, prefix):
        """{sam: uac} of every user whose sAMAccountName starts with prefix."""
        e = self.search(f"(sAMAccountName={prefix}*)", ("sAMAccountName", "userAccountControl"))
        return {v["samaccountname"][0]: int(v["useraccountcontrol"][0]) for v in e.values()}

    def modify(self, ldif):
        r = subprocess.run(["ldapmodify", "-x", "-H", "ldaps://127.0.0.1", "-D", self.bind_dn,
                            "-y", self.pw_file], input=ldif, capture_output=True, text=True,
                           env=self._ldap_env(), timeout=120)
        assert r.returncode == 0, f"ldapmodify: {r.stderr}"

    def set_uac(self, sam, uac):
        (dn,) = self.search(f"(sAMAccountName={sam})").keys()
        self.modify(f"dn: {dn}\nchangetype: modify\nreplace: userAccountControl\n"
                    f"userAccountControl: {uac}\n")

    def delete(self, sam):
        (dn,) = self.search(f"(sAMAccountName={sam})", ("1.1",)).keys()
        r = subprocess.run(["ldapdelete", "-x", "-H", "ldaps://127.0.0.1", "-D", self.bind_dn,
                            "-y", self.pw_file, dn], capture_output=True, text=True,
                           env=self._ldap_env(), timeout=60)
        assert r.returncode == 0, f"ldapdelete {dn}: {r.stderr}"

    def kinit(self, user, password=PASSWORD):
        """kinit's (rc, combined output) with a private credential cache."""
        cc = self.tmp / f"cc-{secrets.token_hex(4)}"
        env = dict(os.environ, KRB5_CONFIG=self.krb5_config, KRB5CCNAME=f"FILE:{cc}",
                   LANG="C", LC_ALL="C")
        r = subprocess.run(["kinit", f"{user}@QUELL.TEST"], input=password + "\n",
                           capture_output=True, text=True, env=env, timeout=60)
        try:
            cc.unlink()
        except FileNotFoundError:
            pass
        return r.returncode, (r.stdout + r.stderr).strip()

    def running(self):
        try:
            pid = int(Path(self.dir, "samba.pid").read_text().strip())
            os.kill(pid, 0)
            return True
        except (OSError, ValueError):
            return False

    def down(self):
        self.sh("down", self.dir)

    def up(self):
        self.sh("up", self.dir)


def _read_env_file(path):
    env = {}
    for line in Path(path).read_text().splitlines():
        k, sep, v = line.partition("=")
        if sep:
            env[k.strip()] = v.strip()
    return env


@pytest.fixture(scope="session")
def lab():
    keys = ("LAB_DIR", "LAB_LDAP_URL", "LAB_CA", "LAB_BASE_DN", "LAB_BIND_DN",
            "LAB_BIND_PW_FILE", "KRB5_CONFIG")
    d = os.environ.get("LAB_DIR")
    owned = False
    if d:
        env = {k: os.environ[k] for k in keys if k in os.environ}
        if len(env) < len(keys) and Path(d, "env").exists():
            env = {**_read_env_file(Path(d, "env")), **env}
    else:
        d = tempfile.mkdtemp(prefix="quell-e2e-lab-")
        r = subprocess.run(["bash", str(SAMBA_SH), "up", d], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.exit(f"samba.sh up {d} failed: {r.stderr}", returncode=3)
        env = _read_env_file(Path(d, "env"))
        owned = True
    lb = Lab(env, owned)
    if not lb.running():
        lb.up()
    yield lb
    shutil.rmtree(lb.tmp, ignore_errors=True)
    if owned:
        subprocess.run(["bash", str(SAMBA_SH), "down", d], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- TCP relay


class Relay:
    """A TCP relay on 127.0.0.1:<port> → target, which a test can cut (connections
    refused, open ones reset), black-hole (accepts, never answers) or restore."""

    def __init__(self, target_port=636):
        self.target = ("127.0.0.1", target_port)
        self.mode = "up"
        self.lock = threading.Lock()
        self.conns = []
        self.lsock = None
        self.port = 0
        self.stalled = False
        self._listen()

    def _listen(self):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(64)
        self.port = s.getsockname()[1]
        self.lsock = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def _accept(self, ls):
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            with self.lock:
                mode = self.mode
                self.conns.append(c)
            if mode == "blackhole":
                continue  # held open, never answered
            if mode == "slam":
                self._reset(c)
                continue
            try:
                u = socket.create_connection(self.target, timeout=5)
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns.append(u)
            threading.Thread(target=self._pump, args=(c, u), daemon=True).start()

    def _pump(self, a, b):
        socks = [a, b]
        try:
            while True:
                if self.stalled:
                    time.sleep(0.05)  # nothing read, nothing forwarded
                    if a.fileno() < 0 or b.fileno() < 0:
                        raise OSError
                    continue
                r, _, _ = select.select(socks, [], [], 0.2)
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        raise OSError
                    (b if s is a else a).sendall(data)
        except (OSError, ValueError):
            pass
        for s in socks:
            try:
                s.close()
            except OSError:
                pass

    @staticmethod
    def _reset(c):
        try:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            c.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            c.close()
        except OSError:
            pass

    def _drop_conns(self):
        with self.lock:
            conns, self.conns = self.conns, []
        for c in conns:
            self._reset(c)

    def down(self):
        """Connections refused, open ones reset: what quelld sees when Samba stops."""
        with self.lock:
            self.mode = "down"
        self._close_listener()
        self._drop_conns()

    def _close_listener(self):
        if self.lsock is not None:
            try:
                self.lsock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
            except OSError:
                pass
            self.lsock.close()
            self.lsock = None

    def blackhole(self):
        """New connections are accepted and never answered (a hung server)."""
        if self.lsock is None:
            self._listen()
        with self.lock:
            self.mode = "blackhole"
        self._drop_conns()

    def slam(self):
        """New connections are accepted and reset at once (a server going down in the
        middle of the TLS handshake)."""
        if self.lsock is None:
            self._listen()
        with self.lock:
            self.mode = "slam"
        self._drop_conns()

    def stall(self):
        """Open connections stop moving data (a hung server); new ones are refused."""
        self.stalled = True
        with self.lock:
            self.mode = "down"
        self._close_listener()

    def up(self):
        self._drop_conns()
        self.stalled = False
        with self.lock:
            self.mode = "up"
        if self.lsock is None:
            self._listen()

    def close(self):
        self.down()


class Outage:
    """Makes the directory unreachable for quelld and brings it back. Real mode stops
    Samba itself; relay mode cuts a relay that quelld's system URL points at."""

    def __init__(self, lab, real):
        self.lab = lab
        self.real = real
        self.relay = None if real else Relay()
        self.is_down = False

    @property
    def url(self):
        return self.lab.url if self.real else f"ldaps://127.0.0.1:{self.relay.port}"

    def down(self):
        self.is_down = True
        if self.real:
            self.lab.down()
        else:
            self.relay.down()

    def up(self):
        if self.real:
            self.lab.up()
        else:
            self.relay.up()
        self.is_down = False

    def close(self):
        if self.is_down or (self.real and not self.lab.running()):
            self.up()
        if self.relay is not None:
            self.relay.close()


@pytest.fixture
def outage(lab):
    real = lab.owned or os.environ.get("QUELL_E2E_REAL_OUTAGE") == "1"
    o = Outage(lab, real)
    try:
        yield o
    finally:
        o.close()


@pytest.fixture
def relay():
    r = Relay()
    try:
        yield r
    finally:
        r.close()


# ------------------------------------------------------------------------ HTTP


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.raw = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    @property
    def error(self):
        return (self.json or {}).get("error") or {}

    def __repr__(self):
        return f"<{self.status} {self.raw[:300]!r}>"


_TURN = itertools.count()


class Api:
    """Plain HTTP to quelld; never raises on 4xx/5xx. Given several ports (the nodes of
    one cluster), each request goes to the next one."""

    def __init__(self, port, token=None):
        self.ports = list(port) if isinstance(port, (list, tuple)) else [port]
        self.token = token

    @property
    def port(self):
        return self.ports[0]

    def as_(self, token):
        return Api(self.ports, token)

    def one(self):
        """The same client on one node: the next one in turn."""
        return Api(self._next_port(), self.token)

    def _next_port(self):
        return self.ports[next(_TURN) % len(self.ports)] if len(self.ports) > 1 \
            else self.ports[0]

    def request(self, method, path, body=None, token=..., headers=None, raw=None,
                content_type="application/json"):
        token = self.token if token is ... else token
        h = {}
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        data = raw
        if body is not None and raw is None:
            data = json.dumps(body).encode()
        if data is not None and content_type is not None:
            h["Content-Type"] = content_type
        if headers:
            h.update(headers)
        c = http.client.HTTPConnection("127.0.0.1", self._next_port(), timeout=60)
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            c.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    # conveniences -----------------------------------------------------------------

    def ok(self, method, path, body=None, want=(200, 201)):
        r = self.request(method, path, body=body)
        assert r.status in want, f"{method} {path}: {r}"
        return r.json

    def action(self, aid):
        return self.ok("GET", f"/api/v1/actions/{aid}")

    def submit(self, type_, identity_id, reason="e2e", **extra):
        body = {"type": type_, "identity_id": identity_id, "reason": reason, **extra}
        return self.ok("POST", "/api/v1/actions", body, want=(201,))

    def wait_terminal(self, aid, timeout=60):
        def done():
            a = self.action(aid)
            return a if a["status"] in TERMINAL else None
        return wait_for(done, timeout, what=f"action {aid} to finish")

    def run(self, type_, identity_id, **extra):
        return self.wait_terminal(self.submit(type_, identity_id, **extra)["id"])

    def audit_all(self):
        out, after = [], 0
        while True:
            j = self.ok("GET", f"/api/v1/audit?after={after}&limit=1000")
            out += j["entries"]
            if not j["entries"] or j["next"] is None:
                return out
            after = j["next"]

    def audit_count(self):
        # seq is dense from 1; verify reports how many entries there are
        return self.ok("GET", "/api/v1/audit/verify")["entries"]

    def audit_after(self, seq):
        out, after = [], seq
        while True:
            j = self.ok("GET", f"/api/v1/audit?after={after}&limit=1000")
            out += j["entries"]
            if not j["entries"] or j["next"] is None:
                return out
            after = j["next"]

    def actions_all(self, query=""):
        out, before = [], None
        while True:
            q = f"limit=1000{'&' + query if query else ''}"
            if before:
                q += f"&before={before}"
            j = self.ok("GET", f"/api/v1/actions?{q}")
            out += j["actions"]
            if j["next"] is None:
                return out
            before = j["next"]


# ------------------------------------------------------------------ PostgreSQL


class Postgres:
    """One PostgreSQL cluster for the session: QUELL_TEST_PG's, or one of its own."""

    def __init__(self):
        self.dir = None
        self.conninfo = os.environ.get("QUELL_TEST_PG")
        if self.conninfo is None:
            self.dir = Path(tempfile.mkdtemp(prefix="quell-e2e-pg-"))
            self.dir.chmod(0o711)  # the cluster's owner (nobody, as root) reaches it
            subprocess.run(["bash", str(PG_SH), "up", str(self.dir / "c")], check=True,
                           timeout=120)
            env = _read_env_file(self.dir / "c" / "env")
            self.conninfo = env["QUELL_TEST_PG"].strip("'")

    def sql(self, sql, db=None):
        """Rows of sql (psql, unaligned), each a list of strings."""
        conn = self.conninfo if db is None else f"{self.conninfo} dbname={db}"
        r = subprocess.run(["psql", conn, "-qAtX", "-F", "\x1f", "-v", "ON_ERROR_STOP=1",
                            "-c", sql], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"psql: {sql}: {r.stderr}"
        return [line.split("\x1f") for line in r.stdout.splitlines()]

    def new_db(self):
        """A fresh database's connection string."""
        name = "q_" + secrets.token_hex(6)
        self.sql(f"CREATE DATABASE {name}")
        return f"{self.conninfo} dbname={name}", name

    def stop(self):
        if self.dir is not None:
            subprocess.run(["bash", str(PG_SH), "down", str(self.dir / "c")], timeout=120)
            shutil.rmtree(self.dir, ignore_errors=True)


_PG = None


def postgres():
    """The session's cluster, started on first use."""
    global _PG
    if _PG is None:
        _PG = Postgres()
    return _PG


def pytest_unconfigure(config):
    if _PG is not None:
        _PG.stop()


class PgConn:
    """What tests read a store through, for PostgreSQL: sqlite3's execute/fetch."""

    def __init__(self, pg, db):
        self.pg, self.db, self.rows = pg, db, []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, sql, params=()):
        assert not params, "PgConn takes no parameters"
        self.rows = [tuple(int(v) if re.fullmatch(r"-?\d+", v) else v for v in row)
                     for row in self.pg.sql(sql, self.db)]
        return self

    def fetchone(self):
        return self.rows[0] if self.rows else None

    def fetchall(self):
        return self.rows


# ---------------------------------------------------------------------- quelld


def _launch(conf, log):
    """quelld -c conf, its output appended to log: (process, where its output starts)."""
    start_at = log.stat().st_size if log.exists() else 0
    logf = open(log, "ab")
    proc = subprocess.Popen([str(QUELLD), "-c", str(conf)], stdin=subprocess.DEVNULL,
                            stdout=logf, stderr=logf)
    logf.close()
    return proc, start_at


def _serving(proc, log, start_at):
    """The port proc listens on, once it answers /healthz."""
    def port():
        if proc.poll() is not None:
            raise AssertionError(f"quelld exited ({proc.returncode}): "
                                 f"{log.read_text()[start_at:]}")
        with open(log, "rb") as f:
            f.seek(start_at)
            m = re.search(rb"listening on \S+ \(port (\d+)\)", f.read())
        return int(m.group(1)) if m else None
    p = wait_for(port, 30, what="quelld to listen")

    def healthy():
        try:
            return Api(p).get("/healthz", token=None).status == 200
        except OSError:
            return False
    wait_for(healthy, 30, what="/healthz")
    return p


def _end(proc, gently):
    if proc is None:
        return
    if not gently:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        return
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Peer:
    """Another node of a Quelld (QUELL_E2E_NODES): the same configuration but its
    node_id, in a directory of its own under the first node's."""

    def __init__(self, first, i):
        self.first = first
        self.dir = first.dir / f"node{i}"
        self.dir.mkdir(exist_ok=True)
        self.conf = self.dir / "quelld.conf"
        self.log = self.dir / "quelld.log"
        self.node_id = f"{first.node_id}-{i}"
        self.proc = None
        self.port = None

    def start(self):
        # Written at each start: a test edits the first node's file before it starts.
        text = self.first.conf.read_text()
        text, n = re.subn(r"(?m)^node_id = .*$", f"node_id = {self.node_id}", text, count=1)
        assert n == 1, "the configuration names no node_id"
        # A port the test chose is the first node's; this one takes any.
        text = re.sub(r"(?m)^(listen = .*):\d+$", r"\1:0", text, count=1)
        self.conf.write_text(text)
        self.proc, at = _launch(self.conf, self.log)
        self.port = _serving(self.proc, self.log, at)

    def end(self, gently):
        _end(self.proc, gently)
        self.proc = None


class Quelld:
    def __init__(self, lab, workdir, url=None, engine=None, server=None, system=None,
                 store=None, nodes=None):
        """store: the PostgreSQL connection string of a database to share with other
        nodes; by default a store of its own (QUELL_E2E_STORE). nodes: how many quelld
        share that store of its own (QUELL_E2E_NODES by default; one with store=, or on
        SQLite)."""
        self.lab = lab
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.db = self.dir / "quell.db"
        self.conf = self.dir / "quelld.conf"
        self.log = self.dir / "quelld.log"
        self.proc = None
        self.port = self.direct_port = None
        self.tampered = False
        self.max_body = (server or {}).get("max_body", 65536)
        eng = {"retry_base_ms": 200, "retry_cap_ms": 1000, "lease_ms": 5000, **(engine or {})}
        srv = {"listen": "127.0.0.1:0", "workers": 4, "node_id": "e2e",
               "max_body": self.max_body, **(server or {})}
        sysc = {"kind": "ad", "url": url or lab.url, "ca_file": lab.ca,
                "base_dn": lab.base_dn, "bind_dn": lab.bind_dn,
                "password_file": lab.pw_file, "max_concurrency": 4, **(system or {})}
        lines = ["[server]"] + [f"{k} = {v}" for k, v in srv.items()]
        lines += ["", "[engine]"] + [f"{k} = {v}" for k, v in eng.items()]
        self.pg_db = None
        nodes = _TEST_NODES if nodes is None else nodes
        on_pg = store is not None or (STORE == "postgres" and nodes != "sqlite")
        if on_pg:
            if store is None:
                store, self.pg_db = postgres().new_db()
            else:
                self.pg_db = re.search(r"dbname=(\S+)$", store).group(1)
                nodes = 1
            lines += ["", "[store]", "backend = postgres", f"conninfo = {store}"]
        else:
            lines += ["", "[store]", f"path = {self.db}"]
        self.store = store
        lines += ["", '[system "corp"]'] + [f"{k} = {v}" for k, v in sysc.items()]
        self.conf.write_text("\n".join(lines) + "\n")
        self.node_id = srv["node_id"]
        n = (nodes if isinstance(nodes, int) else NODES) if on_pg else 1
        self.peers = [Peer(self, i) for i in range(1, n)]
        self.tokens = {role: self.token(f"e2e-{role}", role) for role in ROLES}

    def token(self, name, role):
        r = subprocess.run([str(QUELLD), "-c", str(self.conf), "token", "create", "--name",
                            name, "--role", role], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"token create: {r.stderr}"
        tok = r.stdout.strip()
        assert re.fullmatch(r"qt_[0-9a-f]{24}\.[A-Za-z0-9_-]{43}", tok), tok
        return tok

    def start(self):
        assert self.proc is None
        self.proc, at = _launch(self.conf, self.log)
        self.port = _serving(self.proc, self.log, at)
        # The contract pass: the suite talks to quelld through a validating proxy of
        # docs/openapi.yaml (tests/e2e/contract.py); direct_port bypasses it.
        self.direct_port = self.port
        for p in self.peers:
            p.start()
        if contract.ENABLED:
            self.proxy = contract.Proxy(self.port, self.dir, wait_for)
            self.port = self.proxy.port
        return self

    def _stop_proxy(self):
        if getattr(self, "proxy", None) is not None:
            self.proxy.stop()
            self.proxy = None

    def _end(self, gently):
        self._stop_proxy()
        for p in self.peers:
            p.end(gently)
        _end(self.proc, gently)
        self.proc = None

    def kill(self):
        """SIGKILL to every node: no cleanup of any kind."""
        self._end(False)

    def stop(self):
        self._end(True)

    def restart(self):
        self.kill()
        return self.start()

    @property
    def ports(self):
        """Every running node's port, node 0's first."""
        return [self.port] + [p.port for p in self.peers if p.proc is not None]

    def api(self, role="admin", node=None):
        """Requests spread across the nodes, or all to one (node=0: this process)."""
        ports = self.ports if node is None else self.ports[node]
        return Api(ports, self.tokens[role] if role else None)

    @property
    def admin(self):
        return self.api("admin")

    def sync(self):
        return sync_and_wait(self.admin, "corp")

    def identity_of(self, sam):
        """The identity (with accounts) whose AD account has this sAMAccountName."""
        j = self.admin.ok("GET", f"/api/v1/identities?q={sam}&limit=1000")
        hits = [i for i in j["identities"]
                if any(a["username"] == sam for a in i["accounts"])]
        assert len(hits) == 1, f"{sam}: {len(hits)} identities"
        return hits[0]

    def db_conn(self):
        if self.pg_db is not None:
            return PgConn(postgres(), self.pg_db)
        return sqlite3.connect(str(self.db))


class User:
    def __init__(self, sam, cn, guid, password):
        self.sam = sam
        self.cn = cn
        self.guid = guid
        self.password = password
        self.identity = self.identity_id = self.account = self.account_id = None

    def find(self, q):
        """Looks the user up in q (after a sync); returns self."""
        self.identity = q.identity_of(self.sam)
        self.identity_id = self.identity["id"]
        (acct,) = [a for a in self.identity["accounts"] if a["username"] == self.sam]
        self.account = acct
        self.account_id = acct["id"]
        return self


@pytest.fixture(autouse=True)
def api_contract():
    """In the contract pass, fails the test when an answer quelld gave it broke
    docs/openapi.yaml."""
    yield
    if contract.ENABLED:
        bad = contract.collect()
        assert not bad, "answers that break docs/openapi.yaml:\n" + "\n".join(bad[:30])


_TEST_NODES = None  # the running test's markers: "sqlite", 1, or None (QUELL_E2E_NODES)


@pytest.fixture(autouse=True)
def test_nodes(request):
    """What the running test's markers ask of every Quelld it makes, however made."""
    global _TEST_NODES
    if request.node.get_closest_marker("sqlite") is not None:
        _TEST_NODES = "sqlite"
    elif request.node.get_closest_marker("single_node") is not None:
        _TEST_NODES = 1
    yield
    _TEST_NODES = None


@pytest.fixture
def quelld(lab, tmp_path):
    """Factory: quelld(**opts) → a started Quelld on a fresh store; all are killed at
    the end of the test."""
    made = []

    def make(start=True, name=None, **opts):
        q = Quelld(lab, tmp_path / (name or f"q{len(made)}"), **opts)
        made.append(q)
        return q.start() if start else q
    yield make
    try:
        # Whatever a test did, the audit chain of every quelld still running holds
        # (a test that breaks it on purpose sets tampered).
        for q in made:
            if q.proc is not None and q.proc.poll() is None and not q.tampered:
                tok = q.token(f"chain-check-{secrets.token_hex(3)}", "auditor")
                for port in [q.direct_port] + q.ports[1:]:
                    v = Api(port, tok).get("/api/v1/audit/verify")
                    assert v.status == 200 and v.json["ok"], \
                        f"{q.dir.name} (port {port}): audit verify {v}"
    finally:
        for q in made:
            q.kill()


@pytest.fixture
def make_user(lab):
    """make_user(q, hint, cn=None, uac=512) → User: added to AD, synced into q and
    found there. With sync=False only added: sync, then user.find(q)."""
    def make(q, hint="u", cn=None, uac=512, password=PASSWORD, sync=True):
        sam = lab.name(hint)
        guid = lab.adduser(sam, cn or sam, password, uac)
        u = User(sam, cn or sam, guid, password)
        if sync:
            q.sync()
            u.find(q)
        return u
    return make
