"""Citizen cards at the doctor's desk: the reader layer, the card protocol and the card-present proof.

The public surface is chosen here. Importing ``cardio`` never imports pyscard: only ``cardio.pcsc``
does, and ``open_pcsc_reader()`` loads it on first use. The server needs only ``cardio.card_crypto``.

    reader = open_pcsc_reader()
    name = reader.wait_for_card(timeout_ms=30_000)
    with reader.connect(name) as channel:
        exchange = ApduExchange(channel)
        data = read_citizen_card(exchange, pin)             # select, EF05, VERIFY, EF06
        proof = CitizenCard(exchange).generate_ac(request)  # counter + cryptogram for the server
"""

from cardio.card_crypto import (
    GenerateAcRequest,
    IssuerKeySource,
    SoftwareKeySource,
    verify_cryptogram,
)
from cardio.citizen_card import CitizenCard, CitizenCardData, read_citizen_card
from cardio.errors import (
    CardError,
    CardRemoved,
    CardTimeout,
    InvalidPinFormat,
    MalformedResponse,
    NoCard,
    NoReader,
    NotACitizenCard,
    PcscUnavailable,
    PinBlocked,
    PinError,
    PinRequired,
    ReaderFailure,
    UnexpectedStatusWord,
    WrongPin,
)
from cardio.protocol import CardHolder, CardIdentification, GenerateAcResponse
from cardio.reader import ApduExchange, CardChannel, CardReaderPort, open_pcsc_reader

__all__ = [
    "ApduExchange",
    "CardChannel",
    "CardError",
    "CardHolder",
    "CardIdentification",
    "CardReaderPort",
    "CardRemoved",
    "CardTimeout",
    "CitizenCard",
    "CitizenCardData",
    "GenerateAcRequest",
    "GenerateAcResponse",
    "InvalidPinFormat",
    "IssuerKeySource",
    "MalformedResponse",
    "NoCard",
    "NoReader",
    "NotACitizenCard",
    "PcscUnavailable",
    "PinBlocked",
    "PinError",
    "PinRequired",
    "ReaderFailure",
    "SoftwareKeySource",
    "UnexpectedStatusWord",
    "WrongPin",
    "open_pcsc_reader",
    "read_citizen_card",
    "verify_cryptogram",
]
