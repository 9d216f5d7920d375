#!/usr/bin/env bash
# make test: install what the tests need, then run them all.
# The Vault integration tests need a Vault server binary; it is built once from the Go module
# proxy into ~/.cache/medicus-trust (about 20 minutes the first time, seconds afterwards).
set -euo pipefail
cd "$(dirname "$0")/.."

# Cheap checks first: no build outputs or dumps in the repository, then gofmt, vet, staticcheck.
bash scripts/check-large-files.sh
bash scripts/lint.sh

if [[ -z "${MEDICUS_VAULT_BIN:-}" ]]; then
  if MEDICUS_VAULT_BIN=$(bash scripts/install-vault.sh); then
    export MEDICUS_VAULT_BIN
  elif [[ "${CI:-}" == "true" ]]; then
    echo "test: could not install Vault; CI never skips the Vault tests" >&2
    exit 1
  else
    echo "test: could not install Vault; its integration tests will skip with a message" >&2
  fi
fi

# The PostgreSQL audit log's tests start throw-away clusters with the distribution's server
# binaries; install them (apt) when missing.
if [[ -z "${PG_BIN:-}" ]]; then
  if PG_BIN=$(bash scripts/postgres-test.sh --install-only); then
    export PG_BIN
  elif [[ "${CI:-}" == "true" ]]; then
    echo "test: could not install PostgreSQL; CI never skips the PostgreSQL tests" >&2
    exit 1
  else
    echo "test: could not install PostgreSQL; its tests will skip with a message" >&2
  fi
fi

# The TypeScript workload (examples/ts-workload) runs on Node against a real trustd; its Go test
# installs its npm packages (scripts/ts-workload.sh) and skips only without Node and outside CI.
if ! command -v node >/dev/null && [[ "${CI:-}" == "true" ]]; then
  apt-get install -y -qq nodejs npm
fi

# The vTPM tests start Debian's TPM simulator (swtpm); CI=true makes them fail without it.
if ! bash scripts/install-swtpm.sh && [[ "${CI:-}" == "true" ]]; then
  echo "test: could not install swtpm; CI never skips the vTPM tests" >&2
  exit 1
fi

# The PKCS#11 key store's tests run against SoftHSM2 (apt) in temporary token directories.
if [[ -z "${MEDICUS_SOFTHSM_MODULE:-}" ]]; then
  if MEDICUS_SOFTHSM_MODULE=$(bash scripts/softhsm-test.sh --install-only); then
    export MEDICUS_SOFTHSM_MODULE
  elif [[ "${CI:-}" == "true" ]]; then
    echo "test: could not install SoftHSM2; CI never skips the PKCS#11 tests" >&2
    exit 1
  else
    echo "test: could not install SoftHSM2; the PKCS#11 tests will skip with a message" >&2
  fi
fi

go test -race -count=1 ./...
