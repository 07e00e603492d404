"""Proto messages ↔ service commands and views, one field at a time.

Owns: reading every request field into a validated command (errors name the proto field path, e.g.
``lines[3].unit_price_yuan``) and writing every view into its reply message. Must never decide anything
about money or state: a command that parses here may still be refused by the service.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from google.protobuf.timestamp_pb2 import Timestamp

from settlement import limits
from settlement.api.gen.clinic.settlement.v1 import (
    account_pb2,
    charge_pb2,
    daily_ledger_pb2,
    settlement_pb2,
)
from settlement.domain import InsuredType, VisitType
from settlement.domain.charge import check_line_count
from settlement.errors import InvalidField
from settlement.service import commands
from settlement.service.commands import CardProof, ChargeRequest, RequestedLine
from settlement.service.daily_ledger import DailyLedgerRow, DailyLedgerView
from settlement.service.views import AccountView, LineView, SettlementView, SplitView, Status

CRYPTOGRAM_BYTES = 8

INSURED_TYPES = {
    charge_pb2.INSURED_TYPE_EMPLOYEE_IN_SERVICE: InsuredType.EMPLOYEE,
    charge_pb2.INSURED_TYPE_EMPLOYEE_RETIRED: InsuredType.RETIRED,
    charge_pb2.INSURED_TYPE_RESIDENT: InsuredType.RESIDENT,
}
INSURED_TYPE_ENUMS = {value.value: key for key, value in INSURED_TYPES.items()}
VISIT_TYPES = {
    charge_pb2.VISIT_TYPE_OUTPATIENT: VisitType.OUTPATIENT,
    charge_pb2.VISIT_TYPE_EMERGENCY: VisitType.EMERGENCY,
    charge_pb2.VISIT_TYPE_CHRONIC: VisitType.CHRONIC,
}
VISIT_TYPE_ENUMS = {value.value: key for key, value in VISIT_TYPES.items()}
STATUSES = {
    Status.SETTLED: settlement_pb2.SETTLEMENT_STATUS_SETTLED,
    Status.CANCELLED: settlement_pb2.SETTLEMENT_STATUS_CANCELLED,
    Status.CANCELLATION: settlement_pb2.SETTLEMENT_STATUS_CANCELLATION,
}
MODELS = {"national": settlement_pb2.SPLIT_MODEL_NATIONAL, "segmented": settlement_pb2.SPLIT_MODEL_SEGMENTED}
ITEM_CLASSES = {"A": charge_pb2.ITEM_CLASS_A, "B": charge_pb2.ITEM_CLASS_B, "C": charge_pb2.ITEM_CLASS_C}
CARD_STATUSES = {
    "active": account_pb2.CARD_STATUS_ACTIVE,
    "lost": account_pb2.CARD_STATUS_LOST,
    "blocked": account_pb2.CARD_STATUS_BLOCKED,
}


# --- requests → commands ----------------------------------------------------------------------------


def iso_date(text: str, *, field: str) -> dt.date:
    try:
        if len(text) != len("YYYY-MM-DD"):
            raise ValueError(text)
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidField(f"{field} must be a date like 2026-03-02, got {text[:40]!r}", field=field) from None


def charge_request(
    *,
    person_number: str,
    card_number: str,
    insured_type: int,
    visit_type: int,
    visit_date: str,
    use_account: int,
    lines: Sequence[charge_pb2.ChargeLine],
) -> ChargeRequest:
    if visit_type not in VISIT_TYPES:
        raise InvalidField("visit_type is required: OUTPATIENT, EMERGENCY or CHRONIC", field="visit_type")
    if use_account not in (charge_pb2.ACCOUNT_USE_PAY, charge_pb2.ACCOUNT_USE_DECLINED):
        raise InvalidField("use_account is required: PAY or DECLINED", field="use_account")
    if insured_type != charge_pb2.INSURED_TYPE_UNSPECIFIED and insured_type not in INSURED_TYPES:
        raise InvalidField(f"insured_type {insured_type} is not a known value", field="insured_type")
    return commands.charge_request(
        person_number=person_number,
        visit_type_text=VISIT_TYPES[visit_type].value,  # type: ignore[index]
        visit_date=iso_date(visit_date, field="visit_date"),
        use_account=use_account == charge_pb2.ACCOUNT_USE_PAY,
        lines=requested_lines(lines),
        card_number=card_number,
        insured_type=INSURED_TYPES.get(insured_type),  # type: ignore[call-overload]
    )


def requested_lines(lines: Sequence[charge_pb2.ChargeLine]) -> list[RequestedLine]:
    """Each line validated; a missing hospital line id defaults to its 1-based position."""
    check_line_count(lines)  # before any per-line work: an oversized charge costs nothing
    parsed: list[RequestedLine] = []
    seen: set[str] = set()
    for index, line in enumerate(lines):
        line_id = line.hospital_line_id or str(index + 1)
        if len(line_id) > limits.MAX_HOSPITAL_LINE_ID_CHARS or not line_id.isprintable():
            raise InvalidField(
                f"lines[{index}].hospital_line_id must be at most {limits.MAX_HOSPITAL_LINE_ID_CHARS} printable "
                "characters",
                field=f"lines[{index}].hospital_line_id",
            )
        if line_id in seen:
            raise InvalidField(
                f"lines[{index}].hospital_line_id {line_id!r} repeats an earlier line's id",
                field=f"lines[{index}].hospital_line_id",
            )
        seen.add(line_id)
        parsed.append(
            commands.requested_line(
                index=index,
                item_code=line.item_code,
                quantity=line.quantity,
                unit_price=line.unit_price_yuan,
                amount_fen=line.amount_fen if line.HasField("amount_fen") else None,
                line_id=line_id,
            )
        )
    return parsed


def card_proof(proof: charge_pb2.CardProof) -> CardProof:
    if len(proof.cryptogram) != CRYPTOGRAM_BYTES:
        raise InvalidField(
            f"card_proof.cryptogram must be {CRYPTOGRAM_BYTES} bytes, got {len(proof.cryptogram)}",
            field="card_proof.cryptogram",
        )
    if not proof.quote_id:
        raise InvalidField("card_proof.quote_id is required", field="card_proof.quote_id")
    return CardProof(
        card_number=commands.identifier(proof.card_number, field="card_proof.card_number"),
        transaction_counter=proof.transaction_counter,
        cryptogram=bytes(proof.cryptogram),
        quote_id=commands.identifier(proof.quote_id, field="card_proof.quote_id"),
    )


# --- views → replies --------------------------------------------------------------------------------


def timestamp(at_us: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromMicroseconds(at_us)
    return stamp


def line_message(line: LineView) -> settlement_pb2.LineSplit:
    return settlement_pb2.LineSplit(
        hospital_line_id=line.hospital_line_id,
        item_code=line.item_code,
        item_class=ITEM_CLASSES.get(line.item_class, charge_pb2.ITEM_CLASS_UNSPECIFIED),
        self_pay_ratio=line.self_pay_ratio,
        quantity=line.quantity,
        unit_price_yuan=line.unit_price_yuan,
        amount_fen=line.amount_fen,
        fully_self_paid_fen=line.fully_self_paid_fen,
        over_ceiling_fen=line.over_ceiling_fen,
        pre_self_paid_fen=line.pre_self_paid_fen,
        in_scope_fen=line.in_scope_fen,
    )


def split_message(split: SplitView) -> settlement_pb2.Split:
    return settlement_pb2.Split(
        model=MODELS.get(split.model, settlement_pb2.SPLIT_MODEL_UNSPECIFIED),
        policy_version=split.policy_version,
        total_fen=split.total_fen,
        fully_self_paid_fen=split.fully_self_paid_fen,
        over_ceiling_fen=split.over_ceiling_fen,
        pre_self_paid_fen=split.pre_self_paid_fen,
        in_scope_fen=split.in_scope_fen,
        deductible_paid_fen=split.deductible_paid_fen,
        fund_paid_fen=split.fund_paid_fen,
        personal_part_fen=split.personal_part_fen,
        account_paid_fen=split.account_paid_fen,
        cash_fen=split.cash_fen,
        balance_after_fen=split.balance_after_fen,
        current_year_paid_fen=split.current_year_paid_fen,
        historical_paid_fen=split.historical_paid_fen,
        self_segment_fen=split.self_segment_fen,
        current_year_after_fen=split.current_year_after_fen,
        historical_after_fen=split.historical_after_fen,
        lines=[line_message(line) for line in split.lines],
    )


def settlement_message(view: SettlementView) -> settlement_pb2.Settlement:
    return settlement_pb2.Settlement(
        settlement_id=view.settlement_id,
        request_id=view.request_id,
        status=STATUSES[view.status],
        hospital_id=view.hospital_id,
        terminal_id=view.terminal_id,
        operator_id=view.operator_id,
        person_number=view.person_number,
        card_number_masked=view.card_number_masked,
        insured_type=INSURED_TYPE_ENUMS.get(view.insured_type, charge_pb2.INSURED_TYPE_UNSPECIFIED),
        visit_type=VISIT_TYPE_ENUMS.get(view.visit_type, charge_pb2.VISIT_TYPE_UNSPECIFIED),
        visit_date=view.visit_date.isoformat(),
        use_account=charge_pb2.ACCOUNT_USE_PAY if view.use_account else charge_pb2.ACCOUNT_USE_DECLINED,
        settle_time=timestamp(view.settled_at_us),
        split=split_message(view.split),
        card_present=view.card_present,
        reverses_settlement_id=view.reverses_id,
        reversed_by_settlement_id=view.reversed_by_id,
        replaces_settlement_id=view.replaces_id,
    )


def account_message(view: AccountView) -> account_pb2.Account:
    return account_pb2.Account(
        person_number=view.person_number,
        insured_type=INSURED_TYPE_ENUMS.get(view.insured_type, charge_pb2.INSURED_TYPE_UNSPECIFIED),
        card_number_masked=view.card_number_masked,
        card_status=CARD_STATUSES.get(view.card_status, account_pb2.CARD_STATUS_UNSPECIFIED),
        balance_fen=view.balance_fen,
        current_year_balance_fen=view.current_year_fen,
        historical_balance_fen=view.historical_fen,
        accumulator_year=view.accumulator_year,
        deductible_used_fen=view.deductible_used_fen,
        fund_paid_fen=view.fund_paid_fen,
        self_segment_used_fen=view.self_segment_used_fen,
    )


def daily_ledger_message(view: DailyLedgerView) -> daily_ledger_pb2.DailyLedger:
    return daily_ledger_pb2.DailyLedger(
        hospital_id=view.hospital_id,
        date=view.business_date.isoformat(),
        closed=view.closed,
        rows=[_ledger_row(row) for row in view.rows],
        total=_ledger_row(view.total),
    )


def _ledger_row(row: DailyLedgerRow) -> daily_ledger_pb2.DailyLedgerRow:
    return daily_ledger_pb2.DailyLedgerRow(
        insured_type=INSURED_TYPE_ENUMS.get(row.insured_type, charge_pb2.INSURED_TYPE_UNSPECIFIED),
        clearing_type=row.clearing_type,
        payer=row.payer,
        settlement_count=row.settlement_count,
        cancellation_count=row.cancellation_count,
        total_fen=row.total_fen,
        fund_paid_fen=row.fund_paid_fen,
        account_paid_fen=row.account_paid_fen,
        cash_fen=row.cash_fen,
    )
