"""Fixtures for the finance tests: the standard seeded ledger on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from finance_seeding import SeededLedger, seed_standard_ledger

from settlement.storage.engine import Engines


@pytest.fixture
def seeded(engines: Engines) -> SeededLedger:
    """Two hospitals, two days around midnight CST, same-day and next-day cancellations (see finance_seeding)."""
    return seed_standard_ledger(engines)
