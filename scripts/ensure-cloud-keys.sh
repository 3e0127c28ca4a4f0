#!/usr/bin/env bash
# ensure-cloud-keys.sh — make sure the cloud's signing key exists.
#
# Creates keys/cloud_private.pem (PKCS#8, mode 0600) when missing, derives
# keys/cloud_public.pem from it, and copies the public key to
# keys/device/cloud_public.pem, where the device stack pins it. Idempotent: an
# existing private key is never overwritten. Uses Bosun's own Go code
# (`bosun-cloud keys ensure`), so it works wherever Go works.
#
# Usage: scripts/ensure-cloud-keys.sh [KEYS_DIR]   (default: keys/ at the repo root)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${1:-"$root/keys"}
if [[ -n "${BOSUN_CLOUD_BIN:-}" && -x "${BOSUN_CLOUD_BIN}" ]]; then
  exec "$BOSUN_CLOUD_BIN" keys ensure --dir "$dir"
fi
cd "$root"
exec go run ./cloud/cmd/bosun-cloud keys ensure --dir "$dir"
