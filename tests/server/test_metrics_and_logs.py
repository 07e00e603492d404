"""The metrics endpoint exposes every series operators need, and neither it nor the per-RPC log line
carries a person number, citizen ID or card number."""

from __future__ import annotations

import logging
import re
import urllib.request

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families
from server_fakes import CARD_NUMBER, CITIZEN_ID, OPERATOR, PkiFiles, ServeFactory, mtls_channel, settle_request

from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2_grpc

SERIES = (
    "settlement_settle_duration_seconds_bucket",
    "settlement_rpc_duration_seconds_bucket",
    "settlement_rpcs_total",
    "settlement_rpcs_in_flight",
    "settlement_db_commit_duration_seconds_bucket",
    "settlement_db_commit_batch_size_bucket",
)
SETTLE = "clinic.settlement.v1.SettlementService/Settle"
IDENTIFIER_LIKE = re.compile(r"[0-9]{15,19}|[0-9]{17}X")


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode("utf-8"))


def test_the_metrics_endpoint_exposes_the_series_without_identifiers(
    serve: ServeFactory, test_pki: PkiFiles, caplog: pytest.LogCaptureFixture
) -> None:
    served = serve(metrics_listen="127.0.0.1:0")
    assert served.running.metrics_endpoint is not None
    served.running.metrics.observe_commit(0.004, 12)
    with caplog.at_level(logging.INFO), mtls_channel(served.port, test_pki.ca_pem, test_pki.terminal) as channel:
        stub = settlement_service_pb2_grpc.SettlementServiceStub(channel)
        metadata = [("operator-id", OPERATOR)]
        stub.Settle(settle_request(CITIZEN_ID, card_number=CARD_NUMBER), timeout=5, metadata=metadata)
        for person_number in ("P-NOT-FOUND", "P-BUG"):
            with pytest.raises(grpc.RpcError):
                stub.Settle(settle_request(person_number, card_number=CARD_NUMBER), timeout=5, metadata=metadata)
    text = scrape(served.running.metrics_endpoint.port)

    for series in SERIES:
        assert series in text
    assert f'settlement_rpcs_total{{method="{SETTLE}",reason="OK"}} 1.0' in text
    assert f'settlement_rpcs_total{{method="{SETTLE}",reason="PERSON_NOT_FOUND"}} 1.0' in text
    assert f'settlement_rpcs_total{{method="{SETTLE}",reason="INTERNAL"}} 1.0' in text
    assert "settlement_settle_duration_seconds_count 3.0" in text
    assert "settlement_rpcs_in_flight 0.0" in text
    assert "settlement_db_commit_batch_size_sum 12.0" in text
    labels = [value for family in text_string_to_metric_families(text) for sample in family.samples
              for value in sample.labels.values()]
    assert labels
    assert [value for value in labels if IDENTIFIER_LIKE.search(value)] == []
    assert CITIZEN_ID not in text
    assert CARD_NUMBER not in text

    access = [record.getMessage() for record in caplog.records if record.name == "settlement.rpc"]
    assert len(access) == 3  # one line per RPC
    assert access[0].startswith(f"rpc method={SETTLE} outcome=OK duration_ms=")
    assert access[0].endswith(f"hospital=H001 terminal=T01 operator=*{OPERATOR[-4:]}")
    everything_logged = "\n".join(record.getMessage() for record in caplog.records)
    assert CARD_NUMBER not in everything_logged
    assert CITIZEN_ID not in everything_logged.replace(f"person {CITIZEN_ID}", "")  # only the bug's own text


def test_the_server_registry_is_its_own(serve: ServeFactory) -> None:
    first, second = serve(), serve()
    assert first.running.metrics.registry is not second.running.metrics.registry
