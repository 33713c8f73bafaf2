"""Every route × every kind of caller, and every refusal audited. The routes are those
of quelld's router table (src/api/routes.c) and of docs/openapi.yaml: a route in either
without a row below fails, so a new route cannot be left out of the matrix."""
import re
import secrets
import time

import pytest

from conftest import REPO

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
    ("POST", "/api/v1/actions/bulk"): {R, W},
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
    ("POST", "/api/v1/sync/{sys}"): {W},
    ("POST", "/api/v1/sync"): {W},
    ("GET", "/api/v1/sync"): {V, R, W},
    ("GET", "/api/v1/identities/conflicts"): {V, R, W},
    ("PUT", "/api/v1/identities/{idn}/tags"): {W},
    ("POST", "/api/v1/actions/{act}/approve"): {W},
    ("POST", "/api/v1/actions/{act}/reject"): {W},
    ("POST", "/api/v1/actions/approve"): {W},
    ("POST", "/api/v1/actions/reject"): {W},
    ("POST", "/api/v1/actions/{act}/undo"): {R, W},
    ("POST", "/api/v1/alerts"): {W},  # alerts.ingest: admin (and detector)
    ("GET", "/api/v1/alerts"): {V, R, W},
    ("GET", "/api/v1/alerts/{alr}"): {V, R, W},
    ("POST", "/api/v1/identities/{idn}/release"): {R, W},
    ("POST", "/api/v1/hunting/query"): {W},
    ("GET", "/metrics"): {W},  # metrics.read: admin (and monitor)
    ("GET", "/graph/v1.0/security/identities/identityAccounts"): {V, R, W},
    ("GET", "/graph/v1.0/security/identities/identityAccounts/{idn}"): {V, R, W},
    ("POST", "/graph/v1.0/security/identities/identityAccounts/{idn}/invokeAction"): {R, W},
    ("POST", "/ssf/stream"): {W},  # settings.manage
    ("GET", "/ssf/stream"): {W},  # settings.manage
    ("PATCH", "/ssf/stream"): {W},  # settings.manage
    ("PUT", "/ssf/stream"): {W},  # settings.manage
    ("DELETE", "/ssf/stream"): {W},  # settings.manage
    ("GET", "/ssf/status"): {W},  # settings.manage
    ("POST", "/ssf/status"): {W},  # settings.manage
    ("POST", "/ssf/subjects:add"): {W},  # settings.manage
    ("POST", "/ssf/subjects:remove"): {W},  # settings.manage
    ("POST", "/ssf/verify"): {W},  # settings.manage
    ("POST", "/ssf/poll/{sid}"): {W},  # settings.manage
}

# SSF's stream management answers 404 past authorization when quelld has no [ssf]
# (this one has none): for them, allowed means that.
NEEDS_SSF = {(m, p) for (m, p) in PERMS if p.startswith("/ssf/")}

# Routes whose allowed callers may meet the object in a state that refuses the call
# (an action that is not waiting for approval, one already being undone): for them
# "allowed" means past authorization, i.e. 409, not only 2xx.
STATEFUL = {
    ("POST", "/api/v1/actions/{act}/approve"),
    ("POST", "/api/v1/actions/{act}/reject"),
    ("POST", "/api/v1/actions/{act}/undo"),
    ("POST", "/api/v1/identities/{idn}/release"),
}


# Documented operations that are not bearer-authenticated routes of the router table:
# public ones (security: []) and the console's own, authenticated by its session cookie
# (tests/e2e/test_web.py). Each says why it has no row.
NOT_IN_MATRIX = {
    ("GET", "/healthz"): "public (security: [])",
    ("GET", "/readyz"): "public (security: [])",
    ("POST", "/api/v1/session"): "public: signs in with an API token (security: [])",
    ("GET", "/api/v1/session"): "console session cookie only (test_web.py)",
    ("DELETE", "/api/v1/session"): "console session cookie only (test_web.py)",
    ("GET", "/api/v1/session/oidc"): "public (security: [])",
    ("GET", "/api/v1/session/oidc/start"): "public (security: [])",
    ("GET", "/api/v1/session/oidc/callback"): "public (security: [])",
    ("GET", "/.well-known/ssf-configuration"): "public (security: [])",
    ("GET", "/ssf/jwks.json"): "public (security: [])",
    ("POST", "/ssf/receive/{name}"): "public: its [ssf_receiver]'s own bearer token "
                                     "(security: [], test_ssf.py)",
}


def shape(path):
    """/api/v1/actions/{action_id} and /api/v1/actions/{act} → /api/v1/actions/{}"""
    return re.sub(r"\{[a-z_]*\}", "{}", path)


def source_routes():
    """(method, pattern) of every entry of the router table in src/api/routes.c."""
    src = (REPO / "src/api/routes.c").read_text()
    m = re.search(r"\broutes\[\]\s*=\s*\{(.*?)\n\};", src, re.S)
    assert m, "no routes[] table in src/api/routes.c"
    table = re.sub(r"/\*.*?\*/", "", m.group(1), flags=re.S)
    rows = re.findall(r'\{\s*"([A-Z]+)",\s*"([^"]+)"', table)
    assert len(rows) == table.count("route_"), "a routes[] entry this parser cannot read"
    return {(meth, pat) for meth, pat in rows}


def openapi_operations():
    """{(METHOD, path): security or None} of docs/openapi.yaml (security is the text
    after an operation's own `security:`, "" when it is a list below; None: the
    document's default, bearer token or console session)."""
    ops, in_paths, path, method = {}, False, None, None
    for line in (REPO / "docs/openapi.yaml").read_text().splitlines():
        if re.match(r"\S", line):  # a key of the document itself
            in_paths, path, method = line.rstrip() == "paths:", None, None
            continue
        if not in_paths:
            continue
        m = re.match(r"^  (/\S*):\s*$", line)
        if m:
            path, method = m.group(1), None
            continue
        m = re.match(r"^    (get|put|post|delete|patch|head|options):\s*$", line)
        if m and path:
            method = m.group(1).upper()
            ops[(method, path)] = None
            continue
        m = re.match(r"^      security:\s*(.*?)\s*$", line)
        if m and path and method:
            ops[(method, path)] = m.group(1)
    assert len(ops) > 20, f"docs/openapi.yaml: only {len(ops)} operations read"
    return ops


def test_routes_table_matches_source():
    """The table above covers every route quelld has (src/api/routes.c) and every
    bearer-authenticated operation of docs/openapi.yaml, and nothing else."""
    mine = {(m, shape(p)) for m, p in PERMS}
    assert len(mine) == len(PERMS), "two rows for one route"
    src = source_routes()
    no_row = sorted(src - mine)
    assert not no_row, f"routes in src/api/routes.c without a row in PERMS: {no_row}"
    stale = sorted(mine - src)
    assert not stale, f"rows in PERMS for routes src/api/routes.c does not have: {stale}"
    ops = openapi_operations()
    documented = {(m, shape(p)) for m, p in ops}
    no_row = sorted((m, p) for (m, p), sec in ops.items()
                    if (m, shape(p)) not in mine and (m, p) not in NOT_IN_MATRIX)
    assert not no_row, f"operations of docs/openapi.yaml without a row in PERMS: {no_row}"
    undocumented = sorted(mine - documented)
    assert not undocumented, f"rows in PERMS docs/openapi.yaml does not have: {undocumented}"
    for (m, p), why in NOT_IN_MATRIX.items():
        assert (m, p) in ops, f"NOT_IN_MATRIX lists {m} {p}, which is not documented"
        assert (m, shape(p)) not in src, f"{m} {p} is in the router table: give it a row"
        public = ops[(m, p)] == "[]"
        assert public == why.startswith("public"), f"{m} {p}: security {ops[(m, p)]!r}"


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


def again_if_limited(r, request, *args, **kwargs):
    """The matrix sends more unauthenticated requests than refusals.c's burst (300,
    refilled 5 a second): on a 429, wait for room and ask again."""
    if r.status == 429:
        time.sleep(15)
        r = request(*args, **kwargs)
    return r


@pytest.mark.sqlite("its hunt is SQLite's dialect; and an unauthenticated refusal after "
                    "the first of its minute is counted by its node and written when that "
                    "node's audit log is read (src/api/refusals.c)")
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
        if kind == "sys":
            return "corp"
        raise KeyError(kind)

    def body_for(method, path, caller):
        if method == "GET":
            return None
        if path == "/api/v1/actions":
            return {"type": "disable", "identity_id": users[1].identity_id,
                    "reason": f"access test {caller}"}
        if path == "/api/v1/actions/bulk":  # all_or_nothing: refused as one request is
            return {"type": "disable", "reason": f"access test {caller}",
                    "all_or_nothing": True, "requests": [{"identity_id": users[1].identity_id}]}
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
        if path.endswith("/invokeAction"):
            return {"accountId": users[1].guid, "action": "disable",
                    "identityProvider": "activeDirectory"}
        if method == "POST":
            return {}
        return None

    last = [admin.audit_count()]
    failures = []
    called = {}  # (method, template) → the callers it was called as

    def check(method, tmpl, caller, allowed):
        called.setdefault((method, tmpl), set()).add(caller)
        path = tmpl
        for kind in ("open_act", "act", "idn", "acc", "alr", "tok", "sys"):
            if "{" + kind + "}" in path:
                path = path.replace("{" + kind + "}", fresh(kind))
        last[0] = max([last[0]] + [e["seq"] for e in admin.audit_after(last[0])])
        tok = token_for(q, caller)
        headers = {"Authorization": "Basic YWRtaW46YWRtaW4="} if caller == "basic" else None
        api = admin.as_(tok)
        r = api.request(method, path, body=body_for(method, tmpl, caller), headers=headers)
        if caller in UNAUTHENTICATED:
            r = again_if_limited(r, api.request, method, path,
                                 body=body_for(method, tmpl, caller), headers=headers)
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
            ok = 200 <= r.status < 300 or ((method, tmpl) in STATEFUL and r.status == 409) \
                or ((method, tmpl) in NEEDS_SSF and r.status == 404)
            if not ok:
                failures.append(f"{where}: {r}")
            if denials:
                failures.append(f"{where}: allowed, yet audited as {denials}")
            return r
        if r.status != want:
            failures.append(f"{where}: want {want}, got {r}")
            return r
        code = "unauthenticated" if want == 401 else "forbidden"
        err = r.error
        if tmpl.startswith("/graph/"):  # Graph's error shape: quell's in innerError
            inner = err.get("innerError") or {}
            err = {"code": inner.get("quellCode"), "action_id": inner.get("actionId")}
        if err.get("code") != code:
            failures.append(f"{where}: error {r.error}")
        if want == 401 and not r.headers.get("www-authenticate", "").startswith("Bearer"):
            failures.append(f"{where}: 401 without WWW-Authenticate: Bearer")
        if want == 401:
            ev = "auth.failed"
        elif method == "POST" and (tmpl in ("/api/v1/actions", "/api/v1/actions/bulk") or
                                   tmpl.endswith("/undo") or tmpl.endswith("/invokeAction")):
            ev = "action.denied"
        else:
            ev = "access.denied"
        if [e["event"] for e in denials] != [ev]:
            failures.append(f"{where}: want one {ev} audit entry, got {new}")
        elif want == 401 and denials[0]["actor"] != "anonymous":
            failures.append(f"{where}: 401 audited as {denials[0]['actor']}")
        elif want == 403 and denials[0]["actor"] != f"e2e-{caller}":
            failures.append(f"{where}: 403 audited as {denials[0]['actor']}")
        elif ev != "action.denied" and (denials[0]["detail"].get("path") != path or
                                        denials[0]["detail"].get("method") != method):
            failures.append(f"{where}: audit detail {denials[0]['detail']}")
        if ev == "action.denied":
            aid = err.get("action_id")
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
            if tmpl.endswith("/invokeAction"):
                continue  # acts on the account: after it is linked back, below
            check(method, tmpl, caller, allowed)
    # the unlink above (as admin) left the account free: link it back, as admin
    check("POST", "/api/v1/identities/{idn}/accounts", "admin", {W})
    assert any(a["id"] == users[1].account_id
               for a in admin.ok("GET", f"/api/v1/identities/{users[1].identity_id}")["accounts"])
    invoke = "/graph/v1.0/security/identities/identityAccounts/{idn}/invokeAction"
    for caller in CALLERS:
        check("POST", invoke, caller, PERMS[("POST", invoke)])

    # the sync routes need the directory: last, with the relay up again
    relay.up()
    for (method, tmpl), allowed in PERMS.items():
        if tmpl.startswith("/api/v1/sync"):
            for caller in CALLERS:
                check(method, tmpl, caller, allowed)

    # no route, wrong method: still 401 before anything else
    for method, path, want in (("GET", "/api/v1/nope", 404), ("PUT", "/api/v1/actions", 405)):
        r = admin.request(method, path)
        if r.status != want:
            failures.append(f"{method} {path} as admin: want {want}, got {r}")
        r = again_if_limited(admin.request(method, path, token=None), admin.request,
                             method, path, token=None)
        if r.status != 401:
            failures.append(f"{method} {path} without token: want 401, got {r}")
    r = admin.get("/healthz", token=None)
    assert r.status == 200 and r.json == {"status": "ok"}

    assert not failures, "\n".join(failures)
    # every route of the router table was called as every kind of caller
    by_shape = {(m, shape(t)): who for (m, t), who in called.items()}
    missed = sorted(f"{m} {p} as {sorted(set(CALLERS) - by_shape.get((m, p), set()))}"
                    for m, p in source_routes() if by_shape.get((m, p)) != set(CALLERS))
    assert not missed, "routes the matrix did not call:\n" + "\n".join(missed)

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
