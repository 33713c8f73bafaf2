#!/usr/bin/env bash
# Sets up and runs every test of quell: unit tests (cmocka), integration tests against a
# real Samba AD DC on 127.0.0.1, and end-to-end tests of the whole daemon (pytest) —
# once on a normal build and once under AddressSanitizer + UndefinedBehaviorSanitizer.
# The last line is the total: "N passed, N failed, N skipped"; under CI=true a skip
# not listed in tests/expected-skips is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

# Each part's header says how long the run has taken so far (kept across the exec below).
export QUELL_T0=${QUELL_T0:-$(date +%s)}
phase() {
	local t=$(($(date +%s) - QUELL_T0))
	printf '== %s [%d:%02d]\n' "$*" $((t / 60)) $((t % 60))
}

bash scripts/deps.sh --test

# The Debian package is built and installed on a fresh root file system first: apt
# there needs Debian's mirror, which the network namespace below cannot reach. Its
# checks ("ok: …" / "FAIL: …" lines) are counted with the rest.
if [ "$(id -u)" -eq 0 ] && [ -z "${QUELL_NETNS:-}" ]; then
	phase "Debian package (tests/package/deb.sh)"
	pkglog=$(mktemp "${TMPDIR:-/tmp}/quell-deb.XXXXXX.log")
	bash tests/package/deb.sh 2>&1 | tee "$pkglog" || true
	export QUELL_PKGLOG=$pkglog
fi

# As root, run in a network namespace of our own: the lab's Samba, quelld and the
# emulators get a private 127.0.0.1, so a test run never collides with a lab or a
# quelld already running on this machine, and never reaches anything outside.
if [ "$(id -u)" -eq 0 ] && [ -z "${QUELL_NETNS:-}" ]; then
	exec env QUELL_NETNS=1 unshare --net -- bash -c 'ip link set lo up && exec "$0" "$@"' \
	    "$top/scripts/test.sh" "$@"
fi

lab=$(mktemp -d "${TMPDIR:-/tmp}/quell-lab.XXXXXX")
results=$(mktemp -d "${TMPDIR:-/tmp}/quell-results.XXXXXX")
pg=$(mktemp -d "${TMPDIR:-/tmp}/quell-pg.XXXXXX")
cleanup() {
	[ -z "${fuzz_pid:-}" ] || kill "$fuzz_pid" 2>/dev/null || true
	bash scripts/lab/samba.sh down "$lab" >/dev/null 2>&1 || true
	bash scripts/lib/pg.sh down "$pg/c" >/dev/null 2>&1 || true
	# Emulators and Prism proxies a crashed test could not stop (each test stops its own).
	pkill -f "$top/tests/(emulators|contract|integration)/" 2>/dev/null || true
	rm -rf "$lab" "$results" "$pg" "${QUELL_PKGLOG:-}"
}
trap cleanup EXIT

phase "starting the Samba AD lab in $lab"
bash scripts/lab/samba.sh up "$lab"
set -a
# shellcheck disable=SC1091
. "$lab/env"
set +a

# One PostgreSQL 15 cluster for every run: the store's suite on PostgreSQL
# (QUELL_TEST_PG) and the end-to-end tests of quelld nodes sharing a database.
phase "starting PostgreSQL in $pg"
chmod 711 "$pg"
bash scripts/lib/pg.sh up "$pg/c"
set -a
# shellcheck disable=SC1091
. "$pg/c/env"
set +a

passed=0
failed=0

skipped=0
skiplist=$results/skipped.txt
: >"$skiplist"

# Adds one run's counts (scripts/lib/tally.py: KIND is meson, pytest or node).
tally() {
	local p=0 f=1 k=0
	read -r p f k < <(/usr/bin/python3 scripts/lib/tally.py "$1" "$2" "$skiplist" ||
	    echo "0 1 0")
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + k))
}

run_build() {
	local name=$1 dir=build/$1
	shift
	phase "building ($name)"
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$@" >/dev/null
	fi
	ninja -C "$dir" >/dev/null
	phase "unit and integration tests ($name)"
	# TAP from cmocka, so that each of its tests is counted, not each program.
	# The fault suite (tests/fault) only under the sanitizers: a failure path's leak
	# or overflow is what it is there to find.
	local fault=()
	[ "$name" = sanitize ] && fault=(--suite fault)
	CMOCKA_MESSAGE_OUTPUT=tap meson test -C "$dir" --print-errorlogs --num-processes 1 \
	    --suite unit --suite integration "${fault[@]}" || true
	tally meson "$dir/meson-logs/testlog.json"
}

# The end-to-end suite (pytest) on build/NAME.
run_e2e() {
	local name=$1 dir=build/$1
	# quell's own contract: the API's answers to the tests that use the API as a
	# client does, checked against docs/openapi.yaml by a Prism proxy
	# (tests/e2e/contract.py), in the sanitize pass (one node: the proxy has one
	# upstream). Left out: tests of the transport itself (raw bytes, connections,
	# ports, signals), which a proxy would answer or rewrite on its own, and the
	# scheduler's minute-long wait (test_sync_schedule; the others read the same answer).
	local contract_tests=(test_access test_actors test_ad_actions test_audit_flood
	    test_audit_tamper test_disruption test_hunting test_list test_oidc test_policy
	    test_release test_scope test_siem test_tokens)
	local files=("${contract_tests[@]/#/tests/e2e/}")
	files=("${files[@]/%/.py}")
	phase "end-to-end tests ($name)"
	local out=$results/pytest-$name.txt
	# LeakSanitizer's own test needs the sanitize build: elsewhere it would only skip.
	# Tests that mostly wait for a schedule to fall due (marked timer) run once, in
	# the release pass.
	local pass=(--ignore=tests/e2e/test_leaks.py) cluster=() behind=()
	[ "$name" = sanitize ] && pass=(-m "not timer")
	# The release pass on PostgreSQL, the sanitize pass on SQLite, the embedded
	# default. Two and three nodes on one database are the test_pg_* files' (and
	# test_tokens'): spread across the whole suite (QUELL_E2E_NODES=2), requests met
	# tests that read one process's state about once a run.
	[ "$name" = release ] && cluster=(QUELL_E2E_STORE=postgres)
	[ "$name" = sanitize ] && behind=("${files[@]/#/--ignore=}")
	# Without QUELL_TEST_PG: the suite starts a PostgreSQL of its own (scripts/lib/pg.sh)
	# and stops it at its end, so the failover test may restart it; never the one the
	# store's unit tests share.
	env -u QUELL_TEST_PG "${cluster[@]}" QUELL_BUILD=$top/$dir /usr/bin/python3 -m pytest \
	    -q -rs -p no:cacheprovider tests/e2e \
	    "${pass[@]}" "${behind[@]}" 2>&1 | tee "$out" || true
	tally pytest "$out"
	[ "$name" = sanitize ] || return 0
	phase "end-to-end tests behind the API contract proxy ($name): ${contract_tests[*]}"
	out=$results/pytest-contract.txt
	env -u QUELL_TEST_PG QUELL_E2E_CONTRACT=1 QUELL_BUILD=$top/$dir /usr/bin/python3 \
	    -m pytest -q -rs -p no:cacheprovider "${files[@]}" 2>&1 | tee "$out" || true
	tally pytest "$out"
}

# The Graph and Okta emulators' own tests (Node's test runner, TAP summary).
run_emulator_tests() {
	local out=$results/emulators.txt
	phase "emulator tests"
	node --test tests/emulators/graph/ tests/emulators/okta/ tests/emulators/scim/ >"$out" 2>&1 || true
	tail -n 8 "$out"
	tally node "$out"
}

# The package's checks, run before the namespace was entered.
count_package() {
	local p f
	if [ -z "${QUELL_PKGLOG:-}" ]; then
		echo "the Debian package needs root: not checked, counted as one failure"
		failed=$((failed + 1))
		return
	fi
	p=$(grep -c '^ok: ' "$QUELL_PKGLOG" || true)
	f=$(grep -c '^FAIL: ' "$QUELL_PKGLOG" || true)
	grep -q '^deb.sh: ' "$QUELL_PKGLOG" || f=$((f + 1))
	passed=$((passed + p))
	failed=$((failed + f))
}

# The libFuzzer harnesses (scripts/fuzz.sh), FUZZ_SECONDS each (default 15) on a copy
# of the committed corpus: each harness counts as one test, failed on any finding.
# They run on one core beside the sanitize build and its unit tests (one process at a
# time), and are waited for before the end-to-end tests, whose daemons want both.
fuzz_pid=
fuzz_start() {
	phase "fuzzing starts (${FUZZ_SECONDS:-15} s per harness), beside what follows"
	bash scripts/fuzz.sh --seconds "${FUZZ_SECONDS:-15}" --work "$results/fuzz" \
	    >"$results/fuzz.txt" 2>&1 &
	fuzz_pid=$!
}

fuzz_end() {
	local out=$results/fuzz.txt p f
	wait "$fuzz_pid" || true
	phase "fuzzing (${FUZZ_SECONDS:-15} s per harness)"
	cat "$out"
	p=$(grep -c '^fuzz .*: ok' "$out" || true)
	f=$(grep -c '^fuzz .*: FAILED' "$out" || true)
	# Nothing ran at all (the build failed): one failure.
	[ $((p + f)) -gt 0 ] || f=1
	passed=$((passed + p))
	failed=$((failed + f))
}

count_package
run_build release
run_e2e release
run_emulator_tests
fuzz_start
run_build sanitize -Db_sanitize=address,undefined -Db_lundef=false
fuzz_end
run_e2e sanitize

# A skip hides a whole group when a tool is missing: under CI it fails, unless
# tests/expected-skips lists it (a pattern and why, tab-separated).
if [ "$skipped" -gt 0 ]; then
	phase "skipped"
	/usr/bin/python3 scripts/lib/tally.py skips "$skiplist" tests/expected-skips \
	    >"$results/skips.txt" || echo 1 >>"$results/skips.txt"
	sed '$d' "$results/skips.txt"
	unexpected=$(tail -n 1 "$results/skips.txt")
	if [ "${CI:-}" = true ] && [ "$unexpected" -gt 0 ]; then
		echo "CI: $unexpected unexpected skip(s) counted as failures"
		failed=$((failed + unexpected))
	fi
fi
phase "done"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
