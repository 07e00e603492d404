"""Translating FHIR R4B Claims and the engine's answers, with ``fhir.resources`` models.

Owns: reading a Claim (patient, items' productOrService code, quantity and its unit, unitPrice, net)
into a visit; ``use = claim`` settles (2207), ``use = predetermination`` quotes (2206); building the
ClaimResponse with adjudication totals (``submitted``, ``eligible``, ``deductible``, ``benefit``,
``copay`` and local codes named after the national ``setlinfo`` fields) and the OperationOutcome with
an HTTP status for refusals. Must never read JSON numbers as binary floats.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from fhir.resources.R4B.claim import Claim
from fhir.resources.R4B.claimresponse import ClaimResponse
from fhir.resources.R4B.operationoutcome import OperationOutcome
from pydantic import ValidationError

from hospital_adapters.charges import HisLine, HisVisit, Problem, Rejected, SubmissionRefused, yuan_to_fen
from hospital_adapters.config import HospitalConfig
from hospital_adapters.port import Quoted, Settled, Split
from hospital_adapters.reasons import message_zh

ADJUDICATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/adjudication"
# Local code systems: replace the host with the operator's own before going live.
LOCAL_ADJUDICATION_SYSTEM = "https://clinic-settlement.example.cn/fhir/CodeSystem/setlinfo"
REASON_SYSTEM = "https://clinic-settlement.example.cn/fhir/CodeSystem/refusal-reason"
REQUEST_ID_SYSTEM = "urn:ietf:rfc:3986"

# HTTP status and OperationOutcome issue type by reason; anything else is 422 business-rule.
_STATUS_BY_REASON: dict[str, tuple[int, str]] = {
    "INVALID_CLAIM": (400, "invalid"),
    "DECIMAL_FORMAT": (400, "invalid"),
    "INVALID_AMOUNT": (400, "invalid"),
    "INVALID_FIELD": (400, "invalid"),
    "UNSUPPORTED_MEDIA_TYPE": (415, "not-supported"),
    "MESSAGE_TOO_LARGE": (413, "too-costly"),
    "UNKNOWN_ITEM_CODE": (422, "code-invalid"),
    "AMBIGUOUS_ITEM_CODE": (422, "code-invalid"),
    "UNIT_MISMATCH": (422, "code-invalid"),
    "PERSON_NOT_FOUND": (422, "not-found"),
    "REQUEST_ID_REUSED": (409, "duplicate"),
    "UNAVAILABLE": (503, "transient"),
    "DEADLINE_EXCEEDED": (503, "timeout"),
}


@dataclass(frozen=True)
class ParsedClaim:
    claim: Claim
    visit: HisVisit
    quote_only: bool  # Claim.use = predetermination
    item_index: dict[str, int] = field(default_factory=dict)  # line id (item sequence) -> item position


def _invalid(message: str, expression: str = "Claim") -> SubmissionRefused:
    return SubmissionRefused(Problem("INVALID_CLAIM", message, None, expression))


def parse_claim(body: bytes, config: HospitalConfig) -> ParsedClaim:
    """The visit of a Claim, or ``SubmissionRefused``. JSON numbers are read as exact decimals."""
    try:
        raw = json.loads(body, parse_float=Decimal)
    except (ValueError, RecursionError):
        raise _invalid("the body is not JSON") from None
    if not isinstance(raw, dict) or raw.get("resourceType") != "Claim":
        raise _invalid("the body must be a FHIR R4B Claim resource")
    try:
        claim = Claim.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise _invalid(f"not a valid R4B Claim: {where}: {first['msg']}"[:300], f"Claim.{where}") from None
    source_id = _source_id(claim)
    use = str(claim.use)
    if use not in {"claim", "predetermination"}:
        raise SubmissionRefused(Problem("INVALID_FIELD", f"Claim.use {use!r}: send claim (settle) or "
                                        "predetermination (quote)", None, "Claim.use"))
    lines: list[HisLine] = []
    problems: list[Problem] = []
    index: dict[str, int] = {}
    code_system = config.connection.get("code_system")
    for position, item in enumerate(claim.item or []):
        line_id = str(item.sequence)
        index[line_id] = position
        try:
            lines.append(_read_item(item, line_id, code_system))
        except SubmissionRefused as refused:
            problems.extend(refused.problems)
    if not index:
        raise SubmissionRefused(Problem("EMPTY_CHARGE", "the Claim has no items", None, "Claim.item"))
    visit = HisVisit(
        hospital_id=config.hospital_id,
        source_kind="fhir",
        source_id=source_id,
        person_number=_person_number(claim),
        visit_date=_visit_date(claim),
        visit_type=config.visit_type,
        use_account=config.use_account,
        lines=tuple(lines),
        problems=tuple(problems),
    )
    return ParsedClaim(claim, visit, use == "predetermination", index)


def _source_id(claim: Claim) -> str:
    for identifier in claim.identifier or []:
        if identifier.value:
            return f"{identifier.system or ''}|{identifier.value}"
    if claim.id:
        return f"id|{claim.id}"
    raise _invalid("the Claim needs an identifier (or an id): a retry must carry the same one",
                   "Claim.identifier")


def _person_number(claim: Claim) -> str:
    patient = claim.patient
    if patient.identifier is not None and patient.identifier.value:
        return str(patient.identifier.value)
    reference = str(patient.reference or "")
    if reference.startswith("Patient/") and len(reference) > len("Patient/"):
        return reference.removeprefix("Patient/")
    raise _invalid("Claim.patient must carry the person number as identifier.value or Patient/<number>",
                   "Claim.patient")


def _visit_date(claim: Claim) -> date:
    start = claim.billablePeriod.start if claim.billablePeriod is not None else None
    # Typed as datetime, but fhir.resources gives a date for a date-only value such as "2024-05-01".
    candidates: tuple[object, ...] = (start, claim.created)
    for candidate in candidates:
        if isinstance(candidate, datetime):
            return candidate.date()
        if isinstance(candidate, date):
            return candidate
    raise _invalid("the Claim needs created or billablePeriod.start", "Claim.created")


def _read_item(item: Any, line_id: str, code_system: object) -> HisLine:
    def refuse(reason: str, what: str, message: str) -> SubmissionRefused:
        return SubmissionRefused(Problem(reason, f"item {line_id}: {message}", line_id, what))

    codings = [c for c in (item.productOrService.coding or []) if c.code]
    if code_system is not None:
        codings = [c for c in codings if c.system == code_system]
    if not codings:
        raise refuse("INVALID_FIELD", "code", f"productOrService needs a coding with system {code_system} "
                     "and the hospital's item code")
    if item.quantity is None or item.quantity.value is None:
        raise refuse("INVALID_FIELD", "quantity", "quantity.value is required")
    if item.unitPrice is None or item.unitPrice.value is None:
        raise refuse("INVALID_FIELD", "unit_price", "unitPrice.value is required")
    quantity = Decimal(item.quantity.value)
    unit_price = Decimal(item.unitPrice.value)
    for money in (item.unitPrice, item.net):
        if money is not None and money.currency not in (None, "CNY"):
            raise refuse("INVALID_FIELD", "amount", f"currency {money.currency}: amounts are in CNY")
    if quantity <= 0 or unit_price < 0:
        raise refuse("INVALID_AMOUNT", "quantity", "quantity must be positive and unitPrice not negative")
    amount_fen = None
    if item.net is not None and item.net.value is not None:
        amount_fen = yuan_to_fen(Decimal(item.net.value), what="amount", line_id=line_id)
    unit = item.quantity.code or item.quantity.unit
    return HisLine(line_id, str(codings[0].code), str(unit) if unit else None, quantity, unit_price, amount_fen)


def _fhir_date_time(value: object) -> str:
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise _invalid("the Claim needs created", "Claim.created")


def _money(fen: int) -> dict[str, object]:
    return {"value": Decimal(fen).scaleb(-2), "currency": "CNY"}


def _total(system: str, code: str, fen: int, display: str) -> dict[str, object]:
    return {"category": {"coding": [{"system": system, "code": code, "display": display}]}, "amount": _money(fen)}


def _totals(split: Split) -> list[dict[str, object]]:
    standard, local = ADJUDICATION_SYSTEM, LOCAL_ADJUDICATION_SYSTEM
    return [
        _total(standard, "submitted", split.total_fen, "医疗费总额 medfee_sumamt"),
        _total(standard, "eligible", split.in_scope_fen, "符合政策范围 inscp_scp_amt"),
        _total(standard, "deductible", split.deductible_paid_fen, "起付线 act_pay_dedc"),
        _total(standard, "benefit", split.fund_paid_fen, "统筹基金支出 fund_pay_sumamt"),
        _total(standard, "copay", split.personal_part_fen, "个人负担 psn_part_amt"),
        _total(local, "acct_pay", split.account_paid_fen, "个人账户支出"),
        _total(local, "psn_cash_pay", split.cash_fen, "个人现金支出"),
        _total(local, "fulamt_ownpay_amt", split.fully_self_paid_fen, "全自费"),
        _total(local, "overlmt_selfpay", split.over_ceiling_fen, "超限价自费"),
        _total(local, "preselfpay_amt", split.pre_self_paid_fen, "先行自付"),
        _total(local, "balc", split.balance_after_fen, "账户余额"),
    ]


def claim_response(parsed: ParsedClaim, outcome: Settled | Quoted, request_id: str) -> ClaimResponse:
    """The ClaimResponse for a settled (or quoted) Claim. ``created`` echoes the Claim's, so a retried
    Claim gets an identical answer."""
    claim = parsed.claim
    settled = isinstance(outcome, Settled)
    resource: dict[str, Any] = {
        "resourceType": "ClaimResponse",
        "identifier": [{"system": REQUEST_ID_SYSTEM, "value": f"urn:uuid:{request_id}"}],
        "status": "active",
        "type": claim.type.model_dump(mode="json", exclude_none=True),
        "use": claim.use,
        "patient": claim.patient.model_dump(mode="json", exclude_none=True),
        "created": _fhir_date_time(claim.created),
        "insurer": {"display": "基本医疗保险基金"},
        "outcome": "complete",
        "disposition": "结算成功" if settled else "预结算（未结算）",
        "total": _totals(outcome.split),
    }
    if isinstance(outcome, Settled):
        resource["id"] = outcome.settlement_id
        resource["preAuthRef"] = outcome.settlement_id
    if claim.identifier:
        resource["request"] = {"identifier": claim.identifier[0].model_dump(mode="json", exclude_none=True)}
    return ClaimResponse.model_validate(resource)


def operation_outcome(rejected: Rejected, item_index: dict[str, int]) -> tuple[int, OperationOutcome]:
    """The HTTP status and OperationOutcome for a refusal: one issue per problem."""
    status = _STATUS_BY_REASON.get(rejected.reason, (422, ""))[0]  # the first problem's status
    issues = []
    for problem in rejected.problems:
        issue_type = _STATUS_BY_REASON.get(problem.reason, (422, "business-rule"))[1]
        expression = problem.field if problem.field.startswith("Claim") else "Claim"
        if problem.line_id is not None and problem.line_id in item_index:
            expression = f"Claim.item[{item_index[problem.line_id]}]"
        issues.append({
            "severity": "error",
            "code": issue_type,
            "details": {"coding": [{"system": REASON_SYSTEM, "code": problem.reason,
                                    "display": message_zh(problem.reason)}], "text": problem.message},
            "diagnostics": problem.message,
            "expression": [expression],
        })
    return status, OperationOutcome.model_validate({"resourceType": "OperationOutcome", "issue": issues})
