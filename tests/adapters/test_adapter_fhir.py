"""The FHIR adapter driven through its real transport: an HTTP client posting Claims."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable
from typing import Any

from adapter_helpers import PERSON, PERSON_BALANCE_FEN, claim
from fhir.resources.R4B.claimresponse import ClaimResponse
from fhir.resources.R4B.operationoutcome import OperationOutcome

from hospital_adapters import FakeEngine
from hospital_adapters.fhir.adapter import FhirAdapter
from hospital_adapters.fhir.claims import ADJUDICATION_SYSTEM, LOCAL_ADJUDICATION_SYSTEM
from hospital_adapters.limits import MAX_FHIR_BODY_BYTES

Post = Callable[..., tuple[int, dict[str, Any], bytes]]
SYSTEM = "http://his.example-chc.cn/fhir/CodeSystem/charge-item"


def totals(response: dict[str, Any]) -> dict[str, str]:
    return {f"{'' if t['category']['coding'][0]['system'] == ADJUDICATION_SYSTEM else 'local:'}"
            f"{t['category']['coding'][0]['code']}": f"{t['amount']['value']:.2f}" for t in response["total"]}


def test_a_claim_is_settled_and_answered_with_adjudication_totals(post: Post, engine: FakeEngine) -> None:
    status, body, _ = post(claim())

    assert status == 200
    response = ClaimResponse.model_validate(body)
    assert response.outcome == "complete"
    assert response.id == "S00000001"
    # 10.00 consultation + one box of 60 metformin tablets at 21.00; the fake's fund pays 70 %.
    assert totals(body) == {
        "submitted": "31.00", "eligible": "31.00", "deductible": "0.00", "benefit": "21.70", "copay": "9.30",
        "local:acct_pay": "9.30", "local:psn_cash_pay": "0.00", "local:fulamt_ownpay_amt": "0.00",
        "local:overlmt_selfpay": "0.00", "local:preselfpay_amt": "0.00", "local:balc": "90.70",
    }
    assert LOCAL_ADJUDICATION_SYSTEM.startswith("https://")
    [(request, _)] = engine.settlements
    assert [(line.catalogue_code, line.quantity, line.unit_price_yuan) for line in request.lines] == [
        ("001102000010000-110200001", "1", "10"), ("XA10BAE023A001010104521", "60", "0.35")]
    assert engine.balance_fen(PERSON) == PERSON_BALANCE_FEN - 930


def test_the_same_claim_posted_twice_settles_once_and_gets_the_same_response(post: Post,
                                                                             engine: FakeEngine) -> None:
    first = post(claim("CLM-DUP"))
    second = post(claim("CLM-DUP"))

    assert first[0] == second[0] == 200
    assert first[2] == second[2]
    assert len(engine.settlements) == 1


def test_a_predetermination_is_quoted_and_settles_nothing(post: Post, engine: FakeEngine) -> None:
    status, body, _ = post(claim(use="predetermination"))

    assert status == 200
    assert body["use"] == "predetermination"
    assert "id" not in body
    assert totals(body)["submitted"] == "31.00"
    assert engine.settlements == []
    assert engine.balance_fen(PERSON) == PERSON_BALANCE_FEN


def test_unknown_codes_and_unit_mismatches_are_all_named_and_nothing_is_settled(post: Post,
                                                                                 engine: FakeEngine) -> None:
    items = [
        {"sequence": 1, "productOrService": {"coding": [{"system": SYSTEM, "code": "ZC-001"}]},
         "quantity": {"value": 1, "code": "VISIT"}, "unitPrice": {"value": 10, "currency": "CNY"}},
        {"sequence": 2, "productOrService": {"coding": [{"system": SYSTEM, "code": "LAB-XYZ"}]},
         "quantity": {"value": 1, "code": "TEST"}, "unitPrice": {"value": 5, "currency": "CNY"}},
        {"sequence": 3, "productOrService": {"coding": [{"system": SYSTEM, "code": "DRUG-AMX-250"}]},
         "quantity": {"value": 1, "code": "BOTTLE"}, "unitPrice": {"value": 25, "currency": "CNY"}},
    ]
    status, body, _ = post(claim(items=items))

    assert status == 422
    outcome = OperationOutcome.model_validate(body)
    found = {(issue.expression[0], issue.details.coding[0].code) for issue in outcome.issue}
    assert found == {("Claim.item[1]", "UNKNOWN_ITEM_CODE"), ("Claim.item[2]", "UNIT_MISMATCH")}
    assert all(issue.diagnostics for issue in outcome.issue)
    assert engine.settle_calls == 0


def test_an_unknown_patient_is_refused_with_not_found(post: Post, engine: FakeEngine) -> None:
    status, body, _ = post(claim(person="NOBODY"))

    assert status == 422
    assert body["issue"][0]["code"] == "not-found"
    assert body["issue"][0]["details"]["coding"][0]["code"] == "PERSON_NOT_FOUND"
    assert engine.settlements == []


def test_malformed_bodies_get_an_operation_outcome_with_a_client_error(post: Post, engine: FakeEngine) -> None:
    not_json = post(b"{not json")
    not_a_claim = post({"resourceType": "Patient", "id": "x"})
    invalid_claim = post({key: value for key, value in claim().items() if key != "patient"})
    float_price = claim(items=[{"sequence": 1, "productOrService": {"coding": [{"system": SYSTEM,
                                                                                 "code": "ZC-001"}]},
                                "quantity": {"value": 1, "code": "VISIT"},
                                "unitPrice": {"value": 1e-7, "currency": "CNY"}}])
    exponent = post(json.dumps(float_price).encode())

    for status, body, _ in (not_json, not_a_claim, invalid_claim):
        assert status == 400
        assert body["resourceType"] == "OperationOutcome"
        assert body["issue"][0]["details"]["coding"][0]["code"] == "INVALID_CLAIM"
    assert exponent[0] == 400  # 0.0000001 yuan a visit: more decimals than the catalogue allows
    assert exponent[1]["issue"][0]["details"]["coding"][0]["code"] == "DECIMAL_FORMAT"
    assert engine.settle_calls == 0


def test_the_http_edge_refuses_wrong_paths_and_media_types(post: Post, engine: FakeEngine) -> None:
    assert post(claim(), path="/fhir/Patient")[0] == 404
    assert post(claim(), content_type="text/plain")[0] == 415
    assert engine.settle_calls == 0


def test_an_oversized_body_is_refused_before_it_is_read(fhir_adapter: FhirAdapter, engine: FakeEngine) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", fhir_adapter.port, timeout=5)
    connection.putrequest("POST", "/fhir/Claim")
    connection.putheader("Content-Type", "application/fhir+json")
    connection.putheader("Content-Length", str(MAX_FHIR_BODY_BYTES + 1))
    connection.endheaders()  # the body is never sent: the server must answer without waiting for it
    response = connection.getresponse()
    body = json.loads(response.read())
    connection.close()

    assert response.status == 413
    assert body["issue"][0]["details"]["coding"][0]["code"] == "MESSAGE_TOO_LARGE"
    assert engine.settle_calls == 0


def test_an_unreachable_engine_is_a_transient_error_and_a_retry_settles(post: Post, engine: FakeEngine) -> None:
    engine.unavailable = True
    status, body, _ = post(claim("CLM-RETRY"))
    assert (status, body["issue"][0]["code"]) == (503, "transient")

    engine.unavailable = False
    assert post(claim("CLM-RETRY"))[0] == 200
    assert len(engine.settlements) == 1
