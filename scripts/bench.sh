#!/usr/bin/env bash
# bench.sh — run the figures of issue 11 and write docs/benchmarks.md.
#
#   ./scripts/bench.sh                 every figure and baseline, then docs/benchmarks.md
#   ./scripts/bench.sh P7 B-mqtt       only these (P1…P8, B-crypto, B-ws, B-mqtt, B-http,
#                                      "baselines" for all four); the report goes to artifacts/
#   ./scripts/bench.sh --quick [...]   the same with smaller sizes and shorter runs
#                                      (BOSUN_BENCH_QUICK=1); the report goes to artifacts/
#   ./scripts/bench.sh ./pkg/envelope  package mode, as before: go test -bench over packages
#                                      (COUNT, default 5; BENCH, default ".")
#
# The figures are Go benchmarks in e2e/perf (BenchmarkP1…, BenchmarkFleet for
# P3–P5, BenchmarkBaseline…),
# each one bounded run (-benchtime 1x) that records a perf.Row with its result
# and the baseline measured in the same run into $BOSUN_BENCH_ROWS;
# e2e/perf/cmd/benchreport turns the rows into the markdown. They run in three
# go test runs (the baselines, the P figures, the rest), each with what is left
# of BOSUN_BENCH_BUDGET (1200 s) as its -timeout; the figures are sized to
# finish in under 15 minutes.
# bench.sh brings what the figures need: a throwaway PostgreSQL (fsync off, so
# database numbers measure CPU, not the disk) and Debian's mosquitto
# (apt-get install as root when it is missing). Everything it ran and printed
# is kept under artifacts/ (or BOSUN_ARTIFACTS_DIR). Run it on a quiet machine:
# other load on the same cores shows in every figure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh
# shellcheck source=scripts/lib/pg.sh
source scripts/lib/pg.sh

export BOSUN_PG_FAST=${BOSUN_PG_FAST:-1}
OUT_DIR=${BOSUN_ARTIFACTS_DIR:-$ROOT/artifacts}
mkdir -p "$OUT_DIR"
STAMP=$(date +%Y%m%d-%H%M%S)

# Package mode: the micro-benchmarks over packages, output for benchstat.
if (($#)) && [[ "$1" == ./* ]]; then
	COUNT=${COUNT:-5}
	BENCH=${BENCH:-.}
	OUT=$OUT_DIR/bench-$STAMP.txt
	pg_throwaway bench
	# "key: value" lines are configuration to benchstat.
	{
		echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo -dirty)"
		echo "go: $(go env GOVERSION)"
		echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
		echo "nproc: $(nproc)"
	} | tee "$OUT"
	rc=0
	go test -run='^$' -bench="$BENCH" -benchmem -count="$COUNT" "$@" 2>&1 | tee -a "$OUT" || rc=$?
	echo "saved to $OUT" >&2
	exit "$rc"
fi

quick=0
figures=()
for a in "$@"; do
	case $a in
	--quick) quick=1 ;;
	-h | --help)
		awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"
		exit 0
		;;
	P[345]) figures+=(BenchmarkFleet) ;; # one fleet, three figures
	P[1-8]) figures+=("Benchmark$a([^0-9].*)?") ;;
	B-crypto) figures+=(BenchmarkBaselineCrypto) ;;
	B-ws) figures+=(BenchmarkBaselineWSEcho) ;;
	B-mqtt) figures+=(BenchmarkBaselineMQTT) ;;
	B-http) figures+=(BenchmarkBaselineFileServer) ;;
	baselines) figures+=("BenchmarkBaseline.*") ;;
	*)
		bosun_err "unknown figure $a (P1…P8, B-crypto, B-ws, B-mqtt, B-http, baselines, --quick)"
		exit 2
		;;
	esac
done
all=0
if ((${#figures[@]} == 0)); then
	all=1
	figures=(".*") # every benchmark of e2e/perf is a figure or a baseline
fi
bench_re="^($(
	IFS='|'
	echo "${figures[*]}"
))\$"
if ((quick)); then
	export BOSUN_BENCH_QUICK=1
	export BOSUN_FLEET_DEVICES=${BOSUN_FLEET_DEVICES:-2000} # P3, P4, P5
fi

# mosquitto for the MQTT baseline (and P2).
mosquitto=${BOSUN_TEST_MOSQUITTO:-/usr/sbin/mosquitto}
if [[ ! -x "$mosquitto" ]]; then
	bosun_apt_install mosquitto || true
fi
if [[ -x "$mosquitto" ]]; then
	export BOSUN_TEST_MOSQUITTO=$mosquitto
else
	bosun_err "no $mosquitto (apt-get install -y mosquitto): the MQTT figures will fail"
	export CI=true # make the missing part a failure, not a skip
fi

pg_throwaway bench

RUN_DIR=$OUT_DIR/bench-$STAMP
mkdir -p "$RUN_DIR"
export BOSUN_BENCH_ROWS=$RUN_DIR/rows.jsonl
: >"$BOSUN_BENCH_ROWS"
# The benchmarks to run, in three groups run one after another: the
# baselines, the P figures, then the rest (the fleet, P3–P5), so that a long
# or failing fleet cannot cut off the others. Each group gets what is left of
# the budget as its -timeout.
BUDGET=${BOSUN_BENCH_BUDGET:-1200} # seconds for all the figures
mapfile -t names < <(go test -list "$bench_re" ./e2e/perf | grep '^Benchmark' || true)
groups=()
for pat in '^BenchmarkBaseline' '^BenchmarkP[0-9]' '.'; do
	sel=()
	rest=()
	for n in "${names[@]}"; do
		if [[ "$n" =~ $pat ]]; then sel+=("$n"); else rest+=("$n"); fi
	done
	names=("${rest[@]}")
	((${#sel[@]})) && groups+=("^($(
		IFS='|'
		echo "${sel[*]}"
	))\$")
done
gotest=(go test -run '^$' -benchtime 1x ./e2e/perf)
micro=(go test -run '^$' -bench OpenVsVerifyPaired -benchtime 2s -count 1 ./pkg/envelope)

meminfo=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
cpu=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
{
	echo "cpu: ${cpu:-unknown}"
	echo "cores: $(nproc) (GOMAXPROCS $(nproc))"
	echo "memory: $meminfo"
	echo "kernel: $(uname -sr)"
	echo "go: $(go env GOVERSION) $(go env GOOS)/$(go env GOARCH)"
	echo "postgresql: $(pg__find_bin && "$PG_BIN/postgres" --version 2>/dev/null || echo unknown) (fsync off)"
	echo "mosquitto: $({ "$mosquitto" -h 2>/dev/null || true; } | head -1)"
	echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo -dirty)"
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "mode: $( ((quick)) && echo quick || echo full)"
	echo "command: ./scripts/bench.sh $*"
	for g in "${groups[@]}"; do
		echo "go test: BOSUN_BENCH_ROWS=rows.jsonl ${gotest[*]} -bench '$g' -timeout (what is left of ${BUDGET}s)"
	done
} >"$RUN_DIR/meta.txt"
cat "$RUN_DIR/meta.txt"

rc=0
start=$SECONDS
: >"$RUN_DIR/figures.txt"
((${#groups[@]})) || bosun_err "no benchmark matches $bench_re"
for g in "${groups[@]}"; do
	left=$((BUDGET - (SECONDS - start)))
	if ((left < 60)); then
		bosun_err "the budget of ${BUDGET}s is spent: not running $g"
		echo "--- FAIL: $g (not run: the budget of ${BUDGET}s was spent)" >>"$RUN_DIR/figures.txt"
		rc=1
		continue
	fi
	echo "+ ${gotest[*]} -bench '$g' -timeout ${left}s"
	"${gotest[@]}" -bench "$g" -timeout "${left}s" 2>&1 | tee -a "$RUN_DIR/figures.txt" || rc=$?
done
echo "+ ${micro[*]}"
"${micro[@]}" 2>&1 | tee "$RUN_DIR/micro.txt" || rc=$?
{
	echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "duration: $((SECONDS - start)) s"
} >>"$RUN_DIR/meta.txt"

doc=$RUN_DIR/benchmarks.md
if ((all && !quick)); then
	doc=$ROOT/docs/benchmarks.md
fi
(cd e2e && go run ./perf/cmd/benchreport -rows "$BOSUN_BENCH_ROWS" -meta "$RUN_DIR/meta.txt" \
	-micro "$RUN_DIR/micro.txt" -gotest "$RUN_DIR/figures.txt" -keep "$ROOT/docs/benchmarks.md" -o "$doc") || rc=$?
echo "report: $doc; rows, output and meta in $RUN_DIR" >&2
exit "$rc"
