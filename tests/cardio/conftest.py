"""Fixtures for the card tests: demo card data, log scanning, and the real PC/SC stack.

The ``pcscd`` fixture gives the session a pcscd with the vsmartcard-vpcd driver: it reuses one that
already shows the vpcd readers, or starts its own ``pcscd --foreground`` (stopping a stale one first).
Under CI=true a missing piece (pyscard, pcscd, the vpcd driver) fails the tests loudly; elsewhere they
are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cardio_pcsc import (
    VPCD_DRIVER,
    VPCD_PORTS,
    CardMaker,
    Pcscd,
    pcsc_unavailable,
    running_pcscd_pid,
    vpcd_readers,
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
    try:
        import smartcard.scard  # noqa: F401, PLC0415
    except ImportError:
        pcsc_unavailable("pyscard is not installed (pip install -e '.[reader]')")
    if shutil.which("pcscd") is None and not Path("/usr/sbin/pcscd").exists():
        pcsc_unavailable("pcscd is not installed (apt-get install pcscd)")
    if not VPCD_DRIVER.exists():
        pcsc_unavailable("the vsmartcard-vpcd driver is not installed (apt-get install vsmartcard-vpcd)")

    daemon = Pcscd(log_path=tmp_path_factory.mktemp("pcscd") / "pcscd.log")
    if len(vpcd_readers()) == 2:
        daemon.readers = sorted(vpcd_readers())  # one pcscd per machine: reuse the running one
    else:
        stale = running_pcscd_pid()
        if stale is not None:  # running but without vpcd readers: it cannot serve these tests
            os.kill(stale, signal.SIGTERM)
            for _ in range(50):
                if running_pcscd_pid() is None:
                    break
                time.sleep(0.1)
        daemon.start()
    yield daemon
    daemon.stop()


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
