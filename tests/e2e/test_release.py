"""Release and undo say what happened per step (issue 12, hole 2): a containment is
released only when its accounts are enabled again; a partial release names the
accounts still contained, and the containment stays in force for them."""
import secrets

CONF = """[disruption "contain"]
categories = ransomware
min_severity = medium
min_confidence = 50
actions = contain
"""


def start(quelld):
    q = quelld(start=False)
    with open(q.conf, "a") as f:
        f.write("\n" + CONF + "\n")
    return q.start()


def alert(upn):
    return {"id": "rl-" + secrets.token_hex(6), "source": "mdi",
            "time": "2026-12-01T08:00:00Z", "title": "Ransomware activity",
            "category": "ransomware", "severity": "high", "confidence": 90,
            "entities": {"accounts": [{"upn": upn}]}}


def test_partial_release_keeps_containment_for_the_rest(lab, quelld, make_user):
    q = start(quelld)
    u, other = make_user(q, "rla"), make_user(q, "rlb")
    # one identity, two AD accounts
    q.admin.ok("DELETE", f"/api/v1/identities/{other.identity_id}/accounts/"
               f"{other.account_id}")
    q.admin.ok("POST", f"/api/v1/identities/{u.identity_id}/accounts",
               {"account_id": other.account_id})
    r = q.api("detector").post("/api/v1/alerts", alert(u.account["upn"]))
    assert r.json["decisions"][0]["outcome"] == "contained", r.json
    (dis,) = [a for a in r.json["actions"] if a["type"] == "disable"]
    a = q.admin.wait_terminal(dis["id"])
    assert a["status"] == "completed" and len(a["steps"]) == 2, a
    assert lab.uac(u.sam) & 2 and lab.uac(other.sam) & 2
    # the second account can no longer be enabled: it is gone from AD
    lab.delete(other.sam)

    responder = q.api("responder")
    r = responder.post(f"/api/v1/identities/{u.identity_id}/release", {"reason": "fp"})
    assert r.status == 200, r
    assert r.json["released"] is False, r.json
    assert [s["account_id"] for s in r.json["still_contained"]] == [other.account_id]
    (res,) = [x for x in r.json["results"] if x["type"] == "disable"]
    assert res["outcome"] in ("not_enabled", "still_running"), res
    steps = {s["account_id"]: s["status"] for s in res["steps"]}
    assert steps[u.account_id] == "succeeded" and steps[other.account_id] != "succeeded"
    assert lab.uac(u.sam) & 2 == 0 and lab.kinit(u.sam, u.password)[0] == 0
    partial = [e for e in q.admin.audit_all() if e["event"] == "disruption.release_partial"]
    assert partial and partial[-1]["detail"]["still_contained"][0]["account_id"] == \
        other.account_id, partial
    assert not [e for e in q.admin.audit_all() if e["event"] == "disruption.released"]

    # still in force: a new alert is a duplicate, and a release tries again
    r2 = q.api("detector").post("/api/v1/alerts", alert(u.account["upn"]))
    assert r2.json["decisions"][0]["outcome"] == "duplicate", r2.json
    r = responder.post(f"/api/v1/identities/{u.identity_id}/release", {"reason": "again"})
    assert r.status == 200 and r.json["released"] is False, r
    assert [s["account_id"] for s in r.json["still_contained"]] == [other.account_id]
    assert q.admin.ok("GET", "/api/v1/audit/verify")["ok"] is True


def test_release_and_undo_answer_per_step(lab, quelld, make_user):
    q = start(quelld)
    u = make_user(q, "rlc")
    r = q.api("detector").post("/api/v1/alerts", alert(u.account["upn"]))
    (dis,) = [a for a in r.json["actions"] if a["type"] == "disable"]
    q.admin.wait_terminal(dis["id"])
    r = q.api("responder").post(f"/api/v1/identities/{u.identity_id}/release",
                                {"reason": "fp"})
    assert r.status == 200 and r.json["released"] is True and \
        r.json["still_contained"] == [], r
    (res,) = [x for x in r.json["results"] if x["type"] == "disable"]
    assert res["outcome"] == "enabled" and res["undo_status"] == "completed", res
    assert [(s["account_id"], s["status"]) for s in res["steps"]] == \
        [(u.account_id, "succeeded")]
    assert lab.uac(u.sam) & 2 == 0
    # nothing in force any more
    r = q.api("responder").post(f"/api/v1/identities/{u.identity_id}/release",
                                {"reason": "again"})
    assert r.status == 409, r

    # undo: each step of the action undone, with what the undo does with it
    a = q.admin.run("disable", u.identity_id)
    r = q.api("responder").post(f"/api/v1/actions/{a['id']}/undo", {"reason": "undo"})
    assert r.status == 201, r
    (ps,) = r.json["per_step"]
    assert ps["account_id"] == u.account_id and ps["status"] == "succeeded"
    assert ps["undo"] == "requested" and ps["undo_step_id"].startswith("stp_"), ps
