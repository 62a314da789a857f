#!/usr/bin/env bash
# scripts/test.sh: Balcony's whole test suite, as CI runs it.
#
# It installs the Debian packages the integration and interop tests need
# when they are missing (root and apt-get required for that; no service is
# started by the install): prosody, ejabberd, openssl, gnupg, gcc,
# libc6-dev, pkg-config, libotr5-dev, libotr5-bin, go-sendxmpp, git and
# tmux (the full-screen client is tested in it).
# Then it runs gofmt, checks that go.mod (and internal/tools/go.mod, which
# pins staticcheck) is tidy, runs go vet and staticcheck, and runs every
# test with the race detector, with the integration tests (real Prosody and
# ejabberd servers on 127.0.0.1, BALCONY_REQUIRE_INTEGRATION=1) and interop
# tests (real libotr, GnuPG, BALCONY_REQUIRE_INTEROP=1) required rather
# than skipped. Arguments are passed to go test (e.g. -run TestX).
#
# Long phases print a line every 30 s; go test prints each package's
# result as soon as it finishes. Servers the tests start are stopped by the
# tests; the script stops nothing it did not start.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib.sh
suite_start=$(date +%s)
work=$(mktemp -d "${TMPDIR:-/tmp}/balcony-test.XXXXXX")
trap 'rm -rf "$work"' EXIT

heading "system packages and Go"
need_packages prosody ejabberd tmux postgresql openssl gnupg gcc libc6-dev pkg-config libotr5-dev libotr5-bin go-sendxmpp git python3 python3-omemo python3-oldmemo python3-twomemo python3-xmlschema python3-slixmpp
ensure_go
go version

heading "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "not gofmt-formatted:"; echo "$unformatted"; exit 1; fi
echo "   all files formatted"

heading "go mod tidy (go.mod, internal/tools/go.mod, examples/*/go.mod)"
go mod tidy -diff
(cd internal/tools && go mod tidy -diff)
for ex in examples/*/; do (cd "$ex" && go mod tidy -diff); done
echo "   tidy"

heading "go vet (compiles every package: slow on a cold cache)"
with_heartbeat "go vet" go vet ./...

heading "staticcheck (pinned in internal/tools/go.mod)"
# The tool is built from internal/tools/go.mod (cached after the first
# time) and checks this module's packages.
with_heartbeat staticcheck go tool -modfile=internal/tools/go.mod staticcheck ./...

heading "internal/tools"
(cd internal/tools && go vet ./... && go tool staticcheck ./... && go test -count=1 ./... && go build -o "$work/testprogress" ./testprogress)

heading "examples (separate modules using only the public API)"
export BALCONY_REQUIRE_INTEGRATION=1 BALCONY_REQUIRE_INTEROP=1
for ex in examples/*/; do
	(cd "$ex" && go vet ./... && go tool -modfile=../../internal/tools/go.mod staticcheck ./... && go test -race -count=1 ./...)
done

heading "go test -race (integration and interop tests required)"
echo "   compiling with the race detector takes a few minutes before the first result"
set +e
go test -race -json -count=1 -timeout 25m ./... "$@" 2>&1 | "$work/testprogress" -trim "$(go list -m)/"
status=("${PIPESTATUS[@]}")
set -e
if [ "${status[0]}" != 0 ] || [ "${status[1]}" != 0 ]; then
	echo "== tests FAILED after $(($(date +%s) - suite_start)) s"
	exit 1
fi
echo "== all tests passed in $(($(date +%s) - suite_start)) s"
