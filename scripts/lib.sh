# scripts/lib.sh: shared set-up for Balcony's scripts (sourced, not run).

# ensure_go makes a Go toolchain of at least the version in go.mod
# available. A Go older than 1.21 cannot switch toolchains itself, and a
# fresh Debian has none, so the toolchain is fetched from the Go module
# proxy (golang.org/toolchain) into ~/.cache/balcony/go when needed.
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
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >&2
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
	else
		echo "balcony: missing packages: ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
		return 1
	fi
}

# port_free reports whether nothing listens on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pick_port prints a free port on 127.0.0.1 between 20000 and 59999, or
# fails.
pick_port() {
	local p i
	for i in $(seq 1 200); do
		p=$(( 20000 + (RANDOM * 7 + i) % 40000 ))
		if port_free "$p"; then echo "$p"; return 0; fi
	done
	echo "no free port found" >&2
	return 1
}
