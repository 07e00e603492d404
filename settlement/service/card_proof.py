"""Proof that the card was present for this amount (domain.md §7), checked inside the settle transaction.

Owns: the refusals for a card proof — unknown, foreign, expired or spent quote; an amount other than
the one quoted; a cryptogram that does not verify; a transaction counter that did not grow. Must never
see a master key: it asks the card's key source (software in dev, an HSM in production).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cardio.card_crypto import GenerateAcRequest, IssuerKeySource, verify_cryptogram
from settlement.errors import (
    AmountDiffersFromQuote,
    CounterNotIncreased,
    CryptogramInvalid,
    QuoteAlreadyUsed,
    QuoteExpired,
    QuoteNotFound,
)
from settlement.service.clock import business_date
from settlement.service.commands import Caller, CardProof


def check_card_proof(
    *,
    proof: CardProof,
    quote: Mapping[str, Any] | None,
    card: Mapping[str, Any],
    caller: Caller,
    person_number: str,
    total_fen: int,
    key_source: IssuerKeySource | None,
    now_us: int,
) -> None:
    """Raises the precise refusal; returns when the card signed exactly this settle."""
    if quote is None or quote["hospital_id"] != caller.hospital_id or quote["person_number"] != person_number:
        raise QuoteNotFound(
            f"quote {proof.quote_id} was not issued to this hospital for this person; quote again",
            metadata={"quote_id": proof.quote_id},
        )
    if quote["used_by_settlement_id"] is not None:
        raise QuoteAlreadyUsed(
            f"quote {proof.quote_id} was already spent by settlement {quote['used_by_settlement_id']}",
            metadata={"quote_id": proof.quote_id},
        )
    if now_us > int(quote["expires_at_us"]):
        raise QuoteExpired(f"quote {proof.quote_id} has expired; quote again", metadata={"quote_id": proof.quote_id})
    if int(quote["total_fen"]) != total_fen:
        raise AmountDiffersFromQuote(
            f"the settle totals {total_fen} fen but the card signed {quote['total_fen']} fen; quote again",
            metadata={"quote_id": proof.quote_id, "quoted_fen": str(quote["total_fen"]), "total_fen": str(total_fen)},
        )
    if key_source is None or not _verifies(proof, quote, caller, total_fen, key_source):
        raise CryptogramInvalid(
            "the card's cryptogram does not match this quote, amount, date and terminal",
            metadata={"quote_id": proof.quote_id},
        )
    if proof.transaction_counter <= int(card["last_counter"]):
        raise CounterNotIncreased(
            f"the card's transaction counter {proof.transaction_counter} is not above {card['last_counter']}",
            metadata={"counter": str(proof.transaction_counter), "last_counter": str(card["last_counter"])},
        )


def _verifies(
    proof: CardProof, quote: Mapping[str, Any], caller: Caller, total_fen: int, key_source: IssuerKeySource
) -> bool:
    try:
        request = GenerateAcRequest(
            amount_fen=total_fen,
            # The card signs the CST day of the quote (the terminal shows it with the quote).
            transaction_date=business_date(int(quote["issued_at_us"])),
            unpredictable_number=bytes.fromhex(str(quote["unpredictable_number"])),
            terminal_id=caller.terminal_id,
        )
    except ValueError:  # e.g. a terminal id longer than a card can sign (16 bytes): nothing can verify
        return False
    return verify_cryptogram(key_source, proof.card_number, request, proof.transaction_counter, proof.cryptogram)
