"""A vendor's budget is the tenant's, not a node's: two nodes on one PostgreSQL database
with [system] shared_rate take their requests from one bucket in the database, so the
Okta emulator sees no more than the budget from both together; and a bad budget is
refused by quelld check and at start, naming the key."""
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest

import conftest as base
from cloud.cloudlib import OKTA_SERVER, CloudQuelld, Emulator, secret_file, tag
from conftest import postgres

TOKEN = "00pgRate" + "x" * 32
RATE, BURST, N = 2, 2, 12
SUSPEND = "/lifecycle/suspend"


class PgCloudQuelld(CloudQuelld):
    """CloudQuelld on a shared PostgreSQL database."""

    def __init__(self, workdir, systems, store, node):
        self.pg_store = store
        super().__init__(workdir, systems, server={"node_id": node, "workers": 4})

    def write_conf(self):
        """CloudQuelld's configuration, its [store] (whichever it chose) this one."""
        super().write_conf()
        text, n = re.subn(r"\[store\]\n(?:[^\n]+\n)*",
                          f"[store]\nbackend = postgres\nconninfo = {self.pg_store}\n",
                          self.conf.read_text())
        assert n == 1, text
        self.conf.write_text(text)


@pytest.fixture
def okta(tmp_path):
    if not Path(OKTA_SERVER).exists():
        pytest.skip(f"not installed: {OKTA_SERVER}")
    emu = Emulator(OKTA_SERVER, [], tmp_path / "okta", "okta")
    emu.ctl("POST", "/tokens", {"token": TOKEN})
    yield emu
    emu.stop()


def system(emu, d, **extra):
    return {"cloud": {"kind": "okta", "org_url": emu.url, "allow_plaintext": "yes",
                      "api_token_file": secret_file(d, "okta.token", TOKEN),
                      "timeout": 20, "max_concurrency": 4, **extra}}


def at(entry):
    return datetime.fromisoformat(entry["at"].replace("Z", "+00:00")).timestamp()


def test_budget_shared_by_two_nodes(okta, tmp_path):
    store, _ = postgres().new_db()
    nodes = []
    try:
        for x in "ab":
            d = tmp_path / f"n{x}"
            d.mkdir()
            nodes.append(PgCloudQuelld(d, system(okta, d, shared_rate=RATE,
                                                 shared_burst=BURST), store, f"r{x}"))
        for q in nodes:
            q.start()
        t = tag()
        users = [{"login": f"{t}s{i}@okta.example", "email": f"{t}s{i}@mail.example",
                  "firstName": t, "lastName": f"S{i}"} for i in range(N)]
        okta.ctl("POST", "/users", {"users": users})
        nodes[0].sync()
        idns = [nodes[0].identity_by("cloud", "username", u["login"]) for u in users]

        def submit(item):
            i, idn = item
            return nodes[i % 2].admin.submit("disable", idn["id"])["id"]
        with ThreadPoolExecutor(N) as ex:
            aids = list(ex.map(submit, enumerate(idns)))
        acts = [nodes[i % 2].admin.wait_terminal(a, 120) for i, a in enumerate(aids)]
        assert [a["status"] for a in acts] == ["completed"] * N, \
            [a["steps"][0]["message"] for a in acts]
        # Both nodes sent some (and any peer the suite runs beside each), and the
        # budget held them back rather than failing them.
        starts = [e for e in nodes[1].admin.audit_all() if e["event"] == "step.started"]
        assert len({e["actor"] for e in starts}) >= 2, starts
        assert all(a["steps"][0]["attempts"] == 1 for a in acts)
        assert sum(a["steps"][0]["waits"] for a in acts) >= N - BURST

        sent = sorted(at(e) for e in okta.ctl("GET", "/stats")["recent"]
                      if e["method"] == "POST" and SUSPEND in e["path"])
        assert len(sent) == N, sent
        # Within any span, no more than the burst and what the rate refilled (a
        # request of slack for the clocks of two processes).
        for i in range(N):
            for j in range(i, N):
                assert j - i + 1 <= BURST + RATE * (sent[j] - sent[i]) + 1, \
                    (i, j, sent[j] - sent[i])
        assert sent[-1] - sent[0] >= (N - BURST - 1) / RATE
    finally:
        for q in nodes:
            q.stop()


def test_bad_budget_refused(okta, tmp_path):
    for extra, word in (({"shared_rate": "fast"}, "shared_rate"),
                        ({"shared_rate": 0}, "shared_rate"),
                        ({"shared_rate": 5, "shared_burst": "0"}, "shared_burst"),
                        ({"shared_burst": 3}, "shared_burst")):
        d = tmp_path / f"bad{tag()}"
        d.mkdir()
        q = CloudQuelld(d, system(okta, d, **extra))
        # quelld check and a start refuse it alike.
        for args in (["check"], []):
            r = subprocess.run([str(base.QUELLD), "-c", str(q.conf), *args],
                               capture_output=True, text=True, timeout=60,
                               stdin=subprocess.DEVNULL)
            assert r.returncode != 0, (extra, args)
            assert word in r.stderr and "quelld.conf:" in r.stderr, (extra, r.stderr)
