"""Building the ACK that answers a DFT^P03: the split on success, ERR segments on refusal.

Owns: the ACK layout (documented in docs/integration.md): MSH, MSA (AA / AE / AR), one ERR per
problem pointing at the segment and field, and on success a ZRS segment with the split in yuan.
Every value is derived from the request and the engine's answer, never from the clock, so a duplicate
message gets a byte-identical ACK. Must never put an unescaped HIS value into a field.
"""

from __future__ import annotations

import hashlib

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message, Segment

from hospital_adapters.charges import Problem, Rejected, VisitResult
from hospital_adapters.hl7.dft import FT1_FIELDS, REJECT_REASONS, MessageHeader
from hospital_adapters.port import Settled
from hospital_adapters.reasons import message_zh

ACK_VERSION = "2.5"

# HL7 table 0357 (message error condition codes), by our reason.
_HL7_ERROR_CODES: dict[str, tuple[str, str]] = {
    "MALFORMED_MESSAGE": ("100", "Segment sequence error"),
    "EMPTY_CHARGE": ("101", "Required field missing"),
    "INVALID_FIELD": ("102", "Data type error"),
    "DECIMAL_FORMAT": ("102", "Data type error"),
    "INVALID_AMOUNT": ("102", "Data type error"),
    "UNKNOWN_ITEM_CODE": ("103", "Table value not found"),
    "AMBIGUOUS_ITEM_CODE": ("103", "Table value not found"),
    "UNIT_MISMATCH": ("103", "Table value not found"),
    "UNSUPPORTED_MESSAGE_TYPE": ("200", "Unsupported message type"),
    "UNSUPPORTED_PROCESSING_ID": ("202", "Unsupported processing id"),
    "UNSUPPORTED_VERSION": ("203", "Unsupported version id"),
    "PERSON_NOT_FOUND": ("204", "Unknown key identifier"),
    "REQUEST_ID_REUSED": ("205", "Duplicate key identifier"),
}
_APPLICATION_ERROR = ("207", "Application internal error")

# Engine field names (``lines[2].catalogue_code``) and transport ones, to a segment and field.
_HEADER_LOCATIONS = {"person_number": ("PID", 3), "PID-3": ("PID", 3), "PV1-2": ("PV1", 2),
                     "MSH-9": ("MSH", 9), "MSH-11": ("MSH", 11), "MSH-12": ("MSH", 12), "MSH": ("MSH", 0)}
_LINE_FIELDS = {**FT1_FIELDS, "catalogue_code": 7, "unit_price_yuan": 12, "amount_fen": 11}


def escape(text: str) -> str:
    """HL7 escape sequences for the separators; segment terminators become spaces."""
    text = text.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\")
    text = text.replace("&", "\\T\\").replace("~", "\\R\\")
    return text.replace("\r", " ").replace("\n", " ")


def _yuan(fen: int) -> str:
    whole, cents = divmod(fen, 100)
    return f"{whole}.{cents:02d}"


def ack_control_id(header: MessageHeader) -> str:
    """A control id for the ACK that is the same for every copy of the same message (ST, 20 chars)."""
    key = "|".join((header.sending_application, header.sending_facility, header.control_id))
    return "A" + hashlib.sha256(key.encode()).hexdigest()[:19]


def _location(problem: Problem, line_positions: dict[str, int]) -> str:
    if problem.line_id is not None and problem.line_id in line_positions:
        field_name = problem.field.rsplit(".", 1)[-1]
        field_number = _LINE_FIELDS.get(field_name, 0)
        return f"FT1^{line_positions[problem.line_id]}" + (f"^{field_number}" if field_number else "")
    segment, field_number = _HEADER_LOCATIONS.get(problem.field, ("", 0))
    if not segment:
        return ""
    return f"{segment}^1" + (f"^{field_number}" if field_number else "")


def build_ack(
    header: MessageHeader,
    result: VisitResult,
    *,
    line_positions: dict[str, int],
    application: str,
    facility: str,
) -> str:
    """The ACK text (segments separated by CR), for a settled or rejected message."""
    ack = Message("ACK", version=ACK_VERSION, validation_level=VALIDATION_LEVEL.TOLERANT)
    ack.msh.msh_3 = escape(application)
    ack.msh.msh_4 = escape(facility)
    ack.msh.msh_5 = escape(header.sending_application)
    ack.msh.msh_6 = escape(header.sending_facility)
    # The original message time, not the clock: a duplicate must get a byte-identical ACK.
    ack.msh.msh_7 = escape(header.message_time) if header.message_time.isdigit() else "19700101000000"
    ack.msh.msh_9 = "ACK^P03^ACK"
    ack.msh.msh_10 = ack_control_id(header)
    ack.msh.msh_11 = escape(header.processing_id) or "P"
    ack.msh.msh_12 = ACK_VERSION
    ack.msa.msa_2 = escape(header.control_id)
    if isinstance(result, Settled):
        ack.msa.msa_1 = "AA"
        ack.add(_result_segment(result))
        return str(ack.to_er7())
    ack.msa.msa_1 = _acknowledgment_code(result)
    for problem in result.problems:
        ack.add(_error_segment(problem, line_positions))
    return str(ack.to_er7())


def _acknowledgment_code(rejected: Rejected) -> str:
    return "AR" if rejected.reason in REJECT_REASONS else "AE"


def _error_segment(problem: Problem, line_positions: dict[str, int]) -> Segment:
    code, text = _HL7_ERROR_CODES.get(problem.reason, _APPLICATION_ERROR)
    err = Segment("ERR", version=ACK_VERSION, validation_level=VALIDATION_LEVEL.TOLERANT)
    location = _location(problem, line_positions)
    if location:
        err.err_2 = location
    err.err_3 = f"{code}^{text}^HL70357"
    err.err_4 = "E"
    err.err_5 = f"{problem.reason}^^HL70533"
    err.err_7 = escape(problem.message)
    err.err_8 = escape(message_zh(problem.reason))
    return err


def _result_segment(settled: Settled) -> Segment:
    """ZRS: settlement result. Amounts in yuan, national ``setlinfo`` names in the guide."""
    split = settled.split
    zrs = Segment("ZRS", version=ACK_VERSION, validation_level=VALIDATION_LEVEL.TOLERANT)
    values = [
        escape(settled.settlement_id),  # ZRS-1 setl_id
        _yuan(split.total_fen),  # ZRS-2 medfee_sumamt
        _yuan(split.fund_paid_fen),  # ZRS-3 fund_pay_sumamt
        _yuan(split.account_paid_fen),  # ZRS-4 acct_pay
        _yuan(split.cash_fen),  # ZRS-5 psn_cash_pay
        _yuan(split.balance_after_fen),  # ZRS-6 balc
        _yuan(split.fully_self_paid_fen),  # ZRS-7 fulamt_ownpay_amt
        _yuan(split.over_ceiling_fen),  # ZRS-8 overlmt_selfpay
        _yuan(split.pre_self_paid_fen),  # ZRS-9 preselfpay_amt
        _yuan(split.in_scope_fen),  # ZRS-10 inscp_scp_amt
        _yuan(split.deductible_paid_fen),  # ZRS-11 act_pay_dedc
        "CNY",  # ZRS-12 currency
    ]
    for number, value in enumerate(values, start=1):
        setattr(zrs, f"zrs_{number}", value)
    return zrs
