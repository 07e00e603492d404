"""Issue 5, the card proof's refusals end to end: a card read and made to sign through pcscd, a quote and a
settle over the wire (mTLS, the desk's certificate). A tampered amount (+1 fen) is refused with its own
reason, a replayed cryptogram is refused, and so are an expired or unknown quote, a cloned card whose
counter did not grow, a lost or blocked card, and a desk settle without a proof where the hospital
requires one — each with its own ``ErrorInfo`` reason, and none of them writing anything: the honest
settle afterwards still goes through, exactly once.
"""

from __future__ import annotations

import dataclasses
import uuid

import grpc
import pytest
from card_acceptance_desk import Desk, card_options, card_record, for_quote, refusal, visit
from cardio_pcsc import VPCD_PORTS, CardMaker, Pcscd
from service_world import EMPLOYEE
from terminal_world import World

from settlement.limits import QUOTE_VALIDITY_SECONDS
from settlement.storage.repository import Repository

pytestmark = pytest.mark.pcsc

REFUSED = grpc.StatusCode.FAILED_PRECONDITION


def set_card_status(world: World, status: str) -> None:
    """What the issuer's lost/blocked feed does to the card register."""
    with world.engines.writer.begin() as connection:
        Repository(connection).set_card_status(EMPLOYEE.card, status)


def test_a_tampered_amount_is_refused_with_its_own_reason_and_writes_nothing(
    world: World, pcscd: Pcscd, virtual_cards: CardMaker
) -> None:
    virtual_cards(**card_options())
    desk, reader, honest = Desk(world), pcscd.reader_for(VPCD_PORTS[0]), visit()
    one_fen_more = visit(extra_fen=1)
    signed = desk.read_quote_and_sign(reader, fields=honest)
    before = card_record(world)

    # The settle's charges are one fen more than the quote the card signed.
    assert refusal(lambda: desk.settle(one_fen_more, signed.proof))[1] == "AMOUNT_DIFFERS_FROM_QUOTE"
    # The card was made to sign one fen more too: still not the quoted amount.
    raised = desk.read_quote_and_sign(reader, fields=honest, signed_extra_fen=1)
    code, reason = refusal(lambda: desk.settle(one_fen_more, raised.proof))
    assert (code, reason) == (REFUSED, "AMOUNT_DIFFERS_FROM_QUOTE")
    # The card signed one fen more than the quote, the settle claims the quoted amount: a false signature.
    assert refusal(lambda: desk.settle(honest, raised.proof)) == (REFUSED, "CRYPTOGRAM_INVALID")
    assert card_record(world) == before  # nothing settled, no counter moved, no quote spent

    settled = desk.settle(honest, signed.proof).settlement
    assert settled.card_present
    assert settled.split.total_fen == signed.quote.split.total_fen
    record = card_record(world)
    assert (record.settlements, record.last_counter, record.spent_quotes) == (1, 1, 1)


def test_a_replayed_cryptogram_is_refused_and_only_the_original_request_gets_its_settlement(
    world: World, pcscd: Pcscd, virtual_cards: CardMaker
) -> None:
    virtual_cards(**card_options())
    desk, reader, fields = Desk(world), pcscd.reader_for(VPCD_PORTS[0]), visit()
    signed = desk.read_quote_and_sign(reader, fields=fields)
    request_id = str(uuid.uuid4())
    first = desk.settle(fields, signed.proof, request_id=request_id).settlement

    # The same proof under a new request id: the quote's unpredictable number is spent.
    assert refusal(lambda: desk.settle(fields, signed.proof)) == (REFUSED, "QUOTE_ALREADY_USED")
    # The same cryptogram and counter presented for a fresh quote: it was computed over another number.
    replayed = for_quote(signed.proof, desk.quote(fields).quote_id)
    assert refusal(lambda: desk.settle(fields, replayed)) == (REFUSED, "CRYPTOGRAM_INVALID")
    # The very request resent (a terminal that lost the reply): the first settlement, not a second one.
    assert desk.settle(fields, signed.proof, request_id=request_id).settlement == first

    record = card_record(world)
    assert (record.settlements, record.last_counter, record.spent_quotes) == (1, 1, 1)


def test_a_cloned_card_an_expired_or_unknown_quote_are_each_refused_by_name(
    world: World, pcscd: Pcscd, virtual_cards: CardMaker
) -> None:
    virtual_cards(**card_options())
    desk, fields = Desk(world), visit()
    first_reader, second_reader = (pcscd.reader_for(port) for port in VPCD_PORTS)
    signed = desk.read_quote_and_sign(first_reader, fields=fields)
    desk.settle(fields, signed.proof)

    # A clone (same keys, its counter back at 0) signs a fresh quote honestly: its counter did not grow.
    virtual_cards(port=VPCD_PORTS[1], **card_options())
    cloned = desk.read_quote_and_sign(second_reader, fields=fields)
    assert cloned.proof.transaction_counter == 1
    assert refusal(lambda: desk.settle(fields, cloned.proof)) == (REFUSED, "COUNTER_NOT_INCREASED")

    # The genuine card signs again, but the desk waits past the quote's validity.
    late = desk.read_quote_and_sign(first_reader, fields=fields)
    world.clock.advance(QUOTE_VALIDITY_SECONDS + 1)
    assert refusal(lambda: desk.settle(fields, late.proof)) == (REFUSED, "QUOTE_EXPIRED")

    unknown = for_quote(late.proof, "Q" + "0" * 22)
    assert refusal(lambda: desk.settle(fields, unknown)) == (grpc.StatusCode.NOT_FOUND, "QUOTE_NOT_FOUND")

    record = card_record(world)
    assert (record.settlements, record.last_counter, record.spent_quotes) == (1, 1, 1)


def test_a_lost_or_blocked_card_and_a_desk_settle_without_proof_are_refused(
    world: World, pcscd: Pcscd, virtual_cards: CardMaker
) -> None:
    virtual_cards(**card_options())
    desk, reader, fields = Desk(world), pcscd.reader_for(VPCD_PORTS[0]), visit()
    signed = desk.read_quote_and_sign(reader, fields=fields)
    before = card_record(world)

    set_card_status(world, "lost")
    assert refusal(lambda: desk.settle(fields, signed.proof))[1] == "CARD_LOST"
    assert refusal(lambda: desk.quote(fields))[1] == "CARD_LOST"
    set_card_status(world, "blocked")
    assert refusal(lambda: desk.settle(fields, signed.proof))[1] == "CARD_BLOCKED"
    set_card_status(world, "active")
    # This hospital requires a card proof from desk terminals (tests/terminal's world seeds it so).
    assert refusal(lambda: desk.settle(fields, None))[1] == "CARD_PROOF_REQUIRED"
    assert card_record(world) == dataclasses.replace(before, status="active")

    assert desk.settle(fields, signed.proof).settlement.card_present
    assert card_record(world).settlements == 1
