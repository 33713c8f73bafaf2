"""Console sessions are the cluster's: on two nodes sharing one PostgreSQL database, a
session opened on one is good on the other (the same CSRF token), a sign-out on one
ends it on both, a revoked token ends its sessions everywhere, and the database holds
only the hash of a session's id, never the cookie's value or its CSRF token."""
import hashlib

from conftest import Api, postgres


def two_nodes(quelld):
    store, _ = postgres().new_db()
    return [quelld(name=f"s{x}", store=store, server={"node_id": f"s{x}"}) for x in "ab"]


def sign_in(node, token):
    r = node.api(None).post("/api/v1/session", {"token": token}, token=None)
    assert r.status == 200, r
    return r.headers["set-cookie"].split(";")[0], r.json["csrf_token"]


def who(node, cookie):
    return node.api(None).get("/api/v1/session", token=None, headers={"Cookie": cookie})


def test_session_made_on_one_node_works_on_the_other(quelld):
    a, b = two_nodes(quelld)
    cookie, csrf = sign_in(a, a.tokens["viewer"])
    r = who(b, cookie)
    assert r.status == 200 and r.json["csrf_token"] == csrf, r
    assert r.json["role"] == "viewer"

    # Stored as the id's SHA-256 only: neither the id nor the CSRF token is there.
    value = cookie.split("=", 1)[1]
    rows = a.db_conn().execute(
        "SELECT id_hash, principal_hash, coalesce(token_id, ''),"
        " coalesce(token_hash, ''), coalesce(claims, '') FROM console_sessions").fetchall()
    assert [r[0] for r in rows] == [hashlib.sha256(value.encode()).hexdigest()]
    dump = " ".join(str(v) for r in rows for v in r)
    assert value not in dump and csrf not in dump

    # A change needs the session's CSRF token on whichever node it reaches.
    r = b.api(None).delete("/api/v1/session", token=None, headers={"Cookie": cookie})
    assert r.status == 403, r
    assert who(a, cookie).status == 200
    r = b.api(None).delete("/api/v1/session", token=None,
                           headers={"Cookie": cookie, "X-CSRF-Token": csrf})
    assert r.status == 200, r
    # Signed out on b: refused on a as well.
    assert who(a, cookie).status == 401
    assert who(b, cookie).status == 401
    assert a.db_conn().execute("SELECT count(*) FROM console_sessions").fetchone()[0] == 0


def test_revoked_token_ends_its_sessions_on_every_node(quelld):
    a, b = two_nodes(quelld)
    made = a.admin.ok("POST", "/api/v1/tokens", {"name": "leaver", "role": "viewer"},
                      want=(201,))
    cookie, _ = sign_in(b, made["token"])
    other, _ = sign_in(b, a.tokens["viewer"])
    assert who(a, cookie).status == 200
    a.admin.ok("POST", f"/api/v1/tokens/{made['id']}/revoke", {"reason": "left"})
    r = who(b, cookie)
    assert r.status == 401, r
    assert who(a, cookie).status == 401
    # The row is gone, the other principal's session stays.
    n = a.db_conn().execute("SELECT count(*) FROM console_sessions WHERE token_id = "
                            f"'{made['id']}'").fetchone()[0]
    assert n == 0
    assert who(a, other).status == 200
    assert Api(b.port, made["token"]).get("/api/v1/whoami").status == 401
