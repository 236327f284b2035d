#!/usr/bin/env bash
# Runs every check and test of kpipe: formatting, go vet, and the whole test
# suite with the race detector. This is the README's test command and what
# CI runs after installing the tools the tests need (.ci/run).
#
# Long soaks: KPIPE_SOAK_KILLS=200 bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './data/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change these files:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== staticcheck"
# Pinned: the module proxy refuses the newest release (2025.1.1); v0.8.2 is
# the newest it serves.
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

echo "== go test -race"
# -p 2 matches the two cores of CI's machine; the timeout bounds a hung test.
# testreport prints what go test prints without -v, then every skipped test
# and the reason it gave; with pipefail the exit code is go test's (or
# testreport's, which fails when a test did).
report=$(mktemp)
trap 'rm -f "$report"' EXIT
go build -o "$report" ./scripts/testreport
go test -race -p 2 -timeout 25m -count=1 -json "$@" ./... | "$report"
