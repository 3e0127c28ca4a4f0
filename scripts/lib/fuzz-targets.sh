# shellcheck shell=bash
# fuzz-targets.sh — the fuzz targets, one place for scripts/test.sh (step
# fuzz, briefly) and scripts/fuzz.sh (longer). Each is "PACKAGE TARGET":
# a go test -fuzz target that reads bytes from outside (docs/fuzzing.md).
#
# Source it; bosun_fuzz_targets prints the list, one target a line.

bosun_fuzz_targets() {
	cat <<'TARGETS'
./pkg/envelope FuzzOpen
./pkg/envelope FuzzWindow
./pkg/jsonrpc FuzzHandle
./pkg/jsonrpc FuzzDecodeParams
./pkg/jsonrpc FuzzSplitBatch
./pkg/session FuzzOpenRegistration
./pkg/session FuzzOpenChallenge
./pkg/release FuzzAccept
./pkg/release FuzzVerifier
./pkg/keys FuzzParse
./device/internal/ota FuzzUnpack
./device/internal/ota FuzzMethodParams
./device/internal/bridge FuzzAnnounce
./device/internal/bridge FuzzBuiltinParams
./cloud/internal/hub FuzzDeviceMethodParams
./cloud/internal/api FuzzRequestBodies
./cloud/internal/web/routes/deployments FuzzDeploymentForm
./cloud/internal/web/routes/calls FuzzCallForm
./cloud/internal/web/routes/devices FuzzFilter
TARGETS
}
