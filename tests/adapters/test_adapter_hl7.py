"""The HL7 adapter driven through its real transport: a TCP MLLP client against the listener."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from adapter_helpers import PERSON, PERSON_BALANCE_FEN, dft_p03, segments
from mllp_client import MllpClient, frame

from hospital_adapters import FakeEngine, HospitalConfig, build_adapter, derive_request_id, limits
from hospital_adapters.hl7.adapter import Hl7Adapter

Connect = Callable[[], MllpClient]


def test_a_dft_p03_is_settled_and_the_ack_carries_the_split(mllp_client: Connect, engine: FakeEngine) -> None:
    client = mllp_client()
    client.send(frame(dft_p03()))
    [ack] = client.receive()

    assert segments(ack, "MSA") == [["MSA", "AA", "MSG00001"]]
    [zrs] = segments(ack, "ZRS")
    # 25.00 + 30.72 + 20.00 = 75.72; the fake's fund pays 70 % (53.00), the account the rest.
    assert zrs[1:7] == ["S00000001", "75.72", "53.00", "22.72", "0.00", "77.28"]
    assert zrs[12] == "CNY"
    [(request, settled)] = engine.settlements
    assert settled.settlement_id == "S00000001"
    assert request.person_number == PERSON
    assert request.request_id == derive_request_id("H33010600123", "hl7", "HIS|H33010600123|MSG00001")
    assert [(line.catalogue_code, line.quantity, line.unit_price_yuan, line.amount_fen)
            for line in request.lines] == [
        ("001102000010000-110200001", "1", "25", 2500),
        ("XJ01CAA040A001010100483", "48", "0.64", 3072),  # 2 boxes of 24 capsules at 15.36 a box
        ("002501020350000-250102035", "1", "20", 2000),
    ]
    assert engine.balance_fen(PERSON) == PERSON_BALANCE_FEN - 2272


def test_several_messages_in_one_packet_are_each_answered_in_order(mllp_client: Connect,
                                                                  engine: FakeEngine) -> None:
    client = mllp_client()
    client.send(b"".join(frame(dft_p03(f"MSG{n}")) for n in range(3)))
    acks = client.receive(3)

    assert [segments(ack, "MSA")[0][1:] for ack in acks] == [["AA", "MSG0"], ["AA", "MSG1"], ["AA", "MSG2"]]
    assert len(engine.settlements) == 3


def test_a_message_split_across_many_packets_is_reassembled(mllp_client: Connect, engine: FakeEngine) -> None:
    client = mllp_client()
    data = frame(dft_p03())
    for start in range(0, len(data), 7):
        client.send(data[start:start + 7])
    [ack] = client.receive()

    assert segments(ack, "MSA")[0][1] == "AA"
    assert len(engine.settlements) == 1


def test_the_same_message_sent_twice_settles_once_and_gets_identical_acks(mllp_client: Connect,
                                                                          engine: FakeEngine) -> None:
    first = mllp_client()
    first.send(frame(dft_p03("DUP-1")))
    [first_ack] = first.receive()
    first.close()
    second = mllp_client()  # the HIS reconnects and resends after a lost ACK
    second.send(frame(dft_p03("DUP-1")))
    [second_ack] = second.receive()

    assert second_ack == first_ack
    assert segments(first_ack, "MSA")[0][1] == "AA"
    assert len(engine.settlements) == 1
    assert engine.settle_calls == 2


def test_a_reused_control_id_with_another_body_is_refused_and_settles_nothing_more(
        mllp_client: Connect, engine: FakeEngine) -> None:
    client = mllp_client()
    client.send(frame(dft_p03("REUSE-1")))
    client.send(frame(dft_p03("REUSE-1", lines=[
        "FT1|1|T0001||20240501|20240501|CG|GH0001^普通门诊诊查费^L|||1|25.00|25.00|0101|HZYB"])))
    first, second = client.receive(2)

    assert segments(first, "MSA")[0][1] == "AA"
    assert segments(second, "MSA")[0][1] == "AE"
    [err] = segments(second, "ERR")
    assert err[3].startswith("205^")
    assert err[5].startswith("REQUEST_ID_REUSED^")
    assert len(engine.settlements) == 1


def test_unknown_codes_and_unit_mismatches_are_all_listed_and_nothing_is_settled(
        mllp_client: Connect, engine: FakeEngine) -> None:
    client = mllp_client()
    client.send(frame(dft_p03("BAD-CODES", lines=[
        "FT1|1|T0001||20240501|20240501|CG|GH0001^普通门诊诊查费^L|||1|25.00|25.00|0101|HZYB",
        "FT1|2|T0002||20240501|20240501|CG|XX9999^院内自制^L|||1|3.00|3.00|0101|HZYB",
        "FT1|3|T0003||20240501|20240501|CG|YP20117^二甲双胍片^L|||1|7.00|7.00^^^^瓶|0101|HZYB",
        "FT1|4|T0004||20240501|20240501|CG|YP10023^阿莫西林胶囊^L|||1|15.36|15.36|0101|HZYB",
    ])))
    [ack] = client.receive()

    assert segments(ack, "MSA") == [["MSA", "AE", "BAD-CODES"]]
    errors = {err[2]: err[5].split("^")[0] for err in segments(ack, "ERR")}
    assert errors == {
        "FT1^2^7": "UNKNOWN_ITEM_CODE",
        "FT1^3^12": "UNIT_MISMATCH",
        "FT1^4^7": "AMBIGUOUS_ITEM_CODE",  # boxes and capsules are both mapped: the unit must be sent
    }
    assert "line T0002" in ack
    assert "XX9999" in ack
    assert engine.settle_calls == 0
    assert engine.balance_fen(PERSON) == PERSON_BALANCE_FEN


def test_an_unknown_patient_gets_an_application_error_pointing_at_pid_3(mllp_client: Connect,
                                                                        engine: FakeEngine) -> None:
    client = mllp_client()
    client.send(frame(dft_p03("NOBODY", person="999999999")))
    [ack] = client.receive()

    assert segments(ack, "MSA")[0][1] == "AE"
    [err] = segments(ack, "ERR")
    assert err[2] == "PID^1^3"
    assert err[5].startswith("PERSON_NOT_FOUND^")
    assert engine.settlements == []


def test_malformed_messages_are_rejected_and_the_connection_keeps_serving(mllp_client: Connect,
                                                                          engine: FakeEngine) -> None:
    client = mllp_client()
    client.send(frame("this is not HL7"))
    client.send(frame(dft_p03("QTY", lines=[
        "FT1|1|T0001||20240501|20240501|CG|GH0001^诊查费^L|||1e3|25.00|25.00|0101|HZYB"])))
    client.send(frame(dft_p03("ADT").replace("DFT^P03^DFT_P03", "ADT^A01^ADT_A01")))
    client.send(frame(dft_p03("OK")))
    garbage, bad_quantity, wrong_type, good = client.receive(4)

    assert segments(garbage, "MSA") == [["MSA", "AR", ""]]
    assert segments(garbage, "ERR")[0][5].startswith("MALFORMED_MESSAGE^")
    assert segments(bad_quantity, "MSA")[0][1] == "AE"
    assert segments(bad_quantity, "ERR")[0][2] == "FT1^1^10"
    assert segments(bad_quantity, "ERR")[0][5].startswith("DECIMAL_FORMAT^")
    assert segments(wrong_type, "MSA") == [["MSA", "AR", "ADT"]]
    assert segments(wrong_type, "ERR")[0][3].startswith("200^")
    assert segments(good, "MSA")[0][1] == "AA"
    assert len(engine.settlements) == 1


def test_a_training_message_never_settles_on_a_production_listener(mllp_client: Connect,
                                                                   engine: FakeEngine) -> None:
    client = mllp_client()
    client.send(frame(dft_p03("TRAIN", processing_id="T")))
    [ack] = client.receive()

    assert segments(ack, "MSA")[0][1] == "AR"
    assert segments(ack, "ERR")[0][5].startswith("UNSUPPORTED_PROCESSING_ID^")
    assert engine.settle_calls == 0


def test_a_credit_line_reduces_a_charge_of_the_same_message(mllp_client: Connect, engine: FakeEngine) -> None:
    client = mllp_client()
    client.send(frame(dft_p03("CREDIT", lines=[
        "FT1|1|T0001||20240501|20240501|CG|YP10023^阿莫西林胶囊^L|||3|46.08|15.36^^^^盒|0101|HZYB",
        "FT1|2|T0002||20240501|20240501|CD|YP10023^阿莫西林胶囊^L|||-1|-15.36|15.36^^^^盒|0101|HZYB",
        "FT1|3|T0003||20240501|20240501|CD|JY0301^血常规^L|||1|20.00|20.00|0101|HZYB",
    ])))
    [ack] = client.receive()

    # The blood test credit has no charge to reduce: the whole message is refused, naming that line.
    [err] = segments(ack, "ERR")
    assert (err[2], err[5].split("^")[0]) == ("FT1^3^6", "CREDIT_WITHOUT_CHARGE")
    assert engine.settle_calls == 0

    client.send(frame(dft_p03("CREDIT-2", lines=[
        "FT1|1|T0001||20240501|20240501|CG|YP10023^阿莫西林胶囊^L|||3|46.08|15.36^^^^盒|0101|HZYB",
        "FT1|2|T0002||20240501|20240501|CD|YP10023^阿莫西林胶囊^L|||-1|-15.36|15.36^^^^盒|0101|HZYB",
    ])))
    [ack] = client.receive()
    assert segments(ack, "MSA")[0][1] == "AA"
    [(request, _)] = engine.settlements
    assert [(line.quantity, line.amount_fen) for line in request.lines] == [("48", 3072)]


def test_a_frame_past_the_size_limit_is_rejected_and_the_connection_closed(
        mllp_client: Connect, engine: FakeEngine) -> None:
    client = mllp_client()
    client.send(b"\x0bMSH|" + b"x" * (limits.MAX_HL7_MESSAGE_BYTES + 10))
    [ack] = client.receive()

    assert segments(ack, "MSA")[0][1] == "AR"
    assert segments(ack, "ERR")[0][5].startswith("MESSAGE_TOO_LARGE^")
    assert client.closed_by_server()
    assert engine.settle_calls == 0


def test_the_adapter_reports_where_it_listens_and_stops_cleanly(hl7_adapter: Hl7Adapter,
                                                                mllp_client: Connect) -> None:
    client = mllp_client()
    assert hl7_adapter.address == f"mllp://127.0.0.1:{hl7_adapter.port}"
    hl7_adapter.stop()  # with a connection still open: stop must not hang on it
    assert client.closed_by_server()


def test_a_sender_that_goes_quiet_is_disconnected_after_the_read_timeout(
        hl7_config: HospitalConfig, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MLLP_READ_TIMEOUT_SECONDS", 0.2)
    with build_adapter(hl7_config, engine) as adapter:
        assert isinstance(adapter, Hl7Adapter)
        client = MllpClient(adapter.port)
        client.send(b"\x0bMSH|^~\\&|HIS")  # half a message, then silence
        started = time.monotonic()
        assert client.closed_by_server()
        assert time.monotonic() - started < 3
        client.close()


def test_connections_beyond_the_limit_are_closed_at_once_and_the_rest_keep_working(
        hl7_config: HospitalConfig, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_MLLP_CONNECTIONS", 1)
    with build_adapter(hl7_config, engine) as adapter:
        assert isinstance(adapter, Hl7Adapter)
        first = MllpClient(adapter.port)
        first.send(frame(dft_p03("LIMIT-1")))
        assert segments(first.receive()[0], "MSA")[0][1] == "AA"
        second = MllpClient(adapter.port)
        assert second.closed_by_server()
        first.send(frame(dft_p03("LIMIT-2")))
        assert segments(first.receive()[0], "MSA")[0][1] == "AA"
        first.close()
        second.close()
