"""Enrolment import: persons, cards and opening balances from a CSV, all or nothing, once per file."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from batch_helpers import (
    HANGZHOU,
    KEY,
    NANJING,
    REGIONS,
    balances,
    citizen_id,
    enrol,
    enrolment_csv,
    person,
    table_counts,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from settlement.domain.ledger import FUNDING
from settlement.errors import InvalidImportFile
from settlement.identity import citizen_id_hash
from settlement.service.enrolment import ENROLMENT_COLUMNS, enrolment_run_id, read_enrolment
from settlement.service.ledger_check import check_ledger
from settlement.storage import tables as t
from settlement.storage.engine import Engines

NOTHING = {"persons": 0, "cards": 0, "accounts": 0, "postings": 0, "runs": 0}


def test_a_valid_file_enrols_every_person_with_a_card_and_opening_balances_posted_from_funding(
    engines: Engines,
) -> None:
    people = [person(1, current_year_fen="12345", historical_fen="600"), person(2, region=NANJING), person(3)]
    people[2] = replace(people[2], insured_type="resident", current_year_fen="0", historical_fen="0")
    data = enrolment_csv(people)

    done = enrol(engines, data)

    assert (done.persons, done.already_imported, done.run_id) == (3, False, enrolment_run_id(data))
    assert done.current_year_fen == 12345 + int(people[1].current_year_fen)
    assert balances(engines) == {
        "P000001": (12345, 600),
        "P000002": (int(people[1].current_year_fen), int(people[1].historical_fen)),
        "P000003": (0, 0),
    }
    with engines.reader.connect() as connection:
        cards = {row.card_number: row for row in connection.execute(select(t.cards))}
        postings = list(connection.execute(select(t.postings).order_by(t.postings.c.sequence)))
        funding = connection.execute(
            select(t.ledger_accounts.c.balance_fen).where(t.ledger_accounts.c.name == FUNDING)
        ).scalar_one()
        report = check_ledger(connection)
    assert cards["C00000001"].person_number == "P000001"
    assert cards["C00000001"].key_reference == "test-issuer"
    assert {p.settlement_id for p in postings} == {done.run_id}
    assert all(p.source == FUNDING for p in postings)
    assert funding == -(done.current_year_fen + done.historical_fen)
    assert report.ok, report.problems


def test_citizen_ids_are_stored_only_as_a_keyed_hash_and_card_numbers_appear_only_in_the_cards_table(
    engines: Engines,
) -> None:
    someone = person(7)
    enrol(engines, enrolment_csv([someone]))

    with engines.reader.connect() as connection:
        stored = connection.execute(select(t.persons)).one()
        text_of = {
            table: " ".join(str(value) for row in connection.execute(select(t.metadata.tables[table])) for value in row)
            for table in ("persons", "cards", "accounts", "audit_log", "runs", "postings")
        }
    assert stored.citizen_id_hash == citizen_id_hash(someone.citizen_id, KEY)
    assert stored.citizen_id_last4 == someone.citizen_id[-4:]
    assert not [table for table, text in text_of.items() if someone.citizen_id in text]
    assert [table for table, text in text_of.items() if someone.card_number in text] == ["cards"]
    assert "*****" + someone.card_number[-4:] in text_of["audit_log"]  # the audit trail holds it masked


def test_several_bad_rows_are_all_named_with_their_line_and_column_and_nothing_is_imported(engines: Engines) -> None:
    bad_id = citizen_id(4)[:-1] + ("0" if citizen_id(4)[-1] != "0" else "1")
    people = [
        person(1),
        person(2, insured_type="farmer"),  # line 3
        person(3, current_year_fen="12.50", region="999999"),  # line 4, two columns
        person(4, citizen_id=bad_id),  # line 5
        person(5),
        person(6, card_status="stolen", person_number="P-6"),  # line 7, two columns
    ]

    with pytest.raises(InvalidImportFile) as refused:
        enrol(engines, enrolment_csv(people))

    message = refused.value.message
    assert "6 problem(s) on 4 line(s), nothing imported" in message
    for where in (
        "enrolment.csv:3: insured_type:",
        "enrolment.csv:4: region:",
        "enrolment.csv:4: current_year_fen:",
        "enrolment.csv:5: citizen_id:",
        "enrolment.csv:7: person_number:",
        "enrolment.csv:7: card_status:",
    ):
        assert where in message
    assert bad_id not in message
    assert "**************" + bad_id[-4:] in message
    assert table_counts(engines) == NOTHING


def test_a_person_twice_in_the_file_names_the_earlier_line(engines: Engines) -> None:
    first = person(1)
    again = person(2, person_number=first.person_number, citizen_id=first.citizen_id)

    with pytest.raises(InvalidImportFile) as refused:
        enrol(engines, enrolment_csv([first, person(3), again]))

    assert "enrolment.csv:4: person_number: the same person_number as line 2" in refused.value.message
    assert "enrolment.csv:4: citizen_id: the same citizen_id as line 2" in refused.value.message
    assert table_counts(engines) == NOTHING


def test_persons_and_cards_already_enrolled_are_refused_and_nothing_of_the_second_file_is_imported(
    engines: Engines,
) -> None:
    enrol(engines, enrolment_csv([person(1), person(2)]))
    before = table_counts(engines)
    second = [person(3), person(1, name="改名"), person(4, card_number=person(2).card_number), person(5)]

    with pytest.raises(InvalidImportFile) as refused:
        enrol(engines, enrolment_csv(second))

    message = refused.value.message
    assert "enrolment.csv:3: person_number: P000001 is already enrolled" in message
    assert f"enrolment.csv:3: citizen_id: citizen ID …{person(1).citizen_id[-4:]} is already enrolled" in message
    assert "enrolment.csv:4: card_number: card *****0002 is already enrolled" in message
    assert table_counts(engines) == before


def test_the_same_file_twice_is_imported_once_and_the_second_time_says_already_imported(engines: Engines) -> None:
    data = enrolment_csv([person(1), person(2)])
    first = enrol(engines, data)
    state = (
        table_counts(engines, ("persons", "cards", "accounts", "postings", "runs", "audit_log")),
        balances(engines),
    )

    second = enrol(engines, data)

    assert second.already_imported
    assert (second.run_id, second.persons, second.current_year_fen) == (first.run_id, 2, first.current_year_fen)
    assert (
        table_counts(engines, ("persons", "cards", "accounts", "postings", "runs", "audit_log")),
        balances(engines),
    ) == state


def test_a_gbk_file_is_read_with_its_encoding_and_a_utf8_byte_order_mark_is_tolerated(engines: Engines) -> None:
    gbk = enrolment_csv([person(1, name="张三", insured_type="退休职工", card_status="正常")], encoding="gb18030")
    with_bom = b"\xef\xbb\xbf" + enrolment_csv([person(2, name="李四")])

    enrol(engines, gbk, encoding="gb18030")
    enrol(engines, with_bom)

    with engines.reader.connect() as connection:
        stored = {row.person_number: (row.name, row.insured_type) for row in connection.execute(select(t.persons))}
    assert stored == {"P000001": ("张三", "retired"), "P000002": ("李四", "employee")}


def test_a_file_in_another_encoding_than_declared_names_the_line_and_suggests_the_encoding(engines: Engines) -> None:
    data = enrolment_csv([person(1, name="Li Si"), person(2, name="王五")], encoding="gb18030")

    with pytest.raises(InvalidImportFile) as refused:
        enrol(engines, data)

    assert "enrolment.csv:3: (file): not utf-8 text" in refused.value.message
    assert "--encoding gb18030" in refused.value.message
    assert table_counts(engines) == NOTHING


def test_a_header_without_a_required_column_is_named_before_any_row(engines: Engines) -> None:
    header = [column for column in ENROLMENT_COLUMNS if column != "key_reference"] + ["key_ref"]
    data = enrolment_csv([person(1)], header=header)

    with pytest.raises(InvalidImportFile) as refused:
        enrol(engines, data)

    assert "enrolment.csv:1: (header): " in refused.value.message
    assert "missing key_reference; unknown key_ref" in refused.value.message
    assert table_counts(engines) == NOTHING


def test_residents_cannot_bring_a_personal_account_balance(engines: Engines) -> None:
    with pytest.raises(InvalidImportFile) as refused:
        enrol(engines, enrolment_csv([person(1, insured_type="resident", current_year_fen="100")]))

    assert "residents hold no personal account" in refused.value.message


def test_a_refused_file_leaves_one_audit_row_without_its_contents(engines: Engines) -> None:
    someone = person(1, insured_type="nobody")
    with pytest.raises(InvalidImportFile):
        enrol(engines, enrolment_csv([someone]))

    with engines.reader.connect() as connection:
        audit = connection.execute(select(t.audit_log)).one()
    assert (audit.action, audit.outcome) == ("enrolment.import", "INVALID_IMPORT_FILE")
    assert json.loads(audit.detail)["problems"] == 1
    assert someone.citizen_id not in audit.detail
    assert someone.person_number not in audit.detail


# --- properties of the reader, without a database ----------------------------------------------

_BREAKAGES = {
    "insured_type": "unknown",
    "region": "000000",
    "citizen_id": "123",
    "card_number": "x",
    "card_status": "gone",
    "current_year_fen": "-5",
    "historical_fen": "1.5",
    "person_number": "",
    "name": "",
    "key_reference": "has space",
}


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.lists(
        st.one_of(st.none(), st.sampled_from(sorted(_BREAKAGES))),
        min_size=1,
        max_size=25,
    )
)
def test_whatever_rows_are_broken_exactly_those_lines_and_columns_are_named(breaks: list[str | None]) -> None:
    people = []
    for n, column in enumerate(breaks):
        someone = person(n + 1, region=HANGZHOU if n % 2 else NANJING)
        people.append(replace(someone, **{column: _BREAKAGES[column]}) if column else someone)

    rows, problems = read_enrolment(enrolment_csv(people), encoding="utf-8", regions=REGIONS, key=KEY)

    expected = {(n + 2, column) for n, column in enumerate(breaks) if column}
    assert {(problem.line, problem.column) for problem in problems} == expected
    assert [row.line for row in rows] == [n + 2 for n, column in enumerate(breaks) if not column]
