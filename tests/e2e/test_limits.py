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


# ------------------------------------------------------------------- hunting pool

FOREVER = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
           "SELECT count(*) FROM c")


def test_hunts_run_on_their_own_pool_and_a_full_pool_answers_at_once(quelld):
    q = configured(quelld, "", server={"hunt_workers": 1})
    api = q.admin
    done = threading.Event()
    long_answer = {}

    def long_hunt():
        # runs until its 5 s limit stops it
        long_answer["r"] = api.post("/api/v1/hunting/query", {"query": FOREVER})
        done.set()

    def start_long():
        done.clear()
        th = threading.Thread(target=long_hunt)
        th.start()
        return th
    t = start_long()

    # once the one worker has the long hunt, the next is refused at once, not queued
    def refused():
        nonlocal t
        if done.is_set() and long_answer["r"].status == 503:
            t.join()
            t = start_long()            # a probe below had the worker: again
            return None
        r = api.post("/api/v1/hunting/query", {"query": "SELECT 1 AS one"})
        if r.status == 200:
            return None
        return r
    r = wait_for(refused, 30, what="a hunt refused by a full pool")
    assert r.status == 503, r
    assert r.error["code"] == "unavailable" and "hunt_workers" in r.error["message"], r
    assert int(r.headers["retry-after"]) > 0
    # the API answers while the hunt runs: every one of these before it ends
    statuses = [api.get("/api/v1/whoami").status for _ in range(40)]
    still_running = not done.is_set()
    t.join(60)
    assert statuses == [200] * 40
    assert still_running, "the hunt ended before 40 small requests were answered"
    assert long_answer["r"].status == 400 and "ran longer" in \
        long_answer["r"].error["message"], long_answer["r"]
    # and the pool is free again
    assert api.post("/api/v1/hunting/query", {"query": "SELECT 1 AS one"}).json[
        "rows"] == [[1]]
    assert api.ok("GET", "/api/v1/audit/verify")["ok"] is True


# ------------------------------------------------------------ connection flooding

def test_headers_not_complete_in_time_are_cut(quelld):
    q = configured(quelld, "", server={"header_timeout": "2s"})
    s = socket.create_connection(("127.0.0.1", q.port))
    s.settimeout(1.0)
    s.sendall(b"GET /api/v1/whoami HTTP/1.1\r\nHost: x\r\n")

    # one header line a second resets an idle timeout, never the header deadline
    def cut():
        try:
            s.sendall(b"X-Slow: 1\r\n")
            return s.recv(4096) == b""
        except socket.timeout:
            return False
        except OSError:
            return True
    wait_for(cut, 30, interval=0, what="quelld to close a slow-header connection")
    s.close()
    assert q.admin.get("/api/v1/whoami").status == 200


def test_flood_from_one_address_leaves_another_answered(quelld):
    import sys
    sys.path.insert(0, str(__import__("conftest").REPO / "bench"))
    from conn_flood import CLIENT_ADDR, Flood, client_request, raise_fd_limit

    assert raise_fd_limit(2600) >= 2600, "cannot open 2 000 sockets (ulimit -n)"
    try:
        socket.create_connection(("127.0.0.1", 1), source_address=(CLIENT_ADDR, 0))
    except ConnectionRefusedError:
        pass                            # 127.0.0.2 is usable: only the port is closed
    q = configured(quelld, "", server={"header_timeout": "3s"})
    token = q.tokens["admin"]
    flood = Flood(q.port, 2000, max_s=120).start()
    try:
        wait_for(lambda: flood.opened >= 2000, 60, what="2 000 attacker connections")
        answers = []
        # past the header timeout, so slow headers are cut (and opened again)
        while len(answers) < 300 or flood.slow_cut == 0:
            assert len(answers) < 20000, "no slow-header connection was ever cut"
            path = "/api/v1/whoami" if len(answers) % 2 == 0 else "/"
            answers.append((path, client_request(q.port, path, token)[0]))
    finally:
        flood.stop()
    assert [a for a in answers if a[1] != 200] == []
    assert flood.closed_by_server > 0 and flood.slow_cut > 0
    assert q.admin.ok("GET", "/api/v1/audit/verify")["ok"] is True
