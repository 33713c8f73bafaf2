#!/usr/bin/env python3
"""Benchmark: disable then re-enable N AD users through quelld, and apply the same
userAccountControl modifications with OpenLDAP's ldapmodify from one LDIF against the
same Samba, in the same run. Prints both times; the last line is
`ad_disable quell/ldapmodify = R` (lower is better; goal <= 1.0). Never fails on speed.

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
                      start_quelld, stop_proc, submit_actions, sync, work_dir)

PREFIX = "bench"


def ldap_env(env):
    """The environment for OpenLDAP's tools to trust the lab's CA."""
    e = dict(os.environ)
    e["LDAPTLS_CACERT"] = env["LAB_CA"]
    e["LDAPTLS_REQCERT"] = "demand"
    return e


def ldapmodify(env, ldif):
    """Applies ldif with one ldapmodify session; the seconds it took."""
    with tempfile.NamedTemporaryFile("w", suffix=".ldif", delete=False) as f:
        f.write(ldif)
        path = f.name
    try:
        t0 = time.monotonic()
        subprocess.run(["ldapmodify", "-x", "-H", env["LAB_LDAP_URL"], "-D",
                        env["LAB_BIND_DN"], "-y", env["LAB_BIND_PW_FILE"], "-f", path],
                       check=True, env=ldap_env(env), stdout=subprocess.DEVNULL)
        return time.monotonic() - t0
    finally:
        os.unlink(path)


def uac_ldif(env, n, uac):
    """An LDIF setting userAccountControl to uac on the bench's n users."""
    return "".join(
        f"dn: CN={PREFIX}{i:04d},CN=Users,{env['LAB_BASE_DN']}\nchangetype: modify\n"
        f"replace: userAccountControl\nuserAccountControl: {uac}\n-\n\n"
        for i in range(1, n + 1))


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


def run_actions(api, ids, kind, threads=8):
    """Submits one action per identity from several client threads, then waits until
    every one is terminal."""
    t0 = time.monotonic()
    acts, refused = submit_actions(api, [(kind, i) for i in ids], "benchmark", threads)
    assert not refused, refused
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
        ldapmodify(env, uac_ldif(env, args.n, 544))
        proc, api = start_quelld(args.build, work, quelld_conf(env, work))
        try:
            q_dis, q_en = time_quell(api, args.n)
            lm_dis = ldapmodify(env, uac_ldif(env, args.n, 546))
            lm_en = ldapmodify(env, uac_ldif(env, args.n, 544))
        finally:
            stop_proc(proc)
    quell, lm = q_dis + q_en, lm_dis + lm_en
    print(f"quell:      disable {q_dis:.3f} s + enable {q_en:.3f} s = "
          f"{quell:.3f} s for {2 * args.n} actions "
          f"({2 * args.n / quell:.0f} actions/s)")
    print(f"ldapmodify: disable {lm_dis:.3f} s + enable {lm_en:.3f} s = "
          f"{lm:.3f} s for {2 * args.n} modifies")
    print(f"ad_disable quell/ldapmodify = {quell / lm:.2f}")

if __name__ == "__main__":
    main()
