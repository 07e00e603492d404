"""The settle journal on its own: durable state changes, crashes at every point, never a second id."""

from __future__ import annotations

import json
import stat
import uuid
from pathlib import Path

import pytest

from settlement.terminal import journal as journal_module
from settlement.terminal.journal import Journal, JournalBusy, JournalCorrupt, JournalError, State

REQUEST = b"\x0a\x24serialised settle request \x00\xff"


def prepare(journal: Journal, request_id: str | None = None) -> str:
    request_id = request_id or str(uuid.uuid4())
    journal.prepare(
        request_id=request_id,
        hospital_id="H32010001",
        terminal_id="T-DESK-01",
        quote_id="Q1",
        amount_fen=9_100,
        person_number="P0001",
        card_masked="****0001",
        request=REQUEST,
    )
    return request_id


def lines_of(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_settle_prepared_but_never_sent_is_unfinished_after_a_crash_with_its_request_id(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with Journal.open(path) as journal:
        request_id = prepare(journal)
    # The process died here: "prepared" is on disk, the Settle never left.
    with Journal.open(path) as reopened:
        [entry] = reopened.unfinished()
    assert (entry.request_id, entry.state, entry.request, entry.attempts) == (request_id, State.PREPARED, REQUEST, 0)
    assert (entry.amount_fen, entry.quote_id, entry.person_number) == (9_100, "Q1", "P0001")


def test_a_settle_sent_without_a_reply_is_unfinished_after_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with Journal.open(path) as journal:
        request_id = prepare(journal)
        journal.sent(request_id)
        journal.sent(request_id)
    with Journal.open(path) as reopened:
        [entry] = reopened.unfinished()
        assert (entry.request_id, entry.state, entry.attempts) == (request_id, State.SENT, 2)
        reopened.settled(request_id, "S1")
    with Journal.open(path) as again:
        assert again.unfinished() == []
        assert again.entry(request_id).settlement_id == "S1"


def test_every_state_change_is_one_json_line_naming_the_request_id(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with Journal.open(path) as journal:
        request_id = prepare(journal)
        journal.sent(request_id)
        journal.settled(request_id, "S1")
    lines = lines_of(path)
    assert [line["state"] for line in lines] == ["prepared", "sent", "settled"]
    assert {line["request_id"] for line in lines} == {request_id}
    assert lines[0]["amount_fen"] == 9_100
    assert lines[0]["card"] == "****0001"


def test_a_request_id_is_never_prepared_twice(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "journal.jsonl") as journal:
        request_id = prepare(journal)
        journal.sent(request_id)
        journal.refused(request_id, "QUOTE_EXPIRED", "quote Q1 has expired")
        with pytest.raises(JournalError, match="already in the journal"):
            prepare(journal, request_id)


def test_a_finished_entry_cannot_change_again(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "journal.jsonl") as journal:
        request_id = prepare(journal)
        journal.sent(request_id)
        journal.settled(request_id, "S1")
        with pytest.raises(JournalCorrupt, match="cannot go from settled to sent"):
            journal.sent(request_id)
        assert journal.entry(request_id).state is State.SETTLED


def test_a_line_cut_short_by_a_crash_is_dropped_and_the_journal_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with Journal.open(path) as journal:
        request_id = prepare(journal)
    with path.open("ab") as file:
        file.write(b'{"v":1,"state":"sent","request_id":"' + request_id.encode())  # the crash cut it here
    with Journal.open(path) as reopened:
        [entry] = reopened.unfinished()
        assert entry.state is State.PREPARED  # the torn "sent" never completed, so the call was never made
        reopened.sent(request_id)
    assert [line["state"] for line in lines_of(path)] == ["prepared", "sent"]


def test_a_damaged_line_before_the_end_stops_the_terminal(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with Journal.open(path) as journal:
        request_id = prepare(journal)
        journal.sent(request_id)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0][:40] + b"\n" + lines[1])
    with pytest.raises(JournalCorrupt, match=r"journal\.jsonl:1"):
        Journal.open(path)


def test_a_state_change_for_a_request_that_was_never_prepared_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text('{"v":1,"at":"x","state":"sent","request_id":"r1","attempt":1}\n', encoding="utf-8")
    with pytest.raises(JournalCorrupt, match="never prepared"):
        Journal.open(path)


def test_two_terminal_processes_cannot_share_one_journal(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with Journal.open(path), pytest.raises(JournalBusy):
        Journal.open(path)
    Journal.open(path).close()  # released with the first


def test_the_journal_is_readable_only_by_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "desk" / "journal.jsonl"
    with Journal.open(path) as journal:
        prepare(journal)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_reversal_is_journaled_with_its_own_id_and_a_refused_one_can_be_retried_or_resent(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with Journal.open(path) as journal:
        request_id = prepare(journal)
        journal.sent(request_id)
        journal.reversing(request_id, "cancel-1")
        journal.reversing(request_id, "cancel-1")  # resending the same reversal
        journal.reverse_refused(request_id, "DAY_ALREADY_CLOSED", "the day is closed")
        journal.sent(request_id)  # back to learning the settle's outcome, same request_id
        journal.reversing(request_id, "cancel-2")
        journal.reversed(request_id, "S-CANCEL")
    with Journal.open(path) as reopened:
        entry = reopened.entry(request_id)
    assert (entry.state, entry.cancel_request_id, entry.settlement_id, entry.attempts) == (
        State.REVERSED,
        "cancel-2",
        "S-CANCEL",
        2,
    )
    assert entry.finished


def test_a_large_journal_with_nothing_unfinished_is_moved_aside_on_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "journal.jsonl"
    with Journal.open(path) as journal:
        done = prepare(journal)
        journal.sent(done)
        journal.settled(done, "S1")
    monkeypatch.setattr(journal_module, "JOURNAL_ROTATE_BYTES", 10)
    with Journal.open(path) as rotated:
        assert rotated.entries() == []
        open_one = prepare(rotated)
    [archived] = tmp_path.glob("journal.jsonl.*.done")
    assert [line["state"] for line in lines_of(archived)] == ["prepared", "sent", "settled"]
    with Journal.open(path) as kept:  # an unfinished entry is never rotated away
        assert [entry.request_id for entry in kept.unfinished()] == [open_one]
