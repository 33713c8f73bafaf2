"""What a preview says will happen, as the API answers it (docs/openapi.yaml
ActionPreview): each account with its login and state and its outcome (change,
already, refused with the parameter that lifts it, not_supported), the approval it
would wait for, warnings for quelld's own bind account and a tier0 tag; the bulk
preview and the undo's preview carry the same, and none of them stores anything."""
from conftest import wait_for

APPROVALS = """
[approval "tier0"]
tags = tier0
expire_after = 1h
"""
UAC_DISABLED = 514
UAC_DONT_EXPIRE = 66048


def with_config(quelld, text):
    q = quelld(start=False)
    with open(q.conf, "a") as f:
        f.write("\n" + text + "\n")
    return q.start()


def preview(api, type_, identity_id, **extra):
    r = api.post("/api/v1/actions", {"type": type_, "identity_id": identity_id,
                                     "reason": "preview e2e", "preview": True, **extra})
    assert r.status == 200, r
    return r.json


def line_of(a, user):
    """The preview's line for user's account, checked against its step."""
    (line,) = [x for x in a["preview"]["accounts"] if x["account_id"] == user.account_id]
    (step,) = [s for s in a["steps"] if s["id"] == line["step_id"]]
    assert line["account_name"] == step["account_name"] and line["system"] == step["system"]
    assert set(line) == {"step_id", "account_id", "system", "kind", "account_name", "upn",
                         "username", "state", "outcome", "note", "option"}, line
    return line


def test_preview_lines(lab, quelld, make_user):
    q = with_config(quelld, APPROVALS)
    api = q.api("admin")
    plain = make_user(q, "pvp")
    off = make_user(q, "pvo", uac=UAC_DISABLED)
    dxp = make_user(q, "pvx", uac=UAC_DONT_EXPIRE)
    vip = make_user(q, "pvv")
    q.admin.ok("PUT", f"/api/v1/identities/{vip.identity_id}/tags", {"tags": ["tier0"]})
    before = q.admin.actions_all()

    a = preview(api, "disable", plain.identity_id)
    line = line_of(a, plain)
    assert line["outcome"] == "change" and line["note"] == "will be changed", line
    assert line["username"] == plain.sam and line["upn"] == plain.account["upn"], line
    assert line["state"] == "enabled" and line["kind"] == "ad" and line["option"] is None
    assert a["status"] == "queued" and a["preview"]["warnings"] == [], a

    line = line_of(preview(api, "disable", off.identity_id), off)
    assert line["outcome"] == "already" and line["state"] == "disabled", line
    assert line["note"] == "already disabled: nothing to change", line

    line = line_of(preview(api, "force_password_change", dxp.identity_id), dxp)
    assert line["outcome"] == "refused" and line["option"] == "clear_dont_expire", line
    assert line["note"].startswith("will be refused: password never expires is set"), line
    line = line_of(preview(api, "force_password_change", dxp.identity_id,
                           params={"clear_dont_expire": True}), dxp)
    assert line["outcome"] == "change" and line["option"] == "clear_dont_expire", line
    # the flag is AD's, read at sync: an ordinary account is not refused
    assert line_of(preview(api, "force_password_change", plain.identity_id),
                   plain)["outcome"] == "change"

    a = preview(api, "disable", vip.identity_id)
    assert a["status"] == "pending_approval" and a["approval_rule"] == "tier0", a
    assert [w["code"] for w in a["preview"]["warnings"]] == ["protected_tag"], a
    assert "tier0" in a["preview"]["warnings"][0]["message"]

    # quelld's own bind account (the lab's Administrator) is warned of
    admin = q.identity_of("Administrator")
    (acct,) = [x for x in admin["accounts"] if x["username"] == "Administrator"]
    a = preview(api, "disable", admin["id"])
    (w,) = [w for w in a["preview"]["warnings"] if w["code"] == "quell_account"]
    assert w["account_id"] == acct["id"] and "signs in" in w["message"], w

    # the bulk preview: the same lines, per request
    r = api.post("/api/v1/actions/bulk", {"type": "disable", "reason": "preview e2e",
                                          "preview": True, "requests": [
                                              {"identity_id": off.identity_id},
                                              {"identity_id": vip.identity_id}]})
    assert r.status == 200, r
    first, second = (x["action"] for x in r.json["results"])
    assert line_of(first, off)["outcome"] == "already"
    assert second["status"] == "pending_approval" and second["preview"]["warnings"]
    assert q.admin.actions_all() == before, "a preview stores nothing"


def test_undo_preview(lab, quelld, make_user):
    q = quelld()
    api = q.api("admin")
    u = make_user(q, "pvu")
    done = api.run("disable", u.identity_id)
    assert done["status"] == "completed", done
    wait_for(lambda: q.identity_of(u.sam)["accounts"][0]["state"] == "disabled", 30,
             what="the disabled state recorded")
    before = q.admin.actions_all()
    r = api.post(f"/api/v1/actions/{done['id']}/undo", {"reason": "fp", "preview": True})
    assert r.status == 200, r
    assert r.json["type"] == "enable" and r.json["undo_of"] == done["id"], r.json
    (line,) = r.json["preview"]["accounts"]
    assert line["account_id"] == u.account_id and line["state"] == "disabled", line
    assert line["outcome"] == "change", line
    assert q.admin.actions_all() == before, "an undo's preview stores nothing"
    r = api.post(f"/api/v1/actions/{done['id']}/undo", {"reason": "fp", "preview": "yes"})
    assert r.status == 400 and r.error["field"] == "preview", r
    # the undo itself is unchanged
    r = api.post(f"/api/v1/actions/{done['id']}/undo", {"reason": "fp"})
    assert r.status == 201 and "preview" not in r.json, r
    assert api.wait_terminal(r.json["id"])["status"] == "completed"
    assert lab.kinit(u.sam, u.password)[0] == 0


def test_release_preview(lab, quelld, make_user):
    from test_disruption import alert, auto_actions, ref, with_rules
    q = with_rules(quelld)
    api = q.api("admin")
    u = make_user(q, "pvr")
    assert q.api("detector").post("/api/v1/alerts", alert(ref(u))).status == 201
    (dis,) = [a for a in auto_actions(q, u.identity_id) if a["type"] == "disable"]
    assert q.admin.wait_terminal(dis["id"])["status"] == "completed"
    wait_for(lambda: q.identity_of(u.sam)["accounts"][0]["state"] == "disabled", 30,
             what="the disabled state recorded")
    before = q.admin.actions_all()
    r = api.post(f"/api/v1/identities/{u.identity_id}/release",
                 {"reason": "fp", "preview": True})
    assert r.status == 200 and r.json["preview"] is True, r
    assert r.json["identity_id"] == u.identity_id
    (item,) = [x for x in r.json["results"] if x["action_id"] == dis["id"]]
    assert item["outcome"] == "undo" and item["undo_status"] == "queued", item
    (line,) = item["preview"]["accounts"]
    assert line["account_id"] == u.account_id and line["state"] == "disabled", line
    assert q.admin.actions_all() == before, "a release's preview changes nothing"
    assert lab.kinit(u.sam, u.password)[0] != 0, "still contained"
    r = api.post(f"/api/v1/identities/{u.identity_id}/release",
                 {"reason": "fp", "preview": 1})
    assert r.status == 400 and r.error["field"] == "preview", r
    r = api.post(f"/api/v1/identities/{u.identity_id}/release", {"reason": "fp"})
    assert r.status == 200 and r.json["released"] is True, r
    r = api.post(f"/api/v1/identities/{u.identity_id}/release",
                 {"reason": "fp", "preview": True})
    assert r.status == 409, r
