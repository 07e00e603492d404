"""Masking of personal data for logs, errors and reprs.

Owns the one rule the project promises (reliability.md, PIPL, PCI DSS style): a citizen ID or card
number is shown by its last four characters only; a PIN is never shown at all.
"""

from __future__ import annotations

VISIBLE_TAIL_CHARS = 4


def mask_tail(value: str) -> str:
    """``'************1234'`` for an 16-character value; a value of 4 or fewer characters is all stars."""
    if len(value) <= VISIBLE_TAIL_CHARS:
        return "*" * len(value)
    return "*" * (len(value) - VISIBLE_TAIL_CHARS) + value[-VISIBLE_TAIL_CHARS:]
