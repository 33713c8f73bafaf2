"""quell(1) as an analyst meets it: help, suggestions for typos, the completion
script, hunt's documented row limit, hunt --then skipping what cannot be acted on,
and an alert shown as text."""
import re
import subprocess

from conftest import QUELLD, wait_for
from test_disruption import alert, ref, with_rules

QUELL = QUELLD.parent.parent / "cli" / "quell"


def run(*args, env=None):
    return subprocess.run([str(QUELL), *args], capture_output=True, text=True,
                          env=env or {"PATH": "/usr/bin:/bin"}, timeout=60,
                          stdin=subprocess.DEVNULL, start_new_session=True)


def env_for(q, tmp_path, who="admin"):
    tok = tmp_path / "tok"
    tok.write_text(q.tokens[who])
    return {"QUELL_URL": f"http://127.0.0.1:{q.port}", "QUELL_TOKEN_FILE": str(tok),
            "PATH": "/usr/bin:/bin"}


def test_help_typos_and_completion():
    r = run("help", "disable")
    assert r.returncode == 0 and r.stdout.startswith("usage: quell disable"), r
    assert "-y, --yes" in r.stdout
    assert run("help").stdout == run("--help").stdout
    r = run("disbale", "x", "--reason", "y")
    assert r.returncode == 2 and "did you mean 'disable'?" in r.stderr, r
    r = run("disable", "x", "--reasn", "y")
    assert r.returncode == 2 and "did you mean --reason?" in r.stderr, r
    r = run("completion", "bash")
    assert r.returncode == 0 and "complete -F _quell quell" in r.stdout, r
    # the script completes a command and its options in bash itself
    script = r.stdout + '\nCOMP_WORDS=(quell revoke-s); COMP_CWORD=1; _quell; ' \
        'echo "${COMPREPLY[@]}"\nCOMP_WORDS=(quell hunt q --li); COMP_CWORD=3; ' \
        '_quell; echo "${COMPREPLY[@]}"\n'
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                         timeout=30).stdout.splitlines()
    assert out == ["revoke-sessions", "--limit"], out
    installed = QUELLD.parent.parent / "cli" / "completion" / "quell"
    assert installed.read_text() == r.stdout


def test_hunt_limit_and_then_skips(lab, quelld, make_user, tmp_path):
    q = quelld()
    a, b = make_user(q, "cla"), make_user(q, "clb")
    env = env_for(q, tmp_path)
    r = run("hunt", "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
            "WHERE x < 20000) SELECT x FROM c", "--limit", "10000", env=env)
    assert r.returncode == 0, r
    assert len(r.stdout.splitlines()) == 10001, len(r.stdout.splitlines())  # + header
    assert run("hunt", "SELECT 1", "--limit", "10001", env=env).returncode == 2
    # AD cannot revoke sessions: both identities are skipped and named, nothing aborts
    sql = ("SELECT identity_id FROM IdentityAccounts WHERE username IN "
           f"('{a.sam}', '{b.sam}')")
    before = q.admin.actions_all()
    r = run("hunt", sql, "--then", "revoke_sessions", "--reason", "hunt", "-y", env=env)
    assert r.returncode == 0, r
    assert a.identity_id in r.stderr and b.identity_id in r.stderr, r.stderr
    assert "2 of 2 identities skipped" in r.stderr, r.stderr
    assert q.admin.actions_all() == before
    r = run("hunt", sql, "--then", "disable", "--reason", "hunt", "-y", env=env)
    assert r.returncode == 0 and r.stdout.count("action act_") == 2, r
    assert "skipped" not in r.stderr, r.stderr


def test_alert_as_text(lab, quelld, make_user, tmp_path):
    q = with_rules(quelld)
    u = make_user(q, "clt")
    body = alert(ref(u), category="password_spray")
    made = q.api("detector").post("/api/v1/alerts", body).json
    env = env_for(q, tmp_path)
    r = run("alert", made["id"], env=env)
    assert r.returncode == 0, r
    assert r.stdout.startswith("id:"), r.stdout
    assert "Decisions:" in r.stdout and "dry_run" in r.stdout, r.stdout
    # times with their zone's offset, ISO 8601
    assert re.search(r"^time: +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$", r.stdout,
                     re.M), r.stdout
    r = run("--json", "alert", made["id"], env=env)
    assert r.returncode == 0 and r.stdout.lstrip().startswith("{"), r


APPROVALS = """
[approval "tier0"]
tags = tier0
expire_after = 1h
"""


def test_preview_lines_undo_and_cancel(lab, quelld, make_user, tmp_path):
    q = quelld(start=False)
    with open(q.conf, "a") as f:
        f.write(APPROVALS)
    q.start()
    env = env_for(q, tmp_path)
    plain, off = make_user(q, "clp"), make_user(q, "clo", uac=514)
    dxp, vip = make_user(q, "clx", uac=66048), make_user(q, "clv")
    q.admin.ok("PUT", f"/api/v1/identities/{vip.identity_id}/tags", {"tags": ["tier0"]})
    before = q.admin.actions_all()
    # no terminal to ask on: the preview is shown, nothing is done (exit 5)
    r = run("disable", off.sam, "--reason", "r", env=env)
    assert r.returncode == 5 and "not confirmed" in r.stderr, r
    assert "already disabled: nothing to change" in r.stdout, r.stdout
    assert off.account["upn"] in r.stdout and " disabled " in r.stdout, r.stdout
    r = run("force-password-change", dxp.sam, "--reason", "r", env=env)
    assert r.returncode == 5, r
    assert "will be refused: password never expires is set" in r.stdout, r.stdout
    assert "(add --clear-dont-expire)" in r.stdout, r.stdout
    r = run("force-password-change", dxp.sam, "--reason", "r", "--clear-dont-expire",
            env=env)
    assert r.returncode == 5 and "will be refused" not in r.stdout, r.stdout
    r = run("disable", vip.identity_id, "--reason", "r", env=env)
    assert "will wait for approval (rule tier0)" in r.stdout, r.stdout
    assert "warning: the identity is tagged tier0" in r.stdout, r.stdout
    r = run("disable", "Administrator", "--reason", "r", env=env)
    assert r.returncode == 5, r
    assert "warning: corp/Administrator is the account quelld signs in to corp" \
        in r.stdout, r.stdout
    assert q.admin.actions_all() == before

    # cancel: what it will do, then the question
    r = run("disable", vip.identity_id, "--reason", "r", "-y", env=env)
    assert r.returncode == 0 and "pending_approval" in r.stdout, r
    aid = next(w for w in r.stdout.split() if w.startswith("act_"))
    r = run("cancel", aid, env=env)
    assert r.returncode == 5 and "waiting for approval: it ends at once" in r.stdout, r
    assert "will be cancelled before it starts" in r.stdout, r.stdout
    assert q.admin.action(aid)["status"] == "pending_approval"
    r = run("cancel", aid, "-y", env=env)
    assert r.returncode == 0 and q.admin.action(aid)["status"] == "cancelled", r

    # undo: the undo's own preview, then the question
    r = run("disable", plain.identity_id, "--reason", "r", "-y", env=env)
    aid = next(w for w in r.stdout.split() if w.startswith("act_"))
    assert q.admin.wait_terminal(aid)["status"] == "completed"
    n = len(q.admin.actions_all())
    r = run("undo", aid, "--reason", "fp", env=env)
    assert r.returncode == 5 and f"enable on {plain.identity_id} (undo of {aid})" \
        in r.stdout, r
    assert plain.sam in r.stdout and len(q.admin.actions_all()) == n
    r = run("undo", aid, "--reason", "fp", "-y", "--wait", env=env)
    assert r.returncode == 0 and len(q.admin.actions_all()) == n + 1, r
    assert lab.kinit(plain.sam, plain.password)[0] == 0


def test_term_matching_several_needs_all(lab, quelld, make_user, tmp_path):
    q = quelld()
    env = env_for(q, tmp_path)
    term = f"Twin {lab.tag}"
    b = make_user(q, "clt", cn=f"{term} b", sync=False)
    a = make_user(q, "clt", cn=f"{term} a")
    b.find(q)
    # listed by name, not in the API's id order
    out = run("identities", term, env=env).stdout
    assert out.index(f"{term} a") < out.index(f"{term} b"), out
    before = q.admin.actions_all()
    r = run("disable", term, "--reason", "r", "-y", env=env)
    assert r.returncode == 2 and "add --all to act on every one" in r.stderr, r
    assert a.identity_id in r.stderr and b.identity_id in r.stderr, r.stderr
    assert q.admin.actions_all() == before
    r = run("disable", term, "--reason", "r", "-y", "--all", env=env)
    assert r.returncode == 0 and r.stdout.count("action act_") == 2, r
    assert a.identity_id in r.stdout and b.identity_id in r.stdout, r.stdout
    # one match is acted on with --yes as before
    r = run("enable", a.sam, "--reason", "r", "-y", env=env)
    assert r.returncode == 0 and r.stdout.count("action act_") == 1, r


def test_release_previews_then_asks(lab, quelld, make_user, tmp_path):
    q = with_rules(quelld)
    env = env_for(q, tmp_path)
    u = make_user(q, "clr")
    made = q.api("detector").post("/api/v1/alerts", alert(ref(u))).json
    (dis,) = [a for a in made["actions"] if a["type"] == "disable"]
    assert q.admin.wait_terminal(dis["id"])["status"] == "completed"
    n = len(q.admin.actions_all())
    r = run("release", u.identity_id, "--reason", "fp", env=env)
    assert r.returncode == 5 and f"{dis['id']} disable: it will be undone" in r.stdout, r
    assert u.sam in r.stdout and len(q.admin.actions_all()) == n, r.stdout
    r = run("release", u.identity_id, "--reason", "fp", "-y", env=env)
    assert r.returncode == 0 and "undone by" in r.stdout, r
    wait_for(lambda: lab.kinit(u.sam, u.password)[0] == 0, 30, what="kinit after release")
