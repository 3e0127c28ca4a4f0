# shellcheck shell=bash
# podman-demo.sh — a demo container and a Docker-API socket, with no registry.
#
#   source scripts/lib/podman-demo.sh
#   podman_demo_start DIR [NAME]  # NAME defaults to "demo"; prints the socket as
#                                 # unix:///DIR/podman.sock and exports
#                                 # BOSUN_PODMAN_DEMO_HOST, BOSUN_PODMAN_DEMO_CONTAINER
#   podman_demo_stop DIR [NAME]   # removes what podman_demo_start DIR NAME started
#
# The image localhost/bb:1 is imported from a tarball of the host's static
# busybox (no image can be pulled here). The container NAME prints "hello from
# demo" every 2s. `podman system service` serves the Docker API on DIR/podman.sock.
# Containers run with runc: crun fails in some sandboxes, runc works.
#
# Both functions are idempotent and safe under `set -e`. What was started is recorded in DIR (service.pid,
# container.NAME holding the container id), and podman_demo_stop removes exactly
# that: a container NAME that podman_demo_start found already running is used but
# left alone. The image is kept as a cache.

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PODMAN_DEMO_IMAGE=localhost/bb:1

podman__ensure_tools() {
	local missing=()
	command -v podman >/dev/null 2>&1 || missing+=(podman)
	command -v runc >/dev/null 2>&1 || missing+=(runc)
	command -v curl >/dev/null 2>&1 || missing+=(curl)
	if command -v dpkg >/dev/null 2>&1; then
		dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
	elif [[ ! -x /bin/busybox ]]; then
		missing+=(busybox-static)
	fi
	((${#missing[@]} == 0)) && return 0
	bosun_log "podman demo: missing ${missing[*]}"
	bosun_apt_install "${missing[@]}"
}

podman__build_image() {
	local dir=$1 build l
	podman image exists "$PODMAN_DEMO_IMAGE" && return 0
	bosun_log "building $PODMAN_DEMO_IMAGE from /bin/busybox"
	build=$dir/image-build
	rm -rf "$build"
	mkdir -p "$build/rootfs/bin" || return 1
	cp /bin/busybox "$build/rootfs/bin/busybox" || return 1
	for l in sh echo sleep cat; do
		ln -s busybox "$build/rootfs/bin/$l" || return 1
	done
	tar -C "$build/rootfs" -cf "$build/bb.tar" . || return 1
	podman import -q "$build/bb.tar" "$PODMAN_DEMO_IMAGE" >/dev/null || return 1
	rm -rf "$build"
}

# podman__container_state NAME prints true/false (running), or fails when no
# container NAME exists.
podman__container_state() {
	podman container inspect --format '{{.State.Running}}' "$1" 2>/dev/null
}

podman__start_container() {
	local dir=$1 name=$2 marker=$1/container.$2 state id
	if state=$(podman__container_state "$name"); then
		if [[ "$state" == true ]]; then
			[[ -f "$marker" ]] || bosun_log "podman demo: using the running container $name (not ours: it will be left running)"
			return 0
		fi
		if [[ ! -f "$marker" ]]; then
			bosun_err "podman demo: a stopped container $name exists that podman_demo_start did not create; remove it: podman rm $name"
			return 1
		fi
		podman rm -f -i -t 0 "$(cat "$marker")" >/dev/null 2>&1 || true
		rm -f "$marker"
	fi
	bosun_log "podman demo: starting container $name"
	id=$(podman --runtime runc run -d \
		--ulimit nofile=10000:10000 --ulimit nproc=1000:1000 \
		--label io.bosun.demo=1 --name "$name" "$PODMAN_DEMO_IMAGE" \
		/bin/sh -c 'while true; do echo hello from demo; sleep 2; done') || return 1
	printf '%s\n' "$id" >"$marker"
}

podman__sock_answers() {
	curl -fsS --max-time 2 --unix-socket "$1" http://d/v1.41/containers/json >/dev/null 2>&1
}

# podman__our_service PIDFILE SOCK succeeds when PIDFILE names a live
# `podman system service` on SOCK (and not a recycled pid).
podman__our_service() {
	local pid cmdline
	pid=$(cat "$1" 2>/dev/null) || return 1
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
	[[ "$cmdline" == *"system service"*"unix://$2"* ]]
}

podman__start_service() {
	local dir=$1 sock=$1/podman.sock pidfile=$1/service.pid pid
	if podman__our_service "$pidfile" "$sock" && podman__sock_answers "$sock"; then
		return 0
	fi
	podman__stop_service "$dir"
	if ((${#sock} > 107)); then
		bosun_err "podman demo: socket path too long for a unix socket: $sock"
		return 1
	fi
	bosun_log "podman demo: starting the API service on $sock"
	# setsid: its own session, so a Ctrl-C meant for the caller (run-dev.sh in a
	# terminal) does not kill it; podman_demo_stop does.
	setsid podman --runtime runc system service --time=0 "unix://$sock" \
		</dev/null >"$dir/service.log" 2>&1 &
	# setsid forks when started as a process group leader (job control on), so
	# $! may not be podman: find it by its exact command line, unique by $sock.
	local i
	for ((i = 0; i < 50; i++)); do
		pid=$(pgrep -o -x -f "podman --runtime runc system service --time=0 unix://$sock") && break
		sleep 0.1
	done
	if [[ -z "$pid" ]]; then
		tail -n 20 "$dir/service.log" >&2 || true
		bosun_err "podman demo: the API service exited at once (log: $dir/service.log)"
		return 1
	fi
	printf '%s\n' "$pid" >"$pidfile"
	local deadline=$((SECONDS + 30))
	until podman__sock_answers "$sock"; do
		if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
			tail -n 20 "$dir/service.log" >&2 || true
			bosun_err "podman demo: the API service did not answer on $sock (log: $dir/service.log)"
			podman__stop_service "$dir"
			return 1
		fi
		sleep 0.2
	done
}

podman__stop_service() {
	local dir=$1 sock=$1/podman.sock pidfile=$1/service.pid pid i
	if podman__our_service "$pidfile" "$sock"; then
		pid=$(cat "$pidfile")
		bosun_log "podman demo: stopping the API service (pid $pid)"
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -f "$pidfile" "$sock"
}

podman_demo_start() {
	local dir=${1:?usage: podman_demo_start DIR [NAME]} name=${2:-demo}
	mkdir -p "$dir" && dir=$(cd "$dir" && pwd -P) || return 1
	podman__ensure_tools || return 1
	podman__build_image "$dir" || return 1
	podman__start_container "$dir" "$name" || return 1
	podman__start_service "$dir" || return 1
	BOSUN_PODMAN_DEMO_HOST=unix://$dir/podman.sock
	BOSUN_PODMAN_DEMO_CONTAINER=$name
	export BOSUN_PODMAN_DEMO_HOST BOSUN_PODMAN_DEMO_CONTAINER
	printf '%s\n' "$BOSUN_PODMAN_DEMO_HOST"
}

podman_demo_stop() {
	local dir=${1:?usage: podman_demo_stop DIR [NAME]} name=${2:-demo} marker
	[[ -d "$dir" ]] || return 0
	dir=$(cd "$dir" && pwd -P) || return 1
	podman__stop_service "$dir"
	marker=$dir/container.$name
	if [[ -f "$marker" ]]; then
		bosun_log "podman demo: removing container $name"
		podman rm -f -i -t 0 "$(cat "$marker")" >/dev/null 2>&1 ||
			bosun_warn "podman demo: could not remove container $name"
		rm -f "$marker"
	fi
	return 0
}
