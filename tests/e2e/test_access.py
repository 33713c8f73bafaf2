"""Every route × every kind of caller, and every refusal audited."""
import secrets

import pytest

from conftest import wait_for

DENIAL_EVENTS = {"auth.failed", "access.denied", "action.denied"}
CALLERS = ("none", "basic", "malformed", "malformed2", "unknown", "wrong-secret",
           "revoked", "viewer", "responder", "admin")
UNAUTHENTICATED = ("none", "basic", "malformed", "malformed2", "unknown", "wrong-secret",
                   "revoked")
R, W, V = "responder", "admin", "viewer"

# route → roles that may call it (besides: nobody unauthenticated)
PERMS = {
    ("GET", "/api/v1/whoami"): {V, R, W},
    ("GET", "/api/v1/systems"): {V, R, W},
    ("POST", "/api/v1/actions"): {R, W},
    ("GET", "/api/v1/actions"): {V, R, W},
    ("GET", "/api/v1/actions/{act}"): {V, R, W},
    ("POST", "/api/v1/actions/{open_act}/cancel"): {R, W},
    ("GET", "/api/v1/identities"): {V, R, W},
    ("POST", "/api/v1/identities"): {W},
    ("GET", "/api/v1/identities/{idn}"): {V, R, W},
    ("DELETE", "/api/v1/identities/{idn}/accounts/{acc}"): {W},
    ("POST", "/api/v1/identities/{idn}/accounts"): {W},
    ("GET", "/api/v1/audit"): {V, R, W},
    ("GET", "/api/v1/audit/verify"): {V, R, W},
    ("POST", "/api/v1/tokens"): {W},
    ("GET", "/api/v1/tokens"): {W},
    ("POST", "/api/v1/tokens/{tok}/revoke"): {W},
    ("POST", "/api/v1/sync/corp"): {W},
    ("POST", "/api/v1/sync"): {W},
    ("GET", "/api/v1/sync"): {V, R, W},
    ("GET", "/api/v1/identities/conflicts"): {V, R, W},
    ("PUT", "/api/v1/identities/{idn}/tags"): {W},
    ("POST", "/api/v1/actions/{act}/approve"): {W},
    ("POST", "/api/v1/actions/{act}/reject"): {W},
    ("POST", "/api/v1/actions/approve"): {W},
    ("POST", "/api/v1/actions/reject"): {W},
    ("POST", "/api/v1/actions/{act}/undo"): {R, W},
    ("POST", "/api/v1/alerts"): {R, W},
    ("GET", "/api/v1/alerts"): {V, R, W},
    ("GET", "/api/v1/alerts/{alr}"): {V, R, W},
    ("POST", "/api/v1/identities/{idn}/release"): {R, W},
    ("POST", "/api/v1/hunting/query"): {W},
}

# Routes whose allowed callers may meet the object in a state that refuses the call
# (an action that is not waiting for approval, one already being undone): for them
# "allowed" means past authorization, i.e. 409, not only 2xx.
STATEFUL = {
    ("POST", "/api/v1/actions/{act}/approve"),
    ("POST", "/api/v1/actions/{act}/reject"),
    ("POST", "/api/v1/actions/{act}/undo"),
    ("POST", "/api/v1/identities/{idn}/release"),
}


def test_routes_table_matches_source():
    """The table above covers every route quelld has (src/api/routes.c)."""
    import re
    from conftest import REPO
    src = (REPO / "src/api/routes.c").read_text()
    found = set()
    for m, p in re.findall(r'\{ "(GET|POST|DELETE|PUT|PATCH)", "(/api/v1/[^"]*)"', src):
        found.add((m, p))
    mine = {(m, re.sub(r"\{[a-z_]+\}", "{}", p).replace("sync/corp", "sync/{}"))
            for m, p in PERMS}
    assert found == mine


def token_for(q, caller):
    if caller == "none":
        return None
    if caller in ("viewer", "responder", "admin"):
        return q.tokens[caller]
    if caller == "malformed":
        return "not-a-token"
    if caller == "malformed2":
        return "qt_" + "0" * 24 + "." + "A" * 12  # secret too short
    if caller == "unknown":
        return "qt_" + secrets.token_hex(12) + "." + secrets.token_urlsafe(32)[:43]
    if caller == "wrong-secret":
        good = q.tokens["admin"]
        return good.split(".")[0] + "." + secrets.token_urlsafe(32)[:43]
    if caller == "revoked":  # an admin token, revoked: refused like no token at all
        return q.tokens["revoked"]
    return None  # basic: handled by the header


def test_access_matrix(lab, quelld, make_user, relay):
    # actions stay open while the relay is down, so that cancel has something to cancel
    q = quelld(url=f"ldaps://127.0.0.1:{relay.port}", engine={"max_attempts": 1000})
    admin = q.admin
    users = [make_user(q, "acc", sync=False) for _ in range(2)]
    q.sync()
    for u in users:
        u.find(q)
    done = admin.run("disable", users[0].identity_id)
    assert done["status"] == "completed"
    alert = admin.ok("POST", "/api/v1/alerts", {
        "id": "access-seed", "source": "access-test", "time": "2026-11-25T08:00:00Z",
        "title": "seed", "category": "credential_theft", "severity": "low",
        "confidence": 10, "entities": {"accounts": []}})
    gone = admin.ok("POST", "/api/v1/tokens", {"name": "e2e-revoked", "role": "admin"},
                    want=(201,))
    admin.ok("POST", f"/api/v1/tokens/{gone['id']}/revoke", {"reason": "access matrix"})
    q.tokens["revoked"] = gone["token"]
    relay.down()

    def fresh(kind):
        if kind == "act":
            return done["id"]
        if kind == "open_act":
            return admin.submit("disable", users[1].identity_id)["id"]
        if kind == "idn":
            return users[1].identity_id
        if kind == "acc":
            return users[1].account_id
        if kind == "alr":
            return alert["id"]
        if kind == "tok":  # a token of its own for each call, so each revoke is a first
            return admin.ok("POST", "/api/v1/tokens",
                            {"name": f"to-revoke-{secrets.token_hex(3)}", "role": "viewer"},
                            want=(201,))["id"]
        raise KeyError(kind)

    def body_for(method, path, caller):
        if path == "/api/v1/actions":
            return {"type": "disable", "identity_id": users[1].identity_id,
                    "reason": f"access test {caller}"}
        if path == "/api/v1/identities":
            return {"display_name": f"access {caller}", "tags": ["staff"]}
        if path.endswith("/accounts") and method == "POST":
            return {"account_id": users[1].account_id}
        if path == "/api/v1/tokens":
            return {"name": f"made-by-{caller}", "role": "viewer"}
        if path.endswith("/tags"):
            return {"tags": ["staff"]}
        if path in ("/api/v1/actions/approve", "/api/v1/actions/reject"):
            return {"type": "disable"}
        if path.endswith("/undo") or path.endswith("/release") or path.endswith("/revoke"):
            return {"reason": f"access test {caller}"}
        if path == "/api/v1/alerts":
            return {"id": f"access-{caller}-{secrets.token_hex(4)}", "source": "access-test",
                    "time": "2026-11-25T08:00:00Z", "title": "access test",
                    "category": "credential_theft", "severity": "low", "confidence": 10,
                    "entities": {"accounts": []}}
        if path == "/api/v1/hunting/query":
            return {"query": "SELECT 1 AS one"}
        if method == "POST":
            return {}
        return None

    last = [admin.audit_count()]
    failures = []

    def check(method, tmpl, caller, allowed):
        path = tmpl
        for kind in ("open_act", "act", "idn", "acc", "alr", "tok"):
            if "{" + kind + "}" in path:
                path = path.replace("{" + kind + "}", fresh(kind))
        last[0] = max([last[0]] + [e["seq"] for e in admin.audit_after(last[0])])
        tok = token_for(q, caller)
        headers = {"Authorization": "Basic YWRtaW46YWRtaW4="} if caller == "basic" else None
        api = admin.as_(tok)
        r = api.request(method, path, body=body_for(method, tmpl, caller), headers=headers)
        new = admin.audit_after(last[0])
        denials = [e for e in new if e["event"] in DENIAL_EVENTS]
        where = f"{method} {path} as {caller}"
        if caller in UNAUTHENTICATED:
            want = 401
        elif caller in allowed:
            want = "2xx"
        else:
            want = 403
        if want == "2xx":
            ok = 200 <= r.status < 300 or ((method, tmpl) in STATEFUL and r.status == 409)
            if not ok:
                failures.append(f"{where}: {r}")
            if denials:
                failures.append(f"{where}: allowed, yet audited as {denials}")
            return r
        if r.status != want:
            failures.append(f"{where}: want {want}, got {r}")
            return r
        code = "unauthenticated" if want == 401 else "forbidden"
        if r.error.get("code") != code:
            failures.append(f"{where}: error {r.error}")
        if want == 401 and not r.headers.get("www-authenticate", "").startswith("Bearer"):
            failures.append(f"{where}: 401 without WWW-Authenticate: Bearer")
        if want == 401:
            ev = "auth.failed"
        elif method == "POST" and (tmpl == "/api/v1/actions" or tmpl.endswith("/undo")):
            ev = "action.denied"
        else:
            ev = "access.denied"
        if [e["event"] for e in denials] != [ev]:
            failures.append(f"{where}: want one {ev} audit entry, got {new}")
        elif want == 401 and denials[0]["actor"] != "anonymous":
            failures.append(f"{where}: 401 audited as {denials[0]['actor']}")
        elif want == 403 and denials[0]["actor"] != f"e2e-{caller}":
            failures.append(f"{where}: 403 audited as {denials[0]['actor']}")
        elif path not in (denials[0]["detail"].get("path") or path):
            failures.append(f"{where}: audit detail {denials[0]['detail']}")
        if ev == "action.denied":
            aid = r.error.get("action_id")
            if not aid:
                failures.append(f"{where}: no error.action_id in {r}")
            else:
                a = admin.action(aid)
                if a["status"] != "denied" or denials[0]["action_id"] != aid:
                    failures.append(f"{where}: denied action {a}")
                listed = [x["id"] for x in admin.actions_all("status=denied")]
                if aid not in listed:
                    failures.append(f"{where}: {aid} missing from ?status=denied")
        return r

    for (method, tmpl), allowed in PERMS.items():
        if tmpl.startswith("/api/v1/sync"):
            continue
        for caller in CALLERS:
            if method == "POST" and tmpl.endswith("/accounts") and caller == "admin":
                continue  # after the unlink, below
            check(method, tmpl, caller, allowed)
    # the unlink above (as admin) left the account free: link it back, as admin
    check("POST", "/api/v1/identities/{idn}/accounts", "admin", {W})
    assert any(a["id"] == users[1].account_id
               for a in admin.ok("GET", f"/api/v1/identities/{users[1].identity_id}")["accounts"])

    relay.up()
    for caller in CALLERS:
        check("POST", "/api/v1/sync/corp", caller, PERMS[("POST", "/api/v1/sync/corp")])

    # no route, wrong method: still 401 before anything else
    for method, path, want in (("GET", "/api/v1/nope", 404), ("PUT", "/api/v1/actions", 405)):
        r = admin.request(method, path)
        if r.status != want:
            failures.append(f"{method} {path} as admin: want {want}, got {r}")
        r = admin.request(method, path, token=None)
        if r.status != 401:
            failures.append(f"{method} {path} without token: want 401, got {r}")
    r = admin.get("/healthz", token=None)
    assert r.status == 200 and r.json == {"status": "ok"}

    assert not failures, "\n".join(failures)

    who = q.api("viewer").ok("GET", "/api/v1/whoami")
    assert who["role"] == "viewer" and "response.manage" not in who["permissions"]
    assert admin.ok("GET", "/api/v1/audit/verify")["ok"] is True


def test_new_token_works(quelld):
    q = quelld()
    r = q.admin.post("/api/v1/tokens", {"name": "fresh", "role": "viewer"})
    assert r.status == 201, r
    tok = r.json["token"]
    assert r.json["id"] == tok.split(".")[0]
    me = q.admin.as_(tok).ok("GET", "/api/v1/whoami")
    assert me["name"] == "fresh" and me["role"] == "viewer"
    assert q.admin.as_(tok).post("/api/v1/identities", {"display_name": "x"}).status == 403
