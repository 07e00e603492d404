"""Synthetic days for tests, benchmarks and demos: ledger records and files that agree with them.

Owns: a deterministic generator of one hospital's day (seeded, so a failing test replays exactly) and
writers of the HIS export and the insurer's detail file in the formats the parsers read. Must never be
used on a real day's data path; it exists so tests can inject discrepancies into otherwise agreeing files.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from settlement.reconciliation.his_export import HIS_COLUMNS
from settlement.reconciliation.input_files import mask_person_number
from settlement.reconciliation.insurer_detail import INSURER_COLUMNS
from settlement.reconciliation.records import LedgerRecord, SettlementStatus
from settlement.reconciliation.report_common import yuan_text

INSURED_TYPES = ("310", "390")  # employee, resident (national insutype codes)
CLEARING_AGENCIES = ("330100", "330102", "339900")  # city, a district, the province
OUTPATIENT_CLEARING_TYPE = "11"


@dataclass(frozen=True, slots=True)
class SampleLine:
    """One settlement as a counterpart's file states it; tests alter copies to inject discrepancies."""

    settlement_id: str
    request_id: str
    visit_id: str
    person_number: str
    status: SettlementStatus
    total_fen: int
    fund_paid_fen: int
    account_paid_fen: int
    cash_fen: int


def sample_day(hospital_id: str, business_date: date, count: int, *, seed: int) -> list[LedgerRecord]:
    """``count`` settled (and about 3 % cancelled) settlements of one hospital's day."""
    rng = random.Random(f"{hospital_id}/{business_date.isoformat()}/{seed}")  # noqa: S311 - test data
    prefix = f"{hospital_id}-{business_date:%Y%m%d}"
    records = []
    for number in range(count):
        total = rng.randint(500, 80_000)
        fund = total * rng.randint(0, 90) // 100
        account = rng.randint(0, total - fund)
        records.append(
            LedgerRecord(
                settlement_id=f"S{prefix}-{number:06d}",
                request_id=f"R{prefix}-{number:06d}",
                hospital_id=hospital_id,
                visit_id=f"V{prefix}-{number:06d}",
                person_number_masked=mask_person_number(person_number(f"S{prefix}-{number:06d}")),
                insured_type=rng.choice(INSURED_TYPES),
                clearing_type=OUTPATIENT_CLEARING_TYPE,
                clearing_agency=rng.choice(CLEARING_AGENCIES),
                business_date=business_date,
                status=SettlementStatus.CANCELLED if rng.random() < 0.03 else SettlementStatus.SETTLED,
                total_fen=total,
                fund_paid_fen=fund,
                account_paid_fen=account,
                cash_fen=total - fund - account,
            )
        )
    return records


def person_number(settlement_id: str) -> str:
    """A made-up person number, stable per settlement so both sides of a sample agree."""
    return "33" + "".join(char for char in settlement_id if char.isdigit())[-14:]


def lines_from_records(records: Iterable[LedgerRecord]) -> list[SampleLine]:
    """What a counterpart that fully agrees with us would list."""
    return [
        SampleLine(
            settlement_id=record.settlement_id,
            request_id=record.request_id,
            visit_id=record.visit_id,
            person_number=person_number(record.settlement_id),
            status=record.status,
            total_fen=record.total_fen,
            fund_paid_fen=record.fund_paid_fen,
            account_paid_fen=record.account_paid_fen,
            cash_fen=record.cash_fen,
        )
        for record in records
    ]


def his_export_bytes(lines: Sequence[SampleLine], *, encoding: str = "utf-8") -> bytes:
    """The HIS export format; ``encoding`` ``"gbk"`` writes what many HIS systems actually send."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HIS_COLUMNS)
    status_text = {SettlementStatus.SETTLED: "已结算", SettlementStatus.CANCELLED: "已撤销"}
    for line in lines:
        writer.writerow(
            (
                line.settlement_id,
                line.request_id,
                line.visit_id,
                yuan_text(line.total_fen),
                yuan_text(line.fund_paid_fen),
                yuan_text(line.account_paid_fen),
                yuan_text(line.cash_fen),
                status_text[line.status],
            )
        )
    return out.getvalue().encode(encoding)


def insurer_detail_bytes(lines: Sequence[SampleLine], *, header: bool = True) -> bytes:
    """The insurer's tab-separated detail result file (3202 shape), UTF-8."""
    rows = ["\t".join(INSURER_COLUMNS)] if header else []
    for line in lines:
        refunded = "1" if line.status is SettlementStatus.CANCELLED else "0"
        rows.append(
            "\t".join(
                (
                    line.person_number,
                    line.visit_id,
                    line.settlement_id,
                    "M" + line.request_id,
                    "0",
                    refunded,
                    "门诊",
                    yuan_text(line.total_fen),
                    yuan_text(line.fund_paid_fen),
                    yuan_text(line.account_paid_fen),
                )
            )
        )
    return ("\n".join(rows) + "\n").encode("utf-8")
