"""OpenID Shared Signals through the whole daemon: quell as a transmitter (metadata,
streams, SETs pushed to and polled by a receiver written with jose that verifies each
one against quell's jwks_uri, a receiver that was down gets every event after, in
order, none twice) and as a receiver (a SET signed by a jose transmitter contains the
account under a rule; forged, wrong-audience, replayed, stale and unauthenticated
SETs are refused with RFC 8935's errors and audited)."""
import base64
import json
import os
import re
import shutil
import socket
import subprocess
import time

import pytest

from conftest import REPO, Api, wait_for

RISC = "https://schemas.openid.net/secevent/risc/event-type/"
CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
VERIFY = "https://schemas.openid.net/secevent/ssf/event-type/verification"
PUSH, POLL = "urn:ietf:rfc:8935", "urn:ietf:rfc:8936"
EVENTS = [RISC + "account-disabled", RISC + "account-enabled", CAEP + "credential-change",
          RISC + "credential-compromise", CAEP + "credential-change", VERIFY]
NODE_MODULES = REPO / "tests" / "contract" / "node_modules"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Peer:
    """tests/e2e/ssf_peer.mjs, run from a copy beside a link to tests/contract's
    node_modules (ES modules resolve from the script's own directory)."""

    def __init__(self, tmp, issuer, audience):
        if shutil.which("node") is None or not (NODE_MODULES / "jose").is_dir():
            pytest.skip("node or tests/contract's jose is missing (npm ci there)")
        d = tmp / "peer"
        d.mkdir()
        shutil.copy(REPO / "tests" / "e2e" / "ssf_peer.mjs", d / "ssf_peer.mjs")
        os.symlink(NODE_MODULES, d / "node_modules")
        self.proc = subprocess.Popen(["node", str(d / "ssf_peer.mjs"), issuer, audience],
                                     stdout=subprocess.PIPE, text=True)
        self.port = json.loads(self.proc.stdout.readline())["port"]
        self.url = f"http://127.0.0.1:{self.port}"
        self.api = Api(self.port)

    def call(self, method, path, body=None):
        r = self.api.request(method, path, body=body)
        assert r.status == 200, r
        return r.json

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def ssf_quelld(quelld, tmp_path, extra="", rsa=False, path=""):
    """quelld with [ssf] (extra: more of it, then other sections); rsa: an RSA 2048
    key (RS256, as the CAEP Interoperability Profile requires) instead of P-256;
    path: the issuer's (as behind a proxy)."""
    port = free_port()
    key = tmp_path / "ssf.key"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                    "rsa_keygen_bits:2048", "-out", str(key)] if rsa else
                   ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-out", str(key)], check=True,
                   capture_output=True)
    key.chmod(0o600)
    q = quelld(start=False, server={"listen": f"127.0.0.1:{port}"})
    with open(q.conf, "a") as f:
        f.write(f"\n[ssf]\nissuer = http://127.0.0.1:{port}{path}\nkey_file = {key}\n"
                f"kid = quell-e2e\n" + extra.replace("{port}", str(port)) + "\n")
    q.start()
    q.issuer = f"http://127.0.0.1:{port}{path}"
    # SSF's paths are not in the contract proxy's docs/openapi.yaml pass: direct.
    q.ssf = Api(q.direct_port, q.tokens["admin"])
    return q


@pytest.fixture
def peer(tmp_path):
    made = []

    def make(issuer, audience):
        p = Peer(tmp_path / f"p{len(made)}", issuer, audience) if made else \
            Peer(tmp_path, issuer, audience)
        made.append(p)
        return p
    yield make
    for p in made:
        p.stop()


def received(p, n, what):
    return wait_for(lambda: (lambda j: j["received"] if len(j["received"]) >= n else None)(
        p.call("GET", "/received")), 60, what=what)


def event_of(claims):
    (ev,) = claims["events"]
    return ev


def test_metadata_and_streams(quelld, tmp_path, make_user):
    q = ssf_quelld(quelld, tmp_path)
    anon = Api(q.direct_port)
    meta = anon.get("/.well-known/ssf-configuration")
    assert meta.status == 200, meta
    assert meta.json["issuer"] == q.issuer
    assert meta.json["jwks_uri"] == q.issuer + "/ssf/jwks.json"
    assert set(meta.json["delivery_methods_supported"]) == {PUSH, POLL}
    (k,) = anon.get("/ssf/jwks.json").json["keys"]
    assert k["kid"] == "quell-e2e" and k["kty"] == "EC" and "d" not in k
    # Stream management needs settings.manage; a viewer is refused.
    body = {"delivery": {"method": POLL}, "events_requested": EVENTS + ["urn:x"]}
    assert Api(q.direct_port, q.tokens["viewer"]).post("/ssf/stream", body).status == 403
    st = q.ssf.post("/ssf/stream", body)
    assert st.status == 201, st
    sid = st.json["stream_id"]
    assert "urn:x" not in st.json["events_delivered"]
    assert st.json["delivery"]["endpoint_url"] == f"{q.issuer}/ssf/poll/{sid}"
    assert q.ssf.get(f"/ssf/stream?stream_id={sid}").json["stream_id"] == sid
    r = q.ssf.request("PATCH", "/ssf/stream", body={"stream_id": sid,
                      "events_requested": [RISC + "account-disabled"]})
    assert r.status == 200 and r.json["events_delivered"] == [RISC + "account-disabled"], r
    assert q.ssf.post("/ssf/status", {"stream_id": sid, "status": "paused"}).json[
        "status"] == "paused"
    assert q.ssf.get(f"/ssf/status?stream_id={sid}").json["status"] == "paused"
    bad = q.ssf.post("/ssf/stream", {"delivery": {"method": PUSH}})
    assert bad.status == 400 and bad.error["field"] == "delivery.endpoint_url", bad
    assert q.ssf.delete(f"/ssf/stream?stream_id={sid}").status == 204
    assert q.ssf.get(f"/ssf/stream?stream_id={sid}").status == 404


def test_metadata_of_an_issuer_with_a_path(quelld, tmp_path):
    """SSF 1.0 7.2: issuer https://host/quell has its metadata at
    /.well-known/ssf-configuration/quell; its endpoints are under the issuer."""
    q = ssf_quelld(quelld, tmp_path, path="/quell")
    anon = Api(q.direct_port)
    meta = anon.get("/.well-known/ssf-configuration/quell")
    assert meta.status == 200 and meta.json["issuer"] == q.issuer, meta
    assert meta.json["configuration_endpoint"] == q.issuer + "/ssf/stream"
    # Another path is none of quell's public ones: it wants a token like any other.
    assert anon.get("/.well-known/ssf-configuration/other").status == 401


def test_push_survives_receiver_down(quelld, tmp_path, make_user, peer):
    q = ssf_quelld(quelld, tmp_path)
    p = peer(q.issuer, "peer-aud")
    st = q.ssf.post("/ssf/stream", {"aud": "peer-aud", "events_requested": EVENTS,
                                    "delivery": {"method": PUSH,
                                                 "endpoint_url": p.url + "/push"}})
    assert st.status == 201, st
    sid = st.json["stream_id"]
    u = make_user(q, "ssf")
    assert q.admin.run("disable", u.identity_id)["status"] == "completed"
    (first,) = received(p, 1, "the account-disabled SET")
    assert event_of(first) == RISC + "account-disabled"
    assert first["sub_id"]["format"] in ("email", "iss_sub"), first
    if first["sub_id"]["format"] == "iss_sub":
        assert first["sub_id"]["iss"] == q.issuer
    # Down: what happens meanwhile waits in the outbox and arrives after, in order.
    p.call("POST", "/down", {"down": True})
    for t in ("enable", "force_password_change", "disable"):
        assert q.admin.run(t, u.identity_id)["status"] == "completed"
    assert q.ssf.post("/ssf/verify", {"stream_id": sid, "state": "s1"}).status == 204
    time.sleep(2)
    assert len(p.call("GET", "/received")["received"]) == 1
    p.call("POST", "/down", {"down": False})
    got = received(p, 5, "the SETs held while the receiver was down")
    assert [event_of(c) for c in got] == [RISC + "account-disabled",
                                          RISC + "account-enabled", CAEP + "credential-change",
                                          RISC + "account-disabled", VERIFY]
    assert got[4]["events"][VERIFY]["state"] == "s1"
    assert len({c["jti"] for c in got}) == 5
    # Nothing twice once taken, across a restart too.
    q.restart()
    time.sleep(2)
    j = p.call("GET", "/received")
    assert len(j["received"]) == 5 and not j["rejected"], j
    # Paused: held, then delivered once enabled again.
    q.ssf = Api(q.direct_port, q.tokens["admin"])
    assert q.ssf.post("/ssf/status", {"stream_id": sid, "status": "paused"}).status == 200
    assert q.admin.run("enable", u.identity_id)["status"] == "completed"
    time.sleep(2)
    assert len(p.call("GET", "/received")["received"]) == 5
    assert q.ssf.post("/ssf/status", {"stream_id": sid, "status": "enabled"}).status == 200
    got = received(p, 6, "the SET held while the stream was paused")
    assert event_of(got[5]) == RISC + "account-enabled" and len(got) == 6


def test_poll_and_acknowledge(quelld, tmp_path, make_user, peer):
    q = ssf_quelld(quelld, tmp_path, rsa=True)
    (k,) = Api(q.direct_port).get("/ssf/jwks.json").json["keys"]
    assert k["kty"] == "RSA" and k["alg"] == "RS256", k
    p = peer(q.issuer, "poller")
    sid = q.ssf.post("/ssf/stream", {"aud": "poller", "events_requested": EVENTS,
                                     "quell_subject_format": "complex",
                                     "delivery": {"method": POLL}}).json["stream_id"]
    u = make_user(q, "ssp")
    assert q.admin.run("force_password_change", u.identity_id)["status"] == "completed"
    assert q.admin.run("disable", u.identity_id)["status"] == "completed"

    def sets():
        r = q.ssf.post(f"/ssf/poll/{sid}", {"maxEvents": 10, "returnImmediately": True})
        assert r.status == 200, r
        return r.json["sets"] if len(r.json["sets"]) >= 2 else None
    got = wait_for(sets, 60, what="both SETs to poll")
    claims = []
    for jti, jwt in got.items():
        v = p.call("POST", "/verify", {"set": jwt})
        assert "error" not in v, v
        assert v["claims"]["jti"] == jti
        assert v["claims"]["sub_id"]["format"] == "complex"
        assert v["claims"]["sub_id"]["tenant"] == {"format": "opaque", "id": "corp"}
        claims.append(v["claims"])
    assert sorted(event_of(c) for c in claims) == [CAEP + "credential-change",
                                                  RISC + "account-disabled"]
    (cc,) = [c for c in claims if event_of(c) == CAEP + "credential-change"]
    ev = cc["events"][CAEP + "credential-change"]
    assert ev["credential_type"] == "password" and ev["change_type"] == "update"
    # CAEP Interoperability Profile: a non-empty reason_admin; CAEP's common members.
    assert cc["txn"] in ev["reason_admin"]["en"], ev
    assert ev["initiating_entity"] == "admin" and isinstance(ev["event_timestamp"], int)
    r = q.ssf.post(f"/ssf/poll/{sid}", {"ack": list(got), "maxEvents": 10,
                                        "returnImmediately": True})
    assert r.status == 200 and not (set(r.json["sets"]) & set(got)), r
    assert q.ssf.post(f"/ssf/poll/{sid}", {"maxEvents": 10, "returnImmediately": True}
                      ).json["sets"] == {}
    r = q.ssf.post(f"/ssf/poll/{sid}", {"returnImmediately": "no"})
    assert r.status == 400 and r.error["field"] == "returnImmediately", r


def test_long_poll(quelld, tmp_path, make_user):
    """RFC 8936's default: a poll with nothing pending waits and is answered as soon
    as a SET is queued; meanwhile the server answers everything else (the poll waits
    off its threads), and a poll with returnImmediately is answered at once."""
    import threading
    q = ssf_quelld(quelld, tmp_path)
    sid = q.ssf.post("/ssf/stream", {"events_requested": EVENTS,
                                     "delivery": {"method": POLL}}).json["stream_id"]
    u = make_user(q, "slp")
    assert q.ssf.post(f"/ssf/poll/{sid}", {"returnImmediately": True}).json["sets"] == {}
    # More waiting polls than the web server has threads: other requests still go.
    answers = {}

    def poll(i):
        answers[i] = Api(q.direct_port, q.tokens["admin"]).post(
            f"/ssf/poll/{sid}", {"maxEvents": 10})
    polls = [threading.Thread(target=poll, args=(i,)) for i in range(6)]
    for t in polls:
        t.start()
    time.sleep(1)
    assert not answers, answers
    assert q.ssf.get(f"/ssf/status?stream_id={sid}").status == 200
    assert q.admin.run("disable", u.identity_id)["status"] == "completed"
    for t in polls:
        t.join(10)
    # Answered with the SET, well before the 30 s a long poll waits at most.
    assert len(answers) == 6 and not any(t.is_alive() for t in polls), answers
    for r in answers.values():
        assert r.status == 200, r
        (jwt,) = r.json["sets"].values()
        assert event_of(claims_of(jwt)) == RISC + "account-disabled"
    # Stopping with a poll waiting: answered (nothing), and quelld ends cleanly.
    assert q.ssf.post(f"/ssf/poll/{sid}", {"ack": list(r.json["sets"]),
                                          "maxEvents": 0}).json["sets"] == {}
    answers.clear()
    t = threading.Thread(target=poll, args=(0,))
    t.start()
    time.sleep(1)
    assert not answers, answers
    proc = q.proc
    q.stop()
    assert proc.returncode == 0, proc.returncode
    t.join(10)
    assert not t.is_alive() and answers[0].status == 200, answers
    assert answers[0].json == {"sets": {}, "moreAvailable": False}, answers


RULE = """[disruption "ssf"]
categories = credential_theft
min_severity = medium
actions = contain
"""


def test_receiver_contains_and_refuses(quelld, tmp_path, make_user, peer):
    p = peer("http://127.0.0.1:1", "unused")
    token = tmp_path / "push.token"
    token.write_text("push-" + os.urandom(8).hex() + "\n")
    token.chmod(0o600)
    api = tmp_path / "api.token"
    api.write_text("peer-api-token\n")
    api.chmod(0o600)
    q = ssf_quelld(quelld, tmp_path, extra=RULE + f"""
[ssf_receiver "peer"]
issuer = https://peer.example
configuration_url = {p.url}/.well-known/ssf-configuration
push_url = http://127.0.0.1:{{port}}/ssf/receive/peer
api_token_file = {api}
events = credential-compromise session-revoked
audience = quell-e2e
token_file = {token}
sub_id_type = sid
""")
    u = make_user(q, "ssr")
    upn = u.account["upn"]
    push = Api(q.direct_port, token.read_text().strip())

    def set_(forge=False, **over):
        claims = {"iss": "https://peer.example", "aud": "quell-e2e",
                  "iat": int(time.time()), "jti": os.urandom(8).hex(),
                  "sub_id": {"format": "email", "email": upn},
                  "events": {RISC + "credential-compromise": {
                      "credential_type": "password"}}}
        claims.update(over)
        return p.call("POST", "/sign", {"claims": claims, "forge": forge})["set"]

    def send(jwt, api=push):
        return api.post("/ssf/receive/peer", raw=jwt.encode(),
                        content_type="application/secevent+jwt")
    # quell subscribed itself: a push stream to its receive endpoint, with the token
    # it requires, for the events it asked for.
    (st,) = wait_for(lambda: p.call("GET", "/streams") or None, 30, what="the stream")
    assert st["delivery"] == {"method": PUSH, "endpoint_url": q.issuer + "/ssf/receive/peer",
                              "authorization_header": "Bearer " + token.read_text().strip()}
    assert st["events_requested"] == [RISC + "credential-compromise", CAEP + "session-revoked"]
    good = set_()
    claims = {"iss": "https://peer.example", "aud": "quell-e2e", "iat": int(time.time()),
              "jti": os.urandom(8).hex(), "sub_id": {"format": "email", "email": upn},
              "events": {RISC + "credential-compromise": {"credential_type": "password"}}}
    (r,) = p.call("POST", "/emit", {"claims": claims})
    assert r["status"] == 202, r
    acts = wait_for(lambda: [a for a in q.admin.actions_all(f"identity_id={u.identity_id}")
                             if a["source"] == "automatic_attack_disruption"] or None,
                    60, what="the containment")
    assert acts
    # Straight to the endpoint as well: taken once, refused as a replay after.
    r = send(good)
    assert r.status == 202, r
    refusals = [(set_(forge=True), 400, "invalid_key"),
                (set_(aud="someone-else"), 400, "invalid_audience"),
                (set_(iss="https://evil.example"), 400, "invalid_issuer"),
                (good, 400, "invalid_request"),
                (set_(iat=int(time.time()) - 3600), 400, "invalid_request")]
    for jwt, status, err in refusals:
        r = send(jwt)
        assert r.status == status and r.json["err"] == err, (err, r)
    r = send(set_(), api=Api(q.direct_port, "wrong"))
    assert r.status == 401 and r.json["err"] == "authentication_failed", r
    # iss_sub of the transmitter's own iss: the account by sub_id_type (its SID).
    jwt = set_(sub_id={"format": "iss_sub", "iss": "https://peer.example",
                       "sub": u.account["sid"]})
    r = send(jwt)
    assert r.status == 202, r
    jti = json.loads(base64url(jwt.split(".")[1]))["jti"]
    (al,) = [a for a in q.admin.ok("GET", "/api/v1/alerts?limit=100")["alerts"]
             if a["source_alert_id"] == jti]
    al = q.admin.ok("GET", f"/api/v1/alerts/{al['id']}")
    assert [(en["id_type"], en["account_id"]) for en in al["entities"]] == [
        ("sid", u.account_id)], al
    ev = [e for e in q.admin.audit_all() if e["event"] == "ssf.refused"]
    assert sorted(json.loads(e["detail"])["err"] if isinstance(e["detail"], str)
                  else e["detail"]["err"] for e in ev) == sorted(
        ["invalid_key", "invalid_audience", "invalid_issuer", "invalid_request",
         "invalid_request", "authentication_failed"])
    assert [e for e in q.admin.audit_all() if e["event"] == "ssf.received"]


def base64url(part):
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def claims_of(jwt):
    """The payload of a compact JWS (quell signed it; the jose tests check that)."""
    return json.loads(base64url(jwt.split(".")[1]))


def poll_until(q, sid, pred, what):
    """Polls (acknowledging each batch) until pred holds for a SET's claims; returns
    every SET's claims seen up to and including that one, in outbox order."""
    seen = []

    def once():
        r = q.ssf.post(f"/ssf/poll/{sid}", {"maxEvents": 10, "returnImmediately": True})
        assert r.status == 200, r
        if r.json["sets"]:
            assert q.ssf.post(f"/ssf/poll/{sid}", {"ack": list(r.json["sets"]),
                                                   "maxEvents": 0}).status == 200
        batch = [claims_of(j) for j in r.json["sets"].values()]
        batch.sort(key=lambda c: c["iat"])
        seen.extend(batch)
        return any(pred(c) for c in batch)
    wait_for(once, 60, what=what)
    return seen


def about(u):
    """Whether a SET is about user u: sent as its address, or (an AD account of the
    lab has no mail) as iss_sub of its objectGUID, alone or as a complex's user."""
    def simple(s):
        return s.get("email", "").lower() == u.account["upn"].lower() or \
            s.get("sub", "").lower() == u.guid.lower()
    return lambda c: simple(c["sub_id"]) or simple(c["sub_id"].get("user", {}))


def test_subjects_filter_default_all(quelld, tmp_path, make_user):
    q = ssf_quelld(quelld, tmp_path)
    meta = Api(q.direct_port).get("/.well-known/ssf-configuration").json
    assert meta["default_subjects"] == "ALL"
    assert {"spec_urn": "urn:ietf:rfc:6749"} in meta["authorization_schemes"]
    assert meta["add_subject_endpoint"] == q.issuer + "/ssf/subjects:add"
    sid = q.ssf.post("/ssf/stream", {"events_requested": EVENTS,
                                     "delivery": {"method": POLL}}).json["stream_id"]
    u1, u2 = make_user(q, "sa1"), make_user(q, "sa2")
    up1, up2 = u1.account["upn"], u2.account["upn"]
    for body, field in (({"stream_id": sid, "subject": {"format": "phone_number",
                                                         "phone_number": "+1"}}, "subject"),
                        ({"stream_id": sid, "subject": {"format": "email",
                                                         "email": "nobody"}}, "subject"),
                        ({"stream_id": sid}, "subject"),
                        ({"subject": {"format": "email", "email": up1}}, "stream_id")):
        r = q.ssf.post("/ssf/subjects:remove", body)
        assert r.status == 400 and r.error["field"] == field, (body, r)
    r = q.ssf.post("/ssf/subjects:remove", {"stream_id": "ssf_none", "subject": {
        "format": "email", "email": up1}})
    assert r.status == 404, r
    # Removed (in another case than the directory's): u1's events stop, u2's go on.
    r = q.ssf.post("/ssf/subjects:remove", {"stream_id": sid, "subject": {
        "format": "email", "email": up1.upper()}})
    assert r.status == 204, r
    assert q.admin.run("disable", u1.identity_id)["status"] == "completed"
    assert q.admin.run("disable", u2.identity_id)["status"] == "completed"
    seen = poll_until(q, sid, about(u2), "u2's account-disabled")
    assert not [c for c in seen if about(u1)(c)], seen
    # Kept across a restart, and added back: u1's events again.
    q.restart()
    q.ssf = Api(q.direct_port, q.tokens["admin"])
    st = q.ssf.get(f"/ssf/stream?stream_id={sid}").json
    assert st["quell_subjects"] == {"default": "ALL", "except": [
        {"format": "email", "email": up1.lower()}]}, st
    assert q.admin.run("enable", u1.identity_id)["status"] == "completed"
    assert q.admin.run("enable", u2.identity_id)["status"] == "completed"
    seen = poll_until(q, sid, about(u2), "u2's account-enabled")
    assert not [c for c in seen if about(u1)(c)], seen
    r = q.ssf.post("/ssf/subjects:add", {"stream_id": sid, "subject": {
        "format": "email", "email": up1}})
    assert r.status == 200, r
    assert q.admin.run("disable", u1.identity_id)["status"] == "completed"
    seen = poll_until(q, sid, about(u1), "u1's account-disabled once added back")
    assert event_of(seen[-1]) == RISC + "account-disabled"
    # Verification events are the stream's, whatever its subjects.
    assert q.ssf.post("/ssf/subjects:remove", {"stream_id": sid, "subject": {
        "format": "opaque", "id": sid}}).status == 204
    assert q.ssf.post("/ssf/verify", {"stream_id": sid, "state": "v"}).status == 204
    poll_until(q, sid, lambda c: VERIFY in c["events"], "the verification event")


def test_subjects_default_none(quelld, tmp_path, make_user):
    q = ssf_quelld(quelld, tmp_path, extra="default_subjects = NONE\n")
    assert Api(q.direct_port).get("/.well-known/ssf-configuration").json[
        "default_subjects"] == "NONE"
    sid = q.ssf.post("/ssf/stream", {"events_requested": EVENTS, "format": "complex",
                                     "delivery": {"method": POLL}}).json["stream_id"]
    u1, u2 = make_user(q, "sn1"), make_user(q, "sn2")
    up1, up2 = u1.account["upn"], u2.account["upn"]
    # Only what was added: u1, as a complex subject of its user and tenant.
    sub = {"format": "complex", "user": {"format": "email", "email": up1},
           "tenant": {"format": "opaque", "id": "corp"}}
    assert q.ssf.post("/ssf/subjects:add", {"stream_id": sid, "subject": sub}).status == 200
    bad = dict(sub, device={"format": "opaque", "id": "d"})
    r = q.ssf.post("/ssf/subjects:add", {"stream_id": sid, "subject": bad})
    assert r.status == 400 and r.error["field"] == "subject", r
    assert q.admin.run("disable", u2.identity_id)["status"] == "completed"
    assert q.admin.run("disable", u1.identity_id)["status"] == "completed"
    seen = poll_until(q, sid, about(u1), "u1's account-disabled")
    assert not [c for c in seen if about(u2)(c)], seen
    assert seen[-1]["sub_id"]["format"] == "complex"
    assert q.ssf.post("/ssf/subjects:remove", {"stream_id": sid, "subject": sub}).status == 204
    r = q.ssf.post("/ssf/subjects:remove", {"stream_id": sid, "subject": sub})
    assert r.status == 404 and r.error["field"] == "subject", r


def test_subscribe_with_client_credentials(quelld, tmp_path, peer):
    """[ssf_receiver] with OAuth client credentials: quell gets an access token from
    the transmitter's token endpoint (the jose peer) and creates its stream with it;
    a wrong secret is refused there and no stream is made."""
    p = peer("http://127.0.0.1:1", "unused")
    token = tmp_path / "push.token"
    token.write_text("push-" + os.urandom(8).hex() + "\n")
    good, bad = tmp_path / "good.secret", tmp_path / "bad.secret"
    good.write_text("peer-secret\n")
    bad.write_text("not-the-secret\n")
    for f in (token, good, bad):
        f.chmod(0o600)
    sections = ""
    for name, secret in (("oauth", good), ("wrong", bad)):
        sections += f"""
[ssf_receiver "{name}"]
issuer = https://peer.example
configuration_url = {p.url}/.well-known/ssf-configuration
push_url = http://127.0.0.1:{{port}}/ssf/receive/{name}
token_url = {p.url}/token
client_id = quell-client
client_secret_file = {secret}
scope = ssf.manage
audience = quell-e2e
token_file = {token}
"""
    q = ssf_quelld(quelld, tmp_path, extra=sections)
    (st,) = wait_for(lambda: p.call("GET", "/streams") or None, 30, what="the stream")
    assert st["made_with"] == "oauth", st
    assert st["delivery"]["endpoint_url"] == q.issuer + "/ssf/receive/oauth"
    grants = wait_for(lambda: (lambda g: g if any(not x["ok"] for x in g) else None)(
        p.call("GET", "/grants")), 30, what="the refused token request")
    assert {"client_id": "quell-client", "scope": "ssf.manage", "ok": True} in grants
    assert len(p.call("GET", "/streams")) == 1


def test_refused_pushes_logged_per_window(quelld, tmp_path, peer):
    """SETs a receiver refuses (400) are dropped; the log has the first at once and
    the others of the minute as one count (here: when the stream is deleted)."""
    q = ssf_quelld(quelld, tmp_path)
    p = peer(q.issuer, "peer-aud")
    # The wrong audience: the jose receiver refuses every SET with 400.
    sid = q.ssf.post("/ssf/stream", {"aud": "someone-else", "events_requested": EVENTS,
                                     "delivery": {"method": PUSH,
                                                  "endpoint_url": p.url + "/push"}}
                     ).json["stream_id"]
    for i in range(3):
        assert q.ssf.post("/ssf/verify", {"stream_id": sid, "state": str(i)}).status == 204
    wait_for(lambda: len(p.call("GET", "/received")["rejected"]) >= 3, 60,
             what="three refusals")

    def rejected():
        # Whichever node holds the ssf lease pushes (QUELL_E2E_NODES).
        return [line for log in [q.log] + [n.log for n in q.peers] if log.exists()
                for line in log.read_text().splitlines()
                if "ssf.rejected" in line and sid in line]
    (first,) = wait_for(rejected, 30, what="the first refusal's line")
    assert "more within a minute are counted" in first, first
    assert q.ssf.delete(f"/ssf/stream?stream_id={sid}").status == 204
    lines = wait_for(lambda: (lambda r: r if len(r) == 2 else None)(rejected()), 30,
                     what="the count of the others")
    assert "refused 2 more" in lines[1], lines
    assert len(p.call("GET", "/received")["rejected"]) == 3


def test_receiver_polls(quelld, tmp_path, make_user, peer):
    """[ssf_receiver] delivery = poll: quell creates a poll stream at the jose
    transmitter and polls it (RFC 8936): a valid SET becomes an alert and is
    acknowledged, a wrong-audience one goes back in setErrs, both are audited."""
    p = peer("http://127.0.0.1:1", "unused")
    api = tmp_path / "api.token"
    api.write_text("peer-api-token\n")
    api.chmod(0o600)
    q = ssf_quelld(quelld, tmp_path, extra=f"""
[ssf_receiver "pollpeer"]
issuer = https://peer.example
configuration_url = {p.url}/.well-known/ssf-configuration
delivery = poll
api_token_file = {api}
events = credential-compromise
audience = quell-e2e
""")
    u = make_user(q, "spr")
    (st,) = wait_for(lambda: p.call("GET", "/streams") or None, 30, what="the stream")
    assert st["delivery"]["method"] == POLL, st

    def claims(**over):
        c = {"iss": "https://peer.example", "aud": "quell-e2e", "iat": int(time.time()),
             "jti": os.urandom(8).hex(), "sub_id": {"format": "email",
                                                    "email": u.account["upn"]},
             "events": {RISC + "credential-compromise": {"credential_type": "password"}}}
        c.update(over)
        return c
    good, bad = claims(), claims(aud="someone-else")
    for c in (good, bad):
        assert p.call("POST", "/emit", {"claims": c}) == [{"status": "queued"}]
    polled = wait_for(lambda: (lambda j: j if good["jti"] in j["acks"] and
                               bad["jti"] in j["errs"] else None)(p.call("GET", "/polled")),
                      30, what="the acknowledgement and the setErr")
    assert polled["errs"][bad["jti"]]["err"] == "invalid_audience", polled
    assert bad["jti"] not in polled["acks"] and polled["acks"].count(good["jti"]) == 1
    (al,) = [a for a in q.admin.ok("GET", "/api/v1/alerts?limit=100")["alerts"]
             if a["source_alert_id"] == good["jti"]]
    assert al["source"] == "ssf:pollpeer" and al["category"] == "credential_theft", al
    ev = [e for e in q.admin.audit_all() if e["event"] in ("ssf.received", "ssf.refused")]
    assert sorted(e["event"] for e in ev) == ["ssf.received", "ssf.refused"], ev


def test_check_refuses_what_start_refuses(quelld, tmp_path):
    """quelld check reads the SSF sections as a start does: a bad [ssf] issuer, a
    key_file that is not a key, a receiver's client_secret_file that is missing."""
    from conftest import QUELLD
    key = tmp_path / "ssf.key"
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-out", str(key)], check=True,
                   capture_output=True)
    key.chmod(0o600)
    notkey = tmp_path / "not.key"
    notkey.write_text("not a key\n")
    notkey.chmod(0o600)
    token = tmp_path / "push.token"
    token.write_text("push-token\n")
    token.chmod(0o600)
    ok = f"\n[ssf]\nissuer = http://127.0.0.1:1\nkey_file = {key}\nkid = k\n"
    cases = [
        (ok.replace("127.0.0.1:1", "127.0.0.1:1/"), r"issuer must be an http\(s\) URL"),
        (ok.replace(str(key), str(notkey)), rf"key_file {notkey}"),
        (ok + f'\n[ssf_receiver "r"]\nissuer = https://peer.example\n'
         "configuration_url = http://127.0.0.1:1/.well-known/ssf-configuration\n"
         "push_url = http://127.0.0.1:1/ssf/receive/r\ntoken_url = http://127.0.0.1:1/t\n"
         f"client_id = c\nclient_secret_file = {tmp_path / 'missing.secret'}\n"
         f"audience = a\ntoken_file = {token}\n", r"missing\.secret"),
    ]
    q = quelld(start=False)
    base = q.conf.read_text()
    for extra, want in cases:
        q.conf.write_text(base + extra)
        r = subprocess.run([str(QUELLD), "-c", str(q.conf), "check"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and re.search(want, r.stderr), (want, r.stdout, r.stderr)
    q.conf.write_text(base + ok)
    r = subprocess.run([str(QUELLD), "-c", str(q.conf), "check"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
