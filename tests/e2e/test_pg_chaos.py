"""Three quelld nodes on one PostgreSQL database and the Samba lab, under trouble:
a thousand disables submitted through all three while one node is killed with -9
mid-batch and later another restarts, or while PostgreSQL itself restarts. Every
action ends in exactly one terminal state, every account is disabled, no step was
carried out by two nodes unless the first died holding it, every account's
userAccountControl was written once (its replication metadata version, which the DC
raises on each write, went up by exactly what one disable raises it by), and the one audit chain verifies from
every node."""
import base64
import glob
import os
import struct
import subprocess
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import TERMINAL, UAC_DISABLE, postgres, wait_for


# ATT_USER_ACCOUNT_CONTROL in replPropertyMetaData (MS-ADTS attribute ids).
ATTID_UAC = 0x00090008


def uac_writes(lab, prefix):
    """{sam: version} of each user's userAccountControl: how many times the DC wrote
    it (replPropertyMetaDataBlob, MS-DRSR 5.11: version 1 with a count at byte 8, then
    48-byte entries whose first two words are the attribute id and its version)."""
    e = lab.search(f"(sAMAccountName={prefix}*)", ("sAMAccountName", "replPropertyMetaData"))
    out = {}
    for v in e.values():
        blob = base64.b64decode(v["replpropertymetadata"][0])
        (count,) = struct.unpack_from("<I", blob, 8)
        for i in range(count):
            attid, version = struct.unpack_from("<II", blob, 16 + 48 * i)
            if attid == ATTID_UAC:
                out[v["samaccountname"][0]] = version
    return out


def one_disable_writes(lab, quelld):
    """How far one disable by quell raises a user's userAccountControl version on
    this DC (its compare-and-swap is a delete and an add in one modify), measured
    on a user of its own through a quelld of its own."""
    prefix = lab.tag + "cz"
    (sam,) = lab.users(1, prefix, nopw=True)
    before = uac_writes(lab, prefix)[sam]
    q = quelld(name="cz")
    q.sync()
    a = q.admin.run("disable", q.identity_of(sam)["id"])
    assert a["status"] == "completed", a
    q.stop()
    d = uac_writes(lab, prefix)[sam] - before
    assert d >= 1, d
    return d


def three_nodes(quelld):
    store, _ = postgres().new_db()
    # Short step leases: the dead node's steps are free again soon. One worker and
    # one LDAP request at a time per node, so that the batch is still running when
    # trouble comes.
    return [quelld(name=n, store=store, server={"node_id": n, "workers": 1},
                   engine={"lease_ms": 2000}, system={"max_concurrency": 1})
            for n in ("ca", "cb", "cc")]


class Submitter:
    """Posts one disable per identity through the nodes in turn, as a load balancer
    would: a node that refuses the connection or drops it is skipped, the request
    sent to the next one (which may make a second action for that identity)."""

    def __init__(self, nodes):
        self.nodes = nodes
        self.down = set()
        self.lock = threading.Lock()

    def post(self, item):
        k, iid = item
        end = time.monotonic() + 120
        t = 0
        while time.monotonic() < end:
            q = self.nodes[(k + t) % len(self.nodes)]
            t += 1
            with self.lock:
                if q.dir.name in self.down:
                    continue
            try:
                r = q.api("responder").post("/api/v1/actions", {
                    "type": "disable", "identity_id": iid, "reason": "chaos"})
            except OSError:
                continue
            if r.status == 201:
                return r.json["id"]
            # 503 while the store is away: the client's retry, a moment later
            assert r.status == 503, r
            time.sleep(0.2)
        raise AssertionError(f"no node took the request for {iid}")


def settle(api, n_ids, timeout=600):
    """Waits for every action to end; returns them."""
    def done():
        acts = api.actions_all("type=disable")
        return acts if len(acts) >= n_ids and all(a["status"] in TERMINAL
                                                  for a in acts) else None
    return wait_for(done, timeout, interval=0.5, what="every action to end")


def check_outcome(lab, prefix, ids, acts, entries, died):
    """The assertions every run shares. died: nodes that stopped without finishing
    what they held."""
    by_identity = defaultdict(list)
    for a in acts:
        by_identity[a["identity_id"]].append(a)
    assert set(by_identity) == set(ids.values())
    assert {a["status"] for a in acts} == {"completed"}, \
        sorted({(a["status"], a["message"]) for a in acts})
    uacs = lab.uacs(prefix)
    assert len(uacs) == len(ids) and all(v & UAC_DISABLE for v in uacs.values())

    # Exactly one terminal state per action.
    ends = defaultdict(list)
    for e in entries:
        if e["action_id"] and e["event"] in {f"action.{s}" for s in TERMINAL}:
            ends[e["action_id"]].append(e["event"])
    assert {a["id"] for a in acts} == set(ends)
    assert all(v == ["action.completed"] for v in ends.values()), \
        {k: v for k, v in ends.items() if v != ["action.completed"]}

    # One success per step; a step started by several nodes was left by a dead one.
    starts, wins = defaultdict(list), defaultdict(list)
    for e in entries:
        if e["event"] == "step.started":
            starts[e["step_id"]].append(e["actor"])
        elif e["event"] == "step.succeeded":
            wins[e["step_id"]].append(e["actor"])
    assert set(wins) == set(starts)
    assert all(len(v) == 1 for v in wins.values()), \
        {k: v for k, v in wins.items() if len(v) != 1}
    for step, who in starts.items():
        assert who[-1] == wins[step][0], (step, who, wins[step])
        assert set(who[:-1]) <= died, (step, who)


def verify_everywhere(nodes, n_entries):
    for q in nodes:
        v = q.api("admin").ok("GET", "/api/v1/audit/verify")
        assert v["ok"] and v["entries"] >= n_entries, (q.dir.name, v)


def test_kill_one_restart_another(lab, quelld):
    prefix = lab.tag + "ch"
    n = 1000
    sams = lab.users(n, prefix, nopw=True)
    before = uac_writes(lab, prefix)
    assert len(before) == n, len(before)
    once = one_disable_writes(lab, quelld)
    a, b, c = three_nodes(quelld)
    a.sync()
    ids = {s: a.identity_of(s)["id"] for s in sams}
    sub = Submitter([a, b, c])
    viewer = a.api("viewer")

    with ThreadPoolExecutor(6) as ex:
        fut = ex.map(sub.post, enumerate(ids.values()))
        # Mid-batch: c dies holding leases, with requests still arriving.
        wait_for(lambda: len(viewer.actions_all("status=completed")) >= n // 5, 300,
                 interval=0.05, what="a fifth of the actions to complete")
        with sub.lock:
            sub.down.add("cc")
        c.kill()
        list(fut)
    # Later b restarts (a clean stop: it finishes what it runs, gives its leases up).
    wait_for(lambda: len(viewer.actions_all("status=completed")) >= n // 2, 300,
             interval=0.05, what="half the actions to complete")
    b.stop()
    b.start()

    acts = settle(viewer, n)
    entries = a.api("admin").audit_all()
    check_outcome(lab, prefix, ids, acts, entries, died={"cc"})
    after = uac_writes(lab, prefix)
    twice = {k: (before[k], v) for k, v in after.items() if v != before[k] + once}
    assert not twice, f"{len(twice)} accounts written more than once (one disable " \
        f"raises the version by {once}): {list(twice.items())[:10]}"
    verify_everywhere([a, b], len(entries))
    # c comes back to the same chain.
    c.start()
    verify_everywhere([c], len(entries))


def test_postgres_restarts_mid_batch(lab, quelld):
    pg = postgres()
    if pg.dir is None:
        pytest.skip("QUELL_TEST_PG's cluster is not this suite's to restart")
    prefix = lab.tag + "cf"
    n = 150
    sams = lab.users(n, prefix, nopw=True)
    nodes = three_nodes(quelld)
    nodes[0].sync()
    ids = {s: nodes[0].identity_of(s)["id"] for s in sams}
    sub = Submitter(nodes)
    viewer = nodes[0].api("viewer")

    with ThreadPoolExecutor(6) as ex:
        fut = ex.map(sub.post, enumerate(ids.values()))
        wait_for(lambda: len(viewer.actions_all("status=completed")) >= n // 5, 300,
                 interval=0.05, what="a fifth of the actions to complete")
        data = pg.dir / "c" / "data"
        ctl = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))[-1]
        owner = ["runuser", "-u", "nobody", "--"] if os.getuid() == 0 else []
        # The server's output to its log, not to pipes it would hold open.
        subprocess.run(owner + [ctl, "-D", str(data), "-l", str(pg.dir / "c" / "server.log"),
                                "-m", "fast", "-w", "restart"], check=True, timeout=120,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        list(fut)

    acts = settle(viewer, n)
    entries = nodes[0].api("admin").audit_all()
    # Nobody died: a step that ran while its result could not be stored runs again
    # under a new lease, from the same node or another.
    check_outcome(lab, prefix, ids, acts, entries, died={"ca", "cb", "cc"})
    verify_everywhere(nodes, len(entries))
