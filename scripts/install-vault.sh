#!/usr/bin/env bash
# Installs a pinned HashiCorp Vault server for tests and demos.
#
# Vault is built from its Go module through the module proxy (no binary downloads are possible
# here), in a cache directory outside the repository, and reused when present. Release modules of
# Vault only build with the exact sdk/api versions of their own go.mod, so the build happens in a
# throw-away wrapper module whose tools file imports github.com/hashicorp/vault/command.
#
# Prints the path of the binary on stdout. Everything else goes to stderr.
set -euo pipefail

VAULT_VERSION="${VAULT_VERSION:-v1.21.0}"
CACHE="${MEDICUS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/medicus-trust}"
BIN="$CACHE/vault-$VAULT_VERSION/vault"

if [[ -x "$BIN" ]] && "$BIN" version >/dev/null 2>&1; then
  echo "$BIN"
  exit 0
fi

WORK="$CACHE/vault-build-$VAULT_VERSION"
mkdir -p "$WORK" "$(dirname "$BIN")"
# One build at a time: a second caller (make test in another shell) waits for the first and
# then finds the binary.
if command -v flock >/dev/null; then
  exec 9>"$CACHE/.install-vault-$VAULT_VERSION.lock"
  flock 9
  if [[ -x "$BIN" ]] && "$BIN" version >/dev/null 2>&1; then
    echo "$BIN"
    exit 0
  fi
fi
cd "$WORK"
if [[ ! -f go.mod ]]; then
  cat >go.mod <<MOD
module medicus.local/vaultbuild

go 1.26
MOD
  cat >tools.go <<'SRC'
//go:build tools

package tools

import _ "github.com/hashicorp/vault/command"
SRC
fi
echo "install-vault: building vault $VAULT_VERSION in $WORK (about 20 minutes the first time)" >&2
GOFLAGS=-mod=mod go get "github.com/hashicorp/vault@$VAULT_VERSION" >&2
GOFLAGS=-mod=mod go build -trimpath -o "$BIN.tmp" github.com/hashicorp/vault >&2
mv "$BIN.tmp" "$BIN"
"$BIN" version >&2
echo "$BIN"
