# scripts/lib.sh: shared set-up for Balcony's scripts (sourced, not run).

# Output. Headings are bold only on a terminal (and never with NO_COLOR
# set), so that CI logs and files stay free of escape codes.
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
	_lib_bold=$'\033[1m' _lib_plain=$'\033[0m'
else
	_lib_bold='' _lib_plain=''
fi

# heading prints a section heading.
heading() { printf '\n%s== %s%s\n' "$_lib_bold" "$*" "$_lib_plain"; }

# with_heartbeat LABEL CMD... runs CMD and, while it runs, prints a line
# every ${HEARTBEAT:-30} seconds saying that LABEL is still running and for
# how long, so that long silent phases (a cold build, vet, staticcheck)
# show progress. It prints the elapsed time when CMD ends and returns its
# exit status.
with_heartbeat() {
	local label=$1 start hb rc=0
	shift
	start=$(date +%s)
	_lib_heartbeat "$label" "$start" &
	hb=$!
	"$@" || rc=$?
	kill "$hb" 2>/dev/null || true
	wait "$hb" 2>/dev/null || true
	echo "   $label: $(($(date +%s) - start)) s"
	return "$rc"
}

_lib_heartbeat() {
	local label=$1 start=$2 s=''
	# The sleep is a child of its own: stop it with the loop, by its PID.
	trap 'kill $s 2>/dev/null; exit 0' TERM
	while :; do
		sleep "${HEARTBEAT:-30}" &
		s=$!
		wait "$s"
		echo "   ... $label: still running, $(($(date +%s) - start)) s"
	done
}

# ensure_go makes a Go toolchain of at least the version in go.mod
# available. A Go older than 1.21 cannot switch toolchains itself, and a
# fresh Debian has none, so the toolchain is fetched from the Go module
# proxy (golang.org/toolchain) into ~/.cache/balcony/toolchain when needed.
ensure_go() {
	local want
	want=$(sed -n 's/^go \([0-9.]*\)$/\1/p' go.mod)
	if command -v go >/dev/null 2>&1; then
		local have
		have=$(go env GOVERSION 2>/dev/null | sed 's/^go//')
		if [ -n "$have" ] && [ "$(printf '%s\n%s\n' "1.21" "$have" | sort -V | head -1)" = "1.21" ]; then
			# Go 1.21+ downloads the go.mod toolchain by itself if older.
			return 0
		fi
	fi
	local ver arch dir
	ver=$(curl -fsSL "https://proxy.golang.org/golang.org/toolchain/@v/list" 2>/dev/null | grep "go${want}" | sort -V | tail -1 || true)
	arch=$(uname -m); case "$arch" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; esac
	[ -n "$ver" ] || ver="v0.0.1-go${want}.linux-${arch}"
	ver=${ver%%.linux-*}.linux-${arch}
	dir="$HOME/.cache/balcony/toolchain"
	if [ ! -x "$dir/golang.org/toolchain@${ver}/bin/go" ]; then
		need_packages curl unzip ca-certificates
		echo "balcony: fetching Go ${ver} from the Go module proxy" >&2
		mkdir -p "$dir"
		curl -fsSL -o "$dir/go.zip" "https://proxy.golang.org/golang.org/toolchain/@v/${ver}.zip"
		(cd "$dir" && unzip -q -o go.zip && rm go.zip)
		chmod +x "$dir/golang.org/toolchain@${ver}/bin/"* "$dir/golang.org/toolchain@${ver}/pkg/tool/"*/* 2>/dev/null || true
	fi
	export PATH="$dir/golang.org/toolchain@${ver}/bin:$PATH"
	export GOTOOLCHAIN=local
}

# need_packages installs Debian packages that are missing (as root).
need_packages() {
	local missing=() p
	for p in "$@"; do
		dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
	done
	[ ${#missing[@]} -gt 0 ] || return 0
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		echo "balcony: installing ${missing[*]}" >&2
		apt_install --no-install-recommends "${missing[@]}"
	else
		echo "balcony: missing packages: ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
		return 1
	fi
}

# apt_install [APT-GET OPTIONS] PACKAGES... runs apt-get update and
# apt-get install as root, without letting the packages' maintainer
# scripts start any service: Debian's prosody and ejabberd packages start
# a system-wide server on every interface when installed, and these scripts
# never want one. invoke-rc.d and deb-systemd-invoke ask
# /usr/sbin/policy-rc.d first, and exit status 101 means "do not"; a
# temporary one is put in place for the install and the previous state is
# restored afterwards (one that already answers 101 is left alone), so
# nothing is started that would have to be stopped later, and a server
# the user runs is never touched. Installs are serialised with a lock, as
# parallel test packages may each try to install the same server.
apt_install() {
	(
		export DEBIAN_FRONTEND=noninteractive
		if command -v flock >/dev/null; then
			exec 9>/run/balcony-apt.lock
			flock 9
		fi
		local policy=/usr/sbin/policy-rc.d saved='' rc=0
		if [ -x "$policy" ] && { "$policy" balcony start >/dev/null 2>&1; rc=$?; [ "$rc" = 101 ]; }; then
			policy=''
		else
			if [ -e "$policy" ] || [ -L "$policy" ]; then
				saved=$policy.balcony-saved
				mv -f "$policy" "$saved"
			fi
			trap '_lib_restore_policy "$policy" "$saved"' EXIT
			trap 'exit 130' INT TERM HUP
			printf '#!/bin/sh\n# Balcony scripts: no service starts while packages are installed (removed after).\nexit 101\n' >"$policy.balcony-new"
			chmod 755 "$policy.balcony-new"
			mv -f "$policy.balcony-new" "$policy"
		fi
		apt-get update -qq >&2
		apt-get install -y -qq -o DPkg::Lock::Timeout=600 "$@" >&2
	)
}

_lib_restore_policy() {
	local policy=$1 saved=$2
	if [ -n "$saved" ]; then
		mv -f "$saved" "$policy"
	else
		rm -f "$policy"
	fi
}

# ---------------------------------------------------------------------------
# Helpers of the server harnesses (prosody-harness.sh, ejabberd-harness.sh).

# port_free reports whether nothing accepts connections on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pick_port prints a free port in 20000-32767 that is not among its
# arguments (ports already chosen for the same server). The range stays
# below Linux's ephemeral ports (32768-60999), so that no outgoing
# connection of another test takes the port between this check and the
# server's bind.
pick_port() {
	local p i q taken
	for i in $(seq 1 200); do
		p=$(( 20000 + (RANDOM * 7 + i) % 12768 ))
		taken=''
		for q in "$@"; do [ "$p" = "$q" ] && taken=1; done
		if [ -z "$taken" ] && port_free "$p"; then echo "$p"; return 0; fi
	done
	echo "no free port found on 127.0.0.1" >&2
	return 1
}

# make_certs DIR writes DIR/certs: a private CA (ca.crt, ca.key) valid for
# two days and a server certificate it signed (localhost.crt,
# localhost.key) for localhost, sha1.localhost, their pubsub components and
# 127.0.0.1. Keys are P-256 and mode 0600.
make_certs() {
	local dir=$1
	mkdir -p "$dir/certs"
	(
		cd "$dir/certs"
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-keyout ca.key -out ca.crt -days 2 -subj "/CN=Balcony test CA" \
			-addext "basicConstraints=critical,CA:TRUE" \
			-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-keyout localhost.key -out localhost.csr -subj "/CN=localhost" 2>/dev/null
		printf '%s\n' \
			'subjectAltName=DNS:localhost,DNS:sha1.localhost,DNS:pubsub.localhost,DNS:pubsub.sha1.localhost,IP:127.0.0.1' \
			'basicConstraints=CA:FALSE' 'extendedKeyUsage=serverAuth' > ext.cnf
		openssl x509 -req -in localhost.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
			-out localhost.crt -days 2 -extfile ext.cnf 2>/dev/null
		rm -f localhost.csr ext.cnf ca.srl
		chmod 600 ca.key localhost.key
	)
}

# running PID [MATCH] reports whether process PID runs (a zombie, exited
# but not yet reaped by its parent, does not) and, when MATCH is given,
# whether its command line contains MATCH: a PID read from a file may have
# been reused by another process since.
running() {
	local pid=$1 match=${2:-} stat
	if [ ! -d /proc/self ]; then
		# No procfs: neither state nor command line can be checked.
		kill -0 "$pid" 2>/dev/null
		return
	fi
	stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[ "${stat%% *}" != Z ] || return 1
	[ -z "$match" ] || tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$match"
}

# child_pids PID prints the PIDs of the children of process PID (from
# /proc: procps may not be installed).
child_pids() {
	local parent=$1 f stat fields
	for f in /proc/[0-9]*/stat; do
		{ IFS= read -r stat <"$f"; } 2>/dev/null || continue
		read -r -a fields <<<"${stat##*) }"
		if [ "${fields[1]:-}" = "$parent" ]; then
			f=${f#/proc/}
			echo "${f%/stat}"
		fi
	done
	return 0
}

# stop_pid PID [MATCH] stops process PID (only if its command line
# contains MATCH, when given): SIGTERM, then SIGKILL if it has not exited
# within 10 s.
stop_pid() {
	local pid=$1 match=${2:-} i
	running "$pid" "$match" || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 1 200); do
		running "$pid" || return 0
		sleep 0.05
	done
	kill -KILL "$pid" 2>/dev/null || true
}
