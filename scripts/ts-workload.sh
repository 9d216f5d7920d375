#!/usr/bin/env bash
# Installs the TypeScript workload's pinned packages from the npm registry (package-lock.json)
# and compiles it: examples/ts-workload/dist/workload.js. make test runs it through the Go test
# in examples/ts-workload; CI needs Node (v20 or later) and npm.
set -euo pipefail
cd "$(dirname "$0")/../examples/ts-workload"
npm ci --no-audit --no-fund --loglevel=error
npx --no-install tsc -p .
