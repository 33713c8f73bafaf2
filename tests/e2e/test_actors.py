"""Actors that cannot be confused (issue 12, hole 7): every audit entry and action
carries the principal's kind (token, jwt, session, system) and stable id (token id;
JWT issuer + subject) beside its display name, and names of quell's own principals
cannot be taken by a token."""
import subprocess

from conftest import QUELLD, Api
from test_oidc import AUDIENCE, ISSUER, claims, jwt, keys, write_jwks  # noqa: F401


def test_jwt_and_token_of_one_name_are_told_apart(quelld, keys, tmp_path, make_user):
    jwks = tmp_path / "jwks.json"
    write_jwks(jwks, keys["rsa"])
    q = quelld(start=False)
    with open(q.conf, "a") as f:
        f.write(f"\n[oidc]\nissuer = {ISSUER}\naudience = {AUDIENCE}\n"
                f"jwks_file = {jwks}\ndefault_role = responder\n")
    q.start()
    u = make_user(q, "act")
    made = q.admin.ok("POST", "/api/v1/tokens", {"name": "sec-admin", "role": "responder"},
                      want=(201,))
    as_token = q.admin.as_(made["token"])
    as_jwt = Api(q.port, jwt(keys["rsa"], claims(preferred_username="sec-admin",
                                                 oid="oid-sec-1")))
    a1 = as_token.run("disable", u.identity_id)
    a2 = as_jwt.run("enable", u.identity_id)
    assert a1["requested_by"] == a2["requested_by"] == "sec-admin"
    assert (a1["requested_by_kind"], a1["requested_by_id"]) == ("token", made["id"])
    assert (a2["requested_by_kind"], a2["requested_by_id"]) == ("jwt", f"{ISSUER}#oid-sec-1")
    ev = {e["action_id"]: e for e in q.admin.audit_all() if e["event"] == "action.requested"}
    assert (ev[a1["id"]]["actor_kind"], ev[a1["id"]]["actor_id"]) == ("token", made["id"])
    assert (ev[a2["id"]]["actor_kind"], ev[a2["id"]]["actor_id"]) == \
        ("jwt", f"{ISSUER}#oid-sec-1")
    # the engine's own entries are the system's
    steps = [e for e in q.admin.audit_all() if e["event"] == "step.succeeded"]
    assert steps and all(e["actor_kind"] == "system" and
                         e["actor_id"].startswith("system:") for e in steps)
    assert q.admin.ok("GET", "/api/v1/audit/verify")["ok"] is True


def test_reserved_names_are_refused(quelld):
    q = quelld()
    for name in ("automatic-attack-disruption", "Automatic-Attack-Disruption", "quell",
                 "system", "anonymous"):
        r = q.admin.post("/api/v1/tokens", {"name": name, "role": "viewer"})
        assert r.status == 400 and r.error["field"] == "name", (name, r)
        assert "reserved" in r.error["message"]
    r = subprocess.run([str(QUELLD), "-c", str(q.conf), "token", "create", "--name",
                        "automatic-attack-disruption", "--role", "admin"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "reserved" in r.stderr, r
    assert not [t for t in q.admin.ok("GET", "/api/v1/tokens")["tokens"]
                if t["name"].lower() in ("automatic-attack-disruption", "quell")]
