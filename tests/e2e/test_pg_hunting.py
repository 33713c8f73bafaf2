"""Advanced hunting on PostgreSQL, through two nodes on one database: the documented
views answer from either node; writes, DDL, files, settings, dblink, COPY, the
catalogs and sleeps are refused, and a runaway query is stopped at the time limit."""
import re
import time

from conftest import postgres

LIMIT_MS = 5000


def two_nodes(quelld):
    store, _ = postgres().new_db()
    return [quelld(name=f"h{x}", store=store, server={"node_id": f"h{x}"}) for x in "ab"]


def hunt(api, query, limit=None):
    body = {"query": query}
    if limit is not None:
        body["limit"] = limit
    return api.post("/api/v1/hunting/query", body)


def test_hunting_on_postgres(lab, quelld, make_user):
    a, b = two_nodes(quelld)
    u = make_user(a, "phu")
    a.admin.run("disable", u.identity_id)
    r = hunt(b.admin, "SELECT i.identity_id, a.username, t.status, count(s.step_id) AS steps"
                      " FROM IdentityInfo i JOIN IdentityAccounts a USING (identity_id)"
                      " JOIN Actions t ON t.identity_id = i.identity_id"
                      " JOIN ActionSteps s USING (action_id)"
                      f" WHERE a.username = '{u.sam}' GROUP BY 1, 2, 3")
    assert r.status == 200, r
    assert r.json["columns"] == ["identity_id", "username", "status", "steps"]
    assert r.json["rows"] == [[u.identity_id, u.sam, "completed", 1]], r.json
    r = hunt(a.admin, "SELECT time, event FROM AuditEvents WHERE event = "
                      "'action.completed'")
    assert r.status == 200 and len(r.json["rows"]) == 1, r
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r.json["rows"][0][0])

    refused = [
        "DELETE FROM Actions",
        "UPDATE AuditEvents SET actor = 'x'",
        "CREATE TABLE x (a int)",
        "DROP VIEW Actions",
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT set_config('statement_timeout', '0', false)",
        "SELECT * FROM dblink('dbname=postgres', 'SELECT 1') AS t(a int)",
        "COPY (SELECT 1) TO '/tmp/quell-hunt'",
        "SELECT pg_sleep(30)",
        "SELECT hash FROM tokens",
        "SELECT hash FROM public.tokens",
        "SELECT * FROM pg_shadow",
        "SELECT 1; SELECT 2",
        "BEGIN",
    ]
    for sql in refused:
        r = hunt(b.admin, sql)
        assert r.status == 400 and r.error["field"] == "query", (sql, r)
    r = hunt(a.admin, "SELECT pg_read_file('/etc/passwd')")
    assert "pg_read_file" in r.error["message"], r

    t0 = time.monotonic()
    r = hunt(a.admin, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
                      "SELECT count(*) FROM c")
    took = time.monotonic() - t0
    assert r.status == 400, r
    assert r.error["message"] == (f"query stopped: it ran longer than {LIMIT_MS} ms "
                                  "(simplify it, or add a LIMIT)"), r
    assert LIMIT_MS / 1000 <= took < 2 * LIMIT_MS / 1000, took
    r = hunt(b.admin, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
                      "WHERE x < 500) SELECT x FROM c", limit=10)
    assert r.status == 200 and len(r.json["rows"]) == 10 and r.json["truncated"], r
    assert [e for e in b.admin.audit_all() if e["event"] == "hunting.query"]
