"""Cards blocked or reported lost and terminals switched off from the command line: the next settle is
refused through the real service path, the change is audited with who and why, and nothing prints a full
card number."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from service_world import DESK, EMPLOYEE, charge, open_app, seed
from sqlalchemy import select

from settlement.cli import EXIT_FAILED, EXIT_OK, main
from settlement.commands._options import DATABASE_URL_ENV
from settlement.errors import CardBlocked, CardLost, PermissionDenied
from settlement.service.app import SettlementApp
from settlement.service.commands import SettleCommand
from settlement.service.ledger_check import check_ledger
from settlement.storage import tables as t
from settlement.storage.engine import Engines

REASON = "phoned in by the cardholder, ticket 4711"


@pytest.fixture
def app(engines: Engines, monkeypatch: pytest.MonkeyPatch) -> Iterator[SettlementApp]:
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    seed(engines)
    opened = open_app(engines)
    yield opened
    opened.writer.stop()


def cli(capsys: pytest.CaptureFixture[str], database_url: str, *argv: str) -> tuple[int, str]:
    code = main([*argv, "--database", database_url])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def settle(app: SettlementApp, n: int) -> None:
    app.settle(SettleCommand(DESK, f"00000000-0000-4000-8000-{n:012d}", charge(EMPLOYEE)))


def audit_rows(engines: Engines, action: str) -> list[dict[str, object]]:
    with engines.reader.connect() as connection:
        rows = connection.execute(select(t.audit_log).where(t.audit_log.c.action == action)).mappings()
        return [dict(row) for row in rows]


def test_a_card_reported_lost_refuses_the_next_settle_and_the_audit_log_says_who_and_why(
    app: SettlementApp, engines: Engines, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settle(app, 1)

    code, printed = cli(capsys, database_url, "cards", "report-lost", EMPLOYEE.card, "--reason", REASON)

    assert code == EXIT_OK
    assert "active -> lost (audited)" in printed
    assert EMPLOYEE.card not in printed
    with pytest.raises(CardLost):
        settle(app, 2)
    [row] = audit_rows(engines, "card_status")
    assert row["actor"].startswith("cli/")  # type: ignore[union-attr]
    assert row["subject"] != EMPLOYEE.card
    assert str(row["subject"]).endswith(EMPLOYEE.card[-4:])
    assert json.loads(str(row["detail"])) == {"from": "active", "to": "lost", "reason": REASON}
    with engines.reader.connect() as connection:
        assert check_ledger(connection).ok


def test_a_blocked_card_given_back_settles_again_and_repeating_a_status_changes_nothing(
    app: SettlementApp, engines: Engines, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, database_url, "cards", "block", EMPLOYEE.card, "--reason", "PIN tried too often")[0] == EXIT_OK
    with pytest.raises(CardBlocked):
        settle(app, 1)

    again = cli(capsys, database_url, "cards", "block", EMPLOYEE.card, "--reason", "PIN tried too often")
    assert cli(capsys, database_url, "cards", "activate", EMPLOYEE.card, "--reason", "identity checked")[0] == EXIT_OK
    settle(app, 2)

    assert again[0] == EXIT_OK
    assert "is already blocked; nothing changed" in again[1]
    assert [json.loads(str(r["detail"]))["to"] for r in audit_rows(engines, "card_status")] == ["blocked", "active"]


def test_a_disabled_terminal_is_refused_and_settles_again_once_enabled(
    app: SettlementApp, engines: Engines, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, printed = cli(capsys, database_url, "terminals", "disable", DESK.terminal_id, "--reason", "desk PC stolen")
    with pytest.raises(PermissionDenied):
        settle(app, 1)
    cli(capsys, database_url, "terminals", "enable", DESK.terminal_id, "--reason", "replacement PC installed")
    settle(app, 2)

    assert code == EXIT_OK
    assert f"terminal {DESK.terminal_id}: active -> inactive (audited)" in printed
    assert len(audit_rows(engines, "terminal_status")) == 2


def test_an_unknown_card_or_terminal_or_an_empty_reason_is_named_and_nothing_is_audited(
    app: SettlementApp, engines: Engines, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    unknown_card = cli(capsys, database_url, "cards", "block", "6222020000000009999", "--reason", REASON)
    unknown_terminal = cli(capsys, database_url, "terminals", "disable", "T-NOWHERE", "--reason", REASON)
    no_reason = cli(capsys, database_url, "cards", "block", EMPLOYEE.card, "--reason", " ")

    assert unknown_card[0] == unknown_terminal[0] == no_reason[0] == EXIT_FAILED
    assert "CARD_NOT_FOUND" in unknown_card[1]
    assert "6222020000000009999" not in unknown_card[1]
    assert "NOT_FOUND: terminal T-NOWHERE is not registered" in unknown_terminal[1]
    assert "reason" in no_reason[1]
    assert audit_rows(engines, "card_status") == audit_rows(engines, "terminal_status") == []
