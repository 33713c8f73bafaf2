"""SCIM 2.0 through the whole daemon: quelld → the SCIM emulator (SCIMMY on Express,
which validates every request itself: PatchOp messages, PUT bodies against the User
schema, filters, paging). Every test seeds its own users and syncs."""
import urllib.parse

from .cloudlib import CloudQuelld, only_step, secret_file, tag, wait_for

LIST = "GET /Users"
PATCH = "PATCH /Users/{id}"
PUT = "PUT /Users/{id}"


def users_of(t, n, hint="u", **extra):
    return [{"userName": f"{t}{hint}{i}@apps.example", "displayName": f"{t} {hint}{i}",
             "emails": [{"value": f"{t}{hint}{i}.work@mail.example", "type": "work"},
                        {"value": f"{t}{hint}{i}@mail.example", "primary": True}],
             **extra} for i in range(n)]


def seed(scim_emu, q, n=1, hint="u", system="apps", **extra):
    users = users_of(tag(), n, hint, **extra)
    for u, i in zip(users, scim_emu.seed(users)):
        u["id"] = i
    q.sync(system)
    return [(u, q.identity_by(system, "username", u["userName"])) for u in users]


def count(scim_emu, route):
    return scim_emu.stats()["routes"].get(route, 0)


def list_requests(scim_emu, since):
    return [r for r in scim_emu.stats()["requests"][since:] if r["route"] == LIST]


def test_sync_pages_by_start_index(scim_emu, scim):
    t = tag()
    users = users_of(t, 23, "p")
    ids = scim_emu.seed(users)
    total = scim_emu.stats()["users"]
    scim_emu.config(max_count=4)  # the server sends 4 a page whatever quell asks
    try:
        mark = len(scim_emu.stats()["requests"])
        rep = scim.sync("apps", full=True)
    finally:
        scim_emu.config(max_count=0)
    assert rep["error"] is None and rep["accounts_seen"] == total, rep
    starts = [int(r["query"]["startIndex"]) for r in list_requests(scim_emu, mark)]
    assert starts == list(range(1, total + 1, 4)), starts
    for i in (0, 22):
        a = scim.account_of(scim.identity_by("apps", "username", users[i]["userName"]),
                            "apps")
        assert a["kind"] == "scim" and a["external_id"] == ids[i], a
        assert a["email"] == f"{t}p{i}@mail.example", a  # the primary one, not the first
        assert a["display_name"] == f"{t} p{i}" and a["state"] == "enabled", a


def test_disable_twice_then_enable(scim_emu, scim):
    ((u, idn),) = seed(scim_emu, scim, hint="dis")
    a = scim.run("disable", idn["id"])
    s = only_step(a)
    assert a["status"] == "completed" and s["status"] == "succeeded", a
    assert s["message"] == "disabled", s
    assert scim_emu.user(u["id"])["active"] is False
    writes = count(scim_emu, PATCH)
    a = scim.run("disable", idn["id"])
    s = only_step(a)
    assert a["status"] == "completed" and s["message"] == "already inactive", a
    assert count(scim_emu, PATCH) == writes, "an already inactive user was written"
    a = scim.run("enable", idn["id"])
    assert a["status"] == "completed" and only_step(a)["message"] == "enabled", a
    assert scim_emu.user(u["id"])["active"] is True


def test_deactivate_needs_confirmation_and_deletes(scim_emu, scim):
    ((u, idn),) = seed(scim_emu, scim, hint="del")
    r = scim.admin.post("/api/v1/actions", {"type": "deactivate", "identity_id": idn["id"],
                                            "reason": "e2e"})
    assert r.status == 400 and r.error["field"] == "confirm_destructive", r
    scim_emu.user(u["id"])  # still there
    a = scim.run("deactivate", idn["id"], confirm_destructive=True)
    s = only_step(a)
    assert a["status"] == "completed" and s["message"] == "deleted", a
    scim_emu.user(u["id"], want=(404,))
    a = scim.run("deactivate", idn["id"], confirm_destructive=True)
    s = only_step(a)
    assert a["status"] == "completed", a
    assert s["message"].startswith("already deactivated"), s
    a = scim.run("disable", idn["id"])
    s = only_step(a)
    assert a["status"] == "failed" and s["message"] == "account not found on the SCIM server", a


def test_scim_errors_become_step_messages(scim_emu, scim):
    ((u, idn),) = seed(scim_emu, scim, hint="err")
    scim_emu.fault(method="PATCH", route=PATCH, status=400, scimType="invalidValue",
                   detail="active cannot change for this user")
    a = scim.run("disable", idn["id"])
    s = only_step(a)
    assert a["status"] == "failed" and s["attempts"] == 1, a
    assert s["error_code"] == "invalidValue", s
    assert s["message"] == ("SCIM server refused: invalidValue: active cannot change for "
                            "this user"), s
    scim_emu.fault(method="PATCH", route=PATCH, status=503, detail="maintenance",
                   retry_after=1)
    a = scim.run("disable", idn["id"])
    s = only_step(a)
    assert a["status"] == "completed" and s["attempts"] == 2, a
    assert scim_emu.user(u["id"])["active"] is False
    scim_emu.fault(method="GET", route="GET /Users/{id}", status=403,
                   detail="this token may not read users")
    a = scim.run("enable", idn["id"])
    s = only_step(a)
    assert a["status"] == "failed" and s["attempts"] == 1, a
    assert s["message"] == ("the SCIM server does not let quell do this (HTTP 403): "
                            "this token may not read users"), s


def test_wrong_token_is_a_clear_permanent_failure(scim_emu, scim, cloud_dir):
    ((u, idn),) = seed(scim_emu, scim, hint="tok")
    d = cloud_dir / f"quelld-scim-bad-{tag()}"
    d.mkdir()
    bad = secret_file(d, "bad.token", "not-the-token")
    q = CloudQuelld(d, {"apps": scim_emu.system(d, token_file=bad)})
    try:
        q.start()
        r = q.admin.request("POST", "/api/v1/sync/apps")
        assert r.status == 202, r

        def failed():
            st = [s for s in q.admin.request("GET", "/api/v1/sync").json["systems"]
                  if s["system"] == "apps"]
            return st[0] if st and st[0]["error"] else None
        st = wait_for(failed, 30, 0.1, what="the sync to fail")
        assert "refused quell's credentials (HTTP 401)" in st["error"], st
    finally:
        q.stop()


def test_put_when_the_server_takes_no_patch(scim_emu, scim, cloud_dir):
    pairs = seed(scim_emu, scim, 2, hint="put")
    d = cloud_dir / f"quelld-scim-put-{tag()}"
    d.mkdir()
    q = CloudQuelld(d, {"apps": scim_emu.system(d, disable_method="put")})
    scim_emu.config(patch=False)
    try:
        a = scim.run("disable", pairs[0][1]["id"])
        s = only_step(a)
        assert a["status"] == "failed", a
        assert "set disable_method = put" in s["message"], s
        q.start()
        q.sync("apps")
        (u, _) = pairs[1]
        idn = q.identity_by("apps", "username", u["userName"])
        puts = count(scim_emu, PUT)
        a = q.run("disable", idn["id"])
        assert a["status"] == "completed" and only_step(a)["message"] == "disabled", a
        assert count(scim_emu, PUT) == puts + 1
        got = scim_emu.user(u["id"])
        assert got["active"] is False and got["emails"] == u["emails"], got
    finally:
        scim_emu.config(patch=True)
        q.stop()


def test_incremental_sync_by_last_modified(scim_emu, scim):
    pairs = seed(scim_emu, scim, 3, hint="inc")
    scim.sync("apps")  # nothing changed since: the cursor is the newest lastModified
    (u, _) = pairs[1]
    scim_emu.emu.ctl("PATCH", f"/users/{u['id']}", {"displayName": "Renamed Elsewhere"})
    mark = len(scim_emu.stats()["requests"])
    rep = scim.sync("apps")
    assert rep["mode"] == "incremental" and rep["accounts_seen"] == 1, rep
    (req,) = list_requests(scim_emu, mark)
    assert req["query"]["filter"].startswith('meta.lastModified gt "'), req
    a = scim.account_of(scim.identity_by("apps", "username", u["userName"]), "apps")
    assert a["display_name"] == "Renamed Elsewhere", a
    # a server that does not filter (ServiceProviderConfig) is listed in full
    scim_emu.config(filter=False)
    try:
        mark = len(scim_emu.stats()["requests"])
        rep = scim.sync("apps")
    finally:
        scim_emu.config(filter=True)
    assert rep["accounts_seen"] == scim_emu.stats()["users"], rep
    reqs = list_requests(scim_emu, mark)
    assert reqs and all("filter" not in r["query"] for r in reqs), reqs


def test_oauth_client_credentials(scim_emu, cloud_dir):
    d = cloud_dir / f"quelld-scim-oauth-{tag()}"
    d.mkdir()
    client, secret = f"quell-{tag()}", "s3cret+/=&x"
    scim_emu.emu.ctl("POST", "/clients", {"client_id": client, "secret": secret})
    sys = scim_emu.system(d)
    del sys["token_file"]
    sys.update(token_url=f"{scim_emu.emu.url}/oauth/token", client_id=client,
               client_secret_file=secret_file(d, "client.secret", secret))
    q = CloudQuelld(d, {"apps": sys})
    try:
        q.start()
        issued = scim_emu.stats()["tokens_issued"]
        ((u, idn),) = seed(scim_emu, q, hint="oa")
        a = q.run("disable", idn["id"])
        assert a["status"] == "completed", a
        assert scim_emu.user(u["id"])["active"] is False
        assert scim_emu.stats()["tokens_issued"] == issued + 1  # cached, not per request
    finally:
        q.stop()


def test_correlates_with_okta_by_email(scim_emu, okta_emu, cloud_dir):
    d = cloud_dir / f"quelld-scim-okta-{tag()}"
    d.mkdir()
    t = tag()
    okta_emu.seed([{"login": f"{t}o@okta.example", "email": f"{t}@mail.example",
                    "firstName": t, "lastName": "O"}])
    scim_emu.seed([{"userName": f"{t}-app", "emails": [{"value": f"{t}@mail.example",
                                                        "primary": True}]}])
    q = CloudQuelld(d, {"okta": okta_emu.system(d), "apps": scim_emu.system(d)})
    try:
        q.start()
        q.sync("okta")
        q.sync("apps")
        idn = q.identity_by("apps", "username", f"{t}-app")
        assert sorted(a["system"] for a in idn["accounts"]) == ["apps", "okta"], idn
        assert q.account_of(idn, "apps")["link_rule"] == "scim", idn
        a = q.run("disable", idn["id"])
        assert a["status"] == "completed" and len(a["steps"]) == 2, a
    finally:
        q.stop()


def test_correlates_with_ad_by_upn(scim_emu, cloud_dir, lab):
    t = tag()
    (sam,) = lab.users(1, t, nopw=True)
    upn = f"{sam}@quell.test"
    scim_emu.seed([{"userName": upn, "active": True}])
    d = cloud_dir / f"quelld-scim-ad-{t}"
    d.mkdir()
    corp = {"kind": "ad", "url": lab.url, "ca_file": lab.ca, "base_dn": lab.base_dn,
            "bind_dn": lab.bind_dn, "password_file": lab.pw_file, "max_concurrency": 2}
    q = CloudQuelld(d, {"corp": corp, "apps": scim_emu.system(d)})
    try:
        q.start()
        q.sync("corp")
        q.sync("apps")
        idn = q.identity_by("apps", "username", upn)
        assert sorted(a["system"] for a in idn["accounts"]) == ["apps", "corp"], idn
        assert q.account_of(idn, "corp")["upn"] == upn
        q_ = urllib.parse.quote(upn)
        assert q.admin.ok("GET", f"/api/v1/identities?q={q_}")["identities"][0]["id"] == \
            idn["id"]
    finally:
        q.stop()
