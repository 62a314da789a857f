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
	[ -n "${listener:-}" ] && kill "$listener" "${alice_listener:-}" 2>/dev/null || true
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
# Each account keeps its keys in an encrypted store; the demo's passphrase
# comes from the environment (a real user is prompted).
export BALCONY_PASSPHRASE=demo-passphrase
balcony account add alice@localhost --server "$PROSODY_ADDR" --ca-file "$PROSODY_CA"
balcony account add bob@localhost --server "$PROSODY_ADDR" --ca-file "$PROSODY_CA"
A() { balcony -a alice@localhost "$@" --password-env ALICE_PASS; }
B() { balcony -a bob@localhost "$@" --password-env BOB_PASS; }

step "OpenPGP for XMPP keys, announced over PEP"
A ox keygen
B ox keygen

step "both accounts listen (session mechanisms live in the listeners)"
"$work/balcony" -a alice@localhost listen --password-env ALICE_PASS --resource home > "$work/alice.log" 2>&1 &
alice_listener=$!
"$work/balcony" -a bob@localhost listen --password-env BOB_PASS --resource desk > "$work/bob.log" 2>&1 &
listener=$!
balcony -a alice@localhost status --wait 30s
balcony -a bob@localhost status --wait 30s

step "1. in the clear"
A send --plain bob@localhost/desk "Hello Bob, this one is plaintext."

step "2. a mechanism nobody here supports: Bob sees a notice, never the fallback body"
A raw '<message to="bob@localhost/desk" type="chat" id="demo-eme"><body>[This message is encrypted with FutureCrypto]</body><encryption xmlns="urn:xmpp:eme:0" namespace="urn:example:future-crypto" name="FutureCrypto"/></message>'

step "3. OpenPGP for XMPP: signed and encrypted to all of Bob's keys and to Alice's own"
A send --ox bob@localhost "Hello Bob, over OpenPGP for XMPP."
B send --ox alice@localhost "Hi Alice, OX back."

step "4. OTR: private conversation, then verified with the Socialist Millionaires' Protocol"
A otr start --wait 30s bob@localhost/desk
A send --otr bob@localhost/desk "Hello Bob, off the record."
export SMP_SECRET="the blue door"
A otr smp --question "Which door did we paint?" --secret-env SMP_SECRET --wait 60s bob@localhost/desk &
smp=$!
B otr smp-answer --secret-env SMP_SECRET --wait 60s alice@localhost/home
wait "$smp"
B send --otr alice@localhost/home "Verified reply, off the record."
A otr end bob@localhost/desk

step "5. Encrypted Sessions: negotiated, short authentication string compared and confirmed"
A esession start --wait 60s bob@localhost/desk &
start=$!
B esession accept --wait 60s alice@localhost
wait "$start"
alice_sas=$(A esession sas bob@localhost 2>/dev/null)
bob_sas=$(B esession sas alice@localhost 2>/dev/null)
echo "Alice's SAS: $alice_sas   Bob's SAS: $bob_sas"
# They read them to each other over a channel they trust; they match, so
# each confirms the SAS they compared.
[ "$alice_sas" = "$bob_sas" ] || { echo "the SAS differ: someone is in the middle" >&2; exit 1; }
A esession confirm bob@localhost "$alice_sas"
B esession confirm alice@localhost "$bob_sas"
A send --esession bob@localhost "Hello Bob, inside an Encrypted Session."
B send --esession alice@localhost "Hi Alice, same session."
A esession end --wait 30s bob@localhost

step "stopping the listeners"
kill -TERM "$alice_listener" "$listener"
wait "$alice_listener" "$listener" || true
listener=

step "what Bob's 'balcony listen' printed"
cat "$work/bob.log"
step "what Alice's 'balcony listen' printed"
cat "$work/alice.log"
