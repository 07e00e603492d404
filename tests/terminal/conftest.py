"""Fixtures of the terminal tests: the seeded engine world (tests/service) and the real PC/SC stack
(tests/cardio), reused rather than re-invented.

The ``pcscd`` and ``virtual_cards`` fixtures are the very functions of tests/cardio/conftest.py, loaded
under a name of their own (importing a ``conftest`` by name would pick whichever pytest loaded last).
``world`` is the engine behind a dev-mode server on SQLite and on PostgreSQL (the ``engines`` fixture);
``reader`` is cardio's scripted reader holding the seeded employee's card.
"""

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
for helpers in (Path(__file__).parent, TESTS / "service", TESTS / "cardio"):
    sys.path.insert(0, str(helpers))

from terminal_world import READER, World, employee_card, running_world  # noqa: E402 - needs the paths above

from cardio.applet import CitizenCardApplet  # noqa: E402
from cardio.fake_reader import ScriptedCardReader  # noqa: E402
from settlement.storage.engine import Engines  # noqa: E402

_spec = importlib.util.spec_from_file_location("cardio_fixtures_for_terminal", TESTS / "cardio" / "conftest.py")
assert _spec is not None
assert _spec.loader is not None
_cardio_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cardio_fixtures)

pcscd = _cardio_fixtures.pcscd
virtual_cards = _cardio_fixtures.virtual_cards


@pytest.fixture
def world(engines: Engines, tmp_path: Path) -> Iterator[World]:
    with running_world(engines, tmp_path, tls=False) as running:
        yield running


@pytest.fixture
def applet() -> CitizenCardApplet:
    return CitizenCardApplet(employee_card())


@pytest.fixture
def reader(applet: CitizenCardApplet) -> ScriptedCardReader:
    scripted = ScriptedCardReader([READER])
    scripted.insert(READER, applet.process)
    return scripted


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    return tmp_path / "desk" / "journal.jsonl"
