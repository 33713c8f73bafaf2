"""Two quelld nodes on one PostgreSQL database: requests spread across both are each
carried out exactly once, whichever node takes the step; the audit log both write is
one chain; a node killed mid-batch loses its leases and the other finishes its steps."""
from concurrent.futures import ThreadPoolExecutor

from conftest import TERMINAL, UAC_DISABLE, postgres, wait_for

N = 40


def two_nodes(quelld, **opts):
    store, _ = postgres().new_db()
    return [quelld(name=f"n{x}", store=store,
                   server={"node_id": f"n{x}", "workers": 2, **opts.get("server", {})},
                   engine=opts.get("engine"))
            for x in "ab"]


def submit_all(nodes, ids):
    """One disable per identity, the requests alternating between the nodes."""
    apis = [n.api("responder") for n in nodes]

    def submit(item):
        i, (sam, iid) = item
        r = apis[i % len(apis)].post("/api/v1/actions", {
            "type": "disable", "identity_id": iid, "reason": f"pg nodes {sam}"})
        assert r.status == 201, r
        return r.json["id"]
    with ThreadPoolExecutor(8) as ex:
        return list(ex.map(submit, enumerate(ids.items())))


def all_terminal(api, n):
    def done():
        acts = api.actions_all("type=disable")
        return acts if sum(a["status"] in TERMINAL for a in acts) == n else None
    return wait_for(done, 180, interval=0.2, what="every action to finish")


def test_requests_spread_across_two_nodes(lab, quelld):
    prefix = lab.tag + "pn"
    sams = lab.users(N, prefix, nopw=True)
    a, b = two_nodes(quelld)
    a.sync()
    ids = {s: a.identity_of(s)["id"] for s in sams}
    # One inventory: what a synced, b reads.
    assert b.identity_of(sams[-1])["id"] == ids[sams[-1]]

    action_ids = submit_all([a, b], ids)
    assert len(set(action_ids)) == N
    acts = all_terminal(b.api("viewer"), N)
    assert {x["id"] for x in acts} == set(action_ids)
    assert {x["status"] for x in acts} == {"completed"}, \
        sorted({(x["status"], x["message"]) for x in acts})
    assert all(v & UAC_DISABLE for v in lab.uacs(prefix).values())

    # Exactly once: one start and one success per step, whoever ran it; the two nodes
    # both took steps.
    entries = a.api("admin").audit_all()
    started = [e for e in entries if e["event"] == "step.started"]
    succeeded = [e for e in entries if e["event"] == "step.succeeded"]
    assert sorted(e["action_id"] for e in started) == sorted(action_ids)
    assert sorted(e["action_id"] for e in succeeded) == sorted(action_ids)
    assert {e["actor"] for e in started} == {"na", "nb"}
    for aid in action_ids[::10]:
        (step,) = b.api("viewer").action(aid)["steps"]
        assert step["status"] == "succeeded" and step["attempts"] == 1, step

    # One chain, the same seen from either node, entries of both in it.
    va, vb = (n.api("admin").ok("GET", "/api/v1/audit/verify") for n in (a, b))
    assert va["ok"] and vb["ok"], (va, vb)
    assert va["entries"] == vb["entries"] == len(entries)


def test_node_killed_mid_batch(lab, quelld):
    prefix = lab.tag + "pk"
    n = 60
    sams = lab.users(n, prefix, nopw=True)
    # Short leases: the dead node's running steps are free again soon.
    a, b = two_nodes(quelld, engine={"lease_ms": 2000}, server={"workers": 1})
    a.sync()
    ids = {s: a.identity_of(s)["id"] for s in sams}
    action_ids = submit_all([a, b], ids)

    api = b.api("viewer")
    wait_for(lambda: len(api.actions_all("status=completed")) >= 5, 60, interval=0.01,
             what="the first actions to complete")
    a.kill()
    acts = all_terminal(api, n)
    assert {x["id"] for x in acts} == set(action_ids)
    assert {x["status"] for x in acts} == {"completed"}, \
        sorted({(x["status"], x["message"]) for x in acts})
    assert all(v & UAC_DISABLE for v in lab.uacs(prefix).values())
    v = b.api("admin").ok("GET", "/api/v1/audit/verify")
    assert v["ok"], v
