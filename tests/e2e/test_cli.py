"""quell(1) as an analyst meets it: help, suggestions for typos, the completion
script, hunt's documented row limit, hunt --then skipping what cannot be acted on,
and an alert shown as text."""
import re
import subprocess

from conftest import QUELLD
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
