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
import http.client
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GRAPH = os.path.join(TOP, "tests", "emulators", "graph", "server.js")
OKTA = os.path.join(TOP, "tests", "emulators", "okta", "server.js")
SAMBA = os.path.join(TOP, "scripts", "lab", "samba.sh")
NODE = shutil.which("node") or "/usr/bin/node"
TENANT = "benchsync.onmicrosoft.com"
OKTA_TOKEN = "00benchSync" + "x" * 29


def http_json(port, method, path, body=None, token=None, timeout=120):
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
    def __init__(self, server, args, log):
        errf = open(log, "wb")
        self.proc = subprocess.Popen([NODE, server, "--port", "0", *map(str, args)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=errf)
        errf.close()
        r, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline().decode() if r else ""
        m = re.match(r"listening on (\d+)", line)
        if not m:
            self.stop()
            sys.exit(f"{server} did not start: {line!r}")
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


def seed(a, work):
    graph = Emulator(GRAPH, [], os.path.join(work, "graph.log"))
    okta = Emulator(OKTA, ["--rate-limit", 1000000], os.path.join(work, "okta.log"))
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


def start_quelld(a, work, graph, okta, client_id, secret, lab):
    sf = os.path.join(work, "entra.secret")
    tf = os.path.join(work, "okta.token")
    for path, value in ((sf, secret), (tf, OKTA_TOKEN)):
        with open(path, "w") as f:
            f.write(value + "\n")
        os.chmod(path, 0o600)
    conf = os.path.join(work, "quelld.conf")
    ad = ""
    if lab:
        ad = f"""[system "corp"]
kind = ad
url = {lab['LAB_LDAP_URL']}
ca_file = {lab['LAB_CA']}
base_dn = {lab['LAB_BASE_DN']}
bind_dn = {lab['LAB_BIND_DN']}
password_file = {lab['LAB_BIND_PW_FILE']}
"""
    with open(conf, "w") as f:
        f.write(f"""[server]
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
{ad}""")
    quelld = os.path.join(a.build, "src", "daemon", "quelld")
    token = subprocess.run([quelld, "-c", conf, "token", "create", "--name", "bench",
                            "--role", "admin"], check=True, capture_output=True,
                           text=True).stdout.strip()
    logp = os.path.join(work, "quelld.log")
    log = open(logp, "wb")
    proc = subprocess.Popen([quelld, "-c", conf], stdin=subprocess.DEVNULL, stdout=log,
                            stderr=log)
    log.close()
    for _ in range(300):
        if proc.poll() is not None:
            sys.exit(f"quelld exited: {open(logp).read()[-2000:]}")
        m = re.search(r"listening on \S+ \(port (\d+)\)", open(logp).read())
        if m:
            return proc, int(m.group(1)), token
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    sys.exit("quelld did not listen")


def vm_hwm_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def run_sync(proc, port, token):
    st, j = http_json(port, "POST", "/api/v1/sync", token=token)
    if st != 202:
        sys.exit(f"POST /api/v1/sync: {st} {j}")
    want = {s["system"]: s["requested_run"] for s in j["systems"]}
    t0, slowest, peak = time.monotonic(), 0.0, 0.0
    while True:
        q0 = time.monotonic()
        st, j = http_json(port, "GET", "/api/v1/sync", token=token)
        slowest = max(slowest, time.monotonic() - q0)
        peak = max(peak, vm_hwm_mb(proc.pid))
        mine = [s for s in j["systems"] if s["system"] in want]
        if all(s["finished_run"] >= want[s["system"]] for s in mine):
            return time.monotonic() - t0, mine, slowest, peak
        seen = sum(s["seen"] for s in mine)
        print(f"\r  {seen} read…", end="", file=sys.stderr, flush=True)
        time.sleep(0.2)


def lab_env(a):
    d = os.environ.get("LAB_DIR")
    if not d or a.ad <= 0:
        return None
    keys = ("LAB_LDAP_URL", "LAB_CA", "LAB_BASE_DN", "LAB_BIND_DN", "LAB_BIND_PW_FILE")
    env = {k: os.environ[k] for k in keys if k in os.environ}
    if len(env) != len(keys):
        return None
    subprocess.run(["bash", SAMBA, "users", d, str(a.ad), "bsync", "nopw"], check=True,
                   timeout=900)
    return env


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100000)
    ap.add_argument("--ad", type=int, default=2000)
    ap.add_argument("--build", default=os.environ.get("QUELL_BUILD",
                                                      os.path.join(TOP, "build")))
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="quell-bench-sync-")
    graph = okta = proc = None
    try:
        lab = lab_env(a)
        graph, okta, client_id, secret = seed(a, work)
        proc, port, token = start_quelld(a, work, graph, okta, client_id, secret, lab)
        took, mine, slowest, peak = run_sync(proc, port, token)
        print(file=sys.stderr)
        seen = sum(s["seen"] for s in mine)
        for s in mine:
            print(f"{s['system']}: {s['mode']} seen={s['seen']} new={s['created']} "
                  f"linked={s['linked']} identities={s['identities_created']} "
                  f"conflicts={s['conflicts']} error={s['error']}")
        print(f"time {took:.1f} s for {seen} accounts; slowest GET /api/v1/sync "
              f"during the sync {slowest * 1000:.0f} ms")
        print(f"sync users_per_s = {seen / took:.0f} peak_rss_mb = {peak:.1f}")
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for e in (graph, okta):
            if e is not None:
                e.stop()
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
