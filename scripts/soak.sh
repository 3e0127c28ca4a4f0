#!/usr/bin/env bash
# soak.sh — the long forms of the load and flood tests that scripts/test.sh
# runs in a short, bounded form.
#
#   ./scripts/soak.sh            everything below
#   ./scripts/soak.sh session    only the named parts: session, bridge, e2e, d2c, flood, ota,
#                                hostile, fault; fleet-soak (never by default)
#
# With BOSUN_SOAK=1 the tests send 100,000 messages instead of 20,000:
#   session  pkg/session TestManyCallsInARow: 100,000 calls each way between
#            two session engines over a real websocket
#   bridge   device/internal/bridge: 100,000 cloud → device calls through the
#            bridge to a real worker
#   e2e      e2e TestCallsInARow: 100,000 system.info calls through
#            ./run-dev.sh's real stack (HTTP API, cloud, PostgreSQL, NATS,
#            websocket, bridge, bosun-worker)
#   d2c      cloud/internal/hub TestDeviceToCloudInARow: 100,000 state.report
#            through the real cloud into PostgreSQL
#   flood    cloud/internal/hub TestRegistrationFlood with 3,500 attempts per
#            phase (BOSUN_FLOOD)
#   ota      device/internal/ota TestKill9AtEachStep: 20 kill -9 runs at each
#            step of an update (download, verify, unpack, switch, awaiting commit);
#            device/cmd/bosun-ota TestKill9ThroughBridge: the same with the real
#            bosun-ota and bosun-bridge binaries, 20 kill -9 runs of each at each
#            step (slots complete, every ota.status in the bridge's outbox)
#   hostile  e2e TestHostileWire with 1,000 random mutations of valid envelopes
#            (BOSUN_HOSTILE_RUNS) against two real cloud replicas, all refused
#   fault    the fault tests with real processes, each fault repeated
#            BOSUN_FAULT_RUNS=20 times (go test -timeout 60m): e2e
#            TestCloudKilledWithQueuedCallsAndDeployment, TestDatabaseStoppedAndStarted,
#            TestNATSNodeRestarted, TestLinkCutAndRestored, and
#            device/cmd/bosun-ota TestKill9ThroughBridge
#   fleet-soak e2e/perf TestSoak: 1,000 simulated devices (bosun-sim) on one
#            bosun-cloud, 200 system.info calls/s for 30 minutes; goroutines,
#            heap, RSS, fds and table sizes flat, every call exactly one
#            result (BOSUN_SOAK_DEVICES, _RATE, _DURATION; -timeout 50m).
#            Not in the default list: name it. Its table goes to
#            artifacts/fleet-soak-<time>.md
# Each is bounded (go test -timeout 30m, fault 60m, fleet-soak 50m). PostgreSQL is a throwaway cluster,
# as in scripts/test.sh. Output goes to artifacts/soak-<time>.txt.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
# shellcheck source=scripts/lib/pg.sh
source scripts/lib/pg.sh

PARTS=("$@")
((${#PARTS[@]})) || PARTS=(session bridge e2e d2c flood ota hostile fault)
OUT_DIR=${BOSUN_ARTIFACTS_DIR:-$ROOT/artifacts}
mkdir -p "$OUT_DIR"
OUT=$OUT_DIR/soak-$(date +%Y%m%d-%H%M%S).txt

# PostgreSQL runs with fsync off, as in scripts/bench.sh: these runs test
# Bosun's processes, not the disk, and on a shared machine's disk WAL
# fsyncs stalled calls for up to 19 s (docs/benchmarks.md, "Soak").
# BOSUN_PG_FAST=0 keeps fsync on.
export BOSUN_PG_FAST=${BOSUN_PG_FAST:-1}
pg_throwaway soak
export BOSUN_SOAK=1
export BOSUN_FLOOD=${BOSUN_FLOOD:-3500}
export BOSUN_HOSTILE_RUNS=${BOSUN_HOSTILE_RUNS:-1000}

rc=0
for part in "${PARTS[@]}"; do
	timeout=30m
	case "$part" in
	session) args=(-run '^TestManyCallsInARow$' ./pkg/session) ;;
	bridge) args=(-run '^TestManyCallsInARow$' ./device/internal/bridge) ;;
	e2e) args=(-run '^TestCallsInARow$' ./e2e) ;;
	flood) args=(-run '^TestRegistrationFlood$' ./cloud/internal/hub) ;;
	d2c) args=(-run '^TestDeviceToCloudInARow$' ./cloud/internal/hub) ;;
	ota) args=(-run '^(TestKill9AtEachStep|TestKill9ThroughBridge)$' ./device/internal/ota ./device/cmd/bosun-ota) ;;
	hostile) args=(-run '^TestHostileWire$' ./e2e) ;;
	fault)
		export BOSUN_FAULT_RUNS=${BOSUN_FAULT_RUNS:-20}
		timeout=60m
		# -p 1: one package's processes at a time.
		args=(-p 1 -run '^(TestCloudKilledWithQueuedCallsAndDeployment|TestDatabaseStoppedAndStarted|TestNATSNodeRestarted|TestLinkCutAndRestored|TestKill9ThroughBridge)$' ./e2e ./device/cmd/bosun-ota)
		;;
	fleet-soak)
		export BOSUN_SOAK_DEVICES=${BOSUN_SOAK_DEVICES:-1000} BOSUN_SOAK_RATE=${BOSUN_SOAK_RATE:-200}
		export BOSUN_SOAK_DURATION=${BOSUN_SOAK_DURATION:-30m}
		export BOSUN_SOAK_OUT=${BOSUN_SOAK_OUT:-$OUT_DIR/fleet-soak-$(date +%Y%m%d-%H%M%S).md}
		timeout=50m
		args=(-run '^TestSoak$' ./e2e/perf)
		;;
	*)
		echo "soak.sh: unknown part $part (session, bridge, e2e, d2c, flood, ota, hostile, fault, fleet-soak)" >&2
		exit 2
		;;
	esac
	echo "== $part: go test -count=1 -v -timeout $timeout ${args[*]}" | tee -a "$OUT"
	go test -count=1 -v -timeout "$timeout" "${args[@]}" 2>&1 | grep -v '^=== ' | tee -a "$OUT" || rc=1
done
echo "saved to $OUT" >&2
exit "$rc"
