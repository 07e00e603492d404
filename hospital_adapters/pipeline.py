"""The one pipeline every transport uses to settle a visit.

Owns: netting of credit lines (HL7 ``CD``) against charges of the same submission, and ``settle_visit``:
net, map codes, build the canonical request, call the engine, point a refusal back at the hospital's
line. Must never parse a wire format, and never call the engine when a single line is wrong.
"""

from __future__ import annotations

import re
from dataclasses import replace

from hospital_adapters.charges import HisLine, HisVisit, Problem, Rejected, VisitResult
from hospital_adapters.mapping import CodeTable
from hospital_adapters.port import CanonicalSettleRequest, EnginePort, EngineUnavailable, Quoted, Refusal
from settlement import limits

_LINE_FIELD = re.compile(r"lines\[(\d+)\]")


def net_credits(lines: tuple[HisLine, ...]) -> tuple[tuple[HisLine, ...], tuple[Problem, ...]]:
    """Apply each credit line to the first charge line of the same code, unit and price that covers it.

    A credit that no charge in this submission covers is refused: refunds of an earlier settlement go
    through cancel (撤销), never through a negative line.
    """
    remaining = [line for line in lines if not line.credit]
    problems: list[Problem] = []
    for credit in (line for line in lines if line.credit):
        for index, charge in enumerate(remaining):
            same_item = (charge.hospital_code, charge.hospital_unit, charge.unit_price_yuan) == (
                credit.hospital_code, credit.hospital_unit, credit.unit_price_yuan)
            if same_item and charge.quantity >= credit.quantity:
                amount_fen = None
                if charge.amount_fen is not None and credit.amount_fen is not None:
                    amount_fen = max(charge.amount_fen - credit.amount_fen, 0)
                remaining[index] = replace(charge, quantity=charge.quantity - credit.quantity,
                                           amount_fen=amount_fen)
                break
        else:
            problems.append(Problem(
                "CREDIT_WITHOUT_CHARGE",
                f"credit line {credit.line_id} ({credit.hospital_code}) has no charge line of the same "
                "code, unit and price in this message to reduce; refunds of earlier settlements are cancels",
                credit.line_id, "credit",
            ))
    return tuple(line for line in remaining if line.quantity > 0), tuple(problems)


def prepare_request(visit: HisVisit, table: CodeTable) -> CanonicalSettleRequest | Rejected:
    """The canonical request for a visit, or every problem that stops it from being sent at all."""
    lines, problems = net_credits(visit.lines)
    canonical, mapping_problems = table.translate(lines)
    all_problems = (*visit.problems, *problems, *mapping_problems)
    if all_problems:
        return Rejected(all_problems)
    if not canonical:
        return Rejected((Problem("EMPTY_CHARGE", "the submission has no charge lines left to settle"),))
    if len(canonical) > limits.MAX_LINES_PER_CHARGE:
        return Rejected((Problem(
            "TOO_MANY_LINES",
            f"{len(canonical)} lines; at most {limits.MAX_LINES_PER_CHARGE} per settlement, split the visit",
        ),))
    return CanonicalSettleRequest(
        hospital_id=visit.hospital_id,
        request_id=visit.request_id,
        person_number=visit.person_number,
        visit_date=visit.visit_date,
        visit_type=visit.visit_type,
        use_account=visit.use_account,
        lines=canonical,
    )


def settle_visit(visit: HisVisit, table: CodeTable, engine: EnginePort) -> VisitResult:
    """Settle one visit (2207), or list everything wrong with it. Nothing is sent unless every line maps."""
    request = prepare_request(visit, table)
    if isinstance(request, Rejected):
        return request
    try:
        outcome = engine.settle(request)
    except EngineUnavailable as error:
        return _unavailable(error)
    if isinstance(outcome, Refusal):
        return Rejected((_problem_from_refusal(outcome, request),))
    return outcome


def quote_visit(visit: HisVisit, table: CodeTable, engine: EnginePort) -> Quoted | Rejected:
    """Quote one visit (2206): the split the patient would get; nothing is written."""
    request = prepare_request(visit, table)
    if isinstance(request, Rejected):
        return request
    try:
        outcome = engine.quote(request)
    except EngineUnavailable as error:
        return _unavailable(error)
    if isinstance(outcome, Refusal):
        return Rejected((_problem_from_refusal(outcome, request),))
    return outcome


def _unavailable(error: EngineUnavailable) -> Rejected:
    return Rejected((Problem(
        "UNAVAILABLE", f"the settlement engine did not answer ({error}); resend the same message"),))


def _problem_from_refusal(refusal: Refusal, request: CanonicalSettleRequest) -> Problem:
    """Point an engine refusal at the hospital's own line when the engine named a line."""
    line_id = None
    match = _LINE_FIELD.match(refusal.field)
    if match is not None and int(match.group(1)) < len(request.lines):
        line_id = request.lines[int(match.group(1))].hospital_line_id
    return Problem(refusal.reason, refusal.message, line_id, refusal.field)
