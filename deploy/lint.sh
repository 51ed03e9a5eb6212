#!/usr/bin/env bash
# make lint: go.mod and go.sum are tidy, then golangci-lint with the root's
# .golangci.yml (gofmt, vet-level linters, errorlint, and depguard's one door
# to JSON). The linter is pinned: it is installed through the Go module proxy
# into bin/ when missing or at another version, and reused after that.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
version=2.15.0
lint=${GOLANGCI_LINT:-$PWD/bin/golangci-lint}

if [ "$("$lint" version --short 2>/dev/null)" != "$version" ]; then
	echo "--- installing golangci-lint v$version into $(dirname "$lint") (a few minutes, once)"
	GOBIN="$(dirname "$lint")" "$GO" install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v$version"
fi

echo "--- go mod tidy -diff"
"$GO" mod tidy -diff
echo "--- golangci-lint run"
"$lint" run ./...
