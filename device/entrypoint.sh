#!/bin/sh
# bosun-device: run the bridge and the built-in worker in one container and
# stop both when either ends.
set -eu
bosun-bridge &
bridge=$!
# The worker finds the bridge's NATS through the data dir (nats.url).
i=0
until [ -s "$BOSUN_DATA_DIR/nats.url" ]; do
  i=$((i + 1))
  [ "$i" -le 150 ] || { echo "bridge did not start its NATS" >&2; kill "$bridge"; exit 1; }
  sleep 0.2
done
bosun-worker &
worker=$!
trap 'kill -TERM "$bridge" "$worker" 2>/dev/null' TERM INT
wait "$bridge" || true
kill -TERM "$worker" 2>/dev/null || true
wait "$worker" || true
