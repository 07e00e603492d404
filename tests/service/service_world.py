"""A small seeded world for the service tests: one hospital, its terminals, insured persons, cards.

Reference data goes in through the repository, and opening balances as postings from external funding,
so the ledger check holds from the first row.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from pathlib import Path

from cardio.card_crypto import (
    KEY_REFERENCE_APPLICATION_CRYPTOGRAM,
    GenerateAcRequest,
    SoftwareKeySource,
    compute_cryptogram,
    derive_card_key,
)
from settlement.domain import Category, VisitType
from settlement.domain.ledger import FUNDING, Posting, person_current, person_historical
from settlement.identity import citizen_id_hash, with_check_character
from settlement.service.app import SettlementApp
from settlement.service.clock import FixedClock, business_date, instant_us
from settlement.service.commands import (
    Caller,
    CardProof,
    ChargeRequest,
    QuoteCommand,
    SettleCommand,
    requested_line,
)
from settlement.service.context import ServiceContext
from settlement.service.policy_book import PolicyBook
from settlement.storage.engine import Engines
from settlement.storage.repository import Repository

POLICIES = Path(__file__).resolve().parents[2] / "policies"
MASTER_KEY = bytes(range(16))
HOSPITAL = "H32010001"
OTHER_HOSPITAL = "H32010002"
NANJING = "320100"
HANGZHOU = "330100"
TODAY = dt.date(2026, 3, 2)
CITIZEN_ID_KEY = b"test-key"


@dataclass(frozen=True)
class Person:
    number: str
    card: str
    insured_type: str
    region: str
    current_fen: int
    historical_fen: int


EMPLOYEE = Person("P0001", "CARD0001", "employee", NANJING, 50_000, 20_000)
RESIDENT = Person("P0002", "CARD0002", "resident", NANJING, 0, 0)
HANGZHOU_EMPLOYEE = Person("P0003", "CARD0003", "employee", HANGZHOU, 30_000, 90_000)
BLOCKED = Person("P0004", "CARD0004", "employee", NANJING, 10_000, 0)
PEOPLE = (EMPLOYEE, RESIDENT, HANGZHOU_EMPLOYEE, BLOCKED)

DESK = Caller(HOSPITAL, "T-DESK-01", "doctor-7")
HIS = Caller(HOSPITAL, "HIS-01", "his")
OTHER_DESK = Caller(OTHER_HOSPITAL, "T-OTHER-01", "doctor-9")


def seed(engines: Engines, *, card_proof_required: bool = False) -> None:
    with engines.writer.begin() as connection:
        repo = Repository(connection)
        repo.lock_for_writing([])
        repo.insert_hospital(
            hospital_id=HOSPITAL,
            name="南京市第二医院",
            level=2,
            region=NANJING,
            card_proof_required=card_proof_required,
        )
        repo.insert_hospital(
            hospital_id=OTHER_HOSPITAL,
            name="南京市社区卫生服务中心",
            level=1,
            region=NANJING,
            card_proof_required=False,
        )
        repo.insert_terminal(terminal_id=DESK.terminal_id, hospital_id=HOSPITAL, name="desk 1")
        repo.insert_terminal(terminal_id=HIS.terminal_id, hospital_id=HOSPITAL, name="HIS adapter", channel="his")
        repo.insert_terminal(terminal_id=OTHER_DESK.terminal_id, hospital_id=OTHER_HOSPITAL, name="desk")
        for n, person in enumerate(PEOPLE):
            citizen_id = with_check_character(f"3201021980010{n:04d}")
            repo.insert_person(
                person_number=person.number,
                name=f"测试{n}",
                insured_type=person.insured_type,
                region=person.region,
                citizen_id_hash=citizen_id_hash(citizen_id, CITIZEN_ID_KEY),
                citizen_id_last4=citizen_id[-4:],
            )
            repo.insert_card(
                card_number=person.card,
                person_number=person.number,
                status="blocked" if person is BLOCKED else "active",
                key_reference="issuer-1",
            )
            repo.insert_account(person.number)
            repo.add_to_balances(
                person.number, current_year_fen=person.current_fen, historical_fen=person.historical_fen
            )
            postings = [
                Posting(FUNDING, person_current(person.number), person.current_fen),
                Posting(FUNDING, person_historical(person.number), person.historical_fen),
            ]
            repo.post(f"seed:{person.number}", TODAY, [p for p in postings if p.amount_fen])
        repo.flush()


def open_app(engines: Engines, clock: FixedClock | None = None) -> SettlementApp:
    context = ServiceContext(
        PolicyBook.load(POLICIES),
        {"issuer-1": SoftwareKeySource(MASTER_KEY)},
        clock or FixedClock(instant_us(TODAY, hour=10)),
    )
    return SettlementApp(engines, context)


def item_codes(region: str, category: Category) -> list[str]:
    policy = PolicyBook.load(POLICIES).regions[region]
    return [code for code, item in policy.catalogue.items.items() if item.category is category]


def charge(
    person: Person = EMPLOYEE,
    *,
    lines: tuple[tuple[str, str, str], ...] | None = None,
    use_account: bool = True,
    card: bool = True,
    visit_date: dt.date = TODAY,
) -> ChargeRequest:
    """Lines as (item code, quantity, unit price yuan); by default one of each class."""
    if lines is None:
        a = item_codes(person.region, Category.A)[0]
        b = item_codes(person.region, Category.B)[0]
        c = item_codes(person.region, Category.C)[0]
        lines = ((a, "1", "20.00"), (b, "2", "35.50"), (c, "1", "88.00"))
    return ChargeRequest(
        person_number=person.number,
        insured_type=None,
        visit_type=VisitType.OUTPATIENT,
        visit_date=visit_date,
        use_account=use_account,
        lines=tuple(
            requested_line(index=i, item_code=code, quantity=qty, unit_price=price, line_id=f"L{i + 1}")
            for i, (code, qty, price) in enumerate(lines)
        ),
        card_number=person.card if card else "",
    )


def settle_command(caller: Caller = DESK, request: ChargeRequest | None = None, **kwargs: object) -> SettleCommand:
    return SettleCommand(caller=caller, request_id=str(uuid.uuid4()), charge=request or charge(), **kwargs)  # type: ignore[arg-type]


def sign(
    app: SettlementApp, caller: Caller, request: ChargeRequest, *, counter: int, amount_fen: int | None = None
) -> CardProof:
    """Quote, then compute the card's cryptogram exactly as the card applet does."""
    quoted = app.quote(QuoteCommand(caller, request))
    card_key = derive_card_key(MASTER_KEY, request.card_number, KEY_REFERENCE_APPLICATION_CRYPTOGRAM)
    ac_request = GenerateAcRequest(
        amount_fen=quoted.split.total_fen if amount_fen is None else amount_fen,
        transaction_date=business_date(app.context.clock.now_us()),
        unpredictable_number=quoted.unpredictable_number,
        terminal_id=caller.terminal_id,
    )
    return CardProof(request.card_number, counter, compute_cryptogram(card_key, ac_request, counter), quoted.quote_id)
