#!/usr/bin/env bash
# Refuse tracked files over 1 MiB outside testdata/ directories: build outputs and data dumps do
# not belong in the repository (two binaries of 18 and 28 MB once did). Sizes are those of the
# blobs in the index, so a large file that is staged but not committed is caught too.
# Usage: check-large-files.sh [DIR]   (default: the repository this script is in)
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"
limit=$((1024 * 1024))
large=$(git ls-files --format='%(objectname) %(path)' |
  git cat-file --batch-check='%(objectsize) %(rest)' |
  awk -v limit="$limit" '$1 > limit { p = substr($0, index($0, " ") + 1); if (p !~ /(^|\/)testdata\//) print $1 " " p }')
if [[ -n "$large" ]]; then
  echo "tracked files over 1 MiB outside testdata/ (remove them; build outputs belong in .gitignore):" >&2
  echo "$large" >&2
  exit 1
fi
