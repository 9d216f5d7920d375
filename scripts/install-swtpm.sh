#!/usr/bin/env bash
# Installs the TPM 2.0 simulator that the vTPM tests run (attest/azure, enclave/aztpm start swtpm
# on Unix sockets in a temporary directory): Debian's swtpm, swtpm-tools and tpm2-tools.
set -euo pipefail
command -v swtpm >/dev/null && exit 0
sudo=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-swtpm: not root and no sudo: install swtpm yourself" >&2; exit 1; }
  sudo=(sudo)
fi
command -v apt-get >/dev/null || { echo "install-swtpm: no apt-get: install swtpm yourself" >&2; exit 1; }
echo "install-swtpm: installing swtpm (apt-get)" >&2
"${sudo[@]}" apt-get update -qq >&2
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq swtpm swtpm-tools tpm2-tools >&2
