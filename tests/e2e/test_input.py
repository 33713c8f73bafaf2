"""Bad input is refused with the field named, and nothing is written."""
import json

import pytest

MAX_BODY = 16384  # above the 10 kB strings below

HOSTILE = {
    "nul": "a\u0000b",
    "bell": "ring\u0007",
    "escape": "\u001b[31mred",
    "newline": "two\nlines",
    "del": "x\u007f",
    "c1": "x\u0085y",
    "long": "r" * 10240,
}
# Valid text, but not valid as an id, type or source
META = {
    "sql": "x' OR '1'='1'; DROP TABLE actions; --",
    "ldap": "*)(objectClass=*))(|(cn=*",
    "path": "../../etc/passwd",
}


def test_bad_input(quelld, make_user):
    q = quelld(server={"max_body": MAX_BODY})
    api = q.api("responder")
    admin = q.admin
    u = make_user(q, "inp")
    good = {"type": "disable", "identity_id": u.identity_id, "reason": "input test"}
    unknown_idn = "idn_" + "0" * 23 + "1"

    actions_before = len(admin.actions_all())
    audit_before = admin.audit_count()
    failures = []

    def expect(r, status, field, where):
        if r.status != status:
            failures.append(f"{where}: want {status}, got {r}")
        elif field is not None and r.error.get("field") != field:
            failures.append(f"{where}: want field {field!r}, got {r.error}")
        elif r.json is None or "message" not in r.error:
            failures.append(f"{where}: not a JSON error: {r}")

    def post(body, status, field, where, path="/api/v1/actions", **kw):
        expect(api.post(path, body, **kw) if "raw" not in kw else
               api.request("POST", path, **kw), status, field, where)

    # the body itself
    post(None, 400, "body", "malformed JSON", raw=b'{"type": "disable",')
    post(None, 400, "body", "empty body", raw=b"")
    post(None, 400, "body", "array body", raw=b"[1, 2]")
    post(None, 400, "body", "duplicate keys",
         raw=b'{"type":"disable","type":"enable","identity_id":"%s","reason":"r"}'
         % u.identity_id.encode())
    post(None, 415, "Content-Type", "text/plain", raw=json.dumps(good).encode(),
         content_type="text/plain")
    post(None, 415, "Content-Type", "no Content-Type", raw=json.dumps(good).encode(),
         content_type=None)
    post(None, 413, "body", "oversized body",
         raw=json.dumps({**good, "reason": "x" * (MAX_BODY + 10)}).encode())
    post(None, 400, "body", "invalid UTF-8",
         raw=b'{"type":"disable","identity_id":"%s","reason":"caf\xc3\x28 \xff\xfe"}'
         % u.identity_id.encode())
    post(None, 400, "body", "overlong UTF-8 NUL",
         raw=b'{"type":"disable","identity_id":"%s","reason":"a\xc0\x80b"}'
         % u.identity_id.encode())

    # fields
    post({**good, "type": "nuke"}, 400, "type", "unknown type")
    post({**good, "type": 7}, 400, "type", "type not a string")
    post({k: v for k, v in good.items() if k != "type"}, 400, "type", "type missing")
    post({k: v for k, v in good.items() if k != "reason"}, 400, "reason", "reason missing")
    post({**good, "reason": ""}, 400, "reason", "reason empty")
    post({**good, "identity_id": unknown_idn}, 404, "identity_id", "unknown identity")
    for bad in ("idn_xyz", "act_" + "0" * 24, u.account_id, "IDN_" + "0" * 24, "",
                "idn_" + "0" * 25, unknown_idn + " "):
        post({**good, "identity_id": bad}, 400, "identity_id", f"identity_id {bad!r}")
    post({**good, "account_id": "acc_nope"}, 400, "account_id", "bad account_id")
    post({**good, "account_id": "acc_" + "0" * 24}, 404, "account_id",
         "account of another identity")
    post({**good, "colour": "red"}, 400, "colour", "unknown field")
    post({**good, "params": {"colour": "red"}}, 400, "params.colour", "unknown param")
    post({**good, "params": "yes"}, 400, "params", "params not an object")
    post({**good, "params": {"clear_dont_expire": True}}, 400, "params.clear_dont_expire",
         "param for the wrong type")
    post({**good, "type": "force_password_change", "params": {"clear_dont_expire": "yes"}},
         400, "params.clear_dont_expire", "param of the wrong type")
    post({**good, "params": {"risk_level": "HIGH"}}, 400, "params.risk_level",
         "risk_level on disable")
    post({**good, "preview": "yes"}, 400, "preview", "preview not a boolean")
    post({**good, "source": "evil"}, 400, "source", "unknown source")
    post({**good, "type": "revoke_sessions"}, 400, "type", "type AD does not support")

    # hostile strings in every string field
    for field in ("type", "identity_id", "account_id", "reason", "source"):
        for name, val in HOSTILE.items():
            post({**good, field: val}, 400, field, f"{field} = {name}")
        if field != "reason":
            for name, val in META.items():
                post({**good, field: val}, 400, field, f"{field} = {name}")

    # other routes
    expect(admin.post("/api/v1/identities", {"display_name": "a\u0000b"}), 400,
           "display_name", "identity NUL")
    expect(admin.post("/api/v1/identities", {"display_name": "x" * 10240}), 400,
           "display_name", "identity 10 kB name")
    expect(admin.post("/api/v1/identities", {"display_name": "ok", "tags": "tier0"}), 400,
           "tags", "tags not an array")
    expect(admin.post("/api/v1/identities", {"display_name": "ok", "tags": ["a\u0001"]}),
           400, "tags", "tag with control char")
    expect(admin.post("/api/v1/identities", {"display_name": "ok", "tags": [""]}),
           400, "tags", "empty tag")
    expect(admin.post("/api/v1/identities", {"display_name": "ok", "owner": "me"}),
           400, "owner", "identity unknown field")
    expect(admin.post("/api/v1/tokens", {"name": "t", "role": "root"}), 400, "role",
           "token unknown role")
    expect(admin.post("/api/v1/tokens", {"name": "t\u0000", "role": "viewer"}), 400, "name",
           "token NUL name")
    expect(admin.post(f"/api/v1/identities/{u.identity_id}/accounts",
                      {"account_id": "*)(cn=*"}), 400, "account_id", "link bad account")
    expect(admin.post(f"/api/v1/identities/{u.identity_id}/accounts",
                      {"account_id": "acc_" + "0" * 24}), 404, "account_id",
           "link unknown account")
    expect(admin.post("/api/v1/identities/idn_x/accounts", {"account_id": u.account_id}),
           400, "identity_id", "link bad identity id")
    expect(admin.delete(f"/api/v1/identities/{u.identity_id}/accounts/acc_x"), 400,
           "account_id", "unlink bad account id")
    expect(admin.post("/api/v1/sync/nowhere"), 404, "system", "sync unknown system")
    for path, field in (("/api/v1/actions/act_zzz", "action_id"),
                        ("/api/v1/actions/idn_" + "0" * 24, "action_id"),
                        ("/api/v1/actions/act_zzz/cancel", "action_id"),
                        ("/api/v1/identities/idn_%27%20OR%201=1", "identity_id"),
                        ("/api/v1/actions?status=bogus", "status"),
                        ("/api/v1/actions?type=nuke", "type"),
                        ("/api/v1/actions?limit=0", "limit"),
                        ("/api/v1/actions?limit=1001", "limit"),
                        ("/api/v1/actions?limit=ten", "limit"),
                        ("/api/v1/actions?before=act_1", "before"),
                        ("/api/v1/actions?identity_id=%2A", "identity_id"),
                        ("/api/v1/actions?since=yesterday", "since"),
                        ("/api/v1/identities?q=%01x", "q"),
                        ("/api/v1/identities?after=x", "after"),
                        ("/api/v1/audit?after=-1", "after"),
                        ("/api/v1/audit?limit=99999", "limit")):
        method = "POST" if path.endswith("/cancel") else "GET"
        expect(admin.request(method, path, body={} if method == "POST" else None), 400,
               field, f"{method} {path}")
    expect(admin.get("/api/v1/actions/act_" + "0" * 24), 404, "id", "unknown action")
    expect(admin.post("/api/v1/actions/act_" + "0" * 24 + "/cancel", {}), 404, "id",
           "cancel unknown action")
    expect(admin.get("/api/v1/identities/" + "idn_" + "0" * 24), 404, "id",
           "unknown identity")

    # preview writes nothing either
    r = api.post("/api/v1/actions", {**good, "preview": True})
    if r.status != 200 or r.json["steps"][0]["status"] != "queued":
        failures.append(f"preview: {r}")

    assert not failures, "\n".join(failures)
    assert len(admin.actions_all()) == actions_before, "a refused request stored an action"
    new = admin.audit_after(audit_before)
    assert new == [], f"refused requests wrote audit entries: {[e['event'] for e in new]}"

    # hostile-looking but valid text is stored verbatim, not interpreted
    for val in (*META.values(), "Zoë \"Z\" O'Brien, (ops) \\ test 😀"):
        a = api.submit("disable", u.identity_id, reason=val)
        assert api.action(a["id"])["reason"] == val
    assert q.admin.ok("GET", "/api/v1/audit/verify")["ok"] is True


BIDI = {f"U+{c:04X}": chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}


@pytest.mark.sqlite("hunts in SQLite's dialect, the mode of SQLite's files")
def test_smaller_holes(quelld, make_user):
    """Issue 12, hole 8: each of these was accepted (or failed) before."""
    import os
    import socket
    import stat
    q = quelld()
    admin = q.admin
    u = make_user(q, "small")
    failures = []

    def expect(r, status, field, where):
        if r.status != status or (field is not None and r.error.get("field") != field):
            failures.append(f"{where}: want {status} naming {field!r}, got {r}")

    # a NUL in a query parameter is refused, not cut short
    expect(admin.get("/api/v1/identities?q=%00zzzz"), 400, "q", "q=%00zzzz")
    expect(admin.get("/api/v1/actions?status=queued%00x"), 400, "status", "status NUL")
    # numbers are digits only: no leading space or sign
    expect(admin.get("/api/v1/actions?limit=%2010"), 400, "limit", "limit=' 10'")
    expect(admin.get("/api/v1/actions?limit=+10"), 400, "limit", "limit='+10'")
    expect(admin.get("/api/v1/audit?after=%205"), 400, "after", "after=' 5'")
    expect(admin.get("/api/v1/actions?limit=10"), 200, None, "limit=10")

    # bidirectional controls are refused in reasons, alert titles and ids, token names
    alert = {"id": "bidi-1", "source": "mdi", "time": "2026-12-01T08:00:00Z",
             "title": "t", "category": "ransomware", "severity": "low",
             "confidence": 10, "entities": {"accounts": []}}
    for name, ch in BIDI.items():
        expect(admin.post("/api/v1/actions", {"type": "disable", "identity_id":
               u.identity_id, "reason": f"ok{ch}kayak"}), 400, "reason", f"reason {name}")
        expect(admin.post("/api/v1/alerts", {**alert, "title": f"x{ch}y"}), 400,
               "title", f"alert title {name}")
        expect(admin.post("/api/v1/alerts", {**alert, "id": f"x{ch}y"}), 400, "id",
               f"alert id {name}")
        expect(admin.post("/api/v1/tokens", {"name": f"bot{ch}", "role": "viewer"}), 400,
               "name", f"token name {name}")

    # two Content-Length headers that disagree: 400 and the connection closed
    s = socket.create_connection(("127.0.0.1", q.port), timeout=30)
    body = b'{"reason": "x"}'
    s.sendall(b"POST /api/v1/actions/act_" + b"0" * 24 + b"/cancel HTTP/1.1\r\n"
              b"Host: x\r\nAuthorization: Bearer " + q.tokens["admin"].encode() +
              b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
              b"Content-Length: 2\r\n\r\n" % len(body) + body)
    got = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    s.close()
    if not got.startswith(b"HTTP/1.1 400") or b"Content-Length" not in got:
        failures.append(f"duplicate Content-Length: {got[:300]!r}")

    # a 405 says what is allowed
    r = admin.delete("/api/v1/actions")
    if r.status != 405 or r.headers.get("allow") != "GET, POST":
        failures.append(f"405 Allow: {r.status} {r.headers.get('allow')!r}")
    r = admin.request("PATCH", "/api/v1/identities/idn_" + "0" * 24)
    if r.status != 405 or r.headers.get("allow") != "GET":
        failures.append(f"405 Allow (identity): {r.status} {r.headers.get('allow')!r}")

    # hunting: NUL in a value, and count(*) over every view
    r = admin.post("/api/v1/hunting/query", {"query": "SELECT char(0) AS z, 'a' AS b"})
    if r.status != 200 or r.json["rows"] != [["\u0000", "a"]]:
        failures.append(f"SELECT char(0): {r}")
    for view in ("IdentityInfo", "IdentityAccounts", "Alerts", "AlertEntities", "Actions",
                 "ActionSteps", "AuditEvents"):
        r = admin.post("/api/v1/hunting/query", {"query": f"SELECT count(*) AS n FROM {view}"})
        if r.status != 200 or not isinstance(r.json["rows"][0][0], int):
            failures.append(f"count(*) FROM {view}: {r}")
    r = admin.post("/api/v1/hunting/query", {"query": "SELECT count(*) FROM IdentityInfo"})
    n_ident = r.json["rows"][0][0] if r.status == 200 else None
    r = admin.post("/api/v1/hunting/query", {"query": "SELECT identity_id FROM "
                                             "IdentityInfo", "limit": 10000})
    if r.status != 200 or len(r.json["rows"]) != n_ident:
        failures.append(f"count(*) {n_ident} != rows {r}")
    # what count(*) is allowed to read tells nothing more than the views show
    r = admin.post("/api/v1/hunting/query", {"query": "SELECT name FROM sqlite_master"})
    if r.status != 400:
        failures.append(f"sqlite_master read: {r}")

    # the store is private: the database (and its journal files) 0600
    for p in q.dir.glob("quell.db*"):
        mode = stat.S_IMODE(os.stat(p).st_mode)
        if mode & 0o077:
            failures.append(f"{p.name} is {oct(mode)}")

    assert not failures, "\n".join(failures)
    assert admin.ok("GET", "/api/v1/audit/verify")["ok"] is True
