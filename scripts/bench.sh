#!/usr/bin/env bash
# scripts/bench.sh: Balcony's performance figures, as ratios to the
# cryptographic primitives measured in the same run (see docs/BENCHMARKS.md
# for the targets and the last measured numbers).
#
# Usage: scripts/bench.sh [-count N] [-benchtime T] [-skip-libotr] [-skip-gpg]
#                         [-skip-engines] [-skip-e2e] [-skip-scale] [-skip-load]
#                         [-e2e-rounds N] [-load-accounts N] [-load-seconds S]
#                         [-out DIR]
#
# Runs the Go benchmarks of the engines and the store:
#   ox        Signcrypt (2 recipients), Open (decrypt+verify), Archive
#             (10,000 messages, 1 and 2 workers), GPG* (gpg as a process)
#   otr       AKE, DataMessage (one way), RatchetRoundTrip
#   esession  Negotiation (4 messages, group 14), Stanza300 (XEP-0200)
#   omemo     SessionSetup (X3DH + first message), SessionAccept, Encrypt3
#             (one message to 3 devices), Decrypt; OMEMO 0.3 and OMEMO 2
#   store     open/unlock, trust and message-log operations
#   client    OX archive decryption through the client, when present
# Each benchmark reports "ns/op" and, where it has one, a ratio metric
# ("x-limit", "ratio", ...) against the primitives it must use, measured
# interleaved in the same run so that machine load weighs on both alike.
# Then, unless -skip-libotr, scripts/bench-otr-libotr.sh times libotr 4.1
# through its C helper side by side with the Go OTR engine.
#
# Then the whole client (internal/e2ebench, BALCONY_BENCH=1):
#   e2e       two clients through the test Prosody and ejabberd: messages/s,
#             p50/p99 latency Send to event, CPU per message of the clients
#             and of the server, each encrypted row as a ratio to plaintext
#             in the same run (-e2e-rounds rounds, default 5); the chart
#             docs/benchmarks-e2e.svg is drawn from it (internal/benchchart)
#             and a CPU profile is left in DIR/e2e.cpu.pprof
#   scale     1,000 OTR conversations, 1,000 Encrypted Sessions, 10,000 OX
#             contact keys in one account: heap per conversation/key, RSS,
#             goroutines, against their budgets
#   account   an idle "balcony listen": resident memory and start-up time
#   load      -load-accounts accounts (default 200) of the test Prosody in
#             pairs exchanging encrypted messages for -load-seconds (30):
#             errors, goroutines, open files, heap before and after
# Everything is written to DIR (default a new temporary directory) as well,
# with the machine's description (cores, CPU model, memory, Go, date,
# load average).
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
engines=1
e2e=1
scale=1
load=1
e2e_rounds=5
load_accounts=200
load_seconds=30
out=''
while [ $# -gt 0 ]; do
	case $1 in
	-count) count=$2; shift 2 ;;
	-benchtime) benchtime=$2; shift 2 ;;
	-skip-libotr) libotr=0; shift ;;
	-skip-gpg) gpg=0; shift ;;
	-skip-engines) engines=0; shift ;;
	-skip-e2e) e2e=0; shift ;;
	-skip-scale) scale=0; shift ;;
	-skip-load) load=0; shift ;;
	-e2e-rounds) e2e_rounds=$2; shift 2 ;;
	-load-accounts) load_accounts=$2; shift 2 ;;
	-load-seconds) load_seconds=$2; shift 2 ;;
	-out) out=$2; shift 2 ;;
	-h|-help|--help) sed -n '2,45p' "$0"; exit 0 ;;
	*) echo "bench.sh: unknown option $1" >&2; exit 2 ;;
	esac
done

[ -n "$out" ] || out=$(mktemp -d "${TMPDIR:-/tmp}/balcony-bench.XXXXXX")
mkdir -p "$out"
out=$(cd "$out" && pwd)
echo "results in $out"

{
	echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "cores: $(nproc)"
	echo "cpu: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n1)"
	echo "memory: $(awk '/^MemTotal:/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
	echo "go: $(go version | cut -d' ' -f3-)"
	echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out/machine.txt"

filter='.'
[ $gpg = 1 ] || filter='^Benchmark[^G]'
if [ $engines = 1 ]; then
	for pkg in ./ox/ ./otr/ ./esession/ ./omemo/ ./store/ ./client/; do
		echo "== $pkg"
		go test -run '^$' -bench "$filter" -benchmem -count "$count" -benchtime "$benchtime" "$pkg" | grep -E '^(Benchmark|ok|FAIL|---)' || true
	done | tee "$out/engines.txt"
	if [ $libotr = 1 ]; then
		echo "== OTR engine vs libotr"
		scripts/bench-otr-libotr.sh -count "$count" -benchtime "$benchtime"
	fi
fi

export BALCONY_BENCH=1
if [ $e2e = 1 ]; then
	echo "== end to end through Prosody and ejabberd ($e2e_rounds rounds)"
	go test -run '^$' -bench EndToEnd -count "$count" -benchtime "${e2e_rounds}x" -timeout 60m \
		-cpuprofile "$out/e2e.cpu.pprof" -o "$out/e2ebench.test" ./internal/e2ebench |
		grep -E '^(Benchmark|ok|FAIL|---)' | tee "$out/e2e.txt" || true
	go run ./internal/benchchart "Balcony end to end, $(date -u +%Y-%m-%d), $(nproc) cores (loaded): encrypted throughput / plaintext" \
		< "$out/e2e.txt" > "$out/benchmarks-e2e.svg" && cp "$out/benchmarks-e2e.svg" docs/benchmarks-e2e.svg &&
		echo "chart: docs/benchmarks-e2e.svg"
	echo "profile: go tool pprof -top -cum $out/e2ebench.test $out/e2e.cpu.pprof"
fi
if [ $scale = 1 ]; then
	echo "== scale: conversations and keys in one account"
	go test -run 'Scale' -count=1 -v -timeout 30m ./client/otr/ ./esession/ ./client/ox/ |
		grep -E 'scale_test|^(ok|FAIL|---)' | tee "$out/scale.txt" || true
	echo "== per account: an idle listener"
	go test -run 'TestListenerMemoryAndStartup' -count=1 -v -timeout 10m ./internal/e2ebench |
		grep -E 'account_test|^listener|^(ok|FAIL|---)' | tee "$out/account.txt" || true
fi
if [ $load = 1 ]; then
	echo "== load: $load_accounts accounts for $load_seconds s"
	BALCONY_LOAD_ACCOUNTS=$load_accounts BALCONY_LOAD_SECONDS=$load_seconds \
		go test -run 'TestLoadManyAccounts' -count=1 -v -timeout 30m ./internal/e2ebench |
		grep -E 'load_test|^load |^(ok|FAIL|---)' | tee "$out/load.txt" || true
fi
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/machine.txt"
