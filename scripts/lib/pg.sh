# shellcheck shell=bash
# pg.sh — a throwaway PostgreSQL cluster in a directory, for tests and local dev.
#
#   source scripts/lib/pg.sh
#   pg_start DIR [PORT]   # initdb (first time) + start; prints the URL and exports
#                         # BOSUN_PG_URL. No-op when the cluster in DIR runs.
#   pg_url DIR            # prints postgres://bosun@127.0.0.1:PORT/postgres?sslmode=disable
#   pg_stop DIR           # stops the cluster of DIR (and nothing else); no-op if stopped
#
# Layout of DIR: data/ (PGDATA), port, postgres.log and the unix socket
# .s.PGSQL.PORT. The cluster listens on 127.0.0.1 only and trusts every local
# connection: user "bosun", no password. Never point it at data you care about.
#
# Environment:
#   BOSUN_PG_FAST=1   fsync=off, synchronous_commit=off, full_page_writes=off,
#                     max_connections=200 (parallel test packages) and initdb
#                     --no-sync: fast, and unsafe on a crash. Tests only.
#
# PostgreSQL refuses to run as root: as root the server runs as the "postgres"
# user (runuser), DIR is chowned to it and its parent directories are made
# traversable. Binaries come from PATH or the newest /usr/lib/postgresql/*/bin;
# when missing they are installed with apt-get (as root) or the apt command to
# run is printed.

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# pg__find_bin sets PG_BIN to the directory holding initdb and pg_ctl.
pg__find_bin() {
	local p d
	if p=$(command -v pg_ctl 2>/dev/null) && [[ -x "$(dirname "$p")/initdb" ]]; then
		PG_BIN=$(dirname "$p")
		return 0
	fi
	d=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -type d -name bin 2>/dev/null | sort -V | tail -n 1)
	if [[ -n "$d" && -x "$d/initdb" && -x "$d/pg_ctl" ]]; then
		PG_BIN=$d
		return 0
	fi
	return 1
}

pg__ensure_bin() {
	pg__find_bin && return 0
	bosun_log "PostgreSQL server binaries (initdb, pg_ctl) not found"
	if ! bosun_is_root; then
		bosun_err "install PostgreSQL with: sudo apt-get install -y postgresql"
		return 1
	fi
	bosun_apt_install postgresql-15 || bosun_apt_install postgresql || return 1
	pg__find_bin || {
		bosun_err "PostgreSQL installed but initdb/pg_ctl still not found"
		return 1
	}
}

# pg__run CMD... runs CMD as the cluster owner: "postgres" when we are root.
pg__run() {
	if bosun_is_root; then
		(cd / && runuser -u postgres -- "$@")
	else
		"$@"
	fi
}

pg__abs() {
	mkdir -p "$1" && (cd "$1" && pwd -P)
}

# pg__prepare_dir_for_postgres gives DIR to the postgres user and makes sure
# that user can reach it.
pg__prepare_dir_for_postgres() {
	local dir=$1 p
	if ! id postgres >/dev/null 2>&1; then
		bosun_log "creating system user postgres"
		useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/sh postgres || return 1
	fi
	chown postgres: "$dir" || return 1
	chmod 0750 "$dir" || return 1
	p=$dir
	while ! runuser -u postgres -- test -x "$dir" 2>/dev/null && [[ "$p" != / ]]; do
		p=$(dirname "$p")
		if ! runuser -u postgres -- test -x "$p" 2>/dev/null; then
			bosun_log "making $p traversable (o+x) for the postgres user"
			chmod o+x "$p" || return 1
		fi
	done
}

# pg__running DIR succeeds when the cluster of DIR runs.
pg__running() {
	[[ -f "$1/data/postmaster.pid" ]] || return 1
	pg__find_bin || return 1
	pg__run "$PG_BIN/pg_ctl" -D "$1/data" status >/dev/null 2>&1
}

pg_url() {
	local dir=${1:?usage: pg_url DIR} port
	dir=$(cd "$dir" 2>/dev/null && pwd -P) || {
		bosun_err "pg_url: no directory $1"
		return 1
	}
	port=$(cat "$dir/port" 2>/dev/null) || {
		bosun_err "pg_url: no cluster was started in $dir"
		return 1
	}
	printf 'postgres://bosun@127.0.0.1:%s/postgres?sslmode=disable\n' "$port"
}

pg_start() {
	local dir=${1:?usage: pg_start DIR [PORT]} want_port=${2:-} port attempt opts sock_opt
	dir=$(pg__abs "$dir") || return 1
	if [[ "$dir" == *"'"* || "$dir" == *\\* ]]; then
		bosun_err "pg_start: unsupported character in directory name: $dir"
		return 1
	fi
	pg__ensure_bin || return 1

	if pg__running "$dir"; then
		BOSUN_PG_URL=$(pg_url "$dir") || return 1
		export BOSUN_PG_URL
		bosun_log "PostgreSQL already running in $dir"
		printf '%s\n' "$BOSUN_PG_URL"
		return 0
	fi

	if bosun_is_root; then
		pg__prepare_dir_for_postgres "$dir" || return 1
	fi

	if [[ ! -s "$dir/data/PG_VERSION" ]]; then
		rm -rf "$dir/data"
		local initdb_opts=(-D "$dir/data" -A trust -U bosun -E UTF8 --locale=C)
		[[ "${BOSUN_PG_FAST:-}" == 1 ]] && initdb_opts+=(--no-sync)
		bosun_log "initdb $dir/data ($("$PG_BIN/pg_ctl" --version))"
		if ! pg__run "$PG_BIN/initdb" "${initdb_opts[@]}" >"$dir/initdb.log" 2>&1; then
			cat "$dir/initdb.log" >&2
			bosun_err "initdb failed (log: $dir/initdb.log)"
			return 1
		fi
	fi

	opts="-c listen_addresses=127.0.0.1"
	if [[ "${BOSUN_PG_FAST:-}" == 1 ]]; then
		opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
	fi
	# A unix socket path is limited to 107 bytes.
	if ((${#dir} + 20 > 107)); then
		bosun_warn "pg_start: $dir is too long for a unix socket; TCP only"
		sock_opt="-c unix_socket_directories=''"
	else
		sock_opt="-k '$dir'"
	fi

	for attempt in 1 2 3 4 5; do
		if [[ -n "$want_port" ]]; then
			port=$want_port
		elif [[ -s "$dir/port" ]] && ! bosun_port_in_use "$(cat "$dir/port")"; then
			port=$(cat "$dir/port") # keep a restarted dev cluster on its port
		else
			port=$(bosun_free_port) || return 1
		fi
		printf '%s\n' "$port" >"$dir/port"
		bosun_log "starting PostgreSQL in $dir on 127.0.0.1:$port"
		if pg__run "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
			-o "-p $port $sock_opt $opts" start >/dev/null; then
			BOSUN_PG_URL=$(pg_url "$dir") || return 1
			export BOSUN_PG_URL
			printf '%s\n' "$BOSUN_PG_URL"
			return 0
		fi
		if [[ -n "$want_port" ]] || ((attempt == 5)); then
			break
		fi
		bosun_warn "PostgreSQL did not start on port $port (attempt $attempt), trying another port"
		rm -f "$dir/port"
	done
	tail -n 20 "$dir/postgres.log" >&2 2>/dev/null || true
	bosun_err "pg_start: PostgreSQL did not start (log: $dir/postgres.log)"
	# pg_ctl may give up while the server still starts: make sure none is left.
	pg_stop "$dir" >/dev/null 2>&1 || true
	return 1
}

pg_stop() {
	local dir=${1:?usage: pg_stop DIR}
	[[ -d "$dir" ]] || return 0
	dir=$(cd "$dir" && pwd -P) || return 1
	pg__running "$dir" || return 0
	bosun_log "stopping PostgreSQL in $dir"
	if ! pg__run "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null; then
		bosun_warn "fast shutdown failed, forcing an immediate one"
		pg__run "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null
	fi
}

# pg_throwaway NAME starts a PostgreSQL cluster in a fresh temp dir for the
# script that sources this file, exports BOSUN_TEST_DATABASE_URL, and
# installs traps that stop the cluster and remove the dir on exit, Ctrl-C
# or TERM (keeping the script's exit code). For scripts that own their
# process: it sets the EXIT, INT and TERM traps.
pg_throwaway() {
	local name=${1:?usage: pg_throwaway NAME}
	BOSUN_PG_TMP=$(mktemp -d "${TMPDIR:-/tmp}/bosun-$name.XXXXXX")
	chmod 0711 "$BOSUN_PG_TMP" # the postgres user must reach it when we are root
	trap pg__throwaway_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	BOSUN_TEST_DATABASE_URL=$(pg_start "$BOSUN_PG_TMP/postgres")
	export BOSUN_TEST_DATABASE_URL
}

# shellcheck disable=SC2317 # called by the trap
pg__throwaway_cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	pg_stop "$BOSUN_PG_TMP/postgres" || true
	rm -rf "$BOSUN_PG_TMP"
	exit "$rc"
}
