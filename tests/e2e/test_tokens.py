"""The API token lifecycle through the whole daemon and the CLI: listing without
secrets, revocation that holds at the next request on every node (console sessions
too) and is audited, expiry, the configured maximum lifetime, the CLI's token files,
and no secret in quelld's log."""
import json
import os
import re
import stat
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from conftest import QUELLD, Api, wait_for

TOKEN_RE = re.compile(r"qt_[0-9a-f]{24}\.[A-Za-z0-9_-]{43}")


def cli_path():
    return Path(os.environ["QUELL_BUILD"]) / "src" / "cli" / "quell"


def quell(q, *args, token=None, token_file=None, stdout=subprocess.PIPE, tmp=None):
    """Runs the CLI against q (as admin unless told otherwise); stdout may be a file."""
    tf = token_file
    if tf is None:
        tf = Path(tmp) / f"cli-{os.getpid()}.token"
        tf.write_text((token or q.tokens["admin"]) + "\n")
        os.chmod(tf, 0o600)
    env = {"QUELL_URL": f"http://127.0.0.1:{q.port}", "QUELL_TOKEN_FILE": str(tf),
           "PATH": "/usr/bin:/bin", "HOME": str(tmp or "/nonexistent")}
    return subprocess.run([str(cli_path()), *args], stdout=stdout, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, text=True, env=env, timeout=60)


def ms(t):
    return datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() * 1000


def tokens(api):
    out, after = [], None
    while True:
        j = api.ok("GET", "/api/v1/tokens?limit=1000" + (f"&after={after}" if after else ""))
        out += j["tokens"]
        if j["next"] is None:
            return out
        after = j["next"]


def by_id(api, tid):
    (t,) = [t for t in tokens(api) if t["id"] == tid]
    return t


def assert_no_secret_logged(q, secrets_):
    log = q.log.read_text(errors="replace") if q.log.exists() else ""
    for s in secrets_:
        assert s.split(".")[1] not in log, "a token's secret is in quelld's log"
    assert not TOKEN_RE.search(log), "a whole token is in quelld's log"


def denials_after(api, seq):
    return [e for e in api.audit_after(seq) if e["event"] == "auth.failed"]


def test_list_shows_no_secret(quelld, tmp_path):
    q = quelld()
    made = q.admin.ok("POST", "/api/v1/tokens", {"name": "soc-bot", "role": "responder",
                                                 "scope": ["staff"], "expires_in": "30d"},
                      want=(201,))
    assert made["expires_at"] is not None
    r = q.admin.get("/api/v1/tokens")
    assert r.status == 200, r
    raw = r.raw.decode()
    for secret in [made["token"], *q.tokens.values()]:
        assert secret.split(".")[1] not in raw
    listed = {t["name"]: t for t in r.json["tokens"]}
    assert set(listed) >= {"soc-bot", "e2e-admin", "e2e-viewer", "e2e-responder"}
    for t in r.json["tokens"]:
        assert set(t) == {"id", "name", "role", "scope", "status", "created_at",
                          "last_used_at", "expires_at", "revoked", "revoked_at",
                          "revoked_by"}, t
    bot = listed["soc-bot"]
    assert bot["id"] == made["id"] and bot["role"] == "responder"
    assert bot["scope"] == ["staff"] and bot["status"] == "active"
    assert bot["revoked"] is False and bot["revoked_at"] is None
    assert bot["last_used_at"] is None  # never used yet
    assert ms(bot["expires_at"]) - ms(bot["created_at"]) == 30 * 86400 * 1000
    assert listed["e2e-admin"]["last_used_at"] is not None  # this very request used it
    assert listed["e2e-viewer"]["expires_at"] is None  # no expiry, no maximum: never

    q.admin.as_(made["token"]).ok("GET", "/api/v1/whoami")
    assert by_id(q.admin, made["id"])["last_used_at"] is not None

    # pages, by id
    first = q.admin.ok("GET", "/api/v1/tokens?limit=2")
    assert len(first["tokens"]) == 2 and first["next"] == first["tokens"][1]["id"]
    rest = q.admin.ok("GET", f"/api/v1/tokens?after={first['next']}&limit=1000")
    assert [t["id"] for t in first["tokens"] + rest["tokens"]] == \
        sorted(t["id"] for t in r.json["tokens"])
    assert q.admin.get("/api/v1/tokens?after=nope").error["field"] == "after"

    r = quell(q, "token", "list", tmp=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "soc-bot" in r.stdout and made["id"] in r.stdout and "LAST USED" in r.stdout
    r2 = quell(q, "--json", "token", "list", tmp=tmp_path)
    assert r2.returncode == 0, r2.stderr
    assert {t["name"] for t in json.loads(r2.stdout)["tokens"]} >= {"soc-bot"}
    for out in (r.stdout, r2.stdout):
        assert not TOKEN_RE.search(out)
        for secret in [made["token"], *q.tokens.values()]:
            assert secret.split(".")[1] not in out
    assert_no_secret_logged(q, [made["token"], *q.tokens.values()])


@pytest.mark.sqlite("two nodes on one SQLite file (PostgreSQL's: every test of QUELL_E2E_NODES=2)")
def test_revoke_refuses_at_once_on_every_node_and_is_audited(quelld, tmp_path):
    a = quelld(name="node-a")
    # a second node on the same store: it shares nothing with the first but the database
    b = quelld(name="node-b", start=False)
    b.conf.write_text(b.conf.read_text().replace(str(b.db), str(a.db))
                      .replace("node_id = e2e", "node_id = e2e-b"))
    b.start()
    made = a.admin.ok("POST", "/api/v1/tokens", {"name": "leaver", "role": "responder"},
                      want=(201,))
    tok = made["token"]
    on_b = Api(b.port, tok)
    assert on_b.ok("GET", "/api/v1/whoami")["name"] == "leaver"
    # a console session signed in with it, on node b
    r = on_b.post("/api/v1/session", {"token": tok}, token=None)
    assert r.status == 200, r
    cookie = r.headers["set-cookie"].split(";")[0]
    assert on_b.get("/api/v1/whoami", token=None, headers={"Cookie": cookie}).status == 200

    seq = a.admin.audit_count()
    r = quell(a, "token", "revoke", "leaver", "--reason", "left the team", tmp=tmp_path)
    assert r.returncode == 0, r.stderr
    assert made["id"] in r.stdout and "revoked" in r.stdout

    # the very next request, on the other node, is refused
    r = on_b.get("/api/v1/whoami")
    assert r.status == 401, r
    assert r.error["code"] == "unauthenticated" and "token revoked" in r.error["message"]
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = Api(a.port, tok).get("/api/v1/actions")
    assert r.status == 401 and "token revoked" in r.error["message"], r
    r = on_b.get("/api/v1/whoami", token=None, headers={"Cookie": cookie})
    assert r.status == 401 and "token revoked" in r.error["message"], r

    # node b counts repeated anonymous refusals until its audit log is read (or a
    # minute passes): reading it there writes them
    Api(b.port, a.tokens["admin"]).ok("GET", "/api/v1/audit/verify")
    new = a.admin.audit_after(seq)
    (rev,) = [e for e in new if e["event"] == "token.revoked"]
    assert rev["actor"] == "e2e-admin"
    assert rev["detail"]["token_id"] == made["id"] and rev["detail"]["name"] == "leaver"
    assert rev["detail"]["reason"] == "left the team"
    assert rev["detail"]["revoked_by_id"] == a.tokens["admin"].split(".")[0]
    refused = [e for e in new if e["event"] == "auth.failed"]
    assert sum(e["detail"]["count"] for e in refused) == 3, refused
    assert all("token revoked" in e["detail"]["why"] for e in refused)
    assert all(tok.split(".")[1] not in json.dumps(e) for e in new)

    t = by_id(a.admin, made["id"])
    assert t["status"] == "revoked" and t["revoked"] is True
    assert t["revoked_by"] == "e2e-admin" and t["revoked_at"] is not None

    # a second revocation changes nothing: by id through the API (409), by name (3)
    r = a.admin.post(f"/api/v1/tokens/{made['id']}/revoke")
    assert r.status == 409 and r.error["code"] == "conflict", r
    r = quell(a, "token", "revoke", made["id"], tmp=tmp_path)
    assert r.returncode == 3 and "already revoked" in r.stderr, r
    r = quell(a, "token", "revoke", "leaver", tmp=tmp_path)
    assert r.returncode == 3 and "already revoked" in r.stderr, r
    r = quell(a, "token", "revoke", "nobody-has-this", tmp=tmp_path)
    assert r.returncode == 3 and "no token is named" in r.stderr, r
    r = a.admin.post("/api/v1/tokens/qt_" + "0" * 24 + "/revoke")
    assert r.status == 404, r
    r = a.admin.post("/api/v1/tokens/not-an-id/revoke")
    assert r.status == 400 and r.error["field"] == "token_id", r
    r = a.admin.post(f"/api/v1/tokens/{made['id']}/revoke", {"why": "x"})
    assert r.status == 400, r

    # a name held by two live tokens is ambiguous: the id must be given
    for _ in range(2):
        a.admin.ok("POST", "/api/v1/tokens", {"name": "twin", "role": "viewer"}, want=(201,))
    r = quell(a, "token", "revoke", "twin", tmp=tmp_path)
    assert r.returncode == 2 and "give its id" in r.stderr, r
    assert all(t["status"] == "active" for t in tokens(a.admin) if t["name"] == "twin")
    assert a.admin.ok("GET", "/api/v1/audit/verify")["ok"] is True
    assert_no_secret_logged(a, [tok, *a.tokens.values()])
    assert_no_secret_logged(b, [tok, *b.tokens.values()])


def test_expired_token_refused_with_reason(quelld, tmp_path):
    q = quelld()
    out = tmp_path / "short.token"
    with open(out, "w") as f:
        r = quell(q, "token", "create", "--name", "brief", "--role", "viewer",
                  "--expires", "2s", stdout=f, tmp=tmp_path)
    assert r.returncode == 0, r.stderr
    tok = out.read_text().strip()
    tid = tok.split(".")[0]
    t = by_id(q.admin, tid)
    assert ms(t["expires_at"]) - ms(t["created_at"]) == 2000
    seq = q.admin.audit_count()
    api = q.admin.as_(tok)
    r = wait_for(lambda: (lambda x: x if x.status == 401 else None)(api.get("/api/v1/whoami")),
                 30, 0.2, what="the token to expire")
    assert r.error["code"] == "unauthenticated" and "token expired" in r.error["message"]
    refused = denials_after(q.admin, seq)
    assert refused and "token expired" in refused[-1]["detail"]["why"]
    assert by_id(q.admin, tid)["status"] == "expired"
    # the CLI says why too, with the API's exit status
    r = quell(q, "whoami", token_file=out, tmp=tmp_path)
    assert r.returncode == 3 and "token expired" in r.stderr, r
    # an expired token can still be revoked, and then says so
    assert q.admin.ok("POST", f"/api/v1/tokens/{tid}/revoke")["status"] == "revoked"
    assert "token revoked" in api.get("/api/v1/whoami").error["message"]
    assert_no_secret_logged(q, [tok, *q.tokens.values()])


def test_max_lifetime_enforced(quelld, tmp_path):
    q = quelld(server={"token_max_lifetime": "1h"})
    # every create route refuses more than the maximum, naming what is at fault
    r = q.admin.post("/api/v1/tokens", {"name": "long", "role": "viewer",
                                        "expires_in": "2h"})
    assert r.status == 400 and r.error["field"] == "expires_in", r
    assert "token_max_lifetime = 1h" in r.error["message"], r
    r = quell(q, "token", "create", "--name", "long", "--role", "viewer", "--expires", "2h",
              tmp=tmp_path)
    assert r.returncode == 3 and "token_max_lifetime" in r.stderr, r
    r = subprocess.run([str(QUELLD), "-c", str(q.conf), "token", "create", "--name", "long",
                        "--role", "viewer", "--expires", "61m"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "token_max_lifetime" in r.stderr and not r.stdout, r
    assert not [t for t in tokens(q.admin) if t["name"] == "long"]

    for bad in ("30", "1w", "-1h", "0s", "1.5h", "", 5):
        r = q.admin.post("/api/v1/tokens", {"name": "bad", "role": "viewer",
                                            "expires_in": bad})
        assert r.status == 400 and r.error["field"] == "expires_in", (bad, r)
    r = quell(q, "token", "create", "--name", "bad", "--role", "viewer", "--expires", "30",
              tmp=tmp_path)
    assert r.returncode == 2 and "--expires" in r.stderr, r
    assert not [t for t in tokens(q.admin) if t["name"] == "bad"]

    # without an expiry the maximum applies; at the maximum, it is accepted
    plain = q.admin.ok("POST", "/api/v1/tokens", {"name": "plain", "role": "viewer"},
                       want=(201,))
    t = by_id(q.admin, plain["id"])
    assert ms(t["expires_at"]) - ms(t["created_at"]) == 3600 * 1000
    assert plain["expires_at"] == t["expires_at"]
    r = subprocess.run([str(QUELLD), "-c", str(q.conf), "token", "create", "--name", "boot",
                        "--role", "viewer", "--expires", "1h"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and TOKEN_RE.fullmatch(r.stdout.strip()), r
    t = by_id(q.admin, r.stdout.strip().split(".")[0])
    assert ms(t["expires_at"]) - ms(t["created_at"]) == 3600 * 1000
    # the tokens quelld made at the start (no --expires) got the maximum too
    assert by_id(q.admin, q.tokens["viewer"].split(".")[0])["expires_at"] is not None

    # the key itself is validated at load, naming file and line
    conf = tmp_path / "bad.conf"
    conf.write_text(q.conf.read_text().replace("token_max_lifetime = 1h",
                                               "token_max_lifetime = 90"))
    r = subprocess.run([str(QUELLD), "-c", str(conf), "check"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0 and f"{conf}:" in r.stderr, r
    assert "token_max_lifetime must be a span" in r.stderr, r
    assert_no_secret_logged(q, [plain["token"], *q.tokens.values()])


def test_output_file_is_0600_and_never_overwritten(quelld, tmp_path):
    q = quelld()
    dest = tmp_path / "ci.token"
    r = quell(q, "token", "create", "--name", "ci", "--role", "viewer", "--expires", "1d",
              "--output", str(dest), tmp=tmp_path)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    text = dest.read_text()
    assert TOKEN_RE.fullmatch(text.rstrip("\n")) and text.endswith("\n")
    tok = text.strip()
    assert tok not in r.stdout and tok.split(".")[1] not in r.stderr
    assert tok.split(".")[0] in r.stdout and str(dest) in r.stdout
    who = quell(q, "--json", "whoami", token_file=dest, tmp=tmp_path)
    assert who.returncode == 0 and json.loads(who.stdout)["name"] == "ci", who

    # an existing file is refused before anything is made, and left as it was
    r = quell(q, "token", "create", "--name", "ci", "--role", "viewer", "--output",
              str(dest), tmp=tmp_path)
    assert r.returncode == 2 and "already exists" in r.stderr, r
    assert dest.read_text() == text
    assert len([t for t in tokens(q.admin) if t["name"] == "ci"]) == 1
    # a link planted in its place is not followed
    target = tmp_path / "elsewhere"
    link = tmp_path / "link.token"
    link.symlink_to(target)
    r = quell(q, "token", "create", "--name", "ci2", "--role", "viewer", "--output",
              str(link), tmp=tmp_path)
    assert r.returncode == 2 and not target.exists(), r
    # a refused create leaves no empty file behind
    gone = tmp_path / "refused.token"
    r = quell(q, "token", "create", "--name", "x", "--role", "no-such-role", "--output",
              str(gone), tmp=tmp_path)
    assert r.returncode == 3 and not gone.exists(), r
    # --json with --output: the answer without the secret
    j = tmp_path / "j.token"
    r = quell(q, "--json", "token", "create", "--name", "cj", "--role", "viewer",
              "--output", str(j), tmp=tmp_path)
    assert r.returncode == 0, r.stderr
    ans = json.loads(r.stdout)
    assert "token" not in ans and ans["id"] == j.read_text().split(".")[0]
    assert_no_secret_logged(q, [tok, j.read_text().strip(), *q.tokens.values()])


def test_create_redirected_is_a_token_file(quelld, tmp_path):
    q = quelld()
    dest = tmp_path / "redirected.token"
    with open(dest, "w") as f:
        r = quell(q, "token", "create", "--name", "piped", "--role", "responder",
                  "--scope", "staff", stdout=f, tmp=tmp_path)
    assert r.returncode == 0, r.stderr
    text = dest.read_text()
    assert TOKEN_RE.fullmatch(text.rstrip("\n")) and text.count("\n") == 1, text
    # the details went to standard error, without the secret
    assert text.split(".")[0] in r.stderr and text.strip().split(".")[1] not in r.stderr
    os.chmod(dest, 0o600)
    who = quell(q, "--json", "whoami", token_file=dest, tmp=tmp_path)
    assert who.returncode == 0, who
    assert json.loads(who.stdout)["name"] == "piped"
    assert json.loads(who.stdout)["role"] == "responder"
    assert_no_secret_logged(q, [text.strip(), *q.tokens.values()])
