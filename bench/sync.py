#!/usr/bin/env python3
"""Benchmark: inventory sync of N users in the Graph emulator and N in the Okta emulator
(and --ad users of the Samba lab, when LAB_DIR is set) through quelld: one
POST /api/v1/sync for every system, then GET /api/v1/sync every 0.2 s until it ends.
Prints the time, users/s (accounts read over the wall time of the whole sync), quelld's
peak RSS (VmHWM of /proc/<pid>/status, read while it runs), the slowest GET
/api/v1/sync answer during the sync (the API stays responsive), and what correlation
did; the last line is `sync users_per_s = X peak_rss_mb = Y`.

    bench/sync.py [--n 100000] [--ad 2000] [--build build] [--keep]

A third of the Entra users are synced copies of Okta users' logins (UPN match with the
email rule), so correlation does real work. Emulators run without Prism.
"""
import argparse
import os
import sys
import time
import uuid

from benchlib import (TOP, Emulator, ad_system, lab_env, lab_users, secret_file, served,
                      start_quelld, start_sync, stop_proc, work_dir)

TENANT = "benchsync.onmicrosoft.com"
OKTA_TOKEN = "00benchSync" + "x" * 29


def seed(a, work):
    """Both emulators with N users each, a third of the Okta logins equal to Entra
    UPNs; (graph, okta, client_id, secret)."""
    graph = Emulator("graph", [], os.path.join(work, "graph.log"))
    okta = Emulator("okta", ["--rate-limit", 1000000], os.path.join(work, "okta.log"))
    client_id, secret = str(uuid.uuid4()), "bench~" + str(uuid.uuid4())
    graph.ctl("POST", "/apps", {"tenant": TENANT, "client_id": client_id, "secret": secret})
    okta.ctl("POST", "/tokens", {"token": OKTA_TOKEN})
    for lo in range(0, a.n, 25000):
        hi = min(a.n, lo + 25000)
        graph.ctl("POST", "/users", {"tenant": TENANT, "users": [
            {"userPrincipalName": f"u{i:06d}@bench.example", "displayName": f"user {i}",
             "mail": f"u{i:06d}@mail.example"} for i in range(lo, hi)]})
        okta.ctl("POST", "/users", {"users": [
            {"login": f"u{i:06d}@bench.example" if i % 3 == 0 else f"o{i:06d}@okta.example",
             "email": f"o{i:06d}@mail.example", "firstName": "user", "lastName": str(i)}
            for i in range(lo, hi)]})
    return graph, okta, client_id, secret


def quelld_conf(work, graph, okta, client_id, secret, lab):
    """quelld's config: Entra and Okta on the emulators, and the lab's AD when lab."""
    sf = secret_file(work, "entra.secret", secret)
    tf = secret_file(work, "okta.token", OKTA_TOKEN)
    return f"""[server]
listen = 127.0.0.1:0
workers = 4
node_id = bench
[store]
path = {work}/bench.db
[system "cloud"]
kind = entra
tenant = {TENANT}
client_id = {client_id}
client_secret_file = {sf}
login_base = {graph.url}
graph_base = {graph.url}/v1.0
[system "okta"]
kind = okta
org_url = {okta.url}
allow_plaintext = yes
api_token_file = {tf}
{ad_system(lab) if lab else ""}"""


def vm_hwm_mb(pid):
    """The peak resident set of pid so far, in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def run_sync(proc, api):
    """Syncs every system at once, polling the status every 0.2 s; (seconds, the
    systems' statuses, slowest status answer, peak RSS in MiB)."""
    want = start_sync(api)
    t0, slowest, peak = time.monotonic(), 0.0, 0.0
    while True:
        q0 = time.monotonic()
        st, j = api.call("GET", "/api/v1/sync")
        slowest = max(slowest, time.monotonic() - q0)
        peak = max(peak, vm_hwm_mb(proc.pid))
        mine = served(j["systems"], want)
        if mine:
            return time.monotonic() - t0, mine, slowest, peak
        seen = sum(s["seen"] for s in j["systems"] if s["system"] in want)
        print(f"\r  {seen} read…", end="", file=sys.stderr, flush=True)
        time.sleep(0.2)


def ad_lab(a):
    """The lab's settings, with --ad users added to it, when LAB_DIR names a lab and
    --ad > 0; else None."""
    d = os.environ.get("LAB_DIR")
    if not d or a.ad <= 0:
        return None
    lab_users(d, a.ad, "bsync")
    return lab_env(d)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100000)
    ap.add_argument("--ad", type=int, default=2000)
    ap.add_argument("--build", default=os.environ.get("QUELL_BUILD",
                                                      os.path.join(TOP, "build")))
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    graph = okta = proc = None
    with work_dir("sync", a.keep) as work:
        try:
            lab = ad_lab(a)
            graph, okta, client_id, secret = seed(a, work)
            proc, api = start_quelld(a.build, work, quelld_conf(
                work, graph, okta, client_id, secret, lab), keep_alive=False, timeout=120)
            took, mine, slowest, peak = run_sync(proc, api)
            print(file=sys.stderr)
            report(took, mine, slowest, peak)
        finally:
            if proc is not None:
                stop_proc(proc)
            for e in (graph, okta):
                if e is not None:
                    e.stop()


def report(took, mine, slowest, peak):
    """Prints each system's sync, the time and the last line."""
    seen = sum(s["seen"] for s in mine)
    for s in mine:
        print(f"{s['system']}: {s['mode']} seen={s['seen']} new={s['created']} "
              f"linked={s['linked']} identities={s['identities_created']} "
              f"conflicts={s['conflicts']} error={s['error']}")
    print(f"time {took:.1f} s for {seen} accounts; slowest GET /api/v1/sync "
          f"during the sync {slowest * 1000:.0f} ms")
    print(f"sync users_per_s = {seen / took:.0f} peak_rss_mb = {peak:.1f}")

if __name__ == "__main__":
    main()
