"""Access control as the seed describes it, through the whole daemon: scoped roles,
Entra directory roles from a JWT checked against each system's requirements, the
two-person rule with deadlines, and undo."""
import json

from conftest import wait_for
from test_oidc import AUDIENCE, ISSUER, claims, jwt, keys, write_jwks  # noqa: F401

SECURITY_OPERATOR = "5f2222b1-57c3-48ba-8ad5-d4759f1fde6f"
SECURITY_READER = "5d6b6bb7-de71-4623-b4af-96380a352509"


def with_config(quelld, text, **opts):
    q = quelld(start=False, **opts)
    with open(q.conf, "a") as f:
        f.write("\n" + text + "\n")
    return q.start()


def tag(q, user, *tags):
    q.admin.ok("PUT", f"/api/v1/identities/{user.identity_id}/tags", {"tags": list(tags)})


def token(q, name, role, scope=None):
    body = {"name": name, "role": role}
    if scope is not None:
        body["scope"] = scope
    return q.admin.as_(q.admin.ok("POST", "/api/v1/tokens", body)["token"])


def events(q, action_id):
    return [e for e in q.admin.audit_all() if e["action_id"] == action_id]


def test_scoped_role_acts_only_inside_its_scope(lab, quelld, make_user):
    q = quelld()
    staff, vip = make_user(q, "scs"), make_user(q, "scv")
    tag(q, staff, "staff")
    tag(q, vip, "staff", "tier0")
    helpdesk = token(q, "helpdesk-1", "responder", scope=["staff"])
    assert helpdesk.run("disable", staff.identity_id)["status"] == "completed"
    assert lab.kinit(staff.sam, staff.password)[0] != 0

    # tier0 is also tagged staff, but a scope is not an exclusion: use [grant] for that
    r = helpdesk.post("/api/v1/actions", {"type": "disable", "identity_id": vip.identity_id,
                                          "reason": "in scope"})
    assert r.status == 201, r
    helpdesk.wait_terminal(r.json["id"])
    outsider = make_user(q, "sco")
    tag(q, outsider, "contractors")
    r = helpdesk.post("/api/v1/actions", {"type": "disable", "identity_id": outsider.identity_id,
                                          "reason": "out of scope"})
    assert r.status == 403, r
    assert f"corp/{outsider.sam}" in r.error["message"]
    assert "outside the scope" in r.error["message"]
    denied = q.admin.action(r.error["action_id"])
    assert denied["status"] == "denied" and denied["steps"] == []
    (ev,) = [e for e in events(q, denied["id"]) if e["event"] == "action.denied"]
    assert ev["actor"] == "helpdesk-1" and "outside the scope" in ev["detail"]["why"]
    assert lab.uac(outsider.sam) & 2 == 0


def test_grant_with_exclusion_and_entra_roles(lab, quelld, make_user, keys, tmp_path):
    jwks = tmp_path / "jwks.json"
    write_jwks(jwks, keys["rsa"])
    q = with_config(quelld, f"""[oidc]
issuer = {ISSUER}
audience = {AUDIENCE}
jwks_file = {jwks}

[grant "helpdesk"]
match = app_role:Quell.Helpdesk
role = responder
scope = staff
exclude = tier0

[grant "readers"]
match = entra_role:Security Reader
role = viewer

[grant "secops"]
match = entra_role:Security Operator
role = viewer
""")
    staff, vip = make_user(q, "gxs"), make_user(q, "gxv")
    tag(q, staff, "staff")
    tag(q, vip, "staff", "tier0")

    helpdesk = q.admin.as_(jwt(keys["rsa"], claims(roles=["Quell.Helpdesk"],
                                                   preferred_username="hd@quell.test")))
    who = helpdesk.ok("GET", "/api/v1/whoami")
    assert "response.manage" in who["permissions"]
    a = helpdesk.run("disable", staff.identity_id)
    assert a["status"] == "completed" and a["requested_by"] == "hd@quell.test"
    r = helpdesk.post("/api/v1/actions", {"type": "enable", "identity_id": vip.identity_id,
                                          "reason": "tier0 is excluded"})
    assert r.status == 403 and "outside the scope" in r.error["message"], r

    # Security Operator: per the seed, Okta and mark_compromised only — not AD
    secop = q.admin.as_(jwt(keys["rsa"], claims(wids=[SECURITY_OPERATOR],
                                                preferred_username="so@quell.test")))
    assert secop.get("/api/v1/identities").status == 200
    r = secop.post("/api/v1/actions", {"type": "disable", "identity_id": staff.identity_id,
                                       "reason": "secop on AD"})
    assert r.status == 403, r
    assert "allowed to disable on ad systems" in r.error["message"]

    # no grant at all for these claims: authenticated, but nothing is readable
    nobody = q.admin.as_(jwt(keys["rsa"], claims(wids=[], roles=["Other"])))
    assert nobody.get("/api/v1/identities").status == 403
    reader = q.admin.as_(jwt(keys["rsa"], claims(wids=[SECURITY_READER])))
    assert reader.get("/api/v1/identities").status == 200
    assert reader.post("/api/v1/actions", {"type": "disable", "identity_id": staff.identity_id,
                                           "reason": "reader"}).status == 403


APPROVALS = """[approval "tier0"]
tags = tier0
expire_after = {expire}
"""


def test_two_person_rule(lab, quelld, make_user):
    q = with_config(quelld, APPROVALS.format(expire="1h"))
    vip, mark = make_user(q, "tpr", sync=False), make_user(q, "tpm", sync=False)
    q.sync()
    vip.find(q)
    mark.find(q)
    tag(q, vip, "tier0")
    requester = token(q, "carol", "admin")
    same_person = token(q, "carol", "admin")  # a second token of her own
    approver = token(q, "dave", "approver")

    a = requester.submit("disable", vip.identity_id, reason="tier0 compromise")
    assert a["status"] == "pending_approval" and a["approval_rule"] == "tier0", a
    # an action requested after it (no approval needed) runs to the end: the engine,
    # which takes steps oldest first, has had its chance at the pending one
    later = requester.run("disable", mark.identity_id)
    assert later["status"] == "completed" and later["approval_rule"] is None, later
    assert requester.action(a["id"])["status"] == "pending_approval"
    assert lab.uac(vip.sam) & 2 == 0  # nothing ran

    for who in (requester, same_person):
        r = who.post(f"/api/v1/actions/{a['id']}/approve", {"reason": "self"})
        assert r.status == 403 and "second person" in r.error["message"], r
    refused = [e for e in events(q, a["id"]) if e["event"] == "action.approval_refused"]
    assert len(refused) == 2 and {e["actor"] for e in refused} == {"carol"}
    # the plain responder cannot approve at all
    r = q.api("responder").post(f"/api/v1/actions/{a['id']}/approve", {})
    assert r.status == 403

    done = approver.ok("POST", f"/api/v1/actions/{a['id']}/approve", {"reason": "checked"})
    assert done["decided_by"] == "dave"
    done = approver.wait_terminal(a["id"])
    assert done["status"] == "completed", done
    assert lab.kinit(vip.sam, vip.password)[0] != 0
    ev = [e["event"] for e in events(q, a["id"])]
    assert ev.index("action.pending_approval") < ev.index("action.approved") < \
        ev.index("step.succeeded")
    (appr,) = [e for e in events(q, a["id"]) if e["event"] == "action.approved"]
    assert appr["actor"] == "dave" and appr["detail"]["role"] == "approver"

    # approving twice, or approving a finished action: conflict
    assert approver.post(f"/api/v1/actions/{a['id']}/approve", {}).status == 409


def test_reject_and_bulk_approve(lab, quelld, make_user):
    q = with_config(quelld, APPROVALS.format(expire="1h"))
    users = [make_user(q, f"bk{i}") for i in range(3)]
    for u in users:
        tag(q, u, "tier0")
    requester, approver = q.api("responder"), token(q, "erin", "approver")
    ids = [requester.submit("disable", u.identity_id)["id"] for u in users]
    rej = approver.ok("POST", f"/api/v1/actions/{ids[0]}/reject", {"reason": "false positive"})
    assert rej["status"] == "rejected" and "rejected by erin" in rej["message"]
    assert all(s["status"] == "cancelled" for s in rej["steps"])
    res = approver.ok("POST", "/api/v1/actions/approve", {"type": "disable"})["results"]
    assert sorted(x["id"] for x in res) == sorted(ids[1:])
    assert all(x["status"] in ("queued", "running", "completed") for x in res), res
    for aid in ids[1:]:
        assert approver.wait_terminal(aid)["status"] == "completed"
    assert lab.uac(users[0].sam) & 2 == 0
    assert all(lab.uac(u.sam) & 2 for u in users[1:])


def test_pending_approval_expires(lab, quelld, make_user):
    q = with_config(quelld, APPROVALS.format(expire="2s"), engine={"lease_ms": 3000})
    vip = make_user(q, "exp")
    tag(q, vip, "tier0")
    a = q.api("responder").submit("disable", vip.identity_id)
    assert a["status"] == "pending_approval"
    done = wait_for(lambda: (lambda x: x if x["status"] != "pending_approval" else None)(
        q.admin.action(a["id"])), 30, interval=0.2, what="the approval to expire")
    assert done["status"] == "cancelled" and "deadline" in done["message"], done
    assert [e for e in events(q, a["id"]) if e["event"] == "action.approval_expired"]
    assert lab.uac(vip.sam) & 2 == 0
    assert q.admin.ok("GET", "/api/v1/audit/verify")["ok"] is True


def test_undo(lab, quelld, make_user):
    q = quelld()
    u = make_user(q, "und")
    responder = q.api("responder")
    a = responder.run("disable", u.identity_id)
    assert a["status"] == "completed"
    assert lab.kinit(u.sam, u.password)[0] != 0

    r = responder.post(f"/api/v1/actions/{a['id']}/undo", {"reason": "false positive"})
    assert r.status == 201, r
    undo = responder.wait_terminal(r.json["id"])
    assert undo["type"] == "enable" and undo["undo_of"] == a["id"], undo
    assert undo["status"] == "completed"
    rc, out = lab.kinit(u.sam, u.password)
    assert rc == 0, out
    (ev,) = [e for e in events(q, undo["id"]) if e["event"] == "action.requested"]
    assert ev["detail"]["undo_of"] == a["id"]

    again = responder.post(f"/api/v1/actions/{a['id']}/undo", {"reason": "twice"})
    assert again.status == 409 and "already being undone" in again.error["message"]

    fpc = responder.run("force_password_change", u.identity_id)
    r = responder.post(f"/api/v1/actions/{fpc['id']}/undo", {"reason": "oops"})
    assert r.status == 201 and r.json["type"] == "force_password_change", r
    back = responder.wait_terminal(r.json["id"])
    r = responder.post(f"/api/v1/actions/{back['id']}/undo", {"reason": "oops"})
    assert r.status == 400 and "cannot be undone" in r.error["message"], r
    r = q.api("viewer").post(f"/api/v1/actions/{a['id']}/undo", {"reason": "viewer"})
    assert r.status == 403


def quell(q, tok, *args):
    """Runs the CLI against q with tok; returns (exit status, stdout + stderr)."""
    import os
    import subprocess
    cli = os.path.join(os.environ["QUELL_BUILD"], "src/cli/quell")
    env = dict(os.environ, QUELL_URL=f"http://127.0.0.1:{q.port}", QUELL_TOKEN=tok)
    env.pop("QUELL_TOKEN_FILE", None)
    r = subprocess.run([cli, *args], capture_output=True,
                       text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout + r.stderr


def test_cli_pending_approve_undo(lab, quelld, make_user):
    q = with_config(quelld, APPROVALS.format(expire="1h"))
    vip = make_user(q, "cli")
    tag(q, vip, "tier0")
    req_tok, appr_tok = q.tokens["responder"], q.tokens["admin"]
    rc, out = quell(q, req_tok, "disable", vip.identity_id, "--reason", "cli", "--yes")
    assert rc == 0 and "pending_approval" in out, out
    aid = next(w for w in out.split() if w.startswith("act_"))
    rc, out = quell(q, appr_tok, "pending")
    assert rc == 0 and aid in out, out
    rc, out = quell(q, req_tok, "approve", aid)
    assert rc == 3, out  # the responder may not approve (and requested it anyway)
    rc, out = quell(q, appr_tok, "approve", aid, "--reason", "looked at it")
    assert rc == 0, out
    assert q.admin.wait_terminal(aid)["status"] == "completed"
    # the undo is an action like any other: on a tier0 identity it waits for approval too
    rc, out = quell(q, req_tok, "--json", "undo", aid, "--reason", "false positive", "--yes")
    assert rc == 0, out
    undo = json.JSONDecoder().raw_decode(out)[0]  # the undo's preview follows, on stderr
    assert undo["status"] == "pending_approval" and undo["undo_of"] == aid, undo
    rc, out = quell(q, appr_tok, "approve", "--type", "enable")
    assert rc == 0 and undo["id"] in out, out
    assert q.admin.wait_terminal(undo["id"])["status"] == "completed"
    assert lab.uac(vip.sam) & 2 == 0
    rc, out = quell(q, appr_tok, "approve")
    assert rc == 2 and "--type" in out, out
