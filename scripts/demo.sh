#!/usr/bin/env bash
# The main job, end to end on SQLite: install, create and fill a demo database, start the gRPC server
# (dev mode: plaintext on 127.0.0.1, reflection on), play one doctor's-desk visit against it, close the
# day, check the ledger, and stop the server with SIGTERM (it drains first).
#   scripts/demo.sh               run the whole story and stop
#   scripts/demo.sh --keep-serving   leave the server running afterwards (Ctrl-C stops it)
set -euo pipefail
cd "$(dirname "$0")/.."
keep_serving=0
[ "${1:-}" = "--keep-serving" ] && keep_serving=1

scripts/install.sh
settlement=.venv/bin/settlement

# Everything the demo writes lives under data/demo; each run starts from scratch.
export SETTLEMENT_DATA_DIR=${SETTLEMENT_DATA_DIR:-data/demo}
export SETTLEMENT_DATABASE_URL=${SETTLEMENT_DATABASE_URL:-sqlite+pysqlite:///$SETTLEMENT_DATA_DIR/settlement.db}
export SETTLEMENT_LISTEN=${SETTLEMENT_LISTEN:-127.0.0.1:50051}
export SETTLEMENT_METRICS_LISTEN=${SETTLEMENT_METRICS_LISTEN:-127.0.0.1:9464}
# The demo issuer's master key (published: demo cards only). The server derives each card's key from it.
export SETTLEMENT_ISSUER_KEYS="demo-issuer-1=000102030405060708090a0b0c0d0e0f"
rm -rf "$SETTLEMENT_DATA_DIR"
mkdir -p "$SETTLEMENT_DATA_DIR"

echo "== set up the demo database ($SETTLEMENT_DATABASE_URL)"
$settlement db upgrade
$settlement hospitals import demo/hospitals.toml
$settlement enrol import demo/enrolment.csv --insecure-demo-key

echo "== start the server (config/dev.toml)"
$settlement serve --config config/dev.toml &
server=$!
trap 'kill -TERM $server 2>/dev/null || true' EXIT

$settlement demo --target "$SETTLEMENT_LISTEN"

today=$(TZ=Asia/Shanghai date +%F)
echo "== close the day for finance and check the ledger"
$settlement close-day --hospital H33010600123 --date "$today"
$settlement ledger check
echo "== metrics: http://$SETTLEMENT_METRICS_LISTEN/metrics (settle latency, outcomes, commit batches)"

if [ $keep_serving -eq 1 ]; then
    echo "== serving on $SETTLEMENT_LISTEN until Ctrl-C (grpcurl -plaintext $SETTLEMENT_LISTEN list)"
    wait $server
else
    echo "== stop the server (SIGTERM: it drains in-flight calls, then exits)"
    kill -TERM $server
    wait $server
    trap - EXIT
fi
