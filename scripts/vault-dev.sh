#!/usr/bin/env bash
# Starts, provisions and stops a throw-away Vault dev server for `make demo KMS=vault`.
#
#   scripts/vault-dev.sh start [STATE_DIR]   start and provision; prints STATE_DIR/vault.env
#   scripts/vault-dev.sh stop  [STATE_DIR]   stop it and delete STATE_DIR
#   scripts/vault-dev.sh status [STATE_DIR]
#
# STATE_DIR defaults to ./.vault-dev. After start it holds:
#   vault.env          VAULT_ADDR, VAULT_TOKEN (root, for the operator), MEDICUS_VAULT_CONFIG
#   trustd-vault.yaml  the kms/vault config section for trustd (AppRole login, release policy)
#   role-id, secret-id the AppRole credentials trustd logs in with (0600)
#   vault.log, vault.pid
# The server listens on the first free port from 8250 (VAULT_DEV_PORT to choose).
#
# A dev server keeps everything in memory and listens on plain http on 127.0.0.1 only; it is
# for demos, never for data. Tenants come from VAULT_DEV_TENANTS (default "uk-freiburg"); each
# gets transit-<tenant> with a derived key "records" and kv-<tenant> with secret trustd/api-token.
set -euo pipefail

cmd="${1:-}"
STATE="${2:-.vault-dev}"
PORT="${VAULT_DEV_PORT:-}"
TENANTS="${VAULT_DEV_TENANTS:-uk-freiburg}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

log() { echo "vault-dev: $*" >&2; }

running() { [[ -f "$STATE/vault.pid" ]] && kill -0 "$(cat "$STATE/vault.pid")" 2>/dev/null; }

case "$cmd" in
start)
  if running; then
    log "already running (pid $(cat "$STATE/vault.pid"))"
    echo "$(cd "$STATE" && pwd)/vault.env"
    exit 0
  fi
  BIN="${MEDICUS_VAULT_BIN:-$("$HERE/install-vault.sh")}"
  mkdir -p "$STATE"
  chmod 700 "$STATE"
  STATE="$(cd "$STATE" && pwd)"
  # The first free port from 8250 unless VAULT_DEV_PORT says: a server left over from an
  # earlier run (its state dir deleted) must not make this one fail.
  listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
  if [[ -z "$PORT" ]]; then
    for p in $(seq 8250 8299); do
      if ! listening "$p"; then PORT=$p; break; fi
    done
    [[ -n "$PORT" ]] || { log "no free port in 8250-8299"; exit 1; }
  elif listening "$PORT"; then
    log "port $PORT is in use"; exit 1
  fi
  ADDR="http://127.0.0.1:$PORT"
  ROOT="root-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  # A private HOME: the dev server writes a token helper file there.
  HOME="$STATE" nohup "$BIN" server -dev -dev-listen-address="127.0.0.1:$PORT" \
    -dev-root-token-id="$ROOT" -log-level=warn >"$STATE/vault.log" 2>&1 &
  echo $! >"$STATE/vault.pid"

  v() { HOME="$STATE" VAULT_ADDR="$ADDR" VAULT_TOKEN="$ROOT" "$BIN" "$@"; }
  for _ in $(seq 1 100); do
    if v status >/dev/null 2>&1; then break; fi
    if ! running; then log "server exited:"; tail -20 "$STATE/vault.log" >&2; exit 1; fi
    sleep 0.1
  done
  v status >/dev/null || { log "server did not come up"; exit 1; }

  v policy write medicus-trustd - >/dev/null <<'HCL'
# What trustd needs to release: describe transit keys, make and open data keys, read secrets.
path "+/keys/*"              { capabilities = ["read"] }
path "+/datakey/plaintext/*" { capabilities = ["update"] }
path "+/decrypt/*"           { capabilities = ["update"] }
path "+/data/trustd/*"       { capabilities = ["read"] }
HCL
  v auth enable approle >/dev/null
  v write auth/approle/role/trustd token_policies=medicus-trustd token_ttl=1h token_max_ttl=4h >/dev/null
  umask 077
  v read -field=role_id auth/approle/role/trustd/role-id >"$STATE/role-id"
  v write -f -field=secret_id auth/approle/role/trustd/secret-id >"$STATE/secret-id"

  {
    echo "# kms/vault configuration written by scripts/vault-dev.sh"
    echo "address: $ADDR"
    echo "auth:"
    echo "  method: approle"
    echo "  approle:"
    echo "    role_id_file: $STATE/role-id"
    echo "    secret_id_file: $STATE/secret-id"
    echo "tenants:"
  } >"$STATE/trustd-vault.yaml"
  for t in $TENANTS; do
    v secrets enable -path="transit-$t" transit >/dev/null
    v secrets enable -path="kv-$t" -version=2 kv >/dev/null
    v write -f "transit-$t/keys/records" type=aes256-gcm96 derived=true exportable=false >/dev/null
    for _ in $(seq 1 50); do # KV v2 upgrades its storage right after mounting
      if v kv put -mount="kv-$t" trustd/api-token value="demo-$t-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')" >/dev/null 2>&1; then break; fi
      sleep 0.1
    done
    echo "  $t: {}" >>"$STATE/trustd-vault.yaml"
  done
  cat >"$STATE/vault.env" <<ENV
VAULT_ADDR=$ADDR
VAULT_TOKEN=$ROOT
MEDICUS_VAULT_CONFIG=$STATE/trustd-vault.yaml
ENV
  log "dev Vault at $ADDR (pid $(cat "$STATE/vault.pid")), tenants: $TENANTS"
  echo "$STATE/vault.env"
  ;;
stop)
  if running; then
    pid="$(cat "$STATE/vault.pid")"
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    log "stopped pid $pid"
  fi
  # Only a directory this script made (STATE_DIR comes from the command line).
  if [[ -f "$STATE/vault.pid" && -f "$STATE/trustd-vault.yaml" ]]; then
    rm -rf "$STATE/.cache"
    rm -f "$STATE"/{vault.env,trustd-vault.yaml,role-id,secret-id,vault.log,vault.pid,.vault-token}
    rmdir "$STATE" 2>/dev/null || true
  fi
  ;;
status)
  if running; then
    log "running (pid $(cat "$STATE/vault.pid"))"
    cat "$STATE/vault.env"
  else
    log "not running"
    exit 1
  fi
  ;;
*)
  echo "usage: $0 start|stop|status [STATE_DIR]" >&2
  exit 2
  ;;
esac
