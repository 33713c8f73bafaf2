#!/bin/sh
# The man pages are clean: `mandoc -T lint -W warning` prints nothing and succeeds on
# each, and, when man-db is installed, `man --warnings` renders each without a warning.
# Usage: man-lint.sh PAGE...   Exit 0 clean, 1 a page has a problem, 77 (meson: skipped)
# mandoc is not installed.
set -u

if [ "$#" -eq 0 ]; then
	echo "usage: man-lint.sh PAGE..." >&2
	exit 2
fi
if ! command -v mandoc >/dev/null 2>&1; then
	echo "man-lint: mandoc is not installed (apt-get install mandoc): skipped" >&2
	exit 77
fi

# Render at a fixed width and in a fixed locale so the result does not depend on the
# terminal or the environment the tests run in.
LC_ALL=C.UTF-8
MANWIDTH=80
export LC_ALL MANWIDTH
unset MANPAGER PAGER MANOPT 2>/dev/null || true

# man-db's man (not mandoc's) takes --warnings and passes them to groff.
mandb=no
if command -v man >/dev/null 2>&1 && man --help 2>&1 | grep -q -e '--warnings'; then
	mandb=yes
fi

out=$(mktemp) || exit 1
trap 'rm -f "$out"' EXIT
rc=0
for page in "$@"; do
	if [ ! -r "$page" ]; then
		echo "man-lint: cannot read $page" >&2
		rc=1
		continue
	fi
	if ! mandoc -T lint -W warning "$page" >"$out" 2>&1 || [ -s "$out" ]; then
		echo "man-lint: mandoc -T lint -W warning $page:" >&2
		cat "$out" >&2
		rc=1
	fi
	if [ "$mandb" = yes ]; then
		if ! man --warnings -l "$page" 2>"$out" >/dev/null || [ -s "$out" ]; then
			echo "man-lint: man --warnings -l $page:" >&2
			cat "$out" >&2
			rc=1
		fi
	fi
done
[ "$rc" -eq 0 ] && echo "man-lint: $# page(s) clean"
exit "$rc"
