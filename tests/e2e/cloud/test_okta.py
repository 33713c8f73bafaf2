"""Okta through the whole daemon: quelld (SSWS API token) → Prism (Okta remediation
subset) → the Okta emulator. Every test seeds its own users and syncs."""

import secrets
import subprocess

import pytest

import conftest as base

from .cloudlib import CloudQuelld, no_contract_errors, only_step, tag, wait_for

LIST = "GET /api/v1/users"
SUSPEND = "POST /api/v1/users/{id}/lifecycle/suspend"
DEACTIVATE = "POST /api/v1/users/{id}/lifecycle/deactivate"
NOT_SUSPENDABLE = ("RECOVERY", "PASSWORD_EXPIRED", "LOCKED_OUT")


def cannot_suspend(status):
    return (f"Okta cannot suspend a user in {status} (only ACTIVE users): "
            "revoke sessions or deactivate instead")


def route_count(okta_emu, route):
    return okta_emu.stats()["routes"].get(route, {}).get("count", 0)


def seed(okta_emu, okta, n=1, hint="u", sync=True, **props):
    t = tag()
    users = [{"login": f"{t}{hint}{i}@okta.example", "email": f"{t}{hint}{i}@mail.example",
              "firstName": t, "lastName": f"{hint}{i}", **props} for i in range(n)]
    ids = okta_emu.seed(users)
    for u, i in zip(users, ids):
        u["id"] = i
    if not sync:
        return users
    okta.sync()
    return [(u, okta.identity_by("cloud", "username", u["login"])) for u in users]


def test_sync_imports_with_paging(okta_emu, okta):
    t = tag()
    n = 250  # more than one page of 200
    users = [{"login": f"{t}p{i:03d}@okta.example", "email": f"{t}p{i:03d}@mail.example",
              "firstName": f"{t}", "lastName": f"P{i}"} for i in range(n)]
    ids = okta_emu.seed(users)
    before = okta_emu.stats()["routes"].get(LIST, {}).get("count", 0)
    rep = okta.sync()
    assert rep["accounts_seen"] >= n and rep["accounts_new"] >= n, rep
    assert okta_emu.stats()["routes"][LIST]["count"] - before >= 2
    for i in (0, n - 1):
        idn = okta.identity_by("cloud", "username", users[i]["login"])
        a = okta.account_of(idn, "cloud")
        assert a["kind"] == "okta" and a["external_id"] == ids[i], a
        assert a["email"] == users[i]["email"]
        assert a["synced"] is False


def test_suspend_twice_then_unsuspend(okta_emu, okta):
    ((u, idn),) = seed(okta_emu, okta, hint="sus")
    a = okta.run("disable", idn["id"])
    s = only_step(a)
    assert a["status"] == "completed" and s["status"] == "succeeded", a
    assert okta_emu.user(u["id"])["status"] == "SUSPENDED"
    assert s["request_id"], s
    a = okta.run("disable", idn["id"])
    s = only_step(a)
    assert a["status"] == "completed" and s["status"] == "succeeded", a
    assert s["message"] == "already suspended", s
    a = okta.run("enable", idn["id"])
    assert a["status"] == "completed", a
    assert okta_emu.user(u["id"])["status"] == "ACTIVE"


def test_deactivate_needs_confirmation(okta_emu, okta):
    ((u, idn),) = seed(okta_emu, okta, hint="dea")
    r = okta.admin.post("/api/v1/actions", {"type": "deactivate", "identity_id": idn["id"],
                                            "reason": "e2e"})
    assert r.status == 400, r
    assert r.error["field"] == "confirm_destructive", r
    assert "confirm_destructive" in r.error["message"]
    assert okta_emu.user(u["id"])["status"] == "ACTIVE"
    a = okta.run("deactivate", idn["id"], confirm_destructive=True)
    assert a["status"] == "completed", a
    wait_for(lambda: okta_emu.user(u["id"])["status"] == "DEPROVISIONED", 10,
             what="DEPROVISIONED")
    # suspending a deprovisioned user fails and names the status
    a = okta.run("disable", idn["id"])
    s = only_step(a)
    assert a["status"] == "failed" and s["status"] == "failed", a
    assert "DEPROVISIONED" in s["message"], s
    assert s["attempts"] == 1
    # deactivating it again: already done, and no deactivation is sent
    before = route_count(okta_emu, DEACTIVATE)
    a = okta.run("deactivate", idn["id"], confirm_destructive=True)
    s = only_step(a)
    assert a["status"] == "completed" and s["status"] == "succeeded", a
    assert s["message"] == "already deactivated", s
    assert route_count(okta_emu, DEACTIVATE) == before


def test_not_suspendable_states(okta_emu, okta):
    """Okta suspends only ACTIVE users: the preview warns from the synced state, the
    step fails once naming the state and what to do instead, and nothing changes;
    revoking the sessions still works."""
    pairs = []
    for st in NOT_SUSPENDABLE:
        pairs += seed(okta_emu, okta, hint=st[:3].lower(), sync=False, status=st)
    okta.sync()
    pairs = [(u, okta.identity_by("cloud", "username", u["login"])) for u in pairs]
    for (u, idn), st in zip(pairs, NOT_SUSPENDABLE):
        assert okta.account_of(idn, "cloud")["state"] == st.lower(), idn
        before = route_count(okta_emu, SUSPEND)
        pv = okta.admin.ok("POST", "/api/v1/actions", {
            "type": "disable", "identity_id": idn["id"], "reason": "e2e",
            "preview": True})
        s = only_step(pv)
        assert s["status"] == "queued" and s["message"] == cannot_suspend(st), pv
        assert route_count(okta_emu, SUSPEND) == before  # a preview sends nothing
        a = okta.run("disable", idn["id"])
        s = only_step(a)
        assert a["status"] == "failed" and s["status"] == "failed", a
        assert s["message"] == cannot_suspend(st) and s["error_code"] == "E0000001", s
        assert s["attempts"] == 1, s
        assert okta_emu.user(u["id"])["status"] == st
        revs = okta_emu.user(u["id"])["sessions_revocations"]
        a = okta.run("revoke_sessions", idn["id"])
        assert a["status"] == "completed", a
        assert okta_emu.user(u["id"])["sessions_revocations"] == revs + 1
    # an ACTIVE user's preview carries no warning
    ((_, idn),) = seed(okta_emu, okta, hint="act")
    pv = okta.admin.ok("POST", "/api/v1/actions", {
        "type": "disable", "identity_id": idn["id"], "reason": "e2e", "preview": True})
    assert only_step(pv)["message"] is None, pv


def test_cli_preview_warns(okta_emu, okta, tmp_path):
    ((u, idn),) = seed(okta_emu, okta, hint="clr", status="RECOVERY")
    quell = base.QUELLD.parent.parent / "cli" / "quell"
    tok = tmp_path / "tok"
    tok.write_text(okta.admin_token)
    env = {"QUELL_URL": f"http://127.0.0.1:{okta.port}", "QUELL_TOKEN_FILE": str(tok),
           "PATH": "/usr/bin:/bin"}
    r = subprocess.run([str(quell), "disable", idn["id"], "--reason", "e2e"],
                       capture_output=True, text=True, env=env, timeout=60,
                       stdin=subprocess.DEVNULL, start_new_session=True)
    assert r.returncode == 5, r  # no terminal to confirm on: nothing done
    # the preview's plan for the account, before any confirmation
    assert "will be refused: " + cannot_suspend("RECOVERY") in r.stdout, r
    assert okta_emu.user(u["id"])["status"] == "RECOVERY"


def test_contain_still_revokes(okta_emu, cloud_dir):
    """Automatic attack disruption's contain (disable and revoke_sessions) on a user in
    RECOVERY: the disable fails naming the state, the sessions are revoked."""
    d = cloud_dir / f"quelld-contain-{tag()}"
    d.mkdir()
    q = CloudQuelld(d, {"cloud": okta_emu.system(d)})
    with open(q.conf, "a") as f:
        f.write('\n[disruption "contain"]\ncategories = credential_theft\n'
                "actions = contain\n")
    detector = q.token("okta-detector", "detector")
    try:
        q.start()
        ((u, idn),) = seed(okta_emu, q, hint="con", status="RECOVERY")
        revs = okta_emu.user(u["id"])["sessions_revocations"]
        r = q.admin.as_(detector).post("/api/v1/alerts", {
            "id": "a-" + secrets.token_hex(6), "source": "e2e",
            "time": "2026-11-25T08:00:00Z", "title": "Token theft",
            "category": "credential_theft", "severity": "high", "confidence": 90,
            "entities": {"accounts": [{"okta_id": u["id"]}]}})
        assert r.status == 201, r
        assert r.json["decisions"][0]["outcome"] == "contained", r.json
        got = {x["type"]: q.admin.wait_terminal(x["id"], 30) for x in r.json["actions"]}
    finally:
        q.stop()
    assert set(got) == {"disable", "revoke_sessions"}, got
    s = only_step(got["disable"])
    assert got["disable"]["status"] == "failed" and s["message"] == cannot_suspend(
        "RECOVERY"), got["disable"]
    assert got["revoke_sessions"]["status"] == "completed", got["revoke_sessions"]
    assert okta_emu.user(u["id"])["sessions_revocations"] == revs + 1
    assert okta_emu.user(u["id"])["status"] == "RECOVERY"


def test_revoke_sessions(okta_emu, okta):
    ((u, idn),) = seed(okta_emu, okta, hint="rev")
    before = okta_emu.user(u["id"])["sessions_revocations"]
    a = okta.run("revoke_sessions", idn["id"])
    assert a["status"] == "completed", a
    st = okta_emu.user(u["id"])
    assert st["sessions_revocations"] == before + 1, st
    assert st["oauth_tokens_revoked"], st


def test_set_risk(okta_emu, okta):
    ((u, idn),) = seed(okta_emu, okta, hint="rsk")
    a = okta.run("set_risk", idn["id"], params={"risk_level": "HIGH"})
    assert a["status"] == "completed", a
    assert okta_emu.user(u["id"])["riskLevel"] == "HIGH"
    okta_emu.emu.ctl("PUT", "/config", {"risk_scoring": False})
    try:
        a = okta.run("set_risk", idn["id"], params={"risk_level": "MEDIUM"})
    finally:
        okta_emu.emu.ctl("PUT", "/config", {"risk_scoring": True})
    s = only_step(a)
    assert a["status"] == "failed" and s["status"] == "failed", a
    assert s["message"] == "Risk Scoring is not enabled in this Okta org", s
    assert s["attempts"] == 1
    assert okta_emu.user(u["id"])["riskLevel"] == "HIGH"


def test_undo_set_risk_restores_the_level_read_before(okta_emu, okta):
    """set_risk reads the level before changing it and says so in its message; the undo
    is a set_risk with params.undo that puts that level back."""
    ((u, idn),) = seed(okta_emu, okta, hint="urk", riskLevel="LOW")
    a = okta.run("set_risk", idn["id"], params={"risk_level": "HIGH"})
    assert a["status"] == "completed", a
    assert only_step(a)["message"] == "risk level set to HIGH (was LOW)", a
    assert okta_emu.user(u["id"])["riskLevel"] == "HIGH"
    r = okta.admin.post(f"/api/v1/actions/{a['id']}/undo", {"reason": "false positive"})
    assert r.status == 201, r
    undo = okta.admin.wait_terminal(r.json["id"])
    assert undo["type"] == "set_risk" and undo["undo_of"] == a["id"], undo
    acct = only_step(a)["account_id"]
    assert undo["params"] == {"undo": True, "risk_level_before": {acct: "LOW"}}, undo
    assert undo["status"] == "completed", undo
    assert only_step(undo)["message"] == "risk level set to LOW (was HIGH)", undo
    assert okta_emu.user(u["id"])["riskLevel"] == "LOW"


def test_undo_refused_without_an_inverse(okta_emu, okta):
    """No level before (Okta cannot clear one), deactivation and a forced change on Okta
    have no undo, each refused with its reason."""
    ((u, idn),) = seed(okta_emu, okta, hint="urn")
    a = okta.run("set_risk", idn["id"], params={"risk_level": "MEDIUM"})
    assert only_step(a)["message"] == "risk level set to MEDIUM (was NONE)", a
    r = okta.admin.post(f"/api/v1/actions/{a['id']}/undo", {"reason": "x"})
    assert r.status == 400 and "had no risk level before" in r.error["message"], r
    fpc = okta.run("force_password_change", idn["id"])
    assert fpc["status"] == "completed", fpc
    r = okta.admin.post(f"/api/v1/actions/{fpc['id']}/undo", {"reason": "x"})
    assert r.status == 201, r
    undo = okta.admin.wait_terminal(r.json["id"])
    assert undo["status"] == "failed", undo
    assert "Okta cannot undo force_password_change" in only_step(undo)["message"], undo
    assert okta_emu.user(u["id"])["status"] == "PASSWORD_EXPIRED"
    dea = okta.run("deactivate", idn["id"], confirm_destructive=True)
    assert dea["status"] == "completed", dea
    r = okta.admin.post(f"/api/v1/actions/{dea['id']}/undo", {"reason": "x"})
    assert r.status == 400, r
    assert "Okta deactivation cannot be undone" in r.error["message"], r


def test_force_password_change(okta_emu, okta):
    ((u, idn),) = seed(okta_emu, okta, hint="pwd")
    a = okta.run("force_password_change", idn["id"])
    assert a["status"] == "completed", a
    assert okta_emu.user(u["id"])["status"] == "PASSWORD_EXPIRED"


@pytest.mark.single_node("X-Rate-Limit-* pacing is each node's own: two nodes share a "
                         "vendor's budget by shared_rate (test_pg_rate)")
def test_rate_limited_burst(okta_emu, cloud_dir):
    """A burst through a small bucket (12 requests per 3 s): quell paces by the
    X-Rate-Limit-* headers and meets at most one 429 (the emulator's counter) while every
    action completes. A quelld of its own, started after the limit is set, so that no
    provider carries a window learned under the default limit (Okta never changes a
    bucket's limit mid-window; the emulator's control API does)."""
    n = 30
    d = cloud_dir / f"quelld-rl-{tag()}"
    d.mkdir()
    okta_emu.emu.ctl("PUT", "/config", {"rate_limit": 12, "rate_window_s": 3})
    q = CloudQuelld(d, {"cloud": okta_emu.system(d)})
    try:
        q.start()
        pairs = seed(okta_emu, q, n, hint="rl")
        base = okta_emu.stats()["rate_limited"]
        aids = [q.admin.submit("disable", idn["id"])["id"] for _, idn in pairs]
        done = [q.admin.wait_terminal(aid, 60) for aid in aids]
        limited = okta_emu.stats()["rate_limited"] - base
    finally:
        q.stop()
        okta_emu.emu.ctl("PUT", "/config", {"rate_limit": 600, "rate_window_s": 60})
    for a in done:
        no_contract_errors(a)
        assert a["status"] == "completed", a
    for u, _ in pairs:
        assert okta_emu.user(u["id"])["status"] == "SUSPENDED"
    assert limited <= 1, f"{limited} 429s for a burst of {n}"
