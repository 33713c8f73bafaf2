"""One client cannot take quelld away from the others: console sessions are capped per
principal (issue 12, hole 5), hunts run beside the API rather than on its threads
(hole 6), and a flood of idle or slow connections from one address leaves the API
answering another (hole 3)."""
import concurrent.futures
import resource
import socket
import threading
import time

from conftest import Api, wait_for


def configured(quelld, text, **opts):
    q = quelld(start=False, **opts)
    with open(q.conf, "a") as f:
        f.write("\n" + text + "\n")
    return q.start()


def sign_in(api, token):
    r = api.post("/api/v1/session", {"token": token}, token=None)
    return r, (r.headers["set-cookie"].split(";")[0] if r.status == 200 else None)


def session_live(api, cookie):
    return api.get("/api/v1/session", token=None, headers={"Cookie": cookie}).status


def test_sessions_capped_per_principal_never_evicting_another(quelld):
    q = configured(quelld, "[web]\nmax_sessions = 6\nmax_sessions_per_principal = 2")
    api = q.admin
    r, admin_cookie = sign_in(api, q.tokens["admin"])
    assert r.status == 200, r

    # a viewer signing in over and over only ever replaces its own sessions
    cookies = []
    for _ in range(40):
        r, c = sign_in(api, q.tokens["viewer"])
        assert r.status == 200, r
        cookies.append(c)
    assert session_live(api, admin_cookie) == 200
    assert [session_live(api, c) for c in cookies[-2:]] == [200, 200]
    assert session_live(api, cookies[0]) == 401
    assert session_live(api, cookies[-3]) == 401

    # other principals fill the table: the next one is refused, nobody is signed out
    others = [q.token(f"limits-{i}", "viewer") for i in range(3)]
    held = []
    for tok in others:
        for _ in range(2):
            r, c = sign_in(api, tok)
            held.append((tok, c, r.status))
    # 6 slots: admin 1 and viewer 2 held, so the first other gets its 2, the second
    # one slot (its second sign-in replaces its own first session), the third none
    assert [s for _, _, s in held] == [200, 200, 200, 200, 503, 503], held
    assert held[4][0] == held[5][0] == others[2]
    assert session_live(api, admin_cookie) == 200
    assert [session_live(api, c) for c in cookies[-2:]] == [200, 200]
    assert [session_live(api, c) for _, c, _ in held[:4]] == [200, 200, 401, 200]
    assert api.ok("GET", "/api/v1/audit/verify")["ok"] is True
