#!/usr/bin/env python3
"""
Counts one test run's results for scripts/test.sh: prints "PASSED FAILED SKIPPED" on
stdout and appends one line per skipped test ("name<TAB>reason") to the skip list.

  tally.py meson TESTLOG.json SKIPLIST   meson's JSON log; a cmocka program (run with
                                         CMOCKA_MESSAGE_OUTPUT=tap) counts each of its
                                         tests, any other program counts once
  tally.py pytest OUTPUT SKIPLIST        pytest -rs output: closing line, SKIPPED lines
  tally.py node OUTPUT SKIPLIST          node --test TAP output
  tally.py skips SKIPLIST EXPECTED       prints each skip, marked expected (a line of
                                         EXPECTED: shell pattern, tab, why) or not;
                                         the last line is the number not expected

A run that ended without its summary counts as one failure, so a crash never reads as
success.
"""
import fnmatch
import json
import re
import sys

TAP = re.compile(r"^(not ok|ok) \d+(?: - ([^#]*))?(?:#\s*(SKIP|TODO)\b\s*(.*))?$", re.I)


def meson(path, skips):
    p = f = s = 0
    with open(path) as log:
        for line in log:
            t = json.loads(line)
            name, result, out = t["name"], t["result"], t.get("stdout") or ""
            tap = [TAP.match(x) for x in out.splitlines()]
            tap = [m for m in tap if m]
            if result == "SKIP":
                s += 1
                reason = out.strip().splitlines()[-1] if out.strip() else "exit 77"
                skips.append((name, reason))
                continue
            if tap:
                for m in tap:
                    if m.group(3) and m.group(3).upper() == "SKIP":
                        s += 1
                        skips.append((f"{name}/{(m.group(2) or '').strip()}", m.group(4)))
                    elif m.group(1) == "ok":
                        p += 1
                    else:
                        f += 1
                # a program that failed after its last test line still fails
                if result != "OK" and not any(m.group(1) == "not ok" for m in tap):
                    f += 1
            elif result == "OK":
                p += 1
            else:
                f += 1
    return p, f, s


def pytest(path, skips):
    text = open(path, errors="replace").read()
    closing = [ln for ln in text.splitlines()
               if re.search(r"\d+ (passed|failed|errors?|skipped)", ln) and " in " in ln]
    if not closing:
        return 0, 1, 0
    last = closing[-1]

    def n(word):
        m = re.search(rf"(\d+) {word}", last)
        return int(m.group(1)) if m else 0
    for m in re.finditer(r"^SKIPPED \[(\d+)\] ([^:]+:\d+): (.*)$", text, re.M):
        skips.append((m.group(2), f"{m.group(3)} (x{m.group(1)})"))
    return n("passed"), n("failed") + n("errors?"), n("skipped")


def node(path, skips):
    text = open(path, errors="replace").read()

    def n(word):
        m = re.findall(rf"^# {word} (\d+)$", text, re.M)
        return int(m[-1]) if m else None
    p, f, s = n("pass"), n("fail"), n("skipped")
    if p is None or f is None:
        return 0, 1, 0
    for m in re.finditer(r"^\s*ok \d+ - (.*?) # SKIP\s*(.*)$", text, re.M):
        skips.append((m.group(1), m.group(2) or "skipped"))
    return p, f, s or 0


def verdict(skiplist, expected):
    pats = []
    for line in open(expected):
        if line.strip() and not line.startswith("#"):
            pat, _, why = line.rstrip("\n").partition("\t")
            pats.append((pat, why))
    unexpected = 0
    for line in open(skiplist):
        name, _, why = line.rstrip("\n").partition("\t")
        hit = next((b for p, b in pats if fnmatch.fnmatchcase(name, p)), None)
        print(f"  {name}: {why} ({'expected: ' + hit if hit is not None else 'unexpected'})")
        unexpected += hit is None
    print(unexpected)


def main():
    if sys.argv[1] == "skips":
        verdict(sys.argv[2], sys.argv[3])
        return
    kind, path, skiplist = sys.argv[1:4]
    skips = []
    p, f, s = {"meson": meson, "pytest": pytest, "node": node}[kind](path, skips)
    with open(skiplist, "a") as out:
        for name, why in skips:
            out.write(f"{name}\t{why}\n")
    print(p, f, s)


if __name__ == "__main__":
    main()
