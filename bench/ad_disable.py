#!/usr/bin/env python3
"""Benchmark: disable then re-enable N AD users through quelld, and apply the same
userAccountControl modifications with OpenLDAP's ldapmodify from one LDIF against the
same Samba, in the same run. Prints both times; the last line is
`ad_disable quell/ldapmodify = R` (lower is better; goal <= 1.0). Never fails on speed.

    bench/ad_disable.py [--n 1000] [--build build/release] [--lab DIR]

Without --lab (or LAB_DIR) it provisions a throwaway Samba lab and removes it after.
"""
import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PREFIX = "bench"


def sh(*args, **kw):
    return subprocess.run(args, check=True, **kw)


def lab_env(lab):
    env = {}
    with open(os.path.join(lab, "env")) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            if k:
                env[k] = v
    return env


def ldap_env(env):
    e = dict(os.environ)
    e["LDAPTLS_CACERT"] = env["LAB_CA"]
    e["LDAPTLS_REQCERT"] = "demand"
    return e


def ldapmodify(env, ldif):
    with tempfile.NamedTemporaryFile("w", suffix=".ldif", delete=False) as f:
        f.write(ldif)
        path = f.name
    try:
        t0 = time.monotonic()
        sh("ldapmodify", "-x", "-H", env["LAB_LDAP_URL"], "-D", env["LAB_BIND_DN"],
           "-y", env["LAB_BIND_PW_FILE"], "-f", path, env=ldap_env(env),
           stdout=subprocess.DEVNULL)
        return time.monotonic() - t0
    finally:
        os.unlink(path)


def uac_ldif(env, n, uac):
    return "".join(
        f"dn: CN={PREFIX}{i:04d},CN=Users,{env['LAB_BASE_DN']}\nchangetype: modify\n"
        f"replace: userAccountControl\nuserAccountControl: {uac}\n-\n\n"
        for i in range(1, n + 1))


class Api:
    def __init__(self, port, token):
        self.port, self.token = port, token
        self.local = threading.local()

    def call(self, method, path, body=None):
        c = getattr(self.local, "conn", None)
        if c is None:
            c = self.local.conn = http.client.HTTPConnection("127.0.0.1", self.port)
        headers = {"Authorization": "Bearer " + self.token}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        c.request(method, path, body=data, headers=headers)
        r = c.getresponse()
        return r.status, json.loads(r.read() or b"null")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_quelld(build, env, work, port):
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
max_concurrency = 8
""")
    quelld = os.path.join(build, "src/daemon/quelld")
    token = subprocess.run([quelld, "-c", conf, "token", "create", "--name", "bench",
                            "--role", "admin"], check=True, capture_output=True,
                           text=True).stdout.strip()
    log = open(os.path.join(work, "quelld.log"), "w")
    proc = subprocess.Popen([quelld, "-c", conf], stderr=log)
    for _ in range(100):
        try:
            http.client.HTTPConnection("127.0.0.1", port).request("GET", "/healthz")
            break
        except OSError:
            time.sleep(0.05)
    return proc, Api(port, token)


def sync(api):
    """Starts a sync of the lab's users and waits for it (it runs in the background)."""
    status, rep = api.call("POST", "/api/v1/sync/corp")
    assert status == 202, rep
    want = rep["systems"][0]["requested_run"]
    while True:
        status, rep = api.call("GET", "/api/v1/sync")
        (corp,) = [x for x in rep["systems"] if x["system"] == "corp"]
        if corp["finished_run"] >= want:
            assert corp["error"] is None, corp
            return
        time.sleep(0.1)


def identities_by_name(api, n):
    wanted = {f"{PREFIX}{i:04d}" for i in range(1, n + 1)}
    found, after = {}, None
    while True:
        path = "/api/v1/identities?limit=1000" + (f"&after={after}" if after else "")
        status, page = api.call("GET", path)
        assert status == 200, page
        for idn in page["identities"]:
            for acct in idn["accounts"]:
                if acct.get("username") in wanted:
                    found[acct["username"]] = idn["id"]
        after = page["next"]
        if not after:
            return [found[f"{PREFIX}{i:04d}"] for i in range(1, n + 1)]


def run_actions(api, ids, kind, threads=8):
    """Submits one action per identity from several client threads, then waits until
    every one is terminal. Returns the ids of actions that did not complete."""
    acts, lock = [], threading.Lock()
    t0 = time.monotonic()

    def submit(chunk):
        for idn in chunk:
            status, a = api.call("POST", "/api/v1/actions", {
                "type": kind, "identity_id": idn, "reason": "benchmark"})
            assert status == 201, a
            with lock:
                acts.append(a["id"])

    ts = [threading.Thread(target=submit, args=(ids[i::threads],))
          for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    submitted = time.monotonic()
    pending = set(acts)
    while pending:
        time.sleep(0.02)
        for aid in list(pending):
            status, a = api.call("GET", "/api/v1/actions/" + aid)
            if a["status"] in ("completed", "failed", "partially_completed",
                               "cancelled", "denied"):
                pending.discard(aid)
                if a["status"] != "completed":
                    print(f"  {aid}: {a['status']}: {a['message']}", file=sys.stderr)
            else:
                break
    print(f"  {kind}: submitted {len(acts)} in {submitted - t0:.3f} s, all terminal "
          f"after {time.monotonic() - t0:.3f} s")
    return acts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--build", default=os.path.join(TOP, "build/release"))
    ap.add_argument("--lab", default=os.environ.get("LAB_DIR"))
    args = ap.parse_args()

    own_lab = args.lab is None
    lab = args.lab or tempfile.mkdtemp(prefix="quell-bench-lab.")
    samba = os.path.join(TOP, "scripts/lab/samba.sh")
    work = tempfile.mkdtemp(prefix="quell-bench.")
    proc = None
    try:
        sh("bash", samba, "up", lab, stdout=subprocess.DEVNULL)
        env = lab_env(lab)
        print(f"creating {args.n} users in the lab ...", flush=True)
        sh("bash", samba, "users", lab, str(args.n), PREFIX, "nopw")
        ldapmodify(env, uac_ldif(env, args.n, 544))
        proc, api = start_quelld(args.build, env, work, free_port())
        sync(api)
        ids = identities_by_name(api, args.n)

        t0 = time.monotonic()
        run_actions(api, ids, "disable")
        t1 = time.monotonic()
        run_actions(api, ids, "enable")
        t2 = time.monotonic()
        quell = t2 - t0

        lm_dis = ldapmodify(env, uac_ldif(env, args.n, 546))
        lm_en = ldapmodify(env, uac_ldif(env, args.n, 544))
        lm = lm_dis + lm_en

        print(f"quell:      disable {t1 - t0:.3f} s + enable {t2 - t1:.3f} s = "
              f"{quell:.3f} s for {2 * args.n} actions "
              f"({2 * args.n / quell:.0f} actions/s)")
        print(f"ldapmodify: disable {lm_dis:.3f} s + enable {lm_en:.3f} s = "
              f"{lm:.3f} s for {2 * args.n} modifies")
        print(f"ad_disable quell/ldapmodify = {quell / lm:.2f}")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()
        if own_lab:
            subprocess.run(["bash", samba, "down", lab], stdout=subprocess.DEVNULL)
            subprocess.run(["rm", "-rf", lab])
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
