#!/usr/bin/env bash
# postgres-harness.sh: a throwaway PostgreSQL (Debian package) on 127.0.0.1
# for Balcony's integration tests.
#
#   scripts/postgres-harness.sh start DIR
#       Installs postgresql with apt-get if it is missing (as root, without
#       letting the package start a system cluster), creates a cluster in a
#       private directory, starts it in the background listening on
#       127.0.0.1 only, on a free port (its Unix socket is reached through
#       the link DIR/socket), and
#       waits until it accepts connections. Prints shell assignments
#       (PG_URL, PG_HOST, PG_PORT, PG_USER, PG_PASSWORD, PG_PID, PG_DIR,
#       PG_SOCKET_DIR) on stdout.
#   scripts/postgres-harness.sh stop DIR
#       Stops the server started in DIR (by its PID), waits for it to exit
#       and removes its data.
#
# PostgreSQL refuses to run as root: as root the cluster belongs to the
# "postgres" user and lives in a directory that user owns (DIR may not be
# reachable for it); otherwise it runs as the current user. The superuser
# "postgres" authenticates with SCRAM-SHA-256 and a random password over
# TCP on loopback only; the Unix socket (mode 0700) takes its owner only.
#
# Exit codes: 0 ok, 1 failure, 3 PostgreSQL is not installed and cannot be
# installed here (not root or no apt-get); callers treat 3 as "skip".
set -euo pipefail

die() { echo "postgres-harness: error: $*" >&2; exit 1; }

pg_bindir() {
	local d=${PG_BINDIR:-}
	[ -n "$d" ] || d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
	[ -n "$d" ] && [ -x "$d/postgres" ] && [ -x "$d/initdb" ] && echo "$d"
}

ensure_installed() {
	if [ -n "$(pg_bindir)" ]; then return 0; fi
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
		echo "postgres-harness: postgresql is not installed; install it with: sudo apt-get install -y postgresql" >&2
		exit 3
	fi
	echo "postgres-harness: installing postgresql from Debian" >&2
	# apt_install (scripts/lib.sh) keeps the package from starting the
	# system-wide cluster it creates.
	apt_install postgresql || die "apt-get install postgresql failed"
	[ -n "$(pg_bindir)" ] || die "postgresql installed but no server binaries found"
}

# apt_install, port_free and pick_port
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# as_server runs a command as the user that owns the cluster.
as_server() {
	if [ "$(id -u)" = 0 ]; then
		setpriv --reuid=postgres --regid=postgres --init-groups --reset-env -- "$@"
	else
		"$@"
	fi
}

cmd_start() {
	local dir=${1:?usage: start DIR}
	ensure_installed
	local bin
	bin=$(pg_bindir)
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	chmod 700 "$dir"
	[ ! -e "$dir/postgres.pid" ] || die "a server was already started in $dir"
	# The cluster's own directory: data and socket, owned by the server user.
	local run
	run=$(mktemp -d "${TMPDIR:-/tmp}/balcony-pg.XXXXXX")
	echo "$run" > "$dir/postgres.run"
	if [ "$(id -u)" = 0 ]; then
		id postgres >/dev/null 2>&1 || die "no postgres user (the Debian package creates it)"
		chown postgres: "$run"
	fi
	chmod 700 "$run"
	local pass
	pass=$(od -An -N18 -tx1 /dev/urandom | tr -d ' \n')
	( umask 077; printf '%s\n' "$pass" > "$run/pwfile" )
	[ "$(id -u)" != 0 ] || chown postgres: "$run/pwfile"
	as_server "$bin/initdb" -D "$run/data" -U postgres --pwfile="$run/pwfile" \
		--auth-host=scram-sha-256 --auth-local=peer -E UTF8 --locale=C.UTF-8 \
		>"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
	rm -f "$run/pwfile"
	# Loopback only; nothing but the test user over TCP with a password.
	cat > "$run/data/pg_hba.conf" <<HBA
local all all peer
host all postgres 127.0.0.1/32 scram-sha-256
HBA
	local port pid i attempt
	for attempt in 1 2 3; do
		port=$(pick_port)
		local args=(-D "$run/data" -c listen_addresses=127.0.0.1 -p "$port"
			-c unix_socket_directories="$run" -c unix_socket_permissions=0700
			-c fsync=off -c max_connections=50 -c log_min_messages=warning)
		# setpriv execs postgres, so $! is the postmaster's PID.
		if [ "$(id -u)" = 0 ]; then
			setpriv --reuid=postgres --regid=postgres --init-groups --reset-env -- \
				"$bin/postgres" "${args[@]}" >"$dir/postgres.log" 2>&1 &
		else
			"$bin/postgres" "${args[@]}" >"$dir/postgres.log" 2>&1 &
		fi
		pid=$!
		echo "$pid" > "$dir/postgres.pid"
		for i in $(seq 1 300); do
			if ! kill -0 "$pid" 2>/dev/null; then break; fi
			if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres; then
				[ "$(head -1 "$run/data/postmaster.pid" 2>/dev/null)" = "$pid" ] ||
					die "the server on port $port is not the one started (PID $pid)"
				ln -sfn "$run" "$dir/socket"
				cat <<OUT
PG_URL=postgres://postgres:$pass@127.0.0.1:$port/postgres?sslmode=disable
PG_HOST=127.0.0.1
PG_PORT=$port
PG_USER=postgres
PG_PASSWORD=$pass
PG_PID=$pid
PG_DIR=$dir
PG_SOCKET_DIR=$dir/socket
OUT
				return 0
			fi
			sleep 0.05
		done
		if kill -0 "$pid" 2>/dev/null; then
			kill -INT "$pid" 2>/dev/null || true
			cmd_wait "$pid"
			die "postgres did not accept connections within 15 s (see $dir/postgres.log)"
		fi
		rm -f "$dir/postgres.pid"
		# The port was taken meanwhile, or start-up failed: try again.
	done
	cat "$dir/postgres.log" >&2
	die "postgres exited during start-up"
}

cmd_wait() {
	local pid=$1 i
	for i in $(seq 1 200); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.05
	done
	kill -KILL "$pid" 2>/dev/null || true
}

cmd_stop() {
	local dir=${1:?usage: stop DIR}
	if [ -f "$dir/postgres.pid" ]; then
		local pid
		pid=$(cat "$dir/postgres.pid")
		# SIGINT is PostgreSQL's fast shutdown: clients are disconnected.
		if kill -0 "$pid" 2>/dev/null; then
			kill -INT "$pid" 2>/dev/null || true
			cmd_wait "$pid"
		fi
		rm -f "$dir/postgres.pid"
	fi
	if [ -f "$dir/postgres.run" ]; then
		local run
		run=$(cat "$dir/postgres.run")
		case "$run" in
		*/balcony-pg.*) rm -rf "$run" ;;
		esac
		rm -f "$dir/postgres.run" "$dir/socket"
	fi
}

case "${1:-}" in
start) shift; cmd_start "$@" ;;
stop) shift; cmd_stop "$@" ;;
*) echo "usage: $0 start DIR | stop DIR" >&2; exit 2 ;;
esac
