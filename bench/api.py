#!/usr/bin/env python3
"""Benchmark: the API's throughput on this machine with wrk (Debian's), each figure as a
ratio to quelld's own /healthz in the same run (the HTTP stack's ceiling):

    healthz      GET /healthz, no authentication, no store
    reads        GET /api/v1/actions/{id}, a bearer token, one read transaction
    submissions  POST /api/v1/actions (disable), authorized, approval rules applied and
                 stored with its audit entry in one durable commit; an [approval] rule
                 holds every action for approval, so the engine carries none out and
                 the figure is the API's and the store's alone

The identities are the Samba lab's (N users, synced). Prints requests/s of each and
the ratios; the last line is `api reads/healthz = R` (goal >= 0.5). Never fails on speed.

    bench/api.py [--n 50] [--seconds 10] [--connections 32] [--build DIR] [--lab DIR]
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys

from benchlib import (TOP, ad_system, identities, lab_env, lab_users, samba_lab,
                      start_quelld, stop_proc, sync, work_dir)

PREFIX = "api"

# Each connection walks the identity list from its own offset, so concurrent
# submissions do not all name one identity.
SUBMIT_LUA = """
local ids = {%s}
local n = 0
local token = "%s"
function setup(thread)
  thread:set("offset", math.random(#ids))
end
function request()
  n = n + 1
  local id = ids[((offset or 0) + n) %% #ids + 1]
  local body = '{"type":"disable","identity_id":"' .. id .. '","reason":"bench"}'
  return wrk.format("POST", "/api/v1/actions", {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json"}, body)
end
"""


def quelld_conf(env, work):
    """The lab's AD, and an approval rule that holds every disable."""
    return f"""[server]
listen = 127.0.0.1:0
workers = 8
max_connections_per_client = 256
[store]
path = {work}/bench.db
{ad_system(env, "max_concurrency = 8")}
[approval "hold"]
types = disable
"""


def wrk(url, seconds, conns, script=None, token=None):
    """Requests per second wrk reached against url, and its non-2xx count."""
    cmd = ["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--latency"]
    if script:
        cmd += ["-s", script]
    if token and not script:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(cmd + [url], check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    p99 = re.search(r"99%\s+(\S+)", out)
    return rps, int(bad.group(1)) if bad else 0, p99.group(1) if p99 else "?"


def run(api, args, work):
    """The three figures, each a (rps, non-2xx, p99) of wrk."""
    sync(api, "corp")
    ids = [idn["id"] for idn in identities(api, f"q={PREFIX}&")]
    assert ids, "no identities synced"
    st, act = api.call("POST", "/api/v1/actions",
                       {"type": "disable", "identity_id": ids[0], "reason": "bench"})
    assert st in (200, 201, 202), (st, act)
    base = f"http://127.0.0.1:{api.port}"
    script = os.path.join(work, "submit.lua")
    with open(script, "w") as f:
        f.write(SUBMIT_LUA % (",".join(json.dumps(i) for i in ids), api.token))
    return {
        "healthz": wrk(f"{base}/healthz", args.seconds, args.connections),
        "reads": wrk(f"{base}/api/v1/actions/{act['id']}", args.seconds,
                     args.connections, token=api.token),
        "submissions": wrk(base, args.seconds, args.connections, script=script),
    }


def report(fig):
    ceiling = fig["healthz"][0]
    for name, (rps, bad, p99) in fig.items():
        print(f"{name:12s} {rps:10.0f} req/s  p99 {p99:>8s}  non-2xx {bad}")
    print(f"api submissions/healthz = {fig['submissions'][0] / ceiling:.3f}")
    print(f"api reads/healthz = {fig['reads'][0] / ceiling:.3f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50, help="lab users (identities)")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--build", default=os.path.join(TOP, "build/release"))
    ap.add_argument("--lab", default=os.environ.get("LAB_DIR"))
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench/api.py needs wrk (apt-get install wrk)")

    with samba_lab(args.lab) as lab, work_dir("api") as work:
        env = lab_env(lab)
        lab_users(lab, args.n, PREFIX)
        proc, api = start_quelld(args.build, work, quelld_conf(env, work))
        try:
            fig = run(api, args, work)
        finally:
            stop_proc(proc)
    report(fig)

if __name__ == "__main__":
    main()
