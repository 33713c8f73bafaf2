"""Nodes on one PostgreSQL database see each other: /readyz on each lists every node by
its heartbeat and the once-per-cluster jobs it runs; each job runs on exactly one node,
and moves to another within seconds when its node is killed. Work queued on one node
wakes an idle other at once (LISTEN/NOTIFY), not at its next poll."""
import time

import pytest

from conftest import TERMINAL, postgres, wait_for

SINGLETONS = {"approval-expiry"}


def nodes(quelld, names):
    store, _ = postgres().new_db()
    # Short step leases: the keeper, which expires approvals, wakes every second.
    return [quelld(name=n, store=store, server={"node_id": n, "workers": 2},
                   engine={"lease_ms": 3000})
            for n in names]


def cluster(q):
    r = q.api(None).get("/readyz")
    assert r.status == 200, r
    c = r.json["cluster"]
    assert c["shared"] is True and c["node"] == q_name(q), c
    return {n["node_id"]: n for n in c["nodes"]}


def q_name(q):
    return q.dir.name


def holders(view):
    """Each singleton and the alive nodes holding it."""
    got = {}
    for n in view.values():
        for lease in n["leases"]:
            got.setdefault(lease, []).append(n["node_id"])
    return got


def settled(qs, alive):
    """Once every node reports the same: the alive nodes, each singleton on one of
    them."""
    views = [cluster(q) for q in qs]
    for v in views:
        if {k for k, n in v.items() if n["alive"]} != alive:
            return None
        h = holders(v)
        if set(h) != SINGLETONS or any(len(h[s]) != 1 or h[s][0] not in alive
                                       for s in SINGLETONS):
            return None
    first = holders(views[0])
    return first if all(holders(v) == first for v in views) else None


def test_cluster_and_singletons(lab, quelld):
    a, b, c = nodes(quelld, ["na", "nb", "nc"])
    h = wait_for(lambda: settled([a, b, c], {"na", "nb", "nc"}), 30, interval=0.2,
                 what="three nodes, each singleton on one")
    # The node holding approval expiry dies without a word: another takes it over
    # within a lease (10 s) and a few heartbeats.
    by_name = {"na": a, "nb": b, "nc": c}
    dead = h["approval-expiry"][0]
    by_name[dead].kill()
    rest = [q for n, q in by_name.items() if n != dead]
    t0 = time.monotonic()
    h2 = wait_for(lambda: settled(rest, {q_name(q) for q in rest}), 30, interval=0.2,
                  what="the singletons to move off the dead node")
    assert time.monotonic() - t0 < 20
    assert dead not in sum(h2.values(), [])
    view = cluster(rest[0])
    assert view[dead]["alive"] is False and view[dead]["leases"] == []

    # A graceful stop gives its leases up at once.
    holder = by_name[h2["approval-expiry"][0]]
    other = [q for q in rest if q is not holder][0]
    holder.stop()
    wait_for(lambda: holders(cluster(other)).get("approval-expiry") == [q_name(other)],
             8, interval=0.2, what="the survivor to take approval expiry")


def test_work_wakes_idle_node(lab, quelld):
    """A bulk request through a, which has room for one job (one system and type),
    leaves the other type queued: b, idle, starts on it at once (the notice of a's
    commit), not at its next one-second poll, by when a would have taken it itself."""
    prefix = lab.tag + "wk"
    rounds, per = 6, 2
    sams = lab.users(rounds * per, prefix, nopw=True)
    store, _ = postgres().new_db()
    a, b = (quelld(name=n, store=store, server={"node_id": n, "workers": w})
            for n, w in (("wa", 1), ("wb", 2)))
    a.sync()
    ids = [a.identity_of(s)["id"] for s in sams]
    api_a, adm = a.api("responder"), b.api("admin")
    delays = []
    for k in range(rounds):
        time.sleep(1.3)  # both idle: b's dispatcher is somewhere in its poll
        seq = adm.audit_all()[-1]["seq"]
        two = zip(ids[k * per:(k + 1) * per], ("disable", "enable"))
        r = api_a.post("/api/v1/actions/bulk", {"type": "disable", "reason": "wake",
                       "requests": [{"identity_id": i, "type": t} for i, t in two]})
        assert r.status == 200, r
        wait_for(lambda: sum(x["status"] in TERMINAL for x in
                             b.api("viewer").actions_all()) == (k + 1) * per, 60,
                 what="the round's actions to finish")
        new = [e for e in adm.audit_all() if e["seq"] > seq]
        req = max(e["time_ms"] for e in new if e["event"] == "action.requested")
        st = [e["time_ms"] for e in new
              if e["event"] == "step.started" and e["actor"] == "wb"]
        # a alone would take the second job too, once done with the first
        delays.append((min(st) - req) / 1000 if st else float("inf"))
    assert sum(d < 0.4 for d in delays) >= rounds - 1, delays


@pytest.mark.timer("the first scheduled run comes a minute after start")
def test_scheduled_sync_on_one_node(lab, quelld):
    """Both nodes have the schedule; when it falls due one of them takes the lease
    and syncs, the other stands by."""
    store, _ = postgres().new_db()
    qs = [quelld(name=n, store=store, server={"node_id": n},
                 system={"sync_interval": "1m"}) for n in ("sa", "sb")]

    def corp(q):
        (c,) = [x for x in q.admin.ok("GET", "/api/v1/sync")["systems"]
                if x["system"] == "corp"]
        return c

    def one_ran():
        runs = [corp(q)["finished_run"] for q in qs]
        return runs if max(runs) >= 1 else None
    # the first scheduled run comes one interval after start: a bound, not a timing
    runs = wait_for(one_ran, 150, interval=1, what="the scheduled sync")
    time.sleep(6)  # the other's next look at the lease
    runs = [corp(q)["finished_run"] for q in qs]
    assert sorted(runs) == [0, 1], runs
    h = holders(cluster(qs[0]))
    assert h.get("sync:corp") == [qs[runs.index(1)].dir.name], h
