"""``settlement demo``: one patient's visit at a doctor's desk, against a running dev-mode server.

Plays the desk terminal: reads the (virtual, in-process) citizen card with its PIN, quotes the visit,
has the card sign the quoted amount, settles, retries the same request to show idempotency, refunds a
line, and prints the receipt, the citizen's statement and the hospital's day. The card speaks real APDUs
(cardio's applet behind cardio's reader code); only the PC/SC transport is left out, so the demo runs
without pcscd. ``tests/cardio`` drives the same card through the real pcscd.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import uuid

from settlement.cli import EXIT_FAILED, EXIT_OK

DEMO_ISSUER_KEY_HEX = "000102030405060708090a0b0c0d0e0f"  # demo only: published, never for real cards
DEFAULTS = {
    "target": "127.0.0.1:50051",
    "hospital": "H33010600123",  # demo/hospitals.toml: requires card proofs from desk terminals
    "terminal": "H33010600123D01",
    "operator": "doctor-0601",
    "person": "33010000000000012345",  # demo/enrolment.csv
    "card": "A33010001",
    "pin": "123456",
}


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser("demo", help="play one desk visit against a dev-mode server (scripts/demo.sh)")
    for name, default in DEFAULTS.items():
        demo.add_argument(f"--{name}", default=default, help=f"default {default}")
    demo.add_argument("--issuer-key", default=DEMO_ISSUER_KEY_HEX, help="the demo issuer master key (hex)")
    demo.add_argument("--wait-seconds", type=float, default=30.0, help="wait this long for the server to be SERVING")
    demo.set_defaults(run=_demo)


def _demo(args: argparse.Namespace) -> int:
    import grpc

    from settlement.server.status import error_info_of

    if not _wait_until_serving(args.target, args.wait_seconds):
        print(f"settlement demo: no SERVING server at {args.target} within {args.wait_seconds} s", file=sys.stderr)
        return EXIT_FAILED
    try:
        _visit(args)
    except grpc.RpcError as error:
        info = error_info_of(error)
        reason = info.reason if info is not None else error.code().name
        print(f"settlement demo: the server refused: {reason}: {error.details()}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _wait_until_serving(target: str, wait_seconds: float) -> bool:
    import time

    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + wait_seconds
    with grpc.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                answer = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return True
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    return False


def _visit(args: argparse.Namespace) -> None:
    import grpc

    from cardio.applet import CardPersonalisation, CitizenCardApplet
    from cardio.card_crypto import GenerateAcRequest
    from cardio.citizen_card import CitizenCard, read_citizen_card
    from cardio.fake_reader import ScriptedCardReader
    from cardio.protocol import CardHolder, CardIdentification
    from cardio.reader import ApduExchange
    from settlement.api.gen.clinic.settlement.v1 import charge_pb2, settlement_pb2
    from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2 as pb
    from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2_grpc as pb_grpc
    from settlement.domain.money import format_yuan
    from settlement.identity import mask, with_check_character
    from settlement.service.clock import CHINA_STANDARD_TIME

    today = dt.datetime.now(CHINA_STANDARD_TIME).date()
    metadata = (
        ("operator-id", args.operator),
        ("x-dev-hospital-id", args.hospital),
        ("x-dev-terminal-id", args.terminal),
    )
    stub = pb_grpc.SettlementServiceStub(grpc.insecure_channel(args.target))

    # 1. The card: a personalised virtual card, read with its PIN over real APDUs.
    applet = CitizenCardApplet(
        CardPersonalisation(
            identification=CardIdentification(bytes.fromhex("330100" + "00" * 13), "3.00", args.card),
            holder=CardHolder(with_check_character("33010619800101123"), "演示患者", "1", dt.date(1980, 1, 1)),
            pin=args.pin,
            master_key=bytes.fromhex(args.issuer_key),
        )
    )
    reader = ScriptedCardReader(["Demo Reader 00 00"])
    reader.insert("Demo Reader 00 00", applet.process)
    exchange = ApduExchange(reader.connect("Demo Reader 00 00"))
    card_data = read_citizen_card(exchange, args.pin)
    print(f"== card {mask(card_data.identification.card_number)} read, holder {card_data.holder.masked_citizen_id}")

    account = stub.GetAccount(
        pb.GetAccountRequest(hospital_id=args.hospital, person_number=args.person, card_number=args.card),
        metadata=metadata,
        timeout=5,
    ).account
    print(
        f"   balance {format_yuan(account.balance_fen)} yuan "
        f"(current year {format_yuan(account.current_year_balance_fen)}, "
        f"historical {format_yuan(account.historical_balance_fen)})"
    )

    # 2. The visit's charges, as the hospital's adapter hands them over (catalogue codes).
    lines = [
        charge_pb2.ChargeLine(
            hospital_line_id="1", item_code="001102000010000-110200001", quantity="1", unit_price_yuan="25"
        ),
        charge_pb2.ChargeLine(
            hospital_line_id="2", item_code="002501010150000-250101015", quantity="1", unit_price_yuan="18.5"
        ),
        charge_pb2.ChargeLine(
            hospital_line_id="3", item_code="002503010010000-250301001", quantity="2", unit_price_yuan="12"
        ),
    ]
    visit = {
        "hospital_id": args.hospital,
        "person_number": args.person,
        "card_number": args.card,
        "visit_type": charge_pb2.VISIT_TYPE_OUTPATIENT,
        "visit_date": today.isoformat(),
        "use_account": charge_pb2.ACCOUNT_USE_PAY,
        "lines": lines,
    }
    quote = stub.Quote(pb.QuoteRequest(**visit), metadata=metadata, timeout=5)
    print(
        f"== quote {quote.quote_id}: total {format_yuan(quote.split.total_fen)}, "
        f"fund {format_yuan(quote.split.fund_paid_fen)}, "
        f"account {format_yuan(quote.split.account_paid_fen)}, cash {format_yuan(quote.split.cash_fen)}"
    )

    # 3. The patient confirms; the card signs the quoted amount against the server's challenge.
    signed = CitizenCard(exchange).generate_ac(
        GenerateAcRequest(
            amount_fen=quote.split.total_fen,
            transaction_date=today,
            unpredictable_number=quote.unpredictable_number,
            terminal_id=args.terminal,
        )
    )
    proof = charge_pb2.CardProof(
        card_number=args.card, transaction_counter=signed.counter, cryptogram=signed.cryptogram, quote_id=quote.quote_id
    )
    request = pb.SettleRequest(request_id=str(uuid.uuid4()), card_proof=proof, **visit)
    settled = stub.Settle(request, metadata=metadata, timeout=5).settlement
    again = stub.Settle(request, metadata=metadata, timeout=5).settlement  # a retry after a lost reply
    print(
        f"== settled {settled.settlement_id} (card present: {settled.card_present}); "
        f"retry of the same request_id returned the same settlement: {again == settled}"
    )
    _receipt(settled)

    # 4. The pharmacy takes back line 3: a refund cancels and re-settles the rest in one transaction.
    refund = stub.RefundLines(
        pb.RefundLinesRequest(
            request_id=str(uuid.uuid4()),
            hospital_id=args.hospital,
            settlement_id=settled.settlement_id,
            hospital_line_ids=["3"],
        ),
        metadata=metadata,
        timeout=5,
    )
    print(
        f"== refunded line 3: {refund.cancellation.settlement_id} reverses, {refund.replacement.settlement_id} replaces"
    )
    _receipt(refund.replacement)

    # 5. The citizen's statement and the hospital's day so far.
    page = stub.ListSettlements(
        pb.ListSettlementsRequest(
            hospital_id=args.hospital,
            person_number=args.person,
            start_date=today.isoformat(),
            end_date=today.isoformat(),
        ),
        metadata=metadata,
        timeout=5,
    )
    print("== statement (date, id, status, total, fund, account, cash, balance after)")
    for entry in page.settlements:
        s = entry.split
        status = settlement_pb2.SettlementStatus.Name(entry.status).removeprefix("SETTLEMENT_STATUS_")
        print(
            f"   {entry.visit_date} {entry.settlement_id} {status:<12} {format_yuan(s.total_fen):>9} "
            f"{format_yuan(s.fund_paid_fen):>9} "
            f"{format_yuan(s.account_paid_fen):>9} {format_yuan(s.cash_fen):>9} {format_yuan(s.balance_after_fen):>9}"
        )
    ledger = stub.GetDailyLedger(
        pb.GetDailyLedgerRequest(hospital_id=args.hospital, date=today.isoformat()), metadata=metadata, timeout=5
    ).ledger
    total = ledger.total
    print(
        f"== hospital {args.hospital} on {ledger.date}: {total.settlement_count} settlements, "
        f"{total.cancellation_count} cancellations, total {format_yuan(total.total_fen)}, "
        f"fund {format_yuan(total.fund_paid_fen)}, account {format_yuan(total.account_paid_fen)}, "
        f"cash {format_yuan(total.cash_fen)}"
    )


def _receipt(settlement: object) -> None:
    from settlement.domain.money import format_yuan

    s = settlement.split  # type: ignore[attr-defined]
    print("   ┌─ 门诊结算单 receipt ────────────────────────")
    print(f"   │ 医疗费总额 total            {format_yuan(s.total_fen):>10}")
    print(f"   │ 统筹基金支付 fund paid      {format_yuan(s.fund_paid_fen):>10}")
    print(f"   │ 个人账户支付 account paid   {format_yuan(s.account_paid_fen):>10}")
    print(f"   │ 个人现金支付 cash           {format_yuan(s.cash_fen):>10}")
    print(f"   │ 账户余额 balance after      {format_yuan(s.balance_after_fen):>10}")
    print("   └─────────────────────────────────────────────")
