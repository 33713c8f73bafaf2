"""Privilege separation (docs/quelld.8, PRIVILEGE SEPARATION): quelld with an AD system
(the Samba lab), an Entra one (the Graph emulator) and an Okta one (the Okta emulator),
each secret in a directory of its own, apart from the store.

- After syncs and actions on all three, the front process's memory (every readable
  region of /proc/<front>/mem) holds none of the three secrets, while the executor's
  holds each of them (so the scan does find what is there).
- The sandboxed front could not open the secret files (EACCES, its own probe at start),
  runs with no_new_privs and a seccomp filter, and so does the executor.
- A forged request and a malformed frame, written on one of the front's own channels
  (taken with pidfd_getfd), are refused by the executor with an ERROR and a log line.
- A reload has the executor read the secrets again; actions still work after it.
- Either process dying ends the other: the front exits non-zero when the executor is
  killed, and the executor goes when the front is.
- The console's OpenID Connect sign-in (FakeIssuer, test_web.py) works, and its client
  secret is the executor's alone: the executor posts the code grant, the front neither
  can open client_secret_file nor holds the secret in its memory, before and after a
  reload. So is the SSF transmitter's key: the front serves the JWK Set the executor
  gave it and never reads key_file (test_ssf.py's SETs are signed by the executor).
- Started as root with [server] user = nobody, both processes run as nobody and
  actions still complete; user = root and an unknown user are refused."""
import ctypes
import http.client
import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

import pytest

import conftest as base
from cloud.cloudlib import CloudQuelld, tag
from cloud.conftest import Graph, Okta, cloud_dir, graph, okta_emu  # noqa: F401 (fixtures)
from test_web import issuer  # noqa: F401 (fixture)

pytestmark = pytest.mark.sqlite("one process's privilege separation: its pids, /proc, "
                                "the owner of its SQLite files")

SYS_PIDFD_GETFD = 438  # x86_64, aarch64 and the rest of the unified table


CHUNK = 64 << 20
OVERLAP = 4096  # longer than any secret: one split across two chunks is still seen


def read_memory(pid):
    """Every readable mapping of pid, in chunks that overlap. Mappings of 4 GiB or more
    are left out: only a sanitizer's shadow memory is that large, and it holds shadow
    bytes, never a copy of the program's data."""
    out = []
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            addr, perms = line.split()[:2]
            if perms[0] != "r" or line.rstrip().endswith("[vvar]"):
                continue
            lo, hi = (int(x, 16) for x in addr.split("-"))
            if hi - lo >= 4 << 30:
                continue
            for at in range(lo, hi, CHUNK):
                try:
                    mem.seek(at)
                    out.append(mem.read(min(CHUNK + OVERLAP, hi - at)))
                except OSError:
                    pass  # a guard page or a mapping gone meanwhile
    return out


def holds(regions, secret):
    b = secret.encode()
    return any(b in r for r in regions)


def status(pid):
    return dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text()
                .splitlines() if ":\t" in line)


def pidfd_getfd(pid, fd):
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        r = libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
        if r < 0:
            raise OSError(ctypes.get_errno(), "pidfd_getfd")
        return r
    finally:
        os.close(pidfd)


def frame(type_, payload):
    return struct.pack(">HHI", 0x5102, type_, len(payload)) + payload


def s(v):
    b = v.encode()
    return b"s" + struct.pack(">I", len(b)) + b + b"\0"


def i(v):
    return b"i" + struct.pack(">q", v)


EXECUTE, RESULT, ERROR = 5, 7, 15


def read_msg(sock):
    def exact(n):
        buf = b""
        while len(buf) < n:
            chunk = os.read(sock, n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf
    hdr = exact(8)
    if hdr is None:
        return None, None
    magic, type_, n = struct.unpack(">HHI", hdr)
    assert magic == 0x5102
    return type_, exact(n)


OIDC = """
[oidc]
issuer = {url}
audience = api://quell-privsep-e2e
jwks_file = {jwks}
allow_plaintext = yes
client_id = {client_id}
client_secret_file = {secret}
authorization_endpoint = {url}/authorize
token_endpoint = {url}/token

[grant "console-responders"]
match = app_role:Quell.Responder
role = responder

[ssf]
issuer = https://quell-privsep.example
key_file = {ssf_key}
kid = quell-privsep
"""


def ssf_key(path):
    """A P-256 key for the SSF transmitter, and the longest line of its PEM (what
    the executor holds and the front must not)."""
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-out", str(path)], check=True,
                   capture_output=True)
    path.chmod(0o600)
    return max((ln for ln in path.read_text().splitlines() if "-----" not in ln), key=len)


def get(url, cookie=None):
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    try:
        c.request("GET", u.path + (f"?{u.query}" if u.query else ""),
                  headers={"Cookie": cookie} if cookie else {})
        r = c.getresponse()
        r.read()
        return r.status, r.getheader("Location"), r.getheader("Set-Cookie")
    finally:
        c.close()


def sign_in(q, issuer):  # noqa: F811 (fixture)
    """The console's sign-in as a browser makes it, redirects followed by hand."""
    before = len(issuer.token_requests)
    st, to_issuer, login = get(f"http://127.0.0.1:{q.port}/api/v1/session/oidc/start")
    assert st == 302 and to_issuer.startswith(f"{issuer.url}/authorize?"), (st, to_issuer)
    st, back, _ = get(to_issuer)
    assert st == 302 and back.startswith(f"http://127.0.0.1:{q.port}/"), (st, back)
    st, where, session = get(back, cookie=login.split(";")[0])
    assert (st, where) == (302, "/#/identities"), (st, where, q.log.read_text()[-2000:])
    assert session.startswith("quell_session="), session
    (form, outcome), = issuer.token_requests[before:]
    assert outcome == "ok" and form["client_secret"] == issuer.client_secret, outcome


@pytest.fixture
def world(lab, graph, okta_emu, issuer, tmp_path):  # noqa: F811 (fixtures)
    sec = tmp_path / "secrets"
    sec.mkdir()
    ad_pw = sec / "ad.pw"
    shutil.copy(lab.pw_file, ad_pw)
    corp = {"kind": "ad", "url": lab.url, "ca_file": lab.ca, "base_dn": lab.base_dn,
            "bind_dn": lab.bind_dn, "password_file": ad_pw, "max_concurrency": 2}
    systems = {"corp": corp, "cloud": graph.system(sec), "okta": okta_emu.system(sec)}
    q = CloudQuelld(tmp_path / "q", systems)
    ssf_line = ssf_key(sec / "ssf.key")
    q.conf.write_text(q.conf.read_text() + OIDC.format(
        url=issuer.url, jwks=issuer.jwks, client_id=issuer.client_id,
        secret=issuer.secret_file, ssf_key=sec / "ssf.key"))
    secrets = {"ad": ad_pw.read_text().strip(), "entra": graph.secret,
               "okta": (sec / "okta.token").read_text().strip(),
               "oidc": issuer.client_secret, "ssf": ssf_line}
    assert all(len(v) >= 8 for v in secrets.values()), secrets.keys()
    q.start()
    try:
        yield q, secrets
    finally:
        q.stop()


def pids(q):
    m = re.findall(r"privsep: front pid (\d+), executor pid (\d+), (\d+) channels",
                   q.log.read_text())
    assert m, q.log.read_text()
    front, executor, n = (int(x) for x in m[-1])
    assert front == q.proc.pid
    return front, executor, n


def act_everywhere(q, lab, graph, okta_emu):
    t = tag()
    sam = lab.name("ps")
    lab.adduser(sam, sam, base.PASSWORD)
    (eid,) = graph.seed([{"userPrincipalName": f"{t}@quelle2e.onmicrosoft.com",
                          "displayName": f"{t} entra"}])
    (oid,) = okta_emu.seed([{"login": f"{t}@okta.example", "email": f"{t}@mail.example",
                             "firstName": t, "lastName": "Okta"}])
    for system in ("corp", "cloud", "okta"):
        q.sync(system)
    ad = q.identity_by("corp", "username", sam)
    ok = q.identity_by("okta", "username", f"{t}@okta.example")
    en = q.identity_by("cloud", "upn", f"{t}@quelle2e.onmicrosoft.com")
    for idn, system in ((ad, "corp"), (ok, "okta"), (en, "cloud")):
        a = q.admin.run("disable", idn["id"], account_id=q.account_of(idn, system)["id"])
        assert a["status"] == "completed", a
    assert lab.uac(sam) & base.UAC_DISABLE
    assert okta_emu.user(oid)["status"] == "SUSPENDED"
    assert graph.user(eid)["accountEnabled"] is False


def test_front_holds_no_secret(world, lab, graph, okta_emu, issuer):  # noqa: F811
    q, secrets = world
    act_everywhere(q, lab, graph, okta_emu)
    sign_in(q, issuer)
    front, executor, _ = pids(q)
    log = q.log.read_text()
    assert "sandbox: secret files unreadable (EACCES) from the front process: 5 file(s)" \
        in log, log
    # the transmitter's JWK Set, from the executor's key
    jwks = q.admin.get("/ssf/jwks.json", token=None)
    assert jwks.status == 200 and [k["kid"] for k in jwks.json["keys"]] == \
        ["quell-privsep"] and "d" not in jwks.json["keys"][0], jwks.json
    assert "the front process can read secret file" not in log
    for pid in (front, executor):
        st = status(pid)
        assert st["NoNewPrivs"].strip() == "1", (pid, st)
        assert st["Seccomp"].strip() == "2", (pid, st)
    front_mem, exec_mem = read_memory(front), read_memory(executor)
    assert sum(len(r) for r in front_mem) > 1 << 20
    for name, secret in secrets.items():
        assert holds(exec_mem, secret), f"the scan does not see the executor's {name} secret"
        assert not holds(front_mem, secret), f"the front's memory holds the {name} secret"


def test_forged_messages_refused(world):
    q, _ = world
    front, executor, n = pids(q)
    # The front's end of its last channel (the one it uses only when every other is
    # busy): socketpairs are made control first, front end before executor end.
    fd = 3 + 2 * n
    assert os.readlink(f"/proc/{front}/fd/{fd}").startswith("socket:")
    sock = pidfd_getfd(front, fd)
    try:
        step = (s("nosuch") + s("stp_forged") + b"n" + b"n" +
                s("6f1c0a4e-2b7d-4c1a-9f00-0123456789ab") + b"n" + i(0) + b"n" + i(0) +
                i(0))
        os.write(sock, frame(EXECUTE, step))
        type_, body = read_msg(sock)
        assert type_ == ERROR and b"no system 'nosuch'" in body, (type_, body)
        step = (s("corp") + s("stp_forged") + b"n" + b"n" + s("CN=Administrator") + b"n" +
                i(0) + b"n" + i(0) + i(0))
        os.write(sock, frame(EXECUTE, step))
        type_, body = read_msg(sock)
        assert type_ == ERROR and b"not an objectGUID" in body, (type_, body)
        os.write(sock, frame(EXECUTE, b"s\xff\xff\xff\xff"))
        type_, body = read_msg(sock)
        assert type_ == ERROR and b"runs past the message" in body, (type_, body)
        assert read_msg(sock) == (None, None), "the channel stays open after a bad frame"
    finally:
        os.close(sock)
    log = q.log.read_text()
    assert "executor refused a EXECUTE request: system: no system 'nosuch'" in log
    assert "executor refused a EXECUTE request: account_ref: not an objectGUID" in log
    assert "executor refused a malformed request" in log
    assert q.admin.get("/healthz", token=None).status == 200


def test_reload_and_crashes(world, lab, graph, okta_emu, issuer):  # noqa: F811
    q, secrets = world
    front, executor, _ = pids(q)
    os.kill(front, signal.SIGHUP)
    base.wait_for(lambda: "reloaded: node" in q.log.read_text(), 60, what="the reload")
    act_everywhere(q, lab, graph, okta_emu)
    sign_in(q, issuer)
    front_mem = read_memory(front)
    assert not any(holds(front_mem, v) for v in secrets.values())
    # The executor dies: the front says so and exits non-zero.
    os.kill(executor, signal.SIGKILL)
    assert q.proc.wait(timeout=60) != 0
    assert re.search(rf"the executor \(pid {executor}\) exited \(signal 9\): quelld stops",
                     q.log.read_text())
    q.proc = None
    # The front dies: the executor goes with it.
    q.start()
    front, executor, _ = pids(q)
    q.proc.kill()
    q.proc.wait(timeout=30)
    q.proc = None
    base.wait_for(lambda: not Path(f"/proc/{executor}").exists() or
                  status(executor).get("State", "").startswith("Z"), 30,
                  what="the executor to exit")


DROP_USER = "nobody"


@pytest.fixture
def dropped(graph, okta_emu, tmp_path):  # noqa: F811 (fixtures)
    """quelld started as root with [server] user = nobody: its secrets root's alone
    (in tmp_path, which only root may enter), its store in a directory of nobody's."""
    if os.geteuid() != 0:
        pytest.skip("starting as root needs root")  # CI runs the suite as root
    import pwd
    pw = pwd.getpwnam(DROP_USER)
    sec = tmp_path / "secrets"
    sec.mkdir()
    systems = {"cloud": graph.system(sec), "okta": okta_emu.system(sec)}
    work = Path(tempfile.mkdtemp(prefix="quell-privsep-drop-"))
    os.chown(work, pw.pw_uid, pw.pw_gid)
    q = CloudQuelld(work, systems, server={"user": DROP_USER})
    try:
        assert q.db.stat().st_uid == pw.pw_uid, "token create made the store as root"
        q.start()
        yield q, pw
    finally:
        q.stop()
        shutil.rmtree(work, ignore_errors=True)


def asan_build():
    return "libasan" in subprocess.run(["ldd", str(base.QUELLD)], capture_output=True,
                                       text=True).stdout


def ids(pid, what):
    return [int(x) for x in status(pid)[what].split()]


def test_started_as_root_both_drop(dropped, graph, okta_emu):  # noqa: F811
    q, pw = dropped
    front, executor, _ = pids(q)
    log = q.log.read_text()
    assert f"privsep: both processes run as user {DROP_USER} (uid {pw.pw_uid}, gid " \
        f"{pw.pw_gid})" in log, log
    for pid in (front, executor):
        assert ids(pid, "Uid") == [pw.pw_uid] * 4, (pid, status(pid)["Uid"])
        assert ids(pid, "Gid") == [pw.pw_gid] * 4, (pid, status(pid)["Gid"])
        assert status(pid)["Groups"].split() == [], (pid, status(pid)["Groups"])
        assert status(pid)["CapEff"].strip() == "0000000000000000", pid
        # not dumpable: /proc/<pid> is root's, so no other process of the user may
        # read its memory (a sanitizer build keeps it dumpable for LeakSanitizer)
        assert Path(f"/proc/{pid}/mem").stat().st_uid == \
            (pw.pw_uid if asan_build() else 0), pid
    assert "sandbox: secret files unreadable (EACCES) from the front process: 2 file(s)" \
        in log, log
    t = tag()
    (eid,) = graph.seed([{"userPrincipalName": f"{t}@quelle2e.onmicrosoft.com",
                          "displayName": f"{t} entra"}])
    (oid,) = okta_emu.seed([{"login": f"{t}@okta.example", "email": f"{t}@mail.example",
                             "firstName": t, "lastName": "Okta"}])
    for system in ("cloud", "okta"):
        q.sync(system)
    ok = q.identity_by("okta", "username", f"{t}@okta.example")
    en = q.identity_by("cloud", "upn", f"{t}@quelle2e.onmicrosoft.com")
    for idn, system in ((ok, "okta"), (en, "cloud")):
        a = q.admin.run("disable", idn["id"], account_id=q.account_of(idn, system)["id"])
        assert a["status"] == "completed", a
    assert okta_emu.user(oid)["status"] == "SUSPENDED"
    assert graph.user(eid)["accountEnabled"] is False
    assert all(p.stat().st_uid == pw.pw_uid for p in q.dir.glob("quell.db*"))
    # A reload reads the secrets again as nobody, who may not: refused, the systems
    # in force keep serving.
    os.kill(front, signal.SIGHUP)
    base.wait_for(lambda: "reload refused, the configuration in force stays" in
                  q.log.read_text(), 60, what="the reload to be refused")
    assert re.search(r"reload refused, the configuration in force stays: \S+:\d+: "
                     r"\w+_file \S+: Permission denied", q.log.read_text()), \
        q.log.read_text()[-2000:]
    q.sync("okta")
    assert ids(executor, "Uid") == [pw.pw_uid] * 4


@pytest.mark.parametrize("user, why", [
    ("root", "[server] user: 'root' has root's uid 0: name an unprivileged user"),
    ("quell-no-such-user", "[server] user: no user 'quell-no-such-user' on this system"),
])
def test_bad_user_refused(tmp_path, user, why):
    conf = tmp_path / "quelld.conf"
    conf.write_text(f"[server]\nlisten = 127.0.0.1:0\nuser = {user}\n\n"
                    f"[store]\npath = {tmp_path / 'quell.db'}\n")
    for args in ([], ["check"]):
        r = subprocess.run([str(base.QUELLD), "-c", str(conf), *args], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert f"{conf}:3: {why}" in r.stderr, (args, r.stderr)
    assert not (tmp_path / "quell.db").exists()
