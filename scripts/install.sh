#!/usr/bin/env bash
# scripts/install.sh: builds the balcony command from this clone and
# installs it, by default in ~/.local/bin.
#
# Usage: scripts/install.sh [--bindir DIR | --prefix DIR]
#   --bindir DIR   install DIR/balcony (also: BINDIR=DIR in the environment)
#   --prefix DIR   install DIR/bin/balcony (e.g. --prefix /usr/local, as root)
#
# It uses the Go toolchain named in go.mod, fetched from the Go module
# proxy if no Go 1.21 or later is installed (as the other scripts do), and
# says where it put the command and whether that directory is on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

bindir=${BINDIR:-$HOME/.local/bin}
while [ $# -gt 0 ]; do
	case $1 in
	--bindir) bindir=${2:?--bindir needs a directory}; shift 2 ;;
	--bindir=*) bindir=${1#*=}; shift ;;
	--prefix) bindir=${2:?--prefix needs a directory}/bin; shift 2 ;;
	--prefix=*) bindir=${1#*=}/bin; shift ;;
	-h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done

ensure_go
mkdir -p "$bindir"
bindir=$(cd "$bindir" && pwd)
tmp=$(mktemp "$bindir/.balcony.XXXXXX")
trap 'rm -f "$tmp"' EXIT

echo "building balcony with $(go version | cut -d' ' -f3) (can take a minute or two on a cold cache)"
with_heartbeat "go build" go build -o "$tmp" ./cmd/balcony
chmod 755 "$tmp"
mv -f "$tmp" "$bindir/balcony"
echo "installed $bindir/balcony ($("$bindir/balcony" --version 2>&1 | head -n 1))"

case ":$PATH:" in
*":$bindir:"*)
	found=$(command -v balcony || true)
	if [ "$found" != "$bindir/balcony" ]; then
		echo "note: $bindir is on your PATH, but $found comes first; run $bindir/balcony or remove the other one"
	else
		echo "$bindir is on your PATH: run 'balcony help' to start"
	fi
	;;
*)
	echo "$bindir is not on your PATH: run it as $bindir/balcony, or add this line to ~/.profile"
	echo "(or your shell's start-up file) and open a new shell:"
	echo "    export PATH=\"$bindir:\$PATH\""
	;;
esac
