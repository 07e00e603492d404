"""The FHIR adapter against the real engine: an HTTP client posts Claims, the endpoint settles them through
the gRPC server, and the ClaimResponse is checked against what the engine stored."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from e2e_helpers import FHIR_HOSPITAL, PERSON, Engine, Inspector

from hospital_adapters.fhir.adapter import FhirAdapter
from hospital_adapters.samples import FHIR_SAMPLE_CLAIM
from settlement.api.gen.clinic.settlement.v1 import settlement_pb2

Post = Callable[[dict[str, Any]], tuple[int, dict[str, Any], bytes]]


@pytest.fixture
def post(fhir_adapter: FhirAdapter) -> Post:
    def send(claim: dict[str, Any]) -> tuple[int, dict[str, Any], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", fhir_adapter.port, timeout=10)
        try:
            connection.request("POST", "/fhir/Claim", body=json.dumps(claim).encode(),
                               headers={"Content-Type": "application/fhir+json"})
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        return response.status, json.loads(raw, parse_float=Decimal), raw

    return send


@pytest.fixture
def inspector(engine: Engine) -> Inspector:
    return engine.inspector(FHIR_HOSPITAL)


def sample_claim(identifier: str = "CLM-20260302-0001") -> dict[str, Any]:
    claim: dict[str, Any] = json.loads(FHIR_SAMPLE_CLAIM.read_text(encoding="utf-8"))
    claim["identifier"][0]["value"] = identifier
    return claim


def totals_fen(response: dict[str, Any]) -> dict[str, int]:
    """Each total's code and amount in fen (amounts are exact decimals in yuan)."""
    found = {}
    for total in response["total"]:
        [coding] = total["category"]["coding"]
        assert total["amount"]["currency"] == "CNY"
        found[coding["code"]] = int(Decimal(total["amount"]["value"]) * 100)
    return found


def request_id_of(response: dict[str, Any]) -> str:
    [identifier] = response["identifier"]
    return str(identifier["value"]).removeprefix("urn:uuid:")


def test_the_sample_claim_settles_and_the_claim_response_totals_are_the_stored_settlement(
        post: Post, inspector: Inspector, engine: Engine) -> None:
    balance_before_fen = inspector.balance_fen(PERSON)

    status, response, _ = post(sample_claim())

    assert status == 200
    assert response["resourceType"] == "ClaimResponse"
    stored = inspector.settlement(request_id_of(response))
    assert stored is not None
    assert stored.status == settlement_pb2.SETTLEMENT_STATUS_SETTLED
    assert response["id"] == response["preAuthRef"] == stored.settlement_id
    split = stored.split
    assert totals_fen(response) == {
        "submitted": split.total_fen,
        "eligible": split.in_scope_fen,
        "deductible": split.deductible_paid_fen,
        "benefit": split.fund_paid_fen,
        "copay": split.personal_part_fen,
        "acct_pay": split.account_paid_fen,
        "psn_cash_pay": split.cash_fen,
        "fulamt_ownpay_amt": split.fully_self_paid_fen,
        "overlmt_selfpay": split.over_ceiling_fen,
        "preselfpay_amt": split.pre_self_paid_fen,
        "balc": split.balance_after_fen,
    }
    assert split.total_fen == 3100
    assert [(line.hospital_line_id, line.item_code, line.quantity, line.unit_price_yuan) for line in split.lines] == [
        ("1", "001102000010000-110200001", "1", "10"),
        ("2", "XA10BAE023A001010104521", "60", "0.35"),  # a box of 60 tablets at 21.00
    ]
    assert (stored.terminal_id, stored.person_number) == ("H33010800045-FHIR", PERSON)
    assert inspector.balance_fen(PERSON) == balance_before_fen - split.account_paid_fen
    assert engine.settlement_rows() == 1


def test_the_same_claim_posted_twice_settles_once_and_gets_the_same_response(
        post: Post, inspector: Inspector, engine: Engine) -> None:
    first = post(sample_claim("CLM-RETRY"))
    second = post(sample_claim("CLM-RETRY"))

    assert first[0] == second[0] == 200
    assert second[2] == first[2]
    assert [s.settlement_id for s in inspector.settlements()] == [first[1]["id"]]
    assert engine.settlement_rows() == 1


def test_an_unknown_code_gets_an_operation_outcome_naming_the_item_and_nothing_is_settled(
        post: Post, inspector: Inspector, engine: Engine) -> None:
    claim = sample_claim("CLM-UNKNOWN")
    claim["item"][1]["productOrService"]["coding"][0]["code"] = "LAB-XYZ"

    status, outcome, _ = post(claim)

    assert status == 422
    assert outcome["resourceType"] == "OperationOutcome"
    [issue] = outcome["issue"]
    assert issue["code"] == "code-invalid"
    assert issue["details"]["coding"][0]["code"] == "UNKNOWN_ITEM_CODE"
    assert issue["expression"] == ["Claim.item[1]"]
    assert "LAB-XYZ" in issue["diagnostics"]
    assert inspector.settlements() == []
    assert engine.settlement_rows() == 0


def test_an_unknown_patient_is_refused_by_the_engine_with_an_operation_outcome(
        post: Post, engine: Engine) -> None:
    claim = sample_claim("CLM-WHO")
    claim["patient"]["identifier"]["value"] = "33019999999999999999"

    status, outcome, _ = post(claim)

    assert status == 422
    [issue] = outcome["issue"]
    assert (issue["code"], issue["details"]["coding"][0]["code"]) == ("not-found", "PERSON_NOT_FOUND")
    assert engine.settlement_rows() == 0


def test_a_predetermination_quotes_the_split_and_settles_nothing(
        post: Post, inspector: Inspector, engine: Engine) -> None:
    claim = sample_claim("CLM-QUOTE")
    claim["use"] = "predetermination"
    balance_before_fen = inspector.balance_fen(PERSON)

    status, response, _ = post(claim)

    assert status == 200
    assert "id" not in response
    totals = totals_fen(response)
    assert totals["submitted"] == 3100
    assert totals["balc"] == balance_before_fen - totals["acct_pay"]
    assert inspector.balance_fen(PERSON) == balance_before_fen
    assert engine.settlement_rows() == 0
