"""Bearer JWTs from an OpenID Connect issuer ([oidc]) through the whole daemon.

Keys come from the openssl CLI and tokens are signed here (RS256 and ES256 with
`openssl dgst`), so quelld's verifier is checked against an independent signer. Only
a well-formed, correctly signed, current token for the configured issuer and audience
is accepted; every refusal is a 401 with WWW-Authenticate that is audited with its
reason.
"""
import base64
import http.server
import json
import secrets
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import QUELLD, Api, wait_for

ISSUER = "https://login.microsoftonline.com/7e57-7e57/v2.0"
AUDIENCE = "api://quell-e2e"


def b64u(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def openssl(*args, data=None):
    r = subprocess.run(["openssl", *args], input=data, capture_output=True, timeout=60)
    assert r.returncode == 0, f"openssl {args[0]}: {r.stderr.decode()}"
    return r.stdout


def der_ecdsa_to_raw(der):
    """ECDSA-Sig-Value (SEQUENCE of INTEGER r, s) → JOSE r || s, 32 bytes each."""
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        out += der[i + 2:i + 2 + n].lstrip(b"\0").rjust(32, b"\0")
        i += 2 + n
    return out


class Key:
    def __init__(self, directory, kid, kind):
        self.kid, self.kind = kid, kind
        self.path = Path(directory) / f"{kid}.pem"
        if kind == "RSA":
            openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", str(self.path))
        else:
            openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-out", str(self.path))
        self.public_pem = openssl("pkey", "-in", str(self.path), "-pubout")

    @property
    def alg(self):
        return "RS256" if self.kind == "RSA" else "ES256"

    def jwk(self):
        if self.kind == "RSA":
            mod = openssl("rsa", "-in", str(self.path), "-noout", "-modulus").decode()
            n = bytes.fromhex(mod.strip().split("=", 1)[1])
            return {"kty": "RSA", "use": "sig", "kid": self.kid, "n": b64u(n),
                    "e": b64u((65537).to_bytes(3, "big"))}
        der = openssl("pkey", "-in", str(self.path), "-pubout", "-outform", "DER")
        point = der[-65:]
        assert point[0] == 4
        return {"kty": "EC", "crv": "P-256", "use": "sig", "kid": self.kid,
                "x": b64u(point[1:33]), "y": b64u(point[33:])}

    def sign(self, data):
        sig = openssl("dgst", "-sha256", "-sign", str(self.path), data=data)
        return sig if self.kind == "RSA" else der_ecdsa_to_raw(sig)


def claims(**over):
    now = int(time.time())
    c = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "nbf": now, "exp": now + 600,
         "oid": "0b1d-" + secrets.token_hex(4), "sub": "pairwise-sub",
         "preferred_username": "alice@quell.test"}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def jwt(key, body=None, kid=None, alg=None, header=None):
    h = {"alg": alg or key.alg, "typ": "JWT", "kid": kid or key.kid, **(header or {})}
    signing_input = f"{b64u(json.dumps(h))}.{b64u(json.dumps(body or claims()))}"
    return f"{signing_input}.{b64u(key.sign(signing_input.encode()))}"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("oidc-keys")
    return {"rsa": Key(d, "rsa-1", "RSA"), "ec": Key(d, "ec-1", "EC"),
            "late": Key(d, "rsa-late", "RSA"), "never": Key(d, "rsa-never", "RSA"),
            "dir": d}


def write_jwks(path, *ks):
    Path(path).write_text(json.dumps({"keys": [k.jwk() for k in ks]}))


def with_oidc(quelld, **oidc):
    q = quelld(start=False)
    lines = ["", "[oidc]"] + [f"{k} = {v}" for k, v in oidc.items()]
    with open(q.conf, "a") as f:
        f.write("\n".join(lines) + "\n")
    return q.start()


@pytest.fixture
def oidc_quelld(quelld, keys, tmp_path):
    jwks = tmp_path / "jwks.json"
    write_jwks(jwks, keys["rsa"], keys["ec"])
    q = with_oidc(quelld, issuer=ISSUER, audience=AUDIENCE, jwks_file=jwks,
                  default_role="viewer")
    q.jwks = jwks
    return q


def reloads(q):
    return q.log.read_text().count("jwks reloaded")


def refused(q, token, reason, direct=False):
    """Asserts one 401 with WWW-Authenticate whose refusal is audited with reason
    (direct: to quelld itself, past the contract pass's proxy, which refuses headers
    as large as some of these tokens on its own)."""
    before = q.admin.audit_count()
    r = Api(q.direct_port if direct else q.port).get("/api/v1/whoami", token=token)
    assert r.status == 401, f"{reason}: {r}"
    assert r.headers.get("www-authenticate", "").startswith("Bearer"), reason
    assert reason in r.error.get("message", ""), f"want '{reason}': {r}"
    new = q.admin.audit_after(before)
    denials = [e for e in new if e["event"] == "auth.failed"]
    assert len(denials) == 1, f"{reason}: {new}"
    assert reason in denials[0]["detail"]["why"], denials[0]
    assert denials[0]["actor"] == "anonymous"
    assert token not in json.dumps(new), "a token reached the audit log"


def test_valid_tokens_rs256_and_es256(oidc_quelld, keys):
    q = oidc_quelld
    for k in (keys["rsa"], keys["ec"]):
        c = claims()
        r = Api(q.port).get("/api/v1/whoami", token=jwt(k, c))
        assert r.status == 200, f"{k.alg}: {r}"
        assert r.json["id"] == f"oidc:{c['oid']}"
        assert r.json["name"] == "alice@quell.test"
        assert r.json["role"] is None
        assert set(r.json["permissions"]) == set(q.api("viewer").ok(
            "GET", "/api/v1/whoami")["permissions"])
    # sub when there is no oid; upn when there is no preferred_username; aud as array
    c = claims(oid=None, preferred_username=None, upn="bob@quell.test",
               aud=["other", AUDIENCE])
    r = Api(q.port).get("/api/v1/whoami", token=jwt(keys["rsa"], c))
    assert r.status == 200, r
    assert (r.json["id"], r.json["name"]) == ("oidc:pairwise-sub", "bob@quell.test")
    # typ at+jwt (RFC 9068) is a JWT too; API tokens still work beside JWTs
    r = Api(q.port).get("/api/v1/whoami", token=jwt(keys["ec"],
                        header={"typ": "at+jwt"}))
    assert r.status == 200, r
    assert q.admin.ok("GET", "/api/v1/whoami")["role"] == "admin"
    # roles and wids are claims the verifier accepts (what they grant is policy's)
    r = Api(q.port).get("/api/v1/whoami", token=jwt(keys["rsa"], claims(
        roles=["Quell.Unmapped.E2E"], wids=["00000000-0000-0000-0000-00000000e2e0"])))
    assert r.status == 200, r
    # a JWT reader gets the default role's permissions: reads yes, writes no
    tok = jwt(keys["rsa"])
    assert Api(q.port, tok).get("/api/v1/identities").status == 200
    assert Api(q.port, tok).post("/api/v1/identities", {"display_name": "x"}).status == 403


def test_refusals(oidc_quelld, keys):
    q, rsa, ec = oidc_quelld, keys["rsa"], keys["ec"]
    now = int(time.time())
    refused(q, jwt(rsa, claims(exp=now - 3600)), "token expired")
    refused(q, jwt(ec, claims(exp=None)), "token has no exp claim")
    refused(q, jwt(rsa, claims(nbf=now + 3600)), "token not yet valid")
    refused(q, jwt(rsa, claims(iat=now + 3600)), "token issued in the future")
    refused(q, jwt(rsa, claims(iss="https://evil.example/v2.0")), "wrong issuer")
    refused(q, jwt(rsa, claims(iss=ISSUER + "/")), "wrong issuer")
    refused(q, jwt(ec, claims(aud="api://other")), "wrong audience")
    refused(q, jwt(ec, claims(aud=["api://other"])), "wrong audience")
    refused(q, jwt(rsa, header={"typ": "JWE"}), "token type not accepted")

    # alg none, with and without a signature part
    body = b64u(json.dumps(claims()))
    none = b64u(json.dumps({"alg": "none", "typ": "JWT", "kid": rsa.kid}))
    refused(q, f"{none}.{body}.AAAA", "algorithm not allowed")
    refused(q, f"{none}.{body}.", "malformed token")

    # HS256 keyed with the RSA public key as the verifier would hold it
    import hashlib
    import hmac
    hs = f"{b64u(json.dumps({'alg': 'HS256', 'typ': 'JWT', 'kid': rsa.kid}))}.{body}"
    for secret in (rsa.public_pem, rsa.public_pem.strip()):
        mac = hmac.new(secret, hs.encode(), hashlib.sha256).digest()
        refused(q, f"{hs}.{b64u(mac)}", "algorithm not allowed")

    # key-type confusion: a valid RSA signature under the EC key's kid
    refused(q, jwt(rsa, kid=ec.kid), "does not match the type of key")

    # tampered payload: the signature of one body on another
    good = jwt(rsa)
    h, _, s = good.split(".")
    forged = b64u(json.dumps(claims(preferred_username="admin@quell.test")))
    refused(q, f"{h}.{forged}.{s}", "invalid signature")
    refused(q, good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"),
            "invalid signature")

    # bigger than max_token_bytes (default 16384), yet an honest signature
    big = jwt(rsa, claims(pad="x" * 17000))
    refused(q, big, "token longer than 16384 bytes", direct=True)

    refused(q, "a.b.c", "malformed token")
    refused(q, jwt(rsa, claims(roles="Quell.Admin")), "malformed roles claim")
    refused(q, jwt(rsa, claims(wids=[1])), "malformed wids claim")
    refused(q, jwt(rsa, claims(oid=None, sub=None)), "token has no subject")


def test_oauth_scope_grant_and_bearer_errors(quelld, keys, tmp_path):
    """A [grant] matching oauth_scope: gives an access token whose scope (RFC 9068) or
    scp (Entra) holds it the role; WWW-Authenticate carries RFC 6750's error codes."""
    jwks = tmp_path / "jwks.json"
    write_jwks(jwks, keys["rsa"])
    q = quelld(start=False)
    with open(q.conf, "a") as f:
        f.write(f"\n[oidc]\nissuer = {ISSUER}\naudience = {AUDIENCE}\n"
                f"jwks_file = {jwks}\n\n[grant \"ssf\"]\n"
                "match = oauth_scope:ssf.manage\nrole = admin\n")
    q.start()
    rsa = keys["rsa"]
    for c in (claims(scope="ssf.read ssf.manage"), claims(scp="ssf.manage")):
        r = Api(q.port, jwt(rsa, c)).get("/api/v1/tokens")
        assert r.status == 200, f"{c}: {r}"
    r = Api(q.port, jwt(rsa, claims(scope="ssf.read"))).get("/api/v1/tokens")
    assert r.status == 403, r
    assert r.headers["www-authenticate"] == \
        'Bearer realm="quell", error="insufficient_scope"', r.headers
    # an app role of the same name is not a scope
    r = Api(q.port, jwt(rsa, claims(roles=["ssf.manage"]))).get("/api/v1/tokens")
    assert r.status == 403, r
    refused(q, jwt(rsa, claims(scope=7)), "malformed scope claim")
    r = Api(q.port).get("/api/v1/tokens", token=jwt(rsa, claims(exp=1)))
    assert r.headers["www-authenticate"] == \
        'Bearer realm="quell", error="invalid_token"', r.headers
    r = Api(q.port).get("/api/v1/tokens", token=None)
    assert r.status == 401 and r.headers["www-authenticate"] == 'Bearer realm="quell"'


def test_unknown_kid_reloads_once_a_minute(oidc_quelld, keys):
    q = oidc_quelld
    assert reloads(q) == 0
    # published after quelld read the set: found by the reload an unknown kid causes
    write_jwks(q.jwks, keys["rsa"], keys["ec"], keys["late"])
    r = Api(q.port).get("/api/v1/whoami", token=jwt(keys["late"]))
    assert r.status == 200, r
    wait_for(lambda: reloads(q) == 1, 10, what="the jwks reload log line")
    # never published: refused, and within the minute no further reload
    refused(q, jwt(keys["never"]), "unknown key id")
    refused(q, jwt(keys["never"], kid="another-unknown-kid"), "unknown key id")
    assert reloads(q) == 1
    # the keys already known keep working
    assert Api(q.port).get("/api/v1/whoami", token=jwt(keys["ec"])).status == 200


class JwksServer:
    """A tiny HTTP server for the JWK Set; counts the fetches."""

    def __init__(self, body):
        self.body, self.hits = body, 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits += 1
                code, data = (200, outer.body) if self.path == "/keys" else (404, b"{}")
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.single_node("counts one process's JWKS fetches")
def test_jwks_url(quelld, keys):
    srv = JwksServer(json.dumps({"keys": [keys["ec"].jwk()]}).encode())
    try:
        q = with_oidc(quelld, issuer=ISSUER, audience=AUDIENCE,
                      jwks_url=f"http://127.0.0.1:{srv.port}/keys", allow_plaintext="yes")
        assert srv.hits == 1
        r = Api(q.port).get("/api/v1/whoami", token=jwt(keys["ec"]))
        assert r.status == 200, r
        assert r.json["permissions"] == []  # no default_role: no permissions
        assert Api(q.port, jwt(keys["ec"])).get("/api/v1/identities").status == 403
        # rotation at the issuer: the next unknown kid fetches the set again
        srv.body = json.dumps({"keys": [keys["ec"].jwk(), keys["late"].jwk()]}).encode()
        r = Api(q.port).get("/api/v1/whoami", token=jwt(keys["late"]))
        assert r.status == 200, r
        assert srv.hits == 2
        refused(q, jwt(keys["never"]), "unknown key id")
        assert srv.hits == 2
    finally:
        srv.close()


@pytest.mark.parametrize("oidc,reason", [
    ({"issuer": ISSUER, "audience": AUDIENCE, "jwks_url": "http://127.0.0.1:9/k"},
     "jwks_url must be https://"),
    ({"issuer": ISSUER, "jwks_file": "/nonexistent"}, "needs issuer and audience"),
    ({"issuer": ISSUER, "audience": AUDIENCE}, "needs one of jwks_file or jwks_url"),
    ({"issuer": ISSUER, "audience": AUDIENCE, "jwks_file": "/nonexistent"},
     "cannot open /nonexistent"),
    ({"issuer": ISSUER, "audience": AUDIENCE, "jwks_file": "/dev/null",
      "leeway_s": "301"}, "leeway_s must be a number from 0 to 300"),
    ({"issuer": ISSUER, "audience": AUDIENCE, "jwks_file": "/dev/null",
      "default_role": "nosuchrole"}, "unknown role 'nosuchrole'"),
    ({"issuer": ISSUER, "audience": AUDIENCE, "jwks_file": "/dev/null",
      "colour": "blue"}, "unknown key 'colour' in [oidc]"),
    # the console's sign-in (authorization code + PKCE)
    ({"issuer": ISSUER, "audience": AUDIENCE, "jwks_file": "/dev/null",
      "client_id": "quell"}, "client_id needs authorization_endpoint and token_endpoint"),
    ({"issuer": ISSUER, "audience": AUDIENCE, "jwks_file": "/dev/null",
      "token_endpoint": "https://idp.test/token"}, "go with client_id"),
    ({"issuer": ISSUER, "audience": AUDIENCE, "jwks_file": "/dev/null", "client_id": "quell",
      "authorization_endpoint": "http://idp.test/authorize",
      "token_endpoint": "https://idp.test/token"},
     "authorization_endpoint must be an https:// URL"),
    ({"issuer": ISSUER, "audience": AUDIENCE, "jwks_file": "/dev/null", "client_id": "quell",
      "authorization_endpoint": "https://idp.test/authorize",
      "token_endpoint": "https://idp.test/token", "client_secret_file": "/nonexistent"},
     "client_secret_file /nonexistent: No such file or directory"),
    ({"issuer": ISSUER, "audience": AUDIENCE, "jwks_file": "/dev/null", "client_id": "quell",
      "authorization_endpoint": "https://idp.test/authorize",
      "token_endpoint": "https://idp.test/token", "client_secret_file": "/dev/null"},
     "client_secret_file /dev/null: not a regular file"),
])
def test_config_errors(quelld, oidc, reason):
    q = quelld(start=False)
    base = len(q.conf.read_text().splitlines())
    q.conf.write_text(q.conf.read_text() + "\n[oidc]\n" +
                      "".join(f"{k} = {v}\n" for k, v in oidc.items()))
    r = subprocess.run([str(QUELLD), "-c", str(q.conf)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode != 0
    assert reason in r.stderr, r.stderr
    # file:line of the offending key, or of the section header
    lines = [str(base + 2)] + [str(base + 3 + i) for i in range(len(oidc))]
    assert any(f"{q.conf}:{n}: " in r.stderr for n in lines), r.stderr


def test_client_secret_file_readable_by_everyone_refused(quelld, tmp_path):
    q = quelld(start=False)
    secret = tmp_path / "client.secret"
    secret.write_text("s3cret-value\n")
    secret.chmod(0o644)
    base = len(q.conf.read_text().splitlines())
    q.conf.write_text(q.conf.read_text() + "\n[oidc]\n" + "".join(f"{k} = {v}\n" for k, v in {
        "issuer": ISSUER, "audience": AUDIENCE, "jwks_file": "/dev/null", "client_id": "quell",
        "authorization_endpoint": "https://idp.test/authorize",
        "token_endpoint": "https://idp.test/token", "client_secret_file": secret,
        "redirect_uri": "https://quell.test/api/v1/session/oidc/callback"}.items()))
    r = subprocess.run([str(QUELLD), "-c", str(q.conf), "check"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1, r.stderr
    assert f"{q.conf}:{base + 9}: client_secret_file {secret}: readable by everyone " \
           "(mode 644)" in r.stderr, r.stderr
    assert "s3cret-value" not in r.stderr
    secret.chmod(0o640)
    r = subprocess.run([str(QUELLD), "-c", str(q.conf), "check"], capture_output=True,
                       text=True, timeout=60)
    assert "readable by everyone" not in r.stderr, r.stderr
