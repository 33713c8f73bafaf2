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

The physical floor of quell's overhead is one durable commit: the same run measures
fdatasync on the store's file system (300 syncs of a small write to a file beside the
store, as SQLite's WAL commit does) and prints the overhead's p99 as a ratio to it.
The last line is `disruption_latency overhead_p99/fsync_p99 = R` (goal R <= 1.5), the
one before it the overhead's p99 in ms. Never fails on speed.

    bench/disruption_latency.py [--n 50] [--k 3] [--rate 20] [--build DIR] [--lab DIR]
"""
import argparse
import os
import secrets
import sys
import time

from benchlib import (TERMINAL, TOP, ad_system, identities, lab_env, lab_users, pct,
                      samba_lab, start_quelld, stop_proc, sync, work_dir)


def quelld_conf(env, work, k):
    """quelld's config: the lab's AD, and a disruption rule containing ransomware."""
    return f"""[server]
listen = 127.0.0.1:0
workers = 8
[store]
path = {work}/bench.db
{ad_system(env, f"max_concurrency = {max(8, 2 * k)}")}
[disruption "contain"]
categories = ransomware
actions = contain
[disruption_guard]
max_containments = 100000
"""


def accounts_by_name(api, prefix):
    """{username: (identity id, account)} of the accounts whose name starts with prefix."""
    return {acct["username"]: (idn["id"], acct)
            for idn in identities(api, f"q={prefix}&")
            for acct in idn["accounts"]
            if (acct.get("username") or "").startswith(prefix)}


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
    """Posts one ransomware alert naming the first account of each group, rate a
    second; the alert ids."""
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
    """{alert id: alert} once every action of every alert is terminal."""
    acts = {}
    for aid in alert_ids:
        for _ in range(1200):
            status, al = api.call("GET", f"/api/v1/alerts/{aid}")
            pend = [a for a in al["actions"] if a["status"] not in TERMINAL]
            if not pend:
                acts[aid] = al
                break
            time.sleep(0.05)
        else:
            raise SystemExit(f"alert {aid}: actions did not finish")
    return acts


def latencies(alerts, calls):
    """Per alert, in ms: overhead, total and slowest call; and how many alerts with
    several calls had them overlap, out of how many."""
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
    return over, totals, slowest, parallel, multi


def fsync_floor(directory, n=300):
    """p50/p99 in ms of n fdatasyncs of a 4 KiB append to a file in directory."""
    path = os.path.join(directory, "fsync-probe")
    block = os.urandom(4096)
    times = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(n):
            os.write(fd, block)
            t0 = time.perf_counter()
            os.fdatasync(fd)
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        os.close(fd)
        os.unlink(path)
    return pct(times, 50), pct(times, 99)


def report(k, over, totals, slowest, parallel, multi, fsync):
    """Prints the percentiles, the fan-out verdict and the last lines."""
    print(f"alerts: {len(over)}, provider calls per alert: {k}")
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
    print(f"fdatasync on the store's file system: p50 {fsync[0]:.3f} ms, "
          f"p99 {fsync[1]:.3f} ms")
    print(f"disruption_latency overhead_p99_ms = {pct(over, 99):.3f}")
    ratio = pct(over, 99) / fsync[1] if fsync[1] > 0 else float("inf")
    print(f"disruption_latency overhead_p99/fsync_p99 = {ratio:.2f}")


def measure(api, args, prefix):
    """Builds the identities, posts the alerts and waits for their actions; the
    figures of latencies()."""
    sync(api, "corp")
    groups = build_identities(api, prefix, args.n, args.k)
    t0 = time.monotonic()
    alert_ids = post_alerts(api, groups, args.rate)
    print(f"posted {len(alert_ids)} alerts in {time.monotonic() - t0:.2f} s "
          f"({args.rate:g}/s)", flush=True)
    alerts = wait_done(api, alert_ids)
    action_ids = [a["id"] for al in alerts.values() for a in al["actions"]]
    return latencies(alerts, step_calls(api, action_ids))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50, help="identities (one alert each)")
    ap.add_argument("--k", type=int, default=3, help="AD accounts per identity")
    ap.add_argument("--rate", type=float, default=20.0, help="alerts per second")
    ap.add_argument("--build", default=os.path.join(TOP, "build/release"))
    ap.add_argument("--lab", default=os.environ.get("LAB_DIR"))
    args = ap.parse_args()

    prefix = "dl" + secrets.token_hex(3)
    with samba_lab(args.lab) as lab, work_dir("disruption") as work:
        env = lab_env(lab)
        print(f"creating {args.n * args.k} users in the lab ...", flush=True)
        lab_users(lab, args.n * args.k, prefix)
        proc, api = start_quelld(args.build, work, quelld_conf(env, work, args.k))
        try:
            figures = measure(api, args, prefix)
        finally:
            stop_proc(proc)
        fsync = fsync_floor(work)
    report(args.k, *figures, fsync)

if __name__ == "__main__":
    sys.exit(main())
