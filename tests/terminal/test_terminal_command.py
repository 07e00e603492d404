"""``settlement terminal`` as a command: options, exit codes, and recovery on start (dev mode, no reader)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from service_world import DESK, HOSPITAL
from terminal_world import OPERATOR, Screen, World, charges_document, make_desk

from cardio.fake_reader import ScriptedCardReader
from settlement.cli import EXIT_OK, EXIT_USAGE, main
from settlement.commands.terminal import EXIT_UNFINISHED
from settlement.terminal.charges import parse_charges
from settlement.terminal.flow import Outcome
from settlement.terminal.journal import Journal, State


def dev_options(world: World, journal: Path) -> list[str]:
    return [
        "terminal",
        "--target",
        f"127.0.0.1:{world.server.port}",
        "--dev-hospital",
        HOSPITAL,
        "--dev-terminal",
        DESK.terminal_id,
        "--operator",
        OPERATOR,
        "--journal",
        str(journal),
        "--yes",
    ]


def leave_an_unknown_outcome(world: World, journal_path: Path, reader: ScriptedCardReader) -> str:
    world.control.drop_settle_replies = 3
    with Journal.open(journal_path) as journal:
        desk = make_desk(world, journal, Screen(), reader=reader)
        charges = parse_charges(charges_document(), "charges")
        assert desk.visit(charges, person=None, person_map={}) is Outcome.UNKNOWN
        [entry] = journal.unfinished()
        return entry.request_id


def test_starting_the_terminal_resumes_an_unfinished_settle_with_its_request_id(
    world: World, journal_path: Path, reader: ScriptedCardReader, capsys: pytest.CaptureFixture[str]
) -> None:
    request_id = leave_an_unknown_outcome(world, journal_path, reader)
    world.control.drop_settle_replies = 1  # the first resend loses its reply too; the second gets through
    assert main(dev_options(world, journal_path)) == EXIT_OK
    out = capsys.readouterr().out
    assert f"request_id {request_id}" in out
    assert "门诊结算单" in out
    [row] = world.settlement_rows()
    assert row["request_id"] == request_id
    with Journal.open(journal_path) as journal:
        assert journal.entry(request_id).state is State.SETTLED


def test_an_outcome_still_unknown_after_start_exits_3_and_stays_in_the_journal(
    world: World, journal_path: Path, reader: ScriptedCardReader, capsys: pytest.CaptureFixture[str]
) -> None:
    request_id = leave_an_unknown_outcome(world, journal_path, reader)
    world.control.drop_settle_replies = 3
    charges = journal_path.parent / "charges.json"
    charges.write_text(json.dumps(charges_document()), encoding="utf-8")
    # A new visit is not started: the card reader is not even opened while a settle is unfinished.
    assert main([*dev_options(world, journal_path), "--charges", str(charges)]) == EXIT_UNFINISHED
    assert "run the terminal again to resume" in capsys.readouterr().out
    assert main([*dev_options(world, journal_path), "--unfinished", "reverse"]) == EXIT_OK
    with Journal.open(journal_path) as journal:
        assert journal.entry(request_id).state is State.REVERSED


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        (["--dev-hospital", HOSPITAL], "--dev-hospital and --dev-terminal"),
        (["--dev-hospital", HOSPITAL, "--dev-terminal", "T" * 17], "1 to 16"),
        (["--ca", "ca.crt", "--dev-hospital", HOSPITAL, "--dev-terminal", "T1"], "not both"),
        (["--ca", "ca.crt", "--cert", "t.crt"], "all of --ca, --cert and --key"),
        (["--dev-hospital", HOSPITAL, "--dev-terminal", "T1", "--pin-from-env", "NO_SUCH_PIN_VARIABLE"], "not set"),
    ],
)
def test_a_desk_that_cannot_say_who_it_is_is_a_usage_error(
    options: list[str], complaint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["terminal", "--operator", OPERATOR, "--journal", str(tmp_path / "j.jsonl"), *options]
    assert main(argv) == EXIT_USAGE
    assert complaint in capsys.readouterr().err
    assert not (tmp_path / "j.jsonl").exists()


def test_a_malformed_charges_file_is_a_usage_error_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    charges = tmp_path / "charges.json"
    charges.write_text('{"lines": [{"hospital_line_id": "1", "item_code": "X", "quantity": 1.5}]}', encoding="utf-8")
    argv = ["terminal", "--operator", OPERATOR, "--dev-hospital", HOSPITAL, "--dev-terminal", "T1"]
    assert main([*argv, "--journal", str(tmp_path / "j.jsonl"), "--charges", str(charges)]) == EXIT_USAGE
    assert "lines[0].quantity: write decimals as strings" in capsys.readouterr().err
