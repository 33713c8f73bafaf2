"""Actions against the real Samba AD DC, checked through Kerberos and LDAP."""
from conftest import UAC_DISABLE, UAC_DONT_EXPIRE


def only_step(action):
    assert len(action["steps"]) == 1, action
    return action["steps"][0]


def assert_kinit_ok(lab, user):
    rc, out = lab.kinit(user.sam, user.password)
    assert rc == 0, f"kinit {user.sam} should work: {out}"


def assert_kinit_revoked(lab, user):
    rc, out = lab.kinit(user.sam, user.password)
    assert rc != 0 and "revoked" in out.lower(), f"kinit {user.sam}: {out}"


def assert_kinit_expired(lab, user):
    rc, out = lab.kinit(user.sam, user.password)
    assert rc != 0 and "expired" in out.lower(), f"kinit {user.sam}: {out}"


def test_disable_enable(lab, quelld, make_user):
    q = quelld()
    api = q.api("responder")
    # extra bits that must survive: PASSWD_NOTREQD (0x20) and NOT_DELEGATED (0x100000)
    u = make_user(q, "dis", uac=512 | 0x20 | 0x100000)
    assert_kinit_ok(lab, u)
    before = lab.uac(u.sam)
    assert before & UAC_DISABLE == 0

    a = api.run("disable", u.identity_id)
    assert a["status"] == "completed", a
    s = only_step(a)
    assert s["status"] == "succeeded" and s["attempts"] == 1, s
    assert s["account_id"] == u.account_id and s["system"] == "corp"
    after = lab.uac(u.sam)
    assert after == before | UAC_DISABLE, (hex(before), hex(after))
    assert_kinit_revoked(lab, u)
    acct = q.identity_of(u.sam)["accounts"][0]
    assert acct["state"] == "disabled"

    again = api.run("disable", u.identity_id)
    assert again["status"] == "completed", again
    s = only_step(again)
    assert s["status"] == "succeeded" and "already disabled" in (s["message"] or ""), s
    assert lab.uac(u.sam) == after

    en = api.run("enable", u.identity_id, account_id=u.account_id)
    assert en["status"] == "completed", en
    assert only_step(en)["status"] == "succeeded"
    assert lab.uac(u.sam) == before
    assert_kinit_ok(lab, u)

    # the audit log tells the story, and still verifies
    events = [e["event"] for e in q.admin.audit_all() if e["action_id"] == a["id"]]
    for ev in ("action.requested", "step.started", "step.succeeded", "action.completed"):
        assert ev in events, events
    assert q.admin.ok("GET", "/api/v1/audit/verify")["ok"] is True


def test_force_password_change(lab, quelld, make_user):
    q = quelld()
    api = q.api("responder")
    u = make_user(q, "fpc")
    assert_kinit_ok(lab, u)
    before = lab.uac(u.sam)
    a = api.run("force_password_change", u.identity_id)
    assert a["status"] == "completed", a
    assert only_step(a)["status"] == "succeeded"
    assert_kinit_expired(lab, u)
    assert lab.uac(u.sam) == before  # pwdLastSet only

    # password never expires: refused, clearly, and nothing written
    v = make_user(q, "dxp", uac=66048)
    assert lab.uac(v.sam) == 0x10200
    f = api.run("force_password_change", v.identity_id)
    assert f["status"] == "failed", f
    s = only_step(f)
    assert s["status"] == "failed" and s["attempts"] == 1, s
    msg = (s["message"] or "").lower()
    assert "never expires" in msg and "clear_dont_expire" in msg, s
    assert lab.uac(v.sam) == 0x10200
    assert_kinit_ok(lab, v)

    ok = api.run("force_password_change", v.identity_id, params={"clear_dont_expire": True})
    assert ok["status"] == "completed", ok
    assert ok["params"] == {"clear_dont_expire": True}
    assert only_step(ok)["status"] == "succeeded"
    assert lab.uac(v.sam) == 0x10200 & ~UAC_DONT_EXPIRE
    assert_kinit_expired(lab, v)


def pwd_last_set(lab, sam):
    (e,) = lab.search(f"(sAMAccountName={sam})", ("pwdLastSet",)).values()
    return int(e["pwdlastset"][0])


def reset_password(lab, sam, password):
    """An administrator's reset over LDAPS: the password is changed, pwdLastSet is now."""
    import base64
    (dn,) = lab.search(f"(sAMAccountName={sam})", ("1.1",)).keys()
    pw = base64.b64encode(f'"{password}"'.encode("utf-16-le")).decode()
    lab.modify(f"dn: {dn}\nchangetype: modify\nreplace: unicodePwd\nunicodePwd:: {pw}\n")


def test_undo_force_password_change(lab, quelld, make_user):
    """The undo is a force_password_change with params.undo: pwdLastSet 0 is swapped for
    -1 and kinit works again with the old password, no change asked; once the password
    was changed, the undo fails and says why, and pwdLastSet stays as the user left it."""
    q = quelld()
    api = q.api("responder")
    u = make_user(q, "ufp")
    a = api.run("force_password_change", u.identity_id)
    assert a["status"] == "completed", a
    assert pwd_last_set(lab, u.sam) == 0
    assert_kinit_expired(lab, u)
    r = api.post(f"/api/v1/actions/{a['id']}/undo", {"reason": "false positive"})
    assert r.status == 201, r
    undo = api.wait_terminal(r.json["id"])
    assert undo["type"] == "force_password_change" and undo["undo_of"] == a["id"], undo
    assert undo["params"] == {"undo": True}, undo
    assert undo["status"] == "completed", undo
    assert "no longer has to be changed" in only_step(undo)["message"], undo
    assert pwd_last_set(lab, u.sam) > 0
    assert_kinit_ok(lab, u)

    v = make_user(q, "ufq")
    b = api.run("force_password_change", v.identity_id)
    assert b["status"] == "completed", b
    reset_password(lab, v.sam, v.password + "x")
    changed = pwd_last_set(lab, v.sam)
    assert changed > 0
    r = api.post(f"/api/v1/actions/{b['id']}/undo", {"reason": "false positive"})
    assert r.status == 201, r
    undo = api.wait_terminal(r.json["id"])
    s = only_step(undo)
    assert undo["status"] == "failed" and s["attempts"] == 1, undo
    assert s["message"] == "the password was changed since: nothing to undo", s
    assert pwd_last_set(lab, v.sam) == changed


def test_hostile_cn(lab, quelld, make_user):
    q = quelld()
    api = q.api("responder")
    cn = 'Zoë "Z" O\'Brien, (ops) \\ test ' + lab.tag + "ü*"
    u = make_user(q, "cn", cn=cn)
    assert u.account["display_name"] == cn
    assert u.identity["display_name"] == cn
    assert_kinit_ok(lab, u)
    before = lab.uac(u.sam)

    a = api.run("disable", u.identity_id)
    assert a["status"] == "completed", a
    assert only_step(a)["status"] == "succeeded"
    assert lab.uac(u.sam) == before | UAC_DISABLE
    assert_kinit_revoked(lab, u)

    e = api.run("enable", u.identity_id)
    assert e["status"] == "completed", e
    assert lab.uac(u.sam) == before
    assert_kinit_ok(lab, u)
