#!/usr/bin/env bash
# make demo: the main job end to end on the embedded defaults.
# Starts trustd (simulated TEE, local keyring, audit log) on 127.0.0.1, runs the demo workload
# that fetches a secret and encrypts and decrypts with a data key, runs the same workload with a
# tampered measurement and shows the denial, then verifies the audit log as an auditor would.
# Any failure exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=.bin
DATA=.demo/trustd-data
KMS="${KMS:-local}"
case "$KMS" in local|vault) ;; *) echo "KMS must be local or vault, not $KMS" >&2; exit 2 ;; esac
mkdir -p "$BIN"
say() { printf '\n== %s\n' "$*"; }

say "Building trustd, trustctl and the demo workload"
go build -o "$BIN/trustd" ./cmd/trustd
go build -o "$BIN/trustctl" ./cmd/trustctl
for ex in hello teleconsult messenger-attachments sepsis-scoring; do
  go build -o "$BIN/$ex" "./examples/$ex"
done

rm -rf .demo && mkdir -p .demo/policies
say "Collecting the sample policies and the examples' policies into one (unsigned, dev-mode) bundle"
cp policies/examples/*.yaml policies/examples/*.json policies/examples/*.refs.cose .demo/policies/
for ex in teleconsult messenger-attachments sepsis-scoring; do
  cp "examples/$ex/policy.yaml" ".demo/policies/example-$ex.yaml"
  cp examples/"$ex"/*.refs.cose .demo/policies/ # the image's vendor-signed reference values
done
"$BIN/trustctl" policy lint .demo/policies

# Every demo workload runs from 127.0.0.1: raise the per-peer rate limit that protects a
# production trustd from one noisy client.
printf 'limits:\n  rate: 1000\n  burst: 2000\n' >.demo/trustd.yaml
TRUSTD_CONFIG=(--config .demo/trustd.yaml)
VAULT_STATE=.demo/vault
if [[ "$KMS" == vault ]]; then
  say "Starting a throw-away Vault dev server on 127.0.0.1 (transit + KV v2, AppRole for trustd)"
  VAULT_DEV_TENANTS=hello bash scripts/vault-dev.sh start "$VAULT_STATE" >/dev/null
  { echo "kms:"; echo "  backend: vault"; echo "  vault:"; sed 's/^/    /' "$VAULT_STATE/trustd-vault.yaml"; } >>.demo/trustd.yaml
  echo "trustd will release hello/records and hello/api-token from Vault (transit-hello, kv-hello)"
else
  say "Creating data-key roots and secrets in the local keyring"
  for key in hello/records teleconsult/imaging messenger/attachments sepsis/vitals sepsis/scores; do
    "$BIN/trustctl" keys create "$key" --data-dir "$DATA" --dev
  done
  for sec in hello/api-token teleconsult/viewer-token; do
    printf 'demo-%s' "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" |
      "$BIN/trustctl" secrets put "$sec" --data-dir "$DATA" --dev
  done
fi

say "Starting trustd in --dev mode (INSECURE simulated TEE) on 127.0.0.1"
"$BIN/trustd" "${TRUSTD_CONFIG[@]}" --dev --data-dir "$DATA" --policy .demo/policies --listen 127.0.0.1:0 >.demo/trustd.log 2>&1 &
TRUSTD=$!
cleanup() {
  kill $TRUSTD 2>/dev/null || true
  wait $TRUSTD 2>/dev/null || true
  if [[ "$KMS" == vault ]]; then bash scripts/vault-dev.sh stop "$VAULT_STATE" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
ADDR=""
for _ in $(seq 1 100); do
  ADDR=$(sed -n 's/.*msg="trustd serving" grpc=\([0-9.:]*\).*/\1/p' .demo/trustd.log | head -n1)
  [[ -n "$ADDR" ]] && break
  kill -0 $TRUSTD 2>/dev/null || { cat .demo/trustd.log; echo "trustd did not start" >&2; exit 1; }
  sleep 0.1
done
[[ -n "$ADDR" ]] || { cat .demo/trustd.log; echo "trustd did not start in time" >&2; exit 1; }
echo "trustd is listening on $ADDR (log: .demo/trustd.log)"

say "Running the demo workload with the approved image"
"$BIN/hello" --addr "$ADDR"

say "Running the same workload with a tampered measurement: trustd must deny it"
set +e
"$BIN/hello" --addr "$ADDR" --measurement 6d656469637573207472757374206578616d706c652068656c6c6f20696d616765207632
rc=$?
set -e
if [[ $rc -ne 2 ]]; then
  echo "FAIL: the tampered workload was not denied (exit $rc)" >&2
  exit 1
fi
echo "As expected: denied, nothing released."

if [[ "$KMS" == local ]]; then
say "Teleconsult: a 64 MB imaging study encrypted on upload, streamed back decrypted to an authorised viewer"
"$BIN/teleconsult" --addr "$ADDR" --size-mb 64

say "Messenger: an attachment encrypted for a room; the same event forwarded to another room does not open"
"$BIN/messenger-attachments" --addr "$ADDR"

say "Sepsis scoring: vital signs decrypted inside the TEE, scored, and the scores encrypted"
"$BIN/sepsis-scoring" --addr "$ADDR"
fi

say "Auditor: verifying the audit log offline (checkpoint signature, tree, every record)"
# A running trustd publishes its tiles within 50 ms (its HTTP endpoint at once); stopped, its
# directory holds every record.
kill -TERM $TRUSTD && wait $TRUSTD || true
"$BIN/trustctl" audit verify --log "$DATA/audit" --key "@$DATA/audit/note.pub"
"$BIN/trustctl" audit search --log "$DATA/audit" --key "@$DATA/audit/note.pub" --verdict deny --format csv | cut -c1-160

say "Demo finished: approved workloads attested and received their keys; the tampered one was denied; every decision is in the verified log."
