"""
The audit log delivered to a SIEM: a real rsyslog (imtcp over TLS with the ossl
driver, requiring a client certificate, writing what it receives to files) started by
the test with its own configuration and work directory on loopback. quelld forwards
RFC 5424 to one input and CEF to another; the test reads the files back with strict
parsers. Audit events are made by a viewer asking for the token list: each refusal of
an authenticated principal is one audit entry.
"""
import http.client
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import threading
from pathlib import Path

import pytest

from conftest import QUELLD, Quelld, wait_for

RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
OSSL = Path("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_ossl.so")

pytestmark = [pytest.mark.skipif(not Path(RSYSLOGD).exists() or not OSSL.exists(),
                                 reason="rsyslog and rsyslog-openssl are not installed"),
              pytest.mark.sqlite("reads the forwarding cursor in SQLite's file")]

# ------------------------------------------------------------------ parsers

RFC5424 = re.compile(
    r"<(?P<pri>\d{1,3})>1 (?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?Z) "
    r"(?P<host>[!-~]{1,255}) (?P<app>[!-~]{1,48}) (?P<procid>[!-~]{1,128}) "
    r"(?P<msgid>[!-~]{1,32}) (?P<sd>-|(?:\[[^\s\]=\"]{1,32}(?: [^\s\]=\"]{1,32}=\"(?:[^\"\\\]]|\\[\"\\\]])*\")*\])+)"
    r"(?: (?P<msg>.*))?$")
SD_PARAM = re.compile(r" ([^\s\]=\"]{1,32})=\"((?:[^\"\\\]]|\\[\"\\\]])*)\"")


def parse_5424(line):
    """An RFC 5424 message: (header dict, {sd-id: {param: value}}, msg); raises on
    anything that is not one."""
    m = RFC5424.match(line)
    assert m, f"not RFC 5424: {line[:200]!r}"
    pri = int(m["pri"])
    assert pri <= 191
    sd = {}
    if m["sd"] != "-":
        for el in re.findall(r"\[([^\s\]]+)((?: [^\s\]=\"]+=\"(?:[^\"\\\]]|\\[\"\\\]])*\")*)\]",
                             m["sd"]):
            params = {k: re.sub(r"\\([\"\\\]])", r"\1", v) for k, v in SD_PARAM.findall(el[1])}
            sd[el[0]] = params
    return m.groupdict(), sd, m["msg"] or ""


def parse_cef(text):
    """A strict CEF:0 record: 7 header fields (only \\| and \\\\ escaped) and an
    extension of key=value pairs (values escape only \\\\, \\=, \\n, \\r; an '=' that
    is not escaped starts the next key). Returns (header list, extension dict)."""
    assert text.startswith("CEF:0|"), text[:60]
    fields, cur, i = [], [], 0
    while len(fields) < 7:
        assert i < len(text), f"CEF header ends early: {text[:200]!r}"
        c = text[i]
        if c == "\\":
            assert text[i + 1] in "|\\", f"bad header escape at {i}: {text[:200]!r}"
            cur.append(text[i + 1])
            i += 2
        elif c == "|":
            fields.append("".join(cur))
            cur = []
            i += 1
        else:
            assert c not in "\r\n"
            cur.append(c)
            i += 1
    ext_text = text[i:]
    assert fields[0] == "CEF:0" and fields[1] == "quell" and fields[2] == "quell"
    assert re.fullmatch(r"\d|10", fields[6]), fields
    # Keys start where " key=" appears with the '=' unescaped.
    ext, pos = {}, 0
    keys = [m for m in re.finditer(r"(?:^| )([A-Za-z0-9_]+)=", ext_text)
            if not _escaped(ext_text, m.end() - 1)]
    assert keys and keys[0].start() == 0, f"extension: {ext_text[:100]!r}"
    for n, m in enumerate(keys):
        end = keys[n + 1].start() if n + 1 < len(keys) else len(ext_text)
        raw = ext_text[m.end():end]
        out, j = [], 0
        while j < len(raw):
            if raw[j] == "\\":
                nxt = raw[j + 1]
                assert nxt in "\\=nr", f"bad extension escape: {raw!r}"
                out.append({"n": "\n", "r": "\r"}.get(nxt, nxt))
                j += 2
            else:
                assert raw[j] not in "=\r\n", f"unescaped '=' or line break: {raw!r}"
                out.append(raw[j])
                j += 1
        assert m[1] not in ext, f"key {m[1]} twice"
        ext[m[1]] = "".join(out)
        pos = end
    return fields, ext


def _escaped(s, i):
    n = 0
    while i > 0 and s[i - 1] == "\\":
        n += 1
        i -= 1
    return n % 2 == 1


# ------------------------------------------------------------------ fixtures


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d):
    """A test CA, a server certificate for localhost and 127.0.0.1, a client one."""
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             "/CN=quell test CA", "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    for name, ext in (("server", "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                       "extendedKeyUsage=serverAuth\n"),
                      ("client", "extendedKeyUsage=clientAuth\n")):
        (d / f"{name}.ext").write_text(ext)
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext",
                 "-out", f"{name}.pem", cwd=d)
    return d


class Rsyslog:
    """rsyslogd in the foreground with a configuration of its own: two TLS inputs on
    loopback (RFC 5424 and CEF), each written raw, one message a line, to a file."""

    def __init__(self, d, pki):
        self.dir = d
        (d / "work").mkdir(parents=True, exist_ok=True)
        self.ports = {"rfc5424": _free_port(), "cef": _free_port()}
        self.files = {k: d / f"{k}.log" for k in self.ports}
        self.conf = d / "rsyslog.conf"
        self.log = d / "rsyslogd.out"
        self.proc = None
        inputs = "\n".join(
            f'input(type="imtcp" port="{p}" address="127.0.0.1" ruleset="{k}")'
            for k, p in self.ports.items())
        rulesets = "\n".join(
            f'ruleset(name="{k}" queue.type="Direct") {{ action(type="omfile" '
            f'file="{self.files[k]}" template="raw" flushOnTXEnd="on") }}'
            for k in self.ports)
        self.conf.write_text(f"""
global(workDirectory="{d / 'work'}" maxMessageSize="64k"
  DefaultNetstreamDriver="ossl"
  DefaultNetstreamDriverCAFile="{pki / 'ca.pem'}"
  DefaultNetstreamDriverCertFile="{pki / 'server.pem'}"
  DefaultNetstreamDriverKeyFile="{pki / 'server.key'}")
main_queue(queue.type="Direct")
module(load="imtcp" StreamDriver.Name="ossl" StreamDriver.Mode="1"
  StreamDriver.AuthMode="x509/certvalid" MaxSessions="20")
template(name="raw" type="string" string="%rawmsg%\\n")
{inputs}
{rulesets}
""")

    def start(self):
        assert self.proc is None
        out = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [RSYSLOGD, "-n", "-f", str(self.conf), "-i", str(self.dir / "rsyslogd.pid")],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        out.close()

        def listening():
            assert self.proc.poll() is None, self.log.read_text()
            for p in self.ports.values():
                try:
                    socket.create_connection(("127.0.0.1", p), timeout=1).close()
                except OSError:
                    return False
            return True
        wait_for(listening, 30, what="rsyslogd to listen")
        return self

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None

    def lines(self, kind):
        f = self.files[kind]
        if not f.exists():
            return []
        return [ln for ln in f.read_text().split("\n") if ln]


@pytest.fixture
def rsyslog(tmp_path):
    r = Rsyslog(tmp_path / "rsyslog", make_pki(tmp_path / "pki"))
    r.pki = tmp_path / "pki"
    yield r.start()
    r.stop()


def add_siems(q, rs):
    with open(q.conf, "a") as f:
        for kind, port in rs.ports.items():
            f.write(f'\n[siem "{kind}"]\nhost = localhost\nport = {port}\nformat = {kind}\n'
                    f"ca_file = {rs.pki / 'ca.pem'}\ncert_file = {rs.pki / 'client.pem'}\n"
                    f"key_file = {rs.pki / 'client.key'}\n")


class Refusals:
    """Audited events, cheaply: a viewer asking for the token list is refused (403)
    and each refusal is an audit entry."""

    def __init__(self, q):
        self.q = q
        self.conn = None

    def one(self):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.q.port, timeout=30)
        try:
            self.conn.request("GET", "/api/v1/tokens",
                              headers={"Authorization": "Bearer " + self.q.tokens["viewer"]})
            r = self.conn.getresponse()
            r.read()
            assert r.status == 403, r.status
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = None
            raise

    def many(self, n):
        for _ in range(n):
            self.one()


def last_seq(q):
    with sqlite3.connect(str(q.db)) as c:
        return c.execute("SELECT coalesce(max(seq), 0) FROM audit").fetchone()[0]


def audit_rows(q):
    with sqlite3.connect(str(q.db)) as c:
        return {s: (e, h) for s, e, h in c.execute("SELECT seq, event, hash FROM audit")}


def seqs_5424(lines):
    out = []
    for ln in lines:
        hdr, sd, msg = parse_5424(ln)
        p = sd["quell@32473"]
        assert hdr["app"] == "quell" and hdr["msgid"] == p["event"]
        assert msg.startswith("{") and f'"seq":{p["seq"]}' in msg
        out.append((int(p["seq"]), p["event"], p["hash"]))
    return out


def seqs_cef(lines):
    out = []
    for ln in lines:
        hdr, sd, msg = parse_5424(ln)
        assert sd == {}
        fields, ext = parse_cef(msg)
        assert fields[4] == hdr["msgid"]
        out.append((int(ext["externalId"]), fields[4], ext["cs4"]))
    return out


def check_complete(got, rows, ordered_exactly):
    """Every entry of the audit log is in got with its event and hash; returns the
    number of duplicates. First appearances are in seq order."""
    seen, firsts = {}, []
    for seq, event, h in got:
        assert rows[seq] == (event, h), f"entry {seq} differs from the store"
        if seq not in seen:
            firsts.append(seq)
        seen[seq] = seen.get(seq, 0) + 1
    missing = sorted(set(rows) - set(seen))
    assert not missing, f"{len(missing)} entries missing, first {missing[:10]}"
    assert firsts == sorted(firsts), "entries arrived out of order"
    dups = sum(n - 1 for n in seen.values())
    if ordered_exactly:
        assert dups == 0 and [s for s, _, _ in got] == sorted(rows)
    return dups


# ------------------------------------------------------------------ tests


def test_thousand_entries_then_outage_and_crash(lab, tmp_path, rsyslog):
    q = Quelld(lab, tmp_path / "q")
    add_siems(q, rsyslog)
    q.start()
    ev = Refusals(q)
    ev.many(1000)
    n = last_seq(q)
    assert n >= 1000

    def delivered(kind, parse):
        return lambda: len({s for s, _, _ in parse(rsyslog.lines(kind))}) >= n
    wait_for(delivered("rfc5424", seqs_5424), 120, what="1000 entries in rsyslog")
    wait_for(delivered("cef", seqs_cef), 120, what="1000 CEF entries in rsyslog")
    rows = audit_rows(q)
    check_complete(seqs_5424(rsyslog.lines("rfc5424")), rows, ordered_exactly=True)
    check_complete(seqs_cef(rsyslog.lines("cef")), rows, ordered_exactly=True)

    # Mid-stream: events keep coming while rsyslog stops, quelld is killed during
    # the outage, both come back.
    stop = threading.Event()
    errors = []

    def produce():
        while not stop.is_set():
            try:
                ev.one()
            except (OSError, http.client.HTTPException, AssertionError) as e:
                errors.append(e)
                if stop.wait(0.05):
                    break
    t = threading.Thread(target=produce)
    t.start()
    try:
        base = last_seq(q)
        wait_for(lambda: last_seq(q) >= base + 300, 60, what="events before the outage")
        rsyslog.stop()
        base = last_seq(q)
        wait_for(lambda: last_seq(q) >= base + 300, 60, what="events during the outage")
        q.kill()
        rsyslog.start()
        q.start()
        ev.q = q
        base = last_seq(q)
        wait_for(lambda: last_seq(q) >= base + 300, 60, what="events after the outage")
    finally:
        stop.set()
        t.join(60)
    n = last_seq(q)
    wait_for(delivered("rfc5424", seqs_5424), 120, what="every entry after the outage")
    wait_for(delivered("cef", seqs_cef), 120, what="every CEF entry after the outage")
    rows = audit_rows(q)
    dups = check_complete(seqs_5424(rsyslog.lines("rfc5424")), rows, ordered_exactly=False)
    dups_cef = check_complete(seqs_cef(rsyslog.lines("cef")), rows, ordered_exactly=False)
    print(f"\n{n} entries delivered; duplicates after the outage and the crash: "
          f"rfc5424 {dups}, cef {dups_cef}")
    # The cursor in the store is durable and was read back after the crash.
    with sqlite3.connect(str(q.db)) as c:
        cur = dict(c.execute("SELECT name, seq FROM siem_cursors"))
    assert set(cur) == {"rfc5424", "cef"} and all(v <= n for v in cur.values())
    q.stop()
    log = q.log.read_text()
    assert "siem rfc5424 (localhost:" in log and "unreachable" in log
    assert str(rsyslog.pki / "client.key") not in log


def test_refused_server_certificate(lab, tmp_path, rsyslog):
    """A server whose certificate does not chain to ca_file gets nothing."""
    other = make_pki(tmp_path / "other")
    q = Quelld(lab, tmp_path / "q")
    with open(q.conf, "a") as f:
        f.write(f'\n[siem "x"]\nhost = localhost\nport = {rsyslog.ports["rfc5424"]}\n'
                f"ca_file = {other / 'ca.pem'}\ncert_file = {rsyslog.pki / 'client.pem'}\n"
                f"key_file = {rsyslog.pki / 'client.key'}\n")
    q.start()
    Refusals(q).many(5)
    wait_for(lambda: "certificate" in q.log.read_text(), 30, what="the refusal logged")
    q.stop()
    assert rsyslog.lines("rfc5424") == []


def test_config_errors(lab, tmp_path):
    q = Quelld(lab, tmp_path / "q")
    with open(q.conf, "a") as f:
        f.write('\n[siem "x"]\nhost = 127.0.0.1\nprotocol = tcp\n')
    r = subprocess.run([str(QUELLD), "-c", str(q.conf), "check"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert re.search(r"quelld\.conf:\d+: siem 'x': protocol tcp sends the audit log in "
                     r"clear text", r.stderr + r.stdout), r.stderr


def _frames(buf):
    """The whole RFC 5425 frames ("LEN MSG") at the start of buf, as text."""
    out, i = [], 0
    while (sp := buf.find(b" ", i)) > 0:
        n = int(buf[i:sp])
        if sp + 1 + n > len(buf):
            break
        out.append(buf[sp + 1:sp + 1 + n].decode())
        i = sp + 1 + n
    return out


def test_server_that_stops_with_entries_unread(lab, tmp_path):
    """A server's TCP stack acknowledges bytes its program has not read, and a server
    that stops with them unread drops them (rsyslog does on SIGTERM). quell sends them
    again on the next connection: nothing the server did not read is lost."""
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(60)
    q = Quelld(lab, tmp_path / "q")
    with open(q.conf, "a") as f:
        f.write(f'\n[siem "s"]\nhost = 127.0.0.1\nport = {srv.getsockname()[1]}\n'
                "protocol = tcp\nallow_plaintext = yes\nformat = rfc5424\n")
    q.start()
    try:
        read_again(q, srv)
    finally:
        q.stop()
        srv.close()


def read_again(q, srv):
    """The server's side of the test above."""
    ev = Refusals(q)
    ev.many(5)
    c, _ = srv.accept()
    c.settimeout(30)
    read = c.recv(65536)
    # Entries keep coming, so quell never sees the connection idle; they pile up
    # unread in the kernel's buffer, acknowledged, until the server drops them.
    stop = threading.Event()
    t = threading.Thread(target=lambda: [ev.one() for _ in iter(stop.is_set, True)])
    t.start()
    try:
        wait_for(lambda: len(c.recv(1 << 20, socket.MSG_PEEK)) > 20000, 60,
                 what="entries waiting unread")
        c.close()   # unread data: the kernel answers with a reset
    finally:
        stop.set()
        t.join(60)
    n = last_seq(q)
    got = {int(parse_5424(m)[1]["quell@32473"]["seq"]) for m in _frames(read)}
    c2, _ = srv.accept()
    c2.settimeout(30)
    buf = b""
    while not set(range(1, n + 1)) <= got | {
            int(parse_5424(m)[1]["quell@32473"]["seq"]) for m in _frames(buf)}:
        chunk = c2.recv(65536)
        assert chunk, "the server's second connection ended early"
        buf += chunk
    c2.close()
