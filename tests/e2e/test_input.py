"""Bad input is refused with the field named, and nothing is written."""
import json

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
