"""Fixtures of the card acceptance tests: the real PC/SC stack and the real engine over mTLS.

``virtual_cards`` is the very fixture of tests/cardio/conftest.py (loaded under a name of its own, as
tests/terminal does). ``pcscd`` does what tests/cardio's does — reuse a pcscd that shows the vpcd readers,
else start one, failing instead of skipping under ``CI=true`` — but per module, not per session: this
folder sorts before tests/cardio, and a pcscd it kept running would make tests/cardio reuse it rather
than own it, which skips tests/cardio's pcscd-restart test. ``world`` is tests/terminal's: the seeded
engine (card proofs required for desk terminals) behind ``build_server`` on port 0 with mTLS, on SQLite.
Every test here is marked ``pcsc``: one pcscd per machine, so run them serially and not beside
tests/cardio or tests/terminal.
"""

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
for helpers in (Path(__file__).parent, TESTS / "service", TESTS / "cardio", TESTS / "terminal"):
    if str(helpers) not in sys.path:
        sys.path.insert(0, str(helpers))

from cardio_pcsc import Pcscd, pcscd_with_vpcd  # noqa: E402
from terminal_world import World, running_world  # noqa: E402 - needs the paths above

from settlement.storage.engine import make_engines, sqlite_url  # noqa: E402
from settlement.storage.migrate import upgrade  # noqa: E402

_spec = importlib.util.spec_from_file_location("cardio_fixtures_for_card_acceptance", TESTS / "cardio" / "conftest.py")
assert _spec is not None
assert _spec.loader is not None
_cardio_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cardio_fixtures)

virtual_cards = _cardio_fixtures.virtual_cards


@pytest.fixture(scope="module")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pcscd]:
    with pcscd_with_vpcd(tmp_path_factory.mktemp("pcscd")) as daemon:
        yield daemon


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    engines = make_engines(sqlite_url(tmp_path / "settlement.db"))
    upgrade(engines.writer)
    with running_world(engines, tmp_path, tls=True) as running:
        yield running
    engines.dispose()
