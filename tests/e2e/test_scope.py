"""A scoped principal on every path that causes an action (issue 12, hole 1): a token
limited to identities tagged staff is refused (403, audited) or limited to its scope
on each; posting alerts is a permission of its own (alerts.ingest), and the
containment an alert causes reaches no further than its poster could.

Paths, each checked below on an identity inside the scope and one outside it:
  1. POST /api/v1/actions (the CLI's disable, enable, …)
  2. quell hunt … --then (previews, then POST /api/v1/actions per identity)
  3. POST /api/v1/alerts (automatic attack disruption on the poster's behalf)
  4. POST /api/v1/actions/{id}/undo
  5. POST /api/v1/identities/{id}/release
  6. POST /api/v1/actions/{id}/cancel
  7. POST /api/v1/actions/{id}/approve and /reject
  8. POST /api/v1/actions/approve and /reject (bulk, by type)
  9. the console (a session signed in with the scoped token, with its CSRF token)
"""
import os
import secrets
import subprocess

from conftest import wait_for

CONF = """[role "hunter"]
permissions = hunting.query response.manage response.read identities.read

[disruption "contain"]
categories = ransomware
min_severity = medium
min_confidence = 50
actions = contain

[approval "fpc"]
types = force_password_change
expire_after = 1h
"""


def start(quelld):
    q = quelld(start=False)
    with open(q.conf, "a") as f:
        f.write("\n" + CONF + "\n")
    return q.start()


def token(q, role, scope=None):
    body = {"name": f"scoped-{role}-{secrets.token_hex(3)}", "role": role}
    if scope is not None:
        body["scope"] = scope
    made = q.admin.ok("POST", "/api/v1/tokens", body, want=(201,))
    return q.admin.as_(made["token"]), made


def alert(user):
    return {"id": "sc-" + secrets.token_hex(6), "source": "mdi",
            "time": "2026-12-01T08:00:00Z", "title": "Ransomware activity",
            "category": "ransomware", "severity": "high", "confidence": 90,
            "entities": {"accounts": [{"upn": user.account["upn"]}
                                      if user.account.get("upn")
                                      else {"sid": user.account["sid"]}]}}


class Audit:
    """The entries written since the last look."""

    def __init__(self, q):
        self.q = q
        self.seq = q.admin.audit_count()

    def new(self):
        got = self.q.admin.audit_after(self.seq)
        if got:
            self.seq = got[-1]["seq"]
        return got


def refused(audit, r, token_id, events):
    """r is a 403, and an entry among the new ones records it, by the token's id."""
    assert r.status == 403, r
    got = [e for e in audit.new() if e["event"] in events]
    assert got, f"no {events} entry for {r}"
    assert any(e["actor_id"] == token_id and e["actor_kind"] in ("token", "session")
               for e in got), got
    return got


def test_scoped_token_on_every_path(lab, quelld, make_user):
    q = start(quelld)
    inside, outside = make_user(q, "sci"), make_user(q, "sco")
    q.admin.ok("PUT", f"/api/v1/identities/{inside.identity_id}/tags", {"tags": ["staff"]})
    responder, rtok = token(q, "responder", ["staff"])
    audit = Audit(q)
    uac = lab.uac

    # 1. a direct request
    r = responder.post("/api/v1/actions", {"type": "disable", "reason": "scope",
                                           "identity_id": outside.identity_id})
    refused(audit, r, rtok["id"], {"action.denied"})
    assert uac(outside.sam) & 2 == 0
    a = responder.run("disable", inside.identity_id)
    assert a["status"] == "completed" and a["requested_by_kind"] == "token"
    assert a["requested_by_id"] == rtok["id"]
    q.admin.run("enable", inside.identity_id)

    # 2. hunt --then: the preview of the identity outside is refused, nothing runs
    hunter, htok = token(q, "hunter", ["staff"])
    cli = os.path.join(os.environ["QUELL_BUILD"], "src/cli/quell")
    env = dict(os.environ, QUELL_URL=f"http://127.0.0.1:{q.port}",
               QUELL_TOKEN=hunter.token)
    env.pop("QUELL_TOKEN_FILE", None)

    def hunt(*ids):
        sql = "SELECT identity_id FROM IdentityInfo WHERE identity_id IN (%s)" % (
            ", ".join(f"'{i}'" for i in ids))
        return subprocess.run([cli, "hunt", sql, "--then", "disable", "--reason", "hunt",
                               "--yes"], capture_output=True, text=True, env=env,
                              timeout=60, stdin=subprocess.DEVNULL)
    audit.new()
    r = hunt(inside.identity_id, outside.identity_id)
    assert r.returncode == 3, r
    got = [e for e in audit.new() if e["event"] == "access.denied"]
    assert any(e["actor_id"] == htok["id"] and "preview" not in e["detail"]["why"]
               for e in got), got
    assert uac(outside.sam) & 2 == 0 and uac(inside.sam) & 2 == 0
    r = hunt(inside.identity_id)
    assert r.returncode == 0, r
    wait_for(lambda: uac(inside.sam) & 2, 30, what="hunt --then disable inside")
    q.admin.run("enable", inside.identity_id)
    audit.new()

    # 3. alerts: a responder may not post them at all; a scoped detector contains
    #    only inside its scope, and the decision names it
    r = responder.post("/api/v1/alerts", alert(outside))
    refused(audit, r, rtok["id"], {"access.denied"})
    detector, dtok = token(q, "detector", ["staff"])
    r = detector.post("/api/v1/alerts", alert(outside))
    assert r.status == 201, r
    (d,) = r.json["decisions"]
    assert d["outcome"] == "out_of_scope" and r.json["actions"] == [], r.json
    assert d["detail"]["poster"] == {"kind": "token", "id": dtok["id"],
                                     "name": dtok["name"]}, d
    ev = [e for e in audit.new() if e["event"] == "disruption.out_of_scope"]
    assert ev and ev[0]["detail"]["poster"]["id"] == dtok["id"], ev
    assert uac(outside.sam) & 2 == 0
    r = detector.post("/api/v1/alerts", alert(inside))
    assert r.json["decisions"][0]["outcome"] == "contained", r.json
    assert r.json["decisions"][0]["detail"]["poster"]["id"] == dtok["id"]
    (dis,) = [x for x in r.json["actions"] if x["type"] == "disable"]
    q.admin.wait_terminal(dis["id"])
    assert uac(inside.sam) & 2
    released = responder.post(f"/api/v1/identities/{inside.identity_id}/release",
                              {"reason": "inside"})
    assert released.status == 200 and released.json["released"] is True, released
    assert uac(inside.sam) & 2 == 0

    # 4. undo of an action outside the scope
    a = q.admin.run("disable", outside.identity_id)
    audit.new()
    r = responder.post(f"/api/v1/actions/{a['id']}/undo", {"reason": "scope"})
    refused(audit, r, rtok["id"], {"action.denied"})
    assert uac(outside.sam) & 2
    q.admin.run("enable", outside.identity_id)

    # 5. release of a containment outside the scope (the admin posted the alert)
    r = q.admin.post("/api/v1/alerts", alert(outside))
    (dis,) = [x for x in r.json["actions"] if x["type"] == "disable"]
    q.admin.wait_terminal(dis["id"])
    audit.new()
    r = responder.post(f"/api/v1/identities/{outside.identity_id}/release",
                       {"reason": "scope"})
    refused(audit, r, rtok["id"], {"access.denied", "disruption.release_denied"})
    assert uac(outside.sam) & 2
    r = q.admin.post(f"/api/v1/identities/{outside.identity_id}/release", {"reason": "ok"})
    assert r.status == 200 and r.json["released"] is True, r
    assert uac(outside.sam) & 2 == 0

    # 6.–8. pending actions outside the scope: cancel, approve, reject, bulk
    pend = [q.admin.submit("force_password_change", outside.identity_id)["id"]
            for _ in range(3)]
    assert all(q.admin.action(p)["status"] == "pending_approval" for p in pend)
    audit.new()
    r = responder.post(f"/api/v1/actions/{pend[0]}/cancel", {})
    refused(audit, r, rtok["id"], {"action.cancel_denied"})
    approver, atok = token(q, "approver", ["staff"])
    for verb in ("approve", "reject"):
        r = approver.post(f"/api/v1/actions/{pend[0]}/{verb}", {"reason": "scope"})
        refused(audit, r, atok["id"], {"action.approval_refused"})
    for verb in ("approve", "reject"):
        r = approver.post(f"/api/v1/actions/{verb}", {"type": "force_password_change"})
        assert r.status == 200, r
        assert sorted(x["id"] for x in r.json["results"]) == sorted(pend)
        assert all(x.get("error") == "forbidden" for x in r.json["results"]), r.json
        got = [e for e in audit.new() if e["event"] == "action.approval_refused"]
        assert {e["action_id"] for e in got} == set(pend)
        assert all(e["actor_id"] == atok["id"] for e in got)
    assert all(q.admin.action(p)["status"] == "pending_approval" for p in pend)
    # inside the scope the approver decides
    mine = q.admin.submit("force_password_change", inside.identity_id)["id"]
    r = approver.post(f"/api/v1/actions/{mine}/reject", {"reason": "inside"})
    assert r.status == 200 and r.json["status"] == "rejected", r
    assert r.json["decided_by_id"] == atok["id"] and r.json["decided_by_kind"] == "token"

    # 9. the console: a session of the scoped token is held to the same scope
    r = q.admin.post("/api/v1/session", {"token": responder.token}, token=None)
    assert r.status == 200, r
    cookie = r.headers["set-cookie"].split(";")[0]
    csrf = r.json["csrf_token"]
    r = q.admin.post("/api/v1/actions", {"type": "disable", "reason": "console",
                                         "identity_id": outside.identity_id},
                     token=None, headers={"Cookie": cookie, "X-CSRF-Token": csrf})
    assert r.status == 403, r
    got = [e for e in audit.new() if e["event"] == "action.denied"]
    assert got and got[0]["actor_kind"] == "session" and got[0]["actor_id"] == rtok["id"]
    assert uac(outside.sam) & 2 == 0

    assert q.admin.ok("GET", "/api/v1/audit/verify")["ok"] is True
