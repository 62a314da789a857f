#!/usr/bin/env bash
# scripts/fault-test.sh: Balcony's full fault test.
#
# Two clients exchange N messages each way (default 1,000) in the clear,
# with OX, with OTR and with OMEMO 2, through a real Prosody and a real
# ejabberd (the project's throwaway servers on 127.0.0.1, see
# scripts/prosody-harness.sh and scripts/ejabberd-harness.sh), with a
# fault proxy of ours (internal/faultproxy) between each client and its
# server that cuts the connections at random moments, in the middle of
# stanzas too, while the server is restarted once per run. Every message
# must be delivered exactly once or reported failed to its sender. CI runs
# the same test with 100 messages each way (internal/faulttest,
# TestFault).
#
# Usage: scripts/fault-test.sh [N]
#
# It prints one line per server, mechanism and direction: sent, delivered,
# duplicated, lost (neither delivered nor reported failed), reported
# failed, delivered but reported failed (a receipt lost with its session),
# notices of unreadable messages, and the number of cuts. Servers the test
# starts are stopped by the test.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib.sh
n=${1:-1000}
case $n in
'' | *[!0-9]*) echo "usage: scripts/fault-test.sh [N]" >&2; exit 2 ;;
esac
need_packages prosody ejabberd openssl
ensure_go
report=$(mktemp "${TMPDIR:-/tmp}/balcony-fault.XXXXXX")
trap 'rm -f "$report"' EXIT

heading "fault test: $n messages each way per mechanism and server"
rc=0
BALCONY_REQUIRE_INTEGRATION=1 with_heartbeat "fault test" \
	go test -count=1 -timeout 2h -run '^TestFault$' ./internal/faulttest -fault.n="$n" -fault.report="$report" || rc=$?

heading "figures"
column -t "$report" 2>/dev/null || cat "$report"
exit "$rc"
