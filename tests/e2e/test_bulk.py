"""POST /api/v1/actions/bulk: many action requests in one transaction, each item
authorized, planned, approved and audited exactly as a single request, with a result
per item in order; bad items named by index and field; all_or_nothing stores none of
them when one is refused. The actions are checked on the real Samba AD DC."""
import os
import secrets
import subprocess

from conftest import UAC_DISABLE

APPROVAL = """[approval "fpc"]
types = force_password_change
expire_after = 1h
"""

BULK = "/api/v1/actions/bulk"


def users(q, make_user, n, hint):
    """n fresh AD users, synced once and found in q."""
    made = [make_user(q, hint, sync=False) for _ in range(n)]
    q.sync()
    return [u.find(q) for u in made]


def events(q, action_id):
    return [e["event"] for e in q.admin.audit_all() if e["action_id"] == action_id]


def disabled(lab, u):
    return lab.uac(u.sam) & UAC_DISABLE != 0


def test_mixed_items(lab, quelld, make_user):
    q = quelld()
    api = q.api("responder")
    a, b = users(q, make_user, 2, "bmx")
    missing = "idn_" + secrets.token_hex(12)
    r = api.post(BULK, {"type": "disable", "reason": "bulk e2e", "requests": [
        {"identity_id": a.identity_id},
        {"identity_id": "not-an-id"},
        {"identity_id": missing},
        "just a string",
        {"identity_id": b.identity_id, "type": "no_such_type"},
        {"identity_id": b.identity_id, "preview": True},
        {"identity_id": b.identity_id, "type": "enable", "reason": "r2"},
        {"identity_id": b.identity_id},
    ]})
    assert r.status == 200, r
    res = r.json["results"]
    assert [x["index"] for x in res] == list(range(8))
    assert r.json["accepted"] == 3 and r.json["refused"] == 5, r.json
    assert r.json["preview"] is False
    ok = [res[0], res[6], res[7]]
    for x in ok:
        assert "error" not in x and x["status"] == "queued", x
    assert res[0]["identity_id"] == a.identity_id
    assert res[1]["error"]["field"] == "requests[1].identity_id", res[1]
    assert res[2]["error"] == {"code": "not_found", "field": "requests[2].identity_id",
                               "message": f"no identity {missing}"}, res[2]
    assert res[3]["error"]["field"] == "requests[3]" and res[3]["identity_id"] is None
    assert res[4]["error"]["field"] == "requests[4].type", res[4]
    assert res[5]["error"]["field"] == "requests[5].preview", res[5]
    for x in res[1:6]:
        assert x["error"]["code"] in ("invalid_input", "not_found") and "action_id" not in x

    # the shared type and reason apply where the item says nothing; its own win
    acts = {x["index"]: api.wait_terminal(x["action_id"]) for x in ok}
    assert acts[0]["type"] == "disable" and acts[0]["reason"] == "bulk e2e"
    assert acts[6]["type"] == "enable" and acts[6]["reason"] == "r2"
    assert all(x["status"] == "completed" for x in acts.values()), acts
    assert disabled(lab, a)
    # one audit entry per action, as for single requests
    for aid in (x["action_id"] for x in ok):
        assert events(q, aid).count("action.requested") == 1
    # nothing stored for the refused items
    assert len(q.admin.actions_all()) == 3


def test_required_field_and_limits(lab, quelld, make_user):
    q = quelld()
    api = q.api("responder")
    (a,) = users(q, make_user, 1, "blm")
    r = api.post(BULK, {"requests": [{"identity_id": a.identity_id, "type": "disable"}]})
    assert r.status == 200 and r.json["results"][0]["error"]["field"] == \
        "requests[0].reason", r
    # a bad shared field is named as the body names it
    r = api.post(BULK, {"type": "nope", "reason": "x",
                        "requests": [{"identity_id": a.identity_id}]})
    assert r.json["results"][0]["error"]["field"] == "type", r
    for bad in ([], None, "x", [{}] * 1001):
        r = api.post(BULK, {"type": "disable", "reason": "x", "requests": bad})
        assert r.status == 400 and r.error["field"] == "requests", r
    r = api.post(BULK, {"requests": [{"identity_id": a.identity_id}], "extra": 1})
    assert r.status == 400 and r.error["field"] == "extra", r
    r = api.post(BULK, {"requests": [{"identity_id": a.identity_id}],
                        "all_or_nothing": "yes"})
    assert r.status == 400 and r.error["field"] == "all_or_nothing", r
    # 1000 is the most: accepted whole (a preview: nothing stored)
    r = api.post(BULK, {"type": "disable", "reason": "x", "preview": True,
                        "requests": [{"identity_id": a.identity_id}] * 1000})
    assert r.status == 200 and r.json["accepted"] == 1000, r
    assert r.json["results"][999]["action"]["steps"][0]["account_id"] == a.account_id
    assert q.admin.actions_all() == []
    assert not disabled(lab, a)


def test_all_or_nothing(lab, quelld, make_user):
    q = quelld()
    api = q.api("responder")
    a, b = users(q, make_user, 2, "ban")
    before = q.admin.audit_count()
    r = api.post(BULK, {"type": "disable", "reason": "aon", "all_or_nothing": True,
                        "requests": [{"identity_id": a.identity_id},
                                     {"identity_id": "idn_" + "0" * 24},
                                     {"identity_id": b.identity_id}]})
    assert r.status == 404 and r.error["field"] == "requests[1].identity_id", r
    res = r.json["results"]
    assert [x["error"]["code"] for x in res] == ["conflict", "not_found", "conflict"], res
    assert all("action_id" not in x for x in res)
    assert q.admin.actions_all() == [] and q.admin.audit_count() == before
    # a bad item found before anything is planned: the same answer
    r = api.post(BULK, {"type": "disable", "reason": "aon", "all_or_nothing": True,
                        "requests": [{"identity_id": a.identity_id}, {"identity_id": 7}]})
    assert r.status == 400 and r.error["field"] == "requests[1].identity_id", r
    assert q.admin.actions_all() == []
    assert not disabled(lab, a) and not disabled(lab, b)

    # every item valid: all of them, in one request
    r = api.post(BULK, {"type": "disable", "reason": "aon", "all_or_nothing": True,
                        "requests": [{"identity_id": a.identity_id},
                                     {"identity_id": b.identity_id}]})
    assert r.status == 200 and r.json["accepted"] == 2, r
    for x in r.json["results"]:
        assert api.wait_terminal(x["action_id"])["status"] == "completed"
    assert disabled(lab, a) and disabled(lab, b)


def test_scope_per_item(lab, quelld, make_user):
    q = quelld()
    inside, outside = users(q, make_user, 2, "bsc")
    q.admin.ok("PUT", f"/api/v1/identities/{inside.identity_id}/tags", {"tags": ["staff"]})
    made = q.admin.ok("POST", "/api/v1/tokens", {"name": "bulk-staff", "role": "responder",
                                                 "scope": ["staff"]}, want=(201,))
    scoped = q.admin.as_(made["token"])
    items = [{"identity_id": outside.identity_id}, {"identity_id": inside.identity_id}]

    # all_or_nothing: the refusal is recorded, the one inside not requested
    r = scoped.post(BULK, {"type": "disable", "reason": "scope", "all_or_nothing": True,
                           "requests": items})
    assert r.status == 403 and r.error["code"] == "forbidden", r
    out, inn = r.json["results"]
    assert out["status"] == "denied" and out["error"]["code"] == "forbidden", out
    assert inn["error"]["code"] == "conflict" and "action_id" not in inn, inn
    denied = q.admin.action(out["action_id"])
    assert denied["status"] == "denied" and denied["requested_by_id"] == made["id"]
    assert events(q, out["action_id"]) == ["action.denied"]

    # without it: the one outside is refused (recorded, audited), the one inside runs
    r = scoped.post(BULK, {"type": "disable", "reason": "scope", "requests": items})
    assert r.status == 200 and r.json["accepted"] == 1 and r.json["refused"] == 1, r
    out, inn = r.json["results"]
    assert out["status"] == "denied" and out["error"]["code"] == "forbidden", out
    assert events(q, out["action_id"]) == ["action.denied"]
    assert scoped.wait_terminal(inn["action_id"])["status"] == "completed"
    assert disabled(lab, inside) and not disabled(lab, outside)

    # a viewer holds no response.manage: each item denied and recorded
    r = q.api("viewer").post(BULK, {"type": "disable", "reason": "v", "requests": items})
    assert r.status == 200 and r.json["refused"] == 2, r
    assert all(x["status"] == "denied" for x in r.json["results"])
    # a refused preview is stored nowhere, and audited
    seq = q.admin.audit_count()
    r = scoped.post(BULK, {"type": "enable", "reason": "p", "preview": True,
                           "requests": items})
    assert r.status == 200 and r.json["refused"] == 1, r
    assert "action_id" not in r.json["results"][0] and "action" in r.json["results"][1]
    assert [e["event"] for e in q.admin.audit_after(seq)] == ["access.denied"]


def test_approval_per_item(lab, quelld, make_user):
    q = quelld(start=False)
    with open(q.conf, "a") as f:
        f.write("\n" + APPROVAL)
    q.start()
    api = q.api("responder")
    a, b = users(q, make_user, 2, "bap")
    r = api.post(BULK, {"reason": "approval", "requests": [
        {"identity_id": a.identity_id, "type": "force_password_change"},
        {"identity_id": b.identity_id, "type": "disable"}]})
    assert r.status == 200 and r.json["accepted"] == 2, r
    held, run = r.json["results"]
    assert held["status"] == "pending_approval" and run["status"] == "queued", r.json
    assert "action.pending_approval" in events(q, held["action_id"])
    assert api.wait_terminal(run["action_id"])["status"] == "completed"
    assert q.admin.action(held["action_id"])["status"] == "pending_approval"
    assert disabled(lab, b)


def quell(q, tok, *args):
    """The CLI against q with tok: (exit status, stdout + stderr)."""
    cli = os.path.join(os.environ["QUELL_BUILD"], "src/cli/quell")
    env = dict(os.environ, QUELL_URL=f"http://127.0.0.1:{q.port}", QUELL_TOKEN=tok)
    env.pop("QUELL_TOKEN_FILE", None)
    r = subprocess.run([cli, *args], capture_output=True, text=True, env=env, timeout=120,
                       stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout + r.stderr


def test_cli_several_identities(lab, quelld, make_user):
    q = quelld()
    tok = q.tokens["responder"]
    a, b, c = users(q, make_user, 3, "bcl")
    rc, out = quell(q, tok, "disable", a.identity_id, b.sam, "--account", a.account_id,
                    "--reason", "cli", "--yes")
    assert rc == 2 and "--account" in out, out
    # one preview and one request, both in bulk: two POSTs, every action in the second
    seq = q.admin.audit_count()
    rc, out = quell(q, tok, "disable", a.identity_id, b.sam, "--reason", "cli bulk",
                    "--yes", "--wait")
    assert rc == 0, out
    assert out.count("disable on ") == 2 and out.count("action act_") == 2, out
    assert disabled(lab, a) and disabled(lab, b) and not disabled(lab, c)
    requested = [e for e in q.admin.audit_after(seq) if e["event"] == "action.requested"]
    assert {e["identity_id"] for e in requested} == {a.identity_id, b.identity_id}

    # hunt --then requests every identity of the result in one bulk
    sql = "SELECT identity_id FROM IdentityInfo WHERE identity_id IN ('%s', '%s')" % (
        a.identity_id, c.identity_id)
    rc, out = quell(q, q.tokens["admin"], "hunt", sql, "--then", "enable", "--reason",
                    "hunt bulk", "--yes")
    assert rc == 0 and out.count("action act_") == 2, out
    for x in q.admin.actions_all("type=enable"):
        q.admin.wait_terminal(x["id"])
    assert not disabled(lab, a) and not disabled(lab, c) and disabled(lab, b)
