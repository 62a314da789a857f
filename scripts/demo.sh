#!/usr/bin/env bash
# scripts/demo.sh: two Balcony accounts talking through a throwaway Prosody
# on 127.0.0.1, over every mechanism Balcony speaks. Installs what is
# missing (Prosody, OpenSSL, GnuPG; Go from the Go module proxy if there is
# none), and removes everything it started when it ends.
#
# Each step shows the commands' output and, under it, what the receiving
# account's `balcony listen` printed: the script waits for the line it
# expects (at most 60 s) rather than for a fixed time.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_packages prosody openssl gnupg
ensure_go

work=$(mktemp -d "${TMPDIR:-/tmp}/balcony-demo.XXXXXX")
listeners=()
cleanup() {
	local status=$? pid
	for pid in ${listeners[@]+"${listeners[@]}"}; do stop_pid "$pid"; done
	if [ "$status" != 0 ] && [ -f "$work/alice.log" ]; then
		echo "demo: failed; what the listeners printed and was not shown:" >&2
		show_rest alice >&2
		show_rest bob >&2
	fi
	scripts/prosody-harness.sh stop "$work/prosody" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

# Lines of each listener's log already shown.
declare -A shown=()

# show_listener WHO PATTERN [SECONDS]: prints the lines WHO's listener
# printed since the last ones shown, up to and including the first line
# matching the extended regular expression PATTERN (in any case), waiting for it (tail -F
# follows the log as it grows) for at most SECONDS (default 60).
show_listener() {
	local who=$1 pattern=$2 limit=${3:-60} log="$work/$1.log" fd tailpid line found=''
	local from=$((${shown[$who]:-0} + 1)) deadline=$((SECONDS + ${3:-60}))
	exec {fd}< <(exec tail -n "+$from" -F "$log" 2>/dev/null)
	tailpid=$!
	while [ -z "$found" ] && [ "$SECONDS" -lt "$deadline" ]; do
		IFS= read -r -t "$((deadline - SECONDS))" -u "$fd" line || break
		shown[$who]=$((${shown[$who]:-0} + 1))
		printf '   %-5s| %s\n' "$who" "$line"
		# Case aside: a catalogue text may start a sentence.
		shopt -s nocasematch
		[[ $line =~ $pattern ]] && found=1
		shopt -u nocasematch
	done
	stop_pid "$tailpid"
	exec {fd}<&-
	if [ -z "$found" ]; then
		echo "demo: $who's listener did not print /$pattern/ within $limit s" >&2
		return 1
	fi
}

# show_rest WHO prints what WHO's listener printed and was not shown yet.
show_rest() {
	tail -n "+$((${shown[$1]:-0} + 1))" "$work/$1.log" | while IFS= read -r line; do
		printf '   %-5s| %s\n' "$1" "$line"
	done
}

heading "building balcony (can take a minute or two on a cold cache)"
with_heartbeat "go build" go build -o "$work/balcony" ./cmd/balcony
balcony() { "$work/balcony" "$@"; }
export BALCONY_CONFIG_DIR="$work/config" BALCONY_DATA_DIR="$work/data"

heading "starting a throwaway Prosody on 127.0.0.1"
eval "$(scripts/prosody-harness.sh start "$work/prosody")"
echo "server: $PROSODY_ADDR (domain $PROSODY_DOMAIN, private CA $PROSODY_CA)"
ALICE_PASS=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
BOB_PASS=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
export ALICE_PASS BOB_PASS
scripts/prosody-harness.sh adduser "$work/prosody" alice "$ALICE_PASS"
scripts/prosody-harness.sh adduser "$work/prosody" bob "$BOB_PASS"

heading "configuring alice@localhost and bob@localhost"
# Each account keeps its keys in an encrypted store; the demo's passphrase
# comes from the environment (a real user is prompted).
export BALCONY_PASSPHRASE=demo-passphrase
balcony account add alice@localhost --server "$PROSODY_ADDR" --ca-file "$PROSODY_CA" --password-env ALICE_PASS
balcony account add bob@localhost --server "$PROSODY_ADDR" --ca-file "$PROSODY_CA" --password-env BOB_PASS
A() { balcony -a alice@localhost "$@" --password-env ALICE_PASS; }
B() { balcony -a bob@localhost "$@" --password-env BOB_PASS; }

heading "OpenPGP for XMPP keys, announced over PEP (key generation takes a few seconds)"
A ox keygen
B ox keygen

heading "both accounts listen (session mechanisms live in the listeners)"
"$work/balcony" -a alice@localhost listen --password-env ALICE_PASS --resource home >"$work/alice.log" 2>&1 &
listeners+=($!)
"$work/balcony" -a bob@localhost listen --password-env BOB_PASS --resource desk >"$work/bob.log" 2>&1 &
listeners+=($!)
balcony -a alice@localhost status --wait 30s
balcony -a bob@localhost status --wait 30s
show_listener alice 'listening as'
show_listener bob 'listening as'

heading "1. in the clear"
A send --plain bob@localhost/desk "Hello Bob, this one is plaintext."
show_listener bob 'this one is plaintext'

heading "2. a mechanism nobody here supports: Bob sees a notice, never the fallback body"
A raw '<message to="bob@localhost/desk" type="chat" id="demo-eme"><body>[This message is encrypted with FutureCrypto]</body><encryption xmlns="urn:xmpp:eme:0" namespace="urn:example:future-crypto" name="FutureCrypto"/></message>'
show_listener bob 'FutureCrypto'

heading "3. OpenPGP for XMPP: signed and encrypted to all of Bob's keys and to Alice's own"
A send --ox bob@localhost "Hello Bob, over OpenPGP for XMPP."
show_listener bob 'over OpenPGP for XMPP'
B send --ox alice@localhost "Hi Alice, OX back."
show_listener alice 'OX back'

heading "4. OTR: private conversation, then verified with the Socialist Millionaires' Protocol"
A otr start --wait 30s bob@localhost/desk
show_listener alice 'private conversation with bob@localhost/desk started'
show_listener bob 'private conversation with alice@localhost/home started'
A send --otr bob@localhost/desk "Hello Bob, off the record."
show_listener bob 'Hello Bob, off the record'
export SMP_SECRET="the blue door"
A otr smp --question "Which door did we paint?" --secret-env SMP_SECRET --wait 60s bob@localhost/desk &
smp=$!
B otr smp-answer --secret-env SMP_SECRET --wait 60s alice@localhost/home
wait "$smp"
show_listener bob 'verification succeeded'
show_listener alice 'verification succeeded'
B send --otr alice@localhost/home "Verified reply, off the record."
show_listener alice 'Verified reply, off the record'
A otr end bob@localhost/desk
show_listener bob 'ended the private conversation'

heading "5. Encrypted Sessions: negotiated, short authentication string compared and confirmed"
A esession start --wait 60s bob@localhost/desk &
start=$!
B esession accept --wait 60s alice@localhost
wait "$start"
show_listener bob 'Encrypted Session established'
show_listener alice 'Encrypted Session established'
alice_sas=$(A esession sas bob@localhost 2>/dev/null)
bob_sas=$(B esession sas alice@localhost 2>/dev/null)
echo "Alice's SAS: $alice_sas   Bob's SAS: $bob_sas"
# They read them to each other over a channel they trust; they match, so
# each confirms the SAS they compared.
[ "$alice_sas" = "$bob_sas" ] || { echo "the SAS differ: someone is in the middle" >&2; exit 1; }
A esession confirm bob@localhost "$alice_sas"
B esession confirm alice@localhost "$bob_sas"
A send --esession bob@localhost "Hello Bob, inside an Encrypted Session."
show_listener bob 'inside an Encrypted Session'
B send --esession alice@localhost "Hi Alice, same session."
show_listener alice 'same session'
A esession end --wait 30s bob@localhost
show_listener alice 'Encrypted Session with bob@localhost/desk ended'
show_listener bob 'ended the Encrypted Session'

heading "6. OMEMO: each listener announced its device; both generations, then a verification"
A omemo devices bob@localhost
A send --omemo bob@localhost "Hello Bob, over OMEMO 2."
show_listener bob 'over OMEMO 2'
A send --omemo=0.3 bob@localhost "And over OMEMO 0.3, what most clients run."
show_listener bob 'what most clients run'
B send --omemo alice@localhost "Hi Alice, OMEMO back."
show_listener alice 'OMEMO back'
# Bob reads Alice's URI (other clients show it as a QR code) over a channel
# he trusts and verifies her device with it: her messages show as verified.
alice_uri=$(A omemo fingerprint 2>/dev/null | tail -n 1)
echo "Alice's device: $alice_uri"
B omemo trust "$alice_uri"
A send --omemo bob@localhost "Hello Bob, from a device you verified."
show_listener bob 'OMEMO2 verified .*from a device you verified'

heading "stopping the listeners"
for pid in "${listeners[@]}"; do stop_pid "$pid"; done
listeners=()
show_rest alice
show_rest bob
echo "demo finished; everything it started is stopped and its files are removed"
