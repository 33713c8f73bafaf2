#!/usr/bin/env python3
"""Benchmark: contain N Entra ID accounts (disable + revoke sign-in sessions: 2N Graph
writes) through quelld against the Graph emulator with injected latency and a write
budget small enough that the budget, not latency, bounds the run; then the same work
with @microsoft/microsoft-graph-client (bench/entra_mass_sdk.mjs, a loop of awaited
calls with the SDK's default retry handler) against a fresh emulator with the same
settings. Prints quell's achieved writes/s over the budget's rate (goal >= 0.9), the
429s after the first, actions lost (must be 0), both times; the last line is
`entra_mass quell/sdk = R` (time ratio, lower is better). Never fails on speed.

    bench/entra_mass.py [--n 900] [--latency-ms 20] [--writes-per-window 300]
                        [--window-s 10] [--build build] [--keep]

The defaults make 2N = 1800 writes at a budget of 300 per 10 s (30 writes/s): about a
minute of work, so a minute of it is ~0.9-1.0 of the budget. quelld is given the same
writes_per_window / window_s as the emulator.
"""
import argparse
import datetime
import http.client
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GRAPH = os.path.join(TOP, "tests", "emulators", "graph", "server.js")
SDK = os.path.join(TOP, "bench", "entra_mass_sdk.mjs")
NODE = shutil.which("node") or "/usr/bin/node"
TENANT = "benchmass.onmicrosoft.com"
TERMINAL = {"completed", "partially_completed", "failed", "cancelled", "denied"}


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
        self.proc = subprocess.Popen([NODE, GRAPH, "--port", "0", *map(str, args)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=errf)
        errf.close()
        r, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline().decode() if r else ""
        m = re.match(r"listening on (\d+)", line)
        if not m:
            self.stop()
            sys.exit(f"graph emulator did not start: {line!r}")
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


def setup_emulator(a, work, name, client_id, secret):
    emu = Emulator(["--latency-ms", a.latency_ms, "--write-budget", a.writes_per_window,
                    "--write-window-s", a.window_s, "--ip-rps", 1000],
                   os.path.join(work, f"{name}.log"))
    emu.ctl("POST", "/apps", {"tenant": TENANT, "client_id": client_id, "secret": secret})
    users = [{"userPrincipalName": f"mass{i:05d}@{TENANT}", "displayName": f"mass {i}",
              "mail": f"mass{i:05d}@mail.example"} for i in range(a.n)]
    ids = emu.ctl("POST", "/users", {"tenant": TENANT, "users": users})["ids"]
    return emu, ids


def parse_time(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def start_quelld(a, work, emu, client_id, secret):
    sf = os.path.join(work, "entra.secret")
    with open(sf, "w") as f:
        f.write(secret + "\n")
    os.chmod(sf, 0o600)
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
kind = entra
tenant = {TENANT}
client_id = {client_id}
client_secret_file = {sf}
login_base = {emu.url}
graph_base = {emu.url}/v1.0
writes_per_window = {a.writes_per_window}
window_s = {a.window_s}
max_concurrency = 8
""")
    quelld = os.path.join(a.build, "src", "daemon", "quelld")
    token = subprocess.run([quelld, "-c", conf, "token", "create", "--name", "bench",
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
    return proc, port, token


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


def run_quell(a, work, client_id, secret):
    emu, ids = setup_emulator(a, work, "graph-quell", client_id, secret)
    proc = None
    try:
        proc, port, token = start_quelld(a, work, emu, client_id, secret)
        st, rep = http_json(port, "POST", "/api/v1/sync/cloud", token=token, timeout=300)
        if st != 200 or rep["accounts_seen"] < a.n:
            sys.exit(f"sync: {st} {rep}")
        idns = []
        after = None
        while True:
            q = "/api/v1/identities?limit=1000" + (f"&after={after}" if after else "")
            st, j = http_json(port, "GET", q, token=token)
            idns += [i["id"] for i in j["identities"]]
            if not j.get("next"):
                break
            after = j["next"]
        emu.ctl("DELETE", "/stats")
        jobs = [(t, i) for i in idns for t in ("disable", "revoke_sessions")]
        submitted, errors = [], []
        lock = threading.Lock()

        def submit(part):
            for t, i in part:
                st, j = http_json(port, "POST", "/api/v1/actions",
                                  {"type": t, "identity_id": i, "reason": "bench"},
                                  token=token)
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
        deadline = time.monotonic() + max(600, 10 * len(jobs) / (a.writes_per_window /
                                                                 a.window_s))
        while True:
            acts = {x["id"]: x for x in all_actions(port, token)}
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
        stats = emu.ctl("GET", "/stats?last=1")
        not_disabled = not_revoked = 0
        for uid in ids:
            u = emu.ctl("GET", f"/users/{uid}?tenant={TENANT}")
            not_disabled += u["accountEnabled"] is not False
            not_revoked += not u.get("revocations")
        writes = sum(v.get("204", 0) + v.get("200", 0) for k, v in stats["statuses"].items()
                     if k.startswith("PATCH ") or k.endswith("/revokeSignInSessions"))
        return {"elapsed": elapsed, "submit_s": t_submitted, "writes": writes,
                "throttled": stats["throttled"]["write"], "jobs": len(jobs),
                "submit_errors": len(errors), "not_terminal": len(open_),
                "not_completed": len(submitted) - completed, "not_disabled": not_disabled,
                "not_revoked": not_revoked, "first_submit_error": errors[:1]}
    finally:
        if proc is not None:
            stop_proc(proc)
        emu.stop()


def run_sdk(a, work, client_id, secret):
    emu, ids = setup_emulator(a, work, "graph-sdk", client_id, secret)
    try:
        idf = os.path.join(work, "sdk-ids.txt")
        with open(idf, "w") as f:
            f.write("\n".join(ids) + "\n")
        cf = os.path.join(work, "sdk.json")
        with open(cf, "w") as f:
            json.dump({"login_base": emu.url, "graph_base": emu.url, "tenant": TENANT,
                       "client_id": client_id, "secret": secret, "ids_file": idf}, f)
        r = subprocess.run([NODE, SDK, cf], capture_output=True, text=True, timeout=3600)
        if r.returncode != 0:
            sys.exit(f"sdk script failed: {r.stderr[-2000:]}")
        out = json.loads(r.stdout.strip().splitlines()[-1])
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
    ap.add_argument("--n", type=int, default=900)
    ap.add_argument("--latency-ms", type=int, default=20)
    ap.add_argument("--writes-per-window", type=int, default=300)
    ap.add_argument("--window-s", type=int, default=10)
    ap.add_argument("--build", default=os.environ.get("QUELL_BUILD",
                                                     os.path.join(TOP, "build")))
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args()
    a.build = os.path.abspath(a.build)
    work = tempfile.mkdtemp(prefix="quell-bench-entra-")
    client_id, secret = str(uuid.uuid4()), "bench~" + uuid.uuid4().hex
    rate = a.writes_per_window / a.window_s
    print(f"entra_mass: N={a.n} accounts, {2 * a.n} writes, latency {a.latency_ms} ms, "
          f"budget {a.writes_per_window} writes / {a.window_s} s = {rate:g} writes/s")
    try:
        q = run_quell(a, work, client_id, secret)
        achieved = q["writes"] / q["elapsed"]
        lost = (q["submit_errors"] + q["not_terminal"] + q["not_completed"] +
                q["not_disabled"] + q["not_revoked"])
        print(f"quell: {q['elapsed']:.1f} s for {q['jobs']} actions "
              f"(submitted in {q['submit_s']:.1f} s), {q['writes']} writes accepted")
        print(f"quell: achieved {achieved:.2f} writes/s / budget {rate:g} = "
              f"{achieved / rate:.3f} (goal >= 0.9)")
        print(f"quell: 429s {q['throttled']} (after the first: "
              f"{max(0, q['throttled'] - 1)})")
        print(f"quell: actions lost {lost} (submit errors {q['submit_errors']}, "
              f"not terminal {q['not_terminal']}, not completed {q['not_completed']}, "
              f"accounts not disabled {q['not_disabled']}, not revoked {q['not_revoked']})"
              + (f" first submit error {q['first_submit_error']}" if q['submit_errors']
                 else ""))
        s = run_sdk(a, work, client_id, secret)
        print(f"sdk: {s['elapsed_s']:.1f} s, {s['calls_ok']} calls ok, errors {s['errors']}, "
              f"429s {s['throttled']}, accounts not disabled {s['not_disabled']}"
              + (f", first error: {s['first_error']}" if s["first_error"] else ""))
        print(f"entra_mass quell/sdk = {q['elapsed'] / s['elapsed_s']:.3f}")
    finally:
        if a.keep:
            print(f"work directory: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
