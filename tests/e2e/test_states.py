"""Action and decision states that say what happened: a rejected request ends
`rejected`, a cancelled request that waited for approval ends at once, and a dry-run
rule's decision is `dry_run` even when nothing could be planned."""
from test_disruption import alert, ref, with_rules
from test_policy import APPROVALS, events, tag, token, with_config


def test_rejected_is_its_own_state(lab, quelld, make_user):
    q = with_config(quelld, APPROVALS.format(expire="1h"))
    vip = make_user(q, "rjs")
    tag(q, vip, "tier0")
    a = q.api("responder").submit("disable", vip.identity_id)
    assert a["status"] == "pending_approval"
    approver = token(q, "erin", "approver")
    rej = approver.ok("POST", f"/api/v1/actions/{a['id']}/reject", {"reason": "benign"})
    assert rej["status"] == "rejected" and rej["decided_by"] == "erin", rej
    assert rej["finished_at"] is not None
    assert [x["id"] for x in q.admin.actions_all("status=rejected")] == [a["id"]]
    assert q.admin.actions_all("status=cancelled") == []
    assert "action.rejected" in [e["event"] for e in events(q, a["id"])]
    # a rejected action changed nothing: there is nothing to undo
    r = q.admin.post(f"/api/v1/actions/{a['id']}/undo", {"reason": "back"})
    assert r.status == 409 and "changed nothing" in r.error["message"], r
    assert lab.uac(vip.sam) & 2 == 0


def test_cancelling_a_pending_action_ends_it(lab, quelld, make_user):
    q = with_config(quelld, APPROVALS.format(expire="1h"))
    vip = make_user(q, "cps")
    tag(q, vip, "tier0")
    api = q.api("responder")
    a = api.submit("disable", vip.identity_id)
    done = api.ok("POST", f"/api/v1/actions/{a['id']}/cancel", {})
    assert done["status"] == "cancelled" and done["finished_at"] is not None, done
    assert all(s["status"] == "cancelled" for s in done["steps"])
    assert q.admin.actions_all("status=pending_approval") == []
    ev = [e["event"] for e in events(q, a["id"])]
    assert ev.index("action.cancel_requested") < ev.index("action.cancelled"), ev
    r = token(q, "erin", "approver").post(f"/api/v1/actions/{a['id']}/approve", {})
    assert r.status == 409
    assert lab.uac(vip.sam) & 2 == 0


def test_dry_run_with_nothing_to_plan_is_dry_run(lab, quelld, make_user):
    # AD cannot revoke sessions: the rule plans nothing for an AD-only identity
    q = with_rules(quelld, extra='[disruption "sessions"]\ncategories = lateral_movement\n'
                   'actions = revoke_sessions\ndry_run = true\n')
    u = make_user(q, "dnp")
    r = q.api("detector").post("/api/v1/alerts", alert(ref(u), category="lateral_movement"))
    (d,) = r.json["decisions"]
    assert d["outcome"] == "dry_run" and d["rule"] == "sessions", d
    assert d["detail"]["not_applicable"] == ["revoke_sessions"], d
