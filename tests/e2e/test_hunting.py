"""Advanced hunting through the whole daemon: read-only SQL over the documented views,
enforced by SQLite's own authorizer, with row and time limits; results on a seeded
data set; acting on the identities a query finds. SQLite's dialect and its sandbox's
words: PostgreSQL's hunting is test_pg_hunting.py's."""
import re
import subprocess
import time

import pytest

from conftest import QUELLD, wait_for

pytestmark = pytest.mark.sqlite("SQLite's SQL dialect and sandbox")

LIMIT_MS = 5000  # the documented time limit (README, docs/hunting.md)


def hunt(api, query, limit=None):
    body = {"query": query}
    if limit is not None:
        body["limit"] = limit
    return api.post("/api/v1/hunting/query", body)


def rows(api, query, limit=None):
    r = hunt(api, query, limit)
    assert r.status == 200, (query, r)
    return [dict(zip(r.json["columns"], row)) for row in r.json["rows"]]


def test_hunting_is_read_only(quelld):
    q = quelld()
    api = q.admin
    refused = [
        "DELETE FROM Actions",
        "INSERT INTO identities (id, created_at) VALUES ('x', 1)",
        "UPDATE audit SET actor = 'x'",
        "DROP VIEW Actions",
        "CREATE TABLE x (a)",
        f"ATTACH DATABASE '{q.dir}/other.db' AS other",
        "PRAGMA table_info(actions)",
        "SELECT * FROM pragma_table_info('actions')",
        "SELECT load_extension('/usr/lib/x86_64-linux-gnu/libsqlite3.so.0')",
        "SELECT readfile('/etc/passwd')",
        "SELECT hash FROM tokens",
        "SELECT * FROM identities",
        "SELECT sql FROM sqlite_master",
        "SELECT 1; DELETE FROM actions",
        "SELECT randomblob(1000000000)",
        "BEGIN",
        "",
    ]
    for sql in refused:
        r = hunt(api, sql)
        assert r.status == 400 and r.error["field"] == "query", (sql, r)
    r = hunt(api, "PRAGMA writable_schema = 1")
    assert "PRAGMA" in r.error["message"], r
    r = hunt(api, "SELECT load_extension('x')")
    assert "load_extension" in r.error["message"], r
    r = hunt(api, "SELECT hash FROM tokens")
    assert "not one of the hunting views" in r.error["message"], r
    # a runaway query is stopped cleanly by the time limit: its own error, which names
    # the documented limit, and it ran for the limit (not stopped early by something
    # else, nor left to run on past it)
    t0 = time.monotonic()
    r = hunt(api, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
                  "SELECT count(*) FROM c")
    took = time.monotonic() - t0
    assert r.status == 400 and r.error["field"] == "query", r
    m = re.fullmatch(r"query stopped: it ran longer than (\d+) ms \(simplify it, or add a "
                     r"LIMIT\)", r.error["message"])
    assert m and int(m.group(1)) == LIMIT_MS, r
    assert LIMIT_MS / 1000 <= took < 2 * LIMIT_MS / 1000, \
        f"stopped after {took:.1f} s by a {LIMIT_MS} ms limit"
    # the row limit
    r = hunt(api, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
                  "WHERE x < 500) SELECT x FROM c", limit=10)
    assert r.status == 200 and len(r.json["rows"]) == 10 and r.json["truncated"], r
    assert hunt(api, "SELECT 1", limit=0).status == 400
    # a query written over several lines, as the README shows one; other control
    # characters are still refused
    r = hunt(api, "SELECT identity_id\n\t FROM IdentityInfo\r\n WHERE 1 = 1")
    assert r.status == 200 and r.json["columns"] == ["identity_id"], r
    r = hunt(api, "SELECT 1\x1b[2J")
    assert r.status == 400 and r.error["field"] == "query", r
    assert "other than tabs and line breaks" in r.error["message"], r
    # hunting.query is its own permission; the daemon still answers afterwards
    assert hunt(q.api("responder"), "SELECT 1").status == 403
    assert q.admin.get("/api/v1/whoami").status == 200
    assert [e for e in q.admin.audit_all() if e["event"] == "hunting.query"]


def test_hunting_results_and_then_disable(lab, quelld, make_user, tmp_path):
    q = quelld()
    a, b = make_user(q, "hua"), make_user(q, "hub")
    q.admin.ok("PUT", f"/api/v1/identities/{b.identity_id}/tags", {"tags": ["staff"]})
    q.admin.run("disable", a.identity_id)
    got = rows(q.admin, "SELECT i.identity_id, a.username FROM IdentityInfo i "
                        "JOIN IdentityAccounts a USING (identity_id) "
                        f"WHERE a.username IN ('{a.sam}', '{b.sam}') ORDER BY a.username")
    assert got == [{"identity_id": a.identity_id, "username": a.sam},
                   {"identity_id": b.identity_id, "username": b.sam}]
    got = rows(q.admin, "SELECT t.identity_id, t.status, count(s.step_id) AS steps "
                        "FROM Actions t JOIN ActionSteps s USING (action_id) "
                        "WHERE t.type = 'disable' GROUP BY t.action_id")
    assert got == [{"identity_id": a.identity_id, "status": "completed", "steps": 1}]
    got = rows(q.admin, "SELECT identity_id FROM IdentityInfo "
                        "WHERE json_extract(tags, '$[0]') = 'staff'")
    assert got == [{"identity_id": b.identity_id}]
    n = rows(q.admin, "SELECT count(*) AS n FROM AuditEvents WHERE event = 'action.completed'")
    assert n == [{"n": 1}]
    got = rows(q.admin, "SELECT link_rule, linked_by, synced FROM IdentityAccounts "
                        f"WHERE username = '{a.sam}'")
    assert got == [{"link_rule": "new account", "linked_by": "sync", "synced": 0}]

    quell = QUELLD.parent.parent / "cli" / "quell"
    tok = tmp_path / "tok"
    tok.write_text(q.tokens["admin"])
    env = {"QUELL_URL": f"http://127.0.0.1:{q.port}", "QUELL_TOKEN_FILE": str(tok),
           "PATH": "/usr/bin:/bin"}
    sql = f"SELECT identity_id, username FROM IdentityAccounts WHERE username = '{b.sam}'"
    r = subprocess.run([str(quell), "hunt", sql, "--then", "disable", "--reason", "hunt"],
                       capture_output=True, text=True, env=env, timeout=60,
                       stdin=subprocess.DEVNULL, start_new_session=True)
    assert r.returncode == 5, r  # no terminal to confirm on: nothing done
    assert lab.uac(b.sam) & 2 == 0
    r = subprocess.run([str(quell), "hunt", sql, "--then", "disable", "--reason", "hunt",
                        "--yes"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and b.sam in r.stdout and "action act_" in r.stdout, r
    wait_for(lambda: lab.kinit(b.sam, b.password)[0] != 0, 30, what="kinit to fail")
    r = subprocess.run([str(quell), "hunt", "SELECT 1 AS x", "--then", "disable",
                        "--reason", "r", "--yes"], capture_output=True, text=True,
                       env=env, timeout=60)
    assert r.returncode != 0 and "identity_id" in r.stderr, r
