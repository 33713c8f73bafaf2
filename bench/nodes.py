#!/usr/bin/env python3
"""Benchmark: actions per second through 1, 2 and 3 quelld nodes on one PostgreSQL
database, and through one node on SQLite, in the same run, against the Samba lab.

Each configuration gets a fresh store (a new database; a new SQLite file), syncs the
lab's N bench users, and then disables all of them, the requests spread evenly over
its nodes from 4 client threads per node (as a load balancer would), timed from the
first request until every action is terminal; the users are enabled again (one
ldapmodify) before the next configuration. The last two lines are
`nodes 3/1 = R` (PostgreSQL, 3 nodes' throughput over 1 node's) and
`postgres/sqlite (1 node) = R`. Never fails on speed.

    bench/nodes.py [--n 1000] [--build build/release] [--lab DIR]

Without --lab (or LAB_DIR) it provisions a throwaway Samba lab and removes it after;
PostgreSQL is a throwaway cluster of scripts/lib/pg.sh.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from ad_disable import identities_by_name, ldapmodify, uac_ldif
from benchlib import (TERMINAL, TOP, ad_system, all_actions, lab_env, lab_users,
                      samba_lab, start_quelld, stop_proc, submit_actions, sync, work_dir)

PREFIX = "bench"
PG_SH = os.path.join(TOP, "scripts", "lib", "pg.sh")


def node_conf(env, work, node, store):
    return f"""[server]
listen = 127.0.0.1:0
node_id = {node}
workers = 8
[store]
{store}
{ad_system(env, "max_concurrency = 8")}
"""


def pg_db(conninfo, name):
    subprocess.run(["psql", conninfo, "-qAtX", "-c", f"CREATE DATABASE {name}"],
                   check=True, stdout=subprocess.DEVNULL)
    return f"backend = postgres\nconninfo = {conninfo} dbname={name}"


def run(build, env, work, stores, n):
    """Starts one node per store section, syncs, disables the n users through all of
    them; actions per second."""
    nodes = []
    try:
        for k, store in enumerate(stores):
            d = os.path.join(work, f"n{k}")
            os.makedirs(d)
            nodes.append(start_quelld(build, d, node_conf(env, d, f"n{k}", store)))
        apis = [api for _, api in nodes]
        sync(apis[0], "corp")
        ids = identities_by_name(apis[0], n)
        parts = [[("disable", i) for i in ids[k::len(apis)]] for k in range(len(apis))]
        refused = []
        t0 = time.monotonic()
        ts = [threading.Thread(target=lambda a=a, p=p: refused.extend(
            submit_actions(a, p, "benchmark", 4)[1])) for a, p in zip(apis, parts)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if refused:
            sys.exit(f"refused: {refused[:3]}")
        while True:
            acts = all_actions(apis[0])
            if len(acts) >= n and all(a["status"] in TERMINAL for a in acts):
                break
            time.sleep(0.2)
        elapsed = time.monotonic() - t0
        bad = [a for a in acts if a["status"] != "completed"]
        if bad:
            print(f"  {len(bad)} not completed, e.g. {bad[0]['message']}", file=sys.stderr)
        return n / elapsed
    finally:
        for proc, _ in nodes:
            stop_proc(proc)
        ldapmodify(env, [uac_ldif(env, range(1, n + 1), 544)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--build", default=os.path.join(TOP, "build/release"))
    ap.add_argument("--lab", default=os.environ.get("LAB_DIR"))
    args = ap.parse_args()
    pgdir = tempfile.mkdtemp(prefix="quell-bench-pg-")
    os.chmod(pgdir, 0o711)  # the cluster's owner (nobody, as root) reaches it
    subprocess.run(["bash", PG_SH, "up", os.path.join(pgdir, "c")], check=True,
                   stdout=subprocess.DEVNULL)
    try:
        with open(os.path.join(pgdir, "c", "env")) as f:
            conninfo = f.read().split("=", 1)[1].strip().strip("'")
        with samba_lab(args.lab) as lab, work_dir("nodes") as work:
            env = lab_env(lab)
            print(f"creating {args.n} users in the lab ...", flush=True)
            lab_users(lab, args.n, PREFIX)
            ldapmodify(env, [uac_ldif(env, range(1, args.n + 1), 544)])
            rate = {}
            for k in (1, 2, 3):
                db = pg_db(conninfo, f"bench_nodes_{k}")
                rate[k] = run(args.build, env, os.path.join(work, f"pg{k}"), [db] * k,
                              args.n)
                print(f"postgres, {k} node(s): {rate[k]:.0f} actions/s", flush=True)
            sq = run(args.build, env, os.path.join(work, "sqlite"),
                     [f"path = {work}/bench.db"], args.n)
            print(f"sqlite, 1 node: {sq:.0f} actions/s")
    finally:
        subprocess.run(["bash", PG_SH, "down", os.path.join(pgdir, "c")],
                       stdout=subprocess.DEVNULL)
        shutil.rmtree(pgdir, ignore_errors=True)
    print(f"nodes 3/1 = {rate[3] / rate[1]:.2f}")
    print(f"postgres/sqlite (1 node) = {rate[1] / sq:.2f}")


if __name__ == "__main__":
    main()
