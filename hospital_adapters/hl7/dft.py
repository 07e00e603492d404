"""Reading a DFT^P03 (post detail financial transaction) into a ``HisVisit``.

Owns: the header check (type, version, processing id), the fields we use (PID-3 person number, PV1-2
patient class, FT1-2/-4/-6/-7/-10/-11/-12), where each problem sits in the message (segment, ordinal,
field) so the ERR segment can point at it, and HL7 escape sequences in the values we read. Parsing and
message structure are hl7apy's (tolerant: real HIS messages are rarely strictly valid); this module
only reads values. Must never raise anything but ``SubmissionRefused`` for any input whatsoever.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from hospital_adapters import limits as adapter_limits
from hospital_adapters.charges import HisLine, HisVisit, Problem, SubmissionRefused, parse_decimal, yuan_to_fen
from hospital_adapters.config import HospitalConfig
from hospital_adapters.port import VisitType

SUPPORTED_VERSIONS = ("2.5", "2.5.1")
STANDARD_ENCODING_CHARACTERS = "|^~\\&"
PATIENT_CLASSES = {"O": VisitType.OUTPATIENT, "E": VisitType.EMERGENCY}

# Where a line problem points, by the ``field`` name a Problem carries: FT1 field numbers.
FT1_FIELDS = {"line_id": 2, "date": 4, "credit": 6, "type": 6, "code": 7, "quantity": 10, "amount": 11,
              "unit_price": 12, "unit": 12}

# Reasons a whole message is rejected (ACK code AR) rather than refused by the application (AE).
REJECT_REASONS = frozenset({"MALFORMED_MESSAGE", "UNSUPPORTED_MESSAGE_TYPE", "UNSUPPORTED_VERSION",
                            "UNSUPPORTED_PROCESSING_ID", "MESSAGE_TOO_LARGE"})

_ESCAPES = {"F": "|", "S": "^", "T": "&", "R": "~", "E": "\\"}
_ESCAPE_SEQUENCE = re.compile(r"\\([FSTRE])\\")
_DATE = re.compile(r"([0-9]{8})[0-9]*(?:[.][0-9]+)?(?:[+-][0-9]{4})?")


@dataclass(frozen=True, slots=True)
class MessageHeader:
    """The MSH values an ACK echoes. Empty strings when the MSH could not be read."""

    sending_application: str = ""
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    message_time: str = ""
    control_id: str = ""
    processing_id: str = ""
    version: str = ""


@dataclass(frozen=True)
class ParsedDft:
    header: MessageHeader
    visit: HisVisit
    line_positions: dict[str, int] = field(default_factory=dict)  # line id -> FT1 ordinal (1-based)


def unescape(value: str) -> str:
    return _ESCAPE_SEQUENCE.sub(lambda match: _ESCAPES[match.group(1)], value)


def _malformed(message: str) -> SubmissionRefused:
    return SubmissionRefused(Problem("MALFORMED_MESSAGE", message, None, "MSH"))


def read_header(text: str) -> MessageHeader:
    """The MSH fields, read by hand so that even a message hl7apy refuses gets an ACK that names it."""
    if not text.startswith("MSH") or len(text) < 8:
        return MessageHeader()
    separator = text[3]
    fields = text.split("\r", 1)[0].split(separator)

    def value(number: int) -> str:  # MSH-1 is the separator itself, so MSH-n is fields[n - 1]
        raw = fields[number - 1] if number - 1 < len(fields) else ""
        return raw[: adapter_limits.MAX_HL7_FIELD_CHARS]

    return MessageHeader(value(3), value(4), value(5), value(6), value(7), value(10), value(11), value(12))


def normalise_segments(text: str) -> str:
    """HL7 separates segments with CR; many HIS exports use LF or CRLF. Drop blank segments."""
    segments = text.replace("\r\n", "\n").replace("\n", "\r").split("\r")
    return "\r".join(segment for segment in segments if segment.strip())


def parse_dft(text: str, config: HospitalConfig, *, expected_processing_id: str) -> ParsedDft:
    """The visit of a DFT^P03, or ``SubmissionRefused`` listing what is wrong with it."""
    text = normalise_segments(text)
    header = read_header(text)
    if not header.control_id:
        raise _malformed("the message must start with an MSH segment that has a message control id (MSH-10)")
    if text[3:8] != STANDARD_ENCODING_CHARACTERS:
        raise _malformed(f"MSH-1/MSH-2 must be the standard {STANDARD_ENCODING_CHARACTERS}")
    if header.version.split("^")[0] not in SUPPORTED_VERSIONS:
        raise SubmissionRefused(Problem("UNSUPPORTED_VERSION",
                                        f"HL7 version {header.version[:20]!r} is not supported; send 2.5",
                                        None, "MSH-12"))
    if header.processing_id.split("^")[0] != expected_processing_id:
        raise SubmissionRefused(Problem("UNSUPPORTED_PROCESSING_ID",
                                        f"processing id {header.processing_id[:10]!r}: this listener only "
                                        f"accepts {expected_processing_id!r}", None, "MSH-11"))
    message_type = read_header_type(text)
    if message_type != ("DFT", "P03"):
        raise SubmissionRefused(Problem("UNSUPPORTED_MESSAGE_TYPE",
                                        f"message type {'^'.join(message_type)[:20]!r} is not supported; "
                                        "send DFT^P03", None, "MSH-9"))
    try:
        message = parse_message(text, find_groups=True, validation_level=VALIDATION_LEVEL.TOLERANT)
    except Exception as error:  # a third-party parser on hostile input: any failure of it is "malformed"
        raise _malformed(f"the message could not be parsed: {type(error).__name__}") from None
    segments = list(_segments(message))
    return _read_visit(header, segments, config)


def read_header_type(text: str) -> tuple[str, str]:
    """MSH-9 message code and trigger event (standard separators already checked)."""
    header_fields = text.split("\r", 1)[0].split("|")
    components = (header_fields[8] if len(header_fields) > 8 else "").split("^")
    return components[0], components[1] if len(components) > 1 else ""


def _segments(element: object) -> list[object]:
    """Every segment in message order, through hl7apy's groups (DFT_P03_FINANCIAL etc.)."""
    found: list[object] = []
    for child in getattr(element, "children", ()):
        if getattr(child, "classname", "") == "Segment":
            found.append(child)
        else:
            found.extend(_segments(child))
    return found


class _SegmentReader:
    """Values of one hl7apy segment as plain, unescaped strings."""

    def __init__(self, segment: object) -> None:
        self.segment = segment
        self.name = str(getattr(segment, "name", ""))

    def raw(self, number: int) -> str:
        """The field as ER7 text, every repetition, still escaped."""
        try:
            found = getattr(self.segment, f"{self.name.lower()}_{number}")
            return str(found.to_er7()) if found is not None else ""
        except Exception:  # hl7apy raises many kinds of error for absent or odd fields: all mean "no value"
            return ""

    def value(self, number: int, component: int = 1, subcomponent: int = 1) -> str:
        """One subcomponent of the first repetition, unescaped; empty when absent."""
        first_repetition = self.raw(number).split("~", 1)[0]
        components = first_repetition.split("^")
        part = components[component - 1] if component <= len(components) else ""
        subcomponents = part.split("&")
        value = subcomponents[subcomponent - 1] if subcomponent <= len(subcomponents) else ""
        return unescape(value.strip())[: adapter_limits.MAX_HL7_FIELD_CHARS + 1]


def _parse_date(text: str) -> date | None:
    match = _DATE.fullmatch(text)
    if match is None:
        return None
    digits = match.group(1)
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return None


def _person_number(pid: _SegmentReader, config: HospitalConfig) -> str:
    wanted_type = config.connection.get("person_identifier_type")
    for repetition in pid.raw(3).split("~"):
        components = [unescape(c) for c in repetition.split("^")]
        if wanted_type is None or (len(components) > 4 and components[4] == wanted_type):
            return components[0].strip()
    return ""


def _read_visit(header: MessageHeader, segments: list[object], config: HospitalConfig) -> ParsedDft:
    readers = [_SegmentReader(segment) for segment in segments]
    pid = next((r for r in readers if r.name == "PID"), None)
    person_number = _person_number(pid, config) if pid is not None else ""
    if not person_number or len(person_number) > 64:
        raise SubmissionRefused(Problem("INVALID_FIELD", "PID-3 must carry the patient's person number "
                                        "(参保人员编号)", None, "PID-3"))
    visit_type = config.visit_type
    pv1 = next((r for r in readers if r.name == "PV1"), None)
    patient_class = pv1.value(2) if pv1 is not None else ""
    if patient_class:
        if patient_class not in PATIENT_CLASSES:
            raise SubmissionRefused(Problem("INVALID_FIELD", f"PV1-2 patient class {patient_class[:8]!r}: only "
                                            "O (outpatient) and E (emergency) settle here", None, "PV1-2"))
        visit_type = PATIENT_CLASSES[patient_class]

    lines: list[HisLine] = []
    problems: list[Problem] = []
    positions: dict[str, int] = {}
    dates: list[date] = []
    for ordinal, ft1 in enumerate((r for r in readers if r.name == "FT1"), start=1):
        line_id = ft1.value(2) or f"FT1#{ordinal}"
        if line_id in positions or len(line_id) > 64:
            problems.append(Problem("INVALID_FIELD", f"FT1 #{ordinal}: transaction id {line_id[:64]!r} is "
                                    "repeated or too long; each FT1-2 must be unique", line_id, "line_id"))
            line_id = f"FT1#{ordinal}"
        positions[line_id] = ordinal
        try:
            line, line_date = _read_line(ft1, line_id)
        except SubmissionRefused as refused:
            problems.extend(refused.problems)
            continue
        lines.append(line)
        dates.append(line_date)
    if not positions:
        raise SubmissionRefused(Problem("EMPTY_CHARGE", "the message has no FT1 charge lines", None, "FT1"))
    return ParsedDft(
        header=header,
        visit=HisVisit(
            hospital_id=config.hospital_id,
            source_kind="hl7",
            source_id="|".join((header.sending_application, header.sending_facility, header.control_id)),
            person_number=person_number,
            visit_date=min(dates) if dates else date(1970, 1, 1),  # unused: problems stop the settle
            visit_type=visit_type,
            use_account=config.use_account,
            lines=tuple(lines),
            problems=tuple(problems),
        ),
        line_positions=positions,
    )


def _read_line(ft1: _SegmentReader, line_id: str) -> tuple[HisLine, date]:
    def refuse(reason: str, what: str, message: str) -> SubmissionRefused:
        return SubmissionRefused(Problem(reason, f"line {line_id}: {message}", line_id, what))

    line_date = _parse_date(ft1.value(4))
    if line_date is None:
        raise refuse("INVALID_FIELD", "date", "FT1-4 transaction date must be a date such as 20240501")
    transaction_type = ft1.value(6)
    if transaction_type not in {"CG", "CD"}:
        raise refuse("INVALID_FIELD", "type", f"FT1-6 transaction type {transaction_type[:8]!r} must be CG "
                     "(charge) or CD (credit)")
    code = ft1.value(7)
    if not code or len(code) > 64:
        raise refuse("INVALID_FIELD", "code", "FT1-7 transaction code must carry the hospital item code")
    quantity_text = ft1.value(10)
    if not quantity_text:
        raise refuse("INVALID_FIELD", "quantity", "FT1-10 transaction quantity is required")
    quantity = abs(parse_decimal(quantity_text, what="quantity", line_id=line_id))
    unit_price_text = ft1.value(12)
    if not unit_price_text:
        raise refuse("INVALID_FIELD", "unit_price", "FT1-12 unit amount is required")
    unit_price = parse_decimal(unit_price_text, what="unit_price", line_id=line_id)
    for currency in (ft1.value(11, 1, 2), ft1.value(12, 1, 2)):
        if currency not in {"", "CNY"}:
            raise refuse("INVALID_FIELD", "amount", f"currency {currency[:8]!r}: amounts are in CNY")
    if quantity == 0 or unit_price < 0:
        raise refuse("INVALID_AMOUNT", "quantity", "quantity must not be 0 and unit amount not negative")
    amount_text = ft1.value(11)
    amount_fen = None
    if amount_text:
        amount = abs(parse_decimal(amount_text, what="amount", line_id=line_id))
        amount_fen = yuan_to_fen(amount, what="amount", line_id=line_id)
    unit = ft1.value(12, 5) or None  # CP.5 "range units": the unit the HIS charges in (see the guide)
    line = HisLine(line_id, code, unit, quantity, unit_price, amount_fen, credit=transaction_type == "CD")
    return line, line_date
