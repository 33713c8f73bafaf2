"""
quelld as a service: its version, its arguments read before any configuration, `check`
refusing what a start would refuse, SIGHUP reloading (a bad file keeps the old
configuration; a good one takes effect on the same socket), and systemd's notification
protocol (READY, RELOADING, STOPPING) spoken to a real NOTIFY_SOCKET.
"""
import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import pytest

import conftest
from conftest import REPO, wait_for

QUELL = Path(os.environ["QUELL_BUILD"]) / "src" / "cli" / "quell"


def project_version():
    m = re.search(r"version\s*:\s*'([^']+)'", (REPO / "meson.build").read_text())
    return m.group(1)


def run(*args, **kw):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True,
                          timeout=60, **kw)


def test_version_of_both_programs():
    v = re.escape(project_version())
    for prog, name in ((conftest.QUELLD, "quelld"), (QUELL, "quell")):
        r = run(prog, "--version")
        assert r.returncode == 0, r.stderr
        assert re.fullmatch(rf"{name} {v}( \(git [0-9a-z.-]+\))?\n", r.stdout), r.stdout


def test_arguments_before_configuration(tmp_path):
    # No configuration exists where -c points: an unknown option must be named as
    # such, not reported as a missing file.
    missing = tmp_path / "none.conf"
    for args, want in ((["--bogus"], "unknown option '--bogus'"),
                       (["-c", missing, "--frobnicate"], "unknown option '--frobnicate'"),
                       (["-c", missing, "chek"], "unknown command 'chek'"),
                       (["-c"], "missing FILE after '-c'"),
                       (["-c", missing, "check", "extra"], "unknown command 'check'")):
        r = run(conftest.QUELLD, *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert want in r.stderr, (args, r.stderr)
        assert "cannot open" not in r.stderr
    r = run(conftest.QUELLD, "-c", missing, "check")
    assert r.returncode == 1 and f"cannot open {missing}" in r.stderr, r.stderr
    r = run(conftest.QUELLD, "--help")
    assert r.returncode == 0 and "quelld --version" in r.stdout


@pytest.mark.sqlite("edits [store] path")
def test_check_refuses_what_a_start_refuses(quelld, tmp_path):
    q = quelld(start=False)
    good = q.conf.read_text()
    r = run(conftest.QUELLD, "-c", q.conf, "check")
    assert r.returncode == 0 and r.stdout == f"{q.conf}: ok\n", r.stderr
    cases = [
        (good.replace("listen = 127.0.0.1:0", "listen = 127.0.0.1:70000"),
         "[server] listen must be an IPv4 ADDRESS:PORT, not '127.0.0.1:70000'"),
        (good.replace("listen = 127.0.0.1:0", "listen = localhost:8443"),
         "not 'localhost:8443'"),
        (good.replace("[server]", f"[server]\ntls_cert = {tmp_path}/no.pem\n"
                                  f"tls_key = {tmp_path}/no.key"),
         f"[server] tls_cert: cannot read {tmp_path}/no.pem"),
        (good.replace(f"path = {q.db}", f"path = {tmp_path}/absent/quell.db"),
         f"[store] path {tmp_path}/absent/quell.db: directory {tmp_path}/absent does "
         "not exist"),
        (good.replace(f"path = {q.db}", f"path = {tmp_path}"),
         "not a regular file"),
    ]
    notpem = tmp_path / "cert.txt"
    notpem.write_text("hello\n")
    cases.append((good.replace("[server]", f"[server]\ntls_cert = {notpem}\n"
                                           f"tls_key = {notpem}"),
                  "[server] tls_cert is not PEM"))
    for text, want in cases:
        q.conf.write_text(text)
        r = run(conftest.QUELLD, "-c", q.conf, "check")
        assert r.returncode == 1, (want, r.stdout)
        assert want in r.stderr, (want, r.stderr)
        assert str(q.conf) in r.stderr, r.stderr
        # and a start refuses the same file
        r = run(conftest.QUELLD, "-c", q.conf)
        assert r.returncode == 1 and want in r.stderr, (want, r.stderr)


def log_after(q, offset):
    return q.log.read_bytes()[offset:].decode(errors="replace")


@pytest.mark.single_node("SIGHUP reloads one process")
def test_reload_keeps_old_config_on_error_and_swaps_on_success(quelld, lab):
    q = quelld()
    port, pid = q.direct_port, q.proc.pid
    good = q.conf.read_text()
    assert [s["name"] for s in q.admin.ok("GET", "/api/v1/systems")["systems"]] == ["corp"]

    # A broken file: the reload is refused with file:line, the old config runs on.
    at = q.log.stat().st_size
    q.conf.write_text(good + "\n[engine]\nworkers_typo = 3\n")
    bad_line = len((good + "\n[engine]\nworkers_typo = 3\n").splitlines())
    q.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload refused" in log_after(q, at), 30, what="reload refused")
    line = [ln for ln in log_after(q, at).splitlines() if "reload refused" in ln][0]
    assert f"{q.conf}:{bad_line}: unknown key 'workers_typo' in [engine]" in line, line
    assert q.admin.get("/healthz", token=None).status == 200
    assert [s["name"] for s in q.admin.ok("GET", "/api/v1/systems")["systems"]] == ["corp"]

    # A file that parses but fails what a start checks (an unreadable secret file).
    at = q.log.stat().st_size
    q.conf.write_text(good + f'\n[system "corp2"]\nkind = ad\nurl = {lab.url}\n'
                      f"base_dn = {lab.base_dn}\nbind_dn = {lab.bind_dn}\n"
                      f"password_file = {q.dir}/missing.pw\n")
    q.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload refused" in log_after(q, at), 30, what="second refusal")
    assert "missing.pw" in log_after(q, at)
    assert [s["name"] for s in q.admin.ok("GET", "/api/v1/systems")["systems"]] == ["corp"]

    # A good new file: a second system appears, on the same port and process.
    at = q.log.stat().st_size
    q.conf.write_text(good + f'\n[system "corp2"]\nkind = ad\nurl = {lab.url}\n'
                      f"ca_file = {lab.ca}\nbase_dn = {lab.base_dn}\n"
                      f"bind_dn = {lab.bind_dn}\npassword_file = {lab.pw_file}\n")
    q.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reloaded: node" in log_after(q, at), 30, what="reloaded")
    assert f"(port {port})" in log_after(q, at)
    assert q.proc.pid == pid and q.proc.poll() is None
    names = sorted(s["name"] for s in q.admin.ok("GET", "/api/v1/systems")["systems"])
    assert names == ["corp", "corp2"]
    # the engine after the swap runs actions
    r = q.admin.ok("POST", "/api/v1/sync", {"system": "corp2"}, want=(200, 201, 202))
    assert r is not None


def recv_all(sock):
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


def test_systemd_notify_protocol(quelld, tmp_path):
    q = quelld(start=False)
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    got = []
    env = dict(os.environ, NOTIFY_SOCKET=str(path))
    logf = open(q.log, "ab")
    q.proc = subprocess.Popen([str(conftest.QUELLD), "-c", str(q.conf)], env=env,
                              stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
    logf.close()
    try:
        def seen(word):
            got.extend(recv_all(sock))
            return any(word in m for m in got)
        wait_for(lambda: seen("READY=1"), 30, what="READY=1")
        ready = [m for m in got if "READY=1" in m][0]
        assert f"MAINPID={q.proc.pid}" in ready
        # READY comes once the listener is up: the log already names the port.
        m = re.search(r"listening on \S+ \(port (\d+)\)", q.log.read_text())
        assert m, q.log.read_text()
        q.port = int(m.group(1))
        assert q.admin.get("/healthz", token=None).status == 200
        got.clear()
        q.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: seen("READY=1"), 30, what="READY=1 after the reload")
        assert "RELOADING=1" in got[0], got
        got.clear()
        q.proc.send_signal(signal.SIGTERM)
        assert q.proc.wait(timeout=30) == 0
        got.extend(recv_all(sock))
        assert any("STOPPING=1" in m for m in got), got
    finally:
        q.proc.kill() if q.proc.poll() is None else None
        q.proc = None
        sock.close()


def test_store_is_private_whatever_the_umask(quelld):
    old = os.umask(0o022)
    try:
        q = quelld()
    finally:
        os.umask(old)
    for f in q.dir.iterdir():
        if f.name.startswith("quell.db"):
            assert f.stat().st_mode & 0o077 == 0, (f, oct(f.stat().st_mode))
