#!/usr/bin/env python3
"""Benchmark: suspend N Okta users and revoke their sessions (2N requests in the Users
bucket) through quelld against the Okta emulator with injected latency and a rate-limit
bucket small enough that the bucket, not latency, bounds the run; then the same work
with @okta/okta-sdk-nodejs (bench/okta_mass_sdk.mjs, a loop of awaited calls with the
SDK's default request executor) against a fresh emulator with the same settings. Prints
quell's achieved requests/s over the bucket's limit (goal >= 0.9), the 429s seen,
actions lost (must be 0), both times; the last line is `okta_mass quell/sdk = R` (time
ratio, lower is better). Never fails on speed.

    bench/okta_mass.py [--n 300] [--latency-ms 20] [--rate-limit 100] [--rate-window-s 10]
                       [--build build] [--keep]

The defaults make 2N = 600 requests at 100 per 10 s window (10 requests/s): about a
minute. The listing that imports the users into quelld runs before the clock starts.
"""
import argparse
import datetime
import http.client
import json
import os
import re
import secrets
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OKTA = os.path.join(TOP, "tests", "emulators", "okta", "server.js")
SDK = os.path.join(TOP, "bench", "okta_mass_sdk.mjs")
NODE = shutil.which("node") or "/usr/bin/node"
TERMINAL = {"completed", "partially_completed", "failed", "cancelled", "denied"}
USER_ROUTES = ("POST /api/v1/users/{id}/lifecycle/suspend", "DELETE /api/v1/users/{id}/sessions")


def http_json(port, method, path, body=None, token=None, timeout=60):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        h = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        if token:
            h["Authorization"] = "Bearer " + token
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        raw = r.read()
        return r.status, (json.loads(raw) if raw else None)
    finally:
        c.close()


class Emulator:
    def __init__(self, args, log):
        errf = open(log, "wb")
        self.proc = subprocess.Popen([NODE, OKTA, "--port", "0", *map(str, args)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=errf)
        errf.close()
        r, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline().decode() if r else ""
        m = re.match(r"listening on (\d+)", line)
        if not m:
            self.stop()
            sys.exit(f"okta emulator did not start: {line!r}")
        self.port = int(m.group(1))
        self.url = f"http://127.0.0.1:{self.port}"

    def ctl(self, method, path, body=None):
        st, j = http_json(self.port, method, "/_emulator" + path, body)
        if st not in (200, 201, 204):
            sys.exit(f"emulator {method} {path}: {st} {j}")
        return j

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


def parse_time(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def stop_proc(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def all_actions(port, token):
    out, before = [], None
    while True:
        q = "/api/v1/actions?limit=1000" + (f"&before={before}" if before else "")
        st, j = http_json(port, "GET", q, token=token)
        if st != 200:
            raise RuntimeError(f"GET actions: {st} {j}")
        out += j["actions"]
        if not j.get("next"):
            return out
        before = j["next"]


def setup_emulator(a, work, name, token):
    emu = Emulator(["--latency-ms", a.latency_ms, "--rate-limit", a.rate_limit,
                    "--rate-window-s", a.rate_window_s], os.path.join(work, f"{name}.log"))
    emu.ctl("POST", "/tokens", {"token": token})
    users = [{"login": f"mass{i:05d}@okta.example", "email": f"mass{i:05d}@mail.example",
              "firstName": "Mass", "lastName": f"U{i}"} for i in range(a.n)]
    ids = emu.ctl("POST", "/users", {"users": users})["ids"]
    return emu, ids


def start_quelld(a, work, emu, token):
    tf = os.path.join(work, "okta.token")
    with open(tf, "w") as f:
        f.write(token + "\n")
    os.chmod(tf, 0o600)
    conf = os.path.join(work, "quelld.conf")
    with open(conf, "w") as f:
        f.write(f"""[server]
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
""")
    quelld = os.path.join(a.build, "src", "daemon", "quelld")
    qtoken = subprocess.run([quelld, "-c", conf, "token", "create", "--name", "bench",
                             "--role", "admin"], check=True, capture_output=True,
                            text=True).stdout.strip()
    logp = os.path.join(work, "quelld.log")
    log = open(logp, "wb")
    proc = subprocess.Popen([quelld, "-c", conf], stdin=subprocess.DEVNULL, stdout=log,
                            stderr=log)
    log.close()
    port = None
    for _ in range(300):
        if proc.poll() is not None:
            sys.exit(f"quelld exited: {open(logp).read()[-2000:]}")
        m = re.search(r"listening on \S+ \(port (\d+)\)", open(logp).read())
        if m:
            port = int(m.group(1))
            break
        time.sleep(0.05)
    if port is None:
        proc.kill()
        sys.exit("quelld did not listen")
    return proc, port, qtoken


def requests_ok(stats):
    return sum(v["statuses"].get("200", 0) + v["statuses"].get("204", 0)
               for k, v in stats["routes"].items() if k in USER_ROUTES)


def run_quell(a, work, token):
    emu, ids = setup_emulator(a, work, "okta-quell", token)
    proc = None
    try:
        proc, port, qtoken = start_quelld(a, work, emu, token)
        st, rep = http_json(port, "POST", "/api/v1/sync/cloud", token=qtoken, timeout=300)
        if st != 200 or rep["accounts_seen"] < a.n:
            sys.exit(f"sync: {st} {rep}")
        idns, after = [], None
        while True:
            q = "/api/v1/identities?limit=1000" + (f"&after={after}" if after else "")
            st, j = http_json(port, "GET", q, token=qtoken)
            idns += [i["id"] for i in j["identities"]]
            if not j.get("next"):
                break
            after = j["next"]
        base = emu.ctl("GET", "/stats")
        jobs = [(t, i) for i in idns for t in ("disable", "revoke_sessions")]
        submitted, errors = [], []
        lock = threading.Lock()

        def submit(part):
            for t, i in part:
                st, j = http_json(port, "POST", "/api/v1/actions",
                                  {"type": t, "identity_id": i, "reason": "bench"},
                                  token=qtoken)
                with lock:
                    (submitted if st == 201 else errors).append(j["id"] if st == 201
                                                                else (st, j))
        t0 = time.time()
        threads = [threading.Thread(target=submit, args=(jobs[k::4],)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        t_submitted = time.time() - t0
        deadline = time.monotonic() + max(600, 10 * len(jobs) * a.rate_window_s /
                                          a.rate_limit)
        while True:
            acts = {x["id"]: x for x in all_actions(port, qtoken)}
            open_ = [aid for aid in submitted if acts.get(aid, {}).get("status")
                     not in TERMINAL]
            if not open_ or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        finished = [parse_time(acts[aid]["finished_at"]) for aid in submitted
                    if acts.get(aid, {}).get("finished_at")]
        elapsed = (max(finished) if finished else time.time()) - t0
        completed = sum(1 for aid in submitted if acts.get(aid, {}).get("status") ==
                        "completed")
        stats = emu.ctl("GET", "/stats")
        not_suspended = not_revoked = 0
        for uid in ids:
            u = emu.ctl("GET", f"/users/{uid}")
            not_suspended += u["status"] != "SUSPENDED"
            not_revoked += not u.get("sessions_revocations")
        return {"elapsed": elapsed, "submit_s": t_submitted,
                "requests": stats["requests"] - base["requests"],
                "ok": requests_ok(stats) - requests_ok(base),
                "limited": stats["rate_limited"] - base["rate_limited"],
                "conc_limited": stats["concurrency_limited"] - base["concurrency_limited"],
                "jobs": len(jobs), "submit_errors": len(errors), "not_terminal": len(open_),
                "not_completed": len(submitted) - completed,
                "not_suspended": not_suspended, "not_revoked": not_revoked,
                "first_submit_error": errors[:1]}
    finally:
        if proc is not None:
            stop_proc(proc)
        emu.stop()


def run_sdk(a, work, token):
    emu, ids = setup_emulator(a, work, "okta-sdk", token)
    try:
        idf = os.path.join(work, "sdk-ids.txt")
        with open(idf, "w") as f:
            f.write("\n".join(ids) + "\n")
        cf = os.path.join(work, "sdk.json")
        with open(cf, "w") as f:
            json.dump({"org_url": emu.url, "token": token, "ids_file": idf}, f)
        r = subprocess.run([NODE, SDK, cf], capture_output=True, text=True, timeout=3600)
        if r.returncode != 0:
            sys.exit(f"sdk script failed: {r.stderr[-2000:]}")
        out = json.loads(r.stdout.strip().splitlines()[-1])
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
    ap.add_argument("--build", default=os.environ.get("QUELL_BUILD",
                                                     os.path.join(TOP, "build")))
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args()
    a.build = os.path.abspath(a.build)
    work = tempfile.mkdtemp(prefix="quell-bench-okta-")
    token = "00bench" + secrets.token_hex(18)
    rate = a.rate_limit / a.rate_window_s
    print(f"okta_mass: N={a.n} users, {2 * a.n} requests, latency {a.latency_ms} ms, "
          f"bucket {a.rate_limit} requests / {a.rate_window_s} s = {rate:g} requests/s")
    try:
        q = run_quell(a, work, token)
        achieved = q["requests"] / q["elapsed"]
        lost = (q["submit_errors"] + q["not_terminal"] + q["not_completed"] +
                q["not_suspended"] + q["not_revoked"])
        print(f"quell: {q['elapsed']:.1f} s for {q['jobs']} actions "
              f"(submitted in {q['submit_s']:.1f} s), {q['requests']} requests sent, "
              f"{q['ok']} succeeded")
        print(f"quell: achieved {achieved:.2f} requests/s / limit {rate:g} = "
              f"{achieved / rate:.3f} (goal >= 0.9); useful {q['ok'] / q['elapsed']:.2f}/s")
        print(f"quell: 429s {q['limited']} (concurrency {q['conc_limited']})")
        print(f"quell: actions lost {lost} (submit errors {q['submit_errors']}, "
              f"not terminal {q['not_terminal']}, not completed {q['not_completed']}, "
              f"users not suspended {q['not_suspended']}, not revoked {q['not_revoked']})"
              + (f" first submit error {q['first_submit_error']}" if q['submit_errors']
                 else ""))
        s = run_sdk(a, work, token)
        print(f"sdk: {s['elapsed_s']:.1f} s, {s['calls_ok']} calls ok, errors {s['errors']}, "
              f"429s {s['limited']}, users not suspended {s['not_suspended']}"
              + (f", first error: {s['first_error']}" if s["first_error"] else ""))
        print(f"okta_mass quell/sdk = {q['elapsed'] / s['elapsed_s']:.3f}")
    finally:
        if a.keep:
            print(f"work directory: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
