#!/usr/bin/env bash
# The main job, end to end on SQLite: install; create a demo database with the sample policies, the demo
# hospitals and 320 enrolled persons; issue a local CA, the server's certificate and four desks' terminal
# certificates; start the gRPC server in mTLS mode (config/demo.toml); play a scripted clinic morning at
# two hospitals' desks over mTLS (settlement demo); close the day, check the ledger, and stop the server
# with SIGTERM (it drains first).
#   scripts/demo.sh                  run the whole story and stop
#   scripts/demo.sh --keep-serving   leave the server running afterwards, the day still open (Ctrl-C stops it)
# SETTLEMENT_DATA_DIR, SETTLEMENT_LISTEN and SETTLEMENT_METRICS_LISTEN move it (e.g. when 50051 is taken).
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
pki=$SETTLEMENT_DATA_DIR/pki
export SETTLEMENT_TLS_CERT=$pki/server.crt SETTLEMENT_TLS_KEY=$pki/server.key SETTLEMENT_TLS_CLIENT_CA=$pki/ca.crt
# The demo issuer's master key (published: demo cards only). The server derives each card's key from it.
export SETTLEMENT_ISSUER_KEYS="demo-issuer-1=000102030405060708090a0b0c0d0e0f"
# The desks the morning plays (settlement/commands/demo.py DESKS): hospital and terminal id.
desks="H33010600123:H33010600123D01 H33010600123:H33010600123D02 H32010200077:H32010200077D01 H32010200077:H32010200077D02"
target=127.0.0.1:${SETTLEMENT_LISTEN##*:}
log=$SETTLEMENT_DATA_DIR/server.log
rm -rf "$SETTLEMENT_DATA_DIR"
mkdir -p "$SETTLEMENT_DATA_DIR"

echo "== set up the demo database ($SETTLEMENT_DATABASE_URL)"
$settlement db upgrade
$settlement hospitals import demo/hospitals.toml
$settlement enrol import demo/enrolment.csv --insecure-demo-key
$settlement enrol import demo/clinic-morning-enrolment.csv --insecure-demo-key

echo "== issue certificates: a local CA, the server's, one per desk ($pki)"
$settlement pki init --dir "$pki"
$settlement pki issue-server --dir "$pki" --name localhost --name 127.0.0.1
for desk in $desks; do
    $settlement pki issue-terminal --dir "$pki" --hospital "${desk%%:*}" --terminal "${desk##*:}"
done

echo "== start the server in mTLS mode (config/demo.toml); its log: $log"
$settlement serve --config config/demo.toml >"$log" 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null || true' EXIT
for _ in $(seq 300); do
    grep -q "health SERVING" "$log" && break
    if ! kill -0 $server 2>/dev/null; then
        echo "the server did not start:"; cat "$log"; exit 1
    fi
    sleep 0.1
done
sed -n 's/^.* INFO settlement\.server\.runtime\[[0-9]*\] \(settlement server listening on .*\)$/   \1/p' "$log"

if ! $settlement demo --target "$target" --pki "$pki"; then
    echo "== the morning failed; the server log ends:"; tail -n 20 "$log"; exit 1
fi

today=$(TZ=Asia/Shanghai date +%F)
echo
echo "== metrics: http://$SETTLEMENT_METRICS_LISTEN/metrics (settle latency, outcomes, commit batches)"
if [ $keep_serving -eq 1 ]; then
    # The day stays open, so the desks' certificates can keep settling against the running server.
    echo "== check the ledger (the day stays open while the server keeps serving)"
    $settlement ledger check
    echo "== serving on $target until Ctrl-C (log: $log); for example:"
    echo "   grpcurl -cacert $pki/ca.crt -cert $pki/terminals/H33010600123/H33010600123D01.crt \\"
    echo "       -key $pki/terminals/H33010600123/H33010600123D01.key -H 'operator-id: doctor-0601' $target list"
    echo "   .venv/bin/python bench/grpc_load.py --target $target --pki $pki --card-proof --seconds 5"
    echo "   then: $settlement close-day --hospital H33010600123 --date $today (and H32010200077)"
    wait $server
    exit 0
fi
echo "== close the day for finance and check the ledger"
$settlement close-day --hospital H33010600123 --date "$today"
$settlement close-day --hospital H32010200077 --date "$today"
$settlement ledger check
echo "== stop the server (SIGTERM: it drains in-flight calls, then exits)"
kill -TERM $server
wait $server
trap - EXIT
sed -n 's/^.* INFO settlement\.server\.runtime\[[0-9]*\] /   /p' "$log" | tail -n 4
