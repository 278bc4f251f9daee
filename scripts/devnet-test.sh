#!/usr/bin/env bash
# Devnet test: real Lodestar validator clients sign a live chain through signward, with
# authentication on (issue 12).
#
# What runs, all on 127.0.0.1:
#   * Lodestar 1.5.1 (npm, tests/devnet, installed by scripts/ensure-lodestar.sh), minimal preset,
#     3-second slots (2 leaves a loaded 2-core machine missing duties, and then no finality), phase0 at genesis, Altair at epoch 1, Bellatrix at 2, Capella at 3: every fork
#     Lodestar 1.5.1 has. `lodestar dev` is the beacon node only (8 interop validators in genesis,
#     no --startValidators, so it holds no key), with Lodestar's mock execution engine and no eth1.
#   * signward serve, holding the 8 interop keys (EIP-2335 keystores that Lodestar's
#     --dumpTestnetFiles writes; nothing else gets them), with the devnet's config.yaml.
#   * `lodestar validator` (VC 1) with no local keys: --externalSigner.url + --externalSigner.fetch.
#   * From Capella on, a doppelganger VC 2: the same keys from the same signward, another graffiti.
#
# What passes:
#   * The chain crosses Altair, Bellatrix and Capella and finalizes an epoch past the Capella fork,
#     within a hard deadline.
#   * The doppelganger is refused: signward answers it (or VC 1, whichever came second) HTTP 412
#     for a conflicting block; the beacon node has no proposer or attester slashings (pool, blocks,
#     validator records), and VC 1 went on signing after the doppelganger started.
#   * tests/devnet/check_chain.py reads every block of the canonical chain from the beacon API and,
#     for the block and every attestation included in it: computes the signing root itself
#     (remerkleable SSZ, the fork version of the config.yaml for that epoch, the genesis validators
#     root of the beacon API), finds that signing root recorded as `signed` in signward's audit log
#     for the proposer's key (for an attestation: for keys matching its aggregation bits), and
#     verifies the BLS signature on chain under that key (aggregate: those keys) with
#     milagro-bls-binding (not blst, which signward uses), the first block and attestation of
#     each fork again with py_ecc (pure Python: too slow to verify hundreds in the time budget).
#     signward's audit log records the signing root, not the signature, so this is the honest
#     check available: the signature is valid for a root that signward recorded signing with that
#     key, and nothing but signward holds the keys. Counts per fork are printed.
#
# With SIGNWARD_DEVNET_GROUP=1 (scripts/test.sh runs both), the same test runs through a 2-of-3
# threshold signing group (issue 17, docs/threshold.md): each interop keystore is split with
# `signward group split` among three signward peers (their own data directories, slashing
# databases and audit logs, pinned mTLS between them), each peer imports its shares into its own
# sealed vault (`signward group import`) and the share files are deleted, and `group status` must
# show every peer holding every group key; nothing holds a whole key while the chain runs. The
# VCs talk to peer 1 as before; every signature is combined from two peers' partials.
# It also checks that peers 2 and 3 recorded the partial signatures they released, and that the
# group's signatures on chain verify under the validators' keys (check_chain.py, unchanged).
#
# Authentication: a `signward token create` credential, the token given to Lodestar in the
# externalSigner URL's userinfo (Lodestar 1.5.1 sends it as HTTP Basic), written to Lodestar's
# rcConfig file (0600) rather than its argv. See AUTH below for the switch to a source-address
# credential.
#
# Fails (never skips) when anything is missing; set SIGNWARD_SKIP_DEVNET=1 to skip it locally
# (refused under CI). Logs go to a temp dir, kept and tailed on failure.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [ "${SIGNWARD_SKIP_DEVNET:-}" = 1 ]; then
  if [ -n "${CI:-}" ]; then
    echo "devnet: SIGNWARD_SKIP_DEVNET=1 is not honoured in CI" >&2
    exit 1
  fi
  echo "devnet: skipped (SIGNWARD_SKIP_DEVNET=1)"
  exit 0
fi

# Authentication: a source credential (`token create --source 127.0.0.1/32`), the way in for
# Lodestar >= 1.10, whose fetch cannot send credentials. No token exists, Lodestar's URL has no
# userinfo, and both VCs are the one credential `lodestar` (the audit caller check counts both).
# SIGNWARD_DEVNET_AUTH=token runs the same test with a token in the URL (Basic), which 1.5.1 sends.
AUTH="${SIGNWARD_DEVNET_AUTH:-source}"
GROUP="${SIGNWARD_DEVNET_GROUP:-0}"

SECONDS_PER_SLOT="${SIGNWARD_DEVNET_SECONDS_PER_SLOT:-3}"
EPOCH_SECS=$((8 * SECONDS_PER_SLOT))                   # minimal preset: 8 slots per epoch
DEADLINE_SECS="${SIGNWARD_DEVNET_DEADLINE_SECS:-480}"  # genesis to finality; ideally 7 epochs
GENESIS_DELAY_SECS=50                                  # signward and the beacon node start first
FINALIZED_EPOCH_WANTED=4                               # past the last fork (Capella, epoch 3)
DOPPELGANGER_EPOCH=3

PY="${SIGNWARD_TEST_PYTHON:-$(scripts/setup-test-env.sh)}"
LODESTAR="$(scripts/ensure-lodestar.sh)"
SIGNWARD="${SIGNWARD_BIN:-$ROOT/target/debug/signward}"
if [ ! -x "$SIGNWARD" ]; then
  cargo build -p signward --locked >&2
fi

WORK="$(mktemp -d /tmp/signward-devnet.XXXXXX)"
chmod 700 "$WORK"
PIDS=()
OK=0
started_at=$(date +%s)

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$OK" = 1 ]; then
    rm -rf "$WORK"
  else
    echo "devnet: FAILED; logs kept in $WORK" >&2
    echo "devnet: 0 passed, 1 failed"
    for f in "$WORK"/*.log; do
      [ -f "$f" ] || continue
      echo "----- tail of $f -----" >&2
      tail -n 40 "$f" >&2
    done
  fi
}
trap cleanup EXIT
fail() {
  echo "devnet: FAIL: $*" >&2
  exit 1
}
log() { echo "devnet [$(($(date +%s) - started_at))s]: $*" >&2; }

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SW_PORT=$(free_port)
BN_PORT=$(free_port)
P2P_PORT=$(free_port)
BN="http://127.0.0.1:$BN_PORT"

export LODESTAR_PRESET=minimal
FORKS=(--params.SECONDS_PER_SLOT "$SECONDS_PER_SLOT" --params.ALTAIR_FORK_EPOCH 1 --params.BELLATRIX_FORK_EPOCH 2
  --params.CAPELLA_FORK_EPOCH 3)

# 1. The devnet's files: config.yaml and the 8 interop keystores (Lodestar writes both).
NET="$WORK/net"
log "writing config.yaml and interop keystores"
"$LODESTAR" dev --preset minimal "${FORKS[@]}" --genesisValidators 8 --dumpTestnetFiles "$NET" \
  >"$WORK/dump.log" 2>&1 || fail "lodestar dev --dumpTestnetFiles"
rm -f "$NET/genesis.ssz" # written with its own genesis time; the beacon node writes the real one
# An interop genesis has the genesis time we choose: the beacon node gets it as --genesisTime,
# signward as --genesis-time (config.yaml holds no genesis time; its MIN_GENESIS_TIME is set to it
# so that lower bound agrees).
GENESIS_TIME=$(($(date +%s) + GENESIS_DELAY_SECS))
sed -i -e "s/^MIN_GENESIS_TIME:.*/MIN_GENESIS_TIME: $GENESIS_TIME/" \
  -e "s/^GENESIS_DELAY:.*/GENESIS_DELAY: 0/" "$NET/config.yaml"
grep -q "^MIN_GENESIS_TIME: $GENESIS_TIME\$" "$NET/config.yaml" || fail "config.yaml has no MIN_GENESIS_TIME"
grep -q "^GENESIS_DELAY: 0\$" "$NET/config.yaml" || fail "config.yaml has no GENESIS_DELAY"
KEYS="$WORK/keystores"
mkdir -m 700 "$KEYS"
for d in "$NET"/keystores/*/; do
  install -m 600 "$d/voting-keystore.json" "$KEYS/$(basename "$d").json"
done
[ "$(ls "$KEYS" | wc -l)" = 8 ] || fail "expected 8 interop keystores, got $(ls "$KEYS" | wc -l)"
rm -rf "$NET/keystores" "$NET/secrets" # the validator clients get no key material
printf 'test_password' >"$WORK/keystore-password"
chmod 600 "$WORK/keystore-password"

# 2. The beacon node (no validator keys of its own); it starts while signward loads its keys.
log "starting the beacon node on :$BN_PORT (genesis in $((GENESIS_TIME - $(date +%s)))s)"
(cd "$NET" && exec "$LODESTAR" dev --preset minimal --paramsFile "$NET/config.yaml" \
  --genesisValidators 8 --genesisTime "$GENESIS_TIME" --dataDir "$WORK/bn" \
  --rest --rest.address 127.0.0.1 --rest.port "$BN_PORT" \
  --listenAddress 127.0.0.1 --port "$P2P_PORT" --discv5 false \
  --eth1 false --execution.engineMock \
  --logFile none --logLevel info >"$WORK/beacon.log" 2>&1) &
PIDS+=("$!")

# 3. signward: credentials, then serve.
SWDATA="$WORK/signward-data"
ROOTFLAG=()
[ "$(id -u)" = 0 ] && ROOTFLAG=(--allow-root)
signer_url() { # $1: credential name
  if [ "$AUTH" = source ]; then
    echo "http://127.0.0.1:$SW_PORT"
  else
    local tok
    tok=$("$SIGNWARD" token create --data-dir "$SWDATA" --name "$1" --scope sign,public_keys \
      2>>"$WORK/token.log" | grep -E '^sw_' | head -n1) || fail "token create $1"
    [ -n "$tok" ] || fail "token create printed no token"
    echo "http://$1:$tok@127.0.0.1:$SW_PORT"
  fi
}
if [ "$AUTH" = source ]; then
  "$SIGNWARD" token create --data-dir "$SWDATA" --name lodestar --source 127.0.0.1/32 \
    --scope sign,public_keys 2>>"$WORK/token.log" || fail "token create --source"
fi
VC1_URL=$(signer_url lodestar)
VC2_URL=$VC1_URL
[ "$AUTH" = token ] && VC2_URL=$(signer_url doppelganger)

wait_loaded() { # $1: log file, $2: pid
  for _ in $(seq 1 600); do
    grep -qs "key loading finished" "$1" && break
    kill -0 "$2" 2>/dev/null || fail "signward exited while starting ($1)"
    sleep 0.2
  done
  grep -qs "key loading finished" "$1" || fail "signward did not load its keys ($1)"
}
SIGNER_KEYS=(--keystores-path "$KEYS" --keystores-password-file "$WORK/keystore-password")
if [ "$GROUP" = 1 ]; then
  # Three peer identities, each keystore split 2-of-3 to their age recipients, then the
  # keystores deleted: the peers hold shares only.
  declare -A PIN REC GPORT
  for i in 1 2 3; do
    "$SIGNWARD" group identity --out-dir "$WORK/peer$i" --name "peer$i" >"$WORK/peer$i.id" \
      || fail "group identity $i"
    PIN[$i]=$(sed -n 's/^cert_sha256 = "\(.*\)"$/\1/p' "$WORK/peer$i.id")
    REC[$i]=$(sed -n 's/^age_recipient = "\(.*\)"$/\1/p' "$WORK/peer$i.id")
    GPORT[$i]=$(free_port)
  done
  for k in "$KEYS"/*.json; do
    "$SIGNWARD" group split --keystore "$k" --password-file "$WORK/keystore-password" \
      --threshold 2 --peer "1=${REC[1]}" --peer "2=${REC[2]}" --peer "3=${REC[3]}" \
      --out-dir "$WORK/shares/$(basename "$k" .json)" >>"$WORK/split.log" 2>&1 || fail "group split $k"
  done
  rm -rf "$KEYS"
  # Each peer keeps its shares in its own sealed vault: a vault per peer (2-of-2, both unseal
  # shares to the peer's age identity, unsealed at start), an admin credential, and no share
  # file in its group configuration; the shares are imported once it runs (import_shares).
  declare -A PDATA UNSEAL
  PDATA[1]=$SWDATA
  PDATA[2]="$WORK/peer2-data"
  PDATA[3]="$WORK/peer3-data"
  for i in 1 2 3; do
    vshares=$("$SIGNWARD" init --data-dir "${PDATA[$i]}" --out "$WORK/vault-shares-$i" --shares 2 \
      --threshold 2 --share-to "${REC[$i]}" --share-to "${REC[$i]}" 2>>"$WORK/vault-init.log") \
      || fail "vault init on peer $i"
    UNSEAL[$i]=""
    for f in $vshares; do UNSEAL[$i]+="--unseal-shares-from $f "; done
    UNSEAL[$i]+="--identity $WORK/peer$i/peer$i.agekey"
    "$SIGNWARD" token create --data-dir "${PDATA[$i]}" --name ops --scope admin 2>>"$WORK/token.log" \
      | grep -E '^sw_' | head -n1 >"$WORK/admin-$i.token" || fail "admin token on peer $i"
    chmod 600 "$WORK/admin-$i.token"
    [ -s "$WORK/admin-$i.token" ] || fail "token create printed no admin token for peer $i"
  done
  # The interop keys have never signed (genesis is ahead): --new-key, no history to import.
  import_shares() { # $1: peer index, $2: its HTTP port
    for d in "$WORK"/shares/*/; do
      "$SIGNWARD" group import --url "http://127.0.0.1:$2" --token-file "$WORK/admin-$1.token" \
        --share "${d}share-$1.age" --identity "$WORK/peer$1/peer$1.agekey" --new-key \
        >>"$WORK/import.log" 2>&1 \
        || fail "group import of ${d}share-$1.age into peer $1"
      rm -f "${d}share-$1.age"
    done
  }
  for i in 1 2 3; do
    {
      echo "index = $i"
      echo "listen = \"127.0.0.1:${GPORT[$i]}\""
      echo "tls_cert = \"$WORK/peer$i/peer$i.crt\""
      echo "tls_key = \"$WORK/peer$i/peer$i.key\""
      echo "timeout_ms = 2000"
      for j in 1 2 3; do
        [ "$j" = "$i" ] && continue
        printf '\n[[peers]]\nindex = %s\naddr = "127.0.0.1:%s"\ncert_sha256 = "%s"\n' "$j" "${GPORT[$j]}" "${PIN[$j]}"
      done
    } >"$WORK/group-$i.toml"
    chmod 600 "$WORK/group-$i.toml"
  done
  # shellcheck disable=SC2206 # the unseal arguments are paths without spaces
  SIGNER_KEYS=(--group-config "$WORK/group-1.toml" ${UNSEAL[1]})
  for i in 2 3; do
    log "starting signing-group peer $i"
    port=$(free_port)
    # shellcheck disable=SC2086
    SIGNWARD_LOG=info "$SIGNWARD" serve --data-dir "${PDATA[$i]}" --http-listen-port "$port" \
      --network "$NET/config.yaml" --genesis-time "$GENESIS_TIME" --group-config "$WORK/group-$i.toml" \
      ${UNSEAL[$i]} "${ROOTFLAG[@]}" >"$WORK/peer$i.log" 2>&1 &
    PIDS+=("$!")
    wait_loaded "$WORK/peer$i.log" "$!"
    import_shares "$i" "$port"
  done
fi

log "starting signward on :$SW_PORT"
SIGNWARD_LOG=info "$SIGNWARD" serve --data-dir "$SWDATA" --http-listen-port "$SW_PORT" \
  --network "$NET/config.yaml" --genesis-time "$GENESIS_TIME" "${SIGNER_KEYS[@]}" "${ROOTFLAG[@]}" \
  >"$WORK/signward.log" 2>&1 &
SW_PID=$!
PIDS+=("$SW_PID")
wait_loaded "$WORK/signward.log" "$SW_PID"
if [ "$GROUP" = 1 ]; then
  import_shares 1 "$SW_PORT"
  [ -z "$(ls "$WORK"/shares/*/ 2>/dev/null | grep '\.age$')" ] || fail "share files remain after import"
  # Every peer answers, holding every group key with the same commitments.
  "$SIGNWARD" group status --url "http://127.0.0.1:$SW_PORT" --token-file "$WORK/admin-1.token" \
    >"$WORK/group-status.json" 2>&1 || fail "group status: $(cat "$WORK/group-status.json")"
  n=$(grep -c '"keys_matching": 8' "$WORK/group-status.json" || true)
  [ "$n" = 2 ] || fail "group status does not show both other peers holding the 8 group keys"
  log "signing group: 8 shares imported into each peer's vault; group status agrees"
fi
# Authentication is on: without credentials the key list is refused.
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SW_PORT/api/v1/eth2/publicKeys")
if [ "$AUTH" = token ]; then
  [ "$code" = 401 ] || fail "publicKeys without a token answered $code, not 401"
else
  [ "$code" = 200 ] || fail "publicKeys from the source credential's address answered $code"
  # A presented credential that is wrong never falls back to the address; the source
  # credential does not reach key management.
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer sw_$(printf '0%.0s' $(seq 64))" \
    "http://127.0.0.1:$SW_PORT/api/v1/eth2/publicKeys")
  [ "$code" = 401 ] || fail "a wrong token from the source address answered $code, not 401"
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SW_PORT/eth/v1/keystores")
  [ "$code" = 403 ] || fail "the source credential reached the Keymanager API ($code, not 403)"
fi

# The beacon node's API is up (before genesis, normally).
for _ in $(seq 1 300); do
  curl -sf "$BN/eth/v1/beacon/genesis" >/dev/null 2>&1 && break
  sleep 0.5
done
curl -sf "$BN/eth/v1/beacon/genesis" >/dev/null || fail "the beacon node's API did not come up"

start_vc() { # $1: name, $2: signer URL, $3: graffiti
  local rc="$WORK/$1.rc.json"
  (
    umask 077
    "$PY" - "$rc" "$2" "$BN" "$WORK/$1" "$3" "$NET/config.yaml" <<'PYEOF'
import json, sys
rc, url, bn, data, graffiti, params = sys.argv[1:]
json.dump({
    "network": "dev",
    "preset": "minimal",
    "paramsFile": params,
    "dataDir": data,
    "beaconNodes": [bn],
    "externalSigner.url": url,
    "externalSigner.fetch": True,
    "graffiti": graffiti,
    "suggestedFeeRecipient": "0x000000000000000000000000000000000000dEaD",
    "logFile": "none",
    "logLevel": "info",
}, open(rc, "w"), indent=1)
PYEOF
  )
  "$LODESTAR" validator --rcConfig "$rc" >"$WORK/$1.log" 2>&1 &
  PIDS+=("$!")
  eval "${1}_PID=$!"
}

log "starting VC 1 (external signer, no local keys)"
start_vc vc1 "$VC1_URL" "signward-vc1"

api() { curl -sf --max-time 10 "$BN$1"; }
jq_py() { "$PY" -c "import json,sys; d=json.load(sys.stdin); print($1)" 2>/dev/null; }
VERSIONS=$(grep -E '^(ALTAIR|BELLATRIX|CAPELLA)_FORK_VERSION:' "$NET/config.yaml")
CAPELLA_VERSION=$(echo "$VERSIONS" | sed -n 's/^CAPELLA_FORK_VERSION: *//p' | tr -d "'\"")

# 4. Run until finality past Capella; start the doppelganger once Capella is reached.
deadline=$((GENESIS_TIME + DEADLINE_SECS))
doppel_started=0
finalized=-1
while :; do
  now=$(date +%s)
  [ "$now" -lt "$deadline" ] || fail "no finalized epoch >= $FINALIZED_EPOCH_WANTED within ${DEADLINE_SECS}s of genesis (finalized: $finalized)"
  kill -0 "$SW_PID" 2>/dev/null || fail "signward exited"
  kill -0 "$vc1_PID" 2>/dev/null || fail "VC 1 exited"
  if [ "$now" -ge "$GENESIS_TIME" ]; then
    head_slot=$(api /eth/v1/beacon/headers/head | jq_py 'd["data"]["header"]["message"]["slot"]' || echo -1)
    finalized=$(api /eth/v1/beacon/states/head/finality_checkpoints | jq_py 'd["data"]["finalized"]["epoch"]' || echo -1)
    fork=$(api /eth/v1/beacon/states/head/fork | jq_py 'd["data"]["current_version"]' || echo '?')
    log "head slot $head_slot, fork $fork, finalized epoch $finalized"
    cur_epoch=$(((now - GENESIS_TIME) / EPOCH_SECS))
    if [ "$doppel_started" = 0 ] && [ "$cur_epoch" -ge "$DOPPELGANGER_EPOCH" ]; then
      log "starting the doppelganger VC 2 (same keys, same signer)"
      DOPPEL_AT=$(date +%s)
      start_vc vc2 "$VC2_URL" "doppelganger"
      doppel_started=1
    fi
    if [ "$finalized" -ge "$FINALIZED_EPOCH_WANTED" ] 2>/dev/null && [ "$fork" = "$CAPELLA_VERSION" ]; then
      break
    fi
  fi
  sleep 4
done
log "finalized epoch $finalized in Capella"

# Let the doppelganger and VC 1 race for one more epoch, then stop both.
sleep "$EPOCH_SECS"
for pid in "$vc1_PID" "$vc2_PID"; do kill "$pid" 2>/dev/null || true; done
for pid in "$vc1_PID" "$vc2_PID"; do wait "$pid" 2>/dev/null || true; done
sleep 1

# 5. Slashing protection refused the doppelganger, nothing was slashed, VC 1 went on.
"$SIGNWARD" audit query --data-dir "$SWDATA" >"$WORK/audit.jsonl" 2>"$WORK/audit-query.log" \
  || fail "signward audit query"
"$SIGNWARD" audit verify --data-dir "$SWDATA" >>"$WORK/audit-query.log" 2>&1 || fail "signward audit verify"
for pool in proposer_slashings attester_slashings; do
  n=$(api "/eth/v1/beacon/pool/$pool" | jq_py 'len(d["data"])') || fail "pool $pool"
  [ "$n" = 0 ] || fail "the beacon node's pool has $n $pool"
done

"$PY" tests/devnet/check_chain.py --beacon "$BN" --config "$NET/config.yaml" \
  --audit "$WORK/audit.jsonl" --doppelganger-since "$DOPPEL_AT" --auth "$AUTH" \
  || fail "chain check"

if [ "$GROUP" = 1 ]; then
  # Peer 1 coordinated every signature; peers 2 and 3 each recorded the partial signatures they
  # released to it, in audit logs whose chains verify.
  for i in 2 3; do
    "$SIGNWARD" audit verify --data-dir "$WORK/peer$i-data" >>"$WORK/audit-query.log" 2>&1 \
      || fail "audit verify on peer $i"
    n=$("$SIGNWARD" audit query --data-dir "$WORK/peer$i-data" --caller peer-1 --decision signed 2>/dev/null \
      | grep -c '"partial_sign"' || true)
    log "peer $i released $n partial signatures to peer 1"
    [ "$n" -gt 0 ] || fail "peer $i released no partial signature"
  done
  grep -q "signing group: threshold keys served" "$WORK/signward.log" || fail "peer 1 served no group keys"
fi

OK=1
log "passed in $(($(date +%s) - started_at))s"
echo "devnet: 1 passed, 0 failed"
