"""What the benches share: quelld's JSON API, the emulators and the Samba lab they run
against, starting quelld, syncing, submitting actions and waiting for them.

Only plumbing lives here; what a bench measures and prints stays in its own file.
"""
import contextlib
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

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMBA = os.path.join(TOP, "scripts", "lab", "samba.sh")
NODE = shutil.which("node") or "/usr/bin/node"
TERMINAL = {"completed", "partially_completed", "failed", "cancelled", "denied", "rejected"}


def _exchange(conn, method, path, body, token):
    """One JSON request on conn; (status, decoded body or None)."""
    headers = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = "Bearer " + token
    conn.request(method, path, body=data, headers=headers)
    r = conn.getresponse()
    raw = r.read()
    return r.status, (json.loads(raw) if raw else None)


def http_json(port, method, path, body=None, token=None, timeout=60):
    """One JSON request on a connection of its own to 127.0.0.1:port."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        return _exchange(c, method, path, body, token)
    finally:
        c.close()


class Api:
    """quelld's API as one admin token. With keep_alive each client thread reuses one
    connection (the AD benches time many small calls, a connect each would count);
    without it every call opens its own, as the emulator benches always did."""

    def __init__(self, port, token, keep_alive=True, timeout=60):
        self.port, self.token = port, token
        self.keep_alive, self.timeout = keep_alive, timeout
        self.local = threading.local()

    def call(self, method, path, body=None):
        """(status, JSON body) of one request."""
        if not self.keep_alive:
            return http_json(self.port, method, path, body, self.token, self.timeout)
        c = getattr(self.local, "conn", None)
        if c is None:
            c = self.local.conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                             timeout=self.timeout)
        return _exchange(c, method, path, body, self.token)


def stop_proc(p, wait_s=30):
    """Ends p politely, killing it if it does not exit within wait_s."""
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(wait_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


class Emulator:
    """tests/emulators/<kind>/server.js on a port of its own, chosen by the emulator
    and read from its first line, `listening on <port>`."""

    def __init__(self, kind, args, log):
        server = os.path.join(TOP, "tests", "emulators", kind, "server.js")
        with open(log, "wb") as errf:
            self.proc = subprocess.Popen([NODE, server, "--port", "0", *map(str, args)],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=errf)
        r, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline().decode() if r else ""
        m = re.match(r"listening on (\d+)", line)
        if not m:
            self.stop()
            sys.exit(f"{kind} emulator did not start: {line!r}")
        self.port = int(m.group(1))
        self.url = f"http://127.0.0.1:{self.port}"

    def ctl(self, method, path, body=None):
        """A call to the emulator's /_emulator control API; exits on a refusal, since a
        bench cannot go on without its seed data or stats."""
        st, j = http_json(self.port, method, "/_emulator" + path, body)
        if st not in (200, 201, 204):
            sys.exit(f"emulator {method} {path}: {st} {j}")
        return j

    def stop(self):
        """Stops the emulator and closes the pipe its port was read from."""
        stop_proc(self.proc, 10)
        self.proc.stdout.close()


def secret_file(work, name, value):
    """Writes value to work/name readable by its owner only (quelld refuses others)
    and returns the path."""
    path = os.path.join(work, name)
    with open(path, "w") as f:
        f.write(value + "\n")
    os.chmod(path, 0o600)
    return path


def _wait_listening(proc, logp):
    """quelld's port from its `listening on … (port N)` log line."""
    for _ in range(300):
        if proc.poll() is not None:
            sys.exit(f"quelld exited: {open(logp).read()[-2000:]}")
        m = re.search(r"listening on \S+ \(port (\d+)\)", open(logp).read())
        if m:
            return int(m.group(1))
        time.sleep(0.05)
    stop_proc(proc)
    sys.exit("quelld did not listen")


def start_quelld(build, work, conf_text, keep_alive=True, timeout=60):
    """Writes conf_text as work/quelld.conf (it should listen on 127.0.0.1:0), makes an
    admin token, starts quelld logging to work/quelld.log and waits until it listens.
    Returns (process, Api)."""
    conf = os.path.join(work, "quelld.conf")
    with open(conf, "w") as f:
        f.write(conf_text)
    quelld = os.path.join(build, "src", "daemon", "quelld")
    token = subprocess.run([quelld, "-c", conf, "token", "create", "--name", "bench",
                            "--role", "admin"], check=True, capture_output=True,
                           text=True).stdout.strip()
    logp = os.path.join(work, "quelld.log")
    with open(logp, "wb") as log:
        proc = subprocess.Popen([quelld, "-c", conf], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=log)
    port = _wait_listening(proc, logp)
    return proc, Api(port, token, keep_alive, timeout)


def start_sync(api, system=None):
    """Asks for a sync of one system, or of all; {system: the run that serves it}."""
    path = "/api/v1/sync" + (f"/{system}" if system else "")
    st, rep = api.call("POST", path)
    if st != 202:
        sys.exit(f"POST {path}: {st} {rep}")
    return {s["system"]: s["requested_run"] for s in rep["systems"]}


def served(statuses, want):
    """The statuses of the systems in want once every one has finished its requested
    run, else None."""
    mine = [s for s in statuses if s["system"] in want]
    if all(s["finished_run"] >= want[s["system"]] for s in mine):
        return mine
    return None


def sync(api, system):
    """Syncs one system and waits for it (it runs in the background); its status."""
    want = start_sync(api, system)
    while True:
        st, rep = api.call("GET", "/api/v1/sync")
        mine = served(rep["systems"], want)
        if mine:
            if mine[0]["error"] is not None:
                sys.exit(f"sync {system}: {mine[0]['error']}")
            return mine[0]
        time.sleep(0.1)


def identities(api, query=""):
    """Every identity quelld holds (matching query, when given), page after page."""
    after = None
    while True:
        path = f"/api/v1/identities?{query}limit=1000" + (f"&after={after}" if after
                                                          else "")
        st, page = api.call("GET", path)
        if st != 200:
            sys.exit(f"GET {path}: {st} {page}")
        yield from page["identities"]
        after = page["next"]
        if not after:
            return


def all_actions(api):
    """Every action quelld holds, newest first, page after page."""
    out, before = [], None
    while True:
        q = "/api/v1/actions?limit=1000" + (f"&before={before}" if before else "")
        st, j = api.call("GET", q)
        if st != 200:
            raise RuntimeError(f"GET actions: {st} {j}")
        out += j["actions"]
        if not j.get("next"):
            return out
        before = j["next"]


def submit_actions(api, jobs, reason, threads):
    """POSTs one action per (type, identity_id) in jobs from `threads` client threads
    at once, as a responder's tooling would. Returns (ids of the accepted actions,
    (status, body) of each refusal)."""
    accepted, refused, lock = [], [], threading.Lock()

    def submit(part):
        for kind, idn in part:
            st, j = api.call("POST", "/api/v1/actions",
                             {"type": kind, "identity_id": idn, "reason": reason})
            with lock:
                if st == 201:
                    accepted.append(j["id"])
                else:
                    refused.append((st, j))

    ts = [threading.Thread(target=submit, args=(jobs[k::threads],))
          for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return accepted, refused


def mass_actions(api, types, rate):
    """Submits each of types for every identity quelld holds, from 4 client threads,
    then polls the action list every 0.5 s until all are terminal (or 10x the time
    the emulator's rate limit of rate requests/s needs has passed, at least 600 s).
    Returns the figures both mass benches print; elapsed runs from the first submit
    to the last finished_at, on quelld's clock."""
    jobs = [(t, i["id"]) for i in identities(api) for t in types]
    t0 = time.time()
    submitted, errors = submit_actions(api, jobs, "bench", 4)
    t_submitted = time.time() - t0
    deadline = time.monotonic() + max(600, 10 * len(jobs) / rate)
    while True:
        acts = {x["id"]: x for x in all_actions(api)}
        open_ = [aid for aid in submitted if acts.get(aid, {}).get("status")
                 not in TERMINAL]
        if not open_ or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    finished = [parse_time(acts[aid]["finished_at"]) for aid in submitted
                if acts.get(aid, {}).get("finished_at")]
    completed = sum(1 for aid in submitted if acts.get(aid, {}).get("status") ==
                    "completed")
    return {"elapsed": (max(finished) if finished else time.time()) - t0,
            "submit_s": t_submitted, "jobs": len(jobs), "submit_errors": len(errors),
            "not_terminal": len(open_), "not_completed": len(submitted) - completed,
            "first_submit_error": errors[:1]}


def run_sdk(script, work, ids, conf):
    """Runs bench/<script> with node on the account ids, given conf plus ids_file;
    the JSON of its last output line (its figures)."""
    idf = os.path.join(work, "sdk-ids.txt")
    with open(idf, "w") as f:
        f.write("\n".join(ids) + "\n")
    cf = os.path.join(work, "sdk.json")
    with open(cf, "w") as f:
        json.dump({**conf, "ids_file": idf}, f)
    r = subprocess.run([NODE, os.path.join(TOP, "bench", script), cf],
                       capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        sys.exit(f"sdk script failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def parse_time(s):
    """Seconds since the epoch of one of quelld's UTC times with microseconds."""
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def pct(v, p):
    """The p-th percentile of v, nearest rank."""
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def lab_env(lab):
    """The LAB_* settings a Samba lab writes to <lab>/env."""
    env = {}
    with open(os.path.join(lab, "env")) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            if k:
                env[k] = v
    return env


def ad_system(env, extra=""):
    """quelld's [system "corp"] section for the lab described by env, plus extra
    lines."""
    return f"""[system "corp"]
kind = ad
url = {env['LAB_LDAP_URL']}
ca_file = {env['LAB_CA']}
base_dn = {env['LAB_BASE_DN']}
bind_dn = {env['LAB_BIND_DN']}
password_file = {env['LAB_BIND_PW_FILE']}
{extra}"""


def lab_users(lab, n, prefix):
    """Adds users prefix0001..prefix<n> (no password, enabled) to the lab; existing
    ones are kept."""
    subprocess.run(["bash", SAMBA, "users", lab, str(n), prefix, "nopw"], check=True,
                   stdout=subprocess.DEVNULL, timeout=900)


@contextlib.contextmanager
def samba_lab(lab):
    """The Samba lab at lab, started if it is not running; without lab, a throwaway
    one provisioned here and removed after."""
    own = lab is None
    lab = lab or tempfile.mkdtemp(prefix="quell-bench-lab.")
    try:
        subprocess.run(["bash", SAMBA, "up", lab], check=True, stdout=subprocess.DEVNULL)
        yield lab
    finally:
        if own:
            subprocess.run(["bash", SAMBA, "down", lab], stdout=subprocess.DEVNULL)
            shutil.rmtree(lab, ignore_errors=True)


@contextlib.contextmanager
def work_dir(name, keep=False):
    """A fresh work directory for quelld's config, store and logs; removed after
    unless keep."""
    work = tempfile.mkdtemp(prefix=f"quell-bench-{name}-")
    try:
        yield work
    finally:
        if keep:
            print(f"work directory: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
