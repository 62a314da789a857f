#!/usr/bin/env bash
# scripts/test.sh: Balcony's whole test suite, as CI runs it.
#
# It installs the system packages the integration and interop tests need
# when they are missing (Prosody, libotr, GnuPG, a C compiler; root and
# apt-get required for that), then runs gofmt, go vet, staticcheck, checks
# that go.mod is tidy, and runs every test with the race detector, with the
# integration tests (a real Prosody on 127.0.0.1) and interop tests (real
# libotr, GnuPG) required rather than skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib.sh
need_packages prosody openssl gnupg gcc libc6-dev pkg-config libotr5-dev libotr5-bin go-sendxmpp git
ensure_go
# The Debian package may start a system instance; tests use their own.
if command -v service >/dev/null; then service prosody stop >/dev/null 2>&1 || true; fi

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "not gofmt-formatted:"; echo "$unformatted"; exit 1; fi
echo "== go mod tidy"
go mod tidy -diff
echo "== go vet"
go vet ./...
echo "== staticcheck"
go tool staticcheck ./...
echo "== go test -race"
export BALCONY_REQUIRE_INTEGRATION=1 BALCONY_REQUIRE_INTEROP=1
go test -race -count=1 -timeout 25m ./... "$@"
echo "== all tests passed"
