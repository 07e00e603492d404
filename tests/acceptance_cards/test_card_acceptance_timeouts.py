"""Issue 5: "a slow or hung card never hangs the terminal past its documented timeout", for the
``settlement terminal`` program itself, through pcscd.

The documented bounds (docs/terminal.md, docs/card.md): one card command gives up after
``APDU_EXCHANGE_TIMEOUT_MS`` (5 s) with ``CARD_TIMEOUT``; waiting for a card gives up after
``--card-timeout`` with ``NO_CARD``. A program run also pays its own start (Python, gRPC, TLS), so each
bound is checked against the time a healthy run of the same program takes, plus scheduling slack.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from card_acceptance_desk import (
    assert_no_secrets,
    card_options,
    card_record,
    journal_states,
    quotes_issued,
    run_terminal,
    terminal_command,
    write_charges,
)
from cardio_pcsc import VPCD_PORTS, CardMaker, Pcscd
from terminal_world import World

from cardio.limits import APDU_EXCHANGE_TIMEOUT_MS

pytestmark = pytest.mark.pcsc

APDUS_IN_A_READ = 9  # SELECT, three EF05 records, VERIFY, four EF06 records
SLOW_CARD_DELAY_MS = 400  # every answer this late: slow, but well inside the exchange timeout
SLACK_S = 3.0  # scheduling on a shared 2-core machine, on top of the program's own start


def timed(command: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.monotonic()
    result = run_terminal(command)
    return time.monotonic() - started, result


def program_start_s(world: World, tmp_path: Path) -> float:
    """A run that does nothing (no unfinished settle, no charges): what the program's start costs."""
    elapsed, result = timed(terminal_command(world, tmp_path / "idle.jsonl"))
    assert result.returncode == 0
    return elapsed


def test_a_card_that_hangs_while_signing_ends_the_program_within_the_exchange_timeout(
    world: World, pcscd: Pcscd, virtual_cards: CardMaker, tmp_path: Path
) -> None:
    card = virtual_cards(hang_after_apdus=APDUS_IN_A_READ, **card_options())  # never answers GENERATE AC
    start_s = program_start_s(world, tmp_path)
    journal = tmp_path / "journal.jsonl"
    command = terminal_command(world, journal, "--reader", pcscd.reader_for(VPCD_PORTS[0]))

    elapsed_s, done = timed([*command, "--charges", str(write_charges(tmp_path))])

    assert done.returncode == 1, done.stdout + done.stderr
    assert "CARD_TIMEOUT" in done.stdout
    assert elapsed_s < start_s + APDU_EXCHANGE_TIMEOUT_MS / 1000 + SLACK_S
    assert card.apdu_count == APDUS_IN_A_READ + 1  # it did reach the signature, then gave up on it
    assert quotes_issued(world) == 1
    assert world.settlement_rows() == []
    assert journal_states(journal) == []  # the card never signed: nothing to resume
    assert_no_secrets(done.stdout + done.stderr)


def test_a_card_that_hangs_at_the_pin_ends_the_program_within_the_exchange_timeout(
    world: World, pcscd: Pcscd, virtual_cards: CardMaker, tmp_path: Path
) -> None:
    virtual_cards(hang_after_apdus=4, **card_options())  # SELECT and EF05 answered; VERIFY never is
    start_s = program_start_s(world, tmp_path)
    command = terminal_command(world, tmp_path / "journal.jsonl", "--reader", pcscd.reader_for(VPCD_PORTS[0]))

    elapsed_s, result = timed([*command, "--charges", str(write_charges(tmp_path))])

    assert result.returncode == 1
    assert "CARD_TIMEOUT" in result.stdout
    assert elapsed_s < start_s + APDU_EXCHANGE_TIMEOUT_MS / 1000 + SLACK_S
    assert quotes_issued(world) == 0
    assert world.settlement_rows() == []


def test_a_slow_card_inside_the_timeout_still_settles(
    world: World, pcscd: Pcscd, virtual_cards: CardMaker, tmp_path: Path
) -> None:
    virtual_cards(delay_ms=SLOW_CARD_DELAY_MS, **card_options())
    command = terminal_command(world, tmp_path / "journal.jsonl", "--reader", pcscd.reader_for(VPCD_PORTS[0]))

    elapsed_s, result = timed([*command, "--charges", str(write_charges(tmp_path))])

    assert result.returncode == 0, result.stdout + result.stderr
    assert elapsed_s >= (APDUS_IN_A_READ + 1) * SLOW_CARD_DELAY_MS / 1000  # it really was that slow
    assert card_record(world).settlements == 1


def test_no_card_ends_the_wait_at_the_card_timeout(world: World, pcscd: Pcscd, tmp_path: Path) -> None:
    start_s = program_start_s(world, tmp_path)
    card_timeout_s = 2
    command = terminal_command(
        world,
        tmp_path / "journal.jsonl",
        "--reader",
        pcscd.reader_for(VPCD_PORTS[1]),
        "--charges",
        str(write_charges(tmp_path)),
        card_timeout_s=card_timeout_s,
    )

    elapsed_s, result = timed(command)

    assert result.returncode == 1
    assert "NO_CARD" in result.stdout
    assert card_timeout_s <= elapsed_s < start_s + card_timeout_s + SLACK_S
    assert quotes_issued(world) == 0
