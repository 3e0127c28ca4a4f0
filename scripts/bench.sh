#!/usr/bin/env bash
# bench.sh — run benchmarks and keep the output for benchstat.
#
#   ./scripts/bench.sh                     ./pkg/...
#   ./scripts/bench.sh ./pkg/envelope ./cloud/internal/store
#   COUNT=10 BENCH=Open ./scripts/bench.sh ./pkg/envelope
#
# Runs go test -run='^$' -bench=$BENCH -benchmem -count=$COUNT (BENCH defaults
# to ".", COUNT to 5) with the same throwaway PostgreSQL as scripts/test.sh
# (BOSUN_TEST_DATABASE_URL; fsync off, so database numbers measure CPU, not the
# disk). The output is printed and saved to artifacts/bench-<time>.txt, or under
# BOSUN_ARTIFACTS_DIR. Compare two runs with
#   go run golang.org/x/perf/cmd/benchstat@latest old.txt new.txt
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
# shellcheck source=scripts/lib/pg.sh
source scripts/lib/pg.sh

export BOSUN_PG_FAST=${BOSUN_PG_FAST:-1}

PKGS=("$@")
((${#PKGS[@]})) || PKGS=(./pkg/...)
COUNT=${COUNT:-5}
BENCH=${BENCH:-.}
OUT_DIR=${BOSUN_ARTIFACTS_DIR:-$ROOT/artifacts}
mkdir -p "$OUT_DIR"
OUT=$OUT_DIR/bench-$(date +%Y%m%d-%H%M%S).txt

pg_throwaway bench # BOSUN_PG_FAST defaults to 1 here: fsync off

# "key: value" lines are configuration to benchstat.
{
	echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo -dirty)"
	echo "go: $(go env GOVERSION)"
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "nproc: $(nproc)"
} | tee "$OUT"

rc=0
go test -run='^$' -bench="$BENCH" -benchmem -count="$COUNT" "${PKGS[@]}" 2>&1 | tee -a "$OUT" || rc=$?
echo "saved to $OUT" >&2
exit "$rc"
