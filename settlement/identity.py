"""Personal identifiers: masking for anything a person may read, keyed hashing for storage.

Owns: the one masking rule (last 4 characters only, PCI DSS style) and the keyed hash under which a
citizen ID is stored. Must never return or log a full citizen ID or card number.
"""

from __future__ import annotations

import hashlib
import hmac
import re

MASK_VISIBLE_CHARS = 4
_CITIZEN_ID = re.compile(r"[0-9]{17}[0-9X]")
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"


def mask(identifier: str) -> str:
    """``"330106199001011234"`` → ``"**************1234"``; short values are masked whole."""
    if len(identifier) <= MASK_VISIBLE_CHARS:
        return "*" * len(identifier)
    return "*" * (len(identifier) - MASK_VISIBLE_CHARS) + identifier[-MASK_VISIBLE_CHARS:]


def shown(identifier: str) -> str:
    """What may be echoed back of a caller-typed identifier: masked when it has a citizen ID's shape.

    A person number is not personal data, but a cashier who types a citizen ID into that field must not
    see it stored in a refusal or an audit row.
    """
    return mask(identifier) if _CITIZEN_ID.fullmatch(identifier.upper()) else identifier


def last4(identifier: str) -> str:
    return identifier[-MASK_VISIBLE_CHARS:]


def citizen_id_is_valid(citizen_id: str) -> bool:
    """GB 11643 (ISO 7064 MOD 11-2): 17 digits and a check character."""
    if not _CITIZEN_ID.fullmatch(citizen_id):
        return False
    total = sum(int(digit) * weight for digit, weight in zip(citizen_id[:17], _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11] == citizen_id[17]


def with_check_character(first17: str) -> str:
    """Complete a 17-digit prefix into a valid citizen ID (for demo and test data)."""
    total = sum(int(digit) * weight for digit, weight in zip(first17, _WEIGHTS, strict=True))
    return first17 + _CHECK_CHARS[total % 11]


def citizen_id_hash(citizen_id: str, key: bytes) -> str:
    """HMAC-SHA256 under a deployment key: lookups work, a stolen table does not reveal IDs."""
    return hmac.new(key, citizen_id.encode("ascii"), hashlib.sha256).hexdigest()
