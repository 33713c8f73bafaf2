"""Automatic attack disruption through the whole daemon and the Samba lab: alerts in,
containment out as the built-in principal, exclusions, the blast-radius limit, dry
runs, no double containment, and release."""
import json
import secrets
import subprocess

from conftest import QUELLD, wait_for

RULES = """[disruption "contain"]
categories = ransomware credential_theft
min_severity = medium
min_confidence = 50
actions = contain

[disruption "watch"]
categories = password_spray
actions = contain
dry_run = true

[disruption_guard]
max_containments = {limit}
window = 1h
"""


def with_rules(quelld, limit=10, extra=""):
    q = quelld(start=False)
    with open(q.conf, "a") as f:
        f.write("\n" + RULES.format(limit=limit) + extra + "\n")
    return q.start()


def alert(account, category="ransomware", **kw):
    body = {"id": "a-" + secrets.token_hex(6), "source": "mdi",
            "time": "2026-11-25T08:00:00Z", "title": "Ransomware activity",
            "category": category, "severity": "high", "confidence": 90,
            "entities": {"accounts": [account], "ips": ["10.1.2.3"], "hosts": ["ws-17"]}}
    body.update(kw)
    return body


def ref(user):
    acc = user.account
    return {"upn": acc["upn"]} if acc.get("upn") else {"sid": acc["sid"]}


def auto_actions(q, identity_id):
    return [a for a in q.admin.actions_all(f"identity_id={identity_id}")
            if a["source"] == "automatic_attack_disruption"]


def audit_events(q, event):
    return [e for e in q.admin.audit_all() if e["event"] == event]


def two_users(q, make_user, hint):
    """Two fresh users, one sync: the one under test and a marker (engine_went_past)."""
    us = [make_user(q, hint, sync=False), make_user(q, "mk", sync=False)]
    q.sync()
    return [u.find(q) for u in us]


def engine_went_past(q, marker):
    """The positive event before a "nothing happened" check: an action requested now
    (as admin, on the marker user) runs to completion. The engine claims steps oldest
    first, so whatever was claimable before it has had its turn."""
    a = q.admin.run("disable", marker.identity_id, reason="marker")
    assert a["status"] == "completed", a
    return a


def test_alert_contains_release_undoes(lab, quelld, make_user):
    q = with_rules(quelld)
    u = make_user(q, "dsa")
    assert lab.kinit(u.sam, u.password)[0] == 0
    responder, detector = q.api("responder"), q.api("detector")
    body = alert(ref(u))
    r = detector.post("/api/v1/alerts", body)
    assert r.status == 201, r
    al = r.json
    acc = [e for e in al["entities"] if e["type"] == "account"][0]
    assert acc["resolution"] == "resolved" and acc["identity_id"] == u.identity_id
    assert {e["type"] for e in al["entities"]} == {"account", "ip", "host"}
    (d,) = al["decisions"]
    assert d["outcome"] == "contained" and d["rule"] == "contain", d
    (dis,) = [a for a in al["actions"] if a["type"] == "disable"]
    # within one engine tick: the action was queued when the alert was answered
    a = q.admin.wait_terminal(dis["id"], timeout=10)
    assert a["status"] == "completed", a
    assert a["source"] == "automatic_attack_disruption" and a["alert_id"] == al["id"]
    assert a["requested_by"] == "automatic-attack-disruption"
    assert lab.kinit(u.sam, u.password)[0] != 0
    req = [e for e in audit_events(q, "action.requested") if e["action_id"] == a["id"]]
    assert req[0]["detail"]["alert_id"] == al["id"]
    assert req[0]["actor"] == "automatic-attack-disruption"

    # the same alert again: the stored one answers, nothing new is created
    n_actions = len(auto_actions(q, u.identity_id))
    r = detector.post("/api/v1/alerts", body)
    assert r.status == 200 and r.json["id"] == al["id"], r
    # another alert for the contained identity: recorded, not acted on
    r = detector.post("/api/v1/alerts", alert(ref(u), category="credential_theft"))
    assert r.status == 201, r
    assert r.json["decisions"][0]["outcome"] == "duplicate", r.json
    assert r.json["actions"] == []
    assert len(auto_actions(q, u.identity_id)) == n_actions

    got = q.admin.ok("GET", f"/api/v1/alerts/{al['id']}")
    assert got["decisions"][0]["outcome"] == "contained"
    assert any(x["id"] == dis["id"] for x in got["actions"])

    # release: every automatic containment in force is undone
    r = responder.post(f"/api/v1/identities/{u.identity_id}/release",
                       {"reason": "false positive"})
    assert r.status == 200, r
    undo = [x for x in r.json["results"] if x["type"] == "disable"][0]
    e = q.admin.wait_terminal(undo["undo_action_id"], timeout=30)
    assert e["status"] == "completed" and e["type"] == "enable" and e["undo_of"] == dis["id"]
    assert lab.kinit(u.sam, u.password)[0] == 0
    assert audit_events(q, "disruption.released")
    # nothing is in force any more; a new alert contains again
    r = responder.post(f"/api/v1/identities/{u.identity_id}/release", {"reason": "again"})
    assert r.status == 409, r
    r = detector.post("/api/v1/alerts", alert(ref(u)))
    assert r.json["decisions"][0]["outcome"] == "contained", r.json


def test_unresolved_entities_are_kept(quelld):
    q = with_rules(quelld)
    r = q.api("detector").post("/api/v1/alerts", alert({"upn": "nobody@nowhere.test"}))
    assert r.status == 201, r
    acc = [e for e in r.json["entities"] if e["type"] == "account"][0]
    assert acc["resolution"] == "unknown" and acc["identity_id"] is None
    assert r.json["decisions"] == []
    listed = q.admin.ok("GET", "/api/v1/alerts?source=mdi")["alerts"]
    assert [a["id"] for a in listed] == [r.json["id"]]


def test_excluded_identity_never_touched(lab, quelld, make_user):
    q = with_rules(quelld)
    u, mark = two_users(q, make_user, "dsx")
    q.admin.ok("PUT", f"/api/v1/identities/{u.identity_id}/tags", {"tags": ["tier0"]})
    r = q.api("detector").post("/api/v1/alerts", alert(ref(u)))
    assert r.status == 201, r
    (d,) = r.json["decisions"]
    assert d["outcome"] == "excluded" and "tier0" in d["detail"]["why"], d
    assert r.json["actions"] == [] and auto_actions(q, u.identity_id) == []
    ev = [e for e in audit_events(q, "disruption.excluded")
          if e["identity_id"] == u.identity_id]
    assert ev and ev[0]["detail"]["alert_id"] == r.json["id"]
    engine_went_past(q, mark)
    assert q.admin.actions_all(f"identity_id={u.identity_id}") == []
    assert lab.uac(u.sam) & 2 == 0
    assert lab.kinit(u.sam, u.password)[0] == 0


def test_bind_account_never_touched(lab, quelld, make_user):
    q = with_rules(quelld)
    mark = make_user(q, "dsn")
    admin = q.identity_of("Administrator")
    acc = [a for a in admin["accounts"] if a["username"] == "Administrator"][0]
    assert lab.bind_dn.startswith("CN=Administrator,"), lab.bind_dn
    uac = lab.uac("Administrator")
    assert uac & 2 == 0
    r = q.api("detector").post("/api/v1/alerts", alert({"sid": acc["sid"]}))
    assert r.status == 201, r
    (d,) = r.json["decisions"]
    assert d["outcome"] == "excluded" and "signs in" in d["detail"]["why"], d
    assert r.json["actions"] == []
    engine_went_past(q, mark)
    assert q.admin.actions_all(f"identity_id={admin['id']}") == []
    assert lab.uac("Administrator") == uac


def test_blast_radius_holds_and_raises(lab, quelld, make_user):
    q = with_rules(quelld, limit=2)
    users = [make_user(q, f"dsb{i}", sync=False) for i in range(3)]
    mark = make_user(q, "mk", sync=False)
    q.sync()
    for u in users + [mark]:
        u.find(q)
    outs = [q.api("detector").post("/api/v1/alerts", alert(ref(u))).json for u in users]
    assert [o["decisions"][0]["outcome"] for o in outs] == ["contained", "contained", "held"]
    held = [a for a in outs[2]["actions"] if a["type"] == "disable"][0]
    assert held["status"] == "pending_approval"
    a = q.admin.action(held["id"])
    assert a["approval_rule"] == "blast-radius"
    for o in outs[:2]:
        q.admin.wait_terminal([a for a in o["actions"] if a["type"] == "disable"][0]["id"])
    engine_went_past(q, mark)
    assert q.admin.action(held["id"])["status"] == "pending_approval"
    assert lab.uac(users[2].sam) & 2 == 0
    assert lab.uac(users[0].sam) & 2 and lab.uac(users[1].sam) & 2
    assert audit_events(q, "disruption.blast_radius_exceeded")
    raised = q.admin.ok("GET", "/api/v1/alerts?source=quell")["alerts"]
    assert len(raised) == 1 and raised[0]["category"] == "blast_radius"
    # a person approves: it runs
    q.admin.ok("POST", f"/api/v1/actions/{held['id']}/approve", {"reason": "real"})
    assert q.admin.wait_terminal(held["id"])["status"] == "completed"
    assert lab.uac(users[2].sam) & 2


def test_dry_run_records_plan_touches_nothing(lab, quelld, make_user):
    q = with_rules(quelld)
    u, mark = two_users(q, make_user, "dsd")
    before = q.admin.actions_all()
    r = q.api("detector").post("/api/v1/alerts", alert(ref(u), category="password_spray"))
    (d,) = r.json["decisions"]
    assert d["outcome"] == "dry_run" and d["rule"] == "watch", d
    plan = {p["type"]: p for p in d["detail"]["plan"]}
    (step,) = plan["disable"]["steps"]
    assert step["account"] == u.sam and step["status"] == "queued"
    assert plan["disable"]["would_be"] == "queued"
    # contain is disable + revoke_sessions: AD cannot revoke sessions, so the plan is
    # the disable alone and says so
    assert set(plan) == {"disable"}, plan
    assert d["detail"]["not_applicable"] == ["revoke_sessions"], d
    assert q.admin.actions_all() == before
    marker = engine_went_past(q, mark)
    assert [a["id"] for a in q.admin.actions_all()] == [marker["id"]] + \
        [a["id"] for a in before]
    assert lab.uac(u.sam) & 2 == 0
    assert any(e["identity_id"] == u.identity_id for e in audit_events(q, "disruption.dry_run"))


def test_alert_input_is_checked(quelld):
    q = with_rules(quelld)
    api = q.api("detector")
    good = alert({"upn": "x@quell.test"})
    cases = [
        ({"severity": "extreme"}, "severity"),
        ({"confidence": 101}, "confidence"),
        ({"confidence": "sure"}, "confidence"),
        ({"category": "phishy"}, "category"),
        ({"time": "yesterday"}, "time"),
        ({"source": "quell"}, "source"),
        ({"source": "a b"}, "source"),
        ({"id": ""}, "id"),
        ({"title": "x" * 600}, "title"),
        ({"entities": {"accounts": [{"sid": "S-9"}]}}, "entities.accounts[0].sid"),
        ({"entities": {"accounts": [{"upn": "a@b", "sid": "S-1-5-21-1"}]}},
         "entities.accounts[0]"),
        ({"entities": {"ips": ["300.1.1.1"]}}, "entities.ips[0]"),
        ({"entities": {"hosts": ["a b"]}}, "entities.hosts[0]"),
        ({"entities": {"accounts": [{"entra_id": "nope"}]}},
         "entities.accounts[0].entra_id"),
        ({"bogus": 1}, "bogus"),
    ]
    for change, field in cases:
        r = api.post("/api/v1/alerts", {**good, **change})
        assert r.status == 400 and r.error["field"] == field, (change, r)
    assert api.post("/api/v1/alerts", {**good, "confidence": "high"}).status == 201
    assert q.api("viewer").post("/api/v1/alerts", good).status == 403
    assert q.api("viewer").get("/api/v1/alerts").status == 200


def test_cli_ingest_and_release(lab, quelld, make_user, tmp_path):
    q = with_rules(quelld)
    u = make_user(q, "dsc")
    quell = QUELLD.parent.parent / "cli" / "quell"
    tok = tmp_path / "tok"
    tok.write_text(q.tokens["admin"])
    env = {"QUELL_URL": f"http://127.0.0.1:{q.port}", "QUELL_TOKEN_FILE": str(tok),
           "PATH": "/usr/bin:/bin"}
    a1 = alert(ref(u))
    lines = [json.dumps(a1), json.dumps(a1), "", json.dumps({**a1, "severity": "x"}), "{"]
    r = subprocess.run([str(quell), "alerts", "ingest", "-"], input="\n".join(lines),
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 3, r
    assert "4 alert(s): 2 accepted" in r.stdout and "2 refused" in r.stdout, r.stdout
    assert "line 3" in r.stderr and "severity" in r.stderr, r.stderr
    (dis,) = [a for a in auto_actions(q, u.identity_id) if a["type"] == "disable"]
    q.admin.wait_terminal(dis["id"])
    assert lab.kinit(u.sam, u.password)[0] != 0
    r = subprocess.run([str(quell), "release", u.identity_id, "--reason", "fp", "--yes"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and "undone by" in r.stdout, r
    wait_for(lambda: lab.kinit(u.sam, u.password)[0] == 0, 30, what="kinit after release")
