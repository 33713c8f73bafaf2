#!/usr/bin/env bash
# The sandbox of quelld.service, scored by systemd-analyze security --offline: prints
# the score and fails above 2.0 ("OK" or better), or when the unit does not parse.
#   unit-security.sh UNIT
set -euo pipefail
unit=${1:?usage: unit-security.sh UNIT}
command -v systemd-analyze >/dev/null || { echo "systemd-analyze missing (scripts/deps.sh --test)"; exit 1; }
out=$(systemd-analyze security --offline=true --no-pager "$unit" 2>&1) || {
	printf '%s\n' "$out"
	exit 1
}
line=$(grep -E 'Overall exposure level' <<<"$out" || true)
score=$(sed -nE 's/.*: ([0-9]+\.[0-9]+) .*/\1/p' <<<"$line")
[ -n "$score" ] || { printf '%s\n' "$out"; echo "no score in systemd-analyze's output"; exit 1; }
grep -E '^✗' <<<"$out" | sed 's/  */ /g' || true
echo "quelld.service: systemd-analyze security score $score (at most 2.0)"
awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'
