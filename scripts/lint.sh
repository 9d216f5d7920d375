#!/usr/bin/env bash
# make lint, and the lint step of make test: gofmt, go vet and staticcheck at the version the
# Makefile pins (STATICCHECK_VERSION), fetched through the Go module proxy.
# Usage: lint.sh [DIR]   (default: the repository this script is in)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=${STATICCHECK_VERSION:-$(sed -n 's/^STATICCHECK_VERSION *:= *//p' "$here/../Makefile")}
if [[ ! "$version" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  echo "lint: no pinned STATICCHECK_VERSION (got '$version')" >&2
  exit 1
fi
cd "${1:-$here/..}"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [[ -n "$unformatted" ]]; then
  echo "gofmt needed:" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet ./...
go run "honnef.co/go/tools/cmd/staticcheck@$version" ./...
