#!/usr/bin/env bash
# scripts/bench.sh: Balcony's performance figures, as ratios to the
# cryptographic primitives measured in the same run (see docs/BENCHMARKS.md
# for the targets and the last measured numbers).
#
# Usage: scripts/bench.sh [-count N] [-benchtime T] [-skip-libotr] [-skip-gpg]
#
# Runs the Go benchmarks of the engines and the store:
#   ox        Signcrypt (2 recipients), Open (decrypt+verify), Archive
#             (10,000 messages, 1 and 2 workers), GPG* (gpg as a process)
#   otr       AKE, DataMessage (one way), RatchetRoundTrip
#   esession  Negotiation (4 messages, group 14), Stanza300 (XEP-0200)
#   store     open/unlock, trust and message-log operations
#   client    OX archive decryption through the client, when present
# Each benchmark reports "ns/op" and, where it has one, a ratio metric
# ("x-limit", "ratio", ...) against the primitives it must use, measured
# interleaved in the same run so that machine load weighs on both alike.
# Then, unless -skip-libotr, scripts/bench-otr-libotr.sh times libotr 4.1
# through its C helper side by side with the Go OTR engine.
#
# Numbers are noisy on a loaded machine; compare ratios, not times, and use
# -count 5 with benchstat for anything you publish.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_go

count=1
benchtime=1s
libotr=1
gpg=1
while [ $# -gt 0 ]; do
	case $1 in
	-count) count=$2; shift 2 ;;
	-benchtime) benchtime=$2; shift 2 ;;
	-skip-libotr) libotr=0; shift ;;
	-skip-gpg) gpg=0; shift ;;
	-h|-help|--help) sed -n '2,22p' "$0"; exit 0 ;;
	*) echo "bench.sh: unknown option $1" >&2; exit 2 ;;
	esac
done

filter='.'
[ $gpg = 1 ] || filter='^Benchmark[^G]'
for pkg in ./ox/ ./otr/ ./esession/ ./store/ ./client/; do
	echo "== $pkg"
	go test -run '^$' -bench "$filter" -benchmem -count "$count" -benchtime "$benchtime" "$pkg" | grep -E '^(Benchmark|ok|FAIL|---)' || true
done
if [ $libotr = 1 ]; then
	echo "== OTR engine vs libotr"
	scripts/bench-otr-libotr.sh -count "$count" -benchtime "$benchtime"
fi
