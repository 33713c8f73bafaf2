"""The web console in a real browser: starts quelld with the Samba lab, makes the users
and tokens the scenarios need, and runs tests/web/ (node:test + playwright-core driving
Debian's chromium headless) against it. Fails when node fails.

OpenID Connect sign-in runs against FakeIssuer: an authorization endpoint that
approves at once and redirects back with a code, and a token endpoint that checks the
client, the redirect URI and the PKCE verifier against the challenge and answers an id
token signed with a test key whose JWK Set quelld reads."""
import base64
import hashlib
import http.server
import json
import os
import secrets
import shutil
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from conftest import REPO
from test_oidc import Key, b64u, write_jwks

CHROMIUM = os.environ.get("QUELL_CHROMIUM", "/usr/bin/chromium")
PLAYWRIGHT = REPO / "tests" / "contract" / "node_modules" / "playwright-core"
APPROVALS = """
[approval "tier0"]
tags = tier0
expire_after = 1h
"""


@pytest.fixture
def artifacts():
    if not Path(CHROMIUM).exists() or not PLAYWRIGHT.is_dir() or not shutil.which("node"):
        pytest.skip("needs chromium and playwright-core: scripts/deps.sh --test")
    d = Path(os.environ.get("QUELL_WEB_ARTIFACTS",
                            os.environ.get("QUELL_BUILD", ".") + "/web-artifacts"))
    d.mkdir(parents=True, exist_ok=True)
    return d.resolve()


def run_node(q, artifacts, files, **extra):
    env = dict(os.environ,
               QUELL_WEB_URL=f"http://127.0.0.1:{q.direct_port}",
               QUELL_WEB_ARTIFACTS=str(artifacts),
               QUELL_CHROMIUM=CHROMIUM,
               NODE_PATH=str(PLAYWRIGHT.parent),
               **{f"QUELL_WEB_{k.upper()}": v for k, v in extra.items()})
    r = subprocess.run(["node", "--test", "--test-concurrency=1", "--test-reporter=spec",
                        *[str(REPO / "tests" / "web" / f) for f in files]],
                       env=env, capture_output=True, text=True, timeout=900)
    print(r.stdout[-20000:])
    print(r.stderr[-5000:])
    assert r.returncode == 0, f"node --test {' '.join(files)} failed (output above)"


def with_config(quelld, text):
    q = quelld(start=False)
    with open(q.conf, "a") as f:
        f.write("\n" + text + "\n")
    return q.start()


def test_web_console(lab, quelld, make_user, artifacts):
    q = quelld()
    # a display name with markup in it: the console must show it as text
    target = make_user(q, "web", cn=f"Web <b>target</b> {lab.tag}")
    run_node(q, artifacts, ["console.test.mjs"], admin=q.tokens["admin"],
             responder=q.tokens["responder"], viewer=q.tokens["viewer"],
             target_sam=target.sam, target_id=target.identity_id)
    # the browser's Disable reached AD: Kerberos refuses the account
    rc, out = lab.kinit(target.sam, target.password)
    assert rc != 0 and "revoked" in out.lower(), f"kinit {target.sam}: {out}"
    for shot in ("identity.png", "confirm.png", "action-center.png"):
        assert (artifacts / shot).stat().st_size > 0, shot


def test_web_approvals_and_undo(lab, quelld, make_user, artifacts):
    q = with_config(quelld, APPROVALS)
    vip = make_user(q, "wvip")
    q.admin.ok("PUT", f"/api/v1/identities/{vip.identity_id}/tags", {"tags": ["tier0"]})
    # the requester may approve in general (admin), so only the two-person rule stops them
    requester, approver = q.token("e2e-carol", "admin"), q.token("e2e-dave", "approver")
    who = dict(requester=requester, requester_name="e2e-carol", approver=approver,
               responder=q.tokens["responder"], vip_id=vip.identity_id, vip_sam=vip.sam)

    run_node(q, artifacts, ["approvals.test.mjs"], **who)
    rc, out = lab.kinit(vip.sam, vip.password)
    assert rc != 0 and "revoked" in out.lower(), f"kinit {vip.sam}: {out}"
    audit = q.admin.audit_all()
    refused = [e for e in audit if e["event"] == "action.approval_refused"]
    assert [e["actor"] for e in refused] == ["e2e-carol"], refused
    (appr,) = [e for e in audit if e["event"] == "action.approved"]
    assert appr["actor"] == "e2e-dave" and appr["detail"]["rule"] == "tier0", appr

    run_node(q, artifacts, ["undo.test.mjs"], **who)
    rc, out = lab.kinit(vip.sam, vip.password)
    assert rc == 0, f"kinit {vip.sam} after the undo: {out}"
    undo = [a for a in q.admin.actions_all() if a["undo_of"]]
    assert len(undo) == 1 and undo[0]["type"] == "enable" and \
        undo[0]["status"] == "completed" and undo[0]["requested_by"] == "e2e-carol", undo
    for shot in ("pending.png", "pending-refused.png", "undo-preview.png", "undo.png",
                 "undo-linked.png"):
        assert (artifacts / shot).stat().st_size > 0, shot


# ------------------------------------------------------------------ OpenID Connect


class FakeIssuer:
    """An OpenID Connect issuer just big enough for the code flow, on 127.0.0.1."""

    def __init__(self, key, client_id, client_secret, username, roles):
        self.key, self.client_id, self.client_secret = key, client_id, client_secret
        self.username, self.roles = username, roles
        self.codes = {}  # code → what /authorize was asked, and whether it was used
        self.token_requests = []  # (form, outcome)
        self.lock = threading.Lock()
        issuer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def answer(self, status, body=None, location=None):
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                u = urllib.parse.urlsplit(self.path)
                if u.path != "/authorize":
                    return self.answer(404, {"error": "not_found"})
                p = dict(urllib.parse.parse_qsl(u.query))
                want = {"response_type": "code", "client_id": issuer.client_id,
                        "code_challenge_method": "S256", "scope": "openid profile"}
                bad = [k for k, v in want.items() if p.get(k) != v]
                bad += [k for k in ("redirect_uri", "state", "nonce", "code_challenge")
                        if not p.get(k)]
                if bad:
                    return self.answer(400, {"error": "invalid_request", "bad": bad})
                code = secrets.token_urlsafe(24)
                with issuer.lock:
                    issuer.codes[code] = dict(p, used=False)
                back = p["redirect_uri"] + "?" + urllib.parse.urlencode(
                    {"code": code, "state": p["state"]})
                self.answer(302, location=back)

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                form = dict(urllib.parse.parse_qsl(self.rfile.read(n).decode()))
                if self.path != "/token":
                    return self.answer(404, {"error": "not_found"})
                status, body = issuer.redeem(form)
                with issuer.lock:
                    issuer.token_requests.append((form, body.get("error", "ok")))
                self.answer(status, body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def redeem(self, form):
        def refuse(why):
            return 400, {"error": "invalid_grant", "error_description": why}
        if form.get("grant_type") != "authorization_code":
            return 400, {"error": "unsupported_grant_type"}
        if form.get("client_id") != self.client_id or \
                form.get("client_secret") != self.client_secret:
            return 401, {"error": "invalid_client"}
        with self.lock:
            got = self.codes.get(form.get("code", ""))
            first = got is not None and not got["used"]
            if got is not None:
                got["used"] = True  # a code is good once
        if not first:
            return refuse("unknown or already used code")
        if form.get("redirect_uri") != got["redirect_uri"]:
            return refuse("redirect_uri differs from the authorization request")
        verifier = form.get("code_verifier", "")
        challenge = b64u(hashlib.sha256(verifier.encode()).digest())
        if not 43 <= len(verifier) <= 128 or challenge != got["code_challenge"]:
            return refuse("code_verifier does not match code_challenge")
        now = int(time.time())
        claims = {"iss": self.url, "aud": self.client_id, "azp": self.client_id,
                  "sub": "fake-sub-1", "preferred_username": self.username,
                  "roles": self.roles, "nonce": got["nonce"], "iat": now, "nbf": now,
                  "exp": now + 300}
        h = {"alg": self.key.alg, "typ": "JWT", "kid": self.key.kid}
        signing_input = f"{b64u(json.dumps(h))}.{b64u(json.dumps(claims))}"
        token = f"{signing_input}.{b64u(self.key.sign(signing_input.encode()))}"
        return 200, {"id_token": token, "access_token": secrets.token_urlsafe(16),
                     "token_type": "Bearer", "expires_in": 300}

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def issuer(tmp_path):
    key = Key(tmp_path, "fake-issuer-1", "RSA")
    fake = FakeIssuer(key, "quell-console", "s3cret-" + secrets.token_hex(8),
                      "olivia@quell.test", ["Quell.Responder"])
    fake.jwks = tmp_path / "issuer-jwks.json"
    write_jwks(fake.jwks, key)
    fake.secret_file = tmp_path / "client.secret"
    fake.secret_file.write_text(fake.client_secret + "\n")
    fake.secret_file.chmod(0o600)
    yield fake
    fake.close()


def test_web_oidc_sign_in(lab, quelld, make_user, artifacts, issuer):
    q = with_config(quelld, f"""[oidc]
issuer = {issuer.url}
audience = api://quell-web-e2e
jwks_file = {issuer.jwks}
allow_plaintext = yes
client_id = {issuer.client_id}
client_secret_file = {issuer.secret_file}
authorization_endpoint = {issuer.url}/authorize
token_endpoint = {issuer.url}/token

[grant "console-responders"]
match = app_role:Quell.Responder
role = responder
""")
    target = make_user(q, "woidc")
    run_node(q, artifacts, ["oidc.test.mjs"], oidc_issuer=issuer.url,
             oidc_user=issuer.username, target_id=target.identity_id)

    # every code the browser brought back was redeemed with the secret and a verifier
    outcomes = [o for _, o in issuer.token_requests]
    assert outcomes.count("ok") == 2 and outcomes.count("invalid_grant") == 1, outcomes
    assert all(f["client_secret"] == issuer.client_secret for f, _ in issuer.token_requests)
    audit = q.admin.audit_all()
    created = [e for e in audit if e["event"] == "session.created"
               and e["detail"].get("method") == "oidc"]
    assert len(created) == 2 and all(e["actor"] == issuer.username for e in created), created
    assert created[0]["detail"]["subject"] == "oidc:fake-sub-1"
    failed = [e["detail"]["why"] for e in audit if e["event"] == "auth.failed"
              and "OpenID Connect" in e["detail"].get("why", "")]
    for why in ("state does not match", "no sign-in is under way",
                "issuer refused the code: invalid_grant", "access_denied"):
        assert any(why in w for w in failed), (why, failed)
    # neither codes, verifiers nor tokens reach the log
    log = q.log.read_text()
    for f, _ in issuer.token_requests:
        assert f["code"] not in log and f["code_verifier"] not in log
    assert issuer.client_secret not in log
    for shot in ("oidc-sign-in.png", "oidc-signed-in.png", "oidc-refused.png"):
        assert (artifacts / shot).stat().st_size > 0, shot


WEB_DISRUPTION = """
[disruption "contain-web"]
categories = ransomware
min_severity = medium
actions = contain
"""


def test_web_hunting_panel_alerts(lab, quelld, make_user, artifacts):
    q = with_config(quelld, APPROVALS + WEB_DISRUPTION)
    hunted = [make_user(q, "whunt", cn=f"Hunted {i} {lab.tag}") for i in (1, 2)]
    vip = make_user(q, "wtier0", cn=f"Tier0 {lab.tag}")
    q.admin.ok("PUT", f"/api/v1/identities/{vip.identity_id}/tags", {"tags": ["tier0"]})
    off = make_user(q, "woff", cn=f"Already off {lab.tag}", uac=514)
    noexp = make_user(q, "wnoexp", cn=f"Never expires {lab.tag}", uac=66048)
    victim = make_user(q, "wvict", cn=f"Victim {lab.tag}")
    alert = {"id": "web-" + secrets.token_hex(6), "source": "mdi", "time": "2026-12-01T08:00:00Z",
             "title": "Ransomware activity (web e2e)", "category": "ransomware",
             "severity": "high", "confidence": 90,
             "entities": {"accounts": [{"upn": victim.account["upn"]},
                                       {"upn": f"nobody-{lab.tag}@nowhere.test"}]}}
    r = q.api("detector").post("/api/v1/alerts", alert)
    assert r.status == 201 and r.json["decisions"][0]["outcome"] == "contained", r.json
    for a in r.json["actions"]:
        assert q.admin.wait_terminal(a["id"])["status"] == "completed", a
    run_node(q, artifacts, ["portal.test.mjs"], admin=q.tokens["admin"],
             hunted=",".join(u.sam for u in hunted), notes=f"{vip.sam},{off.sam}",
             noexpire=noexp.sam,
             victim_id=victim.identity_id, victim_name=victim.cn, alert=r.json["id"],
             tag=lab.tag)
    # the bulk disable reached AD: Kerberos refuses both; one request made both actions
    for u in hunted:
        rc, out = lab.kinit(u.sam, u.password)
        assert rc != 0 and "revoked" in out.lower(), f"kinit {u.sam}: {out}"
    mine = [a for a in q.admin.actions_all() if a["reason"] == "hunted: password spray (web e2e)"]
    assert sorted(a["identity_id"] for a in mine) == sorted(u.identity_id for u in hunted), mine
    # nothing was requested for the preview-only ones but the disable cancelled while it
    # waited; the release enabled the victim
    mine = [a for a in q.admin.actions_all()
            if a["identity_id"] in (vip.identity_id, off.identity_id, noexp.identity_id)]
    assert [(a["identity_id"], a["status"]) for a in mine] == [(vip.identity_id, "cancelled")], mine
    assert lab.kinit(victim.sam, victim.password)[0] == 0
    for shot in ("hunting.png", "hunting-confirm.png", "history-names.png", "preview-notes.png",
                 "preview-approval.png", "preview-already.png", "preview-dont-expire.png",
                 "preview-dont-expire-cleared.png", "cancel-preview.png",
                 "panel-identities.png", "panel-actions.png", "panel-hunting.png", "alert.png",
                 "contained.png", "release-preview.png", "released.png", "audit-names.png"):
        assert (artifacts / shot).stat().st_size > 0, shot
