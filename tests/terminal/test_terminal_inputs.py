"""The terminal's small pure parts: the charges file, the person number, what an error means, the screen."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import status_pb2  # type: ignore[import-untyped]  # .pyi, no py.typed
from grpc_status import rpc_status

from settlement.api.gen.clinic.settlement.v1 import settlement_pb2
from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2 as pb
from settlement.errors import CardBlocked, QuoteExpired, RequestIdReused, SettlementError, Unauthenticated
from settlement.server import pki
from settlement.server.status import internal_status, rich_status
from settlement.service.clock import CHINA_STANDARD_TIME
from settlement.terminal.calls import (
    IdentityError,
    answer_of,
    check_terminal_id,
    identity_from_certificate,
    signed_date,
)
from settlement.terminal.charges import ChargesError, load_person_map, parse_charges, person_number_for
from settlement.terminal.prompts import Console, PinSourceError, pin_from_environment
from settlement.terminal.receipt import display_width, mask_name, pad, split_table

LINE = {"hospital_line_id": "1", "item_code": "X-1", "quantity": "2", "unit_price_yuan": "12.50"}


def charges(**fields: Any) -> dict[str, Any]:
    return {"lines": [dict(LINE)], **fields}


def test_a_charges_file_needs_only_its_lines() -> None:
    parsed = parse_charges(charges(), "c.json")
    assert (parsed.person_number, parsed.visit_type, parsed.visit_date, parsed.use_account) == (
        None,
        "outpatient",
        None,
        True,
    )
    [line] = parsed.lines
    assert (line.quantity, line.unit_price_yuan, line.amount_fen) == ("2", "12.50", None)


@pytest.mark.parametrize(
    ("document", "complaint"),
    [
        (charges(lines=[{**LINE, "unit_price_yuan": 12.5}]), r"lines\[0\]\.unit_price_yuan: write decimals as strings"),
        (charges(lines=[{**LINE, "quantity": "1,5"}]), r"lines\[0\]\.quantity: a plain decimal"),
        (charges(lines=[LINE, LINE]), r"lines\[1\]\.hospital_line_id '1' is repeated"),
        (charges(lines=[]), "lines must be a list of 1 to 500"),
        (charges(visit_typ="outpatient"), "unknown field.*visit_typ"),
        (charges(visit_type="inpatient"), "visit_type must be one of"),
        (charges(visit_date="02/03/2026"), "visit_date must be YYYY-MM-DD"),
        (charges(use_account="yes"), "use_account must be true or false"),
        (charges(lines=[{**LINE, "amount_fen": 1.0}]), "amount_fen: a whole"),
        ([LINE], "expected a JSON object"),
    ],
)
def test_a_charges_file_that_cannot_be_a_charge_is_refused_naming_the_field(document: object, complaint: str) -> None:
    with pytest.raises(ChargesError, match=complaint):
        parse_charges(document, "c.json")


def test_the_person_number_comes_from_the_file_then_the_flag_then_the_map(tmp_path: Path) -> None:
    mapping = tmp_path / "persons.json"
    mapping.write_text(json.dumps({"CARD0001": "P-MAP"}), encoding="utf-8")
    persons = load_person_map(mapping)
    in_file = parse_charges(charges(person_number="P-FILE"), "c.json")
    bare = parse_charges(charges(), "c.json")
    assert person_number_for("CARD0001", in_file, person="P-FLAG", person_map=persons) == "P-FILE"
    assert person_number_for("CARD0001", bare, person="P-FLAG", person_map=persons) == "P-FLAG"
    assert person_number_for("CARD0001", bare, person=None, person_map=persons) == "P-MAP"
    with pytest.raises(ChargesError, match=r"card \*\*\*\*0002") as refused:
        person_number_for("CARD0002", bare, person=None, person_map=persons)
    assert "CARD0002" not in str(refused.value)


class RefusedCall(grpc.RpcError):
    """A client-side RpcError as gRPC raises it, built from the status the server would send."""

    def __init__(self, status: grpc.Status) -> None:
        self._status = status

    def code(self) -> grpc.StatusCode:
        return self._status.code

    def details(self) -> str:
        return self._status.details

    def trailing_metadata(self) -> Any:
        return self._status.trailing_metadata


def refused_with(error: SettlementError) -> RefusedCall:
    return RefusedCall(rich_status(error))


def test_only_the_engines_refusal_of_the_request_itself_is_definitive() -> None:
    expired = answer_of(refused_with(QuoteExpired("quote Q1 has expired; quote again")))
    assert (expired.definitive, expired.code, expired.reason) == (True, "FAILED_PRECONDITION", "QUOTE_EXPIRED")
    assert expired.message_zh
    assert answer_of(refused_with(CardBlocked("blocked"))).definitive
    # Not answers about this settle: the caller, a reused id, a crash: the outcome stays unknown.
    assert not answer_of(refused_with(Unauthenticated("no certificate"))).definitive
    assert not answer_of(refused_with(RequestIdReused("reused"))).definitive
    assert not answer_of(RefusedCall(internal_status())).definitive
    transport = RefusedCall(rpc_status.to_status(status_pb2.Status(code=14, message="connection reset")))
    lost = answer_of(transport)
    assert (lost.definitive, lost.code, lost.reason) == (False, "UNAVAILABLE", "UNAVAILABLE")


def test_the_card_signs_the_day_the_quote_was_issued_not_the_desks_date() -> None:
    issued = dt.datetime(2026, 3, 2, 23, 55, tzinfo=CHINA_STANDARD_TIME)  # expires after midnight
    expire = Timestamp()
    expire.FromDatetime((issued + dt.timedelta(seconds=600)).astimezone(dt.UTC))
    assert signed_date(pb.QuoteResponse(expire_time=expire)) == dt.date(2026, 3, 2)


def test_a_terminal_id_a_card_cannot_sign_is_refused_before_anything_starts(tmp_path: Path) -> None:
    check_terminal_id("T-DESK-01")
    for bad in ("", "T" * 17, "诊室一"):
        with pytest.raises(IdentityError):
            check_terminal_id(bad)
    pki.init_authority(tmp_path)
    cert, _key = pki.issue_terminal(tmp_path, "H32010001", "T-DESK-01")
    identity = identity_from_certificate(cert.read_bytes(), "doctor-7")
    assert (identity.hospital_id, identity.terminal_id, identity.dev_mode) == ("H32010001", "T-DESK-01", False)
    assert identity.metadata() == (("operator-id", "doctor-7"),)
    long_cert, _ = pki.issue_terminal(tmp_path, "H32010001", "DESK-WITH-A-VERY-LONG-NAME")
    with pytest.raises(IdentityError, match="1 to 16"):
        identity_from_certificate(long_cert.read_bytes(), "doctor-7")


def test_the_split_table_lines_up_chinese_labels_and_amounts() -> None:
    table = split_table(
        settlement_pb2.Split(
            total_fen=11_300, fund_paid_fen=6_000, account_paid_fen=4_000, cash_fen=1_300, balance_after_fen=66_000
        )
    )
    amounts = [row for row in table if row[-1].isdigit()]
    assert len(amounts) == 5
    assert len({display_width(row) for row in amounts}) == 1
    assert amounts[0].endswith("113.00")
    assert amounts[-1].endswith("660.00")
    assert display_width("医疗") == 4
    assert display_width(pad("医疗 x", 10)) == 10
    assert mask_name("王小明") == "王**"


def test_the_console_answers_from_input_and_yes_takes_the_default() -> None:
    out = io.StringIO()
    console = Console(stdin=io.StringIO("maybe\nc\n"), stdout=out, read_pin=lambda _prompt: "123456")
    assert console.choose("what now?", (("r", "retry"), ("c", "reverse")), default="r") == "c"
    assert "please answer r / c" in out.getvalue()
    assert not console.confirm("settle?")  # the end of input is a no
    yes = Console(stdin=io.StringIO(""), stdout=io.StringIO(), assume_yes=True)
    assert yes.confirm("settle?")
    assert yes.choose("what now?", (("r", "retry"), ("l", "later")), default="l") == "l"


def test_the_pin_from_the_environment_is_for_tests_and_never_in_its_error(monkeypatch: pytest.MonkeyPatch) -> None:
    read = pin_from_environment("TERMINAL_TEST_PIN")
    monkeypatch.delenv("TERMINAL_TEST_PIN", raising=False)
    with pytest.raises(PinSourceError, match="TERMINAL_TEST_PIN is not set"):
        read("PIN: ")
    monkeypatch.setenv("TERMINAL_TEST_PIN", "246810")
    assert read("PIN: ") == "246810"
