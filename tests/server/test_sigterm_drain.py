"""SIGTERM to a real server process: health turns NOT_SERVING, the settle in flight completes and is
answered, on_drain runs, and the process exits 0."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from server_fakes import CITIZEN_ID, OPERATOR, PkiFiles, mtls_channel, settle_request, wait_until

from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2_grpc

SCRIPT = Path(__file__).parent / "serve_fake.py"
LINE_TIMEOUT_SECONDS = 20.0


def next_line(lines: queue.Queue[str], startswith: str) -> str:
    while True:
        line = lines.get(timeout=LINE_TIMEOUT_SECONDS)
        if line.startswith(startswith):
            return line


@pytest.mark.slow
def test_sigterm_drains_the_call_in_flight_then_exits_0(tmp_path: Path, test_pki: PkiFiles) -> None:
    environment = {
        **os.environ,
        "SETTLEMENT_LISTEN": "127.0.0.1:0",
        "SETTLEMENT_DATA_DIR": str(tmp_path),
        "SETTLEMENT_TLS_CERT": str(test_pki.tls.cert_file),
        "SETTLEMENT_TLS_KEY": str(test_pki.tls.key_file),
        "SETTLEMENT_TLS_CLIENT_CA": str(test_pki.tls.client_ca_file),
        "SETTLEMENT_DRAIN_NOTICE_SECONDS": "0.5",
        "SETTLEMENT_DRAIN_GRACE_SECONDS": "10",
        "SETTLEMENT_HEALTH_POLL_INTERVAL_MS": "50",
    }
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, str(SCRIPT)], stdout=subprocess.PIPE, stderr=log, text=True, env=environment, cwd=tmp_path
        )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line.strip()) for line in process.stdout or []], daemon=True)
    reader.start()
    try:
        port = int(next_line(lines, "PORT").split()[1])
        with mtls_channel(port, test_pki.ca_pem, test_pki.terminal) as channel:
            health = health_pb2_grpc.HealthStub(channel)

            def status() -> int:
                return int(health.Check(health_pb2.HealthCheckRequest(), timeout=5).status)

            wait_until(lambda: status() == health_pb2.HealthCheckResponse.SERVING)
            stub = settlement_service_pb2_grpc.SettlementServiceStub(channel)
            replies: list[object] = []
            request = settle_request("P-SLOW", card_number=CITIZEN_ID)
            in_flight = threading.Thread(
                target=lambda: replies.append(stub.Settle(request, timeout=15, metadata=[("operator-id", OPERATOR)]))
            )
            in_flight.start()
            next_line(lines, "SLOW_STARTED")
            process.send_signal(signal.SIGTERM)
            wait_until(lambda: status() == health_pb2.HealthCheckResponse.NOT_SERVING)
            in_flight.join(timeout=LINE_TIMEOUT_SECONDS)
        assert len(replies) == 1
        assert next_line(lines, "DRAINED") == "DRAINED"
        assert next_line(lines, "EXITING") == "EXITING"
        assert process.wait(timeout=LINE_TIMEOUT_SECONDS) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(timeout=LINE_TIMEOUT_SECONDS)
        if process.stdout is not None:
            process.stdout.close()
    logged = log_path.read_text()
    assert "received SIGTERM" in logged
    assert "outcome=OK" in logged
    assert CITIZEN_ID not in logged
