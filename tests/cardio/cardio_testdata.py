"""The demo holder the card tests use; one place, so the log scan in conftest.py knows what to look for."""

from __future__ import annotations

from typing import Any

from cardio.applet import CardPersonalisation
from cardio.virtual_card import demo_personalisation

CITIZEN_ID = "330106199001011234"
CARD_NUMBER = "A12345678"
PIN = "246810"
MASTER_KEY = bytes.fromhex("00112233445566778899AABBCCDDEEFF")


def personalisation(**overrides: Any) -> CardPersonalisation:
    fields: dict[str, Any] = {
        "card_number": CARD_NUMBER,
        "citizen_id": CITIZEN_ID,
        "pin": PIN,
        "master_key": MASTER_KEY,
    }
    fields.update(overrides)
    return demo_personalisation(**fields)
