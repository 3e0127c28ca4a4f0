#!/bin/sh
# run-slot.sh SLOT_DIR: a restart hook for bosun-ota (--hook, BOSUN_OTA_HOOK;
# docs/ota-device.md) for bundles that carry an executable `run` at their
# top: it stops the program started from the previous slot (its process
# group, pid in $BOSUN_OTA_DATA_DIR/app.pid) and starts SLOT_DIR/run in the
# background in a new session, its output appended to
# $BOSUN_OTA_DATA_DIR/app.log. Run it once at boot with <data dir>/ota/current
# to start the active slot's program (./run-dev.sh does).
#
# It returns as soon as the program is started: the program itself proves
# it works by calling ota.commit (device/worker.CommitOTA); one that never
# does is reverted by bosun-ota at the commit timeout, and this hook runs
# again with the slot before it.
set -eu
slot=${1:?usage: run-slot.sh SLOT_DIR}
dir=${BOSUN_OTA_DATA_DIR:-$(dirname "$(dirname "$slot")")}
pidf=$dir/app.pid

# alive PID: a live process that is not a zombie (where nothing reaps
# orphans, a killed one may linger as one).
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) || return 0
  [ "$st" != Z ]
}

if [ -s "$pidf" ]; then
  pid=$(cat "$pidf")
  if alive "$pid"; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    i=0
    while alive "$pid" && [ "$i" -lt 50 ]; do
      sleep 0.1
      i=$((i + 1))
    done
    if alive "$pid"; then
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    echo "stopped pid $pid"
  fi
  rm -f "$pidf"
fi
if [ ! -x "$slot/run" ]; then
  echo "$slot/run is missing or not executable: nothing started"
  exit 0
fi
setsid "$slot/run" >>"$dir/app.log" 2>&1 </dev/null &
echo $! >"$pidf"
echo "started $slot/run (pid $!)"
