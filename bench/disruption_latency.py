#!/usr/bin/env python3
"""Benchmark: automatic attack disruption's own latency against the Samba lab.

N identities, each with K linked AD accounts (users made in the lab, synced, then linked
K to an identity), and a [disruption] rule that contains ransomware. Alerts naming one
account of each identity are posted at a steady rate. For every alert:

    total    = last step's provider call finished - alert received      (quelld's clock)
    slowest  = the longest single provider call among its steps
    overhead = total - slowest

received is when quelld's handler took the alert (received_at_us on the alert); each
step's provider call is timed by the worker around the call and recorded in its
step.<status> audit entry (call_started_us, call_finished_us). What is left after the
slowest call is what quell itself adds: parsing, resolving, deciding, authorizing and
storing the action, waking a worker, and the wait for a free connection — plus, when
the calls do not overlap, the other calls. So the fan-out is checked separately: the
steps of one alert are parallel when their calls overlap (span of the calls < 0.75 x
the sum of their durations).

Prints p50/p99 of the overhead; the last line is
`disruption_latency overhead_p99_ms = X` (goal < 1). Never fails on speed.

    bench/disruption_latency.py [--n 50] [--k 3] [--rate 20] [--build DIR] [--lab DIR]
"""
import argparse
import http.client
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def lab_env(lab):
    env = {}
    with open(os.path.join(lab, "env")) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            if k:
                env[k] = v
    return env


class Api:
    def __init__(self, port, token):
        self.port, self.token, self.conn = port, token, None

    def call(self, method, path, body=None):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Authorization": "Bearer " + self.token}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body=data, headers=headers)
        r = self.conn.getresponse()
        return r.status, json.loads(r.read() or b"null")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_quelld(build, env, work, port, k):
    conf = os.path.join(work, "quelld.conf")
    with open(conf, "w") as f:
        f.write(f"""[server]
listen = 127.0.0.1:{port}
workers = 8
[store]
path = {work}/bench.db
[system "corp"]
kind = ad
url = {env['LAB_LDAP_URL']}
ca_file = {env['LAB_CA']}
base_dn = {env['LAB_BASE_DN']}
bind_dn = {env['LAB_BIND_DN']}
password_file = {env['LAB_BIND_PW_FILE']}
max_concurrency = {max(8, 2 * k)}
[disruption "contain"]
categories = ransomware
actions = contain
[disruption_guard]
max_containments = 100000
""")
    quelld = os.path.join(build, "src/daemon/quelld")
    token = subprocess.run([quelld, "-c", conf, "token", "create", "--name", "bench",
                            "--role", "admin"], check=True, capture_output=True,
                           text=True).stdout.strip()
    log = open(os.path.join(work, "quelld.log"), "w")
    proc = subprocess.Popen([quelld, "-c", conf], stderr=log)
    for _ in range(200):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                break
        except OSError:
            time.sleep(0.05)
    return proc, Api(port, token)


def sync(api):
    status, rep = api.call("POST", "/api/v1/sync/corp")
    assert status in (200, 202), rep
    if status == 200:
        return
    before = rep["systems"][0]["finished_run"] or 0
    for _ in range(1200):
        status, st = api.call("GET", "/api/v1/sync")
        s = st["systems"][0]
        if not s["running"] and (s["finished_run"] or 0) > before:
            return
        time.sleep(0.05)
    raise SystemExit("sync did not finish")


def accounts_by_name(api, prefix):
    found, after = {}, None
    while True:
        path = f"/api/v1/identities?q={prefix}&limit=1000" + (f"&after={after}" if after else "")
        status, page = api.call("GET", path)
        assert status == 200, page
        for idn in page["identities"]:
            for acct in idn["accounts"]:
                if (acct.get("username") or "").startswith(prefix):
                    found[acct["username"]] = (idn["id"], acct)
        after = page["next"]
        if not after:
            return found


def build_identities(api, prefix, n, k):
    """Links users prefix0001..prefix(n*k) k at a time to the first one's identity."""
    accts = accounts_by_name(api, prefix)
    groups = []
    for g in range(n):
        names = [f"{prefix}{g * k + j + 1:04d}" for j in range(k)]
        idn, first = accts[names[0]]
        for name in names[1:]:
            other, acct = accts[name]
            status, rep = api.call("DELETE", f"/api/v1/identities/{other}/accounts/"
                                   f"{acct['id']}")
            assert status == 200, rep
            status, rep = api.call("POST", f"/api/v1/identities/{idn}/accounts",
                                   {"account_id": acct["id"]})
            assert status in (200, 201), rep
        groups.append((idn, first))
    return groups


def post_alerts(api, groups, rate):
    ids, gap, t_next = [], 1.0 / rate, time.monotonic()
    for idn, acct in groups:
        now = time.monotonic()
        if now < t_next:
            time.sleep(t_next - now)
        t_next += gap
        ref = {"upn": acct["upn"]} if acct.get("upn") else {"sid": acct["sid"]}
        status, al = api.call("POST", "/api/v1/alerts", {
            "id": "bench-" + secrets.token_hex(8), "source": "bench",
            "time": "2026-11-25T08:00:00Z", "title": "ransomware on a file server",
            "category": "ransomware", "severity": "high", "confidence": 95,
            "entities": {"accounts": [ref]}})
        assert status == 201 and al["decisions"][0]["outcome"] == "contained", al
        ids.append(al["id"])
    return ids


def step_calls(api, action_ids):
    """{action_id: [(start_us, end_us), ...]} from the step audit entries."""
    calls, after, want = {}, 0, set(action_ids)
    while True:
        status, page = api.call("GET", f"/api/v1/audit?after={after}&limit=1000")
        for e in page["entries"]:
            d = e["detail"]
            if e["action_id"] in want and e["event"].startswith("step.") and \
                    "call_started_us" in d:
                calls.setdefault(e["action_id"], []).append(
                    (d["call_started_us"], d["call_finished_us"]))
        if not page["entries"] or page["next"] is None:
            return calls
        after = page["next"]


def wait_done(api, alert_ids):
    acts = {}
    for aid in alert_ids:
        for _ in range(1200):
            status, al = api.call("GET", f"/api/v1/alerts/{aid}")
            pend = [a for a in al["actions"] if a["status"] not in
                    ("completed", "failed", "partially_completed", "cancelled", "denied")]
            if not pend:
                acts[aid] = al
                break
            time.sleep(0.05)
        else:
            raise SystemExit(f"alert {aid}: actions did not finish")
    return acts


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50, help="identities (one alert each)")
    ap.add_argument("--k", type=int, default=3, help="AD accounts per identity")
    ap.add_argument("--rate", type=float, default=20.0, help="alerts per second")
    ap.add_argument("--build", default=os.path.join(TOP, "build/release"))
    ap.add_argument("--lab", default=os.environ.get("LAB_DIR"))
    args = ap.parse_args()

    own_lab = args.lab is None
    lab = args.lab or tempfile.mkdtemp(prefix="quell-bench-lab.")
    samba = os.path.join(TOP, "scripts/lab/samba.sh")
    work = tempfile.mkdtemp(prefix="quell-bench.")
    prefix = "dl" + secrets.token_hex(3)
    proc = None
    try:
        if own_lab:
            subprocess.run(["bash", samba, "up", lab], check=True, stdout=subprocess.DEVNULL)
        env = lab_env(lab)
        print(f"creating {args.n * args.k} users in the lab ...", flush=True)
        subprocess.run(["bash", samba, "users", lab, str(args.n * args.k), prefix, "nopw"],
                       check=True, stdout=subprocess.DEVNULL)
        proc, api = start_quelld(args.build, env, work, free_port(), args.k)
        sync(api)
        groups = build_identities(api, prefix, args.n, args.k)
        t0 = time.monotonic()
        alert_ids = post_alerts(api, groups, args.rate)
        print(f"posted {len(alert_ids)} alerts in {time.monotonic() - t0:.2f} s "
              f"({args.rate:g}/s)", flush=True)
        alerts = wait_done(api, alert_ids)
        action_ids = [a["id"] for al in alerts.values() for a in al["actions"]]
        calls = step_calls(api, action_ids)
        over, totals, slowest, parallel, multi = [], [], [], 0, 0
        for aid, al in alerts.items():
            cs = [c for a in al["actions"] for c in calls.get(a["id"], [])]
            assert cs, f"alert {aid}: no provider calls recorded"
            total = max(e for _, e in cs) - al["received_at_us"]
            slow = max(e - s for s, e in cs)
            over.append((total - slow) / 1000)
            totals.append(total / 1000)
            slowest.append(slow / 1000)
            if len(cs) > 1:
                multi += 1
                span = max(e for _, e in cs) - min(s for s, _ in cs)
                if span < 0.75 * sum(e - s for s, e in cs):
                    parallel += 1
        print(f"alerts: {len(over)}, provider calls per alert: {args.k}")
        print(f"alert -> last call done: p50 {pct(totals, 50):.3f} ms, "
              f"p99 {pct(totals, 99):.3f} ms")
        print(f"slowest call:            p50 {pct(slowest, 50):.3f} ms, "
              f"p99 {pct(slowest, 99):.3f} ms")
        print(f"quell overhead:          p50 {pct(over, 50):.3f} ms, "
              f"p99 {pct(over, 99):.3f} ms")
        if multi:
            verdict = "parallel" if parallel >= 0.9 * multi else "NOT parallel"
            print(f"fan-out: {parallel}/{multi} alerts had overlapping provider calls "
                  f"({verdict})")
        print(f"disruption_latency overhead_p99_ms = {pct(over, 99):.3f}")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()
        if own_lab:
            subprocess.run(["bash", samba, "down", lab], stdout=subprocess.DEVNULL)
            subprocess.run(["rm", "-rf", lab])
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    sys.exit(main())
