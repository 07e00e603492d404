"""The real SettlementServicer on 127.0.0.1 port 0 with mTLS required and a fresh local CA, as the gRPC
suites start it in process (tests/grpc_api, tests/acceptance_finance)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2_grpc as pb_grpc
from settlement.server import pki
from settlement.server.config import load_config
from settlement.server.metrics import ServerMetrics
from settlement.server.runtime import RunningServer, build_server
from settlement.server.servicer import SettlementServicer
from settlement.service.app import SettlementApp

POLICIES = Path(__file__).resolve().parents[1] / "policies"


def serve_over_mtls(
    app: SettlementApp,
    directory: Path,
    *,
    environment: Mapping[str, str] | None = None,
    metrics: ServerMetrics | None = None,
    servicer: SettlementServicer | None = None,
) -> RunningServer:
    """``directory`` receives the CA (``pki.CA_CERT``) and the server's certificate; ``environment`` adds
    or overrides configuration variables."""
    pki.init_authority(directory)
    cert, key = pki.issue_server(directory, ["localhost"])
    config = load_config(
        None,
        {
            "SETTLEMENT_LISTEN": "127.0.0.1:0",
            "SETTLEMENT_POLICIES": str(POLICIES),
            "SETTLEMENT_DATA_DIR": str(directory / "data"),
            "SETTLEMENT_TLS_CERT": str(cert),
            "SETTLEMENT_TLS_KEY": str(key),
            "SETTLEMENT_TLS_CLIENT_CA": str(directory / pki.CA_CERT),
            **(environment or {}),
        },
    )
    return build_server(
        config,
        lambda server: pb_grpc.add_SettlementServiceServicer_to_server(
            servicer or SettlementServicer(app, dev_mode=False), server
        ),
        lambda: True,
        metrics=metrics,
    )
