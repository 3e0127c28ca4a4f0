# shellcheck shell=bash
# common.sh — small helpers shared by the scripts in scripts/ and scripts/lib/.
#
# Source it; it defines functions only (prefix bosun_) and never changes shell
# options of the caller. Messages go to stderr so that functions can print
# results on stdout.

if [[ -n "${BOSUN_LIB_COMMON_LOADED:-}" ]]; then
	return 0
fi
BOSUN_LIB_COMMON_LOADED=1

bosun_log() { printf '%s\n' "$*" >&2; }
bosun_warn() { printf 'WARNING: %s\n' "$*" >&2; }
bosun_err() { printf 'ERROR: %s\n' "$*" >&2; }

bosun_is_root() { [[ "$(id -u)" == 0 ]]; }

# bosun_wait_apt waits (at most 10 minutes) while another apt-get or dpkg runs,
# e.g. a provisioning job started in the background.
bosun_wait_apt() {
	local i
	for ((i = 0; i < 300; i++)); do
		if ! pgrep -x apt-get >/dev/null 2>&1 && ! pgrep -x dpkg >/dev/null 2>&1; then
			return 0
		fi
		((i == 0)) && bosun_log "waiting for another apt-get/dpkg to finish..."
		sleep 2
	done
	bosun_err "another apt-get/dpkg is still running after 10 minutes"
	return 1
}

# bosun_apt_install PKG... installs Debian packages. As root it runs
# `apt-get update` once per shell, then `apt-get install -y` (with recommends:
# podman needs netavark and friends that way); otherwise it
# prints the command to run and fails.
bosun_apt_install() {
	if (($# == 0)); then return 0; fi
	if ! bosun_is_root; then
		bosun_err "missing packages; install them with: sudo apt-get install -y $*"
		return 1
	fi
	if ! command -v apt-get >/dev/null 2>&1; then
		bosun_err "missing packages ($*) and no apt-get on this machine"
		return 1
	fi
	bosun_wait_apt || return 1
	local opts=(-o DPkg::Lock::Timeout=600 -o Dpkg::Use-Pty=0)
	if [[ -z "${BOSUN_APT_UPDATED:-}" ]]; then
		bosun_log "apt-get update"
		DEBIAN_FRONTEND=noninteractive apt-get "${opts[@]}" update -qq >&2 || return 1
		BOSUN_APT_UPDATED=1
	fi
	bosun_log "apt-get install -y $*"
	DEBIAN_FRONTEND=noninteractive apt-get "${opts[@]}" install -y -qq "$@" >&2
}

# bosun_port_in_use PORT succeeds when something listens on 127.0.0.1:PORT.
bosun_port_in_use() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# bosun_free_port prints a TCP port on 127.0.0.1 that nobody listens on right
# now: a random one from 10000 up to the kernel's ephemeral range
# (net.ipv4.ip_local_port_range, 32768 by default), so that no outgoing
# connection of a busy machine takes it before the caller binds it. Another
# listener may still take it in that window: callers retry on a bind failure.
bosun_free_port() {
	local i port lo=32768
	read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
	((lo > 11000)) || lo=32768
	for ((i = 0; i < 100; i++)); do
		port=$((10000 + (RANDOM * 32768 + RANDOM) % (lo - 10000)))
		if ! bosun_port_in_use "$port"; then
			printf '%s\n' "$port"
			return 0
		fi
	done
	bosun_err "no free port found on 127.0.0.1"
	return 1
}

# bosun_wait_until SECONDS DESCRIPTION CMD... polls CMD every 0.2s until it
# succeeds or SECONDS have passed.
bosun_wait_until() {
	local timeout=$1 desc=$2
	shift 2
	local deadline=$((SECONDS + timeout))
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			bosun_err "timed out after ${timeout}s waiting for ${desc}"
			return 1
		fi
		sleep 0.2
	done
}
