"""
quell's own API contract, checked on the e2e suite's traffic as the vendors' contracts
are on quelld's: with QUELL_E2E_CONTRACT=1 every quelld the suite starts sits behind a
Prism proxy of docs/openapi.yaml, the suite talks to the proxy, and each test fails when
an answer quelld gave broke the document (a property of the wrong type, a status code
the operation does not list, a missing header, ...).

Requests that break the document are not counted: the suite sends invalid requests on
purpose to see them refused. Paths the document does not describe (the console's files)
are not counted either; tests/e2e/test_access.py checks that every API route is in it.
"""
import http.client
import os
import re
import secrets
import socket
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PRISM = REPO / "tests" / "contract" / "node_modules" / ".bin" / "prism"
SPEC = REPO / "docs" / "openapi.yaml"
ENABLED = os.environ.get("QUELL_E2E_CONTRACT") == "1"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
RECEIVED = re.compile(r"\[HTTP SERVER\] (\w+) (\S+) .*Request received")
MARK = "/_quell-contract-mark-"

PROXIES = []  # every proxy started in this session, checked after each test


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Proxy:
    """prism proxy SPEC http://127.0.0.1:UPSTREAM (no --errors: everything is forwarded
    as it is, and what breaks the document is logged)."""

    def __init__(self, upstream_port, workdir, wait_for):
        assert PRISM.exists(), f"no Prism at {PRISM}: scripts/deps.sh --test"
        self.wait_for = wait_for
        self.port = _free_port()
        self.log = Path(workdir) / f"prism-{upstream_port}.log"
        logf = open(self.log, "wb")
        self.proc = subprocess.Popen(
            [str(PRISM), "proxy", str(SPEC), f"http://127.0.0.1:{upstream_port}",
             "-h", "127.0.0.1", "-p", str(self.port)],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT)
        logf.close()

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"prism exited: {self.text()[-3000:]}")
            return "Prism is listening" in self.text()
        wait_for(up, 60, 0.1, what="prism proxy of docs/openapi.yaml")
        self.checked = 0
        PROXIES.append(self)

    def text(self):
        try:
            return ANSI.sub("", self.log.read_text(errors="replace"))
        except FileNotFoundError:
            return ""

    def settle(self):
        """Returns once Prism has logged the outcome of every request answered so far:
        a marker request sent now is logged after them."""
        if self.proc.poll() is not None:
            return
        mark = MARK + secrets.token_hex(6)
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            c.request("GET", mark)
            c.getresponse().read()
        finally:
            c.close()
        seen = re.compile(rf"get {re.escape(mark)} .*Request received")

        def logged():
            t = self.text()
            m = seen.search(t)
            return m is not None and "Violation: request Selected route not found" in t[m.end():]
        self.wait_for(logged, 30, 0.02, what="prism to log its marker")

    def problems(self):
        """The answers that broke the document since the last call: 'METHOD PATH: what'."""
        text = self.text()
        out, current = [], None
        for line in text[self.checked:].splitlines():
            m = RECEIVED.search(line)
            if m:
                current = f"{m.group(1).upper()} {m.group(2)}"
                continue
            if "Violation: response" in line and current and MARK not in current:
                out.append(f"{current}: {line.split('Violation: ', 1)[1].strip()}")
        self.checked = len(text)
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.settle()
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def collect():
    """Every answer that broke the document since the last collect(), from every proxy
    (stopped ones are dropped after their last look)."""
    bad = []
    for p in list(PROXIES):
        if p.proc.poll() is None:
            p.settle()
        bad += p.problems()
        if p.proc.poll() is not None:
            PROXIES.remove(p)
    return bad
