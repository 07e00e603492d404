"""``settlement demo``: a scripted clinic morning at two hospitals' desks, over mTLS (``scripts/demo.sh``).

Plays four doctor's desks against a running server in mTLS mode, each desk on its own channel with its
own terminal certificate from ``settlement pki`` (``--pki``), so the server knows the desk from the
certificate alone. The patients are rows of the demo enrolment file (``--persons``); each one's citizen
card is a virtual card personalised from that row, read with its PIN and asked to sign over real APDUs
(cardio's applet behind cardio's reader code; only the PC/SC transport is left out, so no pcscd is
needed; ``tests/cardio`` drives the same card through the real pcscd).

The morning: quotes, card-present settles with readable receipts, a lost reply retried with the same
``request_id``, a cancel, a refund of one line, and refusals — a desk without a certificate, a blocked
card, an item code missing from the HIS mapping, a desk asking about another hospital — each printed with
its reason and the cashier's Chinese message; then each hospital's day so far.

Owns only the script and how it is printed. Must never print a full card number or citizen ID (last 4
characters only) nor a patient's full name (family name only).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import sys
import time
import tomllib
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from settlement.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    import grpc

    from cardio.citizen_card import CitizenCard
    from settlement.api.gen.clinic.settlement.v1 import settlement_pb2
    from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2 as pb
    from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2_grpc as pb_grpc

DEMO_ISSUER_KEY_HEX = "000102030405060708090a0b0c0d0e0f"  # demo only: published, never for real cards
DEMO_PIN = "123456"  # every demo card's PIN
CALL_TIMEOUT_SECONDS = 10.0  # one call; a healthy local server answers in milliseconds
HANDSHAKE_TIMEOUT_SECONDS = 3.0
# (hospital, terminal, operator): the desks the morning uses. scripts/demo.sh issues their certificates.
DESKS = (
    ("H33010600123", "H33010600123D01", "doctor-0601"),
    ("H33010600123", "H33010600123D02", "doctor-0602"),
    ("H32010200077", "H32010200077D01", "doctor-0771"),
    ("H32010200077", "H32010200077D02", "doctor-0772"),
)
# Catalogue codes (policies/*/catalogue.toml: the same code in both regions) and a short name to print.
ITEMS = {
    "consult": ("001102000010000-110200001", "诊察费"),
    "consult_chief": ("001102000010200-11020000102", "主任医师诊察费"),
    "blood": ("002501020350000-250102035", "血常规"),
    "hba1c": ("002503020030000-250302003", "糖化血红蛋白"),
    "ecg": ("003107010010000-310701001", "心电图"),
    "ct": ("002103000010000-210300001", "胸部CT平扫"),
    "dressing": ("001202000020000-120200002", "换药"),
    "amoxicillin": ("XJ01CAA040A001010100483", "阿莫西林胶囊"),
    "lianhua": ("ZA01BAL0301010203964", "连花清瘟胶囊"),
    "smectite": ("XA07BCM138B001010100218", "蒙脱石散"),
    "metformin": ("XA10BAE023A001010104521", "二甲双胍片"),
    "atorvastatin": ("XC10AAA128A001010203146", "阿托伐他汀钙片"),
    "amlodipine": ("XC08CAA094A001010101782", "氨氯地平片"),
    "insulin": ("XA10ABM031B002010181506", "门冬胰岛素注射液"),
    "cold_pack": ("C0414020000000101153", "医用冷敷贴"),
}
_AMOUNT_HEADINGS = ("total", "fund", "account", "cash", "balance")
Line = tuple[str, str, str]  # (ITEMS key or a raw HIS code, quantity, unit price in yuan)


class DemoFailed(Exception):
    """The server did not behave as the script expects (a refusal that did not come, a changed retry)."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo", help="play a scripted clinic morning at four desks against an mTLS server (scripts/demo.sh)"
    )
    demo.add_argument("--target", default="127.0.0.1:50051", help="HOST:PORT of the server (default %(default)s)")
    demo.add_argument(
        "--pki", type=Path, default=Path("data/demo/pki"), help="the settlement pki folder (default %(default)s)"
    )
    demo.add_argument(
        "--persons",
        type=Path,
        default=Path("demo/clinic-morning-enrolment.csv"),
        help="the enrolment CSV the patients come from (default %(default)s)",
    )
    demo.add_argument(
        "--hospitals", type=Path, default=Path("demo/hospitals.toml"), help="for the desks' names (%(default)s)"
    )
    demo.add_argument("--issuer-key", default=DEMO_ISSUER_KEY_HEX, help="the demo issuer master key (hex)")
    demo.add_argument("--wait-seconds", type=float, default=30.0, help="wait this long for the server to be SERVING")
    demo.set_defaults(run=_demo)


def _demo(args: argparse.Namespace) -> int:
    import grpc

    from settlement.terminal.calls import IdentityError

    try:
        morning = Morning.open(args)
    except (OSError, KeyError, ValueError, IdentityError) as error:
        print(f"settlement demo: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if not morning.wait_until_serving(args.wait_seconds):
            print(f"settlement demo: no SERVING server at {args.target} within {args.wait_seconds} s", file=sys.stderr)
            return EXIT_FAILED
        began = time.monotonic()
        play(morning)
        morning.summary(time.monotonic() - began)
    except grpc.RpcError as error:
        print(f"settlement demo: an unexpected refusal: {_refusal_text(error)}", file=sys.stderr)
        return EXIT_FAILED
    except DemoFailed as error:
        print(f"settlement demo: {error}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        morning.close()
    return EXIT_OK


def play(m: Morning) -> None:
    """The morning, in the order a visitor would watch it."""
    hz_internal, hz_paediatric, nj_internal, nj_surgery = m.desks
    m.handshake_without_certificate()

    m.scene(hz_internal, "fever and cough; the reply is lost on the way back")
    fever = m.visit(
        hz_internal,
        "33010000000000100001",
        [("consult", "1", "20"), ("blood", "1", "20"), ("amoxicillin", "24", "0.45"), ("lianhua", "24", "0.55")],
    )
    m.retry(hz_internal, fever)

    m.scene(hz_paediatric, "a child with diarrhoea: a resident, so no personal account")
    m.visit(hz_paediatric, "33010000000000100008", [("consult", "1", "20"), ("smectite", "6", "2.30")])

    m.scene(hz_internal, "diabetes (a chronic-disease visit): the account is nearly empty, so the fund pays")
    m.visit(
        hz_internal,
        "33010000000000100002",
        [("consult_chief", "1", "50"), ("hba1c", "1", "45"), ("metformin", "60", "0.12"),
         ("atorvastatin", "28", "2.10"), ("insulin", "2", "45")],
        visit_type="chronic",
    )

    m.scene(hz_internal, "a CT ordered for the wrong patient: settled, then cancelled")
    scan = m.visit(hz_internal, "33010000000000100005", [("consult", "1", "20"), ("ct", "1", "140")])
    m.cancel(hz_internal, scan)

    m.scene(hz_internal, "a blocked card")
    m.refused_quote(hz_internal, "33010000000000100034", [("consult", "1", "20")])

    m.scene(nj_internal, "blood pressure check")
    m.visit(
        nj_internal,
        "32010000000000100001",
        [("consult", "1", "25"), ("ecg", "1", "25"), ("amlodipine", "28", "0.90")],
    )

    m.scene(nj_surgery, "a dressing change: the HIS sends its own code for one line, then the mapped one")
    unmapped = [("consult", "1", "25"), ("HIS-HL-0042", "1", "20"), ("cold_pack", "2", "8.50")]
    m.refused_quote(nj_surgery, "32010000000000100003", unmapped)
    mapped = [("consult", "1", "25"), ("dressing", "1", "20"), ("cold_pack", "2", "8.50")]
    dressing = m.visit(nj_surgery, "32010000000000100003", mapped)
    m.refund(nj_surgery, dressing, ["3"], "the patient hands back the cold packs")

    m.scene(nj_internal, "a Nanjing desk asks for the Hangzhou hospital's day")
    m.refused_other_hospital(nj_internal, hz_internal.hospital_id)

    m.books([hz_internal, nj_internal], statement_of=(hz_internal, "33010000000000100005"))


# ---- the desks, the patients and their cards -----------------------------------------------------------


@dataclass(frozen=True)
class Patient:
    person_number: str
    name: str
    insured_type: str
    region: str
    citizen_id: str
    card_number: str

    @property
    def shown(self) -> str:
        from cardio.masking import mask_tail

        return f"{self.name[:1]}{'*' * (len(self.name) - 1)} ({self.insured_type}, card {mask_tail(self.card_number)})"


@dataclass
class Desk:
    hospital_id: str
    terminal_id: str
    operator_id: str
    name: str
    channel: grpc.Channel
    stub: pb_grpc.SettlementServiceStub

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("operator-id", self.operator_id),)  # who: the certificate; the operator: call metadata


@dataclass
class Settled:
    """A settle as sent and as answered, for the retry, the cancel and the refund that follow."""

    request: pb.SettleRequest
    settlement: settlement_pb2.Settlement


@dataclass
class Morning:
    target: str
    ca_pem: bytes
    desks: list[Desk]
    patients: dict[str, Patient]
    issuer_key: bytes
    counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def open(cls, args: argparse.Namespace) -> Morning:
        from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2_grpc as pb_grpc
        from settlement.terminal.calls import identity_from_certificate, secure_channel

        names = _desk_names(args.hospitals)
        desks = []
        for hospital_id, terminal_id, operator_id in DESKS:
            cert = args.pki / "terminals" / hospital_id / f"{terminal_id}.crt"
            key = cert.with_suffix(".key")
            if not cert.is_file():
                raise ValueError(
                    f"{cert} is missing: settlement pki issue-terminal --dir {args.pki} "
                    f"--hospital {hospital_id} --terminal {terminal_id}"
                )
            identity = identity_from_certificate(cert.read_bytes(), operator_id)  # what the server will read
            channel = secure_channel(args.target, ca=args.pki / "ca.crt", cert=cert, key=key)
            desks.append(
                Desk(identity.hospital_id, identity.terminal_id, operator_id, names.get(terminal_id, terminal_id),
                     channel, pb_grpc.SettlementServiceStub(channel))
            )
        return cls(
            args.target, (args.pki / "ca.crt").read_bytes(), desks, _read_patients(args.persons),
            bytes.fromhex(args.issuer_key),
        )

    def close(self) -> None:
        for desk in self.desks:
            desk.channel.close()

    def wait_until_serving(self, wait_seconds: float) -> bool:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        health = health_pb2_grpc.HealthStub(self.desks[0].channel)
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            try:
                answer = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return True
            except grpc.RpcError:
                pass
            time.sleep(0.2)
        return False

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def patient(self, person_number: str) -> Patient:
        if person_number not in self.patients:
            raise DemoFailed(f"person {person_number} of the script is not in the --persons file")
        return self.patients[person_number]

    # ---- what the visitor sees ---------------------------------------------------------------------

    def handshake_without_certificate(self) -> None:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        print(f"== a clinic morning over mTLS at {self.target}: {len(self.desks)} desks, each with its own certificate")
        for desk in self.desks:
            print(f"   {desk.terminal_id:<16} {desk.name}  (certificate: hospital {desk.hospital_id})")
        credentials = grpc.ssl_channel_credentials(root_certificates=self.ca_pem)  # the CA, but no client cert
        with grpc.secure_channel(self.target, credentials) as channel:
            try:
                health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=HANDSHAKE_TIMEOUT_SECONDS
                )
            except grpc.RpcError as error:
                code = error.code().name
                print(f"   a desk without a client certificate is turned away at the TLS handshake: {code}")
                return
        raise DemoFailed("the server answered a caller without a client certificate: it is not in mTLS mode")

    def scene(self, desk: Desk, story: str) -> None:
        self.count("patients")
        print(f"\n── {self.counts['patients']}. {story}")
        print(f"   desk {desk.terminal_id} {desk.name}, {desk.operator_id}")

    def visit(
        self, desk: Desk, person_number: str, lines: Sequence[Line], *, visit_type: str = "outpatient"
    ) -> Settled:
        """Card and PIN, account, quote, the card signs the quoted total, settle, receipt."""
        from cardio.card_crypto import GenerateAcRequest
        from settlement.api.gen.clinic.settlement.v1 import charge_pb2
        from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2 as pb
        from settlement.domain.money import format_yuan
        from settlement.terminal.calls import signed_date

        patient = self.patient(person_number)
        card = self._present_card(patient)
        account = desk.stub.GetAccount(
            pb.GetAccountRequest(hospital_id=desk.hospital_id, person_number=patient.person_number,
                                 card_number=patient.card_number),
            metadata=desk.metadata, timeout=CALL_TIMEOUT_SECONDS,
        ).account
        print(f"   patient {patient.shown}: card read with PIN; account {format_yuan(account.balance_fen)} yuan")
        print(f"   charges: {_charges_text(lines)}")
        fields = _visit_fields(desk, patient, lines, visit_type)
        quote = desk.stub.Quote(pb.QuoteRequest(**fields), metadata=desk.metadata, timeout=CALL_TIMEOUT_SECONDS)
        signed = card.generate_ac(
            GenerateAcRequest(
                amount_fen=quote.split.total_fen,
                transaction_date=signed_date(quote),
                unpredictable_number=quote.unpredictable_number,
                terminal_id=desk.terminal_id,
            )
        )
        print(
            f"   quote {quote.quote_id}: total {format_yuan(quote.split.total_fen)}; the patient agrees and the "
            f"card signs {format_yuan(quote.split.total_fen)} for {desk.terminal_id} (counter {signed.counter})"
        )
        proof = charge_pb2.CardProof(
            card_number=patient.card_number, transaction_counter=signed.counter, cryptogram=signed.cryptogram,
            quote_id=quote.quote_id,
        )
        request = pb.SettleRequest(request_id=str(uuid.uuid4()), card_proof=proof, **fields)
        settlement = desk.stub.Settle(request, metadata=desk.metadata, timeout=CALL_TIMEOUT_SECONDS).settlement
        self.count("settled")
        _print_receipt(settlement)
        return Settled(request, settlement)

    def retry(self, desk: Desk, settled: Settled) -> None:
        again = desk.stub.Settle(settled.request, metadata=desk.metadata, timeout=CALL_TIMEOUT_SECONDS).settlement
        same = again == settled.settlement
        print(f"   the desk resends the same request_id {settled.request.request_id[:8]}…")
        print(f"   retry of the same request_id returned the same settlement: {same} (no second charge)")
        if not same:
            raise DemoFailed(f"a retry of request {settled.request.request_id} answered another settlement")
        self.count("retried")

    def cancel(self, desk: Desk, settled: Settled) -> None:
        from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2 as pb
        from settlement.domain.money import format_yuan

        answer = desk.stub.CancelSettlement(
            pb.CancelSettlementRequest(request_id=str(uuid.uuid4()), hospital_id=desk.hospital_id,
                                       settlement_id=settled.settlement.settlement_id),
            metadata=desk.metadata, timeout=CALL_TIMEOUT_SECONDS,
        )
        s = answer.cancellation.split
        print(
            f"   cancelled {answer.cancelled.settlement_id} by the reversing entry "
            f"{answer.cancellation.settlement_id}: "
            f"total {format_yuan(s.total_fen)}, fund {format_yuan(s.fund_paid_fen)}, "
            f"account {format_yuan(s.account_paid_fen)}, cash {format_yuan(s.cash_fen)}; "
            f"balance back to {format_yuan(s.balance_after_fen)}"
        )
        self.count("cancelled")

    def refund(self, desk: Desk, settled: Settled, line_ids: list[str], story: str) -> None:
        from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2 as pb
        from settlement.domain.money import format_yuan

        answer = desk.stub.RefundLines(
            pb.RefundLinesRequest(request_id=str(uuid.uuid4()), hospital_id=desk.hospital_id,
                                  settlement_id=settled.settlement.settlement_id, hospital_line_ids=line_ids),
            metadata=desk.metadata, timeout=CALL_TIMEOUT_SECONDS,
        )
        s = answer.replacement.split
        print(
            f"   {story}: refund of line {', '.join(line_ids)}: {answer.cancellation.settlement_id} reverses, "
            f"{answer.replacement.settlement_id} replaces: total {format_yuan(s.total_fen)}, "
            f"fund {format_yuan(s.fund_paid_fen)}, account {format_yuan(s.account_paid_fen)}, "
            f"cash {format_yuan(s.cash_fen)}, balance after {format_yuan(s.balance_after_fen)}"
        )
        self.count("refunded")

    def refused_quote(self, desk: Desk, person_number: str, lines: Sequence[Line]) -> None:
        from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2 as pb

        patient = self.patient(person_number)
        self._present_card(patient)
        print(f"   patient {patient.shown}: card read with PIN")
        print(f"   charges: {_charges_text(lines)}")
        fields = _visit_fields(desk, patient, lines)
        with self._expect_refusal():
            desk.stub.Quote(pb.QuoteRequest(**fields), metadata=desk.metadata, timeout=CALL_TIMEOUT_SECONDS)

    def refused_other_hospital(self, desk: Desk, other_hospital_id: str) -> None:
        from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2 as pb

        print(f"   GetDailyLedger of {other_hospital_id} from a desk whose certificate names {desk.hospital_id}")
        with self._expect_refusal():
            desk.stub.GetDailyLedger(
                pb.GetDailyLedgerRequest(hospital_id=other_hospital_id, date=_today().isoformat()),
                metadata=desk.metadata, timeout=CALL_TIMEOUT_SECONDS,
            )

    def books(self, desks: Sequence[Desk], *, statement_of: tuple[Desk, str]) -> None:
        from settlement.api.gen.clinic.settlement.v1 import settlement_pb2
        from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2 as pb
        from settlement.domain.money import format_yuan

        desk, person_number = statement_of
        page = desk.stub.ListSettlements(
            pb.ListSettlementsRequest(hospital_id=desk.hospital_id, person_number=person_number,
                                      start_date=_today().isoformat(), end_date=_today().isoformat()),
            metadata=desk.metadata, timeout=CALL_TIMEOUT_SECONDS,
        )
        print(f"\n== statement of {self.patient(person_number).shown} today: history is never rewritten")
        print("   " + " ".join([f"{'settlement':<24}", f"{'status':<12}", *(f"{h:>9}" for h in _AMOUNT_HEADINGS)]))
        for entry in page.settlements:
            s = entry.split
            status = settlement_pb2.SettlementStatus.Name(entry.status).removeprefix("SETTLEMENT_STATUS_")
            print(
                f"   {entry.settlement_id:<24} {status:<12} {format_yuan(s.total_fen):>9} "
                f"{format_yuan(s.fund_paid_fen):>9} {format_yuan(s.account_paid_fen):>9} "
                f"{format_yuan(s.cash_fen):>9} {format_yuan(s.balance_after_fen):>9}"
            )
        print("\n== the morning's books, each hospital read by its own desk (GetDailyLedger)")
        print(f"   {'hospital':<13} {'settled':>7} {'cancels':>7} {'total':>9} {'fund':>9} {'account':>9} {'cash':>9}")
        for reader in desks:
            ledger = reader.stub.GetDailyLedger(
                pb.GetDailyLedgerRequest(hospital_id=reader.hospital_id, date=_today().isoformat()),
                metadata=reader.metadata, timeout=CALL_TIMEOUT_SECONDS,
            ).ledger
            t = ledger.total
            print(
                f"   {ledger.hospital_id:<13} {t.settlement_count:>7} {t.cancellation_count:>7} "
                f"{format_yuan(t.total_fen):>9} {format_yuan(t.fund_paid_fen):>9} "
                f"{format_yuan(t.account_paid_fen):>9} {format_yuan(t.cash_fen):>9}"
            )

    def summary(self, seconds: float) -> None:
        c = self.counts
        print(
            f"\n== morning done in {seconds:.1f} s: {c.get('patients', 0)} patients, {c.get('settled', 0)} settled "
            f"(card present), {c.get('retried', 0)} retry answered from the first reply, {c.get('cancelled', 0)} "
            f"cancelled, {c.get('refunded', 0)} refund, {c.get('refused', 0)} refused"
        )

    # ---- helpers -------------------------------------------------------------------------------------

    def _present_card(self, patient: Patient) -> CitizenCard:
        """The patient's card in the desk's reader, read with its PIN; it can then sign."""
        from cardio.applet import CardPersonalisation, CitizenCardApplet
        from cardio.citizen_card import CitizenCard, read_citizen_card
        from cardio.fake_reader import ScriptedCardReader
        from cardio.protocol import CardHolder, CardIdentification
        from cardio.reader import ApduExchange

        born = dt.date(int(patient.citizen_id[6:10]), int(patient.citizen_id[10:12]), int(patient.citizen_id[12:14]))
        sex = "1" if int(patient.citizen_id[16]) % 2 else "2"
        applet = CitizenCardApplet(
            CardPersonalisation(
                identification=CardIdentification(
                    bytes.fromhex(patient.region + "00" * 13), "3.00", patient.card_number
                ),
                holder=CardHolder(patient.citizen_id, patient.name, sex, born),
                pin=DEMO_PIN,
                master_key=self.issuer_key,
            )
        )
        reader = ScriptedCardReader(["Desk Reader 00 00"])
        reader.insert("Desk Reader 00 00", applet.process)
        exchange = ApduExchange(reader.connect("Desk Reader 00 00"))
        read = read_citizen_card(exchange, DEMO_PIN)
        if read.identification.card_number != patient.card_number:
            raise DemoFailed("the virtual card reads back another card number")
        return CitizenCard(exchange)

    def _expect_refusal(self) -> _Refusal:
        return _Refusal(self)


class _Refusal:
    """``with`` block whose call must be refused; prints the status, reason, field and cashier message."""

    def __init__(self, morning: Morning) -> None:
        self._morning = morning

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, _tb: object) -> bool:
        import grpc

        if error is None:
            raise DemoFailed("a call the script expects to be refused was answered")
        if not isinstance(error, grpc.RpcError):
            return False
        print(f"   ✗ refused: {_refusal_text(error)}")
        self._morning.count("refused")
        return True


def _refusal_text(error: grpc.RpcError) -> str:
    from settlement.server.status import error_info_of
    from settlement.terminal.calls import answer_of

    answer = answer_of(error)
    info = error_info_of(error)
    where = info.metadata.get("field", "") if info is not None else ""
    return (
        f"{answer.code} / {answer.reason}{f' (field {where})' if where else ''}\n"
        f"     {answer.message}\n"
        f"     收银员提示 cashier: {answer.message_zh or '-'}"
    )


def _print_receipt(settlement: settlement_pb2.Settlement) -> None:
    from settlement.terminal.receipt import split_table

    settled_at = settlement.settle_time.ToDatetime(tzinfo=dt.UTC).astimezone(_china())
    present = "card present" if settlement.card_present else "card absent"
    print(f"   ┌ 门诊结算单 receipt {settlement.settlement_id} · {present} · {settled_at:%H:%M:%S} CST")
    for row in split_table(settlement.split):
        print(f"   │ {row}")
    print("   └")


def _visit_fields(
    desk: Desk, patient: Patient, lines: Sequence[Line], visit_type: str = "outpatient"
) -> dict[str, Any]:
    """What a quote and its settle share, so the settled total is the one the card signed."""
    from settlement.api.gen.clinic.settlement.v1 import charge_pb2

    return {
        "hospital_id": desk.hospital_id,
        "person_number": patient.person_number,
        "card_number": patient.card_number,
        "visit_type": charge_pb2.VisitType.Value(f"VISIT_TYPE_{visit_type.upper()}"),
        "visit_date": _today().isoformat(),
        "use_account": charge_pb2.ACCOUNT_USE_PAY,
        "lines": [
            charge_pb2.ChargeLine(
                hospital_line_id=str(n), item_code=ITEMS[key][0] if key in ITEMS else key, quantity=quantity,
                unit_price_yuan=price,
            )
            for n, (key, quantity, price) in enumerate(lines, start=1)
        ],
    }


def _charges_text(lines: Sequence[Line]) -> str:
    shown = []
    for key, quantity, price in lines:
        name = ITEMS[key][1] if key in ITEMS else f"HIS code {key}"
        shown.append(f"{name} {quantity}×{price}")
    return ", ".join(shown)


def _read_patients(path: Path) -> dict[str, Patient]:
    with path.open(encoding="utf-8", newline="") as file:
        rows: Iterator[dict[str, str]] = csv.DictReader(file)
        return {
            row["person_number"]: Patient(
                row["person_number"], row["name"], row["insured_type"], row["region"], row["citizen_id"],
                row["card_number"],
            )
            for row in rows
        }


def _desk_names(path: Path) -> dict[str, str]:
    document = tomllib.loads(path.read_text(encoding="utf-8"))
    names = {}
    for hospital in document.get("hospital", []):
        for terminal in hospital.get("terminal", []):
            names[terminal["terminal_id"]] = f"{hospital['name']} · {terminal['name']}"
    return names


def _china() -> dt.tzinfo:
    from settlement.service.clock import CHINA_STANDARD_TIME

    return CHINA_STANDARD_TIME


def _today() -> dt.date:
    return dt.datetime.now(_china()).date()

