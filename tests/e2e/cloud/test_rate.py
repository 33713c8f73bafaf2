"""Waiting is not failing, against the emulators straight (no Prism: these are HTTP's
generic forms and the vendors' limits, not a spec's examples): a step that quell's
pacing holds back longer than max_attempts tries still completes, with its waits
counted apart from its attempts; a Retry-After in the HTTP-date form is honoured (no
request before it); and a vendor's concurrency 429s lower how many steps quell runs
there at once, so that they stop after the first ones."""
import re
import time
from datetime import datetime, timezone
from email.utils import format_datetime

import pytest

from .cloudlib import GRAPH_SERVER, OKTA_SERVER, CloudQuelld, Emulator, secret_file, tag, \
    wait_for
from .conftest import OKTA_TOKEN, _need

SUSPEND = "POST /api/v1/users/{id}/lifecycle/suspend"


@pytest.fixture
def okta_direct(cloud_dir):
    """A fresh Okta emulator of the test's own (its limits are the test's to set)."""
    _need(OKTA_SERVER)
    emu = Emulator(OKTA_SERVER, [], cloud_dir / f"okta-{tag()}", "okta")
    emu.ctl("POST", "/tokens", {"token": OKTA_TOKEN})
    yield emu
    emu.stop()


def okta_quelld(cloud_dir, emu, engine=None, **system):
    d = cloud_dir / f"quelld-{tag()}"
    d.mkdir()
    tf = secret_file(d, "okta.token", OKTA_TOKEN)
    q = CloudQuelld(d, {"cloud": {"kind": "okta", "org_url": emu.url,
                                  "allow_plaintext": "yes", "api_token_file": tf,
                                  "timeout": 20, **system}}, engine=engine)
    return q.start()


def okta_users(emu, q, n):
    t = tag()
    users = [{"login": f"{t}r{i}@okta.example", "email": f"{t}r{i}@mail.example",
              "firstName": t, "lastName": f"R{i}"} for i in range(n)]
    ids = emu.ctl("POST", "/users", {"users": users})["ids"]
    q.sync()
    return ids, [q.identity_by("cloud", "username", u["login"]) for u in users]


def run_all(q, idns, type_="disable", timeout=120):
    aids = [q.admin.submit(type_, i["id"])["id"] for i in idns]
    return [q.admin.wait_terminal(a, timeout) for a in aids]


def metric(q, name, **labels):
    text = q.admin.get("/metrics").raw.decode()
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"{name}\{{([^}}]*)\}} (\S+)$", line)
        if m and all(f'{k}="{v}"' in m.group(1) for k, v in labels.items()):
            total += float(m.group(2))
    return total


@pytest.mark.sqlite("reads one process's /metrics; and what Okta's rate-limit headers say is learned per node: two nodes each spend the bucket")
def test_pacing_waits_beyond_max_attempts_complete(okta_direct, cloud_dir):
    """12 suspensions through a bucket of 4 requests per 3 s with max_attempts = 2:
    most steps are held back several times, none fails, and each took one attempt."""
    emu = okta_direct
    q = okta_quelld(cloud_dir, emu, engine={"max_attempts": 2}, max_concurrency=4)
    try:
        _, idns = okta_users(emu, q, 12)
        emu.ctl("PUT", "/config", {"rate_limit": 4, "rate_window_s": 3})
        base = emu.ctl("GET", "/stats")["rate_limited"]
        acts = run_all(q, idns)
        steps = [a["steps"][0] for a in acts]
        assert [a["status"] for a in acts] == ["completed"] * 12, \
            [s["message"] for s in steps]
        assert all(s["attempts"] == 1 for s in steps), [s["attempts"] for s in steps]
        held = [s for s in steps if s["waits"] > 0]
        assert len(held) >= 4, [s["waits"] for s in steps]
        assert max(s["waits"] for s in steps) > 2
        assert all(s["wait_ms"] > 0 for s in held)
        assert emu.ctl("GET", "/stats")["rate_limited"] == base
        assert metric(q, "quell_step_waits_total", system="cloud", cause="pacing") >= \
            sum(s["waits"] for s in steps)
    finally:
        q.stop()


def test_retry_after_http_date_honoured(graph, cloud_dir):
    """A 429 whose Retry-After is an HTTP-date: the PATCH is sent again no sooner."""
    d = cloud_dir / f"quelld-{tag()}"
    d.mkdir()
    q = CloudQuelld(d, {"cloud": graph.system(d, graph_base=f"{graph.emu.url}/v1.0",
                                              login_base=graph.emu.url)})
    q.start()
    # The emulator's links name the base it is told; Prism's for the other tests.
    graph.emu.ctl("PUT", "/config", {"graph_base_url": f"{graph.emu.url}/v1.0"})
    try:
        t = tag()
        upn = f"{t}date@quelle2e.onmicrosoft.com"
        (uid,) = graph.seed([{"userPrincipalName": upn, "displayName": f"{t} date"}])
        q.sync()
        idn = q.identity_by("cloud", "upn", upn)
        until = datetime.fromtimestamp(int(time.time()) + 3, timezone.utc)
        graph.emu.ctl("POST", "/faults", {"path_regex": f"/users/{uid}$", "method": "PATCH",
                                          "status": 429, "count": 1,
                                          "retry_after": format_datetime(until, usegmt=True)})
        a = q.admin.run("disable", idn["id"])
        s = a["steps"][0]
        assert a["status"] == "completed", s
        assert s["attempts"] == 2 and s["waits"] == 1, s
        assert s["wait_ms"] >= 1000, s
        patches = [r for r in graph.emu.ctl("GET", "/stats?last=2000")["recent"]
                   if r["method"] == "PATCH" and uid in r["path"]]
        assert [r["status"] for r in patches] == [429, 204], patches
        again = datetime.fromisoformat(patches[1]["time"].replace("Z", "+00:00"))
        assert again >= until, (again, until)
    finally:
        graph.emu.ctl("PUT", "/config", {"graph_base_url": graph.graph_prism.url})
        q.stop()


@pytest.mark.sqlite("reads one process's /metrics: its adaptive concurrency")
def test_concurrency_adapts(okta_direct, cloud_dir):
    """An org that takes 2 requests at once, quell allowed 8: the first burst is
    refused, then quell runs fewer at once, stays one below the level refused and
    the refusals fall away (no probe past it within ENGINE_PROBE_MS, 10 s)."""
    emu = okta_direct
    q = okta_quelld(cloud_dir, emu, max_concurrency=8)
    try:
        _, idns = okta_users(emu, q, 40)
        assert metric(q, "quell_provider_concurrency", system="cloud") == 8
        emu.ctl("PUT", "/config", {"max_concurrency": 2, "latency_ms": 50})
        start = len(emu.ctl("GET", "/stats")["recent"])
        base = emu.ctl("GET", "/stats")["concurrency_limited"]
        acts = run_all(q, idns)
        assert [a["status"] for a in acts] == ["completed"] * 40
        stats = emu.ctl("GET", "/stats")
        refused = stats["concurrency_limited"] - base
        suspends = [r["status"] for r in stats["recent"][start:]
                    if r["method"] == "POST" and "/lifecycle/suspend" in r["path"]]
        assert suspends.count(200) == 40
        first, last = suspends[:10].count(429), suspends[-20:].count(429)
        assert refused >= 1 and first >= 1, suspends
        assert last < first and last <= 1, suspends
        assert refused <= 20, f"{refused} concurrency 429s for 40 writes"
        assert metric(q, "quell_provider_concurrency", system="cloud") < 8
    finally:
        q.stop()
