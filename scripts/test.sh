#!/usr/bin/env bash
# shellcheck disable=SC2317 # steps and traps are called indirectly
# test.sh — the test command: what CI runs (.ci/run) and what to run before a push.
#
#   ./scripts/test.sh           everything
#   ./scripts/test.sh -short    go test -short, and no fuzzing
#
# Steps: gofmt, templ (generated code up to date), go vet, supply (go mod
# verify, an SBOM per binary: scripts/sbom.sh), services (a throwaway
# PostgreSQL, the Podman demo container and its Docker-API socket, chromium, mosquitto,
# systemd-analyze),
# go test -race, fuzz (each target of scripts/lib/fuzz-targets.sh for
# BOSUN_TEST_FUZZTIME). Every step runs even when an earlier check failed, so one
# run shows every problem; only a service that cannot start stops the run. The
# services are always stopped and temp dirs removed, also on failure or Ctrl-C.
# The last line is the count of tests: "N passed, N failed, N skipped".
#
# Environment:
#   CI=true                 a missing service (PostgreSQL, Podman, chromium,
#                           systemd-analyze) or fuzz target is a failure, not
#                           a warning
#   BOSUN_TEST_SHORT=1      same as -short
#   BOSUN_TEST_FUZZTIME     per fuzz target (scripts/lib/fuzz-targets.sh lists
#                           them; scripts/fuzz.sh runs them longer); defaults
#                           to 6s
#   BOSUN_TEST_TIMEOUT      go test -timeout; defaults to 15m
#   BOSUN_ARTIFACTS_DIR     logs go here; defaults to artifacts/test, emptied
#                           at the start of each run
#
# Tests receive BOSUN_TEST_DATABASE_URL, BOSUN_TEST_DOCKER_HOST,
# BOSUN_TEST_DEMO_CONTAINER, BOSUN_TEST_CHROMIUM, BOSUN_TEST_SYSTEMD_ANALYZE
# and BOSUN_TEST_ARTIFACTS.
set -euo pipefail

usage() { sed -n '3,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

SHORT=${BOSUN_TEST_SHORT:-0}
for arg in "$@"; do
	case "$arg" in
	-short | --short) SHORT=1 ;;
	-h | -help | --help)
		usage
		exit 0
		;;
	*)
		echo "test.sh: unknown argument $arg (try -h)" >&2
		exit 2
		;;
	esac
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh
# shellcheck source=scripts/lib/pg.sh
source scripts/lib/pg.sh
# shellcheck source=scripts/lib/podman-demo.sh
source scripts/lib/podman-demo.sh
# shellcheck source=scripts/lib/fuzz-targets.sh
source scripts/lib/fuzz-targets.sh

IN_CI=0
[[ "${CI:-}" == true ]] && IN_CI=1
FUZZTIME=${BOSUN_TEST_FUZZTIME:-6s}
GO_TIMEOUT=${BOSUN_TEST_TIMEOUT:-15m}
# Every module of go.work (./pkg/... ./cloud/... ./device/... and whatever
# joins them): with no module at the root, ./... does not work.
MODULES=()
while IFS= read -r dir; do
	if [[ "$dir" == "$ROOT" ]]; then
		MODULES+=(./...)
	elif [[ "$dir" == "$ROOT"/* ]]; then
		MODULES+=("./${dir#"$ROOT"/}/...")
	fi
done < <(go list -m -f '{{.Dir}}' 2>/dev/null || true)
((${#MODULES[@]})) || MODULES=(./pkg/... ./cloud/... ./device/...)

if [[ -n "${BOSUN_ARTIFACTS_DIR:-}" ]]; then
	ARTIFACTS=$BOSUN_ARTIFACTS_DIR
else
	ARTIFACTS=$ROOT/artifacts/test # ours: the last run's files go
	rm -rf "$ARTIFACTS"
fi
mkdir -p "$ARTIFACTS"
ARTIFACTS=$(cd "$ARTIFACTS" && pwd -P)
export BOSUN_TEST_ARTIFACTS=$ARTIFACTS/e2e # screenshots and the like
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bosun-test.XXXXXX")
chmod 0711 "$TMP" # the postgres user must reach $TMP/postgres when we are root
PG_DIR=$TMP/postgres
PODMAN_DIR=$TMP/podman
DEMO_NAME=bosun-test-demo-$$

STEP_LINES=()
FAILED_STEPS=()
TESTS_PASSED=0
TESTS_FAILED=0
TESTS_SKIPPED=0
SKIP=200 # return code of a step that did not apply

# ---------------------------------------------------------------- plumbing

now_ms() { date +%s%3N; }

# run_step NAME FUNC: runs FUNC in this shell (it may export variables), times
# it and records the outcome. FUNC returns 0, $SKIP or a failure.
run_step() {
	local name=$1 func=$2 t0 rc=0 dur status
	printf '\n=== %s\n' "$name"
	t0=$(now_ms)
	"$func" || rc=$?
	dur=$(awk -v ms="$(($(now_ms) - t0))" 'BEGIN { printf "%.1fs", ms / 1000 }')
	case $rc in
	0) status=ok ;;
	"$SKIP") status=skipped ;;
	*)
		status=FAILED
		FAILED_STEPS+=("$name")
		;;
	esac
	STEP_LINES+=("$(printf '  %-8s %-9s %s' "$status" "$name" "$dur")")
	printf -- '--- %s: %s (%s)\n' "$name" "$status" "$dur"
}

fatal() {
	bosun_err "$*"
	FAILED_STEPS+=("${CURRENT_FATAL_STEP:-setup}")
	exit 1
}

# warn_or_fail MESSAGE [CONSEQUENCE]: a failure under CI=true, a loud warning
# (with the consequence of going on) otherwise.
warn_or_fail() {
	if ((IN_CI)); then
		bosun_err "$1 (CI=true: this is a failure)"
		return 1
	fi
	printf '\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n' >&2
	printf '!!! WARNING: %s\n' "$1${2:+: $2}" >&2
	printf '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\n' >&2
	return 0
}

# source_files GLOB...: tracked and new (not ignored) files, NUL-separated.
source_files() {
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		local f
		while IFS= read -r -d '' f; do
			[[ -f "$f" ]] && printf '%s\0' "$f"
		done < <(git ls-files -z --cached --others --exclude-standard -- "$@" | sort -zu)
	else
		local args=() g
		for g in "$@"; do args+=(-o -name "$g"); done
		find . -path ./.git -prune -o -path ./.dev -prune -o -path ./artifacts -prune \
			-o -type f \( "${args[@]:1}" \) -print0
	fi
}

finished=0
finish() {
	local rc=$?
	trap - EXIT INT TERM
	set +e
	((finished)) && exit "$rc"
	finished=1
	stop_services
	printf '\nsteps (artifacts: %s):\n' "$ARTIFACTS"
	printf '%s\n' "${STEP_LINES[@]}"
	if ((${#FAILED_STEPS[@]})); then
		printf 'FAILED steps: %s\n' "${FAILED_STEPS[*]}"
		((rc == 0)) && rc=1
	fi
	((TESTS_FAILED > 0 && rc == 0)) && rc=1
	local line="$TESTS_PASSED passed, $TESTS_FAILED failed"
	((TESTS_SKIPPED)) && line+=", $TESTS_SKIPPED skipped"
	printf '%s\n' "$line"
	exit "$rc"
}
trap finish EXIT
trap 'FAILED_STEPS+=(interrupted); exit 130' INT
trap 'FAILED_STEPS+=(terminated); exit 143' TERM

services_stopped=0
stop_services() {
	((services_stopped)) && return 0
	services_stopped=1
	podman_demo_stop "$PODMAN_DIR" "$DEMO_NAME" || true
	pg_stop "$PG_DIR" || true
	# Keep the service logs with the other artifacts.
	cp "$PG_DIR/postgres.log" "$ARTIFACTS/postgres.log" 2>/dev/null || true
	cp "$PODMAN_DIR/service.log" "$ARTIFACTS/podman-service.log" 2>/dev/null || true
	rm -rf "$TMP"
}

# ---------------------------------------------------------------- steps

step_gofmt() {
	local files=() f out
	while IFS= read -r -d '' f; do
		[[ "$f" == *_templ.go ]] || files+=("$f")
	done < <(source_files '*.go')
	if ((${#files[@]} == 0)); then
		echo "no Go files"
		return 0
	fi
	out=$(gofmt -l "${files[@]}") || return 1
	if [[ -n "$out" ]]; then
		printf 'not gofmt-ed (fix: gofmt -w FILE):\n%s\n' "$out"
		return 1
	fi
	echo "${#files[@]} files formatted"
}

templ_digest() {
	source_files '*_templ.go' | xargs -0 -r sha256sum
}

step_templ() {
	local templs before after
	templs=$(source_files '*.templ' | tr '\0' '\n')
	if [[ -z "$templs" ]]; then
		echo "no .templ files"
		return "$SKIP"
	fi
	before=$(templ_digest)
	(cd cloud && go tool templ generate) || return 1
	after=$(templ_digest)
	if [[ "$before" != "$after" ]]; then
		echo "templ generate changed generated files: run (cd cloud && go tool templ generate) and commit them:"
		diff <(echo "$before") <(echo "$after") || true
		return 1
	fi
	# In a clean checkout (CI) the generated files must also match the commit.
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git --no-pager diff --exit-code --stat -- '*_templ.go' || {
			echo "generated *_templ.go files differ from git: commit them"
			return 1
		}
		local untracked
		untracked=$(git ls-files --others --exclude-standard -- '*_templ.go')
		if [[ -n "$untracked" ]]; then
			printf 'generated files not in git:\n%s\n' "$untracked"
			return 1
		fi
	fi
}

step_vet() {
	go vet "${MODULES[@]}"
}

ensure_cgo() {
	# -race needs cgo and a C compiler.
	if [[ "$(go env CGO_ENABLED)" == 1 ]] && command -v "$(go env CC)" >/dev/null 2>&1; then
		return 0
	fi
	echo "go test -race needs a C compiler"
	if [[ -z "$(go env CC)" ]] || ! command -v "$(go env CC)" >/dev/null 2>&1; then
		bosun_apt_install gcc libc6-dev || return 1
	fi
	export CGO_ENABLED=1
}

step_services() {
	CURRENT_FATAL_STEP=services
	ensure_cgo || fatal "no C compiler for go test -race"

	# Not in $(...): apt-get update runs once for all installs.
	BOSUN_PG_FAST=1 pg_start "$PG_DIR" >/dev/null || fatal "PostgreSQL did not start"
	export BOSUN_TEST_DATABASE_URL=$BOSUN_PG_URL
	echo "BOSUN_TEST_DATABASE_URL=$BOSUN_TEST_DATABASE_URL"

	if podman_demo_start "$PODMAN_DIR" "$DEMO_NAME" >/dev/null; then
		export BOSUN_TEST_DOCKER_HOST=$BOSUN_PODMAN_DEMO_HOST BOSUN_TEST_DEMO_CONTAINER=$DEMO_NAME
		echo "BOSUN_TEST_DOCKER_HOST=$BOSUN_TEST_DOCKER_HOST"
		echo "BOSUN_TEST_DEMO_CONTAINER=$BOSUN_TEST_DEMO_CONTAINER"
	else
		unset BOSUN_TEST_DOCKER_HOST BOSUN_TEST_DEMO_CONTAINER
		warn_or_fail "the Podman demo did not start" "container tests will SKIP" ||
			fatal "the Podman demo did not start"
	fi

	local chromium=/usr/bin/chromium
	if [[ ! -x "$chromium" ]]; then
		bosun_apt_install chromium || true
	fi
	if [[ -x "$chromium" ]]; then
		export BOSUN_TEST_CHROMIUM=$chromium
		echo "BOSUN_TEST_CHROMIUM=$BOSUN_TEST_CHROMIUM"
	else
		unset BOSUN_TEST_CHROMIUM
		warn_or_fail "no $chromium (apt-get install -y chromium)" "browser tests will SKIP" ||
			fatal "chromium is missing"
	fi

	# The systemd unit tests verify device/systemd with systemd-analyze.
	local analyze
	analyze=$(command -v systemd-analyze || true)
	if [[ -z "$analyze" ]]; then
		bosun_apt_install systemd || true
		analyze=$(command -v systemd-analyze || true)
	fi
	if [[ -n "$analyze" ]]; then
		export BOSUN_TEST_SYSTEMD_ANALYZE=$analyze
		echo "BOSUN_TEST_SYSTEMD_ANALYZE=$BOSUN_TEST_SYSTEMD_ANALYZE"
	else
		unset BOSUN_TEST_SYSTEMD_ANALYZE
		warn_or_fail "no systemd-analyze (apt-get install -y systemd)" "the systemd unit tests will SKIP" ||
			fatal "systemd-analyze is missing"
	fi

	# The MQTT baseline of e2e/perf (issue 11) runs Debian's mosquitto.
	local mosquitto=/usr/sbin/mosquitto
	if [[ ! -x "$mosquitto" ]]; then
		bosun_apt_install mosquitto || true
	fi
	if [[ -x "$mosquitto" ]]; then
		export BOSUN_TEST_MOSQUITTO=$mosquitto
		echo "BOSUN_TEST_MOSQUITTO=$BOSUN_TEST_MOSQUITTO"
	else
		unset BOSUN_TEST_MOSQUITTO
		warn_or_fail "no $mosquitto (apt-get install -y mosquitto)" "the MQTT baseline test will SKIP" ||
			fatal "mosquitto is missing"
	fi
	CURRENT_FATAL_STEP=
}

# count_tests LOG: adds the --- PASS/FAIL/SKIP lines of a `go test -v` log to
# the totals. A package that fails with no failed test (build error, panic,
# timeout, race outside a test) counts as one failed test, so that it shows.
count_tests() {
	local counts
	counts=$(awk '
		/^[[:space:]]*--- PASS: / { p++; next }
		/^[[:space:]]*--- FAIL: / { f++; pf++; next }
		/^[[:space:]]*--- SKIP: / { s++; next }
		/^FAIL\t/ {
			if (pf == 0) { f++; split($0, a, "\t"); print "package failed outside any test: " a[2] > "/dev/stderr" }
			pf = 0; next
		}
		/^(ok  |\?   )\t/ { pf = 0 }
		END { printf "%d %d %d\n", p, f, s }
	' "$1")
	local p f s
	read -r p f s <<<"$counts"
	TESTS_PASSED=$((TESTS_PASSED + p))
	TESTS_FAILED=$((TESTS_FAILED + f))
	TESTS_SKIPPED=$((TESTS_SKIPPED + s))
}

step_go_test() {
	local log=$ARTIFACTS/go-test.log rc=0 flags=(-race -count=1 -timeout "$GO_TIMEOUT" -v)
	((SHORT)) && flags+=(-short)
	echo "go test ${flags[*]} ${MODULES[*]}  (full -v log: $log)"
	# The log keeps everything; the screen drops the === RUN/PAUSE/CONT noise.
	go test "${flags[@]}" "${MODULES[@]}" 2>&1 | tee "$log" |
		awk '!/^=== (RUN|PAUSE|CONT) /' || rc=$?
	count_tests "$log"
	return "$rc"
}

# step_allocs runs the allocation tests, which build only without -race
# (files tagged !race): the race detector allocates on its own.
step_allocs() {
	local log=$ARTIFACTS/go-test-allocs.log rc=0
	echo "go test -count=1 -v -run 'Alloc' ./pkg/...  (no -race)"
	go test -count=1 -v -run 'Alloc' ./pkg/... 2>&1 | tee "$log" |
		awk '!/^=== (RUN|PAUSE|CONT) /' || rc=$?
	count_tests "$log"
	return "$rc"
}

# fuzz PKG TARGET REQUIRED
fuzz() {
	local pkg=$1 target=$2 required=$3 list log
	log=$ARTIFACTS/fuzz-${pkg//[.\/]/_}-$target.log
	if ! list=$(go test -list "^${target}\$" "$pkg" 2>&1); then
		printf '%s\n' "$list"
		echo "cannot list the tests of $pkg"
		TESTS_FAILED=$((TESTS_FAILED + 1))
		return 1
	fi
	if ! grep -qx "$target" <<<"$list"; then
		if ((required)); then
			warn_or_fail "no fuzz target $target in $pkg" "not fuzzed" || {
				TESTS_FAILED=$((TESTS_FAILED + 1))
				return 1
			}
		fi
		echo "$pkg has no $target: not fuzzed"
		return "$SKIP"
	fi
	echo "go test -run='^\$' -fuzz='^${target}\$' -fuzztime=$FUZZTIME -fuzzminimizetime=1s $pkg"
	if go test -run='^$' -fuzz="^${target}\$" -fuzztime="$FUZZTIME" -fuzzminimizetime=1s "$pkg" 2>&1 | tee "$log"; then
		TESTS_PASSED=$((TESTS_PASSED + 1))
		return 0
	fi
	# Go 1.26's fuzz coordinator can report a bare "context deadline exceeded"
	# when -fuzztime ends while a worker is busy (a loaded machine): no input
	# failed. golang/go#75804, fixed in Go 1.27. A real finding always writes
	# its input ("Failing input written to") or panics.
	if grep -q 'context deadline exceeded' "$log" &&
		! grep -qE 'Failing input written to|^panic:|test timed out' "$log"; then
		bosun_warn "$target: the fuzztime deadline race of Go's fuzz coordinator (golang/go#75804), no failing input: not counted as a failure"
		TESTS_PASSED=$((TESTS_PASSED + 1))
		return 0
	fi
	TESTS_FAILED=$((TESTS_FAILED + 1))
	if grep -q 'Failing input written to' "$log"; then
		echo "$target failed: the failing input is saved under $pkg/testdata/fuzz/$target (commit it with the fix)"
	fi
	return 1
}

# step_fuzz runs each target of scripts/lib/fuzz-targets.sh for FUZZTIME
# (a failing input found is minimized for at most 1s): 19 targets, about
# 2 minutes at the default 6s. scripts/fuzz.sh runs them longer.
step_fuzz() {
	if ((SHORT)); then
		echo "-short: not fuzzing"
		return "$SKIP"
	fi
	local rc=0 r pkg target
	while read -r -u 3 pkg target; do
		fuzz "$pkg" "$target" 1 || { r=$? && ((r == SKIP)) || rc=1; }
	done 3< <(bosun_fuzz_targets)
	return "$rc"
}

# step_supply checks the supply chain: every module in the module cache
# matches go.sum (go mod verify), and scripts/sbom.sh makes and checks a
# CycloneDX SBOM for each binary (into the artifacts).
step_supply() {
	echo "go mod verify"
	go mod verify || return 1
	echo "scripts/sbom.sh $ARTIFACTS/sbom"
	scripts/sbom.sh "$ARTIFACTS/sbom"
}

# ---------------------------------------------------------------- main

command -v go >/dev/null 2>&1 || fatal "go is not on PATH"
echo "bosun test.sh: $(go version), CI=${CI:-unset}, short=$SHORT"

run_step gofmt step_gofmt
run_step templ step_templ
run_step vet step_vet
run_step supply step_supply
run_step services step_services
run_step "go test" step_go_test
run_step allocs step_allocs
run_step fuzz step_fuzz
exit 0
