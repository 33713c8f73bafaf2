"""quelld migrate --from sqlite:PATH --to postgres:CONNINFO: a single node's store
copied into PostgreSQL, whose node then serves the same identities, actions, tokens
and audit chain, and goes on appending to that chain; a target already in use, a
broken source chain and malformed arguments are refused."""
import shutil
import sqlite3
import subprocess

import pytest

import conftest
from conftest import TERMINAL, postgres, wait_for


def migrate(*args):
    return subprocess.run([str(conftest.QUELLD), "migrate", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.sqlite("the source is a SQLite store")
def test_migrate_sqlite_to_postgres(lab, quelld, tmp_path):
    prefix = lab.tag + "mg"
    sams = lab.users(6, prefix, nopw=True)
    q = quelld()
    q.sync()
    api = q.api("responder")
    ids = [q.identity_of(s)["id"] for s in sams]
    for iid in ids[:4]:
        r = api.post("/api/v1/actions", {"type": "disable", "identity_id": iid,
                                         "reason": "before the move"})
        assert r.status == 201, r
    wait_for(lambda: all(a["status"] in TERMINAL
                         for a in q.api("viewer").actions_all()), 60,
             what="the actions to finish")
    before = q.admin.audit_all()
    acts = {a["id"]: a["status"] for a in q.api("viewer").actions_all()}
    q.stop()

    store, _ = postgres().new_db()
    r = migrate("--from", f"sqlite:{q.db}", "--to", f"postgres:{store}")
    assert r.returncode == 0, r.stderr
    assert f"{len(before)} entries" in r.stdout and before[-1]["hash"] in r.stdout, \
        r.stdout

    # The same again is refused: the target holds data now.
    r2 = migrate("--from", f"sqlite:{q.db}", "--to", f"postgres:{store}")
    assert r2.returncode == 1 and "already holds" in r2.stderr, r2

    # A copy of the source with one entry changed is not copied.
    bad = tmp_path / "tampered.db"
    shutil.copy(q.db, bad)
    con = sqlite3.connect(bad)
    con.execute("DROP TRIGGER audit_no_update")
    con.execute("UPDATE audit SET detail = '{}' WHERE seq = 3")
    con.commit()
    con.close()
    store2, _ = postgres().new_db()
    r3 = migrate("--from", f"sqlite:{bad}", "--to", f"postgres:{store2}")
    assert r3.returncode == 1 and "broken at entry 3" in r3.stderr, r3

    # A node on the target: the old tokens work, the chain goes on.
    p = conftest.Quelld(lab, tmp_path / "pg", store=store)
    p.tokens = q.tokens
    p.start()
    try:
        assert {a["id"]: a["status"] for a in p.api("viewer").actions_all()} == acts
        assert p.identity_of(sams[0])["id"] == ids[0]
        after = p.admin.audit_all()
        assert after[:len(before)] == before
        r = p.api("responder").post("/api/v1/actions", {
            "type": "disable", "identity_id": ids[4], "reason": "after the move"})
        assert r.status == 201, r
        wait_for(lambda: p.api("viewer").action(r.json["id"])["status"] in TERMINAL, 60,
                 what="the action on the target")
        v = p.admin.ok("GET", "/api/v1/audit/verify")
        assert v["ok"] and v["entries"] > len(before), v
    finally:
        p.kill()


def test_migrate_refusals():
    store, _ = postgres().new_db()
    for args, code, words in (
            ((), 2, "--from must be sqlite:"),
            (("--from", "sqlite:/nonexistent/q.db", "--to", f"postgres:{store}"), 2,
             "is not a database file"),
            (("--from", "x.db", "--to", f"postgres:{store}"), 2, "--from must be"),
            (("--from", "sqlite:/x", "--to", store), 2, "--to must be postgres:"),
            (("--from", "sqlite:/x", "--from", "sqlite:/y"), 2, "is given twice"),
            (("--from", "sqlite:/x", "--to", "postgres:host=db password=hunter2"), 2,
             "conninfo"),
            (("--bogus",), 2, "unknown argument")):
        r = migrate(*args)
        assert r.returncode == code and words in r.stderr, (args, r.returncode, r.stderr)
        assert "hunter2" not in r.stderr

