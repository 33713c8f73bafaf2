"""Entra ID through the whole daemon: quelld → Prism (Graph and token subsets) → the
Graph emulator. Every test seeds its own users (names carry a fresh tag) and syncs."""
import math

from .cloudlib import CloudQuelld, no_contract_errors, only_step, tag, wait_for

PATCH = "PATCH /v1.0/users/{id}"
REVOKE = "POST /v1.0/users/{id}/revokeSignInSessions"
CONFIRM = "POST /v1.0/identityProtection/riskyUsers/confirmCompromised"
DISMISS = "POST /v1.0/identityProtection/riskyUsers/dismiss"
LIST = "GET /v1.0/users"
DELTA = "GET /v1.0/users/delta"  # what a sync reads: the first round lists everyone


def seed(graph, entra, n=1, hint="u", sync=True, **props):
    """Seeds n users; returns [(graph user, identity)] after a sync of quelld."""
    t = tag()
    users = [{"userPrincipalName": f"{t}{hint}{i}@quelle2e.onmicrosoft.com",
              "displayName": f"{t} {hint} {i}", "mail": f"{t}{hint}{i}@mail.example",
              **props} for i in range(n)]
    ids = graph.seed(users)
    for u, i in zip(users, ids):
        u["id"] = i
    if not sync:
        return users
    entra.sync()
    return [(u, entra.identity_by("cloud", "upn", u["userPrincipalName"])) for u in users]


def rid_of(graph, template, user_id):
    method, _, tmpl = template.partition(" ")
    return [r["request_id"] for r in graph.stats()["recent"]
            if r["method"] == method and r["template"] == tmpl and user_id in r["path"]]


def test_sync_imports_with_paging(graph, entra):
    t = tag()
    n = 1050  # more than one page of 999
    users = [{"userPrincipalName": f"{t}p{i:04d}@quelle2e.onmicrosoft.com",
              "displayName": f"{t} page {i}", "mail": f"{t}p{i:04d}@mail.example",
              "onPremisesSyncEnabled": i % 2 == 0,
              "onPremisesSecurityIdentifier": f"S-1-5-21-1-2-3-{5000 + i}" if i % 2 == 0
              else None}
             for i in range(n)]
    ids = graph.seed(users)
    listed = lambda: sum(graph.stats()["requests"].get(k, 0) for k in (LIST, DELTA))  # noqa: E731
    before = listed()
    rep = entra.sync()
    assert rep["system"] == "cloud"
    assert rep["accounts_seen"] >= n, rep
    assert rep["accounts_new"] >= n and rep["identities_created"] >= n, rep
    pages = listed() - before
    assert pages >= 2, f"{pages} list calls for {rep['accounts_seen']} users"
    for i in (0, 1, n - 1):
        upn = users[i]["userPrincipalName"]
        idn = entra.identity_by("cloud", "upn", upn)
        a = entra.account_of(idn, "cloud")
        assert a["kind"] == "entra"
        assert a["external_id"] == ids[i]
        assert a["upn"] == upn and a["username"] == upn
        assert a["email"] == users[i]["mail"]
        assert a["synced"] is (i % 2 == 0)
        assert a["state"] == "enabled", a
    # a second sync finds nothing new
    rep2 = entra.sync()
    assert rep2["accounts_new"] == 0 and rep2["identities_created"] == 0, rep2


def test_disable_enable(graph, entra):
    ((u, idn),) = seed(graph, entra, hint="dis")
    a = entra.run("disable", idn["id"])
    s = only_step(a)
    assert a["status"] == "completed" and s["status"] == "succeeded", a
    assert graph.user(u["id"])["accountEnabled"] is False
    assert s["request_id"], s
    assert s["request_id"] in rid_of(graph, PATCH, u["id"]), \
        "the step's request id is not one Graph sent"
    assert s["attempts"] == 1
    a = entra.run("enable", idn["id"])
    assert a["status"] == "completed", a
    assert graph.user(u["id"])["accountEnabled"] is True
    # the account's state follows
    idn = entra.admin.ok("GET", f"/api/v1/identities/{idn['id']}")
    assert entra.account_of(idn, "cloud")["state"] == "enabled"


def test_disable_twice_is_success(graph, entra):
    """Disabling an account that is already disabled: Graph is still asked (the PATCH
    that says so is the step's own request) and the step succeeds."""
    ((u, idn),) = seed(graph, entra, hint="dd", accountEnabled=False)
    assert graph.user(u["id"])["accountEnabled"] is False
    assert entra.account_of(idn, "cloud")["state"] == "disabled", idn
    patches = len(rid_of(graph, PATCH, u["id"]))
    a = entra.run("disable", idn["id"])
    s = only_step(a)
    assert a["status"] == "completed" and s["status"] == "succeeded", a
    assert s["attempts"] == 1 and s["error_code"] is None, s
    sent = rid_of(graph, PATCH, u["id"])
    assert len(sent) == patches + 1 and s["request_id"] in sent, (s, sent)
    assert graph.user(u["id"])["accountEnabled"] is False
    idn = entra.admin.ok("GET", f"/api/v1/identities/{idn['id']}")
    assert entra.account_of(idn, "cloud")["state"] == "disabled", idn


def test_revoke_sessions(graph, entra):
    ((u, idn),) = seed(graph, entra, hint="rev")
    before = graph.user(u["id"])
    a = entra.run("revoke_sessions", idn["id"])
    s = only_step(a)
    assert a["status"] == "completed" and s["status"] == "succeeded", a
    after = graph.user(u["id"])
    assert after["revocations"] == (before["revocations"] or 0) + 1
    assert after["signInSessionsValidFromDateTime"]
    assert s["request_id"] in rid_of(graph, REVOKE, u["id"])


def test_mark_compromised_batched(graph, entra):
    """N identities submitted together: the engine hands ready steps of one system and
    type to execute_batch, so Graph sees ⌈N/60⌉ confirmCompromised calls. A disable whose
    PATCH is held 4 s by the emulator occupies the system (max_concurrency 1) while the
    N actions are queued, so they are all ready when the system frees up."""
    n = 70
    pairs = seed(graph, entra, n, hint="mc")
    ((blk, bidn),) = seed(graph, entra, hint="blk")
    graph.emu.ctl("POST", "/faults", {"path_regex": f"/users/{blk['id']}$",
                                      "method": "PATCH", "status": None, "count": 1,
                                      "delay_ms": 4000})
    before = graph.stats()["requests"].get(CONFIRM, 0)
    blocker = entra.admin.submit("disable", bidn["id"])
    wait_for(lambda: entra.admin.action(blocker["id"])["status"] == "running", 10,
             what="the blocker to run")
    aids = [entra.admin.submit("mark_compromised", idn["id"])["id"] for _, idn in pairs]
    still = entra.admin.action(blocker["id"])["status"]
    assert still == "running", "the blocker ended before all actions were queued"
    done = [entra.admin.wait_terminal(aid, 60) for aid in aids]
    for a in done:
        no_contract_errors(a)
        assert a["status"] == "completed", a
        assert only_step(a)["status"] == "succeeded"
    st = graph.stats()
    calls = st["requests"].get(CONFIRM, 0) - before
    assert calls == math.ceil(n / 60), (calls, st["statuses"].get(CONFIRM), [
        (r["time"], r["status"], len(r.get("user_ids") or []), r.get("retry_after")) for r in st["recent"]
        if r["template"].endswith("confirmCompromised")])
    assert calls == math.ceil(n / 60), f"{calls} confirmCompromised calls for {n} steps"
    for u, _ in pairs[:3] + pairs[-3:]:
        st = graph.user(u["id"])
        assert st["riskState"] == "confirmedCompromised" and st["riskLevel"] == "high", st
    assert entra.admin.wait_terminal(blocker["id"])["status"] == "completed"


def test_undo_mark_compromised_dismisses_the_risk(graph, entra):
    """The undo of mark_compromised is a mark_compromised with params.undo: Graph sees
    one dismiss for the user, whose risk is dismissed; revoke_sessions has no inverse,
    and the undo itself cannot be undone."""
    ((u, idn),) = seed(graph, entra, hint="umc")
    a = entra.run("mark_compromised", idn["id"])
    assert a["status"] == "completed", a
    assert graph.user(u["id"])["riskState"] == "confirmedCompromised"
    before = graph.stats()["requests"].get(DISMISS, 0)
    r = entra.admin.post(f"/api/v1/actions/{a['id']}/undo", {"reason": "false positive"})
    assert r.status == 201, r
    undo = entra.admin.wait_terminal(r.json["id"])
    no_contract_errors(undo)
    assert undo["type"] == "mark_compromised" and undo["undo_of"] == a["id"], undo
    assert undo["params"].get("undo") is True, undo
    assert undo["status"] == "completed", undo
    assert "dismissed" in only_step(undo)["message"], undo
    assert graph.stats()["requests"].get(DISMISS, 0) == before + 1
    st = graph.user(u["id"])
    assert st["riskState"] == "dismissed" and st["riskLevel"] == "none", st
    # people by name: the action, and the list, name the identity
    assert entra.admin.action(undo["id"])["identity_name"] == u["displayName"]
    page = entra.admin.ok("GET", f"/api/v1/actions?identity_id={idn['id']}")
    assert {x["identity_name"] for x in page["actions"]} == {u["displayName"]}, page
    again = entra.admin.post(f"/api/v1/actions/{undo['id']}/undo", {"reason": "x"})
    assert again.status == 400 and "itself an undo" in again.error["message"], again
    rev = entra.run("revoke_sessions", idn["id"])
    r = entra.admin.post(f"/api/v1/actions/{rev['id']}/undo", {"reason": "x"})
    assert r.status == 400 and "revoking sessions has no inverse" in r.error["message"], r


def test_privileged_target_refused_once(graph, entra):
    ((u, idn),) = seed(graph, entra, hint="adm", privileged=True)
    a = entra.run("disable", idn["id"])
    s = only_step(a)
    assert a["status"] == "failed" and s["status"] == "failed", a
    assert s["message"].startswith("refused by Entra ID: the target holds a privileged role"), s
    assert s["error_code"] == "Authorization_RequestDenied", s
    assert s["attempts"] == 1, s
    assert graph.user(u["id"])["accountEnabled"] is True


def test_synced_user_disable_warns_the_next_sync_may_undo_it(graph, entra):
    ((u, idn),) = seed(graph, entra, hint="syn", onPremisesSyncEnabled=True,
                       onPremisesSecurityIdentifier="S-1-5-21-9-9-9-1234")
    assert entra.account_of(idn, "cloud")["synced"] is True
    a = entra.run("disable", idn["id"])
    s = only_step(a)
    # immediate effect in Entra ID, with the warning that AD stays the authority
    assert a["status"] == "completed", a
    assert "synced from on-premises AD" in s["message"], s
    assert "next directory sync may undo" in s["message"], s
    assert graph.user(u["id"])["accountEnabled"] is False
    # revoking sessions still works on a synced user
    a = entra.run("revoke_sessions", idn["id"])
    assert a["status"] == "completed", a


def test_429_with_retry_after(graph, entra):
    ((u, idn),) = seed(graph, entra, hint="thr")
    graph.emu.ctl("POST", "/faults", {"path_regex": f"/users/{u['id']}$", "method": "PATCH",
                                      "status": 429, "retry_after": 1, "count": 1})
    aid = entra.admin.submit("disable", idn["id"])["id"]
    seen = set()

    def done():
        a = entra.admin.action(aid)
        seen.add(only_step(a)["status"])
        return a if a["status"] in ("completed", "failed", "partially_completed") else None
    a = wait_for(done, 30, 0.02, what="the throttled disable")
    no_contract_errors(a)
    s = only_step(a)
    assert "retry_wait" in seen, f"step states seen: {seen}"
    assert a["status"] == "completed" and s["status"] == "succeeded", a
    assert s["attempts"] == 2, s
    assert graph.user(u["id"])["accountEnabled"] is False
    audit = [e for e in entra.admin.audit_all() if e["step_id"] == s["id"]]
    waits = [e for e in audit if "retry" in e["event"]]
    assert waits, [e["event"] for e in audit]


def test_token_expired_mid_run(graph, entra):
    pairs = seed(graph, entra, 2, hint="tok")
    a = entra.run("disable", pairs[0][1]["id"])
    assert a["status"] == "completed", a
    ok_before = graph.stats()["token_requests"]["ok"]
    graph.emu.ctl("POST", "/tokens/expire")
    a = entra.run("disable", pairs[1][1]["id"])
    assert a["status"] == "completed", a
    assert graph.user(pairs[1][0]["id"])["accountEnabled"] is False
    assert graph.stats()["token_requests"]["ok"] > ok_before, "no new token was fetched"


def test_unknown_user(graph, cloud_dir):
    """An account quell knows that Entra no longer has: sync from one tenant, then point
    the same system at another tenant of the same app where the user does not exist."""
    other = "quelle2eother.onmicrosoft.com"
    graph.app(other)
    d = cloud_dir / f"quelld-unknown-{tag()}"
    d.mkdir()
    t = tag()
    (uid,) = graph.seed([{"userPrincipalName": f"{t}gone@quelle2e.onmicrosoft.com",
                          "displayName": f"{t} gone"}])
    q = CloudQuelld(d, {"cloud": graph.system(d)})
    try:
        q.start()
        q.sync()
        idn = q.identity_by("cloud", "upn", f"{t}gone@quelle2e.onmicrosoft.com")
        assert q.account_of(idn, "cloud")["external_id"] == uid
        q.restart({"cloud": graph.system(d, tenant=other)})
        a = q.run("disable", idn["id"])
        s = only_step(a)
        assert a["status"] == "failed" and s["status"] == "failed", a
        assert s["message"].startswith("account not found in Entra ID"), s
        assert s["attempts"] == 1, s
    finally:
        q.stop()


def test_two_systems_disable_touches_both(graph, cloud_dir, lab):
    """An AD identity (Samba lab) with a linked Entra account: disable runs on both."""
    d = cloud_dir / f"quelld-two-{tag()}"
    d.mkdir()
    sam = lab.name("cl")
    lab.adduser(sam)
    upn = f"{sam}@quelle2e.onmicrosoft.com"
    (uid,) = graph.seed([{"userPrincipalName": upn, "displayName": sam,
                          "onPremisesSecurityIdentifier": None}])
    corp = {"kind": "ad", "url": lab.url, "ca_file": lab.ca, "base_dn": lab.base_dn,
            "bind_dn": lab.bind_dn, "password_file": lab.pw_file, "max_concurrency": 2}
    q = CloudQuelld(d, {"corp": corp, "cloud": graph.system(d)})
    try:
        q.start()
        q.sync("corp")
        q.sync("cloud")
        ad_idn = q.identity_by("corp", "username", sam)
        cloud_idn = q.identity_by("cloud", "upn", upn)
        cloud_acct = q.account_of(cloud_idn, "cloud")
        q.admin.ok("DELETE", f"/api/v1/identities/{cloud_idn['id']}/accounts/"
                   f"{cloud_acct['id']}")
        j = q.admin.ok("POST", f"/api/v1/identities/{ad_idn['id']}/accounts",
                       {"account_id": cloud_acct["id"]})
        assert {a["system"] for a in j["accounts"]} == {"corp", "cloud"}, j
        a = q.run("disable", ad_idn["id"])
        assert a["status"] == "completed", a
        assert {s["system"]: s["status"] for s in a["steps"]} == \
            {"corp": "succeeded", "cloud": "succeeded"}, a
        assert lab.uac(sam) & 0x2, "AD account not disabled"
        assert graph.user(uid)["accountEnabled"] is False
        a = q.run("enable", ad_idn["id"])
        assert a["status"] == "completed", a
        assert not lab.uac(sam) & 0x2
        assert graph.user(uid)["accountEnabled"] is True
        # AD has no sessions to revoke: the preview says so for its account, and
        # the action does the rest
        pv = q.admin.ok("POST", "/api/v1/actions", {
            "type": "revoke_sessions", "identity_id": ad_idn["id"], "reason": "e2e",
            "preview": True})
        lines = {x["system"]: x for x in pv["preview"]["accounts"]}
        assert lines["corp"]["outcome"] == "not_supported", lines
        assert lines["corp"]["note"] == "revoke_sessions is not supported by corp (ad)"
        assert lines["cloud"]["outcome"] == "change", lines
        a = q.run("revoke_sessions", ad_idn["id"])
        assert a["status"] == "completed", a
        assert {s["system"]: s["status"] for s in a["steps"]} == \
            {"corp": "not_applicable", "cloud": "succeeded"}, a
    finally:
        q.stop()
