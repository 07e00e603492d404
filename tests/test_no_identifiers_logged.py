"""No full citizen ID or card number in what the engine logs or exposes as metrics.

The logs of the whole session are scanned by tests/identifier_scan.py (a hit fails the session); here we
check that scan itself — it finds what it must, ignores masked forms, fails a session and says where — and
scrape the real server's metrics endpoint after real settles, refusals, reads and a cancel: every label is
from a bounded set, and no identifier appears anywhere in the text.
"""

from __future__ import annotations

import sys
import textwrap
import urllib.request
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from identifier_scan import identifiers_in, scan_of
from prometheus_client.parser import text_string_to_metric_families

from settlement.storage.engine import Engines, make_engines, sqlite_url
from settlement.storage.migrate import upgrade

TESTS = Path(__file__).parent
sys.path[:0] = [str(TESTS / "grpc_api"), str(TESTS / "service")]  # the wire helpers and the seeded world

from grpc_helpers import (  # noqa: E402
    Wire,
    quote_request,
    real_server,
    refusal,
    settle_request,
    signed_proof,
    with_operator,
)
from service_world import BLOCKED, EMPLOYEE, HOSPITAL, PEOPLE, RESIDENT, seed  # noqa: E402

from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2 as pb  # noqa: E402
from settlement.errors import error_classes  # noqa: E402
from settlement.identity import with_check_character  # noqa: E402

pytest_plugins = ("pytester",)

SETTLE = "clinic.settlement.v1.SettlementService/Settle"
SERVICE_METHODS = {
    f"clinic.settlement.v1.SettlementService/{name}"
    for name in pb.DESCRIPTOR.services_by_name["SettlementService"].methods_by_name
}
# Outcomes the observing interceptor may count: every reason, OK, and what a bug or a cancel looks like.
OUTCOMES = {cls.reason for cls in error_classes()} | {"OK", "INTERNAL", "CANCELLED"}
LABEL_NAMES = {"method", "reason", "le"}  # "le": a histogram's bucket bound
SEEDED_CITIZEN_IDS = [with_check_character(f"3201021980010{n:04d}") for n in range(len(PEOPLE))]


# ---- the scan itself ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("person 330106198503120212 settled", [("citizen ID", "330106198503120212")]),
        ("holder 33010619800101123X", [("citizen ID", "33010619800101123X")]),
        ("card A33010001 blocked", [("card number", "A33010001")]),
        ("card CARD0001 refused", [("card number", "CARD0001")]),
        ("imported C00000001", [("card number", "C00000001")]),
        ("bank card 6222021234567890123", [("card number", "6222021234567890123")]),
        ("card ****0001 person **************0212", []),
        ("person 33010000000000012345 (a 20-digit person number)", []),
        ("settlement S064c00f1c208001bdf1b72, cancellation C064c00f1c208001bdf1b72", []),
        ("created_at_us=1772416800000000 amount_fen=123456789012", []),
        ("request 3f1c2a9e-7b4d-4e21-9c3a-5d6e7f809a1b hospital H32010001 terminal T-DESK-01", []),
    ],
)
def test_the_scan_finds_full_identifiers_and_leaves_masked_and_other_ids_alone(
    text: str, found: list[tuple[str, str]]
) -> None:
    assert list(identifiers_in(text)) == found


def test_a_session_whose_engine_logs_a_full_identifier_fails_and_names_the_test(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        f"""
        import sys
        sys.path.insert(0, {str(TESTS)!r})
        pytest_plugins = ("identifier_scan",)
        """
    )
    pytester.makepyfile(
        test_planted=textwrap.dedent(
            """
            import logging

            def test_logs_a_citizen_id():
                logging.getLogger("settlement.service.somewhere").info("person %s", "330106198503120212")

            def test_logs_a_card_number_in_a_traceback():
                try:
                    raise ValueError("card A33010001 not found")
                except ValueError:
                    logging.getLogger("cardio.apdu").debug("failed", exc_info=True)

            def test_logs_only_masked_forms():
                logging.getLogger("settlement.rpc").info("card ****0001 person 33010000000000012345")

            def test_output_of_other_loggers_is_not_the_engines_log():
                logging.getLogger("some.library").warning("330106198503120212")
            """
        )
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    output = result.stdout.str()
    assert "identifier scan: full citizen IDs or card numbers were logged" in output
    assert "test_planted.py::test_logs_a_citizen_id" in output
    assert "citizen ID **************0212 logged by settlement.service.somewhere (INFO)" in output
    assert "test_planted.py::test_logs_a_card_number_in_a_traceback" in output
    assert "card number *****0001 logged by cardio.apdu (DEBUG)" in output
    assert "2 hits" in output
    assert "test_logs_only_masked_forms" not in output.split("were logged")[1]
    assert "330106198503120212" not in output  # the report itself masks what it found
    assert "A33010001" not in output


# ---- metrics of the real server -------------------------------------------------------------------------


@pytest.fixture
def sqlite_engines(tmp_path: Path) -> Iterator[Engines]:
    made = make_engines(sqlite_url(tmp_path / "settlement.db"))
    upgrade(made.writer)
    seed(made)
    yield made
    made.dispose()


def a_clinic_morning(wire: Wire) -> None:
    """Settles with and without the card, refusals naming a person and a card, reads, a cancel."""
    stub = wire.stub()
    metadata = with_operator()

    def settle(request: pb.SettleRequest) -> pb.SettleResponse:
        return stub.Settle(request, metadata=metadata, timeout=10.0)

    def account(person_number: str, card_number: str = "") -> object:
        read = pb.GetAccountRequest(hospital_id=HOSPITAL, person_number=person_number, card_number=card_number)
        return stub.GetAccount(read, metadata=metadata, timeout=10.0)

    settle(settle_request())
    settle(settle_request(person_number=RESIDENT.number, card_number=RESIDENT.card))
    quote = stub.Quote(quote_request(), metadata=metadata, timeout=10.0)
    settled = settle(settle_request(card_proof=signed_proof(quote, wire.clock, counter=1))).settlement
    cancel = pb.CancelSettlementRequest(
        request_id=str(uuid.uuid4()), hospital_id=HOSPITAL, settlement_id=settled.settlement_id
    )
    stub.CancelSettlement(cancel, metadata=metadata, timeout=10.0)
    account(EMPLOYEE.number, EMPLOYEE.card)
    for refused in (
        settle_request(person_number=BLOCKED.number, card_number=BLOCKED.card),
        settle_request(person_number="330106198503120212", card_number=""),  # a citizen ID typed as the number
        settle_request(card_number="CARD9999"),
        settle_request(card_number="A33010001"),
    ):
        refusal(partial(settle, refused))
    refusal(partial(account, EMPLOYEE.number, RESIDENT.card))


def scrape(wire: Wire) -> str:
    endpoint = wire.running.metrics_endpoint
    assert endpoint is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{endpoint.port}/metrics", timeout=5) as response:
        return str(response.read().decode("utf-8"))


def test_no_metric_label_carries_a_person_or_card_identifier_after_a_real_morning(
    sqlite_engines: Engines, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    scan = scan_of(request.config)
    rpc_lines_before = scan.records_seen["settlement.rpc"]
    with real_server(sqlite_engines, tmp_path / "server", metrics_listen="127.0.0.1:0") as wire:
        a_clinic_morning(wire)
        text = scrape(wire)

    samples = [sample for family in text_string_to_metric_families(text) for sample in family.samples]
    settles_ok = [
        sample.value for sample in samples
        if sample.name == "settlement_rpcs_total" and sample.labels == {"method": SETTLE, "reason": "OK"}
    ]
    assert settles_ok == [3.0], "the morning's settles are counted"
    assert any(s.name == "settlement_db_commit_batch_size_count" and s.value > 0 for s in samples)
    assert {name for s in samples for name in s.labels} <= LABEL_NAMES
    assert {s.labels["method"] for s in samples if "method" in s.labels} <= SERVICE_METHODS
    assert {s.labels["reason"] for s in samples if "reason" in s.labels} <= OUTCOMES
    assert list(identifiers_in(text)) == []
    identifiers = [p.number for p in PEOPLE] + [p.card for p in PEOPLE] + SEEDED_CITIZEN_IDS
    identifiers += ["330106198503120212", "CARD9999", "A33010001"]
    for value in identifiers:
        assert value not in text

    assert scan.records_seen["settlement.rpc"] > rpc_lines_before, "the session's log scan saw this morning"
    assert [hit for hit in scan.hits if hit.test == request.node.nodeid] == []
