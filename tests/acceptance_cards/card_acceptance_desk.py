"""What the card acceptance tests do at a desk by hand: read the card through pcscd, quote over the wire,
have the card sign, and send (or tamper with, or replay) the settle; plus the ``settlement terminal``
program as a subprocess, and the engine's own record of a card.

A unique module name (not ``conftest``) so it cannot clash with other test folders' helpers.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from service_world import DESK, EMPLOYEE, HOSPITAL, MASTER_KEY, TODAY
from sqlalchemy import func, select
from terminal_world import CITIZEN_ID, PIN, World, charges_document, desk_program

from cardio.card_crypto import GenerateAcRequest
from cardio.citizen_card import CitizenCard, read_citizen_card
from cardio.pcsc import PcscCardReader
from cardio.reader import ApduExchange
from settlement.api.gen.clinic.settlement.v1 import charge_pb2
from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2 as pb
from settlement.server.status import error_info_of
from settlement.storage import tables as t
from settlement.terminal.calls import quote_request, settle_request, signed_date, visit_fields
from settlement.terminal.charges import parse_charges

REPOSITORY = Path(__file__).resolve().parents[2]
PIN_VARIABLE = "CARD_ACCEPTANCE_PIN"
RUN_TIMEOUT_S = 60
CARD_WAIT_MS = 3_000
INS_GET_RESPONSE = 0xC0
INS_GENERATE_AC = 0xAE


def card_options(**overrides: Any) -> dict[str, Any]:
    """The seeded employee's card (the engine's issuer key), as tests/cardio's ``virtual_cards`` takes it."""
    return {"card_number": EMPLOYEE.card, "citizen_id": CITIZEN_ID, "pin": PIN, "master_key": MASTER_KEY} | overrides


def visit(*, extra_fen: int = 0) -> dict[str, object]:
    """The visit's quote/settle fields; ``extra_fen`` adds fen to the first line (20.00 yuan x 1)."""
    document = charges_document()
    if extra_fen:
        document["lines"][0]["unit_price_yuan"] = f"{20 + extra_fen / 100:.2f}"
    return visit_fields(
        parse_charges(document, "charges"),
        hospital_id=HOSPITAL,
        person_number=EMPLOYEE.number,
        card_number=EMPLOYEE.card,
        today=TODAY,  # the engine's fixed clock stands on TODAY; the charges name it too
    )


@dataclass(frozen=True)
class Signed:
    """A quote and the card's signature as the desk would send it (``proof``)."""

    quote: pb.QuoteResponse
    proof: charge_pb2.CardProof


class Desk:
    """The desk's calls by hand: a stub over mTLS with the desk's certificate, and the reader."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.stub = world.stub()
        self.metadata = world.identity().metadata()
        self.reader = PcscCardReader()

    def quote(self, fields: dict[str, object]) -> pb.QuoteResponse:
        answer: pb.QuoteResponse = self.stub.Quote(quote_request(fields), metadata=self.metadata, timeout=10)
        return answer

    def read_quote_and_sign(self, reader_name: str, *, fields: dict[str, object], signed_extra_fen: int = 0) -> Signed:
        """Card in, PIN, read, quote, GENERATE AC over ``quote total + signed_extra_fen`` — all through pcscd."""
        with self.reader.connect(self.reader.wait_for_card(reader_name, timeout_ms=CARD_WAIT_MS)) as channel:
            exchange = ApduExchange(channel)
            data = read_citizen_card(exchange, PIN)
            assert data.identification.card_number == EMPLOYEE.card
            quote = self.quote(fields)
            signed = CitizenCard(exchange).generate_ac(
                GenerateAcRequest(
                    amount_fen=quote.split.total_fen + signed_extra_fen,
                    transaction_date=signed_date(quote),
                    unpredictable_number=quote.unpredictable_number,
                    terminal_id=DESK.terminal_id,
                )
            )
        proof = charge_pb2.CardProof(
            card_number=EMPLOYEE.card,
            transaction_counter=signed.counter,
            cryptogram=signed.cryptogram,
            quote_id=quote.quote_id,
        )
        return Signed(quote, proof)

    def settle(
        self, fields: dict[str, object], proof: charge_pb2.CardProof | None, *, request_id: str = ""
    ) -> pb.SettleResponse:
        request = (
            settle_request(fields, request_id or str(uuid.uuid4()), proof)
            if proof is not None
            else pb.SettleRequest(request_id=request_id or str(uuid.uuid4()), **fields)  # type: ignore[arg-type]
        )
        answer: pb.SettleResponse = self.stub.Settle(request, metadata=self.metadata, timeout=10)
        return answer


def for_quote(proof: charge_pb2.CardProof, quote_id: str) -> charge_pb2.CardProof:
    """The same card number, counter and cryptogram presented for another quote."""
    copied = charge_pb2.CardProof()
    copied.CopyFrom(proof)
    copied.quote_id = quote_id
    return copied


def refusal(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    """The status code and ErrorInfo reason of a call that must be refused."""
    with pytest.raises(grpc.RpcError) as refused:
        call()
    info = error_info_of(refused.value)
    assert info is not None, f"a refusal without ErrorInfo: {refused.value}"
    return refused.value.code(), info.reason


@dataclass(frozen=True)
class CardRecord:
    """What the engine keeps about the card and the money: it must not move when a settle is refused."""

    settlements: int
    last_counter: int
    spent_quotes: int
    status: str


def card_record(world: World) -> CardRecord:
    with world.engines.reader.connect() as connection:
        card = connection.execute(select(t.cards).where(t.cards.c.card_number == EMPLOYEE.card)).one()
        settlements = connection.execute(select(func.count()).select_from(t.settlements)).scalar_one()
        spent = connection.execute(
            select(func.count()).select_from(t.quotes).where(t.quotes.c.used_by_settlement_id.is_not(None))
        ).scalar_one()
    return CardRecord(int(settlements), int(card.last_counter), int(spent), str(card.status))


def quotes_issued(world: World) -> int:
    with world.engines.reader.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(t.quotes)).scalar_one())


def recording_instructions(card: Any) -> list[int]:
    """Record the INS byte of every command APDU the virtual card receives (its applet, wrapped)."""
    seen: list[int] = []
    process = card.applet.process

    def record(raw: bytes) -> bytes:
        if len(raw) >= 2:
            seen.append(raw[1])
        answer: bytes = process(raw)
        return answer

    card.applet.process = record
    return seen


# ---- the ``settlement terminal`` program ------------------------------------------------------------


def terminal_command(world: World, journal: Path, *options: str, card_timeout_s: int = 10) -> list[str]:
    return desk_program(world, journal, *options, pin_variable=PIN_VARIABLE, card_timeout_s=card_timeout_s)


def run_terminal(command: list[str], *, pin: str = PIN) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        cwd=REPOSITORY,
        env={**os.environ, PIN_VARIABLE: pin},
        check=False,
    )


def write_charges(directory: Path) -> Path:
    path = directory / "charges.json"
    path.write_text(json.dumps(charges_document(), ensure_ascii=False), encoding="utf-8")
    return path


def journal_states(journal: Path) -> list[tuple[str, str]]:
    if not journal.exists():
        return []
    return [
        (line["state"], line["request_id"])
        for line in map(json.loads, journal.read_text(encoding="utf-8").splitlines())
    ]


def assert_no_secrets(text: str) -> None:
    for secret in (PIN, EMPLOYEE.card, CITIZEN_ID):
        assert secret not in text
