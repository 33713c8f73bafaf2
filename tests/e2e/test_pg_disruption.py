"""The disruption blast-radius limit holds for the cluster, not per node: alerts posted
at once to two nodes on one PostgreSQL database contain no more identities in the
window than the limit, the rest wait for approval, and one breach alert is raised."""
from concurrent.futures import ThreadPoolExecutor

from conftest import postgres, wait_for
from test_disruption import RULES, alert, ref

LIMIT = 3
N = 10


def two_nodes(quelld):
    store, _ = postgres().new_db()
    nodes = []
    for x in "ab":
        q = quelld(start=False, name=f"d{x}", store=store,
                   server={"node_id": f"d{x}", "workers": 2})
        with open(q.conf, "a") as f:
            f.write("\n" + RULES.format(limit=LIMIT) + "\n")
        nodes.append(q.start())
    return nodes


def test_blast_radius_is_cluster_wide(lab, quelld, make_user):
    a, b = two_nodes(quelld)
    users = [make_user(a, f"pgd{i}", sync=False) for i in range(N)]
    a.sync()
    for u in users:
        u.find(a)
    apis = [a.api("detector"), b.api("detector")]

    def post(item):
        i, u = item
        r = apis[i % 2].post("/api/v1/alerts", alert(ref(u)))
        assert r.status in (200, 201), r
        return r.json
    with ThreadPoolExecutor(N) as ex:
        outs = list(ex.map(post, enumerate(users)))

    outcomes = [o["decisions"][0]["outcome"] for o in outs]
    assert sorted(outcomes) == ["contained"] * LIMIT + ["held"] * (N - LIMIT), outcomes
    # Both nodes decided some (the requests alternated), and together kept the limit.
    by_node = [{outcomes[i] for i in range(n, N, 2)} for n in (0, 1)]
    assert all(by_node), by_node
    held = [[x for x in o["actions"] if x["type"] == "disable"][0]["id"]
            for o, oc in zip(outs, outcomes) if oc == "held"]
    for aid in held:
        assert b.admin.action(aid)["status"] == "pending_approval"
    contained = [[x for x in o["actions"] if x["type"] == "disable"][0]["id"]
                 for o, oc in zip(outs, outcomes) if oc == "contained"]
    for aid in contained:
        assert a.admin.wait_terminal(aid)["status"] == "completed"
    disabled = [u.sam for u in users if lab.uac(u.sam) & 2]
    assert len(disabled) == LIMIT, disabled

    # One breach alert for the window, whichever node raised it first.
    raised = wait_for(lambda: b.admin.ok("GET", "/api/v1/alerts?source=quell")["alerts"]
                      or None, 10, what="the breach alert")
    assert len(raised) == 1 and raised[0]["category"] == "blast_radius", raised
    exceeded = [e for e in a.admin.audit_all()
                if e["event"] == "disruption.blast_radius_exceeded"]
    assert len(exceeded) == N - LIMIT
