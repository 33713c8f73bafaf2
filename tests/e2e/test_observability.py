"""What operators see: structured logs (text and JSON), GET /metrics scraped by a real
Prometheus (Debian's prometheus, loopback only, stopped at the end), /readyz through
a directory outage (one "unreachable" and one "recovered" line, not one per retry),
and no secret in any quelld log of the run."""
import json
import re
import shutil
import socket
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import PASSWORD, wait_for

pytestmark = pytest.mark.single_node("what one process logs and counts: its log lines, /metrics, its /readyz view of a system")

TOKEN_RE = re.compile(r"qt_[0-9a-f]{24}\.[A-Za-z0-9_-]{43}")
# Every token and password this module used: grepped for in every log at the end.
SECRETS = set()


def remember(q):
    for t in q.tokens.values():
        SECRETS.add(t)
        SECRETS.add(t.split(".", 1)[1])
    return q


def log_lines(q):
    return q.log.read_text(errors="replace").splitlines()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(q, token):
    return q.api().get("/metrics", token=token)


def samples(text):
    """{(name, frozenset(labels.items())): value} from the text exposition format."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)', line)
        assert m, line
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), frozenset(labels.items()))] = float(m.group(3))
    return out


def value(s, name, **labels):
    return s.get((name, frozenset(labels.items())))


class Prometheus:
    """Debian's prometheus scraping one quelld every second with a monitor token."""

    def __init__(self, workdir, target_port, token):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        tok = self.dir / "monitor.token"
        tok.write_text(token)
        tok.chmod(0o600)
        self.port = free_port()
        conf = self.dir / "prometheus.yml"
        conf.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: quell\n    metrics_path: /metrics\n"
            f"    authorization:\n      type: Bearer\n      credentials_file: {tok}\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n")
        self.log = open(self.dir / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={conf}", f"--storage.tsdb.path={self.dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        wait_for(self._ready, 60, 0.2, what="prometheus to be ready")

    def _get(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
            return r.status, r.read()

    def _ready(self):
        assert self.proc.poll() is None, (self.dir / "prometheus.log").read_text()
        try:
            return self._get("/-/ready")[0] == 200
        except OSError:
            return False

    def query(self, expr):
        """The instant vector of expr as {frozenset(labels): value}."""
        st, body = self._get("/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        j = json.loads(body)
        assert st == 200 and j["status"] == "success", body
        return {frozenset((k, v) for k, v in r["metric"].items() if k not in ("job", "instance")):
                float(r["value"][1]) for r in j["data"]["result"]}

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture
def prometheus(tmp_path):
    if shutil.which("prometheus") is None or shutil.which("promtool") is None:
        pytest.skip("Debian's prometheus is not installed (scripts/deps.sh --test)")
    made = []

    def make(port, token):
        p = Prometheus(tmp_path / f"prom{len(made)}", port, token)
        made.append(p)
        return p
    yield make
    for p in made:
        p.stop()


@pytest.mark.sqlite("its hunt is SQLite's dialect (unixepoch)")
def test_metrics_scraped_by_prometheus(quelld, make_user, prometheus):
    q = remember(quelld())
    monitor = q.token("e2e-monitor", "monitor")
    SECRETS.update({monitor, monitor.split(".", 1)[1]})
    users = [make_user(q, "met", sync=False) for _ in range(3)]
    q.sync()
    users = [u.find(q) for u in users]

    # The permission is its own: a monitor token reads metrics and nothing else;
    # a viewer cannot read metrics.
    assert q.api().get("/api/v1/actions", token=monitor).status == 403
    assert q.api("viewer").get("/metrics").status == 403
    assert q.api().get("/metrics", token=None).status == 401

    prom = prometheus(q.port, monitor)
    api = q.api("responder")
    for u in users[:2]:
        assert api.run("disable", u.identity_id)["status"] == "completed"
    assert api.run("enable", users[0].identity_id)["status"] == "completed"

    r = scrape(q, monitor)
    assert r.status == 200, r
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4"), r.headers
    text = r.raw.decode()
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    s = samples(text)
    assert value(s, "quell_actions_total", type="disable", status="completed") == 2
    assert value(s, "quell_actions_total", type="enable", status="completed") == 1
    assert value(s, "quell_actions_total", type="disable", status="failed") == 0
    assert value(s, "quell_steps_total", system="corp", outcome="succeeded") == 3
    assert value(s, "quell_step_duration_seconds_count", system="corp") == 3
    assert value(s, "quell_step_duration_seconds_bucket", system="corp", le="+Inf") == 3
    assert value(s, "quell_vendor_responses_total", system="corp", **{"class": "2xx"}) >= 3
    assert value(s, "quell_provider_call_duration_seconds_count", system="corp") >= 3
    assert value(s, "quell_system_up", system="corp") == 1
    assert value(s, "quell_queue_depth") == 0
    assert value(s, "quell_approvals_pending") == 0
    assert value(s, "quell_identities") >= 3
    assert value(s, "quell_accounts", system="corp", state="enabled") >= 2
    assert value(s, "quell_audit_entries") > 0
    assert value(s, "quell_sync_runs_total", system="corp", result="ok") == 1
    assert value(s, "quell_sync_last_success_timestamp_seconds", system="corp") > 0
    assert value(s, "quell_http_requests_total", route="/api/v1/actions", code="201") == 3
    assert value(s, "quell_http_request_duration_seconds_count",
                 route="/api/v1/actions/{}") >= 3

    # Prometheus itself scraped it and agrees.
    def scraped():
        got = prom.query('quell_actions_total{type="disable",status="completed"}')
        return got if got and list(got.values()) == [2.0] else None
    wait_for(scraped, 60, 0.5, what="prometheus to see the two disables")
    up = prom.query('up{job="quell"}')
    assert list(up.values()) == [1.0], up
    hist = prom.query('quell_step_duration_seconds_count{system="corp"}')
    assert list(hist.values()) == [3.0], hist
    posts = prom.query('quell_http_requests_total{route="/api/v1/actions",code="201"}')
    assert list(posts.values()) == [3.0], posts

    # Audit verification is a metric and a log line.
    assert q.admin.ok("GET", "/api/v1/audit/verify")["ok"] is True
    s = samples(scrape(q, monitor).raw.decode())
    assert value(s, "quell_audit_last_verify_ok") == 1
    assert any("event=audit.verify" in ln and "ok=true" in ln for ln in log_lines(q))


def test_log_lines_text(quelld, make_user):
    q = remember(quelld())
    u = make_user(q, "lgt")
    a = q.api("responder").run("disable", u.identity_id)
    # Bad credentials, counted per client address and written as one line when the
    # audit log is read (src/api/refusals.c aggregates them).
    bogus = "qt_" + "0" * 24 + "." + "A" * 43
    SECRETS.add("A" * 43)
    for _ in range(3):
        assert q.api().get("/api/v1/whoami", token=bogus).status == 401
    q.admin.audit_all()
    q.stop()
    lines = log_lines(q)
    assert any("event=quelld.start" in ln and "systems=corp:ad" in ln for ln in lines), lines
    assert any("event=quelld.stop" in ln for ln in lines), lines
    assert any("event=sync.finished" in ln and "system=corp" in ln for ln in lines), lines
    mine = [ln for ln in lines if "event=action.state" in ln and f"action={a['id']}" in ln]
    changes = [re.search(r"change=(\S+)", ln).group(1) for ln in mine]
    assert changes[0] == "requested" and changes[-1] == "completed", mine
    assert all("type=disable" in ln and "requested_by=e2e-responder" in ln for ln in mine)
    assert any(f"identity_name={u.cn}" in ln or f'identity_name="{u.cn}"' in ln
               for ln in mine), mine
    auth = [ln for ln in lines if "event=auth.failed" in ln]
    # aggregated: fewer lines than refusals, and together they count all three
    assert 1 <= len(auth) < 3 and all("client=127.0.0.1" in ln for ln in auth), auth
    assert sum(int(re.search(r"count=(\d+)", ln).group(1)) for ln in auth) == 3, auth
    # every line is one event: quelld's own lines start with a timestamp
    assert all(re.match(r"\d{4}-\d\d-\d\dT", ln) for ln in lines if ln), lines


def test_log_lines_json(quelld, make_user):
    q = remember(quelld(server={"log_format": "json", "log_level": "debug"}))
    u = make_user(q, "lgj")
    a = q.api("responder").run("disable", u.identity_id)
    q.stop()
    recs = [json.loads(ln) for ln in log_lines(q) if ln]
    assert all({"ts", "level", "event", "msg"} <= r.keys() for r in recs), recs
    start = [r for r in recs if r["event"] == "quelld.start"]
    assert len(start) == 1 and start[0]["systems"] == "corp:ad" and start[0]["port"] == q.port
    assert start[0]["log_format"] == "json" and start[0]["log_level"] == "debug"
    done = [r for r in recs if r["event"] == "action.state" and r["action"] == a["id"]
            and r["change"] == "completed"]
    assert len(done) == 1, recs
    d = done[0]
    assert (d["type"], d["status"], d["identity"], d["identity_name"], d["requested_by"]) == \
        ("disable", "completed", u.identity_id, u.cn, "e2e-responder"), d
    sync = [r for r in recs if r["event"] == "sync.finished"]
    assert sync and isinstance(sync[0]["seen"], int) and sync[0]["seen"] >= 1, sync


def test_config_refuses_bad_log_keys(quelld):
    q = quelld(start=False)
    text = q.conf.read_text()
    q.conf.write_text(text.replace("[server]\n", "[server]\nlog_format = xml\n", 1))
    from conftest import QUELLD
    r = subprocess.run([str(QUELLD), "-c", str(q.conf), "check"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1 and "log_format must be text or json" in r.stderr, r.stderr
    q.conf.write_text(text.replace("[server]\n", "[server]\nlog_level = loud\n", 1))
    r = subprocess.run([str(QUELLD), "-c", str(q.conf), "check"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1 and "log_level must be debug, info, warn or error" in r.stderr


def test_readyz_and_one_line_per_outage(quelld, make_user, outage):
    q = remember(quelld(url=outage.url, engine={"max_attempts": 1000}))
    u = make_user(q, "rdy")
    r = q.api(None).get("/readyz")
    assert r.status == 200 and r.json["status"] == "ready", r
    assert r.json["systems"] == [{"name": "corp", "status": "reachable"}], r
    assert q.api(None).get("/healthz").status == 200

    outage.down()
    try:
        aid = q.api("responder").submit("disable", u.identity_id)["id"]

        def degraded():
            r = q.api(None).get("/readyz")
            return r if r.json["status"] == "degraded" else None
        r = wait_for(degraded, 60, 0.1, what="/readyz to say degraded")
        # Degraded, not down: a load balancer keeps the node.
        assert r.status == 200 and r.json["store"] is True and r.json["engine"] is True, r
        assert r.json["systems"] == [{"name": "corp", "status": "unreachable"}], r

        # About twenty seconds of retries: the delay is capped at a second.
        def retried():
            a = q.api("responder").action(aid)
            return a["steps"][0]["attempts"] >= 20
        wait_for(retried, 120, 0.2, what="the step to be retried twenty times")
    finally:
        outage.up()
    a = q.api("responder").wait_terminal(aid, 120)
    assert a["status"] == "completed" and a["steps"][0]["attempts"] >= 20, a

    def recovered():
        return any("event=system.recovered" in ln for ln in log_lines(q))
    wait_for(recovered, 30, 0.1, what="the recovered line")
    r = q.api(None).get("/readyz")
    assert r.status == 200 and r.json["status"] == "ready", r
    lines = log_lines(q)
    down = [ln for ln in lines if "event=system.unreachable" in ln]
    up = [ln for ln in lines if "event=system.recovered" in ln]
    assert len(down) == 1 and len(up) == 1, down + up
    assert "system=corp" in down[0] and "reason=" in down[0], down
    retries = [ln for ln in lines if "event=step.retry" in ln and f"action={aid}" in ln]
    assert len(retries) == a["steps"][0]["attempts"] - 1, retries
    assert all("next_attempt=" in ln and "reason=" in ln for ln in retries), retries


def test_no_secret_in_any_log(lab, tmp_path_factory):
    """Every quelld log of the run so far (this module's and any test's before it):
    no API token, no token secret, no password."""
    SECRETS.add(PASSWORD)
    SECRETS.add(Path(lab.pw_file).read_text().strip())
    logs = sorted(Path(tmp_path_factory.getbasetemp()).rglob("quelld.log"))
    assert logs, "no quelld log found"
    found = []
    for f in logs:
        text = f.read_text(errors="replace")
        if TOKEN_RE.search(text):
            found.append((str(f), TOKEN_RE.search(text).group(0)[:12] + "…"))
        for s in SECRETS:
            if s and len(s) >= 8 and s in text:
                found.append((str(f), s[:4] + "…"))
    assert not found, found
