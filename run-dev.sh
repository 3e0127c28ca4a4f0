#!/usr/bin/env bash
# run-dev.sh — run Bosun's cloud and one dev device on this machine.
#
#   ./run-dev.sh           build, start PostgreSQL, the cloud, a bridge, the
#                          built-in worker, the OTA worker and hello-worker (run
#                          from its OTA slot) for device dev-1 (and a Podman
#                          demo container when Podman is installed); make the
#                          dev release key in keys/release; idempotent
#   ./run-dev.sh status    show what run-dev.sh started and whether it still
#                          runs; exit 0 when all of it runs, 1 when a part of
#                          it is down, 3 when nothing was started
#   ./run-dev.sh down      stop exactly what run-dev.sh started
#   ./run-dev.sh sim N     beside a running stack, start N simulated devices
#                          (bosun-sim: ids sim-1 ... sim-N, keys in .dev/sim,
#                          preauthorised so they are accepted at once) for
#                          BOSUN_SIM_DURATION (default 1h); run it again to
#                          change N
#
# Everything lives under .dev/ (git-ignored): binaries in .dev/bin, logs in
# .dev/logs, pid files in .dev/pids, the database in .dev/postgres, the device's
# data in .dev/dev-1. Set BOSUN_DATABASE_URL to use your own PostgreSQL instead.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$root"

# BOSUN_DEV_DIR and BOSUN_KEYS_DIR move the state elsewhere (tests run a whole
# stack in a temporary directory this way).
DEV=${BOSUN_DEV_DIR:-"$root/.dev"}
KEYS=${BOSUN_KEYS_DIR:-"$root/keys"}
BIN="$DEV/bin"
LOGS="$DEV/logs"
PIDS="$DEV/pids"
DEVICE_ID=${BOSUN_DEV_DEVICE_ID:-dev-1}
LISTEN=${BOSUN_LISTEN:-127.0.0.1:8080}
CLOUD_URL="http://$LISTEN"
SUPER_EMAIL=${BOSUN_DEV_EMAIL:-admin@bosun.local}
HOOK="$root/device/examples/ota-hook/run-slot.sh"

# shellcheck source=scripts/lib/pg.sh
source "$root/scripts/lib/pg.sh"
# shellcheck source=scripts/lib/podman-demo.sh
source "$root/scripts/lib/podman-demo.sh"

if [[ -t 1 ]]; then
  say() { printf '\033[1m==>\033[0m %s\n' "$*"; }
else
  say() { printf '==> %s\n' "$*"; }
fi
die() { printf 'run-dev: %s\n' "$*" >&2; exit 1; }

# alive PID: true when PID is a live process. A killed process whose parent
# is gone may linger as a zombie where nothing reaps orphans (containers,
# sandboxes): that counts as dead.
alive() {
  local stat
  kill -0 "$1" 2>/dev/null || return 1
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}

# running NAME: true when .dev/pids/NAME.pid names a live process.
running() {
  local f="$PIDS/$1.pid"
  [[ -f "$f" ]] && alive "$(cat "$f")"
}

# start NAME LOGFILE CMD...: start CMD in the background unless NAME runs.
start() {
  local name=$1 log=$2; shift 2
  if running "$name"; then
    say "$name already running (pid $(cat "$PIDS/$name.pid"))"
    return 0
  fi
  mkdir -p "$PIDS" "$LOGS"
  # setsid: its own process group, so `down` stops its children too.
  setsid "$@" >>"$log" 2>&1 </dev/null &
  echo $! >"$PIDS/$name.pid"
  say "started $name (pid $!, log ${log#"$root/"})"
}

# stop NAME: TERM the process group, wait up to 10s, then KILL.
stop() {
  local name=$1 f="$PIDS/$1.pid" pid
  [[ -f "$f" ]] || return 0
  pid=$(cat "$f")
  if alive "$pid"; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      alive "$pid" || break
      sleep 0.1
    done
    if alive "$pid"; then
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    say "stopped $name"
  fi
  rm -f "$f"
}

# wait_for DESCRIPTION SECONDS CMD...: poll CMD until it succeeds.
wait_for() {
  local what=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      die "$what did not come up within ${secs}s; see $LOGS/"
    fi
    sleep 0.2
  done
}

db_url() {
  if [[ -n "${BOSUN_DATABASE_URL:-}" ]]; then
    printf '%s\n' "$BOSUN_DATABASE_URL"
  else
    pg_url "$DEV/postgres"
  fi
}

up() {
  command -v go >/dev/null || die "Go is not installed: see https://go.dev/doc/install"
  mkdir -p "$BIN" "$LOGS" "$PIDS"

  say "building binaries into .dev/bin"
  go build -o "$BIN/" ./cloud/cmd/bosun-cloud ./cloud/cmd/bosun \
    ./device/cmd/bosun-bridge ./device/cmd/bosun-worker ./device/cmd/bosun-ota ./device/examples/hello-worker

  say "ensuring cloud keys in keys/"
  BOSUN_CLOUD_BIN="$BIN/bosun-cloud" "$root/scripts/ensure-cloud-keys.sh" "$KEYS"

  if [[ -z "${BOSUN_DATABASE_URL:-}" ]]; then
    say "starting PostgreSQL in .dev/postgres"
    pg_start "$DEV/postgres" >/dev/null
    touch "$DEV/postgres/started-by-run-dev"
  fi
  local url
  url=$(db_url)
  export BOSUN_DATABASE_URL="$url"

  say "migrating the database"
  "$BIN/bosun-cloud" migrate >>"$LOGS/cloud.log" 2>&1 || die "migration failed; see $LOGS/cloud.log"

  local creds="$DEV/credentials.txt" cli="$DEV/bosun.json"
  if [[ ! -f "$creds" ]]; then
    say "creating the first super user and an API token (printed once, kept in .dev/credentials.txt)"
    local pw token
    pw=$("$BIN/bosun-cloud" user add --super --quiet "$SUPER_EMAIL") || die "could not create the first user"
    token=$("$BIN/bosun-cloud" token create --user "$SUPER_EMAIL" --name run-dev) || die "could not create an API token"
    (
      umask 077
      printf 'dashboard: %s\nemail:     %s\npassword:  %s\napi token: %s\n' "$CLOUD_URL" "$SUPER_EMAIL" "$pw" "$token" >"$creds"
      printf '{"url":"%s","token":"%s"}\n' "$CLOUD_URL" "$token" >"$cli"
    )
    cat "$creds"
  fi

  start cloud "$LOGS/cloud.log" env BOSUN_LISTEN="$LISTEN" BOSUN_DATA_DIR="$DEV/cloud" \
    BOSUN_PUBLIC_URL="$CLOUD_URL" BOSUN_CLOUD_KEY="$KEYS/cloud_private.pem" "$BIN/bosun-cloud" serve
  wait_for "the cloud" 30 curl -fsS "$CLOUD_URL/healthz"

  # The dev release repository: root and targets keys in keys/release
  # (git-ignored, 0600), made once and published to the cloud; the device
  # pins its 1.root.json. In production these keys live offline.
  export BOSUN_CONFIG="$cli"
  if [[ ! -f "$KEYS/release/1.root.json" ]]; then
    say "making the dev release key in ${KEYS#"$root/"}/release (signs OTA bundles; the cloud never holds it)"
    "$BIN/bosun" release init "$KEYS/release" >/dev/null || die "bosun release init failed"
  fi
  if ! "$BIN/bosun" release publish "$KEYS/release" >>"$LOGS/release.log" 2>&1; then
    say "the cloud refused ${KEYS#"$root/"}/release (see .dev/logs/release.log): it was made for another cloud's online keys;"
    say "  move it away (mv keys/release keys/release.old) and rerun ./run-dev.sh to make a new one"
  fi
  mkdir -p "$DEV/$DEVICE_ID"
  cp "$KEYS/release/1.root.json" "$DEV/$DEVICE_ID/release-root.json"

  # The built-in worker reaches a container engine through DOCKER_HOST: yours
  # when set, else the Podman demo when Podman is installed (BOSUN_DEV_PODMAN=0
  # turns the demo off).
  local docker_host=${DOCKER_HOST:-}
  if [[ -z "$docker_host" && "${BOSUN_DEV_PODMAN:-1}" != 0 ]]; then
    if command -v podman >/dev/null 2>&1; then
      if podman_demo_start "$DEV/podman" demo >>"$LOGS/podman.log" 2>&1; then
        docker_host="unix://$DEV/podman/podman.sock"
        touch "$DEV/podman/started-by-run-dev"
        say "Podman demo container 'demo' runs (Docker API at $docker_host)"
      else
        say "Podman is installed but the demo container did not start; see $LOGS/podman.log"
      fi
    else
      say "Podman not installed: containers.* will report no engine (apt-get install podman runc busybox-static)"
    fi
  fi

  # The device's NATS port is chosen once and kept, so workers find a
  # restarted bridge where they left it.
  local nats_port_file="$DEV/$DEVICE_ID.nats-port" nats_port
  if [[ ! -s "$nats_port_file" ]]; then
    bosun_free_port >"$nats_port_file"
  fi
  nats_port=$(cat "$nats_port_file")

  start bridge "$LOGS/bridge.log" env BOSUN_DEVICE_ID="$DEVICE_ID" BOSUN_DATA_DIR="$DEV/$DEVICE_ID" \
    BOSUN_CLOUD_URL="ws://$LISTEN/v1/device" BOSUN_CLOUD_PUBLIC_KEY="$KEYS/device/cloud_public.pem" \
    BOSUN_NATS_LISTEN="127.0.0.1:$nats_port" "$BIN/bosun-bridge"
  wait_for "the bridge's NATS" 30 test -s "$DEV/$DEVICE_ID/nats.url"

  start worker "$LOGS/worker.log" env BOSUN_DATA_DIR="$DEV/$DEVICE_ID" ${docker_host:+DOCKER_HOST="$docker_host"} \
    "$BIN/bosun-worker"

  # OTA: the device's first ("factory") slot holds hello-worker as built
  # here; bosun-ota switches slots and runs the hook, which restarts
  # hello-worker from the new slot.
  local ota="$DEV/$DEVICE_ID/ota"
  if [[ ! -e "$ota/state.json" && ! -x "$ota/slots/a/run" ]]; then
    mkdir -p "$ota/slots/a/bin"
    cp "$BIN/hello-worker" "$ota/slots/a/bin/hello-worker"
    printf '#!/bin/sh\n# the factory hello-worker (./run-dev.sh)\nexec "$(dirname "$0")/bin/hello-worker"\n' >"$ota/slots/a/run"
    chmod 755 "$ota/slots/a/run"
  fi
  start ota "$LOGS/ota.log" env BOSUN_DATA_DIR="$DEV/$DEVICE_ID" BOSUN_OTA_HOOK="$HOOK" \
    BOSUN_CLOUD_URL="ws://$LISTEN/v1/device" "$BIN/bosun-ota"
  wait_for "the OTA worker" 30 test -L "$ota/current"
  if [[ -s "$ota/app.pid" ]] && alive "$(cat "$ota/app.pid")"; then
    say "hello-worker already running from its OTA slot (pid $(cat "$ota/app.pid"))"
  else
    BOSUN_DATA_DIR="$DEV/$DEVICE_ID" BOSUN_OTA_DATA_DIR="$ota" "$HOOK" "$ota/current" >>"$LOGS/ota.log" 2>&1
    say "started hello-worker from OTA slot $(readlink "$ota/current") (pid $(cat "$ota/app.pid"), log ${ota#"$root/"}/app.log)"
  fi
  wait_for "device $DEVICE_ID registering" 30 sh -c "'$BIN/bosun' device '$DEVICE_ID' --json"

  # Say where the device stands: on a second start it is often accepted.
  local dev_status note accept_hint=""
  dev_status=$(device_status) || dev_status=""
  case "$dev_status" in
    accepted) note="accepted" ;;
    pending)
      note="pending until you accept it"
      accept_hint="  .dev/bin/bosun devices --pending
  .dev/bin/bosun accept $DEVICE_ID
"
      ;;
    rejected) note="rejected: the cloud refuses its key (.dev/bin/bosun device $DEVICE_ID)" ;;
    "") note="status unknown (.dev/bin/bosun device $DEVICE_ID)" ;;
    *) note=$dev_status ;;
  esac

  cat <<EOF

Bosun is running.
  dashboard:    $CLOUD_URL  (credentials in .dev/credentials.txt)
  logs:         .dev/logs/
  device:       $DEVICE_ID ($note)

Try:
  export BOSUN_CONFIG=\$PWD/.dev/bosun.json
${accept_hint}  .dev/bin/bosun call $DEVICE_ID system.info
  .dev/bin/bosun call $DEVICE_ID containers.list
  .dev/bin/bosun call $DEVICE_ID hello.greet '{"name":"you"}'
  an OTA update of hello-worker: README.md, "Update a device over the air"

Stop everything with ./run-dev.sh down
EOF
}

# device_status prints the dev device's status as the cloud has it
# (pending, accepted, rejected, ...), or nothing when it cannot tell. The
# device's own "status" is the only one at the top level of the JSON.
device_status() {
  "$BIN/bosun" device "$DEVICE_ID" --json 2>/dev/null |
    sed -n 's/^  "status": "\([a-z]*\)",\{0,1\}$/\1/p' | head -n 1
}

# sim N: start N simulated devices beside the running cloud (see the top).
sim() {
  local n=${1:-}
  [[ $n =~ ^[0-9]+$ ]] && ((n >= 1 && n <= 100000)) || die "usage: ./run-dev.sh sim N (N from 1 to 100000 devices)"
  running cloud || die "the cloud is not running: start it with ./run-dev.sh first"
  say "building bosun-sim into .dev/bin"
  go build -o "$BIN/" ./device/cmd/bosun-sim
  stop sim
  local dir="$DEV/sim" duration=${BOSUN_SIM_DURATION:-1h}
  mkdir -p "$dir"
  say "making (or reusing) $n device keys in ${dir#"$root/"} and preauthorising them"
  "$BIN/bosun-sim" keys --devices "$n" --data-dir "$dir" >"$dir/preauth.json" || die "bosun-sim keys failed"
  BOSUN_CONFIG="$DEV/bosun.json" "$BIN/bosun" preauth --file "$dir/preauth.json" || die "preauthorising the simulated devices failed"
  start sim "$LOGS/sim.log" "$BIN/bosun-sim" run --devices "$n" --data-dir "$dir" \
    --cloud-url "ws://$LISTEN/v1/device" --cloud-public-key "$KEYS/device/cloud_public.pem" \
    --duration "$duration"
  cat <<EOF

$n simulated devices (sim-1 ... sim-$n) connect to $CLOUD_URL for $duration;
they show in the dashboard and in .dev/bin/bosun devices. Try:
  export BOSUN_CONFIG=\$PWD/.dev/bosun.json
  .dev/bin/bosun call sim-1 system.info
Stop them with ./run-dev.sh down (everything), or run ./run-dev.sh sim again with another N.
EOF
}

# stop_app stops hello-worker, which the OTA hook started from the active
# slot (its pid file is the hook's).
stop_app() {
  local f="$DEV/$DEVICE_ID/ota/app.pid" pid
  [[ -s "$f" ]] || return 0
  pid=$(cat "$f")
  if alive "$pid"; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      alive "$pid" || break
      sleep 0.1
    done
    alive "$pid" && { kill -KILL -- "-$pid" 2>/dev/null || true; }
    say "stopped hello-worker"
  fi
  rm -f "$f"
}

down() {
  stop sim
  stop ota
  stop_app
  stop worker
  stop bridge
  stop cloud
  if [[ -f "$DEV/podman/started-by-run-dev" ]]; then
    podman_demo_stop "$DEV/podman" demo >>"$LOGS/podman.log" 2>&1 || true
    rm -f "$DEV/podman/started-by-run-dev"
    say "stopped the Podman demo"
  fi
  if [[ -z "${BOSUN_DATABASE_URL:-}" && -d "$DEV/postgres" ]]; then
    pg_stop "$DEV/postgres" >/dev/null 2>&1 || true
    rm -f "$DEV/postgres/started-by-run-dev"
    say "stopped PostgreSQL"
  fi
}

# status reports each part run-dev.sh started and did not stop since
# (a pid file, or a started-by-run-dev marker), nothing else: a worker you
# started yourself is yours. Exit status as an init script's (LSB): 0 when
# every part runs, 1 when a part is down, 3 when nothing was started.
status() {
  local n pid started=0 down=0
  for n in cloud bridge worker ota sim; do
    [[ -f "$PIDS/$n.pid" ]] || continue
    started=1
    pid=$(cat "$PIDS/$n.pid")
    if running "$n"; then
      printf '%-13s running (pid %s)\n' "$n" "$pid"
    else
      printf '%-13s DOWN (pid %s is gone; see %s)\n' "$n" "$pid" "${LOGS#"$root/"}/$n.log"
      down=1
    fi
  done
  local app="$DEV/$DEVICE_ID/ota/app.pid"
  if [[ -s "$app" ]]; then
    started=1
    if alive "$(cat "$app")"; then
      printf '%-13s running (pid %s, from OTA slot %s)\n' hello-worker "$(cat "$app")" "$(readlink "$DEV/$DEVICE_ID/ota/current" 2>/dev/null)"
    else
      printf '%-13s DOWN (pid %s is gone; see %s)\n' hello-worker "$(cat "$app")" "${DEV#"$root/"}/$DEVICE_ID/ota/app.log"
      down=1
    fi
  fi
  if [[ -f "$DEV/postgres/started-by-run-dev" ]]; then
    started=1
    if pg__running "$DEV/postgres"; then
      printf '%-13s running (%s)\n' postgres "$(pg_url "$DEV/postgres")"
    else
      printf '%-13s DOWN (see %s)\n' postgres "${DEV#"$root/"}/postgres/postgres.log"
      down=1
    fi
  fi
  if [[ -f "$DEV/podman/started-by-run-dev" ]]; then
    started=1
    if curl -fsS --max-time 2 --unix-socket "$DEV/podman/podman.sock" http://d/v1.41/containers/json >/dev/null 2>&1; then
      printf '%-13s running (unix://%s)\n' podman-demo "$DEV/podman/podman.sock"
    else
      printf '%-13s DOWN (see %s)\n' podman-demo "${LOGS#"$root/"}/podman.log"
      down=1
    fi
  fi
  if ((!started)); then
    echo "nothing started by run-dev.sh runs (start it with ./run-dev.sh)"
    return 3
  fi
  if ((down)); then
    echo "a part is down: ./run-dev.sh starts what is missing"
    return 1
  fi
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  status) status ;;
  sim) sim "${2:-}" ;;
  -h | --help | help) sed -n '2,20p' "$0" ;;
  *) die "unknown command '$1' (use: up, down, status, sim N)" ;;
esac
