#!/usr/bin/env python3
"""Benchmark: suspend N Okta users and revoke their sessions (2N requests in the Users
bucket) through quelld against the Okta emulator with injected latency and a rate-limit
bucket small enough that the bucket, not latency, bounds the run; then the same work
with @okta/okta-sdk-nodejs (bench/okta_mass_sdk.mjs, a loop of awaited calls with the
SDK's default request executor) against a fresh emulator with the same settings. Prints
quell's achieved requests/s over the bucket's limit (goal >= 0.95), the 429s seen,
actions lost (must be 0), both times; the last line is `okta_mass quell/sdk = R` (time
ratio, lower is better). Never fails on speed.

    bench/okta_mass.py [--n 300] [--latency-ms 20] [--rate-limit 100] [--rate-window-s 10]
                       [--latency-bound] [--build build] [--keep]

The defaults (budget-bound) make 2N = 600 requests at 100 per 10 s window (10
requests/s): about a minute. --latency-bound is Okta's real limits with a real call's
latency: 150 ms a call, 600 requests / min and 75 at once; the SDK's loop is then bound
by latency (about 6.7 calls/s) and quell by the budget (goal quell/sdk <= 0.7). The
listing that imports the users into quelld runs before the clock starts.
"""
import argparse
import os
import secrets
import sys

from benchlib import (TOP, Emulator, mass_actions, run_sdk, secret_file, start_quelld,
                      stop_proc, sync, work_dir)

USER_ROUTES = ("POST /api/v1/users/{id}/lifecycle/suspend", "DELETE /api/v1/users/{id}/sessions")


def setup_emulator(a, work, name, token):
    """A fresh Okta emulator with the run's latency and rate-limit bucket, the API
    token, and N users; (emulator, user ids)."""
    emu = Emulator("okta", ["--latency-ms", a.latency_ms, "--rate-limit", a.rate_limit,
                            "--rate-window-s", a.rate_window_s, "--max-concurrency", 75],
                   os.path.join(work, f"{name}.log"))
    emu.ctl("POST", "/tokens", {"token": token})
    users = [{"login": f"mass{i:05d}@okta.example", "email": f"mass{i:05d}@mail.example",
              "firstName": "Mass", "lastName": f"U{i}"} for i in range(a.n)]
    ids = emu.ctl("POST", "/users", {"users": users})["ids"]
    return emu, ids


def quelld_conf(work, emu, token):
    """quelld's config: one Okta system on the emulator."""
    tf = secret_file(work, "okta.token", token)
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
kind = okta
org_url = {emu.url}
allow_plaintext = yes
api_token_file = {tf}
max_concurrency = 8
"""


def requests_ok(stats):
    """Successful answers on the two routes the bench calls, from emulator stats."""
    return sum(v["statuses"].get("200", 0) + v["statuses"].get("204", 0)
               for k, v in stats["routes"].items() if k in USER_ROUTES)


def run_quell(a, work, token):
    """Suspends every user and revokes their sessions through quelld; its figures,
    checked on the emulator."""
    emu, ids = setup_emulator(a, work, "okta-quell", token)
    proc = None
    try:
        proc, api = start_quelld(a.build, work, quelld_conf(work, emu, token),
                                 keep_alive=False)
        st = sync(api, "cloud")
        if st["seen"] < a.n:
            sys.exit(f"sync: {st}")
        base = emu.ctl("GET", "/stats")
        out = mass_actions(api, ("disable", "revoke_sessions"),
                           a.rate_limit / a.rate_window_s)
        stats = emu.ctl("GET", "/stats")
        not_suspended = not_revoked = 0
        for uid in ids:
            u = emu.ctl("GET", f"/users/{uid}")
            not_suspended += u["status"] != "SUSPENDED"
            not_revoked += not u.get("sessions_revocations")
        return {**out, "requests": stats["requests"] - base["requests"],
                "ok": requests_ok(stats) - requests_ok(base),
                "limited": stats["rate_limited"] - base["rate_limited"],
                "conc_limited": stats["concurrency_limited"] - base["concurrency_limited"],
                "not_suspended": not_suspended, "not_revoked": not_revoked}
    finally:
        if proc is not None:
            stop_proc(proc)
        emu.stop()


def run_sdk_side(a, work, token):
    """The same suspensions with the Okta SDK script on a fresh emulator; its figures."""
    emu, ids = setup_emulator(a, work, "okta-sdk", token)
    try:
        out = run_sdk("okta_mass_sdk.mjs", work, ids, {"org_url": emu.url, "token": token})
        stats = emu.ctl("GET", "/stats")
        out["limited"] = stats["rate_limited"]
        out["not_suspended"] = sum(emu.ctl("GET", f"/users/{uid}")["status"] != "SUSPENDED"
                                   for uid in ids)
        return out
    finally:
        emu.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--latency-ms", type=int, default=20)
    ap.add_argument("--rate-limit", type=int, default=100)
    ap.add_argument("--rate-window-s", type=int, default=10)
    ap.add_argument("--latency-bound", action="store_true",
                    help="150 ms a call and Okta's real limits, 600 / min and 75 at once")
    ap.add_argument("--build", default=os.environ.get("QUELL_BUILD",
                                                     os.path.join(TOP, "build")))
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args()
    a.build = os.path.abspath(a.build)
    if a.latency_bound:
        a.latency_ms, a.rate_limit, a.rate_window_s = 150, 600, 60
    token = "00bench" + secrets.token_hex(18)
    rate = a.rate_limit / a.rate_window_s
    print(f"okta_mass ({'latency' if a.latency_bound else 'budget'}-bound): N={a.n} users, {2 * a.n} requests, latency {a.latency_ms} ms, "
          f"bucket {a.rate_limit} requests / {a.rate_window_s} s = {rate:g} requests/s")
    with work_dir("okta", a.keep) as work:
        q = run_quell(a, work, token)
        achieved = q["requests"] / q["elapsed"]
        lost = (q["submit_errors"] + q["not_terminal"] + q["not_completed"] +
                q["not_suspended"] + q["not_revoked"])
        print(f"quell: {q['elapsed']:.1f} s for {q['jobs']} actions "
              f"(submitted in {q['submit_s']:.1f} s), {q['requests']} requests sent, "
              f"{q['ok']} succeeded")
        print(f"quell: achieved {achieved:.2f} requests/s / limit {rate:g} = "
              f"{achieved / rate:.3f}" + ("" if a.latency_bound else " (goal >= 0.95)") +
              f"; useful {q['ok'] / q['elapsed']:.2f}/s")
        print(f"quell: 429s {q['limited']} (concurrency {q['conc_limited']})")
        print(f"quell: actions lost {lost} (submit errors {q['submit_errors']}, "
              f"not terminal {q['not_terminal']}, not completed {q['not_completed']}, "
              f"users not suspended {q['not_suspended']}, not revoked {q['not_revoked']})"
              + (f" first submit error {q['first_submit_error']}" if q['submit_errors']
                 else ""))
        s = run_sdk_side(a, work, token)
        print(f"sdk: {s['elapsed_s']:.1f} s, {s['calls_ok']} calls ok, errors {s['errors']}, "
              f"429s {s['limited']}, users not suspended {s['not_suspended']}"
              + (f", first error: {s['first_error']}" if s["first_error"] else ""))
        print(f"okta_mass quell/sdk = {q['elapsed'] / s['elapsed_s']:.3f}"
              + (" (goal <= 0.7)" if a.latency_bound else ""))


if __name__ == "__main__":
    main()
