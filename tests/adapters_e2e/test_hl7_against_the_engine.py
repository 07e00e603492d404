"""The HL7 adapter against the real engine: a TCP MLLP client sends DFT^P03 messages to the listener, the
listener settles them through the gRPC server, and the engine's own records are checked."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from e2e_helpers import HL7_HOSPITAL, PERSON, Engine, Inspector, MllpClient, sample_dft, segments, yuan
from mllp_client import frame

from hospital_adapters import HospitalConfig, build_adapter, derive_request_id
from hospital_adapters.hl7.adapter import Hl7Adapter
from settlement.api.gen.clinic.settlement.v1 import settlement_pb2
from settlement.client import GrpcEnginePort

Connect = Callable[[], MllpClient]


def request_id_of(control_id: str) -> str:
    return derive_request_id(HL7_HOSPITAL, "hl7", f"HIS|{HL7_HOSPITAL}|{control_id}")


@pytest.fixture
def connect(hl7_adapter: Hl7Adapter) -> Iterator[Connect]:
    clients: list[MllpClient] = []

    def open_connection() -> MllpClient:
        client = MllpClient(hl7_adapter.port)
        clients.append(client)
        return client

    yield open_connection
    for client in clients:
        client.close()


@pytest.fixture
def inspector(engine: Engine) -> Inspector:
    return engine.inspector(HL7_HOSPITAL)


def assert_zrs_is_the_stored_split(ack: str, stored: settlement_pb2.Settlement) -> None:
    [zrs] = segments(ack, "ZRS")
    split = stored.split
    assert zrs[1:13] == [
        stored.settlement_id,
        yuan(split.total_fen),
        yuan(split.fund_paid_fen),
        yuan(split.account_paid_fen),
        yuan(split.cash_fen),
        yuan(split.balance_after_fen),
        yuan(split.fully_self_paid_fen),
        yuan(split.over_ceiling_fen),
        yuan(split.pre_self_paid_fen),
        yuan(split.in_scope_fen),
        yuan(split.deductible_paid_fen),
        "CNY",
    ]


def test_the_sample_dft_p03_settles_and_the_ack_carries_the_engines_split(
        connect: Connect, inspector: Inspector, engine: Engine) -> None:
    balance_before_fen = inspector.balance_fen(PERSON)

    ack = connect().exchange(sample_dft())

    assert segments(ack, "MSA") == [["MSA", "AA", "MSG00001"]]
    stored = inspector.settlement(request_id_of("MSG00001"))
    assert stored is not None
    assert stored.status == settlement_pb2.SETTLEMENT_STATUS_SETTLED
    assert_zrs_is_the_stored_split(ack, stored)
    assert (stored.terminal_id, stored.operator_id, stored.person_number) == ("H33010600123-HL7", "his-adapter", PERSON)
    assert [(line.hospital_line_id, line.item_code, line.quantity, line.amount_fen) for line in stored.split.lines] == [
        ("T0001", "001102000010000-110200001", "1", 2500),
        ("T0002", "XJ01CAA040A001010100483", "48", 3072),  # 2 boxes of 24 capsules
        ("T0003", "002501020350000-250102035", "1", 2000),
    ]
    assert stored.split.total_fen == 7572
    assert stored.split.over_ceiling_fen == 500  # the consultation fee is 5.00 above the catalogue's 20.00
    assert inspector.balance_fen(PERSON) == balance_before_fen - stored.split.account_paid_fen
    assert stored.split.balance_after_fen == balance_before_fen - stored.split.account_paid_fen
    assert engine.settlement_rows() == 1


def test_two_messages_in_one_packet_settle_twice_and_are_answered_in_order(
        connect: Connect, inspector: Inspector, engine: Engine) -> None:
    client = connect()
    client.send(frame(sample_dft("MSG-A")) + frame(sample_dft("MSG-B")))
    first, second = client.receive(2)

    assert [segments(first, "MSA")[0][1:], segments(second, "MSA")[0][1:]] == [["AA", "MSG-A"], ["AA", "MSG-B"]]
    stored_a, stored_b = inspector.settlement(request_id_of("MSG-A")), inspector.settlement(request_id_of("MSG-B"))
    assert stored_a is not None
    assert stored_b is not None
    assert_zrs_is_the_stored_split(first, stored_a)
    assert_zrs_is_the_stored_split(second, stored_b)
    assert stored_a.settlement_id != stored_b.settlement_id
    assert stored_b.split.balance_after_fen == stored_a.split.balance_after_fen - stored_b.split.account_paid_fen
    assert engine.settlement_rows() == 2


def test_a_message_split_across_packets_is_reassembled_and_settled_once(
        connect: Connect, inspector: Inspector, engine: Engine) -> None:
    client = connect()
    data = frame(sample_dft("MSG-SPLIT"))
    for start in range(0, len(data), 11):
        client.send(data[start:start + 11])
    [ack] = client.receive()

    assert segments(ack, "MSA")[0][1] == "AA"
    stored = inspector.settlement(request_id_of("MSG-SPLIT"))
    assert stored is not None
    assert_zrs_is_the_stored_split(ack, stored)
    assert engine.settlement_rows() == 1


def test_the_same_message_sent_twice_settles_once_and_both_acks_are_identical(
        connect: Connect, inspector: Inspector, engine: Engine) -> None:
    balance_before_fen = inspector.balance_fen(PERSON)
    first = connect()
    first_ack = first.exchange(sample_dft("MSG-DUP"))
    first.close()  # the HIS lost the ACK, reconnects and resends
    second_ack = connect().exchange(sample_dft("MSG-DUP"))

    assert second_ack.encode() == first_ack.encode()
    assert segments(first_ack, "MSA")[0][1] == "AA"
    [stored] = inspector.settlements()
    assert inspector.balance_fen(PERSON) == balance_before_fen - stored.split.account_paid_fen
    assert engine.settlement_rows() == 1


def test_malformed_messages_are_rejected_with_ar_and_nothing_is_settled(connect: Connect, engine: Engine) -> None:
    client = connect()
    bad_separators = client.exchange(sample_dft("MSG-BAD").replace("MSH|^~\\&|", "MSH|^~#&|", 1))
    not_hl7 = client.exchange("这不是 HL7 报文")

    assert segments(bad_separators, "MSA") == [["MSA", "AR", "MSG-BAD"]]
    assert segments(not_hl7, "MSA") == [["MSA", "AR", ""]]
    for ack in (bad_separators, not_hl7):
        [err] = segments(ack, "ERR")
        assert err[5] == "MALFORMED_MESSAGE^^HL70533"
    assert engine.settlement_rows() == 0


def test_unknown_codes_and_units_are_refused_line_by_line_and_nothing_is_settled(
        connect: Connect, inspector: Inspector, engine: Engine) -> None:
    message = sample_dft("MSG-CODES", changes={
        "JY0301^血常规": "XX9999^未对照项目",  # not in the code table
        "15.36&CNY^UP^^^盒": "15.36&CNY^UP^^^瓶",  # a unit the table does not map
    })
    ack = connect().exchange(message)

    assert segments(ack, "MSA") == [["MSA", "AE", "MSG-CODES"]]
    errors = {err[5].split("^")[0]: err for err in segments(ack, "ERR")}
    assert set(errors) == {"UNKNOWN_ITEM_CODE", "UNIT_MISMATCH"}
    assert errors["UNKNOWN_ITEM_CODE"][2] == "FT1^3^7"
    assert "T0003" in errors["UNKNOWN_ITEM_CODE"][7]
    assert errors["UNIT_MISMATCH"][2] == "FT1^2^12"
    assert "T0002" in errors["UNIT_MISMATCH"][7]
    assert inspector.settlement(request_id_of("MSG-CODES")) is None
    assert engine.settlement_rows() == 0


def test_an_unknown_patient_is_refused_by_the_engine_with_ae_pointing_at_pid_3(
        connect: Connect, inspector: Inspector, engine: Engine) -> None:
    client = connect()
    ack = client.exchange(sample_dft("MSG-WHO", person="33019999999999999999"))
    again = client.exchange(sample_dft("MSG-WHO", person="33019999999999999999"))

    assert segments(ack, "MSA") == [["MSA", "AE", "MSG-WHO"]]
    [err] = segments(ack, "ERR")
    assert err[2] == "PID^1^3"
    assert err[3] == "204^Unknown key identifier^HL70357"
    assert err[5] == "PERSON_NOT_FOUND^^HL70533"
    assert err[8] == "未找到参保人员信息"
    assert again == ack  # the engine recorded the refusal: the resend gets the same answer
    assert inspector.settlement(request_id_of("MSG-WHO")) is None
    assert engine.settlement_rows() == 0


def test_a_code_mapped_to_an_item_outside_the_engines_catalogue_is_refused_naming_the_line(
        hl7_config: HospitalConfig, hl7_port: GrpcEnginePort, engine: Engine, tmp_path: Path) -> None:
    table = tmp_path / "codes.csv"
    table.write_text(hl7_config.code_table_path.read_text(encoding="utf-8").replace(
        "JY0301,项,002501020350000-250102035", "JY0301,项,009999999990000-999999999"), encoding="utf-8")
    adapter = build_adapter(HospitalConfig(**{**vars(hl7_config), "code_table_path": table}), hl7_port)
    assert isinstance(adapter, Hl7Adapter)
    with adapter:
        client = MllpClient(adapter.port)
        try:
            ack = client.exchange(sample_dft("MSG-CATALOGUE"))
        finally:
            client.close()

    assert segments(ack, "MSA")[0][1] == "AE"
    [err] = segments(ack, "ERR")
    assert err[2] == "FT1^3^7"  # the engine named lines[2].item_code; the adapter points at the FT1
    assert err[5] == "UNKNOWN_ITEM_CODE^^HL70533"
    assert engine.settlement_rows() == 0
