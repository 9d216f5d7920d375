#!/usr/bin/env bash
# Makes a software HSM (SoftHSM2, Debian package softhsm2) available for the PKCS#11 key store's
# tests, installing it with apt when missing, and checks that a token can be initialized in a
# throw-away token directory (SOFTHSM2_CONF pointing into a temporary directory; the system's
# token directory is never touched). The tests themselves (kms/pkcs11/pkcs11test) make their own
# temporary token directory and tokens the same way.
#
#   scripts/softhsm-test.sh                 install if needed, then go test -race the PKCS#11 tests
#   scripts/softhsm-test.sh --install-only  install if needed and print the module's path
set -euo pipefail
cd "$(dirname "$0")/.."

MODULE=${MEDICUS_SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}

if ! command -v softhsm2-util >/dev/null || [[ ! -e "$MODULE" ]]; then
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "softhsm-test: not root and no sudo: install softhsm2 yourself" >&2; exit 1; }
    sudo=(sudo)
  fi
  command -v apt-get >/dev/null || { echo "softhsm-test: no apt-get: install SoftHSM2 and set MEDICUS_SOFTHSM_MODULE" >&2; exit 1; }
  echo "softhsm-test: installing softhsm2 (apt-get)" >&2
  "${sudo[@]}" apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq softhsm2 >&2
fi
[[ -e "$MODULE" ]] || { echo "softhsm-test: no PKCS#11 module at $MODULE" >&2; exit 1; }

# A token in a temporary token directory, to prove the installation works.
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -m 700 "$dir/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$dir/tokens" >"$dir/softhsm2.conf"
SOFTHSM2_CONF="$dir/softhsm2.conf" softhsm2-util --init-token --free --label medicus-check \
  --pin 1234-5678 --so-pin 8765-4321 >/dev/null

if [[ "${1:-}" == "--install-only" ]]; then
  echo "$MODULE"
  exit 0
fi
MEDICUS_SOFTHSM_MODULE=$MODULE go test -race -count=1 ./kms/pkcs11/... ./kms/route/... "$@"
