"""Editing or deleting audit rows in the database file is detected by verify."""
import json
import shutil

import pytest

pytestmark = pytest.mark.sqlite(
    "edits SQLite's database file behind quell's back (PostgreSQL's append-only "
    "triggers and the chain: tests/unit/store test_audit)")


def _files(db):
    return [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]


def snapshot(q, to):
    for f in _files(q.db):
        if f.exists():
            shutil.copy2(f, to / f.name)


def restore(q, frm):
    for f in _files(q.db):
        f.unlink(missing_ok=True)
        if (frm / f.name).exists():
            shutil.copy2(frm / f.name, f)


def tamper(q, sql, *args):
    db = q.db_conn()
    try:
        # what an intruder with the file does first: drop the append-only guards
        db.execute("DROP TRIGGER IF EXISTS audit_no_update")
        db.execute("DROP TRIGGER IF EXISTS audit_no_delete")
        n = db.execute(sql, args).rowcount
        db.commit()
        assert n == 1
    finally:
        db.close()


def test_tampering_detected(quelld, make_user, tmp_path):
    q = quelld()
    q.tampered = True  # the chain is broken on purpose below
    u = make_user(q, "tmp")
    api = q.api("responder")
    for t in ("disable", "enable"):
        assert api.run(t, u.identity_id)["status"] == "completed"
    v = q.admin.ok("GET", "/api/v1/audit/verify")
    assert v["ok"] is True
    n = v["entries"]
    entries = q.admin.audit_all()
    assert len(entries) == n and [e["seq"] for e in entries] == list(range(1, n + 1))
    # a row about the disable, in the middle of the chain
    target = next(e for e in entries if e["event"] == "action.requested")
    seq = target["seq"]
    assert 1 < seq < n
    q.stop()
    good = tmp_path / "good"
    good.mkdir()
    snapshot(q, good)

    # 1. the detail of one entry
    d = dict(target["detail"], reason="nothing to see here")
    tamper(q, "UPDATE audit SET detail = ? WHERE seq = ?",
           json.dumps(d, separators=(",", ":")), seq)
    q.start()
    v = q.admin.ok("GET", "/api/v1/audit/verify")
    assert v["ok"] is False and v["first_broken"] == seq, v
    assert v.get("reason"), v
    q.stop()

    # 2. the actor of one entry
    restore(q, good)
    tamper(q, "UPDATE audit SET actor = 'someone-else' WHERE seq = ?", seq)
    q.start()
    v = q.admin.ok("GET", "/api/v1/audit/verify")
    assert v["ok"] is False and v["first_broken"] == seq, v
    q.stop()

    # 3. a row deleted from the middle: the gap is named
    restore(q, good)
    tamper(q, "DELETE FROM audit WHERE seq = ?", seq)
    q.start()
    v = q.admin.ok("GET", "/api/v1/audit/verify")
    assert v["ok"] is False and v["first_broken"] == seq, v
    q.stop()

    # 4. a stored hash overwritten
    restore(q, good)
    tamper(q, "UPDATE audit SET hash = ? WHERE seq = ?", "0" * 64, seq)
    q.start()
    v = q.admin.ok("GET", "/api/v1/audit/verify")
    assert v["ok"] is False and v["first_broken"] == seq, v
    q.stop()

    # the untouched copy still verifies
    restore(q, good)
    q.start()
    v = q.admin.ok("GET", "/api/v1/audit/verify")
    assert v["ok"] is True and v["entries"] == n, v
