#!/bin/sh
# bench-otr-libotr.sh: Balcony's OTR engine side by side with libotr 4.1.
#
# Usage:
#   scripts/bench-otr-libotr.sh [-count C] [-benchtime T] [-size BYTES]
#                               [-ake N] [-data N] [-ratchet N]
#
#   -count C      runs on each side; the table shows medians (default 5)
#   -benchtime T  go test -benchtime (default 1s)
#   -size BYTES   plaintext size of libotr's data messages (default 91,
#                 the length of the message BenchmarkDataMessage sends)
#   -ake N, -data N, -ratchet N
#                 libotr iterations per run (defaults 200, 20000, 200)
#
# It compiles internal/libotrpeer/libotrpeer.c against the system libotr
# (needs gcc, pkg-config and libotr5-dev), runs the helper's self-benchmark
# (two libotr contexts in one process passing messages in memory):
#   ake      a full AKE, query to both sides encrypted
#   data     a one-way data message, encrypt and decrypt, no key rotation
#   ratchet  a round trip of data messages, each acknowledging a new DH key
# and `go test -run '^$' -bench 'AKE|DataMessage|Ratchet' ./otr/`, the two
# alternating C times so that machine load weighs on both alike, and prints
# one row per Go benchmark: ours and libotr in microseconds per
# operation and the ratio ours/libotr (below 1 means Balcony is faster).
# Go benchmarks are matched to libotr's by name: AKE -> ake,
# DataMessage -> data, Ratchet -> ratchet. Extra metrics the Go benchmarks
# report (ratios to their primitives) are shown in the last column.
#
# Run from anywhere inside the repository. Nothing is installed; the helper
# and its keys live in a temporary directory removed at exit.
set -eu

count=5
benchtime=1s
size=91
n_ake=200
n_data=20000
n_ratchet=200
while [ $# -gt 0 ]; do
	case $1 in
	-count) count=$2; shift 2 ;;
	-benchtime) benchtime=$2; shift 2 ;;
	-size) size=$2; shift 2 ;;
	-ake) n_ake=$2; shift 2 ;;
	-data) n_data=$2; shift 2 ;;
	-ratchet) n_ratchet=$2; shift 2 ;;
	-h|-help|--help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench-otr-libotr: unknown argument $1 (see -help)" >&2; exit 2 ;;
	esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
for tool in gcc pkg-config go; do
	command -v "$tool" >/dev/null 2>&1 || { echo "bench-otr-libotr: $tool not found" >&2; exit 1; }
done
pkg-config --exists libotr || { echo "bench-otr-libotr: libotr not found (apt-get install libotr5-dev)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-otr-libotr.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

# shellcheck disable=SC2046 # pkg-config output is a list of flags
gcc -O2 -o "$work/libotrpeer" "$root/internal/libotrpeer/libotrpeer.c" \
	$(pkg-config --cflags --libs libotr) -lgcrypt
echo "libotr $(pkg-config --modversion libotr), $(go version | cut -d' ' -f3), $(nproc 2>/dev/null || echo '?') CPUs"

# Alternate: libotr's three benchmarks, then one run of ours, C times.
: >"$work/libotr.txt"
: >"$work/go.txt"
i=0
while [ "$i" -lt "$count" ]; do
	for b in ake data ratchet; do
		case $b in ake) n=$n_ake ;; data) n=$n_data ;; ratchet) n=$n_ratchet ;; esac
		"$work/libotrpeer" -bench "$b" -n "$n" -keys "$work/keys.priv" -size "$size" >>"$work/libotr.txt"
	done
	(cd "$root" && go test -run '^$' -bench 'AKE|DataMessage|Ratchet' \
		-benchtime "$benchtime" -count 1 ./otr/) >"$work/go1.txt" 2>&1 || {
		cat "$work/go1.txt" >&2
		echo "bench-otr-libotr: go test failed" >&2
		exit 1
	}
	cat "$work/go1.txt" >>"$work/go.txt"
	i=$((i + 1))
done
grep -q '^Benchmark' "$work/go.txt" || {
	cat "$work/go.txt" >&2
	echo "bench-otr-libotr: no Go benchmark matched AKE|DataMessage|Ratchet in ./otr/" >&2
	exit 1
}

awk -v size="$size" '
function median(list,    n, a, i, j, t) {
	n = split(list, a, " ")
	for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j+1] = a[j]; a[j+1] = t }
	if (n % 2) return a[(n + 1) / 2]
	return (a[n/2] + a[n/2 + 1]) / 2
}
FNR == NR {
	if ($1 == "BENCH") lib[$2] = lib[$2] " " $4
	next
}
/^Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name)
	if (!(name in seen)) { seen[name] = 1; order[++nnames] = name }
	for (i = 3; i < NF; i += 2) {
		if ($(i+1) == "ns/op") ours[name] = ours[name] " " $i
		else if ($(i+1) != "B/op" && $(i+1) != "allocs/op" && $(i+1) != "MB/s") {
			key = name SUBSEP $(i+1)
			if (!(key in mseen)) { mseen[key] = 1; metrics[name] = metrics[name] " " $(i+1) }
			mval[key] = mval[key] " " $i
		}
	}
}
END {
	printf "%-40s %14s %14s %12s  %s\n", "benchmark", "ours us/op", "libotr us/op", "ours/libotr", "Go metrics (medians)"
	for (k = 1; k <= nnames; k++) {
		name = order[k]
		kind = ""
		if (name ~ /Ratchet/) kind = "ratchet"
		else if (name ~ /DataMessage/) kind = "data"
		else if (name ~ /AKE/) kind = "ake"
		o = median(ours[name]) / 1000
		extra = ""
		nm = split(metrics[name], ms, " ")
		for (m = 1; m <= nm; m++) {
			v = median(mval[name SUBSEP ms[m]]); u = ms[m]
			if (u ~ /ns\/op$/) { v = v / 1000; sub(/ns\/op$/, "us/op", u) }
			extra = extra sprintf((v >= 100 ? "%s=%.0f " : "%s=%.3g "), u, v)
		}
		if (kind != "" && (kind in lib)) {
			l = median(lib[kind]) / 1000
			printf "%-40s %14.2f %14.2f %12.2f  %s\n", name, o, l, o / l, extra
		} else {
			printf "%-40s %14.2f %14s %12s  %s\n", name, o, "-", "-", extra
		}
	}
	printf "\nlibotr (medians): "
	for (kind in lib) printf "%s %.2f us/op  ", kind, median(lib[kind]) / 1000
	printf "\nlibotr data messages carry %d bytes of plaintext.\n", size
}
' "$work/libotr.txt" "$work/go.txt"
