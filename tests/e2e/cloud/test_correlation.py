"""Inventory sync and correlation across the Samba lab (AD), the Graph emulator (Entra)
and the Okta emulator, through quelld: which accounts end up in which identity and why,
the one conflict, incremental second syncs that read only the changes, and a manual
unlink that a sync does not undo."""
import base64
import secrets
import struct
import subprocess
import time

import pytest

from .cloudlib import CloudQuelld

N_AD = 300


def sid_text(b64):
    """objectSid (binary, base64 from ldapsearch) as S-1-…."""
    raw = base64.b64decode(b64)
    auth = int.from_bytes(raw[2:8], "big")
    subs = struct.unpack("<" + "I" * raw[1], raw[8:8 + 4 * raw[1]])
    return "S-%d-%d" % (raw[0], auth) + "".join(f"-{s}" for s in subs)


@pytest.fixture
def world(graph, okta_emu, cloud_dir, lab):
    p = "c" + secrets.token_hex(3)
    tenant = f"{p}.onmicrosoft.com"
    graph.app(tenant)
    sams = lab.users(N_AD, p, nopw=True)
    ents = lab.search(f"(sAMAccountName={p}*)", ("sAMAccountName", "objectSid"))
    sids = {e["samaccountname"][0]: sid_text(e["objectsid"][0]) for e in ents.values()}
    assert len(sids) == N_AD
    d = cloud_dir / f"quelld-corr-{p}"
    d.mkdir()
    corp = {"kind": "ad", "url": lab.url, "ca_file": lab.ca, "base_dn": lab.base_dn,
            "bind_dn": lab.bind_dn, "password_file": lab.pw_file, "max_concurrency": 2}
    q = CloudQuelld(d, {"corp": corp, "cloud": graph.system(d, tenant=tenant),
                        "okta": okta_emu.system(d)})
    q.start()
    yield lab, q, p, tenant, sams, sids
    q.stop()


def identities(q, p):
    out, after = [], None
    while True:
        j = q.admin.ok("GET", f"/api/v1/identities?q={p}&limit=1000"
                       + (f"&after={after}" if after else ""))
        out += j["identities"]
        if not j["next"]:
            return out
        after = j["next"]


def by_account(idns, system, field, value):
    hits = [(i, a) for i in idns for a in i["accounts"]
            if a["system"] == system and a.get(field) == value]
    assert len(hits) == 1, f"{system} {field}={value}: {len(hits)}"
    return hits[0]


def test_sync_correlates_and_stays_incremental(graph, okta_emu, world):
    lab, q, p, tenant, sams, sids = world
    # Entra: synced copies of sams[0:50] (SID match, other UPN), sams[50:80] by UPN only,
    # and 20 cloud-only users
    cloud = [{"userPrincipalName": f"{s}@{tenant}", "displayName": s,
              "onPremisesSecurityIdentifier": sids[s], "onPremisesSyncEnabled": True}
             for s in sams[:50]]
    cloud += [{"userPrincipalName": f"{s}@quell.test", "displayName": s} for s in sams[50:80]]
    only = [{"userPrincipalName": f"{p}cl{i}@{tenant}", "displayName": f"{p} cl{i}",
             "mail": f"{p}cl{i}@mail.example"} for i in range(20)]
    eids = graph.seed(cloud + only, tenant=tenant)
    # Okta: login = AD UPN for sams[100:140]; email = a cloud-only user's mail for
    # 10; one user matching both sams[200] (login) and cl0 (email): the conflict;
    # 5 Okta-only users
    okta = [{"login": f"{s}@quell.test", "firstName": s} for s in sams[100:140]]
    okta += [{"login": f"{p}ok{i}@okta.example", "email": f"{p}cl{i}@mail.example"}
             for i in range(1, 11)]
    okta += [{"login": f"{sams[200]}@quell.test", "email": f"{p}cl0@mail.example"}]
    okta += [{"login": f"{p}solo{i}@okta.example"} for i in range(5)]
    oids = okta_emu.seed(okta)

    for system in ("corp", "cloud", "okta"):
        rep = q.sync(system)
        assert rep["mode"] == "full", rep
    idns = identities(q, p)
    assert len(idns) == N_AD + 20 + 5, len(idns)
    for k, s in enumerate(sams):
        idn, ad = by_account(idns, "corp", "username", s)
        assert ad["link_rule"] == "new account" and ad["linked_by"] == "sync", ad
        assert ad["linked_at"] and ad["state"] == "enabled", ad
        want = ("sid" if k < 50 else "upn" if k < 80 else None)
        cl = [a for a in idn["accounts"] if a["system"] == "cloud"]
        assert [a["link_rule"] for a in cl] == ([want] if want else []), (s, idn)
        ok = [a for a in idn["accounts"] if a["system"] == "okta"]
        assert [a["link_rule"] for a in ok] == (["email"] if 100 <= k < 140 else []), \
            (s, idn)
    for i in range(20):
        idn, a = by_account(idns, "cloud", "upn", f"{p}cl{i}@{tenant}")
        assert a["link_rule"] == "new account"
        ok = [a["link_rule"] for a in idn["accounts"] if a["system"] == "okta"]
        assert ok == (["email"] if 1 <= i <= 10 else []), idn
    for i in range(5):
        idn, a = by_account(idns, "okta", "username", f"{p}solo{i}@okta.example")
        assert a["link_rule"] == "new account" and len(idn["accounts"]) == 1
    # the conflict: unlinked, listed with both identities
    conf = [c for c in q.admin.ok("GET", "/api/v1/identities/conflicts?limit=1000")
            ["conflicts"] if c["account"]["external_id"] == oids[-6]]
    assert len(conf) == 1, conf
    assert conf[0]["account"]["identity_id"] is None
    want = {by_account(idns, "corp", "username", sams[200])[0]["id"],
            by_account(idns, "cloud", "upn", f"{p}cl0@{tenant}")[0]["id"]}
    assert set(conf[0]["identities"]) == want

    # second round: a few changes in each system, read incrementally
    for s in sams[:3]:
        modify(lab, s)
    rep = q.sync("corp")
    assert rep["mode"] == "incremental" and 3 <= rep["seen"] <= 10, rep
    assert 3 <= rep["changed"] <= rep["seen"], rep  # the lab may change others

    graph.seed([{**cloud[60], "id": eids[60], "displayName": "renamed"}], tenant=tenant)
    graph.emu.ctl("DELETE", f"/users/{eids[61]}?tenant={tenant}")
    before = graph.stats()["requests"].get("GET /v1.0/users/delta", 0)
    rep = q.sync("cloud")
    assert graph.stats()["requests"]["GET /v1.0/users/delta"] - before == 1
    assert rep["mode"] == "incremental" and rep["seen"] == 2, rep
    assert rep["removed"] == 1 and rep["changed"] == 2, rep

    okta_emu.emu.ctl("PATCH", f"/users/{oids[0]}", {"status": "DEPROVISIONED"})
    okta_emu.emu.ctl("PATCH", f"/users/{oids[1]}", {"profile": {"firstName": "Renamed"}})
    before = okta_emu.stats()["routes"]["GET /api/v1/users"]["count"]
    rep = q.sync("okta")
    assert okta_emu.stats()["routes"]["GET /api/v1/users"]["count"] - before == 1
    assert rep["mode"] == "incremental" and rep["seen"] == 2, rep
    assert rep["removed"] == 1, rep
    idns = identities(q, p)
    _, gone = by_account(idns, "cloud", "external_id", eids[61])
    assert gone["state"] == "removed"
    _, dep = by_account(idns, "okta", "external_id", oids[0])
    assert dep["state"] == "removed"


def modify(lab, sam):
    """displayName of sam changes in AD (one ldapmodify)."""
    (dn,) = lab.search(f"(sAMAccountName={sam})", ("dn",)).keys()
    ldif = f"dn: {dn}\nchangetype: modify\nreplace: displayName\ndisplayName: {sam} r\n"
    r = subprocess.run(["ldapmodify", "-x", "-H", "ldaps://127.0.0.1", "-D", lab.bind_dn,
                        "-y", lab.pw_file], input=ldif, capture_output=True, text=True,
                       env=lab._ldap_env(), timeout=60)
    assert r.returncode == 0, r.stderr


def test_manual_unlink_survives_sync(graph, okta_emu, world):
    lab, q, p, tenant, sams, sids = world
    s = sams[0]
    (eid,) = graph.seed([{"userPrincipalName": f"{s}@{tenant}", "displayName": s,
                          "onPremisesSecurityIdentifier": sids[s]}], tenant=tenant)
    q.sync("corp")
    q.sync("cloud")
    idn, cl = by_account(identities(q, p), "cloud", "external_id", eid)
    assert cl["link_rule"] == "sid"
    j = q.admin.ok("DELETE", f"/api/v1/identities/{idn['id']}/accounts/{cl['id']}")
    assert all(a["id"] != cl["id"] for a in j["accounts"])
    # the account changes in Entra, so the next (incremental) sync reads it again,
    # and a full sync reads everything: neither links the pair again
    graph.seed([{"id": eid, "userPrincipalName": f"{s}@{tenant}", "displayName": "x",
                 "onPremisesSecurityIdentifier": sids[s]}], tenant=tenant)
    for full in (False, True):
        time.sleep(0.01)
        q.sync("cloud", full=full)
        idn2, cl2 = by_account(identities(q, p), "cloud", "external_id", eid)
        assert idn2["id"] != idn["id"], "the manual unlink was undone"
        assert cl2["link_rule"] == "new account", cl2
    # a manual link wins too
    q.admin.ok("DELETE", f"/api/v1/identities/{idn2['id']}/accounts/{cl['id']}")
    j = q.admin.ok("POST", f"/api/v1/identities/{idn['id']}/accounts",
                   {"account_id": cl["id"]})
    (a,) = [a for a in j["accounts"] if a["id"] == cl["id"]]
    assert a["link_rule"] == "manual" and a["linked_by"] == "cloud-admin", a
    q.sync("cloud", full=True)
    idn3, _ = by_account(identities(q, p), "cloud", "external_id", eid)
    assert idn3["id"] == idn["id"]
