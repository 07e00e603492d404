"""Fixtures for the card tests: demo card data, log scanning, and the real PC/SC stack.

The ``pcscd`` fixture gives the session a pcscd with the vsmartcard-vpcd driver: it reuses one that
already shows the vpcd readers, or starts its own ``pcscd --foreground`` (stopping a stale one first).
Under CI=true a missing piece (pyscard, pcscd, the vpcd driver) fails the tests loudly; elsewhere they
are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from cardio_pcsc import (
    VPCD_PORTS,
    CardMaker,
    Pcscd,
    pcscd_with_vpcd,
    wait_for_reader,
)
from cardio_testdata import CARD_NUMBER, CITIZEN_ID, PIN, personalisation

from cardio.applet import CitizenCardApplet
from cardio.virtual_card import VirtualCard


@pytest.fixture(autouse=True)
def no_personal_data_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every card test doubles as a log scan: no full citizen ID or card number, no PIN in VERIFY."""
    caplog.set_level(logging.DEBUG, logger="cardio")
    yield
    text = caplog.text
    for secret in (CITIZEN_ID, CARD_NUMBER):
        assert secret not in text
        assert secret.encode().hex().upper() not in text.upper()
    for line in text.splitlines():
        if "VERIFY" in line:
            assert PIN not in line


@pytest.fixture(scope="session")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pcscd]:
    with pcscd_with_vpcd(tmp_path_factory.mktemp("pcscd")) as daemon:
        yield daemon


@pytest.fixture
def virtual_cards(pcscd: Pcscd) -> Iterator[CardMaker]:
    """Make virtual cards in the vpcd slots; each is pulled, and its reader seen empty, after the test.

    Waiting for the empty reader matters: pcscd cannot tell a card pulled and another inserted within
    one poll, so the next test would inherit this card's power state.
    """
    made: list[VirtualCard] = []

    def make(*, port: int = VPCD_PORTS[0], t0_mode: bool = False, insert: bool = True, **options: Any) -> VirtualCard:
        behaviour = {k: options.pop(k) for k in ("delay_ms", "remove_after_apdus", "hang_after_apdus") if k in options}
        card = VirtualCard(CitizenCardApplet(personalisation(**options), t0_mode=t0_mode), port=port, **behaviour)
        made.append(card)
        if insert:
            card.insert()
            wait_for_reader(pcscd.reader_for(port), present=True)
        return card

    yield make
    for card in made:
        card.remove()
    for card in made:
        with contextlib.suppress(AssertionError):
            wait_for_reader(pcscd.reader_for(card.port), present=False)
