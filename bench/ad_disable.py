#!/usr/bin/env python3
"""Benchmark: disable then re-enable N AD users through quelld, each half as one bulk
request (POST /api/v1/actions/bulk), and apply the same userAccountControl
modifications with OpenLDAP's ldapmodify against the same Samba, in the same run: from
one LDIF (one session, serial) and split across 8 parallel ldapmodify processes (the
DC's own ceiling: Samba serializes directory writes). Prints the times, then
`ad_disable quell/ldapmodify = R` (goal <= 1.0) and last `ad_disable quell/ceiling = R`
(goal <= 1.1); lower is better. Never fails on speed.

    bench/ad_disable.py [--n 1000] [--build build/release] [--lab DIR]

Without --lab (or LAB_DIR) it provisions a throwaway Samba lab and removes it after.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

from benchlib import (TERMINAL, TOP, ad_system, identities, lab_env, lab_users, samba_lab,
                      start_quelld, stop_proc, sync, work_dir)

PREFIX = "bench"
CEILING_PROCS = 8
BULK_MAX = 1000  # the most requests quelld takes in one bulk


def ldap_env(env):
    """The environment for OpenLDAP's tools to trust the lab's CA."""
    e = dict(os.environ)
    e["LDAPTLS_CACERT"] = env["LAB_CA"]
    e["LDAPTLS_REQCERT"] = "demand"
    return e


def ldapmodify(env, ldifs):
    """Applies each LDIF of ldifs with an ldapmodify session of its own, all at once;
    the seconds until the last one ended."""
    paths = []
    for ldif in ldifs:
        with tempfile.NamedTemporaryFile("w", suffix=".ldif", delete=False) as f:
            f.write(ldif)
            paths.append(f.name)
    try:
        t0 = time.monotonic()
        procs = [subprocess.Popen(["ldapmodify", "-x", "-H", env["LAB_LDAP_URL"], "-D",
                                   env["LAB_BIND_DN"], "-y", env["LAB_BIND_PW_FILE"],
                                   "-f", path], env=ldap_env(env),
                                  stdout=subprocess.DEVNULL) for path in paths]
        rcs = [p.wait() for p in procs]
        elapsed = time.monotonic() - t0
        if any(rcs):
            sys.exit(f"ldapmodify failed: exit statuses {rcs}")
        return elapsed
    finally:
        for path in paths:
            os.unlink(path)


def uac_ldif(env, users, uac):
    """An LDIF setting userAccountControl to uac on the bench users numbered users."""
    return "".join(
        f"dn: CN={PREFIX}{i:04d},CN=Users,{env['LAB_BASE_DN']}\nchangetype: modify\n"
        f"replace: userAccountControl\nuserAccountControl: {uac}\n-\n\n"
        for i in users)


def time_ldapmodify(env, n, procs):
    """Disables then re-enables the bench's n users with the modifications split
    across procs parallel ldapmodify sessions; the seconds of each half."""
    parts = [range(1 + k, n + 1, procs) for k in range(procs)]
    return tuple(ldapmodify(env, [uac_ldif(env, p, uac) for p in parts])
                 for uac in (546, 544))


def quelld_conf(env, work):
    """quelld's config: the lab's AD as the one system."""
    return f"""[server]
listen = 127.0.0.1:0
workers = 8
[store]
path = {work}/bench.db
{ad_system(env, "max_concurrency = 8")}
"""


def identities_by_name(api, n):
    """The identity ids of the bench's n users, in user order."""
    wanted = {f"{PREFIX}{i:04d}" for i in range(1, n + 1)}
    found = {acct["username"]: idn["id"] for idn in identities(api)
             for acct in idn["accounts"] if acct.get("username") in wanted}
    return [found[f"{PREFIX}{i:04d}"] for i in range(1, n + 1)]


def wait_terminal(api, acts):
    """Polls each action every 20 ms, in order, until all are terminal; reports those
    that did not complete."""
    pending = set(acts)
    while pending:
        time.sleep(0.02)
        for aid in list(pending):
            status, a = api.call("GET", "/api/v1/actions/" + aid)
            if a["status"] in TERMINAL:
                pending.discard(aid)
                if a["status"] != "completed":
                    print(f"  {aid}: {a['status']}: {a['message']}", file=sys.stderr)
            else:
                break


def submit_bulk(api, ids, kind):
    """Requests kind on every identity of ids in bulk requests of BULK_MAX at most;
    the ids of the actions. Exits on any refusal: the bench measures accepted work."""
    acts = []
    for k in range(0, len(ids), BULK_MAX):
        st, j = api.call("POST", "/api/v1/actions/bulk", {
            "type": kind, "reason": "benchmark", "all_or_nothing": True,
            "requests": [{"identity_id": i} for i in ids[k:k + BULK_MAX]]})
        if st != 200:
            sys.exit(f"bulk {kind}: {st} {j}")
        acts += [x["action_id"] for x in j["results"]]
    return acts


def run_actions(api, ids, kind):
    """Submits one action per identity in bulk, then waits until every one is
    terminal."""
    t0 = time.monotonic()
    acts = submit_bulk(api, ids, kind)
    submitted = time.monotonic()
    wait_terminal(api, acts)
    print(f"  {kind}: submitted {len(acts)} in {submitted - t0:.3f} s, all terminal "
          f"after {time.monotonic() - t0:.3f} s")


def time_quell(api, n):
    """Disables then re-enables the bench's n users through quelld; the seconds of
    each half."""
    sync(api, "corp")
    ids = identities_by_name(api, n)
    t0 = time.monotonic()
    run_actions(api, ids, "disable")
    t1 = time.monotonic()
    run_actions(api, ids, "enable")
    return t1 - t0, time.monotonic() - t1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--build", default=os.path.join(TOP, "build/release"))
    ap.add_argument("--lab", default=os.environ.get("LAB_DIR"))
    args = ap.parse_args()

    with samba_lab(args.lab) as lab, work_dir("ad") as work:
        env = lab_env(lab)
        print(f"creating {args.n} users in the lab ...", flush=True)
        lab_users(lab, args.n, PREFIX)
        ldapmodify(env, [uac_ldif(env, range(1, args.n + 1), 544)])
        proc, api = start_quelld(args.build, work, quelld_conf(env, work))
        try:
            q_dis, q_en = time_quell(api, args.n)
            lm_dis, lm_en = time_ldapmodify(env, args.n, 1)
            ce_dis, ce_en = time_ldapmodify(env, args.n, CEILING_PROCS)
        finally:
            stop_proc(proc)
    quell, lm, ceiling = q_dis + q_en, lm_dis + lm_en, ce_dis + ce_en
    print(f"quell:      disable {q_dis:.3f} s + enable {q_en:.3f} s = "
          f"{quell:.3f} s for {2 * args.n} actions "
          f"({2 * args.n / quell:.0f} actions/s)")
    print(f"ldapmodify: disable {lm_dis:.3f} s + enable {lm_en:.3f} s = "
          f"{lm:.3f} s for {2 * args.n} modifies (one session)")
    print(f"ceiling:    disable {ce_dis:.3f} s + enable {ce_en:.3f} s = "
          f"{ceiling:.3f} s for {2 * args.n} modifies ({CEILING_PROCS} parallel "
          f"ldapmodify)")
    print(f"ad_disable quell/ldapmodify = {quell / lm:.2f}")
    print(f"ad_disable quell/ceiling = {quell / ceiling:.2f}")

if __name__ == "__main__":
    main()
