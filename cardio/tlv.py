"""The card's simple TLV: one tag byte, one length byte (0-255), the value.

Owns encoding and strict decoding only. Deliberately not BER-TLV: the citizen-card records in this
project never need multi-byte tags or lengths, and a format with one way to spell each record leaves no
room for parser differentials between the card and the reader. Decoding never raises anything but
``MalformedResponse``.
"""

from __future__ import annotations

from collections.abc import Iterable

from cardio.errors import MalformedResponse

MAX_TLV_VALUE_BYTES = 255


def encode_tlv(items: Iterable[tuple[int, bytes]]) -> bytes:
    """Concatenate ``tag || length || value`` for each item, in the given order."""
    out = bytearray()
    for tag, value in items:
        if not 0 <= tag <= 0xFF:
            raise ValueError(f"TLV tag {tag} does not fit one byte")
        if len(value) > MAX_TLV_VALUE_BYTES:
            raise ValueError(f"TLV value of {len(value)} bytes is longer than {MAX_TLV_VALUE_BYTES}")
        out += bytes((tag, len(value))) + value
    return bytes(out)


def decode_tlv(data: bytes) -> dict[int, bytes]:
    """Decode a whole buffer of TLV items; a truncated item or a repeated tag is malformed."""
    items: dict[int, bytes] = {}
    offset = 0
    while offset < len(data):
        if offset + 2 > len(data):
            raise MalformedResponse(f"TLV item at offset {offset} has no length byte")
        tag, length = data[offset], data[offset + 1]
        start = offset + 2
        end = start + length
        if end > len(data):
            raise MalformedResponse(f"TLV item {tag:02X} claims {length} bytes, only {len(data) - start} left")
        if tag in items:
            raise MalformedResponse(f"TLV tag {tag:02X} repeated")
        items[tag] = data[start:end]
        offset = end
    return items


def require(items: dict[int, bytes], tag: int, *, length: int | None = None, what: str) -> bytes:
    """The value of ``tag``; ``MalformedResponse`` if it is missing or has the wrong length."""
    value = items.get(tag)
    if value is None:
        raise MalformedResponse(f"{what} (tag {tag:02X}) missing")
    if length is not None and len(value) != length:
        raise MalformedResponse(f"{what} (tag {tag:02X}) has {len(value)} bytes, expected {length}")
    return value
