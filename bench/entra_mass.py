#!/usr/bin/env python3
"""Benchmark: contain N Entra ID accounts (disable + revoke sign-in sessions: 2N Graph
writes) through quelld against the Graph emulator with injected latency and a write
budget small enough that the budget, not latency, bounds the run; then the same work
with @microsoft/microsoft-graph-client (bench/entra_mass_sdk.mjs, a loop of awaited
calls with the SDK's default retry handler) against a fresh emulator with the same
settings. Prints quell's achieved writes/s over the budget's rate (goal >= 0.95), the
429s after the first, actions lost (must be 0), both times; the last line is
`entra_mass quell/sdk = R` (time ratio, lower is better). Never fails on speed.

    bench/entra_mass.py [--n 900] [--latency-ms 20] [--writes-per-window 300]
                        [--window-s 10] [--latency-bound] [--build build] [--keep]

The defaults (budget-bound) make 2N = 1800 writes at a budget of 300 per 10 s (30
writes/s): about a minute of work, so a minute of it is ~0.95-1.0 of the budget.
--latency-bound is Graph's real budget with a real call's latency: 150 ms a call and
3000 writes / 150 s, N = 300 unless given; the SDK's loop is then bound by latency
(about 6.7 calls/s) and quell by the budget (goal quell/sdk <= 0.35). quelld is given
the same writes_per_window / window_s as the emulator.
"""
import argparse
import os
import sys
import uuid

from benchlib import (TOP, Emulator, mass_actions, run_sdk, secret_file, start_quelld,
                      stop_proc, sync, work_dir)

TENANT = "benchmass.onmicrosoft.com"


def setup_emulator(a, work, name, client_id, secret):
    """A fresh Graph emulator with the run's latency and write budget, an app for
    client_id, and N users; (emulator, user ids)."""
    emu = Emulator("graph", ["--latency-ms", a.latency_ms, "--write-budget",
                             a.writes_per_window, "--write-window-s", a.window_s,
                             "--ip-rps", 1000], os.path.join(work, f"{name}.log"))
    emu.ctl("POST", "/apps", {"tenant": TENANT, "client_id": client_id, "secret": secret})
    users = [{"userPrincipalName": f"mass{i:05d}@{TENANT}", "displayName": f"mass {i}",
              "mail": f"mass{i:05d}@mail.example"} for i in range(a.n)]
    ids = emu.ctl("POST", "/users", {"tenant": TENANT, "users": users})["ids"]
    return emu, ids


def quelld_conf(a, work, emu, client_id, secret):
    """quelld's config: one Entra system on the emulator with the emulator's budget."""
    sf = secret_file(work, "entra.secret", secret)
    return f"""[server]
listen = 127.0.0.1:0
workers = 8
node_id = bench
[engine]
retry_base_ms = 200
retry_cap_ms = 5000
[store]
path = {work}/bench.db
[system "cloud"]
kind = entra
tenant = {TENANT}
client_id = {client_id}
client_secret_file = {sf}
login_base = {emu.url}
graph_base = {emu.url}/v1.0
writes_per_window = {a.writes_per_window}
window_s = {a.window_s}
max_concurrency = 8
"""


def run_quell(a, work, client_id, secret):
    """Contains every account through quelld; its figures, checked on the emulator."""
    emu, ids = setup_emulator(a, work, "graph-quell", client_id, secret)
    proc = None
    try:
        proc, api = start_quelld(a.build, work, quelld_conf(a, work, emu, client_id,
                                                             secret), keep_alive=False)
        st = sync(api, "cloud")
        if st["seen"] < a.n:
            sys.exit(f"sync: {st}")
        emu.ctl("DELETE", "/stats")
        out = mass_actions(api, ("disable", "revoke_sessions"),
                           a.writes_per_window / a.window_s)
        stats = emu.ctl("GET", "/stats?last=1")
        not_disabled = not_revoked = 0
        for uid in ids:
            u = emu.ctl("GET", f"/users/{uid}?tenant={TENANT}")
            not_disabled += u["accountEnabled"] is not False
            not_revoked += not u.get("revocations")
        writes = sum(v.get("204", 0) + v.get("200", 0) for k, v in stats["statuses"].items()
                     if k.startswith("PATCH ") or k.endswith("/revokeSignInSessions"))
        return {**out, "writes": writes, "throttled": stats["throttled"]["write"],
                "not_disabled": not_disabled, "not_revoked": not_revoked}
    finally:
        if proc is not None:
            stop_proc(proc)
        emu.stop()


def run_sdk_side(a, work, client_id, secret):
    """The same disables with the Graph SDK script on a fresh emulator; its figures."""
    emu, ids = setup_emulator(a, work, "graph-sdk", client_id, secret)
    try:
        out = run_sdk("entra_mass_sdk.mjs", work, ids, {
            "login_base": emu.url, "graph_base": emu.url, "tenant": TENANT,
            "client_id": client_id, "secret": secret})
        stats = emu.ctl("GET", "/stats?last=1")
        out["throttled"] = stats["throttled"]["write"]
        out["not_disabled"] = sum(
            emu.ctl("GET", f"/users/{uid}?tenant={TENANT}")["accountEnabled"] is not False
            for uid in ids)
        return out
    finally:
        emu.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--latency-ms", type=int, default=20)
    ap.add_argument("--writes-per-window", type=int, default=300)
    ap.add_argument("--window-s", type=int, default=10)
    ap.add_argument("--latency-bound", action="store_true",
                    help="150 ms a call and Graph's real budget, 3000 writes / 150 s")
    ap.add_argument("--build", default=os.environ.get("QUELL_BUILD",
                                                     os.path.join(TOP, "build")))
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args()
    a.build = os.path.abspath(a.build)
    if a.latency_bound:
        a.latency_ms, a.writes_per_window, a.window_s = 150, 3000, 150
    if a.n is None:
        a.n = 300 if a.latency_bound else 900
    client_id, secret = str(uuid.uuid4()), "bench~" + uuid.uuid4().hex
    rate = a.writes_per_window / a.window_s
    print(f"entra_mass ({'latency' if a.latency_bound else 'budget'}-bound): N={a.n} accounts, {2 * a.n} writes, latency {a.latency_ms} ms, "
          f"budget {a.writes_per_window} writes / {a.window_s} s = {rate:g} writes/s")
    with work_dir("entra", a.keep) as work:
        q = run_quell(a, work, client_id, secret)
        achieved = q["writes"] / q["elapsed"]
        lost = (q["submit_errors"] + q["not_terminal"] + q["not_completed"] +
                q["not_disabled"] + q["not_revoked"])
        print(f"quell: {q['elapsed']:.1f} s for {q['jobs']} actions "
              f"(submitted in {q['submit_s']:.1f} s), {q['writes']} writes accepted")
        print(f"quell: achieved {achieved:.2f} writes/s / budget {rate:g} = "
              f"{achieved / rate:.3f}" + ("" if a.latency_bound else " (goal >= 0.95)"))
        print(f"quell: 429s {q['throttled']} (after the first: "
              f"{max(0, q['throttled'] - 1)})")
        print(f"quell: actions lost {lost} (submit errors {q['submit_errors']}, "
              f"not terminal {q['not_terminal']}, not completed {q['not_completed']}, "
              f"accounts not disabled {q['not_disabled']}, not revoked {q['not_revoked']})"
              + (f" first submit error {q['first_submit_error']}" if q['submit_errors']
                 else ""))
        s = run_sdk_side(a, work, client_id, secret)
        print(f"sdk: {s['elapsed_s']:.1f} s, {s['calls_ok']} calls ok, errors {s['errors']}, "
              f"429s {s['throttled']}, accounts not disabled {s['not_disabled']}"
              + (f", first error: {s['first_error']}" if s["first_error"] else ""))
        print(f"entra_mass quell/sdk = {q['elapsed'] / s['elapsed_s']:.3f}"
              + (" (goal <= 0.35)" if a.latency_bound else ""))

if __name__ == "__main__":
    main()
