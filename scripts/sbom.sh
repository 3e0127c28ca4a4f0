#!/usr/bin/env bash
# sbom.sh — a CycloneDX SBOM (JSON, spec 1.6) for each binary Bosun ships.
#
#   ./scripts/sbom.sh            every binary, into artifacts/sbom/
#   ./scripts/sbom.sh DIR        the same, into DIR
#
# Each binary of cloud/cmd and device/cmd is built (-trimpath, as a release
# is) and cyclonedx-gomod (github.com/CycloneDX/cyclonedx-gomod, run with
# `go run` at a pinned version: nothing enters go.mod) reads the module list
# the Go linker put in it (`go version -m`), so the SBOM lists exactly what
# the binary holds, with each module's version and go.sum hash. The
# dashboard's vendored front-end files (cloud/internal/web/assets/README.md)
# are added to bosun-cloud's SBOM as components with their version and
# SHA-256. Each SBOM is checked: CycloneDX, names its binary's module, and
# lists every module `go version -m` shows. The last lines are a table:
# binary, components, file.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh

CYCLONEDX=github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@v1.10.0
OUT=${1:-$ROOT/artifacts/sbom}
mkdir -p "$OUT/bin"
OUT=$(cd "$OUT" && pwd -P)
command -v jq >/dev/null 2>&1 || bosun_apt_install jq || {
	bosun_err "sbom.sh needs jq (apt-get install -y jq)"
	exit 1
}

VERSION=$(git describe --tags --always --dirty 2>/dev/null || echo devel)
# The tool is built once, outside the workspace (its own go.mod).
TOOL=$OUT/bin/.cyclonedx-gomod
if [[ ! -x "$TOOL" ]]; then
	GOWORK=off GOFLAGS= GOBIN=$OUT/bin/.tool go install "$CYCLONEDX"
	mv "$OUT/bin/.tool/cyclonedx-gomod" "$TOOL"
	rmdir "$OUT/bin/.tool"
fi

# vendored_components prints the CycloneDX components of the rows of the
# assets README that name a version and a sha256.
vendored_components() {
	awk -F'|' '/sha256 `[0-9a-f]+`/ {
		file = $2; gsub(/[ `]/, "", file)
		what = $3; sub(/^ */, "", what); sub(/ *$/, "", what)
		split(what, w, " "); name = w[1]; version = w[2]; sub(/,$/, "", version)
		match($4, /sha256 `[0-9a-f]+`/); sha = substr($4, RSTART + 8, RLENGTH - 9); if (length(sha) != 64) next
		lic = ""; if (match($4, /\(([A-Za-z0-9.-]+),/)) lic = substr($4, RSTART + 1, RLENGTH - 2)
		printf "{\"type\":\"library\",\"name\":\"%s\",\"version\":\"%s\",\"purl\":\"pkg:npm/%s.org@%s\",\"description\":\"vendored front-end file %s\",\"hashes\":[{\"alg\":\"SHA-256\",\"content\":\"%s\"}]%s}\n",
			name, version, name, version, file, sha, (lic == "" ? "" : ",\"licenses\":[{\"license\":{\"id\":\"" lic "\"}}]")
	}' cloud/internal/web/assets/README.md
}

rows=()
for dir in cloud/cmd/* device/cmd/*; do
	name=$(basename "$dir")
	bin=$OUT/bin/$name
	go build -trimpath -o "$bin" "./$dir"
	sbom=$OUT/$name.cdx.json
	"$TOOL" bin -json -version "$VERSION" -output "$sbom" "$bin"
	if [[ "$name" == bosun-cloud ]]; then
		extra=$(vendored_components | jq -s .)
		[[ $(jq length <<<"$extra") -gt 0 ]] || {
			bosun_err "no vendored front-end file with a version and sha256 in cloud/internal/web/assets/README.md"
			exit 1
		}
		jq --argjson extra "$extra" '.components += $extra' "$sbom" >"$sbom.tmp" && mv "$sbom.tmp" "$sbom"
	fi
	# Check it: CycloneDX, every module of the binary listed.
	[[ $(jq -r .bomFormat "$sbom") == CycloneDX ]] || {
		bosun_err "$sbom is not CycloneDX"
		exit 1
	}
	while read -r kind path ver _; do
		[[ "$kind" == dep ]] || continue
		jq -e --arg p "$path" --arg v "$ver" '[.components[]? | select(.name == $p and .version == $v)] | length > 0' "$sbom" >/dev/null || {
			bosun_err "$sbom does not list $path $ver, which $name holds"
			exit 1
		}
	done < <(go version -m "$bin" | awk '{ $1 = $1; print }')
	rows+=("$(printf '%-14s %5d  %s' "$name" "$(jq '.components | length' "$sbom")" "${sbom#"$ROOT"/}")")
done
printf '%-14s %5s  %s\n' binary comps sbom
printf '%s\n' "${rows[@]}"
