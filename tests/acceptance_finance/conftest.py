"""Fixtures of the finance acceptance tests: a ledger written only by the real settle path.

Nothing here inserts a settlement row by hand: every entry is booked by ``SettlementApp`` (quote, settle,
cancel, refund through the group-commit writer) on the seeded world of tests/service, with a
``FixedClock`` a test moves from day to day. The database is SQLite and PostgreSQL (the ``engines``
fixture); under ``CI=true`` the PostgreSQL half fails instead of skipping.
"""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
for helpers in (Path(__file__).parent, TESTS / "service"):
    if str(helpers) not in sys.path:
        sys.path.insert(0, str(helpers))

from finance_acceptance_world import FinanceWorld, open_world  # noqa: E402 - needs the paths above

from settlement.storage.engine import Engines  # noqa: E402


@pytest.fixture
def world(engines: Engines) -> Iterator[FinanceWorld]:
    with open_world(engines) as opened:
        yield opened
