#!/usr/bin/env bash
# ejabberd-harness.sh: a throwaway ejabberd 23.01 (Debian package) on
# 127.0.0.1 for Balcony's integration tests, the second real server beside
# prosody-harness.sh.
#
#   scripts/ejabberd-harness.sh start DIR [--no-carbons] [C2S_PORT [DIRECT_TLS_PORT]]
#       Installs ejabberd with apt-get if it is missing (as root, with no
#       service started by the install), writes ejabberd.yml and
#       ejabberdctl.cfg under DIR/etc, a spool (Mnesia) in DIR/spool, logs
#       in DIR/log and a private CA plus server certificate in DIR/certs,
#       starts ejabberd with `ejabberdctl ... foreground` in the background
#       listening on 127.0.0.1 only, and waits until both client listeners
#       accept connections. Ports default to free ones. Prints shell
#       assignments on stdout: EJABBERD_DOMAIN, EJABBERD_SHA1_DOMAIN,
#       EJABBERD_ADDR (STARTTLS), EJABBERD_TLS_ADDR (direct TLS),
#       EJABBERD_CA, EJABBERD_PID, EJABBERD_NODE, EJABBERD_CARBONS,
#       EJABBERD_DIR.
#       --no-carbons (or EJABBERD_NO_CARBONS=1) leaves mod_carboncopy out,
#       for testing a server without XEP-0280.
#   scripts/ejabberd-harness.sh adduser DIR USER PASSWORD [DOMAIN]
#       Registers an account with `ejabberdctl register` (works while the
#       server runs).
#   scripts/ejabberd-harness.sh restart DIR
#       Stops the server started in DIR and starts it again with the same
#       configuration, ports and spool (accounts, archives, offline
#       messages survive; sessions and stream management state do not),
#       for fault tests. Prints the same assignments as start.
#   scripts/ejabberd-harness.sh stop DIR
#       Stops the server started in DIR, by PID, and waits for it to exit.
#
# Two virtual hosts are served, like the Prosody harness: "localhost"
# stores SCRAM-SHA-256 credentials and "sha1.localhost" SCRAM-SHA-1 ones
# (auth_scram_hash per host), so both mechanisms can be tested. ejabberd
# 23.01 offers SCRAM-*-PLUS with the tls-unique channel binding only (no
# tls-exporter, no tls-server-end-point), and tls-unique does not exist in
# TLS 1.3 (RFC 9266): a client gets channel binding here only when it
# forces TLS 1.2. Modules: roster, presence (core), disco, caps, carbons,
# MAM (Mnesia), PEP (mod_pubsub, pep plugin), offline, ping, stream
# management with resumption, private XML storage, blocking, version, time.
# Server-to-server, HTTP, STUN, MQTT, ACME and every other listener stay off.
#
# Erlang stays on the loopback interface and private to this instance:
# each instance has its own node name, its own cookie (in DIR, never on a
# command line), its distribution bound to 127.0.0.1 on a port of its own
# (ERL_DIST_PORT: ejabberdctl then runs the node and its control commands
# without epmd), and should anything start epmd anyway, it would listen
# on 127.0.0.1 only (ERL_EPMD_ADDRESS) on a private port (ERL_EPMD_PORT),
# where `stop` finds and stops it. Several instances can run at once.
#
# ejabberdctl refuses to run as any user but root or "ejabberd", and as
# root it switches to the "ejabberd" user, which cannot enter DIR (a test's
# temporary directory is private to its owner). The harness therefore runs
# a copy of the package's ejabberdctl in DIR with the user switch turned
# off: ejabberd runs as whoever runs the harness, like the Prosody harness.
#
# Exit codes: 0 ok, 1 failure, 3 ejabberd is not installed and cannot be
# installed here (not root or no apt-get); callers treat 3 as "skip".
set -euo pipefail

die() { echo "ejabberd-harness: error: $*" >&2; exit 1; }

. "$(dirname "$0")/lib.sh"

EJABBERDCTL=${EJABBERDCTL:-/usr/sbin/ejabberdctl}

ensure_installed() {
	if [ -x "$EJABBERDCTL" ] && [ -x /usr/bin/erl ] && command -v openssl >/dev/null; then
		return 0
	fi
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
		echo "ejabberd-harness: ejabberd is not installed; install it with: sudo apt-get install -y ejabberd openssl" >&2
		exit 3
	fi
	echo "ejabberd-harness: installing ejabberd from Debian" >&2
	apt_install ejabberd openssl
	[ -x "$EJABBERDCTL" ] || die "ejabberd installed but $EJABBERDCTL is missing"
}

# ctl runs the instance's ejabberdctl copy with its configuration.
ctl() {
	local dir=$1
	shift
	SCRIPT="$EJABBERDCTL" "$dir/ejabberdctl" --config-dir "$dir/etc" --logs "$dir/log" --spool "$dir/spool" "$@"
}

write_ctl() {
	local dir=$1
	# The package's script with its user switch turned off (see above).
	sed 's/^INSTALLUSER=ejabberd$/INSTALLUSER=/' "$EJABBERDCTL" > "$dir/ejabberdctl.new"
	grep -q '^INSTALLUSER=$' "$dir/ejabberdctl.new" || die "unexpected $EJABBERDCTL: no INSTALLUSER=ejabberd line"
	chmod 700 "$dir/ejabberdctl.new"
	mv "$dir/ejabberdctl.new" "$dir/ejabberdctl"
}

write_config() {
	local dir=$1 c2s=$2 tls=$3 dist=$4 epmd=$5 node=$6 carbons=$7
	# The cookie authorises Erlang distribution (full control of the node):
	# it lives in the instance's HOME, mode 0400, never on a command line.
	head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dir/home/.erlang.cookie"
	chmod 400 "$dir/home/.erlang.cookie"
	# Erlang's resolver settings: the defaults (without the file, every
	# Erlang command logs an error).
	echo '% Generated by Balcony'"'"'s ejabberd-harness.sh: resolver defaults.' > "$dir/etc/inetrc"
	cat > "$dir/etc/ejabberdctl.cfg" <<CFG
# Generated by Balcony's ejabberd-harness.sh; sourced by ejabberdctl.
ERLANG_NODE=$node
ERL_DIST_PORT=$dist
ERL_EPMD_ADDRESS=127.0.0.1
export ERL_EPMD_PORT=$epmd
export HOME="$dir/home"
# Distribution bound to 127.0.0.1, what INET_DIST_INTERFACE=127.0.0.1
# does, without the extra Erlang VM ejabberdctl starts to parse it.
ERL_OPTIONS="-kernel inet_dist_use_interface {127,0,0,1} -env ERL_CRASH_DUMP_BYTES 0"
EJABBERD_PID_PATH="$dir/ejabberd.pid"
EJABBERD_BYPASS_WARNINGS=true
CFG
	local carbons_module='  mod_carboncopy: {}'
	[ "$carbons" = 1 ] || carbons_module='  # mod_carboncopy left out (--no-carbons)'
	cat > "$dir/etc/ejabberd.yml" <<CFG
# Generated by Balcony's ejabberd-harness.sh; throwaway, loopback only.
hosts:
  - localhost
  - sha1.localhost
loglevel: ${EJABBERD_LOG_LEVEL:-info}
log_rotate_count: 0
hide_sensitive_log_data: true
certfiles:
  - "$dir/certs/server.pem"
ca_file: "$dir/certs/ca.crt"
acme:
  auto: false
c2s_ciphers: "HIGH:!aNULL:!eNULL:!3DES:@STRENGTH"
c2s_protocol_options:
  - no_sslv3
  - no_tlsv1
  - no_tlsv1_1
  - cipher_server_preference
  - no_compression
auth_method: internal
auth_password_format: scram
# Stored credentials fix the SCRAM hash per host; channel binding is
# tls-unique only in ejabberd 23.01 (TLS 1.2).
auth_scram_hash: sha256
host_config:
  sha1.localhost:
    auth_scram_hash: sha
disable_sasl_mechanisms:
  - digest-md5
  - x-oauth2
s2s_access: none
listen:
  -
    port: $c2s
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls_required: true
    max_stanza_size: 262144
    shaper: c2s_shaper
    access: c2s
  -
    port: $tls
    ip: "127.0.0.1"
    module: ejabberd_c2s
    tls: true
    max_stanza_size: 262144
    shaper: c2s_shaper
    access: c2s
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  c2s:
    allow: all
  pubsub_createnode:
    allow: local
shaper_rules:
  max_user_sessions: 20
  max_user_offline_messages: 5000
  c2s_shaper: none
modules:
  mod_blocking: {}
  mod_caps: {}
$carbons_module
  mod_disco: {}
  mod_mam:
    default: always
    assume_mam_usage: true
  mod_offline:
    access_max_user_messages: max_user_offline_messages
  mod_ping: {}
  mod_privacy: {}
  mod_private: {}
  mod_pubsub:
    access_createnode: pubsub_createnode
    plugins:
      - flat
      - pep
  mod_roster:
    versioning: true
  mod_stream_mgmt:
    resend_on_timeout: if_offline
  mod_time: {}
  mod_version:
    show_os: false
CFG
}

cmd_start() {
	local dir='' c2s='' tls='' carbons=1
	[ "${EJABBERD_NO_CARBONS:-}" = 1 ] && carbons=0
	while [ $# -gt 0 ]; do
		case $1 in
		--no-carbons) carbons=0 ;;
		-*) die "unknown option $1" ;;
		*) if [ -z "$dir" ]; then dir=$1; elif [ -z "$c2s" ]; then c2s=$1; else tls=$1; fi ;;
		esac
		shift
	done
	[ -n "$dir" ] || die "usage: start DIR [--no-carbons] [C2S_PORT [DIRECT_TLS_PORT]]"
	ensure_installed
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	chmod 700 "$dir"
	mkdir -p "$dir/etc" "$dir/spool" "$dir/log" "$dir/home"
	[ -n "$c2s" ] || c2s=$(pick_port)
	[ -n "$tls" ] || tls=$(pick_port "$c2s")
	local dist epmd node
	dist=$(pick_port "$c2s" "$tls")
	epmd=$(pick_port "$c2s" "$tls" "$dist")
	node="balcony-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')@localhost"
	echo "$epmd" > "$dir/epmd.port"
	make_certs "$dir"
	cat "$dir/certs/localhost.crt" "$dir/certs/localhost.key" > "$dir/certs/server.pem"
	chmod 600 "$dir/certs/server.pem"
	write_ctl "$dir"
	write_config "$dir" "$c2s" "$tls" "$dist" "$epmd" "$node" "$carbons"
	echo "$c2s $tls $node $carbons" > "$dir/ports"
	launch "$dir" "$c2s" "$tls" "$node" "$carbons"
}

# launch DIR C2S TLS NODE CARBONS runs the configured server and waits
# until both listeners answer.
launch() {
	local dir=$1 c2s=$2 tls=$3 node=$4 carbons=$5
	rm -f "$dir/ejabberd.pid"
	# setsid: a Ctrl-C meant for the caller's terminal does not reach the
	# server half-way through start-up; `stop` ends it.
	setsid "$BASH" -c 'cd "$1" && exec "$2" --config-dir "$1/etc" --logs "$1/log" --spool "$1/spool" foreground' \
		_ "$dir" "$dir/ejabberdctl" </dev/null >>"$dir/stdout.log" 2>&1 &
	local wrapper=$!
	echo "$wrapper" > "$dir/ejabberdctl.pid"
	# Wait until both listeners answer (bounded); fail early if ejabberd
	# exits. The Erlang VM takes a few seconds to start, more on a loaded
	# machine. ejabberd opens its listening sockets early in its start-up
	# but accepts connections only once it is started, so an open port
	# proves nothing: the STARTTLS port must answer a stream header and the
	# direct TLS port complete a handshake with a certificate of our CA.
	local pid='' deadline=$((SECONDS + 60))
	while [ "$SECONDS" -lt "$deadline" ]; do
		if ! running "$wrapper"; then
			failed_start "$dir" "ejabberd exited during start-up"
		fi
		[ -n "$pid" ] || pid=$(cat "$dir/ejabberd.pid" 2>/dev/null || true)
		if [ -z "$pid" ] || port_free "$c2s"; then
			sleep 0.05
			continue
		fi
		if stream_answers "$c2s" && tls_answers "$tls" "$dir/certs/ca.crt"; then
			cat <<OUT
EJABBERD_DOMAIN=localhost
EJABBERD_SHA1_DOMAIN=sha1.localhost
EJABBERD_ADDR=127.0.0.1:$c2s
EJABBERD_TLS_ADDR=127.0.0.1:$tls
EJABBERD_CA=$dir/certs/ca.crt
EJABBERD_PID=$pid
EJABBERD_NODE=$node
EJABBERD_CARBONS=$carbons
EJABBERD_DIR=$dir
OUT
			return 0
		fi
	done
	failed_start "$dir" "ejabberd did not start listening within 60 s"
}

# stream_answers PORT reports whether the server on 127.0.0.1:PORT answers
# an XMPP stream header within 2 s (it waits in the accept queue until the
# server accepts connections).
stream_answers() {
	(
		exec 3<>"/dev/tcp/127.0.0.1/$1"
		printf "<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>" >&3
		IFS= read -r -t 2 -n 20 reply <&3 || true
		[[ ${reply:-} == *"<?xml"* || ${reply:-} == *"<stream"* ]]
	) 2>/dev/null
}

# tls_answers PORT CA reports whether the server on 127.0.0.1:PORT
# completes a TLS handshake for localhost with a certificate CA signed.
tls_answers() {
	timeout 5 openssl s_client -connect "127.0.0.1:$1" -servername localhost \
		-CAfile "$2" -verify_return_error -brief </dev/null >/dev/null 2>&1
}

# failed_start stops what was started, shows the end of the logs and exits.
failed_start() {
	local dir=$1
	shift
	cmd_stop "$dir"
	{
		echo "--- $dir/stdout.log"
		tail -n 40 "$dir/stdout.log" 2>/dev/null || true
		echo "--- $dir/log/ejabberd.log"
		tail -n 40 "$dir/log/ejabberd.log" 2>/dev/null || true
		echo "--- $dir/log/error.log"
		tail -n 20 "$dir/log/error.log" 2>/dev/null || true
	} >&2
	die "$*"
}

cmd_restart() {
	local dir=${1:?usage: restart DIR} c2s tls node carbons
	dir=$(cd "$dir" && pwd)
	[ -f "$dir/ports" ] || die "no server was started in $dir"
	read -r c2s tls node carbons < "$dir/ports"
	stop_server "$dir"
	# The "stopped" line of the previous run must not end the next stop
	# early.
	[ -f "$dir/log/ejabberd.log" ] && mv "$dir/log/ejabberd.log" "$dir/log/ejabberd.log.$(date +%s%N)"
	launch "$dir" "$c2s" "$tls" "$node" "$carbons"
}

cmd_adduser() {
	local dir=${1:?usage: adduser DIR USER PASSWORD [DOMAIN]} user=${2:?} pass=${3:?} domain=${4:-localhost}
	dir=$(cd "$dir" && pwd)
	ctl "$dir" register "$user" "$domain" "$pass" >"$dir/ctl.out" 2>&1 ||
		{ cat "$dir/ctl.out" >&2; die "could not register $user@$domain"; }
}

# epmd_pid prints the PID of a process listening on 127.0.0.1:PORT whose
# command is epmd, if any.
epmd_pid() {
	local port=$1 pid
	command -v ss >/dev/null || return 0
	for pid in $(ss -Hltnp "sport = :$port" 2>/dev/null | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | sort -u); do
		[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = epmd ] && echo "$pid"
	done
	return 0
}

# stop_vm DIR PID stops the Erlang VM: SIGTERM makes ejabberd stop
# cleanly, which it logs within a few milliseconds; the VM then takes
# another second or more to stop the rest of Erlang, which this throwaway
# server does not need, so it is killed once ejabberd said it stopped (or
# after 10 s).
stop_vm() {
	local dir=$1 pid=$2 i
	running "$pid" "$dir/spool" || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 1 200); do
		running "$pid" || return 0
		grep -q "ejabberd [^ ]* is stopped in the node" "$dir/log/ejabberd.log" 2>/dev/null && break
		sleep 0.05
	done
	kill -KILL "$pid" 2>/dev/null || true
}

cmd_stop() {
	local dir=${1:?usage: stop DIR} pid
	[ -d "$dir" ] || return 0
	stop_server "$dir"
	if [ -f "$dir/epmd.port" ]; then
		for pid in $(epmd_pid "$(cat "$dir/epmd.port")"); do stop_pid "$pid"; done
		rm -f "$dir/epmd.port"
	fi
}

# stop_server DIR stops the VM and its wrapper (not epmd).
stop_server() {
	local dir=$1 pid
	if [ -f "$dir/ejabberd.pid" ]; then
		stop_vm "$dir" "$(cat "$dir/ejabberd.pid")"
		rm -f "$dir/ejabberd.pid"
	fi
	if [ -f "$dir/ejabberdctl.pid" ]; then
		pid=$(cat "$dir/ejabberdctl.pid")
		# Before the VM wrote its PID file, it is the wrapper's child.
		for child in $(child_pids "$pid"); do stop_pid "$child" "$dir"; done
		stop_pid "$pid" "$dir/ejabberdctl"
		rm -f "$dir/ejabberdctl.pid"
	fi
}

case "${1:-}" in
start) shift; cmd_start "$@" ;;
adduser) shift; cmd_adduser "$@" ;;
restart) shift; cmd_restart "$@" ;;
stop) shift; cmd_stop "$@" ;;
*) echo "usage: $0 start DIR [--no-carbons] [C2S_PORT [TLS_PORT]] | adduser DIR USER PASSWORD [DOMAIN] | restart DIR | stop DIR" >&2; exit 2 ;;
esac
