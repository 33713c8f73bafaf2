"""Under an AddressSanitizer build, quelld stopped cleanly reports no leak and no
memory error (issue 12, hole 8). The fixtures end quelld with SIGKILL, which never
lets LeakSanitizer run, so this test stops it with SIGTERM and reads its log. Skipped
on a build without ASan."""
import subprocess

import pytest

import conftest


def asan_build():
    out = subprocess.run(["ldd", str(conftest.QUELLD)], capture_output=True,
                         text=True).stdout
    return "libasan" in out


def test_clean_stop_leaks_nothing(quelld, make_user):
    if not asan_build():
        pytest.skip("quelld is not built with -Db_sanitize=address")
    q = quelld(start=False)
    with open(q.conf, "a") as f:
        # an action that waits for approval stays open for the cancel
        f.write('\n[approval "fpc"]\ntypes = force_password_change\nexpire_after = 1h\n')
    q.start()
    api = q.admin
    u = make_user(q, "leak")
    # what leaked before: a cancel, an action without params, an answer
    # without a body, a hunt, a 405, a refused request, a console session
    pending = q.token("leak-pend", "responder")
    api.run("disable", u.identity_id, reason="leak check")
    a = api.submit("force_password_change", u.identity_id, reason="leak check")
    assert api.action(a["id"])["status"] == "pending_approval"
    r = api.post(f"/api/v1/actions/{a['id']}/cancel", {})
    assert r.status == 200 and r.json["cancel_requested"] is True, r
    api.post("/api/v1/hunting/query", {"query": "SELECT count(*) FROM Actions"})
    api.delete("/api/v1/actions")
    api.get("/api/v1/actions", token=None)
    api.get("/api/v1/identities?q=%00x")
    api.post("/api/v1/session", {"token": pending}, token=None)
    log_at = q.log.stat().st_size
    q.stop()
    with open(q.log, "rb") as f:
        f.seek(log_at)
        tail = f.read().decode(errors="replace")
    assert "LeakSanitizer" not in tail and "AddressSanitizer" not in tail, tail[-6000:]
