"""The directory goes away and comes back; accounts vanish; actions are cancelled."""
import pytest

from conftest import TERMINAL, UAC_DISABLE, wait_for


def step_of(api, aid):
    a = api.action(aid)
    assert len(a["steps"]) == 1, a
    return a, a["steps"][0]


def test_outage_retries_then_completes(lab, quelld, make_user, outage):
    q = quelld(url=outage.url, engine={"max_attempts": 1000})
    api = q.api("responder")
    users = [make_user(q, "out", sync=False) for _ in range(8)]
    q.sync()
    users = [u.find(q) for u in users]

    # the first part of the batch runs while the directory is there
    first = [api.run("disable", u.identity_id) for u in users[:3]]
    assert [a["status"] for a in first] == ["completed"] * 3

    outage.down()
    try:
        waiting = [api.submit("disable", u.identity_id)["id"] for u in users[3:]]

        def all_retrying():
            for aid in waiting:
                a, s = step_of(api, aid)
                if s["status"] != "retry_wait" or s["attempts"] < 2:
                    return False
            return True
        wait_for(all_retrying, 60, interval=0.1, what="every step to be in retry_wait")
        for aid in waiting:
            a, s = step_of(api, aid)
            assert a["status"] == "running", a
            assert s["error_code"] in ("serverDown", "connectError"), s
            assert "contact" in s["message"] or "connect" in s["message"], s
            assert s["not_before"] is not None and s["finished_at"] is None, s
    finally:
        outage.up()

    for aid in waiting:
        a = api.wait_terminal(aid, 60)
        assert a["status"] == "completed", a
        assert a["steps"][0]["status"] == "succeeded"
    for u in users:
        assert lab.uac(u.sam) & UAC_DISABLE, u.sam
    events = [e["event"] for e in q.admin.audit_all() if e["action_id"] in waiting]
    assert events.count("step.retry_wait") >= 2 * len(waiting)
    assert q.admin.ok("GET", "/api/v1/audit/verify")["ok"] is True


def test_account_gone_fails_fast(lab, quelld, make_user):
    q = quelld()
    api = q.api("responder")
    u = make_user(q, "gone")
    lab.delete(u.sam)
    a = api.run("disable", u.identity_id)
    assert a["status"] == "failed", a
    s = a["steps"][0]
    assert s["status"] == "failed" and s["attempts"] == 1, s
    assert "not found" in s["message"], s
    assert s["error_code"] == "noSuchObject", s


def test_cancel(lab, quelld, make_user, outage):
    # a long first retry delay (≥ 1.5 s) so that a step seen in retry_wait is still
    # waiting when the cancel arrives
    q = quelld(url=outage.url, engine={"retry_base_ms": 3000, "retry_cap_ms": 3000,
                                       "max_attempts": 1000})
    api = q.api("responder")
    users = [make_user(q, "can", sync=False) for _ in range(3)]
    q.sync()
    ids = [u.find(q).identity_id for u in users]
    done = api.run("disable", ids[0])
    assert done["status"] == "completed"

    outage.down()
    try:
        keep = api.submit("disable", ids[1])["id"]
        drop = api.submit("disable", ids[2])["id"]

        def waiting_long():
            a, s = step_of(api, drop)
            return s["status"] == "retry_wait" and s["not_before"] is not None
        wait_for(waiting_long, 60, interval=0.05, what="a step in retry_wait")
        r = api.post(f"/api/v1/actions/{drop}/cancel", {})
        assert r.status == 200, r
        assert r.json["status"] == "cancelled", r.json
        assert [s["status"] for s in r.json["steps"]] == ["cancelled"], r.json
        assert r.json["finished_at"] is not None
        again = api.post(f"/api/v1/actions/{drop}/cancel", {})
        assert again.status == 409 and again.error["code"] == "conflict", again
    finally:
        outage.up()

    k = api.wait_terminal(keep, 60)
    assert k["status"] == "completed", k
    # the cancelled one stays cancelled and never touched AD
    c = api.action(drop)
    assert c["status"] == "cancelled" and c["steps"][0]["status"] == "cancelled", c
    assert lab.uac(users[2].sam) & UAC_DISABLE == 0
    assert lab.uac(users[1].sam) & UAC_DISABLE

    r = api.post(f"/api/v1/actions/{done['id']}/cancel", {})
    assert r.status == 409 and r.error["code"] == "conflict", r
    assert api.action(done["id"])["status"] == "completed"
    listed = {a["id"] for a in api.actions_all("status=cancelled")}
    assert drop in listed and keep not in listed
    ev = [e["event"] for e in q.admin.audit_all() if e["action_id"] == drop]
    assert "action.cancel_requested" in ev and "step.cancelled" in ev, ev
    assert "action.cancelled" in ev, ev


@pytest.mark.single_node("the attempt that hangs is on the connection the warm-up left in "
                         "one process's pool; another node would have none, find new "
                         "connections refused and try again many times before the cancel")
def test_cancel_during_attempt_stops_retries(lab, quelld, make_user, relay):
    """A cancel that arrives while an attempt is in flight cannot stop that attempt,
    but the step must not be tried again once the attempt has failed."""
    q = quelld(url=f"ldaps://127.0.0.1:{relay.port}", system={"timeout": 2},
               engine={"max_attempts": 1000})
    api = q.api("responder")
    u = make_user(q, "cif")
    warm = api.run("enable", u.identity_id)  # leaves a bound connection in the pool
    assert warm["steps"][0]["message"] == "already enabled", warm
    relay.stall()  # the pooled connection hangs until the 2 s timeout; no new ones
    try:
        aid = api.submit("disable", u.identity_id)["id"]
        wait_for(lambda: step_of(api, aid)[1]["status"] == "running", 30,
                 what="the step to be running")
        r = api.post(f"/api/v1/actions/{aid}/cancel", {})
        assert r.status == 200, r
        # the attempt in flight times out (a transient failure) ...
        wait_for(lambda: step_of(api, aid)[1]["status"] != "running", 30,
                 what="the attempt to end")
    finally:
        relay.up()  # ... and the directory is back: nothing may act on the cancelled step
    a = api.wait_terminal(aid, 30)
    s = a["steps"][0]
    assert a["status"] == "cancelled", (
        f"cancel requested during an attempt, yet the step went on: action {a['status']}, "
        f"step {s['status']} after {s['attempts']} attempts")
    assert s["status"] == "cancelled", a
    # The request of the attempt in flight was already on the wire and may still land
    # once the directory reads it; what the cancel guarantees is no further attempt.
    assert s["attempts"] == 1, a


def test_hung_directory_times_out(lab, quelld, make_user, relay):
    """A server that accepts connections and never answers: the configured timeout
    (2 s here) must end the attempt as a transient failure, not hold a worker forever."""
    q = quelld(url=f"ldaps://127.0.0.1:{relay.port}", system={"timeout": 2},
               engine={"max_attempts": 1000})
    api = q.api("responder")
    u = make_user(q, "hung")
    relay.blackhole()
    try:
        aid = api.submit("disable", u.identity_id)["id"]
        wait_for(lambda: step_of(api, aid)[1]["status"] == "running", 30,
                 what="the step to be running")
        # 10 times the configured timeout: a generous bound, not a measurement
        s = wait_for(lambda: (lambda s: s if s["status"] != "running" else None)(
            step_of(api, aid)[1]), 20, interval=0.2,
            what="the hung attempt to end (timeout = 2 s is configured)")
        assert s["status"] == "retry_wait", s
    finally:
        relay.up()
    a = api.wait_terminal(aid, 30)
    assert a["status"] == "completed", a
    assert lab.uac(u.sam) & UAC_DISABLE


def test_reset_during_tls_handshake_is_transient(lab, quelld, make_user, relay):
    """A connection reset in the middle of the TLS handshake (the server restarting)
    is an outage to retry, not a certificate problem that fails the step for good."""
    q = quelld(url=f"ldaps://127.0.0.1:{relay.port}", engine={"max_attempts": 1000})
    api = q.api("responder")
    u = make_user(q, "rst")
    relay.slam()
    try:
        aid = api.submit("disable", u.identity_id)["id"]
        s = wait_for(lambda: (lambda s: s if s["attempts"] >= 1 and s["status"] not in
                              ("queued", "running") else None)(step_of(api, aid)[1]),
                     30, what="the first attempt to end")
        assert s["status"] == "retry_wait", s
        assert s["error_code"] != "tlsHandshake" and "certificate" not in s["message"], s
    finally:
        relay.up()
    a = api.wait_terminal(aid, 30)
    assert a["status"] == "completed", a
    assert lab.uac(u.sam) & UAC_DISABLE
