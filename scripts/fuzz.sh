#!/usr/bin/env bash
# fuzz.sh — run the fuzz targets longer than ./scripts/test.sh does.
#
#   scripts/fuzz.sh                    every target for 10m
#   scripts/fuzz.sh 30s                every target for 30s
#   scripts/fuzz.sh 1h FuzzUnpack      the targets named (in every package
#                                      that has one by that name)
#
# The targets are those of scripts/lib/fuzz-targets.sh (docs/fuzzing.md).
# Each runs with go test -fuzz -fuzztime=DURATION, one after the other; a
# failing input is minimized for at most BOSUN_FUZZ_MINIMIZE (default
# 30s). Logs go to artifacts/fuzz/ (emptied first, or BOSUN_ARTIFACTS_DIR).
# At the end a table: target, package, time, execs, result. The exit status
# is 1 when a target found a failing input (the table and the log say where
# it was written: PACKAGE/testdata/fuzz/TARGET/..., to commit with its fix),
# 2 for a usage error.
#
# Cloud targets get a throwaway PostgreSQL unless BOSUN_TEST_DATABASE_URL
# is set.
#
# Go 1.26's coordinator may report a bare "context deadline exceeded" when
# the time ends while a worker is busy, with no failing input
# (golang/go#75804): that counts as passed, as in test.sh.
set -euo pipefail

usage() { sed -n '3,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

DURATION=10m
if (($#)); then
	case "$1" in
	-h | -help | --help)
		usage
		exit 0
		;;
	[0-9]*)
		DURATION=$1
		shift
		;;
	esac
fi
WANT=("$@")
MINIMIZE=${BOSUN_FUZZ_MINIMIZE:-30s}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh
# shellcheck source=scripts/lib/fuzz-targets.sh
source scripts/lib/fuzz-targets.sh

if [[ -n "${BOSUN_ARTIFACTS_DIR:-}" ]]; then
	OUT=$BOSUN_ARTIFACTS_DIR
else
	OUT=$ROOT/artifacts/fuzz
	rm -rf "$OUT"
fi
mkdir -p "$OUT"

TARGETS=()
while read -r pkg target; do
	if ((${#WANT[@]})); then
		keep=0
		for w in "${WANT[@]}"; do [[ "$w" == "$target" ]] && keep=1; done
		((keep)) || continue
	fi
	TARGETS+=("$pkg $target")
done < <(bosun_fuzz_targets)
if ((${#TARGETS[@]} == 0)); then
	bosun_err "no fuzz target named ${WANT[*]} (scripts/lib/fuzz-targets.sh)"
	exit 2
fi

# Cloud targets (FuzzDeviceMethodParams, FuzzRequestBodies) need PostgreSQL, as every cloud
# test: a throwaway cluster unless BOSUN_TEST_DATABASE_URL names one.
if [[ -z "${BOSUN_TEST_DATABASE_URL:-}" ]] && printf '%s\n' "${TARGETS[@]}" | grep -q '^./cloud/'; then
	# shellcheck source=scripts/lib/pg.sh
	source scripts/lib/pg.sh
	BOSUN_PG_FAST=1 pg_throwaway fuzz
	echo "BOSUN_TEST_DATABASE_URL=$BOSUN_TEST_DATABASE_URL"
fi

ROWS=()
FAILED=0
for t in "${TARGETS[@]}"; do
	read -r pkg target <<<"$t"
	log=$OUT/${pkg//[.\/]/_}-$target.log
	echo "== go test -run='^\$' -fuzz='^${target}\$' -fuzztime=$DURATION -fuzzminimizetime=$MINIMIZE $pkg  (log: $log)"
	start=$SECONDS
	rc=0
	go test -run='^$' -fuzz="^${target}\$" -fuzztime="$DURATION" -fuzzminimizetime="$MINIMIZE" "$pkg" </dev/null >"$log" 2>&1 || rc=$?
	took=$((SECONDS - start))
	tail -n 3 "$log"
	# The last progress line says how many inputs were run.
	execs=$(grep -oE 'execs: [0-9]+' "$log" | tail -n 1 | awk '{print $2}')
	execs=${execs:-?}
	if ((rc == 0)); then
		result=ok
	elif grep -q 'context deadline exceeded' "$log" &&
		! grep -qE 'Failing input written to|^panic:|test timed out' "$log"; then
		result="ok (golang/go#75804)"
	elif input=$(grep -oE 'Failing input written to [^ ]+' "$log" | tail -n 1 | awk '{print $NF}') && [[ -n "$input" ]]; then
		result="FAILED: input $pkg/$input"
		FAILED=1
	else
		result="FAILED (see $log)"
		FAILED=1
	fi
	ROWS+=("$target|$pkg|${took}s|$execs|$result")
done

echo
printf '%-24s %-40s %7s %12s  %s\n' target package time execs result
for r in "${ROWS[@]}"; do
	IFS='|' read -r a b c d e <<<"$r"
	printf '%-24s %-40s %7s %12s  %s\n' "$a" "$b" "$c" "$d" "$e"
done
if ((FAILED)); then
	echo
	echo "a target failed: its input is under PACKAGE/testdata/fuzz/TARGET; commit it with the fix (it becomes a regression test)"
	exit 1
fi
