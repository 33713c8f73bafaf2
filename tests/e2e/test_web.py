"""The web console in a real browser: starts quelld with the Samba lab, makes the users
and tokens the scenarios need, and runs tests/web/ (node:test + playwright-core driving
Debian's chromium headless) against it. Fails when node fails."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO

CHROMIUM = os.environ.get("QUELL_CHROMIUM", "/usr/bin/chromium")
PLAYWRIGHT = REPO / "tests" / "contract" / "node_modules" / "playwright-core"


def test_web_console(lab, quelld, make_user, tmp_path):
    if not Path(CHROMIUM).exists() or not PLAYWRIGHT.is_dir() or not shutil.which("node"):
        pytest.skip("needs chromium and playwright-core: scripts/deps.sh --test")
    q = quelld()
    # a display name with markup in it: the console must show it as text
    target = make_user(q, "web", cn=f"Web <b>target</b> {lab.tag}")
    artifacts = Path(os.environ.get("QUELL_WEB_ARTIFACTS",
                                    os.environ.get("QUELL_BUILD", ".") + "/web-artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ,
               QUELL_WEB_URL=f"http://127.0.0.1:{q.port}",
               QUELL_WEB_ADMIN=q.tokens["admin"],
               QUELL_WEB_RESPONDER=q.tokens["responder"],
               QUELL_WEB_VIEWER=q.tokens["viewer"],
               QUELL_WEB_TARGET_SAM=target.sam,
               QUELL_WEB_TARGET_ID=target.identity_id,
               QUELL_WEB_ARTIFACTS=str(artifacts.resolve()),
               QUELL_CHROMIUM=CHROMIUM,
               NODE_PATH=str(PLAYWRIGHT.parent))
    r = subprocess.run(["node", "--test", "--test-concurrency=1", "--test-reporter=spec",
                        str(REPO / "tests" / "web")],
                       env=env, capture_output=True, text=True, timeout=900)
    print(r.stdout[-20000:])
    print(r.stderr[-5000:])
    assert r.returncode == 0, "node --test tests/web failed (output above)"
    # the browser's Disable reached AD: Kerberos refuses the account
    rc, out = lab.kinit(target.sam, target.password)
    assert rc != 0 and "revoked" in out.lower(), f"kinit {target.sam}: {out}"
    for shot in ("identity.png", "confirm.png", "action-center.png"):
        assert (artifacts / shot).stat().st_size > 0, shot
