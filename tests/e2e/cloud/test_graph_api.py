"""quell's Graph-compatible identity accounts API (docs/graph-api.md) driven by
Microsoft's official JS client (graph_client.mjs) pointed at quelld's /graph/v1.0
prefix through a Prism proxy of the Graph subset
(tests/contract/specs/graph-security-identities-subset.yaml): listing and paging,
$filter and $select, one identity, invokeAction run by the engine on AD (kinit
refused) and on Entra (the emulator sees the revocation), and Graph-shaped errors."""
import json
import os
import struct
import subprocess
import uuid

import pytest

from .cloudlib import NODE, REPO, CloudQuelld, Prism, tag

SPEC = REPO / "tests" / "contract" / "specs" / "graph-security-identities-subset.yaml"
CLIENT = REPO / "tests" / "e2e" / "cloud" / "graph_client.mjs"
N_AD = 3


def graph_client(w, token, *ops):
    args = {"upstream": w["prism"].url, "cert": str(w["cert"]), "key": str(w["key"]),
            "token": token, "ops": list(ops)}
    r = subprocess.run([NODE, str(CLIENT), json.dumps(args)], capture_output=True,
                       text=True, timeout=120,
                       env=dict(os.environ, NODE_EXTRA_CA_CERTS=str(w["cert"])))
    assert r.returncode == 0, f"graph_client.mjs: {r.stderr[-3000:]}"
    return json.loads(r.stdout)


def tls_pair(d):
    """A self-signed certificate for 127.0.0.1: the https front of graph_client.mjs."""
    cert, key = d / "front.pem", d / "front.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True,
                   capture_output=True, timeout=60)
    return cert, key


def ok(res):
    assert "ok" in res, f"Graph client error: {res}"
    return res["ok"]


def cloud_sid(object_id):
    """Entra's cloud SID of an object id: the GUID's bytes as four LE words."""
    words = struct.unpack("<4I", uuid.UUID(object_id).bytes_le)
    return "S-1-12-1-" + "-".join(str(w) for w in words)


@pytest.fixture
def world(graph, cloud_dir, lab):
    p = tag()
    tenant = f"{p}.onmicrosoft.com"
    graph.app(tenant)
    sams = [lab.name("gr") for _ in range(N_AD)]
    guids = [lab.adduser(s) for s in sams]
    d = cloud_dir / f"quelld-graphapi-{p}"
    d.mkdir()
    corp = {"kind": "ad", "url": lab.url, "ca_file": lab.ca, "base_dn": lab.base_dn,
            "bind_dn": lab.bind_dn, "password_file": lab.pw_file, "max_concurrency": 2}
    q = CloudQuelld(d, {"corp": corp, "cloud": graph.system(d, tenant=tenant)})
    q.start()
    q.sync("corp")
    ad = [q.identity_by("corp", "username", s) for s in sams]
    upn = q.account_of(ad[0], "corp")["upn"]
    assert upn, ad[0]
    # the first AD user's Entra account (correlated by UPN) and a cloud-only user
    eids = graph.seed([{"userPrincipalName": upn, "displayName": sams[0]},
                       {"userPrincipalName": f"{p}only@{tenant}", "displayName": f"{p} only",
                        "mail": f"{p}only@mail.example"}], tenant=tenant)
    q.sync("cloud")
    prism = Prism(SPEC, f"http://127.0.0.1:{q.port}/graph/v1.0", d, f"graphids-{p}")
    tokens = {r: q.token(f"graph-{r}", r) for r in ("viewer", "responder")}
    cert, key = tls_pair(d)
    yield {"cert": cert, "key": key, "q": q, "p": p, "tenant": tenant, "sams": sams, "guids": guids, "eids": eids,
           "upn": upn, "prism": prism, "tokens": tokens}
    # checked here: the suite's own check runs after this proxy is gone
    prism.settle()
    bad = prism.problems()
    prism.stop()
    q.stop()
    assert not bad, "answers or requests that break the Graph subset:\n" + "\n".join(bad[:20])


def all_identities(q):
    out, after = [], None
    while True:
        j = q.admin.ok("GET", "/api/v1/identities?limit=1000"
                       + (f"&after={after}" if after else ""))
        out += j["identities"]
        if not j["next"]:
            return out
        after = j["next"]


def test_list_page_filter_select_get(world):
    w, q = world, world["q"]
    tok = w["tokens"]["viewer"]
    want = {i["id"] for i in all_identities(q)}
    # About 20 pages whatever the size of the lab (it holds every test's users): each
    # page is a round trip through Prism, and a page of 2 out of thousands would
    # outlast the client's timeout.
    top = min(1000, max(2, -(-len(want) // 20)))
    (lst, flt, sel, one, prov) = graph_client(
        w, tok,
        {"op": "list", "top": top},
        {"op": "list", "filter": f"userPrincipalName eq '{w['upn']}'"},
        {"op": "list", "filter": f"displayName eq '{w['p']} only' and isEnabled eq true",
         "select": ["id", "displayName"]},
        {"op": "get", "id": q.identity_by("corp", "username", w["sams"][0])["id"]},
        {"op": "list", "filter": f"emailAddress eq '{w['p']}only@mail.example'",
         "select": ["accounts"]})
    lst = ok(lst)
    assert len(lst["first"]["value"]) == top and lst["first"]["@odata.nextLink"], lst["first"]
    link = lst["first"]["@odata.nextLink"]
    assert link.startswith("https://127.0.0.1:") and "/graph/v1.0/security/identities/" \
        f"identityAccounts?$top={top}&$skiptoken=idn_" in link, link
    got = [i["id"] for i in lst["items"]]
    assert len(got) == len(set(got)) and set(got) == want, (len(got), len(want))

    (hit,) = ok(flt)["items"]
    ad0 = q.identity_by("corp", "username", w["sams"][0])
    assert hit["id"] == ad0["id"] and hit["userPrincipalName"].lower() == w["upn"].lower()
    (s,) = ok(sel)["items"]
    assert set(s) == {"@odata.type", "id", "displayName"} and s["displayName"] == \
        f"{w['p']} only", s

    u = ok(one)
    assert u["@odata.type"] == "#microsoft.graph.security.user" and u["id"] == ad0["id"]
    ad_acc = q.account_of(ad0, "corp")
    assert u["onPremisesSecurityIdentifier"] == ad_acc["sid"] and u["isEnabled"] is True
    assert u["domain"] and ad_acc["dn"].lower().endswith(
        ",".join(f"dc={x}" for x in u["domain"].lower().split(".")))
    assert u["cloudSecurityIdentifier"] == cloud_sid(w["eids"][0])
    accs = {a["identityProvider"]: a for a in u["accounts"]}
    assert set(accs) == {"activeDirectory", "entraID"}, u
    assert accs["activeDirectory"]["identifier"].lower() == w["guids"][0].lower()
    assert accs["entraID"]["identifier"] == w["eids"][0]
    assert {"disable", "enable", "forcePasswordReset"} <= set(accs["activeDirectory"]["actions"])
    assert {"revokeAllSessions", "requireUserToSignInAgain", "markUserAsCompromised"} <= \
        set(accs["entraID"]["actions"])

    (only,) = ok(prov)["items"]
    assert [a["identityProvider"] for a in only["accounts"]] == ["entraID"], only
    assert set(only) == {"@odata.type", "accounts"}


def test_invoke_actions(world, lab, graph):
    w, q = world, world["q"]
    tok = w["tokens"]["responder"]
    ad1 = q.identity_by("corp", "username", w["sams"][1])
    rc, out = lab.kinit(w["sams"][1])
    assert rc == 0, out
    only = q.identity_by("cloud", "upn", f"{w['p']}only@{w['tenant']}")
    before = graph.user(w["eids"][1], tenant=w["tenant"])
    dis, rev = graph_client(
        w, tok,
        {"op": "invoke", "id": ad1["id"], "body": {
            "accountId": w["guids"][1], "action": "disable",
            "identityProvider": "activeDirectory"}},
        {"op": "invoke", "id": only["id"], "body": {
            "accountId": w["eids"][1], "action": "revokeAllSessions",
            "identityProvider": "entraID"}})
    dis, rev = ok(dis), ok(rev)
    assert dis["action"] == "disable" and dis["identityProvider"] == "activeDirectory"
    assert dis["accountId"] == w["guids"][1]
    a = q.admin.wait_terminal(dis["correlationId"])
    assert a["status"] == "completed" and a["type"] == "disable", a
    assert a["identity_id"] == ad1["id"] and a["requested_by"] == "graph-responder", a
    assert a["source"] == "api" and "invokeAction" in a["reason"], a
    rc, out = lab.kinit(w["sams"][1])
    assert rc != 0 and "revoked" in out.lower(), out

    b = q.admin.wait_terminal(rev["correlationId"])
    assert b["status"] == "completed" and b["type"] == "revoke_sessions", b
    after = graph.user(w["eids"][1], tenant=w["tenant"])
    assert after["revocations"] == (before["revocations"] or 0) + 1, after
    audit = [e for e in q.admin.audit_after(0) if e["action_id"] == a["id"]]
    asked = [e for e in audit if e["actor"] == "graph-responder"]
    assert asked and asked[0]["actor_kind"] == "token", audit


def graph_error(res, status, code):
    assert "error" in res, f"want a Graph error, got {res}"
    err = res["error"]
    assert err["statusCode"] == status and err["code"] == code, err
    # the client's GraphError keeps the answer's "error" object as its body
    body = json.loads(err["body"]) if isinstance(err["body"], str) else err["body"]
    inner = body["innerError"]
    assert uuid.UUID(inner["request-id"]).version == 4 and inner["date"], body
    return err, inner


def test_graph_errors(world):
    w, q = world, world["q"]
    ad2 = q.identity_by("corp", "username", w["sams"][2])
    unauth, missing, badact, denied = graph_client(
        w, w["tokens"]["viewer"],
        {"op": "get", "id": ad2["id"], "token": "qt_" + "0" * 24 + "." + "A" * 43,
         "clientRequestId": "soc-playbook-42"},
        {"op": "get", "id": "idn_nosuchidentity"},
        {"op": "invoke", "id": ad2["id"], "token": w["tokens"]["responder"], "body": {
            "accountId": w["guids"][2], "action": "disable", "identityProvider": "okta"}},
        {"op": "invoke", "id": ad2["id"], "body": {
            "accountId": w["guids"][2], "action": "disable",
            "identityProvider": "activeDirectory"}})
    err, inner = graph_error(unauth, 401, "unauthenticated")
    assert inner["client-request-id"] == "soc-playbook-42"
    assert err["headers"]["client-request-id"] == "soc-playbook-42"
    assert err["headers"]["request-id"] == inner["request-id"]
    # the client sends a client-request-id of its own to a custom host: echoed
    err, inner = graph_error(missing, 404, "itemNotFound")
    assert inner["client-request-id"] and inner["client-request-id"] != inner["request-id"]
    assert err["headers"]["client-request-id"] == inner["client-request-id"]
    _, inner = graph_error(badact, 404, "itemNotFound")
    assert inner["field"] == "accountId"
    # a viewer may read but not act: the engine refuses and records the denial
    _, inner = graph_error(denied, 403, "accessDenied")
    a = q.admin.action(inner["actionId"])
    assert a["status"] == "denied" and a["requested_by"] == "graph-viewer", a
    assert q.admin.ok("GET", f"/api/v1/identities/{ad2['id']}")["accounts"][0]["state"] \
        == "enabled"
