"""Every refusal a terminal can cause, produced by a real request over mTLS against the real service on a
seeded database, and checked against docs/errors.md's reason table: the status code, exactly one
ErrorInfo (reason, domain, the metadata the table tells the caller to read), the zh-CN LocalizedMessage,
and what the refusal left in the database (nothing; or, for a refusal that depends on stored state, only
the idempotency record and its audit row, so a retry repeats it).

One case per reason, named as a sentence. Reasons no terminal can cause are listed below with where they
come from; a test fails when a reason is neither covered here nor listed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_helpers import (
    Stub,
    Wire,
    charge_lines,
    details,
    documented_reasons,
    quote_request,
    real_server,
    recorded_refusal,
    refusal,
    row_counts,
    settle_request,
    settled_request_ids,
    signed_proof,
    with_operator,
)
from service_world import (
    BLOCKED,
    DESK,
    EMPLOYEE,
    HOSPITAL,
    OTHER_HOSPITAL,
    PEOPLE,
    RESIDENT,
    TODAY,
    seed,
)

from settlement.api.gen.clinic.settlement.v1 import charge_pb2
from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2 as pb
from settlement.errors import ERROR_DOMAIN, error_classes
from settlement.limits import MAX_LINES_PER_CHARGE, MIN_COMMIT_BUDGET_MS, QUOTE_VALIDITY_SECONDS
from settlement.service.daily_close import close_day
from settlement.storage.engine import Engines
from settlement.storage.repository import Repository

DOCUMENTED = documented_reasons()
CLASSES = {cls.reason: cls for cls in error_classes()}
TIMEOUT = 10.0
LOST_CARD = "CARD0005"
UNKNOWN_CARD = "CARD9999"
FULL_CARD_NUMBERS = (*(person.card for person in PEOPLE), LOST_CARD, UNKNOWN_CARD)
UNKNOWN_HOSPITAL = "H99999999"
UNREGISTERED_TERMINAL = "T-NOT-REGISTERED"
WRITER_BUSY_SECONDS = 1.0
SHORT_DEADLINE_SECONDS = 0.05
# Below the budget the server keeps for a commit, so it refuses at once, while the caller still listens.
TOO_SHORT_FOR_A_COMMIT_SECONDS = MIN_COMMIT_BUDGET_MS * 0.95 / 1000
# These run on SQLite only: PostgreSQL would add time and nothing else, no database being asked.
REFUSED_FROM_THE_REQUEST_ALONE = frozenset({
    "DECIMAL_FORMAT", "INVALID_AMOUNT", "INVALID_FIELD", "EMPTY_CHARGE", "TOO_MANY_LINES",
    "INVALID_REQUEST_ID", "OTHER_HOSPITAL", "UNAUTHENTICATED",
})


class Written(Enum):
    NOTHING = "nothing at all"
    REFUSAL_RECORD = "only the request's refusal record and its audit row"


@dataclass
class Attempt:
    """The refused call, the exact ErrorInfo metadata it must carry, and where its refusal is recorded."""

    call: Callable[[], object]
    metadata: Mapping[str, str]
    request_id: str = ""
    hospital_id: str = HOSPITAL
    afterwards: Callable[[], None] | None = None  # before looking at the database; default: the writer is idle


@dataclass(frozen=True)
class Case:
    reason: str
    says: str
    arrange: Callable[[Wire], Attempt]
    written: Written
    card_proof_required: bool = False

    @property
    def decided_by_the_store(self) -> bool:
        """False when the request alone is refused, before the store or the writer is asked."""
        return self.reason not in REFUSED_FROM_THE_REQUEST_ALONE


# ---- the calls ----------------------------------------------------------------------------------------


def _settle(stub: Stub, request: pb.SettleRequest, *, operator: bool = True, timeout: float = TIMEOUT) -> object:
    return stub.Settle(request, metadata=with_operator() if operator else (), timeout=timeout)


def _settled(stub: Stub, request: pb.SettleRequest | None = None) -> pb.SettleResponse:
    return stub.Settle(request or settle_request(), metadata=with_operator(), timeout=TIMEOUT)


def _refused_settle(wire: Wire, metadata: Mapping[str, str], **fields: object) -> Attempt:
    stub = wire.stub()
    request = settle_request(**fields)
    return Attempt(lambda: _settle(stub, request), metadata, request_id=request.request_id)


def _quoted(stub: Stub, **fields: object) -> pb.QuoteResponse:
    return stub.Quote(quote_request(**fields), metadata=with_operator(), timeout=TIMEOUT)


def _cancel_request(settlement_id: str) -> pb.CancelSettlementRequest:
    return pb.CancelSettlementRequest(request_id=str(uuid.uuid4()), hospital_id=HOSPITAL, settlement_id=settlement_id)


def _line(line: charge_pb2.ChargeLine, **changes: object) -> charge_pb2.ChargeLine:
    changed = charge_pb2.ChargeLine()
    changed.CopyFrom(line)
    for name, value in changes.items():
        setattr(changed, name, value)
    return changed


# ---- invalid input: refused before anything is read, nothing written ---------------------------------


def price_with_seven_decimals(wire: Wire) -> Attempt:
    first, second = charge_lines()
    bad = [first, _line(second, unit_price_yuan="35.1234567")]
    return _refused_settle(wire, {"field": "lines[1].unit_price_yuan"}, lines=bad)


def negative_amount(wire: Wire) -> Attempt:
    first, second = charge_lines()
    bad = [_line(first, amount_fen=-1), second]
    return _refused_settle(wire, {"field": "lines[0].amount_fen"}, lines=bad)


def unspecified_visit_type(wire: Wire) -> Attempt:
    return _refused_settle(wire, {"field": "visit_type"}, visit_type=charge_pb2.VISIT_TYPE_UNSPECIFIED)


def no_lines(wire: Wire) -> Attempt:
    return _refused_settle(wire, {"field": "lines"}, lines=[])


def too_many_lines(wire: Wire) -> Attempt:
    template = charge_lines()[0]
    lines = [_line(template, hospital_line_id=f"F{n}") for n in range(MAX_LINES_PER_CHARGE + 1)]
    return _refused_settle(wire, {"field": "lines", "limit": str(MAX_LINES_PER_CHARGE)}, lines=lines)


def item_code_not_in_catalogue(wire: Wire) -> Attempt:
    first, second = charge_lines()
    bad = [first, _line(second, item_code="XX9999")]
    return _refused_settle(wire, {"field": "lines[1].item_code", "item_code": "XX9999"}, lines=bad)


def request_id_not_a_uuid(wire: Wire) -> Attempt:
    return _refused_settle(wire, {"field": "request_id"}, request_id="visit-42")


# ---- state refusals: recorded with the request so a retry repeats them ---------------------------------


def unknown_person(wire: Wire) -> Attempt:
    return _refused_settle(wire, {"person_number": "P9999"}, person_number="P9999", card_number="")


def unknown_card(wire: Wire) -> Attempt:
    return _refused_settle(wire, {"card": "****9999"}, card_number=UNKNOWN_CARD)


def unknown_hospital(wire: Wire) -> Attempt:
    stub = wire.stub(UNKNOWN_HOSPITAL, "T-GHOST-01")
    request = settle_request(hospital_id=UNKNOWN_HOSPITAL)
    return Attempt(
        lambda: _settle(stub, request),
        {"hospital_id": UNKNOWN_HOSPITAL},
        request_id=request.request_id,
        hospital_id=UNKNOWN_HOSPITAL,
    )


def unregistered_terminal(wire: Wire) -> Attempt:
    stub = wire.stub(HOSPITAL, UNREGISTERED_TERMINAL)
    request = settle_request()
    return Attempt(lambda: _settle(stub, request), {"terminal_id": UNREGISTERED_TERMINAL}, request.request_id)


def reversal_of_a_request_never_settled(wire: Wire) -> Attempt:
    stub = wire.stub()
    never_settled = str(uuid.uuid4())
    request = pb.CancelSettlementRequest(
        request_id=str(uuid.uuid4()), hospital_id=HOSPITAL, original_request_id=never_settled
    )
    return Attempt(
        lambda: stub.CancelSettlement(request, metadata=with_operator(), timeout=TIMEOUT),
        {"original_request_id": never_settled},
        request_id=request.request_id,
    )


def card_proof_of_an_unknown_quote(wire: Wire) -> Attempt:
    proof = charge_pb2.CardProof(
        card_number=EMPLOYEE.card, transaction_counter=1, cryptogram=bytes(8), quote_id="Q-NEVER-ISSUED"
    )
    return _refused_settle(wire, {"quote_id": "Q-NEVER-ISSUED"}, card_proof=proof)


def visit_date_without_policy(wire: Wire) -> Attempt:
    return _refused_settle(wire, {"region": EMPLOYEE.region, "date": "2000-01-03"}, visit_date="2000-01-03")


def second_cancellation(wire: Wire) -> Attempt:
    stub = wire.stub()
    settled = _settled(stub).settlement
    first = stub.CancelSettlement(_cancel_request(settled.settlement_id), metadata=with_operator(), timeout=TIMEOUT)
    again = _cancel_request(settled.settlement_id)
    return Attempt(
        lambda: stub.CancelSettlement(again, metadata=with_operator(), timeout=TIMEOUT),
        {"settlement_id": settled.settlement_id, "cancelled_by": first.cancellation.settlement_id},
        request_id=again.request_id,
    )


def blocked_card(wire: Wire) -> Attempt:
    return _refused_settle(wire, {"card": "****0004"}, person_number=BLOCKED.number, card_number=BLOCKED.card)


def lost_card(wire: Wire) -> Attempt:
    with wire.engines.writer.begin() as connection:
        repo = Repository(connection)
        repo.insert_card(card_number=LOST_CARD, person_number=EMPLOYEE.number, status="lost", key_reference="issuer-1")
        repo.flush()
    return _refused_settle(wire, {"card": "****0005"}, card_number=LOST_CARD)


def refund_of_a_line_not_in_the_settlement(wire: Wire) -> Attempt:
    stub = wire.stub()
    settled = _settled(stub).settlement
    request = pb.RefundLinesRequest(
        request_id=str(uuid.uuid4()), hospital_id=HOSPITAL, settlement_id=settled.settlement_id,
        hospital_line_ids=["F9"],
    )
    return Attempt(
        lambda: stub.RefundLines(request, metadata=with_operator(), timeout=TIMEOUT),
        {"hospital_line_id": "F9", "settlement_id": settled.settlement_id},
        request_id=request.request_id,
    )


def settle_on_a_closed_day(wire: Wire) -> Attempt:
    assert close_day(wire.engines, HOSPITAL, TODAY, "finance/test", clock=wire.clock).closed
    return _refused_settle(wire, {"date": TODAY.isoformat()})


def card_of_another_person(wire: Wire) -> Attempt:
    return _refused_settle(wire, {"card": "****0002"}, card_number=RESIDENT.card)


def insured_type_other_than_enrolled(wire: Wire) -> Attempt:
    return _refused_settle(
        wire, {"field": "insured_type", "enrolled": "employee"}, insured_type=charge_pb2.INSURED_TYPE_RESIDENT
    )


def desk_settle_without_card_proof(wire: Wire) -> Attempt:
    return _refused_settle(wire, {"hospital_id": HOSPITAL})


def cryptogram_that_does_not_verify(wire: Wire) -> Attempt:
    quote = _quoted(wire.stub())
    proof = signed_proof(quote, wire.clock, counter=1)
    proof.cryptogram = bytes(8)
    return _refused_settle(wire, {"quote_id": quote.quote_id}, card_proof=proof)


def settle_one_fen_above_the_signed_quote(wire: Wire) -> Attempt:
    quote = _quoted(wire.stub())
    proof = signed_proof(quote, wire.clock, counter=1)
    first, second = charge_lines()
    one_fen_more = [_line(first, unit_price_yuan="20.01"), second]
    metadata = {
        "quote_id": quote.quote_id,
        "quoted_fen": str(quote.split.total_fen),
        "total_fen": str(quote.split.total_fen + 1),
    }
    return _refused_settle(wire, metadata, card_proof=proof, lines=one_fen_more)


def quote_older_than_its_validity(wire: Wire) -> Attempt:
    quote = _quoted(wire.stub())
    proof = signed_proof(quote, wire.clock, counter=1)
    wire.clock.advance(QUOTE_VALIDITY_SECONDS + 1)
    return _refused_settle(wire, {"quote_id": quote.quote_id}, card_proof=proof)


def quote_spent_by_an_earlier_settle(wire: Wire) -> Attempt:
    stub = wire.stub()
    quote = _quoted(stub)
    proof = signed_proof(quote, wire.clock, counter=1)
    _settled(stub, settle_request(card_proof=proof))
    return _refused_settle(wire, {"quote_id": quote.quote_id}, card_proof=proof)


def card_counter_that_did_not_grow(wire: Wire) -> Attempt:
    stub = wire.stub()
    _settled(stub, settle_request(card_proof=signed_proof(_quoted(stub), wire.clock, counter=5)))
    replayed = signed_proof(_quoted(stub), wire.clock, counter=5)
    return _refused_settle(wire, {"counter": "5", "last_counter": "5"}, card_proof=replayed)


# ---- refused before the service: nothing written --------------------------------------------------------


def request_id_reused_for_another_charge(wire: Wire) -> Attempt:
    stub = wire.stub()
    first = settle_request()
    _settled(stub, first)
    first_line, second_line = charge_lines()
    changed = settle_request(request_id=first.request_id, lines=[first_line, _line(second_line, quantity="3")])
    return Attempt(
        lambda: _settle(stub, changed), {"request_id": first.request_id, "operation": "settle"}, first.request_id
    )


def request_for_another_hospital(wire: Wire) -> Attempt:
    return _refused_settle(wire, {"field": "hospital_id", "hospital_id": OTHER_HOSPITAL}, hospital_id=OTHER_HOSPITAL)


def request_without_operator(wire: Wire) -> Attempt:
    stub = wire.stub()
    request = settle_request()
    return Attempt(lambda: _settle(stub, request, operator=False), {"metadata": "operator-id"}, request.request_id)


def engine_shutting_down(wire: Wire) -> Attempt:
    wire.app.writer.stop()  # what a drain does after the listener stopped; here the listener still answers
    attempt = _refused_settle(wire, {})
    attempt.afterwards = lambda: None  # the writer is gone: nothing can be queued
    return attempt


def deadline_too_short_for_a_commit(wire: Wire) -> Attempt:
    stub = wire.stub()
    warm = pb.GetAccountRequest(hospital_id=HOSPITAL, person_number=EMPLOYEE.number)
    stub.GetAccount(warm, metadata=with_operator(), timeout=TIMEOUT)  # the TLS handshake is not this call's
    request = settle_request()
    return Attempt(
        lambda: _settle(stub, request, timeout=TOO_SHORT_FOR_A_COMMIT_SECONDS),
        {"min_budget_ms": str(MIN_COMMIT_BUDGET_MS)},
        request.request_id,
    )


CASES: tuple[Case, ...] = (
    Case("DECIMAL_FORMAT", "a unit price with seven decimal places names the price field",
         price_with_seven_decimals, Written.NOTHING),
    Case("INVALID_AMOUNT", "a negative amount_fen names the line's amount", negative_amount, Written.NOTHING),
    Case("INVALID_FIELD", "an unspecified visit type names visit_type", unspecified_visit_type, Written.NOTHING),
    Case("EMPTY_CHARGE", "a charge without lines names lines", no_lines, Written.NOTHING),
    Case("TOO_MANY_LINES", "a charge of 501 lines names lines and the limit", too_many_lines, Written.NOTHING),
    Case("UNKNOWN_ITEM_CODE", "an item code outside the catalogue names the line and the code",
         item_code_not_in_catalogue, Written.NOTHING),
    Case("INVALID_REQUEST_ID", "a request_id that is not a UUID names request_id", request_id_not_a_uuid,
         Written.NOTHING),
    Case("PERSON_NOT_FOUND", "an unknown person number is named", unknown_person, Written.REFUSAL_RECORD),
    Case("CARD_NOT_FOUND", "an unregistered card is named masked", unknown_card, Written.REFUSAL_RECORD),
    Case("HOSPITAL_NOT_FOUND", "a certified terminal of an unregistered hospital is told so", unknown_hospital,
         Written.REFUSAL_RECORD),
    Case("PERMISSION_DENIED", "a certified terminal the hospital never registered is refused",
         unregistered_terminal, Written.REFUSAL_RECORD),
    Case("SETTLEMENT_NOT_FOUND", "a 2601 reversal of a request_id that settled nothing names it",
         reversal_of_a_request_never_settled, Written.REFUSAL_RECORD),
    Case("QUOTE_NOT_FOUND", "a card proof naming a quote never issued names the quote",
         card_proof_of_an_unknown_quote, Written.REFUSAL_RECORD),
    Case("NO_POLICY_IN_FORCE", "a visit date no policy covers names the region and date",
         visit_date_without_policy, Written.REFUSAL_RECORD),
    Case("ALREADY_CANCELLED", "cancelling a cancelled settlement names its cancellation", second_cancellation,
         Written.REFUSAL_RECORD),
    Case("CARD_BLOCKED", "a blocked card is refused", blocked_card, Written.REFUSAL_RECORD),
    Case("CARD_LOST", "a card reported lost is refused", lost_card, Written.REFUSAL_RECORD),
    Case("LINE_NOT_IN_SETTLEMENT", "refunding a line the settlement does not have names the line",
         refund_of_a_line_not_in_the_settlement, Written.REFUSAL_RECORD),
    Case("DAY_ALREADY_CLOSED", "a settle on a closed day names the date", settle_on_a_closed_day,
         Written.REFUSAL_RECORD),
    Case("CARD_NOT_OF_PERSON", "another person's card is refused", card_of_another_person, Written.REFUSAL_RECORD),
    Case("INSURED_TYPE_MISMATCH", "an insured type other than the enrolled one names both",
         insured_type_other_than_enrolled, Written.REFUSAL_RECORD),
    Case("CARD_PROOF_REQUIRED", "a desk settle without a card proof where the hospital requires one",
         desk_settle_without_card_proof, Written.REFUSAL_RECORD, card_proof_required=True),
    Case("CRYPTOGRAM_INVALID", "a cryptogram that does not verify is refused", cryptogram_that_does_not_verify,
         Written.REFUSAL_RECORD),
    Case("AMOUNT_DIFFERS_FROM_QUOTE", "a settle one fen above what the card signed names both totals",
         settle_one_fen_above_the_signed_quote, Written.REFUSAL_RECORD),
    Case("QUOTE_EXPIRED", "a quote older than its validity is refused", quote_older_than_its_validity,
         Written.REFUSAL_RECORD),
    Case("QUOTE_ALREADY_USED", "a quote an earlier settle spent is refused", quote_spent_by_an_earlier_settle,
         Written.REFUSAL_RECORD),
    Case("COUNTER_NOT_INCREASED", "a card counter that did not grow is refused", card_counter_that_did_not_grow,
         Written.REFUSAL_RECORD),
    Case("REQUEST_ID_REUSED", "a request_id reused for another charge names it",
         request_id_reused_for_another_charge, Written.NOTHING),
    Case("OTHER_HOSPITAL", "a request for another hospital names hospital_id", request_for_another_hospital,
         Written.NOTHING),
    Case("UNAUTHENTICATED", "a call without operator-id names the metadata", request_without_operator,
         Written.NOTHING),
    Case("UNAVAILABLE", "a settle while the engine shuts down is told to retry", engine_shutting_down,
         Written.NOTHING),
    Case("DEADLINE_EXCEEDED", "a deadline shorter than a commit needs names the budget",
         deadline_too_short_for_a_commit, Written.NOTHING),
)

# Reasons no request of a terminal can produce, and where each comes from instead.
NOT_ON_THE_WIRE: dict[str, str] = {
    "UNKNOWN": "SettlementError itself: only SettlementError.from_record's fallback for a stored refusal whose "
    "reason this code no longer knows (settlement/errors.py)",
    "INVALID_ARGUMENT": "InvalidInput: a base class, never raised itself; its subclasses are covered above",
    "NOT_FOUND": "NotFound: a base class, never raised itself; its subclasses are covered above",
    "FAILED_PRECONDITION": "RefusedByState itself: the annual funding and rollover jobs of the CLI "
    "(settlement/service/annual.py)",
    "UNKNOWN_CATEGORY": "a policy catalogue or import row with a class other than A/B/C, when files are loaded "
    "(settlement/domain/charge.py)",
    "INVALID_IMPORT_FILE": "`settlement enrol import` and the reconciliation inputs "
    "(settlement/service/enrolment.py, settlement/reconciliation/input_files.py)",
    "DATABASE_NOT_MIGRATED": "settlement/storage/migrate.py require_current: the server refuses to start on an "
    "old schema, and readiness keeps health NOT_SERVING, so no call reaches a handler",
}


def _on_each_store(cases: tuple[Case, ...]) -> list[Any]:
    params = []
    for case in cases:
        sentence = f"{case.reason} when {case.says}"
        params.append(pytest.param(case, "sqlite", id=f"sqlite-{sentence}"))
        if case.decided_by_the_store:
            params.append(pytest.param(case, "postgres", id=f"postgres-{sentence}", marks=pytest.mark.postgres))
    return params


@pytest.mark.parametrize(("case", "database_url"), _on_each_store(CASES), indirect=["database_url"])
def test_a_refusal_a_terminal_causes_arrives_as_the_reason_table_says(
    case: Case, engines: Engines, tmp_path: Path
) -> None:
    seed(engines, card_proof_required=case.card_proof_required)
    with real_server(engines, tmp_path) as wire:
        attempt = case.arrange(wire)
        before = row_counts(engines)
        error = refusal(attempt.call)
        (attempt.afterwards or wire.writes_settled)()
        after = row_counts(engines)

    documented = DOCUMENTED[case.reason]
    assert error.code().name == documented.status
    found = details(error)
    assert len(found.error_infos) == 1, f"exactly one ErrorInfo, got {found.error_infos}"
    info = found.error_infos[0]
    assert (info.reason, info.domain) == (case.reason, ERROR_DOMAIN)
    assert dict(info.metadata) == dict(attempt.metadata)
    assert documented.metadata_keys <= set(info.metadata), "the table tells the caller to read these keys"
    assert [(shown.locale, shown.message) for shown in found.localized] == [("zh-CN", documented.message_zh)]
    assert documented.message_zh == CLASSES[case.reason].message_zh
    assert found.others == []
    english = error.details()
    assert english
    for card_number in FULL_CARD_NUMBERS:
        assert card_number not in english
        assert card_number not in info.metadata.values()

    changed = {name: after[name] - before[name] for name in after if after[name] != before[name]}
    if case.written is Written.NOTHING:
        assert changed == {}, f"a refused request wrote {changed}"
        if attempt.request_id and case.reason != "REQUEST_ID_REUSED":
            assert recorded_refusal(engines, attempt.hospital_id, attempt.request_id) is None
    else:
        assert changed == {"requests": 1, "audit_log": 1}, f"expected {case.written.value}, got {changed}"
        stored = recorded_refusal(engines, attempt.hospital_id, attempt.request_id)
        assert stored is not None
        assert json.loads(stored)["reason"] == case.reason


def test_every_reason_is_either_produced_on_the_wire_or_listed_with_where_it_comes_from() -> None:
    covered = [case.reason for case in CASES]
    assert len(covered) == len(set(covered)), "a reason has two wire cases"
    assert not set(covered) & set(NOT_ON_THE_WIRE), "a reason is both covered and listed as unreachable"
    assert set(covered) | set(NOT_ON_THE_WIRE) == set(CLASSES), (
        "a new reason needs a wire case in CASES, or a line in NOT_ON_THE_WIRE saying where it is produced"
    )
    assert set(DOCUMENTED) == set(CLASSES)


def test_a_settle_whose_deadline_passes_before_its_commit_is_never_written_and_its_retry_settles_once(
    engines: Engines, tmp_path: Path
) -> None:
    seed(engines)
    with real_server(engines, tmp_path) as wire:
        stub = wire.stub()
        wire.hold_commits(WRITER_BUSY_SECONDS)
        request = settle_request()
        error = refusal(lambda: _settle(stub, request, timeout=SHORT_DEADLINE_SECONDS))
        assert error.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        wire.writes_settled()
        assert request.request_id not in settled_request_ids(engines)
        assert recorded_refusal(engines, HOSPITAL, request.request_id) is None  # a retry is not refused
        retried = _settled(stub, request).settlement
        again = _settled(stub, request).settlement
    assert retried == again
    assert retried.terminal_id == DESK.terminal_id
    assert settled_request_ids(engines).count(request.request_id) == 1
