"""Housekeeping: idempotency records go only after their retention window, quotes a day after expiry;
settlements, postings and the audit chain are never touched."""

from __future__ import annotations

import pytest
from service_world import DESK, EMPLOYEE, TODAY, charge, open_app, seed
from sqlalchemy import func, select

from settlement import limits
from settlement.cli import EXIT_FAILED, EXIT_OK, main
from settlement.commands._options import DATABASE_URL_ENV
from settlement.errors import InvalidField
from settlement.service.clock import FixedClock, instant_us
from settlement.service.commands import QuoteCommand, SettleCommand
from settlement.service.ledger_check import check_ledger
from settlement.service.purge import purge_expired
from settlement.storage import tables as t
from settlement.storage.engine import Engines

DAY_SECONDS = 86_400
FIRST = "00000000-0000-4000-8000-000000000001"
LATER = "00000000-0000-4000-8000-000000000002"


def count(engines: Engines, table: object) -> int:
    with engines.reader.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_request_records_outlive_their_window_and_then_go_with_stale_quotes_while_the_ledger_stays(
    engines: Engines,
) -> None:
    seed(engines)
    clock = FixedClock(instant_us(TODAY, hour=9))
    app = open_app(engines, clock)
    try:
        first = app.settle(SettleCommand(DESK, FIRST, charge(EMPLOYEE)))
        app.quote(QuoteCommand(DESK, charge(EMPLOYEE)))
        clock.advance((limits.REQUEST_RETENTION_DAYS - 1) * DAY_SECONDS)
        app.settle(SettleCommand(DESK, LATER, charge(EMPLOYEE)))

        within_window = purge_expired(engines, retention_days=limits.REQUEST_RETENTION_DAYS, actor="ops", clock=clock)
        retried = app.settle(SettleCommand(DESK, FIRST, charge(EMPLOYEE)))
        clock.advance(2 * DAY_SECONDS)
        past_window = purge_expired(engines, retention_days=limits.REQUEST_RETENTION_DAYS, actor="ops", clock=clock)
    finally:
        app.close()

    assert (within_window.requests, within_window.quotes) == (0, 1)
    assert retried == first  # still inside the window: the first answer
    assert (past_window.requests, past_window.quotes) == (1, 0)
    assert count(engines, t.requests) == 1
    assert count(engines, t.settlements) == 2
    with engines.reader.connect() as connection:
        assert check_ledger(connection).ok


def test_a_window_shorter_than_the_apis_promise_is_refused_and_nothing_is_deleted(engines: Engines) -> None:
    seed(engines)
    clock = FixedClock(instant_us(TODAY))
    with pytest.raises(InvalidField, match="at least 400 days"):
        purge_expired(engines, retention_days=30, actor="ops", clock=clock)


def test_the_command_line_purge_prints_what_it_deleted_and_refuses_a_short_window(
    engines: Engines, database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    seed(engines)

    refused = main(["ledger", "purge-expired", "--retention-days", "30", "--database", database_url])
    refusal = capsys.readouterr().err
    done = main(["ledger", "purge-expired", "--database", database_url])
    printed = capsys.readouterr().out

    assert refused == EXIT_FAILED
    assert "INVALID_FIELD" in refusal
    assert "at least 400 days" in refusal
    assert done == EXIT_OK
    assert "0 request record(s) older than 400 days and 0 expired quote(s) deleted" in printed
