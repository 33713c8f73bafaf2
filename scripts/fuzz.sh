#!/usr/bin/env bash
# Builds the libFuzzer harnesses of tests/fuzz with clang under ASan + UBSan (build/fuzz)
# and runs each for a bounded time on a copy of its committed corpus
# (tests/fuzz/corpus/NAME, never changed here) plus the inputs it finds. A crash, a
# leak, a sanitizer's report or a broken property is a finding: the run fails and the
# reproducer's path is printed (replay it: build/fuzz/tests/fuzz/fuzz_NAME FILE).
#   scripts/fuzz.sh [--minutes N | --seconds N] [--work DIR] [--build DIR] [NAME ...]
# Default 30 seconds per harness, every harness, built in build/fuzz. One line per harness:
#   "fuzz NAME: ok, E executions, cov C, ft F" or "fuzz NAME: FAILED ...".
# The work directory (default build/fuzz/work) keeps each run's corpus and log, so a
# developer's next long run starts from what the last one found.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=30
work=build/fuzz/work
build=build/fuzz
names=()
while [ $# -gt 0 ]; do
	case $1 in
	--minutes) seconds=$(($2 * 60)); shift 2 ;;
	--seconds) seconds=$2; shift 2 ;;
	--work) work=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	-h | --help) sed -n '2,11p' "$0"; exit 0 ;;
	-*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
	*) names+=("$1"); shift ;;
	esac
done
# A harness is a tests/fuzz/fuzz_NAME.c that defines libFuzzer's entry point.
if [ "${#names[@]}" -eq 0 ]; then
	for f in $(grep -l '^LLVMFuzzerTestOneInput(' tests/fuzz/fuzz_*.c); do
		f=${f#tests/fuzz/fuzz_}
		names+=("${f%.c}")
	done
fi

if [ ! -f "$build/build.ninja" ]; then
	CC=clang meson setup "$build" -Dfuzz=true -Dtests=false \
	    -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
fi
targets=("${names[@]/#/tests/fuzz/fuzz_}")
if ! out=$(ninja -C "$build" "${targets[@]}" 2>&1); then
	echo "$out" | tail -n 30
	exit 1
fi

failed=0
for name in "${names[@]}"; do
	corpus=$work/corpus/$name
	log=$work/$name.log
	mkdir -p "$corpus" "$work/findings"
	cp -n tests/fuzz/corpus/"$name"/* "$corpus"/ 2>/dev/null || true
	rc=0
	# -timeout: one input running for 10 s is a finding too (a hang).
	"$build/tests/fuzz/fuzz_$name" -max_total_time="$seconds" -timeout=10 \
	    -rss_limit_mb=2048 -print_final_stats=1 \
	    -artifact_prefix="$work/findings/$name-" "$corpus" >"$log" 2>&1 || rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
	ft=$(grep -o 'ft: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
	if [ "$rc" -eq 0 ]; then
		echo "fuzz $name: ok, ${execs:-0} executions, cov ${cov:-0}, ft ${ft:-0}"
		continue
	fi
	failed=$((failed + 1))
	repro=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
	echo "fuzz $name: FAILED (exit $rc) after ${execs:-?} executions; reproducer:" \
	    "${repro:-none written}; log: $log"
	grep -E 'property violated|ERROR: |SUMMARY: |runtime error' "$log" | head -n 5 |
	    sed 's/^/    /'
done
[ "$failed" -eq 0 ]
