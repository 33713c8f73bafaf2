#!/usr/bin/env python3
"""
scripts/lib/tally.py, which scripts/test.sh trusts for its closing line: each cmocka
test counts, a crashed program or a run without its summary counts as a failure, and
every skip is listed and, unless tests/expected-skips names it, unexpected (which CI
counts as a failure). Runs on logs made here, shaped like meson's, pytest's and node's.
"""
import json
import os
import subprocess
import sys
import tempfile

TALLY = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "lib", "tally.py")


def tally(*args):
    r = subprocess.run([sys.executable, TALLY, *args], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def main():
    d = tempfile.mkdtemp()
    skiplist = os.path.join(d, "skipped.txt")
    open(skiplist, "w").close()

    log = os.path.join(d, "testlog.json")
    with open(log, "w") as f:
        for t in (
            {"name": "core", "result": "OK", "stdout": "1..3\nok 1 - a\nok 2 - b\nok 3 - c\n"},
            {"name": "store", "result": "FAIL", "stdout": "1..2\nok 1 - a\nnot ok 2 - b\n"},
            {"name": "crash", "result": "FAIL", "stdout": "1..2\nok 1 - a\n"},
            {"name": "provider_okta", "result": "SKIP", "stdout": "no Prism\n"},
            {"name": "man-lint", "result": "OK", "stdout": ""},
        ):
            f.write(json.dumps(t) + "\n")
    # 3 + 1 + 1 + 1 passed; store's "not ok" and crash's death after its last line
    assert tally("meson", log, skiplist) == "6 2 1\n"

    out = os.path.join(d, "pytest.txt")
    with open(out, "w") as f:
        f.write(".s.F\nSKIPPED [2] tests/e2e/cloud/conftest.py:24: not installed: prism\n"
                "1 failed, 2 passed, 2 skipped in 3.10s\n")
    assert tally("pytest", out, skiplist) == "2 1 2\n"
    with open(out, "w") as f:
        f.write("Segmentation fault\n")
    assert tally("pytest", out, skiplist) == "0 1 0\n", "no closing line is a failure"

    with open(out, "w") as f:
        f.write("ok 1 - seeds # SKIP no node\n# pass 3\n# fail 0\n# skipped 1\n")
    assert tally("node", out, skiplist) == "3 0 1\n"

    expected = os.path.join(d, "expected")
    with open(expected, "w") as f:
        f.write("# comment\nprovider_okta\tno vendor sandbox here\n")
    lines = tally("skips", skiplist, expected).splitlines()
    assert lines[-1] == "2", lines  # the cloud tests and the node test are unexpected
    assert any("provider_okta" in x and "expected: no vendor sandbox" in x for x in lines)
    assert any("tests/e2e/cloud/conftest.py:24" in x and "(unexpected)" in x for x in lines)
    print("ok")


if __name__ == "__main__":
    main()
